//! API keys, roles, rotation, quotas, rate limits and the audit trail, against real node
//! processes: every refusal is checked on every node, followers included.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use opsdeck_node::pb::*;
use support::*;
use tonic::Code;

/// Runs a CLI verb with the admin key off the async runtime and returns its JSON output.
async fn cli_json(args: Vec<String>) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout_of(&out)))
}

fn args(list: &[&str], endpoints: &str) -> Vec<String> {
    list.iter()
        .map(|s| s.to_string())
        .chain(["--json".into(), "--endpoints".into(), endpoints.into()])
        .collect()
}

/// Creates a key with the CLI; returns (id, secret).
async fn create_key(endpoints: &str, role: &str, tenant: Option<&str>) -> (String, String) {
    let mut list = vec!["keys", "create", "--role", role];
    if let Some(t) = tenant {
        list.extend(["--tenant", t]);
    }
    let v = cli_json(args(&list, endpoints)).await;
    (
        v["key"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// The gRPC code of a status call made with `key` (Ok when it succeeds).
async fn status_code(addr: &str, key: Option<&str>) -> Code {
    let mut c = client_with_key(addr, key);
    match c.status(StatusRequest {}).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

async fn put_code(addr: &str, key: &str, k: &str) -> Code {
    let mut c = client_with_key(addr, Some(key));
    let req = PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
    };
    match c.put(req).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// Waits until a status call with `key` gets `want` on every running node.
async fn wait_everywhere(cluster: &TestCluster, key: Option<&str>, want: Code, what: &str) {
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        wait_for(
            &format!("{what} on node {}", n.id),
            Duration::from_secs(10),
            || async { (status_code(&n.grpc, key).await == want).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_roles_revocation_and_rotation_hold_on_every_node_across_restarts() {
    let mut cluster = TestCluster::start(3, &["--snapshot-every", "20"]).await;
    let endpoints = cluster.endpoints();
    let (reader_id, reader) = create_key(&endpoints, "read", None).await;
    let (writer_id, writer) = create_key(&endpoints, "write", Some("acme")).await;

    // 1. No key and a garbage key are refused everywhere; a valid key works everywhere.
    wait_everywhere(&cluster, None, Code::Unauthenticated, "no key refused").await;
    let garbage = format!("odk_{}", "0".repeat(64));
    wait_everywhere(
        &cluster,
        Some(&garbage),
        Code::Unauthenticated,
        "garbage refused",
    )
    .await;
    wait_everywhere(&cluster, Some(&reader), Code::Ok, "read key accepted").await;

    // 2. Roles and tenants, on every node.
    let http = reqwest::Client::new();
    for n in &cluster.nodes {
        assert_eq!(
            put_code(&n.grpc, &reader, "acme/x").await,
            Code::PermissionDenied
        );
        assert_eq!(put_code(&n.grpc, &writer, "acme/x").await, Code::Ok);
        assert_eq!(
            put_code(&n.grpc, &writer, "other/x").await,
            Code::PermissionDenied
        );
        let mut w = client_with_key(&n.grpc, Some(&writer));
        let add = w
            .add_learner(AddLearnerRequest {
                id: 9,
                grpc: "127.0.0.1:1".into(),
                http: "127.0.0.1:2".into(),
                blocking: false,
            })
            .await
            .unwrap_err();
        assert_eq!(add.code(), Code::PermissionDenied, "{add:?}");
        assert!(add.message().contains("needs admin"), "{}", add.message());
        let rotate = w
            .rotate_key(RotateKeyRequest {
                id: reader_id.clone(),
                grace_ms: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(rotate.code(), Code::PermissionDenied);

        let url = format!("http://{}/kv/acme/x", n.http);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
        let put = http
            .put(&url)
            .bearer_auth(&reader)
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 403);
        let get = http
            .get(&url)
            .header("x-api-key", &writer)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        assert_eq!(
            http.get(format!("http://{}/health", n.http))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }

    // A revoked key is refused everywhere.
    cli_json(args(&["keys", "revoke", "--id", &reader_id], &endpoints)).await;
    wait_everywhere(
        &cluster,
        Some(&reader),
        Code::Unauthenticated,
        "revoked key refused",
    )
    .await;

    // 3. Rotation: both keys work during the grace period, on every node...
    let grace = Duration::from_secs(8);
    let rotated_at = Instant::now();
    let v = cli_json(args(
        &["keys", "rotate", "--id", &writer_id, "--grace", "8s"],
        &endpoints,
    ))
    .await;
    let successor = v["secret"].as_str().unwrap().to_string();
    assert_eq!(v["replaced"]["id"], writer_id.as_str());
    wait_everywhere(&cluster, Some(&successor), Code::Ok, "successor accepted").await;
    for n in &cluster.nodes {
        assert_eq!(put_code(&n.grpc, &writer, "acme/old").await, Code::Ok);
        assert_eq!(put_code(&n.grpc, &successor, "acme/new").await, Code::Ok);
    }
    assert!(
        rotated_at.elapsed() < grace,
        "checking the grace window took {:?}, longer than the window itself",
        rotated_at.elapsed()
    );

    // ...the rotation survives a leader kill and a full restart...
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.node_mut(leader).kill9();
    cluster.wait_leader(Duration::from_secs(10)).await;
    wait_everywhere(
        &cluster,
        Some(&successor),
        Code::Ok,
        "successor after a leader kill",
    )
    .await;
    for n in &mut cluster.nodes {
        n.stop();
    }
    for n in &mut cluster.nodes {
        n.start(false);
    }
    cluster.wait_leader(Duration::from_secs(20)).await;

    // ...and after the grace period only the new key works, everywhere.
    wait_everywhere(
        &cluster,
        Some(&writer),
        Code::Unauthenticated,
        "old key expired",
    )
    .await;
    assert!(
        rotated_at.elapsed() >= grace,
        "the old key was refused before its grace ended"
    );
    wait_everywhere(
        &cluster,
        Some(&successor),
        Code::Ok,
        "successor after restart",
    )
    .await;
    let mut c = client_with_key(&cluster.nodes[1].grpc, Some(&writer));
    let err = c.status(StatusRequest {}).await.unwrap_err();
    assert!(err.message().contains("expired"), "{}", err.message());

    // The audit trail names every admin action, by key id.
    let audit = cli_json(args(&["audit"], &endpoints)).await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "key.create",
        "key.revoke",
        "key.rotate",
        "member.add_learner",
        "member.change",
    ] {
        assert!(actions.contains(&want), "audit lacks {want}: {actions:?}");
    }

    // 6. No secret in the data dirs, the logs or the snapshots; the admin key only where
    // it belongs (DATA/admin.key, and the harness's seed file).
    for n in &mut cluster.nodes {
        n.stop();
    }
    let snapshots = walk(cluster.dir.path())
        .into_iter()
        .filter(|p| p.ends_with("snapshot.bin"))
        .count();
    assert!(snapshots > 0, "expected snapshots to be searched too");
    for path in walk(cluster.dir.path()) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        for (what, secret) in [
            ("read", &reader),
            ("write", &writer),
            ("successor", &successor),
        ] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{what} key secret found in {}",
                path.display()
            );
            assert!(
                !contains(&bytes, &secret.as_bytes()[4..]),
                "{what} key secret found in {}",
                path.display()
            );
        }
        if name != "admin.key" && name != "admin.seed" {
            assert!(
                !contains(&bytes, &admin_key().as_bytes()[4..]),
                "admin secret found in {}",
                path.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_a_quota_is_refused_with_the_numbers_and_changes_nothing() {
    let cluster = TestCluster::start(3, &[]).await;
    let endpoints = cluster.endpoints();
    cli_json(args(
        &[
            "quota",
            "set",
            "acme",
            "--tier",
            "free",
            "--max-bytes",
            "100",
        ],
        &endpoints,
    ))
    .await;
    // Each pair is 6 key bytes + 44 value bytes: two of them fill the tenant exactly.
    let (_, writer) = create_key(&endpoints, "write", None).await;
    let mut c = client_with_key(&cluster.nodes[1].grpc, Some(&writer));
    for k in ["acme/a", "acme/b"] {
        c.put(PutRequest {
            key: k.into(),
            value: vec![b'x'; 44],
        })
        .await
        .unwrap();
    }
    let err = c
        .put(PutRequest {
            key: "acme/c".into(),
            value: vec![b'y'],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    for want in ["\"acme\"", "107 bytes", "limit of 100 bytes", "100 in use"] {
        assert!(
            err.message().contains(want),
            "{want} missing: {}",
            err.message()
        );
    }
    // Over HTTP the same refusal is a 507 naming the numbers.
    let resp = reqwest::Client::new()
        .put(format!("http://{}/kv/acme/a", cluster.nodes[2].http))
        .bearer_auth(&writer)
        .body(vec![b'z'; 45])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
    assert!(resp.text().await.unwrap().contains("limit of 100 bytes"));

    // What was written is intact on every node; other tenants are not limited.
    let big = vec![b'b'; 10_000];
    c.put(PutRequest {
        key: "beta/big".into(),
        value: big,
    })
    .await
    .unwrap();
    let index = cluster.nodes[0].status().await.unwrap().applied.unwrap();
    cluster.wait_applied(index, Duration::from_secs(10)).await;
    for n in &cluster.nodes {
        let data = cluster.scan_local(n.id, "acme/").await;
        assert_eq!(data.len(), 2, "node {}", n.id);
        assert!(
            data.iter().all(|(_, v)| v == &vec![b'x'; 44]),
            "node {}",
            n.id
        );
    }
    let q = cli_json(args(&["quota", "show", "acme"], &endpoints)).await;
    let acme = &q["tenants"][0];
    assert_eq!(acme["bytes"], 100);
    assert_eq!(acme["keys"], 2);
    assert_eq!(acme["violations"], 2);
    assert_eq!(acme["bytes_used_pct"], 100.0);

    // The same usage is in every node's status and metrics.
    let status = cli_json(args(&["status"], &endpoints)).await;
    for node in status["nodes"].as_array().unwrap() {
        let quotas = node["quotas"].as_array().unwrap();
        let acme = quotas.iter().find(|q| q["tenant"] == "acme").unwrap();
        assert_eq!(acme["bytes_used_pct"], 100.0, "{node}");
    }
    let metrics = http_client()
        .get(format!("http://{}/metrics", cluster.nodes[1].http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "opsdeck_quota_used_ratio{tenant=\"acme\",resource=\"bytes\"} 1",
        "opsdeck_quota_refused_writes{tenant=\"acme\"} 2",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}");
    }

    // Every node, not just the one that refused, reports the violations as events.
    let mut events = client(&cluster.nodes[2].grpc)
        .watch(WatchRequest {
            status_interval_ms: 60_000,
            logs: false,
            events: true,
            log_history: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    while !kinds.contains(&"quota_violation".to_string()) {
        let next = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .expect("events within 5 s")
            .unwrap()
            .expect("stream open");
        if let Some(watch_event::Kind::Event(e)) = next.kind {
            if e.kind == "quota_violation" {
                assert!(e.detail.contains("limit of 100 bytes"), "{}", e.detail);
            }
            kinds.push(e.kind);
        }
    }
    assert!(kinds.contains(&"quota_changed".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"key_created".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_gets_429s_then_service_resumes() {
    let cluster = TestCluster::start(1, &["--rate-limit", "10/10s", "--rate-burst", "5"]).await;
    let (_, reader) = create_key(&cluster.endpoints(), "read", None).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/kv/any", cluster.nodes[0].http);
    let mut codes = Vec::new();
    for _ in 0..20 {
        let resp = http.get(&url).bearer_auth(&reader).send().await.unwrap();
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            let body = resp.text().await.unwrap();
            assert!(body.contains("rate limited, retry after"), "{body}");
            codes.push(429);
        } else {
            codes.push(resp.status().as_u16());
        }
    }
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(
        limited >= 10,
        "expected most of a 20-request burst refused: {codes:?}"
    );
    assert!(
        codes[..5].iter().all(|c| *c == 404),
        "the burst allowance was not honoured: {codes:?}"
    );
    // The admin key is never limited.
    for _ in 0..20 {
        let resp = http_client().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    wait_for(
        "the read key to be served again",
        Duration::from_secs(5),
        || async {
            let resp = http.get(&url).bearer_auth(&reader).send().await.unwrap();
            (resp.status() == 404).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_period_or_lifetime_past_ten_years_is_refused_by_the_cli_and_the_node() {
    // The CLI refuses before sending anything (the endpoint is closed) and names the figure
    // asked for and the limit; these two used to wrap to ~99 s and to a wrong figure.
    for (grace, figure) in [
        ("18446744073709651s", "213503982334 days"),
        ("600000000y", "219150000000 days"),
    ] {
        let list = ["keys", "rotate", "--id", "k", "--grace", grace];
        let out = tokio::task::spawn_blocking(move || {
            run_cli(&[&list[..], &["--endpoints", "127.0.0.1:1"]].concat())
        })
        .await
        .unwrap();
        let err = stderr_of(&out);
        assert!(
            !out.status.success(),
            "{grace} accepted: {}",
            stdout_of(&out)
        );
        assert!(
            err.contains(figure) && err.contains("limit of 10 years"),
            "{grace}: {err}"
        );
    }
    let out = tokio::task::spawn_blocking(|| {
        run_cli(&["keys", "create", "--role", "read", "--expires", "11y"])
    })
    .await
    .unwrap();
    assert!(
        stderr_of(&out).contains("limit of 10 years"),
        "{}",
        stderr_of(&out)
    );
    let help = tokio::task::spawn_blocking(|| run_cli(&["keys", "rotate", "--help"]))
        .await
        .unwrap();
    assert!(
        stdout_of(&help).contains("at most 10 years"),
        "{}",
        stdout_of(&help)
    );

    // The node refuses a grace of u64::MAX ms (no overflow into the past) and leaves the key
    // as it was; the limit itself is accepted.
    let cluster = TestCluster::start(1, &[]).await;
    let n = &cluster.nodes[0];
    let (id, _) = create_key(&n.grpc, "read", None).await;
    let err = n
        .client()
        .rotate_key(RotateKeyRequest {
            id: id.clone(),
            grace_ms: u64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("limit of 10 years"),
        "{}",
        err.message()
    );
    let err = n
        .client()
        .create_key(CreateKeyRequest {
            role: "read".into(),
            tenants: Vec::new(),
            expires_in_ms: u64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let keys = n
        .client()
        .list_keys(ListKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let key = keys.iter().find(|k| k.id == id).expect("the key is listed");
    assert_eq!(key.state, "valid");
    assert_eq!((key.expires_unix_ms, &key.successor), (None, &None));
    assert_eq!(keys.len(), 2, "nothing was created: {keys:?}");

    let ten_years_ms = 10 * 365 * 24 * 3600 * 1000_i64;
    let before = opsdeck_node::clock::unix_millis();
    let reply = n
        .client()
        .rotate_key(RotateKeyRequest {
            id: id.clone(),
            grace_ms: ten_years_ms as u64,
        })
        .await
        .expect("a grace of exactly ten years is accepted")
        .into_inner();
    let expires = reply
        .replaced
        .and_then(|k| k.expires_unix_ms)
        .expect("an expiry");
    assert!(
        expires >= before + ten_years_ms,
        "{expires} < {before} + 10y"
    );
}

/// `quota set --max-keys 0 --max-bytes 0` is a limit of zero (nothing may be written), not
/// the tier's defaults as it silently was; an absent limit still takes the tier's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_of_zero_means_nothing_may_be_written() {
    let cluster = TestCluster::start(1, &[]).await;
    let endpoints = cluster.endpoints();
    let set = [
        "quota",
        "set",
        "shut",
        "--max-keys",
        "0",
        "--max-bytes",
        "0",
    ];
    let v = cli_json(args(&set, &endpoints)).await;
    let t = &v["tenants"][0];
    assert_eq!(
        (t["max_keys"].as_u64(), t["max_bytes"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    let out = tokio::task::spawn_blocking({
        let e = endpoints.clone();
        move || run_cli(&["quota", "show", "shut", "--endpoints", &e])
    })
    .await
    .unwrap();
    assert!(
        stdout_of(&out).contains("0/0 (no writes)"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        put_code(&cluster.nodes[0].grpc, admin_key(), "shut/x").await,
        Code::ResourceExhausted
    );
    assert_eq!(cluster.scan_local(1, "shut/").await, Vec::new());

    // Only one limit given: the other is the tier's default.
    let v = cli_json(args(
        &["quota", "set", "half", "--max-keys", "0"],
        &endpoints,
    ))
    .await;
    let t = &v["tenants"][0];
    assert_eq!(t["max_keys"].as_u64(), Some(0), "{v}");
    assert_eq!(t["max_bytes"].as_u64(), Some(10 * 1024 * 1024), "{v}");
    // A client that sends no limits (as older ones did for "default") gets the defaults.
    let t = cluster.nodes[0]
        .client()
        .set_quota(SetQuotaRequest {
            tenant: "dflt".into(),
            tier: "premium".into(),
            max_keys: None,
            max_bytes: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((t.max_keys, t.max_bytes), (Some(1_000_000), Some(1 << 30)));
    // A tenant without a quota reports no limit at all.
    let v = cli_json(args(&["quota", "reset", "shut"], &endpoints)).await;
    assert!(v["tenants"][0]["max_keys"].is_null(), "{v}");
    assert_eq!(
        put_code(&cluster.nodes[0].grpc, admin_key(), "shut/x").await,
        Code::Ok
    );
}
