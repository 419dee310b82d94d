//! `opsdeck backup`, `verify-backup` and `restore`: flags, the confirmation, progress on
//! stderr and the result, over [`crate::ops::backup`].

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::backup::format::{self, Manifest};
use serde_json::json;

use super::connect;
use crate::cli::ClusterArgs;
use crate::format as fmt;
use crate::ops::backup::{
    describe_manifest, describe_recorded, record_verified, verify_and_record, verify_file,
    Progress, Recorded,
};

/// Draws progress on stderr when it is a terminal, at most 5 times a second.
fn stderr_progress(label: &'static str) -> impl FnMut(Progress) {
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now() - Duration::from_secs(1);
    move |p: Progress| {
        if tty && (last.elapsed() >= Duration::from_millis(200) || p.done >= p.total) {
            last = Instant::now();
            eprint!(
                "\r{label} {} / {} ({:.0}%) {}/s   ",
                fmt::bytes(p.done),
                fmt::bytes(p.total),
                p.fraction() * 100.0,
                fmt::bytes(p.rate() as u64)
            );
            if p.done >= p.total {
                eprintln!();
            }
        }
    }
}

fn manifest_json(m: &Manifest) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(m)?)
}

fn recorded_json(r: &Recorded) -> serde_json::Value {
    match r {
        Ok(last) => json!({ "ok": true, "last_backup": last }),
        Err(e) => json!({ "ok": false, "error": e }),
    }
}

/// `opsdeck backup --out FILE [--verify]`
pub async fn backup(args: &ClusterArgs, out: &Path, verify: bool) -> Result<()> {
    let client = connect(args)?;
    let started = Instant::now();
    let m = crate::ops::backup::backup(&client, out, stderr_progress("backup")).await?;
    let took = started.elapsed();
    let recorded = match verify {
        true => Some(verify_and_record(&client, out).await.map_err(|e| {
            eyre!("the backup was written to {}, but it failed verification: {e:#}; take it again", out.display())
        })?.1),
        false => None,
    };
    if args.json() {
        let mut v = manifest_json(&m)?;
        v["file"] = json!(out.display().to_string());
        v["took_ms"] = json!(took.as_millis() as u64);
        v["verified"] = json!(verify);
        if let Some(r) = &recorded {
            v["recorded"] = recorded_json(r);
        }
        super::print_json(&v)?;
    } else {
        println!(
            "backup written to {} in {:.1}s: {}",
            out.display(),
            took.as_secs_f64(),
            describe_manifest(&m)
        );
        if let Some(r) = &recorded {
            println!("  verified; {}", describe_recorded(r));
        }
    }
    Ok(())
}

/// `opsdeck backup --out-dir DIR --keep N`
pub async fn rotate(args: &ClusterArgs, dir: &Path, keep: u64) -> Result<()> {
    let client = connect(args)?;
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let r = crate::ops::backup_dir::rotate(&client, dir, keep, stderr_progress("backup")).await?;
    let names = |v: &[std::path::PathBuf]| -> Vec<String> {
        v.iter().map(|p| p.display().to_string()).collect()
    };
    if args.json() {
        let mut v = manifest_json(&r.manifest)?;
        v["file"] = json!(r.file.display().to_string());
        v["verified"] = json!(true);
        v["recorded"] = recorded_json(&r.recorded);
        v["pruned"] = json!(names(&r.pruned));
        v["kept"] = json!(names(&r.kept));
        super::print_json(&v)?;
    } else {
        println!(
            "backup written to {} and verified: {}",
            r.file.display(),
            describe_manifest(&r.manifest)
        );
        println!("  {}", describe_recorded(&r.recorded));
        for old in &r.pruned {
            println!("removed {} (keeping the newest {keep})", old.display());
        }
    }
    Ok(())
}

/// What `verify-backup` says of the digest: the one the payload sums to, or that an older
/// backup has none.
fn digest_line(m: &Manifest) -> String {
    if m.has_digest() {
        format!(
            "state digest {} at index {} (data {}): the payload sums to the manifest's",
            m.state_digest, m.applied_index, m.data_digest
        )
    } else {
        "no digest in manifest (older backup): checked by its SHA-256 only".to_string()
    }
}

/// `opsdeck verify-backup FILE [--record]`: no cluster involved unless recording.
pub async fn verify(file: &Path, record: bool, args: &ClusterArgs) -> Result<()> {
    let m = verify_file(file).await?;
    let recorded = match record {
        true => Some(record_verified(&connect(args)?, &m, file).await),
        false => None,
    };
    print_verified(file, &m, recorded.as_ref(), args.json())?;
    match recorded {
        Some(Err(e)) => Err(eyre!(
            "{} is good, but its verification was not recorded in the cluster: {e}",
            file.display()
        )),
        _ => Ok(()),
    }
}

fn print_verified(
    file: &Path,
    m: &Manifest,
    recorded: Option<&Recorded>,
    json_out: bool,
) -> Result<()> {
    if json_out {
        let mut v = manifest_json(m)?;
        v["file"] = json!(file.display().to_string());
        v["ok"] = json!(true);
        v["digest_checked"] = json!(m.has_digest());
        v["digest"] = json!(digest_line(m));
        if let Some(r) = recorded {
            v["recorded"] = recorded_json(r);
        }
        super::print_json(&v)?;
    } else {
        println!("{}: ok, {}", file.display(), describe_manifest(m));
        println!("  {}", digest_line(m));
        if let Some(r) = recorded {
            println!("  {}", describe_recorded(r));
        }
    }
    Ok(())
}

/// `opsdeck restore FILE [--yes] [--allow-foreign-cluster]`
pub async fn restore(
    args: &ClusterArgs,
    file: &Path,
    yes: bool,
    allow_foreign: bool,
) -> Result<()> {
    let verified = format::open_verified(file)?;
    let client = connect(args)?;
    let m = verified.0.clone();
    let plan = crate::ops::backup::plan(&client, &m).await?;
    if plan.foreign() && !allow_foreign {
        return Err(eyre!("{}; nothing was changed", plan.refusal(file)));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(eyre!(
                "restoring {} replaces every key in the cluster; pass --yes to confirm",
                file.display()
            ));
        }
        eprintln!(
            "Restore {} into the cluster at {}:",
            file.display(),
            client.endpoints().join(",")
        );
        eprintln!("  backup:       {}", describe_manifest(&m));
        eprintln!("  taken on:     cluster {}", plan.backup_cluster_text());
        eprintln!(
            "  restoring to: cluster {}{}",
            plan.this_cluster,
            if plan.foreign() {
                "  (ANOTHER CLUSTER: --allow-foreign-cluster given)"
            } else {
                "  (the same cluster)"
            }
        );
        eprintln!(
            "  It replaces every key; API keys stay as they are (none are taken from the backup)."
        );
        eprint!("Type {} to confirm: ", m.key_count);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != m.key_count.to_string() {
            return Err(eyre!("not confirmed; nothing was changed"));
        }
    }
    let r = crate::ops::backup::restore(
        &client,
        file,
        verified,
        allow_foreign,
        stderr_progress("restore"),
    )
    .await?;
    if args.json() {
        super::print_json(&json!({
            "file": file.display().to_string(),
            "keys": r.keys,
            "chunks": r.chunks,
            "took_ms": r.took.as_millis() as u64,
            "commit_ms": r.commit.as_millis() as u64,
            "backup": manifest_json(&m)?,
            "backup_cluster_id": plan.backup_cluster,
            "cluster_id": plan.this_cluster,
            "foreign": plan.foreign(),
            "check": r.check,
            "check_text": r.check.describe(),
        }))?;
    } else {
        println!(
            "restored {} into cluster {} in {:.1}s: it now holds {} keys (backup of cluster {} at index {})",
            file.display(),
            plan.this_cluster,
            r.took.as_secs_f64(),
            r.keys,
            plan.backup_cluster_text(),
            m.applied_index
        );
        println!("{}", r.check.describe());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use opsdeck_node::backup::format::BackupWriter;

    use super::*;

    /// Regression (found with the backup_file fuzz target): `verify-backup` and `restore`
    /// panicked describing a well-formed backup whose manifest says it was taken after the
    /// year 9999 (the manifest's checksum is no signature: anyone can write one).
    #[test]
    fn a_backup_from_after_the_year_9999_is_described_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.odb");
        let body = crate::ops::backup::encode_pairs(&[(b"d/a".to_vec(), b"1".to_vec())]);
        let mut w = BackupWriter::create(&path).unwrap();
        w.write(&body).unwrap();
        let sha = {
            use sha2::Digest;
            hex_lower(&sha2::Sha256::digest(&body))
        };
        let manifest = Manifest {
            cluster_id: "c".into(),
            applied_term: 1,
            applied_index: 1,
            source_node: 1,
            created_unix_ms: 300_000_000_000_000,
            ..Manifest::default()
        };
        w.finish(manifest, &sha).unwrap();
        let m = format::verify(&path).unwrap();
        assert!(describe_manifest(&m).ends_with("taken after 9999"), "{m:?}");
        print_verified(&path, &m, None, false).unwrap();
        print_verified(&path, &m, Some(&Ok(true)), true).unwrap();
    }

    fn hex_lower(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
