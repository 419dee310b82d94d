//! A full disk, the way an operator meets it: each node's data dir on its own small tmpfs,
//! one follower's filesystem filled by another process, then the leader's. Writers get the
//! clear storage-full error (gRPC RESOURCE_EXHAUSTED, HTTP 507, CLI exit 7), never a 500;
//! reads go on; freeing space resumes writes without a restart; a node killed and started
//! again on a full disk (with the half-written sled snapshot a full disk leaves behind)
//! comes up by itself; no acknowledged write is lost. Needs root (tmpfs mounts): skipped,
//! with a message, where mounting fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use opsdeck::client::{ApiKey, ClusterClient};
use opsdeck::ops::bundle::history;
use opsdeck_node::pb::{GetRequest, PutRequest};
use opsdeck_node::store::disk_guard::dir_bytes;
use support::*;

const FS_MIB: u64 = 96;
const RESERVE: &str = "16MiB";
const MIB: u64 = 1024 * 1024;

/// The tmpfs mounts of one test, unmounted (and their parent removed) when it ends.
struct Mounts {
    root: PathBuf,
    points: Vec<PathBuf>,
}

impl Mounts {
    /// Mounts a tmpfs at `root/nN` for each node; Err says why it cannot here.
    fn new(root: &Path, nodes: u64) -> Result<Mounts, String> {
        let mut mounts = Mounts {
            root: root.to_path_buf(),
            points: Vec::new(),
        };
        for id in 1..=nodes {
            let point = root.join(format!("n{id}"));
            std::fs::create_dir_all(&point).map_err(|e| e.to_string())?;
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={FS_MIB}m"), "tmpfs"])
                .arg(&point)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            mounts.points.push(point);
        }
        Ok(mounts)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for p in &self.points {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A temp dir with a tmpfs at `n1`..`n3`, or None (said on stderr: the test is skipped)
/// where mounting fails.
fn three_tmpfs() -> Option<(tempfile::TempDir, Mounts)> {
    let dir = tempfile::tempdir().expect("temp dir");
    match Mounts::new(dir.path(), 3) {
        Ok(m) => Some((dir, m)),
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); this test needs root");
            None
        }
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(path.as_ptr(), &mut st) },
        0,
        "statvfs"
    );
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Fills the filesystem of `dir` until `leave` bytes are free (or it is full), the way
/// another process on the host would.
fn fill(dir: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let chunk = vec![0u8; MIB as usize];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = (free - leave).min(MIB) as usize;
        if f.write_all(&chunk[..n]).is_err() {
            break; // full
        }
    }
    let _ = f.sync_all();
}

fn unfill(dir: &Path) {
    std::fs::remove_file(dir.join("filler")).expect("remove filler");
}

async fn storage_full(node: &TestNode) -> Option<bool> {
    Some(node.status().await?.storage?.full)
}

async fn wait_full(node: &TestNode, full: bool) {
    let what = format!("node {} storage full = {full}", node.id);
    wait_for(&what, Duration::from_secs(20), || async {
        (storage_full(node).await? == full).then_some(())
    })
    .await;
}

async fn put(node: &TestNode, key: &str) -> Result<(), tonic::Status> {
    node.client()
        .put(PutRequest {
            key: key.into(),
            value: vec![b'x'; 8 * 1024],
        })
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_clearly_and_recovers_by_itself() {
    let Some((dir, mounts)) = three_tmpfs() else {
        return;
    };
    let mut cluster = TestCluster::start_in(dir, 3, &["--storage-reserve", RESERVE]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let follower = cluster.a_follower(leader);
    let mut acked = Vec::new();
    for i in 0..20 {
        let key = format!("disk/a/{i}");
        put(cluster.node(leader), &key)
            .await
            .expect("put with room");
        acked.push(key);
    }

    // One follower's disk fills: writes go on (two voters of three take them).
    fill(&cluster.node(follower).data, 8 * MIB);
    wait_full(cluster.node(follower), true).await;
    for i in 0..20 {
        let key = format!("disk/b/{i}");
        put(cluster.node(leader), &key)
            .await
            .expect("put with one follower full");
        acked.push(key);
    }
    let f = cluster.node(follower);
    wait_for(
        "the leader to see the follower full",
        Duration::from_secs(10),
        || async {
            let s = cluster.node(leader).status().await?;
            s.followers
                .iter()
                .any(|p| p.id == follower && p.storage_full)
                .then_some(())
        },
    )
    .await;
    // A linearizable read on the full follower, which cannot apply the new writes, says so
    // at once; a stale read there and any read elsewhere go on.
    let err = f
        .client()
        .get(GetRequest {
            key: "disk/b/19".into(),
            stale: false,
        })
        .await
        .expect_err("the full follower cannot serve the newest write");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("storage full on node {follower}"))
            && err.message().contains("read from another node"),
        "{}",
        err.message()
    );
    f.client()
        .get(GetRequest {
            key: "disk/a/0".into(),
            stale: true,
        })
        .await
        .expect("stale read on the full follower");
    let health = http_client()
        .get(format!("http://{}/health", f.http))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.expect("health json");
    assert_eq!(body["status"], "storage full", "{body}");

    // Then the leader's: writes are refused with the clear error on every surface.
    fill(&cluster.node(leader).data, 8 * MIB);
    wait_full(cluster.node(leader), true).await;
    let err = put(cluster.node(leader), "disk/refused")
        .await
        .expect_err("the full leader refuses writes");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("storage full on node {leader}"))
            && err.message().contains("free space or grow the volume"),
        "{}",
        err.message()
    );
    let http = http_client()
        .put(format!(
            "http://{}/kv/disk/refused",
            cluster.node(leader).http
        ))
        .body("v")
        .send()
        .await
        .expect("http put");
    assert_eq!(http.status(), 507);
    let body: serde_json::Value = http.json().await.expect("json error");
    assert_eq!(body["kind"], "storage_full", "{body}");
    let endpoints = cluster.endpoints();
    let out = run_cli(&["put", "disk/refused", "v", "--endpoints", &endpoints]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("storage full on node"),
        "{}",
        stderr_of(&out)
    );
    cluster
        .node(leader)
        .client()
        .get(GetRequest {
            key: "disk/b/19".into(),
            stale: false,
        })
        .await
        .expect("reads go on on the full leader");

    // Space freed: writes resume, no restart.
    unfill(&cluster.node(leader).data);
    wait_full(cluster.node(leader), false).await;
    put(cluster.node(leader), "disk/c/0")
        .await
        .expect("put after freeing the leader's disk");
    acked.push("disk/c/0".into());
    unfill(&cluster.node(follower).data);
    wait_full(cluster.node(follower), false).await;
    let want = cluster.scan_local(leader, "disk/").await;
    wait_for(
        "the follower to catch up",
        Duration::from_secs(20),
        || async { (cluster.scan_local(follower, "disk/").await == want).then_some(()) },
    )
    .await;

    // kill -9 on a full disk, with the empty sled snapshot file a failed start leaves:
    // it starts again by itself, storage full, and catches up once space is freed.
    cluster.node_mut(follower).kill9();
    let data = cluster.node(follower).data.clone();
    fill(&data, 0);
    std::fs::write(data.join("db/snap.00000000000FFFFF.generating"), b"").ok();
    cluster.node_mut(follower).start(false);
    wait_full(cluster.node(follower), true).await;
    assert!(
        cluster.node(follower).log_text().contains("repaired"),
        "the start names what it repaired"
    );
    put(cluster.node(leader), "disk/d/0")
        .await
        .expect("put while the follower restarts full");
    acked.push("disk/d/0".into());
    unfill(&data);
    wait_full(cluster.node(follower), false).await;

    // Only the leader's disk fills: it hands its leadership to a voter with room, and the
    // cluster takes writes again without anything being freed.
    let (full_leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let other = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != full_leader)
        .expect("other");
    fill(&cluster.node(full_leader).data, 8 * MIB);
    wait_full(cluster.node(full_leader), true).await;
    wait_for(
        "writes to resume under a new leader",
        Duration::from_secs(30),
        || async { put(cluster.node(other), "disk/e/0").await.ok() },
    )
    .await;
    acked.push("disk/e/0".into());
    let (new_leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    assert_ne!(
        new_leader, full_leader,
        "the full leader handed its leadership over"
    );
    unfill(&cluster.node(full_leader).data);
    wait_full(cluster.node(full_leader), false).await;

    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let want = cluster.scan_local(leader, "disk/").await;
    for n in &cluster.nodes {
        wait_for(
            "every node to hold the same data",
            Duration::from_secs(20),
            || async { (cluster.scan_local(n.id, "disk/").await == want).then_some(()) },
        )
        .await;
    }
    let keys: Vec<&String> = want.iter().map(|(k, _)| k).collect();
    for k in &acked {
        assert!(keys.contains(&k), "acknowledged write {k} lost");
    }
    drop(cluster);
    drop(mounts);
}

/// A follower that was down while the log moved on catches up by a snapshot, but its disk
/// has room for the received file and not for the tree it loads: the install is refused up
/// front with the figures, the node stays up on its old state, and once space is freed the
/// leader's retry installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_install_without_room_is_refused_up_front_and_retried_once_there_is() {
    let Some((dir, mounts)) = three_tmpfs() else {
        return;
    };
    let extra = [
        "--storage-reserve",
        RESERVE,
        "--snapshot-every",
        "1000",
        "--keep-logs",
        "16",
    ];
    let mut cluster = TestCluster::start_in(dir, 3, &extra).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let follower = cluster.a_follower(leader);
    let behind = cluster
        .node(follower)
        .applied()
        .await
        .expect("follower applied");
    cluster.node_mut(follower).stop();

    // ~8 MiB the follower misses; the leader's log is purged behind its snapshots.
    for i in 0..1000 {
        put(cluster.node(leader), &format!("disk/s/{i:04}"))
            .await
            .expect("put with two voters up");
    }
    // The one snapshot the leader builds (every 1000 entries), which the follower gets:
    // replication holds the snapshot it first tried, so only one may exist.
    let gc = wait_for(
        "a leader snapshot, its log purged past the follower",
        Duration::from_secs(20),
        || async {
            let gc = cluster.node(leader).status().await?.gc?;
            (gc.first_log_index? > behind + 1 && gc.last_snapshot_bytes > 0).then_some(gc)
        },
    )
    .await;
    let snapshot = gc.last_snapshot_bytes;

    // Room for the file and the reserve, and half of INSTALL_FACTOR (4) times the file for
    // the tree it loads: far enough above the reserve that receiving it does not make the
    // disk "storage full" (a different refusal).
    let data = cluster.node(follower).data.clone();
    let reserve = 16 * MIB;
    fill(&data, reserve + snapshot * 3);
    cluster.node_mut(follower).start(false);
    let f = cluster.node(follower);
    let refusal = wait_for(
        "the follower to refuse the install",
        Duration::from_secs(30),
        || async {
            let log = f.log_text();
            let line = log
                .lines()
                .find(|l| l.contains("snapshot install refused"))?;
            Some(line.to_string())
        },
    )
    .await;
    eprintln!("snapshot {snapshot} bytes; the follower said: {refusal}");
    for figure in [
        "nothing changed",
        "needs",
        "free",
        "free space or grow the volume",
    ] {
        assert!(refusal.contains(figure), "{figure:?} missing: {refusal}");
    }
    // The refusal is an event too (the Timeline, incident reports), once per snapshot.
    let client = ClusterClient::new(
        std::slice::from_ref(&f.grpc),
        Duration::from_secs(5),
        ApiKey::new(admin_key()).expect("key"),
    )
    .expect("client");
    let refusals_of = |h: opsdeck::ops::bundle::History| -> Vec<_> {
        h.events
            .into_iter()
            .filter(|e| e.kind == "snapshot_install_refused")
            .collect()
    };
    let refused = wait_for(
        "the follower's snapshot_install_refused event",
        Duration::from_secs(20),
        || async {
            let refused = refusals_of(history(&client, &f.grpc, 0, false).await.ok()?);
            (!refused.is_empty()).then_some(refused)
        },
    )
    .await;
    eprintln!("event: {}", refused[0].detail);
    assert!(
        refused[0].detail.contains("not installed: needs"),
        "{}",
        refused[0].detail
    );
    // The leader's frame marks the follower (the console's Overview, add-node's progress).
    let marked = wait_for(
        "the leader's frame to mark the follower's refusal",
        Duration::from_secs(20),
        || async {
            let s = cluster.node(leader).status().await?;
            let p = s.followers.into_iter().find(|p| p.id == follower)?;
            (!p.snapshot_refused.is_empty()).then_some(p.snapshot_refused)
        },
    )
    .await;
    assert!(
        marked.contains("nothing changed") && marked.contains("free"),
        "{marked}"
    );
    let s = f.status().await.expect("the follower still serves");
    assert!(
        s.applied.unwrap_or(0) < gc.first_log_index.unwrap_or(0),
        "it stayed on its old state: {:?}",
        s.applied
    );
    put(cluster.node(leader), "disk/s/after")
        .await
        .expect("writes go on meanwhile");

    // Space freed: the leader's retry goes through, with no restart.
    let db_before = dir_bytes(&data.join("db"));
    unfill(&data);
    let last = cluster
        .node(leader)
        .applied()
        .await
        .expect("leader applied");
    cluster.wait_applied(last, Duration::from_secs(60)).await;
    let loaded = dir_bytes(&data.join("db")).saturating_sub(db_before);
    let refusals = f.log_text().matches("snapshot install refused").count();
    let events = refusals_of(history(&client, &f.grpc, 0, false).await.expect("events"));
    assert_eq!(events.len(), 1, "retries of one snapshot are one event");
    eprintln!(
        "installed after {refusals} refusals; the loaded tree grew the db dir by {loaded} \
         bytes, {:.2}x the snapshot",
        loaded as f64 / snapshot.max(1) as f64
    );
    let want = cluster.scan_local(leader, "disk/").await;
    assert_eq!(want.len(), 1001);
    wait_for(
        "the follower to hold the leader's data",
        Duration::from_secs(20),
        || async { (cluster.scan_local(follower, "disk/").await == want).then_some(()) },
    )
    .await;
    let frame = cluster.node(leader).status().await.expect("leader status");
    assert!(
        frame
            .followers
            .iter()
            .all(|p| p.snapshot_refused.is_empty()),
        "installed: no longer marked: {:?}",
        frame.followers
    );
    drop(cluster);
    drop(mounts);
}
