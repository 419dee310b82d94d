//! Optional TLS (rustls) for a node's gRPC and HTTP servers and for every gRPC client in the
//! process: node-to-node traffic and the CLI/console. Off unless configured; a process that
//! turns it on speaks TLS to every node, so the client side is one process-wide setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::{Certificate, ClientTlsConfig};

/// A node's certificate and key, and the CA its peers' certificates are signed by.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what} (expected PEM): {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

static CLIENT_TLS: OnceLock<ClientTlsConfig> = OnceLock::new();

/// From now on every channel this process opens uses TLS, trusting certificates signed by
/// the CA in `ca`.
pub fn use_client_tls(ca: &Path) -> Result<(), TlsError> {
    let pem = read(ca)?;
    CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| TlsError::Pem {
            path: ca.to_path_buf(),
            what: "CA certificate",
            reason: "no certificate found".into(),
        })?
        .map_err(|e| TlsError::Pem {
            path: ca.to_path_buf(),
            what: "CA certificate",
            reason: e.to_string(),
        })?;
    let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
    let _ = CLIENT_TLS.set(config);
    Ok(())
}

/// The client TLS settings, if this process uses TLS.
pub fn client_tls() -> Option<&'static ClientTlsConfig> {
    CLIENT_TLS.get()
}

/// The certificate and key a node presents, swappable while it serves: `reload` (on
/// SIGHUP) reads the files again and new handshakes present the new pair; connections
/// already open keep theirs. A pair that fails to load leaves the old one in place.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the certificate and key again from their files; on success new handshakes
    /// present them. Returns the new leaf certificate's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = load_pair(&self.files)?;
        let fingerprint = fingerprint(&key);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(fingerprint)
    }

    /// `sha256:` and the first 16 hex digits of the leaf certificate's SHA-256, as logged.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl rustls::server::ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn fingerprint(key: &CertifiedKey) -> String {
    use sha2::Digest;
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    let digest = sha2::Sha256::digest(leaf);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and private key in `files`, checked to belong together.
fn load_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let (cert_pem, key_pem) = (read(&files.cert)?, read(&files.key)?);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            what: "certificate",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            what: "certificate",
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        TlsError::Setup(format!(
            "{} and {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })
}

/// What a TLS node serves with: one acceptor for gRPC (ALPN h2), one for HTTP, both
/// presenting the certificate in `certs`.
pub struct ServerTls {
    pub grpc: TlsAcceptor,
    pub http: TlsAcceptor,
    pub certs: Arc<CertStore>,
}

impl ServerTls {
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let certs = Arc::new(CertStore {
            current: RwLock::new(Arc::new(load_pair(files)?)),
            files: files.clone(),
        });
        let acceptor = |alpn: &[u8]| -> Result<TlsAcceptor, TlsError> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Setup(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let (grpc, http) = (acceptor(b"h2")?, acceptor(b"http/1.1")?);
        use_client_tls(&files.ca)?;
        Ok(ServerTls { grpc, http, certs })
    }
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener that hands out finished TLS connections (to axum as a `Listener`, to tonic
/// as a stream, `into_incoming`). Handshakes run concurrently, so a slow or broken client
/// never holds up the others.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// `what` names the surface in logs ("gRPC", "HTTP").
    pub fn new(
        what: &'static str,
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "{what} accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small requests and Raft heartbeats must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "{what} TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "{what} TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }

    /// The connections as the stream tonic's `serve_with_incoming` takes; it never ends
    /// while the stream lives.
    pub fn into_incoming(
        self,
    ) -> impl futures_util::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        futures_util::stream::unfold(self, |mut listener| async move {
            let (conn, _) = listener.ready.recv().await?;
            Some((Ok(conn), listener))
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
