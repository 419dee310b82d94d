//! Timeline: cluster events from every node (leader and term changes, membership changes,
//! snapshots, log purges) and what the console itself saw (a node going down or coming back),
//! on one time axis, newest at the bottom.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::block;
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::Model;
use crate::console::state::TimelineView;
use crate::console::theme::Role;
use crate::format::clock;

fn symbol(kind: &str) -> (&'static str, Role) {
    match kind {
        "leader_change" => ("★", Role::Leader),
        "term_change" => ("▲", Role::Warn),
        "membership_change" => ("◆", Role::Learner),
        "snapshot" => ("▣", Role::Ok),
        "log_purged" => ("▤", Role::Dim),
        "snapshot_install_refused" => ("▣", Role::Warn),
        "node_down" => ("✖", Role::Down),
        "node_up" => ("✔", Role::Ok),
        "alert_firing" => ("◉", Role::Critical),
        "alert_resolved" => ("✔", Role::Ok),
        "replicas_diverged" => ("✖", Role::Critical),
        "replicas_agree" => ("≡", Role::Ok),
        "writes_paused" => ("⏸", Role::Warn),
        "writes_resumed" => ("▶", Role::Ok),
        _ => ("•", Role::Text),
    }
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let entries = &app.model.timeline;
    let title = if app.timeline.back > 0 {
        format!("Timeline · {} events · scrolled", entries.len())
    } else {
        format!("Timeline · {} events", entries.len())
    };
    let block = block(app, title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    app.body_rows.set(inner.height);
    let end = entries.len().saturating_sub(app.timeline.back);
    let start = end.saturating_sub(inner.height as usize);
    let mut lines = entry_lines(app, start, end);
    if entries.is_empty() {
        lines.push(Line::from(Span::styled(
            "no events yet",
            t.style(Role::Dim),
        )));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// Timeline entries `start..end`, one line each (the Overview shows the newest few too).
pub fn entry_lines(app: &App, start: usize, end: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut lines = Vec::new();
    for e in app.model.timeline.range(start..end) {
        let (sym, role) = symbol(&e.kind);
        let who = if e.console {
            "console".to_string()
        } else {
            e.seen_by
                .iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let term = if e.term > 0 {
            format!(" (term {})", e.term)
        } else {
            String::new()
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} ", clock(e.unix_ms, app.utc_offset)),
                t.style(Role::Dim),
            ),
            Span::styled(format!("{sym} {:<17} ", e.kind), t.style(role)),
            Span::styled(format!("{}{term} ", e.detail), t.style(Role::Text)),
            Span::styled(format!("[{who}]"), t.style(Role::Dim)),
        ]));
    }
    lines
}

/// Scrolling back in time and forward again.
pub fn handle(
    view: &mut TimelineView,
    model: &Model,
    rows: usize,
    action: Action,
) -> Option<Effect> {
    let len = model.timeline.len();
    let page = rows.max(1);
    let back = &mut view.back;
    match action {
        Action::Up => *back = (*back + 1).min(len.saturating_sub(1)),
        Action::Down => *back = back.saturating_sub(1),
        Action::PageUp => *back = (*back + page).min(len.saturating_sub(1)),
        Action::PageDown => *back = back.saturating_sub(page),
        Action::Top => *back = len.saturating_sub(page),
        Action::Bottom => *back = 0,
        _ => return None,
    }
    Some(Effect::Done)
}
