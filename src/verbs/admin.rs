//! Admin verbs: `keys`, `quota` and `audit`. Each is one call to any node (which forwards
//! to the leader); they need an admin key.

use std::path::Path;

use color_eyre::eyre::{eyre, Result, WrapErr};
use opsdeck_node::pb::*;
use opsdeck_node::security::cluster_secret::write_private;
use opsdeck_node::types::limits::key_duration_ms;
use serde_json::json;

use super::connect;
use crate::cli::{ClusterArgs, KeysAction, QuotaAction};
use crate::format as fmt;
use crate::format::table;
use crate::ops::keys::rotate_key;

fn opt_time(unix_ms: Option<i64>) -> String {
    unix_ms.map(fmt::utc_seconds).unwrap_or_else(|| "-".into())
}

fn key_json(k: &ApiKeyInfo) -> serde_json::Value {
    json!({
        "id": k.id, "role": k.role, "tenants": k.tenants, "state": k.state,
        "created": fmt::utc_seconds(k.created_unix_ms),
        "expires": k.expires_unix_ms.map(fmt::utc_seconds),
        "revoked": k.revoked_unix_ms.map(fmt::utc_seconds),
        "last_used": k.last_used_unix_ms.map(fmt::utc_seconds),
        "successor": k.successor,
    })
}

fn tenants_text(tenants: &[String]) -> String {
    if tenants.is_empty() {
        "*".into()
    } else {
        tenants.join(",")
    }
}

/// Prints a new key's secret once, or writes it to `out` (mode 0600) and prints only where.
fn reveal(reply: &NewKeyReply, out: Option<&Path>, json_out: bool) -> Result<()> {
    let key = reply
        .key
        .as_ref()
        .ok_or_else(|| eyre!("the node answered without the new key"))?;
    if let Some(path) = out {
        write_private(path, reply.secret.as_bytes())
            .wrap_err_with(|| format!("cannot write the secret to {}", path.display()))?;
    }
    if json_out {
        let mut v = json!({ "key": key_json(key) });
        match out {
            Some(path) => v["secret_file"] = json!(path.display().to_string()),
            None => v["secret"] = json!(reply.secret),
        }
        if let Some(old) = &reply.replaced {
            v["replaced"] = key_json(old);
        }
        super::print_json(&v)?;
        return Ok(());
    }
    println!(
        "key {}  role {}  tenants {}",
        key.id,
        key.role,
        tenants_text(&key.tenants)
    );
    if let Some(old) = &reply.replaced {
        println!(
            "replaces {}, which stays valid until {}",
            old.id,
            opt_time(old.expires_unix_ms)
        );
    }
    match out {
        Some(path) => println!("secret written to {} (mode 0600)", path.display()),
        None => {
            println!("secret (shown once; store it now):");
            println!("{}", reply.secret);
        }
    }
    Ok(())
}

pub async fn keys(action: KeysAction) -> Result<()> {
    match action {
        KeysAction::List { cluster } => {
            let client = connect(&cluster)?;
            let reply = client
                .call("keys list", |mut c| async move {
                    c.list_keys(ListKeysRequest {}).await
                })
                .await?;
            if cluster.json() {
                let keys: Vec<_> = reply.keys.iter().map(key_json).collect();
                super::print_json(&json!({ "keys": keys }))?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = reply
                .keys
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        k.role.clone(),
                        k.state.clone(),
                        tenants_text(&k.tenants),
                        opt_time(k.expires_unix_ms),
                        opt_time(k.last_used_unix_ms),
                    ]
                })
                .collect();
            let header = ["ID", "ROLE", "STATE", "TENANTS", "EXPIRES", "LAST USED"];
            println!("{}", table::render(&header, &rows));
        }
        KeysAction::Create {
            role,
            tenant,
            expires,
            out,
            cluster,
        } => {
            let client = connect(&cluster)?;
            let req = CreateKeyRequest {
                role,
                tenants: tenant,
                expires_in_ms: match expires {
                    Some(d) => {
                        key_duration_ms("the key's lifetime", d).map_err(|e| eyre!("{e}"))?
                    }
                    None => 0,
                },
            };
            let reply = client
                .call("keys create", |mut c| {
                    let req = req.clone();
                    async move { c.create_key(req).await }
                })
                .await?;
            reveal(&reply, out.as_deref(), cluster.json())?;
        }
        KeysAction::Rotate {
            id,
            grace,
            out,
            cluster,
        } => {
            let client = connect(&cluster)?;
            let reply = rotate_key(&client, id, grace).await?;
            reveal(&reply, out.as_deref(), cluster.json())?;
        }
        KeysAction::Revoke { id, cluster } => {
            let client = connect(&cluster)?;
            let key = client
                .call("keys revoke", |mut c| {
                    let req = RevokeKeyRequest { id: id.clone() };
                    async move { c.revoke_key(req).await }
                })
                .await?;
            if cluster.json() {
                super::print_json(&key_json(&key))?;
            } else {
                println!(
                    "key {} revoked at {}",
                    key.id,
                    opt_time(key.revoked_unix_ms)
                );
            }
        }
    }
    Ok(())
}

pub fn usage_json(t: &TenantUsage) -> serde_json::Value {
    json!({
        "tenant": t.tenant,
        "tier": (!t.tier.is_empty()).then_some(&t.tier),
        "keys": t.keys, "max_keys": t.max_keys,
        "bytes": t.bytes, "max_bytes": t.max_bytes,
        "keys_used_pct": t.max_keys.and_then(|max| fmt::percent(t.keys, max)),
        "bytes_used_pct": t.max_bytes.and_then(|max| fmt::percent(t.bytes, max)),
        "violations": t.violations,
    })
}

fn print_usage(tenants: &[TenantUsage], json_out: bool) -> Result<()> {
    if json_out {
        let list: Vec<_> = tenants.iter().map(usage_json).collect();
        super::print_json(&json!({ "tenants": list }))?;
        return Ok(());
    }
    let of = |used: u64, max: Option<u64>| match max {
        None => format!("{used} (no limit)"),
        Some(max) => match fmt::percent(used, max) {
            Some(p) => format!("{used}/{max} ({p:.0}%)"),
            None => format!("{used}/0 (no writes)"),
        },
    };
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.tenant.clone(),
                if t.tier.is_empty() {
                    "-".into()
                } else {
                    t.tier.clone()
                },
                of(t.keys, t.max_keys),
                of(t.bytes, t.max_bytes),
                t.violations.to_string(),
            ]
        })
        .collect();
    let header = ["TENANT", "TIER", "KEYS", "BYTES", "REFUSED"];
    println!("{}", table::render(&header, &rows));
    Ok(())
}

pub async fn quota(action: QuotaAction) -> Result<()> {
    match action {
        QuotaAction::Show { tenant, cluster } => {
            let client = connect(&cluster)?;
            let reply = client
                .call("quota show", |mut c| async move {
                    c.list_quotas(ListQuotasRequest {}).await
                })
                .await?;
            let tenants: Vec<_> = reply
                .tenants
                .into_iter()
                .filter(|t| tenant.as_ref().is_none_or(|want| &t.tenant == want))
                .collect();
            if let (Some(want), true) = (&tenant, tenants.is_empty()) {
                return Err(eyre!("tenant {want:?} has no data and no quota"));
            }
            print_usage(&tenants, cluster.json())
        }
        QuotaAction::Set {
            tenant,
            tier,
            max_keys,
            max_bytes,
            cluster,
        } => {
            let client = connect(&cluster)?;
            let req = SetQuotaRequest {
                tenant,
                tier,
                max_keys,
                max_bytes,
            };
            let t = client
                .call("quota set", |mut c| {
                    let req = req.clone();
                    async move { c.set_quota(req).await }
                })
                .await?;
            print_usage(&[t], cluster.json())
        }
        QuotaAction::Reset { tenant, cluster } => {
            let client = connect(&cluster)?;
            let t = client
                .call("quota reset", |mut c| {
                    let req = ResetQuotaRequest {
                        tenant: tenant.clone(),
                    };
                    async move { c.reset_quota(req).await }
                })
                .await?;
            print_usage(&[t], cluster.json())
        }
    }
}

pub async fn audit(limit: u32, cluster: &ClusterArgs) -> Result<()> {
    let client = connect(cluster)?;
    let reply = client
        .call("audit", |mut c| async move {
            c.list_audit(ListAuditRequest { limit }).await
        })
        .await?;
    if cluster.json() {
        let records: Vec<_> = reply
            .records
            .iter()
            .map(|r| {
                json!({ "seq": r.seq, "time": fmt::utc_seconds(r.unix_ms), "actor": r.actor,
                        "action": r.action, "args": r.args, "result": r.result })
            })
            .collect();
        super::print_json(&json!({ "records": records }))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply
        .records
        .iter()
        .map(|r| {
            vec![
                fmt::utc_seconds(r.unix_ms),
                r.actor.clone(),
                r.action.clone(),
                r.result.clone(),
                r.args.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["TIME", "ACTOR", "ACTION", "RESULT", "ARGS"], &rows)
    );
    Ok(())
}
