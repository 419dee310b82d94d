//! Merkle proofs per key against real node processes: `get --proof` writes a proof that
//! `verify-proof` accepts (offline and `--live`), of a value and of an absence; a proof
//! with a byte changed, for another key, or against a root no quorum reported fails with a
//! message; every node reports the same root at one index, also after a kill -9 and a
//! restart (the index is reloaded, or rebuilt, from disk) and after a snapshot install.

mod support;

use std::path::Path;
use std::time::Duration;

use opsdeck_node::pb::PutRequest;
use support::*;

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_cli(args);
    (out.status.code(), stdout_of(&out), stderr_of(&out))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read the proof file");
    serde_json::from_str(&text).expect("the proof file is JSON")
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("JSON")).expect("write");
}

/// Flips the last hex digit of a string field.
fn flip_hex(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let last = chars.last_mut().expect("a non-empty hex string");
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

/// Every running node's Merkle root at the leader's applied index, once all applied it.
async fn roots_agree(cluster: &TestCluster, ids: &[u64]) -> String {
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let index = cluster
        .node(leader)
        .applied()
        .await
        .expect("leader applied");
    cluster.wait_applied(index, Duration::from_secs(30)).await;
    let mut roots = Vec::new();
    for id in ids {
        let d = cluster.node(*id).digest(Some(index)).await;
        roots.push((
            id,
            d["merkle_root"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let first = roots[0].1.clone();
    assert_eq!(first.len(), 64, "a 32-byte root: {roots:?}");
    assert!(
        roots.iter().all(|(_, r)| *r == first),
        "the nodes' Merkle roots at index {index} differ: {roots:?}"
    );
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proofs_verify_and_any_edit_fails() {
    let cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, 4, 50).await;
    let mut c = cluster.node(leader).client();
    c.put(PutRequest {
        key: "tenant/proved".into(),
        value: b"hello".to_vec(),
    })
    .await
    .expect("put");
    roots_agree(&cluster, &[1, 2, 3]).await;
    let endpoints = cluster.endpoints();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("proved.proof");
    let f = file.to_str().expect("utf-8 path");

    let (code, out, err) = cli(&[
        "get",
        "tenant/proved",
        "--proof",
        f,
        "--endpoints",
        &endpoints,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "hello\n");
    assert!(err.contains("reported by 3 of 3 voters"), "{err}");

    let (code, out, err) = cli(&["verify-proof", f]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("proof holds: \"tenant/proved\" holds its value"),
        "{out}"
    );
    let (code, out, err) = cli(&["verify-proof", f, "--live", "--endpoints", &endpoints]);
    assert_eq!(code, Some(0), "{out}{err}");

    // The HTTP twin proves the same value to the same root.
    let good = read_json(&file);
    let http: serde_json::Value = http_client()
        .get(format!(
            "http://{}/proof/tenant/proved",
            cluster.node(2).http
        ))
        .bearer_auth(admin_key())
        .send()
        .await
        .expect("GET /proof")
        .json()
        .await
        .expect("JSON");
    assert_eq!(http["value"], good["proof"]["value"]);
    assert_eq!(http["bucket"], good["proof"]["bucket"]);
    assert!(http["index"].as_u64() >= good["proof"]["index"].as_u64());

    // Edits, each refused with what is wrong.
    let edited = dir.path().join("edited.proof");
    let e = edited.to_str().expect("utf-8 path");
    let refused = |v: &serde_json::Value, want: &str| {
        write_json(&edited, v);
        let (code, out, err) = cli(&["verify-proof", e]);
        assert_eq!(code, Some(1), "an edited proof verified: {out}{err}");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    };
    let mut v = good.clone();
    v["proof"]["value"] = serde_json::json!(hex::encode("hellp"));
    refused(&v, "does not hash to the key's entry");
    let mut v = good.clone();
    let p0 = v["proof"]["path"][0].as_str().expect("path").to_string();
    v["proof"]["path"][0] = serde_json::json!(flip_hex(&p0));
    refused(&v, "lead to root");
    let mut v = good.clone();
    v["proof"]["key"] = serde_json::json!("tenant/other");
    refused(&v, "falls in bucket");
    // Another root, reported by one voter only: no quorum.
    let mut v = good.clone();
    let root = v["proof"]["root"].as_str().expect("root").to_string();
    v["reports"][0]["root"] = serde_json::json!(flip_hex(&root));
    v["reports"][1]["root"] = serde_json::json!(flip_hex(&root));
    refused(&v, "reported by 1 of 3 voters");
    // A made-up root that every report repeats: the path no longer leads to it.
    let mut v = good.clone();
    let fake = flip_hex(&root);
    v["proof"]["root"] = serde_json::json!(fake);
    for i in 0..3 {
        v["reports"][i]["root"] = serde_json::json!(fake);
    }
    refused(&v, "lead to root");
    let (code, _, err) = cli(&["verify-proof", dir.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "a directory is a usage error: {err}");

    // A key that does not exist: a proof of absence (exit 3, like get), which verifies.
    let absent = dir.path().join("absent.proof");
    let a = absent.to_str().expect("utf-8 path");
    let (code, out, err) = cli(&[
        "get",
        "tenant/never",
        "--proof",
        a,
        "--endpoints",
        &endpoints,
    ]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(err.contains("proof of absence written"), "{err}");
    let (code, out, err) = cli(&["verify-proof", a]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("\"tenant/never\" is absent"), "{out}");
    // Claiming the proved key is absent with its own bucket fails.
    let mut v = good.clone();
    v["proof"]["value"] = serde_json::Value::Null;
    refused(&v, "claims \"tenant/proved\" is absent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roots_agree_after_kill9_restart_and_snapshot_install() {
    let mut cluster = TestCluster::start(3, &["--snapshot-every", "64", "--keep-logs", "5"]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    write_load(&cluster.node(leader).grpc, 4, 40).await;
    let before = roots_agree(&cluster, &[1, 2, 3]).await;

    // A follower killed mid-load and restarted reloads its index from disk (or rebuilds it
    // when the stop fell between the state machine's write and the index's).
    let victim = cluster.a_follower(leader);
    let victim_applied = cluster
        .node(victim)
        .applied()
        .await
        .expect("victim applied");
    cluster.node_mut(victim).kill9();
    // While it is down the others move on by more than a snapshot's worth and purge their
    // logs past it, so it can only catch up by a snapshot install (its index rebuilt from
    // what the snapshot loaded).
    // (The leader purges only once its replication to the dead node has let go of the
    // entries, so this writes until it has.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        write_load(&cluster.node(leader).grpc, 4, 100).await;
        let status = cluster.node(leader).status().await.expect("leader status");
        if status.purged_index.unwrap_or(0) > victim_applied {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the leader kept its log back to the victim's index {victim_applied} for 60 s, \
             so no snapshot install is tested: {status:?}"
        );
    }
    cluster.node_mut(victim).launch(false).await;
    let after = roots_agree(&cluster, &[1, 2, 3]).await;
    assert_ne!(before, after, "new writes change the root");

    // Deletes change it back: the root is of the data, not of its history.
    let mut c = cluster.node(leader).client();
    for w in 0..4 {
        for i in 0..100 {
            c.delete(opsdeck_node::pb::DeleteRequest {
                key: format!("load/{w}/{i}"),
            })
            .await
            .expect("delete");
        }
    }
    // load/W/0..40 were overwritten with the same values and are still there, as before.
    for w in 0..4 {
        for i in 0..40 {
            c.put(PutRequest {
                key: format!("load/{w}/{i}"),
                value: vec![b'v'; 100],
            })
            .await
            .expect("put");
        }
    }
    let again = roots_agree(&cluster, &[1, 2, 3]).await;
    assert_eq!(again, before, "the same data has the same root");
}
