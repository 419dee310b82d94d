//! The diagnostics bundle behind `opsdeck debug bundle`: from every node its status frame,
//! `/metrics`, recent logs and events, settings and data-dir listing; the cluster's
//! membership and audit trail (actions and key ids, never secrets); the alert states; and
//! a manifest of what came from which node and which nodes did not answer — one
//! `.tar.gz`, streamed to `FILE.partial` and renamed into place when complete.
//!
//! Redaction is by design: nothing that holds user values is ever asked for (no reads, no
//! scans), key secrets and hashes are never sent by any node, and neither the cluster
//! secret nor a TLS key is read. A last pass ([`redact`]) drops any line that holds the
//! secret this client itself presents. Each node costs at most [`PER_REQUEST`] per request,
//! so a dead node delays the bundle by seconds, and each item is written as it arrives.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};
use flate2::write::GzEncoder;
use opsdeck_node::pb::watch_event::Kind;
use opsdeck_node::pb::{
    AuditEntry, ClusterEvent, ListAuditRequest, LogRecord, NodeStatus, WatchRequest,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{ClusterClient, NodeReport};

/// The most one request to one node is waited for.
pub const PER_REQUEST: Duration = Duration::from_secs(5);
/// Log records taken per node at most (the node keeps at most 10,000).
pub const MAX_LOG_RECORDS: u32 = 10_000;
/// Largest HTTP answer read (a `/metrics` page is tens of KiB).
pub const MAX_HTTP_BYTES: usize = 16 * 1024 * 1024;
/// Audit records taken.
pub const AUDIT_RECORDS: u32 = 1_000;

/// What to bundle and where.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    /// Logs and events of this last stretch.
    pub since: Duration,
    /// The cluster's name for people (the context, or the endpoints).
    pub label: String,
    /// CA to trust for the nodes' HTTPS ports (None: plain HTTP).
    pub tls_ca: Option<PathBuf>,
}

/// One item of the bundle, as the manifest records it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub ok: bool,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lines the last pass dropped because they held a secret.
    #[serde(skip_serializing_if = "is_zero")]
    pub redacted_lines: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One node as the manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEntry {
    pub endpoint: String,
    pub id: Option<u64>,
    pub http: Option<String>,
    pub answered: bool,
    pub items: Vec<Item>,
}

/// A node that did not answer, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Missing {
    pub endpoint: String,
    pub id: Option<u64>,
    pub reason: String,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub path: PathBuf,
    pub bytes: u64,
    pub nodes: Vec<NodeEntry>,
    pub missing: Vec<Missing>,
}

impl Outcome {
    /// `wrote FILE (SIZE): 2 of 3 nodes answered; not answering: ADDR`, for people.
    pub fn describe(&self) -> String {
        let answered = self.nodes.iter().filter(|n| n.answered).count();
        let mut text = format!(
            "wrote {} ({}): {answered} of {} nodes answered",
            self.path.display(),
            crate::format::bytes(self.bytes),
            self.nodes.len()
        );
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|m| m.endpoint.as_str()).collect();
            text.push_str(&format!("; not answering: {}", names.join(", ")));
        }
        text
    }
}

/// Drops every line of `text` that holds one of `secrets` (empty ones ignored); the kept
/// text and how many lines went.
pub fn redact(text: &str, secrets: &[String]) -> (String, usize) {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let mut kept = String::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.split_inclusive('\n') {
        if secrets.iter().any(|s| line.contains(s)) {
            dropped += 1;
        } else {
            kept.push_str(line);
        }
    }
    (kept, dropped)
}

/// The archive being written: the tar stream over gzip over `FILE.partial`.
struct Archive {
    tar: tar::Builder<GzEncoder<File>>,
    root: String,
    secrets: Vec<String>,
    mtime: u64,
}

impl Archive {
    /// Adds `root/name` holding `text` after the last pass; the manifest's record of it.
    fn add(&mut self, name: &str, text: &str) -> Result<Item> {
        let (text, redacted_lines) = redact(text, &self.secrets);
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_cksum();
        let path = format!("{}/{name}", self.root);
        self.tar
            .append_data(&mut header, &path, text.as_bytes())
            .wrap_err_with(|| format!("writing {path} into the bundle"))?;
        Ok(Item {
            name: name.to_string(),
            ok: true,
            bytes: text.len() as u64,
            error: None,
            redacted_lines,
        })
    }

    /// Adds the item when it was fetched; records the error when not.
    fn add_result(&mut self, name: &str, fetched: Result<String, String>) -> Result<Item> {
        match fetched {
            Ok(text) => self.add(name, &text),
            Err(e) => Ok(Item {
                name: name.to_string(),
                ok: false,
                bytes: 0,
                error: Some(redact(&e, &self.secrets).0),
                redacted_lines: 0,
            }),
        }
    }
}

/// What one node's Watch stream gave within [`PER_REQUEST`].
#[derive(Default)]
struct Watched {
    logs: String,
    events: String,
    frame: Option<NodeStatus>,
}

/// One node's recent history, as its Watch stream gives it: the log records (when asked
/// for) and events since `since_ms`, and the first full status frame after them.
#[derive(Default, Debug, Clone)]
pub struct History {
    pub logs: Vec<LogRecord>,
    pub events: Vec<ClusterEvent>,
    pub frame: Option<NodeStatus>,
}

/// Reads `endpoint`'s history since `since_ms` from one Watch call (its own ring: at most
/// [`MAX_LOG_RECORDS`] log records and the node's event history), within [`PER_REQUEST`].
/// The bundle and the incident report both read the nodes this way.
pub async fn history(
    client: &ClusterClient,
    endpoint: &str,
    since_ms: i64,
    logs: bool,
) -> Result<History, String> {
    let mut rpc = client.connect_to(endpoint).map_err(|e| format!("{e:#}"))?;
    let req = WatchRequest {
        // The first frame comes after the history; no second one is waited for.
        status_interval_ms: 60_000,
        logs,
        events: true,
        log_history: if logs { MAX_LOG_RECORDS } else { 0 },
    };
    let read = async {
        let mut stream = rpc
            .watch(req)
            .await
            .map_err(|s| crate::client::describe(&s))?
            .into_inner();
        let mut got = History::default();
        loop {
            match stream.message().await {
                Ok(Some(ev)) => match ev.kind {
                    Some(Kind::Log(r)) if r.unix_ms >= since_ms => got.logs.push(r),
                    Some(Kind::Event(e)) if e.unix_ms >= since_ms => got.events.push(e),
                    Some(Kind::Status(s)) => {
                        got.frame = Some(s);
                        return Ok(got);
                    }
                    _ => {}
                },
                Ok(None) => return Err("the node closed the stream".to_string()),
                Err(s) => return Err(s.message().to_string()),
            }
        }
    };
    match tokio::time::timeout(PER_REQUEST, read).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete answer within {}",
            humantime::format_duration(PER_REQUEST)
        )),
    }
}

async fn watch(client: &ClusterClient, endpoint: &str, since_ms: i64) -> Result<Watched, String> {
    let h = history(client, endpoint, since_ms, true).await?;
    let mut got = Watched {
        frame: h.frame,
        ..Watched::default()
    };
    for r in h.logs {
        got.logs.push_str(&format!(
            "{} {:<5} {}: {}{}{}\n",
            crate::format::utc_seconds(r.unix_ms),
            r.level,
            r.target,
            r.message,
            if r.fields.is_empty() { "" } else { " " },
            r.fields
        ));
    }
    for e in h.events {
        got.events.push_str(
            &json!({
                "at": crate::format::utc_seconds(e.unix_ms),
                "unix_ms": e.unix_ms,
                "node_id": e.node_id,
                "kind": e.kind,
                "detail": e.detail,
                "term": e.term,
                "leader_id": e.leader_id,
            })
            .to_string(),
        );
        got.events.push('\n');
    }
    Ok(got)
}

/// Every node's status at once ([`PER_REQUEST`] each): the endpoints', and those of
/// members some node names that are not among the endpoints.
pub async fn reach_all(client: &ClusterClient) -> Result<Vec<NodeReport>> {
    let mut reports = client.status_all(PER_REQUEST).await;
    let known: Vec<String> = reports.iter().map(|r| r.endpoint.clone()).collect();
    let mut extra = Vec::new();
    for r in &reports {
        if let Ok(s) = &r.status {
            for m in &s.members {
                if !known.contains(&m.grpc) && !extra.contains(&m.grpc) {
                    extra.push(m.grpc.clone());
                }
            }
        }
    }
    if !extra.is_empty() {
        let more = ClusterClient::new(&extra, PER_REQUEST, client.api_key().clone())?;
        reports.extend(more.status_all(PER_REQUEST).await);
    }
    Ok(reports)
}

/// The newest `limit` records of the cluster's audit trail, within [`PER_REQUEST`].
pub async fn audit_trail(client: &ClusterClient, limit: u32) -> Result<Vec<AuditEntry>, String> {
    let audit = tokio::time::timeout(
        PER_REQUEST,
        client.call("reading the audit trail", |mut c| async move {
            c.list_audit(ListAuditRequest { limit }).await
        }),
    )
    .await;
    match audit {
        Ok(Ok(reply)) => Ok(reply.records),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(PER_REQUEST)
        )),
    }
}

fn status_json(s: &NodeStatus) -> Value {
    let extra = json!({
        "unix_ms": s.unix_ms,
        "uptime_ms": s.uptime_ms,
        "rss_bytes": s.rss_bytes,
        "cpu_percent": s.cpu_percent,
        "sled_size_on_disk": s.sled_size_on_disk,
        "data_dir_bytes": s.data_dir_bytes,
        "fs_total_bytes": s.fs_total_bytes,
        "fs_free_bytes": s.fs_free_bytes,
        "raft_stopped": s.raft_stopped,
        "voters_reachable": s.voters_reachable,
        "millis_since_quorum_ack": s.millis_since_quorum_ack,
        "last_backup_unix_ms": s.last_backup_unix_ms,
        "members": members_json(s),
        "followers": s.followers.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
        "ops": s.ops.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>(),
        "errors": s.errors.iter().map(|e| json!({ "kind": e.kind, "count": e.count })).collect::<Vec<_>>(),
        "gc": format!("{:?}", s.gc),
        "storage": format!("{:?}", s.storage),
        "writes_paused": s.writes_paused.as_ref().map(|p| format!("{p:?}")),
        // Quota usage per tenant: names and figures, never a key or value.
        "quotas": s.quotas.iter().map(|q| format!("{q:?}")).collect::<Vec<_>>(),
    });
    let mut fields = crate::client::status_fields(s);
    if let Value::Object(extra) = extra {
        fields.extend(extra);
    }
    Value::Object(fields)
}

fn members_json(s: &NodeStatus) -> Vec<Value> {
    s.members
        .iter()
        .map(|m| json!({ "id": m.id, "grpc": m.grpc, "http": m.http, "voter": m.voter }))
        .collect()
}

/// The HTTP side of the nodes: `/metrics`, the settings routes, `/debug/datadir`.
struct Http {
    client: reqwest::Client,
    scheme: &'static str,
    secret: Option<String>,
}

impl Http {
    fn new(tls_ca: Option<&Path>, secret: Option<String>) -> Result<Http> {
        let mut builder = reqwest::Client::builder().timeout(PER_REQUEST);
        let scheme = match tls_ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .wrap_err_with(|| format!("reading the CA certificate {}", path.display()))?;
                let ca = reqwest::Certificate::from_pem(&pem)
                    .wrap_err_with(|| format!("bad CA certificate {}", path.display()))?;
                builder = builder.add_root_certificate(ca);
                "https"
            }
            None => "http",
        };
        Ok(Http {
            client: builder.build().wrap_err("building the HTTP client")?,
            scheme,
            secret,
        })
    }

    async fn get(&self, addr: &str, path: &str) -> Result<String, String> {
        let url = format!("{}://{addr}{path}", self.scheme);
        let mut req = self.client.get(&url);
        if let Some(s) = &self.secret {
            req = req.bearer_auth(s);
        }
        let mut resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_HTTP_BYTES {
                return Err(format!(
                    "GET {url}: the answer is over {MAX_HTTP_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {}", text.trim()));
        }
        Ok(text)
    }
}

/// Writes the bundle (see the module doc). `alerts` turns the status reports just fetched
/// into the alert states to record (the CLI: one evaluation of the rules; the console: its
/// evaluator's states); `progress` hears each step. Nodes that do not answer are listed,
/// not fatal; only a bundle that cannot be written is an error, and then no file is left
/// under the final name.
pub async fn bundle(
    client: &ClusterClient,
    opts: &Options,
    alerts: impl FnOnce(&[NodeReport]) -> Value,
    mut progress: impl FnMut(&str),
) -> Result<Outcome> {
    let partial = partial_path(&opts.out);
    let written = write(client, opts, &partial, alerts, &mut progress).await;
    match written {
        Ok((nodes, missing)) => {
            std::fs::rename(&partial, &opts.out).wrap_err_with(|| {
                format!("renaming {} to {}", partial.display(), opts.out.display())
            })?;
            let bytes = std::fs::metadata(&opts.out).map(|m| m.len()).unwrap_or(0);
            Ok(Outcome {
                path: opts.out.clone(),
                bytes,
                nodes,
                missing,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// `FILE.partial`: where a file is written until it is complete.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

async fn write(
    client: &ClusterClient,
    opts: &Options,
    partial: &Path,
    alerts: impl FnOnce(&[NodeReport]) -> Value,
    progress: &mut impl FnMut(&str),
) -> Result<(Vec<NodeEntry>, Vec<Missing>)> {
    let now = opsdeck_node::clock::unix_millis();
    let since_ms = now.saturating_sub(i64::try_from(opts.since.as_millis()).unwrap_or(i64::MAX));
    let file = File::create(partial).wrap_err_with(|| {
        format!(
            "cannot create {} (is the folder there and writable?)",
            partial.display()
        )
    })?;
    let secret = client.api_key().secret();
    let mut archive = Archive {
        tar: tar::Builder::new(GzEncoder::new(file, flate2::Compression::default())),
        root: format!("opsdeck-bundle-{}", crate::format::utc_compact(now)),
        secrets: secret.iter().cloned().collect(),
        mtime: u64::try_from(now / 1000).unwrap_or(0),
    };
    let http = Http::new(opts.tls_ca.as_deref(), secret)?;

    progress("asking every node for its status");
    let reports = reach_all(client).await?;
    let membership: Vec<Value> = reports
        .iter()
        .filter_map(|r| r.status.as_ref().ok())
        .find(|s| !s.members.is_empty())
        .map(members_json)
        .unwrap_or_default();
    // Each member's id and HTTP address, from whoever knows it.
    let member_of = |endpoint: &str| {
        reports
            .iter()
            .filter_map(|r| r.status.as_ref().ok())
            .flat_map(|s| s.members.iter())
            .find(|m| m.grpc == endpoint)
            .map(|m| (m.id, m.http.clone()))
    };

    let mut nodes = Vec::new();
    let mut missing = Vec::new();
    for report in &reports {
        let endpoint = report.endpoint.clone();
        let (id, http_addr) = match &report.status {
            Ok(s) => (Some(s.id), Some(s.http.clone())),
            Err(_) => match member_of(&endpoint) {
                Some((id, http)) => (Some(id), Some(http)),
                None => (None, None),
            },
        };
        let dir = match id {
            Some(id) => format!("node-{id}"),
            None => format!("node-{}", endpoint.replace([':', '/'], "_")),
        };
        let status = match &report.status {
            Ok(s) => s,
            Err(reason) => {
                progress(&format!("{endpoint}: did not answer: {reason}"));
                missing.push(Missing {
                    endpoint: endpoint.clone(),
                    id,
                    reason: reason.clone(),
                });
                nodes.push(NodeEntry {
                    endpoint,
                    id,
                    http: http_addr,
                    answered: false,
                    items: Vec::new(),
                });
                continue;
            }
        };
        progress(&format!("{endpoint}: node {}", status.id));
        let mut items = Vec::new();
        let watched = watch(client, &endpoint, since_ms).await;
        let frame = match &watched {
            Ok(w) => w.frame.clone().unwrap_or_else(|| status.clone()),
            Err(_) => status.clone(),
        };
        let text = serde_json::to_string_pretty(&status_json(&frame))?;
        items.push(archive.add(&format!("{dir}/status.json"), &text)?);
        let (logs, events) = match watched {
            Ok(w) => (Ok(w.logs), Ok(w.events)),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        items.push(archive.add_result(&format!("{dir}/logs.txt"), logs)?);
        items.push(archive.add_result(&format!("{dir}/events.jsonl"), events)?);
        let addr = status.http.as_str();
        let metrics = http.get(addr, "/metrics").await;
        items.push(archive.add_result(&format!("{dir}/metrics.txt"), metrics)?);
        let settings = settings(&http, addr).await;
        items.push(archive.add_result(&format!("{dir}/settings.json"), settings)?);
        let listing = http.get(addr, "/debug/datadir").await;
        items.push(archive.add_result(&format!("{dir}/datadir.json"), listing)?);
        nodes.push(NodeEntry {
            endpoint,
            id,
            http: http_addr,
            answered: true,
            items,
        });
    }

    progress("reading the membership and the audit trail");
    let mut cluster_items = Vec::new();
    let text = serde_json::to_string_pretty(&json!({ "members": membership }))?;
    cluster_items.push(archive.add("cluster/members.json", &text)?);
    let audit = audit_trail(client, AUDIT_RECORDS).await;
    let audit = match audit {
        Ok(records) => {
            let records: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({
                        "seq": r.seq,
                        "at": crate::format::utc_seconds(r.unix_ms),
                        "unix_ms": r.unix_ms,
                        "actor": r.actor,
                        "action": r.action,
                        "args": r.args,
                        "result": r.result,
                    })
                })
                .collect();
            Ok(serde_json::to_string_pretty(
                &json!({ "records": records }),
            )?)
        }
        Err(e) => Err(e),
    };
    cluster_items.push(archive.add_result("cluster/audit.json", audit)?);
    let text = serde_json::to_string_pretty(&alerts(&reports))?;
    cluster_items.push(archive.add("console/alerts.json", &text)?);

    let manifest = json!({
        "opsdeck_version": env!("CARGO_PKG_VERSION"),
        "git": option_env!("OPSDECK_GIT_SHA").unwrap_or("unknown"),
        "context": opts.label,
        "created": crate::format::utc_seconds(now),
        "created_unix_ms": now,
        "since_ms": opts.since.as_millis() as u64,
        "since": humantime::format_duration(opts.since).to_string(),
        "nodes": nodes,
        "not_answering": missing,
        "cluster": cluster_items,
        "never_included": [
            "values or keys of user data (nothing is read or scanned)",
            "API key secrets or hashes (no node sends them)",
            "the cluster secret, TLS private keys",
            "the API key this bundle was made with (lines holding it are dropped)",
        ],
    });
    archive.add("manifest.json", &serde_json::to_string_pretty(&manifest)?)?;
    let gz = archive
        .tar
        .into_inner()
        .wrap_err("finishing the bundle's tar stream")?;
    let mut file = gz.finish().wrap_err("finishing the bundle's gzip stream")?;
    file.flush()?;
    file.sync_all()
        .wrap_err_with(|| format!("syncing {}", partial.display()))?;
    if nodes.iter().all(|n| !n.answered) {
        return Err(eyre!(
            "no node answered ({}): nothing to bundle; is the cluster running? check --endpoints",
            missing
                .iter()
                .map(|m| format!("{}: {}", m.endpoint, m.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok((nodes, missing))
}

/// What a node says of its settings: `/health` and `/cluster/info`.
async fn settings(http: &Http, addr: &str) -> Result<String, String> {
    let health = http.get(addr, "/health").await?;
    let info = http.get(addr, "/cluster/info").await?;
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or_else(|_| json!(t));
    serde_json::to_string_pretty(&json!({ "health": parse(&health), "cluster_info": parse(&info) }))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_pass_drops_every_line_holding_a_secret() {
        let secrets = vec!["s3cr3t-key".to_string(), "  ".to_string()];
        let text = "first line\nauth: Bearer s3cr3t-key here\nlast\nagain s3cr3t-key";
        let (kept, dropped) = redact(text, &secrets);
        assert_eq!(kept, "first line\nlast\n");
        assert_eq!(dropped, 2);
        let (kept, dropped) = redact("nothing to hide\n", &secrets);
        assert_eq!((kept.as_str(), dropped), ("nothing to hide\n", 0));
    }

    #[test]
    fn the_partial_file_sits_beside_the_final_one() {
        assert_eq!(
            partial_path(Path::new("/tmp/b.tar.gz")),
            PathBuf::from("/tmp/b.tar.gz.partial")
        );
    }
}
