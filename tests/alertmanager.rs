//! Notifications against a real Alertmanager (Debian `prometheus-alertmanager`): `opsdeck
//! alerts --follow --alertmanager URL` on a real 3-node cluster posts `node_down` when a
//! node is killed and resolves it when the node is back; the console's silence path
//! creates an Alertmanager silence; and receivers that answer 500, hang or are unreachable
//! are reported by name while the follow loop keeps printing changes.
//!
//! Without the alertmanager binary each test prints SKIPPED and returns.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsdeck::alerts::notify::config::alertmanager_flag;
use opsdeck::alerts::notify::{Notifier, Source};
use opsdeck::alerts::{AlertId, Subject};
use serde_json::Value;
use support::follow::{is, Follow};
use support::*;

const RULES: &str = r#"
[[rule]]
name = "node_seen"
expr = "node_up == 1"
severity = "info"

[[rule]]
name = "node_down"
expr = "node_up == 0"
for = "1s"
severity = "critical"
summary = "{subject} is down"
runbook = "restart the node"
"#;

/// The Alertmanager binary: Debian's name, else upstream's.
fn binary() -> Option<&'static str> {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

macro_rules! require_alertmanager {
    () => {
        match binary() {
            Some(b) => b,
            None => {
                eprintln!(
                    "SKIPPED: no prometheus-alertmanager or alertmanager binary \
                     (apt-get install prometheus-alertmanager)"
                );
                return;
            }
        }
    };
}

/// A real alertmanager on a free port, gossip off, its data in a temp dir; killed on drop.
struct Alertmanager {
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start(bin: &str) -> Alertmanager {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .expect("write config");
        let port = free_port();
        let log = dir.path().join("alertmanager.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn alertmanager");
        let am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", am.base);
        wait_for("alertmanager to be ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move {
                let r = reqwest::get(&ready).await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        am
    }

    async fn get(&self, path: &str) -> Vec<Value> {
        let url = format!("{}{path}", self.base);
        let r = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        let v: Value = r.json().await.expect("alertmanager JSON");
        v.as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{path}: {v}"))
    }

    /// The `node_down` alerts Alertmanager lists for node `id`.
    async fn node_down(&self, id: u64) -> Vec<Value> {
        self.get("/api/v2/alerts?filter=alertname%3D%22node_down%22")
            .await
            .into_iter()
            .filter(|a| {
                a["labels"]["node"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    == Some(id)
            })
            .collect()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- alertmanager log -----\n{}", self.log_text());
        }
    }
}

fn unix_ms_of(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    let t = humantime::parse_rfc3339_weak(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn write_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, RULES).expect("write rules");
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_down_reaches_alertmanager_and_resolves_when_the_node_is_back() {
    let bin = require_alertmanager!();
    let am = Alertmanager::start(bin).await;
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let rules = write_rules(cluster.dir.path());
    let mut follow = Follow::start(&cluster.endpoints(), &rules, &["--alertmanager", &am.base]);
    for _ in 0..3 {
        follow.wait("node_seen", Duration::from_secs(20), |v| {
            is(v, "node_seen", None, "firing")
        });
    }
    // The info alerts are in Alertmanager too, with the cluster's id as a label.
    let seen = wait_for(
        "node_seen in alertmanager",
        Duration::from_secs(20),
        || async {
            let a = am
                .get("/api/v2/alerts?filter=alertname%3D%22node_seen%22")
                .await;
            (a.len() == 3).then_some(a)
        },
    )
    .await;
    let cluster_id = cluster
        .node(leader)
        .status()
        .await
        .expect("status")
        .cluster_id;
    assert!(
        seen.iter()
            .all(|a| a["labels"]["cluster"] == cluster_id.as_str()),
        "{seen:?}"
    );

    let down = cluster.a_follower(leader);
    cluster.node_mut(down).kill9();
    let killed_ms = now_ms();
    follow.wait("node_down firing", Duration::from_secs(20), |v| {
        is(v, "node_down", Some(down), "firing")
    });
    let alert = wait_for(
        "node_down in alertmanager",
        Duration::from_secs(20),
        || async { am.node_down(down).await.into_iter().next() },
    )
    .await;
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(alert["labels"]["source"], "opsdeck", "{alert}");
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("node {down} is down"),
        "{alert}"
    );
    assert_eq!(
        alert["annotations"]["runbook"], "restart the node",
        "{alert}"
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("opsdeck://") && u.ends_with("?alert=node_down")),
        "{alert}"
    );
    let starts = unix_ms_of(&alert["startsAt"]);
    let ends = unix_ms_of(&alert["endsAt"]);
    // Fired after the kill plus the 1s `for` (startsAt is whole seconds).
    assert!(starts >= killed_ms / 1000 * 1000, "{alert}");
    // A firing alert is valid for 4 re-sends (2 minutes) from when it was sent.
    assert!(ends - now_ms() > 60_000, "{alert}");
    assert!(
        !follow.said.iter().any(|l| l.starts_with("receiver ")),
        "a delivery failed:\n{}",
        follow.log()
    );

    cluster.node_mut(down).start(false);
    follow.wait("node_down resolved", Duration::from_secs(30), |v| {
        is(v, "node_down", Some(down), "resolved")
    });
    // Alertmanager's /api/v2/alerts lists only alerts whose endsAt is still ahead; the
    // resolve set it to when the node came back, long before the firing alert's endsAt.
    wait_for(
        "node_down to leave alertmanager",
        Duration::from_secs(20),
        || async { am.node_down(down).await.is_empty().then_some(()) },
    )
    .await;
    assert!(
        now_ms() < ends,
        "gone only when the firing alert expired, not by the resolve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_becomes_an_alertmanager_silence() {
    let bin = require_alertmanager!();
    let am = Alertmanager::start(bin).await;
    let receiver = alertmanager_flag(&am.base).expect("receiver");
    let notifier = Notifier::start(vec![receiver], Source::default()).expect("notifier");
    let id = AlertId {
        rule: "node_down".into(),
        subject: Subject::Node(2),
    };
    let now = now_ms();
    // What the console's ack calls (`App::ack` → `silence_upstream`).
    let asked = notifier.silence(
        &id,
        now,
        now + 3_600_000,
        "acknowledged in the opsdeck console",
    );
    assert_eq!(asked, 1);
    let outcome = wait_for("the silence delivered", Duration::from_secs(20), || async {
        notifier.deliveries()[0].last.clone()
    })
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert!(
        outcome.text.starts_with("silenced node_down (node 2) (id "),
        "{outcome:?}"
    );
    let silences = am.get("/api/v2/silences").await;
    let s = silences
        .iter()
        .find(|s| s["comment"] == "acknowledged in the opsdeck console")
        .unwrap_or_else(|| panic!("no such silence: {silences:?}"));
    assert_eq!(s["status"]["state"], "active", "{s}");
    assert!(
        outcome.text.contains(s["id"].as_str().expect("an id")),
        "{s}"
    );
    assert!(
        s["createdBy"]
            .as_str()
            .is_some_and(|c| c.contains("opsdeck console")),
        "{s}"
    );
    let mut matchers: Vec<(String, String, bool)> = s["matchers"]
        .as_array()
        .expect("matchers")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["value"].as_str().unwrap_or("").to_string(),
                m["isRegex"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        [
            ("alertname".to_string(), "node_down".to_string(), false),
            ("node".to_string(), "2".to_string(), false)
        ]
    );
    let ends = unix_ms_of(&s["endsAt"]);
    assert!((ends - (now + 3_600_000)).abs() < 1000, "{s}");
}

/// A server that answers every request `500 boom`, or (`hang`) reads it and never answers.
fn bad_server(hang: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            // Read the whole request (until the client pauses), so closing after the
            // answer does not reset the connection under an unread body.
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            if hang {
                held.push(conn);
            } else {
                let _ = conn.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\n\
                      connection: close\r\n\r\nboom\n",
                );
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_receivers_are_named_and_the_follow_loop_keeps_going() {
    let mut cluster = TestCluster::start(1, &[]).await;
    let rules = write_rules(cluster.dir.path());
    let failing = format!("http://127.0.0.1:{}/hook", bad_server(false));
    let hanging = format!("http://127.0.0.1:{}/hook", bad_server(true));
    // Reserved by this process and never bound: connections are refused.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut follow = Follow::start(
        &cluster.endpoints(),
        &rules,
        &[
            "--webhook",
            &failing,
            "--webhook",
            &hanging,
            "--alertmanager",
            &nobody,
        ],
    );
    follow.wait("node_seen", Duration::from_secs(20), |v| {
        is(v, "node_seen", Some(1), "firing")
    });
    let host = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches("/hook")
            .to_string()
    };
    let line = follow.wait_said("the 500", Duration::from_secs(30), |l| {
        l.starts_with(&format!("receiver webhook@{}:", host(&failing)))
    });
    assert_eq!(
        line,
        format!(
            "receiver webhook@{h}: HTTP 500 Internal Server Error: boom (4 tries)",
            h = host(&failing)
        )
    );
    let line = follow.wait_said("the refusal", Duration::from_secs(30), |l| {
        l.starts_with(&format!("receiver alertmanager@{}:", host(&nobody)))
    });
    assert_eq!(
        line,
        format!(
            "receiver alertmanager@{}: connect: connection refused (4 tries)",
            host(&nobody)
        )
    );
    // Meanwhile, with the hanging receiver still being retried, changes keep coming.
    cluster.node_mut(1).kill9();
    let killed = Instant::now();
    follow.wait("node_down firing", Duration::from_secs(20), |v| {
        is(v, "node_down", Some(1), "firing")
    });
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "node_down took {:?} with failing receivers",
        killed.elapsed()
    );
    // 4 tries of 5s each, 250ms + 500ms + 1s apart.
    let line = follow.wait_said("the hang", Duration::from_secs(60), |l| {
        l.starts_with(&format!("receiver webhook@{}:", host(&hanging)))
    });
    assert_eq!(
        line,
        format!(
            "receiver webhook@{h}: no answer within 5s (4 tries)",
            h = host(&hanging)
        )
    );
    assert!(started.elapsed() >= Duration::from_secs(20), "{line}");
}
