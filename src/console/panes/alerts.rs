//! Alerts: the pane lists the pending, firing and recently resolved alerts of the rules the
//! console evaluates (`app/alerts.rs`), and acknowledges or silences the selected one (marks
//! kept in this console, and Alertmanager silences when one is a receiver). Below, one
//! line per receiver: its last delivery, ok or failed, when, and what or why.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{block, scroll};
use crate::alerts::notify::Delivery;
use crate::alerts::{AlertId, AlertState, Severity, State};
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::state::alerts::selected_index;
use crate::console::theme::Role;
use crate::format::{clock, cut, duration_secs};

/// What the silence key puts on the command line, ready to edit.
const SILENCE_PROMPT: &str = "silence 1h";

/// Selecting an alert (`selected`, in the list `alerts`), and marking it.
pub fn handle(
    selected: &mut Option<AlertId>,
    alerts: &[AlertState],
    rows: usize,
    action: Action,
) -> Option<Effect> {
    let index = selected_index(selected.as_ref(), alerts);
    let effect = match action {
        Action::AckAlert => match index {
            Some(i) => Effect::Ack(alerts[i].id.clone()),
            None => Effect::error("no alert to acknowledge"),
        },
        Action::SilenceAlert => match index {
            Some(_) => Effect::Command(SILENCE_PROMPT.into()),
            None => Effect::error("no alert to silence"),
        },
        _ => {
            let mut pos = index.unwrap_or(0);
            if !scroll(&mut pos, alerts.len(), rows, action) {
                return None;
            }
            *selected = alerts.get(pos).map(|a| a.id.clone());
            Effect::Done
        }
    };
    Some(effect)
}

fn state_cell(state: State) -> (&'static str, Role) {
    match state {
        State::Firing => ("◉ firing", Role::Critical),
        State::Pending => ("… pending", Role::Warn),
        State::Resolved => ("✔ resolved", Role::Ok),
        State::Inactive => ("inactive", Role::Dim),
    }
}

fn severity_cell(s: Severity) -> (&'static str, Role) {
    match s {
        Severity::Critical => ("crit", Role::Critical),
        Severity::Warning => ("warn", Role::Warn),
        Severity::Info => ("info", Role::Text),
    }
}

fn marks(a: &AlertState) -> String {
    format!(
        "{}{}",
        if a.acked { "A" } else { "" },
        if a.silenced() { "S" } else { "" }
    )
}

/// `NAME FAILED 12:03:04 why`, cut to `width` columns.
fn delivery_line(d: &Delivery, width: usize, utc_offset: i64) -> (String, Role) {
    let dropped = match d.dropped {
        0 => String::new(),
        n => format!(" · {n} dropped"),
    };
    let (word, role, rest) = match &d.last {
        None => ("waiting", Role::Dim, "nothing sent yet".to_string()),
        Some(o) => (
            if o.ok { "ok" } else { "FAILED" },
            if o.ok { Role::Ok } else { Role::Critical },
            format!("{} {}", clock(o.at_ms, utc_offset), o.text),
        ),
    };
    let line = format!("{} {word} {rest}{dropped}", cut(&d.name, 24));
    (cut(&line, width), role)
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let view = &app.alerts;
    let alerts = view.evaluator.alerts();
    let count = |s: State| alerts.iter().filter(|a| a.state == s).count();
    let block = block(
        app,
        format!(
            "Alerts · {} firing · {} pending · {} resolved",
            count(State::Firing),
            count(State::Pending),
            count(State::Resolved)
        ),
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    if view.last_tick_ms.is_none() {
        f.render_widget(
            Paragraph::new(Span::styled("evaluating the rules…", t.style(Role::Dim))),
            inner,
        );
        return;
    }

    let table_rows = (alerts.len() as u16 + 1).clamp(2, inner.height.saturating_sub(8).max(2));
    let [table_area, detail_area, rest] = Layout::vertical([
        Constraint::Length(table_rows),
        Constraint::Length(5),
        Constraint::Min(0),
    ])
    .areas(inner);
    app.body_rows.set(table_rows.saturating_sub(1));

    let selected = view.selected_index();
    let visible = table_rows.saturating_sub(1) as usize;
    let first = selected.map_or(0, |s| (s + 1).saturating_sub(visible));
    let header = Row::new(["STATE", "SEV", "RULE", "SUBJECT", "SINCE", "VALUE", "  "])
        .style(t.style(Role::Header));
    let rows: Vec<Row> = alerts
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, a)| {
            let (state, srole) = state_cell(a.state);
            let (sev, vrole) = severity_cell(a.severity);
            let row = Row::new(vec![
                Span::styled(state, t.style(srole)),
                Span::styled(sev, t.style(vrole)),
                Span::raw(cut(&a.id.rule, 21)),
                Span::raw(cut(&a.id.subject.to_string(), 11)),
                Span::raw(clock(a.since_ms, app.utc_offset)),
                Span::raw(cut(&a.value(), 15)),
                Span::styled(marks(a), t.style(Role::Dim)),
            ]);
            if Some(i) == selected {
                row.style(t.style(Role::Highlight))
            } else {
                row.style(t.style(Role::Text))
            }
        })
        .collect();
    let widths = [10, 4, 21, 11, 8, 15, 2].map(Constraint::Length);
    if alerts.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled(
                "no alerts: every rule is quiet",
                t.style(Role::Ok),
            )),
            table_area,
        );
    } else {
        f.render_widget(
            Table::new(rows, widths).header(header).column_spacing(1),
            table_area,
        );
    }

    let mut detail = vec![Line::from("")];
    if let Some(a) = view.selected() {
        let (state, role) = state_cell(a.state);
        let mut head = vec![
            Span::styled(format!("{} · ", a.id), t.style(Role::Title)),
            Span::styled(state, t.style(role)),
            Span::styled(
                format!(
                    " since {} · {} · for {}",
                    clock(a.since_ms, app.utc_offset),
                    a.severity,
                    duration_secs(a.hold.as_secs())
                ),
                t.style(Role::Text),
            ),
        ];
        let mut notes = Vec::new();
        if a.acked {
            notes.push("acknowledged".to_string());
        }
        if let Some(until) = a.silenced_until {
            notes.push(format!("silenced until {}", clock(until, app.utc_offset)));
        }
        if !notes.is_empty() {
            head.push(Span::styled(
                format!(" · {}", notes.join(" · ")),
                t.style(Role::Dim),
            ));
        }
        detail.push(Line::from(head));
        detail.push(Line::from(Span::styled(a.summary(), t.style(Role::Text))));
        detail.push(Line::from(Span::styled(
            format!("value: {}", a.value()),
            t.style(Role::Dim),
        )));
    }
    f.render_widget(
        Paragraph::new(detail).wrap(Wrap { trim: false }),
        detail_area,
    );

    let rules = view.evaluator.rules();
    let quiet: Vec<&str> = rules
        .rules()
        .iter()
        .filter(|r| !alerts.iter().any(|a| a.id.rule == r.name))
        .map(|r| r.name.as_str())
        .collect();
    let key = |a: Action| {
        app.keymap
            .key_for("alerts", a)
            .map(|k| k.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut lines: Vec<Line> = view
        .deliveries
        .iter()
        .map(|d| {
            let (text, role) = delivery_line(d, rest.width as usize, app.utc_offset);
            Line::from(Span::styled(text, t.style(role)))
        })
        .collect();
    lines.extend([
        Line::from(Span::styled(
            format!(
                "quiet: {}",
                if quiet.is_empty() {
                    "none".to_string()
                } else {
                    quiet.join(", ")
                }
            ),
            t.style(Role::Dim),
        )),
        Line::from(Span::styled(
            format!(
                "{} rules from {} · {} acknowledge · {} silence (:silence 1h, 0 lifts) · A acked, S silenced",
                rules.rules().len(),
                rules.origin(),
                key(Action::AckAlert),
                key(Action::SilenceAlert)
            ),
            t.style(Role::Dim),
        )),
    ]);
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), rest);
}
