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

    /// Hands leadership to voter `to` (see [`crate::raft::transfer`]). Only the leader does
    /// this; a follower refuses, naming the leader.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<pb::TransferLeaderReply, NodeError> {
        self.inner.transfer.run(to).await
    }
}
