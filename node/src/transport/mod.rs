//! gRPC transport: the Raft network between nodes ([`raft_network`], [`raft_service`], which
//! also receives leadership-transfer election hints, [`election_holds`]), cached connections
//! to peers for forwarding client calls ([`peers`]), and TLS ([`tls`]).

pub mod election_holds;
pub mod peer_storage;
pub mod peers;
pub mod raft_network;
pub mod raft_service;
pub mod tls;

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

static SOURCE_IP: OnceLock<IpAddr> = OnceLock::new();

/// From now on every channel this process opens dials from `ip` (a node's `--source-ip`):
/// on a host with several addresses this picks the one other nodes, their firewalls and any
/// proxy in between see as this node's. Set once, at startup; later calls change nothing.
pub fn use_source_ip(ip: IpAddr) {
    let _ = SOURCE_IP.set(ip);
}

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
        .local_address(SOURCE_IP.get().copied())
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// The status message plus its innermost cause (e.g. "Connection refused"), which tonic
/// keeps out of the message.
pub fn describe(status: &tonic::Status) -> String {
    let msg = status.message();
    let mut text = if msg.is_empty() {
        format!("{:?}", status.code())
    } else {
        msg.to_string()
    };
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c.to_string());
        cause = c.source();
    }
    if let Some(inner) = innermost.filter(|i| !text.contains(i.as_str())) {
        text = format!("{text}: {inner}");
    }
    text
}
