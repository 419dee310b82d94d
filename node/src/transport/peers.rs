//! Cached gRPC clients to other members, keyed by address, for forwarding client calls
//! (writes and read-index requests) to the leader. They present the cluster secret.

use std::collections::HashMap;
use std::sync::Mutex;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::pb::node_client::NodeClient;
use crate::pb::raft_client::RaftClient;
use crate::security::cluster_secret::{ClusterSecret, SecretInterceptor};

pub type PeerClient = NodeClient<InterceptedService<Channel, SecretInterceptor>>;
pub type PeerRaftClient = RaftClient<InterceptedService<Channel, SecretInterceptor>>;

pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    secret: ClusterSecret,
}

impl Peers {
    pub fn new(secret: ClusterSecret) -> Peers {
        Peers {
            channels: Mutex::default(),
            secret,
        }
    }

    /// A client for the node service at `addr`, reusing the connection if there is one.
    pub fn node_client(&self, addr: &str) -> Result<PeerClient, tonic::Status> {
        let channel = self.channel(addr)?;
        Ok(
            NodeClient::with_interceptor(channel, SecretInterceptor(self.secret.clone()))
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        )
    }

    /// A client for the Raft service at `addr` (small control calls such as election
    /// hints; replication has its own connections).
    pub fn raft_client(&self, addr: &str) -> Result<PeerRaftClient, tonic::Status> {
        let channel = self.channel(addr)?;
        Ok(RaftClient::with_interceptor(
            channel,
            SecretInterceptor(self.secret.clone()),
        ))
    }

    fn channel(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = super::lazy_channel(addr).map_err(|e| {
                    tonic::Status::invalid_argument(format!("bad peer address {addr}: {e}"))
                })?;
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(channel)
    }
}
