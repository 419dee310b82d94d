//! `opsdeck check` against real node processes: it names a node whose data was changed
//! behind Raft's back, lists unreachable nodes, and agrees check after check while writers
//! keep writing without slowing them (p50/p99/max write latency with and without checks,
//! printed and compared).

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
        .applied()
        .await
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
    let got = cluster.node(2).digest(Some(index)).await;
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

/// p50, p99 and max of `lat` (sorted in place).
fn percentiles(lat: &mut [Duration]) -> (Duration, Duration, Duration) {
    lat.sort_unstable();
    let at = |q: usize| {
        let i = (lat.len() * q / 100).min(lat.len().saturating_sub(1));
        lat.get(i).copied().unwrap_or_default()
    };
    (at(50), at(99), lat.last().copied().unwrap_or_default())
}

/// One write: when it started and how long it took.
type Sample = (Instant, Duration);

/// 8 writers against the leader until `stop` is set, recording every write.
async fn writers(addr: &str, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (mut c, stop) = (client(addr), stop.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    c.put(PutRequest {
                        key: format!("load/w{w}-{i}"),
                        value: vec![b'x'; 100],
                    })
                    .await
                    .expect("put");
                    samples.push((started, started.elapsed()));
                    i += 1;
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    all
}

/// What runs during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Nothing but the writers.
    Quiet,
    /// 20 `opsdeck status --json` runs back to back: the same process start-ups and a
    /// round of calls to every node, but no digest asked for (the control).
    Status,
    /// 20 `opsdeck check --json` runs back to back.
    Checks,
}

/// Must show 2 of issue 18: 8 writers run throughout while windows of three kinds
/// alternate (see [`Window`]), [`ROUNDS`] times each, in a rotating order. Every check
/// agrees; the p99 write latency during the checks is within 10 % of the p99 without them
/// (plus a small absolute slack, below), printed with p50 and max.
///
/// "Without them" is the control window, not the quiet one: on this 2-core machine each
/// `opsdeck` run is a process whose start-up competes for the cores with the three nodes
/// and the writers. Measured (BENCHMARKS.md), 20 `opsdeck status` runs slow writes exactly
/// as much as 20 checks do (p99 +15-30 % over quiet windows), so that is the harness's cost,
/// and comparing checks with the control isolates what the check itself costs the writers.
/// The quiet figures are printed as well.
///
/// 20 checks take about half a second here, a few hundred writes: too few for a p99 that
/// means anything. So the 20 run several times, between windows of the other kinds of
/// about the same length; alternating in short windows also spreads what drifts over a run
/// (the database growing, snapshots and log compaction starting at their thresholds) over
/// every kind of window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_checks_during_writes_all_agree_and_do_not_slow_writes() {
    /// Windows of each kind.
    const ROUNDS: usize = 12;
    /// A quiet window (about as long as 20 checks take).
    const QUIET: Duration = Duration::from_millis(500);
    const RUNS_PER_WINDOW: usize = 20;
    /// Added to the 10 % bound. A write's p99 here is ~10 ms, where one scheduler hiccup
    /// on this shared 2-core machine is already 10 %; a check that held writes up (the
    /// apply loop paused, a lock held across a scan of the data) costs tens to hundreds of
    /// ms and is still caught.
    const SLACK: Duration = Duration::from_millis(3);

    let cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let addr = cluster.node(leader).grpc.clone();
    let endpoints = cluster.endpoints();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (addr, stop) = (addr.clone(), stop.clone());
        async move { writers(&addr, stop).await }
    });
    // Warm up (connections, the first entries), outside any window.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let kinds = [Window::Quiet, Window::Status, Window::Checks];
    let mut windows: Vec<(Instant, Instant, Window)> = Vec::new();
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..kinds.len() {
            let kind = kinds[(round + k) % kinds.len()];
            let started = Instant::now();
            match kind {
                Window::Quiet => tokio::time::sleep(QUIET).await,
                Window::Status | Window::Checks => {
                    let endpoints = endpoints.clone();
                    let ran = tokio::task::spawn_blocking(move || {
                        (0..RUNS_PER_WINDOW)
                            .map(|_| match kind {
                                Window::Checks => check(&endpoints, true),
                                _ => {
                                    let out =
                                        run_cli(&["status", "--json", "--endpoints", &endpoints]);
                                    (out.status.code(), stdout_of(&out), stderr_of(&out))
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                    .await
                    .expect("runs");
                    if kind == Window::Checks {
                        outcomes.extend(ran);
                    } else {
                        for (code, out, err) in ran {
                            assert_eq!(code, Some(0), "status: {out}{err}");
                        }
                    }
                }
            }
            windows.push((started, Instant::now(), kind));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.expect("writers");

    let mut indexes = Vec::new();
    for (i, (code, out, err)) in outcomes.iter().enumerate() {
        assert_eq!(*code, Some(0), "check {i}: {out}{err}");
        let report: serde_json::Value = serde_json::from_str(out).expect("json");
        assert_eq!(report["outcome"]["outcome"], "agree", "check {i}: {out}");
        assert_eq!(report["nodes"].as_array().map(Vec::len), Some(3), "{out}");
        indexes.push(report["outcome"]["index"].as_u64().expect("index"));
    }
    assert_eq!(indexes.len(), ROUNDS * RUNS_PER_WINDOW);
    assert!(
        indexes.windows(2).all(|w| w[0] <= w[1]) && indexes.first() < indexes.last(),
        "the checks compared at advancing indexes while writes went on: {indexes:?}"
    );
    for twenty in indexes.chunks(RUNS_PER_WINDOW) {
        assert!(
            twenty.first() < twenty.last(),
            "within 20 consecutive checks the index advanced: {twenty:?}"
        );
    }

    // Each write counts in the window it started in.
    let figures = |kind: Window| {
        let mut lat = Vec::new();
        let mut time = Duration::ZERO;
        for &(from, to, _) in windows.iter().filter(|w| w.2 == kind) {
            lat.extend(
                samples
                    .iter()
                    .filter(|(at, _)| *at >= from && *at < to)
                    .map(|(_, d)| *d),
            );
            time += to - from;
        }
        let n = lat.len();
        let (p50, p99, max) = percentiles(&mut lat);
        let line = format!(
            "{n} writes ({:.0}/s in {time:.1?}), p50 {p50:.2?} p99 {p99:.2?} max {max:.2?}",
            n as f64 / time.as_secs_f64()
        );
        (n, p99, line)
    };
    let (_, quiet99, quiet) = figures(Window::Quiet);
    let (without_n, without99, without) = figures(Window::Status);
    let (during_n, during99, during) = figures(Window::Checks);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    eprintln!(
        "8 writers, {ROUNDS} windows of each kind:\n  quiet:                       {quiet}\n  \
         without checks (20 status):  {without}\n  during 20 checks:            {during}\n  \
         {} checks, all agree, at indexes {}..{}; p99 during/without {:.3}, during/quiet {:.3}",
        indexes.len(),
        indexes[0],
        indexes[indexes.len() - 1],
        ratio(during99, without99),
        ratio(during99, quiet99),
    );
    assert!(
        without_n > 1000 && during_n > 1000,
        "too few writes to compare: {without_n} and {during_n}"
    );
    let bound = without99.mul_f64(1.10) + SLACK;
    assert!(
        during99 <= bound,
        "the checks slowed writes: p99 {during99:?} during checks, {without99:?} without (bound: 110 % + {SLACK:?} = {bound:?})"
    );
}
