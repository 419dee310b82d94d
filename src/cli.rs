//! Command-line interface: every verb and its flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::Result;

use crate::alerts::notify::config::{alertmanager_flag, webhook_flag};
use crate::alerts::notify::Receiver;
use crate::client::Target;
use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "opsdeck",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("OPSDECK_GIT_SHA"),
        ", ",
        env!("OPSDECK_BUILD_DATE"),
        ")"
    ),
    about = "Raft ledger node, dev cluster and operations console",
    after_help = crate::client::failure::EXIT_STATUS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node.
    #[command(
        after_help = "Examples:\n  opsdeck node --id 1 --grpc 0.0.0.0:7101 --http 0.0.0.0:7201 --data /var/lib/opsdeck --init"
    )]
    Node(NodeArgs),
    /// Start a local dev cluster on 127.0.0.1 and open the console on it.
    #[command(
        after_help = "Examples:\n  opsdeck dev\n  opsdeck dev --nodes 5 --dir /tmp/c5 --base-port 9100 --headless"
    )]
    Dev(DevArgs),
    /// Open the operations console (a terminal UI) on a running cluster.
    #[command(
        after_help = "Examples:\n  opsdeck console --context prod-eu --read-only\n  opsdeck console --endpoints 10.0.0.1:7101 --key-file admin.key"
    )]
    Console(ConsoleArgs),
    /// Show every node's role, term and log indexes.
    #[command(
        after_help = "Examples:\n  opsdeck status\n  opsdeck status --context prod-eu -o json"
    )]
    Status(ClusterArgs),
    /// List the cluster's members.
    #[command(after_help = "Examples:\n  opsdeck members -o json")]
    Members(ClusterArgs),
    /// Write KEY=VALUE; the value comes from the command line, from --file FILE, or from
    /// standard input when VALUE is `-`. At most 1 MiB (the node's limit).
    #[command(
        after_help = "Examples:\n  opsdeck put tenant/key value\n  opsdeck put tenant/blob --file photo.jpg\n  echo hi | opsdeck put tenant/key -"
    )]
    Put {
        key: String,
        /// The value (`-`: read it from standard input).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from FILE (any bytes).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Read KEY (linearizable unless --stale).
    #[command(
        after_help = "Examples:\n  opsdeck get tenant/key\n  opsdeck get tenant/blob -o json   # bytes that are not UTF-8: \"value_base64\"\n  opsdeck get tenant/blob > photo.jpg\n  opsdeck get tenant/key --proof key.proof   # then: opsdeck verify-proof key.proof"
    )]
    Get {
        key: String,
        /// Read the contacted node's local copy, which may lag the leader.
        #[arg(long)]
        stale: bool,
        /// Also write a Merkle proof of the value (or of its absence) to FILE, with the
        /// root every voter reported at the proof's index; `verify-proof FILE` checks it.
        #[arg(long, value_name = "FILE")]
        proof: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete KEY.
    #[command(after_help = "Examples:\n  opsdeck del tenant/key")]
    Del {
        key: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Compare-and-set KEY: write VALUE (or delete, with --delete) only if the current value
    /// is --expect (or the key is absent, with --absent).
    #[command(
        after_help = "Examples:\n  opsdeck cas tenant/key new --expect old\n  opsdeck cas tenant/key first --absent\n  opsdeck cas tenant/key --delete --expect old"
    )]
    Cas {
        key: String,
        #[arg(required_unless_present = "delete", conflicts_with = "delete")]
        value: Option<String>,
        #[arg(long, required_unless_present = "absent", conflicts_with = "absent")]
        expect: Option<String>,
        #[arg(long)]
        absent: bool,
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// List keys starting with PREFIX.
    #[command(
        after_help = "Examples:\n  opsdeck scan tenant/ --limit 100\n  opsdeck scan tenant/ -o json"
    )]
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
    #[command(
        after_help = "Ctrl-C, SIGTERM or SIGHUP ends the run early and prints the figures so far.\n\nExamples:\n  opsdeck bench --clients 64 --duration 20s\n  opsdeck bench --reads 100 --value-size 1024\n  opsdeck bench --prefix load/ --duration 1h --json & ...; kill $!   # writes while something else runs"
    )]
    Bench(BenchArgs),
    /// Create, list, rotate and revoke API keys (needs an admin key).
    #[command(
        after_help = "Examples:\n  opsdeck keys list\n  opsdeck keys create --role read --tenant acme --expires 30d --out acme.key\n  opsdeck keys rotate --id k1a2b3c4d --grace 24h"
    )]
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Show and set per-tenant quotas (needs an admin key).
    #[command(
        after_help = "Examples:\n  opsdeck quota show\n  opsdeck quota set acme --tier premium --max-bytes 2GiB"
    )]
    Quota {
        #[command(subcommand)]
        action: QuotaAction,
    },
    /// Maintenance mode: pause client writes on every node, or resume them (needs an admin
    /// key). While paused, writes fail with exit status 9; reads go on.
    #[command(
        after_help = "Examples:\n  opsdeck writes pause --reason \"disk swap on node 2\" --for 30m\n  opsdeck writes pause --reason \"schema migration\" --context prod-eu -o json\n  opsdeck writes resume"
    )]
    Writes {
        #[command(subcommand)]
        action: WritesAction,
    },
    /// Show the most recent admin actions (needs an admin key).
    #[command(after_help = "Examples:\n  opsdeck audit --limit 20 -o json")]
    Audit {
        /// How many records, newest last.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Evaluate alert rules (node down, quorum lost, latency, disk...) against the cluster.
    Alerts(AlertsArgs),
    /// Snapshot and purge the Raft log on every node; print the space reclaimed. With
    /// --defrag (a dev cluster): also shrink every node's database file, one node at a time
    /// (followers first, the leader last after a handover), each stopped, rewritten offline
    /// and started again while the others keep quorum and serve writes. Refused before
    /// anything changes when a member is down or a filesystem has not the room.
    #[command(
        after_help = "Examples:\n  opsdeck compact\n  opsdeck compact --context prod-eu\n  opsdeck compact --defrag --cluster ./dev\n  opsdeck compact --defrag --timeout-rejoin 2m --json"
    )]
    Compact(CompactArgs),
    /// Shrink a stopped node's database file: rewrite it offline into a fresh one (every
    /// pair copied and compared) and swap it in crash-safely. Refused while the node runs
    /// (its database is locked) and when the filesystem has not the room (db size + 64 MiB).
    #[command(
        after_help = "Examples:\n  opsdeck defrag-data --data ./dev/n2 --json     # node 2 of a dev cluster, stopped\n  # one node of a systemd cluster at a time, followers first, each caught up before the next:\n  systemctl stop opsdeck-node; opsdeck defrag-data --data /var/lib/opsdeck; systemctl start opsdeck-node"
    )]
    DefragData(DefragDataArgs),
    /// Check that the replicas hold the same state: compare every node's state digest at
    /// the highest applied index all of them hold (exit 0: agree, 8: a node differs, 4:
    /// fewer than two answered). Only reads; writes go on.
    #[command(
        after_help = "Examples:\n  opsdeck check\n  opsdeck check --context prod-eu -o json"
    )]
    Check(ClusterArgs),
    /// Print the nodes' log records, merged by time (--follow keeps streaming).
    #[command(
        after_help = "Examples:\n  opsdeck logs --level warn --since 10m\n  opsdeck logs --follow --node 2 --grep election"
    )]
    Logs(LogsArgs),
    /// Stream a consistent backup from the leader into FILE (writes go on meanwhile).
    #[command(
        after_help = "Examples:\n  opsdeck backup --out nightly.odb\n  opsdeck backup --context prod-eu --out prod-eu.odb --verify\n  opsdeck backup --out-dir /var/backups/opsdeck --keep 7"
    )]
    Backup {
        /// The backup file to write.
        #[arg(long, required_unless_present = "out_dir", conflicts_with = "out_dir")]
        out: Option<PathBuf>,
        /// Scheduled backups: write into DIR (created if missing) as
        /// opsdeck-TIME-iINDEX.odb, verify the file, then remove the oldest beyond --keep.
        /// Other files in DIR are never touched. deploy/systemd has a daily timer.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// With --out-dir: how many backups to keep, newest first.
        #[arg(long, requires = "out_dir", default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..10_000))]
        keep: u64,
        /// With --out: then verify the file whole (as verify-backup does) and record the
        /// verification in the cluster, so its last backup does not count as not verified
        /// (--out-dir always does both).
        #[arg(long, requires = "out")]
        verify: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check a proof file from `get KEY --proof FILE`: the value (or its absence) hashes
    /// to the proof's root, and a quorum of voters reported that root at its index. Offline
    /// unless --live. Exit status 0: it holds; 1: it does not (the message says why).
    #[command(
        after_help = "Examples:\n  opsdeck verify-proof key.proof\n  opsdeck verify-proof key.proof --live -o json"
    )]
    VerifyProof {
        file: PathBuf,
        /// Ask the nodes for their root at the proof's index again (while their rings of
        /// recent digests still hold it) instead of trusting the roots the file records.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check a backup file's manifest, checksums and that its payload sums to the state
    /// digest its manifest records; with --record, also record the
    /// verification in the cluster (admin key), so its last backup does not count as not
    /// verified (the backup_unverified alert). Without --record no cluster is touched.
    #[command(
        after_help = "Examples:\n  opsdeck verify-backup nightly.odb -o json\n  opsdeck verify-backup nightly.odb --record --context prod-eu"
    )]
    VerifyBackup {
        file: PathBuf,
        /// Record the verification in the cluster the flags name.
        #[arg(long)]
        record: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Replace the cluster's data with a backup's (verified first; asks unless --yes),
    /// then check every node's data digest is the backup's.
    #[command(
        after_help = "Examples:\n  opsdeck restore nightly.odb\n  opsdeck restore other.odb --allow-foreign-cluster --yes"
    )]
    Restore {
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Restore a backup taken on another cluster (or one whose manifest names no
        /// cluster): its data replaces this cluster's; its API keys are never imported.
        #[arg(long)]
        allow_foreign_cluster: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Add a node: as a learner first, then (once it has caught up) as a voter.
    #[command(
        after_help = "Examples:\n  opsdeck add-node --spawn\n  opsdeck add-node --id 4 --grpc 10.0.0.4:7101 --http 10.0.0.4:7201"
    )]
    AddNode(AddNodeArgs),
    /// Remove a node from the cluster (leadership moves away first if it leads).
    #[command(
        after_help = "Examples:\n  opsdeck remove-node --id 3\n  opsdeck remove-node --id 3 --force --context prod-eu"
    )]
    RemoveNode(RemoveNodeArgs),
    /// Hand leadership to another up-to-date voter.
    #[command(after_help = "Examples:\n  opsdeck transfer-leader --to 2")]
    TransferLeader(TransferLeaderArgs),
    /// Make a suspect replica again from the others (dev cluster): remove it (refused when
    /// that would cost quorum; a leader hands over first), delete its data, start it empty on
    /// the same id and ports, add it back as a learner that catches up by snapshot, promote
    /// it again, then compare the replicas' digests (`opsdeck check`). Exit status as
    /// `check` when the data is back but the replicas still differ.
    #[command(
        after_help = "Examples:\n  opsdeck check                       # node 3 differs\n  opsdeck rebuild-node --id 3\n  opsdeck rebuild-node --id 3 --cluster ./dev -o json"
    )]
    RebuildNode(RebuildNodeArgs),
    /// Stop a member's process and start it again on its own data, then wait until it has
    /// rejoined and applied what the cluster had committed when it came back. A dev
    /// cluster's node is started from cluster.toml (a leader hands over first: SIGTERM);
    /// another cluster's by its context's `restart` operator command (config.toml
    /// `[contexts.NAME.commands.restart]`), after which it must answer as a new process.
    #[command(
        after_help = "Examples:\n  opsdeck restart-node --id 2\n  opsdeck restart-node --id 2 --timeout-rejoin 2m -o json\n  opsdeck restart-node --id 3 --context prod   # runs prod's `restart` command"
    )]
    RestartNode(RestartNodeArgs),
    /// Restart every node, one at a time: followers first, the leader last after it hands
    /// over; each must rejoin and catch up before the next goes down. Refused when a node is
    /// already down (named). A dev cluster's nodes are started from cluster.toml, another
    /// cluster's by its context's `restart` operator command.
    #[command(
        after_help = "Examples:\n  opsdeck rolling-restart\n  opsdeck rolling-restart --timeout-rejoin 2m --json"
    )]
    RollingRestart(RollingRestartArgs),
    /// Print a shell completion script, e.g. `opsdeck completions bash >
    /// /etc/bash_completion.d/opsdeck` or `opsdeck completions zsh > ~/.zfunc/_opsdeck`.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), or write one page per verb into --dir DIR
    /// (`opsdeck man | man -l -`).
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print every path opsdeck uses here: the config file, the dev dir, the key file and
    /// where the API key comes from, the keymap and theme in effect.
    #[command(after_help = "Examples:\n  opsdeck info -o json")]
    Info {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The named clusters of the config file (`[contexts.NAME]`): list them, pick the one
    /// every verb uses, show what one resolves to.
    #[command(
        after_help = "Examples:\n  opsdeck ctx list\n  opsdeck ctx use prod-eu\n  opsdeck ctx show staging -o json\n  opsdeck status --context staging"
    )]
    Ctx {
        #[command(subcommand)]
        action: CtxAction,
    },
    /// Operator commands of the config file (`[commands.NAME]`, per context in
    /// `[contexts.CTX.commands.NAME]`): list them, or run one on a node with its addresses
    /// filled in (no shell unless the command names one; killed at its timeout).
    #[command(
        after_help = "Examples:\n  opsdeck cmd list --context prod\n  opsdeck cmd run logs --node 2 --context prod\n  opsdeck cmd run restart --node 2 --yes --json\n\nExit status of `cmd run`: the command's own exit code; 124 when it timed out; 128+N when\nsignal N ended it; 5 when refused (read-only, a mutating command without --yes and no\nterminal); otherwise as listed in `opsdeck --help`."
    )]
    Cmd {
        #[command(subcommand)]
        action: CmdAction,
    },
    /// Diagnostics: `debug bundle` writes a redacted .tar.gz of every node's status,
    /// metrics, recent logs, events, settings and data-dir listing, for a support ticket.
    #[command(after_help = "Examples:\n  opsdeck debug bundle --out ticket-4711.tar.gz")]
    Debug {
        #[command(subcommand)]
        action: DebugAction,
    },
    /// Incidents: `incident report` writes what happened in a window as Markdown (summary,
    /// merged timeline, what changed); `incident ack|silence` records an alert's ack or
    /// silence in the cluster's audit trail, where every console and report sees it.
    #[command(
        after_help = "Examples:\n  opsdeck incident report --since 2h --out incident.md\n  opsdeck incident ack node_down --node 1 --note \"disk replaced\""
    )]
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
}

/// Which alert an ack or silence is about: the rule, and its node or tenant (none: the
/// cluster).
#[derive(Args, Debug, Clone)]
pub struct AlertRef {
    /// The alert rule's name, e.g. node_down, quorum_lost (see `opsdeck alerts --rules`).
    pub rule: String,
    /// The node the alert is about.
    #[arg(long, conflicts_with = "tenant")]
    pub node: Option<u64>,
    /// The tenant the alert is about (quota rules).
    #[arg(long)]
    pub tenant: Option<String>,
}

impl AlertRef {
    /// `RULE (node N)`, as the console names the alert.
    pub fn alert_id(&self) -> String {
        let subject = match (&self.node, &self.tenant) {
            (Some(n), _) => format!("node {n}"),
            (None, Some(t)) => format!("tenant {t}"),
            (None, None) => "cluster".to_string(),
        };
        format!("{} ({subject})", self.rule)
    }
}

#[derive(Subcommand, Debug)]
pub enum IncidentAction {
    /// Write an incident report (Markdown) of the last --since: a summary (first alert,
    /// time to first action, leader changes, actions by whom, when resolved), the timeline
    /// merged from every node's events and the audit trail (acks, silences, operator
    /// actions), and what changed (membership, keys, quotas, settings). Without --out it
    /// is printed.
    #[command(
        after_help = "Examples:\n  opsdeck incident report --since 2h --out incident.md\n  opsdeck incident report --since 30m --context prod-eu\n  opsdeck incident report --since 1h --json"
    )]
    Report {
        /// The window: the last DURATION, e.g. 30m, 2h.
        #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
        since: Duration,
        /// Write the report here (FILE.partial until complete) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Acknowledge an alert: recorded in the cluster's audit trail (admin key), so every
    /// console and incident report sees who acknowledged it and when.
    #[command(
        after_help = "Examples:\n  opsdeck incident ack node_down --node 1\n  opsdeck incident ack quorum_lost --note \"restarting node 3\""
    )]
    Ack {
        #[command(flatten)]
        alert: AlertRef,
        /// A line saying what is being done.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Record a silence of an alert for --for (0 lifts it) in the cluster's audit trail.
    #[command(
        after_help = "Examples:\n  opsdeck incident silence disk_usage_high --node 2 --for 4h\n  opsdeck incident silence disk_usage_high --node 2 --for 0"
    )]
    Silence {
        #[command(flatten)]
        alert: AlertRef,
        /// How long, e.g. 15m, 1h, 24h (at most 7d); 0 lifts the silence.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        for_: Duration,
        /// A line saying why.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum CmdAction {
    /// The operator commands of the context in use: name, key, mutating, timeout, argv.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run NAME on node --node (its addresses from the cluster's membership); prints its
    /// output (the first 256 KiB) and how it ended.
    Run {
        name: String,
        /// The node the command is about (its id).
        #[arg(long)]
        node: u64,
        /// Refuse commands marked mutating (as the context's read_only = true does).
        #[arg(long)]
        read_only: bool,
        /// Run a mutating command without asking.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum DebugAction {
    /// Write a diagnostics bundle (.tar.gz): from every node its status, /metrics, recent
    /// logs and events, settings and data-dir listing (names and sizes only); the
    /// membership, the audit trail, the alert states, and a manifest naming the nodes that
    /// did not answer. Never any value, key secret, cluster secret or TLS key. Exit 0 when
    /// written, even with nodes down (they are listed).
    #[command(
        after_help = "Examples:\n  opsdeck debug bundle --out ticket-4711.tar.gz\n  opsdeck debug bundle --since 15m --out prod.tar.gz --context prod-eu --json"
    )]
    Bundle {
        /// The archive to write (FILE.partial until complete).
        #[arg(long)]
        out: PathBuf,
        /// Logs and events of the last DURATION, e.g. 15m, 1h.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        since: Duration,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum CtxAction {
    /// Every context (the built-in `dev` too); `*` marks the one in use.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Make NAME the current context: rewrites the `current_context` line of the config
    /// file and nothing else (comments stay).
    Use {
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// What NAME (default: the context in use) resolves to: endpoints, key, TLS.
    Show {
        name: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args, Debug)]
pub struct AddNodeArgs {
    /// Start the new node in the dev cluster (--cluster DIR or the default dev dir): next
    /// free id, free ports, data in DIR/nN, recorded in cluster.toml.
    #[arg(long, conflicts_with_all = ["id", "grpc", "http"])]
    pub spawn: bool,
    /// Id of an already running node to add.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "spawn", requires_all = ["grpc", "http"])]
    pub id: Option<u64>,
    /// Its gRPC address (HOST:PORT).
    #[arg(long, requires = "id")]
    pub grpc: Option<String>,
    /// Its HTTP address (HOST:PORT).
    #[arg(long, requires = "id")]
    pub http: Option<String>,
    /// Leave it a learner (do not make it a voter once caught up).
    #[arg(long)]
    pub no_promote: bool,
    /// Give up (leaving it a learner) if it has not caught up by then.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub catch_up_timeout: Duration,
    /// Remove the new node again (and fail) if it gains no log entry, and takes no byte of
    /// a snapshot, for this long: the leader cannot replicate to it (e.g. it runs with
    /// another cluster's secret).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct RemoveNodeArgs {
    /// Id of the member to remove.
    #[arg(long)]
    pub id: u64,
    /// Remove a voter even if the voters left that answer are not a majority (the change
    /// then completes only once enough of them are back).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct RestartNodeArgs {
    /// Id of the member to restart.
    #[arg(long)]
    pub id: u64,
    /// Fail if it has not rejoined and caught up by then (it keeps running).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout_rejoin: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    /// After compacting, shrink every node's database file: a rolling restart with an
    /// offline rewrite of each node's database (dev cluster only; elsewhere see
    /// `opsdeck defrag-data --help`).
    #[arg(long)]
    pub defrag: bool,
    /// With --defrag: stop (leaving the rest as they are) if a node has not rejoined and
    /// caught up by then.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, requires = "defrag")]
    pub timeout_rejoin: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct DefragDataArgs {
    /// The stopped node's data dir (its `--data`).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct RollingRestartArgs {
    /// Stop (leaving the rest as they are) if a node has not rejoined and caught up by then.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout_rejoin: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct RebuildNodeArgs {
    /// Id of the member to rebuild.
    #[arg(long)]
    pub id: u64,
    /// Give up (leaving it a learner) if it has not caught up by then.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub catch_up_timeout: Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct TransferLeaderArgs {
    /// Id of the voter to lead.
    #[arg(long)]
    pub to: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Every key: id, role, tenants, state, expiry, last use (never secrets).
    List {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Create a key and print its secret once.
    Create {
        /// metrics (GET /metrics and /sd/prometheus only: for Prometheus), read, write or
        /// admin.
        #[arg(long)]
        role: String,
        /// Limit the key to a tenant (repeatable); without it the key reaches every tenant.
        #[arg(long)]
        tenant: Vec<String>,
        /// Refuse the key after this long, e.g. 30d; at most 10 years (3650d).
        #[arg(long, value_parser = parse_key_lifetime)]
        expires: Option<Duration>,
        /// Write the secret to FILE (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Replace a key with a new one of the same role and tenants; the old one keeps
    /// working for the grace period.
    Rotate {
        #[arg(long)]
        id: String,
        /// How long the old key keeps working, e.g. 24h, 30d; at most 10 years (3650d).
        #[arg(long, default_value = "24h", value_parser = parse_grace)]
        grace: Duration,
        /// Write the new secret to FILE (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Refuse a key from now on, everywhere.
    Revoke {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum WritesAction {
    /// Refuse client writes (put, delete, cas) on every node until `writes resume`, or
    /// for `--for`; the pause is replicated, so restarts and new leaders keep it.
    #[command(
        after_help = "Examples:\n  opsdeck writes pause --reason \"disk swap on node 2\" --for 30m\n  opsdeck writes pause --reason \"schema migration\""
    )]
    Pause {
        /// Why: shown with every refused write, in `status` and on the console's banner.
        #[arg(long)]
        reason: String,
        /// Resume by itself after this long (e.g. 30m, 2h); default: until `writes resume`.
        #[arg(long = "for", value_parser = |s: &str| parse_key_duration("the pause", s))]
        for_: Option<Duration>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Accept client writes again.
    #[command(
        after_help = "Examples:\n  opsdeck writes resume\n  opsdeck writes resume --context prod-eu -o json"
    )]
    Resume {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuotaAction {
    /// Usage and limits of every tenant (or one).
    Show {
        tenant: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Give a tenant limits: the tier's defaults (free: 10,000 keys / 10 MiB; premium:
    /// 1,000,000 keys / 1 GiB), each overridable. A limit of 0 means zero: the tenant may
    /// then write nothing new (deletes still work); `quota reset` drops the limits.
    Set {
        tenant: String,
        #[arg(long, default_value = "free")]
        tier: String,
        /// Most keys (0: none at all). Default: the tier's.
        #[arg(long)]
        max_keys: Option<u64>,
        /// Most key plus value bytes, e.g. 10MiB, 500kB, 1048576 (0: none at all). Default:
        /// the tier's.
        #[arg(long, value_parser = parse_bytes)]
        max_bytes: Option<u64>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Drop a tenant's limits (usage is still counted) and clear its refusal count.
    Reset {
        tenant: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// A duration of at most `limits::MAX_KEY_DURATION` (`what` names it in the error).
fn parse_key_duration(what: &str, s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("bad duration {s:?}: {e} (e.g. 24h, 30d)"))?;
    opsdeck_node::types::limits::key_duration_ms(what, d)?;
    Ok(d)
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    parse_key_duration("a grace period", s)
}

fn parse_key_lifetime(s: &str) -> Result<Duration, String> {
    parse_key_duration("a key lifetime", s)
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s).map_err(|e| format!("bad size {s:?}: {e} (e.g. 10MiB, 500kB)"))
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
    #[arg(
        long,
        value_delimiter = ',',
        env = "OPSDECK_ENDPOINTS",
        conflicts_with = "context"
    )]
    pub endpoints: Vec<String>,
    /// Directory of a dev cluster (reads its cluster.toml). Default: the config's context,
    /// else the default dev dir.
    #[arg(long, conflicts_with_all = ["endpoints", "context"])]
    pub cluster: Option<PathBuf>,
    /// File holding the API key. Default: $OPSDECK_API_KEY, else the cluster dir's admin.key.
    #[arg(long, env = "OPSDECK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Talk to the nodes over TLS, trusting this CA certificate (PEM).
    #[arg(long, env = "OPSDECK_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The most a call to the cluster may take, connecting and every retry included (a
    /// verb retries while no node answers or no leader is elected).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl ClusterArgs {
    /// The cluster these flags name, completed from the config file (read here).
    pub fn target(&self) -> Result<Target> {
        self.target_in(&self.config.load()?)
    }

    /// The cluster these flags name, completed from `config`.
    pub fn target_in(&self, config: &Config) -> Result<Target> {
        Target {
            endpoints: self.endpoints.clone(),
            cluster_dir: self.cluster.clone(),
            key_file: self.key_file.clone(),
            tls_ca: self.tls_ca.clone(),
            timeout: self.timeout,
            ..Target::default()
        }
        .with_config(config, self.config.context.as_deref())
    }

    /// JSON output asked for (`-o json` or `--json`).
    pub fn json(&self) -> bool {
        self.output.json()
    }
}

/// Which config file, and which of its contexts.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (default: $XDG_CONFIG_HOME/opsdeck/config.toml, i.e.
    /// ~/.config/opsdeck/config.toml).
    #[arg(long, env = "OPSDECK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The cluster of the config's `[contexts.NAME]` (default: its current_context; `dev`,
    /// the default dev cluster, needs no config). Not with --endpoints or --cluster.
    #[arg(long, env = "OPSDECK_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config> {
        Config::load_from(self.config.as_deref())
    }
}

/// How a verb prints its result.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document. In `get`, `scan` and `cas` a value that is not UTF-8 is given
    /// as `"value_base64"` (`"current_base64"`): standard base64, padded, never lossy.
    Json,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,
    /// Same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

impl OutputArgs {
    pub fn json(&self) -> bool {
        self.json || self.output == OutputFormat::Json
    }
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Read node settings from this TOML file: each key is a flag's long name in
    /// snake_case (`storage_reserve = "256MiB"`, `init = true`). Flags win over
    /// OPSDECK_NODE_* variables, and both over the file. SIGHUP reads it again and puts the
    /// rate limit in effect, with the TLS certificate and key reloaded from their files.
    #[arg(long, env = "OPSDECK_NODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, env = "OPSDECK_NODE_ID", value_parser = clap::value_parser!(u64).range(1..))]
    pub id: u64,
    /// gRPC listen address (Raft and clients).
    #[arg(long, env = "OPSDECK_NODE_GRPC")]
    pub grpc: std::net::SocketAddr,
    /// HTTP listen address (health, metrics, /kv).
    #[arg(long, env = "OPSDECK_NODE_HTTP")]
    pub http: std::net::SocketAddr,
    /// The gRPC address other nodes and clients reach this node at, if not --grpc (behind
    /// NAT, a load balancer or a proxy). It is what the membership records for this node.
    #[arg(long, env = "OPSDECK_NODE_ADVERTISE_GRPC", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub advertise_grpc: Option<String>,
    /// The local address to dial other nodes from (a host with several addresses; lets
    /// firewalls and proxies between nodes tell them apart).
    #[arg(long, env = "OPSDECK_NODE_SOURCE_IP", value_name = "IP")]
    pub source_ip: Option<std::net::IpAddr>,
    /// Data directory; created if missing, resumed if it holds this node's data.
    #[arg(long, env = "OPSDECK_NODE_DATA")]
    pub data: PathBuf,
    /// Bootstrap a new single-node cluster (ignored if the node already belongs to one).
    #[arg(long, env = "OPSDECK_NODE_INIT")]
    pub init: bool,
    /// Build a snapshot every N log entries.
    #[arg(long, env = "OPSDECK_NODE_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// Log entries kept behind the latest snapshot.
    #[arg(long, env = "OPSDECK_NODE_KEEP_LOGS", default_value_t = 1_000)]
    pub keep_logs: u64,
    /// Keys per step of the cleanup of data a restore replaced (for tests).
    #[arg(long, env = "OPSDECK_NODE_CLEANUP_STEP_KEYS", hide = true)]
    pub cleanup_step_keys: Option<usize>,
    /// Pause after each cleanup step, in ms (for tests).
    #[arg(
        long,
        env = "OPSDECK_NODE_CLEANUP_STEP_PAUSE_MS",
        hide = true,
        default_value_t = 0
    )]
    pub cleanup_step_pause_ms: u64,
    /// Abandon a restore that received no chunk for this long (its client was killed or
    /// went away): the staged copy is deleted on every node, the data in use is unchanged.
    #[arg(long, env = "OPSDECK_NODE_RESTORE_IDLE_TIMEOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub restore_idle_timeout: std::time::Duration,
    /// Copy the cluster secret from FILE if the data dir has none (joining a cluster).
    #[arg(long, env = "OPSDECK_NODE_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Serve gRPC and HTTP over TLS with this certificate (PEM); needs --tls-key and
    /// --tls-ca.
    #[arg(long, env = "OPSDECK_NODE_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "OPSDECK_NODE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that signed the other nodes' certificates.
    #[arg(long, env = "OPSDECK_NODE_TLS_CA", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// With --init: use the API key in FILE as the first admin key instead of a new one.
    #[arg(long, env = "OPSDECK_NODE_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// Free space the data dir's filesystem must keep. Below it the node is "storage
    /// full": writes are refused (HTTP 507, kind storage_full), a follower takes no new log
    /// entries, reads and elections go on; it clears by itself once space is freed. A
    /// quarter of it (at most 64 MiB) is kept as the file DATA/ballast, released when the
    /// disk fills. 0 turns this off.
    #[arg(long, env = "OPSDECK_NODE_STORAGE_RESERVE", default_value = "128MiB", value_parser = parse_bytes)]
    pub storage_reserve: u64,
    /// Requests per read/write key, as N/DURATION (e.g. 2000/60s), or `off`. Admin keys
    /// are never limited.
    #[arg(long, env = "OPSDECK_NODE_RATE_LIMIT", default_value = "2000/60s", value_parser = parse_rate)]
    pub rate_limit: Rate,
    /// Requests a key may send at once above its steady rate.
    #[arg(long, env = "OPSDECK_NODE_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
    #[command(flatten)]
    pub timing: RaftTiming,
}

/// A request rate: `requests` per `per`, or no limit.
#[derive(Debug, Clone, Copy)]
pub enum Rate {
    Off,
    Limit { requests: u32, per: Duration },
}

/// `HOST:PORT` with a non-empty host and a port number, as dialled by other nodes.
fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT (e.g. 10.0.0.1:7101), got {s:?}"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "expected HOST:PORT (e.g. 10.0.0.1:7101), got {s:?}"
        ));
    }
    Ok(s.to_string())
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Rate::Off);
    }
    let (n, per) = s
        .split_once('/')
        .ok_or_else(|| format!("expected N/DURATION (e.g. 2000/60s) or off, got {s:?}"))?;
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("bad request count {n:?}: expected a positive integer"))?;
    let per =
        humantime::parse_duration(per.trim()).map_err(|e| format!("bad duration {per:?}: {e}"))?;
    if per.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(Rate::Limit { requests: n, per })
}

/// Raft timing, shared by `node` and `dev`.
#[derive(Args, Debug, Clone)]
pub struct RaftTiming {
    /// Leader heartbeat interval in milliseconds. openraft also uses it as the deadline of
    /// each replication RPC, so it must cover a follower's append under load.
    #[arg(long, env = "OPSDECK_NODE_HEARTBEAT_MS", default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Election timeout range in milliseconds, MIN-MAX: a follower that hears no leader for
    /// a random time in this range starts an election. Lower fails over faster; too low for
    /// a loaded machine causes needless elections.
    #[arg(long, env = "OPSDECK_NODE_ELECTION_TIMEOUT_MS", default_value = "150-300", value_parser = parse_range)]
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
    /// Passed to every node (see `opsdeck node --help`).
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
    #[command(flatten)]
    pub timing: RaftTiming,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// `opsdeck console`. Defaults come from `~/.config/opsdeck/config.toml` (`--config`);
/// flags win.
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
    /// Alert rules file for the Alerts pane (default: the built-in rules; see
    /// `opsdeck alerts --print-rules`).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// Where alerts that fire and resolve are sent (besides `[[notify]]` in config.toml).
#[derive(Args, Debug, Clone, Default)]
pub struct NotifyArgs {
    /// Send alerts that fire and resolve to this Alertmanager (API v2; its base URL, e.g.
    /// http://127.0.0.1:9093), re-sent every 30s while firing; the console's acks and
    /// silences become its silences. Repeatable.
    #[arg(long = "alertmanager", value_name = "URL", value_parser = alertmanager_flag)]
    pub alertmanager: Vec<Receiver>,
    /// POST each batch of alerts that fire and resolve to URL as JSON (Alertmanager's
    /// webhook shape; `format = "slack"` in a `[[notify]]` table sends `{"text"}`).
    /// Repeatable.
    #[arg(long = "webhook", value_name = "URL", value_parser = webhook_flag)]
    pub webhook: Vec<Receiver>,
}

impl NotifyArgs {
    pub fn receivers(&self) -> Vec<Receiver> {
        self.alertmanager
            .iter()
            .chain(&self.webhook)
            .cloned()
            .collect()
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new records until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Only this node's records (its id).
    #[arg(long)]
    pub node: Option<u64>,
    /// Lowest level shown: trace, debug, info, warn or error.
    #[arg(long, default_value = "trace", value_parser = parse_level)]
    pub level: tracing::Level,
    /// Only records whose message, target or fields match this regular expression.
    #[arg(long)]
    pub grep: Option<String>,
    /// Only records from the last DURATION, e.g. 10m, 1h.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Most recent records asked of each node (at most 10000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub history: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn parse_level(s: &str) -> Result<tracing::Level, String> {
    s.parse()
        .map_err(|_| format!("unknown level {s:?}: use trace, debug, info, warn or error"))
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
    /// Keys are PREFIXk00000, PREFIXk00001, ...: another prefix leaves the keys of an
    /// earlier bench (a prefill) as they are.
    #[arg(long, default_value = "bench/")]
    pub prefix: String,
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

/// What `opsdeck alerts --export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// A Prometheus rules file (YAML `groups:`), for `rule_files` of prometheus.yml.
    Prometheus,
}

#[derive(Args, Debug)]
#[command(after_long_help = crate::alerts::alerts_help())]
pub struct AlertsArgs {
    /// Rules file (TOML `[[rule]]` tables, see --print-rules); replaces the built-in rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Print the rules in effect (the built-in file unless --rules) and exit.
    #[arg(long)]
    pub print_rules: bool,
    /// Print the rules in effect as FORMAT and exit, contacting no node:
    /// `--export prometheus > opsdeck-rules.yml` (see below for how each figure is measured).
    #[arg(long, value_name = "FORMAT", conflicts_with_all = ["print_rules", "follow"])]
    pub export: Option<ExportFormat>,
    /// With --export prometheus: the job_name of the scrape config that scrapes the nodes.
    #[arg(long, default_value = "opsdeck", requires = "export")]
    pub job: String,
    /// Keep watching and print each state change as it happens (one line, or one JSON
    /// object per line with --json) until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// How often every node is asked for its status.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Without --follow: how long to watch before printing the table. One look cannot
    /// show that a condition held for a rule's whole `for`: a rule true throughout the
    /// watch whose `for` is longer is shown PENDING with how long it was seen true, e.g.
    /// `3s/1m`; rules with `for` = 0 fire at once. Error rates need two looks, and term
    /// changes are counted only while watching: use --follow for those.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, conflicts_with = "follow")]
    pub observe: Duration,
    /// Exit as a Nagios check after printing the table: 0 when nothing fires (or only
    /// info), 1 when only warnings fire, 2 when a critical alert fires. Pending alerts
    /// do not count. A failure to run at all keeps the usual exit statuses.
    #[arg(long, conflicts_with_all = ["follow", "export", "print_rules"])]
    pub check: bool,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}
