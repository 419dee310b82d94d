//! Figures: the named numbers a rule's condition tests, and the subjects they describe.

use std::fmt;

use serde::Serialize;

/// What kind of subject a figure describes; one rule instance exists per subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Cluster,
    Node,
    Tenant,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Cluster => "cluster",
            Scope::Node => "node",
            Scope::Tenant => "tenant",
        })
    }
}

/// Who an alert instance is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Cluster,
    Node(u64),
    /// A configured endpoint whose node id is not known (it never answered and no member
    /// list names its address).
    Endpoint(String),
    Tenant(String),
}

impl Subject {
    pub fn scope(&self) -> Scope {
        match self {
            Subject::Cluster => Scope::Cluster,
            Subject::Node(_) | Subject::Endpoint(_) => Scope::Node,
            Subject::Tenant(_) => Scope::Tenant,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Cluster => f.write_str("cluster"),
            Subject::Node(id) => write!(f, "node {id}"),
            Subject::Endpoint(addr) => write!(f, "node at {addr}"),
            Subject::Tenant(t) => write!(f, "tenant {t}"),
        }
    }
}

/// A named figure rules can test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Figure {
    NodeUp,
    P99LatencyMs,
    ErrorRatePct,
    DiskUsedPct,
    StorageUsedPct,
    StorageFull,
    StorageKeys,
    StorageBytes,
    FollowerLag,
    QuorumOk,
    TermChanges5m,
    BackupAgeH,
    BackupUnverifiedH,
    QuotaUsedPct,
    ReplicaDiverged,
}

impl Figure {
    pub const ALL: [Figure; 15] = [
        Figure::NodeUp,
        Figure::P99LatencyMs,
        Figure::ErrorRatePct,
        Figure::DiskUsedPct,
        Figure::StorageUsedPct,
        Figure::StorageFull,
        Figure::StorageKeys,
        Figure::StorageBytes,
        Figure::FollowerLag,
        Figure::QuorumOk,
        Figure::TermChanges5m,
        Figure::BackupAgeH,
        Figure::BackupUnverifiedH,
        Figure::QuotaUsedPct,
        Figure::ReplicaDiverged,
    ];

    /// The name rules use.
    pub fn name(self) -> &'static str {
        match self {
            Figure::NodeUp => "node_up",
            Figure::P99LatencyMs => "p99_latency_ms",
            Figure::ErrorRatePct => "error_rate_pct",
            Figure::DiskUsedPct => "disk_used_pct",
            Figure::StorageUsedPct => "storage_used_pct",
            Figure::StorageFull => "storage_full",
            Figure::StorageKeys => "storage_keys",
            Figure::StorageBytes => "storage_bytes",
            Figure::FollowerLag => "follower_lag",
            Figure::QuorumOk => "quorum_ok",
            Figure::TermChanges5m => "term_changes_5m",
            Figure::BackupAgeH => "backup_age_h",
            Figure::BackupUnverifiedH => "backup_unverified_h",
            Figure::QuotaUsedPct => "quota_used_pct",
            Figure::ReplicaDiverged => "replica_diverged",
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            Figure::QuorumOk
            | Figure::TermChanges5m
            | Figure::BackupAgeH
            | Figure::BackupUnverifiedH => Scope::Cluster,
            Figure::QuotaUsedPct => Scope::Tenant,
            _ => Scope::Node,
        }
    }

    /// Whether the nodes' metrics cannot express it, so `--export prometheus` leaves out
    /// the rules that test it (they run in the console and `opsdeck alerts` only).
    pub fn console_only(self) -> bool {
        // The digest is a 256-bit number the nodes do not export as a metric.
        matches!(self, Figure::ReplicaDiverged)
    }

    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every figure name, comma-separated (for error messages).
    pub fn names() -> String {
        Figure::ALL.map(Figure::name).join(", ")
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each figure means; shown by `opsdeck alerts --help` and kept in step with
/// [`Figure::ALL`] by a test.
pub const FIGURES_HELP: &str = "\
Figures (scope: one alert per cluster, per node or per tenant):
  node_up           node     1 if the node's endpoint answered this tick, else 0
  p99_latency_ms    node     highest p99 latency of any operation kind (last minute)
  error_rate_pct    node     failed / all operations over the last minute, from the
                             growth of the node's counters between ticks; no data
                             without traffic or before a second look
  disk_used_pct     node     used share of the filesystem holding the data dir
  storage_used_pct  node     data dir / (data dir + free space): how much of the
                             room the ledger could grow into it already fills
  storage_full      node     1 if the node's free space is below its reserve
                             (--storage-reserve): it refuses writes and new log
                             entries until space is freed, else 0
  storage_keys      node     keys in the ledger (no built-in capacity: compare with
                             your own limit; per-tenant limits are quota_used_pct)
  storage_bytes     node     bytes of keys and values in the ledger
  follower_lag      node     entries the leader's log is ahead of this node
  quorum_ok         cluster  1 if a majority of voters answered and some node sees
                             a leader, else 0; voters whose address is not among
                             the endpoints count as unreachable
  term_changes_5m   cluster  terms started in the last 5 minutes (highest term
                             seen on any node)
  backup_age_h      cluster  hours since the newest backup any node knows of;
                             infinite, shown as \"no backup known\", when none does
  backup_unverified_h cluster hours since the newest backup was taken, while no
                             client has verified it (verify-backup --record,
                             backup --verify, --out-dir, the console's backup);
                             0 once verified; no data without a backup
  quota_used_pct    tenant   the fuller of keys/max_keys and bytes/max_bytes;
                             no data for unlimited tenants
  replica_diverged  node     1 if the node's state digest differs from most
                             nodes' at the highest applied index two status
                             frames share (newest or 256-entry checkpoint), 0
                             if not; no data without two digests to compare.
                             Console only: not in --export prometheus
A figure with no data makes a condition false.";

/// One figure's value for one subject: a number (infinite when e.g. no backup exists) and
/// how to show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub value: f64,
    pub text: String,
}

impl Reading {
    pub fn new(value: f64, text: impl Into<String>) -> Reading {
        Reading {
            value,
            text: text.into(),
        }
    }

    pub fn count(value: u64) -> Reading {
        Reading::new(value as f64, value.to_string())
    }

    pub fn pct(value: f64) -> Reading {
        Reading::new(value, format!("{value:.1}%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_documented_and_found_by_name() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_name(f.name()), Some(f));
            let line = FIGURES_HELP
                .lines()
                .find(|l| l.split_whitespace().next() == Some(f.name()));
            let scope = line.and_then(|l| l.split_whitespace().nth(1));
            assert_eq!(scope, Some(f.scope().to_string().as_str()), "{f}");
        }
        assert_eq!(Figure::from_name("disk_used"), None);
    }
}
