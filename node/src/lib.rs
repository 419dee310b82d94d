//! `opsdeck-node`: a sled-backed openraft node holding the replicated opsdeck ledger.
//!
//! Layout: [`types`] (Raft config and commands), [`store`] (log store and state machine on
//! sled), [`transport`] (gRPC Raft network, client and server), [`proposer`] (group commit
//! and forwarding to the leader), [`api`] (gRPC and HTTP surfaces), [`metrics`], and
//! [`server`] which wires one node together.

pub mod api;
pub mod backup;
pub mod clock;
pub mod error;
pub mod raft;
pub mod security;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod types;

/// Generated protobuf and gRPC code for `proto/opsdeck.proto`.
pub mod pb {
    tonic::include_proto!("opsdeck.v1");
}
