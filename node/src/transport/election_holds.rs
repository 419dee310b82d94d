//! The receiving side of the election hints a leader sends while it hands leadership over
//! (see `raft::transfer`): hold this node's elections off for a bounded time, or campaign.

use std::time::{Duration, Instant};

use crate::error::NodeError;
use crate::pb;
use crate::types::Raft;

/// Longest election hold a node accepts from a hint.
pub const MAX_HOLD: Duration = Duration::from_secs(15);

/// The receiving side of election hints: holds this node's elections off for a while, or
/// campaigns at once.
#[derive(Clone)]
pub struct ElectionHolds {
    raft: Raft,
    until: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl ElectionHolds {
    pub fn new(raft: Raft) -> ElectionHolds {
        ElectionHolds {
            raft,
            until: Default::default(),
        }
    }

    pub async fn apply(&self, hint: &pb::ElectionHintRequest) -> Result<(), NodeError> {
        if hint.campaign {
            tracing::info!(
                leader = hint.leader_id,
                "transfer: campaigning at the leader's request"
            );
            return self
                .raft
                .trigger()
                .elect()
                .await
                .map_err(|e| NodeError::Internal(format!("raft stopped: {e}")));
        }
        let hold = Duration::from_millis(hint.hold_ms).min(MAX_HOLD);
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if hold.is_zero() {
            *until = None;
            self.raft.runtime_config().elect(true);
            return Ok(());
        }
        tracing::info!(
            leader = hint.leader_id,
            hold_ms = hold.as_millis() as u64,
            "transfer: holding elections off"
        );
        *until = Some(Instant::now() + hold);
        self.raft.runtime_config().elect(false);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let mut until = this.until.lock().unwrap_or_else(|p| p.into_inner());
            if until.is_none_or(|u| Instant::now() >= u) {
                *until = None;
                this.raft.runtime_config().elect(true);
            }
        });
        Ok(())
    }
}
