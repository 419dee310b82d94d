//! Cluster behaviour with real `opsdeck node` processes: forming, replication, leader
//! failure, restart from disk, catch-up by log and by snapshot.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsdeck_node::pb::{GetRequest, PutRequest};
use support::*;

async fn put(addr: &str, key: &str, value: &str, timeout: Duration) -> Result<u64, tonic::Status> {
    let mut req = tonic::Request::new(PutRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    });
    req.set_timeout(timeout);
    client(addr).put(req).await.map(|r| r.into_inner().revision)
}

/// Writes from `writers` tasks spread over every endpoint until stopped; returns the
/// acknowledged key -> value pairs.
fn spawn_writers(
    endpoints: Vec<String>,
    writers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    tokio::spawn(async move {
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (endpoints, stop, acked) = (endpoints.clone(), stop.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("load/w{w}-{i}");
                    let addr = &endpoints[(i as usize + w) % endpoints.len()];
                    if put(addr, &key, &key, Duration::from_secs(2)).await.is_ok() {
                        acked.lock().unwrap().insert(key.clone(), key);
                    } else {
                        // A refused connection fails without ever yielding; pace retries so
                        // this task cannot hog a worker (or block runtime shutdown).
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    i += 1;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        acked
    })
}

async fn assert_all_present(cluster: &TestCluster, acked: &BTreeMap<String, String>) {
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.0;
    let committed = cluster
        .node(leader)
        .status()
        .await
        .unwrap()
        .committed
        .unwrap_or(0);
    cluster
        .wait_applied(committed, Duration::from_secs(20))
        .await;
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        let stored: BTreeMap<String, Vec<u8>> = cluster
            .scan_local(n.id, "load/")
            .await
            .into_iter()
            .collect();
        for (k, v) in acked {
            assert_eq!(
                stored.get(k).map(|v| v.as_slice()),
                Some(v.as_bytes()),
                "node {} lost acknowledged write {k}",
                n.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_form_and_1000_writes_are_readable_everywhere() {
    let cluster = TestCluster::start(3, &[]).await;
    assert_eq!(cluster.voters(1).await, [1, 2, 3].into());
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    let mut tasks = Vec::new();
    for t in 0..20 {
        let endpoints = endpoints.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..1000).step_by(20) {
                let key = format!("k/{i:04}");
                put(
                    &endpoints[i % 3],
                    &key,
                    &format!("v{i}"),
                    Duration::from_secs(5),
                )
                .await
                .expect("write through any node");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Linearizable reads through every node see every write, without waiting.
    for n in &cluster.nodes {
        let mut c = n.client();
        for i in (0..1000).step_by(7) {
            let r = c
                .get(GetRequest {
                    key: format!("k/{i:04}"),
                    stale: false,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(r.found, "node {} misses k/{i:04}", n.id);
            assert_eq!(r.value, format!("v{i}").into_bytes());
        }
    }
    let committed = cluster.node(1).status().await.unwrap().committed.unwrap();
    cluster
        .wait_applied(committed, Duration::from_secs(10))
        .await;
    let reference = cluster.scan_local(1, "k/").await;
    assert_eq!(reference.len(), 1000);
    for id in [2, 3] {
        assert_eq!(
            cluster.scan_local(id, "k/").await,
            reference,
            "node {id} differs"
        );
    }
}

/// Kills the leader under write load and checks failover, durability and catch-up.
async fn leader_kill_scenario(extra: &[&str], writes_while_down: usize) -> TestCluster {
    let mut cluster = TestCluster::start(3, extra).await;
    let (leader, term) = cluster.wait_leader(Duration::from_secs(10)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(
        cluster.nodes.iter().map(|n| n.grpc.clone()).collect(),
        8,
        stop.clone(),
    );
    wait_for("writes under load", Duration::from_secs(10), || async {
        let s = cluster.node(leader).status().await?;
        (s.storage_keys > 200).then_some(())
    })
    .await;

    let before_kill = cluster
        .node(leader)
        .status()
        .await
        .unwrap()
        .last_log_index
        .unwrap_or(0);
    cluster.node_mut(leader).kill9();
    let killed_at = Instant::now();
    let survivors: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.running())
        .map(|n| n.grpc.clone())
        .collect();
    let mut i = 0;
    wait_for(
        "a write to succeed after the leader was killed",
        Duration::from_secs(3),
        || {
            i += 1;
            let addr = survivors[i % survivors.len()].clone();
            async move {
                put(
                    &addr,
                    &format!("probe/{i}"),
                    "x",
                    Duration::from_millis(300),
                )
                .await
                .ok()
            }
        },
    )
    .await;
    let resumed_after = killed_at.elapsed();
    eprintln!("writes resumed {resumed_after:?} after kill -9 of leader {leader}");
    assert!(resumed_after < Duration::from_secs(3));
    let (new_leader, new_term) = cluster.wait_leader(Duration::from_secs(5)).await;
    assert_ne!(new_leader, leader);
    assert!(new_term > term);

    // Keep writing while the old leader is down, then bring it back from its data dir.
    let target = cluster
        .node(new_leader)
        .status()
        .await
        .unwrap()
        .storage_keys
        + writes_while_down as u64;
    wait_for(
        "writes while a node is down",
        Duration::from_secs(30),
        || async {
            let s = cluster.node(new_leader).status().await?;
            (s.storage_keys >= target).then_some(())
        },
    )
    .await;
    cluster.node_mut(leader).start(false);
    stop.store(true, Ordering::Relaxed);
    let acked = writers.await.unwrap();
    assert!(
        acked.len() > 200,
        "only {} writes acknowledged",
        acked.len()
    );
    assert_all_present(&cluster, &acked).await;
    let reference = cluster.scan_local(new_leader, "load/").await;
    assert_eq!(
        cluster.scan_local(leader, "load/").await,
        reference,
        "restarted node differs"
    );
    assert!(before_kill > 0);
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill9_fails_over_and_the_old_leader_catches_up_by_log() {
    let cluster = leader_kill_scenario(&[], 100).await;
    // Default snapshot threshold (10,000) was never reached: catch-up was by log.
    for n in &cluster.nodes {
        assert_eq!(
            n.status().await.unwrap().snapshot_index,
            None,
            "node {} built a snapshot",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill9_and_catch_up_by_snapshot_after_log_purge() {
    let cluster =
        leader_kill_scenario(&["--snapshot-every", "100", "--keep-logs", "10"], 1500).await;
    let leader = cluster.wait_leader(Duration::from_secs(5)).await.0;
    let s = cluster.node(leader).status().await.unwrap();
    assert!(
        s.purged_index.unwrap_or(0) > 0,
        "leader never purged its log: {s:?}"
    );
    // The restarted node was behind the purge point, so it must have installed a snapshot.
    let restarted: Vec<_> = cluster.nodes.iter().filter(|n| n.id != leader).collect();
    for n in restarted {
        let st = n.status().await.unwrap();
        assert!(
            st.snapshot_index.unwrap_or(0) > 0,
            "node {} has no snapshot: {st:?}",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_cluster_restart_keeps_writes_and_membership() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(
        cluster.nodes.iter().map(|n| n.grpc.clone()).collect(),
        4,
        stop.clone(),
    );
    wait_for("some writes", Duration::from_secs(10), || async {
        (cluster.node(1).status().await?.storage_keys > 300).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = writers.await.unwrap();
    // kill -9 everything: acknowledged means durable, not merely flushed on a clean exit.
    for n in &mut cluster.nodes {
        n.kill9();
    }
    for n in &mut cluster.nodes {
        n.start(false);
    }
    cluster.wait_leader(Duration::from_secs(15)).await;
    for id in [1, 2, 3] {
        assert_eq!(
            cluster.voters(id).await,
            [1, 2, 3].into(),
            "node {id} lost the membership"
        );
    }
    assert_all_present(&cluster, &acked).await;
}
