//! The CLI verbs: one file per verb group, each reading its flags, connecting, calling one
//! operation and printing its result (a table, or JSON with `-o json` / `--json`). Every
//! verb that reaches a cluster reads `config.toml` (`ClusterArgs::target`).

pub mod admin;
pub mod alerts;
pub mod backup;
pub mod bench;
pub mod check;
pub mod cmd;
pub mod compact;
pub mod ctx;
pub mod dev;
pub mod incident;
pub mod kit;
pub mod kv;
pub mod logs;
pub mod members;
pub mod node;
pub mod writes;

use color_eyre::eyre::Result;

use crate::cli::ClusterArgs;
use crate::client::ClusterClient;

/// A client for the cluster the flags name.
pub fn connect(args: &ClusterArgs) -> Result<ClusterClient> {
    args.target()?.connect()
}

/// Prints a verb's `--json` result: one pretty-printed JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
pub mod debug;
