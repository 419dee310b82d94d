//! Operator commands (`config::commands`) in the console: a command's key on the Overview
//! or `:cmd NAME` runs it on the Overview's selected node, as `opsdeck cmd run` does
//! (`console/ops.rs` `Op::RunCommand` → `ops::commands`); a mutating one is refused
//! read-only and asks y/N first; the outcome and output open a scrollable dialog.

use super::App;
use crate::config::commands::Command;
use crate::console::action::Action;
use crate::console::effect::Effect;
use crate::console::ops::{command_title, Op, RunOutput};
use crate::console::state::{Dialog, Pending};

/// Operator commands by name.
pub type Named = Vec<(String, Command)>;

impl App {
    /// The operator commands of the shown context (the top level's and its own) and the
    /// `data_dir` template their `{data}` is filled from.
    pub fn commands(&self) -> (Named, Option<String>) {
        self.config
            .commands_of_context(self.target.context.as_deref())
    }

    /// `:cmd NAME`, or a command's key on the Overview: runs it on the selected node, asks
    /// first when it is mutating, or says why not.
    pub fn run_command(&mut self, name: &str) {
        let effect = self.command_effect(name);
        self.apply(effect);
    }

    fn command_effect(&mut self, name: &str) -> Effect {
        let context = self.model.context.clone();
        let (commands, _) = self.commands();
        if name.is_empty() {
            return self.list_commands(&commands);
        }
        let Some((_, command)) = commands.iter().find(|(n, _)| n == name) else {
            return Effect::error(if commands.is_empty() {
                format!(
                    "no operator command {name:?}: {context} defines none (add [commands.NAME] with run = \"...\" to config.toml)"
                )
            } else {
                format!(
                    "no operator command {name:?} in {context}; defined: {}",
                    names(&commands)
                )
            });
        };
        if command.mutating && self.read_only {
            return Effect::error(format!(
                "cmd {name} is not allowed: the console is read-only"
            ));
        }
        let selected = self.model.nodes.get(self.overview_sel);
        let Some((node, endpoint)) =
            selected.and_then(|v| v.status.as_ref().map(|s| (s.id, v.endpoint.clone())))
        else {
            return Effect::error(format!(
                "cmd {name}: select a node whose id is known (↑/↓ in the Overview)"
            ));
        };
        if !command.mutating {
            return self.command_start(name, node);
        }
        self.dialog = Some(Dialog::Confirm {
            title: format!("cmd {name}: mutating"),
            lines: vec![
                format!("runs     {}", command.display()),
                format!("on node  {node} ({endpoint})"),
                format!("of       {context}"),
                format!("timeout  {}", humantime::format_duration(command.timeout)),
                String::new(),
                command.description.clone().unwrap_or_else(|| {
                    "It is marked mutating: it may change the node or the cluster.".into()
                }),
            ],
            warn: false,
        });
        Effect::Ask {
            question: format!("Run {name} on node {node} of {context}? y/N "),
            text: String::new(),
            expect: None,
            then: Pending::ConfirmCommand {
                name: name.to_string(),
                node,
            },
        }
    }

    /// `:cmd` alone: the commands on the message line.
    fn list_commands(&self, commands: &Named) -> Effect {
        if commands.is_empty() {
            return Effect::error(format!(
                "{} defines no operator commands (add [commands.NAME] with run = \"...\" to config.toml)",
                self.model.context
            ));
        }
        Effect::Message {
            text: format!(
                "operator commands: {} (:cmd NAME runs one on the selected node; ? lists them)",
                names(commands)
            ),
            error: false,
        }
    }

    /// The operation that runs command `name` on node `node` (its question answered).
    pub(super) fn command_start(&self, name: &str, node: u64) -> Effect {
        let (commands, data_dir) = self.commands();
        let Some((_, command)) = commands.into_iter().find(|(n, _)| n == name) else {
            return Effect::error(format!(
                "operator command {name:?} is gone from {}: nothing was run",
                self.model.context
            ));
        };
        Effect::StartOp {
            title: command_title(name, node),
            op: Op::RunCommand {
                name: name.to_string(),
                command: Box::new(command),
                node,
                target: Box::new(self.target.clone()),
                data_dir,
            },
        }
    }

    /// An operator command ended: on the timeline, the message line, and in its dialog.
    pub(super) fn command_ran(
        &mut self,
        title: String,
        summary: String,
        ok: bool,
        ran: Result<RunOutput, String>,
    ) {
        let line = format!("cmd {summary}");
        self.push_outcome(ok, &line);
        self.message(&line, !ok);
        self.dialog = Some(match ran {
            Ok(RunOutput { argv, output }) => Dialog::Output {
                title,
                ok,
                summary,
                argv,
                output,
                scroll: 0,
            },
            Err(_) => Dialog::Finished {
                title,
                ok: false,
                text: line,
                secret: None,
            },
        });
    }

    /// Scrolls an operator command's output dialog; false when none is open.
    pub(super) fn scroll_output(&mut self, action: Action) -> bool {
        let Some(Dialog::Output { scroll, .. }) = &mut self.dialog else {
            return false;
        };
        let (max, page) = self.output_rows.get();
        *scroll = match action {
            Action::Up => scroll.saturating_sub(1),
            Action::Down => *scroll + 1,
            Action::PageUp => scroll.saturating_sub(page.max(1)),
            Action::PageDown => *scroll + page.max(1),
            Action::Top => 0,
            Action::Bottom => max,
            _ => *scroll,
        }
        .min(max);
        true
    }
}

fn names(commands: &Named) -> String {
    commands
        .iter()
        .map(|(n, c)| match c.key {
            Some(k) => format!("{n} ({k})"),
            None => n.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
