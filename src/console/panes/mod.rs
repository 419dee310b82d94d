//! The panes. Adding one: a file here with `draw` (and `handle` if it has keys), a variant in
//! `PaneKind` (its name is its keymap context and `:pane` argument), and one arm in each match
//! below.

mod disk;
mod gc;
mod logs;
mod metrics;
pub mod overview;
pub mod timeline;

pub use logs::{save as save_logs, LogsView};
pub use timeline::TimelineView;

use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders};
use ratatui::Frame;

use super::action::Action;
use super::app::App;
use super::theme::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaneKind {
    Overview,
    Logs,
    Metrics,
    Disk,
    Gc,
    Timeline,
}

impl PaneKind {
    pub const ALL: &'static [PaneKind] = &[
        PaneKind::Overview,
        PaneKind::Logs,
        PaneKind::Metrics,
        PaneKind::Disk,
        PaneKind::Gc,
        PaneKind::Timeline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PaneKind::Overview => "overview",
            PaneKind::Logs => "logs",
            PaneKind::Metrics => "metrics",
            PaneKind::Disk => "disk",
            PaneKind::Gc => "gc",
            PaneKind::Timeline => "timeline",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            PaneKind::Overview => "Overview",
            PaneKind::Logs => "Logs",
            PaneKind::Metrics => "Metrics",
            PaneKind::Disk => "Disk",
            PaneKind::Gc => "GC",
            PaneKind::Timeline => "Timeline",
        }
    }

    pub fn action_name(self) -> &'static str {
        match self {
            PaneKind::Overview => "pane_overview",
            PaneKind::Logs => "pane_logs",
            PaneKind::Metrics => "pane_metrics",
            PaneKind::Disk => "pane_disk",
            PaneKind::Gc => "pane_gc",
            PaneKind::Timeline => "pane_timeline",
        }
    }

    pub fn by_name(name: &str) -> Option<PaneKind> {
        PaneKind::ALL.iter().copied().find(|p| p.name() == name)
    }

    pub fn draw(self, app: &App, f: &mut Frame, area: Rect) {
        match self {
            PaneKind::Overview => overview::draw(app, f, area),
            PaneKind::Logs => logs::draw(app, f, area),
            PaneKind::Metrics => metrics::draw(app, f, area),
            PaneKind::Disk => disk::draw(app, f, area),
            PaneKind::Gc => gc::draw(app, f, area),
            PaneKind::Timeline => timeline::draw(app, f, area),
        }
    }

    /// Runs a pane's own action; false if the pane has nothing to do with it.
    pub fn handle(self, app: &mut App, action: Action) -> bool {
        match self {
            PaneKind::Logs => logs::handle(app, action),
            PaneKind::Metrics => metrics::handle(app, action),
            PaneKind::Timeline => timeline::handle(app, action),
            PaneKind::Overview | PaneKind::Disk | PaneKind::Gc => false,
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

/// The short label of a node in tables: its id once known, else its endpoint.
pub fn node_label(view: &super::model::NodeView) -> String {
    match &view.status {
        Some(s) => format!("n{}", s.id),
        None => "?".into(),
    }
}
