//! The node's client-facing surfaces: gRPC ([`grpc`]) for the CLI, console and peers, and
//! HTTP ([`http`]) for curl users and Prometheus. Both are thin adapters over
//! [`crate::service::NodeCore`], and answer errors from one table ([`status`]). HTTP
//! connections close lingering ([`linger`]). A test build also has
//! `/debug/failpoints` ([`failpoints`]). `/debug/datadir` ([`datadir`]) lists the data
//! dir's file names and sizes for diagnostics bundles.

pub mod datadir;
pub mod failpoints;
pub mod grpc;
pub mod http;
pub mod linger;
pub mod status;
