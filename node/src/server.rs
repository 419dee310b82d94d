//! Wires one node together: data dir, Raft, gRPC and HTTP servers, and shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpIncoming;

use crate::api;
use crate::api::linger::{LingerFlag, Lingering};
use crate::clock::unix_millis;
use crate::pb::node_server::NodeServer;
use crate::pb::raft_server::RaftServer;
use crate::raft::compact::Compactor;
use crate::security::auth::{Authenticator, GrpcAuthLayer, RateLimit};
use crate::security::cluster_secret::{write_private, ClusterSecret, SecretError};
use crate::security::keys::{self, KeyRecord, Role};
use crate::service::{NodeCore, Upkeep};
use crate::store::disk_guard::DiskGuard;
use crate::store::log_store::LogStats;
use crate::store::{OpenError, Storage};
use crate::telemetry::events::{self, EventHub, EVENT_HISTORY};
use crate::telemetry::logs::LogHub;
use crate::telemetry::metrics::{BuildInfo, Metrics};
use crate::telemetry::sampler::{Sampler, Sources};
use crate::telemetry::Telemetry;
use crate::transport::peer_storage::PeerStorage;
use crate::transport::raft_network::{NetworkFactory, SnapshotSends};
use crate::transport::raft_service::RaftService;
use crate::transport::tls::{CertStore, ServerTls, TlsError, TlsFiles, TlsListener};
use crate::types::{AdminAction, Command, NodeAddr, NodeId, Raft};

/// Largest gRPC message a node accepts (snapshot chunks, forwarded batches).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How long a restore may go without a chunk before the leader abandons it: far above any
/// pause of a live client (a chunk is sent as soon as the previous ones are applied).
pub const DEFAULT_RESTORE_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// The gRPC address this node tells the cluster (its membership entry) when it differs
    /// from the one it listens on: behind NAT, a load balancer or a proxy. None: `grpc`.
    pub advertise_grpc: Option<String>,
    pub data_dir: PathBuf,
    /// Bootstrap a new single-node cluster if this node has never been initialized.
    pub init: bool,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind the snapshot, so a slightly lagging follower catches up by log.
    pub keep_logs: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
    /// Where to copy the cluster secret from when the data dir has none yet (a new member).
    pub cluster_secret_file: Option<PathBuf>,
    /// Per-key request limit for read and write keys; None turns it off.
    pub rate_limit: Option<RateLimit>,
    /// Serve gRPC and HTTP over TLS, and speak TLS to the other nodes.
    pub tls: Option<TlsFiles>,
    /// With `init`: the first admin key's secret comes from this file instead of being
    /// generated (for automation that provisions it from a secret store).
    pub admin_key_file: Option<PathBuf>,
    /// Free space the data dir's filesystem must keep; below it the node is storage full
    /// (see `store::disk_guard`). 0 turns the guard off.
    pub storage_reserve: u64,
    /// Keys per step of the state machine's cleanup of replaced data generations, and a
    /// pause after each (tests make them small and slow, to stop a node while it cleans
    /// up); None: the default (4,096 keys, no pause).
    pub cleanup_steps: Option<(usize, Duration)>,
    /// A restore whose staging has not moved for this long is abandoned by the leader
    /// (its staged copy deleted; the data in use unchanged).
    pub restore_idle_timeout: Duration,
    /// What `opsdeck_build_info` reports (the binary knows its commit; this crate does not).
    pub build: BuildInfo,
}

impl NodeConfig {
    pub fn new(id: NodeId, grpc: SocketAddr, http: SocketAddr, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            id,
            grpc,
            http,
            advertise_grpc: None,
            data_dir,
            init: false,
            snapshot_every: 10_000,
            keep_logs: 1_000,
            heartbeat_ms: 50,
            election_timeout_ms: (150, 300),
            cluster_secret_file: None,
            rate_limit: Some(RateLimit::default()),
            admin_key_file: None,
            tls: None,
            storage_reserve: crate::store::disk_guard::DEFAULT_RESERVE,
            cleanup_steps: None,
            restore_idle_timeout: DEFAULT_RESTORE_IDLE_TIMEOUT,
            build: BuildInfo::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} address {addr}: {source} (is another process using port {port}? pick a free port)", port = addr.port())]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("admin key file {path}: {reason}")]
    AdminKey { path: PathBuf, reason: String },
    #[error("invalid raft settings: {0}")]
    Config(String),
    #[error("raft failed: {0}")]
    Raft(String),
    #[error("{0} server failed: {1}")]
    Serve(&'static str, String),
}

/// A running node: its core for in-process callers (tests, benchmarks) and its addresses.
pub struct RunningNode {
    pub core: NodeCore,
    pub raft: Raft,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    db: sled::Db,
    servers: tokio::task::JoinSet<Result<(), ServerError>>,
    stop: tokio::sync::watch::Sender<bool>,
    reloader: Reloader,
}

/// What a running node can take anew without a restart (SIGHUP): its TLS certificate and
/// key (read again from the same files) and the per-key rate limit.
#[derive(Clone)]
pub struct Reloader {
    auth: Arc<Authenticator>,
    certs: Option<Arc<CertStore>>,
}

impl Reloader {
    /// Reloads the certificate and puts `rate` in effect, logging what changed. A part
    /// that fails to load leaves the old one serving. Returns whether everything loaded.
    pub fn reload(&self, rate: Option<RateLimit>) -> bool {
        let mut ok = true;
        if let Some(certs) = &self.certs {
            let (cert, key) = (&certs.files().cert, &certs.files().key);
            let before = certs.fingerprint();
            match certs.reload() {
                Ok(now) if now == before => {
                    tracing::info!(cert = %cert.display(), fingerprint = %now, "reload: TLS certificate unchanged")
                }
                Ok(now) => {
                    tracing::info!(cert = %cert.display(), key = %key.display(), was = %before, fingerprint = %now, "reload: serving the new TLS certificate")
                }
                Err(e) => {
                    ok = false;
                    tracing::error!(error = %e, fingerprint = %before, "reload: the TLS certificate failed to load; still serving the old one")
                }
            }
        }
        if self.auth.set_rate(rate) {
            tracing::info!(rate = ?rate, "reload: new rate limit in effect");
        }
        ok
    }
}

impl RunningNode {
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Waits until a server fails or `shutdown` resolves, then stops cleanly.
    pub async fn serve_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let outcome = tokio::select! {
            _ = shutdown => Ok(()),
            Some(done) = self.servers.join_next() => match done {
                Ok(Ok(())) => Err(ServerError::Serve("node", "a server stopped unexpectedly".into())),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(ServerError::Serve("node", e.to_string())),
            },
        };
        match &outcome {
            Ok(()) => {
                tracing::info!("shutting down on signal");
                self.core.step_down(STEP_DOWN_WITHIN).await;
            }
            Err(e) => tracing::error!(error = %e, "shutting down"),
        }
        self.stop().await;
        outcome
    }

    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), self.raft.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("raft did not shut down within 5 s");
        }
        while self.servers.join_next().await.is_some() {}
        if let Err(e) = self.core.reader().write_merkle_index() {
            tracing::error!(error = %e, "writing the Merkle index failed; the next start rebuilds it");
        }
        if let Err(e) = self.db.flush_async().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }
}

/// Longest a stopping leader tries to hand its leadership over before it stops anyway.
const STEP_DOWN_WITHIN: Duration = Duration::from_secs(5);

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// Starts a node: binds its ports (before touching the data dir, so a port clash changes
/// nothing), opens its storage, starts Raft and both servers.
pub async fn start(config: NodeConfig, logs: Arc<LogHub>) -> Result<RunningNode, ServerError> {
    let ports = bind_ports(&config).await?;
    let opened = open_waiting_for_space(&config, &logs).await?;
    let node = build(&config, opened, logs, &ports).await?;
    // Bootstrap before serving, so a client that reaches this node finds it initialized.
    if config.init {
        bootstrap(&node.raft, &node.core, &config, node.addr.clone()).await?;
    }
    let running = serve(ports, node)?;
    tracing::info!(id = config.id, grpc = %running.grpc, http = %running.http, data = %config.data_dir.display(), "node started");
    Ok(running)
}

/// The node's two ports, bound, and its TLS settings, loaded.
struct Ports {
    tls: Option<ServerTls>,
    grpc: TcpListener,
    http: TcpListener,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
}

async fn bind_ports(config: &NodeConfig) -> Result<Ports, ServerError> {
    // Checked first, so bad certificate files change nothing.
    let tls = config.tls.as_ref().map(ServerTls::load).transpose()?;
    let grpc = bind("gRPC", config.grpc).await?;
    let http = bind("HTTP", config.http).await?;
    let grpc_addr = grpc
        .local_addr()
        .map_err(|e| ServerError::Serve("gRPC", e.to_string()))?;
    let http_addr = http
        .local_addr()
        .map_err(|e| ServerError::Serve("HTTP", e.to_string()))?;
    Ok(Ports {
        tls,
        grpc,
        http,
        grpc_addr,
        http_addr,
    })
}

/// The data dir, opened as this node's, and the checked Raft settings.
struct Opened {
    storage: Storage,
    guard: Arc<DiskGuard>,
    secret: ClusterSecret,
    raft_config: Config,
}

/// Opens the data dir; on a disk too full for the database to open, says so and tries
/// again every second until space is freed (the ports stay bound meanwhile, so nothing
/// else takes them), instead of exiting for an operator to start it again.
async fn open_waiting_for_space(config: &NodeConfig, logs: &LogHub) -> Result<Opened, ServerError> {
    let guard = Arc::new(DiskGuard::new(&config.data_dir, config.storage_reserve));
    let mut told = false;
    loop {
        guard.before_open();
        match open(config, logs, guard.clone()) {
            Err(ServerError::Open(e)) if e.is_no_space() => {
                if !told {
                    tracing::error!(error = %e, "waiting for free space to open the data dir");
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

fn open(config: &NodeConfig, logs: &LogHub, guard: Arc<DiskGuard>) -> Result<Opened, ServerError> {
    let storage = Storage::open(&config.data_dir, config.id)?;
    if let Some((keys, pause)) = config.cleanup_steps {
        storage.state_machine.set_cleanup_steps(keys, pause);
    }
    let secret = ClusterSecret::load_or_create(
        &config.data_dir,
        config.cluster_secret_file.as_deref(),
        config.init,
    )?;
    logs.open_file(&config.data_dir);
    let raft_config = Config {
        cluster_name: "opsdeck".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms.0,
        election_timeout_max: config.election_timeout_ms.1,
        install_snapshot_timeout: 10_000,
        max_payload_entries: 256,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.keep_logs,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ServerError::Config(e.to_string()))?;
    Ok(Opened {
        storage,
        guard,
        secret,
        raft_config,
    })
}

/// A node with Raft running and its parts wired around it, not serving yet.
struct Built {
    core: NodeCore,
    raft: Raft,
    /// What this node tells the cluster (its membership entry).
    addr: NodeAddr,
    auth: Arc<Authenticator>,
    telemetry: Telemetry,
    flush_stats: Arc<LogStats>,
    db: sled::Db,
    heartbeat: Duration,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
}

/// Starts Raft on the opened storage, then the parts around it: the request check, metrics,
/// the status sampler, the compactor, the core and the cluster event watcher.
async fn build(
    config: &NodeConfig,
    opened: Opened,
    logs: Arc<LogHub>,
    ports: &Ports,
) -> Result<Built, ServerError> {
    let Opened {
        mut storage,
        guard,
        secret,
        raft_config,
    } = opened;
    let flush_stats = storage.log.stats();
    let log_disk = storage.log.disk();
    let committed = storage.log.committed_index();
    let reader = storage.state_machine.reader();
    let event_hub = Arc::new(EventHub::new(EVENT_HISTORY));
    storage.state_machine.publish_events_to(event_hub.clone());
    let auth = Arc::new(Authenticator::new(
        storage.state_machine.key_registry(),
        secret.clone(),
        config.rate_limit,
    ));
    let snapshot_sends = Arc::new(SnapshotSends::default());
    let peer_storage = Arc::new(PeerStorage::default());
    let heartbeat = Duration::from_millis(config.heartbeat_ms);
    let raft = Raft::new(
        config.id,
        Arc::new(raft_config),
        NetworkFactory::new(
            secret.clone(),
            snapshot_sends.clone(),
            peer_storage.clone(),
            heartbeat,
        ),
        storage.log,
        storage.state_machine,
    )
    .await
    .map_err(|e| ServerError::Raft(e.to_string()))?;

    let addr = NodeAddr {
        grpc: config
            .advertise_grpc
            .clone()
            .unwrap_or_else(|| ports.grpc_addr.to_string()),
        http: ports.http_addr.to_string(),
    };
    let metrics = Arc::new(Metrics::new(&config.build));
    let (stop, stopped) = watch::channel(false);
    guard.clone().spawn_watch(stopped.clone());
    let sampler = Sampler::start(
        Sources {
            db: storage.db.clone(),
            data_dir: config.data_dir.clone(),
            log: log_disk.clone(),
            housekeeping: storage.housekeeping.clone(),
            ops: metrics.ops(),
        },
        stopped.clone(),
    )
    .await;
    let compactor = Compactor {
        raft: raft.clone(),
        db: storage.db.clone(),
        log: log_disk,
        housekeeping: storage.housekeeping.clone(),
        data_dir: config.data_dir.clone(),
        running: tokio::sync::Mutex::new(()),
    };
    let core = NodeCore::new(
        config.id,
        addr.clone(),
        raft.clone(),
        reader,
        metrics,
        committed,
        secret,
        Upkeep {
            sampler,
            compactor,
            snapshot_sends,
            guard: guard.clone(),
            peer_storage,
        },
    );
    let telemetry = Telemetry {
        logs,
        events: event_hub,
    };
    events::spawn_watcher(raft.clone(), telemetry.events.clone());
    core.spawn_storage_handoff(stopped.clone());
    core.spawn_restore_expiry(config.restore_idle_timeout, stopped.clone());
    core.spawn_writes_expiry(stopped.clone());
    Ok(Built {
        core,
        raft,
        addr,
        auth,
        telemetry,
        flush_stats,
        db: storage.db,
        heartbeat,
        stop,
        stopped,
    })
}

type Servers = tokio::task::JoinSet<Result<(), ServerError>>;

/// Serves gRPC and HTTP on the bound ports and starts reporting key use, until stopped.
fn serve(ports: Ports, node: Built) -> Result<RunningNode, ServerError> {
    let Built {
        core,
        raft,
        auth,
        telemetry,
        flush_stats,
        db,
        heartbeat,
        stop,
        stopped,
        ..
    } = node;
    let (grpc_tls, http_tls, certs) = match ports.tls {
        Some(tls) => (Some(tls.grpc), Some(tls.http), Some(tls.certs)),
        None => (None, None, None),
    };
    let mut servers = Servers::new();
    serve_grpc(
        &mut servers,
        ports.grpc,
        grpc_tls,
        &auth,
        RaftService::new(
            core.id(),
            raft.clone(),
            core.disk_guard().clone(),
            telemetry.events.clone(),
            heartbeat,
        ),
        api::grpc::NodeService::new(core.clone(), telemetry, stopped.clone()),
        stopped.clone(),
    )?;
    let app = api::http::router(core.clone(), flush_stats, auth.clone());
    serve_http(&mut servers, ports.http, http_tls, app, stopped.clone())?;
    servers.spawn(report_key_use(core.clone(), auth.clone(), stopped));
    Ok(RunningNode {
        core,
        raft,
        grpc: ports.grpc_addr,
        http: ports.http_addr,
        db,
        servers,
        stop,
        reloader: Reloader { auth, certs },
    })
}

/// The gRPC services, the Raft one and the node one, behind the request check.
fn serve_grpc(
    servers: &mut Servers,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    auth: &Arc<Authenticator>,
    raft: RaftService,
    node: api::grpc::NodeService,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let router = tonic::transport::Server::builder()
        .layer(GrpcAuthLayer(auth.clone()))
        .add_service(
            RaftServer::new(raft)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            NodeServer::new(node)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    let stopped = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    // The node's own acceptor rather than tonic's TLS, so that SIGHUP can swap the
    // certificate (`CertStore`).
    match tls {
        Some(tls) => {
            let incoming = TlsListener::new("gRPC", listener, tls)
                .map_err(|e| ServerError::Serve("gRPC", e.to_string()))?
                .into_incoming();
            servers.spawn(async move {
                router
                    .serve_with_incoming_shutdown(incoming, stopped)
                    .await
                    .map_err(|e| ServerError::Serve("gRPC", e.to_string()))
            });
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            servers.spawn(async move {
                router
                    .serve_with_incoming_shutdown(incoming, stopped)
                    .await
                    .map_err(|e| ServerError::Serve("gRPC", e.to_string()))
            });
        }
    }
    Ok(())
}

/// The HTTP routes, over TLS when the node has it; connections close lingering (see
/// [`Lingering`]), so a client still sending a refused body reads its answer.
fn serve_http(
    servers: &mut Servers,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let http_stopped = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    /// Serves `app` on `listener` until the node stops; `name` is the surface in errors.
    async fn run<L>(
        name: &'static str,
        listener: L,
        app: axum::Router,
        stopped: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError>
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        axum::serve(
            Lingering(listener),
            app.into_make_service_with_connect_info::<LingerFlag>(),
        )
        .with_graceful_shutdown(stopped)
        .await
        .map_err(|e| ServerError::Serve(name, e.to_string()))
    }
    match tls {
        Some(tls) => {
            let listener = TlsListener::new("HTTP", listener, tls)
                .map_err(|e| ServerError::Serve("HTTP", e.to_string()))?;
            servers.spawn(run("HTTPS", listener, app, http_stopped));
        }
        None => {
            servers.spawn(run("HTTP", listener, app, http_stopped));
        }
    }
    Ok(())
}

/// How often a node reports which API keys it saw used (`last used` is this coarse).
const KEY_USE_REPORT: Duration = Duration::from_secs(60);

/// Replicates the last-use times of the keys this node served, about once a minute.
async fn report_key_use(
    core: NodeCore,
    auth: Arc<Authenticator>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let mut tick = tokio::time::interval(KEY_USE_REPORT);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return Ok(()),
            _ = tick.tick() => {}
        }
        let used = auth.take_uses();
        if used.is_empty() {
            continue;
        }
        if let Err(e) = core
            .propose_forwarded(vec![Command::TouchKeys { used }])
            .await
        {
            tracing::debug!(error = %e, "could not report API key use; will retry next round");
        }
    }
}

/// The first admin key of a new cluster, written where the operator will look for it.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Makes this node the single voter of a new cluster, unless it already belongs to one, and
/// creates the cluster's first admin key in `DATA/admin.key` (mode 0600).
async fn bootstrap(
    raft: &Raft,
    core: &NodeCore,
    config: &NodeConfig,
    addr: NodeAddr,
) -> Result<(), ServerError> {
    let id = config.id;
    // Read before anything changes, so a bad file leaves the node uninitialized.
    let key = match &config.admin_key_file {
        Some(path) => keys::from_file(path).map_err(|reason| ServerError::AdminKey {
            path: path.clone(),
            reason,
        })?,
        None => keys::generate(),
    };
    if raft
        .is_initialized()
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?
    {
        tracing::info!("--init given but this node already belongs to a cluster; resuming it");
        return Ok(());
    }
    raft.initialize(BTreeMap::from([(id, addr)]))
        .await
        .map_err(|e| ServerError::Raft(format!("cannot initialize the cluster: {e}")))?;
    raft.wait(Some(Duration::from_secs(10)))
        .current_leader(id, "bootstrap")
        .await
        .map_err(|e| ServerError::Raft(format!("did not become leader of the new cluster: {e}")))?;
    let cluster_id = format!("{:032x}", rand::random::<u128>());
    // The key file is written before the key exists in the ledger: a crash in between
    // leaves a file naming no key (harmless), never a key nobody holds.
    let key_path = config.data_dir.join(ADMIN_KEY_FILE);
    write_private(&key_path, key.secret.as_bytes()).map_err(|e| ServerError::AdminKey {
        path: key_path.clone(),
        reason: format!("cannot write it: {e}"),
    })?;
    let now = unix_millis();
    let record = KeyRecord {
        id: key.id.clone(),
        hash: key.hash,
        role: Role::Admin,
        tenants: Vec::new(),
        created_ms: now,
        expires_ms: None,
        revoked_ms: None,
        last_used_ms: None,
        successor: None,
    };
    core.propose_forwarded(vec![
        Command::InitCluster {
            cluster_id: cluster_id.clone(),
        },
        Command::Admin {
            actor: "bootstrap".into(),
            at_ms: now,
            action: AdminAction::CreateKey(record),
        },
    ])
    .await
    .map_err(|e| ServerError::Raft(format!("cannot record the cluster id and admin key: {e}")))?;
    tracing::info!(%cluster_id, admin_key = %key.id, file = %key_path.display(), "initialized a new cluster");
    Ok(())
}
