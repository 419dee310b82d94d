//! An alert's state as JSON: what `opsdeck alerts --json` prints, and what the diagnostics
//! bundle records of the CLI's or the console's alerts.

use serde_json::{json, Value};

use super::{AlertState, Subject};

pub fn alert_json(a: &AlertState) -> Value {
    let (kind, key) = match &a.id.subject {
        Subject::Cluster => ("cluster", json!(null)),
        Subject::Node(id) => ("node", json!({ "node_id": id })),
        Subject::Endpoint(e) => ("node", json!({ "endpoint": e })),
        Subject::Tenant(t) => ("tenant", json!({ "tenant": t })),
    };
    let figures: Vec<Value> = a
        .seen
        .iter()
        .map(|s| {
            json!({
                "figure": s.figure.name(),
                // Infinite (e.g. no backup ever) has no JSON number: null, and the text says.
                "value": s.reading.as_ref().map(|r| r.value).filter(|v| v.is_finite()),
                "text": s.reading.as_ref().map(|r| r.text.clone()),
            })
        })
        .collect();
    let mut v = json!({
        "rule": a.id.rule,
        "subject": a.id.subject.to_string(),
        "scope": kind,
        "state": a.state,
        "severity": a.severity,
        "since": crate::format::utc_seconds(a.since_ms),
        "since_ms": a.since_ms,
        "active_since_ms": a.active_since_ms,
        "for_ms": a.hold.as_millis() as u64,
        "value": a.value(),
        "figures": figures,
        "summary": a.summary(),
        "runbook": a.runbook,
        "acked": a.acked,
        "silenced_until_ms": a.silenced_until,
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), key) {
        obj.extend(extra);
    }
    v
}
