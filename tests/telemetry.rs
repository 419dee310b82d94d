//! Status frames and /metrics of busy nodes: process, operation, disk and GC figures, the
//! leader's view of its followers, and the node's log file.

mod support;

use std::time::Duration;

use opsdeck_node::pb::watch_event::Kind;
use opsdeck_node::pb::{NodeStatus, WatchRequest};
use support::*;

const WRITERS: usize = 32;
const PER_WRITER: usize = 100;

async fn busy_cluster() -> (TestCluster, u64) {
    let cluster = TestCluster::start(3, &["--snapshot-every", "200", "--keep-logs", "50"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, WRITERS, PER_WRITER).await;
    (cluster, leader)
}

fn check_frame(f: &NodeStatus) {
    assert!(f.unix_ms > 0 && f.uptime_ms > 0, "{f:?}");
    assert!(f.rss_bytes > 0, "rss: {f:?}");
    assert!(f.cpu_percent >= 0.0, "cpu: {f:?}");
    assert!(
        f.fs_total_bytes >= f.fs_free_bytes && f.fs_free_bytes > 0,
        "fs: {f:?}"
    );
    assert!(
        f.data_dir_bytes > 0 && f.sled_size_on_disk > 0,
        "disk: {f:?}"
    );
    let gc = f.gc.clone().expect("gc figures");
    match (gc.first_log_index, gc.last_log_index) {
        (Some(first), Some(last)) => assert_eq!(gc.log_entries, last - first + 1, "{gc:?}"),
        _ => assert_eq!(gc.log_entries, 0, "{gc:?}"),
    }
    // --snapshot-every 200 after thousands of writes: snapshots were built and the log purged.
    assert!(
        gc.last_snapshot_index.is_some() && gc.last_snapshot_bytes > 0,
        "{gc:?}"
    );
    assert!(gc.last_snapshot_unix_ms.is_some_and(|t| t > 0), "{gc:?}");
    assert!(gc.last_purge_index.is_some(), "{gc:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_nodes_frame_has_process_ops_disk_gc_and_follower_figures() {
    let (cluster, leader) = busy_cluster().await;
    let node = cluster.node(leader);
    let total = (WRITERS * PER_WRITER) as u64;
    // The sampler refreshes every 500 ms: wait for a frame that has seen all the writes.
    let frame = wait_for(
        "a frame with every put",
        Duration::from_secs(10),
        || async {
            let f = node.status().await?;
            let put = f.ops.iter().find(|o| o.op == "put")?;
            let purged = f.gc.as_ref()?.last_purge_index.is_some();
            (put.total >= total && purged).then_some(f)
        },
    )
    .await;
    check_frame(&frame);
    eprintln!(
        "leader frame: {} bytes encoded, rss {} bytes, cpu {:.1}%",
        prost::Message::encoded_len(&frame),
        frame.rss_bytes,
        frame.cpu_percent
    );
    let put = frame.ops.iter().find(|o| o.op == "put").unwrap();
    assert_eq!(put.total, total, "{put:?}");
    assert_eq!(put.errors, 0, "{put:?}");
    assert!(put.p99_us > 0, "{put:?}");
    assert!(
        put.p50_us <= put.p95_us && put.p95_us <= put.p99_us && put.p99_us <= put.max_us,
        "{put:?}"
    );
    assert_eq!(frame.vote_term, frame.term);
    assert_eq!(frame.voted_for, Some(leader));
    assert!(frame.millis_since_quorum_ack.is_some(), "{frame:?}");
    let mut followers: Vec<u64> = frame.followers.iter().map(|p| p.id).collect();
    followers.sort();
    let expected: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != leader)
        .collect();
    assert_eq!(followers, expected, "{:?}", frame.followers);
    for p in &frame.followers {
        let matched = p.matched.expect("a follower has replicated something");
        let last = frame.last_log_index.unwrap_or(0);
        assert_eq!(p.lag, last.saturating_sub(matched), "{p:?}");
    }

    // A follower's frame has no followers but the same process and disk figures.
    let follower = cluster.node(cluster.a_follower(leader));
    let ff = wait_for("a follower frame", Duration::from_secs(10), || async {
        let f = follower.status().await?;
        f.gc.as_ref()?.last_purge_index.map(|_| f.clone())
    })
    .await;
    check_frame(&ff);
    assert!(ff.followers.is_empty(), "{:?}", ff.followers);

    // Watch frames carry the same figures as Status.
    let mut stream = node
        .client()
        .watch(WatchRequest {
            status_interval_ms: 100,
            logs: false,
            events: false,
            log_history: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let watched = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a frame within 5 s")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Kind::Status(s)) = msg.kind {
            break s;
        }
    };
    check_frame(&watched);
    let wput = watched.ops.iter().find(|o| o.op == "put").unwrap();
    assert_eq!(wput.total, total);

    // The node also logs to DATA/node.log.
    let text = std::fs::read_to_string(node.data.join("node.log")).expect("node.log");
    assert!(text.contains("snapshot built"), "node.log:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_of_a_node_under_write_load_pass_promtool() {
    let cluster = TestCluster::start(3, &["--snapshot-every", "200", "--keep-logs", "50"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let grpc = cluster.node(leader).grpc.clone();
    let load = tokio::spawn(async move { write_load(&grpc, WRITERS, PER_WRITER).await });
    let http = http_client();
    let url = format!("http://{}/metrics", cluster.node(leader).http);
    // Scrape while the writes run, once the recent-latency figures are in.
    let text = wait_for(
        "metrics with put latencies",
        Duration::from_secs(20),
        || async {
            let t = http.get(&url).send().await.ok()?.text().await.ok()?;
            t.contains("opsdeck_request_recent_latency_seconds{op=\"put\",stat=\"p99\"}")
                .then_some(t)
        },
    )
    .await;
    assert!(
        !load.is_finished(),
        "the load ended before the scrape; raise PER_WRITER"
    );
    load.await.expect("load");
    for name in [
        "opsdeck_process_resident_memory_bytes",
        "opsdeck_process_cpu_percent",
        "opsdeck_request_rate_per_second{op=\"put\"}",
        "opsdeck_sled_size_on_disk_bytes",
        "opsdeck_data_dir_bytes",
        "opsdeck_filesystem_free_bytes",
        "opsdeck_raft_log_entries_on_disk",
        "opsdeck_raft_follower_lag_entries{follower=",
        "opsdeck_raft_millis_since_quorum_ack",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    promtool_check(&text);
}
