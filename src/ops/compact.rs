//! Compaction of every node at once (snapshot, purge, flush), with what each node freed:
//! the code behind `opsdeck compact` and the console's compact action.

use std::time::Duration;

use opsdeck_node::pb::{CompactFigures, CompactReply, CompactRequest};

use crate::client::ClusterClient;
use crate::format;

/// A compact waits for a snapshot and a purge on a busy node; give it time.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(150);

pub struct NodeOutcome {
    pub endpoint: String,
    pub result: Result<CompactReply, String>,
}

/// Space freed by a compact: the bytes of the log entries it deleted. sled reuses that
/// space for new writes; its file rarely shrinks at once (see opsdeck_node::raft::compact).
pub fn reclaimed(r: &CompactReply) -> i64 {
    let (b, a) = figures(r);
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    signed(b.log_bytes).saturating_sub(signed(a.log_bytes))
}

pub fn figures(r: &CompactReply) -> (CompactFigures, CompactFigures) {
    (r.before.unwrap_or_default(), r.after.unwrap_or_default())
}

/// Compacts every node at once; a node that fails or does not answer is reported, the
/// others are still compacted.
pub async fn compact_all(client: &ClusterClient) -> Vec<NodeOutcome> {
    let calls = client
        .node_clients()
        .into_iter()
        .map(|(endpoint, mut c)| async move {
            let mut req = tonic::Request::new(CompactRequest {});
            req.set_timeout(COMPACT_TIMEOUT);
            let result = match tokio::time::timeout(COMPACT_TIMEOUT, c.compact(req)).await {
                Ok(Ok(r)) => Ok(r.into_inner()),
                Ok(Err(s)) => Err(s.message().to_string()),
                Err(_) => Err(format!("no answer within {COMPACT_TIMEOUT:?}")),
            };
            NodeOutcome { endpoint, result }
        });
    futures_util::future::join_all(calls).await
}

/// One line per compact: what was reclaimed, and which nodes failed.
pub fn summary(outcomes: &[NodeOutcome]) -> (bool, String) {
    let total = total_reclaimed(outcomes);
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let mut text = format!(
        "compacted {ok} of {} nodes, {} of log entries reclaimed",
        outcomes.len(),
        format::bytes_signed(total)
    );
    for o in outcomes {
        if let Err(e) = &o.result {
            text.push_str(&format!("; {} failed: {e}", o.endpoint));
        }
    }
    (ok == outcomes.len(), text)
}

/// The bytes freed on every node that answered.
pub fn total_reclaimed(outcomes: &[NodeOutcome]) -> i64 {
    outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(reclaimed)
        .fold(0, i64::saturating_add)
}
