//! Disk pressure at the service level (see `store::disk_guard` and ARCHITECTURE.md, "Disk
//! pressure"): which nodes are storage full, the leader's refusal of writes that could not
//! commit, and handing leadership away from a leader whose own disk is full.

use std::time::Duration;

use super::NodeCore;
use crate::error::{FullNode, NodeError, Pressure};
use crate::types::NodeAddr;

type Metrics = openraft::RaftMetrics<u64, NodeAddr>;

/// How often a full leader tries to hand its leadership to a voter with room.
const HANDOFF_EVERY: Duration = Duration::from_secs(10);

impl NodeCore {
    /// Storage-full nodes as this node knows them: itself, and on the leader every voter
    /// whose last reply said so.
    pub fn full_nodes(&self) -> Vec<FullNode> {
        let own = self.inner.guard.check();
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        self.full_nodes_in(own, &m)
    }

    /// [`Self::full_nodes`] from this node's own reading and Raft metrics already at hand
    /// (this runs before every write: no copy of the metrics).
    fn full_nodes_in(&self, own: Option<Pressure>, m: &Metrics) -> Vec<FullNode> {
        let mut full = Vec::new();
        if let Some(pressure) = own {
            full.push(FullNode {
                id: self.inner.id,
                pressure,
            });
        }
        if m.current_leader == Some(self.inner.id) {
            for id in m.membership_config.membership().voter_ids() {
                if id == self.inner.id {
                    continue;
                }
                if let Some(pressure) = self.inner.peer_storage.full(id) {
                    full.push(FullNode { id, pressure });
                }
            }
        }
        full
    }

    /// On the leader: refuses a write this cluster could not take — this node cannot grow
    /// its log, or too few voters can for a quorum. Followers leave it to the leader.
    pub(crate) fn check_storage(&self) -> Result<(), NodeError> {
        // Read before the metrics are borrowed: it may look at the disk.
        let own = self.inner.guard.check();
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        if m.current_leader != Some(self.inner.id) {
            return Ok(());
        }
        let full = self.full_nodes_in(own, &m);
        if full.is_empty() {
            return Ok(());
        }
        let voters = m.membership_config.membership().voter_ids().count();
        let room = voters.saturating_sub(full.iter().filter(|n| n.id != self.inner.id).count());
        let leader_full = full.iter().any(|n| n.id == self.inner.id);
        if leader_full || room < voters / 2 + 1 {
            return Err(NodeError::StorageFull {
                nodes: full,
                reading: false,
            });
        }
        Ok(())
    }

    /// While this node leads with a full disk, hands leadership (every 10 s at most) to a
    /// voter with room, so that the cluster takes writes again without it; until `stopped`.
    pub fn spawn_storage_handoff(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let core = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                if !core.is_leader() || core.inner.guard.pressure().is_none() {
                    continue;
                }
                if last.is_some_and(|t| t.elapsed() < HANDOFF_EVERY) {
                    continue;
                }
                last = Some(tokio::time::Instant::now());
                // A new leader must commit an entry of its own term before it can serve
                // anything: the voters with room must make a quorum without this node.
                let Some(to) = core.successor(true) else {
                    tracing::warn!(
                        "storage full on the leader, and too few voters with room \
                        to take over: keeping leadership (writes are refused)"
                    );
                    continue;
                };
                match core.inner.transfer.run(to).await {
                    Ok(_) => tracing::warn!(
                        to,
                        "storage full on the leader: handed leadership to node {to}"
                    ),
                    Err(e) => {
                        tracing::warn!(to, error = %e, "storage full on the leader: could not hand leadership over")
                    }
                }
            }
        });
    }
}
