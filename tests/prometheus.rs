//! opsdeck under a real Prometheus: the exported rules pass `promtool check rules` and the
//! shipped `promtool test rules` file; the shipped rules file is the export of the built-in
//! rules; a `metrics` key scrapes and discovers but reads nothing else; the probes answer
//! without a key; and a `prometheus` process configured only with the documented scrape
//! config (`deploy/prometheus/prometheus.yml`, intervals shortened) finds a 3-node cluster
//! through `/sd/prometheus`, follows a 4th node added through the membership API, runs every
//! query of the Grafana dashboard with results while load runs, and fires the exported
//! `node_down` (its `for` shortened to 2 s through `--rules`) after a kill -9.
//!
//! Without `prometheus`/`promtool` (Debian package `prometheus`) each test says SKIPPED and
//! returns; `.ci/run` installs them, so in CI they run.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsdeck_node::pb::*;
use serde_json::Value;
use support::*;
use tonic::Code;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `tool --version` runs.
fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! require {
    ($tool:expr) => {
        if !installed($tool) {
            eprintln!(
                "SKIPPED: {} not installed (apt-get install prometheus)",
                $tool
            );
            return;
        }
    };
}

/// Runs a tool to completion; returns (success, stdout + stderr).
fn run(tool: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let child = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let out = wait_output(child, Duration::from_secs(120));
    (
        out.status.success(),
        format!("{}{}", stdout_of(&out), stderr_of(&out)),
    )
}

fn export(rules: Option<&Path>) -> std::process::Output {
    let mut args = vec!["alerts", "--export", "prometheus"];
    if let Some(r) = rules {
        args.extend(["--rules", r.to_str().expect("utf-8 path")]);
    }
    run_cli_as(None, &args)
}

#[test]
fn the_shipped_rules_are_the_export_and_pass_promtool() {
    require!("promtool");
    let deploy = root().join("deploy/prometheus");
    let shipped = std::fs::read_to_string(deploy.join("opsdeck-rules.yml")).expect("shipped rules");
    let out = export(None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out) == shipped,
        "deploy/prometheus/opsdeck-rules.yml is not the export of the built-in rules; \
         regenerate it: cargo run --release -- alerts --export prometheus > \
         deploy/prometheus/opsdeck-rules.yml"
    );
    let (ok, text) = run(
        "promtool",
        &["check", "rules", "opsdeck-rules.yml"],
        &deploy,
    );
    assert!(ok, "promtool check rules:\n{text}");
    assert!(text.contains("SUCCESS: 13 rules found"), "{text}");
    let (ok, text) = run(
        "promtool",
        &["test", "rules", "opsdeck-rules.test.yml"],
        &deploy,
    );
    assert!(ok, "promtool test rules:\n{text}");

    // A rules file of one's own: every scope, comparisons joined by `and`, braces in the
    // summary; the export passes promtool too.
    let dir = tempfile::tempdir().expect("temp dir");
    let mine = dir.path().join("mine.toml");
    std::fs::write(
        &mine,
        r#"
[[rule]]
name = "busy_and_full"
expr = "disk_used_pct > 50 and storage_keys >= 1_000 and follower_lag > 10"
for = "1m30s"
severity = "info"
summary = "{subject} is {value} full, {{ not a template }}"

[[rule]]
name = "tenant"
expr = "quota_used_pct >= 99.5"
severity = "critical"

[[rule]]
name = "shaky"
expr = "quorum_ok != 1 and term_changes_5m > 0 and backup_age_h > 1"
for = "10s"
severity = "warning"
runbook = "do \"this\" then {{that}}"
"#,
    )
    .expect("write rules");
    let out = export(Some(&mine));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let exported = dir.path().join("mine.yml");
    std::fs::write(&exported, stdout_of(&out)).expect("write export");
    let (ok, text) = run("promtool", &["check", "rules", "mine.yml"], dir.path());
    assert!(ok, "promtool check rules:\n{text}\n{}", stdout_of(&out));
    assert!(
        stdout_of(&out).contains("for: 1m30s"),
        "{}",
        stdout_of(&out)
    );

    // A broken file gets the same error as everywhere else: file, line, reason.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\nname = \"a\"\nexpr = \"disk_used > 80\"\nseverity = \"info\"\n",
    )
    .expect("write rules");
    let out = export(Some(&bad));
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "{}:3: rule \"a\": expr \"disk_used > 80\": unknown figure \"disk_used\"",
            bad.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = run_cli_as(None, &["alerts", "--help"]);
    let help = stdout_of(&out);
    assert!(help.contains("--export <FORMAT>"), "{help}");
    assert!(help.contains("Not exactly as the console:"), "{help}");
}

/// `GET url` with an optional bearer key and `Accept`; returns (status, content type, body).
async fn get(url: &str, key: Option<&str>, accept: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, resp.text().await.unwrap_or_default())
}

/// Creates a key with the CLI, its secret written to `out`; returns the secret.
async fn create_key_file(endpoints: &str, role: &str, out: &Path) -> String {
    let args: Vec<String> = [
        "keys",
        "create",
        "--role",
        role,
        "--out",
        out.to_str().expect("utf-8 path"),
        "--endpoints",
        endpoints,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let result = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    })
    .await
    .expect("cli task");
    assert!(result.status.success(), "{}", stderr_of(&result));
    std::fs::read_to_string(out)
        .expect("key file")
        .trim()
        .to_string()
}

async fn cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    })
    .await
    .expect("cli task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metrics_key_scrapes_and_discovers_only_and_the_probes_need_no_key() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(15)).await;
    let endpoints = cluster.endpoints();
    let dir = cluster.dir.path().to_path_buf();
    let scrape = create_key_file(&endpoints, "metrics", &dir.join("metrics.key")).await;
    let reader = create_key_file(&endpoints, "read", &dir.join("read.key")).await;
    let http = cluster.nodes[1].http.clone();

    // Wait until every node knows the new keys (they are replicated).
    for n in &cluster.nodes {
        let url = format!("http://{}/metrics", n.http);
        wait_for(
            "the metrics key everywhere",
            Duration::from_secs(10),
            || {
                let (url, scrape) = (url.clone(), scrape.clone());
                async move { (get(&url, Some(&scrape), None).await.0 == 200).then_some(()) }
            },
        )
        .await;
    }

    // Prometheus text by default, OpenMetrics when asked, and the build it runs.
    let (code, ctype, text) = get(&format!("http://{http}/metrics"), Some(&scrape), None).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"));
    promtool_check_if_installed(&text);
    let build = format!(
        "opsdeck_build_info{{version=\"{}\",git_sha=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("OPSDECK_GIT_SHA")
    );
    assert!(text.contains(&build), "{build} in\n{text}");
    let sha = env!("OPSDECK_GIT_SHA");
    assert!(
        sha == "unknown" || (sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit())),
        "{sha}"
    );
    for gauge in [
        "opsdeck_storage_full 0",
        "opsdeck_cluster_voters 3",
        "opsdeck_raft_leader_known 1",
        "opsdeck_last_backup_timestamp_seconds 0.0",
    ] {
        assert!(text.contains(&format!("\n{gauge}\n")), "{gauge} in\n{text}");
    }
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/\
        openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (code, ctype, om) = get(
        &format!("http://{http}/metrics"),
        Some(&scrape),
        Some(prometheus_accept),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE opsdeck_build info\n"), "{om}");
    // OpenMetrics names a counter's family without `_total`, its samples with it.
    assert!(
        om.contains("# TYPE opsdeck_raft_log_fsyncs counter\nopsdeck_raft_log_fsyncs_total "),
        "{om}"
    );

    // The leader counts its reachable voters.
    let (leader, _) = cluster.wait_leader(Duration::from_secs(10)).await;
    let url = format!("http://{}/metrics", cluster.node(leader).http);
    wait_for("3 voters reachable", Duration::from_secs(10), || {
        let (url, scrape) = (url.clone(), scrape.clone());
        async move {
            let text = get(&url, Some(&scrape), None).await.2;
            text.contains("\nopsdeck_cluster_voters_reachable 3\n")
                .then_some(())
        }
    })
    .await;

    // Discovery: every member, with its id and role.
    let (code, ctype, body) =
        get(&format!("http://{http}/sd/prometheus"), Some(&scrape), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let groups: Vec<Value> = serde_json::from_str(&body).expect("JSON list");
    let mut seen = BTreeMap::new();
    for g in &groups {
        let targets = g["targets"].as_array().expect("targets");
        assert_eq!(targets.len(), 1, "{g}");
        seen.insert(
            g["labels"]["opsdeck_node_id"]
                .as_str()
                .expect("id label")
                .to_string(),
            (
                targets[0].as_str().expect("target").to_string(),
                g["labels"]["opsdeck_role"].as_str().map(str::to_string),
            ),
        );
    }
    let expected: BTreeMap<String, (String, Option<String>)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.to_string(), (n.http.clone(), Some("voter".into()))))
        .collect();
    assert_eq!(seen, expected);

    // A metrics key reads nothing else, over HTTP or gRPC.
    for path in [
        "/kv/acme/x",
        "/cluster/nodes",
        "/cluster/info",
        "/cluster/leader",
    ] {
        let (code, _, body) = get(&format!("http://{http}{path}"), Some(&scrape), None).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("has role metrics"), "{path}: {body}");
    }
    let put = reqwest::Client::new()
        .put(format!("http://{http}/kv/acme/x"))
        .bearer_auth(&scrape)
        .body("v")
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 403);
    let grpc = &cluster.nodes[1].grpc;
    let mut c = client_with_key(grpc, Some(&scrape));
    let refused = |r: Result<(), tonic::Status>, what: &str| match r {
        Err(s) if s.code() == Code::PermissionDenied => {
            assert!(s.message().contains("has role metrics"), "{what}: {s:?}")
        }
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    };
    refused(
        c.get(GetRequest {
            key: "acme/x".into(),
            stale: true,
        })
        .await
        .map(drop),
        "get",
    );
    refused(
        c.put(PutRequest {
            key: "acme/x".into(),
            value: b"v".to_vec(),
        })
        .await
        .map(drop),
        "put",
    );
    refused(
        c.scan(ScanRequest {
            prefix: String::new(),
            limit: 10,
            stale: true,
        })
        .await
        .map(drop),
        "scan",
    );
    refused(c.status(StatusRequest {}).await.map(drop), "status");
    refused(c.watch(WatchRequest::default()).await.map(drop), "watch");
    refused(
        c.list_keys(ListKeysRequest::default()).await.map(drop),
        "list keys",
    );
    // A read key may scrape too; no key may not.
    assert_eq!(
        get(&format!("http://{http}/metrics"), Some(&reader), None)
            .await
            .0,
        200
    );
    assert_eq!(
        get(&format!("http://{http}/metrics"), None, None).await.0,
        401
    );
    assert_eq!(
        get(&format!("http://{http}/sd/prometheus"), None, None)
            .await
            .0,
        401
    );
    // A metrics key limited to a tenant would mean nothing: refused.
    let out = cli(vec![
        "keys".into(),
        "create".into(),
        "--role".into(),
        "metrics".into(),
        "--tenant".into(),
        "acme".into(),
        "--endpoints".into(),
        endpoints.clone(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("without --tenant"),
        "{}",
        stderr_of(&out)
    );

    // Probes need no key.
    for n in &cluster.nodes {
        for path in ["/livez", "/readyz", "/health"] {
            let (code, _, body) = get(&format!("http://{}{path}", n.http), None, None).await;
            assert_eq!(code, 200, "node {} {path}: {body}", n.id);
        }
        let ready: Value = serde_json::from_str(
            &get(&format!("http://{}/readyz", n.http), None, None)
                .await
                .2,
        )
        .expect("JSON");
        assert_eq!(ready["status"], "ready", "{ready}");
    }

    // A node that is not a member yet: alive, not ready.
    let mut outsider = TestNode::new(&dir, 9, &[]);
    outsider.launch(false).await;
    let url = format!("http://{}/readyz", outsider.http);
    let body = wait_for("the outsider's /readyz", Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            let (code, _, body) = get_if_up(&url).await?;
            (code == 503).then_some(body)
        }
    })
    .await;
    assert!(body.contains("not a member of a cluster"), "{body}");
    assert_eq!(
        get(&format!("http://{}/livez", outsider.http), None, None)
            .await
            .0,
        200
    );
    outsider.kill9();

    // Quorum lost: the survivor is alive but not ready, and says why; ready again when the
    // others are back.
    let survivor = cluster.nodes[0].http.clone();
    cluster.node_mut(2).kill9();
    cluster.node_mut(3).kill9();
    let url = format!("http://{survivor}/readyz");
    let body = wait_for(
        "/readyz 503 without a quorum",
        Duration::from_secs(15),
        || {
            let url = url.clone();
            async move {
                let (code, _, body) = get(&url, None, None).await;
                (code == 503).then_some(body)
            }
        },
    )
    .await;
    assert!(
        body.contains("no leader known") || body.contains("leader without a quorum"),
        "{body}"
    );
    let (code, _, body) = get(&format!("http://{survivor}/livez"), None, None).await;
    assert_eq!(code, 200, "{body}");
    cluster.node_mut(2).start(false);
    cluster.node_mut(3).start(false);
    wait_for("/readyz 200 again", Duration::from_secs(20), || {
        let url = url.clone();
        async move { (get(&url, None, None).await.0 == 200).then_some(()) }
    })
    .await;
}

/// `get` for a server that may not listen yet: None until it answers.
async fn get_if_up(url: &str) -> Option<(u16, String, String)> {
    let resp = reqwest::Client::new().get(url).send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, String::new(), resp.text().await.ok()?))
}

fn promtool_check_if_installed(text: &str) {
    if installed("promtool") {
        promtool_check(text);
    } else {
        eprintln!("promtool not installed: the metrics text is not checked by it");
    }
}

/// A `prometheus` process on a free port with its data in a temp dir, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl Prometheus {
    async fn start(config_dir: &Path) -> Prometheus {
        let data = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = config_dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                config_dir.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", data.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _data: data,
        };
        let ready = format!("{}/-/ready", p.base);
        wait_for("prometheus to be ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move { (get_if_up(&ready).await?.0 == 200).then_some(()) }
        })
        .await;
        p
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        let v: Value = resp.json().await.expect("prometheus JSON");
        assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
        v["data"].clone()
    }

    /// The opsdeck targets: instance → (health, node id label, role label).
    async fn targets(&self) -> BTreeMap<String, (String, String, String)> {
        let data = self.api("/api/v1/targets", &[("state", "active")]).await;
        let label = |t: &Value, name: &str| t["labels"][name].as_str().unwrap_or("").to_string();
        data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["labels"]["job"] == "opsdeck")
            .map(|t| {
                (
                    label(t, "instance"),
                    (
                        t["health"].as_str().unwrap_or("").to_string(),
                        label(t, "opsdeck_node_id"),
                        label(t, "opsdeck_role"),
                    ),
                )
            })
            .collect()
    }

    /// The instant query's samples: (labels, value).
    async fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await;
        data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- prometheus log (last 40 lines) -----");
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// The documented scrape config, pointed at this cluster: the same text with the example
/// address, key path and intervals replaced.
fn scrape_config(sd_http: &str, key_file: &Path) -> String {
    let doc = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml"))
        .expect("deploy/prometheus/prometheus.yml");
    let mut text = doc.clone();
    for (from, to) in [
        ("10.0.0.1:7201", sd_http.to_string()),
        (
            "/etc/prometheus/opsdeck-metrics.key",
            key_file.display().to_string(),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_string(),
        ),
        ("refresh_interval: 30s", "refresh_interval: 2s".to_string()),
    ] {
        assert!(
            text.contains(from),
            "{from:?} not in the documented config:\n{doc}"
        );
        text = text.replace(from, &to);
    }
    text
}

/// Every `expr` in the dashboard, with the `$job` variable set.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/opsdeck.json"))
        .expect("deploy/grafana/opsdeck.json");
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            out.push((
                format!("{} / {}", panel["title"], t["refId"]),
                expr.replace("$job", "opsdeck"),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_discovers_the_cluster_follows_a_new_node_and_fires_node_down() {
    require!("prometheus");
    require!("promtool");
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(15)).await;
    let endpoints = cluster.endpoints();
    let dir = cluster.dir.path().to_path_buf();
    let key_file = dir.join("opsdeck-metrics.key");
    create_key_file(&endpoints, "metrics", &key_file).await;
    let out = cli(vec![
        "quota".into(),
        "set".into(),
        "load".into(),
        "--max-keys".into(),
        "100000000".into(),
        "--max-bytes".into(),
        "100GiB".into(),
        "--endpoints".into(),
        endpoints.clone(),
    ])
    .await;
    assert!(out.status.success(), "{}", stderr_of(&out));

    // The exported rules, node_down's `for` shortened so the test need not wait a minute.
    const HOLD: Duration = Duration::from_secs(2);
    const SCRAPE: Duration = Duration::from_secs(1);
    let defaults = stdout_of(&run_cli_as(None, &["alerts", "--print-rules"]));
    let node_down = "name = \"node_down\"\nexpr = \"node_up == 0\"\nfor = \"1m\"";
    assert!(defaults.contains(node_down), "{defaults}");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        defaults.replace(node_down, &node_down.replace("\"1m\"", "\"2s\"")),
    )
    .expect("write rules");
    let exported = export(Some(&rules));
    assert!(exported.status.success(), "{}", stderr_of(&exported));
    std::fs::write(dir.join("opsdeck-rules.yml"), &exported.stdout).expect("write rules");
    std::fs::write(
        dir.join("prometheus.yml"),
        scrape_config(&cluster.nodes[0].http, &key_file),
    )
    .expect("write config");
    let (ok, text) = run("promtool", &["check", "config", "prometheus.yml"], &dir);
    assert!(ok, "promtool check config:\n{text}");
    let started = Instant::now();
    let prom = Prometheus::start(&dir).await;

    // 1. The three nodes, found through discovery, all up.
    let want = |nodes: &[TestNode]| -> BTreeMap<String, (String, String, String)> {
        nodes
            .iter()
            .filter(|n| n.running())
            .map(|n| {
                (
                    n.http.clone(),
                    ("up".to_string(), n.id.to_string(), "voter".to_string()),
                )
            })
            .collect()
    };
    let three = want(&cluster.nodes);
    wait_for("3 targets up", Duration::from_secs(30), || async {
        (prom.targets().await == three).then_some(())
    })
    .await;
    eprintln!(
        "3 targets up {:?} after prometheus started",
        started.elapsed()
    );

    // 2. A fourth node, added through the membership API: Prometheus finds it itself.
    let mut fourth = TestNode::new(&dir, 4, &[]);
    fourth.launch(false).await;
    let mut admin = cluster.nodes[0].client();
    admin
        .add_learner(AddLearnerRequest {
            id: 4,
            grpc: fourth.grpc.clone(),
            http: fourth.http.clone(),
            blocking: true,
        })
        .await
        .expect("add learner");
    admin
        .change_membership(ChangeMembershipRequest {
            voters: vec![1, 2, 3, 4],
            retain: false,
            remove: Vec::new(),
        })
        .await
        .expect("promote node 4");
    let added = Instant::now();
    cluster.nodes.push(fourth);
    let four = want(&cluster.nodes);
    wait_for("4 targets up", Duration::from_secs(30), || async {
        (prom.targets().await == four).then_some(())
    })
    .await;
    eprintln!(
        "node 4 scraped as a voter {:?} after it was promoted",
        added.elapsed()
    );

    // 3. Every dashboard query has data while load runs (a backup for its age, a few
    //    refused writes for the errors by kind, a tenant with a quota for quota usage).
    let load = SteadyLoad::start(cluster.nodes.iter().map(|n| n.grpc.clone()).collect(), 8);
    let mut c = cluster.nodes[1].client();
    for _ in 0..5 {
        let e = c
            .put(PutRequest {
                key: String::new(),
                value: b"v".to_vec(),
            })
            .await
            .expect_err("an empty key is invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    let backup = cli(vec![
        "backup".into(),
        "--out".into(),
        dir.join("b.odb").display().to_string(),
        "--endpoints".into(),
        endpoints.clone(),
    ])
    .await;
    assert!(backup.status.success(), "{}", stderr_of(&backup));
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut empty = Vec::new();
        for (name, expr) in &queries {
            let samples = prom.query(expr).await;
            if !samples.iter().any(|(_, v)| v.is_finite()) {
                empty.push(format!("{name}: {expr} -> {samples:?}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard queries without data after 60 s:\n  {}",
            empty.join("\n  ")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{} dashboard queries answered", queries.len());
    let age = prom
        .query("time() - max(opsdeck_last_backup_timestamp_seconds{job=\"opsdeck\"} > 0)")
        .await;
    assert!(age.len() == 1 && age[0].1 < 120.0, "backup age {age:?}");
    let load = load.stop().await;
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    let firing = |alerts: &Value, rule: &str| -> Vec<Value> {
        alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == rule && a["state"] == "firing")
            .cloned()
            .collect()
    };
    let alerts = prom.api("/api/v1/alerts", &[]).await;
    assert!(firing(&alerts, "node_down").is_empty(), "{alerts}");
    assert!(firing(&alerts, "backup_stale").is_empty(), "{alerts}");

    // 4. kill -9 a node (not the one discovery asks): node_down fires for it within its
    //    `for` plus two scrape intervals (and half a second for the polling itself).
    let victim = cluster.node(3).http.clone();
    cluster.node_mut(3).kill9();
    let killed = Instant::now();
    let alert = wait_for(
        "node_down firing for node 3",
        Duration::from_secs(30),
        || async {
            let alerts = prom.api("/api/v1/alerts", &[]).await;
            firing(&alerts, "node_down")
                .into_iter()
                .find(|a| a["labels"]["opsdeck_node_id"] == "3")
        },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("node_down firing {took:?} after the kill (for {HOLD:?}, scrape every {SCRAPE:?})");
    assert!(
        took <= HOLD + 2 * SCRAPE + Duration::from_millis(500),
        "node_down took {took:?}"
    );
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["instance"], victim.as_str(), "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("node 3 ({victim}) does not answer"),
        "{alert}"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("remove-node")),
        "{alert}"
    );
    let alerts = prom.api("/api/v1/alerts", &[]).await;
    assert_eq!(firing(&alerts, "node_down").len(), 1, "{alerts}");
    assert!(firing(&alerts, "quorum_lost").is_empty(), "{alerts}");
    let targets = prom.targets().await;
    assert_eq!(
        targets.get(&victim).map(|t| t.0.as_str()),
        Some("down"),
        "{targets:?}"
    );
}
