//! `opsdeck get KEY --proof FILE` and `opsdeck verify-proof FILE` (see [`crate::ops::proof`]).

use std::io::{Read, Write};
use std::path::Path;

use color_eyre::eyre::{eyre, Result};
use serde_json::json;

use super::connect;
use crate::cli::ClusterArgs;
use crate::client::digests::short as short_hash;
use crate::client::{Class, Failure};
use crate::ops::proof::{self, ProofFile, Refusal, RootReport, Verified};

/// The largest proof file read: a value (hex, twice its size) and a bucket of thousands of
/// entries fit many times over; anything bigger is not one of ours.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The value with a proof written to `out`; the value goes to stdout as `get` prints it.
pub async fn get(args: &ClusterArgs, key: &str, stale: bool, out: &Path) -> Result<()> {
    opsdeck_node::types::validate_entry(key, None)
        .map_err(|e| Failure::new(Class::Usage, format!("get --proof {key:?}: {e}")))?;
    let client = connect(args)?;
    let file = proof::make(&client, key, stale, args.timeout).await?;
    let text = serde_json::to_string_pretty(&file)?;
    std::fs::write(out, format!("{text}\n"))
        .map_err(|e| eyre!("cannot write the proof to {}: {e}", out.display()))?;
    let value = match &file.proof.value {
        Some(v) => Some(
            hex::decode(v)
                .map_err(|e| eyre!("the node's proof carries a value that is not hex: {e}"))?,
        ),
        None => None,
    };
    let checked = proof::verify(&file, None);
    if args.json() {
        let mut o = json!({ "key": key, "found": value.is_some(), "proof_file": out.display().to_string(),
                            "index": file.proof.index, "root": file.proof.root, "reports": file.reports });
        match &value {
            Some(v) => super::kv::put_value_json(&mut o, "value", v),
            None => o["value"] = serde_json::Value::Null,
        }
        o["verified"] = json!(checked.is_ok());
        super::print_json(&o)?;
    } else {
        if let Some(v) = &value {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(v)?;
            stdout.write_all(b"\n")?;
        }
        let what = if value.is_some() {
            "proof"
        } else {
            "proof of absence"
        };
        match &checked {
            Ok(ok) => eprintln!(
                "{what} written to {}: {}",
                out.display(),
                describe_quorum(ok)
            ),
            Err(e) => eprintln!(
                "{what} written to {}, but it does not hold: {e}",
                out.display()
            ),
        }
        print_failed(&file.reports);
    }
    if let Err(e) = checked {
        // Most often nodes too far behind or down at the time: try again.
        return Err(Failure::new(Class::Unavailable, format!("get --proof: {e}")).into());
    }
    if value.is_none() {
        return Err(Failure::new(
            Class::NotFound,
            format!(
                "key {key:?} not found (the proof of absence is in {})",
                out.display()
            ),
        )
        .into());
    }
    Ok(())
}

/// The nodes that gave no root, and why, on stderr.
fn print_failed(reports: &[RootReport]) {
    for r in reports {
        if let Some(error) = &r.error {
            eprintln!("  {}: {error}", r.endpoint);
        }
    }
}

fn describe_quorum(v: &Verified) -> String {
    let ids: Vec<String> = v.agreeing.iter().map(u64::to_string).collect();
    format!(
        "root {} at index {}, reported by {} of {} voters (node {})",
        short_hash(&v.root),
        v.index,
        v.agreeing.len(),
        v.voters,
        ids.join(", ")
    )
}

fn read_file(path: &Path) -> Result<ProofFile> {
    let unreadable = |e: std::io::Error| {
        Failure::new(
            Class::Usage,
            format!("cannot read proof file {}: {e}", path.display()),
        )
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(Failure::new(
            Class::Usage,
            format!(
                "{} is over {MAX_FILE_BYTES} bytes: not a proof file",
                path.display()
            ),
        )
        .into());
    }
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            Class::Error,
            format!(
                "{} is not a proof file (`opsdeck get KEY --proof FILE` makes one): {e}",
                path.display()
            ),
        )
        .into()
    })
}

/// Checks a proof file offline, or against the nodes' roots asked again (`live`).
pub async fn verify(path: &Path, live: bool, args: &ClusterArgs) -> Result<()> {
    let file = read_file(path)?;
    let asked = if live {
        let client = connect(args)?;
        Some(proof::roots_at(&client, file.proof.index, args.timeout).await)
    } else {
        None
    };
    let result = proof::verify(&file, asked.as_deref());
    if args.json() {
        let o = match &result {
            Ok(v) => json!({ "verified": true, "live": live, "result": v }),
            Err(e) => json!({ "verified": false, "live": live, "error": e.to_string() }),
        };
        super::print_json(&o)?;
    }
    match result {
        Ok(v) => {
            if !args.json() {
                let held = if v.present {
                    "holds its value"
                } else {
                    "is absent"
                };
                println!("proof holds: {:?} {held}: {}", v.key, describe_quorum(&v));
                if !live {
                    println!(
                        "(checked against the roots the file records; --live asks the nodes again)"
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            let class = match e {
                Refusal::Format(_) => Class::Usage,
                Refusal::Proof(_) | Refusal::NoQuorum { .. } => Class::Error,
            };
            if let Some(asked) = &asked {
                print_failed(asked);
            }
            Err(Failure::new(class, format!("verify-proof {}: {e}", path.display())).into())
        }
    }
}
