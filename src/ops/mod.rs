//! The operations actions (backup, restore, membership changes): one implementation each,
//! called by the CLI verbs and by the console's dialogs, reporting progress to a callback.

pub mod backup;
