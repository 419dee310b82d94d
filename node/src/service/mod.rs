//! The node's client-facing logic, shared by the gRPC and HTTP surfaces: validated writes
//! through group commit (forwarded to the leader when this node follows), linearizable or
//! stale reads, status and membership changes.

pub mod admin;
pub mod backup;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use serde::Serialize;

use crate::error::NodeError;
use crate::pb;
use crate::raft::compact::Compactor;
use crate::raft::proposer::{Proposer, Submit};
use crate::raft::read_index::ReadBatcher;
use crate::security::cluster_secret::ClusterSecret;
use crate::store::KvReader;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::sampler::Sampler;
use crate::transport::peers::Peers;
use crate::types::{validate_entry, Command, CommandResult, NodeAddr, NodeId, Raft, Request};

/// How long a write or read barrier may wait for the cluster before giving up.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a membership change may wait for its commit before the caller is answered (the
/// change itself goes on).
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

/// A member as reported to clients.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: NodeId,
    pub grpc: String,
    pub http: String,
    pub voter: bool,
}

/// One node's view of itself and the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct StatusInfo {
    pub id: NodeId,
    pub grpc: String,
    pub http: String,
    pub role: &'static str,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub members: Vec<MemberInfo>,
    pub storage_keys: u64,
    pub storage_bytes: u64,
    pub cluster_id: String,
}

impl From<StatusInfo> for pb::NodeStatus {
    fn from(s: StatusInfo) -> pb::NodeStatus {
        pb::NodeStatus {
            id: s.id,
            grpc: s.grpc,
            http: s.http,
            role: s.role.to_string(),
            term: s.term,
            leader_id: s.leader_id,
            last_log_index: s.last_log_index,
            committed: s.committed,
            applied: s.applied,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
            members: s.members.into_iter().map(Into::into).collect(),
            storage_keys: s.storage_keys,
            storage_bytes: s.storage_bytes,
            cluster_id: s.cluster_id,
            ..Default::default()
        }
    }
}

impl From<MemberInfo> for pb::Member {
    fn from(m: MemberInfo) -> pb::Member {
        pb::Member {
            id: m.id,
            grpc: m.grpc,
            http: m.http,
            voter: m.voter,
        }
    }
}

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

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
    /// One leadership transfer at a time.
    transfer: tokio::sync::Mutex<()>,
}

/// The status sampler and the compactor: what keeps the node measured and its disk in check.
pub struct Upkeep {
    pub sampler: Sampler,
    pub compactor: Compactor,
}

/// Sends batches to the local Raft, or forwards them to the leader.
pub struct RaftSink {
    raft: Raft,
    peers: Peers,
}

impl RaftSink {
    /// Proposes on this node only; `forward` says whether a follower may pass it on.
    async fn write(
        &self,
        commands: Vec<Command>,
        forward: bool,
    ) -> Result<Vec<CommandResult>, NodeError> {
        if !forward {
            return self.write_once(commands, false).await;
        }
        // A forwarded batch that reaches a leader just as it hands over leadership (see
        // `transfer.rs`) is refused there with NoLeader before it is appended: once this
        // node has heard of the new leader, the batch is sent again, to it.
        let mut attempts = 0;
        loop {
            let leader_before = self.raft.metrics().borrow().current_leader;
            match self.write_once(commands.clone(), true).await {
                Err(NodeError::NoLeader) if attempts < 2 && leader_before.is_some() => {
                    attempts += 1;
                    let mut rx = self.raft.metrics();
                    let changed = tokio::time::timeout(
                        Duration::from_secs(2),
                        rx.wait_for(|m| {
                            m.current_leader.is_some() && m.current_leader != leader_before
                        }),
                    )
                    .await;
                    if !matches!(changed, Ok(Ok(_))) {
                        return Err(NodeError::NoLeader);
                    }
                }
                other => return other,
            }
        }
    }

    async fn write_once(
        &self,
        commands: Vec<Command>,
        forward: bool,
    ) -> Result<Vec<CommandResult>, NodeError> {
        let request = Request { commands };
        let copy = forward.then(|| request.commands.clone());
        let outcome = tokio::time::timeout(CLUSTER_TIMEOUT, self.raft.client_write(request))
            .await
            .map_err(|_| NodeError::Timeout(CLUSTER_TIMEOUT))?;
        match outcome {
            Ok(resp) => Ok(resp.data.results),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                match (copy, f.leader_id, f.leader_node) {
                    (Some(commands), Some(leader), Some(node)) => {
                        self.forward(leader, &node, commands).await
                    }
                    _ => Err(NodeError::NoLeader),
                }
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(NodeError::Membership(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(NodeError::Internal(format!("raft stopped: {e}"))),
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        node: &NodeAddr,
        commands: Vec<Command>,
    ) -> Result<Vec<CommandResult>, NodeError> {
        let encoded =
            bincode::serialize(&commands).map_err(|e| NodeError::Internal(e.to_string()))?;
        let mut client = self.leader_client(leader, node)?;
        let mut req = tonic::Request::new(pb::ProposeRequest { commands: encoded });
        req.set_timeout(CLUSTER_TIMEOUT);
        let reply = client
            .propose(req)
            .await
            .map_err(|s| leader_error(leader, node, s))?;
        bincode::deserialize(&reply.into_inner().results)
            .map_err(|e| NodeError::Internal(e.to_string()))
    }

    /// The leader's read index, asked by a follower.
    async fn remote_read_index(&self, leader: NodeId, node: &NodeAddr) -> Result<u64, NodeError> {
        let mut client = self.leader_client(leader, node)?;
        let mut req = tonic::Request::new(pb::ReadIndexRequest {});
        req.set_timeout(CLUSTER_TIMEOUT);
        let reply = client
            .read_index(req)
            .await
            .map_err(|s| leader_error(leader, node, s))?;
        Ok(reply.into_inner().applied_index)
    }

    fn leader_client(
        &self,
        leader: NodeId,
        node: &NodeAddr,
    ) -> Result<crate::transport::peers::PeerClient, NodeError> {
        self.peers
            .node_client(&node.grpc)
            .map_err(|s| leader_error(leader, node, s))
    }
}

/// What a failed call to the leader means for the client that caused it.
fn leader_error(leader: NodeId, node: &NodeAddr, s: tonic::Status) -> NodeError {
    match s.code() {
        tonic::Code::Unavailable if s.message().starts_with("no leader") => NodeError::NoLeader,
        // Unknown and Cancelled are what tonic makes of a connection that broke mid-call
        // (the leader was killed or cut off): unreachable, not an internal error.
        tonic::Code::Unavailable
        | tonic::Code::InvalidArgument
        | tonic::Code::Unknown
        | tonic::Code::Cancelled => NodeError::LeaderUnreachable {
            leader,
            addr: node.grpc.clone(),
            reason: crate::transport::describe(&s),
        },
        tonic::Code::DeadlineExceeded => NodeError::Timeout(CLUSTER_TIMEOUT),
        _ => NodeError::Internal(format!("leader {leader}: {}", s.message())),
    }
}

impl Submit for RaftSink {
    async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>, NodeError> {
        self.write(commands, true).await
    }
}

/// One leadership check with a quorum; the read log id's index is what reads wait for.
async fn leader_read_index(raft: Raft) -> Result<u64, NodeError> {
    match tokio::time::timeout(CLUSTER_TIMEOUT, raft.get_read_log_id()).await {
        Err(_) => Err(NodeError::Timeout(CLUSTER_TIMEOUT)),
        Ok(Ok((read_log_id, _applied))) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
            Err(NodeError::NoLeader)
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => Err(
            NodeError::Rejected(format!("leadership not confirmed by a quorum: {e}")),
        ),
        Ok(Err(RaftError::Fatal(e))) => Err(NodeError::Internal(format!("raft stopped: {e}"))),
    }
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
        let sink = Arc::new(RaftSink {
            raft: raft.clone(),
            peers: Peers::new(secret),
        });
        let batch_metrics = metrics.clone();
        let proposer = Proposer::start(sink.clone(), move |n| batch_metrics.observe_batch(n));
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
                transfer: tokio::sync::Mutex::new(()),
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

    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.compactor.data_dir
    }

    /// "node N at ADDR" for the current leader, or that none is known.
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

    pub(crate) fn proposer(&self) -> &Proposer {
        &self.inner.proposer
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.inner.sink.peers
    }

    pub(crate) fn transfer_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.transfer
    }

    pub(crate) fn addr_of(&self, id: NodeId) -> Option<NodeAddr> {
        self.member_addr(id)
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
        match self.inner.proposer.propose(command).await? {
            CommandResult::Rejected { reason } => Err(NodeError::Rejected(reason)),
            CommandResult::QuotaExceeded { reason } => Err(NodeError::QuotaExceeded(reason)),
            CommandResult::NotFound { reason } => Err(NodeError::NotFound(reason)),
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

    pub async fn put(&self, key: String, value: Vec<u8>) -> Result<u64, NodeError> {
        self.observed("put", async {
            validate_entry(&key, Some(&value)).map_err(NodeError::InvalidInput)?;
            match self.propose(Command::Put { key, value }).await? {
                CommandResult::Put { revision } => Ok(revision),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    pub async fn delete(&self, key: String) -> Result<bool, NodeError> {
        self.observed("delete", async {
            validate_entry(&key, None).map_err(NodeError::InvalidInput)?;
            match self.propose(Command::Delete { key }).await? {
                CommandResult::Delete { existed } => Ok(existed),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    /// Compare-and-set; returns whether it applied and, if not, the current value.
    pub async fn cas(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<(bool, Option<Vec<u8>>), NodeError> {
        self.observed("cas", async {
            validate_entry(&key, new.as_deref()).map_err(NodeError::InvalidInput)?;
            match self.propose(Command::Cas { key, expected, new }).await? {
                CommandResult::Cas { succeeded, current } => Ok((succeeded, current)),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    pub async fn get(&self, key: String, stale: bool) -> Result<Option<Vec<u8>>, NodeError> {
        self.observed("get", async {
            validate_entry(&key, None).map_err(NodeError::InvalidInput)?;
            self.read_barrier(stale).await?;
            self.inner
                .reader
                .get(&key)
                .map_err(|e| NodeError::Internal(e.to_string()))
        })
        .await
    }

    pub async fn scan(
        &self,
        prefix: String,
        limit: usize,
        stale: bool,
    ) -> Result<(crate::store::state_machine::KeyValues, bool), NodeError> {
        self.observed("scan", async {
            self.read_barrier(stale).await?;
            self.inner
                .reader
                .scan(&prefix, limit)
                .map_err(|e| NodeError::Internal(e.to_string()))
        })
        .await
    }

    /// Applies a batch forwarded by a follower; never forwards again.
    pub async fn propose_forwarded(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<CommandResult>, NodeError> {
        // Held back while a leadership transfer has paused proposals, like local ones.
        let _pass = self.inner.proposer.gate().enter().await;
        self.inner.sink.write(commands, false).await
    }

    /// Leader side of a read: the index reads arriving now must see applied. Concurrent
    /// callers (local reads and followers' forwarded reads) share leadership checks.
    pub async fn read_index(&self) -> Result<u64, NodeError> {
        self.inner.leader_reads.read_index().await
    }

    /// Makes the next local read linearizable: on the leader a read index; on a follower the
    /// leader's read index, then waiting until this node has applied up to it.
    pub(crate) async fn read_barrier(&self, stale: bool) -> Result<(), NodeError> {
        if stale {
            return Ok(());
        }
        let leader = self.inner.raft.metrics().borrow().current_leader;
        let index = match leader {
            None => return Err(NodeError::NoLeader),
            Some(l) if l == self.inner.id => self.read_index().await?,
            Some(l) => {
                let node = self.member_addr(l).ok_or_else(|| {
                    NodeError::Internal(format!("leader {l} is not in the membership"))
                })?;
                self.inner.sink.remote_read_index(l, &node).await?
            }
        };
        if self.inner.reader.applied_index() >= index {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(CLUSTER_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|_| NodeError::Timeout(CLUSTER_TIMEOUT))
    }

    fn member_addr(&self, id: NodeId) -> Option<NodeAddr> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().get_node(&id).cloned()
    }

    pub fn status(&self) -> StatusInfo {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                grpc: node.grpc.clone(),
                http: node.http.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let stats = self.inner.reader.stats();
        let committed = self
            .inner
            .committed
            .load(std::sync::atomic::Ordering::Acquire);
        StatusInfo {
            id: self.inner.id,
            grpc: self.inner.addr.grpc.clone(),
            http: self.inner.addr.http.clone(),
            role: role_name(m.state),
            term: m.current_term,
            leader_id: m.current_leader,
            last_log_index: m.last_log_index,
            committed: (committed > 0).then_some(committed),
            applied: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
            storage_keys: stats.keys,
            storage_bytes: stats.bytes,
            cluster_id: self.inner.reader.cluster_id(),
        }
    }

    /// The full status frame: Raft's state as of now plus the sampler's latest figures.
    pub fn frame(&self) -> pb::NodeStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let sample = self.inner.sampler.latest();
        let mut frame: pb::NodeStatus = self.status().into();
        frame.unix_ms = crate::clock::unix_millis();
        frame.vote_term = m.vote.leader_id().term;
        frame.voted_for = m.vote.leader_id().voted_for();
        let last = m.last_log_index.unwrap_or(0);
        frame.followers = m
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.inner.id)
            .map(|(id, matched)| pb::FollowerProgress {
                id: *id,
                matched: matched.map(|l| l.index),
                lag: last.saturating_sub(matched.map(|l| l.index).unwrap_or(0)),
            })
            .collect();
        frame.millis_since_quorum_ack = m.millis_since_quorum_ack;
        frame.uptime_ms = sample.uptime_ms;
        frame.rss_bytes = sample.rss_bytes;
        frame.cpu_percent = sample.cpu_percent;
        frame.ops = sample.ops.clone();
        frame.errors = sample.errors.clone();
        frame.sled_size_on_disk = sample.sled_size_on_disk;
        frame.data_dir_bytes = sample.data_dir_bytes;
        frame.fs_total_bytes = sample.fs_total_bytes;
        frame.fs_free_bytes = sample.fs_free_bytes;
        frame.gc = Some(sample.gc);
        frame.last_backup_unix_ms = self.inner.reader.last_backup_ms();
        frame.quotas = match self.inner.reader.tenants() {
            Ok(tenants) => tenants
                .iter()
                .map(crate::service::admin::tenant_usage)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read tenant usage for the status frame");
                Vec::new()
            }
        };
        frame
    }

    /// Snapshot, purge and flush on this node (see [`crate::raft::compact`]).
    pub async fn compact(&self) -> Result<pb::CompactReply, NodeError> {
        let mut reply = self
            .observed("compact", self.inner.compactor.run(&self.inner.sampler))
            .await?;
        reply.node_id = self.inner.id;
        Ok(reply)
    }

    /// Adds (or re-adds) a learner; with `blocking`, answers once it has caught up.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: NodeAddr,
        blocking: bool,
    ) -> Result<u64, NodeError> {
        self.observed("add_learner", async {
            if addr.grpc.is_empty() || addr.http.is_empty() {
                return Err(NodeError::InvalidInput(
                    "a new member needs both a gRPC and an HTTP address".into(),
                ));
            }
            let result = self.inner.raft.add_learner(id, addr, blocking).await;
            self.membership_result(result)
        })
        .await
    }

    /// Sets the voters to exactly `voters`; with `retain`, removed voters stay as learners.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
    ) -> Result<u64, NodeError> {
        if voters.is_empty() {
            return Err(NodeError::InvalidInput("the new voter set is empty".into()));
        }
        self.change_members(openraft::ChangeMembers::ReplaceAllVoters(voters), retain)
            .await
    }

    /// Drops members (voters or learners) from the cluster.
    pub async fn remove_members(&self, ids: BTreeSet<NodeId>) -> Result<u64, NodeError> {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        for id in &ids {
            if membership.get_node(id).is_none() {
                return Err(NodeError::NotFound(format!(
                    "node {id} is not a member of the cluster"
                )));
            }
        }
        if voters.iter().all(|v| ids.contains(v)) {
            return Err(NodeError::InvalidInput(
                "that would remove every voter".into(),
            ));
        }
        let removed_voters: BTreeSet<NodeId> = voters.intersection(&ids).copied().collect();
        let learners: BTreeSet<NodeId> = ids.difference(&removed_voters).copied().collect();
        let mut index = 0;
        if !removed_voters.is_empty() {
            let rest = voters.difference(&removed_voters).copied().collect();
            index = self.change_membership(rest, false).await?;
        }
        if !learners.is_empty() {
            index = self
                .change_members(openraft::ChangeMembers::RemoveNodes(learners), false)
                .await?;
        }
        Ok(index)
    }

    async fn change_members(
        &self,
        voters: openraft::ChangeMembers<NodeId, NodeAddr>,
        retain: bool,
    ) -> Result<u64, NodeError> {
        self.observed("change_membership", async {
            // openraft drives both steps (joint, then final) from this call: run it on its
            // own task so a client that gives up cannot leave the cluster in the joint
            // configuration.
            let raft = self.inner.raft.clone();
            let task = tokio::spawn(async move { raft.change_membership(voters, retain).await });
            match tokio::time::timeout(MEMBERSHIP_TIMEOUT, task).await {
                Ok(Ok(result)) => self.membership_result(result),
                Ok(Err(e)) => Err(NodeError::Internal(format!("membership change task: {e}"))),
                Err(_) => Err(NodeError::Membership(format!(
                    "not committed within {MEMBERSHIP_TIMEOUT:?}: a change needs a majority of \
                     both the old and the new voters to be reachable; it stays in the log and \
                     completes by itself once they are (check `opsdeck status`)"
                ))),
            }
        })
        .await
    }

    fn membership_result(
        &self,
        result: Result<
            openraft::raft::ClientWriteResponse<crate::types::TypeConfig>,
            RaftError<NodeId, ClientWriteError<NodeId, NodeAddr>>,
        >,
    ) -> Result<u64, NodeError> {
        match result {
            Ok(resp) => Ok(resp.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(match f.leader_node {
                    Some(node) => NodeError::Rejected(format!(
                        "membership changes go to the leader: node {} at {}",
                        f.leader_id.unwrap_or_default(),
                        node.grpc
                    )),
                    None => NodeError::NoLeader,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(NodeError::Membership(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(NodeError::Internal(format!("raft stopped: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_to_the_leader_is_unreachable_not_internal() {
        let node = NodeAddr {
            grpc: "10.0.0.3:7101".into(),
            http: "10.0.0.3:7201".into(),
        };
        for broken in [
            tonic::Status::unknown("transport error"),
            tonic::Status::cancelled("operation was canceled"),
            tonic::Status::unavailable("tcp connect error"),
        ] {
            let e = leader_error(3, &node, broken);
            assert!(
                matches!(e, NodeError::LeaderUnreachable { leader: 3, .. }),
                "{e}"
            );
        }
        let refused = tonic::Status::unavailable(NodeError::NoLeader.to_string());
        assert!(matches!(
            leader_error(3, &node, refused),
            NodeError::NoLeader
        ));
    }
}
