//! What the console knows about the cluster: the latest status of every watched node, a short
//! history of figures for sparklines and growth rates, the merged log (last 50,000 lines) and
//! the event timeline. Only watch updates change it; drawing only reads it, so every pane can
//! be drawn from a hand-made model in tests.

use std::collections::VecDeque;

use opsdeck_node::pb::watch_event::Kind;
use opsdeck_node::pb::{ApiKeyInfo, ClusterEvent, LogRecord, NodeStatus, WatchEvent};

use crate::client::digests::{from_frames, FrameCheck, Outcome};
use crate::client::NodeReport;

pub const MAX_LOG_LINES: usize = 50_000;
pub const MAX_SAMPLES: usize = 600;
pub const MAX_TIMELINE: usize = 2_000;
/// A follower this many entries behind the leader is shown as lagging.
pub const LAG_WARN: u64 = 1_000;

/// What a watch task tells the UI.
#[derive(Debug)]
pub enum Update {
    /// Something arrived on node `node`'s stream at `at` (console clock, unix ms).
    Event {
        node: usize,
        at: i64,
        event: Box<WatchEvent>,
    },
    /// The stream to node `node` failed or could not be opened; `refused`: the node
    /// answered but refused our API key.
    Down {
        node: usize,
        at: i64,
        error: String,
        refused: bool,
    },
    /// The key list polled at `at`, or why it could not be had.
    Keys {
        at: i64,
        result: Result<Vec<ApiKeyInfo>, KeysError>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysError {
    pub message: String,
    /// The cluster refused our key (not an admin key).
    pub refused: bool,
}

/// The last answer to the key list poll.
#[derive(Debug, Clone, Default)]
pub struct KeyList {
    /// The last list received and when (console clock).
    pub keys: Vec<ApiKeyInfo>,
    pub fetched_ms: Option<i64>,
    /// The last poll failed (the list above, if any, is older).
    pub error: Option<KeysError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// No answer yet.
    Connecting,
    Up,
    Down {
        since_ms: i64,
        error: String,
        refused: bool,
    },
}

/// Figures of one status frame, kept for sparklines and rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub at: i64,
    pub ops_per_sec: f64,
    pub errors_total: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub data_dir_bytes: u64,
    pub sled_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct NodeView {
    pub endpoint: String,
    pub status: Option<NodeStatus>,
    pub link: Link,
    pub samples: VecDeque<Sample>,
    /// When the last status frame arrived (console clock, unix ms).
    pub last_frame_ms: i64,
    last_log: Option<(i64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn parse(s: &str) -> Level {
        match s.to_ascii_uppercase().as_str() {
            "ERROR" => Level::Error,
            "WARN" => Level::Warn,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => Level::Info,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub unix_ms: i64,
    pub node_id: u64,
    pub level: Level,
    pub target: String,
    /// Message and fields.
    pub text: String,
    /// A marker: this many records of `node_id` were not delivered.
    pub dropped: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub unix_ms: i64,
    pub kind: String,
    pub detail: String,
    pub term: u64,
    /// Nodes that reported it (a leader change is seen by every node).
    pub seen_by: Vec<u64>,
    /// Observed by the console itself (a node went down / came back).
    pub console: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Degraded,
    NoQuorum,
    /// Nothing heard yet.
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    /// The cluster's name: its config context (`Target::label`), shown on the status line
    /// and in every question before a change.
    pub context: String,
    pub nodes: Vec<NodeView>,
    pub logs: VecDeque<LogLine>,
    /// Lines removed from the front to stay within MAX_LOG_LINES; lets views keep positions.
    pub logs_evicted: u64,
    pub timeline: VecDeque<TimelineEntry>,
    /// Filled by the key list poll (only while the Keys pane is shown).
    pub keys: KeyList,
    /// The newest comparison of the replicas' state digests, made from the status frames
    /// as they arrive (None until two nodes' frames share an index).
    pub replicas: Option<FrameCheck>,
}

fn sample_of(s: &NodeStatus, at: i64) -> Sample {
    let ops_per_sec = s.ops.iter().map(|o| o.per_sec).sum();
    let errors_total = s.errors.iter().map(|e| e.count).sum::<u64>();
    let worst = |f: fn(&opsdeck_node::pb::OpStats) -> u64| s.ops.iter().map(f).max().unwrap_or(0);
    Sample {
        at: if s.unix_ms > 0 { s.unix_ms } else { at },
        ops_per_sec,
        errors_total,
        p50_us: worst(|o| o.p50_us),
        p95_us: worst(|o| o.p95_us),
        p99_us: worst(|o| o.p99_us),
        data_dir_bytes: s.data_dir_bytes,
        sled_bytes: s.sled_size_on_disk,
    }
}

/// "node 2" or "nodes 1, 3".
pub fn node_list(ids: &[u64]) -> String {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    match ids.len() {
        1 => format!("node {}", list.join("")),
        _ => format!("nodes {}", list.join(", ")),
    }
}

impl Model {
    pub fn new(endpoints: &[String]) -> Model {
        Model {
            nodes: endpoints
                .iter()
                .map(|e| NodeView {
                    endpoint: e.clone(),
                    status: None,
                    link: Link::Connecting,
                    samples: VecDeque::new(),
                    last_frame_ms: 0,
                    last_log: None,
                })
                .collect(),
            ..Model::default()
        }
    }

    /// A watched node that the cluster no longer lists as a member.
    pub fn removed(&self, view: &NodeView) -> bool {
        let members = self.members();
        match &view.status {
            Some(s) => !members.is_empty() && !members.iter().any(|m| m.id == s.id),
            None => false,
        }
    }

    /// Watches one more node; returns its index for its updates.
    pub fn add_node(&mut self, endpoint: &str) -> usize {
        self.nodes.push(NodeView {
            endpoint: endpoint.to_string(),
            status: None,
            link: Link::Connecting,
            samples: VecDeque::new(),
            last_frame_ms: 0,
            last_log: None,
        });
        self.nodes.len() - 1
    }

    /// Applies one update; false when nothing visible changed.
    pub fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Keys { at, result } => {
                match result {
                    Ok(keys) => {
                        self.keys.keys = keys;
                        self.keys.fetched_ms = Some(at);
                        self.keys.error = None;
                    }
                    Err(e) => self.keys.error = Some(e),
                }
                true
            }
            Update::Down {
                node,
                at,
                error,
                refused,
            } => {
                let Some(view) = self.nodes.get_mut(node) else {
                    return false;
                };
                match &mut view.link {
                    Link::Down {
                        error: e,
                        refused: r,
                        ..
                    } if *e == error && *r == refused => false,
                    Link::Down {
                        error: e,
                        refused: r,
                        ..
                    } => {
                        *e = error;
                        *r = refused;
                        true
                    }
                    link => {
                        let was_up = *link == Link::Up;
                        *link = Link::Down {
                            since_ms: at,
                            error: error.clone(),
                            refused,
                        };
                        if was_up {
                            let id = view.status.as_ref().map(|s| s.id).unwrap_or(0);
                            let endpoint = view.endpoint.clone();
                            self.push_timeline(TimelineEntry {
                                unix_ms: at,
                                kind: "node_down".into(),
                                detail: format!("node {id} ({endpoint}) unreachable: {error}"),
                                term: 0,
                                seen_by: vec![],
                                console: true,
                            });
                        }
                        true
                    }
                }
            }
            Update::Event { node, at, event } => match event.kind {
                Some(Kind::Status(s)) => self.on_status(node, at, s),
                Some(Kind::Log(r)) => self.on_log(node, r),
                Some(Kind::Dropped(d)) => {
                    let node_id = self.node_id(node);
                    let unix_ms = self.logs.back().map(|l| l.unix_ms).unwrap_or(at).max(at);
                    self.push_log(LogLine {
                        unix_ms,
                        node_id,
                        level: Level::Warn,
                        target: String::new(),
                        text: String::new(),
                        dropped: Some(d.records),
                    });
                    true
                }
                Some(Kind::Event(e)) => self.on_event(e),
                None => false,
            },
        }
    }

    fn node_id(&self, node: usize) -> u64 {
        self.nodes
            .get(node)
            .and_then(|n| n.status.as_ref())
            .map(|s| s.id)
            .unwrap_or(0)
    }

    fn on_status(&mut self, node: usize, at: i64, s: NodeStatus) -> bool {
        let Some(view) = self.nodes.get_mut(node) else {
            return false;
        };
        if let Link::Down { since_ms, .. } = view.link {
            let id = s.id;
            let endpoint = view.endpoint.clone();
            self.push_timeline(TimelineEntry {
                unix_ms: at,
                kind: "node_up".into(),
                detail: format!(
                    "node {id} ({endpoint}) reachable again after {}",
                    crate::format::duration_secs(((at - since_ms).max(0) / 1000) as u64)
                ),
                term: s.term,
                seen_by: vec![],
                console: true,
            });
        }
        let view = &mut self.nodes[node];
        view.link = Link::Up;
        view.last_frame_ms = at;
        view.samples.push_back(sample_of(&s, at));
        if view.samples.len() > MAX_SAMPLES {
            view.samples.pop_front();
        }
        view.status = Some(s);
        self.check_replicas();
        true
    }

    /// Compares the digests the frames of the nodes up carry (`client::digests::from_frames`,
    /// the comparison the `replica_divergence` rule makes); a change into or out of
    /// divergence goes on the timeline. Frames that share no index leave the last result.
    fn check_replicas(&mut self) {
        let frames = self
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref().map(|s| (n.endpoint.as_str(), s)));
        let Some(check) = from_frames(frames) else {
            return;
        };
        let was = self.replicas.as_ref().map(|c| &c.outcome);
        let entry = match (&check.outcome, was) {
            (Outcome::Diverged { differing, .. }, Some(Outcome::Diverged { differing: d, .. }))
                if d == differing =>
            {
                None
            }
            (Outcome::Diverged { index, differing }, _) => Some((
                "replicas_diverged",
                format!(
                    "{}: state digest differs at index {index}",
                    node_list(differing)
                ),
            )),
            (Outcome::Agree { index, .. }, Some(Outcome::Diverged { .. })) => Some((
                "replicas_agree",
                format!(
                    "replicas agree again at index {index} ({} nodes)",
                    check.nodes
                ),
            )),
            _ => None,
        };
        if let Some((kind, detail)) = entry {
            self.push_timeline(TimelineEntry {
                unix_ms: check.at_ms,
                kind: kind.into(),
                detail,
                term: 0,
                seen_by: vec![],
                console: true,
            });
        }
        self.replicas = Some(check);
    }

    fn on_log(&mut self, node: usize, r: LogRecord) -> bool {
        let Some(view) = self.nodes.get_mut(node) else {
            return false;
        };
        // A reconnect resends the node's recent history: skip what we already have.
        let key = (r.unix_ms, r.seq);
        if view.last_log.is_some_and(|last| key <= last) {
            return false;
        }
        view.last_log = Some(key);
        let text = if r.fields.is_empty() {
            r.message
        } else {
            format!("{} {}", r.message, r.fields)
        };
        self.push_log(LogLine {
            unix_ms: r.unix_ms,
            node_id: r.node_id,
            level: Level::parse(&r.level),
            target: r.target,
            text,
            dropped: None,
        });
        true
    }

    /// Inserts in timestamp order (nearly always at the end) and keeps the last
    /// MAX_LOG_LINES.
    pub fn push_log(&mut self, line: LogLine) {
        let pos = self.logs.partition_point(|l| l.unix_ms <= line.unix_ms);
        self.logs.insert(pos, line);
        while self.logs.len() > MAX_LOG_LINES {
            self.logs.pop_front();
            self.logs_evicted += 1;
        }
    }

    fn on_event(&mut self, e: ClusterEvent) -> bool {
        // Every node reports the same leader change: fold reports of one change (same kind
        // and detail within 5 s) into one entry.
        if let Some(existing) = self.timeline.iter_mut().rev().take(64).find(|t| {
            !t.console
                && t.kind == e.kind
                && t.detail == e.detail
                && (t.unix_ms - e.unix_ms).abs() < 5_000
        }) {
            if existing.seen_by.contains(&e.node_id) {
                return false;
            }
            existing.seen_by.push(e.node_id);
            existing.seen_by.sort_unstable();
            return true;
        }
        self.push_timeline(TimelineEntry {
            unix_ms: e.unix_ms,
            kind: e.kind,
            detail: e.detail,
            term: e.term,
            seen_by: vec![e.node_id],
            console: false,
        });
        true
    }

    pub fn push_timeline(&mut self, entry: TimelineEntry) {
        let pos = self
            .timeline
            .partition_point(|t| t.unix_ms <= entry.unix_ms);
        self.timeline.insert(pos, entry);
        while self.timeline.len() > MAX_TIMELINE {
            self.timeline.pop_front();
        }
    }

    /// The node that most watched nodes name as leader, if it is up and says so itself.
    /// The pause of writes (maintenance mode) as the node furthest along holds it.
    pub fn writes_paused(&self) -> Option<&opsdeck_node::pb::WritesPaused> {
        self.nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref())
            .max_by_key(|s| s.applied)
            .and_then(|s| s.writes_paused.as_ref())
    }

    pub fn leader(&self) -> Option<&NodeStatus> {
        self.nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref())
            .filter(|s| s.role == "leader")
            .max_by_key(|s| s.term)
    }

    /// The membership as the freshest source sees it: the leader, else any node up.
    pub fn members(&self) -> Vec<opsdeck_node::pb::Member> {
        if let Some(l) = self.leader() {
            return l.members.clone();
        }
        self.nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref())
            .max_by_key(|s| s.term)
            .map(|s| s.members.clone())
            .unwrap_or_default()
    }

    /// Entries node `s` is behind the leader: the leader's own figure for it when it reports
    /// one, else the difference of the two last log indexes the console saw.
    pub fn lag(&self, s: &NodeStatus) -> Option<u64> {
        let leader = self.leader()?;
        if leader.id == s.id {
            return Some(0);
        }
        if let Some(f) = leader.followers.iter().find(|f| f.id == s.id) {
            return Some(f.lag);
        }
        Some(
            leader
                .last_log_index?
                .saturating_sub(s.last_log_index.unwrap_or(0)),
        )
    }

    /// Why node `id` refused the snapshot the leader is sending it (no room to load it), as
    /// the leader reports it; None: no refusal.
    pub fn refused_snapshot(&self, id: u64) -> Option<&str> {
        let f = self.leader()?.followers.iter().find(|f| f.id == id)?;
        (!f.snapshot_refused.is_empty()).then_some(f.snapshot_refused.as_str())
    }

    /// What an outside observer saw of every endpoint at `now_ms`, for the alert rules: the
    /// latest frame of a node whose stream is up and not silent for `stall_ms`, else why not.
    pub fn reports(&self, now_ms: i64, stall_ms: i64) -> Vec<NodeReport> {
        self.nodes
            .iter()
            .map(|n| {
                let (status, refused) = match (&n.link, &n.status) {
                    (Link::Up, Some(s)) if now_ms - n.last_frame_ms <= stall_ms => {
                        (Ok(s.clone()), false)
                    }
                    (Link::Up, _) => (
                        Err(format!(
                            "no status frame for {}",
                            crate::format::duration_secs(
                                ((now_ms - n.last_frame_ms).max(0) / 1000) as u64
                            )
                        )),
                        false,
                    ),
                    (Link::Down { error, refused, .. }, _) => (Err(error.clone()), *refused),
                    (Link::Connecting, _) => (Err("no answer yet".to_string()), false),
                };
                NodeReport {
                    endpoint: n.endpoint.clone(),
                    status,
                    refused,
                }
            })
            .collect()
    }

    pub fn verdict(&self) -> (Verdict, String) {
        if self.nodes.iter().all(|n| n.link == Link::Connecting) {
            return (Verdict::Unknown, "connecting…".into());
        }
        let members = self.members();
        let voters: Vec<u64> = members.iter().filter(|m| m.voter).map(|m| m.id).collect();
        let up_ids: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref().map(|s| s.id))
            .collect();
        // A node removed from the cluster may well be down: that is no problem.
        let down = self
            .nodes
            .iter()
            .filter(|n| matches!(n.link, Link::Down { .. }) && !self.removed(n))
            .count();
        let Some(leader) = self.leader() else {
            return (
                Verdict::NoQuorum,
                if up_ids.is_empty() {
                    "no quorum: no node reachable".into()
                } else {
                    format!(
                        "no quorum: no leader ({} of {} nodes reachable)",
                        up_ids.len(),
                        self.nodes.len()
                    )
                },
            );
        };
        let quorum = voters.len() / 2 + 1;
        let voters_up = voters.iter().filter(|v| up_ids.contains(v)).count();
        if voters_up < quorum {
            return (
                Verdict::NoQuorum,
                format!(
                    "no quorum: {voters_up} of {} voters reachable, {quorum} needed",
                    voters.len()
                ),
            );
        }
        let lagging = self
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref())
            .filter(|s| self.lag(s).is_some_and(|l| l > LAG_WARN))
            .count();
        let full: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.link == Link::Up)
            .filter_map(|n| n.status.as_ref())
            .filter(|s| s.storage.as_ref().is_some_and(|st| st.full))
            .map(|s| s.id.to_string())
            .collect();
        let mut problems = Vec::new();
        if down > 0 {
            problems.push(format!("{down} down"));
        }
        if !full.is_empty() {
            problems.push(format!("disk full on node {}", full.join(", ")));
        }
        if lagging > 0 {
            problems.push(format!("{lagging} lagging"));
        }
        let learners = members.len() - voters.len();
        let summary = format!(
            "leader {} · term {} · {voters_up}/{} voters up{}",
            leader.id,
            leader.term,
            voters.len(),
            if learners > 0 {
                format!(" · {learners} learners")
            } else {
                String::new()
            }
        );
        if problems.is_empty() {
            (Verdict::Healthy, format!("healthy: {summary}"))
        } else {
            (
                Verdict::Degraded,
                format!("degraded ({}): {summary}", problems.join(", ")),
            )
        }
    }
}

#[cfg(test)]
pub mod fixture {
    //! A fixed model for pane tests: three nodes, one down, logs and events at fixed times.
    use super::*;
    use opsdeck_node::pb::{
        Dropped, ErrorCount, FollowerProgress, GcStatus, Member, OpStats, TenantUsage, WatchEvent,
    };

    /// Tenant usage as every node reports it: one near its key limit, one with refusals,
    /// one without a quota.
    pub fn quotas() -> Vec<TenantUsage> {
        vec![
            TenantUsage {
                tenant: "acme".into(),
                tier: "pro".into(),
                keys: 850,
                bytes: 70 << 20,
                max_keys: Some(1000),
                max_bytes: Some(100 << 20),
                violations: 0,
            },
            TenantUsage {
                tenant: "beta".into(),
                tier: "free".into(),
                keys: 12,
                bytes: 30 << 10,
                max_keys: Some(100),
                max_bytes: Some(1 << 20),
                violations: 3,
            },
            TenantUsage {
                tenant: "legacy".into(),
                tier: String::new(),
                keys: 5_000,
                bytes: 2 << 30,
                max_keys: None,
                max_bytes: None,
                violations: 0,
            },
        ]
    }

    pub const T0: i64 = 1_700_000_000_000; // 22:13:20 UTC

    pub fn status(id: u64, role: &str, last: u64, t: i64) -> NodeStatus {
        let members = (1..=3)
            .map(|i| Member {
                id: i,
                grpc: format!("127.0.0.1:710{i}"),
                http: format!("127.0.0.1:720{i}"),
                voter: true,
            })
            .collect();
        NodeStatus {
            id,
            grpc: format!("127.0.0.1:710{id}"),
            http: format!("127.0.0.1:720{id}"),
            role: role.into(),
            term: 4,
            leader_id: Some(1),
            last_log_index: Some(last),
            committed: Some(last),
            applied: Some(last),
            snapshot_index: Some(10_000),
            purged_index: Some(9_000),
            members,
            unix_ms: t,
            uptime_ms: 3_725_000,
            rss_bytes: 40 << 20,
            ops: vec![OpStats {
                op: "put".into(),
                per_sec: 120.0 + (t - T0) as f64 / 100.0,
                total: 5000,
                errors: 2,
                p50_us: 900,
                p95_us: 2_500,
                p99_us: 8_000 + (t - T0) as u64,
                max_us: 50_000,
            }],
            errors: vec![ErrorCount {
                kind: "timeout".into(),
                count: (t - T0) as u64 / 1000,
            }],
            sled_size_on_disk: 30 << 20,
            data_dir_bytes: (60 << 20) + (t - T0) as u64 * 100,
            fs_total_bytes: 100 << 30,
            fs_free_bytes: 40 << 30,
            followers: if role == "leader" {
                vec![
                    FollowerProgress {
                        id: 2,
                        matched: Some(last - 3),
                        lag: 3,
                        ..Default::default()
                    },
                    FollowerProgress {
                        id: 3,
                        matched: Some(last - 1500),
                        lag: 1500,
                        ..Default::default()
                    },
                ]
            } else {
                vec![]
            },
            gc: Some(GcStatus {
                log_entries: 1_234,
                first_log_index: Some(9_001),
                last_log_index: Some(last),
                last_snapshot_index: Some(10_000),
                last_snapshot_bytes: 3 << 20,
                last_snapshot_millis: 420,
                last_snapshot_unix_ms: Some(T0 - 60_000),
                last_purge_index: Some(9_000),
                last_purge_entries: 1_000,
                sled_bytes_before_compact: 0,
                sled_bytes_after_compact: 0,
                ..GcStatus::default()
            }),
            quotas: quotas(),
            ..NodeStatus::default()
        }
    }

    fn ev(kind: Kind) -> Box<WatchEvent> {
        Box::new(WatchEvent { kind: Some(kind) })
    }

    /// Node 1 leads, node 2 follows, node 3 went down after a few frames.
    pub fn model() -> Model {
        let eps: Vec<String> = (1..=3).map(|i| format!("127.0.0.1:710{i}")).collect();
        let mut m = Model::new(&eps);
        m.context = "prod-eu".into();
        for step in 0..30i64 {
            let t = T0 + step * 1000;
            m.apply(Update::Event {
                node: 0,
                at: t,
                event: ev(Kind::Status(status(1, "leader", 12_000 + step as u64, t))),
            });
            m.apply(Update::Event {
                node: 1,
                at: t,
                event: ev(Kind::Status(status(2, "follower", 11_997 + step as u64, t))),
            });
            if step < 10 {
                m.apply(Update::Event {
                    node: 2,
                    at: t,
                    event: ev(Kind::Status(status(3, "follower", 10_500, t))),
                });
            }
        }
        m.apply(Update::Down {
            node: 2,
            at: T0 + 10_500,
            error: "transport error: Connection refused (os error 111)".into(),
            refused: false,
        });
        for node in 0..3u64 {
            m.apply(Update::Event {
                node: node as usize,
                at: T0,
                event: ev(Kind::Event(ClusterEvent {
                    node_id: node + 1,
                    unix_ms: T0 - 5_000,
                    kind: "leader_change".into(),
                    detail: "leader none -> node 1".into(),
                    term: 4,
                    leader_id: Some(1),
                })),
            });
        }
        m.apply(Update::Event {
            node: 0,
            at: T0,
            event: ev(Kind::Event(ClusterEvent {
                node_id: 1,
                unix_ms: T0 + 2_000,
                kind: "snapshot".into(),
                detail: "snapshot at index 10000".into(),
                term: 4,
                leader_id: Some(1),
            })),
        });
        let levels = ["INFO", "DEBUG", "WARN", "INFO", "ERROR"];
        for i in 0..40u64 {
            let node = (i % 2) as usize;
            m.apply(Update::Event {
                node,
                at: T0,
                event: ev(Kind::Log(LogRecord {
                    node_id: node as u64 + 1,
                    seq: i,
                    unix_ms: T0 + i as i64 * 250,
                    level: levels[i as usize % 5].into(),
                    target: "opsdeck_node::core".into(),
                    message: format!("applied batch {i}"),
                    fields: format!("entries={}", i * 3),
                })),
            });
        }
        m.apply(Update::Event {
            node: 1,
            at: T0 + 9_999,
            event: ev(Kind::Dropped(Dropped { records: 17 })),
        });
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_verdict_and_lag() {
        let m = fixture::model();
        let (v, text) = m.verdict();
        assert_eq!(v, Verdict::Degraded, "{text}");
        assert!(text.contains("1 down"), "{text}");
        assert_eq!(m.leader().map(|l| l.id), Some(1));
        // Timeline folds the three reports of one leader change into one entry.
        let changes: Vec<_> = m
            .timeline
            .iter()
            .filter(|t| t.kind == "leader_change")
            .collect();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].seen_by, vec![1, 2, 3]);
        assert!(m.timeline.iter().any(|t| t.kind == "node_down"));
    }

    #[test]
    fn logs_are_deduplicated_after_a_reconnect_and_bounded() {
        let mut m = Model::new(&["a:1".to_string()]);
        let rec = |seq: u64, ms: i64| Update::Event {
            node: 0,
            at: 0,
            event: Box::new(WatchEvent {
                kind: Some(Kind::Log(LogRecord {
                    node_id: 1,
                    seq,
                    unix_ms: ms,
                    level: "INFO".into(),
                    ..Default::default()
                })),
            }),
        };
        assert!(m.apply(rec(1, 10)));
        assert!(m.apply(rec(2, 11)));
        assert!(!m.apply(rec(1, 10)), "history resent after a reconnect");
        assert!(!m.apply(rec(2, 11)));
        assert!(m.apply(rec(3, 12)));
        for i in 0..(MAX_LOG_LINES as u64 + 10) {
            m.apply(rec(10 + i, 100 + i as i64));
        }
        assert_eq!(m.logs.len(), MAX_LOG_LINES);
        assert_eq!(m.logs_evicted, 13);
    }

    #[test]
    fn reports_say_why_a_node_has_no_status() {
        let mut m = fixture::model();
        let t = fixture::T0 + 30_000;
        let r = m.reports(t, 5_000);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].endpoint, "127.0.0.1:7101");
        assert_eq!(r[0].status.as_ref().map(|s| s.id), Ok(1));
        assert_eq!(r[1].status.as_ref().map(|s| s.id), Ok(2));
        assert_eq!(
            r[2].status.as_ref().err().map(String::as_str),
            Some("transport error: Connection refused (os error 111)"),
            "a down stream reports its last error"
        );
        assert!(!r[2].refused);

        // Silent: the stream is up but no frame came for longer than the stall limit.
        let r = m.reports(fixture::T0 + 29_000 + 40_000, 5_000);
        assert_eq!(
            r[0].status.as_ref().err().map(String::as_str),
            Some("no status frame for 40s")
        );

        // Refused: the node answers but not to our key.
        m.apply(Update::Down {
            node: 1,
            at: t,
            error: "Unauthenticated: invalid API key".into(),
            refused: true,
        });
        let r = m.reports(t, 5_000);
        assert!(r[1].status.is_err() && r[1].refused);

        let fresh = Model::new(&["a:1".to_string()]);
        let r = fresh.reports(t, 5_000);
        assert_eq!(
            r[0].status.as_ref().err().map(String::as_str),
            Some("no answer yet")
        );
    }

    #[test]
    fn no_quorum_when_a_majority_is_down() {
        let mut m = fixture::model();
        m.apply(Update::Down {
            node: 1,
            at: fixture::T0 + 40_000,
            error: "refused".into(),
            refused: false,
        });
        let (v, text) = m.verdict();
        assert_eq!(v, Verdict::NoQuorum, "{text}");
        assert!(text.contains("1 of 3 voters reachable, 2 needed"), "{text}");
    }
}
