//! A follower that must catch up by snapshot is killed with SIGKILL while it receives the
//! snapshot, and again after the received file was put in place while its pairs are loaded
//! into the tree. Each restart repairs what the kill left (a half-received file, a tree
//! without an applied id) and the node ends with exactly the leader's data.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const RECEIVING: &str = "snapshot.bin.recv";
/// 16 × 48 values of 64 KiB: 48 MiB, read back one writer's 3 MiB at a time.
const WRITERS: usize = 16;
const PER_WRITER: usize = 48;

/// Polls `check` every 2 ms for up to `within`; whether it became true.
fn poll(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn receiving(data: &Path) -> bool {
    data.join(RECEIVING).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_killed_during_a_snapshot_install_recovers_and_converges() {
    let mut cluster = TestCluster::start(3, &["--snapshot-every", "20", "--keep-logs", "5"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = cluster.a_follower(leader);
    cluster.node_mut(follower).kill9();

    // About 48 MiB the follower has not seen; the leader snapshots and purges past it.
    let addr = cluster.node(leader).grpc.clone();
    write_load_sized(&addr, WRITERS, PER_WRITER, 64 * 1024).await;
    let status = cluster.node(leader).status().await.expect("leader status");
    assert!(
        status.purged_index.unwrap_or(0) > 0,
        "the leader never purged: {status:?}"
    );
    let data = cluster.node(follower).data.clone();

    // 1. Killed while the snapshot is being received.
    cluster.node_mut(follower).start(false);
    assert!(
        poll(Duration::from_secs(30), || receiving(&data)),
        "the restarted follower never began receiving a snapshot"
    );
    cluster.node_mut(follower).kill9();
    assert!(
        receiving(&data),
        "the kill left no half-received file to repair"
    );

    // 2. Killed once the received file is in place, while it is loaded into the tree.
    cluster.node_mut(follower).start(false);
    assert!(
        poll(Duration::from_secs(30), || receiving(&data)),
        "the second start never began receiving a snapshot"
    );
    let caught_loading = poll(Duration::from_secs(30), || !receiving(&data));
    assert!(caught_loading, "the second receive never finished");
    cluster.node_mut(follower).kill9();

    // 3. The third start finishes whatever was interrupted.
    cluster.node_mut(follower).start(false);
    let leader_status = cluster.node(leader).status().await.expect("leader status");
    cluster
        .wait_applied(leader_status.applied.unwrap_or(0), Duration::from_secs(60))
        .await;
    let log = cluster.node(follower).log_text();
    assert!(
        log.contains("removing a snapshot file a stop left half-written"),
        "the first kill's half-received file was not reported as repaired"
    );
    for w in 0..WRITERS {
        let prefix = format!("load/{w}/");
        let expected = cluster.scan_local(leader, &prefix).await;
        assert_eq!(expected.len(), PER_WRITER);
        for id in 1..=3 {
            let got = cluster.scan_local(id, &prefix).await;
            assert!(
                got == expected,
                "node {id}'s data under {prefix} differs from the leader's"
            );
        }
    }
    assert!(
        !receiving(&data),
        "a received snapshot file was left behind"
    );
}
