//! The HTTP surface as curl users and Prometheus see it.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_cluster_kv_and_metrics_endpoints() {
    let cluster = TestCluster::start(3, &[]).await;
    let (leader, term) = cluster.wait_leader(Duration::from_secs(10)).await;
    let http = http_client();
    let follower = cluster.node(cluster.a_follower(leader));
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

    // Until it applies the entry that made it a voter, a node just started calls itself a
    // learner.
    let health = wait_for(
        "the follower to say it follows",
        Duration::from_secs(10),
        async || {
            let h = get_json("/health").await;
            (h["role"] == "follower").then_some(h)
        },
    )
    .await;
    assert_eq!(health["id"], follower.id);
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

/// Sends `head` (and `body`) on a raw connection and reads the answer for at most `within`:
/// (status code, JSON body). Raw, so a test can claim a length it never sends.
async fn raw_request(
    addr: &str,
    head: &str,
    body: &[u8],
    within: Duration,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        // The node may answer and close before taking all of it: that is the point.
        let _ = conn.write_all(body).await;
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = tokio::time::timeout(within, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?} to {head:?}"));
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_else(|| panic!("no JSON body: {answer:?}"));
    (code, json)
}

/// Every oversize body gets one JSON 413 at once, naming the limit and the size claimed,
/// without its body being read: 2-64 MiB used to get a plain-text 413 naming nothing, and
/// `Content-Length: 10^18` was held open with no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_gets_one_json_413_at_once() {
    let cluster = TestCluster::start(1, &[]).await;
    let addr = cluster.node(1).http.clone();
    let key = admin_key();
    for claimed in [
        1024 * 1024 + 1,
        2 * 1024 * 1024,
        64 * 1024 * 1024,
        1_000_000_000_000_000_000u64,
    ] {
        let head = format!(
            "PUT /kv/t/big HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Length: {claimed}\r\n\r\n"
        );
        let (code, body) = raw_request(&addr, &head, b"xx", Duration::from_secs(3)).await;
        assert_eq!(code, 413, "{claimed}: {body}");
        assert_eq!(body["limit_bytes"], 1024 * 1024, "{body}");
        assert_eq!(body["claimed_bytes"], claimed, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "value is {claimed} bytes, over the limit of 1048576 bytes"
            )),
            "{error}"
        );
    }
    // Even without a key: the size is refused before anything else is looked at.
    let head =
        format!("PUT /kv/t/big HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 99999999\r\n\r\n");
    let (code, _) = raw_request(&addr, &head, b"", Duration::from_secs(3)).await;
    assert_eq!(code, 413);

    // A chunked body is refused once it passes the limit, with the same JSON shape.
    let head = format!(
        "PUT /kv/t/big HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = vec![b'x'; 64 * 1024];
    let mut body = Vec::new();
    for _ in 0..17 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    let (code, json) = raw_request(&addr, &head, &body, Duration::from_secs(5)).await;
    assert_eq!(code, 413, "{json}");
    assert_eq!(json["limit_bytes"], 1024 * 1024);
    assert!(json["claimed_bytes"].is_null(), "{json}");

    // An ordinary client that sends the whole oversize body reads the answer too: the node
    // drains what it still sends after answering (a lingering close) instead of resetting
    // the connection under it.
    for size in [1024 * 1024 + 1, 2 * 1024 * 1024, 16 * 1024 * 1024] {
        let resp = http_client()
            .put(format!("http://{addr}/kv/t/big"))
            .body(vec![b'x'; size])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{size} bytes: no answer read: {e:?}"));
        assert_eq!(resp.status(), 413, "{size}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["claimed_bytes"], size, "{body}");
    }

    // A value at the limit is still written.
    let resp = http_client()
        .put(format!("http://{addr}/kv/t/max"))
        .body(vec![b'y'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(cluster.scan_local(1, "t/").await.len(), 1);
}
