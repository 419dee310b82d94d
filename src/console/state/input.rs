//! The command / search line, and the questions an operation asks on it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    Command,
    Search,
    /// A question an operation asks (see `app/ops.rs`).
    Ask(Ask),
}

#[derive(Debug, Clone)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
}

/// What a question on the command line leads to once answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    BackupTo,
    BundleTo,
    RestoreFrom,
    ConfirmRestore {
        path: PathBuf,
        allow_foreign: bool,
    },
    ConfirmCompact,
    RotateGrace {
        id: String,
    },
    AddNode,
    ConfirmRemove {
        id: u64,
    },
    ConfirmTransfer {
        to: u64,
    },
    /// The reason of a pause of writes was typed; next: for how long (the confirmation).
    PauseReason,
    PauseFor {
        reason: String,
    },
    ConfirmResume,
    ConfirmRestart {
        id: u64,
    },
    ConfirmRebuild {
        id: u64,
    },
    ConfirmRollingRestart,
    /// A mutating operator command on node `node`: y runs it.
    ConfirmCommand {
        name: String,
        node: u64,
    },
    ConfirmRollingDefrag,
}

/// A question on the command line; with `expect`, the answer must be exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub question: String,
    pub expect: Option<String>,
    pub then: Pending,
}
