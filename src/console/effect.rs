//! What a pane's key asks of the app. A pane changes only its own view state; anything else
//! (a message, a question, an operation, an alert mark, a file) it returns as an `Effect`,
//! and `App::apply` carries it out.

use super::ops::Op;
use super::state::Pending;
use crate::alerts::AlertId;

#[derive(Debug, Clone)]
pub enum Effect {
    /// Done in the pane's own view state: nothing for the app to do.
    Done,
    /// A line on the message line; `error` shows it as a warning.
    Message { text: String, error: bool },
    /// Opens the command line holding `text`, ready to edit.
    Command(String),
    /// Asks on the command line with `text` filled in; the answer goes to `then`. With
    /// `expect`, the answer must be exactly that.
    Ask {
        question: String,
        text: String,
        expect: Option<String>,
        then: Pending,
    },
    /// Runs an operation in the background, followed in a dialog titled `title`.
    StartOp { title: String, op: Op },
    /// Acknowledges the alert (only a firing one can be).
    Ack(AlertId),
    /// Writes the Logs pane's filtered lines to `path` (None: a name with the time in it).
    SaveLogs { path: Option<String> },
}

impl Effect {
    /// A warning on the message line.
    pub fn error(text: impl Into<String>) -> Effect {
        Effect::Message {
            text: text.into(),
            error: true,
        }
    }
}
