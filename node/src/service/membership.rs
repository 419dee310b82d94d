//! Membership and leadership: adding learners, replacing the voters, removing members, and
//! handing leadership to another voter.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use super::NodeCore;
use crate::error::NodeError;
use crate::pb;
use crate::types::{NodeAddr, NodeId};

/// How long a membership change may wait for its commit before the caller is answered (the
/// change itself goes on).
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node about to be added has to answer the check that it can join.
const JOIN_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

impl NodeCore {
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
            self.check_can_join(id, &addr.grpc).await?;
            let result = self.inner.raft.add_learner(id, addr, blocking).await;
            self.membership_result(result)
        })
        .await
    }

    /// Asks the node at `grpc`, with the cluster secret, who it is before it is added:
    /// replication to a node that refuses the secret, is another id, or belongs to another
    /// cluster would fail forever with the cause only in this node's log. A node that does
    /// not answer is let through (it may not be started yet); replication waits for it.
    async fn check_can_join(&self, id: NodeId, grpc: &str) -> Result<(), NodeError> {
        let mut client = self
            .inner
            .peers
            .node_client(grpc)
            .map_err(|s| NodeError::InvalidInput(s.message().to_string()))?;
        let mut req = tonic::Request::new(pb::StatusRequest {});
        req.set_timeout(JOIN_CHECK_TIMEOUT);
        let status = match tokio::time::timeout(JOIN_CHECK_TIMEOUT, client.status(req)).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => {
                return Err(NodeError::Membership(format!(
                    "node {id} at {grpc} refuses this cluster's secret ({}): it belongs to \
                     another cluster or was started with another cluster secret. Start it \
                     with an empty data dir and --cluster-secret-file naming a copy of this \
                     cluster's cluster.secret, then add it again",
                    s.message()
                )))
            }
            Ok(Err(s)) => {
                tracing::warn!(node = id, %grpc, error = %s.message(), "could not check a new member before adding it");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!(node = id, %grpc, "a new member did not answer the join check in time");
                return Ok(());
            }
        };
        if status.id != id {
            return Err(NodeError::InvalidInput(format!(
                "the node at {grpc} is node {}, not node {id}; give its own id",
                status.id
            )));
        }
        let ours = self.inner.reader.cluster_id();
        if !status.cluster_id.is_empty() && status.cluster_id != ours {
            return Err(NodeError::Membership(format!(
                "node {id} at {grpc} belongs to another cluster (cluster id {}, this one is \
                 {ours}; its members: {:?}). Stop it and start it again with an empty data \
                 dir to join this cluster",
                status.cluster_id,
                status.members.iter().map(|m| m.id).collect::<Vec<_>>()
            )));
        }
        Ok(())
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

    /// Hands leadership to voter `to` (see [`crate::raft::transfer`]). Only the leader does
    /// this; a follower refuses, naming the leader.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<pb::TransferLeaderReply, NodeError> {
        self.inner.transfer.run(to).await
    }

    /// The voter best placed to lead instead of this leader: the furthest replicated of
    /// the others, among those not reported storage full if there are any. With
    /// `roomy_quorum`, none unless the voters with room make a quorum without this node.
    /// None when this node does not lead.
    pub(crate) fn successor(&self, roomy_quorum: bool) -> Option<NodeId> {
        let m = self.inner.raft.metrics().borrow().clone();
        let replication = m.replication.as_ref()?;
        let membership = m.membership_config.membership();
        let voters = membership.voter_ids().count();
        let others: Vec<NodeId> = membership
            .voter_ids()
            .filter(|id| *id != self.inner.id)
            .collect();
        let roomy: Vec<NodeId> = others
            .iter()
            .copied()
            .filter(|id| self.inner.peer_storage.full(*id).is_none())
            .collect();
        if roomy_quorum && roomy.len() < voters / 2 + 1 {
            return None;
        }
        let pool = if roomy.is_empty() { others } else { roomy };
        pool.into_iter()
            .max_by_key(|id| replication.get(id).cloned().flatten().map(|l| l.index))
    }

    /// Before a graceful stop (SIGTERM): if this node leads a cluster with other voters,
    /// hands leadership to the best of them, so that writes resume after one transfer
    /// instead of an election timeout. Gives up, logging why, after `within`.
    pub async fn step_down(&self, within: Duration) {
        let Some(to) = self.successor(false) else {
            return;
        };
        match tokio::time::timeout(within, self.inner.transfer.run(to)).await {
            Ok(Ok(_)) => tracing::info!(to, "stopping: handed leadership to node {to}"),
            Ok(Err(e)) => {
                tracing::warn!(to, error = %e, "stopping: could not hand leadership over")
            }
            Err(_) => tracing::warn!(
                to,
                "stopping: leadership transfer to node {to} took over {within:?}; stopping anyway"
            ),
        }
    }
}
