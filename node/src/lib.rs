//! `opsdeck-node`: a sled-backed openraft node holding the replicated opsdeck ledger.
//!
//! Layout, lowest layer first; a module imports only from the layers before it (and
//! [`pb`], the generated protocol code, which every layer may use):
//!
//! - [`clock`]: the wall clock (`unix_millis`); [`failpoint`]: the storage failpoints
//!   (test builds only); [`sums`]: the state digest's arithmetic (the per-pair term, the
//!   stored sums), shared by the store and the backup format; [`merkle`]: the hash tree
//!   over the data and the per-key proof, shared by the store and the CLI;
//! - [`security`]: API keys, quotas, the audit record, the cluster secret, the request check;
//! - [`types`]: the Raft type configuration and the replicated commands (which carry
//!   security's key and quota records);
//! - [`error`]: [`error::NodeError`], what a client can be told;
//! - [`backup`]: the backup file format, shared with the CLI;
//! - [`store`]: the Raft log and the state machine on sled;
//! - [`telemetry`]: logs, cluster events, the status sampler, metrics;
//! - [`transport`]: the gRPC Raft network, peer connections, TLS;
//! - [`raft`]: group commit, forwarding to the leader, read barriers, compaction,
//!   leadership transfer;
//! - [`service`]: [`service::NodeCore`], what every client call does;
//! - [`api`]: the gRPC and HTTP surfaces over it;
//! - [`server`]: wires one node together and runs it.

pub mod api;
pub mod backup;
pub mod clock;
pub mod error;
pub mod failpoint;
pub mod merkle;
pub mod raft;
pub mod security;
pub mod server;
pub mod service;
pub mod store;
pub mod sums;
pub mod telemetry;
pub mod transport;
pub mod types;

/// Generated protobuf and gRPC code for `proto/opsdeck.proto`.
pub mod pb {
    tonic::include_proto!("opsdeck.v1");
}
