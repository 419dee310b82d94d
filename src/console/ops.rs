//! The operations actions in the console: a question on the command line (a file name, a
//! grace period, a typed confirmation naming the target), then the action runs in the
//! background — the same code as the CLI verb (`crate::ops`, `crate::compact`,
//! `crate::admin`) — reporting progress to a dialog, and ends with its outcome in the
//! dialog, on the message line and on the timeline. Input and drawing never wait for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::app::App;
use super::format as fmt;
use super::model::TimelineEntry;
use super::model::Update;
use super::state::{Ask, Dialog, Input, InputKind, Pending};
use crate::client::ClusterClient;
use crate::ops::backup::{self, Progress};
use crate::ops::membership::{self, NewNode};

/// What the console needs to act on the cluster.
pub struct Ops {
    pub client: Arc<ClusterClient>,
    pub tx: mpsc::UnboundedSender<OpEvent>,
    /// A dev cluster's directory: add-node can start a node there.
    pub dev_dir: Option<PathBuf>,
    /// Where a new node's watch task sends its updates, and how often it asks for frames.
    pub updates: mpsc::Sender<Update>,
    pub refresh: std::time::Duration,
}

/// Reports from a running action to the console loop.
#[derive(Debug)]
pub enum OpEvent {
    /// How far the action is (`ratio` when it can be measured) and what it is doing.
    Progress { ratio: Option<f64>, detail: String },
    /// A node was added: watch it too.
    Watch { grpc: String },
    /// A restore's file checked out: ask for the typed confirmation.
    Verified {
        path: PathBuf,
        keys: u64,
        index: u64,
    },
    Done {
        ok: bool,
        text: String,
        secret: Option<NewSecret>,
    },
}

/// A key's secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub id: String,
    pub secret: String,
}

/// An operation whose question was answered, ready to run (see `App::answer`).
#[derive(Debug, Clone)]
pub enum Op {
    Backup {
        path: PathBuf,
    },
    /// A restore's first step: check the file; `OpEvent::Verified` then asks for the typed
    /// confirmation.
    CheckRestore {
        path: PathBuf,
    },
    Restore {
        path: PathBuf,
    },
    Compact,
    /// `given: None` starts a new node in the dev cluster.
    AddNode {
        given: Option<NewNode>,
    },
    RemoveNode {
        id: u64,
    },
    TransferLeader {
        to: u64,
    },
    RotateKey {
        id: String,
        grace: Duration,
    },
}

impl Ops {
    /// Runs `op` in a spawned task that reports `OpEvent`s on `tx`; returns at once.
    pub fn start(&self, op: Op) {
        let (client, tx, dev_dir) = (self.client.clone(), self.tx.clone(), self.dev_dir.clone());
        match op {
            Op::Backup { path } => {
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result = backup::backup(&client, &path, move |p: Progress| {
                        let _ = progress_tx.send(progress_event(p));
                    })
                    .await;
                    let (ok, text) = match result {
                        Ok(m) => (
                            true,
                            format!(
                                "backup written to {}: {}",
                                path.display(),
                                backup::describe_manifest(&m)
                            ),
                        ),
                        Err(e) => (false, format!("backup failed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::CheckRestore { path } => {
                tokio::task::spawn_blocking(move || {
                    let event = match opsdeck_node::backup::format::verify(&path) {
                        Ok(m) => OpEvent::Verified {
                            keys: m.key_count,
                            index: m.applied_index,
                            path,
                        },
                        Err(e) => OpEvent::Done {
                            ok: false,
                            text: format!("restore refused, nothing was changed: {e}"),
                            secret: None,
                        },
                    };
                    let _ = tx.send(event);
                });
            }
            Op::Restore { path } => {
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result = async {
                        let verified = opsdeck_node::backup::format::open_verified(&path)?;
                        backup::restore(&client, &path, verified, move |p| {
                            let _ = progress_tx.send(progress_event(p));
                        })
                        .await
                    }
                    .await;
                    let (ok, text) = match result {
                        Ok(r) => (
                            true,
                            format!(
                                "restored {} in {:.1}s: the cluster now holds {} keys",
                                path.display(),
                                r.took.as_secs_f64(),
                                r.keys
                            ),
                        ),
                        Err(e) => (false, format!("restore failed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::Compact => {
                tokio::spawn(async move {
                    let outcomes = crate::compact::compact_all(&client).await;
                    let (ok, text) = crate::compact::summary(&outcomes);
                    report(&tx, ok, text);
                });
            }
            Op::AddNode { given } => {
                tokio::spawn(async move {
                    let result = add_node(&client, given, dev_dir, &tx).await;
                    let (ok, text) = match result {
                        Ok(o) => {
                            let _ = tx.send(OpEvent::Watch {
                                grpc: o.grpc.clone(),
                            });
                            (
                                true,
                                format!(
                                    "node {} ({}) added{} after {} ms of catch-up; voters {:?}",
                                    o.id,
                                    o.grpc,
                                    if o.promoted {
                                        " as a voter"
                                    } else {
                                        " as a learner"
                                    },
                                    o.catch_up_ms,
                                    o.voters
                                ),
                            )
                        }
                        Err(e) => (false, format!("add node failed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::RemoveNode { id } => {
                tokio::spawn(async move {
                    let mut progress = step_reporter(&tx);
                    let result = membership::remove_node(&client, id, false, &mut progress).await;
                    let (ok, mut text) = match &result {
                        Ok(o) => (
                            true,
                            format!("node {id} removed; voters now {:?}", o.voters),
                        ),
                        Err(e) => (false, format!("remove node {id} failed: {e:#}")),
                    };
                    if let (true, Some(dir)) = (ok, dev_dir) {
                        match crate::dev::stop_member(&dir, id).await {
                            Ok(Some((pid, _))) => {
                                text.push_str(&format!("; its process {pid} was stopped"))
                            }
                            Ok(None) => {}
                            Err(e) => text.push_str(&format!("; stopping its process failed: {e}")),
                        }
                    }
                    report(&tx, ok, text);
                });
            }
            Op::TransferLeader { to } => {
                tokio::spawn(async move {
                    let mut progress = step_reporter(&tx);
                    let (ok, text) =
                        match membership::transfer_leader(&client, to, &mut progress).await {
                            Ok(t) => (
                                true,
                                format!(
                                    "node {} leads (term {}) after {} ms; writes paused {} ms",
                                    t.to, t.term, t.took_ms, t.writes_paused_ms
                                ),
                            ),
                            Err(e) => (false, format!("transfer to node {to} failed: {e:#}")),
                        };
                    report(&tx, ok, text);
                });
            }
            Op::RotateKey { id, grace } => {
                tokio::spawn(async move {
                    let event = match crate::admin::rotate_key(&client, id.clone(), grace).await {
                        Ok(reply) => {
                            let new_id =
                                reply.key.as_ref().map(|k| k.id.clone()).unwrap_or_default();
                            OpEvent::Done {
                                ok: true,
                                text: format!(
                                    "key {id} rotated: its successor is {new_id}; {id} stays valid for {}",
                                    humantime::format_duration(grace)
                                ),
                                secret: Some(NewSecret {
                                    id: new_id,
                                    secret: reply.secret,
                                }),
                            }
                        }
                        Err(e) => OpEvent::Done {
                            ok: false,
                            text: format!("rotating key {id} failed: {e:#}"),
                            secret: None,
                        },
                    };
                    let _ = tx.send(event);
                });
            }
        }
    }
}

impl App {
    /// Asks on the command line; the answer goes to `then`.
    pub fn ask(&mut self, question: String, text: String, expect: Option<String>, then: Pending) {
        self.input = Some(Input {
            kind: InputKind::Ask(Ask {
                question,
                expect,
                then,
            }),
            text,
        });
    }

    /// The console's operations handle, or a message saying there is none.
    fn ops(&mut self) -> Option<&Ops> {
        if self.ops.is_none() {
            self.message("no cluster connection to act on", true);
        }
        self.ops.as_ref()
    }

    pub fn start_backup(&mut self) {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let name = format!("opsdeck-backup-{}.odb", now.to_string().replace(':', ""));
        self.ask("backup to file: ".into(), name, None, Pending::BackupTo);
    }

    pub fn start_restore(&mut self) {
        self.ask(
            "restore from backup file: ".into(),
            String::new(),
            None,
            Pending::RestoreFrom,
        );
    }

    pub fn start_compact(&mut self) {
        let n = self.model.nodes.len();
        self.ask(
            format!("compact all {n} nodes (snapshot + purge the log)? enter runs, esc cancels "),
            String::new(),
            None,
            Pending::ConfirmCompact,
        );
    }

    pub fn start_rotate(&mut self) {
        let Some(key) = self.model.keys.keys.get(self.keys_top) else {
            self.message("no key selected: the key list is empty", true);
            return;
        };
        let id = key.id.clone();
        self.ask(
            format!("rotate key {id}: the old key stays valid for "),
            "24h".into(),
            None,
            Pending::RotateGrace { id },
        );
    }

    /// The node selected in the Overview, with its id once known.
    fn selected_node(&mut self) -> Option<(u64, String)> {
        let view = self.model.nodes.get(self.overview_sel);
        match view.and_then(|v| v.status.as_ref().map(|s| (s.id, v.endpoint.clone()))) {
            Some(found) => Some(found),
            None => {
                self.message(
                    "select a node whose id is known (↑/↓ in the Overview)",
                    true,
                );
                None
            }
        }
    }

    pub fn start_add_node(&mut self) {
        let dev = self.ops.as_ref().is_some_and(|o| o.dev_dir.is_some());
        let question = if dev {
            "add node: enter starts a new local node, or type ID GRPC HTTP of a running one: "
        } else {
            "add node: type ID GRPC_ADDR HTTP_ADDR of a running node: "
        };
        self.ask(question.into(), String::new(), None, Pending::AddNode);
    }

    pub fn start_remove_node(&mut self) {
        let Some((id, endpoint)) = self.selected_node() else {
            return;
        };
        self.ask(
            format!("Remove node {id} ({endpoint})? type {id} to confirm: "),
            String::new(),
            Some(id.to_string()),
            Pending::ConfirmRemove { id },
        );
    }

    pub fn start_transfer(&mut self) {
        let Some((to, endpoint)) = self.selected_node() else {
            return;
        };
        self.ask(
            format!("Move leadership to node {to} ({endpoint})? enter runs, esc cancels "),
            String::new(),
            None,
            Pending::ConfirmTransfer { to },
        );
    }

    /// Starts watching a node the console did not know (one it just added).
    fn watch_node(&mut self, grpc: String) {
        if self.model.nodes.iter().any(|n| n.endpoint == grpc) {
            return;
        }
        let Some(ops) = &self.ops else { return };
        match ops.client.connect_to(&grpc) {
            Ok(rpc) => {
                let index = self.model.add_node(&grpc);
                super::watch::spawn(index, rpc, ops.refresh, ops.updates.clone());
            }
            Err(e) => self.message(&format!("cannot watch {grpc}: {e}"), true),
        }
    }

    /// The answer to a question: checked here, then the operation starts in the background.
    pub fn answer(&mut self, ask: Ask, text: String) {
        if let Some(expected) = &ask.expect {
            if text.trim() != expected {
                self.message(
                    &format!(
                        "not confirmed (typed {:?}, expected {expected:?}): nothing was changed",
                        text.trim()
                    ),
                    true,
                );
                return;
            }
        }
        let Some(ops) = self.ops() else { return };
        let dev = ops.dev_dir.is_some();
        let text = text.trim().to_string();
        let (title, op) = match ask.then {
            Pending::BackupTo => {
                if text.is_empty() {
                    self.message("no file given: nothing was done", true);
                    return;
                }
                let path = PathBuf::from(&text);
                (format!("backup to {text}"), Op::Backup { path })
            }
            Pending::RestoreFrom => {
                let path = PathBuf::from(&text);
                (format!("checking {text}"), Op::CheckRestore { path })
            }
            Pending::ConfirmRestore { path } => (
                format!("restore from {}", path.display()),
                Op::Restore { path },
            ),
            Pending::ConfirmCompact => ("compact all nodes".into(), Op::Compact),
            Pending::AddNode => match parse_new_node(&text, dev) {
                Ok(given) => ("add node".into(), Op::AddNode { given }),
                Err(e) => {
                    self.message(&e, true);
                    return;
                }
            },
            Pending::ConfirmRemove { id } => (format!("remove node {id}"), Op::RemoveNode { id }),
            Pending::ConfirmTransfer { to } => (
                format!("transfer leadership to node {to}"),
                Op::TransferLeader { to },
            ),
            Pending::RotateGrace { id } => {
                let grace = match humantime::parse_duration(&text) {
                    Ok(g) => g,
                    Err(e) => {
                        self.message(
                            &format!("bad grace period {text:?}: {e} (e.g. 24h, 30m)"),
                            true,
                        );
                        return;
                    }
                };
                (format!("rotate key {id}"), Op::RotateKey { id, grace })
            }
        };
        self.running(title);
        if let Some(ops) = &self.ops {
            ops.start(op);
        }
    }

    fn running(&mut self, title: String) {
        self.dialog = Some(Dialog::Running {
            title,
            started: Instant::now(),
            ratio: None,
            detail: String::new(),
        });
    }

    /// A report from the running action.
    pub fn on_op_event(&mut self, event: OpEvent) {
        match event {
            OpEvent::Progress {
                ratio: r,
                detail: d,
            } => {
                if let Some(Dialog::Running { ratio, detail, .. }) = &mut self.dialog {
                    *ratio = r;
                    *detail = d;
                }
            }
            OpEvent::Watch { grpc } => self.watch_node(grpc),
            OpEvent::Verified { path, keys, index } => {
                self.dialog = None;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Short enough for 80 columns: the typed answer must stay in view.
                self.ask(
                    format!(
                        "Replace ALL data with {name} ({keys} keys, index {index})? type {keys} to confirm: "
                    ),
                    String::new(),
                    Some(keys.to_string()),
                    Pending::ConfirmRestore { path },
                );
            }
            OpEvent::Done { ok, text, secret } => {
                let title = match &self.dialog {
                    Some(Dialog::Running { title, .. }) => title.clone(),
                    _ => "action".into(),
                };
                self.model.push_timeline(TimelineEntry {
                    unix_ms: super::format::unix_ms(),
                    kind: if ok { "action_ok" } else { "action_failed" }.into(),
                    detail: text.clone(),
                    term: 0,
                    seen_by: vec![],
                    console: true,
                });
                self.message(&text, !ok);
                self.dialog = Some(Dialog::Finished {
                    title,
                    ok,
                    text,
                    secret,
                });
            }
        }
    }

    /// Enter in a finished dialog: saves a shown secret to a file (mode 0600).
    pub fn dialog_submit(&mut self) {
        let Some(Dialog::Finished {
            secret: Some(s), ..
        }) = &self.dialog
        else {
            self.dialog = None;
            return;
        };
        let path = PathBuf::from(format!("opsdeck-key-{}.secret", s.id));
        let result =
            opsdeck_node::security::cluster_secret::write_private(&path, s.secret.as_bytes());
        self.dialog = None;
        match result {
            Ok(()) => self.message(
                &format!("the new secret is in {} (mode 0600)", path.display()),
                false,
            ),
            Err(e) => self.message(
                &format!(
                    "cannot write {}: {e}; the secret is not shown again",
                    path.display()
                ),
                true,
            ),
        }
    }
}

/// Bytes done of a total, with the rate and the time left.
fn progress_event(p: Progress) -> OpEvent {
    let rate = p.rate();
    let eta = if rate > 0.0 && p.total > p.done {
        format!(
            " · about {} left",
            fmt::duration_secs(((p.total - p.done) as f64 / rate) as u64)
        )
    } else {
        String::new()
    };
    OpEvent::Progress {
        ratio: Some(p.fraction()),
        detail: format!(
            "{} of {} · {}/s{eta}",
            fmt::bytes(p.done),
            fmt::bytes(p.total),
            fmt::bytes(rate as u64)
        ),
    }
}

/// Ends an action without a secret to show.
fn report(tx: &mpsc::UnboundedSender<OpEvent>, ok: bool, text: String) {
    let _ = tx.send(OpEvent::Done {
        ok,
        text,
        secret: None,
    });
}

/// A membership progress callback that forwards each step to the dialog.
fn step_reporter(
    tx: &mpsc::UnboundedSender<OpEvent>,
) -> impl FnMut(&membership::Progress) + Send + 'static {
    let tx = tx.clone();
    move |p| {
        let _ = tx.send(step_event(p));
    }
}

/// A membership step: catch-up has a measurable share, the other steps are a line.
fn step_event(p: &membership::Progress) -> OpEvent {
    let ratio = match p {
        membership::Progress::CatchingUp(c) if c.leader_last > 0 => {
            Some(c.matched.unwrap_or(0) as f64 / c.leader_last as f64)
        }
        _ => None,
    };
    OpEvent::Progress {
        ratio,
        detail: p.to_string(),
    }
}

/// The add-node answer: empty (start a local node, dev clusters only) or `ID GRPC HTTP`.
fn parse_new_node(text: &str, dev: bool) -> Result<Option<NewNode>, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [] if dev => Ok(None),
        [] => Err("type ID GRPC_ADDR HTTP_ADDR of the node to add (this is not a dev cluster, the console cannot start one)".into()),
        [id, grpc, http] => {
            let id = id
                .parse::<u64>()
                .ok()
                .filter(|i| *i > 0)
                .ok_or_else(|| format!("bad node id {id:?}: a positive integer"))?;
            Ok(Some(NewNode {
                id,
                grpc: grpc.to_string(),
                http: http.to_string(),
            }))
        }
        _ => Err(format!(
            "cannot read {text:?}: type ID GRPC_ADDR HTTP_ADDR, e.g. 4 127.0.0.1:7104 127.0.0.1:7204"
        )),
    }
}

/// Adds `given`, or a node started in the dev cluster at `dev_dir`, reporting each step.
async fn add_node(
    client: &ClusterClient,
    given: Option<NewNode>,
    dev_dir: Option<PathBuf>,
    tx: &mpsc::UnboundedSender<OpEvent>,
) -> color_eyre::Result<membership::AddOutcome> {
    let mut progress = step_reporter(tx);
    let node = match (given, dev_dir) {
        (Some(n), _) => n,
        (None, Some(dir)) => {
            crate::members::spawn_into(client, &dir, &mut progress)
                .await?
                .0
        }
        (None, None) => return Err(color_eyre::eyre::eyre!("no node given")),
    };
    membership::add_node(
        client,
        &node,
        true,
        membership::DEFAULT_CATCH_UP_TIMEOUT,
        &mut progress,
    )
    .await
}
