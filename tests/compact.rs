//! `opsdeck compact` on a real 3-node cluster after 50,000 writes.

mod support;

use std::time::Duration;

use opsdeck_node::pb::NodeStatus;
use support::*;

/// The frame of `node` once its sampler has caught up with its own log (whose last entry
/// is on disk, or purged).
async fn settled_frame(node: &TestNode) -> NodeStatus {
    wait_for("a settled frame", Duration::from_secs(15), || async {
        let f = node.status().await?;
        let gc = f.gc.clone()?;
        (gc.last_log_index.or(f.purged_index) == f.last_log_index).then_some(f)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_after_50k_writes_purges_the_log_and_reclaims_space_on_every_node() {
    // No automatic snapshot, so the log only shrinks when compact runs.
    let mut cluster = TestCluster::start(3, &["--snapshot-every", "10000000"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, 100, 500).await;
    let last = cluster
        .node(leader)
        .status()
        .await
        .unwrap()
        .last_log_index
        .unwrap();
    cluster.wait_applied(last, Duration::from_secs(30)).await;

    let mut before_frames = Vec::new();
    for n in &cluster.nodes {
        let f = settled_frame(n).await;
        assert!(f.gc.as_ref().unwrap().log_entries > 0, "{f:?}");
        before_frames.push(f);
    }
    let endpoints = cluster.endpoints();
    let out = run_cli(&["compact", "--json", "--endpoints", &endpoints]);
    assert!(out.status.success(), "compact failed: {}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    let nodes = report["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{report}");
    assert!(
        report["total_reclaimed_bytes"].as_i64().unwrap() > 0,
        "{report}"
    );
    for (n, frame_before) in cluster.nodes.iter().zip(&before_frames) {
        let r = nodes
            .iter()
            .find(|r| r["endpoint"] == n.grpc.as_str())
            .unwrap_or_else(|| panic!("no report for node {}: {report}", n.id));
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["id"], n.id, "{r}");
        let (b, a) = (&r["before"], &r["after"]);
        let entries = |v: &serde_json::Value| v["log_entries"].as_u64().unwrap();
        assert!(entries(b) > entries(a), "node {}: {r}", n.id);
        assert!(
            r["reclaimed_bytes"].as_i64().unwrap() > 0,
            "node {}: {r}",
            n.id
        );
        // Each node's compact is audited through the log once it is done, so a node
        // compacted a moment later may also cover up to 2 audit records.
        let covered = a["snapshot_index"].as_u64().unwrap_or(0);
        assert!(
            (last..=last + 2).contains(&covered),
            "node {}: the snapshot covers every write ({last}): {r}",
            n.id
        );
        // What compact saw before is what the frames showed.
        let gc_before = frame_before.gc.clone().unwrap();
        assert_eq!(entries(b), gc_before.log_entries, "node {}: {r}", n.id);
        // And the frames now show what compact left.
        let f = settled_frame(n).await;
        let gc = f.gc.unwrap();
        // What compact left, plus the 3 audit records of the compacts.
        assert!(
            (entries(a)..=entries(a) + 3).contains(&gc.log_entries),
            "node {}: {gc:?} vs {r}",
            n.id
        );
        assert_eq!(
            f.snapshot_index,
            a["snapshot_index"].as_u64(),
            "node {}",
            n.id
        );
        assert_eq!(
            gc.sled_bytes_before_compact,
            b["sled_bytes"].as_u64().unwrap()
        );
        assert_eq!(
            gc.sled_bytes_after_compact,
            a["sled_bytes"].as_u64().unwrap()
        );
        assert_eq!(gc.last_snapshot_index, Some(last));
        eprintln!(
            "node {}: entries {} -> {}, log bytes reclaimed {}, sled {} -> {}, took {} ms",
            n.id,
            entries(b),
            entries(a),
            r["reclaimed_bytes"],
            b["sled_bytes"],
            a["sled_bytes"],
            r["took_ms"]
        );
    }

    // Data is intact after the purge, and the cluster keeps taking writes.
    assert_eq!(cluster.scan_local(leader, "load/99/").await.len(), 500);
    write_load(&cluster.node(leader).grpc, 4, 10).await;

    // A node that does not answer is reported; the others are still compacted.
    let down = cluster.a_follower(leader);
    cluster.node_mut(down).kill9();
    let out = run_cli(&["compact", "--endpoints", &endpoints]);
    assert!(out.status.success(), "compact failed: {}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("{}: compact failed", cluster.node(down).grpc)),
        "{text}"
    );
    assert!(text.contains("total reclaimed"), "{text}");
    let leader_row = format!("{leader}   {}", cluster.node(leader).grpc);
    assert!(text.contains(&leader_row), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    eprintln!("{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
}
