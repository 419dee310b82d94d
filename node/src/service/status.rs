//! What a node reports about itself and the cluster: [`StatusInfo`] (HTTP `/cluster/*`,
//! membership replies) and the full status frame (gRPC Status and Watch, `/metrics`).

use std::collections::BTreeSet;

use openraft::ServerState;
use serde::Serialize;

use super::NodeCore;
use crate::pb;
use crate::store::digest::{Digest, Lookup};

/// The frame's digest checkpoint is at a multiple of this many entries.
pub const DIGEST_CHECKPOINT_STEP: u64 = 256;
use crate::types::NodeId;

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

impl NodeCore {
    /// Why Raft stopped on this node, if it did (openraft stops on a fatal storage error).
    pub fn raft_stopped(&self) -> Option<String> {
        let m = self.inner.raft.metrics().borrow().clone();
        match m.running_state {
            Err(fatal) => Some(fatal.to_string()),
            Ok(()) if m.state == ServerState::Shutdown => Some("raft was shut down".into()),
            Ok(()) => None,
        }
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

    /// The state digest at `index` (None: the newest), if this node still holds it.
    pub fn digest(&self, index: Option<u64>) -> pb::DigestReply {
        let reader = &self.inner.reader;
        let (oldest, newest) = reader.digests_held().unwrap_or((0, 0));
        let reply = pb::DigestReply {
            node_id: self.inner.id,
            index: index.unwrap_or(0),
            oldest,
            newest,
            ..Default::default()
        };
        match reader.digest(index) {
            Lookup::At(h) => pb::DigestReply {
                held: true,
                index: h.index,
                digest: h.total.0.to_vec(),
                data: h.data.0.to_vec(),
                tenants: h.tenants.0.to_vec(),
                merkle_root: h.merkle.0.to_vec(),
                ..reply
            },
            Lookup::NotHeld { .. } => reply,
            Lookup::Off => pb::DigestReply { off: true, ..reply },
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
            .map(|(id, matched)| {
                let send = self.inner.snapshot_sends.in_progress(*id);
                pb::FollowerProgress {
                    id: *id,
                    matched: matched.map(|l| l.index),
                    lag: last.saturating_sub(matched.map(|l| l.index).unwrap_or(0)),
                    snapshot_sent_bytes: send.as_ref().map(|s| s.sent),
                    // The snapshot being sent is the last one this node built or installed.
                    snapshot_bytes: send.as_ref().map(|_| sample.gc.last_snapshot_bytes),
                    storage_full: self.inner.peer_storage.full(*id).is_some(),
                    snapshot_refused: send.and_then(|s| s.refused).unwrap_or_default(),
                }
            })
            .collect();
        frame.millis_since_quorum_ack = m.millis_since_quorum_ack;
        frame.uptime_ms = sample.uptime_ms;
        // From one sample, so the two figures agree (the frame's own time is later).
        frame.started_unix_ms = sample
            .unix_ms
            .saturating_sub(i64::try_from(sample.uptime_ms).unwrap_or(i64::MAX));
        frame.rss_bytes = sample.rss_bytes;
        frame.cpu_percent = sample.cpu_percent;
        frame.ops = sample.ops.clone();
        frame.errors = sample.errors.clone();
        frame.sled_size_on_disk = sample.sled_size_on_disk;
        frame.data_dir_bytes = sample.data_dir_bytes;
        frame.fs_total_bytes = sample.fs_total_bytes;
        frame.fs_free_bytes = sample.fs_free_bytes;
        frame.gc = Some(sample.gc.clone());
        frame.last_backup_unix_ms = self.inner.reader.last_backup_ms();
        frame.last_backup_verified_unix_ms = self.inner.reader.last_backup_verified_ms();
        frame.writes_paused = self
            .inner
            .reader
            .writes_pause()
            .map(|p| crate::service::admin::writes_paused(&p));
        let guard = &self.inner.guard;
        frame.storage = Some(pb::StorageState {
            full: guard.pressure().is_some(),
            free_bytes: if guard.reserve() == 0 {
                sample.fs_free_bytes
            } else {
                guard.free()
            },
            reserve_bytes: guard.reserve(),
        });
        frame.raft_stopped = self.raft_stopped();
        let state_digest = |(index, d): (u64, Digest)| pb::StateDigest {
            index,
            digest: d.0.to_vec(),
        };
        if let Lookup::At(h) = self.inner.reader.digest(None) {
            frame.digest = Some(state_digest((h.index, h.total)));
        }
        frame.digest_checkpoint = self
            .inner
            .reader
            .digest_checkpoint(DIGEST_CHECKPOINT_STEP)
            .map(state_digest);
        frame.voters_reachable = (m.state == ServerState::Leader).then(|| {
            // A healthy follower hears from the leader every heartbeat and answers; one
            // silent for a whole election timeout would already be campaigning.
            let window =
                std::time::Duration::from_millis(self.inner.raft.config().election_timeout_max);
            let reachable = m
                .membership_config
                .membership()
                .voter_ids()
                .filter(|id| {
                    *id == self.inner.id || self.inner.peer_storage.answered_within(*id, window)
                })
                .count();
            u32::try_from(reachable).unwrap_or(u32::MAX)
        });
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
}
