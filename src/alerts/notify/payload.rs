//! The bodies sent: Alertmanager API v2 alerts and silences, the generic JSON webhook and
//! the Slack-compatible `{"text"}`. Pure: times are passed in.

use serde_json::{json, Map, Value};

use crate::alerts::{AlertId, AlertState, Subject};
use crate::format::utc_seconds;

/// One alert as a receiver is told it: firing (with when it started) or resolved (when).
#[derive(Clone, Debug)]
pub struct Notice {
    pub alert: AlertState,
    /// When it started firing (unix ms).
    pub starts_ms: i64,
    /// Set when it resolved (unix ms); None while firing.
    pub resolved_ms: Option<i64>,
}

/// Everything a body needs besides the alerts.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// The cluster id, when a node has told it.
    pub cluster: Option<String>,
    /// Where the alert was seen (`generatorURL`).
    pub generator: String,
}

/// The labels that identify an alert: `alertname`, `severity`, the subject's own label
/// (`node`, `endpoint` or `tenant`; none for the cluster) and `cluster` when known. The
/// same names are a silence's matchers.
fn identity(id: &AlertId) -> Vec<(&'static str, String)> {
    let mut l = vec![("alertname", id.rule.clone())];
    match &id.subject {
        Subject::Cluster => {}
        Subject::Node(n) => l.push(("node", n.to_string())),
        Subject::Endpoint(e) => l.push(("endpoint", e.clone())),
        Subject::Tenant(t) => l.push(("tenant", t.clone())),
    }
    l
}

fn labels(a: &AlertState, source: &Source) -> Value {
    let mut m: Map<String, Value> = identity(&a.id)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    m.insert("severity".into(), a.severity.name().into());
    m.insert("scope".into(), a.id.subject.scope().to_string().into());
    m.insert("source".into(), "opsdeck".into());
    if let Some(c) = source.cluster.as_deref().filter(|c| !c.is_empty()) {
        m.insert("cluster".into(), c.into());
    }
    Value::Object(m)
}

fn annotations(a: &AlertState) -> Value {
    let mut m = Map::new();
    m.insert("summary".into(), a.summary().into());
    m.insert(
        "description".into(),
        format!("{}: {}", a.id, a.value()).into(),
    );
    if let Some(r) = &a.runbook {
        m.insert("runbook".into(), r.clone().into());
    }
    Value::Object(m)
}

/// Alertmanager's `PostableAlert`. A firing alert's `endsAt` is `valid_until_ms` (the
/// sender's promise to re-send before then, as Prometheus does), so Alertmanager resolves
/// it by itself if opsdeck goes away; a resolved one's is when it resolved, in the past.
fn am_alert(n: &Notice, source: &Source, valid_until_ms: i64) -> Value {
    let generator = format!(
        "{}?alert={}",
        source.generator,
        n.alert
            .id
            .rule
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_")
    );
    json!({
        "labels": labels(&n.alert, source),
        "annotations": annotations(&n.alert),
        "startsAt": utc_seconds(n.starts_ms),
        "endsAt": utc_seconds(n.resolved_ms.unwrap_or(valid_until_ms)),
        "generatorURL": generator,
    })
}

pub fn alertmanager(notices: &[Notice], source: &Source, valid_until_ms: i64) -> Value {
    Value::Array(
        notices
            .iter()
            .map(|n| am_alert(n, source, valid_until_ms))
            .collect(),
    )
}

fn status(n: &Notice) -> &'static str {
    if n.resolved_ms.is_some() {
        "resolved"
    } else {
        "firing"
    }
}

/// The generic webhook: Alertmanager's webhook shape (`version` 4 of its fields that
/// matter), so receivers written for Alertmanager read it.
pub fn webhook(notices: &[Notice], source: &Source) -> Value {
    let any_firing = notices.iter().any(|n| n.resolved_ms.is_none());
    let alerts: Vec<Value> = notices
        .iter()
        .map(|n| {
            let mut v = am_alert(n, source, 0);
            if let Some(o) = v.as_object_mut() {
                o.insert("status".into(), status(n).into());
                if n.resolved_ms.is_none() {
                    // Zero time, as Alertmanager's webhook says "still firing".
                    o.insert("endsAt".into(), "0001-01-01T00:00:00Z".into());
                }
            }
            v
        })
        .collect();
    json!({
        "version": "4",
        "source": "opsdeck",
        "status": if any_firing { "firing" } else { "resolved" },
        "alerts": alerts,
    })
}

/// One line per alert, e.g. `FIRING critical node_down (node 2): node 2 is down`.
pub fn slack(notices: &[Notice]) -> Value {
    let lines: Vec<String> = notices
        .iter()
        .map(|n| {
            format!(
                "{} {} {}: {}",
                status(n).to_uppercase(),
                n.alert.severity,
                n.alert.id,
                n.alert.summary()
            )
        })
        .collect();
    json!({ "text": lines.join("\n") })
}

/// Alertmanager's `PostableSilence` for alert `id`: matchers on its identity labels.
pub fn silence(id: &AlertId, starts_ms: i64, ends_ms: i64, by: &str, comment: &str) -> Value {
    let matchers: Vec<Value> = identity(id)
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value, "isRegex": false, "isEqual": true}))
        .collect();
    json!({
        "matchers": matchers,
        "startsAt": utc_seconds(starts_ms),
        "endsAt": utc_seconds(ends_ms),
        "createdBy": by,
        "comment": comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Evaluator, Rules};
    use crate::client::NodeReport;

    fn firing_node_down() -> AlertState {
        let rules = Rules::parse(
            "[[rule]]\nname = \"node_down\"\nexpr = \"node_up == 0\"\nseverity = \"critical\"\n\
             summary = \"{subject} is down\"\nrunbook = \"restart it\"\n",
            "t.toml",
        )
        .unwrap();
        let mut ev = Evaluator::new(rules);
        // Node 2 answered once, then stopped: node_up == 0 for node 2.
        let report = |status| NodeReport {
            endpoint: "127.0.0.1:7102".into(),
            status,
            refused: false,
        };
        let up = opsdeck_node::pb::NodeStatus {
            id: 2,
            ..Default::default()
        };
        ev.observe(1_800_000_000_000, &[report(Ok(up))]);
        let down = report(Err("connection refused".into()));
        let t = ev.observe(1_800_000_001_000, &[down]);
        t.into_iter().next().expect("a transition").alert
    }

    #[test]
    fn alertmanager_alerts_carry_identity_times_and_text() {
        let a = firing_node_down();
        let source = Source {
            cluster: Some("c-1".into()),
            generator: "opsdeck://127.0.0.1:7101/alerts".into(),
        };
        let n = Notice {
            alert: a,
            starts_ms: 1_800_000_001_000,
            resolved_ms: None,
        };
        let v = alertmanager(std::slice::from_ref(&n), &source, 1_800_000_121_000);
        let one = &v[0];
        assert_eq!(one["labels"]["alertname"], "node_down");
        assert_eq!(one["labels"]["node"], "2");
        assert_eq!(one["labels"]["severity"], "critical");
        assert_eq!(one["labels"]["cluster"], "c-1");
        assert_eq!(one["annotations"]["summary"], "node 2 is down");
        assert_eq!(one["annotations"]["runbook"], "restart it");
        assert_eq!(one["startsAt"], "2027-01-15T08:00:01Z");
        assert_eq!(one["endsAt"], "2027-01-15T08:02:01Z");
        assert_eq!(
            one["generatorURL"],
            "opsdeck://127.0.0.1:7101/alerts?alert=node_down"
        );
        let resolved = Notice {
            resolved_ms: Some(1_800_000_061_000),
            ..n
        };
        let v = alertmanager(std::slice::from_ref(&resolved), &source, 1_800_000_121_000);
        assert_eq!(v[0]["endsAt"], "2027-01-15T08:01:01Z");
        let w = webhook(std::slice::from_ref(&resolved), &source);
        assert_eq!(
            (&w["status"], &w["alerts"][0]["status"]),
            (&json!("resolved"), &json!("resolved"))
        );
        assert_eq!(
            slack(&[resolved])["text"],
            "RESOLVED critical node_down (node 2): node 2 is down"
        );
    }

    #[test]
    fn a_silence_matches_the_alert_and_its_node() {
        let a = firing_node_down();
        let s = silence(&a.id, 1_000, 3_601_000, "me", "acked");
        assert_eq!(
            s["matchers"],
            json!([
                {"name": "alertname", "value": "node_down", "isRegex": false, "isEqual": true},
                {"name": "node", "value": "2", "isRegex": false, "isEqual": true},
            ])
        );
        assert_eq!(s["endsAt"], "1970-01-01T01:00:01Z");
        assert_eq!(
            (&s["createdBy"], &s["comment"]),
            (&json!("me"), &json!("acked"))
        );
    }
}
