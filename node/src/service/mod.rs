//! The node's client-facing logic, shared by the gRPC and HTTP surfaces: [`NodeCore`] and
//! what it does, by caller: reads and writes ([`kv`]), status ([`status`]), membership and
//! leadership ([`membership`]), keys, quotas and audit ([`admin`]), backups and restores
//! ([`backup`]). This file holds the core itself, its parts and compaction.

pub mod admin;
pub mod backup;
pub mod kv;
pub mod membership;
pub mod status;
pub mod storage;

use std::sync::Arc;
use std::time::Instant;

use crate::error::NodeError;
use crate::pb;
use crate::raft::compact::Compactor;
use crate::raft::forward::{leader_read_index, RaftSink};
use crate::raft::proposer::Proposer;
use crate::raft::read_index::ReadBatcher;
use crate::raft::transfer::Transfer;
use crate::security::cluster_secret::ClusterSecret;
use crate::store::disk_guard::DiskGuard;
use crate::store::KvReader;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::sampler::Sampler;
use crate::transport::peer_storage::PeerStorage;
use crate::transport::peers::Peers;
use crate::transport::raft_network::SnapshotSends;
use crate::types::{Command, CommandResult, NodeAddr, NodeId, Raft};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct NodeCore {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    addr: NodeAddr,
    raft: Raft,
    reader: KvReader,
    proposer: Proposer,
    sink: Arc<RaftSink>,
    leader_reads: ReadBatcher,
    metrics: Arc<Metrics>,
    committed: Arc<std::sync::atomic::AtomicU64>,
    sampler: Sampler,
    compactor: Compactor,
    snapshot_sends: Arc<SnapshotSends>,
    transfer: Transfer,
    /// Clients of other nodes presenting the cluster secret (e.g. to check a new member).
    peers: Arc<Peers>,
    /// This node's free space against its reserve, and what its peers report of theirs.
    guard: Arc<DiskGuard>,
    peer_storage: Arc<PeerStorage>,
}

/// The status sampler and the compactor: what keeps the node measured and its disk in check.
pub struct Upkeep {
    pub sampler: Sampler,
    pub compactor: Compactor,
    /// How far snapshots being sent to followers got (for the status frame).
    pub snapshot_sends: Arc<SnapshotSends>,
    pub guard: Arc<DiskGuard>,
    pub peer_storage: Arc<PeerStorage>,
}

impl NodeCore {
    // Each argument is a separate part `server::start` wires together; a struct holding
    // them would only restate this list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NodeId,
        addr: NodeAddr,
        raft: Raft,
        reader: KvReader,
        metrics: Arc<Metrics>,
        committed: Arc<std::sync::atomic::AtomicU64>,
        secret: ClusterSecret,
        upkeep: Upkeep,
    ) -> NodeCore {
        let peers = Arc::new(Peers::new(secret));
        let sink = Arc::new(RaftSink::new(raft.clone(), peers.clone()));
        let batch_metrics = metrics.clone();
        let proposer = Proposer::start(sink.clone(), move |n| batch_metrics.observe_batch(n));
        let transfer = Transfer::new(id, raft.clone(), peers.clone(), proposer.gate().clone());
        let round_raft = raft.clone();
        let leader_reads = ReadBatcher::start(move || leader_read_index(round_raft.clone()));
        NodeCore {
            inner: Arc::new(Inner {
                id,
                addr,
                raft,
                reader,
                proposer,
                sink,
                leader_reads,
                metrics,
                committed,
                sampler: upkeep.sampler,
                compactor: upkeep.compactor,
                snapshot_sends: upkeep.snapshot_sends,
                transfer,
                peers,
                guard: upkeep.guard,
                peer_storage: upkeep.peer_storage,
            }),
        }
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub fn reader(&self) -> &KvReader {
        &self.inner.reader
    }

    pub fn disk_guard(&self) -> &Arc<DiskGuard> {
        &self.inner.guard
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.compactor.data_dir
    }

    /// "node N at ADDR" for the current leader, or that none is known.
    /// Whether this node is the leader, by its latest Raft metrics.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.id)
    }

    pub fn leader_hint(&self) -> String {
        let leader = self.inner.raft.metrics().borrow().current_leader;
        match leader.and_then(|id| self.member_addr(id).map(|a| (id, a))) {
            Some((id, addr)) => format!("node {id} at {}", addr.grpc),
            None => "no leader is known right now".into(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Runs `f`, recording its latency and outcome under `op`.
    async fn observed<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        let started = Instant::now();
        let result = f.await;
        self.inner
            .metrics
            .observe(op, started.elapsed(), result.as_ref().err());
        result
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResult, NodeError> {
        #[cfg(feature = "chaos-ack-before-commit")]
        if matches!(command, Command::Put { .. }) {
            return Ok(self.ack_before_commit(command));
        }
        self.check_storage()?;
        match self.inner.proposer.propose(command).await? {
            CommandResult::Rejected { reason } => Err(NodeError::Rejected(reason)),
            CommandResult::QuotaExceeded { reason } => Err(NodeError::QuotaExceeded(reason)),
            CommandResult::NotFound { reason } => Err(NodeError::NotFound(reason)),
            CommandResult::WritesPaused { reason } => Err(NodeError::WritesPaused(reason)),
            other => Ok(other),
        }
    }

    /// Deliberately wrong, for the chaos suite only: answers a put as done before the
    /// cluster has committed it (the proposal goes on in the background and may be lost or
    /// be seen late). A node built with this must make the suite's checker fail.
    #[cfg(feature = "chaos-ack-before-commit")]
    fn ack_before_commit(&self, command: Command) -> CommandResult {
        let core = self.clone();
        tokio::spawn(async move {
            let _ = core.inner.proposer.propose(command).await;
        });
        CommandResult::Put { revision: 0 }
    }

    fn member_addr(&self, id: NodeId) -> Option<NodeAddr> {
        crate::raft::member_addr(&self.inner.raft, id)
    }

    /// Snapshot, purge and flush on this node (see [`crate::raft::compact`]).
    pub async fn compact(&self) -> Result<pb::CompactReply, NodeError> {
        let mut reply = self
            .observed("compact", self.inner.compactor.run(&self.inner.sampler))
            .await?;
        reply.node_id = self.inner.id;
        Ok(reply)
    }
}
