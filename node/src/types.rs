//! The Raft type configuration and the replicated commands of the opsdeck ledger.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

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
}

impl Command {
    /// Short operation name for metrics and logs (never includes keys or values).
    pub fn op_name(&self) -> &'static str {
        match self {
            Command::InitCluster { .. } => "init",
            Command::Put { .. } => "put",
            Command::Delete { .. } => "delete",
            Command::Cas { .. } => "cas",
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
        SnapshotData = Cursor<Vec<u8>>,
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
