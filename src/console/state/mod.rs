//! View state: what the console shows and where, apart from what it knows about the cluster
//! (`model.rs`). Plain structs: the app changes them, the panes draw them.

pub mod alerts;
pub mod dialog;
pub mod input;
pub mod logs;

pub use alerts::AlertsView;
pub use dialog::Dialog;
pub use input::{Ask, Input, InputKind, Pending};
pub use logs::LogsView;

#[derive(Debug, Clone, Default)]
pub struct TimelineView {
    /// Entries scrolled back from the newest; 0 follows.
    pub back: usize,
}
