//! The operations actions in the console: a question on the command line (a file name, a
//! grace period, a typed confirmation naming the target), then the action runs in the
//! background — the same code as the CLI verb (`crate::ops`, `crate::compact`,
//! `crate::admin`) — reporting progress to a dialog, and ends with its outcome in the
//! dialog, on the message line and on the timeline. Input and drawing never wait for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::app::{App, Input, InputKind};
use super::model::TimelineEntry;
use crate::client::ClusterClient;
use crate::ops::backup::{self, Progress};

/// What the console needs to act on the cluster.
pub struct Ops {
    pub client: Arc<ClusterClient>,
    pub tx: mpsc::UnboundedSender<OpEvent>,
}

/// What a question on the command line leads to once answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    BackupTo,
    RestoreFrom,
    ConfirmRestore { path: PathBuf },
    ConfirmCompact,
    RotateGrace { id: String },
}

/// A question on the command line; with `expect`, the answer must be exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub question: String,
    pub expect: Option<String>,
    pub then: Pending,
}

/// Reports from a running action to the console loop.
#[derive(Debug)]
pub enum OpEvent {
    Progress {
        done: u64,
        total: u64,
        rate: f64,
    },
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

#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Running {
        title: String,
        started: Instant,
        /// Bytes done, total, bytes/s.
        progress: Option<(u64, u64, f64)>,
    },
    Finished {
        title: String,
        ok: bool,
        text: String,
        secret: Option<NewSecret>,
    },
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

    /// The answer to a question.
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
        let (client, tx) = (ops.client.clone(), ops.tx.clone());
        let text = text.trim().to_string();
        match ask.then {
            Pending::BackupTo => {
                if text.is_empty() {
                    self.message("no file given: nothing was done", true);
                    return;
                }
                let path = PathBuf::from(&text);
                self.running(format!("backup to {text}"));
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
                    let _ = tx.send(OpEvent::Done {
                        ok,
                        text,
                        secret: None,
                    });
                });
            }
            Pending::RestoreFrom => {
                let path = PathBuf::from(&text);
                self.running(format!("checking {text}"));
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
            Pending::ConfirmRestore { path } => {
                self.running(format!("restore from {}", path.display()));
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
                    let _ = tx.send(OpEvent::Done {
                        ok,
                        text,
                        secret: None,
                    });
                });
            }
            Pending::ConfirmCompact => {
                self.running("compact all nodes".into());
                tokio::spawn(async move {
                    let outcomes = crate::compact::compact_all(&client).await;
                    let (ok, text) = crate::compact::summary(&outcomes);
                    let _ = tx.send(OpEvent::Done {
                        ok,
                        text,
                        secret: None,
                    });
                });
            }
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
                self.running(format!("rotate key {id}"));
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

    fn running(&mut self, title: String) {
        self.dialog = Some(Dialog::Running {
            title,
            started: Instant::now(),
            progress: None,
        });
    }

    /// A report from the running action.
    pub fn on_op_event(&mut self, event: OpEvent) {
        match event {
            OpEvent::Progress { done, total, rate } => {
                if let Some(Dialog::Running { progress, .. }) = &mut self.dialog {
                    *progress = Some((done, total, rate));
                }
            }
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

fn progress_event(p: Progress) -> OpEvent {
    OpEvent::Progress {
        done: p.done,
        total: p.total,
        rate: p.rate(),
    }
}
