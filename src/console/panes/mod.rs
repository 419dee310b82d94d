//! The panes. Adding one: a file here with `draw` (and `handle` if it has keys), a variant in
//! `PaneKind` (its name is its keymap context and `:pane` argument), and one arm in each match
//! below.

pub mod alerts;
mod disk;
mod gc;
mod keys;
mod logs;
mod metrics;
pub mod overview;
mod quotas;
pub mod timeline;

use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders};
use ratatui::Frame;

use super::action::{Action, PaneKind};
use super::app::App;
use super::theme::Role;

impl PaneKind {
    pub fn draw(self, app: &App, f: &mut Frame, area: Rect) {
        match self {
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

    /// Runs a pane's own action; false if the pane has nothing to do with it.
    pub fn handle(self, app: &mut App, action: Action) -> bool {
        match self {
            PaneKind::Logs => logs::handle(app, action),
            PaneKind::Metrics => metrics::handle(app, action),
            PaneKind::Timeline => timeline::handle(app, action),
            PaneKind::Alerts => alerts::handle(app, action),
            PaneKind::Quotas => quotas::handle(app, action),
            PaneKind::Keys => keys::handle(app, action),
            PaneKind::Overview => overview::handle(app, action),
            PaneKind::Disk | PaneKind::Gc => false,
        }
    }
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
