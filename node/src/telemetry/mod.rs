//! What a node tells observers about itself: recent log records ([`logs`], written to
//! [`log_file`] too) and cluster events ([`events`]), each kept in a bounded [`hub::Hub`]
//! and streamed by the gRPC `Watch` call together with periodic status frames; the figures
//! behind those frames ([`sampler`], [`ops`]); and Prometheus [`metrics`].

pub mod events;
pub mod hub;
pub mod log_file;
pub mod logs;
pub mod metrics;
pub mod ops;
pub mod sampler;

use std::sync::Arc;

/// The node's telemetry hubs, shared by the Watch service.
#[derive(Clone)]
pub struct Telemetry {
    pub logs: Arc<logs::LogHub>,
    pub events: Arc<events::EventHub>,
}
