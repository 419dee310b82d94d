//! Cluster events seen by this node (leader and term changes, membership changes,
//! snapshots, log purges), derived from openraft's metrics as they change and kept in a
//! short history so a new Watch subscriber sees the recent past.

use std::sync::Arc;

use super::hub::Hub;
use crate::clock::unix_millis;
use crate::store::state_machine::EventSink;
use crate::types::{LogId, Raft};

/// Events kept for new subscribers.
pub const EVENT_HISTORY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    pub unix_ms: i64,
    /// `leader_change`, `term_change`, `membership_change`, `snapshot`, `log_purged`; from
    /// the state machine: `key_created`, `key_rotated`, `key_revoked`, `quota_changed`,
    /// `quota_violation`; from the Raft service: `snapshot_install_refused`.
    pub kind: &'static str,
    pub detail: String,
    pub term: u64,
    pub leader_id: Option<u64>,
}

pub type EventHub = Hub<ClusterEvent>;

/// Events of applied commands, stamped with this node's clock and the term and leader of
/// the entry that caused them.
impl EventSink for EventHub {
    fn applied(&self, at: LogId, kind: &'static str, detail: String) {
        self.publish(ClusterEvent {
            unix_ms: unix_millis(),
            kind,
            detail,
            term: at.leader_id.term,
            leader_id: Some(at.leader_id.node_id),
        });
    }
}

/// Publishes an event for every relevant change of `raft`'s metrics until Raft stops.
pub fn spawn_watcher(raft: Raft, hub: Arc<EventHub>) {
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        let mut prev = rx.borrow().clone();
        while rx.changed().await.is_ok() {
            let now = rx.borrow().clone();
            let event = |kind, detail: String| ClusterEvent {
                unix_ms: unix_millis(),
                kind,
                detail,
                term: now.current_term,
                leader_id: now.current_leader,
            };
            let name = |l: Option<u64>| {
                l.map(|l| format!("node {l}"))
                    .unwrap_or_else(|| "none".into())
            };
            if now.current_term != prev.current_term {
                hub.publish(event(
                    "term_change",
                    format!("term {} -> {}", prev.current_term, now.current_term),
                ));
            }
            if now.current_leader != prev.current_leader {
                hub.publish(event(
                    "leader_change",
                    format!(
                        "leader {} -> {}",
                        name(prev.current_leader),
                        name(now.current_leader)
                    ),
                ));
            }
            if now.membership_config.log_id() != prev.membership_config.log_id() {
                let m = now.membership_config.membership();
                let voters: Vec<u64> = m.voter_ids().collect();
                let learners: Vec<u64> = m.learner_ids().collect();
                hub.publish(event(
                    "membership_change",
                    format!("voters {voters:?} learners {learners:?}"),
                ));
            }
            if now.snapshot != prev.snapshot {
                if let Some(s) = now.snapshot {
                    hub.publish(event("snapshot", format!("snapshot at index {}", s.index)));
                }
            }
            if now.purged != prev.purged {
                if let Some(p) = now.purged {
                    hub.publish(event(
                        "log_purged",
                        format!("log purged up to index {}", p.index),
                    ));
                }
            }
            prev = now;
        }
    });
}
