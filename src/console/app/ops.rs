//! The app's side of an operation: the question on the command line (a file name, a grace
//! period, a typed confirmation naming the target), the answer, the dialog that follows the
//! background task's reports (`console/ops.rs`), and its outcome on the message line and the
//! timeline.

use std::path::PathBuf;
use std::time::Instant;

use super::App;
use crate::console::effect::Effect;
use crate::console::model::TimelineEntry;
use crate::console::ops::{Op, OpEvent};
use crate::console::state::{Ask, Dialog, Pending};
use crate::ops::membership::NewNode;

/// Why an answered question starts nothing in a console without a cluster (tests that draw).
const NO_CONNECTION: &str = "no cluster connection to act on";

/// `backup` asks for the file to write, a name with the time in it filled in.
pub(super) fn backup_question(context: &str) -> Effect {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let name = format!("opsdeck-backup-{}.odb", now.to_string().replace(':', ""));
    Effect::Ask {
        question: format!("backup {context} to file: "),
        text: name,
        expect: None,
        then: Pending::BackupTo,
    }
}

/// How much history the console's bundle takes (`opsdeck debug bundle --since` for more).
pub const BUNDLE_SINCE: std::time::Duration = std::time::Duration::from_secs(3600);

/// `debug_bundle` asks for the archive to write, a name with the time in it filled in.
pub(super) fn bundle_question(context: &str) -> Effect {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let name = format!("opsdeck-bundle-{}.tar.gz", now.to_string().replace(':', ""));
    Effect::Ask {
        question: format!(
            "diagnostics bundle of {context} (last {}) to file: ",
            humantime::format_duration(BUNDLE_SINCE)
        ),
        text: name,
        expect: None,
        then: Pending::BundleTo,
    }
}

pub(super) fn restore_question(context: &str) -> Effect {
    Effect::Ask {
        question: format!("restore {context} from backup file: "),
        text: String::new(),
        expect: None,
        then: Pending::RestoreFrom,
    }
}

pub(super) fn compact_question(nodes: usize, context: &str) -> Effect {
    Effect::Ask {
        question: format!(
            "compact all {nodes} nodes of {context} (snapshot + purge the log)? enter runs, esc cancels "
        ),
        text: String::new(),
        expect: None,
        then: Pending::ConfirmCompact,
    }
}

/// Maintenance mode: while writes are accepted, asks the reason of a pause (every refused
/// write shows it); while they are paused, asks to resume them, naming who paused and why.
pub(super) fn writes_question(model: &crate::console::model::Model) -> Effect {
    let context = &model.context;
    match model.writes_paused() {
        Some(p) => Effect::Ask {
            question: format!(
                "resume writes on {context} (paused by {}: {})? enter runs, esc cancels ",
                p.by, p.reason
            ),
            text: String::new(),
            expect: None,
            then: Pending::ConfirmResume,
        },
        None => Effect::Ask {
            question: format!(
                "pause all writes on {context}: reason (every refused write shows it): "
            ),
            text: String::new(),
            expect: None,
            then: Pending::PauseReason,
        },
    }
}

impl App {
    /// How the shown cluster's nodes are restarted, or why they cannot be.
    pub fn restarter(&self) -> Result<crate::ops::restart::Restarter, String> {
        crate::ops::restart::Restarter::for_target(&self.target, &self.config)
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
                crate::console::watch::spawn(index, rpc, ops.refresh, ops.updates.clone());
            }
            Err(e) => self.message(&format!("cannot watch {grpc}: {e}"), true),
        }
    }

    /// The answer to a question: the operation it starts, or why nothing is done.
    pub fn answer(&self, ask: Ask, text: String) -> Effect {
        if let Some(expected) = &ask.expect {
            if text.trim() != expected {
                return Effect::error(format!(
                    "not confirmed (typed {:?}, expected {expected:?}): nothing was changed",
                    text.trim()
                ));
            }
        }
        // y/N: only y (or yes) runs an operator command.
        if let Pending::ConfirmCommand { name, .. } = &ask.then {
            let typed = text.trim();
            if !matches!(typed.to_ascii_lowercase().as_str(), "y" | "yes") {
                return Effect::error(format!(
                    "not confirmed (typed {typed:?}, y runs it): {name} was not run"
                ));
            }
        }
        let Some(ops) = &self.ops else {
            return Effect::error(NO_CONNECTION);
        };
        let dev = ops.dev_dir.is_some();
        let text = text.trim().to_string();
        let (title, op) = match ask.then {
            Pending::BackupTo => {
                if text.is_empty() {
                    return Effect::error("no file given: nothing was done");
                }
                let path = PathBuf::from(&text);
                (format!("backup to {text}"), Op::Backup { path })
            }
            Pending::BundleTo => {
                if text.is_empty() {
                    return Effect::error("no file given: nothing was done");
                }
                let opts = crate::ops::bundle::Options {
                    out: PathBuf::from(&text),
                    since: BUNDLE_SINCE,
                    label: self.target.label(),
                    tls_ca: self.target.tls_ca.clone(),
                };
                let alerts = self.alert_states_json();
                (
                    format!("diagnostics bundle to {text}"),
                    Op::Bundle { opts, alerts },
                )
            }
            Pending::RestoreFrom => {
                let path = PathBuf::from(&text);
                (format!("checking {text}"), Op::CheckRestore { path })
            }
            Pending::ConfirmRestore {
                path,
                allow_foreign,
            } => (
                format!("restore from {}", path.display()),
                Op::Restore {
                    path,
                    allow_foreign,
                },
            ),
            Pending::ConfirmCompact => ("compact all nodes".into(), Op::Compact),
            Pending::AddNode => match parse_new_node(&text, dev) {
                Ok(given) => ("add node".into(), Op::AddNode { given }),
                Err(e) => return Effect::error(e),
            },
            Pending::ConfirmRemove { id } => (format!("remove node {id}"), Op::RemoveNode { id }),
            Pending::ConfirmTransfer { to } => (
                format!("transfer leadership to node {to}"),
                Op::TransferLeader { to },
            ),
            Pending::PauseReason => {
                if text.is_empty() {
                    return Effect::error("a pause of writes needs a reason: nothing was done");
                }
                return Effect::Ask {
                    question: format!(
                        "pause writes on {} for (enter: until resumed, e.g. 30m; esc cancels): ",
                        self.model.context
                    ),
                    text: String::new(),
                    expect: None,
                    then: Pending::PauseFor { reason: text },
                };
            }
            Pending::PauseFor { reason } => {
                let for_ = match text.as_str() {
                    "" => None,
                    t => match humantime::parse_duration(t) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            return Effect::error(format!(
                                "bad duration {t:?}: {e} (e.g. 30m, 2h; empty: until resumed): writes not paused"
                            ))
                        }
                    },
                };
                ("pause writes".into(), Op::PauseWrites { reason, for_ })
            }
            Pending::ConfirmResume => ("resume writes".into(), Op::ResumeWrites),
            Pending::ConfirmRestart { id } => match self.restarter() {
                Ok(how) => (format!("restart node {id}"), Op::RestartNode { id, how }),
                Err(why) => return Effect::error(why),
            },
            Pending::ConfirmRebuild { id } => {
                (format!("rebuild node {id}"), Op::RebuildNode { id })
            }
            Pending::ConfirmRollingRestart => match self.restarter() {
                Ok(how) => ("rolling restart".into(), Op::RollingRestart { how }),
                Err(why) => return Effect::error(why),
            },
            Pending::ConfirmRollingDefrag => ("rolling defrag".into(), Op::RollingDefrag),
            Pending::ConfirmCommand { name, node } => return self.command_start(&name, node),
            Pending::RotateGrace { id } => {
                let grace = match humantime::parse_duration(&text) {
                    Ok(g) => g,
                    Err(e) => {
                        return Effect::error(format!(
                            "bad grace period {text:?}: {e} (e.g. 24h, 30m)"
                        ))
                    }
                };
                (format!("rotate key {id}"), Op::RotateKey { id, grace })
            }
        };
        Effect::StartOp { title, op }
    }

    /// Starts `op` in the background and opens its dialog.
    pub(super) fn start_op(&mut self, title: String, op: Op) {
        let Some(ops) = &self.ops else {
            self.message(NO_CONNECTION, true);
            return;
        };
        ops.start(op);
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
            OpEvent::Noted { ok, text } => self.message(&text, !ok),
            OpEvent::Verified {
                path,
                keys,
                index,
                plan,
            } => self.confirm_restore(path, keys, index, &plan),
            OpEvent::Ran {
                title,
                summary,
                ok,
                ran,
            } => self.command_ran(title, summary, ok, ran),
            OpEvent::Done { ok, text, secret } => {
                let title = match &self.dialog {
                    Some(Dialog::Running { title, .. }) => title.clone(),
                    _ => "action".into(),
                };
                self.push_outcome(ok, &text);
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

    /// An operation's outcome on the timeline, as this console saw it.
    pub(super) fn push_outcome(&mut self, ok: bool, text: &str) {
        self.model.push_timeline(TimelineEntry {
            unix_ms: crate::format::unix_ms(),
            kind: if ok { "action_ok" } else { "action_failed" }.into(),
            detail: text.to_string(),
            term: 0,
            seen_by: vec![],
            console: true,
        });
    }

    /// Shows whose data a restore brings in and asks for the typed confirmation: the key
    /// count for the cluster's own backup, `foreign KEYS` for another cluster's (or one that
    /// names none), so the usual answer never restores a foreign backup by habit.
    pub fn confirm_restore(
        &mut self,
        path: PathBuf,
        keys: u64,
        index: u64,
        plan: &crate::ops::backup::Plan,
    ) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let foreign = plan.foreign();
        let this = if plan.this_cluster.is_empty() {
            "unknown (the cluster reports none)"
        } else {
            &plan.this_cluster
        };
        let mut lines = vec![
            format!("backup       {name}: {keys} keys, index {index}"),
            format!("taken on     cluster {}", plan.backup_cluster_text()),
            format!("restoring to cluster {this}"),
            String::new(),
        ];
        if foreign {
            lines.push("ANOTHER CLUSTER'S BACKUP: its data replaces ALL of this cluster's.".into());
        } else {
            lines.push("This cluster's own backup: it replaces ALL current data.".into());
        }
        lines.push(
            "API keys are never taken from a backup: this cluster's stay as they are.".into(),
        );
        self.dialog = Some(Dialog::Confirm {
            title: if foreign {
                format!("restore {name}: FOREIGN CLUSTER")
            } else {
                format!("restore {name}")
            },
            lines,
            warn: foreign,
        });
        // Short enough for 80 columns: the typed answer must stay in view.
        let (question, expect) = if foreign {
            (
                format!(
                    "Restore ANOTHER cluster into {}? type foreign {keys} to confirm: ",
                    self.model.context
                ),
                format!("foreign {keys}"),
            )
        } else {
            (
                format!(
                    "Replace ALL data of {} with {name}? type {keys} to confirm: ",
                    self.model.context
                ),
                keys.to_string(),
            )
        };
        self.apply(Effect::Ask {
            question,
            text: String::new(),
            expect: Some(expect),
            then: Pending::ConfirmRestore {
                path,
                allow_foreign: foreign,
            },
        });
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
