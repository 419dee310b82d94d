//! `opsdeck compact`: snapshot and purge the Raft log on every node ([`crate::ops::compact`]),
//! then report per node the log entries and sled file size before and after, and the bytes
//! reclaimed (log entries deleted). A node that does not answer is reported and the others
//! are still compacted.

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::CompactFigures;
use serde_json::json;

use super::connect;
use crate::cli::ClusterArgs;
use crate::format as fmt;
use crate::format::table;
use crate::ops::compact::{compact_all, figures, reclaimed, total_reclaimed};

fn figures_json(f: &CompactFigures) -> serde_json::Value {
    json!({
        "log_entries": f.log_entries,
        "log_bytes": f.log_bytes,
        "sled_bytes": f.sled_bytes,
        "data_dir_bytes": f.data_dir_bytes,
        "snapshot_index": f.snapshot_index,
    })
}
pub async fn run(args: &ClusterArgs) -> Result<()> {
    let client = connect(args)?;
    let outcomes = compact_all(&client).await;
    let total = total_reclaimed(&outcomes);
    if args.json() {
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
        super::print_json(&json!({ "nodes": nodes, "total_reclaimed_bytes": total }))?;
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
                            fmt::bytes_signed(b.sled_bytes as i64),
                            fmt::bytes_signed(a.sled_bytes as i64)
                        ),
                        fmt::bytes_signed(reclaimed(r)),
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
            fmt::bytes_signed(total)
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
