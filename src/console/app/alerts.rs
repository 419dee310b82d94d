//! The console is the outside observer that evaluates the alert rules: every tick it turns
//! the latest frame of each node (or why there is none) into one `NodeReport` per endpoint
//! and feeds the evaluator. Acknowledging (the Alerts pane's effect) and `:silence` mark
//! alerts here too. With receivers configured, the changes go to the notifier, and an ack
//! or a silence becomes an Alertmanager silence on the alert's `alertname` (and `node`,
//! `endpoint` or `tenant`): an ack silences it for [`ACK_SILENCE`], a fixed time rather
//! than "until resolved", so a forgotten ack cannot hide the alert's next firing.

use std::time::Duration;

use super::App;
use crate::alerts::{AlertId, State};
use crate::console::model::{Link, TimelineEntry};
use crate::console::ops::Op;
use crate::format::clock;
use crate::ops::incident::{Entry, Note};

/// Longest silence `:silence` accepts.
const MAX_SILENCE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The window of `:report FILE` without one.
const REPORT_SINCE: Duration = Duration::from_secs(2 * 3600);
/// How long an ack silences the alert in Alertmanager.
pub const ACK_SILENCE: Duration = Duration::from_secs(3600);

impl App {
    /// This console's alert states as the diagnostics bundle records them (the CLI's
    /// bundle evaluates the built-in rules once instead).
    pub fn alert_states_json(&self) -> serde_json::Value {
        let ev = &self.alerts.evaluator;
        let alerts: Vec<serde_json::Value> =
            ev.alerts().iter().map(crate::alerts::alert_json).collect();
        serde_json::json!({
            "source": "the console's alert states",
            "rules": ev.rules().origin(),
            "alerts": alerts,
        })
    }

    /// One evaluation at `now_ms` of what the model knows; alerts that start firing or resolve
    /// go on the timeline. Nothing is evaluated before any stream has answered or failed (at
    /// most the 3 s connect timeout), so starting the console raises no pending alerts.
    pub fn tick_alerts(&mut self, now_ms: i64) {
        if self.model.nodes.iter().all(|n| n.link == Link::Connecting) {
            return;
        }
        let reports = self.model.reports(now_ms, self.stall_ms);
        let changes = self.alerts.evaluator.observe(now_ms, &reports);
        self.alerts.last_tick_ms = Some(now_ms);
        if let Some(n) = &mut self.notifier {
            if n.source.cluster.is_none() {
                n.source.cluster = crate::alerts::notify::cluster_of(&reports);
            }
            n.observe(now_ms, &changes);
            self.alerts.deliveries = n.deliveries();
        }
        for c in changes {
            let kind = match c.to {
                State::Firing => "alert_firing",
                State::Resolved => "alert_resolved",
                State::Pending | State::Inactive => continue,
            };
            self.model.push_timeline(TimelineEntry {
                unix_ms: c.at_ms,
                kind: kind.into(),
                detail: format!(
                    "{} [{}]: {}",
                    c.alert.id,
                    c.alert.severity,
                    c.alert.summary()
                ),
                term: 0,
                seen_by: vec![],
                console: true,
            });
        }
    }

    /// Acknowledges alert `id`, if it is firing.
    pub(super) fn ack(&mut self, id: &AlertId) {
        if self.alerts.evaluator.ack(id) {
            let now = self
                .alerts
                .last_tick_ms
                .unwrap_or_else(crate::format::unix_ms);
            let until = now + ACK_SILENCE.as_millis() as i64;
            let sent = self.silence_upstream(id, now, until, "acknowledged in the opsdeck console");
            let audit =
                self.record_note(Note::Ack, id, None, "acknowledged in the opsdeck console");
            self.message(&format!("acknowledged {id}{sent}{audit}"), false);
        } else {
            self.message(
                &format!("{id} is not firing; only a firing alert can be acknowledged"),
                true,
            );
        }
    }

    /// `:silence DURATION` (e.g. 15m, 1h, 4h, 24h; 0 lifts the silence) for the selected alert.
    pub fn silence(&mut self, arg: &str) {
        let (Some(alert), Some(now)) = (self.alerts.selected(), self.alerts.last_tick_ms) else {
            self.message(
                "no alert selected: silence works on the Alerts pane's selection",
                true,
            );
            return;
        };
        let id = alert.id.clone();
        let duration = match arg {
            "0" | "off" => Duration::ZERO,
            text => match humantime::parse_duration(text) {
                Ok(d) if d <= MAX_SILENCE => d,
                Ok(_) => {
                    self.message("a silence lasts at most 7d", true);
                    return;
                }
                Err(e) => {
                    self.message(
                        &format!("bad duration {text:?}: {e} (e.g. 15m, 1h, 4h, 24h; 0 lifts)"),
                        true,
                    );
                    return;
                }
            },
        };
        let until = now + duration.as_millis() as i64;
        self.alerts.evaluator.silence(&id, until);
        if duration.is_zero() {
            let upstream = if self.alertmanagers() > 0 {
                "; Alertmanager's silence runs until it ends (amtool silence expire ID)"
            } else {
                ""
            };
            let audit =
                self.record_note(Note::Unsilence, &id, None, "lifted in the opsdeck console");
            self.message(
                &format!("silence of {id} lifted here{upstream}{audit}"),
                false,
            );
        } else {
            let sent = self.silence_upstream(&id, now, until, "silenced in the opsdeck console");
            let audit = self.record_note(
                Note::Silence,
                &id,
                Some(until),
                "silenced in the opsdeck console",
            );
            self.message(
                &format!(
                    "silenced {id} until {}{sent}{audit}",
                    clock(until, self.utc_offset)
                ),
                false,
            );
        }
    }

    /// Records an ack or silence in the cluster's audit trail in the background (never
    /// under `--read-only`); what to add to the message. A failure comes back as a message
    /// later, and the local ack or silence holds either way.
    fn record_note(
        &self,
        note: Note,
        id: &AlertId,
        until_ms: Option<i64>,
        why: &'static str,
    ) -> String {
        if self.read_only {
            return "; read-only: not recorded in the audit trail".into();
        }
        match &self.ops {
            Some(ops) => {
                ops.note(note, id.to_string(), until_ms, why);
                "; recording it in the audit trail".into()
            }
            None => String::new(),
        }
    }

    /// `:report FILE [SINCE]`: the incident report of the last SINCE (2h) with this
    /// console's alerts, written in the background; the dialog says where.
    pub fn incident_report(&mut self, arg: &str) {
        let mut words = arg.split_whitespace();
        let Some(path) = words.next() else {
            self.message(
                "usage: :report FILE [SINCE], e.g. :report incident.md 2h",
                true,
            );
            return;
        };
        let since = match words.next() {
            None => REPORT_SINCE,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    self.message(&format!("bad window {text:?}: e.g. 30m, 2h, 1d"), true);
                    return;
                }
            },
        };
        let kinds = [
            "alert_firing",
            "alert_resolved",
            "node_down",
            "node_up",
            "replicas_diverged",
            "replicas_agree",
        ];
        let extra = self
            .model
            .timeline
            .iter()
            .filter(|t| t.console && kinds.contains(&t.kind.as_str()))
            .map(|t| Entry {
                unix_ms: t.unix_ms,
                source: "console".into(),
                kind: t.kind.clone(),
                what: t.detail.clone(),
                who: None,
            })
            .collect();
        let active = self
            .alerts
            .evaluator
            .alerts()
            .iter()
            .filter(|a| a.state == State::Firing)
            .map(|a| {
                let mut s = format!("{} [{}]", a.id, a.severity);
                if a.acked {
                    s.push_str(" acknowledged");
                }
                if a.silenced() {
                    s.push_str(" silenced");
                }
                s
            })
            .collect();
        let op = Op::Report {
            path: std::path::PathBuf::from(path),
            since,
            label: self.model.context.clone(),
            extra,
            active,
        };
        self.start_op(format!("incident report → {path}"), op);
    }

    fn alertmanagers(&self) -> usize {
        self.alerts
            .deliveries
            .iter()
            .filter(|d| d.kind == crate::alerts::notify::Kind::Alertmanager)
            .count()
    }

    /// Asks every Alertmanager receiver for a silence of `id`; what to add to the message.
    fn silence_upstream(&self, id: &AlertId, from_ms: i64, until_ms: i64, why: &str) -> String {
        match self
            .notifier
            .as_ref()
            .map(|n| n.silence(id, from_ms, until_ms, why))
        {
            None | Some(0) => String::new(),
            Some(_) => format!(
                "; Alertmanager silence until {} asked",
                clock(until_ms, self.utc_offset)
            ),
        }
    }
}
