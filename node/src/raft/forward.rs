//! Where the node's proposals and read barriers go: the local Raft when this node leads,
//! the leader over gRPC when it follows ([`RaftSink`]), and the leader's own read-index
//! check (`leader_read_index`).

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use crate::error::NodeError;
use crate::pb;
use crate::raft::proposer::Submit;
use crate::transport::peers::Peers;
use crate::types::{Command, CommandResult, NodeAddr, NodeId, Raft, Request};

/// How long a write or read barrier may wait for the cluster before giving up.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends batches to the local Raft, or forwards them to the leader.
pub struct RaftSink {
    raft: Raft,
    peers: Arc<Peers>,
}

impl RaftSink {
    pub fn new(raft: Raft, peers: Arc<Peers>) -> RaftSink {
        RaftSink { raft, peers }
    }

    /// Proposes on this node only; `forward` says whether a follower may pass it on.
    pub(crate) async fn write(
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
    pub(crate) async fn remote_read_index(
        &self,
        leader: NodeId,
        node: &NodeAddr,
    ) -> Result<u64, NodeError> {
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
pub(crate) async fn leader_read_index(raft: Raft) -> Result<u64, NodeError> {
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
