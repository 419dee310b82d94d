//! The Raft type configuration and the replicated commands of the opsdeck ledger.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::security::keys::{KeyHash, KeyRecord};
use crate::security::quota::Quota;

/// Node ids are small integers chosen by the operator (`--id N`).
pub type NodeId = u64;

/// Where a member of the cluster can be reached. Stored in the replicated membership, so
/// every node (and every client that asks any node) knows every member's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// gRPC address, `host:port` (Raft traffic and client calls).
    pub grpc: String,
    /// HTTP address, `host:port` (health, metrics, curl users).
    pub http: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc={} http={}", self.grpc, self.http)
    }
}

/// One client command. A Raft log entry carries a batch of them (group commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster; proposed once by the node that bootstraps it.
    InitCluster {
        cluster_id: String,
    },
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Compare-and-set: applies `new` (None deletes) only if the current value equals `expected`
    /// (None: the key must be absent).
    Cas {
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
    /// An administrative change; applying it also appends its audit record. `at_ms` is the
    /// proposer's clock, so every node records (and judges expiry by) the same time.
    Admin {
        actor: String,
        at_ms: i64,
        action: AdminAction,
    },
    /// Records an admin action carried out outside the state machine (membership change,
    /// compaction, backup).
    Audit {
        actor: String,
        at_ms: i64,
        action: String,
        args: String,
        result: String,
    },
    /// When API keys were last used, as seen by one node (reported about once a minute).
    TouchKeys {
        used: Vec<(String, i64)>,
    },
    /// Starts staging a restore into a fresh data generation (see
    /// `store::state_machine::restore`); what a previous, unfinished restore staged is
    /// abandoned.
    RestoreBegin {
        id: String,
        actor: String,
        at_ms: i64,
        /// What is being restored, for the audit trail (file, cluster, index, keys).
        source: String,
        /// The cluster the backup's manifest names ("" when it names none).
        backup_cluster: String,
        /// Whether a backup of another (or an unknown) cluster may be restored.
        allow_foreign: bool,
    },
    /// The next batch of a backup's state-machine pairs, staged out of sight.
    RestoreChunk {
        id: String,
        seq: u64,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Makes the staged data current (a switch of generations, in one atomic batch), if
    /// exactly `chunks` chunks holding `pairs` pairs were staged.
    RestoreCommit {
        id: String,
        actor: String,
        at_ms: i64,
        chunks: u64,
        pairs: u64,
    },
    /// Gives up the restore being staged, if it is still `id`: its staged generation goes
    /// to the janitor and the data in use stays. Proposed by the leader when no chunk of it
    /// came for the node's `--restore-idle-timeout` (a client killed or gone away).
    RestoreAbandon {
        id: String,
        actor: String,
        at_ms: i64,
        reason: String,
    },
}

/// Changes to keys and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminAction {
    CreateKey(KeyRecord),
    /// Creates `new_id` with the old key's role and tenants; the old key stays valid until
    /// `grace_until_ms`.
    RotateKey {
        old_id: String,
        new_id: String,
        new_hash: KeyHash,
        grace_until_ms: i64,
    },
    RevokeKey {
        id: String,
    },
    SetQuota {
        tenant: String,
        quota: Quota,
    },
    /// Drops the tenant's limits (usage is still counted) and clears its violation count.
    ResetQuota {
        tenant: String,
    },
    /// Maintenance mode: client writes are refused on every node until a resume. The
    /// command's actor and `at_ms` are who paused and since when; `until_ms` (the proposer's
    /// clock plus `--for`) is when the leader resumes by itself.
    PauseWrites {
        reason: String,
        until_ms: Option<i64>,
    },
    /// Ends the pause. `ending_since`: an automatic resume at the pause's `until_ms`, for
    /// the pause that began then (a late duplicate, or one for an older pause, is a no-op).
    ResumeWrites {
        ending_since: Option<i64>,
    },
    /// A client checked a backup file whole (its checksum and digest): the last backup is
    /// verified when its payload checksum is this one.
    BackupVerified {
        payload_sha256: String,
        applied_index: u64,
        file: String,
    },
}

/// The last backup streamed from the cluster, and whether a client has verified it, as the
/// replicated state holds it (`m/backup_check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCheck {
    /// Its payload's SHA-256 (hex); None for a backup recorded by an older build.
    pub payload_sha256: Option<String>,
    /// When a client recorded that it verified this backup.
    pub verified_ms: Option<i64>,
}

/// Writes paused (maintenance mode), as the replicated state holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritesPause {
    /// The admin key that paused.
    pub by: String,
    pub since_ms: i64,
    pub reason: String,
    /// When the leader resumes writes by itself (None: only a `resume` does).
    pub until_ms: Option<i64>,
}

impl WritesPause {
    /// `writes paused by KEY-ID since T: TEXT`: what a refused write says.
    pub fn refusal(&self) -> String {
        let until = self
            .until_ms
            .map(|u| format!(" (until {})", utc_text(u)))
            .unwrap_or_default();
        format!(
            "writes paused by {} since {}: {}{until}; reads go on, an admin runs `opsdeck writes resume` to end it",
            self.by,
            utc_text(self.since_ms),
            self.reason
        )
    }

    /// Whether the pause's time is up at `now_ms` (by the leader's clock).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.until_ms.is_some_and(|u| now_ms >= u)
    }
}

/// The value of `name=VALUE` among the space-separated words of an audit record's args the
/// node wrote itself (e.g. the backup's `sha256=`).
pub fn arg_value<'a>(args: &'a str, name: &str) -> Option<&'a str> {
    args.split(' ')
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// `2026-12-02T13:00:00Z`; the milliseconds as a number for a time humantime cannot write
/// (before 1970 or past 9999).
pub fn utc_text(unix_ms: i64) -> String {
    use std::fmt::Write;
    let Ok(ms) = u64::try_from(unix_ms) else {
        return format!("{unix_ms} ms");
    };
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let mut s = String::new();
    match write!(s, "{}", humantime::format_rfc3339_seconds(t)) {
        Ok(()) => s,
        Err(_) => format!("{unix_ms} ms"),
    }
}

impl AdminAction {
    /// The audit name and arguments (never a secret: keys are named by id only).
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            AdminAction::CreateKey(k) => (
                "key.create",
                format!(
                    "id={} role={} tenants={:?} expires_ms={}",
                    k.id,
                    k.role,
                    k.tenants,
                    k.expires_ms.map_or("never".to_string(), |t| t.to_string())
                ),
            ),
            AdminAction::RotateKey {
                old_id,
                new_id,
                grace_until_ms,
                ..
            } => (
                "key.rotate",
                format!("id={old_id} successor={new_id} grace_until_ms={grace_until_ms}"),
            ),
            AdminAction::RevokeKey { id } => ("key.revoke", format!("id={id}")),
            AdminAction::SetQuota { tenant, quota } => (
                "quota.set",
                format!(
                    "tenant={tenant} tier={} max_keys={} max_bytes={}",
                    quota.tier, quota.max_keys, quota.max_bytes
                ),
            ),
            AdminAction::ResetQuota { tenant } => ("quota.reset", format!("tenant={tenant}")),
            AdminAction::PauseWrites { reason, until_ms } => (
                "writes.pause",
                format!(
                    "reason={reason:?} until={}",
                    until_ms.map_or("resume".to_string(), utc_text)
                ),
            ),
            AdminAction::BackupVerified {
                payload_sha256,
                applied_index,
                file,
            } => (
                "backup.verify",
                format!("file={file:?} index={applied_index} sha256={payload_sha256}"),
            ),
            AdminAction::ResumeWrites { ending_since } => (
                "writes.resume",
                match ending_since {
                    Some(since) => {
                        format!("automatic: the pause since {} ran out", utc_text(*since))
                    }
                    None => String::new(),
                },
            ),
        }
    }
}

impl Command {
    /// Roughly how many bytes the command adds to a log entry (keys and values).
    pub fn size_hint(&self) -> usize {
        const SMALL: usize = 64;
        SMALL
            + match self {
                Command::Put { key, value } => key.len() + value.len(),
                Command::Cas { key, expected, new } => {
                    key.len()
                        + expected.as_ref().map_or(0, Vec::len)
                        + new.as_ref().map_or(0, Vec::len)
                }
                Command::Delete { key } => key.len(),
                Command::RestoreChunk { pairs, .. } => {
                    pairs.iter().map(|(k, v)| 16 + k.len() + v.len()).sum()
                }
                _ => 0,
            }
    }

    /// Whether the command goes in a log entry of its own, never batched with others: a
    /// restore's commit, so that the digest at its entry's index is exactly the restored
    /// state's (a write batched after it would change it), which the restore then checks
    /// every node for.
    pub fn alone(&self) -> bool {
        matches!(self, Command::RestoreCommit { .. })
    }

    /// Short operation name for metrics and logs (never includes keys or values).
    pub fn op_name(&self) -> &'static str {
        match self {
            Command::InitCluster { .. } => "init",
            Command::Put { .. } => "put",
            Command::Delete { .. } => "delete",
            Command::Cas { .. } => "cas",
            Command::Admin { .. } => "admin",
            Command::Audit { .. } => "audit",
            Command::TouchKeys { .. } => "touch_keys",
            Command::RestoreBegin { .. } => "restore_begin",
            Command::RestoreChunk { .. } => "restore_chunk",
            Command::RestoreCommit { .. } => "restore_commit",
            Command::RestoreAbandon { .. } => "restore_abandon",
        }
    }
}

/// The outcome of one command, decided identically on every node at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    /// `revision` is the log index of the entry that carried the write.
    Put {
        revision: u64,
    },
    Delete {
        existed: bool,
    },
    Cas {
        succeeded: bool,
        current: Option<Vec<u8>>,
    },
    /// The command was valid to propose but refused by the state machine (e.g. limits).
    Rejected {
        reason: String,
    },
    /// A write refused because it would take its tenant past its quota; nothing changed.
    QuotaExceeded {
        reason: String,
    },
    /// The admin action named something that does not exist (e.g. an unknown key id).
    NotFound {
        reason: String,
    },
    /// A restore was swapped in: the state machine now holds the backup's data, as of the
    /// entry at `index` (which carried the commit alone, see [`Command::alone`]).
    Restored {
        keys: u64,
        index: u64,
    },
    /// A client write refused because writes are paused (maintenance mode); nothing changed.
    WritesPaused {
        reason: String,
    },
}

/// The application data of one Raft log entry: a batch of commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub commands: Vec<Command>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} commands", self.commands.len())
    }
}

/// One result per command of the entry, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub results: Vec<CommandResult>,
}

openraft::declare_raft_types!(
    /// The opsdeck Raft type configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Hard limits on client input, checked before proposing and again at apply time.
pub mod limits {
    /// Longest key, in bytes.
    pub const MAX_KEY_BYTES: usize = 1024;
    /// Largest value, in bytes.
    pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

    use std::time::Duration;

    /// Longest key lifetime or rotation grace period: ten years of 365 days.
    pub const MAX_KEY_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    /// [`MAX_KEY_DURATION`] as people read it.
    pub const MAX_KEY_DURATION_TEXT: &str = "10 years (3650 days)";

    /// `d` in milliseconds when it is at most [`MAX_KEY_DURATION`]; otherwise an error
    /// naming `what` (e.g. "the grace period"), the figure asked for and the limit.
    pub fn key_duration_ms(what: &str, d: Duration) -> Result<u64, String> {
        if d > MAX_KEY_DURATION {
            return Err(format!(
                "{what} of {} days is longer than the limit of {MAX_KEY_DURATION_TEXT}; give at most 3650d",
                d.as_secs() / 86_400
            ));
        }
        // At most ten years in milliseconds, far below u64::MAX.
        Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Checks a key and an optional value against [`limits`]; the error names the limit.
pub fn validate_entry(key: &str, value: Option<&[u8]>) -> Result<(), String> {
    if key.is_empty() {
        return Err("key is empty: give a non-empty key such as `tenant/name`".into());
    }
    if key.len() > limits::MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes, over the limit of {} bytes",
            key.len(),
            limits::MAX_KEY_BYTES
        ));
    }
    if key.chars().any(char::is_control) {
        return Err("key contains control characters".into());
    }
    if let Some(v) = value {
        if v.len() > limits::MAX_VALUE_BYTES {
            return Err(format!(
                "value is {} bytes, over the limit of {} bytes",
                v.len(),
                limits::MAX_VALUE_BYTES
            ));
        }
    }
    Ok(())
}
