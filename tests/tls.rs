//! A cluster with TLS on: nodes talk to each other, the CLI and curl users over TLS only.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_serves_tls_clients_and_refuses_plaintext() {
    let certs = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert_path, key_path) = (certs.path().join("node.pem"), certs.path().join("node.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    // The self-signed certificate is its own CA. This test process talks TLS too.
    opsdeck_node::transport::tls::use_client_tls(&cert_path).unwrap();

    // Forming the cluster (joins, replication) proves node-to-node TLS.
    let cluster = TestCluster::start(
        3,
        &[
            "--tls-cert",
            cert_arg,
            "--tls-key",
            key_arg,
            "--tls-ca",
            cert_arg,
        ],
    )
    .await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints = cluster.endpoints();

    let (e, ca) = (endpoints.clone(), cert_arg.to_string());
    let out = tokio::task::spawn_blocking(move || {
        let put = run_cli(&["put", "tls/k", "v", "--endpoints", &e, "--tls-ca", &ca]);
        assert!(put.status.success(), "{}", stderr_of(&put));
        let get = run_cli(&["get", "tls/k", "--endpoints", &e, "--tls-ca", &ca]);
        assert_eq!(stdout_of(&get).trim(), "v", "{}", stderr_of(&get));
        run_cli(&["get", "tls/k", "--endpoints", &e, "--timeout", "1s"])
    })
    .await
    .unwrap();
    assert!(
        !out.status.success(),
        "a plaintext client must not get an answer"
    );

    let ca = reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let http_addr = &cluster.nodes[1].http;
    let resp = https
        .get(format!("https://{http_addr}/kv/tls/k"))
        .bearer_auth(admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "v");
    let plain = reqwest::Client::new()
        .get(format!("http://{http_addr}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served"
    );
}
