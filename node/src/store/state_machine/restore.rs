//! Restoring a backup through the log: `RestoreBegin`, then `RestoreChunk`s staging the
//! backup's pairs under `r/` (invisible to reads), then `RestoreCommit`, which swaps them
//! in within one apply batch — the same atomic sled batch that records the applied index.
//! Chunks may arrive in any order (a client keeps several in flight): each is staged once,
//! marked by its sequence number, and the commit checks that chunks `0..chunks` all came.
//! Every node applies the same entries, so every node ends with the same state; a leader
//! that dies mid-restore leaves the staged pairs unused and the old data in place.
//!
//! What the swap takes from the backup and what it keeps:
//! - user data (`d/`), tenant quotas (`q/`) and usage (`u/`), and the key/byte counts: the
//!   backup's, exactly (quotas and usage describe the data, so they travel with it);
//! - API keys (`k/`): never taken from the backup; the cluster's key records stay exactly
//!   as they are. Access is not data: a restore brings back what was stored, never who may
//!   reach it. So keys created since the backup keep working, keys revoked since stay
//!   revoked, and no key of another cluster (whose admin key would otherwise become an
//!   admin key here) is ever imported;
//! - the audit trail, cluster id and membership: the current ones (a restore is audited,
//!   not undone by itself).
//!
//! A backup of another cluster is refused unless the restore was begun with
//! `allow_foreign`: the cluster it came from is the one its manifest names (carried by
//! `RestoreBegin`) and, whatever a client says, the `m/cluster_id` pair of its own payload;
//! a backup that names no cluster at all counts as foreign. The check is made at apply time,
//! so every node refuses alike and no client (an older one, one that skips its own check)
//! can get around it.

use serde::{Deserialize, Serialize};

use super::{IoResult, Overlay, DATA_PREFIX, KEY_CLUSTER_ID, QUOTA_PREFIX, USAGE_PREFIX};
use crate::security::audit::AuditRecord;
use crate::security::quota::{Quota, Usage};
use crate::store::decode;
use crate::types::CommandResult;

const STAGE_PREFIX: &[u8] = b"r/";
const KEY_RESTORE: &[u8] = b"m/restore";
/// One marker per staged chunk, by sequence number.
const CHUNK_MARK_PREFIX: &[u8] = b"m/restore_chunk/";
/// Prefixes a restore replaces with the backup's.
const REPLACED: [&[u8]; 3] = [DATA_PREFIX, QUOTA_PREFIX, USAGE_PREFIX];

/// The restore being staged.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Staging {
    id: String,
    /// Chunks staged (each sequence number once).
    chunks: u64,
    pairs: u64,
    source: String,
    /// The cluster the backup's manifest names ("" when none).
    backup_cluster: String,
    allow_foreign: bool,
}

fn chunk_mark(seq: u64) -> Vec<u8> {
    [CHUNK_MARK_PREFIX, &seq.to_be_bytes()].concat()
}

fn staged_key(key: &[u8]) -> Vec<u8> {
    [STAGE_PREFIX, key].concat()
}

/// Why a staged record could not be swapped in: the state machine could not read it back,
/// and an apply that fails to read a record stops Raft on every node. None: it reads.
fn unreadable(key: &[u8], value: &[u8]) -> Option<String> {
    let err = if key.starts_with(QUOTA_PREFIX) {
        decode::<Quota>(value).err()
    } else if key.starts_with(USAGE_PREFIX) {
        decode::<Usage>(value).err()
    } else {
        None
    }?;
    Some(format!("{:?}: {err}", String::from_utf8_lossy(key)))
}

impl Overlay<'_> {
    pub(super) fn restore_begin(
        &mut self,
        id: String,
        source: String,
        backup_cluster: String,
        allow_foreign: bool,
    ) -> IoResult<CommandResult> {
        if let Some(s) = self.get_decoded::<Staging>(KEY_RESTORE)? {
            if s.id == id {
                return Ok(CommandResult::Done); // a retried begin
            }
        }
        // A client that names no cluster (an older one) is checked by the backup's own
        // `m/cluster_id` pair as its chunks arrive, and at the commit.
        if !allow_foreign && !backup_cluster.is_empty() {
            if let Some(reason) = self.foreign(&id, &backup_cluster)? {
                return Ok(CommandResult::Rejected { reason });
            }
        }
        for prefix in [STAGE_PREFIX, CHUNK_MARK_PREFIX] {
            for (k, _) in self.scan_prefix(prefix)? {
                self.writes.insert(k, None);
            }
        }
        self.note("restore_started", source.clone());
        self.put_encoded(
            KEY_RESTORE.to_vec(),
            &Staging {
                id,
                chunks: 0,
                pairs: 0,
                source,
                backup_cluster,
                allow_foreign,
            },
        )?;
        Ok(CommandResult::Done)
    }

    pub(super) fn restore_chunk(
        &mut self,
        id: &str,
        seq: u64,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> IoResult<CommandResult> {
        let Some(mut s) = self.staging(id)? else {
            return Ok(not_staging(id));
        };
        if self.get(&chunk_mark(seq))?.is_some() {
            return Ok(CommandResult::Done); // a retried chunk, already staged
        }
        // The backup's own record of its cluster, whatever the client declared: refused
        // here already, so a client that did not check stops early.
        if !s.allow_foreign {
            if let Some((_, origin)) = pairs.iter().find(|(k, _)| k.as_slice() == KEY_CLUSTER_ID) {
                if let Some(reason) = self.foreign(id, &String::from_utf8_lossy(origin))? {
                    return Ok(CommandResult::Rejected { reason });
                }
            }
        }
        self.writes.insert(chunk_mark(seq), Some(Vec::new()));
        s.chunks += 1;
        s.pairs += pairs.len() as u64;
        for (k, v) in pairs {
            self.writes.insert(staged_key(&k), Some(v));
        }
        self.put_encoded(KEY_RESTORE.to_vec(), &s)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn restore_commit(
        &mut self,
        id: &str,
        actor: String,
        at_ms: i64,
        chunks: u64,
        pairs: u64,
    ) -> IoResult<CommandResult> {
        let Some(s) = self.staging(id)? else {
            return Ok(not_staging(id));
        };
        let mut audit = AuditRecord {
            seq: 0,
            at_ms,
            actor,
            action: "restore".into(),
            // The id lets a client whose commit call timed out find the outcome.
            args: format!("id={id} {}", s.source),
            result: String::new(),
        };
        let staged = self.scan_prefix(STAGE_PREFIX)?;
        let marks = self.scan_prefix(CHUNK_MARK_PREFIX)?;
        let all_came = marks.len() as u64 == chunks
            && marks
                .iter()
                .zip(0..chunks)
                .all(|((k, _), seq)| *k == chunk_mark(seq));
        let mut refusal = ((s.chunks, s.pairs) != (chunks, pairs) || !all_came).then(|| format!(
            "restore {id}: {} chunks with {} pairs were staged, the backup has {chunks} with {pairs}; nothing was changed, start the restore again",
            s.chunks, s.pairs
        ));
        // The backup's records are checked before anything is swapped: its checksums say
        // the file is as written, not that what was written can be read (a forged file, a
        // chunk sent by hand, another release's format).
        if refusal.is_none() && !s.allow_foreign {
            let key = staged_key(KEY_CLUSTER_ID);
            let origin = match staged.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => String::from_utf8_lossy(v).into_owned(),
                None => s.backup_cluster.clone(),
            };
            refusal = self.foreign(id, &origin)?;
        }
        if refusal.is_none() {
            if let Some(why) = staged
                .iter()
                .find_map(|(k, v)| unreadable(&k[STAGE_PREFIX.len()..], v))
            {
                refusal = Some(format!(
                    "restore {id}: the backup holds a record this node cannot read ({why}); nothing was changed, use another backup"
                ));
            }
        }
        if let Some(reason) = refusal {
            audit.result = format!("refused: {reason}");
            self.append_audit(audit)?;
            return Ok(CommandResult::Rejected { reason });
        }
        for prefix in REPLACED {
            for (k, _) in self.scan_prefix(prefix)? {
                self.writes.insert(k, None);
            }
        }
        // The key and byte counts are taken from the data itself, not from the backup's
        // bookkeeping pairs, so they cannot disagree with it (a count below the data
        // underflows when keys are later deleted).
        let (mut keys, mut bytes) = (0u64, 0u64);
        for (staged, v) in staged {
            self.writes.insert(staged.clone(), None);
            let k = staged[STAGE_PREFIX.len()..].to_vec();
            if let Some(user_key) = k.strip_prefix(DATA_PREFIX) {
                keys += 1;
                bytes += (user_key.len() + v.len()) as u64;
            }
            // API keys (and everything else not listed) are never taken from a backup.
            if REPLACED.iter().any(|p| k.starts_with(p)) {
                self.writes.insert(k, Some(v));
            }
        }
        self.writes.insert(KEY_RESTORE.to_vec(), None);
        for (k, _) in marks {
            self.writes.insert(k, None);
        }
        self.stats.keys = keys;
        self.stats.bytes = bytes;
        self.keys_changed = true;
        self.note("restore_committed", format!("{} ({keys} keys)", s.source));
        audit.result = format!("ok: {keys} keys, {bytes} bytes");
        self.append_audit(audit)?;
        Ok(CommandResult::Restored { keys })
    }

    /// Why a backup of cluster `origin` ("": it names none) may not be restored here
    /// without `allow_foreign`; None when it is this cluster's own.
    fn foreign(&self, id: &str, origin: &str) -> IoResult<Option<String>> {
        let ours = self
            .get(KEY_CLUSTER_ID)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        if !origin.is_empty() && origin == ours {
            return Ok(None);
        }
        let here = if ours.is_empty() {
            "this cluster has no id".to_string()
        } else {
            format!("this is cluster {ours}")
        };
        let taken = if origin.is_empty() {
            "does not say which cluster it was taken on".to_string()
        } else {
            format!("was taken on cluster {origin}")
        };
        Ok(Some(format!(
            "restore {id}: the backup {taken}; {here}. Restoring it replaces this cluster's data with the other cluster's (its API keys are never imported); nothing was changed, start the restore again with --allow-foreign-cluster if that is what you want"
        )))
    }

    fn staging(&self, id: &str) -> IoResult<Option<Staging>> {
        Ok(self
            .get_decoded::<Staging>(KEY_RESTORE)?
            .filter(|s| s.id == id))
    }

    /// Every pair under `prefix` as this batch sees it: the tree, overlaid with the batch's
    /// own pending writes.
    fn scan_prefix(&self, prefix: &[u8]) -> IoResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut seen = std::collections::BTreeMap::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item.map_err(crate::store::io_error)?;
            seen.insert(k.to_vec(), v.to_vec());
        }
        for (k, v) in self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match v {
                Some(v) => seen.insert(k.clone(), v.clone()),
                None => seen.remove(k),
            };
        }
        Ok(seen.into_iter().collect())
    }
}

fn not_staging(id: &str) -> CommandResult {
    CommandResult::Rejected {
        reason: format!(
            "restore {id} is not being staged (another restore started since, or it never began); start the restore again"
        ),
    }
}
