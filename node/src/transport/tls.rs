//! Optional TLS (rustls) for a node's gRPC and HTTP servers and for every gRPC client in the
//! process: node-to-node traffic and the CLI/console. Off unless configured; a process that
//! turns it on speaks TLS to every node, so the client side is one process-wide setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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

/// What a TLS node serves with: tonic's config for gRPC, an acceptor for HTTP.
pub struct ServerTls {
    pub grpc: ServerTlsConfig,
    pub http: TlsAcceptor,
}

impl ServerTls {
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut http = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                TlsError::Setup(format!(
                    "{} and {}: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        use_client_tls(&files.ca)?;
        Ok(ServerTls {
            grpc: ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)),
            http: TlsAcceptor::from(Arc::new(http)),
        })
    }
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP listener that hands axum finished TLS connections. Handshakes run concurrently,
/// so a slow or broken client never holds up the others.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
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
