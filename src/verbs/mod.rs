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
pub mod proof;
pub mod writes;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use color_eyre::eyre::Result;

use crate::cli::ClusterArgs;
use crate::client::ClusterClient;
use crate::ops::membership::Progress;

/// A client for the cluster the flags name.
pub fn connect(args: &ClusterArgs) -> Result<ClusterClient> {
    args.target()?.connect()
}

/// Progress lines on stderr when it is a terminal (catch-up at most once a second).
pub fn progress_printer() -> impl FnMut(&Progress) + Send {
    let tty = std::io::stderr().is_terminal();
    let mut last_catch_up: Option<Instant> = None;
    move |p: &Progress| {
        if !tty {
            return;
        }
        if let Progress::CatchingUp(_) = p {
            if last_catch_up.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            last_catch_up = Some(Instant::now());
        }
        eprintln!("{p}");
    }
}

/// Prints a verb's `--json` result: one pretty-printed JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
pub mod debug;
