//! `opsdeck alerts` against a real 3-node cluster: one node down fires `node_down` for it
//! and not `quorum_lost`; a second one down fires both. Driven through the real binary,
//! reading its JSON lines with deadlines.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::follow::{is, Follow};
use support::*;

const RULES: &str = r#"
# Always true while a node answers: shows the observer has seen every node.
[[rule]]
name = "node_seen"
expr = "node_up == 1"
severity = "info"

[[rule]]
name = "node_down"
expr = "node_up == 0"
for = "2s"
severity = "critical"

[[rule]]
name = "quorum_lost"
expr = "quorum_ok == 0"
for = "1s"
severity = "critical"
"#;

/// The one-shot verb's alerts, watching for `observe`.
fn one_shot(endpoints: &str, rules: &Path, observe: &str) -> Vec<Value> {
    let out = run_cli(&[
        "alerts",
        "--json",
        "--interval",
        "200ms",
        "--observe",
        observe,
        "--endpoints",
        endpoints,
        "--rules",
        rules.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_str(&stdout_of(&out)).expect("JSON output");
    v["alerts"].as_array().expect("alerts array").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_down_is_node_down_two_down_is_also_quorum_lost() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let rules = cluster.dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).expect("write rules");
    let endpoints = cluster.endpoints();
    let mut follow = Follow::start(&endpoints, &rules, &[]);

    let mut seen_up = BTreeSet::new();
    while seen_up.len() < 3 {
        let v = follow.wait("node_seen for every node", Duration::from_secs(20), |v| {
            is(v, "node_seen", None, "firing")
        });
        seen_up.insert(v["node_id"].as_u64().expect("a node id"));
    }
    assert_eq!(seen_up, BTreeSet::from([1, 2, 3]));

    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let (first, second) = (followers[0], followers[1]);

    cluster.node_mut(first).kill9();
    let pending = follow.wait("node_down pending", Duration::from_secs(20), |v| {
        is(v, "node_down", Some(first), "pending")
    });
    let firing = follow.wait("node_down firing", Duration::from_secs(20), |v| {
        is(v, "node_down", Some(first), "firing")
    });
    let held = firing["at_ms"].as_i64().unwrap() - pending["at_ms"].as_i64().unwrap();
    assert!(held >= 2000, "fired after {held} ms, before its 2s `for`");
    assert!(
        firing["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("0 (unreachable")),
        "{firing}"
    );
    // quorum_lost (for 1s) had more than its `for` to fire while node_down waited 2s.
    assert!(
        !follow.seen.iter().any(|v| v["rule"] == "quorum_lost"),
        "quorum_lost changed state with 2 of 3 nodes up:\n{}",
        follow.log()
    );

    // One-shot: a look shorter than `for` reports pending with how long it was seen.
    let alerts = one_shot(&endpoints, &rules, "1s");
    let down: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "node_down").collect();
    assert_eq!(down.len(), 1, "{alerts:?}");
    assert_eq!(
        (&down[0]["state"], &down[0]["node_id"], &down[0]["for_ms"]),
        (
            &Value::from("pending"),
            &Value::from(first),
            &Value::from(2000)
        ),
        "{alerts:?}"
    );
    assert!(
        !alerts.iter().any(|a| a["rule"] == "quorum_lost"),
        "{alerts:?}"
    );
    let alerts = one_shot(&endpoints, &rules, "2500ms");
    assert!(
        alerts
            .iter()
            .any(|a| a["rule"] == "node_down" && a["state"] == "firing" && a["node_id"] == first),
        "{alerts:?}"
    );

    cluster.node_mut(second).kill9();
    let q = follow.wait("quorum_lost firing", Duration::from_secs(20), |v| {
        is(v, "quorum_lost", None, "firing") && v["scope"] == "cluster"
    });
    assert!(
        q["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("0 (1 of 3 voters reachable")),
        "{q}"
    );
    follow.wait(
        "node_down firing for the second node",
        Duration::from_secs(20),
        |v| is(v, "node_down", Some(second), "firing"),
    );
    assert!(
        !follow
            .seen
            .iter()
            .any(|v| v["rule"] == "node_down" && v["node_id"] == leader),
        "the live node was reported down:\n{}",
        follow.log()
    );
}

#[test]
fn a_bad_rules_file_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"disk\"\nexpr = \"disk_used > 80\"\nseverity = \"warning\"\n",
    )
    .unwrap();
    // Nothing listens there: the file must be refused before any contact.
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = run_cli(&[
        "alerts",
        "--rules",
        rules.to_str().unwrap(),
        "--endpoints",
        &nobody,
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let expected = format!(
        "error: {}:3: rule \"disk\": expr \"disk_used > 80\": unknown figure \"disk_used\"",
        rules.display()
    );
    assert!(lines[0].starts_with(&expected), "{err}");
}

#[test]
fn the_built_in_rules_are_printed() {
    let out = run_cli(&["alerts", "--print-rules"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.contains("name = \"quorum_lost\""), "{text}");
}

#[test]
fn check_exits_0_1_or_2_as_a_nagios_check() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    // Nothing listens there: node_up is 0 for it at the first look.
    let nobody = format!("127.0.0.1:{}", free_port());
    let cases = [
        ("node_up == 0", "0s", "critical", 2),
        ("node_up == 0", "0s", "warning", 1),
        ("node_up == 0", "0s", "info", 0),
        // Pending (its `for` not yet held) does not count.
        ("node_up == 0", "1h", "critical", 0),
        ("node_up == 1", "0s", "critical", 0),
    ];
    for (expr, hold, severity, want) in cases {
        std::fs::write(
            &rules,
            format!(
                "[[rule]]\nname = \"probe\"\nexpr = \"{expr}\"\nfor = \"{hold}\"\n\
                 severity = \"{severity}\"\n"
            ),
        )
        .unwrap();
        let out = run_cli(&[
            "alerts",
            "--check",
            "--interval",
            "100ms",
            "--observe",
            "300ms",
            "--endpoints",
            &nobody,
            "--rules",
            rules.to_str().unwrap(),
        ]);
        let text = stdout_of(&out);
        assert_eq!(
            out.status.code(),
            Some(want),
            "{expr} for {hold} ({severity}): {text}{}",
            stderr_of(&out)
        );
        let state = match (expr, hold) {
            ("node_up == 1", _) => None,
            (_, "1h") => Some("PENDING"),
            _ => Some("FIRING"),
        };
        match state {
            Some(s) => assert!(text.starts_with("STATE") && text.contains(s), "{text}"),
            None => assert!(text.starts_with("no alerts"), "{text}"),
        }
    }
}
