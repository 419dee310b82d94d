//! Prometheus metrics of one node (`/metrics`, names `opsdeck_*`): request counters, error
//! counters and latency histograms per operation, group-commit batch sizes, log fsyncs, and
//! gauges refreshed at scrape time from the node's status frame (Raft, followers, process,
//! disk, GC, recent rates and latency percentiles, storage guard, cluster, last backup), so
//! `/metrics` and Watch show the same, and `opsdeck_build_info`. Rendered as OpenMetrics
//! text when the scraper asks for it ([`Format::from_accept`]), else as Prometheus text 0.0.4.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::error::NodeError;
use crate::pb;
use crate::store::log_store::LogStats;
use crate::telemetry::ops::OpRecorder;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub op: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub follower: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    pub tenant: String,
    /// `keys` or `bytes`.
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecentOpLabels {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuantileLabels {
    pub op: String,
    /// p50, p95, p99 or max (`quantile` is reserved for summaries).
    pub stat: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    git_sha: String,
}

/// What `opsdeck_build_info` says: the binary's version and the commit it was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// `unknown` when built outside a git checkout.
    pub git_sha: String,
}

impl Default for BuildInfo {
    /// This crate's version; the commit is known only to the binary's build script.
    fn default() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_sha: "unknown".to_string(),
        }
    }
}

type HistogramFamily = Family<OpLabels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Gauges set from the status frame at scrape time.
struct FrameGauges {
    vote_term: Gauge,
    millis_since_quorum_ack: Gauge,
    follower_matched: Family<FollowerLabels, Gauge>,
    follower_lag: Family<FollowerLabels, Gauge>,
    uptime: FloatGauge,
    rss: Gauge,
    cpu: FloatGauge,
    op_rate: Family<RecentOpLabels, FloatGauge>,
    op_latency: Family<QuantileLabels, FloatGauge>,
    sled_size: Gauge,
    data_dir_bytes: Gauge,
    fs_total: Gauge,
    fs_free: Gauge,
    log_entries: Gauge,
    first_log_index: Gauge,
    snapshot_bytes: Gauge,
    snapshot_build: FloatGauge,
    snapshot_time: FloatGauge,
    purge_index: Gauge,
    purge_entries: Gauge,
    compact_before: Gauge,
    compact_after: Gauge,
    quota_used: Family<QuotaLabels, FloatGauge>,
    quota_limit: Family<QuotaLabels, Gauge>,
    quota_refused: Family<TenantLabels, Gauge>,
    storage_full: Gauge,
    storage_reserve: Gauge,
    last_backup: FloatGauge,
    last_backup_verified: FloatGauge,
    writes_paused: Gauge,
    voters: Gauge,
    voters_reachable: Gauge,
    leader_known: Gauge,
}

impl FrameGauges {
    fn register(r: &mut Registry) -> FrameGauges {
        fn reg<M: prometheus_client::registry::Metric + Clone + Default>(
            r: &mut Registry,
            name: &str,
            help: &str,
        ) -> M {
            let m = M::default();
            r.register(name, help, m.clone());
            m
        }
        FrameGauges {
            vote_term: reg(r, "raft_vote_term", "Term of the vote this node holds"),
            millis_since_quorum_ack: reg(
                r,
                "raft_millis_since_quorum_ack",
                "On the leader: milliseconds since a quorum last acknowledged it (0 elsewhere)",
            ),
            quota_used: reg(
                r,
                "quota_used_ratio",
                "Per tenant with a quota: share of its limit in use (1 = full), by resource",
            ),
            quota_limit: reg(
                r,
                "quota_limit",
                "Per tenant with a quota: its limit, by resource (keys, or key+value bytes)",
            ),
            quota_refused: reg(
                r,
                "quota_refused_writes",
                "Per tenant: writes refused because they would pass its quota",
            ),
            follower_matched: reg(
                r,
                "raft_follower_matched_index",
                "On the leader: last log index replicated to each follower",
            ),
            follower_lag: reg(
                r,
                "raft_follower_lag_entries",
                "On the leader: entries each follower is behind the leader's last log index",
            ),
            uptime: reg(
                r,
                "process_uptime_seconds",
                "Seconds since the node started",
            ),
            rss: reg(
                r,
                "process_resident_memory_bytes",
                "Resident memory of the node process",
            ),
            cpu: reg(
                r,
                "process_cpu_percent",
                "CPU used by the node process over the last sample (100 = one core)",
            ),
            op_rate: reg(
                r,
                "request_rate_per_second",
                "Client requests per second over the last few seconds, by operation",
            ),
            op_latency: reg(
                r,
                "request_recent_latency_seconds",
                "Client request latency quantiles over about the last minute, by operation",
            ),
            sled_size: reg(
                r,
                "sled_size_on_disk_bytes",
                "sled's estimate of its files' size",
            ),
            data_dir_bytes: reg(
                r,
                "data_dir_bytes",
                "Bytes of every file under the data dir",
            ),
            fs_total: reg(
                r,
                "filesystem_size_bytes",
                "Size of the filesystem holding the data dir",
            ),
            fs_free: reg(
                r,
                "filesystem_free_bytes",
                "Space available on the filesystem holding the data dir",
            ),
            log_entries: reg(
                r,
                "raft_log_entries_on_disk",
                "Raft log entries stored on disk",
            ),
            first_log_index: reg(
                r,
                "raft_log_first_index_on_disk",
                "Index of the first Raft log entry on disk (0 if none)",
            ),
            snapshot_bytes: reg(
                r,
                "snapshot_bytes",
                "Size of the last snapshot built or installed",
            ),
            snapshot_build: reg(
                r,
                "snapshot_build_seconds",
                "Time taken to build the last snapshot (0 if installed from the leader)",
            ),
            snapshot_time: reg(
                r,
                "snapshot_timestamp_seconds",
                "Unix time of the last snapshot built or installed (0 if none)",
            ),
            purge_index: reg(
                r,
                "raft_last_purge_index",
                "Index up to which the log was last purged",
            ),
            purge_entries: reg(
                r,
                "raft_last_purge_entries",
                "Log entries deleted from disk by the last purge",
            ),
            compact_before: reg(
                r,
                "compact_sled_bytes_before",
                "sled size on disk before the last manual compact (0 if none)",
            ),
            compact_after: reg(
                r,
                "compact_sled_bytes_after",
                "sled size on disk after the last manual compact (0 if none)",
            ),
            storage_full: reg(
                r,
                "storage_full",
                "1 while the data dir's free space is below the reserve: the node refuses \
                 writes and new log entries until space is freed, else 0",
            ),
            storage_reserve: reg(
                r,
                "storage_reserve_bytes",
                "Free space the data dir's filesystem must keep (--storage-reserve; 0: guard off)",
            ),
            last_backup: reg(
                r,
                "last_backup_timestamp_seconds",
                "Unix time of the newest backup taken from this cluster that this node knows \
                 of (0 if none)",
            ),
            last_backup_verified: reg(
                r,
                "last_backup_verified_timestamp_seconds",
                "Unix time a client verified the newest backup (0 if it is not verified, or \
                 there is none)",
            ),
            writes_paused: reg(
                r,
                "writes_paused",
                "1 while client writes are paused on the cluster (maintenance mode, \
                 `opsdeck writes pause`), else 0",
            ),
            voters: reg(
                r,
                "cluster_voters",
                "Voters in this node's view of the membership",
            ),
            voters_reachable: reg(
                r,
                "cluster_voters_reachable",
                "On the leader: voters, itself included, that answered it within the election \
                 timeout (0 elsewhere)",
            ),
            leader_known: reg(
                r,
                "raft_leader_known",
                "1 if this node knows a leader, else 0",
            ),
        }
    }

    fn set(&self, f: &pb::NodeStatus) {
        let int = |g: &Gauge, v: u64| {
            g.set(v.min(i64::MAX as u64) as i64);
        };
        int(&self.vote_term, f.vote_term);
        int(
            &self.millis_since_quorum_ack,
            f.millis_since_quorum_ack.unwrap_or(0),
        );
        self.follower_matched.clear();
        self.follower_lag.clear();
        for p in &f.followers {
            let labels = FollowerLabels { follower: p.id };
            int(
                &self.follower_matched.get_or_create(&labels),
                p.matched.unwrap_or(0),
            );
            int(&self.follower_lag.get_or_create(&labels), p.lag);
        }
        self.quota_used.clear();
        self.quota_limit.clear();
        self.quota_refused.clear();
        for q in &f.quotas {
            for (resource, used, max) in [
                ("keys", q.keys, q.max_keys),
                ("bytes", q.bytes, q.max_bytes),
            ] {
                let Some(max) = max else {
                    continue;
                };
                let labels = QuotaLabels {
                    tenant: q.tenant.clone(),
                    resource,
                };
                // A limit of 0 has no fraction used; its limit is still exported.
                if max > 0 {
                    self.quota_used
                        .get_or_create(&labels)
                        .set(used as f64 / max as f64);
                }
                int(&self.quota_limit.get_or_create(&labels), max);
            }
            int(
                &self.quota_refused.get_or_create(&TenantLabels {
                    tenant: q.tenant.clone(),
                }),
                q.violations,
            );
        }
        self.uptime.set(f.uptime_ms as f64 / 1000.0);
        int(&self.rss, f.rss_bytes);
        self.cpu.set(f.cpu_percent as f64);
        for o in &f.ops {
            self.op_rate
                .get_or_create(&RecentOpLabels { op: o.op.clone() })
                .set(o.per_sec);
            for (stat, us) in [
                ("p50", o.p50_us),
                ("p95", o.p95_us),
                ("p99", o.p99_us),
                ("max", o.max_us),
            ] {
                self.op_latency
                    .get_or_create(&QuantileLabels {
                        op: o.op.clone(),
                        stat,
                    })
                    .set(us as f64 / 1e6);
            }
        }
        int(&self.sled_size, f.sled_size_on_disk);
        int(&self.data_dir_bytes, f.data_dir_bytes);
        int(&self.fs_total, f.fs_total_bytes);
        int(&self.fs_free, f.fs_free_bytes);
        let gc = f.gc.clone().unwrap_or_default();
        int(&self.log_entries, gc.log_entries);
        int(&self.first_log_index, gc.first_log_index.unwrap_or(0));
        int(&self.snapshot_bytes, gc.last_snapshot_bytes);
        self.snapshot_build
            .set(gc.last_snapshot_millis as f64 / 1000.0);
        self.snapshot_time
            .set(gc.last_snapshot_unix_ms.unwrap_or(0) as f64 / 1000.0);
        int(&self.purge_index, gc.last_purge_index.unwrap_or(0));
        int(&self.purge_entries, gc.last_purge_entries);
        int(&self.compact_before, gc.sled_bytes_before_compact);
        int(&self.compact_after, gc.sled_bytes_after_compact);
        let storage = f.storage.unwrap_or_default();
        int(&self.storage_full, u64::from(storage.full));
        int(&self.storage_reserve, storage.reserve_bytes);
        self.last_backup
            .set(f.last_backup_unix_ms.unwrap_or(0).max(0) as f64 / 1000.0);
        self.last_backup_verified
            .set(f.last_backup_verified_unix_ms.unwrap_or(0).max(0) as f64 / 1000.0);
        int(&self.writes_paused, u64::from(f.writes_paused.is_some()));
        int(
            &self.voters,
            f.members.iter().filter(|m| m.voter).count() as u64,
        );
        int(
            &self.voters_reachable,
            u64::from(f.voters_reachable.unwrap_or(0)),
        );
        int(&self.leader_known, u64::from(f.leader_id.is_some()));
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<OpLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: HistogramFamily,
    batch_size: Histogram,
    term: Gauge,
    is_leader: Gauge,
    last_log_index: Gauge,
    committed_index: Gauge,
    applied_index: Gauge,
    snapshot_index: Gauge,
    purged_index: Gauge,
    members: Gauge,
    storage_keys: Gauge,
    storage_bytes: Gauge,
    log_fsyncs: Counter<u64, AtomicU64>,
    log_appends: Counter<u64, AtomicU64>,
    frame: FrameGauges,
    ops: Arc<OpRecorder>,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&BuildInfo::default())
    }
}

impl Metrics {
    pub fn new(build: &BuildInfo) -> Metrics {
        let mut registry = Registry::with_prefix("opsdeck");
        registry.register(
            "build",
            "The node's version and the git commit it was built from (always 1)",
            Info::new(BuildLabels {
                version: build.version.clone(),
                git_sha: build.git_sha.clone(),
            }),
        );
        let requests = Family::<OpLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "requests",
            "Client requests handled, by operation",
            requests.clone(),
        );
        registry.register(
            "request_errors",
            "Client requests that failed, by operation and error kind",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Client request latency, by operation",
            latency.clone(),
        );
        registry.register(
            "group_commit_batch_size",
            "Commands carried by one proposed Raft entry",
            batch_size.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let term = gauge(&mut registry, "raft_term", "Current Raft term");
        let is_leader = gauge(
            &mut registry,
            "raft_is_leader",
            "1 if this node is the leader, else 0",
        );
        let last_log_index = gauge(
            &mut registry,
            "raft_last_log_index",
            "Index of the last log entry",
        );
        let committed_index = gauge(
            &mut registry,
            "raft_committed_index",
            "Index of the last committed entry",
        );
        let applied_index = gauge(
            &mut registry,
            "raft_applied_index",
            "Index of the last applied entry",
        );
        let snapshot_index = gauge(
            &mut registry,
            "raft_snapshot_index",
            "Last log index covered by the snapshot",
        );
        let purged_index = gauge(&mut registry, "raft_purged_index", "Last purged log index");
        let members = gauge(
            &mut registry,
            "raft_members",
            "Members (voters and learners) in the membership",
        );
        let storage_keys = gauge(&mut registry, "storage_keys", "Keys stored in the ledger");
        let storage_bytes = gauge(
            &mut registry,
            "storage_bytes",
            "Bytes of keys and values stored in the ledger",
        );
        let log_fsyncs = Counter::<u64, AtomicU64>::default();
        let log_appends = Counter::<u64, AtomicU64>::default();
        registry.register(
            "raft_log_fsyncs",
            "fsyncs of the Raft log (one per group of appends)",
            log_fsyncs.clone(),
        );
        registry.register(
            "raft_log_appends",
            "Raft log append calls made durable",
            log_appends.clone(),
        );
        let frame = FrameGauges::register(&mut registry);
        Metrics {
            frame,
            ops: Arc::new(OpRecorder::default()),
            registry,
            requests,
            errors,
            latency,
            batch_size,
            term,
            is_leader,
            last_log_index,
            committed_index,
            applied_index,
            snapshot_index,
            purged_index,
            members,
            storage_keys,
            storage_bytes,
            log_fsyncs,
            log_appends,
        }
    }

    pub fn observe(&self, op: &'static str, elapsed: Duration, error: Option<&NodeError>) {
        let labels = OpLabels { op };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(e) = error {
            self.errors
                .get_or_create(&ErrorLabels { op, kind: e.kind() })
                .inc();
        }
        self.ops.record(op, elapsed, error.map(NodeError::kind));
    }

    /// The per-operation figures behind status frames (fed by [`Metrics::observe`]).
    pub fn ops(&self) -> Arc<OpRecorder> {
        self.ops.clone()
    }

    pub fn observe_batch(&self, commands: usize) {
        self.batch_size.observe(commands as f64);
    }

    /// Refreshes the gauges from the status frame and renders them in `format`.
    pub fn render(&self, status: &pb::NodeStatus, flush: &LogStats, format: Format) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let g = |gauge: &Gauge, v: Option<u64>| {
            gauge.set(v.map(|v| v as i64).unwrap_or(0));
        };
        g(&self.term, Some(status.term));
        g(&self.is_leader, Some((status.role == "leader") as u64));
        g(&self.last_log_index, status.last_log_index);
        g(&self.committed_index, status.committed);
        g(&self.applied_index, status.applied);
        g(&self.snapshot_index, status.snapshot_index);
        g(&self.purged_index, status.purged_index);
        g(&self.members, Some(status.members.len() as u64));
        g(&self.storage_keys, Some(status.storage_keys));
        g(&self.storage_bytes, Some(status.storage_bytes));
        self.frame.set(status);
        // Counters only move forward: bring them up to the flusher's totals.
        let sync = |c: &Counter<u64, AtomicU64>, total: u64| {
            let now = c.get();
            if total > now {
                c.inc_by(total - now);
            }
        };
        sync(&self.log_fsyncs, flush.fsyncs.load(Relaxed));
        sync(&self.log_appends, flush.appends.load(Relaxed));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => to_prometheus_text(&out),
        }
    }
}

/// The two exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: what a scraper gets unless it asks for OpenMetrics.
    Prometheus,
    /// OpenMetrics text 1.0.0 (ends with `# EOF`), as prometheus-client encodes it.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format an `Accept` header prefers: OpenMetrics when it names
    /// `application/openmetrics-text` (version 1.0.0 or none) with a quality at least that of
    /// any text/plain or wildcard it also accepts; Prometheus text otherwise (no header, `*/*`,
    /// a client that names neither). Prometheus itself sends
    /// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut openmetrics: f32 = 0.0;
        let mut text: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q: f32 = 1.0;
            let mut version: Option<String> = None;
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            let q = if q.is_finite() {
                q.clamp(0.0, 1.0)
            } else {
                0.0
            };
            match media.as_str() {
                // We speak 1.0.0 only; 0.0.1 (the draft) names other counter rules.
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics = openmetrics.max(q)
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Turns prometheus-client's OpenMetrics output into the Prometheus text format (0.0.4)
/// that Prometheus scrapes by default and `promtool check metrics` reads: there a counter's
/// HELP and TYPE lines carry the `_total` name its samples use, an info metric is a gauge
/// named `_info` (0.0.4 has no info type), and there is no `# EOF`.
fn to_prometheus_text(openmetrics: &str) -> String {
    let typed = |kind: &str| -> std::collections::HashSet<String> {
        openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(kind))
            .map(str::to_string)
            .collect()
    };
    let (counters, infos) = (typed(" counter"), typed(" info"));
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                Some(format!("{tag}{name}_total {tail}").trim_end().to_string())
            } else if infos.contains(name) {
                let tail = if *tag == "# TYPE " { "gauge" } else { tail };
                Some(format!("{tag}{name}_info {tail}").trim_end().to_string())
            } else {
                None
            }
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_picks_the_format() {
        let f = |a: &str| Format::from_accept(Some(a));
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        // What Prometheus 2.x sends.
        assert_eq!(
            f(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
               version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(f("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            f("text/plain;version=0.0.4;q=0.9, application/openmetrics-text; q=0.5"),
            Format::Prometheus
        );
        assert_eq!(
            f("application/openmetrics-text; version=0.0.1"),
            Format::Prometheus
        );
        assert_eq!(
            f("application/openmetrics-text;q=0, */*"),
            Format::Prometheus
        );
        assert_eq!(f("*/*"), Format::Prometheus);
        assert_eq!(f("text/plain"), Format::Prometheus);
        assert_eq!(f("garbage;;;q=x,,"), Format::Prometheus);
        assert_eq!(
            f("application/OpenMetrics-Text; Version=\"1.0.0\"; q=1"),
            Format::OpenMetrics
        );
    }

    #[test]
    fn build_info_is_a_gauge_in_prometheus_text_and_an_info_in_openmetrics() {
        let m = Metrics::new(&BuildInfo {
            version: "9.9.9".into(),
            git_sha: "abc123".into(),
        });
        let status = pb::NodeStatus {
            leader_id: Some(2),
            last_backup_unix_ms: Some(1_700_000_000_500),
            last_backup_verified_unix_ms: Some(1_700_000_060_250),
            writes_paused: Some(pb::WritesPaused::default()),
            voters_reachable: Some(2),
            storage: Some(pb::StorageState {
                full: true,
                free_bytes: 1,
                reserve_bytes: 128,
            }),
            members: (1..=3)
                .map(|id| pb::Member {
                    id,
                    voter: id < 3,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let flush = LogStats::default();
        let text = m.render(&status, &flush, Format::Prometheus);
        assert!(text.contains("# TYPE opsdeck_build_info gauge\n"), "{text}");
        assert!(
            text.contains("opsdeck_build_info{version=\"9.9.9\",git_sha=\"abc123\"} 1\n"),
            "{text}"
        );
        for line in [
            "opsdeck_storage_full 1",
            "opsdeck_storage_reserve_bytes 128",
            "opsdeck_last_backup_timestamp_seconds 1700000000.5",
            "opsdeck_last_backup_verified_timestamp_seconds 1700000060.25",
            "opsdeck_writes_paused 1",
            "opsdeck_cluster_voters 2",
            "opsdeck_cluster_voters_reachable 2",
            "opsdeck_raft_leader_known 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }
        let om = m.render(&status, &flush, Format::OpenMetrics);
        assert!(om.contains("# TYPE opsdeck_build info\n"), "{om}");
        assert!(
            om.contains("# TYPE opsdeck_raft_log_fsyncs counter\n"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn counters_are_named_with_total_in_help_and_type_lines() {
        let m = Metrics::default();
        m.observe("put", Duration::from_millis(3), None);
        m.observe("put", Duration::from_millis(3), Some(&NodeError::NoLeader));
        let text = {
            let mut s = String::new();
            let _ = encode(&mut s, &m.registry);
            to_prometheus_text(&s)
        };
        assert!(
            text.contains("# TYPE opsdeck_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP opsdeck_requests_total "), "{text}");
        assert!(
            text.contains("opsdeck_request_errors_total{op=\"put\",kind=\"no_leader\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE opsdeck_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        // Every sample belongs to a family declared by a TYPE line.
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            assert!(
                families.iter().any(|f| name == *f
                    || name
                        .strip_prefix(f)
                        .is_some_and(|s| ["_sum", "_count", "_bucket"].contains(&s))),
                "sample {name} has no family in\n{text}"
            );
        }
    }
}
