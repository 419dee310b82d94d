//! The evaluator: each tick, every rule against every subject of its scope, moving each
//! instance through pending → firing → resolved. Pure: the caller passes the clock.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::figures::{Figure, Reading, Subject};
use super::observe::{History, Readings};
use super::rules::{Rule, Rules, Severity};
use crate::client::NodeReport;

/// How long a resolved alert stays listed.
pub const RESOLVED_KEPT: Duration = Duration::from_secs(15 * 60);

/// One rule instance: a rule about one subject.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertId {
    pub rule: String,
    pub subject: Subject,
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.rule, self.subject)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition is false (instances in this state are not listed).
    Inactive,
    /// The condition is true but has not held for the rule's `for` yet.
    Pending,
    Firing,
    /// The condition became false after firing.
    Resolved,
}

/// A figure the rule looked at, as last seen (None: no data).
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub figure: Figure,
    pub reading: Option<Reading>,
}

/// A listed alert instance.
#[derive(Clone, Debug)]
pub struct AlertState {
    pub id: AlertId,
    pub severity: Severity,
    pub state: State,
    /// When it entered `state` (unix ms, observer clock).
    pub since_ms: i64,
    /// When the condition last became true.
    pub active_since_ms: i64,
    /// The rule's `for`.
    pub hold: Duration,
    /// The figures of the condition at the last tick.
    pub seen: Vec<Seen>,
    /// Acknowledged while firing; cleared when it resolves.
    pub acked: bool,
    /// Evaluated as usual but marked silenced until then (unix ms).
    pub silenced_until: Option<i64>,
    summary: Option<String>,
    /// The rule's runbook step, if it has one.
    pub runbook: Option<String>,
}

impl AlertState {
    /// The figures' values, e.g. `0 (unreachable: ...)` or `disk_used_pct=85.0%, ...`.
    pub fn value(&self) -> String {
        let show = |s: &Seen| {
            s.reading
                .as_ref()
                .map_or_else(|| "no data".to_string(), |r| r.text.clone())
        };
        match self.seen.as_slice() {
            [one] => show(one),
            many => many
                .iter()
                .map(|s| format!("{}={}", s.figure, show(s)))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The rule's summary with `{subject}` and `{value}` filled in (else the rule name and
    /// the subject).
    pub fn summary(&self) -> String {
        match &self.summary {
            Some(s) => s
                .replace("{subject}", &self.id.subject.to_string())
                .replace("{value}", &self.value()),
            None => format!("{} on {}", self.id.rule, self.id.subject),
        }
    }

    pub fn silenced(&self) -> bool {
        self.silenced_until.is_some()
    }
}

/// A change of an instance's state, as it happened.
#[derive(Clone, Debug)]
pub struct Transition {
    pub at_ms: i64,
    pub from: State,
    pub to: State,
    /// The instance after the change (for `to == Inactive`, as it was last listed).
    pub alert: AlertState,
}

/// Holds the rules, the history and every instance's state.
pub struct Evaluator {
    rules: Rules,
    history: History,
    alerts: Vec<AlertState>,
    silences: HashMap<AlertId, i64>,
    resolved_kept: Duration,
}

fn elapsed(now_ms: i64, since_ms: i64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(since_ms).max(0) as u64)
}

impl Evaluator {
    pub fn new(rules: Rules) -> Evaluator {
        Evaluator {
            rules,
            history: History::default(),
            alerts: Vec::new(),
            silences: HashMap::new(),
            resolved_kept: RESOLVED_KEPT,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// One tick: what every configured endpoint answered, at `now_ms` (unix ms). Returns
    /// the state changes in rule order.
    pub fn observe(&mut self, now_ms: i64, reports: &[NodeReport]) -> Vec<Transition> {
        let readings = self.history.sample(now_ms, reports);
        self.evaluate(now_ms, &readings)
    }

    /// Pending, firing and recently resolved alerts: firing first, then by severity.
    pub fn alerts(&self) -> &[AlertState] {
        &self.alerts
    }

    /// Marks a firing alert acknowledged; false if `id` is not firing.
    pub fn ack(&mut self, id: &AlertId) -> bool {
        match self
            .alerts
            .iter_mut()
            .find(|a| &a.id == id && a.state == State::Firing)
        {
            Some(a) => {
                a.acked = true;
                true
            }
            None => false,
        }
    }

    /// Marks `id` silenced until `until_ms` (unix ms), also across resolve and re-fire.
    /// A time not after the last tick lifts the silence at the next tick.
    pub fn silence(&mut self, id: &AlertId, until_ms: i64) {
        self.silences.insert(id.clone(), until_ms);
        if let Some(a) = self.alerts.iter_mut().find(|a| &a.id == id) {
            a.silenced_until = Some(until_ms);
        }
    }

    fn evaluate(&mut self, now_ms: i64, readings: &Readings) -> Vec<Transition> {
        self.silences.retain(|_, until| *until > now_ms);
        let mut changes = Vec::new();
        for rule in self.rules.rules() {
            let mut subjects: BTreeSet<&Subject> = readings
                .keys()
                .filter(|s| s.scope() == rule.scope())
                .collect();
            let listed: Vec<Subject> = self
                .alerts
                .iter()
                .filter(|a| a.id.rule == rule.name)
                .map(|a| a.id.subject.clone())
                .collect();
            subjects.extend(listed.iter());
            for subject in subjects {
                let figures = readings.get(subject);
                let (holds, seen) = rule.condition.eval(|f| figures.and_then(|fs| fs.get(&f)));
                let seen = seen
                    .into_iter()
                    .map(|(figure, reading)| Seen { figure, reading })
                    .collect();
                let id = AlertId {
                    rule: rule.name.clone(),
                    subject: subject.clone(),
                };
                let t = Self::step(
                    &mut self.alerts,
                    &self.silences,
                    now_ms,
                    rule,
                    id,
                    holds,
                    seen,
                );
                if let Some(t) = t {
                    changes.push(t);
                }
            }
        }
        let kept = self.resolved_kept;
        self.alerts
            .retain(|a| a.state != State::Resolved || elapsed(now_ms, a.since_ms) < kept);
        self.alerts.sort_by(|a, b| {
            let rank = |s: State| match s {
                State::Firing => 0,
                State::Pending => 1,
                _ => 2,
            };
            (rank(a.state), std::cmp::Reverse(a.severity), &a.id).cmp(&(
                rank(b.state),
                std::cmp::Reverse(b.severity),
                &b.id,
            ))
        });
        changes
    }

    /// Moves one instance; returns the change, if any.
    fn step(
        alerts: &mut Vec<AlertState>,
        silences: &HashMap<AlertId, i64>,
        now_ms: i64,
        rule: &Rule,
        id: AlertId,
        holds: bool,
        seen: Vec<Seen>,
    ) -> Option<Transition> {
        let pos = alerts.iter().position(|a| a.id == id);
        let from = pos.map_or(State::Inactive, |i| alerts[i].state);
        let to = match (from, holds) {
            (State::Inactive | State::Resolved, true) if rule.hold.is_zero() => State::Firing,
            (State::Inactive | State::Resolved, true) => State::Pending,
            (State::Pending, true) => match pos {
                Some(i) if elapsed(now_ms, alerts[i].active_since_ms) >= rule.hold => State::Firing,
                _ => State::Pending,
            },
            (State::Pending | State::Inactive, false) => State::Inactive,
            (State::Firing, true) => State::Firing,
            (State::Firing | State::Resolved, false) => State::Resolved,
        };
        let alert = match pos {
            Some(i) => &mut alerts[i],
            None if to == State::Inactive => return None,
            None => {
                alerts.push(AlertState {
                    id: id.clone(),
                    severity: rule.severity,
                    state: State::Inactive,
                    since_ms: now_ms,
                    active_since_ms: now_ms,
                    hold: rule.hold,
                    seen: Vec::new(),
                    acked: false,
                    silenced_until: None,
                    summary: rule.summary.clone(),
                    runbook: rule.runbook.clone(),
                });
                let last = alerts.len() - 1;
                &mut alerts[last]
            }
        };
        alert.seen = seen;
        alert.silenced_until = silences.get(&id).copied();
        if from == to {
            return None;
        }
        alert.state = to;
        alert.since_ms = now_ms;
        if matches!(from, State::Inactive | State::Resolved) {
            alert.active_since_ms = now_ms;
        }
        if to != State::Firing {
            alert.acked = false;
        }
        let change = Transition {
            at_ms: now_ms,
            from,
            to,
            alert: alert.clone(),
        };
        if to == State::Inactive {
            alerts.retain(|a| a.id != id);
        }
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsdeck_node::pb::{FollowerProgress, Member, NodeStatus, OpStats, TenantUsage};

    const S: i64 = 1000;
    const T0: i64 = 1_800_000_000_000;

    fn rules(text: &str) -> Rules {
        Rules::parse(text, "test.toml").unwrap()
    }

    fn one_rule(expr: &str, hold: &str) -> Evaluator {
        Evaluator::new(rules(&format!(
            "[[rule]]\nname = \"r\"\nexpr = \"{expr}\"\nfor = \"{hold}\"\nseverity = \"critical\"\nsummary = \"{{subject}} at {{value}}\"\n"
        )))
    }

    fn disk(pcts: &[(u64, f64)]) -> Readings {
        pcts.iter()
            .map(|(id, v)| {
                (
                    Subject::Node(*id),
                    [(Figure::DiskUsedPct, Reading::pct(*v))].into(),
                )
            })
            .collect()
    }

    fn moves(ts: &[Transition]) -> Vec<(String, State, State)> {
        ts.iter()
            .map(|t| (t.alert.id.subject.to_string(), t.from, t.to))
            .collect()
    }

    fn state_of(ev: &Evaluator, id: u64) -> Option<State> {
        ev.alerts()
            .iter()
            .find(|a| a.id.subject == Subject::Node(id))
            .map(|a| a.state)
    }

    fn id(node: u64) -> AlertId {
        AlertId {
            rule: "r".into(),
            subject: Subject::Node(node),
        }
    }

    #[test]
    fn pending_then_firing_after_for() {
        let mut ev = one_rule("disk_used_pct > 80", "10s");
        let t = ev.evaluate(T0, &disk(&[(1, 90.0), (2, 50.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Inactive, State::Pending)]
        );
        assert_eq!(ev.alerts().len(), 1, "inactive instances are not listed");
        assert!(ev.evaluate(T0 + 9 * S, &disk(&[(1, 91.0)])).is_empty());
        assert_eq!(state_of(&ev, 1), Some(State::Pending));
        assert_eq!(ev.alerts()[0].value(), "91.0%");
        let t = ev.evaluate(T0 + 10 * S, &disk(&[(1, 92.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Pending, State::Firing)]
        );
        let a = &ev.alerts()[0];
        assert_eq!((a.since_ms, a.active_since_ms), (T0 + 10 * S, T0));
        assert_eq!(a.summary(), "node 1 at 92.0%");
    }

    #[test]
    fn flapping_before_for_resets_to_inactive() {
        let mut ev = one_rule("disk_used_pct > 80", "10s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        let t = ev.evaluate(T0 + 5 * S, &disk(&[(1, 70.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Pending, State::Inactive)]
        );
        assert!(ev.alerts().is_empty());
        // True again: the `for` clock starts over, so 10 s after the first sighting is
        // not enough.
        ev.evaluate(T0 + 6 * S, &disk(&[(1, 90.0)]));
        assert!(ev.evaluate(T0 + 10 * S, &disk(&[(1, 90.0)])).is_empty());
        assert_eq!(state_of(&ev, 1), Some(State::Pending));
        let t = ev.evaluate(T0 + 16 * S, &disk(&[(1, 90.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Pending, State::Firing)]
        );
    }

    #[test]
    fn for_zero_fires_at_once() {
        let mut ev = one_rule("disk_used_pct > 80", "0s");
        let t = ev.evaluate(T0, &disk(&[(1, 90.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Inactive, State::Firing)]
        );
    }

    #[test]
    fn resolve_then_refire_then_expire() {
        let mut ev = one_rule("disk_used_pct > 80", "0s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        assert!(ev.ack(&id(1)));
        let t = ev.evaluate(T0 + S, &disk(&[(1, 10.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Firing, State::Resolved)]
        );
        let a = &ev.alerts()[0];
        assert_eq!(
            (a.state, a.since_ms, a.acked),
            (State::Resolved, T0 + S, false)
        );
        assert_eq!(
            a.value(),
            "10.0%",
            "a resolved alert shows the current value"
        );
        let t = ev.evaluate(T0 + 2 * S, &disk(&[(1, 95.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Resolved, State::Firing)]
        );
        assert_eq!(ev.alerts()[0].active_since_ms, T0 + 2 * S);
        assert!(!ev.alerts()[0].acked, "a re-fire is a new incident");
        // Resolved alerts stay listed for RESOLVED_KEPT, then disappear without a change.
        ev.evaluate(T0 + 3 * S, &disk(&[(1, 10.0)]));
        let kept = RESOLVED_KEPT.as_millis() as i64;
        assert!(ev
            .evaluate(T0 + 3 * S + kept - 1, &disk(&[(1, 10.0)]))
            .is_empty());
        assert_eq!(state_of(&ev, 1), Some(State::Resolved));
        assert!(ev
            .evaluate(T0 + 3 * S + kept, &disk(&[(1, 10.0)]))
            .is_empty());
        assert!(ev.alerts().is_empty());
    }

    #[test]
    fn resolved_then_true_with_for_goes_pending() {
        let mut ev = one_rule("disk_used_pct > 80", "5s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        ev.evaluate(T0 + 5 * S, &disk(&[(1, 90.0)]));
        ev.evaluate(T0 + 6 * S, &disk(&[(1, 10.0)]));
        let t = ev.evaluate(T0 + 7 * S, &disk(&[(1, 90.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Resolved, State::Pending)]
        );
        let t = ev.evaluate(T0 + 12 * S, &disk(&[(1, 90.0)]));
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Pending, State::Firing)]
        );
    }

    #[test]
    fn a_vanished_subject_resolves() {
        let mut ev = one_rule("disk_used_pct > 80", "0s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        let t = ev.evaluate(T0 + S, &Readings::new());
        assert_eq!(
            moves(&t),
            [("node 1".into(), State::Firing, State::Resolved)]
        );
        assert_eq!(ev.alerts()[0].value(), "no data");
    }

    #[test]
    fn ack_marks_only_firing_alerts() {
        let mut ev = one_rule("disk_used_pct > 80", "10s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        assert!(!ev.ack(&id(1)), "pending cannot be acknowledged");
        ev.evaluate(T0 + 10 * S, &disk(&[(1, 90.0)]));
        assert!(ev.ack(&id(1)));
        ev.evaluate(T0 + 11 * S, &disk(&[(1, 90.0)]));
        let a = &ev.alerts()[0];
        assert_eq!((a.state, a.acked), (State::Firing, true));
        assert!(!ev.ack(&id(2)));
    }

    #[test]
    fn silence_marks_until_it_expires_and_survives_refire() {
        let mut ev = one_rule("disk_used_pct > 80", "0s");
        ev.evaluate(T0, &disk(&[(1, 90.0)]));
        ev.silence(&id(1), T0 + 10 * S);
        assert_eq!(ev.alerts()[0].silenced_until, Some(T0 + 10 * S));
        // Still evaluated: it resolves and fires again while silenced.
        let t = ev.evaluate(T0 + S, &disk(&[(1, 10.0)]));
        assert_eq!(t.len(), 1);
        assert!(t[0].alert.silenced());
        ev.evaluate(T0 + 2 * S, &disk(&[(1, 90.0)]));
        let a = &ev.alerts()[0];
        assert_eq!((a.state, a.silenced()), (State::Firing, true));
        ev.evaluate(T0 + 10 * S, &disk(&[(1, 90.0)]));
        assert!(!ev.alerts()[0].silenced(), "the silence ended");
    }

    #[test]
    fn order_is_firing_then_pending_then_resolved_by_severity() {
        let mut ev = Evaluator::new(rules(
            "[[rule]]\nname = \"w\"\nexpr = \"disk_used_pct > 80\"\nseverity = \"warning\"\n\
             [[rule]]\nname = \"c\"\nexpr = \"disk_used_pct > 90\"\nseverity = \"critical\"\n\
             [[rule]]\nname = \"p\"\nexpr = \"disk_used_pct > 50\"\nfor = \"1h\"\nseverity = \"critical\"\n",
        ));
        ev.evaluate(T0, &disk(&[(1, 95.0)]));
        let order: Vec<(&str, State)> = ev
            .alerts()
            .iter()
            .map(|a| (a.id.rule.as_str(), a.state))
            .collect();
        assert_eq!(
            order,
            [
                ("c", State::Firing),
                ("w", State::Firing),
                ("p", State::Pending)
            ]
        );
    }

    // ---- From node reports: the observer's figures.

    fn up(id: u64, status: NodeStatus) -> NodeReport {
        NodeReport {
            endpoint: format!("127.0.0.1:{}", 7100 + id),
            status: Ok(NodeStatus { id, ..status }),
            refused: false,
        }
    }

    fn down(id: u64) -> NodeReport {
        NodeReport {
            endpoint: format!("127.0.0.1:{}", 7100 + id),
            status: Err("transport error: tcp connect error: Connection refused".into()),
            refused: false,
        }
    }

    fn members(n: u64) -> Vec<Member> {
        (1..=n)
            .map(|id| Member {
                id,
                grpc: format!("127.0.0.1:{}", 7100 + id),
                http: String::new(),
                voter: true,
            })
            .collect()
    }

    fn healthy(id: u64, leader: u64, term: u64) -> NodeStatus {
        NodeStatus {
            role: if id == leader { "leader" } else { "follower" }.into(),
            term,
            leader_id: Some(leader),
            members: members(3),
            ..Default::default()
        }
    }

    fn runbook() -> Evaluator {
        Evaluator::new(rules(
            "[[rule]]\nname = \"node_down\"\nexpr = \"node_up == 0\"\nfor = \"2s\"\nseverity = \"critical\"\n\
             [[rule]]\nname = \"quorum_lost\"\nexpr = \"quorum_ok == 0\"\nseverity = \"critical\"\n",
        ))
    }

    fn firing(ev: &Evaluator) -> Vec<String> {
        ev.alerts()
            .iter()
            .filter(|a| a.state == State::Firing)
            .map(|a| a.id.to_string())
            .collect()
    }

    #[test]
    fn one_node_down_is_not_quorum_lost_two_are() {
        let mut ev = runbook();
        let all = |term| {
            (1..=3)
                .map(|i| up(i, healthy(i, 1, term)))
                .collect::<Vec<_>>()
        };
        assert!(ev.observe(T0, &all(1)).is_empty());
        let one_down = [up(1, healthy(1, 1, 1)), up(2, healthy(2, 1, 1)), down(3)];
        ev.observe(T0 + S, &one_down);
        ev.observe(T0 + 3 * S, &one_down);
        assert_eq!(firing(&ev), ["node_down (node 3)"]);
        assert_eq!(
            figure(&ev, "node_down").as_deref(),
            Some("0 (unreachable: Connection refused)")
        );
        // Node 2's id is remembered although it no longer answers and nobody lists it.
        let two_down = [
            up(
                1,
                NodeStatus {
                    members: Vec::new(),
                    ..healthy(1, 1, 1)
                },
            ),
            down(2),
            down(3),
        ];
        ev.observe(T0 + 4 * S, &two_down);
        ev.observe(T0 + 6 * S, &two_down);
        assert_eq!(
            firing(&ev),
            [
                "node_down (node 2)",
                "node_down (node 3)",
                "quorum_lost (cluster)"
            ]
        );
        let q = ev
            .alerts()
            .iter()
            .find(|a| a.id.rule == "quorum_lost")
            .unwrap();
        assert_eq!(q.value(), "0 (1 of 3 voters reachable, leader 1)");
    }

    #[test]
    fn no_leader_or_nothing_reachable_is_quorum_lost() {
        let mut ev = runbook();
        let leaderless = |i| {
            up(
                i,
                NodeStatus {
                    leader_id: None,
                    role: "candidate".into(),
                    ..healthy(i, 0, 5)
                },
            )
        };
        ev.observe(T0, &[leaderless(1), leaderless(2), leaderless(3)]);
        let q = &ev.alerts()[0];
        assert_eq!(q.id.subject, Subject::Cluster);
        assert_eq!(
            q.value(),
            "0 (3 of 3 voters reachable, no node sees a leader)"
        );

        let mut ev = runbook();
        ev.observe(T0, &[down(1), down(2)]);
        let names: Vec<String> = ev.alerts().iter().map(|a| a.id.to_string()).collect();
        assert_eq!(
            names,
            [
                "quorum_lost (cluster)",
                "node_down (node at 127.0.0.1:7101)",
                "node_down (node at 127.0.0.1:7102)"
            ]
        );
    }

    #[test]
    fn voters_outside_the_endpoints_are_named() {
        let mut ev = runbook();
        ev.observe(T0, &[up(1, healthy(1, 1, 1))]);
        let q = &ev.alerts()[0];
        assert_eq!(
            q.value(),
            "0 (1 of 3 voters reachable, leader 1; voters 2, 3 are not among the endpoints)"
        );
    }

    fn ops(total: u64, errors: u64) -> NodeStatus {
        NodeStatus {
            ops: vec![
                OpStats {
                    op: "put".into(),
                    total,
                    errors,
                    p99_us: 1_500_000,
                    ..Default::default()
                },
                OpStats {
                    op: "get".into(),
                    p99_us: 9_000_000, // never served: its latency does not count
                    ..Default::default()
                },
            ],
            ..healthy(1, 1, 1)
        }
    }

    fn figure(ev: &Evaluator, rule: &str) -> Option<String> {
        ev.alerts()
            .iter()
            .find(|a| a.id.rule == rule)
            .map(|a| a.value())
    }

    #[test]
    fn error_rate_comes_from_counter_growth() {
        let mut ev = Evaluator::new(rules(
            "[[rule]]\nname = \"err\"\nexpr = \"error_rate_pct > 5\"\nseverity = \"critical\"\n\
             [[rule]]\nname = \"lat\"\nexpr = \"p99_latency_ms > 1000\"\nseverity = \"warning\"\n",
        ));
        ev.observe(T0, &[up(1, ops(1000, 900))]);
        assert_eq!(figure(&ev, "err"), None, "one look gives no rate");
        assert_eq!(figure(&ev, "lat").as_deref(), Some("1500 ms"));
        ev.observe(T0 + S, &[up(1, ops(1100, 910))]);
        assert_eq!(figure(&ev, "err").as_deref(), Some("10.0% (10 of 100)"));
        // The window slides: a minute later only the newest growth counts.
        ev.observe(T0 + 61 * S, &[up(1, ops(1200, 911))]);
        let err = ev.alerts().iter().find(|a| a.id.rule == "err");
        assert_eq!(err.map(|a| a.state), Some(State::Resolved));
        assert_eq!(figure(&ev, "err").as_deref(), Some("1.0% (1 of 100)"));
        // A restart resets the counters: no rate until the next look.
        ev.observe(T0 + 62 * S, &[up(1, ops(5, 5))]);
        assert_eq!(figure(&ev, "err").as_deref(), Some("no data"));
    }

    fn with_digest(id: u64, newest: (u64, u8), checkpoint: Option<(u64, u8)>) -> NodeReport {
        let d = |(index, b): (u64, u8)| opsdeck_node::pb::StateDigest {
            index,
            digest: vec![b; 32],
        };
        up(
            id,
            NodeStatus {
                digest: Some(d(newest)),
                digest_checkpoint: checkpoint.map(d),
                ..healthy(id, 1, 1)
            },
        )
    }

    #[test]
    fn replica_divergence_fires_for_the_node_whose_digest_differs() {
        let mut ev = Evaluator::new(Rules::defaults());
        let diverged = |ev: &Evaluator| -> Vec<String> {
            firing(ev)
                .into_iter()
                .filter(|a| a.starts_with("replica_divergence"))
                .collect()
        };
        // Sampled at different indexes, the three meet at checkpoint 512: all agree.
        let agree = [
            with_digest(1, (600, 9), Some((512, 1))),
            with_digest(2, (590, 8), Some((512, 1))),
            with_digest(3, (512, 1), Some((512, 1))),
        ];
        ev.observe(T0, &agree);
        assert!(diverged(&ev).is_empty(), "{:?}", firing(&ev));
        // Node 3 holds something else at 512.
        let one_differs = [
            with_digest(1, (600, 9), Some((512, 1))),
            with_digest(2, (590, 8), Some((512, 1))),
            with_digest(3, (512, 7), Some((512, 7))),
        ];
        ev.observe(T0 + S, &one_differs);
        assert_eq!(diverged(&ev), ["replica_divergence (node 3)"]);
        assert_eq!(
            figure(&ev, "replica_divergence").as_deref(),
            Some("differs at index 512")
        );
        // No two frames share an index: no data, so nothing fires any more.
        let apart = [
            with_digest(1, (700, 9), None),
            with_digest(2, (650, 8), None),
        ];
        ev.observe(T0 + 2 * S, &apart);
        assert!(diverged(&ev).is_empty(), "{:?}", firing(&ev));
    }

    #[test]
    fn terms_started_in_five_minutes() {
        let mut ev = Evaluator::new(rules(
            "[[rule]]\nname = \"churn\"\nexpr = \"term_changes_5m > 3\"\nseverity = \"warning\"\n",
        ));
        let at = |term| [up(1, healthy(1, 1, term)), up(2, healthy(2, 1, term - 1))];
        ev.observe(T0, &at(10));
        ev.observe(T0 + S, &at(12));
        ev.observe(T0 + 2 * S, &[down(1), up(2, healthy(2, 1, 11))]);
        assert!(
            ev.alerts().is_empty(),
            "3 changes, and a lower term is no change"
        );
        ev.observe(T0 + 3 * S, &at(14));
        assert_eq!(figure(&ev, "churn").as_deref(), Some("4 (now term 14)"));
        ev.observe(T0 + S + 5 * 60 * S, &at(14));
        assert_eq!(figure(&ev, "churn").as_deref(), Some("2 (now term 14)"));
        assert_eq!(ev.alerts()[0].state, State::Resolved);
    }

    #[test]
    fn disk_storage_lag_quota_and_backup() {
        let mut ev = Evaluator::new(Rules::defaults());
        let leader = NodeStatus {
            fs_total_bytes: 1000,
            fs_free_bytes: 100,
            data_dir_bytes: 850,
            followers: vec![FollowerProgress {
                id: 2,
                matched: Some(1),
                lag: 20_000,
                ..Default::default()
            }],
            quotas: vec![
                TenantUsage {
                    tenant: "acme".into(),
                    keys: 85,
                    max_keys: Some(100),
                    bytes: 10,
                    max_bytes: Some(1000),
                    ..Default::default()
                },
                TenantUsage {
                    tenant: "free".into(),
                    keys: 1_000_000,
                    ..Default::default()
                },
            ],
            ..healthy(1, 1, 1)
        };
        let reports = [
            up(1, leader),
            up(2, healthy(2, 1, 1)),
            up(3, healthy(3, 1, 1)),
        ];
        ev.observe(T0, &reports);
        ev.observe(T0 + 5 * 60 * S, &reports);
        let mut shown: Vec<(String, String)> = ev
            .alerts()
            .iter()
            .filter(|a| a.state == State::Firing)
            .map(|a| (a.id.to_string(), a.value()))
            .collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                ("backup_stale (cluster)".into(), "no backup known".into()),
                ("disk_usage_high (node 1)".into(), "90.0%".into()),
                ("follower_lag_high (node 2)".into(), "20000".into()),
                (
                    "quota_usage_high (tenant acme)".into(),
                    "85.0% (keys 85 of 100)".into()
                ),
                ("storage_near_capacity (node 1)".into(), "89.5%".into()),
            ]
        );
        let backup = NodeStatus {
            last_backup_unix_ms: Some(T0 + 5 * 60 * S - 3_600_000),
            ..healthy(3, 1, 1)
        };
        ev.observe(T0 + 5 * 60 * S, &[down(1), down(2), up(3, backup)]);
        assert_eq!(figure(&ev, "backup_stale").as_deref(), Some("1.0 h ago"));
        // Not verified for two hours: past the rule's hour.
        let unverified = NodeStatus {
            last_backup_unix_ms: Some(T0 + 5 * 60 * S - 7_200_000),
            ..healthy(3, 1, 1)
        };
        let firing = |ev: &Evaluator| {
            ev.alerts()
                .iter()
                .find(|a| a.id.rule == "backup_unverified" && a.state == State::Firing)
                .map(|a| a.value())
        };
        ev.observe(
            T0 + 5 * 60 * S,
            &[down(1), down(2), up(3, unverified.clone())],
        );
        assert_eq!(
            firing(&ev).as_deref(),
            Some("taken 2.0 h ago, not verified")
        );
        // One node that has applied the verification is enough.
        let verified = NodeStatus {
            last_backup_verified_unix_ms: Some(T0 + 5 * 60 * S - 60_000),
            ..unverified.clone()
        };
        ev.observe(
            T0 + 5 * 60 * S,
            &[up(1, unverified), down(2), up(3, verified)],
        );
        assert_eq!(firing(&ev), None);
    }
}
