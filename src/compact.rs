//! `opsdeck compact`: snapshot and purge the Raft log on every node, then report per node
//! the log entries and sled file size before and after, and the bytes reclaimed (log entries
//! deleted). A node that does not answer is reported and the others are still compacted.

use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{CompactFigures, CompactReply, CompactRequest};
use serde_json::json;

use crate::cli::ClusterArgs;
use crate::client::ClusterClient;
use crate::table;
use crate::verbs::connect;

/// A compact waits for a snapshot and a purge on a busy node; give it time.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(150);

pub struct NodeOutcome {
    pub endpoint: String,
    pub result: Result<CompactReply, String>,
}

/// Space freed by a compact: the bytes of the log entries it deleted. sled reuses that
/// space for new writes; its file rarely shrinks at once (see opsdeck_node::raft::compact).
fn reclaimed(r: &CompactReply) -> i64 {
    let (b, a) = figures(r);
    b.log_bytes as i64 - a.log_bytes as i64
}

fn figures(r: &CompactReply) -> (CompactFigures, CompactFigures) {
    (r.before.unwrap_or_default(), r.after.unwrap_or_default())
}

/// `12.3 MiB`, `512 B`; negative for growth.
pub fn human_bytes(n: i64) -> String {
    let (sign, mut v) = (if n < 0 { "-" } else { "" }, n.unsigned_abs() as f64);
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{sign}{v} {unit}")
            } else {
                format!("{sign}{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!("the loop returns at GiB")
}

fn figures_json(f: &CompactFigures) -> serde_json::Value {
    json!({
        "log_entries": f.log_entries,
        "log_bytes": f.log_bytes,
        "sled_bytes": f.sled_bytes,
        "data_dir_bytes": f.data_dir_bytes,
        "snapshot_index": f.snapshot_index,
    })
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
    let total: i64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(reclaimed)
        .sum();
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let mut text = format!(
        "compacted {ok} of {} nodes, {} of log entries reclaimed",
        outcomes.len(),
        human_bytes(total)
    );
    for o in outcomes {
        if let Err(e) = &o.result {
            text.push_str(&format!("; {} failed: {e}", o.endpoint));
        }
    }
    (ok == outcomes.len(), text)
}

pub async fn run(args: &ClusterArgs) -> Result<()> {
    let client = connect(args)?;
    let outcomes = compact_all(&client).await;
    let total: i64 = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(reclaimed)
        .sum();
    if args.json {
        let nodes: Vec<_> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(r) => {
                    let (b, a) = figures(r);
                    json!({
                        "endpoint": o.endpoint, "ok": true, "id": r.node_id, "took_ms": r.took_ms,
                        "before": figures_json(&b), "after": figures_json(&a),
                        "reclaimed_bytes": reclaimed(r),
                    })
                }
                Err(e) => json!({ "endpoint": o.endpoint, "ok": false, "error": e }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "nodes": nodes, "total_reclaimed_bytes": total })
            )?
        );
    } else {
        let rows: Vec<Vec<String>> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(r) => {
                    let (b, a) = figures(r);
                    vec![
                        r.node_id.to_string(),
                        o.endpoint.clone(),
                        format!("{} → {}", b.log_entries, a.log_entries),
                        format!(
                            "{} → {}",
                            human_bytes(b.sled_bytes as i64),
                            human_bytes(a.sled_bytes as i64)
                        ),
                        human_bytes(reclaimed(r)),
                    ]
                }
                Err(_) => vec!["?".into(), o.endpoint.clone(), "FAILED".into()],
            })
            .collect();
        println!(
            "{}",
            table::render(
                &["ID", "NODE", "LOG ENTRIES", "SLED FILE", "RECLAIMED"],
                &rows
            )
        );
        for o in &outcomes {
            if let Err(e) = &o.result {
                println!("{}: compact failed: {e}", o.endpoint);
            }
        }
        println!(
            "total reclaimed: {} of log entries (sled reuses that space for new writes)",
            human_bytes(total)
        );
    }
    if outcomes.iter().all(|o| o.result.is_err()) {
        return Err(eyre!(
            "compact: no node could be compacted at {} (is the cluster running?)",
            client.endpoints().join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(-3 * 1024 * 1024), "-3.0 MiB");
    }
}
