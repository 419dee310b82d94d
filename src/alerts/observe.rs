//! Turning what the observer saw this tick (one [`NodeReport`] per endpoint) into figure
//! readings per subject, with the history some figures need (error-rate deltas, terms).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use opsdeck_node::pb::NodeStatus;

use super::figures::{Figure, Reading, Subject};
use crate::client::digests::{from_frames, Outcome};
use crate::client::NodeReport;
use crate::format::bytes;

/// Error rates are computed over this much history.
pub const ERROR_WINDOW_MS: i64 = 60_000;
/// `term_changes_5m` counts terms started within this window.
pub const TERM_WINDOW_MS: i64 = 5 * 60_000;

/// Every reading of one tick, by subject.
pub type Readings = BTreeMap<Subject, BTreeMap<Figure, Reading>>;

/// What the observer remembers between ticks.
#[derive(Default)]
pub struct History {
    /// Endpoint → node id, learned from the node's own answers and from member lists, so a
    /// node that goes down keeps its id.
    ids: HashMap<String, u64>,
    /// Per node: (observer time, operations, failed operations), oldest first.
    ops: HashMap<u64, VecDeque<(i64, u64, u64)>>,
    /// Highest term ever seen, and when terms rose by how much.
    max_term: Option<u64>,
    term_rises: VecDeque<(i64, u64)>,
    /// Voters as last seen, for ticks when no node answers.
    voters: BTreeSet<u64>,
}

/// `replica_diverged` of every answering node, from the digests the frames carry (see
/// `client::digests::from_frames`): the nodes outside the largest group of equal digests 1,
/// the others compared 0; no reading for a node not compared or when no two frames share
/// an index.
fn replica_diverged(up: &[(&str, &NodeStatus)], out: &mut Readings) {
    let Some(check) = from_frames(up.iter().map(|(e, s)| (*e, *s))) else {
        return;
    };
    let (index, differing) = match &check.outcome {
        Outcome::Agree { index, .. } => (*index, Vec::new()),
        Outcome::Diverged { index, differing } => (*index, differing.clone()),
        Outcome::Inconclusive { .. } => return,
    };
    let compared = |s: &NodeStatus| {
        [&s.digest, &s.digest_checkpoint]
            .into_iter()
            .flatten()
            .any(|d| d.index == index)
    };
    for (_, s) in up.iter().filter(|(_, s)| compared(s)) {
        let (value, text) = if differing.contains(&s.id) {
            (1.0, format!("differs at index {index}"))
        } else {
            (0.0, format!("agrees at index {index}"))
        };
        out.entry(Subject::Node(s.id))
            .or_default()
            .insert(Figure::ReplicaDiverged, Reading::new(value, text));
    }
}

fn ms(us: u64) -> Reading {
    let v = us as f64 / 1000.0;
    Reading::new(v, format!("{v:.0} ms"))
}

impl History {
    /// Readings for this tick; `now_ms` is the observer's clock (unix ms).
    pub fn sample(&mut self, now_ms: i64, reports: &[NodeReport]) -> Readings {
        let up: Vec<(&str, &NodeStatus)> = reports
            .iter()
            .filter_map(|r| r.status.as_ref().ok().map(|s| (r.endpoint.as_str(), s)))
            .collect();
        for (_, s) in &up {
            for m in &s.members {
                self.ids.insert(m.grpc.clone(), m.id);
            }
        }
        for (endpoint, s) in &up {
            self.ids.insert(endpoint.to_string(), s.id);
        }
        let mut out = Readings::new();
        for r in reports {
            let subject = match self.ids.get(&r.endpoint) {
                Some(id) => Subject::Node(*id),
                None => Subject::Endpoint(r.endpoint.clone()),
            };
            let figures = out.entry(subject).or_default();
            match &r.status {
                Ok(s) => {
                    figures.insert(Figure::NodeUp, Reading::new(1.0, "1"));
                    self.node_figures(now_ms, s, figures);
                }
                Err(e) if r.refused => {
                    figures.insert(
                        Figure::NodeUp,
                        Reading::new(1.0, format!("1 (answers, but refused our key: {e})")),
                    );
                }
                Err(e) => {
                    // The innermost cause ("Connection refused", "no answer within 2s")
                    // is what tells refused from hung; the wrappers add nothing.
                    let cause = e.rsplit(": ").next().unwrap_or(e);
                    figures.insert(
                        Figure::NodeUp,
                        Reading::new(0.0, format!("0 (unreachable: {cause})")),
                    );
                }
            }
        }
        self.follower_lag(&up, &mut out);
        replica_diverged(&up, &mut out);
        let cluster = self.cluster_figures(now_ms, &up, reports);
        out.insert(Subject::Cluster, cluster);
        if let Some(reference) = most_recent(&up) {
            for q in &reference.quotas {
                let pcts = [
                    (q.keys, q.max_keys, "keys"),
                    (q.bytes, q.max_bytes, "bytes"),
                ];
                // A limit of 0 (the tenant may write nothing) is a choice, not fullness.
                let fullest = pcts
                    .iter()
                    .filter_map(|(used, max, what)| Some((used, (*max).filter(|m| *m > 0)?, what)))
                    .map(|(used, max, what)| (*used as f64 * 100.0 / max as f64, used, max, what))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                if let Some((pct, used, max, what)) = fullest {
                    out.entry(Subject::Tenant(q.tenant.clone()))
                        .or_default()
                        .insert(
                            Figure::QuotaUsedPct,
                            Reading::new(pct, format!("{pct:.1}% ({what} {used} of {max})")),
                        );
                }
            }
        }
        out
    }

    fn node_figures(&mut self, now_ms: i64, s: &NodeStatus, out: &mut BTreeMap<Figure, Reading>) {
        if let Some(p99) = s.ops.iter().filter(|o| o.total > 0).map(|o| o.p99_us).max() {
            out.insert(Figure::P99LatencyMs, ms(p99));
        }
        if s.fs_total_bytes > 0 {
            let used = s.fs_total_bytes.saturating_sub(s.fs_free_bytes);
            out.insert(
                Figure::DiskUsedPct,
                Reading::pct(used as f64 * 100.0 / s.fs_total_bytes as f64),
            );
            if s.data_dir_bytes > 0 {
                let room = s.data_dir_bytes.saturating_add(s.fs_free_bytes);
                out.insert(
                    Figure::StorageUsedPct,
                    Reading::pct(s.data_dir_bytes as f64 * 100.0 / room as f64),
                );
            }
        }
        if let Some(st) = &s.storage {
            let text = if st.full {
                format!(
                    "{} free, reserve {}",
                    bytes(st.free_bytes),
                    bytes(st.reserve_bytes)
                )
            } else {
                "no".to_string()
            };
            out.insert(
                Figure::StorageFull,
                Reading::new(f64::from(u8::from(st.full)), text),
            );
        }
        out.insert(Figure::StorageKeys, Reading::count(s.storage_keys));
        out.insert(Figure::StorageBytes, Reading::count(s.storage_bytes));

        let total: u64 = s.ops.iter().map(|o| o.total).sum();
        let errors: u64 = s.ops.iter().map(|o| o.errors).sum();
        let samples = self.ops.entry(s.id).or_default();
        if samples
            .back()
            .is_some_and(|&(_, t, e)| total < t || errors < e)
        {
            samples.clear(); // the node restarted: its counters began again
        }
        samples.push_back((now_ms, total, errors));
        while samples
            .front()
            .is_some_and(|&(t, _, _)| t < now_ms - ERROR_WINDOW_MS)
        {
            samples.pop_front();
        }
        if let Some(&(_, t0, e0)) = samples.front() {
            let (ops, failed) = (total - t0, errors - e0);
            if ops > 0 {
                let pct = (failed as f64 * 100.0 / ops as f64).min(100.0);
                out.insert(
                    Figure::ErrorRatePct,
                    Reading::new(pct, format!("{pct:.1}% ({failed} of {ops})")),
                );
            }
        }
    }

    /// The leader's view of each follower; with two leaders (one stale) the newer term's.
    fn follower_lag(&self, up: &[(&str, &NodeStatus)], out: &mut Readings) {
        let leader = up
            .iter()
            .filter(|(_, s)| s.role == "leader")
            .max_by_key(|(_, s)| s.term);
        if let Some((_, l)) = leader {
            for f in l.followers.iter().filter(|f| f.id != l.id) {
                out.entry(Subject::Node(f.id))
                    .or_default()
                    .insert(Figure::FollowerLag, Reading::count(f.lag));
            }
        }
    }

    fn cluster_figures(
        &mut self,
        now_ms: i64,
        up: &[(&str, &NodeStatus)],
        reports: &[NodeReport],
    ) -> BTreeMap<Figure, Reading> {
        let mut out = BTreeMap::new();
        // A node that has not joined yet lists no voters: keep what was known.
        let voters: BTreeSet<u64> = most_recent(up)
            .map(|s| s.members.iter().filter(|m| m.voter).map(|m| m.id).collect())
            .unwrap_or_default();
        if !voters.is_empty() {
            self.voters = voters;
        }
        let reachable: BTreeSet<u64> = up.iter().map(|(_, s)| s.id).collect();
        let seen = self.voters.intersection(&reachable).count();
        let majority = self.voters.len() / 2 + 1;
        let leader = up.iter().find_map(|(_, s)| s.leader_id);
        let observed: BTreeSet<u64> = reports
            .iter()
            .filter_map(|r| self.ids.get(&r.endpoint).copied())
            .collect();
        let unobserved: Vec<String> = self
            .voters
            .difference(&observed)
            .map(u64::to_string)
            .collect();
        let mut text = if self.voters.is_empty() {
            "no node answered".to_string()
        } else {
            format!("{seen} of {} voters reachable", self.voters.len())
        };
        match leader {
            Some(l) => text.push_str(&format!(", leader {l}")),
            None if !up.is_empty() => text.push_str(", no node sees a leader"),
            None => {}
        }
        if !unobserved.is_empty() {
            text.push_str(&format!(
                "; voters {} are not among the endpoints",
                unobserved.join(", ")
            ));
        }
        let ok = seen >= majority && !self.voters.is_empty() && leader.is_some();
        let v = if ok { 1.0 } else { 0.0 };
        out.insert(Figure::QuorumOk, Reading::new(v, format!("{v} ({text})")));

        if let Some(term) = up.iter().map(|(_, s)| s.term).max() {
            match self.max_term {
                Some(prev) if term > prev => self.term_rises.push_back((now_ms, term - prev)),
                _ => {}
            }
            self.max_term = Some(self.max_term.map_or(term, |p| p.max(term)));
        }
        while self
            .term_rises
            .front()
            .is_some_and(|&(t, _)| t <= now_ms - TERM_WINDOW_MS)
        {
            self.term_rises.pop_front();
        }
        if let Some(term) = self.max_term {
            let n: u64 = self.term_rises.iter().map(|(_, d)| d).sum();
            out.insert(
                Figure::TermChanges5m,
                Reading::new(n as f64, format!("{n} (now term {term})")),
            );
        }

        if !up.is_empty() {
            let reading = match up.iter().filter_map(|(_, s)| s.last_backup_unix_ms).max() {
                Some(at) => {
                    let h = (now_ms - at).max(0) as f64 / 3_600_000.0;
                    Reading::new(h, format!("{h:.1} h ago"))
                }
                None => Reading::new(f64::INFINITY, "no backup known"),
            };
            out.insert(Figure::BackupAgeH, reading);
            // The newest backup, verified if any node has applied its verification.
            let newest = up
                .iter()
                .filter_map(|(_, s)| Some((s.last_backup_unix_ms?, s.last_backup_verified_unix_ms)))
                .max_by_key(|(at, verified)| (*at, verified.is_some()));
            if let Some((at, verified)) = newest {
                let reading = match verified {
                    Some(_) => Reading::new(0.0, "verified"),
                    None => {
                        let h = (now_ms - at).max(0) as f64 / 3_600_000.0;
                        Reading::new(h, format!("taken {h:.1} h ago, not verified"))
                    }
                };
                out.insert(Figure::BackupUnverifiedH, reading);
            }
        }
        out
    }
}

/// The answering node with the newest view of the replicated state.
fn most_recent<'a>(up: &[(&str, &'a NodeStatus)]) -> Option<&'a NodeStatus> {
    up.iter()
        .map(|(_, s)| *s)
        .max_by_key(|s| (s.term, s.role == "leader", s.applied.unwrap_or(0)))
}
