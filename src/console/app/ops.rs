//! The app's side of an operation: the question on the command line (a file name, a grace
//! period, a typed confirmation naming the target), the answer, the dialog that follows the
//! background task's reports (`console/ops.rs`), and its outcome on the message line and the
//! timeline.

use std::path::PathBuf;
use std::time::Instant;

use super::App;
use crate::console::model::TimelineEntry;
use crate::console::ops::{Op, OpEvent, Ops};
use crate::console::state::{Ask, Dialog, Input, InputKind, Pending};
use crate::ops::membership::NewNode;

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
                crate::console::watch::spawn(index, rpc, ops.refresh, ops.updates.clone());
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
                    unix_ms: crate::console::format::unix_ms(),
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
