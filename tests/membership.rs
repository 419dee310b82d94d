//! Membership operations with real `opsdeck node` processes: add-node, remove-node and
//! transfer-leader through the CLI, under a steady write load.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdeck_node::pb::AddLearnerRequest;
use support::dev::*;
use support::*;

/// The CLI with the test admin key, off the async workers.
async fn cli(args: &[&str]) -> Output {
    cli_as(None, args).await
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "CLI failed: {}\n{}",
        stderr_of(out),
        stdout_of(out)
    );
    serde_json::from_str(&stdout_of(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout_of(out)))
}

async fn voters_of(node: &TestNode) -> Option<BTreeSet<u64>> {
    let s = node.status().await?;
    Some(s.members.iter().filter(|m| m.voter).map(|m| m.id).collect())
}

async fn members_of(node: &TestNode) -> Option<BTreeSet<u64>> {
    let s = node.status().await?;
    Some(s.members.iter().map(|m| m.id).collect())
}

/// Waits until every running node lists exactly `voters` as voters and `members` as members.
async fn wait_membership(cluster: &TestCluster, voters: &BTreeSet<u64>, members: &BTreeSet<u64>) {
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        wait_for(
            &format!("node {} to list voters {voters:?}", n.id),
            Duration::from_secs(15),
            || async {
                (voters_of(n).await? == *voters && members_of(n).await? == *members).then_some(())
            },
        )
        .await;
    }
}

/// Waits until the leader's log has grown by `entries` (the write load is running).
async fn wait_acked(entries: u64, cluster: &TestCluster) {
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.0;
    let start = cluster
        .node(leader)
        .status()
        .await
        .and_then(|s| s.last_log_index)
        .unwrap_or(0);
    wait_for("the write load to run", Duration::from_secs(15), || async {
        let s = cluster.node(leader).status().await?;
        (s.last_log_index? > start + entries).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_then_remove_a_node_and_the_leader_under_load() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    // Data for the new node to catch up on.
    write_load(&cluster.node(leader).grpc, 40, 250).await;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    let writers = SteadyLoad::start(endpoints.clone(), 8);
    wait_acked(50, &cluster).await;
    let eps = endpoints.join(",");

    // Add a 4th node through the CLI: it catches up and becomes a voter everywhere.
    let mut fourth = TestNode::new(cluster.dir.path(), 4, &[]);
    fourth.launch(false).await;
    let (grpc4, http4) = (fourth.grpc.clone(), fourth.http.clone());
    cluster.nodes.push(fourth);
    let started = Instant::now();
    let out = cli(&[
        "add-node",
        "--id",
        "4",
        "--grpc",
        &grpc4,
        "--http",
        &http4,
        "--endpoints",
        &eps,
        "--json",
    ])
    .await;
    let added = json_of(&out);
    eprintln!("add-node took {:?}: {added}", started.elapsed());
    assert_eq!(added["promoted"], true, "{added}");
    assert_eq!(added["voters"], serde_json::json!([1, 2, 3, 4]), "{added}");
    let all4: BTreeSet<u64> = [1, 2, 3, 4].into();
    wait_membership(&cluster, &all4, &all4).await;

    // Remove it again.
    let out = cli(&["remove-node", "--id", "4", "--endpoints", &eps, "--json"]).await;
    let removed = json_of(&out);
    assert_eq!(removed["voters"], serde_json::json!([1, 2, 3]), "{removed}");
    cluster.node_mut(4).kill9();
    let three: BTreeSet<u64> = [1, 2, 3].into();
    wait_membership(&cluster, &three, &three).await;

    // Remove the leader: leadership moves first, seen before the membership changes.
    let (old_leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let watching = Arc::new(AtomicBool::new(true));
    let observer = {
        let watching = watching.clone();
        let nodes: Vec<(u64, String)> = cluster
            .nodes
            .iter()
            .filter(|n| n.running())
            .map(|n| (n.id, n.grpc.clone()))
            .collect();
        tokio::spawn(async move {
            // (when a new leader was first seen, when the old one was first missing)
            let mut moved: Option<Instant> = None;
            let mut dropped: Option<Instant> = None;
            while watching.load(Ordering::Relaxed) {
                for (_, grpc) in &nodes {
                    let mut c = client(grpc);
                    let mut req = tonic::Request::new(opsdeck_node::pb::StatusRequest {});
                    req.set_timeout(Duration::from_millis(300));
                    let Ok(s) = c.status(req).await else { continue };
                    let s = s.into_inner();
                    if moved.is_none() && s.role == "leader" && s.id != old_leader {
                        moved = Some(Instant::now());
                    }
                    if dropped.is_none() && !s.members.iter().any(|m| m.id == old_leader) {
                        dropped = Some(Instant::now());
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (moved, dropped)
        })
    };
    let id = old_leader.to_string();
    let out = cli(&["remove-node", "--id", &id, "--endpoints", &eps, "--json"]).await;
    let removed = json_of(&out);
    eprintln!("remove-node of the leader: {removed}");
    let new_leader = removed["transfer"]["to"]
        .as_u64()
        .expect("a transfer first");
    assert_ne!(new_leader, old_leader, "{removed}");
    assert_eq!(removed["transfer"]["from"], old_leader, "{removed}");
    let rest: BTreeSet<u64> = three.iter().copied().filter(|i| *i != old_leader).collect();
    cluster.node_mut(old_leader).kill9();
    wait_membership(&cluster, &rest, &rest).await;
    watching.store(false, Ordering::Relaxed);
    let (moved, dropped) = observer.await.unwrap();
    let (moved, dropped) = (
        moved.expect("a new leader seen"),
        dropped.expect("removal seen"),
    );
    assert!(
        moved < dropped,
        "leadership must move before the leader leaves the membership"
    );
    assert_eq!(
        cluster.wait_leader(Duration::from_secs(10)).await.0,
        new_leader
    );
    // The audit trail has the transfer, then the removal.
    let audit = json_of(&cli(&["audit", "--json", "--endpoints", &eps]).await);
    let records = audit["records"].as_array().expect("records");
    let at = |action: &str, args: &str| {
        records
            .iter()
            .position(|r| {
                r["action"] == action
                    && r["result"] == "ok"
                    && r["args"].as_str().is_some_and(|a| a.contains(args))
            })
            .unwrap_or_else(|| panic!("no {action} {args} in {audit}"))
    };
    let transfer = at("member.transfer_leader", &format!("to={new_leader}"));
    let removal = at("member.change", &format!("remove={{{old_leader}}}"));
    assert!(transfer < removal, "{audit}");

    // Keep writing a little on the smaller cluster, then stop and compare.
    let before = cluster
        .node(new_leader)
        .status()
        .await
        .and_then(|s| s.last_log_index)
        .unwrap_or(0);
    wait_for(
        "writes on the 2-node cluster",
        Duration::from_secs(15),
        || async {
            let s = cluster.node(new_leader).status().await?;
            (s.last_log_index? > before + 20).then_some(())
        },
    )
    .await;
    let load = writers.stop().await;
    eprintln!(
        "writes acknowledged: {}, retried attempts: {}, longest write incl. retries: {:?}",
        load.acked.len(),
        load.retries,
        load.longest_write
    );
    assert!(load.failed.is_empty(), "writes failed: {:?}", load.failed);
    assert!(
        load.acked.len() > 100,
        "too few writes: {}",
        load.acked.len()
    );
    let committed = cluster
        .node(new_leader)
        .status()
        .await
        .and_then(|s| s.committed)
        .unwrap_or(0);
    cluster
        .wait_applied(committed, Duration::from_secs(20))
        .await;
    let mut scans = Vec::new();
    for id in &rest {
        let stored: BTreeMap<String, Vec<u8>> =
            cluster.scan_local(*id, "load/").await.into_iter().collect();
        for (k, v) in &load.acked {
            assert_eq!(
                stored.get(k).map(Vec::as_slice),
                Some(v.as_bytes()),
                "node {id} lacks acknowledged write {k}"
            );
        }
        scans.push(stored);
    }
    assert!(scans.windows(2).all(|w| w[0] == w[1]), "full scans differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_leader_moves_leadership_and_refuses_bad_targets() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, term) = cluster.wait_leader(Duration::from_secs(10)).await;
    let eps = cluster.endpoints();
    let writers = SteadyLoad::start(cluster.nodes.iter().map(|n| n.grpc.clone()).collect(), 8);
    wait_acked(50, &cluster).await;

    let to = cluster.a_follower(leader);
    let started = Instant::now();
    let out = cli(&[
        "transfer-leader",
        "--to",
        &to.to_string(),
        "--endpoints",
        &eps,
        "--json",
    ])
    .await;
    let t = json_of(&out);
    eprintln!(
        "transfer-leader (CLI round trip {:?}): {t}",
        started.elapsed()
    );
    assert_eq!(t["from"], leader, "{t}");
    assert_eq!(t["to"], to, "{t}");
    assert!(t["term"].as_u64().unwrap() > term, "{t}");
    let (now_leader, _) = cluster.wait_leader(Duration::from_secs(5)).await;
    assert_eq!(now_leader, to);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Writes kept flowing through the handover.
    let before = cluster
        .node(to)
        .status()
        .await
        .and_then(|s| s.last_log_index)
        .unwrap_or(0);
    wait_for(
        "writes after the transfer",
        Duration::from_secs(10),
        || async {
            let s = cluster.node(to).status().await?;
            (s.last_log_index? > before + 20).then_some(())
        },
    )
    .await;
    let load = writers.stop().await;
    eprintln!(
        "during the transfer test: {} writes, {} retried attempts, longest write {:?}",
        load.acked.len(),
        load.retries,
        load.longest_write
    );
    assert!(load.failed.is_empty(), "writes failed: {:?}", load.failed);

    // Refusals: itself, an unknown id, a learner.
    let out = cli(&[
        "transfer-leader",
        "--to",
        &to.to_string(),
        "--endpoints",
        &eps,
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("node {to} is already the leader")),
        "{}",
        stderr_of(&out)
    );
    let out = cli(&["transfer-leader", "--to", "99", "--endpoints", &eps]).await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("node 99 is not a member"),
        "{}",
        stderr_of(&out)
    );
    let mut learner = TestNode::new(cluster.dir.path(), 4, &[]);
    learner.launch(false).await;
    cluster
        .node(to)
        .client()
        .add_learner(AddLearnerRequest {
            id: 4,
            grpc: learner.grpc.clone(),
            http: learner.http.clone(),
            blocking: true,
        })
        .await
        .expect("add learner");
    cluster.nodes.push(learner);
    let out = cli(&["transfer-leader", "--to", "4", "--endpoints", &eps]).await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("node 4 is a learner, not a voter"),
        "{}",
        stderr_of(&out)
    );
    // Removing an unknown id is refused too.
    let out = cli(&["remove-node", "--id", "77", "--endpoints", &eps]).await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("node 77 is not a member"),
        "{}",
        stderr_of(&out)
    );
    // Bad input is refused before anything is asked.
    let out = cli(&[
        "add-node",
        "--id",
        "5",
        "--grpc",
        "nowhere",
        "--http",
        "127.0.0.1:1",
        "--endpoints",
        &eps,
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("bad --grpc address"),
        "{}",
        stderr_of(&out)
    );
    // A node that is not running is refused before it is added.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let out = cli(&[
        "add-node",
        "--id",
        "5",
        "--grpc",
        &nowhere,
        "--http",
        "127.0.0.1:1",
        "--endpoints",
        &eps,
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("node 5 at {nowhere} does not answer")),
        "{}",
        stderr_of(&out)
    );
    assert!(!members_of(cluster.node(to)).await.unwrap().contains(&5));
    assert_eq!(cluster.wait_leader(Duration::from_secs(5)).await.0, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_node_refuses_losing_quorum_unless_forced() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let eps = cluster.endpoints();
    let followers: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != leader)
        .collect();
    let (down, victim) = (followers[0], followers[1]);
    cluster.node_mut(down).kill9();
    let down_addr = cluster.node(down).grpc.clone();

    let out = cli(&[
        "remove-node",
        "--id",
        &victim.to_string(),
        "--endpoints",
        &eps,
    ])
    .await;
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("node {down} at {down_addr} is down")),
        "{err}"
    );
    assert!(err.contains("need 2 reachable"), "{err}");
    assert!(err.contains("--force"), "{err}");
    let all: BTreeSet<u64> = [1, 2, 3].into();
    assert_eq!(voters_of(cluster.node(leader)).await.unwrap(), all);

    // A down voter cannot take over: refused at once, writes never paused.
    let started = Instant::now();
    let out = cli(&[
        "transfer-leader",
        "--to",
        &down.to_string(),
        "--endpoints",
        &eps,
    ])
    .await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("node {down} at {down_addr} does not answer")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(cluster.wait_leader(Duration::from_secs(5)).await.0, leader);

    // --force goes ahead: the change waits in the log until the down node is back.
    let args: Vec<String> = [
        "remove-node",
        "--id",
        &victim.to_string(),
        "--force",
        "--json",
        "--endpoints",
        &eps,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let forced = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    });
    let l = cluster.node(leader);
    wait_for(
        "the forced change to wait for its commit",
        Duration::from_secs(20),
        || async {
            let s = l.status().await?;
            (s.last_log_index? > s.committed?).then_some(())
        },
    )
    .await;
    cluster.node_mut(down).start(false);
    let out = forced.await.unwrap();
    let removed = json_of(&out);
    assert!(
        removed["overridden"]
            .as_str()
            .is_some_and(|w| w.contains(&format!("node {down}"))),
        "{removed}"
    );
    cluster.node_mut(victim).kill9();
    let rest: BTreeSet<u64> = [leader, down].into();
    wait_membership(&cluster, &rest, &rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_node_spawn_in_a_dev_cluster_and_dev_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let mut dev = DevProcess::start(dir.path(), 1).await;

    let added = json_of(&dev_cli(&["add-node", "--spawn", "--cluster", &d, "--json"]).await);
    assert_eq!(added["id"], 2, "{added}");
    assert_eq!(added["voters"], serde_json::json!([1, 2]), "{added}");
    let pid2 = added["spawned"]["pid"].as_u64().expect("pid");
    // It outlives the CLI that started it, and is recorded in cluster.toml.
    assert!(running(pid2), "the spawned node must outlive the CLI");
    let file = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    assert!(file.contains(&format!("pid = {pid2}")), "{file}");
    assert!(dir.path().join("n2").is_dir());

    // remove-node stops it and drops it from the file.
    let removed = json_of(&dev_cli(&["remove-node", "--id", "2", "--cluster", &d, "--json"]).await);
    assert_eq!(removed["voters"], serde_json::json!([1]), "{removed}");
    assert_eq!(removed["stopped"]["pid"], pid2, "{removed}");
    assert!(!running(pid2));
    let file = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    assert!(!file.lines().any(|l| l == "id = 2"), "{file}");

    // A node spawned later is stopped with the dev cluster.
    let added = json_of(&dev_cli(&["add-node", "--spawn", "--cluster", &d, "--json"]).await);
    assert_eq!(added["id"], 3, "{added}");
    let pid3 = added["spawned"]["pid"].as_u64().expect("pid");
    assert!(running(pid3));
    unsafe { libc::kill(dev.0.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = dev.0.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "dev did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "dev exited with {status}");
    assert!(!running(pid3), "dev must stop the node add-node spawned");
    let file = std::fs::read_to_string(dir.path().join("cluster.toml")).unwrap();
    assert!(
        file.lines().any(|l| l == "id = 3") && !file.contains("pid ="),
        "{file}"
    );
}

/// The corruption drill on a dev cluster: a node restarted from the console's view of
/// things, one whose data was changed behind Raft's back named by `check`, and rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_and_rebuild_a_node_and_refuse_what_would_cost_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let dev = DevProcess::start(dir.path(), 3).await;
    for i in 0..50 {
        let out = dev_cli(&["put", &format!("k{i}"), &format!("v{i}"), "--cluster", &d]).await;
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let kill9 = |id: u64| {
        let pid = pid_of(dir.path(), id).expect("a recorded pid");
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        pid
    };

    // Node 2 killed: rebuilding node 3 now would leave one voter of three: refused, naming
    // the down node, and nothing changed.
    let marker = dir.path().join("n3").join("stale-marker");
    std::fs::write(&marker, "old").unwrap();
    let pid3 = pid_of(dir.path(), 3).expect("node 3's pid");
    let pid2 = kill9(2);
    wait_for("node 2 to die", Duration::from_secs(10), || async {
        (!running(pid2)).then_some(())
    })
    .await;
    let out = dev_cli(&["rebuild-node", "--id", "3", "--cluster", &d]).await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("node 2"), "the down node is named: {err}");
    assert!(
        marker.exists() && running(pid3),
        "a refused rebuild changes nothing"
    );

    // Restarted from cluster.toml on its own data: rejoins and catches up.
    let out = dev_cli(&["restart-node", "--id", "2", "--cluster", &d]).await;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    assert!(text.contains("node 2 restarted (pid "), "{text}");
    assert!(text.contains("caught up to index"), "{text}");

    // Node 3's data changed behind Raft's back while it was down: `check` names it.
    let pid3 = kill9(3);
    // Reaped (by dev), not only a zombie: a killed leader thread turns zombie while the
    // others still hold the database's lock.
    wait_for("node 3 to be gone", Duration::from_secs(10), || async {
        (!std::path::Path::new(&format!("/proc/{pid3}")).exists()).then_some(())
    })
    .await;
    corrupt_one_value(&dir.path().join("n3"), "d/k");
    let out = dev_cli(&["restart-node", "--id", "3", "--cluster", &d]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = dev_cli(&["put", "after", "restart", "--cluster", &d]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let checked = wait_for("check to name node 3", Duration::from_secs(15), || async {
        let out = dev_cli(&["check", "--cluster", &d]).await;
        (out.status.code() == Some(8)).then(|| stdout_of(&out))
    })
    .await;
    assert!(checked.contains("node(s) 3 differ"), "{checked}");

    // Rebuilt while the cluster serves: a new process on data made again from the others.
    let out = dev_cli(&["rebuild-node", "--id", "3", "--cluster", &d]).await;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}{}", stderr_of(&out));
    assert!(text.contains("node 3 rebuilt in "), "{text}");
    assert!(text.contains("replicas agree at index "), "{text}");
    assert!(!marker.exists(), "the old data dir was deleted");
    let new_pid = pid_of(dir.path(), 3).expect("the new pid is recorded");
    assert!(running(new_pid));
    let got = dev_cli(&["get", "k49", "--cluster", &d]).await;
    assert_eq!(stdout_of(&got).trim(), "v49");

    // Stopping dev stops the restarted and rebuilt nodes too, though they carry ids dev
    // started itself.
    let pid2 = pid_of(dir.path(), 2).expect("node 2's new pid");
    drop(dev);
    for pid in [new_pid, pid2] {
        assert!(!running(pid), "node pid {pid} outlived dev");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_load_loses_nothing_and_refuses_a_degraded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let _dev = DevProcess::start(dir.path(), 3).await;
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .expect("the dev cluster's admin key")
        .trim()
        .to_string();
    let endpoints: Vec<String> = dev_endpoints(dir.path())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let status = json_of(&dev_cli(&["status", "--cluster", &d, "--json"]).await);
    let load = SteadyLoad::start_as(endpoints.clone(), 4, Some(key.clone()));
    wait_for("writes to flow", Duration::from_secs(10), || async {
        (load.acked_keys().len() > 50).then_some(())
    })
    .await;

    let out = dev_cli(&["rolling-restart", "--cluster", &d, "--json"]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    let load = load.stop().await;
    let order: Vec<u64> = v["order"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.as_u64())
        .collect();
    assert_eq!(order.len(), 3, "{v}");
    let leader = order[2];
    assert!(
        status
            .to_string()
            .contains(&format!("\"leader_id\":{leader}")),
        "the leader goes last: {v} {status}"
    );
    assert!(
        v["transfer"]["to"].as_u64().is_some_and(|t| t != leader),
        "{v}"
    );
    assert_eq!(v["restarts"].as_array().map(Vec::len), Some(3), "{v}");
    eprintln!(
        "rolling restart: {} writes acknowledged, {} retried, longest write {:?}, {} ms",
        load.acked.len(),
        load.retries,
        load.longest_write,
        v["took_ms"]
    );
    assert!(
        load.failed.is_empty(),
        "writes failed for good: {:?}",
        load.failed
    );
    for k in load.acked.keys() {
        let got = client_with_key(&endpoints[0], Some(&key))
            .get(opsdeck_node::pb::GetRequest {
                key: k.clone(),
                stale: false,
            })
            .await
            .expect("get")
            .into_inner();
        assert!(got.found && got.value == k.as_bytes(), "{k} lost");
    }

    // With a node down, a rolling restart is refused naming it.
    let pid = pid_of(dir.path(), 2).expect("node 2's pid");
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("node 2 to be gone", Duration::from_secs(10), || async {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    let out = dev_cli(&["rolling-restart", "--cluster", &d]).await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("rolling restart refused") && err.contains("node 2"),
        "{err}"
    );
}

/// add-node of a live node of another cluster fails at once, naming the cause, and adds
/// nothing: before, it was added as a learner and add-node waited forever at 0 entries/s
/// while only the leader's log said "missing or wrong cluster secret".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_node_refuses_a_node_of_another_cluster_at_once() {
    let cluster = TestCluster::start(1, &[]).await;
    let endpoints = cluster.endpoints();
    // Another cluster's secret (its own temp dir), and the same secret but its own cluster.
    let other_dir = tempfile::tempdir().unwrap();
    let mut foreign_secret = TestNode::new(other_dir.path(), 2, &[]);
    let mut foreign_cluster = TestNode::new(cluster.dir.path(), 3, &[]);
    foreign_secret.launch(true).await;
    foreign_cluster.launch(true).await;
    for n in [&foreign_secret, &foreign_cluster] {
        wait_for(
            "the other node to lead its cluster",
            Duration::from_secs(15),
            || async { (n.status().await?.role == "leader").then_some(()) },
        )
        .await;
    }
    for (node, cause) in [
        (&foreign_secret, "refuses this cluster's secret"),
        (&foreign_cluster, "belongs to another cluster"),
    ] {
        let id = node.id.to_string();
        let started = Instant::now();
        let out = cli(&[
            "add-node",
            "--id",
            &id,
            "--grpc",
            &node.grpc,
            "--http",
            &node.http,
            "--endpoints",
            &endpoints,
        ])
        .await;
        let err = stderr_of(&out);
        assert!(
            !out.status.success(),
            "node {id} was added: {}",
            stdout_of(&out)
        );
        assert!(err.contains(cause), "node {id}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            members_of(cluster.node(1)).await,
            Some([1].into()),
            "no learner may be left behind"
        );
    }
}

/// A learner that gains nothing (here: its process is stopped right after the checks) is
/// removed again once the stall deadline passes, and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_node_removes_a_learner_that_makes_no_progress() {
    use opsdeck::client::{ApiKey, ClusterClient};
    use opsdeck::ops::membership::{add_node, Deadlines, NewNode, Progress};

    let cluster = TestCluster::start(1, &[]).await;
    let mut joiner = TestNode::new(cluster.dir.path(), 2, &[]);
    joiner.launch(false).await;
    let pid = joiner.pid().expect("running") as i32;
    let client = ClusterClient::new(
        &[cluster.node(1).grpc.clone()],
        Duration::from_secs(10),
        ApiKey::new(admin_key()).unwrap(),
    )
    .unwrap();
    let node = NewNode {
        id: 2,
        grpc: joiner.grpc.clone(),
        http: joiner.http.clone(),
    };
    let mut stop_it = |p: &Progress| {
        if let Progress::AddingLearner { .. } = p {
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    };
    let deadlines = Deadlines {
        catch_up: Duration::from_secs(60),
        stall: Duration::from_secs(3),
    };
    let started = Instant::now();
    let err = add_node(&client, &node, true, deadlines, &mut stop_it)
        .await
        .expect_err("a learner that gains nothing cannot be added");
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let text = format!("{err:#}");
    assert!(
        text.contains("gained no log entries") && text.contains("removed from the cluster again"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(members_of(cluster.node(1)).await, Some([1].into()));
}

/// Outside a dev cluster restart-node and rolling-restart run the context's `restart`
/// operator command and wait for the node to answer as a new process: here the cluster
/// is a dev cluster reached by its endpoints (so not as a dev cluster), and its `restart`
/// command is the dev cluster's own restart-node, a real restart the CLI cannot see
/// coming. A command that exits 0 without restarting anything, and one that fails, are
/// reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_by_the_contexts_restart_command_waits_for_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let _dev = DevProcess::start(dir.path(), 3).await;
    let endpoints: Vec<String> = dev_endpoints(dir.path())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let list = endpoints.join("\", \"");
    let key = dir.path().join("admin.key");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[contexts.remote]
endpoints = ["{list}"]
key_file = "{key}"

[contexts.remote.commands.restart]
run = ["{bin}", "restart-node", "--id", "{{id}}", "--cluster", "{d}"]
timeout = "90s"

[contexts.noop]
endpoints = ["{list}"]
key_file = "{key}"

[contexts.noop.commands.restart]
run = "true"

[contexts.broken]
endpoints = ["{list}"]
key_file = "{key}"

[contexts.broken.commands.restart]
run = "sh -c 'echo cannot reach the host >&2; exit 3'"

[contexts.none]
endpoints = ["{list}"]
key_file = "{key}"
"#,
            key = key.display(),
            bin = BIN,
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let with = |ctx: &str, args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--config".into(),
            config.clone(),
            "--context".into(),
            ctx.into(),
        ]);
        all
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        dev_cli(&refs).await
    };

    let before = pid_of(dir.path(), 2).expect("node 2's pid");
    let out = run(with("remote", &["restart-node", "--id", "2", "--json"])).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    assert!(v["pid"].is_null(), "the CLI did not start it itself: {v}");
    assert!(v["caught_up_to"].as_u64().is_some_and(|i| i > 0), "{v}");
    let after = pid_of(dir.path(), 2).expect("node 2's new pid");
    assert_ne!(before, after, "the restart command restarted node 2");

    // Exits 0 but restarts nothing: no new process is seen, and the message says so.
    let out = run(with(
        "noop",
        &["restart-node", "--id", "2", "--timeout-rejoin", "2s"],
    ))
    .await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("no restart seen"), "{err}");
    assert_eq!(pid_of(dir.path(), 2), Some(after));

    // A failing command: its exit and its output, and nothing waited for.
    let out = run(with("broken", &["restart-node", "--id", "3"])).await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("exit 3") && err.contains("cannot reach the host"),
        "{err}"
    );

    // No restart command and not a dev cluster: what to configure.
    let out = run(with("none", &["rolling-restart"])).await;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("[contexts.none.commands.restart]"), "{err}");

    // A rolling restart through the command: every node a new process, the leader last.
    let pids: Vec<u64> = (1..=3).map(|id| pid_of(dir.path(), id).unwrap()).collect();
    let out = run(with("remote", &["rolling-restart", "--json"])).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    assert_eq!(v["restarts"].as_array().map(Vec::len), Some(3), "{v}");
    for (i, old) in pids.iter().enumerate() {
        let new = pid_of(dir.path(), i as u64 + 1).unwrap();
        assert_ne!(*old, new, "node {} was restarted", i + 1);
    }
    let got = dev_cli(&["put", "after", "rolling", "--cluster", &d]).await;
    assert!(got.status.success(), "{}", stderr_of(&got));
}
