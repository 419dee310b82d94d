//! The frame around the panes: the tab bar with the cluster verdict, the message / command
//! line with key hints from the live keymap, the help overlay, the war-room layout, and the
//! operation dialog (`dialog.rs`) over them.

pub mod dialog;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table};
use ratatui::Frame;

use super::action::{self, Action, PaneKind};
use super::app::App;
use super::model::Verdict;
use super::panes;
use super::state::InputKind;
use super::theme::Role;

/// The smallest terminal the panes are laid out for.
pub const MIN_SIZE: (u16, u16) = (80, 24);

pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        too_small(app, f, area);
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    tabs(app, f, top);
    // Maintenance mode is on every pane: a line above it, in words, not colour alone.
    let body = match app.model.writes_paused() {
        Some(p) => {
            let [banner, rest] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(body);
            writes_banner(app, p, f, banner);
            rest
        }
        None => body,
    };
    if app.war_room.is_some() {
        war_room(app, f, body);
    } else {
        panes::draw(app.pane, app, f, body);
    }
    status_line(app, f, bottom);
    if let Some(dialog) = &app.dialog {
        dialog::draw(app, dialog, f, body);
    }
    if let Some(scroll) = app.help {
        help(app, f, body, scroll);
    }
}

/// `⏸ WRITES PAUSED since 13:00:05 until 13:30:05 by k1: reason`, the reason last so a
/// narrow terminal cuts only its end (times in the console's clock, like the panes').
fn writes_banner(app: &App, p: &opsdeck_node::pb::WritesPaused, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let time = |ms: i64| crate::format::clock(ms, app.utc_offset);
    let until = p
        .until_unix_ms
        .map(|u| format!(" until {}", time(u)))
        .unwrap_or_default();
    let line = Line::from(vec![
        Span::styled(
            " ⏸ WRITES PAUSED ",
            t.style(Role::Critical).add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            format!(
                " since {}{until} by {}: {} · reads go on",
                time(p.since_unix_ms),
                p.by,
                p.reason
            ),
            t.style(Role::Warn),
        ),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

/// Below 80×24 the panes would be cut into garbage: say so, and still show the verdict.
fn too_small(app: &App, f: &mut Frame, area: Rect) {
    let lines = vec![
        Line::from(verdict_badge(app)),
        Line::from(format!(
            "terminal too small: {}×{}, opsdeck needs {}×{}",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        )),
        Line::from("enlarge the window, or press q to quit"),
    ];
    let paragraph = Paragraph::new(lines)
        .style(app.theme.style(Role::Text))
        .wrap(ratatui::widgets::Wrap { trim: true });
    f.render_widget(paragraph, area);
}

fn verdict_badge(app: &App) -> Span<'static> {
    let (v, _) = app.model.verdict();
    let (text, role) = match v {
        Verdict::Healthy => (" ✔ HEALTHY ", Role::Ok),
        Verdict::Degraded => (" ▲ DEGRADED ", Role::Warn),
        Verdict::NoQuorum => (" ✖ NO QUORUM ", Role::Critical),
        Verdict::Unknown => (" … ", Role::Dim),
    };
    Span::styled(text, app.theme.style(role).add_modifier(Modifier::BOLD))
}

/// Tab labels: every pane with its key and title, or when that does not fit, only the
/// current pane's title and the others' keys.
fn tab_spans(app: &App, short: bool) -> Vec<Span<'static>> {
    let t = &app.theme;
    let mut spans = vec![Span::styled("opsdeck ", t.style(Role::Title))];
    for pane in PaneKind::ALL {
        let key = app
            .keymap
            .key_for(pane.name(), Action::ShowPane(*pane))
            .map(|k| k.to_string());
        if *pane == app.pane {
            let text = match key {
                Some(k) => format!("[{k} {}]", pane.title()),
                None => format!("[{}]", pane.title()),
            };
            spans.push(Span::styled(text, t.style(Role::Highlight)));
        } else {
            let text = match (key, short) {
                (Some(k), true) => format!(" {k} "),
                (Some(k), false) => format!(" {k} {} ", pane.title()),
                (None, _) => format!(" {} ", pane.title()),
            };
            spans.push(Span::styled(text, t.style(Role::Text)));
        }
    }
    spans
}

fn tabs(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut right = vec![];
    if app.read_only {
        right.push(Span::styled(" RO ", t.style(Role::Warn)));
    }
    let firing = app.alerts.firing();
    if firing > 0 {
        right.push(Span::styled(
            format!(" ◉ {firing} FIRING "),
            t.style(Role::Critical).add_modifier(Modifier::BOLD),
        ));
    }
    right.push(verdict_badge(app));
    let width: u16 = right.iter().map(|s| s.width() as u16).sum();
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
    let mut spans = tab_spans(app, false);
    if spans.iter().map(|s| s.width()).sum::<usize>() > l.width as usize {
        spans = tab_spans(app, true);
    }
    f.render_widget(Paragraph::new(Line::from(spans)), l);
    f.render_widget(Paragraph::new(Line::from(right)), r);
}

/// The status line: the cluster's name (its context) first, then the command line, the
/// message, or the key hints. A question before a change names the context itself (and
/// must leave room for the typed answer at 80 columns), so it goes without the prefix.
fn status_line(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let context = Span::styled(format!("[{}] ", app.model.context), t.style(Role::Title));
    let mut line = if let Some(input) = &app.input {
        let prefix = match &input.kind {
            InputKind::Command => ":",
            InputKind::Search => "/",
            InputKind::Ask(ask) => ask.question.as_str(),
        };
        Line::from(vec![
            Span::styled(format!("{prefix}{}", input.text), t.style(Role::Text)),
            Span::styled(" ", t.style(Role::Highlight)),
        ])
    } else if let Some((text, error)) = &app.message {
        Line::from(Span::styled(
            text.clone(),
            t.style(if *error { Role::Warn } else { Role::Ok }),
        ))
    } else {
        let ctx = app.pane.name();
        let mut hints = Vec::new();
        for (action, label) in [
            (Action::Help, "help"),
            (Action::Command, "command"),
            (Action::NextPane, "next pane"),
            (Action::Quit, "quit"),
        ] {
            if let Some(k) = app.keymap.key_for(ctx, action) {
                hints.push(format!("{k} {label}"));
            }
        }
        let hints = hints.join(" · ");
        let names = format!("   keymap {} · theme {}", app.keymap.name, app.theme.name);
        let mut spans = vec![Span::styled(hints.clone(), t.style(Role::Dim))];
        // The names only when they fit whole: a cut-off theme name reads as a typo.
        let context_width = app.model.context.chars().count() + 3;
        if context_width + hints.chars().count() + names.chars().count() <= area.width as usize {
            spans.push(Span::styled(names, t.style(Role::Dim)));
        }
        Line::from(spans)
    };
    let asking = matches!(&app.input, Some(i) if matches!(i.kind, InputKind::Ask(_)));
    if !app.model.context.is_empty() && !asking {
        line.spans.insert(0, context);
    }
    f.render_widget(Paragraph::new(line), area);
}

/// The `:` commands, as `App::command` understands them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("q", "quit"),
    ("ctx [NAME]", "list contexts / switch cluster"),
    ("pane NAME", "show a pane (overview, logs, ...)"),
    ("theme NAME|PATH", "switch theme"),
    ("keymap NAME|PATH", "switch keymap"),
    ("save [PATH]", "save the filtered log lines"),
    ("silence DURATION", "silence the selected alert (0 lifts)"),
    (
        "report FILE [SINCE]",
        "write the incident report (Markdown)",
    ),
    ("cmd NAME", "run an operator command on the selected node"),
];

/// The live keymap for the current pane: its own keys, then the global ones.
fn help(app: &App, f: &mut Frame, body: Rect, scroll: usize) {
    let t = &app.theme;
    let ctx = app.pane.name();
    let mut rows = Vec::new();
    for (context, heading) in [(ctx, app.pane.title()), ("global", "everywhere")] {
        let bindings: Vec<_> = app
            .keymap
            .bindings(context)
            .iter()
            .filter_map(|(k, a)| action::spec_of(*a).map(|s| (k, s)))
            .filter(|(_, s)| action::permitted(s, app.read_only))
            .collect();
        if bindings.is_empty() {
            continue;
        }
        rows.push(Row::new(vec![heading.to_string()]).style(t.style(Role::Header)));
        for (key, spec) in bindings {
            rows.push(
                Row::new(vec![
                    key.to_string(),
                    spec.name.to_string(),
                    spec.desc.to_string(),
                ])
                .style(t.style(Role::Text)),
            );
        }
    }
    if let Some(k) = app.keymap.key_for(ctx, Action::Command) {
        rows.push(Row::new(vec!["commands".to_string()]).style(t.style(Role::Header)));
        for (cmd, desc) in COMMANDS {
            rows.push(
                Row::new(vec![String::new(), format!("{k}{cmd}"), desc.to_string()])
                    .style(t.style(Role::Text)),
            );
        }
    }
    // The config's operator commands: key (on the Overview), `:cmd NAME`, what it runs.
    let (commands, _) = app.commands();
    let commands: Vec<_> = commands
        .iter()
        .filter(|(_, c)| !(c.mutating && app.read_only))
        .collect();
    if !commands.is_empty() {
        rows.push(
            Row::new(vec![
                "operator",
                "commands",
                "keys act on the Overview's node",
            ])
            .style(t.style(Role::Header)),
        );
        let colon = app
            .keymap
            .key_for(ctx, Action::Command)
            .map_or(":".into(), |k| k.to_string());
        for (name, c) in commands {
            let what = c.description.clone().unwrap_or_else(|| c.display());
            rows.push(
                Row::new(vec![
                    c.key.map(String::from).unwrap_or_default(),
                    format!("{colon}cmd {name}"),
                    if c.mutating {
                        format!("mutating · {what}")
                    } else {
                        what
                    },
                ])
                .style(t.style(Role::Text)),
            );
        }
    }
    let width = body.width.min(72);
    let height = body.height.min(rows.len() as u16 + 3);
    let area = Rect {
        x: body.x + (body.width - width) / 2,
        y: body.y + (body.height - height) / 2,
        width,
        height,
    };
    let visible = height.saturating_sub(2) as usize;
    app.help_rows.set(rows.len().saturating_sub(visible) + 1);
    let scroll = scroll.min(rows.len().saturating_sub(visible));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(Role::Title))
        .title(Span::styled(
            format!(
                " keys: {} (keymap {}) · ↑↓ scroll · esc closes ",
                app.pane.title(),
                app.keymap.name
            ),
            t.style(Role::Title),
        ));
    f.render_widget(Clear, area);
    let widths = [
        Constraint::Length(10),
        Constraint::Length(18),
        Constraint::Min(10),
    ];
    f.render_widget(
        Table::new(rows.into_iter().skip(scroll), widths).block(block),
        area,
    );
}

/// Read-only wall screen: a big verdict banner, the Overview, and below it the other panes
/// in turn.
fn war_room(app: &App, f: &mut Frame, body: Rect) {
    let t = &app.theme;
    let over_height = (app.model.nodes.len() as u16 + 7).max(body.height / 2);
    let [banner, over, rest] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(over_height),
        Constraint::Min(0),
    ])
    .areas(body);
    let (v, text) = app.model.verdict();
    let role = match v {
        Verdict::Healthy => Role::Ok,
        Verdict::Degraded => Role::Warn,
        Verdict::NoQuorum => Role::Critical,
        Verdict::Unknown => Role::Dim,
    };
    let style = t
        .style(role)
        .add_modifier(Modifier::REVERSED | Modifier::BOLD);
    let big = text.to_uppercase();
    f.render_widget(
        Paragraph::new(vec![
            Line::from(""),
            Line::from(big).centered(),
            Line::from(""),
        ])
        .style(style),
        banner,
    );
    panes::draw(PaneKind::Overview, app, f, over);
    if rest.height >= 4 {
        let pane = if app.pane == PaneKind::Overview {
            PaneKind::Logs
        } else {
            app.pane
        };
        panes::draw(pane, app, f, rest);
    }
}
