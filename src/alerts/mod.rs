//! Alert rules: a TOML rules file, figures computed from what an outside observer sees of
//! every node each tick, and an evaluator moving each (rule, subject) instance through
//! pending → firing → resolved, with acknowledge and silence. Used by `opsdeck alerts`
//! and the console's Alerts pane; `prometheus.rs` turns the rules into a Prometheus rules
//! file for servers that page without a console.
//!
//! ```ignore
//! let mut ev = Evaluator::new(Rules::load(path)?);   // or Rules::defaults()
//! loop {
//!     let reports = client.status_all(timeout).await;
//!     for change in ev.observe(unix_ms_now, &reports) { /* timeline */ }
//!     draw(ev.alerts());
//! }
//! ```
//!
//! The evaluator does no I/O and reads no clock: the caller passes the time.

mod eval;
mod expr;
mod figures;
mod json;
pub mod notify;
mod observe;
mod prometheus;
mod rules;

#[allow(unused_imports)] // the console uses more of the API than the CLI verb
pub use eval::{AlertId, AlertState, Evaluator, Seen, State, Transition, RESOLVED_KEPT};
#[allow(unused_imports)]
pub use figures::{Figure, Reading, Scope, Subject, FIGURES_HELP};
pub use json::alert_json;
#[allow(unused_imports)]
pub use prometheus::{export as export_prometheus, PROMETHEUS_HELP};
#[allow(unused_imports)]
pub use rules::{Rule, Rules, RulesError, Severity, DEFAULT_RULES};

/// `opsdeck alerts --help`'s closing text: the figures, then how they map to Prometheus.
pub fn alerts_help() -> String {
    format!("{FIGURES_HELP}\n\n{PROMETHEUS_HELP}")
}
