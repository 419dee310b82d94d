//! `opsdeck logs` against real nodes: merged, filtered by node, level and regex.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_of_one_node_at_info_in_time_order_and_grep_filters() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints = cluster.endpoints();

    let out = run_cli(&[
        "logs",
        "--node",
        "2",
        "--level",
        "info",
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let records: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        records.iter().any(|r| r["message"] == "node started"),
        "{records:?}"
    );
    let mut prev = 0;
    for r in &records {
        assert_eq!(r["node"], 2, "{r}");
        let level = r["level"].as_str().unwrap();
        assert!(["INFO", "WARN", "ERROR"].contains(&level), "{r}");
        let t = r["unix_ms"].as_i64().unwrap();
        assert!(t >= prev, "out of order: {records:?}");
        prev = t;
    }

    // --grep keeps only matching records, from every node.
    let out = run_cli(&[
        "logs",
        "--grep",
        "node st.rted",
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let started: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut nodes: Vec<u64> = started
        .iter()
        .map(|r| r["node"].as_u64().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![1, 2, 3], "{started:?}");

    // A node that is down is reported once; the others still print.
    cluster.node_mut(3).kill9();
    let out = run_cli(&["logs", "--grep", "node started", "--endpoints", &endpoints]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let text = stdout_of(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(" n1 INFO ") && text.contains(" n2 INFO "),
        "{text}"
    );
    let err = stderr_of(&out);
    assert_eq!(err.matches(&cluster.node(3).grpc).count(), 1, "{err}");

    // A bad regex is one clear line.
    let out = run_cli(&["logs", "--grep", "(", "--endpoints", &endpoints]);
    assert!(!out.status.success());
    assert_eq!(
        stderr_of(&out).trim(),
        "error: bad --grep \"(\": unclosed group"
    );
}
