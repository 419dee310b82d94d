//! Maintenance mode (`opsdeck writes pause|resume`) against real node processes: a pause
//! made with the real binary is refused on every node (followers included) with its
//! message and exit status 9, reads go on, `status` and /metrics show it, a restarted node
//! keeps it, a resume ends it, a timed pause ends by itself, and only admins may pause.

mod support;

use std::process::Output;
use std::time::Duration;

use opsdeck_node::pb::*;
use support::*;

/// Exit status of a write refused because writes are paused (`client::failure`).
const EXIT_WRITES_PAUSED: i32 = 9;

/// `opsdeck put KEY VALUE` through the node at `endpoint` only.
async fn put_via(endpoint: &str, key: &str) -> Output {
    cli_as(None, &["put", key, "v", "--endpoints", endpoint]).await
}

async fn paused_everywhere(cluster: &TestCluster, want: bool) -> bool {
    for n in cluster.nodes.iter().filter(|n| n.running()) {
        match n.status().await {
            Some(s) if s.writes_paused.is_some() == want => {}
            _ => return false,
        }
    }
    true
}

/// Every node refuses a write through its own endpoint, with the pause's message and exit
/// status 9 (and the gRPC answer carries the `writes_paused` kind).
async fn assert_refused_everywhere(cluster: &TestCluster, by: &str, reason: &str) {
    for n in &cluster.nodes {
        let out = put_via(&n.grpc, &format!("t/refused-{}", n.id)).await;
        let err = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(EXIT_WRITES_PAUSED),
            "node {}: {err}",
            n.id
        );
        assert!(
            err.contains(&format!("writes paused by {by} since ")) && err.contains(reason),
            "node {}: {err}",
            n.id
        );
        let refused = n
            .client()
            .delete(DeleteRequest {
                key: "t/before".into(),
            })
            .await
            .expect_err("a delete while paused");
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        assert_eq!(
            refused
                .metadata()
                .get(opsdeck_node::api::status::KIND_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("writes_paused"),
            "node {}",
            n.id
        );
        // curl users get 423 Locked with the same message; reads go on.
        let http = http_client();
        let url = format!("http://{}/kv/t/refused-http-{}", n.http, n.id);
        let answer = http.put(&url).body("x").send().await.expect("HTTP put");
        assert_eq!(answer.status(), 423, "node {}", n.id);
        let body = answer.text().await.unwrap_or_default();
        assert!(
            body.contains(&format!("writes paused by {by} since ")) && body.contains(reason),
            "node {}: {body}",
            n.id
        );
        let read = http
            .get(format!("http://{}/kv/t/before", n.http))
            .send()
            .await
            .expect("HTTP get");
        assert_eq!(read.status(), 200, "node {}", n.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_is_refused_on_every_node_survives_a_restart_and_resumes() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let endpoints = cluster.endpoints();
    let leader = cluster.wait_leader(Duration::from_secs(15)).await.0;
    let out = put_via(&cluster.node(leader).grpc, "t/before").await;
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A write key may not pause.
    let made = cli_as(
        None,
        &[
            "keys",
            "create",
            "--role",
            "write",
            "--json",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(made.status.success(), "{}", stderr_of(&made));
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("key JSON");
    let writer = made["secret"].as_str().expect("secret").to_string();
    let out = cli_as(
        Some(&writer),
        &[
            "writes",
            "pause",
            "--reason",
            "nope",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
    assert!(paused_everywhere(&cluster, false).await);

    // An empty reason is refused before anything is sent.
    let out = cli_as(
        None,
        &[
            "writes",
            "pause",
            "--reason",
            " ",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("needs a reason"),
        "{}",
        stderr_of(&out)
    );

    let reason = "disk swap on node 2";
    let out = cli_as(
        None,
        &[
            "writes",
            "pause",
            "--reason",
            reason,
            "-o",
            "json",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let pause: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pause JSON");
    assert_eq!(pause["paused"], true);
    assert_eq!(pause["reason"], reason);
    assert!(pause["until"].is_null(), "{pause}");
    let by = pause["by"].as_str().expect("by").to_string();
    wait_for(
        "every node to hold the pause",
        Duration::from_secs(10),
        || async { paused_everywhere(&cluster, true).await.then_some(()) },
    )
    .await;

    assert_refused_everywhere(&cluster, &by, reason).await;
    // Reads go on, on every node.
    for n in &cluster.nodes {
        let out = cli_as(None, &["get", "t/before", "--endpoints", &n.grpc]).await;
        assert!(out.status.success(), "node {}: {}", n.id, stderr_of(&out));
        assert_eq!(stdout_of(&out).trim(), "v");
    }
    let status = cli_as(None, &["status", "--endpoints", &endpoints]).await;
    assert!(status.status.success(), "{}", stderr_of(&status));
    let text = stdout_of(&status);
    assert!(
        text.contains(&format!("WRITES PAUSED: writes paused by {by} since "))
            && text.contains(reason),
        "{text}"
    );
    let metrics = http_client()
        .get(format!("http://{}/metrics", cluster.node(leader).http))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("\nopsdeck_writes_paused 1\n"), "{metrics}");
    let audit = cli_as(None, &["audit", "--json", "--endpoints", &endpoints]).await;
    assert!(
        stdout_of(&audit).contains("writes.pause"),
        "{}",
        stdout_of(&audit)
    );

    // The pause is in the replicated state: a node killed and restarted from its disk keeps
    // refusing, and so does the cluster under a new leader.
    cluster.node_mut(leader).kill9();
    cluster.node_mut(leader).start(false);
    let restarted = cluster.node(leader);
    wait_for(
        "the restarted node to hold the pause",
        Duration::from_secs(20),
        || async { restarted.status().await?.writes_paused.map(|_| ()) },
    )
    .await;
    cluster.wait_leader(Duration::from_secs(20)).await;
    assert_refused_everywhere(&cluster, &by, reason).await;

    let out = cli_as(None, &["writes", "resume", "--endpoints", &endpoints]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("writes resumed"),
        "{}",
        stdout_of(&out)
    );
    for n in &cluster.nodes {
        let out = put_via(&n.grpc, &format!("t/after-{}", n.id)).await;
        assert!(out.status.success(), "node {}: {}", n.id, stderr_of(&out));
    }
    wait_for(
        "every node to show writes resumed",
        Duration::from_secs(10),
        || async { paused_everywhere(&cluster, false).await.then_some(()) },
    )
    .await;
    // A second resume says there is nothing to resume.
    let out = cli_as(None, &["writes", "resume", "--endpoints", &endpoints]).await;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("writes are not paused"),
        "{}",
        stderr_of(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_pause_resumes_by_itself() {
    let cluster = TestCluster::start(3, &[]).await;
    let endpoints = cluster.endpoints();
    cluster.wait_leader(Duration::from_secs(15)).await;
    let out = cli_as(
        None,
        &[
            "writes",
            "pause",
            "--reason",
            "short",
            "--for",
            "2s",
            "--json",
            "--endpoints",
            &endpoints,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let pause: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pause JSON");
    assert!(pause["until"].is_string(), "{pause}");
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != cluster.nodes[0].id)
        .expect("a second node");
    let out = put_via(&follower.grpc, "t/early").await;
    assert_eq!(
        out.status.code(),
        Some(EXIT_WRITES_PAUSED),
        "{}",
        stderr_of(&out)
    );
    // No operator action: the leader ends the pause when its time is up.
    wait_for(
        "every node to show writes resumed",
        Duration::from_secs(15),
        || async { paused_everywhere(&cluster, false).await.then_some(()) },
    )
    .await;
    for n in &cluster.nodes {
        let out = put_via(&n.grpc, &format!("t/late-{}", n.id)).await;
        assert!(out.status.success(), "node {}: {}", n.id, stderr_of(&out));
    }
    let audit = cli_as(None, &["audit", "--json", "--endpoints", &endpoints]).await;
    let text = stdout_of(&audit);
    assert!(
        text.contains("auto-resume") && text.contains("writes.resume"),
        "{text}"
    );
}
