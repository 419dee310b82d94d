//! Leadership transfer. openraft 0.9 has no transfer API, and a voter rejects votes while
//! it has heard from a leader within the leader lease (= election_timeout_max, see
//! openraft's `Engine::handle_vote_req`), so the leader arranges one itself:
//!
//! 1. check the target is a voter other than itself;
//! 2. check the target answers and is within [`PAUSE_LAG`] entries (else refuse, writes
//!    never paused); pause this node's proposer (queued writes wait; forwarded batches wait too) and wait
//!    until the target's matched index is the leader's last log index (up to
//!    [`CATCH_UP_WAIT`], else refuse saying how far behind the target is);
//! 3. stop sending heartbeats, and tell every other voter to hold its own elections off
//!    for a bounded time (each re-enables elections itself when the hold ends, so a
//!    transferer that crashes cannot leave a node unable to elect; the receiving side is
//!    `transport::election_holds`);
//! 4. once the lease has passed on the followers, tell the target to campaign: it has the
//!    longest log and nobody else campaigns, so it wins;
//! 5. wait until the target is leader (up to [`ELECTION_WAIT`]).
//!
//! Heartbeats and proposals resume when the transfer ends, however it ends (a drop guard).
//! Writes queued on the old leader then find it a follower and are forwarded to the new one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::member_addr;
use super::proposer::{PauseGate, PauseGuard};
use crate::error::NodeError;
use crate::pb;
use crate::transport::peers::Peers;
use crate::types::{NodeAddr, NodeId, Raft};

/// How long the target may take to match the leader's log once proposals are paused.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(3);
/// Writes pause only once the target is at most this many entries behind.
pub const PAUSE_LAG: u64 = 1_000;
/// How long the target may take to win its election.
pub const ELECTION_WAIT: Duration = Duration::from_secs(5);
/// Added to the lease before the target campaigns (scheduling slack).
const LEASE_MARGIN: Duration = Duration::from_millis(50);

/// Restores the leader when the transfer ends: heartbeats on, proposals resumed, holds
/// released.
struct Restore {
    raft: Raft,
    heartbeats_off: bool,
    holders: Vec<(NodeId, NodeAddr)>,
    peers: Arc<Peers>,
    from: NodeId,
    term: u64,
    _pause: PauseGuard,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.heartbeats_off {
            self.raft.runtime_config().heartbeat(true);
        }
        if !self.holders.is_empty() {
            let (peers, from) = (self.peers.clone(), self.from);
            let (holders, term) = (self.holders.clone(), self.term);
            tokio::spawn(async move {
                send_hints(&peers, from, &holders, term, 0, false).await;
            });
        }
    }
}

/// Sends one election hint from leader `from` to each of `to`; answers the failures as
/// (node, reason).
async fn send_hints(
    peers: &Peers,
    from: NodeId,
    to: &[(NodeId, NodeAddr)],
    term: u64,
    hold_ms: u64,
    campaign: bool,
) -> Vec<(NodeId, String)> {
    let sends = to.iter().map(|(id, addr)| async move {
        let mut client = peers
            .raft_client(&addr.grpc)
            .map_err(|s| (*id, s.message().to_string()))?;
        let mut req = tonic::Request::new(pb::ElectionHintRequest {
            leader_id: from,
            term,
            hold_ms,
            campaign,
        });
        req.set_timeout(Duration::from_secs(1));
        client
            .election_hint(req)
            .await
            .map(|_| ())
            .map_err(|s| (*id, format!("{} at {}: {}", id, addr.grpc, s.message())))
    });
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// A node's means to hand its leadership over: its Raft, its peers, the gate its proposals
/// pass. One per node.
pub struct Transfer {
    id: NodeId,
    raft: Raft,
    peers: Arc<Peers>,
    gate: PauseGate,
    /// One leadership transfer at a time.
    running: tokio::sync::Mutex<()>,
}

impl Transfer {
    pub fn new(id: NodeId, raft: Raft, peers: Arc<Peers>, gate: PauseGate) -> Transfer {
        Transfer {
            id,
            raft,
            peers,
            gate,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Hands leadership to voter `to` (see the module docs). Only the leader does this; a
    /// follower refuses, naming the leader.
    pub async fn run(&self, to: NodeId) -> Result<pb::TransferLeaderReply, NodeError> {
        let _one = self.running.try_lock().map_err(|_| {
            NodeError::Rejected("a leadership transfer is already in progress on this node".into())
        })?;
        let started = Instant::now();
        let raft = self.raft.clone();
        let m = raft.metrics().borrow().clone();
        let me = self.id;
        if m.state != ServerState::Leader {
            return Err(match m.current_leader.and_then(|l| Some((l, member_addr(&raft, l)?))) {
                Some((l, addr)) => NodeError::Rejected(format!(
                    "node {me} is not the leader; transfer-leader goes to the leader, node {l} at {}",
                    addr.grpc
                )),
                None => NodeError::NoLeader,
            });
        }
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if to == me {
            return Err(NodeError::InvalidInput(format!(
                "node {to} is already the leader"
            )));
        }
        let Some(target) = membership.get_node(&to).cloned() else {
            let members: Vec<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
            return Err(NodeError::NotFound(format!(
                "node {to} is not a member of the cluster (members: {members:?})"
            )));
        };
        if !voters.contains(&to) {
            return Err(NodeError::Rejected(format!(
                "node {to} is a learner, not a voter: only a voter can lead (promote it first)"
            )));
        }
        if membership.get_joint_config().len() > 1 {
            return Err(NodeError::Rejected(
                "a membership change is in progress; retry when it has finished".into(),
            ));
        }
        let holders: Vec<(NodeId, NodeAddr)> = voters
            .iter()
            .filter(|id| **id != me && **id != to)
            .filter_map(|id| Some((*id, membership.get_node(id)?.clone())))
            .collect();
        let lease = Duration::from_millis(raft.config().election_timeout_max);

        // 1b. Before writes pause: the target must answer, and be near the end of the log.
        let mut probe = self
            .peers
            .node_client(&target.grpc)
            .map_err(|s| NodeError::Rejected(s.message().to_string()))?;
        let mut req = tonic::Request::new(pb::StatusRequest {});
        req.set_timeout(Duration::from_secs(1));
        let answered = match tokio::time::timeout(Duration::from_secs(2), probe.status(req)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) => Err(s.message().to_string()),
            Err(_) => Err("no answer within 2s".to_string()),
        };
        if let Err(why) = answered {
            return Err(NodeError::Rejected(format!(
                "node {to} at {} does not answer ({why}); it cannot take over, pick another voter",
                target.grpc
            )));
        }
        let matched_of = |m: &openraft::RaftMetrics<NodeId, NodeAddr>| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&to).cloned())
                .flatten()
                .map(|l| l.index)
        };
        let mut rx = raft.metrics();
        let near = tokio::time::timeout(
            CATCH_UP_WAIT,
            rx.wait_for(|m| {
                let last = m.last_log_index.unwrap_or(0);
                matched_of(m).is_some_and(|i| last.saturating_sub(i) <= PAUSE_LAG)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !near {
            let m = raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let matched = matched_of(&m).unwrap_or(0);
            return Err(NodeError::Rejected(format!(
                "node {to} is {} entries behind (log index {matched} of the leader's {last}) \
                 and did not close in within {CATCH_UP_WAIT:?}; retry once it has caught up \
                 (see `opsdeck status`)",
                last.saturating_sub(matched)
            )));
        }

        // 2. Stop the log from growing, then wait for the target to have all of it.
        let paused_at = Instant::now();
        let mut restore = Restore {
            raft: raft.clone(),
            heartbeats_off: false,
            holders: Vec::new(),
            peers: self.peers.clone(),
            from: me,
            term: m.current_term,
            _pause: self.gate.pause(),
        };
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        let _ = tokio::time::timeout_at(deadline, self.gate.drained()).await;
        let caught_up = tokio::time::timeout_at(
            deadline,
            rx.wait_for(|m| {
                let last = m.last_log_index;
                m.state != ServerState::Leader || (last.is_some() && matched_of(m) == last)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(NodeError::Rejected(format!(
                "node {me} lost leadership during the transfer (leader now: {:?})",
                m.current_leader
            )));
        }
        if !caught_up {
            let last = m.last_log_index.unwrap_or(0);
            let matched = matched_of(&m).unwrap_or(0);
            return Err(NodeError::Rejected(format!(
                "node {to} did not catch up within {CATCH_UP_WAIT:?}: it has log index {matched} \
                 of the leader's {last} ({} entries behind); retry once it has caught up \
                 (see `opsdeck status`)",
                last.saturating_sub(matched)
            )));
        }
        let catch_up = paused_at.elapsed();

        // 3. No heartbeats; no competing candidates.
        raft.runtime_config().heartbeat(false);
        restore.heartbeats_off = true;
        let hold = lease + LEASE_MARGIN + ELECTION_WAIT;
        restore.holders = holders.clone();
        for (id, why) in send_hints(
            &self.peers,
            me,
            &holders,
            m.current_term,
            hold.as_millis() as u64,
            false,
        )
        .await
        {
            // A voter we cannot reach cannot campaign against the target either.
            tracing::warn!(node = id, reason = %why, "transfer: election hold not delivered");
        }

        // 4. Let the lease run out on the followers, then have the target campaign.
        tokio::time::sleep(lease + LEASE_MARGIN).await;
        let failed = send_hints(
            &self.peers,
            me,
            &[(to, target.clone())],
            m.current_term,
            0,
            true,
        )
        .await;
        if let Some((_, why)) = failed.first() {
            return Err(NodeError::LeaderUnreachable {
                leader: to,
                addr: target.grpc.clone(),
                reason: format!("could not ask it to campaign: {why}"),
            });
        }

        // 5. The target wins (this node learns of it from the new leader's first append).
        let elected = tokio::time::timeout(
            ELECTION_WAIT,
            rx.wait_for(|m| m.current_leader == Some(to) && m.state != ServerState::Leader),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let m = raft.metrics().borrow().clone();
        if !elected {
            return Err(NodeError::Rejected(format!(
                "node {to} did not become leader within {ELECTION_WAIT:?} (leader now: {}, \
                 term {}); the cluster keeps working, retry the transfer",
                m.current_leader
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "none".into()),
                m.current_term
            )));
        }
        let writes_paused = paused_at.elapsed();
        drop(restore);
        let took = started.elapsed();
        tracing::info!(
            from = me,
            to,
            term = m.current_term,
            took_ms = took.as_millis() as u64,
            writes_paused_ms = writes_paused.as_millis() as u64,
            "leadership transferred"
        );
        Ok(pb::TransferLeaderReply {
            from: me,
            to,
            term: m.current_term,
            took_ms: took.as_millis() as u64,
            writes_paused_ms: writes_paused.as_millis() as u64,
            catch_up_ms: catch_up.as_millis() as u64,
        })
    }
}
