//! `opsdeck check` against real node processes: it names a node whose data was changed
//! behind Raft's back, lists unreachable nodes, and agrees check after check while writers
//! keep writing (with the p99 write latency with and without checks printed).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdeck_node::pb::PutRequest;
use support::*;

fn check(endpoints: &str, json: bool) -> (Option<i32>, String, String) {
    let mut args = vec!["check", "--endpoints", endpoints];
    if json {
        args.push("--json");
    }
    let out = run_cli(&args);
    (out.status.code(), stdout_of(&out), stderr_of(&out))
}

/// The same digest at the same index, as `/digest` reports it on every node.
async fn wait_settled(cluster: &TestCluster) -> u64 {
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let last = cluster
        .node(leader)
        .status()
        .await
        .and_then(|s| s.applied)
        .expect("leader applied index");
    cluster.wait_applied(last, Duration::from_secs(20)).await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_names_the_node_whose_data_was_changed_behind_rafts_back() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, 8, 50).await;
    wait_settled(&cluster).await;
    let endpoints = cluster.endpoints();

    let (code, out, err) = check(&endpoints, false);
    assert_eq!(code, Some(0), "a healthy cluster: {out}{err}");
    assert!(out.starts_with("replicas agree at index "), "{out}");

    // The HTTP twin answers the same digest at the same index.
    let (code, json, _) = check(&endpoints, true);
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    assert_eq!(report["outcome"]["outcome"], "agree");
    let index = report["outcome"]["index"].as_u64().expect("index");
    let digest = report["outcome"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let http = http_client();
    let got: serde_json::Value = http
        .get(format!(
            "http://{}/digest?index={index}",
            cluster.node(2).http
        ))
        .bearer_auth(admin_key())
        .send()
        .await
        .expect("GET /digest")
        .json()
        .await
        .expect("json");
    assert_eq!(got["digest"], digest.as_str(), "{got}");
    let missing = http
        .get(format!(
            "http://{}/digest?index=999999999",
            cluster.node(2).http
        ))
        .bearer_auth(admin_key())
        .send()
        .await
        .expect("GET /digest");
    assert_eq!(missing.status(), 404);
    let body = missing.text().await.unwrap_or_default();
    assert!(body.contains("not held: this node holds indexes"), "{body}");

    // A node down: listed, and the other two are still compared.
    let victim = if leader == 3 { 2 } else { 3 };
    cluster.node_mut(victim).stop();
    let (code, out, err) = check(&endpoints, false);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("unreachable: "), "{out}");

    // While it is down, one of its values is flipped in its own database, and its stored
    // digest dropped so that start-up computes the digest of what it now holds (as for a
    // data dir from before digests): the replicas no longer agree.
    corrupt_one_value(&cluster.node(victim).data, "d/load/");
    cluster.node_mut(victim).start(false);
    wait_for("the node to answer", Duration::from_secs(15), || async {
        cluster.node(victim).answers().await.then_some(())
    })
    .await;
    // One more write, so the check compares at an index the restarted node applied itself.
    cluster
        .node(leader)
        .client()
        .put(PutRequest {
            key: "after".into(),
            value: b"restart".to_vec(),
        })
        .await
        .expect("put");
    wait_settled(&cluster).await;
    let (code, out, err) = check(&endpoints, false);
    assert_eq!(
        code,
        Some(8),
        "divergence has its own exit status: {out}{err}"
    );
    assert!(out.contains("replicas DIVERGE at index"), "{out}");
    assert!(
        out.contains(&format!("node(s) {victim} differ")),
        "the changed node is named: {out}"
    );
    assert!(err.contains("diverge"), "{err}");
    let (code, json, _) = check(&endpoints, true);
    assert_eq!(code, Some(8));
    let report: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    assert_eq!(report["outcome"]["outcome"], "diverged");
    assert_eq!(report["outcome"]["differing"], serde_json::json!([victim]));
    assert!(
        cluster
            .node(victim)
            .log_text()
            .contains("computed the state digest by a full scan"),
        "the start-up scan is logged"
    );
    // The built-in rule fires on the same node, as a monitoring check would see it.
    let alerts = run_cli(&[
        "alerts",
        "--endpoints",
        &endpoints,
        "--observe",
        "2s",
        "--check",
        "--json",
    ]);
    let table = stdout_of(&alerts);
    assert_eq!(
        alerts.status.code(),
        Some(2),
        "critical: {table}{}",
        stderr_of(&alerts)
    );
    let v: serde_json::Value = serde_json::from_str(&table).expect("alerts --json");
    let firing: Vec<&serde_json::Value> = v["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["rule"] == "replica_divergence" && a["state"] == "firing")
        .collect();
    assert_eq!(firing.len(), 1, "{table}");
    assert!(
        firing[0]["subject"]
            .as_str()
            .unwrap_or_default()
            .contains(&victim.to_string()),
        "{table}"
    );

    // Fewer than two nodes answering: no verdict, exit 4.
    let others: Vec<u64> = (1..=3).filter(|i| *i != leader).collect();
    for id in &others {
        cluster.node_mut(*id).stop();
    }
    let (code, out, _) = check(&endpoints, false);
    assert_eq!(code, Some(4), "{out}");
}

fn p99(mut lat: Vec<Duration>) -> Duration {
    lat.sort_unstable();
    let at = (lat.len() * 99 / 100).min(lat.len().saturating_sub(1));
    lat.get(at).copied().unwrap_or_default()
}

/// 8 writers against the leader until `stop` is set, recording every write's latency.
async fn writers(addr: &str, stop: Arc<AtomicBool>, tag: &str) -> Vec<Duration> {
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (mut c, tag, stop) = (client(addr), tag.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    c.put(PutRequest {
                        key: format!("{tag}/w{w}-{i}"),
                        value: vec![b'x'; 100],
                    })
                    .await
                    .expect("put");
                    lat.push(started.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_checks_during_writes_all_agree() {
    let cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let addr = cluster.node(leader).grpc.clone();

    // Without checks: 8 writers for 5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = tokio::spawn({
        let (addr, stop) = (addr.clone(), stop.clone());
        async move { writers(&addr, stop, "quiet").await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let quiet = quiet.await.expect("writers");

    // With checks: the same writers while 20 checks run back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn({
        let (addr, stop) = (addr.clone(), stop.clone());
        async move { writers(&addr, stop, "busy").await }
    });
    let endpoints = cluster.endpoints();
    let started = Instant::now();
    let outcomes = tokio::task::spawn_blocking(move || {
        (0..20).map(|_| check(&endpoints, true)).collect::<Vec<_>>()
    })
    .await
    .expect("checks");
    let checks_took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy = busy.await.expect("writers");

    let mut indexes = Vec::new();
    for (i, (code, out, err)) in outcomes.iter().enumerate() {
        assert_eq!(*code, Some(0), "check {i}: {out}{err}");
        let report: serde_json::Value = serde_json::from_str(out).expect("json");
        assert_eq!(report["outcome"]["outcome"], "agree", "check {i}: {out}");
        assert_eq!(report["nodes"].as_array().map(Vec::len), Some(3), "{out}");
        indexes.push(report["outcome"]["index"].as_u64().expect("index"));
    }
    assert!(
        indexes.windows(2).all(|w| w[0] <= w[1]) && indexes.first() < indexes.last(),
        "the checks compared at advancing indexes while writes went on: {indexes:?}"
    );
    let (p_quiet, p_busy) = (p99(quiet.clone()), p99(busy.clone()));
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    eprintln!(
        "20 checks took {checks_took:?} (indexes {}..{}); 8 writers: p99 {p_quiet:?} without checks ({:.0} writes/s), p99 {p_busy:?} with checks running back to back ({:.0} writes/s)",
        indexes[0],
        indexes[19],
        rate(quiet.len(), Duration::from_secs(5)),
        rate(busy.len(), checks_took),
    );
    assert!(
        p_busy < Duration::from_secs(2),
        "writes stalled while checking: p99 {p_busy:?}"
    );
}
