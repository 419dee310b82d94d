//! `opsdeck incident report` after a scripted incident on a real 3-node cluster: the
//! leader killed with SIGKILL, the `node_down` alert acknowledged through the CLI (into
//! the audit trail), leadership transferred, the killed node started again. The report
//! lists those steps in that order, each within a couple of seconds of when the test did
//! it, names the acting key id, and a second, separate report (another console, another
//! process) has the ack too.

mod support;

use std::time::Duration;

use support::*;

/// How far a step's time in the report may be from the test's clock at that step. Times
/// are written to the second; the step itself (an election, a transfer) takes part of it.
const SLACK_MS: i64 = 2_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `2026-12-02T20:01:02Z` → unix ms.
fn parse_utc(text: &str) -> i64 {
    let t = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("time {text:?}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// The timeline rows: (time, source, kind, what, who), in the report's order.
fn timeline_rows(md: &str) -> Vec<(i64, String, String, String, String)> {
    let section = md
        .split("## Timeline")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Timeline section");
    section
        .lines()
        .filter(|l| l.starts_with("| 20"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 5, "row {l:?}");
            (
                parse_utc(&cells[0]),
                cells[1].clone(),
                cells[2].clone(),
                cells[3].clone(),
                cells[4].clone(),
            )
        })
        .collect()
}

/// The first row after position `after` that `pick` accepts, and its position.
fn find(
    rows: &[(i64, String, String, String, String)],
    after: usize,
    what: &str,
    pick: impl Fn(&(i64, String, String, String, String)) -> bool,
) -> (usize, i64) {
    rows.iter()
        .enumerate()
        .skip(after)
        .find(|(_, r)| pick(r))
        .map(|(i, r)| (i, r.0))
        .unwrap_or_else(|| panic!("no row for {what} after row {after} in {rows:#?}"))
}

/// Waits until `gap` has passed since `prev` (the test's clock), so that steps lie far
/// enough apart that a time reported wrong by more than [`SLACK_MS`] would show.
async fn apart(prev: i64) {
    let gap = 3_000;
    wait_for("the steps to lie apart", Duration::from_secs(5), || async {
        (now_ms() >= prev + gap).then_some(())
    })
    .await;
}

fn near(what: &str, reported: i64, did: i64) {
    // The report's times are cut to the second.
    let d = reported - (did - did.rem_euclid(1000));
    assert!(
        d.abs() <= SLACK_MS,
        "{what}: reported at {reported}, done at {did} ({d} ms apart)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_after_a_scripted_incident_lists_its_steps_in_order() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(20)).await;
    let endpoints = cluster.endpoints();
    let out = cli_as(None, &["keys", "list", "--json", "--endpoints", &endpoints]).await;
    assert!(out.status.success(), "keys list: {}", stderr_of(&out));
    let keys: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    let key_id = keys["keys"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|k| k["id"].as_str())
        .unwrap_or_else(|| panic!("a key id in {keys}"))
        .to_string();

    // 1. Kill the leader.
    let killed_at = now_ms();
    cluster.node_mut(leader).kill9();
    let (second, _) = cluster
        .wait_leader_among(|id| id != leader, Duration::from_secs(20))
        .await;

    apart(killed_at).await;

    // 2. Acknowledge its alert, as an on-call engineer would from another terminal.
    let acked_at = now_ms();
    let node = leader.to_string();
    let out = cli_as(
        None,
        &[
            "incident",
            "ack",
            "node_down",
            "--node",
            &node,
            "--note",
            "leader killed, restarting it",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "incident ack: {}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("acknowledged node_down (node {leader})")),
        "{}",
        stdout_of(&out)
    );

    apart(acked_at).await;

    // 3. Hand leadership to the other survivor.
    let third = (1..=3)
        .find(|id| *id != leader && *id != second)
        .expect("id");
    let transferred_at = now_ms();
    let to = third.to_string();
    let out = cli_as(
        None,
        &["transfer-leader", "--to", &to, "--endpoints", &endpoints],
    )
    .await;
    assert!(out.status.success(), "transfer-leader: {}", stderr_of(&out));
    cluster
        .wait_leader_among(|id| id != leader, Duration::from_secs(20))
        .await;

    apart(transferred_at).await;

    // 4. Start the killed node again, and wait until it follows the new leader.
    let restarted_at = now_ms();
    cluster.node_mut(leader).start(false);
    let back = cluster.node(leader);
    wait_for(
        "the killed node to rejoin",
        Duration::from_secs(30),
        || async { (back.status().await?.leader_id == Some(third)).then_some(()) },
    )
    .await;

    // The report, written to a file.
    let file = cluster.dir.path().join("incident.md");
    let path = file.to_str().expect("utf-8 path");
    let out = cli_as(
        None,
        &[
            "incident",
            "report",
            "--since",
            "10m",
            "--out",
            path,
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "incident report: {}", stderr_of(&out));
    assert!(!file.with_extension("md.partial").exists());
    let md = std::fs::read_to_string(&file).expect("the report file");
    eprintln!("{md}");
    let rows = timeline_rows(&md);

    let (kill_row, kill_t) = find(&rows, 0, "the leader's loss", |r| {
        r.2 == "leader_change" && r.3.starts_with(&format!("leader node {leader} ->"))
    });
    near("the leader's loss", kill_t, killed_at);
    let (ack_row, ack_t) = find(&rows, kill_row, "the ack", |r| {
        r.2 == "alert.ack" && r.3.contains(&format!("node_down (node {leader})"))
    });
    near("the ack", ack_t, acked_at);
    assert_eq!(rows[ack_row].1, "audit");
    assert_eq!(rows[ack_row].4, key_id, "the ack names the acting key");
    let (transfer_row, transfer_t) = find(&rows, ack_row, "the transfer", |r| {
        r.2 == "member.transfer_leader"
    });
    near("the transfer", transfer_t, transferred_at);
    assert_eq!(rows[transfer_row].4, key_id);
    // The transfer's audit record is written once it is done, so the leader change it
    // caused may come just before it.
    let (new_leader_row, new_leader_t) = find(&rows, ack_row, "the new leader", |r| {
        r.2 == "leader_change" && r.3.ends_with(&format!("-> node {third}"))
    });
    near("the transfer's leader change", new_leader_t, transferred_at);
    let (start_row, start_t) = find(
        &rows,
        transfer_row.max(new_leader_row),
        "the restart",
        |r| r.2 == "node_started" && r.1 == format!("n{leader}"),
    );
    near("the restart", start_t, restarted_at);
    assert!(kill_row < ack_row && ack_row < transfer_row && transfer_row < start_row);

    // The summary counts from the first sign of trouble to the ack.
    assert!(md.contains("- **Leader first lost:** "), "summary: {md}");
    assert!(
        md.contains(&format!("`alert.ack` by {key_id}")),
        "time to first action names the ack: {md}"
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("- **Actions by whom:** ") && l.contains(&key_id)),
        "{md}"
    );
    // From the leader's loss (moments after the kill) to the ack 3 s after the kill.
    let first_action = md
        .split("- **Time to first action:** ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no time to first action in {md}"));
    let first_action = humantime::parse_duration(first_action)
        .unwrap_or_else(|e| panic!("time to first action {first_action:?}: {e}"));
    assert!(
        first_action >= Duration::from_millis(1_500) && first_action <= Duration::from_secs(4),
        "time to first action {first_action:?}"
    );
    assert!(md.contains("- **Resolved:** "), "{md}");
    assert!(md.contains("### Membership"), "{md}");

    // Another console (a separate process, printing to stdout) sees the ack too, with its
    // note, because it lives in the cluster's audit trail.
    let out = cli_as(
        None,
        &[
            "incident",
            "report",
            "--since",
            "10m",
            "--endpoints",
            &cluster.node(third).grpc,
        ],
    )
    .await;
    assert!(out.status.success(), "second report: {}", stderr_of(&out));
    let other = stdout_of(&out);
    let again = timeline_rows(&other);
    let (i, t) = find(&again, 0, "the ack in the second report", |r| {
        r.2 == "alert.ack" && r.3.contains("leader killed, restarting it")
    });
    assert_eq!((again[i].4.as_str(), t), (key_id.as_str(), ack_t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_alert_notes_are_refused_with_the_reason() {
    let cluster = TestCluster::start(1, &[]).await;
    cluster.wait_leader(Duration::from_secs(20)).await;
    let endpoints = cluster.endpoints();
    let out = cli_as(
        None,
        &["incident", "ack", "Node-Down!", "--endpoints", &endpoints],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("bad rule name"),
        "{}",
        stderr_of(&out)
    );
    let out = cli_as(
        None,
        &[
            "incident",
            "silence",
            "disk_usage_high",
            "--node",
            "1",
            "--for",
            "30d",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("at most 7d"),
        "{}",
        stderr_of(&out)
    );
    // A note over one line is refused by the node itself.
    let out = cli_as(
        None,
        &[
            "incident",
            "ack",
            "node_down",
            "--note",
            "two\nlines",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("one line"), "{}", stderr_of(&out));
    // A read key may not write to the audit trail.
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
    let reader = created["secret"].as_str().expect("secret").to_string();
    let out = cli_as(
        Some(&reader),
        &["incident", "ack", "node_down", "--endpoints", &endpoints],
    )
    .await;
    assert!(!out.status.success(), "a read key acked");
    // The silence that is allowed is recorded, and its lifting.
    for for_ in ["1h", "0"] {
        let out = cli_as(
            None,
            &[
                "incident",
                "silence",
                "disk_usage_high",
                "--node",
                "1",
                "--for",
                for_,
                "--endpoints",
                &endpoints,
            ],
        )
        .await;
        assert!(out.status.success(), "silence: {}", stderr_of(&out));
    }
    let out = cli_as(
        None,
        &[
            "incident",
            "report",
            "--since",
            "5m",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "report: {}", stderr_of(&out));
    let md = stdout_of(&out);
    let kinds: Vec<String> = timeline_rows(&md)
        .into_iter()
        .filter(|r| r.1 == "audit" && r.2.starts_with("alert."))
        .map(|r| r.2)
        .collect();
    // The refused notes left nothing.
    assert_eq!(kinds, ["alert.silence", "alert.unsilence"], "{md}");
}
