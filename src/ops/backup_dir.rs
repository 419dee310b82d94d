//! Scheduled backups into a directory (`opsdeck backup --out-dir DIR --keep N`, run from
//! a timer): each file named by the time and applied index it was taken at, verified whole
//! before it counts, and the oldest beyond the newest N removed. Only files with this
//! module's names are ever removed; anything else in the directory is left alone.

use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result, WrapErr};
use opsdeck_node::backup::format::Manifest;

use super::backup::{backup, record_verified, verify_file, Progress, Recorded};
use crate::client::ClusterClient;
use crate::format as fmt;

const PREFIX: &str = "opsdeck-";
const SUFFIX: &str = ".odb";

/// What one scheduled backup did.
pub struct Rotated {
    pub file: PathBuf,
    pub manifest: Manifest,
    /// Older backups removed to keep the newest `keep`.
    pub pruned: Vec<PathBuf>,
    /// Every backup left in the directory, oldest first.
    pub kept: Vec<PathBuf>,
    /// The verification recorded in the cluster (it clears "last backup not verified").
    pub recorded: Recorded,
}

/// `opsdeck-20261202T090512Z-i12345.odb`: sorts by time, then applied index.
fn file_name(m: &Manifest) -> String {
    let stamp = fmt::utc_compact(m.created_unix_ms);
    format!("{PREFIX}{stamp}-i{}{SUFFIX}", m.applied_index)
}

/// The (time, applied index) a name of ours carries; None for any other file.
fn parse_name(name: &str) -> Option<(String, u64)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (stamp, index) = rest.split_once("-i")?;
    let well_formed = stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit());
    well_formed.then_some(())?;
    Some((stamp.to_string(), index.parse().ok()?))
}

/// Our backups in `dir`, oldest first.
fn listed(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(dir).wrap_err_with(|| format!("cannot list {}", dir.display()))?
    {
        let entry = entry.wrap_err_with(|| format!("cannot list {}", dir.display()))?;
        if let Some(key) = entry.file_name().to_str().and_then(parse_name) {
            found.push((key, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Takes a backup into `dir` (created if missing), verifies it, then removes the oldest of
/// ours beyond the newest `keep`. A backup that fails, or fails verification, leaves no
/// file and removes none.
pub async fn rotate(
    client: &ClusterClient,
    dir: &Path,
    keep: usize,
    progress: impl FnMut(Progress),
) -> Result<Rotated> {
    if keep == 0 {
        return Err(eyre!("--keep must be at least 1"));
    }
    std::fs::create_dir_all(dir)
        .wrap_err_with(|| format!("cannot create the backup directory {}", dir.display()))?;
    // A hidden name until verified, so nothing reads it as a good backup before that.
    let incoming = dir.join(format!(".{PREFIX}incoming{SUFFIX}"));
    backup(client, &incoming, progress).await?;
    let manifest = match verify_file(&incoming).await {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(eyre!(
                "the new backup failed verification and was removed ({e}); the older backups are kept"
            ));
        }
    };
    let file = dir.join(file_name(&manifest));
    std::fs::rename(&incoming, &file)
        .wrap_err_with(|| format!("cannot rename the new backup to {}", file.display()))?;
    let recorded = record_verified(client, &manifest, &file).await;
    let mut kept = listed(dir)?;
    let excess = kept.len().saturating_sub(keep);
    let mut pruned = Vec::new();
    for old in kept.drain(..excess) {
        std::fs::remove_file(&old)
            .wrap_err_with(|| format!("cannot remove the old backup {}", old.display()))?;
        pruned.push(old);
    }
    Ok(Rotated {
        file,
        manifest,
        pruned,
        kept,
        recorded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_time_and_index_and_nothing_else_parses() {
        let m = Manifest {
            format_version: opsdeck_node::backup::format::FORMAT_VERSION,
            applied_term: 3,
            applied_index: 42,
            source_node: 1,
            created_unix_ms: 1_700_000_000_000,
            ..Manifest::default()
        };
        let name = file_name(&m);
        assert_eq!(name, "opsdeck-20231114T221320Z-i42.odb");
        assert_eq!(parse_name(&name), Some(("20231114T221320Z".into(), 42)));
        for other in [
            "nightly.odb",
            "opsdeck-20231114T221320Z-i42.odb.partial",
            ".opsdeck-incoming.odb",
            "opsdeck-2023111XT221320Z-i42.odb",
            "opsdeck-20231114T221320Z-ix.odb",
            "opsdeck-20231114T221320Z.odb",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }
}
