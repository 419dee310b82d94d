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
    Finished {
        title: String,
        ok: bool,
        text: String,
        secret: Option<NewSecret>,
    },
}
