//! The errors a client can see ([`NodeError`]) and their short kind labels for metrics.
//! What each becomes on the wire (gRPC code, HTTP status) is decided at the edge, in
//! `api::status`.

use std::time::Duration;

use crate::types::NodeId;

/// Errors a client can see. Each says what failed and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("invalid request: {0}")]
    InvalidInput(String),
    #[error("refused: {0}")]
    Rejected(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("no leader is elected right now (election in progress or quorum lost); retry shortly")]
    NoLeader,
    #[error("leader node {leader} at {addr} is unreachable: {reason}")]
    LeaderUnreachable {
        leader: NodeId,
        addr: String,
        reason: String,
    },
    #[error(
        "timed out after {0:?} waiting for the cluster; a write may or may not have been applied"
    )]
    Timeout(Duration),
    #[error("membership change refused: {0}")]
    Membership(String),
    #[error("node is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// Short label for the error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::InvalidInput(_) => "invalid",
            NodeError::Rejected(_) => "rejected",
            NodeError::QuotaExceeded(_) => "quota",
            NodeError::NotFound(_) => "not_found",
            NodeError::NoLeader => "no_leader",
            NodeError::LeaderUnreachable { .. } => "leader_unreachable",
            NodeError::Timeout(_) => "timeout",
            NodeError::Membership(_) => "membership",
            NodeError::ShuttingDown => "shutting_down",
            NodeError::Internal(_) => "internal",
        }
    }
}
