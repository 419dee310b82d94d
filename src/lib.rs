//! `opsdeck`: the library behind the one binary — the Raft node's CLI, the dev cluster, the
//! console and the CLI verbs. `src/main.rs` only parses the command line and dispatches;
//! everything else lives here, so fuzz targets and tests can call the parsers directly.

pub mod alerts;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod format;
pub mod ops;
pub mod verbs;

#[cfg(test)]
mod test_text;
