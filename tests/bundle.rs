//! `opsdeck debug bundle` against a real 3-node cluster with one node killed: the bundle
//! is written, its manifest names the dead node as not answering and lists every item of
//! the live ones, and no written value, API key secret or the cluster secret appears in
//! any entry of the archive.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use support::*;

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Every entry of the archive: its path and its bytes.
fn entries(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let file = std::fs::File::open(path).expect("open bundle");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("entry path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        out.insert(name, bytes);
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_with_one_node_down_lists_it_and_holds_no_secret_or_value() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(20)).await;
    let endpoints = cluster.endpoints();

    let mut values = Vec::new();
    for i in 0..5 {
        let value = format!("val-{}", random_hex(16));
        let key = format!("bundle/k{i}");
        let out = cli_as(None, &["put", &key, &value, "--endpoints", &endpoints]).await;
        assert!(out.status.success(), "put: {}", stderr_of(&out));
        values.push(value);
    }
    let out = cli_as(
        None,
        &[
            "keys",
            "create",
            "--role",
            "read",
            "--json",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "keys create: {}", stderr_of(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    let extra_secret = created["secret"].as_str().expect("secret").to_string();
    let cluster_secret =
        std::fs::read_to_string(cluster.dir.path().join("cluster.secret")).expect("secret");

    let dead_grpc = cluster.node(3).grpc.clone();
    cluster.node_mut(3).kill9();

    let out_file = cluster.dir.path().join("bundle.tar.gz");
    let started = Instant::now();
    let out = cli_as(
        None,
        &[
            "debug",
            "bundle",
            "--out",
            &out_file.display().to_string(),
            "--since",
            "1h",
            "--json",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    let took = started.elapsed();
    assert!(out.status.success(), "debug bundle: {}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&dead_grpc),
        "stderr names the node that did not answer: {}",
        stderr_of(&out)
    );
    assert!(took < Duration::from_secs(60), "the bundle took {took:?}");
    assert!(!cluster.dir.path().join("bundle.tar.gz.partial").exists());
    let printed: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    assert_eq!(printed["missing"][0]["endpoint"], dead_grpc.as_str());

    let all = entries(&out_file);
    let root = all
        .keys()
        .next()
        .and_then(|k| k.split('/').next())
        .expect("an entry")
        .to_string();
    assert!(root.starts_with("opsdeck-bundle-"), "{root}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&all[&format!("{root}/manifest.json")]).expect("manifest json");
    let missing = manifest["not_answering"].as_array().expect("not_answering");
    assert_eq!(missing.len(), 1, "{manifest:#}");
    assert_eq!(missing[0]["endpoint"], dead_grpc.as_str());
    assert_eq!(missing[0]["id"], 3);
    let nodes = manifest["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        let id = node["id"].as_u64().expect("id");
        if id == 3 {
            assert_eq!(node["answered"], false);
            assert!(!all
                .keys()
                .any(|k| k.starts_with(&format!("{root}/node-3/"))));
            continue;
        }
        assert_eq!(node["answered"], true, "{node:#}");
        for item in [
            "status.json",
            "logs.txt",
            "events.jsonl",
            "metrics.txt",
            "settings.json",
            "datadir.json",
        ] {
            let name = format!("node-{id}/{item}");
            let recorded = node["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} in the manifest: {node:#}"));
            assert_eq!(recorded["ok"], true, "{recorded:#}");
            let bytes = all
                .get(&format!("{root}/{name}"))
                .unwrap_or_else(|| panic!("{name} in the archive"));
            assert!(!bytes.is_empty(), "{name} is empty");
            assert_eq!(recorded["bytes"], bytes.len() as u64);
        }
        let metrics =
            String::from_utf8_lossy(&all[&format!("{root}/node-{id}/metrics.txt")]).into_owned();
        assert!(metrics.contains("opsdeck_"), "metrics text: {metrics:.200}");
        let listing: serde_json::Value =
            serde_json::from_slice(&all[&format!("{root}/node-{id}/datadir.json")])
                .expect("datadir json");
        assert!(
            !listing["entries"].as_array().expect("entries").is_empty(),
            "{listing:#}"
        );
    }
    for name in [
        "cluster/members.json",
        "cluster/audit.json",
        "console/alerts.json",
    ] {
        assert!(
            all.get(&format!("{root}/{name}"))
                .is_some_and(|b| !b.is_empty()),
            "{name}"
        );
    }
    let audit = String::from_utf8_lossy(&all[&format!("{root}/cluster/audit.json")]).into_owned();
    assert!(
        audit.contains("create"),
        "the key creation is audited: {audit:.300}"
    );

    let mut secrets: Vec<(&str, String)> = values
        .iter()
        .map(|v| ("a written value", v.clone()))
        .collect();
    secrets.push(("the admin key", admin_key().to_string()));
    secrets.push(("the extra key", extra_secret));
    secrets.push(("the cluster secret", cluster_secret.trim().to_string()));
    for (name, bytes) in &all {
        for (what, secret) in &secrets {
            assert!(!contains(bytes, secret), "{name} holds {what}");
        }
    }
    // The whole file too (names and headers included), decompressed.
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&out_file).expect("open"))
        .read_to_end(&mut raw)
        .expect("gunzip");
    for (what, secret) in &secrets {
        assert!(!contains(&raw, secret), "the archive holds {what}");
    }
}
