//! `opsdeck node`: runs one node in the foreground until SIGINT or SIGTERM (a leader hands
//! its leadership over first); SIGHUP reloads what can change without a restart.

pub mod config_file;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::security::auth::RateLimit;
use opsdeck_node::server::{self, NodeConfig};
use opsdeck_node::telemetry::logs::LogHub;
use opsdeck_node::telemetry::metrics::BuildInfo;
use opsdeck_node::transport::tls::TlsFiles;

use crate::cli::{NodeArgs, Rate};

pub async fn run(args: NodeArgs) -> Result<()> {
    let logs = LogHub::new();
    init_logging(&logs);
    // Before the data dir is opened, so a failpoint can fire from the first write on.
    for (name, actions) in opsdeck_node::failpoint::configure_from_env().map_err(|e| eyre!(e))? {
        tracing::warn!(failpoint = %name, %actions, "failpoint set from FAILPOINTS");
    }
    let rate = rate_limit(&args);
    let mut config = NodeConfig::new(args.id, args.grpc, args.http, args.data);
    config.rate_limit = rate;
    config.init = args.init;
    config.advertise_grpc = args.advertise_grpc;
    if let Some(ip) = args.source_ip {
        opsdeck_node::transport::use_source_ip(ip);
    }
    config.snapshot_every = args.snapshot_every.max(1);
    config.keep_logs = args.keep_logs;
    config.cleanup_steps = args.cleanup_step_keys.map(|keys| {
        (
            keys,
            std::time::Duration::from_millis(args.cleanup_step_pause_ms),
        )
    });
    config.heartbeat_ms = args.timing.heartbeat_ms;
    config.election_timeout_ms = args.timing.election_timeout_ms;
    config.cluster_secret_file = args.cluster_secret_file;
    config.admin_key_file = args.admin_key_file;
    config.storage_reserve = args.storage_reserve;
    config.restore_idle_timeout = args.restore_idle_timeout;
    config.build = BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_sha: env!("OPSDECK_GIT_SHA").to_string(),
    };
    if let (Some(cert), Some(key), Some(ca)) = (args.tls_cert, args.tls_key, args.tls_ca) {
        config.tls = Some(TlsFiles { cert, key, ca });
    }
    let node = server::start(config, logs)
        .await
        .map_err(|e| eyre!("{e}"))?;
    let reloader = node.reloader();
    node.serve_until(stop_signal(move || reload(&reloader)))
        .await
        .map_err(|e| eyre!("{e}"))?;
    tracing::info!("node stopped");
    Ok(())
}

fn rate_limit(args: &NodeArgs) -> Option<RateLimit> {
    match args.rate_limit {
        Rate::Off => None,
        Rate::Limit { requests, per } => Some(RateLimit {
            requests,
            per,
            burst: args.rate_burst,
        }),
    }
}

/// SIGHUP: reads the command line, the variables and the `--config` file again, puts the
/// rate limit in effect and reloads the TLS certificate and key from their files. A file
/// that no longer parses changes nothing. Other settings need a restart.
fn reload(reloader: &server::Reloader) {
    tracing::info!("SIGHUP: reloading the TLS certificate and the rate limit");
    match config_file::parse(std::env::args_os().collect()) {
        Ok(cli) => {
            if let crate::cli::Command::Node(args) = cli.command {
                reloader.reload(rate_limit(&args));
            }
        }
        Err(e) => {
            let why = e.render().to_string();
            tracing::error!(
                "reload: the node settings no longer parse, nothing changed: {}",
                why.lines().next().unwrap_or_default()
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM, calling `on_hup` on each SIGHUP meanwhile (systemd's
/// `ExecReload`, or `kill -HUP`).
async fn stop_signal(on_hup: impl Fn()) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = next(&mut term) => return,
            _ = next(&mut hup) => on_hup(),
        }
    }
}

/// Logs go to stderr, to `DATA/node.log` (rotated) and to the in-memory ring that Watch
/// subscribers read.
fn init_logging(logs: &std::sync::Arc<LogHub>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDECK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,h2=warn,tower=warn")
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.file_writer())
                .with_ansi(false),
        )
        .with(logs.layer())
        .try_init();
}

/// Resolves on SIGINT, SIGTERM or SIGHUP (a lost SSH session): how the console, `dev` and
/// `alerts --follow` end.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let recv = |s: &mut Option<tokio::signal::unix::Signal>| {
        let s = s.take();
        async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = recv(&mut term) => {}
        _ = recv(&mut hup) => {}
    }
}
