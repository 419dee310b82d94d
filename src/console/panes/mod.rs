//! The panes, one file each: `draw` draws it from `&App`; `handle`, if it has keys, runs the
//! pane's actions on its own view state only and returns anything else as an `Effect` for the
//! app to apply. Adding one: a file here, a variant in `PaneKind` (`action.rs`; its name is
//! its keymap context and `:pane` argument), and one arm in each match below.

mod alerts;
mod disk;
mod gc;
mod keys;
mod logs;
mod metrics;
mod overview;
mod quotas;
mod timeline;

use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders};
use ratatui::Frame;

use super::action::{self, Action, PaneKind};
use super::app::App;
use super::effect::Effect;
use super::model::Model;
use super::theme::Role;

pub fn draw(pane: PaneKind, app: &App, f: &mut Frame, area: Rect) {
    match pane {
        PaneKind::Overview => overview::draw(app, f, area),
        PaneKind::Logs => logs::draw(app, f, area),
        PaneKind::Metrics => metrics::draw(app, f, area),
        PaneKind::Disk => disk::draw(app, f, area),
        PaneKind::Gc => gc::draw(app, f, area),
        PaneKind::Timeline => timeline::draw(app, f, area),
        PaneKind::Alerts => alerts::draw(app, f, area),
        PaneKind::Quotas => quotas::draw(app, f, area),
        PaneKind::Keys => keys::draw(app, f, area),
    }
}

/// Runs an action of the shown pane: the pane gets its own view state and reads what else it
/// needs; its effect comes back for the app to apply. An action the pane has nothing to do
/// with comes back as a message saying so.
pub fn handle(app: &mut App, action: Action) -> Effect {
    let rows = app.body_rows.get() as usize;
    let dev = app.ops.as_ref().is_some_and(|o| o.dev_dir.is_some());
    // Why restarts cannot be done here, if they cannot (asked only when one is pressed).
    let no_restart = matches!(action, Action::RestartNode | Action::RollingRestart)
        .then(|| app.restarter().err())
        .flatten();
    let model = &app.model;
    let effect = match app.pane {
        PaneKind::Logs => logs::handle(&mut app.logs, model, rows, action),
        PaneKind::Metrics => metrics::handle(&mut app.metrics_node, model, action),
        PaneKind::Timeline => timeline::handle(&mut app.timeline, model, rows, action),
        PaneKind::Alerts => {
            let view = &mut app.alerts;
            alerts::handle(&mut view.selected, view.evaluator.alerts(), rows, action)
        }
        PaneKind::Quotas => quotas::handle(&mut app.quotas_top, model, rows, action),
        PaneKind::Keys => keys::handle(&mut app.keys_top, model, rows, action),
        PaneKind::Overview => overview::handle(
            &mut app.overview_sel,
            model,
            dev,
            no_restart.as_deref(),
            action,
        ),
        PaneKind::Disk | PaneKind::Gc => None,
    };
    effect.unwrap_or_else(|| {
        Effect::error(format!(
            "{} does nothing in {}",
            action::spec_of(action).map(|s| s.name).unwrap_or("?"),
            app.pane.title()
        ))
    })
}

/// The bordered block every pane sits in.
pub fn block<'a>(app: &App, title: impl Into<String>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Plain)
        .border_style(app.theme.style(Role::Border))
        .title(Span::styled(
            format!(" {} ", title.into()),
            app.theme.style(Role::Title),
        ))
}

/// A table row's style; the selected row is drawn reversed, so cells keep their own
/// colours (a leader's, a state's) and stay readable in every theme.
pub fn row_style(app: &App, selected: bool) -> ratatui::style::Style {
    let style = app.theme.style(Role::Text);
    if selected {
        style.add_modifier(ratatui::style::Modifier::REVERSED)
    } else {
        style
    }
}

/// The short label of a node in tables: its id once known, else its endpoint.
pub fn node_label(view: &super::model::NodeView) -> String {
    match &view.status {
        Some(s) => format!("n{}", s.id),
        None => "?".into(),
    }
}

/// Moves a list position for the scrolling actions; false for any other action.
pub fn scroll(pos: &mut usize, len: usize, page: usize, action: Action) -> bool {
    let last = len.saturating_sub(1);
    *pos = match action {
        Action::Up => pos.saturating_sub(1),
        Action::Down => (*pos + 1).min(last),
        Action::PageUp => pos.saturating_sub(page.max(1)),
        Action::PageDown => (*pos + page.max(1)).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        _ => return false,
    };
    true
}

/// The node after `current` in id order, for the one node / all nodes actions: the first
/// after all, None (all) after the last.
pub fn next_node(model: &Model, current: Option<u64>) -> Option<u64> {
    let mut ids: Vec<u64> = model
        .nodes
        .iter()
        .filter_map(|n| n.status.as_ref().map(|s| s.id))
        .collect();
    ids.sort_unstable();
    match current {
        None => ids.first().copied(),
        Some(n) => ids.iter().copied().find(|i| *i > n),
    }
}
