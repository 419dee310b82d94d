//! The audit trail: one replicated record per admin action.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail (assigned at apply time, the same on every node).
    pub seq: u64,
    pub at_ms: i64,
    /// Id of the API key that acted (`bootstrap` for the cluster's own first key).
    pub actor: String,
    /// e.g. `key.rotate`, `quota.set`, `member.add`.
    pub action: String,
    /// The action's arguments, never a secret.
    pub args: String,
    /// `ok` or what went wrong.
    pub result: String,
}
