//! `opsdeck`: the library behind the one binary — the Raft node's CLI, the dev cluster, the
//! console and the CLI verbs. `src/main.rs` only parses the command line and dispatches;
//! everything else lives here, so fuzz targets and tests can call the parsers directly.

pub mod admin;
pub mod alerts;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster_file;
pub mod compact;
pub mod console;
pub mod dev;
pub mod logs;
pub mod members;
pub mod ops;
pub mod run_node;
pub mod table;
pub mod verbs;

#[cfg(test)]
mod test_text;
