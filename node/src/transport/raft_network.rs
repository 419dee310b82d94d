//! The openraft network over gRPC: each Raft RPC is one unary call whose request and reply
//! are bincode-encoded openraft messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::peer_storage::{self, PeerStorage};
use crate::pb::raft_client::RaftClient;
use crate::pb::RaftPayload;
use crate::security::cluster_secret::{ClusterSecret, SecretInterceptor};
use crate::types::{NodeAddr, NodeId, TypeConfig};

/// Creates a [`Network`] per target node. openraft asks for one per replication stream and
/// also one per leadership check (every linearizable read round), so connections are cached
/// per address: a new client is a clone of an open HTTP/2 channel, not a new TCP handshake.
pub struct NetworkFactory {
    channels: HashMap<String, Channel>,
    secret: ClusterSecret,
    sends: Arc<SnapshotSends>,
    storage: Arc<PeerStorage>,
    pace: std::time::Duration,
}

impl NetworkFactory {
    /// `sends` is where snapshots being sent report how far they got, `storage` where
    /// peers' storage-full reports go; `heartbeat` paces the heartbeats sent in place of
    /// entries to a full peer.
    pub fn new(
        secret: ClusterSecret,
        sends: Arc<SnapshotSends>,
        storage: Arc<PeerStorage>,
        heartbeat: std::time::Duration,
    ) -> NetworkFactory {
        NetworkFactory {
            channels: HashMap::new(),
            secret,
            sends,
            storage,
            pace: heartbeat / 2,
        }
    }
}

/// How far the snapshot being sent to each peer got: bytes acknowledged, whether the
/// last chunk went, and when (unix ms). Read for the status frame's follower progress.
#[derive(Default)]
pub struct SnapshotSends(Mutex<BTreeMap<NodeId, SnapshotSend>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotSend {
    pub sent: u64,
    pub done: bool,
    /// The peer refused the last chunk (no room to load the snapshot), and why; cleared by
    /// the next chunk it takes.
    pub refused: Option<String>,
}

impl SnapshotSends {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, SnapshotSend>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, target: NodeId, send: SnapshotSend) {
        self.lock().insert(target, send);
    }

    /// `target` refused a chunk: the send stays where it got to, marked with `why`.
    fn refused(&self, target: NodeId, why: &str) {
        let mut sends = self.lock();
        let send = sends.entry(target).or_default();
        send.refused = Some(why.to_string());
    }

    /// The snapshot being sent to `target`, if one is in progress.
    pub fn in_progress(&self, target: NodeId) -> Option<SnapshotSend> {
        self.lock().get(&target).filter(|s| !s.done).cloned()
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> Network {
        let channel = match self.channels.get(&node.grpc) {
            Some(c) => Some(c.clone()),
            None => {
                let c = super::lazy_channel(&node.grpc).ok();
                if let Some(c) = &c {
                    self.channels.insert(node.grpc.clone(), c.clone());
                }
                c
            }
        };
        Network {
            target,
            sends: self.sends.clone(),
            storage: self.storage.clone(),
            pace: self.pace,
            client: channel.map(|c| {
                RaftClient::with_interceptor(c, SecretInterceptor(self.secret.clone()))
                    .max_decoding_message_size(256 * 1024 * 1024)
                    .max_encoding_message_size(256 * 1024 * 1024)
            }),
            addr: node.grpc.clone(),
        }
    }
}

pub struct Network {
    target: NodeId,
    sends: Arc<SnapshotSends>,
    storage: Arc<PeerStorage>,
    pace: std::time::Duration,
    addr: String,
    client: Option<RaftClient<InterceptedService<Channel, SecretInterceptor>>>,
}

/// Why a call failed before the remote Raft answered.
#[derive(Debug, thiserror::Error)]
#[error("raft rpc to node {target} at {addr}: {reason}")]
struct TransportError {
    target: NodeId,
    addr: String,
    reason: String,
}

type CallResult<T, E> = Result<T, RPCError<NodeId, NodeAddr, E>>;

impl Network {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RpcKind,
        req: &Req,
        option: &RPCOption,
    ) -> CallResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let fail = |reason: String| TransportError {
            target: self.target,
            addr: self.addr.clone(),
            reason,
        };
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&fail(
                "invalid address".into(),
            ))));
        };
        let data = bincode::serialize(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&fail(e.to_string()))))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            RpcKind::Append => client.append_entries(request).await,
            RpcKind::Vote => client.vote(request).await,
            RpcKind::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => {
                self.storage
                    .record(self.target, peer_storage::read(r.metadata()));
                r.into_inner()
            }
            // A full peer refusing a snapshot: back off as from an unreachable one.
            Err(status) if peer_storage::read(status.metadata()).is_some() => {
                self.storage
                    .record(self.target, peer_storage::read(status.metadata()));
                return Err(RPCError::Unreachable(Unreachable::new(&fail(
                    status.message().to_string(),
                ))));
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&fail(
                    status.message().to_string(),
                ))));
            }
            Err(status) => {
                // A peer without room to load a snapshot refuses its last chunk (see
                // `raft_service`): the status frame says so until a chunk is taken.
                if matches!(kind, RpcKind::Snapshot)
                    && status.code() == tonic::Code::ResourceExhausted
                {
                    self.sends.refused(self.target, status.message());
                }
                return Err(RPCError::Network(NetworkError::new(&fail(
                    status.to_string(),
                ))));
            }
        };
        let result: Result<Resp, E> = bincode::deserialize(&reply.data).map_err(|e| {
            RPCError::Network(NetworkError::new(&fail(format!("undecodable reply: {e}"))))
        })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Bytes of entries one AppendEntries carries at most (always at least one entry).
const APPEND_BYTES_BUDGET: u64 = 2 * 1024 * 1024;

/// How many leading entries fit in `budget` bytes (at least one).
fn prefix_within(entries: &[crate::types::Entry], budget: u64) -> usize {
    let mut total = 0;
    for (i, e) in entries.iter().enumerate() {
        total += bincode::serialized_size(e).unwrap_or(u64::MAX / 2);
        if total > budget {
            return i.max(1);
        }
    }
    entries.len()
}

#[derive(Clone, Copy)]
enum RpcKind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> CallResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        // openraft gives every AppendEntries one heartbeat interval, however many entries it
        // carries; a follower catching up on big entries (restore chunks, large batches)
        // would time out forever. Send a prefix that fits the byte budget and report it as
        // a partial success: openraft sends the rest next.
        // A peer whose storage is full keeps no entries (see `raft_service`): send it the
        // heartbeat part only, paced, and report what it matched.
        if !rpc.entries.is_empty() && self.storage.full(self.target).is_some() {
            tokio::time::sleep(self.pace).await;
            rpc.entries.clear();
            let matched = rpc.prev_log_id;
            return match self.call(RpcKind::Append, &rpc, &option).await? {
                AppendEntriesResponse::Success => {
                    Ok(AppendEntriesResponse::PartialSuccess(matched))
                }
                other => Ok(other),
            };
        }
        let keep = prefix_within(&rpc.entries, APPEND_BYTES_BUDGET);
        if keep == rpc.entries.len() {
            return self.call(RpcKind::Append, &rpc, &option).await;
        }
        rpc.entries.truncate(keep);
        let last = rpc.entries.last().map(|e| e.log_id);
        match self.call(RpcKind::Append, &rpc, &option).await? {
            AppendEntriesResponse::Success => Ok(AppendEntriesResponse::PartialSuccess(last)),
            other => Ok(other),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> CallResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let sent = rpc.offset.saturating_add(rpc.data.len() as u64);
        let reply = self.call(RpcKind::Snapshot, &rpc, &option).await;
        if reply.is_ok() {
            self.sends.record(
                self.target,
                SnapshotSend {
                    sent,
                    done: rpc.done,
                    refused: None,
                },
            );
        }
        reply
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> CallResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(RpcKind::Vote, &rpc, &option).await
    }
}
