//! Backup, verify-backup and restore on real 3-node clusters.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use opsdeck_node::backup::format;
use opsdeck_node::pb::{
    restore_request::Step, DeleteRequest, ListAuditRequest, ListKeysRequest, PutRequest,
    RestoreBegin, RestoreRequest,
};
use sha2::Digest;
use support::*;

type Pairs = BTreeMap<String, Vec<u8>>;

/// The user key-value pairs a backup file holds, read with the format's own reader.
fn backup_pairs(path: &Path) -> Pairs {
    let (_, pairs) = format::open_verified(path).expect("a valid backup");
    pairs
        .map(|p| p.expect("pair"))
        .filter_map(|(k, v)| {
            k.strip_prefix(b"d/")
                .map(|k| (String::from_utf8(k.to_vec()).expect("utf-8 key"), v))
        })
        .collect()
}

/// Waits until every running node has applied the leader's last entry, then returns every
/// node's full local scan.
async fn settled_scans(cluster: &TestCluster) -> Vec<(u64, Pairs)> {
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let last = cluster
        .node(leader)
        .status()
        .await
        .expect("leader status")
        .last_log_index
        .unwrap_or(0);
    cluster.wait_applied(last, Duration::from_secs(30)).await;
    let mut scans = Vec::new();
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        let pairs = cluster.scan_local(n.id, "").await.into_iter().collect();
        scans.push((n.id, pairs));
    }
    scans
}

fn assert_all_equal(scans: &[(u64, Pairs)], expected: &Pairs, what: &str) {
    for (id, pairs) in scans {
        if pairs != expected {
            let missing = expected.keys().filter(|k| !pairs.contains_key(*k)).count();
            let extra = pairs.keys().filter(|k| !expected.contains_key(*k)).count();
            panic!(
                "node {id} does not hold {what}: {} keys vs {} expected ({missing} missing, {extra} extra)",
                pairs.len(),
                expected.len()
            );
        }
    }
}

async fn restore_audits(cluster: &TestCluster, leader: u64) -> usize {
    let records = cluster
        .node(leader)
        .client()
        .list_audit(ListAuditRequest { limit: 1000 })
        .await
        .expect("audit")
        .into_inner()
        .records;
    records.iter().filter(|r| r.action == "restore").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_then_restore_into_a_diverged_cluster() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let addr = cluster.node(leader).grpc.clone();
    write_load(&addr, 10, 50).await;

    let load = SteadyLoad::start(vec![addr.clone()], 4);
    wait_for("the load to run", Duration::from_secs(10), || async {
        (load.acked_keys().len() >= 50).then_some(())
    })
    .await;
    let acked_before = load.acked_keys();
    let file = cluster.dir.path().join("cluster.odb");
    let file_arg = file.to_str().expect("utf-8 path");
    let endpoints = cluster.endpoints();
    let out = run_cli(&[
        "backup",
        "--out",
        file_arg,
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "backup failed: {}", stderr_of(&out));
    let acked_during = load.acked_keys().len() - acked_before.len();
    let seen = load.stop().await;
    assert!(
        seen.failed.is_empty() && seen.retries == 0,
        "writes failed during the backup: {:?} ({} retries)",
        seen.failed,
        seen.retries
    );
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    println!(
        "backup: {} keys, {} payload bytes in {} ms; {acked_during} writes acknowledged meanwhile",
        report["key_count"], report["payload_bytes"], report["took_ms"]
    );

    let verify = run_cli(&["verify-backup", file_arg, "--json"]);
    assert!(verify.status.success(), "{}", stderr_of(&verify));
    let verified: serde_json::Value = serde_json::from_str(&stdout_of(&verify)).expect("json");
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["payload_sha256"], report["payload_sha256"]);
    // The manifest records the state digest at the backup's index, the payload sums to it,
    // and it is the digest the cluster itself had at that index (not at a later one: the
    // load went on writing while the snapshot was read).
    let state_digest = report["state_digest"].as_str().expect("state_digest");
    let data_digest = report["data_digest"].as_str().expect("data_digest");
    assert_eq!(state_digest.len(), 64, "{report}");
    assert_eq!(verified["state_digest"], state_digest);
    assert_eq!(verified["digest_checked"], true);
    let index = report["applied_index"].as_u64().expect("applied_index");
    let at = cluster.node(leader).digest(Some(index)).await;
    assert_eq!(
        at["digest"], state_digest,
        "the cluster's digest at {index}: {at}"
    );
    assert_eq!(at["data"], data_digest, "{at}");
    let newest = cluster.node(leader).digest(None).await;
    assert_ne!(
        newest["digest"], state_digest,
        "writes went on after the backup's index"
    );
    let verify = run_cli(&["verify-backup", file_arg]);
    assert!(verify.status.success(), "{}", stderr_of(&verify));
    assert!(
        stdout_of(&verify).contains(&format!("state digest {state_digest} at index {index}")),
        "{}",
        stdout_of(&verify)
    );

    let backed_up = backup_pairs(&file);
    assert_eq!(report["key_count"].as_u64(), Some(backed_up.len() as u64));
    for k in &acked_before {
        assert!(
            backed_up.contains_key(k),
            "{k} was acknowledged before the backup started but is not in it"
        );
    }
    for w in 0..10 {
        for i in 0..50 {
            assert!(backed_up.contains_key(&format!("load/{w}/{i}")));
        }
    }
    println!(
        "{} writes acknowledged in all, the longest took {:?}",
        seen.acked.len(),
        seen.longest_write
    );

    // Diverge: add keys, delete keys, overwrite one.
    let mut c = cluster.node(leader).client();
    for i in 0..100 {
        c.put(PutRequest {
            key: format!("after/{i}"),
            value: b"new".to_vec(),
        })
        .await
        .expect("put");
    }
    for i in 0..50 {
        c.delete(DeleteRequest {
            key: format!("load/0/{i}"),
        })
        .await
        .expect("delete");
    }
    c.put(PutRequest {
        key: "load/1/1".into(),
        value: b"changed".to_vec(),
    })
    .await
    .expect("put");

    let out = run_cli(&[
        "restore",
        file_arg,
        "--yes",
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "restore failed: {}", stderr_of(&out));
    let restored: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    assert_eq!(restored["keys"].as_u64(), Some(backed_up.len() as u64));
    // Every node reached the backup's data digest at the commit's index.
    let check = &restored["check"];
    assert_eq!(check["outcome"], "matches", "{restored}");
    assert_eq!(check["nodes"], serde_json::json!([1, 2, 3]), "{restored}");
    assert_eq!(check["data_digest"], data_digest);
    assert!(
        restored["check_text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("every node's data digest matches the backup's (3 nodes"),
        "{restored}"
    );
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 3);
    assert_all_equal(&scans, &backed_up, "exactly the backup's pairs");
    assert_eq!(restore_audits(&cluster, leader).await, 1);
    // And the replicas agree with each other afterwards.
    let out = run_cli(&["check", "--endpoints", &endpoints]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert!(stdout_of(&out).starts_with("replicas agree at index "));

    // The admin key that ran the restore still works, and the cluster takes writes.
    let out = run_cli(&["put", "after/restore", "x", "--endpoints", &endpoints]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A node that cannot answer for the commit's index (here: it is down) is named as not
    // checked; the restore itself went through on the others.
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let down = if leader == 3 { 2 } else { 3 };
    let down_addr = cluster.node(down).grpc.clone();
    cluster.node_mut(down).stop();
    let out = run_cli(&["restore", file_arg, "--yes", "--endpoints", &endpoints]);
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.contains("the data digest of 2 node(s)")
            && text.contains(&format!("not checked: {down_addr} (")),
        "{text}"
    );
    assert_eq!(restore_audits(&cluster, leader).await, 2);
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 2);
    assert_all_equal(&scans, &backed_up, "the backup's pairs");
}

/// Rewrites a backup's manifest (and its checksum) as another format version would.
fn with_format_version(good: &[u8], version: u64) -> Vec<u8> {
    let end = format::END.len();
    let tail = good.len() - end - 32 - 4;
    let len = u32::from_be_bytes(good[tail..tail + 4].try_into().expect("4 bytes")) as usize;
    let start = tail - len;
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&good[start..tail]).expect("manifest json");
    manifest["format_version"] = version.into();
    let json = serde_json::to_vec(&manifest).expect("json");
    let mut out = good[..start].to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&sha2::Sha256::digest(&json));
    out.extend_from_slice(format::END);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_refuses_damaged_truncated_empty_and_foreign_files_and_changes_nothing() {
    let cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, 4, 50).await;
    let endpoints = cluster.endpoints();
    let good_path = cluster.dir.path().join("good.odb");
    let out = run_cli(&[
        "backup",
        "--out",
        good_path.to_str().expect("path"),
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let good = std::fs::read(&good_path).expect("backup file");
    // The cluster moves on after the backup, so a restore would be visible.
    write_load(&cluster.node(leader).grpc, 2, 10).await;
    let before = settled_scans(&cluster).await;

    let mut flipped = good.clone();
    flipped[format::MAGIC.len() + (good.len() - format::MAGIC.len()) / 3] ^= 0x10;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("flipped.odb", flipped, "damaged"),
        (
            "truncated.odb",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        ("empty.odb", Vec::new(), "empty"),
        (
            "v2.odb",
            with_format_version(&good, 2),
            "backup format version 2; this opsdeck reads version 1",
        ),
    ];
    for (name, bytes, expected) in &cases {
        let path = cluster.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write case");
        let p = path.to_str().expect("path");
        let verify = run_cli(&["verify-backup", p]);
        assert!(!verify.status.success(), "{name} verified");
        let err = stderr_of(&verify);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the error names the file: {err}"
        );
        let restore = run_cli(&["restore", p, "--yes", "--endpoints", &endpoints]);
        assert!(!restore.status.success(), "{name} was restored");
        assert!(
            stderr_of(&restore).contains(expected),
            "{name}: {}",
            stderr_of(&restore)
        );
    }
    let after = settled_scans(&cluster).await;
    assert_eq!(before, after, "a refused restore changed the data");
    assert_eq!(restore_audits(&cluster, leader).await, 0);
    // The good file still verifies: the checks are not just refusing everything.
    let verify = run_cli(&["verify-backup", good_path.to_str().expect("path")]);
    assert!(verify.status.success(), "{}", stderr_of(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_mid_restore_leaves_old_or_new_data_everywhere() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    // ~24 MiB of data, so the restore takes a couple of dozen chunks (Raft entries).
    write_load_sized(&cluster.node(leader).grpc, 50, 120, 4096).await;
    let mut c = cluster.node(leader).client();
    let endpoints = cluster.endpoints();
    let file = cluster.dir.path().join("big.odb");
    let file_arg = file.to_str().expect("path").to_string();
    let out = run_cli(&["backup", "--out", &file_arg, "--endpoints", &endpoints]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let backed_up = backup_pairs(&file);
    for i in 0..100 {
        c.delete(DeleteRequest {
            key: format!("load/0/{i}"),
        })
        .await
        .expect("delete");
        c.put(PutRequest {
            key: format!("b/{i}"),
            value: b"diverged".to_vec(),
        })
        .await
        .expect("put");
    }
    let pre: Pairs = settled_scans(&cluster).await.remove(0).1;
    assert_ne!(pre, backed_up);
    let start_index = cluster
        .node(leader)
        .status()
        .await
        .expect("status")
        .last_log_index
        .unwrap_or(0);

    let restore = std::process::Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args(["restore", &file_arg, "--yes", "--timeout", "20s"])
        .args(["--endpoints", &endpoints])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn restore");
    // Begin and a few chunks are in the log: the restore is under way.
    let node = cluster.node(leader);
    wait_for(
        "the restore to stage chunks",
        Duration::from_secs(30),
        || async {
            let s = node.status().await?;
            (s.last_log_index.unwrap_or(0) >= start_index + 4).then_some(())
        },
    )
    .await;
    let killed_at = Instant::now();
    cluster.node_mut(leader).kill9();
    let out = wait_output(restore, Duration::from_secs(90));
    println!(
        "restore after the leader kill: {} ({:?} after the kill): {}{}",
        if out.status.success() {
            "finished"
        } else {
            "failed"
        },
        killed_at.elapsed(),
        stdout_of(&out),
        stderr_of(&out)
    );
    cluster.node_mut(leader).start(false);
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 3);
    let expected = if scans[0].1 == backed_up {
        &backed_up
    } else {
        &pre
    };
    assert_all_equal(&scans, expected, "the same data (old or new)");
    if out.status.success() {
        assert!(
            std::ptr::eq(expected, &backed_up),
            "a finished restore must hold the backup"
        );
    }
}

/// Creates a key with the CLI on the cluster at `endpoints`; returns (id, secret).
fn create_key(endpoints: &str, role: &str) -> (String, String) {
    let out = run_cli(&[
        "keys",
        "create",
        "--role",
        role,
        "--json",
        "--endpoints",
        endpoints,
    ]);
    assert!(out.status.success(), "keys create: {}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    let field = |name: &str| v[name].as_str().map(str::to_string);
    let id = v["key"]["id"].as_str().expect("key id").to_string();
    (id, field("secret").expect("secret"))
}

/// The gRPC code an admin call (listing keys) made with `key` gets from the node at `addr`.
async fn admin_call_code(addr: &str, key: &str) -> tonic::Code {
    match client_with_key(addr, Some(key))
        .list_keys(ListKeysRequest {})
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// Waits until an admin call with `key` gets `want` on every running node of `cluster`.
async fn wait_admin_code(cluster: &TestCluster, key: &str, want: tonic::Code, what: &str) {
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        wait_for(
            &format!("{what} on node {}", n.id),
            Duration::from_secs(15),
            || async { (admin_call_code(&n.grpc, key).await == want).then_some(()) },
        )
        .await;
    }
}

async fn cluster_id(cluster: &TestCluster) -> String {
    cluster.nodes[0].status().await.expect("status").cluster_id
}

fn backup_to(cluster: &TestCluster, name: &str) -> std::path::PathBuf {
    let file = cluster.dir.path().join(name);
    let out = run_cli(&[
        "backup",
        "--out",
        file.to_str().expect("utf-8 path"),
        "--endpoints",
        &cluster.endpoints(),
    ]);
    assert!(out.status.success(), "backup: {}", stderr_of(&out));
    file
}

/// Issue 15, defect 3: restoring another cluster's backup is refused unless asked for
/// explicitly, by the CLI and by the nodes themselves, and it never brings that cluster's
/// API keys in; restoring the cluster's own older backup does not bring a revoked key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_backup_needs_the_flag_and_no_restore_ever_changes_who_has_access() {
    let one = TestCluster::start(3, &[]).await;
    let two = TestCluster::start(1, &[]).await;
    let (leader, _) = one.wait_leader(Duration::from_secs(10)).await;
    two.wait_leader(Duration::from_secs(10)).await;
    let (e1, e2) = (one.endpoints(), two.endpoints());
    let (id1, id2) = (cluster_id(&one).await, cluster_id(&two).await);
    assert!(
        !id1.is_empty() && !id2.is_empty() && id1 != id2,
        "{id1} / {id2}"
    );

    // Cluster 2: its own data and an admin key of its own.
    write_load(&two.nodes[0].grpc, 2, 20).await;
    let (_, theirs_admin) = create_key(&e2, "admin");
    assert_eq!(
        admin_call_code(&two.nodes[0].grpc, &theirs_admin).await,
        tonic::Code::Ok
    );
    let foreign_file = backup_to(&two, "two.odb");
    let foreign_data = backup_pairs(&foreign_file);

    // Cluster 1: a key that is in its backup and revoked after it, and one created after.
    let mut c = one.node(leader).client();
    for i in 0..30 {
        c.put(PutRequest {
            key: format!("ours/{i}"),
            value: b"1".to_vec(),
        })
        .await
        .expect("put");
    }
    let (revoked_id, revoked_secret) = create_key(&e1, "admin");
    let own_file = backup_to(&one, "one.odb");
    let own_data = backup_pairs(&own_file);
    let out = run_cli(&["keys", "revoke", "--id", &revoked_id, "--endpoints", &e1]);
    assert!(out.status.success(), "revoke: {}", stderr_of(&out));
    let (_, new_secret) = create_key(&e1, "admin");
    wait_admin_code(
        &one,
        &revoked_secret,
        tonic::Code::Unauthenticated,
        "the revoked key refused",
    )
    .await;
    wait_admin_code(
        &one,
        &theirs_admin,
        tonic::Code::Unauthenticated,
        "cluster 2's key refused",
    )
    .await;
    let before = settled_scans(&one).await;

    // Without the flag: refused, naming both clusters and what to do; nothing changed.
    let foreign_arg = foreign_file.to_str().expect("path");
    let out = run_cli(&["restore", foreign_arg, "--yes", "--endpoints", &e1]);
    assert!(
        !out.status.success(),
        "a foreign backup was restored without the flag"
    );
    let err = stderr_of(&out);
    for needed in [
        format!("backup {foreign_arg} was taken on cluster {id2}; this is cluster {id1}"),
        "its API keys are never imported".to_string(),
        "rerun with --allow-foreign-cluster".to_string(),
    ] {
        assert!(err.contains(&needed), "missing {needed:?} in: {err}");
    }
    // The nodes refuse it too, whatever the client: a begin naming the other cluster...
    let begin = |backup_cluster_id: &str| RestoreRequest {
        restore_id: "by-hand".into(),
        seq: 0,
        step: Some(Step::Begin(RestoreBegin {
            source: "test".into(),
            backup_cluster_id: backup_cluster_id.into(),
            allow_foreign_cluster: false,
        })),
    };
    let refused = c
        .restore(begin(&id2))
        .await
        .expect_err("a foreign begin was accepted");
    assert!(
        refused
            .message()
            .contains(&format!("taken on cluster {id2}")),
        "{refused:?}"
    );
    // ...and a client that says nothing is stopped by the backup's own cluster id.
    c.restore(begin(""))
        .await
        .expect("a begin naming no cluster");
    let (_, pairs) = format::open_verified(&foreign_file).expect("valid backup");
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs.map(|p| p.expect("pair")).collect();
    let mut chunk = (pairs.len() as u64).to_le_bytes().to_vec();
    for (k, v) in &pairs {
        for item in [k, v] {
            chunk.extend_from_slice(&(item.len() as u64).to_le_bytes());
            chunk.extend_from_slice(item);
        }
    }
    let refused = c
        .restore(RestoreRequest {
            restore_id: "by-hand".into(),
            seq: 0,
            step: Some(Step::Chunk(chunk)),
        })
        .await
        .expect_err("a foreign chunk was staged");
    assert!(
        refused
            .message()
            .contains(&format!("taken on cluster {id2}; this is cluster {id1}")),
        "{refused:?}"
    );
    assert_eq!(
        settled_scans(&one).await,
        before,
        "a refused restore changed the data"
    );
    assert_eq!(restore_audits(&one, leader).await, 0);

    // With the flag: cluster 2's data on every node of cluster 1, and cluster 1's keys only.
    let out = run_cli(&[
        "restore",
        foreign_arg,
        "--yes",
        "--allow-foreign-cluster",
        "--json",
        "--endpoints",
        &e1,
    ]);
    assert!(
        out.status.success(),
        "restore --allow-foreign-cluster: {}",
        stderr_of(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    assert_eq!(report["foreign"], true);
    assert_eq!(report["backup_cluster_id"], id2.as_str());
    assert_eq!(report["cluster_id"], id1.as_str());
    let scans = settled_scans(&one).await;
    assert_eq!(scans.len(), 3);
    assert_all_equal(&scans, &foreign_data, "cluster 2's data");
    for n in &one.nodes {
        assert_eq!(
            admin_call_code(&n.grpc, &theirs_admin).await,
            tonic::Code::Unauthenticated,
            "cluster 2's admin key works on node {} of cluster 1",
            n.id
        );
        assert_eq!(admin_call_code(&n.grpc, &new_secret).await, tonic::Code::Ok);
        assert_eq!(admin_call_code(&n.grpc, admin_key()).await, tonic::Code::Ok);
    }
    assert_eq!(
        cluster_id(&one).await,
        id1,
        "the restore changed the cluster id"
    );

    // Cluster 1's own older backup, from before the revocation: no flag needed, its data
    // comes back, the revoked key stays revoked and the newer key keeps working.
    let own_arg = own_file.to_str().expect("path");
    let out = run_cli(&["restore", own_arg, "--yes", "--endpoints", &e1]);
    assert!(
        out.status.success(),
        "restoring our own backup: {}",
        stderr_of(&out)
    );
    let scans = settled_scans(&one).await;
    assert_all_equal(&scans, &own_data, "cluster 1's own backup");
    for n in &one.nodes {
        assert_eq!(
            admin_call_code(&n.grpc, &revoked_secret).await,
            tonic::Code::Unauthenticated,
            "a key revoked after the backup works again on node {}",
            n.id
        );
        assert_eq!(admin_call_code(&n.grpc, &new_secret).await, tonic::Code::Ok);
        assert_eq!(
            admin_call_code(&n.grpc, &theirs_admin).await,
            tonic::Code::Unauthenticated
        );
    }
    assert_eq!(restore_audits(&one, leader).await, 2);
}

/// Cleanup steps small and slow enough that a node can be stopped in the middle of one.
const SLOW_CLEANUP: &[&str] = &["--cleanup-step-keys", "10", "--cleanup-step-pause-ms", "5"];
const CLEANUP_STARTED: &str = "cleanup: deleting data generation 0";
const CLEANUP_DONE: &str = "cleanup: deleted data generation 0";

/// Issue 14: the commit is a switch of data generations and the replaced one is deleted
/// afterwards in bounded steps. A node killed before the commit (it applies it after its
/// restart) and one killed while it deletes the replaced generation (it carries on after
/// its restart) end with exactly the backup's data, like the node that ran through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_around_the_commit_and_during_the_cleanup_end_with_the_backup() {
    let mut cluster = TestCluster::start(3, SLOW_CLEANUP).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    // 2,000 keys: the cleanup of the replaced generation takes 200 steps.
    write_load_sized(&cluster.node(leader).grpc, 20, 100, 1024).await;
    let endpoints = cluster.endpoints();
    let file = backup_to(&cluster, "gen.odb");
    let file_arg = file.to_str().expect("path").to_string();
    let backed_up = backup_pairs(&file);
    let mut c = cluster.node(leader).client();
    for i in 0..100 {
        c.delete(DeleteRequest {
            key: format!("load/0/{i}"),
        })
        .await
        .expect("delete");
        c.put(PutRequest {
            key: format!("b/{i}"),
            value: b"diverged".to_vec(),
        })
        .await
        .expect("put");
    }
    let followers: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .filter(|id| *id != leader)
        .collect();
    let (early, cleaning) = (followers[0], followers[1]);
    let start_index = cluster
        .node(leader)
        .status()
        .await
        .expect("status")
        .last_log_index
        .unwrap_or(0);

    let restore = std::process::Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args(["restore", &file_arg, "--yes", "--timeout", "20s"])
        .args(["--endpoints", &endpoints])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn restore");
    let node = cluster.node(leader);
    wait_for("the restore to begin", Duration::from_secs(30), || async {
        let s = node.status().await?;
        (s.last_log_index.unwrap_or(0) > start_index).then_some(())
    })
    .await;
    cluster.node_mut(early).kill9();
    let out = wait_output(restore, Duration::from_secs(90));
    assert!(out.status.success(), "restore: {}", stderr_of(&out));

    // The other follower applies the commit and starts deleting generation 0: kill it then.
    let node = cluster.node(cleaning);
    wait_for(
        "the follower to start its cleanup",
        Duration::from_secs(30),
        || async { node.log_text().contains(CLEANUP_STARTED).then_some(()) },
    )
    .await;
    let done_before_kill = cluster.node(cleaning).log_text().contains(CLEANUP_DONE);
    cluster.node_mut(cleaning).kill9();
    println!(
        "node {cleaning} killed {} its cleanup",
        if done_before_kill {
            "after"
        } else {
            "in the middle of"
        }
    );
    let log_at_kill = cluster.node(cleaning).log_text().len();

    cluster.node_mut(early).start(false);
    cluster.node_mut(cleaning).start(false);
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 3);
    assert_all_equal(&scans, &backed_up, "exactly the backup's pairs");
    // Both restarted nodes finish deleting the replaced generation: the one killed
    // mid-way after its restart, the early one once it has applied the commit.
    for (id, since) in [
        (cleaning, if done_before_kill { 0 } else { log_at_kill }),
        (early, 0),
    ] {
        let node = cluster.node(id);
        wait_for(
            &format!("node {id} to finish its cleanup"),
            Duration::from_secs(60),
            || async {
                node.log_text()[since..]
                    .contains(CLEANUP_DONE)
                    .then_some(())
            },
        )
        .await;
    }
    let scans = settled_scans(&cluster).await;
    assert_all_equal(
        &scans,
        &backed_up,
        "exactly the backup's pairs, after the cleanup",
    );
    let out = run_cli(&["put", "after/restore", "x", "--endpoints", &endpoints]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// What 8 writers that never retry saw: each acknowledged write with the log index of its
/// entry, and the keys whose write failed (it may or may not have been applied).
#[derive(Default)]
struct History {
    acked: Vec<(String, Vec<u8>, u64)>,
    unknown: std::collections::BTreeSet<String>,
}

/// Issue 14 (b): with 8 writers running while the backup is taken, the restored data is
/// exactly the state at the backup's applied index: every acknowledged write at or below
/// it (the last one for each overwritten key), none above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_8_writers_restores_exactly_the_state_at_its_index() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let history = std::sync::Arc::new(std::sync::Mutex::new(History::default()));
    let writers: Vec<_> = (0..8usize)
        .map(|w| {
            let (endpoints, stop, history) = (endpoints.clone(), stop.clone(), history.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Half the writes overwrite one of 8 registers per writer, the others
                    // are new keys.
                    let key = if i % 2 == 0 {
                        format!("reg/{w}/{}", (i / 2) % 8)
                    } else {
                        format!("new/{w}/{i}")
                    };
                    let value = format!("{w}-{i}").into_bytes();
                    let mut req = tonic::Request::new(PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                    });
                    req.set_timeout(Duration::from_secs(5));
                    let addr = &endpoints[(w + i as usize) % endpoints.len()];
                    let result = client(addr).put(req).await;
                    let mut h = history.lock().expect("history");
                    match result {
                        Ok(r) => h.acked.push((key, value, r.into_inner().revision)),
                        Err(_) => {
                            h.unknown.insert(key);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    wait_for("the writers to run", Duration::from_secs(10), || async {
        (history.lock().expect("history").acked.len() >= 400).then_some(())
    })
    .await;
    let file = backup_to(&cluster, "busy.odb");
    // Writes go on after the backup too, so the restore has something to undo.
    let after = history.lock().expect("history").acked.len();
    wait_for(
        "writes after the backup",
        Duration::from_secs(10),
        || async { (history.lock().expect("history").acked.len() >= after + 200).then_some(()) },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let history = std::mem::take(&mut *history.lock().expect("history"));
    let manifest = format::verify(&file).expect("valid backup");
    let at = manifest.applied_index;

    // The state at index `at`, rebuilt from the acknowledged writes (in log order).
    let mut acked = history.acked.clone();
    acked.sort_by_key(|(_, _, revision)| *revision);
    let mut expected = Pairs::new();
    for (key, value, _) in acked.iter().filter(|(_, _, r)| *r <= at) {
        expected.insert(key.clone(), value.clone());
    }
    let above = acked.iter().filter(|(_, _, r)| *r > at).count();
    assert!(above > 0, "no write landed after the backup's index {at}");
    let backed_up = backup_pairs(&file);
    for (key, value) in &expected {
        if history.unknown.contains(key) {
            continue; // a write whose answer was lost may have changed it since
        }
        assert_eq!(
            backed_up.get(key),
            Some(value),
            "{key}: the backup at index {at} does not hold its last write at or below it"
        );
    }
    for key in backed_up.keys() {
        assert!(
            expected.contains_key(key) || history.unknown.contains(key),
            "{key} is in the backup at index {at} but was only written above it"
        );
    }

    let out = run_cli(&[
        "restore",
        file.to_str().expect("path"),
        "--yes",
        "--endpoints",
        &cluster.endpoints(),
    ]);
    assert!(out.status.success(), "restore: {}", stderr_of(&out));
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 3);
    assert_all_equal(&scans, &backed_up, "the backup's pairs");
    if history.unknown.is_empty() {
        assert_all_equal(&scans, &expected, "the state at the backup's index");
    }
    println!(
        "backup at index {at}: {} keys; {} writes acknowledged ({above} above the index), {} unknown",
        backed_up.len(),
        acked.len(),
        history.unknown.len()
    );
}

/// `backup --out-dir DIR --keep 7` run 9 times, with writes in between: 7 files remain, the
/// two oldest pruned, each one verifies and holds the key written just before it; a file
/// of someone else's in DIR is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_backups_keep_the_newest_verified_files_and_prune_the_oldest() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints = cluster.endpoints();
    let dir = cluster.dir.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.odb"), "not ours").unwrap();
    let mut made = Vec::new();
    for run in 0..9 {
        let (e, d) = (endpoints.clone(), dir.display().to_string());
        let out = tokio::task::spawn_blocking(move || {
            let put = run_cli(&["put", &format!("sched/{run}"), "v", "--endpoints", &e]);
            assert!(put.status.success(), "{}", stderr_of(&put));
            run_cli(&[
                "backup",
                "--out-dir",
                &d,
                "--keep",
                "7",
                "--json",
                "--endpoints",
                &e,
            ])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "run {run}: {}", stderr_of(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verified"], true);
        let pruned = v["pruned"].as_array().unwrap().len();
        assert_eq!(pruned, usize::from(run >= 7), "run {run}: {v}");
        made.push(std::path::PathBuf::from(v["file"].as_str().unwrap()));
    }
    let mut left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    left.sort();
    let mut expected: Vec<_> = made[2..].to_vec();
    expected.push(dir.join("notes.odb"));
    expected.sort();
    assert_eq!(
        left, expected,
        "the two oldest pruned, nothing else touched"
    );
    for (run, file) in made.iter().enumerate().skip(2) {
        let pairs = backup_pairs(file);
        assert!(
            pairs.contains_key(&format!("sched/{run}")),
            "{} holds the key written before it",
            file.display()
        );
        let verify = run_cli(&["verify-backup", file.to_str().unwrap()]);
        assert!(verify.status.success(), "{}", stderr_of(&verify));
    }
}

/// Issue 14: a restore client killed with -9 in the middle of its stream leaves a staged
/// generation on every node. After `--restore-idle-timeout` the leader gives it up (one
/// `restore_abandon` entry, audited), every node's janitor deletes what was staged, the
/// data in use never changed, and the same file restores cleanly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_client_killed_mid_stream_is_given_up_and_a_retry_works() {
    let cluster = TestCluster::start(3, &["--restore-idle-timeout", "2s"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    // 40 MiB in 64 KiB values: about 40 chunks, so the client is still streaming when killed.
    write_load_sized(&cluster.node(leader).grpc, 16, 40, 64 * 1024).await;
    let endpoints = cluster.endpoints();
    let file = backup_to(&cluster, "killed-client.odb");
    let file_arg = file.to_str().expect("path").to_string();
    let backed_up = backup_pairs(&file);
    let mut c = cluster.node(leader).client();
    for i in 0..40 {
        c.delete(DeleteRequest {
            key: format!("load/0/{i}"),
        })
        .await
        .expect("delete");
        c.put(PutRequest {
            key: format!("b/{i}"),
            value: b"since the backup".to_vec(),
        })
        .await
        .expect("put");
    }
    let scans = settled_scans(&cluster).await;
    let in_use = scans[0].1.clone();
    assert_ne!(in_use, backed_up, "the cluster must differ from the backup");
    let start_index = cluster
        .node(leader)
        .status()
        .await
        .expect("status")
        .last_log_index
        .unwrap_or(0);

    let mut restore = std::process::Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args(["restore", &file_arg, "--yes", "--endpoints", &endpoints])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn restore");
    // The begin entry and a few chunks are in the log: the client is mid-stream.
    let node = cluster.node(leader);
    wait_for(
        "the restore to stage chunks",
        Duration::from_secs(30),
        || async {
            let s = node.status().await?;
            (s.last_log_index.unwrap_or(0) > start_index + 3).then_some(())
        },
    )
    .await;
    restore.kill().expect("kill -9 the restore client");
    let _ = restore.wait();
    let killed_at = Instant::now();
    assert_eq!(
        restore_audits(&cluster, leader).await,
        0,
        "the restore committed before its client was killed; make the backup larger"
    );
    let logs_at_kill: Vec<usize> = cluster.nodes.iter().map(|n| n.log_text().len()).collect();

    let abandoned = wait_for(
        "the leader to give up the restore",
        Duration::from_secs(30),
        || async {
            let records = cluster
                .node(leader)
                .client()
                .list_audit(ListAuditRequest { limit: 100 })
                .await
                .ok()?
                .into_inner()
                .records;
            records.into_iter().find(|r| r.action == "restore_abandon")
        },
    )
    .await;
    println!(
        "restore given up {:?} after the client was killed: {}",
        killed_at.elapsed(),
        abandoned.result
    );
    for (n, since) in cluster.nodes.iter().zip(logs_at_kill) {
        wait_for(
            &format!("node {} to delete the staged data", n.id),
            Duration::from_secs(60),
            || async {
                n.log_text()[since..]
                    .contains("cleanup: deleted")
                    .then_some(())
            },
        )
        .await;
    }
    let scans = settled_scans(&cluster).await;
    assert_eq!(scans.len(), 3);
    assert_all_equal(&scans, &in_use, "the data in use before the restore");

    let out = run_cli(&["restore", &file_arg, "--yes", "--endpoints", &endpoints]);
    assert!(out.status.success(), "restore again: {}", stderr_of(&out));
    let scans = settled_scans(&cluster).await;
    assert_all_equal(&scans, &backed_up, "exactly the backup's pairs");
    assert_eq!(restore_audits(&cluster, leader).await, 1);
}

/// The `backup_unverified` state from `rules` (`backup_unverified_h >= 0`): the rule's
/// state and its figure's text, or None when the figure has no data (no backup).
fn unverified_alert(endpoints: &str, rules: &Path) -> Option<(String, String)> {
    let out = run_cli(&[
        "alerts",
        "--json",
        "--rules",
        rules.to_str().unwrap(),
        "--endpoints",
        endpoints,
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out))
        .unwrap_or_else(|e| panic!("alerts JSON ({e}): {}{}", stdout_of(&out), stderr_of(&out)));
    let a = v["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["rule"] == "backup_unverified")?
        .clone();
    Some((
        a["state"].as_str().unwrap_or_default().to_string(),
        a["figures"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// Waits until every node reports the last backup as verified (`true`) or not.
async fn wait_verified(cluster: &TestCluster, verified: bool) {
    wait_for(
        "every node to agree on the verification",
        Duration::from_secs(10),
        || async {
            for n in &cluster.nodes {
                let s = n.status().await?;
                s.last_backup_unix_ms?;
                if s.last_backup_verified_unix_ms.is_some() != verified {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Issue 19, "last backup not verified": a backup nobody checked counts as not verified
/// (status, the `backup_unverified` figure) until a client verifies that very file and
/// records it; verifying an older backup does not count; `backup --verify` and a damaged
/// file; every verification is in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_backup_is_not_verified_until_a_client_checks_that_file() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let rules = cluster.dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"backup_unverified\"\nexpr = \"backup_unverified_h >= 0\"\nfor = \"0s\"\nseverity = \"warning\"\n",
    )
    .unwrap();
    let (c, r) = (cluster.endpoints(), rules.clone());
    let before = tokio::task::spawn_blocking(move || unverified_alert(&c, &r))
        .await
        .unwrap();
    assert_eq!(before, None, "no backup, no data: {before:?}");

    let first = backup_to(&cluster, "first.odb");
    wait_verified(&cluster, false).await;
    let (c, r) = (cluster.endpoints(), rules.clone());
    let (state, text) = tokio::task::spawn_blocking(move || unverified_alert(&c, &r))
        .await
        .unwrap()
        .expect("a backup: the figure has data");
    assert_eq!(state, "firing", "{text}");
    assert!(text.ends_with("h ago, not verified"), "{text}");

    let verify = |file: &Path, extra: &[&str]| {
        let mut args = vec!["verify-backup", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let e = cluster.endpoints();
        args.extend(["--endpoints", e.as_str()]);
        run_cli(&args)
    };
    // Without --record nothing is told to the cluster.
    let out = verify(&first, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    wait_verified(&cluster, false).await;
    let out = verify(&first, &["--record"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["recorded"]["ok"], true, "{v}");
    assert_eq!(v["recorded"]["last_backup"], true, "{v}");
    wait_verified(&cluster, true).await;
    let (c, r) = (cluster.endpoints(), rules.clone());
    let (state, text) = tokio::task::spawn_blocking(move || unverified_alert(&c, &r))
        .await
        .unwrap()
        .expect("data");
    assert_eq!(
        (state.as_str(), text.as_str()),
        ("firing", "verified"),
        "0 >= 0 still holds"
    );

    // A newer backup is not verified by the older file's check.
    let _second = backup_to(&cluster, "second.odb");
    wait_verified(&cluster, false).await;
    let out = verify(&first, &["--record"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["recorded"]["last_backup"], false, "{v}");
    wait_verified(&cluster, false).await;

    // A damaged copy fails and records nothing.
    let damaged = cluster.dir.path().join("damaged.odb");
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let out = verify(&damaged, &["--record"]);
    assert!(!out.status.success(), "{}", stdout_of(&out));

    // `backup --verify` checks and records the file it wrote.
    let third = cluster.dir.path().join("third.odb");
    let e = cluster.endpoints();
    let out = run_cli(&[
        "backup",
        "--out",
        third.to_str().unwrap(),
        "--verify",
        "--json",
        "--endpoints",
        &e,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["recorded"]["last_backup"], true, "{v}");
    wait_verified(&cluster, true).await;

    // The audit trail has the three recorded checks, with the files' names only.
    let out = run_cli(&["audit", "--json", "--endpoints", &e]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let audit = stdout_of(&out);
    let checks: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("backup.verify"))
        .collect();
    assert_eq!(checks.len(), 3, "{audit}");
    assert!(audit.contains(r#"file=\"first.odb\""#), "{audit}");
    assert!(audit.contains(r#"file=\"third.odb\""#), "{audit}");
    assert!(!audit.contains("damaged.odb"), "{audit}");
}
