//! Command-line interface: every verb and its flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "opsdeck",
    version,
    about = "Raft ledger node, dev cluster and operations console"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node.
    Node(NodeArgs),
    /// Start a local dev cluster on 127.0.0.1 and open the console on it.
    Dev(DevArgs),
    /// Open the operations console (a terminal UI) on a running cluster.
    Console(ConsoleArgs),
    /// Show every node's role, term and log indexes.
    Status(ClusterArgs),
    /// List the cluster's members.
    Members(ClusterArgs),
    /// Write KEY=VALUE.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Read KEY (linearizable unless --stale).
    Get {
        key: String,
        /// Read the contacted node's local copy, which may lag the leader.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete KEY.
    Del {
        key: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// List keys starting with PREFIX.
    Scan {
        #[arg(default_value = "")]
        prefix: String,
        /// Most pairs to return.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Drive load against the cluster and print throughput and latency percentiles.
    Bench(BenchArgs),
}

impl Command {
    /// A verb that prints and exits, as opposed to a long-running node or dev cluster.
    pub fn is_one_shot(&self) -> bool {
        !matches!(
            self,
            Command::Node(_) | Command::Dev(_) | Command::Bench(_) | Command::Console(_)
        )
    }
}

/// Which cluster a verb talks to.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Comma-separated gRPC addresses of cluster nodes.
    #[arg(long, value_delimiter = ',', env = "OPSDECK_ENDPOINTS")]
    pub endpoints: Vec<String>,
    /// Directory of a dev cluster (reads its cluster.toml). Default: the default dev dir.
    #[arg(long, conflicts_with = "endpoints")]
    pub cluster: Option<PathBuf>,
    /// File holding the API key. Default: $OPSDECK_API_KEY, else the cluster dir's admin.key.
    #[arg(long, env = "OPSDECK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to keep retrying while no node answers or no leader is elected.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// gRPC listen address (Raft and clients).
    #[arg(long)]
    pub grpc: std::net::SocketAddr,
    /// HTTP listen address (health, metrics, /kv).
    #[arg(long)]
    pub http: std::net::SocketAddr,
    /// Data directory; created if missing, resumed if it holds this node's data.
    #[arg(long)]
    pub data: PathBuf,
    /// Bootstrap a new single-node cluster (ignored if the node already belongs to one).
    #[arg(long)]
    pub init: bool,
    /// Build a snapshot every N log entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind the latest snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    #[command(flatten)]
    pub timing: RaftTiming,
}

/// Raft timing, shared by `node` and `dev`.
#[derive(Args, Debug, Clone)]
pub struct RaftTiming {
    /// Leader heartbeat interval in milliseconds. openraft also uses it as the deadline of
    /// each replication RPC, so it must cover a follower's append under load.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Election timeout range in milliseconds, MIN-MAX: a follower that hears no leader for
    /// a random time in this range starts an election. Lower fails over faster; too low for
    /// a loaded machine causes needless elections.
    #[arg(long, default_value = "150-300", value_parser = parse_range)]
    pub election_timeout_ms: (u64, u64),
}

impl RaftTiming {
    /// The same settings as `opsdeck node` flags.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--heartbeat-ms".into(),
            self.heartbeat_ms.to_string(),
            "--election-timeout-ms".into(),
            format!(
                "{}-{}",
                self.election_timeout_ms.0, self.election_timeout_ms.1
            ),
        ]
    }
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got {s:?}"))?;
    let min: u64 = a.trim().parse().map_err(|_| format!("bad minimum {a:?}"))?;
    let max: u64 = b.trim().parse().map_err(|_| format!("bad maximum {b:?}"))?;
    if min == 0 || min >= max {
        return Err(format!("need 0 < MIN < MAX, got {min}-{max}"));
    }
    Ok((min, max))
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Where the cluster lives (cluster.toml, node data dirs, logs). Default: XDG data dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Node N listens on gRPC port P+N and HTTP port P+100+N.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Do not open the console; print where the cluster is and wait for Ctrl-C.
    #[arg(long)]
    pub headless: bool,
    /// Console keymap (see `opsdeck console --help`).
    #[arg(long, conflicts_with = "headless")]
    pub keymap: Option<String>,
    /// Console theme (see `opsdeck console --help`).
    #[arg(long, conflicts_with = "headless")]
    pub theme: Option<String>,
    /// Leave the nodes running on exit.
    #[arg(long)]
    pub keep: bool,
    /// Passed to every node (see `opsdeck node --help`).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    #[command(flatten)]
    pub timing: RaftTiming,
}

/// `opsdeck console`. Defaults come from `~/.config/opsdeck/config.toml`; flags win.
#[derive(Args, Debug, Clone, Default)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Keymap: a built-in name (default, vim) or a path to a TOML file.
    #[arg(long)]
    pub keymap: Option<String>,
    /// Theme: a built-in name (dark, light, high-contrast, mono) or a path to a TOML file.
    #[arg(long)]
    pub theme: Option<String>,
    /// Hide and refuse every action that changes the cluster.
    #[arg(long)]
    pub read_only: bool,
    /// Wall-screen mode: read-only, high contrast, big verdict, panes rotate.
    #[arg(long)]
    pub war_room: bool,
    /// Seconds each pane shows in --war-room (default 10).
    #[arg(long)]
    pub cycle_secs: Option<u64>,
    /// How often each node sends a status frame, in milliseconds (default 1000).
    #[arg(long)]
    pub refresh_ms: Option<u64>,
    /// Config file (default: $XDG_CONFIG_HOME/opsdeck/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Distinct keys written and read.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
    /// How long to drive load, e.g. 20s, 1m.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Percentage of operations that are linearizable reads (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub reads: u8,
    /// Send every request to this node instead of the leader (e.g. to measure forwarding).
    #[arg(long)]
    pub target: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}
