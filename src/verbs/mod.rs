//! The CLI verbs: one file per verb group, each reading its flags, connecting, calling one
//! operation and printing its result (a table, or JSON with `--json`).

pub mod admin;
pub mod alerts;
pub mod bench;
pub mod compact;
pub mod kv;
pub mod logs;
pub mod members;
pub mod node;
