//! gRPC transport: the Raft network between nodes ([`raft_network`], [`raft_service`]) and
//! cached connections to peers for forwarding client calls ([`peers`]).

pub mod peers;
pub mod raft_network;
pub mod raft_service;
pub mod tls;

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// A lazily connecting channel to `addr` (`host:port`). Nothing is dialled until first use,
/// so a dead peer never blocks the caller that creates the channel.
/// With TLS turned on for this process ([`tls::use_client_tls`]) the channel speaks TLS.
pub fn lazy_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = match tls::client_tls() {
        Some(config) => {
            Endpoint::from_shared(format!("https://{addr}"))?.tls_config(config.clone())?
        }
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    };
    Ok(endpoint
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}
