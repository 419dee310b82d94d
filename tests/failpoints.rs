//! The storage failpoints (`--features failpoints`) on real node processes: the admin-only
//! HTTP route, and what a node does when one fires — its Raft stops, it acknowledges
//! nothing more, and a restart from its data dir (what a supervisor does) heals it. Without
//! the feature: no route, `FAILPOINTS` refused, and no failpoint name in the binary.
//!
//! `cargo test --release --features failpoints --test failpoints` (the normal
//! `cargo test --release --workspace` runs the tests of a build without them).

mod support;

use std::time::Duration;

use support::*;

/// The failpoints, as `node/src/failpoint.rs` names them.
const NAMES: [&str; 6] = [
    "log_store::append",
    "log_store::flush",
    "state_machine::apply",
    "snapshot::write",
    "snapshot::receive_chunk",
    "snapshot::install",
];

async fn http_status(req: reqwest::RequestBuilder) -> (u16, String) {
    match req.timeout(Duration::from_secs(5)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

#[cfg(not(feature = "failpoints"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feature_there_is_no_route_and_failpoints_env_is_refused() {
    let cluster = TestCluster::start(1, &[]).await;
    let n = cluster.node(1);
    let url = format!("http://{}/debug/failpoints", n.http);
    let (code, body) = http_status(http_client().get(&url)).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(n.failpoint("log_store::flush", "return(EIO)").await.0, 404);

    // A test that asks for a fault this build cannot inject must not pass as if it had one.
    let dir = tempfile::tempdir().expect("temp dir");
    let child = std::process::Command::new(BIN)
        .args(["node", "--id", "1", "--init", "--grpc"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(dir.path().join("n1"))
        .env("FAILPOINTS", "log_store::flush=return(EIO)")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn opsdeck node");
    let out = wait_output(child, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("this build has no failpoints"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !dir.path().join("n1").exists(),
        "refused before the data dir"
    );
}

/// The release build without the feature holds no failpoint code: not even the names,
/// which every failpoint site carries.
#[cfg(not(feature = "failpoints"))]
#[test]
fn without_the_feature_the_binary_holds_no_failpoint() {
    let bin = std::fs::read(BIN).expect("read the opsdeck binary");
    for name in NAMES {
        let found = bin.windows(name.len()).any(|w| w == name.as_bytes());
        assert!(!found, "{name} is in {BIN}, built without failpoints");
    }
}

#[cfg(feature = "failpoints")]
mod with_failpoints {
    use super::*;
    use opsdeck_node::pb::{CompactRequest, CreateKeyRequest, PutRequest};

    #[test]
    fn the_binary_holds_every_failpoint() {
        let bin = std::fs::read(BIN).expect("read the opsdeck binary");
        for name in NAMES {
            let found = bin.windows(name.len()).any(|w| w == name.as_bytes());
            assert!(found, "{name} is not in {BIN}, built with failpoints");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_route_needs_admin_and_knows_the_names() {
        let cluster = TestCluster::start(1, &[]).await;
        let n = cluster.node(1);
        let list = format!("http://{}/debug/failpoints", n.http);
        let one = |name: &str| format!("http://{}/debug/failpoints/{name}", n.http);
        let read = n
            .client()
            .create_key(CreateKeyRequest {
                role: "read".into(),
                tenants: Vec::new(),
                expires_in_ms: 0,
            })
            .await
            .expect("create a read key")
            .into_inner()
            .secret;
        let anonymous = reqwest::Client::new();

        let (code, _) = http_status(anonymous.get(&list)).await;
        assert_eq!(code, 401, "no key");
        let (code, body) = http_status(anonymous.get(&list).bearer_auth(&read)).await;
        assert_eq!(code, 403, "a read key: {body}");
        let (code, body) = http_status(
            anonymous
                .put(one("log_store::flush"))
                .bearer_auth(&read)
                .body("return(EIO)"),
        )
        .await;
        assert_eq!(code, 403, "a read key may not set one: {body}");

        let listed = |body: &str| -> Vec<(String, String)> {
            let v: serde_json::Value = serde_json::from_str(body).expect("json");
            v["failpoints"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
                    (s("name"), s("actions"))
                })
                .collect()
        };
        let (code, body) = http_status(http_client().get(&list)).await;
        assert_eq!(code, 200, "{body}");
        let all = listed(&body);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, NAMES);
        assert!(all.iter().all(|(_, a)| a == "off"), "{all:?}");

        for (name, actions, want) in [
            ("log_store::fsync", "return(EIO)", 404),
            ("log_store::flush", "return(EWHAT)", 400),
            ("log_store::flush", "explode", 400),
            ("log_store::flush", "", 400),
            ("snapshot::write", "50%sleep(1)->return(ENOSPC)", 200),
        ] {
            let (code, body) = n.failpoint(name, actions).await;
            assert_eq!(code, want, "{name}={actions}: {body}");
        }
        let (_, body) = http_status(http_client().get(&list)).await;
        let set: Vec<_> = listed(&body)
            .into_iter()
            .filter(|(_, a)| a != "off")
            .collect();
        assert_eq!(
            set,
            vec![(
                "snapshot::write".to_string(),
                "50%sleep(1)->return(ENOSPC)".to_string()
            )]
        );
        assert_eq!(n.failpoint("snapshot::write", "off").await.0, 200);
        let (_, body) = http_status(http_client().get(&list)).await;
        assert!(listed(&body).iter().all(|(_, a)| a == "off"), "{body}");
    }

    /// Puts `count` keys `PREFIX/I` through a node that says it leads (a node whose Raft
    /// stopped may still think it follows the old one), each retried until acknowledged.
    async fn write(cluster: &TestCluster, prefix: &str, count: usize) {
        for i in 0..count {
            let key = format!("{prefix}/{i}");
            wait_for(&format!("put {key}"), Duration::from_secs(30), || async {
                let mut leader = None;
                for n in cluster.nodes.iter().filter(|n| n.running()) {
                    if n.status().await.is_some_and(|s| s.role == "leader") {
                        leader = Some(n.id);
                    }
                }
                let mut req = tonic::Request::new(PutRequest {
                    key: key.clone(),
                    value: b"v".to_vec(),
                });
                req.set_timeout(Duration::from_secs(3));
                cluster.node(leader?).client().put(req).await.ok()
            })
            .await;
        }
    }

    /// The running voters other than `except`.
    fn others(cluster: &TestCluster, except: u64) -> impl Fn(u64) -> bool + '_ {
        move |id| id != except && cluster.node(id).running()
    }

    async fn wait_raft_stopped(node: &TestNode, what: &str) {
        wait_for(
            &format!("node {}'s Raft to stop after {what}", node.id),
            Duration::from_secs(20),
            || async { (node.status().await?.role == "shutdown").then_some(()) },
        )
        .await;
    }

    /// A write sent to the node whose Raft stopped is refused: nothing more is
    /// acknowledged by it. Answers the status.
    async fn write_to(node: &TestNode) -> u16 {
        let url = format!("http://{}/kv/after-stop", node.http);
        let (code, body) = http_status(http_client().put(url).body("v")).await;
        eprintln!("a write to node {} answered {code}: {body}", node.id);
        code
    }

    /// SIGTERM (it exits although its Raft stopped), start again from the data dir, and
    /// catch up: the node holds what the others hold.
    async fn restart_and_compare(cluster: &mut TestCluster, id: u64) {
        assert!(
            cluster
                .node_mut(id)
                .terminate(Duration::from_secs(10))
                .await,
            "node {id} did not exit within 10 s of SIGTERM"
        );
        cluster.node_mut(id).env.clear();
        cluster.node_mut(id).start(false);
        let leader = cluster.wait_leader(Duration::from_secs(30)).await.0;
        let committed = cluster
            .node(leader)
            .status()
            .await
            .and_then(|s| s.committed)
            .unwrap_or(0);
        cluster
            .wait_applied(committed, Duration::from_secs(30))
            .await;
        assert_eq!(
            cluster.scan_local(id, "").await,
            cluster.scan_local(leader, "").await,
            "node {id} after its restart"
        );
    }

    /// The node's log says the failpoint fired, with the error the OS would give.
    fn assert_logged(node: &TestNode, name: &str, error: &str) {
        let log = node.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("failpoint fired") && l.contains(name) && l.contains(error)),
            "node {}'s log does not say {name} fired with {error:?}",
            node.id
        );
    }

    const FLAGS: [&str; 6] = [
        "--snapshot-every",
        "64",
        "--keep-logs",
        "16",
        "--rate-limit",
        "off",
    ];

    /// A log append, an fsync and an apply that fail on a follower each stop its Raft (the
    /// other two go on), and a restart heals it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_append_fsync_or_apply_stops_raft_and_a_restart_heals() {
        let mut cluster = TestCluster::start(3, &FLAGS).await;
        write(&cluster, "before", 20).await;
        for (name, actions, error) in [
            (
                "log_store::flush",
                "return(EIO)",
                "Input/output error (os error 5)",
            ),
            (
                "log_store::append",
                "return(ENOSPC)",
                "No space left on device (os error 28)",
            ),
            (
                "state_machine::apply",
                "return(EROFS)",
                "Read-only file system (os error 30)",
            ),
        ] {
            let leader = cluster.wait_leader(Duration::from_secs(30)).await.0;
            let id = (1..=3).find(|&i| i != leader).expect("a follower");
            let (code, body) = cluster.node(id).failpoint(name, actions).await;
            assert_eq!(code, 200, "{body}");
            // The other two are a quorum: writes go on.
            write(&cluster, name, 10).await;
            wait_raft_stopped(cluster.node(id), name).await;
            assert_logged(cluster.node(id), name, error);
            let code = write_to(cluster.node(id)).await;
            assert!(
                code >= 500,
                "a write to node {id} after {name} answered {code}"
            );
            let (still, _) = cluster
                .wait_leader_among(others(&cluster, id), Duration::from_secs(30))
                .await;
            assert_ne!(still, id);
            restart_and_compare(&mut cluster, id).await;
        }
    }

    /// A snapshot build whose writes fail and an install that fails (set by `FAILPOINTS`
    /// from the node's start on) each stop Raft on that node; a restart heals it, and the
    /// half-written snapshot file is removed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_snapshot_build_or_install_stops_raft_and_a_restart_heals() {
        let mut cluster = TestCluster::start(3, &FLAGS).await;
        write(&cluster, "before", 20).await;

        // Build: a compaction makes the follower snapshot now.
        let leader = cluster.wait_leader(Duration::from_secs(30)).await.0;
        let id = (1..=3).find(|&i| i != leader).expect("a follower");
        let (code, body) = cluster
            .node(id)
            .failpoint("snapshot::write", "return(ENOSPC)")
            .await;
        assert_eq!(code, 200, "{body}");
        let mut req = tonic::Request::new(CompactRequest {});
        req.set_timeout(Duration::from_secs(10));
        let compacted = cluster.node(id).client().compact(req).await;
        assert!(
            compacted.is_err(),
            "compact with failing snapshot writes: {compacted:?}"
        );
        wait_raft_stopped(cluster.node(id), "snapshot::write").await;
        assert_logged(cluster.node(id), "snapshot::write", "os error 28");
        let building = cluster.node(id).data.join("snapshot.bin.building");
        assert!(building.exists(), "the failed build left its side file");
        restart_and_compare(&mut cluster, id).await;
        assert!(
            !building.exists(),
            "the restart removed the half-written snapshot"
        );

        // Install: a follower down while the log moves past what the others keep comes
        // back needing a snapshot, and its install fails from the first one on.
        let leader = cluster.wait_leader(Duration::from_secs(30)).await.0;
        let id = (1..=3).find(|&i| i != leader).expect("a follower");
        assert!(
            cluster
                .node_mut(id)
                .terminate(Duration::from_secs(10))
                .await
        );
        write(&cluster, "while-down", 200).await;
        let mut req = tonic::Request::new(CompactRequest {});
        req.set_timeout(Duration::from_secs(10));
        cluster
            .node(leader)
            .client()
            .compact(req)
            .await
            .expect("compact on the leader");
        let node = cluster.node_mut(id);
        node.env
            .push(("FAILPOINTS".into(), "snapshot::install=return(EIO)".into()));
        node.start(false);
        wait_raft_stopped(cluster.node(id), "snapshot::install").await;
        assert_logged(cluster.node(id), "snapshot::install", "os error 5");
        assert!(cluster
            .node(id)
            .log_text()
            .contains("failpoint set from FAILPOINTS"));
        restart_and_compare(&mut cluster, id).await;
    }

    /// A learner whose snapshot takes longer to arrive than add-node's stall timeout is not
    /// taken for one the leader cannot reach: bytes of a snapshot arriving are progress,
    /// though its index moves only once the whole snapshot is installed. Each 4 MiB chunk
    /// the new node receives waits 500 ms (`snapshot::receive_chunk`), against a stall
    /// timeout of 1 s.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_snapshot_transfer_is_progress_to_add_node_not_a_stall() {
        // A short log (the compact leaves 16 entries) but no snapshot every 64: one snapshot
        // of the 24 MiB, built by the compact, not one per 64 writes of 64 KiB.
        const FLAGS: [&str; 4] = ["--keep-logs", "16", "--rate-limit", "off"];
        let mut cluster = TestCluster::start(3, &FLAGS).await;
        let leader = cluster.wait_leader(Duration::from_secs(30)).await.0;
        // 24 MiB of values: at least six chunks, 3 s of waits.
        write_load_sized(&cluster.node(leader).grpc, 4, 96, 64 * 1024).await;
        let mut req = tonic::Request::new(CompactRequest {});
        // The node bounds each step of a compact by 60 s.
        req.set_timeout(Duration::from_secs(150));
        cluster
            .node(leader)
            .client()
            .compact(req)
            .await
            .expect("compact on the leader: the learner must be sent a snapshot");
        let mut fourth = TestNode::new(cluster.dir.path(), 4, &FLAGS);
        fourth.env.push((
            "FAILPOINTS".into(),
            "snapshot::receive_chunk=sleep(500)".into(),
        ));
        fourth.launch(false).await;
        let (grpc, http) = (fourth.grpc.clone(), fourth.http.clone());
        cluster.nodes.push(fourth);
        let started = std::time::Instant::now();
        let out = cli_as(
            None,
            &[
                "add-node",
                "--id",
                "4",
                "--grpc",
                &grpc,
                "--http",
                &http,
                "--stall-timeout",
                "1s",
                "--endpoints",
                &cluster.endpoints(),
                "--json",
            ],
        )
        .await;
        let took = started.elapsed();
        assert!(out.status.success(), "add-node: {}", stderr_of(&out));
        let added: serde_json::Value =
            serde_json::from_str(&stdout_of(&out)).expect("add-node --json");
        assert_eq!(added["promoted"], true, "{added}");
        assert!(
            took >= Duration::from_secs(3),
            "the transfer was not slower than the stall timeout ({took:?}): the test shows nothing"
        );
        assert!(
            cluster.node(4).log_text().contains("snapshot installed"),
            "node 4 caught up without a snapshot: the test shows nothing"
        );
    }
}
