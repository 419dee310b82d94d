//! Raft-level machinery between the node's service and openraft: group commit
//! ([`proposer`]), proposing locally or forwarding to the leader ([`forward`]), coalesced
//! read barriers ([`read_index`]), manual compaction ([`compact`]) and leadership transfer
//! ([`transfer`]).

pub mod compact;
pub mod forward;
pub mod proposer;
pub mod read_index;
pub mod transfer;

use crate::types::{NodeAddr, NodeId, Raft};

/// Where member `id` of `raft`'s current membership can be reached.
pub fn member_addr(raft: &Raft, id: NodeId) -> Option<NodeAddr> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    m.membership_config.membership().get_node(&id).cloned()
}
