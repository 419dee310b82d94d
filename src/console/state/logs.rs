//! The Logs pane's view: filters (node, minimum level, search), follow / pause / scroll
//! position, and the lines of the merged log that pass the filters.

use crate::console::model::{Level, LogLine, Model};

#[derive(Debug, Clone, Default)]
pub struct LogsView {
    /// Absolute index (counting evicted lines) of the bottom line shown; None = follow.
    pub anchor: Option<u64>,
    /// Lines in the buffer when pause was pressed.
    pub paused_at: Option<u64>,
    pub node: Option<u64>,
    pub min_level: Option<Level>,
    pub search: Option<String>,
    /// Absolute index of the line the last n/N landed on.
    pub current: Option<u64>,
}

impl LogsView {
    fn matches(&self, line: &LogLine) -> bool {
        self.node.is_none_or(|n| line.node_id == n)
            && (line.dropped.is_some() || self.min_level.is_none_or(|l| line.level >= l))
    }

    /// (absolute index, line) of every line passing the filters, up to the pause point.
    pub fn filtered<'a>(&self, model: &'a Model) -> Vec<(u64, &'a LogLine)> {
        let end = self.paused_at.unwrap_or(u64::MAX);
        model
            .logs
            .iter()
            .enumerate()
            .map(|(i, l)| (model.logs_evicted + i as u64, l))
            .take_while(|(abs, _)| *abs < end)
            .filter(|(_, l)| self.matches(l))
            .collect()
    }

    /// Sets the search and lands on its newest match (`N` then walks back in time).
    pub fn set_search(&mut self, model: &Model, text: String) -> usize {
        self.search = (!text.is_empty()).then_some(text);
        self.current = None;
        let Some(needle) = &self.search else { return 0 };
        let hits: Vec<u64> = self
            .filtered(model)
            .iter()
            .filter(|(_, l)| contains(&line_text(l), needle))
            .map(|(a, _)| *a)
            .collect();
        if let Some(last) = hits.last() {
            self.current = Some(*last);
            self.anchor = Some(*last);
        }
        hits.len()
    }
}

pub fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

pub fn line_text(l: &LogLine) -> String {
    format!("{} {}", l.target, l.text)
}
