//! `opsdeck compact`: snapshot and purge the Raft log on every node ([`crate::ops::compact`]),
//! then report per node the log entries and sled file size before and after, and the bytes
//! reclaimed (log entries deleted). A node that does not answer is reported and the others
//! are still compacted. `compact --defrag` then shrinks every node's database file on a
//! dev cluster, one node at a time ([`crate::ops::restart::rolling_defrag`]);
//! `defrag-data` does it by hand to one stopped node's data dir, on any host.

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::CompactFigures;
use serde_json::json;

use super::connect;
use crate::cli::{CompactArgs, DefragDataArgs};
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
/// What to do on a cluster whose nodes opsdeck does not start itself.
pub const DEFRAG_BY_HAND: &str = "on each node in turn, followers first and the leader last \
     (after `opsdeck transfer-leader`), waiting for it to catch up (`opsdeck status`) before \
     the next: `systemctl stop opsdeck-node; opsdeck defrag-data --data /var/lib/opsdeck; \
     systemctl start opsdeck-node`";

pub async fn run(args: &CompactArgs) -> Result<()> {
    let dev_dir = if args.defrag {
        Some(args.cluster.target()?.dev_dir().ok_or_else(|| {
            eyre!(
                "compact --defrag stops and starts every node itself, which opsdeck can do only \
                 in a dev cluster (--cluster DIR); for another cluster, {DEFRAG_BY_HAND}"
            )
        })?)
    } else {
        None
    };
    let client = connect(&args.cluster)?;
    if let Some(dir) = &dev_dir {
        // Refused before the compact too: nothing changes.
        crate::ops::restart::precheck_defrag(&client, dir).await?;
    }
    let outcomes = compact_all(&client).await;
    let json = args.cluster.json();
    let Some(dir) = dev_dir else {
        print_compact(&client, &outcomes, json)?;
        return Ok(());
    };
    if outcomes.iter().any(|o| o.result.is_err()) {
        print_compact(&client, &outcomes, json)?;
        return Err(eyre!(
            "compact --defrag: not every node could be compacted, so no node was defragmented"
        ));
    }
    if !json {
        print_compact(&client, &outcomes, false)?;
    }
    let mut progress = super::progress_printer();
    let defragged =
        crate::ops::restart::rolling_defrag(&client, &dir, args.timeout_rejoin, &mut progress)
            .await?;
    if json {
        super::print_json(&json!({
            "compact": compact_json(&outcomes),
            "defrag": defragged,
        }))?;
    } else {
        println!("{defragged}");
    }
    Ok(())
}

/// `opsdeck defrag-data --data DIR`: one stopped node's database rewritten and swapped in.
pub fn defrag_data(args: &DefragDataArgs) -> Result<()> {
    let report = opsdeck_node::store::defrag::defrag(&args.data).map_err(|e| eyre!("{e}"))?;
    if args.output.json() {
        super::print_json(&report)?;
    } else {
        println!(
            "{}: database {} → {} ({}), {} pairs in {} trees ({} of keys and values) in {:.1} s",
            args.data.display(),
            fmt::bytes(report.before_bytes),
            fmt::bytes(report.after_bytes),
            fmt::bytes_signed(report.after_bytes as i64 - report.before_bytes as i64),
            report.pairs,
            report.trees,
            fmt::bytes(report.live_bytes),
            report.took_ms as f64 / 1000.0
        );
    }
    Ok(())
}

fn compact_json(outcomes: &[crate::ops::compact::NodeOutcome]) -> serde_json::Value {
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
    json!({ "nodes": nodes, "total_reclaimed_bytes": total_reclaimed(outcomes) })
}

fn print_compact(
    client: &crate::client::ClusterClient,
    outcomes: &[crate::ops::compact::NodeOutcome],
    json: bool,
) -> Result<()> {
    let total = total_reclaimed(outcomes);
    if json {
        super::print_json(&compact_json(outcomes))?;
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
        for o in outcomes {
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
