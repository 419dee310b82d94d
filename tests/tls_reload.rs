//! SIGHUP reloads a node's TLS certificate from its files (as after `certbot renew`) while
//! the node stays in the cluster and writes go on; a broken certificate leaves the old one
//! serving. Its own test binary: the TLS client setting is process-wide.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio_rustls::rustls;

/// A CA, and certificates for 127.0.0.1 signed by it.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        Pki {
            ca: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// A new key and certificate for the nodes, written to `cert` and `key` (each by a
    /// rename, as certbot does); returns the certificate's DER.
    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let pair = rcgen::KeyPair::generate().unwrap();
        let issued = params.signed_by(&pair, &self.ca).unwrap();
        write_atomically(key, &pair.serialize_pem());
        write_atomically(cert, &issued.pem());
        issued.der().to_vec()
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The leaf certificate `addr` presents in a new TLS handshake offering `alpn`; None if
/// the handshake fails.
async fn presented(addr: &str, ca_pem: &str, alpn: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).ok()?)
        .ok()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let tls = tokio::time::timeout(Duration::from_secs(3), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    let (_, session) = tls.get_ref();
    Some(session.peer_certificates()?.first()?.as_ref().to_vec())
}

/// Sends `signal` to node `node`'s process.
fn signal(node: &TestNode, signal: i32) {
    let pid = node.pid().expect("node running");
    // SAFETY: kill(2) on a child process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_while_the_node_stays_in_the_cluster_and_writes_go_on() {
    let pki = Pki::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        files.path().join("node.pem"),
        files.path().join("node.key"),
        files.path().join("ca.pem"),
    );
    let ca_pem = pki.ca.pem();
    std::fs::write(&ca, &ca_pem).unwrap();
    let first = pki.issue(&cert, &key);
    // TLS from node.toml alone: the harness passes only id, ports and data dir.
    let config = files.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "# as deploy/node.toml\ntls_cert = {:?}\ntls_key = {:?}\ntls_ca = {:?}\nrate_limit = \"off\"\n",
            cert.display().to_string(),
            key.display().to_string(),
            ca.display().to_string()
        ),
    )
    .unwrap();
    opsdeck_node::transport::tls::use_client_tls(&ca).unwrap();
    let cluster = TestCluster::start(3, &["--config", config.to_str().unwrap()]).await;
    cluster.wait_leader(Duration::from_secs(15)).await;
    let node = cluster.node(2);
    assert_eq!(
        presented(&node.grpc, &ca_pem, b"h2").await.as_deref(),
        Some(first.as_slice())
    );

    let load = SteadyLoad::start(cluster.nodes.iter().map(|n| n.grpc.clone()).collect(), 4);
    wait_for("writes under way", Duration::from_secs(10), || async {
        (load.acked_keys().len() >= 20).then_some(())
    })
    .await;
    let pid = node.pid();

    // Renewed on disk, then one signal: new handshakes on both ports get the new one.
    let renewed = pki.issue(&cert, &key);
    signal(node, libc::SIGHUP);
    let took = Instant::now();
    for (addr, alpn) in [(&node.grpc, &b"h2"[..]), (&node.http, &b"http/1.1"[..])] {
        wait_for(
            "the renewed certificate",
            Duration::from_secs(10),
            || async {
                (presented(addr, &ca_pem, alpn).await.as_deref() == Some(renewed.as_slice()))
                    .then_some(())
            },
        )
        .await;
    }
    println!(
        "renewed certificate served {:?} after SIGHUP",
        took.elapsed()
    );
    // Only the signalled node took it.
    assert_eq!(
        presented(&cluster.node(3).grpc, &ca_pem, b"h2")
            .await
            .as_deref(),
        Some(first.as_slice())
    );

    // A broken certificate on the next SIGHUP: the node keeps the one it has, and says so.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    signal(node, libc::SIGHUP);
    wait_for(
        "the reload failure in the log",
        Duration::from_secs(10),
        || async {
            node.log_text()
                .contains("failed to load; still serving the old one")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        presented(&node.grpc, &ca_pem, b"h2").await.as_deref(),
        Some(renewed.as_slice())
    );

    let before = load.acked_keys().len();
    wait_for(
        "writes after the reloads",
        Duration::from_secs(10),
        || async { (load.acked_keys().len() >= before + 20).then_some(()) },
    )
    .await;
    let done = load.stop().await;
    assert!(done.failed.is_empty(), "failed writes: {:?}", done.failed);
    println!(
        "{} writes acknowledged, {} retried attempts, longest {:?}",
        done.acked.len(),
        done.retries,
        done.longest_write
    );
    assert_eq!(node.pid(), pid, "the node kept running");
    assert!(
        cluster.voters(1).await.contains(&2),
        "node 2 is still a voter"
    );
    assert!(node.status().await.is_some(), "node 2 still serves");
}
