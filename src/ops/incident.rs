//! The incident report behind `opsdeck incident report` and the console's `:report FILE`:
//! what happened to the cluster in a window, as Markdown — a summary (first alert, time to
//! the first operator action, leader changes, actions per actor, whether it is resolved),
//! the merged timeline, and what changed (membership, keys, quotas, settings).
//!
//! [`gather`] reads every node's events (one Watch call each, as the bundle does) and the
//! cluster's audit trail; [`render`] is pure. Every node reports the same leader change, so
//! node events of one kind and detail within [`SAME_EVENT`] are one entry, naming each
//! node that saw it. Alert acks and silences come from the audit trail (the console and
//! `opsdeck incident ack|silence` record them there), so a report made anywhere has them;
//! alerts' firing and resolving are seen only by the console that evaluated them, and
//! appear when that console makes the report (its entries come in as `extra`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use serde::Serialize;

use super::bundle::{self, Missing};
use crate::client::ClusterClient;
use crate::format::utc_seconds;

/// Node event reports of one kind and detail this close together are one event.
pub const SAME_EVENT: Duration = Duration::from_secs(5);
/// Audit records read (the newest ones; the report says when the window reaches past them).
pub const AUDIT_RECORDS: u32 = 1_000;
/// Node events worth a line in a report (snapshots and log purges are routine).
const NODE_KINDS: [&str; 6] = [
    "leader_change",
    "membership_change",
    "writes_paused",
    "writes_resumed",
    "quota_violation",
    "snapshot_install_refused",
];
/// Actors that are the cluster itself, not an operator.
const AUTOMATIC: [&str; 2] = ["bootstrap", "auto-resume"];

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub unix_ms: i64,
    /// Who reported it: `n1,n2` (nodes), `audit` (the audit trail), `console`.
    pub source: String,
    /// A node event's kind (`leader_change`, `node_started`, ...), an audit action
    /// (`alert.ack`, `member.transfer_leader`, ...), or a console's (`alert_firing`, ...).
    pub kind: String,
    pub what: String,
    /// The key id that acted (audit records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
}

/// What a report is made from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IncidentData {
    /// The cluster's name for people (the context, or the endpoints).
    pub label: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Oldest first.
    pub entries: Vec<Entry>,
    /// Alerts active when the report was made (as the caller evaluated them).
    pub active_now: Vec<String>,
    /// Members at report time: `id voter|learner grpc`.
    pub members_now: Vec<String>,
    pub not_answering: Vec<Missing>,
    /// Why the audit trail could not be read, if it could not.
    pub audit_error: Option<String>,
    /// The audit trail read holds records older than the window (so none is missing).
    pub audit_complete: bool,
}

/// Reads every node's events and the audit trail of the last `since`, merges them, adds
/// `extra` (a console's own entries) and `active_now`. Nodes that do not answer are
/// listed; only no node answering at all is an error.
pub async fn gather(
    client: &ClusterClient,
    label: &str,
    since: Duration,
    extra: Vec<Entry>,
    active_now: impl FnOnce(&[crate::client::NodeReport]) -> Vec<String>,
) -> Result<IncidentData> {
    let to_ms = opsdeck_node::clock::unix_millis();
    let from_ms = to_ms.saturating_sub(i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    let reports = bundle::reach_all(client).await?;
    let mut data = IncidentData {
        label: label.to_string(),
        from_ms,
        to_ms,
        active_now: active_now(&reports),
        ..IncidentData::default()
    };
    let mut events = Vec::new();
    let mut answered = 0;
    for report in &reports {
        let status = match &report.status {
            Ok(s) => s,
            Err(reason) => {
                data.not_answering.push(Missing {
                    endpoint: report.endpoint.clone(),
                    id: None,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        answered += 1;
        if data.members_now.is_empty() {
            data.members_now = status
                .members
                .iter()
                .map(|m| {
                    let role = if m.voter { "voter" } else { "learner" };
                    format!("{} {role} {}", m.id, m.grpc)
                })
                .collect();
        }
        match bundle::history(client, &report.endpoint, from_ms, false).await {
            Ok(h) => {
                let frame = h.frame.as_ref().unwrap_or(status);
                // Its uptime counts from when the node was built; a node reports events
                // only once it runs, so it started no later than its first one.
                let first_event = h.events.iter().map(|e| e.unix_ms).min();
                let started = frame
                    .unix_ms
                    .saturating_sub(i64::try_from(frame.uptime_ms).unwrap_or(0))
                    .min(first_event.unwrap_or(i64::MAX));
                if started >= from_ms {
                    events.push(NodeEvent {
                        unix_ms: started,
                        node: frame.id,
                        kind: "node_started".into(),
                        detail: format!("node {} process started", frame.id),
                    });
                }
                events.extend(
                    h.events
                        .into_iter()
                        .filter(|e| NODE_KINDS.contains(&e.kind.as_str()))
                        .map(|e| NodeEvent {
                            unix_ms: e.unix_ms,
                            node: e.node_id,
                            kind: e.kind,
                            detail: e.detail,
                        }),
                );
            }
            Err(reason) => data.not_answering.push(Missing {
                endpoint: report.endpoint.clone(),
                id: Some(status.id),
                reason: format!("its events: {reason}"),
            }),
        }
    }
    if answered == 0 {
        return Err(eyre!(
            "no node answered ({}): is the cluster running? check --endpoints or --context",
            data.not_answering
                .iter()
                .map(|m| format!("{}: {}", m.endpoint, m.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut entries = merge_node_events(events);
    match bundle::audit_trail(client, AUDIT_RECORDS).await {
        Ok(records) => {
            data.audit_complete = records.len() < AUDIT_RECORDS as usize
                || records.iter().any(|r| r.unix_ms < from_ms);
            entries.extend(
                records
                    .into_iter()
                    .filter(|r| r.unix_ms >= from_ms && r.unix_ms <= to_ms)
                    .map(|r| Entry {
                        unix_ms: r.unix_ms,
                        source: "audit".into(),
                        what: match r.result.as_str() {
                            "ok" => r.args,
                            other => format!("{} → {other}", r.args).trim().to_string(),
                        },
                        kind: r.action,
                        who: Some(r.actor),
                    }),
            );
        }
        Err(e) => data.audit_error = Some(e),
    }
    entries.extend(
        extra
            .into_iter()
            .filter(|e| e.unix_ms >= from_ms && e.unix_ms <= to_ms),
    );
    // Stable: equal times keep nodes' order, then the audit's, then the console's.
    entries.sort_by_key(|e| e.unix_ms);
    data.entries = entries;
    Ok(data)
}

/// One node's report of one event.
#[derive(Debug, Clone)]
struct NodeEvent {
    unix_ms: i64,
    node: u64,
    kind: String,
    detail: String,
}

/// Folds the reports of one event by several nodes (same kind and detail within
/// [`SAME_EVENT`]) into one entry at the earliest report's time.
fn merge_node_events(mut events: Vec<NodeEvent>) -> Vec<Entry> {
    events.sort_by_key(|e| (e.unix_ms, e.node));
    let window = SAME_EVENT.as_millis() as i64;
    let mut merged: Vec<(Entry, Vec<u64>)> = Vec::new();
    for e in events {
        if let Some((_, nodes)) = merged
            .iter_mut()
            .rev()
            .find(|(m, _)| m.kind == e.kind && m.what == e.detail && e.unix_ms - m.unix_ms < window)
        {
            if !nodes.contains(&e.node) {
                nodes.push(e.node);
            }
            continue;
        }
        merged.push((
            Entry {
                unix_ms: e.unix_ms,
                source: String::new(),
                kind: e.kind,
                what: e.detail,
                who: None,
            },
            vec![e.node],
        ));
    }
    merged
        .into_iter()
        .map(|(mut entry, mut nodes)| {
            nodes.sort_unstable();
            entry.source = nodes
                .iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(",");
            entry
        })
        .collect()
}

/// Whether `e` is an operator's action (an audit record of a person's key).
fn is_action(e: &Entry) -> bool {
    e.source == "audit" && e.who.as_deref().is_some_and(|w| !AUTOMATIC.contains(&w))
}

/// Whether `e` is the cluster losing its leader: a leader change away from a known one.
fn is_leader_loss(e: &Entry) -> bool {
    e.kind == "leader_change" && !e.what.starts_with("leader none")
}

/// Whether `e` names a new leader.
fn is_new_leader(e: &Entry) -> bool {
    e.kind == "leader_change" && !e.what.ends_with("-> none")
}

/// `alert="node_down (node 1)"` → `node_down (node 1)` (the form the node writes).
pub fn arg_value(args: &str, key: &str) -> Option<String> {
    let start = args.find(&format!("{key}=\""))? + key.len() + 2;
    let mut out = String::new();
    let mut chars = args[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

fn at(ms: i64) -> String {
    utc_seconds(ms)
}

/// `640ms`, `21s`, `4m 3s` (to the tenth of a second below a minute, else the second).
fn took(ms: i64) -> String {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0);
    let rounded = if ms < 60_000 {
        ms / 100 * 100
    } else {
        ms / 1000 * 1000
    };
    humantime::format_duration(Duration::from_millis(rounded)).to_string()
}

/// Markdown table cells: one line, no `|`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The report as Markdown (see the module doc).
pub fn render(d: &IncidentData) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Incident report: {}\n", cell(&d.label));
    let _ = writeln!(s, "Window: {} to {} (UTC).\n", at(d.from_ms), at(d.to_ms));
    summary(&mut s, d);
    timeline(&mut s, d);
    changes(&mut s, d);
    sources(&mut s, d);
    s
}

fn summary(s: &mut String, d: &IncidentData) {
    let _ = writeln!(s, "## Summary\n");
    let console_alert = d.entries.iter().find(|e| e.kind == "alert_firing");
    let noted_alert = d.entries.iter().find(|e| e.kind.starts_with("alert."));
    let first_alert = match (console_alert, noted_alert) {
        (Some(e), _) => Some((e.unix_ms, format!("{} (seen by {})", e.what, e.source))),
        (None, Some(e)) => Some((
            e.unix_ms,
            format!(
                "{} (its firing time is known to the console that saw it; this is its {} by {})",
                arg_value(&e.what, "alert").unwrap_or_else(|| e.what.clone()),
                e.kind.trim_start_matches("alert."),
                e.who.as_deref().unwrap_or("?")
            ),
        )),
        (None, None) => None,
    };
    match &first_alert {
        Some((ms, what)) => {
            let _ = writeln!(s, "- **First alert:** {} — {}", at(*ms), cell(what));
        }
        None => {
            let _ = writeln!(s, "- **First alert:** none recorded in the window");
        }
    }
    let loss = d.entries.iter().find(|e| is_leader_loss(e));
    if let Some(e) = loss {
        let _ = writeln!(
            s,
            "- **Leader first lost:** {} — {} (seen by {})",
            at(e.unix_ms),
            cell(&e.what),
            e.source
        );
    }
    // The incident starts at the first alert or the first loss of a leader, whichever
    // came first; an alert known only from its ack counts from the ack.
    let start = [console_alert.map(|e| e.unix_ms), loss.map(|e| e.unix_ms)]
        .into_iter()
        .flatten()
        .min()
        .or(first_alert.as_ref().map(|(ms, _)| *ms));
    let first_action =
        start.and_then(|t| d.entries.iter().find(|e| is_action(e) && e.unix_ms >= t));
    match (start, first_action) {
        (Some(t), Some(a)) => {
            let _ = writeln!(
                s,
                "- **Time to first action:** {} ({} `{}` by {} at {})",
                took(a.unix_ms - t),
                if Some(t) == console_alert.map(|e| e.unix_ms) {
                    "from the first alert to"
                } else {
                    "from the first sign to"
                },
                a.kind,
                a.who.as_deref().unwrap_or("?"),
                at(a.unix_ms)
            );
        }
        (Some(_), None) => {
            let _ = writeln!(s, "- **Time to first action:** no operator action after it");
        }
        (None, _) => {
            let _ = writeln!(
                s,
                "- **Time to first action:** no alert or leader loss to count from"
            );
        }
    }
    let leaders = d.entries.iter().filter(|e| is_new_leader(e)).count();
    let _ = writeln!(s, "- **Leader changes:** {leaders}");
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for e in d.entries.iter().filter(|e| is_action(e)) {
        *by.entry(e.who.as_deref().unwrap_or("?")).or_default() += 1;
    }
    if by.is_empty() {
        let _ = writeln!(s, "- **Actions:** none");
    } else {
        let list: Vec<String> = by.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let _ = writeln!(s, "- **Actions by whom:** {}", list.join(", "));
    }
    if d.active_now.is_empty() {
        let cleared = d
            .entries
            .iter()
            .rev()
            .find(|e| e.kind == "alert_resolved" || e.kind == "node_up")
            .or_else(|| {
                start.and_then(|t| {
                    d.entries
                        .iter()
                        .rev()
                        .find(|e| e.unix_ms >= t && e.kind == "node_started")
                })
            });
        match cleared {
            Some(e) => {
                let _ = writeln!(
                    s,
                    "- **Resolved:** {} — {} (no alert active at {})",
                    at(e.unix_ms),
                    cell(&e.what),
                    at(d.to_ms)
                );
            }
            None => {
                let _ = writeln!(s, "- **Resolved:** no alert active at {}", at(d.to_ms));
            }
        }
    } else {
        let _ = writeln!(
            s,
            "- **Resolved:** not resolved — active at {}: {}",
            at(d.to_ms),
            cell(&d.active_now.join("; "))
        );
    }
    s.push('\n');
}

fn timeline(s: &mut String, d: &IncidentData) {
    let _ = writeln!(s, "## Timeline\n");
    if d.entries.is_empty() {
        let _ = writeln!(s, "Nothing happened in the window.\n");
        return;
    }
    let _ = writeln!(s, "| time (UTC) | source | kind | what | who |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for e in &d.entries {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            at(e.unix_ms),
            e.source,
            cell(&e.kind),
            cell(&e.what),
            cell(e.who.as_deref().unwrap_or(""))
        );
    }
    s.push('\n');
}

fn changes(s: &mut String, d: &IncidentData) {
    let _ = writeln!(s, "## What changed\n");
    let _ = writeln!(
        s,
        "From the audit trail and the nodes' membership events in the window: `+` added, `-` removed, `~` changed. Node flags and config files are not replicated and are not shown.\n"
    );
    let audit = |prefixes: &[&str]| -> Vec<&Entry> {
        d.entries
            .iter()
            .filter(|e| e.source == "audit" && prefixes.iter().any(|p| e.kind.starts_with(p)))
            .collect()
    };
    let sign = |kind: &str| match kind {
        "key.create" | "member.add_learner" => '+',
        "key.revoke" | "quota.reset" | "writes.resume" => '-',
        _ => '~',
    };
    let section = |s: &mut String, title: &str, lines: Vec<String>, empty: &str| {
        let _ = writeln!(s, "### {title}\n");
        if lines.is_empty() {
            let _ = writeln!(s, "{empty}\n");
        } else {
            let _ = writeln!(s, "```diff");
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
            let _ = writeln!(s, "```\n");
        }
    };
    let line = |e: &Entry| {
        format!(
            "{} {} {} ({} by {})",
            sign(&e.kind),
            e.kind,
            e.what,
            at(e.unix_ms),
            e.who.as_deref().unwrap_or("?")
        )
    };
    let mut members: Vec<String> = audit(&["member."]).into_iter().map(line).collect();
    members.extend(
        d.entries
            .iter()
            .filter(|e| e.kind == "membership_change")
            .map(|e| format!("~ {} ({}, seen by {})", e.what, at(e.unix_ms), e.source)),
    );
    section(s, "Membership", members, "No change.");
    if !d.members_now.is_empty() {
        let _ = writeln!(s, "Members now: {}.\n", d.members_now.join("; "));
    }
    let keys = audit(&["key."]).into_iter().map(line).collect();
    section(s, "Keys", keys, "No change.");
    let quotas = audit(&["quota."]).into_iter().map(line).collect();
    section(s, "Quotas", quotas, "No change.");
    let settings = audit(&["writes.", "restore", "backup", "compact"])
        .into_iter()
        .map(line)
        .collect();
    section(
        s,
        "Settings and maintenance",
        settings,
        "No pause of writes, restore, backup or compaction.",
    );
}

fn sources(s: &mut String, d: &IncidentData) {
    let _ = writeln!(s, "## Sources\n");
    let _ = writeln!(
        s,
        "- Node events: each answering node's own history (at most its last 256 events; a node restarted in the window has lost what it saw before)."
    );
    match &d.audit_error {
        Some(e) => {
            let _ = writeln!(s, "- Audit trail: could not be read: {}", cell(e));
        }
        None if d.audit_complete => {
            let _ = writeln!(s, "- Audit trail: complete for the window.");
        }
        None => {
            let _ = writeln!(
                s,
                "- Audit trail: the newest {AUDIT_RECORDS} records only; the window reaches past them."
            );
        }
    }
    if !d.entries.iter().any(|e| e.source == "console") {
        let _ = writeln!(
            s,
            "- Alerts firing and resolving are seen by the console that evaluates them: made from the CLI, this report has their acks and silences (audit trail) but not their firing times."
        );
    }
    for m in &d.not_answering {
        let _ = writeln!(s, "- Not answering: {}: {}", m.endpoint, cell(&m.reason));
    }
}

/// The alert notes the audit trail records ([`annotate`]'s `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    Ack,
    Silence,
    Unsilence,
}

impl Note {
    pub fn kind(self) -> &'static str {
        match self {
            Note::Ack => "alert.ack",
            Note::Silence => "alert.silence",
            Note::Unsilence => "alert.unsilence",
        }
    }
}

/// Records in the cluster's audit trail that `alert` (`RULE (SUBJECT)`, as the console
/// shows it) was acknowledged, silenced until `until_ms`, or its silence lifted (admin
/// key); returns the record's time by the node's clock.
pub async fn annotate(
    client: &ClusterClient,
    note: Note,
    alert: &str,
    until_ms: Option<i64>,
    text: &str,
) -> Result<i64> {
    let req = opsdeck_node::pb::AnnotateRequest {
        kind: note.kind().to_string(),
        subject: alert.to_string(),
        until_unix_ms: until_ms.unwrap_or(0),
        note: text.to_string(),
    };
    let reply = client
        .call("recording the alert note in the audit trail", |mut c| {
            let req = req.clone();
            async move { c.annotate(req).await }
        })
        .await?;
    Ok(reply.unix_ms)
}

/// Writes `text` to `out` through `out.partial`, renamed into place when complete; the
/// path written, made absolute (for the console's message).
pub fn write_file(out: &Path, text: &str) -> Result<PathBuf> {
    let partial = bundle::partial_path(out);
    let written = (|| -> Result<()> {
        let mut f = std::fs::File::create(&partial).wrap_err_with(|| {
            format!(
                "cannot create {} (is the folder there and writable?)",
                partial.display()
            )
        })?;
        std::io::Write::write_all(&mut f, text.as_bytes())
            .wrap_err_with(|| format!("writing {}", partial.display()))?;
        f.sync_all()
            .wrap_err_with(|| format!("syncing {}", partial.display()))?;
        std::fs::rename(&partial, out)
            .wrap_err_with(|| format!("renaming {} to {}", partial.display(), out.display()))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(unix_ms: i64, node: u64, kind: &str, detail: &str) -> NodeEvent {
        NodeEvent {
            unix_ms,
            node,
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn reports_of_one_event_by_several_nodes_are_one_entry() {
        let merged = merge_node_events(vec![
            ev(1_000, 3, "leader_change", "leader node 1 -> node 2"),
            ev(1_200, 2, "leader_change", "leader node 1 -> node 2"),
            ev(1_300, 2, "leader_change", "leader node 1 -> node 2"),
            ev(9_000, 3, "leader_change", "leader node 1 -> node 2"),
            ev(
                1_100,
                2,
                "membership_change",
                "voters [1, 2, 3] learners []",
            ),
        ]);
        let got: Vec<(i64, &str, &str)> = merged
            .iter()
            .map(|e| (e.unix_ms, e.source.as_str(), e.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1_000, "n2,n3", "leader_change"),
                (1_100, "n2", "membership_change"),
                (9_000, "n3", "leader_change"),
            ]
        );
    }

    #[test]
    fn reads_the_quoted_arguments_the_node_writes() {
        let args = r#"alert="node_down (node 1)" note="on it, \"disk\"""#;
        assert_eq!(
            arg_value(args, "alert").as_deref(),
            Some("node_down (node 1)")
        );
        assert_eq!(arg_value(args, "note").as_deref(), Some(r#"on it, "disk""#));
        assert_eq!(arg_value(args, "until"), None);
        assert_eq!(arg_value(r#"alert="cut"#, "alert"), None);
    }

    fn entry(unix_ms: i64, source: &str, kind: &str, what: &str, who: Option<&str>) -> Entry {
        Entry {
            unix_ms,
            source: source.into(),
            kind: kind.into(),
            what: what.into(),
            who: who.map(Into::into),
        }
    }

    /// A fixed incident: the leader killed, its alert acknowledged, leadership handed on,
    /// the node restarted, a key rotated.
    fn scripted() -> IncidentData {
        let t = 1_764_680_400_000; // 2025-12-02T13:00:00Z
        IncidentData {
            label: "prod-eu".into(),
            from_ms: t - 600_000,
            to_ms: t + 120_000,
            entries: vec![
                entry(
                    t - 300_000,
                    "n1,n2,n3",
                    "leader_change",
                    "leader none -> node 1",
                    None,
                ),
                entry(t, "n2,n3", "leader_change", "leader node 1 -> none", None),
                entry(
                    t + 400,
                    "n2,n3",
                    "leader_change",
                    "leader none -> node 2",
                    None,
                ),
                entry(
                    t + 3_000,
                    "console",
                    "alert_firing",
                    "node_down (node 1) [critical]: node 1 does not answer",
                    None,
                ),
                entry(
                    t + 21_000,
                    "audit",
                    "alert.ack",
                    r#"alert="node_down (node 1)" note="looking""#,
                    Some("k-admin1"),
                ),
                entry(
                    t + 40_000,
                    "audit",
                    "member.transfer_leader",
                    "from=2 to=3 took_ms=390",
                    Some("k-admin1"),
                ),
                entry(
                    t + 40_300,
                    "n2,n3",
                    "leader_change",
                    "leader node 2 -> node 3",
                    None,
                ),
                entry(
                    t + 60_000,
                    "n1",
                    "node_started",
                    "node 1 process started",
                    None,
                ),
                entry(
                    t + 64_000,
                    "console",
                    "alert_resolved",
                    "node_down (node 1) [critical]: node 1 does not answer",
                    None,
                ),
                entry(
                    t + 90_000,
                    "audit",
                    "key.rotate",
                    "id=k-app successor=k-app2 grace_until_ms=1764684000000",
                    Some("k-oncall"),
                ),
                entry(
                    t + 95_000,
                    "audit",
                    "alert.silence",
                    r#"alert="disk_usage_high (node 2)" until=2025-12-02T14:00:00Z"#,
                    Some("k-oncall"),
                ),
            ],
            active_now: vec![],
            members_now: vec![
                "1 voter 127.0.0.1:7001".into(),
                "2 voter 127.0.0.1:7002".into(),
                "3 voter 127.0.0.1:7003".into(),
            ],
            not_answering: vec![],
            audit_error: None,
            audit_complete: true,
        }
    }

    #[test]
    fn renders_a_scripted_incident() {
        insta::assert_snapshot!("incident_report", render(&scripted()));
    }

    #[test]
    fn without_the_console_the_ack_stands_for_the_alert() {
        let mut d = scripted();
        d.entries.retain(|e| e.source != "console");
        d.active_now = vec!["node_down (node 1) firing".into()];
        let md = render(&d);
        assert!(
            md.contains(
                "- **First alert:** 2025-12-02T13:00:21Z — node_down (node 1) (its firing time"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- **Time to first action:** 21s (from the first sign to `alert.ack` by k-admin1"
            ),
            "{md}"
        );
        assert!(md.contains("- **Resolved:** not resolved"), "{md}");
        assert!(md.contains("but not their firing times"), "{md}");
    }

    #[test]
    fn the_report_file_appears_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("opsdeck-incident-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("r.md");
        write_file(&out, "# hi\n").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "# hi\n");
        assert!(!bundle::partial_path(&out).exists());
        assert!(write_file(&dir.join("no/such/dir/r.md"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
