//! The background tasks of the console's operations: once its question is answered (see
//! `app/ops.rs`), an operation runs in a spawned task — the same code as the CLI verb
//! (`crate::ops`) — that reports progress and its outcome
//! as `OpEvent`s on a channel the loop reads. Input and drawing never wait for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::model::Update;
use crate::client::ClusterClient;
use crate::format as fmt;
use crate::ops::backup::{self, Progress};
use crate::ops::incident;
use crate::ops::maintenance;
use crate::ops::membership::{self, NewNode};
use crate::ops::restart::Restarter;

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
    /// A restore's file checked out: show whose data it is and ask for the typed
    /// confirmation.
    Verified {
        path: PathBuf,
        keys: u64,
        index: u64,
        plan: backup::Plan,
    },
    Done {
        ok: bool,
        text: String,
        secret: Option<NewSecret>,
    },
    /// An operator command ended (or could not be started: `ran` is the reason).
    Ran {
        /// The dialog's title: "cmd logs on node 2".
        title: String,
        /// "logs on node 2: exit 0 in 0.4s", "... timed out after 5s; ...", or why not.
        summary: String,
        ok: bool,
        ran: Result<RunOutput, String>,
    },
    /// An alert note (ack, silence) was recorded in the audit trail, or could not be: a
    /// message only, no dialog (the local ack or silence holds either way).
    Noted { ok: bool, text: String },
}

/// A key's secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub id: String,
    pub secret: String,
}

/// What an operator command printed, for the output dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The arguments it ran with, as a shell would read them back.
    pub argv: String,
    /// Its stdout and stderr, capped as `ops::commands::run` caps them.
    pub output: String,
}

/// An operation whose question was answered, ready to run (see `App::answer`).
#[derive(Debug, Clone)]
pub enum Op {
    Backup {
        path: PathBuf,
    },
    /// The diagnostics bundle, with this console's alert states (`alerts`, as JSON).
    Bundle {
        opts: crate::ops::bundle::Options,
        alerts: serde_json::Value,
    },
    /// A restore's first step: check the file; `OpEvent::Verified` then asks for the typed
    /// confirmation.
    CheckRestore {
        path: PathBuf,
    },
    Restore {
        path: PathBuf,
        /// The operator confirmed restoring another cluster's backup.
        allow_foreign: bool,
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
    /// Maintenance mode on (until resumed when `for_` is None) or off.
    PauseWrites {
        reason: String,
        for_: Option<Duration>,
    },
    ResumeWrites,
    /// Restart a node (dev cluster, or the context's `restart` command) and wait for it to
    /// catch up.
    RestartNode {
        id: u64,
        how: Restarter,
    },
    /// Rebuild a dev cluster's node: its data deleted, caught up by snapshot, promoted.
    RebuildNode {
        id: u64,
    },
    /// Restart every node, one at a time, the leader last.
    RollingRestart {
        how: Restarter,
    },
    /// `compact --defrag` (dev cluster): the rolling restart with each node's database
    /// rewritten offline.
    RollingDefrag,
    /// An operator command (`config::commands`) on node `node`, as `opsdeck cmd run` runs
    /// it: placeholders from the membership, its timeout, its output capped.
    RunCommand {
        name: String,
        command: Box<crate::config::commands::Command>,
        node: u64,
        /// For the placeholders: the dev cluster's data dirs, the context's name.
        target: Box<crate::client::Target>,
        data_dir: Option<String>,
    },
    /// `:report FILE`: the incident report of the last `since`, with this console's own
    /// timeline entries (alerts firing and resolving, nodes down and up) and its active
    /// alerts.
    Report {
        path: PathBuf,
        since: Duration,
        label: String,
        extra: Vec<incident::Entry>,
        active: Vec<String>,
    },
}

/// Why a rebuild fails outside a dev cluster.
const NOT_DEV: &str = "opsdeck rebuilds nodes only in a dev cluster; see `opsdeck rebuild-node --help` for the steps by hand";

/// How long the console's restart waits for each node to rejoin and catch up.
const RESTART_REJOIN: Duration = Duration::from_secs(60);

impl Ops {
    /// Records an alert note in the cluster's audit trail in a spawned task; the outcome
    /// comes back as [`OpEvent::Noted`]. Returns at once.
    pub fn note(
        &self,
        note: incident::Note,
        alert: String,
        until_ms: Option<i64>,
        text: &'static str,
    ) {
        let (client, tx) = (self.client.clone(), self.tx.clone());
        tokio::spawn(async move {
            let event = match incident::annotate(&client, note, &alert, until_ms, text).await {
                Ok(_) => OpEvent::Noted {
                    ok: true,
                    text: format!("{} of {alert} recorded in the audit trail", note.kind()),
                },
                Err(e) => OpEvent::Noted {
                    ok: false,
                    text: format!(
                        "{alert}: {} holds in this console only; not recorded in the audit trail: {e:#}",
                        note.kind()
                    ),
                },
            };
            let _ = tx.send(event);
        });
    }

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
                    // Checked whole and recorded, so the cluster does not count it as a
                    // backup nobody verified.
                    let (ok, text) = match result {
                        Ok(m) => match backup::verify_and_record(&client, &path).await {
                            Ok((_, recorded)) => (
                                true,
                                format!(
                                    "backup written to {} and verified ({}): {}",
                                    path.display(),
                                    backup::describe_recorded(&recorded),
                                    backup::describe_manifest(&m)
                                ),
                            ),
                            Err(e) => (
                                false,
                                format!(
                                    "backup written to {}, but it failed verification: {e:#}; take it again",
                                    path.display()
                                ),
                            ),
                        },
                        Err(e) => (false, format!("backup failed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::Bundle { opts, alerts } => {
                tokio::spawn(async move {
                    let steps = tx.clone();
                    let result = crate::ops::bundle::bundle(
                        &client,
                        &opts,
                        move |_| alerts,
                        move |line| {
                            let _ = steps.send(OpEvent::Progress {
                                ratio: None,
                                detail: line.to_string(),
                            });
                        },
                    )
                    .await;
                    let (ok, text) = match result {
                        Ok(outcome) => (true, outcome.describe()),
                        Err(e) => (false, format!("diagnostics bundle failed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::CheckRestore { path } => {
                tokio::spawn(async move {
                    let file = path.clone();
                    let checked = tokio::task::spawn_blocking(move || {
                        opsdeck_node::backup::format::verify(&file)
                    })
                    .await;
                    let refused = |text: String| OpEvent::Done {
                        ok: false,
                        text: format!("restore refused, nothing was changed: {text}"),
                        secret: None,
                    };
                    let event = match checked {
                        Ok(Ok(m)) => match backup::plan(&client, &m).await {
                            Ok(plan) => OpEvent::Verified {
                                keys: m.key_count,
                                index: m.applied_index,
                                path,
                                plan,
                            },
                            Err(e) => refused(format!("cannot ask the cluster for its id: {e:#}")),
                        },
                        Ok(Err(e)) => refused(e.to_string()),
                        Err(e) => refused(format!("checking the file failed: {e}")),
                    };
                    let _ = tx.send(event);
                });
            }
            Op::Restore {
                path,
                allow_foreign,
            } => {
                tokio::spawn(async move {
                    let progress_tx = tx.clone();
                    let result = async {
                        let verified = opsdeck_node::backup::format::open_verified(&path)?;
                        backup::restore(&client, &path, verified, allow_foreign, move |p| {
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
                    let outcomes = crate::ops::compact::compact_all(&client).await;
                    let (ok, text) = crate::ops::compact::summary(&outcomes);
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
                        match crate::ops::dev_cluster::stop_member(&dir, id).await {
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
            op @ (Op::RestartNode { .. }
            | Op::RebuildNode { .. }
            | Op::RollingRestart { .. }
            | Op::RollingDefrag) => {
                tokio::spawn(async move {
                    let mut progress = step_reporter(&tx);
                    let (ok, text) = process_op(&client, dev_dir, op, &mut progress).await;
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
                    let event = match crate::ops::keys::rotate_key(&client, id.clone(), grace).await
                    {
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
            Op::PauseWrites { reason, for_ } => {
                tokio::spawn(async move {
                    let (ok, text) = match maintenance::pause_writes(&client, &reason, for_).await {
                        Ok(p) => (true, format!("{}; reads go on", maintenance::describe(&p))),
                        Err(e) => (false, format!("writes not paused: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::Report {
                path,
                since,
                label,
                extra,
                active,
            } => {
                tokio::spawn(async move {
                    let _ = tx.send(OpEvent::Progress {
                        ratio: None,
                        detail: "reading every node's events and the audit trail".into(),
                    });
                    let made = async {
                        let data =
                            incident::gather(&client, &label, since, extra, |_| active).await?;
                        let text = incident::render(&data);
                        let file = path.clone();
                        let written =
                            tokio::task::spawn_blocking(move || incident::write_file(&file, &text))
                                .await
                                .map_err(|e| {
                                    color_eyre::eyre::eyre!("writing the report: {e}")
                                })??;
                        Ok::<_, color_eyre::eyre::Report>((written, data))
                    };
                    let (ok, text) = match made.await {
                        Ok((written, data)) => (
                            true,
                            format!(
                                "incident report written to {}: {} entries since {}{}",
                                written.display(),
                                data.entries.len(),
                                fmt::utc_seconds(data.from_ms),
                                if data.not_answering.is_empty() {
                                    String::new()
                                } else {
                                    format!("; {} not answering", data.not_answering.len())
                                }
                            ),
                        ),
                        Err(e) => (false, format!("no incident report: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
            Op::RunCommand {
                name,
                command,
                node,
                target,
                data_dir,
            } => {
                tokio::spawn(async move {
                    let event = run_command(&client, &name, &command, node, &target, data_dir, &tx)
                        .await
                        .unwrap_or_else(|e| OpEvent::Ran {
                            title: command_title(&name, node),
                            summary: format!("{name} on node {node} did not run: {e:#}"),
                            ok: false,
                            ran: Err(format!("{e:#}")),
                        });
                    let _ = tx.send(event);
                });
            }
            Op::ResumeWrites => {
                tokio::spawn(async move {
                    let (ok, text) = match maintenance::resume_writes(&client).await {
                        Ok(p) => (
                            true,
                            format!("writes resumed (were paused by {}: {})", p.by, p.reason),
                        ),
                        Err(e) => (false, format!("writes not resumed: {e:#}")),
                    };
                    report(&tx, ok, text);
                });
            }
        }
    }
}

/// The dialog title of operator command `name` on node `node`.
pub fn command_title(name: &str, node: u64) -> String {
    format!("cmd {name} on node {node}")
}

/// An operator command on node `node`: the CLI's steps (`ops::commands`), the argv shown in
/// the dialog while it runs.
async fn run_command(
    client: &ClusterClient,
    name: &str,
    command: &crate::config::commands::Command,
    node: u64,
    target: &crate::client::Target,
    data_dir: Option<String>,
    tx: &mpsc::UnboundedSender<OpEvent>,
) -> color_eyre::Result<OpEvent> {
    use crate::ops::commands;
    let vars = commands::vars_for(client, target, data_dir.as_deref(), node).await?;
    let argv = commands::argv(command, &vars)?;
    let shown = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    let _ = tx.send(OpEvent::Progress {
        ratio: None,
        detail: format!(
            "$ {shown}\n(killed after {} if still running)",
            humantime::format_duration(command.timeout)
        ),
    });
    let outcome = commands::run(argv, command.timeout).await?;
    Ok(OpEvent::Ran {
        title: command_title(name, node),
        summary: outcome.summary(name, node, command.timeout),
        ok: outcome.end.ok(),
        ran: Ok(RunOutput {
            argv: shown,
            output: outcome.output_text(),
        }),
    })
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

/// `compact --defrag`: compact every node, then the rolling defrag (refused first, before
/// the compact, when a member is down or short of room).
async fn rolling_defrag(
    client: &ClusterClient,
    dir: &std::path::Path,
    progress: membership::OnProgress<'_>,
) -> color_eyre::Result<String> {
    use crate::ops::{compact, restart};
    restart::precheck_defrag(client, dir).await?;
    let (ok, compacted) = compact::summary(&compact::compact_all(client).await);
    if !ok {
        return Err(color_eyre::eyre::eyre!(
            "{compacted}; no node was defragmented"
        ));
    }
    let done = restart::rolling_defrag(client, dir, RESTART_REJOIN, progress).await?;
    // The dialog's outcome is one line: the summary, not the table.
    Ok(done
        .to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string())
}

/// Restart, rebuild, rolling restart or rolling defrag (`op`): the operations that restart node processes
/// (a rebuild or defrag needs the dev cluster's `dev_dir`); whether it worked and the dialog's
/// outcome line.
async fn process_op(
    client: &ClusterClient,
    dev_dir: Option<PathBuf>,
    op: Op,
    progress: membership::OnProgress<'_>,
) -> (bool, String) {
    use crate::ops::{rebuild, restart};
    let (what, result) = match op {
        Op::RebuildNode { id } => (
            format!("rebuild of node {id}"),
            match dev_dir {
                Some(dir) => rebuild::rebuild_node(
                    client,
                    &dir,
                    id,
                    membership::Deadlines::default(),
                    progress,
                )
                .await
                .map(|o| o.to_string()),
                None => Err(color_eyre::eyre::eyre!(NOT_DEV)),
            },
        ),
        Op::RestartNode { id, how } => (
            format!("restart of node {id}"),
            restart::restart_node(client, &how, id, RESTART_REJOIN, progress)
                .await
                .map(|o| o.to_string()),
        ),
        Op::RollingDefrag => (
            "rolling defrag".to_string(),
            match dev_dir {
                Some(dir) => rolling_defrag(client, &dir, progress).await,
                None => Err(color_eyre::eyre::eyre!(NOT_DEV)),
            },
        ),
        Op::RollingRestart { how } => (
            "rolling restart".to_string(),
            restart::rolling_restart(client, &how, RESTART_REJOIN, progress)
                .await
                .map(|o| o.to_string()),
        ),
        other => return (false, format!("{other:?} restarts no node process")),
    };
    match result {
        Ok(text) => (true, text),
        Err(e) => (false, format!("{what} failed: {e:#}")),
    }
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
            crate::ops::dev_cluster::spawn_into(client, &dir, &mut progress)
                .await?
                .0
        }
        (None, None) => return Err(color_eyre::eyre::eyre!("no node given")),
    };
    membership::add_node(
        client,
        &node,
        true,
        membership::Deadlines::default(),
        &mut progress,
    )
    .await
}
