//! The dialog of a running or finished operation.

use std::time::Instant;

use crate::console::ops::NewSecret;

#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    Running {
        title: String,
        started: Instant,
        /// Share done, when it can be measured.
        ratio: Option<f64>,
        detail: String,
    },
    /// What a question on the command line is about to do (a restore's source and target),
    /// shown above it until it is answered; `warn` for a dangerous one.
    Confirm {
        title: String,
        lines: Vec<String>,
        warn: bool,
    },
    /// An operator command's outcome and output, scrolled `scroll` lines down.
    Output {
        title: String,
        ok: bool,
        /// The outcome: exit code or timeout, and how long it took.
        summary: String,
        argv: String,
        output: String,
        scroll: usize,
    },
    Finished {
        title: String,
        ok: bool,
        text: String,
        secret: Option<NewSecret>,
    },
}
