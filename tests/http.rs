//! The HTTP surface as curl users and Prometheus see it.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_cluster_kv_and_metrics_endpoints() {
    let cluster = TestCluster::start(3, &[]).await;
    let (leader, term) = cluster.wait_leader(Duration::from_secs(10)).await;
    let http = http_client();
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let base = format!("http://{}", follower.http);

    let get_json = |path: &str| {
        let req = http.get(format!("{base}{path}"));
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap() };

    let health = get_json("/health").await;
    assert_eq!(health["id"], follower.id);
    assert_eq!(health["role"], "follower");
    assert_eq!(health["leader"], leader);
    assert_eq!(health["term"], term);
    let leader_info = get_json("/cluster/leader").await;
    assert_eq!(leader_info["id"], leader);
    assert_eq!(leader_info["http"], cluster.node(leader).http);
    assert_eq!(
        get_json("/cluster/nodes").await["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        get_json("/cluster/info").await["cluster_id"]
            .as_str()
            .unwrap()
            .len(),
        32
    );

    // Writes through a follower are forwarded; reads through it are linearizable.
    let key = format!("{base}/kv/tenant/a");
    assert_eq!(send(http.put(&key).body("1")).await.status(), 200);
    let got = send(http.get(&key)).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), "1");
    assert_eq!(send(http.delete(&key)).await.status(), 200);
    assert_eq!(send(http.get(&key)).await.status(), 404);

    // Metrics of a busy node parse as the Prometheus text format.
    for i in 0..200 {
        http.put(format!("http://{}/kv/t/{i}", cluster.node(leader).http))
            .body("x")
            .send()
            .await
            .unwrap();
    }
    let text = http
        .get(format!("http://{}/metrics", cluster.node(leader).http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "opsdeck_requests_total{op=\"put\"}",
        "opsdeck_request_duration_seconds_bucket",
        "opsdeck_raft_term",
        "opsdeck_raft_committed_index",
        "opsdeck_raft_applied_index",
        "opsdeck_storage_keys 200",
        "opsdeck_raft_log_fsyncs_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    promtool_check(&text);
}
