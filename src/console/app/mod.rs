//! The app: the cluster model, the view state, the keymap and the theme. Keys resolve here
//! to actions; the app runs its own (quit, help, panes, the command line, dialogs, the
//! operations of the whole cluster) and applies the effects the panes return.

mod alerts;
mod commands;
mod ops;

use std::cell::Cell;
use std::io::Write;

use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};

use super::action::{self, Action, PaneKind};
use super::effect::Effect;
use super::keymap::{Key, Keymap};
use super::model::Model;
use super::ops::Ops;
use super::state::logs::line_text;
use super::state::{AlertsView, Ask, Dialog, Input, InputKind, LogsView, TimelineView};
use super::theme::{ColorDepth, Theme};
use crate::alerts::notify::Notifier;
use crate::alerts::Rules;
use crate::client::Target;
use crate::config::Config;
use crate::format::clock;

/// What a terminal event comes to (see `App::on_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing changed on screen.
    Ignored,
    /// Handled here (text typed on the input line, a resize, a key bound to nothing): redraw.
    Redraw,
    /// The key resolved to this action: run it (`console::run_action`), then redraw.
    Run(Action),
}

pub struct WarRoom {
    pub cycle_secs: u64,
}

pub struct App {
    pub model: Model,
    pub keymap: Keymap,
    pub theme: Theme,
    pub depth: ColorDepth,
    pub pane: PaneKind,
    pub logs: LogsView,
    pub timeline: TimelineView,
    pub metrics_node: Option<u64>,
    pub alerts: AlertsView,
    /// First rows shown of the Quotas and Keys lists.
    pub quotas_top: usize,
    pub keys_top: usize,
    /// The Overview's selected node (index into the model's nodes): what remove-node and
    /// transfer-leader act on.
    pub overview_sel: usize,
    /// A node whose stream is this silent (ms) counts as down for the alert rules.
    pub stall_ms: i64,
    pub input: Option<Input>,
    /// Help overlay open, scrolled this many lines.
    pub help: Option<usize>,
    pub message: Option<(String, bool)>,
    pub read_only: bool,
    /// The connection actions use (None in tests that only draw).
    pub ops: Option<Ops>,
    /// Sends alerts to the configured receivers (None: none configured).
    pub notifier: Option<Notifier>,
    /// A running or finished action.
    pub dialog: Option<Dialog>,
    pub war_room: Option<WarRoom>,
    /// The cluster shown (`model.context` is its label) and the config its context came
    /// from, for `:ctx NAME`.
    pub target: Target,
    pub config: Config,
    /// Read-only whatever the context says (`--read-only`, `--war-room`).
    pub forced_read_only: bool,
    /// Set by `:ctx NAME`: the loop (`console::event_loop`) reconnects to it.
    pub switch_to: Option<Target>,
    pub quit: bool,
    pub utc_offset: i64,
    /// Rows of the last drawn list pane, for paging.
    pub body_rows: Cell<u16>,
    /// Scroll positions the help overlay had when last drawn, to stop at its end.
    pub help_rows: Cell<usize>,
    /// An operator command's output dialog when last drawn: the last scroll position and
    /// the rows of a page.
    pub output_rows: Cell<(usize, usize)>,
}

impl App {
    pub fn new(model: Model, keymap: Keymap, theme: Theme, depth: ColorDepth) -> App {
        App {
            model,
            keymap,
            theme,
            depth,
            pane: PaneKind::Overview,
            logs: LogsView::default(),
            timeline: TimelineView::default(),
            metrics_node: None,
            alerts: AlertsView::new(Rules::defaults()),
            quotas_top: 0,
            keys_top: 0,
            overview_sel: 0,
            stall_ms: 5_000,
            input: None,
            help: None,
            message: None,
            read_only: false,
            ops: None,
            notifier: None,
            dialog: None,
            war_room: None,
            target: Target::default(),
            config: Config::default(),
            forced_read_only: false,
            switch_to: None,
            quit: false,
            utc_offset: 0,
            body_rows: Cell::new(20),
            help_rows: Cell::new(usize::MAX),
            output_rows: Cell::new((usize::MAX, 10)),
        }
    }

    pub fn message(&mut self, text: &str, error: bool) {
        self.message = Some((text.to_string(), error));
    }

    /// The keymap context keys resolve in now.
    pub fn context(&self) -> &'static str {
        if self.input.is_some() {
            "input"
        } else if self.help.is_some() {
            "help"
        } else if self.dialog.is_some() {
            "dialog"
        } else {
            self.pane.name()
        }
    }

    /// A terminal event: text typed on the input line, or a key resolved through the keymap.
    pub fn on_event(&mut self, event: Event) -> Reaction {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                let key = Key::from_event(&k);
                let action = self.keymap.resolve(self.context(), key);
                if let Some(input) = &mut self.input {
                    if action.is_none() {
                        // ctrl-/alt- chords are never text.
                        if k.modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                        {
                            return Reaction::Ignored;
                        }
                        match k.code {
                            KeyCode::Char(c) => input.text.push(c),
                            KeyCode::Backspace => {
                                if input.text.pop().is_none() {
                                    self.input = None;
                                }
                            }
                            _ => return Reaction::Ignored,
                        }
                        return Reaction::Redraw;
                    }
                }
                match action {
                    Some(a) => {
                        self.message = None;
                        Reaction::Run(a)
                    }
                    // An operator command's key: on the Overview only, where its node is
                    // selected (the keymap's keys there were checked not to clash).
                    None if self.context() == "overview" => {
                        let (commands, _) = self.commands();
                        match Keymap::command_for(key, &commands) {
                            Some(name) => {
                                self.message = None;
                                let name = name.to_string();
                                self.run_command(&name);
                            }
                            None => self.unbound(key),
                        }
                        Reaction::Redraw
                    }
                    None => {
                        self.unbound(key);
                        Reaction::Redraw
                    }
                }
            }
            Event::Resize(..) => Reaction::Redraw,
            _ => Reaction::Ignored,
        }
    }

    /// A key bound to nothing here: say so, and where the keys are listed.
    fn unbound(&mut self, key: Key) {
        let help = self.keymap.key_for(self.pane.name(), Action::Help);
        self.message(
            &format!(
                "{key} does nothing here; {} lists the keys",
                help.map(|k| k.to_string()).unwrap_or_else(|| "?".into())
            ),
            true,
        );
    }

    pub fn show(&mut self, pane: PaneKind) {
        self.pane = pane;
        self.help = None;
    }

    fn step_pane(&mut self, forward: bool) {
        let all = PaneKind::ALL;
        let i = all.iter().position(|p| *p == self.pane).unwrap_or(0);
        let n = all.len();
        let next = if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        };
        self.show(all[next]);
    }

    /// War-room rotation: the lower half cycles through every pane but the Overview, which is
    /// always shown above it.
    pub fn cycle_war_room(&mut self) {
        self.step_pane(true);
        if self.pane == PaneKind::Overview {
            self.step_pane(true);
        }
    }

    /// Runs `action` if it is the app's own; hands it back when it is the shown pane's
    /// (`console::run_action` passes it on to `panes::handle`).
    pub fn run(&mut self, action: Action) -> Option<Action> {
        if let Some(spec) = action::spec_of(action) {
            if !action::permitted(spec, self.read_only) {
                self.message(
                    &format!("{} is not allowed: the console is read-only", spec.name),
                    true,
                );
                return None;
            }
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = if self.help.is_some() { None } else { Some(0) },
            Action::Command => {
                self.input = Some(Input {
                    kind: InputKind::Command,
                    text: String::new(),
                })
            }
            Action::Search => {
                self.input = Some(Input {
                    kind: InputKind::Search,
                    text: String::new(),
                })
            }
            Action::NextPane => self.step_pane(true),
            Action::PrevPane => self.step_pane(false),
            Action::ShowPane(p) => self.show(p),
            Action::Cancel => {
                if self.input.is_some() {
                    self.input = None;
                    self.close_confirmation();
                } else if self.help.is_some() {
                    self.help = None;
                } else {
                    self.dialog = None;
                }
            }
            Action::Backup => self.apply(ops::backup_question(&self.model.context)),
            Action::DebugBundle => self.apply(ops::bundle_question(&self.model.context)),
            Action::Restore => self.apply(ops::restore_question(&self.model.context)),
            Action::Compact => self.apply(ops::compact_question(
                self.model.nodes.len(),
                &self.model.context,
            )),
            Action::PauseResumeWrites => self.apply(ops::writes_question(&self.model)),
            Action::Submit if self.input.is_none() => self.dialog_submit(),
            Action::Submit => {
                if let Some(input) = self.input.take() {
                    match input.kind {
                        InputKind::Ask(ask) => {
                            self.close_confirmation();
                            let effect = self.answer(ask, input.text);
                            self.apply(effect);
                        }
                        InputKind::Command => self.command(input.text.trim()),
                        InputKind::Search => {
                            let hits = self.logs.set_search(&self.model, input.text.clone());
                            if !input.text.is_empty() {
                                self.message(
                                    &format!("{hits} lines match {:?}", input.text),
                                    hits == 0,
                                );
                            }
                        }
                    }
                }
            }
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom
                if self.context() == "dialog" =>
            {
                // Only an operator command's output scrolls; the panes behind stay put.
                self.scroll_output(action);
            }
            Action::Up | Action::Down if self.help.is_some() => {
                let h = self.help.unwrap_or(0);
                let max = self.help_rows.get().saturating_sub(1);
                self.help = Some(if action == Action::Up {
                    h.saturating_sub(1)
                } else {
                    (h + 1).min(max)
                });
            }
            other => return Some(other),
        }
        None
    }

    /// Closes the dialog that explained a question once the question is gone.
    fn close_confirmation(&mut self) {
        if matches!(self.dialog, Some(Dialog::Confirm { .. })) {
            self.dialog = None;
        }
    }

    /// Carries out what a pane (or the app itself) asked for.
    pub fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Done => {}
            Effect::Message { text, error } => self.message(&text, error),
            Effect::Command(text) => {
                self.input = Some(Input {
                    kind: InputKind::Command,
                    text,
                })
            }
            Effect::Ask {
                question,
                text,
                expect,
                then,
            } => {
                self.input = Some(Input {
                    kind: InputKind::Ask(Ask {
                        question,
                        expect,
                        then,
                    }),
                    text,
                })
            }
            Effect::StartOp { title, op } => self.start_op(title, op),
            Effect::Ack(id) => self.ack(&id),
            Effect::SaveLogs { path } => self.save_logs(path.as_deref()),
        }
    }

    /// `:` commands.
    pub fn command(&mut self, line: &str) {
        let (verb, arg) = match line.split_once(char::is_whitespace) {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        match (verb, arg) {
            ("", _) => {}
            ("q" | "quit" | "exit", _) => self.quit = true,
            ("theme", name) if !name.is_empty() => match Theme::load(name, self.depth) {
                Ok(t) => {
                    self.message(&format!("theme {}", t.name), false);
                    self.theme = t;
                }
                Err(e) => self.message(&format!("{e}"), true),
            },
            ("keymap", name) if !name.is_empty() => match Keymap::load(name).and_then(|k| {
                // The new keymap must leave the operator commands' keys free too.
                k.check_command_keys(&self.commands().0)
                    .map(|()| k)
                    .map_err(|why| color_eyre::eyre::eyre!("keymap {name} not loaded: {why}"))
            }) {
                Ok(k) => {
                    self.message(&format!("keymap {}", k.name), false);
                    self.keymap = k;
                }
                Err(e) => self.message(&format!("{e}"), true),
            },
            ("pane", name) => match PaneKind::by_name(&name.to_ascii_lowercase()) {
                Some(p) => self.show(p),
                None => self.message(
                    &format!(
                        "unknown pane {name:?}; panes: {}",
                        PaneKind::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
                    ),
                    true,
                ),
            },
            ("save", path) => self.save_logs((!path.is_empty()).then_some(path)),
            ("silence", d) if !d.is_empty() => self.silence(d),
            ("report", a) => self.incident_report(a),
            ("help", _) => self.help = Some(0),
            ("ctx", "") => self.list_contexts(),
            ("ctx", name) => self.switch_context(name),
            ("cmd", name) => self.run_command(name),
            _ => self.message(
                &format!(
                    "unknown command {line:?}; commands: q, ctx [NAME], theme NAME, keymap NAME, pane NAME, save [PATH], silence DURATION, report FILE [SINCE], cmd [NAME], help"
                ),
                true,
            ),
        }
    }

    /// `:ctx`: the config's contexts on the message line, the shown one marked.
    fn list_contexts(&mut self) {
        let names: Vec<String> = self
            .config
            .names()
            .into_iter()
            .map(|n| {
                if n == self.model.context {
                    format!("*{n}")
                } else {
                    n
                }
            })
            .collect();
        self.message(
            &format!("contexts: {} (:ctx NAME switches)", names.join(", ")),
            false,
        );
    }

    /// `:ctx NAME`: resolves the context now (an unknown one is refused, listing the
    /// known); the loop then tears down the watches and connects to it.
    fn switch_context(&mut self, name: &str) {
        if matches!(self.dialog, Some(super::state::Dialog::Running { .. })) {
            self.message(
                &format!(
                    "an operation is running on {}: wait for it to finish before switching",
                    self.model.context
                ),
                true,
            );
            return;
        }
        let base = Target {
            timeout: self.target.timeout,
            ..Target::default()
        };
        match base.with_config(&self.config, Some(name)) {
            Ok(target) => {
                let (commands, _) = self.config.commands_of_context(target.context.as_deref());
                match self.keymap.check_command_keys(&commands) {
                    Ok(()) => self.switch_to = Some(target),
                    Err(why) => self.message(&format!("not switched to {name}: {why}"), true),
                }
            }
            Err(e) => self.message(&format!("{e}"), true),
        }
    }

    /// The model and every view of it start over on `target`'s `endpoints` (after a
    /// `:ctx` switch).
    pub fn reset_for(&mut self, target: Target, endpoints: &[String]) {
        self.model = Model::new(endpoints);
        self.model.context = target.label();
        self.read_only = self.forced_read_only || target.read_only;
        self.target = target;
        self.logs = LogsView::default();
        self.timeline = TimelineView::default();
        self.metrics_node = None;
        self.alerts = AlertsView::new(self.alerts.evaluator.rules().clone());
        self.quotas_top = 0;
        self.keys_top = 0;
        self.overview_sel = 0;
        self.dialog = None;
        self.input = None;
    }

    /// Writes the Logs pane's lines passing its filters to `path`, by default
    /// `opsdeck-logs-<unix seconds>.txt`.
    pub fn save_logs(&mut self, path: Option<&str>) {
        let path = match path {
            Some(p) => p.to_string(),
            None => format!("opsdeck-logs-{}.txt", crate::format::unix_ms() / 1000),
        };
        let lines = self.logs.filtered(&self.model);
        let result = (|| -> std::io::Result<usize> {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for (_, l) in &lines {
                let time = clock(l.unix_ms, self.utc_offset);
                match l.dropped {
                    Some(n) => writeln!(file, "{time} n{} dropped {n} records", l.node_id)?,
                    None => writeln!(
                        file,
                        "{time} n{} {:<5} {}",
                        l.node_id,
                        l.level.name(),
                        line_text(l)
                    )?,
                }
            }
            file.flush()?;
            Ok(lines.len())
        })();
        match result {
            Ok(n) => self.message(&format!("saved {n} lines to {path}"), false),
            Err(e) => self.message(&format!("cannot save the logs to {path}: {e}"), true),
        }
    }
}
