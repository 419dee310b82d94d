//! The alert rules' evaluator with this console's acknowledgements and silences, and the
//! Alerts pane's selection.

use crate::alerts::notify::Delivery;
use crate::alerts::{AlertId, AlertState, Evaluator, Rules, State};

pub struct AlertsView {
    pub evaluator: Evaluator,
    pub selected: Option<AlertId>,
    /// The time of the last evaluation (console clock); silences count from it.
    pub last_tick_ms: Option<i64>,
    /// Each receiver's last delivery, as of the last evaluation (empty: none configured).
    pub deliveries: Vec<Delivery>,
}

impl AlertsView {
    pub fn new(rules: Rules) -> AlertsView {
        AlertsView {
            evaluator: Evaluator::new(rules),
            selected: None,
            last_tick_ms: None,
            deliveries: Vec::new(),
        }
    }

    /// Firing alerts that are not silenced: the count the tab bar and the Overview show.
    pub fn firing(&self) -> usize {
        self.evaluator
            .alerts()
            .iter()
            .filter(|a| a.state == State::Firing && !a.silenced())
            .count()
    }

    pub fn selected_index(&self) -> Option<usize> {
        selected_index(self.selected.as_ref(), self.evaluator.alerts())
    }

    pub fn selected(&self) -> Option<&AlertState> {
        self.selected_index().map(|i| &self.evaluator.alerts()[i])
    }
}

/// The selected alert's position in `alerts`: `selected` if still listed, else the first.
pub fn selected_index(selected: Option<&AlertId>, alerts: &[AlertState]) -> Option<usize> {
    if alerts.is_empty() {
        return None;
    }
    selected
        .and_then(|id| alerts.iter().position(|a| &a.id == id))
        .or(Some(0))
}
