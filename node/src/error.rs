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
    /// Nodes whose disk is below their reserve (`store::disk_guard`), and whether the
    /// refusal is of a read on a node that cannot apply new entries.
    #[error("{}", storage_full_message(.nodes, *.reading))]
    StorageFull { nodes: Vec<FullNode>, reading: bool },
    /// Writes are paused (maintenance mode); the text is `WritesPause::refusal`.
    #[error("{0}")]
    WritesPaused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A node whose storage is full, as named in [`NodeError::StorageFull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullNode {
    pub id: NodeId,
    pub pressure: Pressure,
}

/// Free space below a node's reserve: what is free and what the node needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub free: u64,
    pub need: u64,
}

impl std::fmt::Display for Pressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} free, need {}", size(self.free), size(self.need))
    }
}

/// `3.1 MiB`, `2.0 GiB`: sizes in messages.
pub fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// `storage full on node 2: 3.1 MiB free, need 16.0 MiB; free space or grow the volume`,
/// one clause per node.
fn storage_full_message(nodes: &[FullNode], reading: bool) -> String {
    let clauses: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let on = if i == 0 {
                "storage full on node"
            } else {
                "on node"
            };
            format!("{on} {}: {}", n.id, n.pressure)
        })
        .collect();
    let what = if reading {
        "; this node cannot apply new writes, so read from another node or with --stale; \
         free space or grow the volume"
    } else if nodes.len() > 1 {
        "; free space or grow the volumes"
    } else {
        "; free space or grow the volume"
    };
    format!("{}{what}", clauses.join("; "))
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
            NodeError::StorageFull { .. } => "storage_full",
            NodeError::WritesPaused(_) => "writes_paused",
            NodeError::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_full_names_each_node_and_what_to_do() {
        let p = Pressure {
            free: 3 * 1024 * 1024 + 100 * 1024,
            need: 16 * 1024 * 1024,
        };
        let one = NodeError::StorageFull {
            nodes: vec![FullNode { id: 2, pressure: p }],
            reading: false,
        };
        assert_eq!(
            one.to_string(),
            "storage full on node 2: 3.1 MiB free, need 16.0 MiB; free space or grow the volume"
        );
        let two = NodeError::StorageFull {
            nodes: vec![
                FullNode { id: 1, pressure: p },
                FullNode { id: 3, pressure: p },
            ],
            reading: false,
        };
        assert_eq!(
            two.to_string(),
            "storage full on node 1: 3.1 MiB free, need 16.0 MiB; on node 3: 3.1 MiB free, \
             need 16.0 MiB; free space or grow the volumes"
        );
        assert_eq!(size(2 * 1024 * 1024 * 1024), "2.0 GiB");
    }
}
