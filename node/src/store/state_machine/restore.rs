//! Restoring a backup through the log: `RestoreBegin` hands out a fresh data generation
//! (see [`super::generations`]), `RestoreChunk`s write the backup's data straight into it
//! (invisible to reads, which use the current generation), and `RestoreCommit` makes it the
//! current one. The commit writes only a few records (the generation numbers, the quotas
//! and usage, the counts, the audit record) whatever the backup's size, in the same atomic
//! sled batch as the applied index; the replaced generation is deleted afterwards by the
//! janitor, in bounded steps. Chunks may arrive in any order (a client keeps several in
//! flight): each is staged once, marked by its sequence number, and the commit checks that
//! chunks `0..chunks` all came. Every node applies the same entries, so every node ends with
//! the same state; a leader that dies mid-restore leaves the staged generation unused and
//! the old data in place, and a newer `RestoreBegin` abandons it to the janitor.
//!
//! What the commit takes from the backup and what it keeps:
//! - user data (`d/`), tenant quotas (`q/`) and usage (`u/`), and the key/byte counts: the
//!   backup's, exactly (quotas and usage describe the data, so they travel with it; the
//!   counts are taken from the data itself as it is staged);
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

use super::generations::{chunk_mark, data_prefix, staged_record, staged_records, Generations};
use super::{
    IoResult, Overlay, DATA_PREFIX, KEY_CLUSTER_ID, KEY_RESTORE, QUOTA_PREFIX, USAGE_PREFIX,
};
use crate::security::audit::AuditRecord;
use crate::security::quota::{Quota, Usage};
use crate::store::decode;
use crate::types::CommandResult;

/// Records a restore replaces with the backup's (besides the data).
const REPLACED: [&[u8]; 2] = [QUOTA_PREFIX, USAGE_PREFIX];

/// The restore being staged (`m/restore`; in snapshots too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Staging {
    id: String,
    /// Chunks staged (each sequence number once), and the highest sequence number seen.
    chunks: u64,
    max_seq: u64,
    /// Pairs the chunks carried, and the user keys and their bytes staged from them.
    pairs: u64,
    keys: u64,
    bytes: u64,
    source: String,
    /// The cluster the backup's manifest names ("" when none).
    backup_cluster: String,
    /// The cluster the backup's own `m/cluster_id` pair names, once a chunk carried it.
    payload_cluster: Option<String>,
    allow_foreign: bool,
}

/// Whether `bytes` is a staging record this release can carry on with (a snapshot of an
/// older release may hold one of another shape: that restore has to be started again).
pub(super) fn readable_staging(bytes: &[u8]) -> bool {
    decode::<Staging>(bytes).is_ok()
}

/// The restore a staging record describes, and how many chunks it has staged: what the
/// leader watches to give up a restore whose client went away.
pub(super) fn staging_progress(bytes: &[u8]) -> Option<(String, u64)> {
    decode::<Staging>(bytes).ok().map(|s| (s.id, s.chunks))
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
        if let Some(s) = self.staging_record()? {
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
        // A fresh generation: what an unfinished restore staged is abandoned to the janitor.
        let gen = self.gens.next;
        let Some(next) = gen.checked_add(1) else {
            return Ok(CommandResult::Rejected {
                reason: "no data generation is left to stage a restore in".into(),
            });
        };
        self.set_generations(Generations {
            staging: Some(gen),
            next,
            ..self.gens
        })?;
        self.note("restore_started", source.clone());
        self.put_encoded(
            KEY_RESTORE.to_vec(),
            &Staging {
                id,
                chunks: 0,
                max_seq: 0,
                pairs: 0,
                keys: 0,
                bytes: 0,
                source,
                backup_cluster,
                payload_cluster: None,
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
        let (Some(mut s), Some(gen)) = (self.staging(id)?, self.gens.staging) else {
            return Ok(not_staging(id));
        };
        let mark = chunk_mark(gen, seq);
        if self.get(&mark)?.is_some() {
            return Ok(CommandResult::Done); // a retried chunk, already staged
        }
        // The backup's own record of its cluster, whatever the client declared: refused
        // here already, so a client that did not check stops early.
        if let Some((_, origin)) = pairs.iter().find(|(k, _)| k.as_slice() == KEY_CLUSTER_ID) {
            let origin = String::from_utf8_lossy(origin).into_owned();
            if !s.allow_foreign {
                if let Some(reason) = self.foreign(id, &origin)? {
                    return Ok(CommandResult::Rejected { reason });
                }
            }
            s.payload_cluster = Some(origin);
        }
        self.set(mark, Some(Vec::new()))?;
        s.chunks = s.chunks.saturating_add(1);
        s.max_seq = s.max_seq.max(seq);
        s.pairs = s.pairs.saturating_add(pairs.len() as u64);
        let prefix = data_prefix(gen);
        for (k, v) in pairs {
            if let Some(user_key) = k.strip_prefix(DATA_PREFIX) {
                let staged = [&prefix[..], user_key].concat();
                // A key staged twice (a hand-made backup) is counted once, as it is stored.
                if let Some(old) = self.get(&staged)? {
                    s.keys = s.keys.saturating_sub(1);
                    s.bytes = s.bytes.saturating_sub((user_key.len() + old.len()) as u64);
                }
                s.keys = s.keys.saturating_add(1);
                s.bytes = s.bytes.saturating_add((user_key.len() + v.len()) as u64);
                self.set(staged, Some(v))?;
            } else if REPLACED.iter().any(|p| k.starts_with(p)) {
                self.set(staged_record(gen, &k), Some(v))?;
            }
            // Anything else (API keys, the audit trail, bookkeeping) is never restored.
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
        index: u64,
    ) -> IoResult<CommandResult> {
        let (Some(s), Some(gen)) = (self.staging(id)?, self.gens.staging) else {
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
        // Each sequence number is staged once, so `chunks` of them, none above
        // `chunks - 1`, are exactly 0..chunks.
        let all_came = s.chunks == chunks && (chunks == 0 || s.max_seq < chunks);
        let mut refusal = (s.pairs != pairs || !all_came).then(|| format!(
            "restore {id}: {} chunks with {} pairs were staged, the backup has {chunks} with {pairs}; nothing was changed, start the restore again",
            s.chunks, s.pairs
        ));
        if refusal.is_none() && !s.allow_foreign {
            let origin = s.payload_cluster.as_deref().unwrap_or(&s.backup_cluster);
            refusal = self.foreign(id, origin)?;
        }
        // The backup's records are checked before anything is swapped: its checksums say
        // the file is as written, not that what was written can be read (a forged file, a
        // chunk sent by hand, another release's format). There are a few per tenant.
        let records = self.scan_prefix(&staged_records(gen))?;
        let from = staged_records(gen).len();
        if refusal.is_none() {
            if let Some(why) = records.iter().find_map(|(k, v)| unreadable(&k[from..], v)) {
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
                self.set(k, None)?;
            }
        }
        for (k, v) in records {
            self.set(k[from..].to_vec(), Some(v))?;
        }
        // The switch: the staged generation is current from this batch on; the one it
        // replaces (and the staging's markers and records) are the janitor's.
        self.set_generations(Generations {
            current: gen,
            staging: None,
            ..self.gens
        })?;
        self.set(KEY_RESTORE.to_vec(), None)?;
        self.stats.keys = s.keys;
        self.stats.bytes = s.bytes;
        self.keys_changed = true;
        self.note(
            "restore_committed",
            format!("{} ({} keys)", s.source, s.keys),
        );
        audit.result = format!("ok: {} keys, {} bytes", s.keys, s.bytes);
        self.append_audit(audit)?;
        Ok(CommandResult::Restored {
            keys: s.keys,
            index,
        })
    }

    /// Drops the restore being staged if it is still `id` (a newer one, or a commit, got
    /// there first otherwise): the data in use is untouched, the staged generation, its
    /// chunk marks and records become the janitor's, and the audit trail says why.
    pub(super) fn restore_abandon(
        &mut self,
        id: &str,
        actor: String,
        at_ms: i64,
        reason: String,
    ) -> IoResult<CommandResult> {
        let (Some(s), Some(_)) = (self.staging(id)?, self.gens.staging) else {
            return Ok(not_staging(id));
        };
        self.set_generations(Generations {
            staging: None,
            ..self.gens
        })?;
        self.set(KEY_RESTORE.to_vec(), None)?;
        self.note("restore_abandoned", format!("{}: {reason}", s.source));
        self.append_audit(AuditRecord {
            seq: 0,
            at_ms,
            actor,
            action: "restore_abandon".into(),
            args: format!("id={id} {}", s.source),
            result: format!("abandoned after {} chunks: {reason}", s.chunks),
        })?;
        Ok(CommandResult::Done)
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

    /// The staging record, if there is one this release can read (one of an older release,
    /// from its snapshot, counts as none: that restore has to start again).
    fn staging_record(&self) -> IoResult<Option<Staging>> {
        Ok(self.get(KEY_RESTORE)?.and_then(|v| decode(&v).ok()))
    }

    fn staging(&self, id: &str) -> IoResult<Option<Staging>> {
        Ok(self.staging_record()?.filter(|s| s.id == id))
    }

    /// Every pair under `prefix` as this batch sees it: the tree, overlaid with the batch's
    /// own pending writes. Only for small prefixes (quotas, usage, staged records).
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
