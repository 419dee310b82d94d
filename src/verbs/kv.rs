//! One-shot CLI verbs over a cluster: status, members, put, get, del, scan.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{
    CasRequest, DeleteRequest, GetRequest, NodeStatus, PutRequest, ScanRequest, StatusRequest,
};
use serde_json::json;

use super::connect;
use crate::cli::ClusterArgs;
use crate::client::{Class, Failure};
use crate::format::table::{self, opt};

/// A key as quoted in messages, cut short so a huge key cannot flood the terminal.
fn short(key: &str) -> String {
    const MAX: usize = 48;
    if key.chars().count() <= MAX {
        format!("{key:?}")
    } else {
        let head: String = key.chars().take(MAX).collect();
        format!("{head:?}… ({} bytes)", key.len())
    }
}

/// A value in JSON, never lossy: `{"value": TEXT}` when it is UTF-8, else
/// `{"value_base64": BASE64}` (standard alphabet, padded), added to `object` under `name`
/// (`value`, `current`).
pub(super) fn put_value_json(object: &mut serde_json::Value, name: &str, bytes: &[u8]) {
    use base64::Engine;
    let (field, text) = match std::str::from_utf8(bytes) {
        Ok(text) => (name.to_string(), text.to_string()),
        Err(_) => (
            format!("{name}_base64"),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ),
    };
    object[field] = serde_json::Value::String(text);
}

fn status_json(endpoint: &str, s: &Result<NodeStatus, String>) -> serde_json::Value {
    match s {
        Ok(s) => {
            let mut fields = crate::client::status_fields(s);
            fields.insert("endpoint".into(), json!(endpoint));
            fields.insert("reachable".into(), json!(true));
            fields.insert(
                "quotas".into(),
                json!(s
                    .quotas
                    .iter()
                    .map(crate::verbs::admin::usage_json)
                    .collect::<Vec<_>>()),
            );
            serde_json::Value::Object(fields)
        }
        Err(e) => json!({ "endpoint": endpoint, "reachable": false, "error": e }),
    }
}

pub async fn status(args: &ClusterArgs) -> Result<()> {
    let client = connect(args)?;
    let reports = client
        .status_all(Duration::from_secs(2).min(args.timeout))
        .await;
    // The pause as the node furthest along holds it (all agree once they have applied it).
    let paused = reports
        .iter()
        .filter_map(|r| r.status.as_ref().ok())
        .max_by_key(|s| s.applied)
        .and_then(|s| s.writes_paused.clone());
    if args.json() {
        let nodes: Vec<_> = reports
            .iter()
            .map(|r| status_json(&r.endpoint, &r.status))
            .collect();
        let paused = paused.as_ref().map(|p| {
            json!({ "by": p.by, "since": crate::format::utc_seconds(p.since_unix_ms),
                    "reason": p.reason, "until": p.until_unix_ms.map(crate::format::utc_seconds) })
        });
        super::print_json(&json!({ "nodes": nodes, "writes_paused": paused }))?;
    } else {
        // Fits 80 columns; purged index and key counts are in --json.
        let rows: Vec<Vec<String>> = reports
            .iter()
            .map(|r| match &r.status {
                Ok(s) => vec![
                    s.id.to_string(),
                    r.endpoint.clone(),
                    s.role.clone(),
                    s.term.to_string(),
                    opt(s.leader_id),
                    opt(s.last_log_index),
                    opt(s.committed),
                    opt(s.applied),
                    opt(s.snapshot_index),
                ],
                Err(_) => vec!["?".into(), r.endpoint.clone(), "DOWN".into()],
            })
            .collect();
        let header = [
            "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "LOG", "COMMIT", "APPLIED", "SNAP",
        ];
        println!("{}", table::render(&header, &rows));
        for r in &reports {
            if let Err(e) = &r.status {
                println!("{} is unreachable: {e}", r.endpoint);
            }
        }
        if let Some(p) = &paused {
            println!("WRITES PAUSED: {}", crate::ops::maintenance::describe(p));
        }
    }
    if reports.iter().all(|r| r.status.is_err()) {
        return Err(eyre!(
            "no node reachable at {} (is the cluster running? `opsdeck dev` starts one)",
            client.endpoints().join(", ")
        ));
    }
    Ok(())
}

pub async fn members(args: &ClusterArgs) -> Result<()> {
    let client = connect(args)?;
    let status = client
        .call("members", |mut c| async move {
            c.status(StatusRequest {}).await
        })
        .await?;
    if args.json() {
        let members: Vec<_> = status
            .members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "grpc": m.grpc, "http": m.http,
                    "role": if m.voter { "voter" } else { "learner" },
                    "leader": Some(m.id) == status.leader_id,
                })
            })
            .collect();
        super::print_json(&json!({ "members": members }))?;
    } else {
        let rows: Vec<Vec<String>> = status
            .members
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    if m.voter { "voter" } else { "learner" }.into(),
                    if Some(m.id) == status.leader_id {
                        "*"
                    } else {
                        ""
                    }
                    .into(),
                    m.grpc.clone(),
                    m.http.clone(),
                ]
            })
            .collect();
        println!(
            "{}",
            table::render(&["ID", "ROLE", "LEADER", "GRPC", "HTTP"], &rows)
        );
    }
    Ok(())
}

/// Reads at most `limit` bytes of a value from `from` (named `what` in errors): one byte
/// more means it is too big, and nothing past that is read.
fn read_bounded(what: &str, from: impl Read, limit: usize) -> Result<Vec<u8>> {
    let mut value = Vec::new();
    from.take(limit as u64 + 1)
        .read_to_end(&mut value)
        .map_err(|e| eyre!("cannot read the value from {what}: {e}"))?;
    if value.len() > limit {
        return Err(eyre!(
            "the value from {what} is over the limit of {limit} bytes (stopped reading at \
             {} bytes); a value must be at most {limit} bytes",
            value.len()
        ));
    }
    Ok(value)
}

/// The value of `put`: VALUE itself, standard input for `-`, or the contents of `file`.
fn put_value(value: Option<String>, file: Option<&Path>) -> Result<Vec<u8>> {
    let limit = opsdeck_node::types::limits::MAX_VALUE_BYTES;
    match (value, file) {
        (_, Some(path)) => {
            let what = path.display().to_string();
            let meta = std::fs::metadata(path)
                .map_err(|e| eyre!("cannot read the value from {what}: {e}"))?;
            if meta.is_dir() {
                return Err(eyre!(
                    "{what} is a directory; give a file to read the value from"
                ));
            }
            if meta.is_file() && meta.len() > limit as u64 {
                return Err(eyre!(
                    "{what} is {} bytes, over the value limit of {limit} bytes",
                    meta.len()
                ));
            }
            let file = std::fs::File::open(path)
                .map_err(|e| eyre!("cannot read the value from {what}: {e}"))?;
            read_bounded(&what, file, limit)
        }
        (Some(v), None) if v == "-" => {
            read_bounded("standard input", std::io::stdin().lock(), limit)
        }
        (Some(v), None) => Ok(v.into_bytes()),
        (None, None) => Err(eyre!(
            "give a VALUE, `-` for standard input, or --file FILE"
        )),
    }
}

pub async fn put(
    args: &ClusterArgs,
    key: String,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<()> {
    let value = put_value(value, file.as_deref()).map_err(|e| eyre!("put {}: {e}", short(&key)))?;
    opsdeck_node::types::validate_entry(&key, Some(&value))
        .map_err(|e| Failure::new(Class::Usage, format!("put {}: {e}", short(&key))))?;
    let client = connect(args)?;
    let reply = client
        .call("put", |mut c| {
            let req = PutRequest {
                key: key.clone(),
                value: value.clone(),
            };
            async move { c.put(req).await }
        })
        .await?;
    if args.json() {
        println!("{}", json!({ "key": key, "revision": reply.revision }));
    } else {
        println!("OK revision {}", reply.revision);
    }
    Ok(())
}

pub async fn get(args: &ClusterArgs, key: String, stale: bool) -> Result<()> {
    opsdeck_node::types::validate_entry(&key, None)
        .map_err(|e| Failure::new(Class::Usage, format!("get {}: {e}", short(&key))))?;
    let client = connect(args)?;
    let reply = client
        .call("get", |mut c| {
            let req = GetRequest {
                key: key.clone(),
                stale,
            };
            async move { c.get(req).await }
        })
        .await?;
    if args.json() {
        let mut out = json!({ "key": key, "found": reply.found });
        if reply.found {
            put_value_json(&mut out, "value", &reply.value);
        } else {
            out["value"] = serde_json::Value::Null;
        }
        println!("{out}");
    } else if reply.found {
        // The bytes as stored (`get KEY > file` gives the file back).
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&reply.value)?;
        out.write_all(b"\n")?;
    }
    if !reply.found {
        return Err(Failure::new(Class::NotFound, format!("key {} not found", short(&key))).into());
    }
    Ok(())
}

pub async fn del(args: &ClusterArgs, key: String) -> Result<()> {
    opsdeck_node::types::validate_entry(&key, None)
        .map_err(|e| Failure::new(Class::Usage, format!("del {}: {e}", short(&key))))?;
    let client = connect(args)?;
    let reply = client
        .call("del", |mut c| {
            let req = DeleteRequest { key: key.clone() };
            async move { c.delete(req).await }
        })
        .await?;
    if args.json() {
        println!("{}", json!({ "key": key, "deleted": reply.existed }));
    } else {
        println!(
            "{}",
            if reply.existed {
                "deleted"
            } else {
                "not found (nothing deleted)"
            }
        );
    }
    Ok(())
}

/// Compare-and-set; fails (exit 1) when the current value is not the expected one.
pub async fn cas(
    args: &ClusterArgs,
    key: String,
    expected: Option<String>,
    new: Option<String>,
) -> Result<()> {
    opsdeck_node::types::validate_entry(&key, new.as_deref().map(str::as_bytes))
        .map_err(|e| Failure::new(Class::Usage, format!("cas {}: {e}", short(&key))))?;
    let client = connect(args)?;
    let req = CasRequest {
        key: key.clone(),
        expected: expected.map(String::into_bytes),
        new_value: new.map(String::into_bytes),
    };
    let reply = client
        .call("cas", |mut c| {
            let req = req.clone();
            async move { c.cas(req).await }
        })
        .await?;
    let current = reply
        .current
        .as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if args.json() {
        let mut out = json!({ "key": key, "succeeded": reply.succeeded, "current": null });
        if let Some(v) = &reply.current {
            put_value_json(&mut out, "current", v);
        }
        println!("{out}");
    } else if reply.succeeded {
        println!("OK");
    }
    if !reply.succeeded {
        let current = current.map_or("absent (no such key)".to_string(), |v| format!("{v:?}"));
        return Err(Failure::new(
            Class::NotFound,
            format!(
                "cas {}: not applied, the current value is {current}",
                short(&key)
            ),
        )
        .into());
    }
    Ok(())
}

pub async fn scan(args: &ClusterArgs, prefix: String, limit: u32, stale: bool) -> Result<()> {
    let client = connect(args)?;
    let reply = client
        .call("scan", |mut c| {
            let req = ScanRequest {
                prefix: prefix.clone(),
                limit,
                stale,
            };
            async move { c.scan(req).await }
        })
        .await?;
    if args.json() {
        let items: Vec<_> = reply
            .items
            .iter()
            .map(|kv| {
                let mut item = json!({ "key": kv.key });
                put_value_json(&mut item, "value", &kv.value);
                item
            })
            .collect();
        println!(
            "{}",
            json!({ "items": items, "truncated": reply.truncated })
        );
    } else {
        for kv in &reply.items {
            println!("{}\t{}", kv.key, String::from_utf8_lossy(&kv.value));
        }
        if reply.truncated {
            eprintln!("(more keys match; raise --limit to see them)");
        }
    }
    Ok(())
}
