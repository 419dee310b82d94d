//! The replicated state machine on sled: tree `sm` holds the ledger's data (in
//! generations, [`generations`]: `d/` or `g/N…`; snapshots call it `d/`), API keys under
//! `k/`, tenant quotas under `q/` and their usage under `u/`, the audit trail under `a/`, and
//! bookkeeping under `m/`; the last built or installed snapshot is a file
//! ([`super::snapshot_file`]). Snapshots (and so backups) hold key hashes, never secrets.
//! A thread of its own ([`janitor`]) deletes data generations nothing uses any more.
//!
//! Committed entries are applied in batches: every command of every entry handed to one
//! `apply` call is folded into one atomic sled batch. A snapshot is a frozen view of the
//! tree (copy-on-write, [`super::freeze`]) scanned into a file while applying goes on;
//! installing one streams the file into the tree. Neither holds more than a few MiB of it
//! in memory, and both run on the blocking pool so they never stall the async workers that
//! carry client requests and heartbeats.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use tokio::fs::File as SnapshotFile;

use super::digest::{Digest, DigestRing, DigestState, Held, Lookup, Part};
use super::freeze::{self, Freeze, Freezes};
use super::housekeeping::{Housekeeping, SnapshotRecord};
use super::{decode, encode, snapshot_file};
use crate::clock::unix_millis;
use crate::merkle::Proof;
use crate::security::audit::AuditRecord;
use crate::security::keys::{KeyRecord, KeyRegistry, Role};
use crate::security::quota::{tenant_of, Quota, Usage};
use crate::types::{
    validate_entry, AdminAction, BackupCheck, Command, CommandResult, Entry, LogId, Response,
    Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig, WritesPause,
};

const KEY_APPLIED: &[u8] = b"m/applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_KEYS: &[u8] = b"m/keys";
const KEY_BYTES: &[u8] = b"m/bytes";
const KEY_CLUSTER_ID: &[u8] = b"m/cluster_id";
const KEY_AUDIT_SEQ: &[u8] = b"m/audit_seq";
/// When the last backup was streamed out (from its `backup` audit record).
const KEY_LAST_BACKUP: &[u8] = b"m/last_backup";
/// The last backup's checksum and verification ([`BackupCheck`]).
const KEY_BACKUP_CHECK: &[u8] = b"m/backup_check";
/// Writes paused (maintenance mode): a [`WritesPause`], absent when writes are accepted.
/// In snapshots (so installs, backups and restarts carry it), outside the digest.
const KEY_WRITES_PAUSED: &[u8] = b"m/writes_paused";
/// The restore being staged (see [`restore`]).
const KEY_RESTORE: &[u8] = b"m/restore";
/// The state digest's sums and the applied index they are at (see [`super::digest`]);
/// written in every apply's batch. In snapshots (so a backup's payload carries the digest
/// of exactly the state it holds), never installed: an installer computes its own.
const KEY_DIGEST: &[u8] = b"m/digest";
const APIKEY_PREFIX: &[u8] = b"k/";
const QUOTA_PREFIX: &[u8] = b"q/";
const USAGE_PREFIX: &[u8] = b"u/";
const AUDIT_PREFIX: &[u8] = b"a/";
/// Audit records kept; older ones are dropped as new ones arrive.
pub const AUDIT_KEEP: u64 = 10_000;

fn prefixed(prefix: &[u8], name: &str) -> Vec<u8> {
    [prefix, name.as_bytes()].concat()
}

fn audit_key(seq: u64) -> Vec<u8> {
    [AUDIT_PREFIX, &seq.to_be_bytes()].concat()
}

/// Every value under `prefix`, decoded, in key order.
fn decode_prefix<T: DeserializeOwned>(
    tree: &sled::Tree,
    prefix: &[u8],
) -> Result<Vec<(String, T)>, std::io::Error> {
    tree.scan_prefix(prefix)
        .map(|item| {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            Ok((name, decode(&v)?))
        })
        .collect()
}

/// A tenant's limits (if any) and usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub tenant: String,
    pub quota: Option<Quota>,
    pub usage: Usage,
}

fn data_key(prefix: &[u8], key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + key.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Pairs per sled batch when a snapshot is loaded, and per scan step when one is built.
const SNAPSHOT_BATCH_KEYS: usize = 4096;
/// Bytes per sled batch when a snapshot is loaded, and per scan step when one is built: the
/// most of a snapshot in memory at once.
const SNAPSHOT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Key-value pairs in key order.
pub type KeyValues = Vec<(String, Vec<u8>)>;

/// Figures about the stored data, cheap to read at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStats {
    pub keys: u64,
    pub bytes: u64,
}

/// A cloneable read handle on the state machine's data, used by the API layer.
#[derive(Clone)]
pub struct KvReader {
    tree: sled::Tree,
    applied_index: Arc<AtomicU64>,
    /// The data generation reads use; each read holds it to its end.
    current: Arc<Current>,
    digests: Arc<DigestRing>,
    merkle: Option<Arc<Mutex<MerkleIndex>>>,
}

impl KvReader {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sled::Error> {
        let slot = self.current.get();
        Ok(self
            .tree
            .get(data_key(&slot.prefix, key))?
            .map(|v| v.to_vec()))
    }

    /// Up to `limit` pairs whose key starts with `prefix`, in key order; the flag says
    /// whether more were left out.
    pub fn scan(&self, prefix: &str, limit: usize) -> Result<(KeyValues, bool), sled::Error> {
        let slot = self.current.get();
        let mut items = Vec::new();
        for item in self.tree.scan_prefix(data_key(&slot.prefix, prefix)) {
            let (k, v) = item?;
            if items.len() == limit {
                return Ok((items, true));
            }
            let key = String::from_utf8_lossy(&k[slot.prefix.len()..]).into_owned();
            items.push((key, v.to_vec()));
        }
        Ok((items, false))
    }

    pub fn stats(&self) -> DataStats {
        DataStats {
            keys: read_u64(&self.tree, KEY_KEYS),
            bytes: read_u64(&self.tree, KEY_BYTES),
        }
    }

    pub fn cluster_id(&self) -> String {
        match self.tree.get(KEY_CLUSTER_ID) {
            Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
            _ => String::new(),
        }
    }

    /// The restore being staged, if any: its id and the chunks staged so far.
    pub fn restore_staging(&self) -> Option<(String, u64)> {
        match self.tree.get(KEY_RESTORE) {
            Ok(Some(v)) => restore::staging_progress(&v),
            _ => None,
        }
    }

    /// The pause of client writes in effect, if any (see `AdminAction::PauseWrites`).
    pub fn writes_pause(&self) -> Option<WritesPause> {
        match self.tree.get(KEY_WRITES_PAUSED) {
            Ok(Some(v)) => decode(&v).ok(),
            _ => None,
        }
    }

    /// When the last backup was streamed out of this cluster.
    pub fn last_backup_ms(&self) -> Option<i64> {
        match self.tree.get(KEY_LAST_BACKUP) {
            Ok(Some(v)) => v.as_ref().try_into().ok().map(i64::from_be_bytes),
            _ => None,
        }
    }

    /// When a client verified the last backup (None: not verified, or no backup).
    pub fn last_backup_verified_ms(&self) -> Option<i64> {
        self.backup_check().and_then(|c| c.verified_ms)
    }

    /// The last backup's checksum and verification.
    pub fn backup_check(&self) -> Option<BackupCheck> {
        match self.tree.get(KEY_BACKUP_CHECK) {
            Ok(Some(v)) => decode(&v).ok(),
            _ => None,
        }
    }

    /// The state digest at `index` (None: the newest), from the ring of recent entries.
    pub fn digest(&self, index: Option<u64>) -> Lookup {
        self.digests.lookup(index)
    }

    /// The indexes whose digest the ring holds, oldest and newest.
    pub fn digests_held(&self) -> Option<(u64, u64)> {
        self.digests.held()
    }

    /// The newest held digest at an index that is a multiple of `step`.
    pub fn digest_checkpoint(&self, step: u64) -> Option<(u64, Digest)> {
        self.digests.checkpoint(step)
    }

    /// `key`'s value (in the proof; none: absent) with its Merkle proof at the applied index, read under
    /// the index's lock so no apply lands in between. None: the node keeps no digest.
    pub fn proof(&self, key: &str) -> Result<Option<Proof>, std::io::Error> {
        let Some(merkle) = &self.merkle else {
            return Ok(None);
        };
        let index = lock(merkle);
        let value = self.get(key).map_err(super::io_error)?;
        Ok(Some(index.proof(
            key,
            value.as_deref(),
            self.applied_index(),
        )?))
    }

    /// Writes the Merkle index's changes that wait in memory (a stopping node does, so its
    /// next start need not rebuild the index).
    pub fn write_merkle_index(&self) -> Result<(), std::io::Error> {
        match &self.merkle {
            Some(m) => lock(m).write(),
            None => Ok(()),
        }
    }

    /// Index of the last applied log entry (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// Every API key record (hashes only), by id.
    pub fn api_keys(&self) -> Result<Vec<KeyRecord>, std::io::Error> {
        Ok(decode_prefix(&self.tree, APIKEY_PREFIX)?
            .into_iter()
            .map(|(_, k)| k)
            .collect())
    }

    /// Every tenant with data or a quota, by name.
    pub fn tenants(&self) -> Result<Vec<TenantInfo>, std::io::Error> {
        let mut out: BTreeMap<String, TenantInfo> = BTreeMap::new();
        for (tenant, usage) in decode_prefix::<Usage>(&self.tree, USAGE_PREFIX)? {
            out.insert(
                tenant.clone(),
                TenantInfo {
                    tenant,
                    quota: None,
                    usage,
                },
            );
        }
        for (tenant, quota) in decode_prefix::<Quota>(&self.tree, QUOTA_PREFIX)? {
            out.entry(tenant.clone())
                .or_insert_with(|| TenantInfo {
                    tenant,
                    quota: None,
                    usage: Usage::default(),
                })
                .quota = Some(quota);
        }
        Ok(out.into_values().collect())
    }

    /// The most recent `limit` audit records, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, std::io::Error> {
        let mut records = Vec::new();
        for item in self.tree.scan_prefix(AUDIT_PREFIX).rev().take(limit) {
            let (_, v) = item?;
            records.push(decode(&v)?);
        }
        records.reverse();
        Ok(records)
    }
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> u64 {
    match tree.get(key) {
        Ok(Some(v)) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v);
            u64::from_be_bytes(b)
        }
        _ => 0,
    }
}

/// Where the state machine publishes the events its commands cause (keys created, rotated
/// or revoked, quota changes and violations, admin actions) once their batch is durable;
/// telemetry's event hub is one. A trait, so the store needs nothing from telemetry.
pub trait EventSink: Send + Sync {
    /// An event of `kind` (see `telemetry::events::ClusterEvent`) caused by entry `at`.
    fn applied(&self, at: LogId, kind: &'static str, detail: String);
}

/// The state machine handed to openraft.
pub struct StateMachine {
    db: sled::Db,
    tree: sled::Tree,
    /// Snapshots being built: the copy-on-write views applies must respect.
    freezes: Arc<Freezes>,
    /// Keys per scan step of a snapshot build (small in tests, to interleave with applies).
    scan_batch_keys: usize,
    snapshot_path: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    applied_index: Arc<AtomicU64>,
    snapshot_seq: u64,
    keys: KeyRegistry,
    housekeeping: Arc<Housekeeping>,
    /// Where key, quota and violation events go once applied (every node publishes them).
    events: Option<Arc<dyn EventSink>>,
    gens: Generations,
    current: Arc<Current>,
    /// Held by a janitor step, by a snapshot install, and by an apply that switches
    /// generations (taken before the freezes' lock, always in that order).
    exclusive: Arc<Mutex<()>>,
    cleanup_step_keys: Arc<AtomicUsize>,
    cleanup_step_pause_ms: Arc<AtomicU64>,
    /// Started once the tree is consistent (after an interrupted install is finished).
    janitor: Option<Janitor>,
    /// The state digest as of `applied` (None: turned off), and the recent ones.
    digest: Option<DigestState>,
    digests: Arc<DigestRing>,
    /// The Merkle index of the data (None: the digest is turned off). Held across each
    /// apply, so a proof reads the data, the index and the tree of one applied index.
    merkle: Option<Arc<Mutex<MerkleIndex>>>,
}

/// `OPSDECK_DIGEST=off` turns the state digest off, for measuring what it costs (see
/// BENCHMARKS.md); the stored one is then dropped, so a later start recomputes it.
pub fn digest_turned_off() -> bool {
    std::env::var("OPSDECK_DIGEST").is_ok_and(|v| v == "off")
}

impl StateMachine {
    pub fn open(
        db: &sled::Db,
        snapshot_path: PathBuf,
        housekeeping: Arc<Housekeeping>,
    ) -> Result<StateMachine, std::io::Error> {
        let tree = db.open_tree("sm").map_err(super::io_error)?;
        let applied: Option<LogId> = match tree.get(KEY_APPLIED).map_err(super::io_error)? {
            Some(v) => decode(&v)?,
            None => None,
        };
        let membership: StoredMembership =
            match tree.get(KEY_MEMBERSHIP).map_err(super::io_error)? {
                Some(v) => decode(&v)?,
                None => StoredMembership::default(),
            };
        let dropped = freeze::drop_leftovers(db)?;
        if dropped > 0 {
            tracing::info!(
                trees = dropped,
                "dropped the copy-on-write trees of snapshot builds a stop interrupted"
            );
        }
        for side in snapshot_file::leftovers(&snapshot_path) {
            tracing::info!(file = %side.display(), "removing a snapshot file a stop left half-written");
            std::fs::remove_file(&side)?;
        }
        let gens = Generations::load(&tree)?;
        let mut sm = StateMachine {
            db: db.clone(),
            current: Arc::new(Current::new(gens.current)),
            gens,
            exclusive: Arc::new(Mutex::new(())),
            cleanup_step_keys: Arc::new(AtomicUsize::new(janitor::STEP_KEYS)),
            cleanup_step_pause_ms: Arc::new(AtomicU64::new(0)),
            janitor: None,
            tree,
            freezes: Arc::new(Freezes::default()),
            scan_batch_keys: SNAPSHOT_BATCH_KEYS,
            snapshot_path,
            applied,
            membership,
            applied_index: Arc::new(AtomicU64::new(applied.map(|l| l.index).unwrap_or(0))),
            snapshot_seq: 0,
            keys: KeyRegistry::default(),
            housekeeping,
            events: None,
            digest: None,
            digests: Arc::new(DigestRing::new(digest_turned_off())),
            merkle: None,
        };
        // A crash while installing a snapshot leaves the snapshot stored but the data only
        // partly replaced; finish the install now (openraft does not re-install on start).
        if let Some((meta, bytes)) = snapshot_file::read_meta(&sm.snapshot_path)? {
            sm.housekeeping.record_snapshot(SnapshotRecord {
                index: meta.last_log_id.map(|l| l.index),
                bytes,
                millis: 0,
                unix_ms: file_mtime_ms(&sm.snapshot_path),
            });
            if meta.last_log_id > sm.applied {
                tracing::warn!(snapshot = ?meta.last_log_id, applied = ?sm.applied, "finishing an interrupted snapshot install");
                sm.load_snapshot(&meta)?;
            }
        }
        if !sm.digests.is_off() {
            let applied = sm.applied.map(|l| l.index).unwrap_or(0);
            let index = MerkleIndex::open(db, &sm.tree, sm.gens.current, sm.gens.staging, applied)?;
            sm.merkle = Some(Arc::new(Mutex::new(index)));
        }
        sm.open_digest()?;
        sm.reload_keys()?;
        sm.janitor = Some(Janitor::start(janitor::Context {
            tree: sm.tree.clone(),
            freezes: sm.freezes.clone(),
            current: sm.current.clone(),
            exclusive: sm.exclusive.clone(),
            step_keys: sm.cleanup_step_keys.clone(),
            step_pause_ms: sm.cleanup_step_pause_ms.clone(),
        })?);
        Ok(sm)
    }

    /// Takes the stored digest, or computes it by a scan when there is none for the
    /// applied index (a data dir from before digests, or one an older build applied to).
    fn open_digest(&mut self) -> Result<(), std::io::Error> {
        let index = self.applied.map(|l| l.index).unwrap_or(0);
        if self.digests.is_off() {
            self.tree.remove(KEY_DIGEST).map_err(super::io_error)?;
            self.digest = None;
            tracing::warn!("the state digest is turned off (OPSDECK_DIGEST=off): replicas cannot be checked against each other on this node");
            return Ok(());
        }
        let stored = self.tree.get(KEY_DIGEST).map_err(super::io_error)?;
        let state = match stored.as_deref().and_then(DigestState::decode) {
            Some(s) if s.index == index => s,
            found => {
                let started = std::time::Instant::now();
                let (state, pairs) = scan_digest(&self.tree, &self.gens, index)?;
                self.tree
                    .insert(KEY_DIGEST, state.encode())
                    .map_err(super::io_error)?;
                self.tree.flush().map_err(super::io_error)?;
                if pairs > 0 || found.is_some() {
                    tracing::info!(
                        pairs,
                        index,
                        stale = found.is_some(),
                        took_ms = started.elapsed().as_millis() as u64,
                        "computed the state digest by a full scan (data dir format upgrade: it had none for its applied index)"
                    );
                }
                state
            }
        };
        self.digest = Some(state);
        self.digests.reset(Held::of(&state, self.merkle_root()));
        Ok(())
    }

    /// Keys per cleanup step of the janitor, and a pause after each; tests make the steps
    /// small and slow to stop a node mid-way.
    #[doc(hidden)]
    pub fn set_cleanup_steps(&self, keys: usize, pause: std::time::Duration) {
        self.cleanup_step_keys.store(keys.max(1), Ordering::Relaxed);
        let ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.cleanup_step_pause_ms.store(ms, Ordering::Relaxed);
    }

    /// The Merkle root of the current data (zero when the digest is off).
    fn merkle_root(&self) -> Digest {
        self.merkle
            .as_ref()
            .map(|m| Digest(lock(m).root()))
            .unwrap_or_default()
    }

    pub fn publish_events_to(&mut self, sink: Arc<dyn EventSink>) {
        self.events = Some(sink);
    }

    /// The API keys the request check uses; kept current as key commands are applied.
    pub fn key_registry(&self) -> KeyRegistry {
        self.keys.clone()
    }

    fn reload_keys(&self) -> Result<(), std::io::Error> {
        self.keys.replace(self.reader().api_keys()?);
        Ok(())
    }

    pub fn reader(&self) -> KvReader {
        KvReader {
            tree: self.tree.clone(),
            applied_index: self.applied_index.clone(),
            current: self.current.clone(),
            digests: self.digests.clone(),
            merkle: self.merkle.clone(),
        }
    }

    /// Keys per scan step of snapshot builds; tests make it small so applies interleave.
    #[doc(hidden)]
    pub fn set_snapshot_scan_batch(&mut self, keys: usize) {
        self.scan_batch_keys = keys.max(1);
    }

    /// Replaces all data with the stored snapshot's (see [`load_tree`]) and takes its
    /// applied id and membership. Blocking: `open` calls it directly, `install_snapshot`
    /// runs the load on the blocking pool first and then [`Self::loaded`].
    fn load_snapshot(&mut self, meta: &SnapshotMeta) -> Result<(), std::io::Error> {
        let digest = {
            let exclusive = self.exclusive.clone();
            let _exclusive = lock(&exclusive);
            self.freezes.wait_idle();
            load_tree(
                &self.tree,
                &self.snapshot_path,
                meta,
                !self.digests.is_off(),
            )?
        };
        self.loaded(meta, digest)
    }

    /// The in-memory state after the tree was loaded from the snapshot `meta` describes
    /// (with the digest the load computed).
    fn loaded(
        &mut self,
        meta: &SnapshotMeta,
        digest: Option<DigestState>,
    ) -> Result<(), std::io::Error> {
        if let Some(d) = digest {
            self.digests.reset(Held::of(&d, self.merkle_root()));
        }
        self.digest = digest;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_index.store(
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
            Ordering::Release,
        );
        self.gens = Generations::load(&self.tree)?;
        self.current.switch(self.gens.current);
        if let Some(j) = &self.janitor {
            j.wake();
        }
        self.reload_keys()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replaces every pair of `tree` with those of the snapshot file at `path` (already
/// checked), streamed in bounded batches, in the layout of [`Generations::installed`]. The
/// applied id is written last: a crash in between leaves a tree without one (it is cleared
/// first), which `StateMachine::open` detects and finishes. No snapshot build may be in
/// progress (their views read `tree`), nor a janitor step (the caller holds `exclusive`).
/// The digest of what it loads is summed as it goes and written with the applied id
/// (`digest`: unless turned off).
fn load_tree(
    tree: &sled::Tree,
    path: &std::path::Path,
    meta: &SnapshotMeta,
    digest: bool,
) -> std::io::Result<Option<DigestState>> {
    tree.clear().map_err(super::io_error)?;
    let (_, pairs) = snapshot_file::pairs(path)?;
    let (mut batch, mut bytes, mut keys) = (sled::Batch::default(), 0usize, 0usize);
    let mut staged = false;
    // Summed as if a restore were staged; dropped at the end if none is.
    let as_installed = Generations::installed(true);
    let mut sums = DigestState {
        index: meta.last_log_id.map(|l| l.index).unwrap_or(0),
        staged: Some(Digest::ZERO),
        ..DigestState::default()
    };
    // What the snapshot says it holds (snapshots of older builds carry none).
    let mut carried = None;
    for pair in pairs {
        let (k, v) = pair?;
        if k == KEY_RESTORE {
            staged = restore::readable_staging(&v);
        }
        if k == KEY_DIGEST {
            carried = DigestState::decode(&v);
        }
        let Some(k) = generations::installed_name(&k) else {
            continue;
        };
        if digest {
            if let Some((part, name)) = covered(&k, &as_installed) {
                sums.change(part, &name, None, Some(&v));
            }
        }
        bytes += k.len() + v.len();
        keys += 1;
        batch.insert(k, v);
        if keys >= SNAPSHOT_BATCH_KEYS || bytes >= SNAPSHOT_BATCH_BYTES {
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(super::io_error)?;
            (bytes, keys) = (0, 0);
        }
    }
    let membership =
        StoredMembership::new(meta.last_log_id, meta.last_membership.membership().clone());
    for (k, v) in Generations::installed(staged).records() {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    batch.insert(KEY_MEMBERSHIP, encode(&membership)?);
    batch.insert(KEY_APPLIED, encode(&meta.last_log_id)?);
    if !staged {
        sums.staged = None;
    }
    let sums = digest.then_some(sums);
    if let (Some(d), Some(c)) = (&sums, &carried) {
        if (d.index, d.total()) != (c.index, c.total()) {
            // Kept (the log is the truth, and `opsdeck check` will name this node if it
            // differs), but said: the sender's state and what arrived are not the same.
            tracing::error!(
                snapshot = %meta.snapshot_id,
                loaded = %d.total().hex(),
                carried = %c.total().hex(),
                "the installed snapshot's pairs do not sum to the digest it carries"
            );
        }
    }
    if let Some(d) = &sums {
        batch.insert(KEY_DIGEST, d.encode());
    }
    tree.apply_batch(batch).map_err(super::io_error)?;
    Ok(sums)
}

mod generations;
mod janitor;
mod merkle_index;
mod restore;

use merkle_index::MerkleIndex;

use generations::{Current, Generations, DATA_PREFIX};

/// Whether the digest covers `key` with generations `gens`, in which sum, and under what
/// name: data as `d/KEY` whatever its generation, so nodes that number generations
/// differently (and a staged restore before and after its commit) agree.
fn covered<'k>(key: &'k [u8], gens: &Generations) -> Option<(Part, Cow<'k, [u8]>)> {
    let named = |user: &'k [u8]| {
        if key.len() == DATA_PREFIX.len() + user.len() && key.starts_with(DATA_PREFIX) {
            Cow::Borrowed(key)
        } else {
            Cow::Owned([DATA_PREFIX, user].concat())
        }
    };
    if let Some(user) = generations::user_key(gens.current, key) {
        return Some((Part::Data, named(user)));
    }
    if let Some(user) = gens.staging.and_then(|g| generations::user_key(g, key)) {
        return Some((Part::Staged, named(user)));
    }
    // Records are stored under their own names; `d/` here is a generation not current.
    match crate::sums::part_of(key) {
        Some(part @ (Part::Tenants | Part::Records)) => Some((part, Cow::Borrowed(key))),
        _ => None,
    }
}

/// The digest of `tree` by a full scan (a data dir without a stored one).
fn scan_digest(tree: &sled::Tree, gens: &Generations, index: u64) -> IoResult<(DigestState, u64)> {
    let mut state = DigestState {
        index,
        staged: gens.staging.map(|_| Digest::ZERO),
        ..DigestState::default()
    };
    let mut prefixes: Vec<Vec<u8>> = crate::sums::record_prefixes().map(<[u8]>::to_vec).collect();
    prefixes.push(generations::data_prefix(gens.current));
    prefixes.extend(gens.staging.map(generations::data_prefix));
    let mut pairs = 0u64;
    for prefix in prefixes {
        for item in tree.scan_prefix(&prefix) {
            let (k, v) = item.map_err(super::io_error)?;
            if let Some((part, name)) = covered(&k, gens) {
                state.change(part, &name, None, Some(&v));
                pairs += 1;
            }
        }
    }
    Ok((state, pairs))
}
use janitor::Janitor;

/// Pending writes of one `apply` call, read through before the tree so later commands in
/// the batch see earlier ones.
struct Overlay<'a> {
    tree: &'a sled::Tree,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    stats: DataStats,
    /// A key was created, rotated or revoked: the request check must reload them.
    keys_changed: bool,
    /// The entry being applied, and events its commands caused (published once the batch
    /// is durable).
    entry: Option<LogId>,
    events: Vec<(LogId, &'static str, String)>,
    /// The data generations as this batch has them (a restore's commit switches them), and
    /// the current one's key prefix.
    gens: Generations,
    data_prefix: Vec<u8>,
    /// The digest as this batch has it (None: turned off), and the Merkle index it keeps.
    digest: Option<DigestState>,
    merkle: Option<&'a mut MerkleIndex>,
    /// The pause of client writes as this batch has it.
    paused: Option<WritesPause>,
}

type IoResult<T> = Result<T, std::io::Error>;

impl Overlay<'_> {
    /// Where user key `key` lives now.
    fn data_key(&self, key: &str) -> Vec<u8> {
        data_key(&self.data_prefix, key)
    }

    /// Switches the generations from here on in this batch, and records them.
    fn set_generations(&mut self, gens: Generations) -> IoResult<()> {
        if let Some(m) = &mut self.merkle {
            m.switch(gens.current, gens.staging)?;
        }
        if let Some(d) = &mut self.digest {
            if gens.current != self.gens.current {
                // A restore's commit: its staged generation becomes the data.
                d.data = match self.gens.staging {
                    Some(s) if s == gens.current => d.staged.unwrap_or(Digest::ZERO),
                    _ => Digest::ZERO,
                };
            }
            if gens.staging != self.gens.staging {
                // A fresh generation is empty.
                d.staged = gens.staging.map(|_| Digest::ZERO);
            }
        }
        self.gens = gens;
        self.data_prefix = generations::data_prefix(gens.current);
        for (k, v) in gens.records() {
            self.writes.insert(k.to_vec(), v);
        }
        Ok(())
    }

    /// Writes (`Some`) or deletes (`None`) `key` in this batch, keeping the digest.
    fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> IoResult<()> {
        if self.digest.is_some() && covered(&key, &self.gens).is_some() {
            let old = self.get(&key)?;
            self.set_known(key, old.as_deref(), value);
        } else {
            self.writes.insert(key, value);
        }
        Ok(())
    }

    /// [`Self::set`] when the caller has just read the old value.
    fn set_known(&mut self, key: Vec<u8>, old: Option<&[u8]>, value: Option<Vec<u8>>) {
        if let Some(d) = &mut self.digest {
            if let Some((part, name)) = covered(&key, &self.gens) {
                d.change(part, &name, old, value.as_deref());
                let gen = match part {
                    Part::Data => Some(self.gens.current),
                    Part::Staged => self.gens.staging,
                    Part::Tenants | Part::Records => None,
                };
                if let (Some(m), Some(gen)) = (&mut self.merkle, gen) {
                    m.change(gen, &name[DATA_PREFIX.len()..], value.as_deref());
                }
            }
        }
        self.writes.insert(key, value);
    }

    fn get(&self, key: &[u8]) -> IoResult<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    fn get_decoded<T: DeserializeOwned>(&self, key: &[u8]) -> IoResult<Option<T>> {
        self.get(key)?.map(|v| decode(&v)).transpose()
    }

    fn put_encoded<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> IoResult<()> {
        self.set(key, Some(encode(value)?))?;
        Ok(())
    }

    /// Writes (`Some`) or deletes (`None`) a data key and keeps its tenant's usage. A write
    /// that would take the tenant past its quota changes nothing but the tenant's violation
    /// count, and comes back as `Err(reason)`.
    fn write(
        &mut self,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> IoResult<Result<Option<Vec<u8>>, String>> {
        let k = self.data_key(key);
        let old = self.get(&k)?;
        let size = |v: &Option<Vec<u8>>| v.as_ref().map(|v| (key.len() + v.len()) as u64);
        let (old_size, new_size) = (size(&old), size(&value));
        if let Some(tenant) = tenant_of(key) {
            let usage_key = prefixed(USAGE_PREFIX, tenant);
            let before: Usage = self.get_decoded(&usage_key)?.unwrap_or_default();
            let after = Usage {
                keys: (before.keys + new_size.is_some() as u64)
                    .saturating_sub(old_size.is_some() as u64),
                bytes: (before.bytes + new_size.unwrap_or(0)).saturating_sub(old_size.unwrap_or(0)),
                violations: before.violations,
            };
            if let Some(quota) = self.get_decoded::<Quota>(&prefixed(QUOTA_PREFIX, tenant))? {
                if let Err(reason) = quota.check(tenant, &before, &after) {
                    self.note("quota_violation", reason.clone());
                    let refused = Usage {
                        violations: before.violations + 1,
                        ..before
                    };
                    self.put_encoded(usage_key, &refused)?;
                    return Ok(Err(reason));
                }
            }
            self.put_encoded(usage_key, &after)?;
        }
        if let Some(old) = old_size {
            self.stats.keys -= 1;
            self.stats.bytes -= old;
        }
        if let Some(new) = new_size {
            self.stats.keys += 1;
            self.stats.bytes += new;
        }
        self.set_known(k, old.as_deref(), value);
        Ok(Ok(old))
    }

    fn note(&mut self, kind: &'static str, detail: String) {
        if let Some(at) = self.entry {
            self.events.push((at, kind, detail));
        }
    }

    fn append_audit(&mut self, mut record: AuditRecord) -> IoResult<()> {
        let seq = match self.get(KEY_AUDIT_SEQ)? {
            Some(v) if v.len() == 8 => {
                u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8]))
            }
            _ => 0,
        } + 1;
        record.seq = seq;
        self.put_encoded(audit_key(seq), &record)?;
        self.set(KEY_AUDIT_SEQ.to_vec(), Some(seq.to_be_bytes().to_vec()))?;
        if seq > AUDIT_KEEP {
            self.set(audit_key(seq - AUDIT_KEEP), None)?;
        }
        Ok(())
    }

    fn apply_command(&mut self, index: u64, cmd: Command) -> IoResult<CommandResult> {
        Ok(match cmd {
            Command::InitCluster { cluster_id } => {
                self.set(KEY_CLUSTER_ID.to_vec(), Some(cluster_id.into_bytes()))?;
                CommandResult::Done
            }
            // Refused by the replicated state alone, so every node decides alike; the
            // pause's expiry is an entry of its own (`ResumeWrites`), never a clock here.
            Command::Put { .. } | Command::Delete { .. } | Command::Cas { .. }
                if self.paused.is_some() =>
            {
                let reason = self.paused.as_ref().map(WritesPause::refusal);
                CommandResult::WritesPaused {
                    reason: reason.unwrap_or_default(),
                }
            }
            Command::Put { key, value } => {
                if let Err(reason) = validate_entry(&key, Some(&value)) {
                    return Ok(CommandResult::Rejected { reason });
                }
                match self.write(&key, Some(value))? {
                    Ok(_) => CommandResult::Put { revision: index },
                    Err(reason) => CommandResult::QuotaExceeded { reason },
                }
            }
            Command::Delete { key } => match self.write(&key, None)? {
                Ok(old) => CommandResult::Delete {
                    existed: old.is_some(),
                },
                Err(reason) => CommandResult::QuotaExceeded { reason },
            },
            Command::Cas { key, expected, new } => {
                if let Err(reason) = validate_entry(&key, new.as_deref()) {
                    return Ok(CommandResult::Rejected { reason });
                }
                let current = self.get(&self.data_key(&key))?;
                if current != expected {
                    return Ok(CommandResult::Cas {
                        succeeded: false,
                        current,
                    });
                }
                match self.write(&key, new)? {
                    Ok(_) => CommandResult::Cas {
                        succeeded: true,
                        current: None,
                    },
                    Err(reason) => CommandResult::QuotaExceeded { reason },
                }
            }
            Command::Admin {
                actor,
                at_ms,
                action,
            } => {
                let (name, args) = action.describe();
                if let AdminAction::ResumeWrites {
                    ending_since: Some(since),
                } = &action
                {
                    if self.paused.as_ref().map(|p| p.since_ms) != Some(*since) {
                        // An automatic resume for a pause already ended: nothing to do or
                        // audit (the leader may propose it twice around an election).
                        return Ok(CommandResult::Done);
                    }
                }
                let result = self.apply_admin(&actor, at_ms, action)?;
                if matches!(result, CommandResult::Done) {
                    let kind = match name {
                        "key.create" => "key_created",
                        "key.rotate" => "key_rotated",
                        "key.revoke" => "key_revoked",
                        "writes.pause" => "writes_paused",
                        "writes.resume" => "writes_resumed",
                        "backup.verify" => "backup_verified",
                        _ => "quota_changed",
                    };
                    let detail = match kind {
                        "writes_paused" | "writes_resumed" => {
                            format!("{name} by {actor} {args}").trim_end().to_string()
                        }
                        _ => args.clone(),
                    };
                    self.note(kind, detail);
                }
                let outcome = match &result {
                    CommandResult::Rejected { reason } | CommandResult::NotFound { reason } => {
                        format!("refused: {reason}")
                    }
                    _ => "ok".to_string(),
                };
                self.append_audit(AuditRecord {
                    seq: 0,
                    at_ms,
                    actor,
                    action: name.to_string(),
                    args,
                    result: outcome,
                })?;
                result
            }
            Command::Audit {
                actor,
                at_ms,
                action,
                args,
                result,
            } => {
                // On the timeline too: what operators did is part of what happened.
                self.note(
                    "admin_action",
                    format!("{action} by {actor}: {result} ({args})"),
                );
                if action == "backup" && result.starts_with("ok") {
                    self.set(KEY_LAST_BACKUP.to_vec(), Some(at_ms.to_be_bytes().to_vec()))?;
                    // A new last backup: not verified until a client says so.
                    let check = BackupCheck {
                        payload_sha256: crate::types::arg_value(&args, "sha256")
                            .map(str::to_string),
                        verified_ms: None,
                    };
                    self.put_encoded(KEY_BACKUP_CHECK.to_vec(), &check)?;
                }
                self.append_audit(AuditRecord {
                    seq: 0,
                    at_ms,
                    actor,
                    action,
                    args,
                    result,
                })?;
                CommandResult::Done
            }
            Command::TouchKeys { used } => {
                for (id, at) in used {
                    let k = prefixed(APIKEY_PREFIX, &id);
                    if let Some(mut rec) = self.get_decoded::<KeyRecord>(&k)? {
                        if rec.last_used_ms < Some(at) {
                            rec.last_used_ms = Some(at);
                            self.put_encoded(k, &rec)?;
                        }
                    }
                }
                CommandResult::Done
            }
            Command::RestoreBegin {
                id,
                actor: _,
                at_ms: _,
                source,
                backup_cluster,
                allow_foreign,
            } => self.restore_begin(id, source, backup_cluster, allow_foreign)?,
            Command::RestoreChunk { id, seq, pairs } => self.restore_chunk(&id, seq, pairs)?,
            Command::RestoreCommit {
                id,
                actor,
                at_ms,
                chunks,
                pairs,
            } => self.restore_commit(&id, actor, at_ms, chunks, pairs, index)?,
            Command::RestoreAbandon {
                id,
                actor,
                at_ms,
                reason,
            } => self.restore_abandon(&id, actor, at_ms, reason)?,
        })
    }

    fn apply_admin(
        &mut self,
        actor: &str,
        at_ms: i64,
        action: AdminAction,
    ) -> IoResult<CommandResult> {
        let not_found = |id: &str| CommandResult::NotFound {
            reason: format!("no API key with id {id:?} (see `opsdeck keys list`)"),
        };
        let rejected = |reason: String| CommandResult::Rejected { reason };
        Ok(match action {
            AdminAction::CreateKey(record) => {
                let k = prefixed(APIKEY_PREFIX, &record.id);
                if self.get(&k)?.is_some() {
                    return Ok(rejected(format!("a key with id {:?} exists", record.id)));
                }
                self.put_encoded(k, &record)?;
                self.keys_changed = true;
                CommandResult::Done
            }
            AdminAction::RotateKey {
                old_id,
                new_id,
                new_hash,
                grace_until_ms,
            } => {
                let old_key = prefixed(APIKEY_PREFIX, &old_id);
                let Some(mut old) = self.get_decoded::<KeyRecord>(&old_key)? else {
                    return Ok(not_found(&old_id));
                };
                if let Some(next) = &old.successor {
                    return Ok(rejected(format!(
                        "key {old_id} was already rotated to {next}; rotate {next} instead"
                    )));
                }
                if let Some(why) = old.refusal(at_ms) {
                    return Ok(rejected(format!("{why}; create a new key instead")));
                }
                let new = KeyRecord {
                    id: new_id.clone(),
                    hash: new_hash,
                    role: old.role,
                    tenants: old.tenants.clone(),
                    created_ms: at_ms,
                    expires_ms: None,
                    revoked_ms: None,
                    last_used_ms: None,
                    successor: None,
                };
                old.expires_ms = Some(
                    old.expires_ms
                        .map_or(grace_until_ms, |e| e.min(grace_until_ms)),
                );
                old.successor = Some(new_id.clone());
                self.put_encoded(old_key, &old)?;
                self.put_encoded(prefixed(APIKEY_PREFIX, &new_id), &new)?;
                self.keys_changed = true;
                CommandResult::Done
            }
            AdminAction::RevokeKey { id } => {
                let k = prefixed(APIKEY_PREFIX, &id);
                let Some(mut rec) = self.get_decoded::<KeyRecord>(&k)? else {
                    return Ok(not_found(&id));
                };
                if rec.role == Role::Admin
                    && rec.refusal(at_ms).is_none()
                    && self.valid_admins(at_ms)? <= 1
                {
                    return Ok(rejected(format!(
                        "{id} is the last valid admin key; create another admin key first, or nobody could administer the cluster"
                    )));
                }
                rec.revoked_ms.get_or_insert(at_ms);
                self.put_encoded(k, &rec)?;
                self.keys_changed = true;
                CommandResult::Done
            }
            AdminAction::SetQuota { tenant, quota } => {
                self.put_encoded(prefixed(QUOTA_PREFIX, &tenant), &quota)?;
                CommandResult::Done
            }
            AdminAction::PauseWrites { reason, until_ms } => {
                if let Some(p) = &self.paused {
                    return Ok(rejected(format!(
                        "writes are already paused by {} since {}: {}; resume first to pause anew",
                        p.by,
                        crate::types::utc_text(p.since_ms),
                        p.reason
                    )));
                }
                let pause = WritesPause {
                    by: actor.to_string(),
                    since_ms: at_ms,
                    reason,
                    until_ms,
                };
                self.put_encoded(KEY_WRITES_PAUSED.to_vec(), &pause)?;
                self.paused = Some(pause);
                CommandResult::Done
            }
            AdminAction::BackupVerified { payload_sha256, .. } => {
                // Recorded either way (the audit trail says what was verified); only the
                // last backup's own checksum makes it verified.
                if let Some(mut check) = self.get_decoded::<BackupCheck>(KEY_BACKUP_CHECK)? {
                    if check.payload_sha256.as_deref() == Some(payload_sha256.as_str()) {
                        check.verified_ms.get_or_insert(at_ms);
                        self.put_encoded(KEY_BACKUP_CHECK.to_vec(), &check)?;
                    }
                }
                CommandResult::Done
            }
            AdminAction::ResumeWrites { .. } => {
                if self.paused.is_none() {
                    return Ok(rejected("writes are not paused".into()));
                }
                self.set(KEY_WRITES_PAUSED.to_vec(), None)?;
                self.paused = None;
                CommandResult::Done
            }
            AdminAction::ResetQuota { tenant } => {
                self.set(prefixed(QUOTA_PREFIX, &tenant), None)?;
                let usage_key = prefixed(USAGE_PREFIX, &tenant);
                if let Some(usage) = self.get_decoded::<Usage>(&usage_key)? {
                    self.put_encoded(
                        usage_key,
                        &Usage {
                            violations: 0,
                            ..usage
                        },
                    )?;
                }
                CommandResult::Done
            }
        })
    }

    /// Admin keys usable at `at_ms` (as stored, plus this batch's changes).
    fn valid_admins(&self, at_ms: i64) -> IoResult<usize> {
        let mut n = 0;
        for item in self.tree.scan_prefix(APIKEY_PREFIX) {
            let (k, _) = item?;
            if let Some(rec) = self.get_decoded::<KeyRecord>(&k)? {
                n += usize::from(rec.role == Role::Admin && rec.refusal(at_ms).is_none());
            }
        }
        Ok(n)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        crate::fail_io!("state_machine::apply", e => StorageIOError::write_state_machine(&e).into());
        let sm_err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::write_state_machine(&super::io_error(e)))
        };
        // Held to the end, so a proof never sees the data and the tree at different indexes.
        let mut merkle = self.merkle.as_ref().map(|m| lock(m));
        if let Some(m) = &mut merkle {
            m.begin();
        }
        let mut overlay = Overlay {
            tree: &self.tree,
            writes: BTreeMap::new(),
            stats: DataStats {
                keys: read_u64(&self.tree, KEY_KEYS),
                bytes: read_u64(&self.tree, KEY_BYTES),
            },
            keys_changed: false,
            entry: None,
            events: Vec::new(),
            gens: self.gens,
            data_prefix: generations::data_prefix(self.gens.current),
            digest: self.digest,
            merkle: merkle.as_deref_mut(),
            paused: self
                .tree
                .get(KEY_WRITES_PAUSED)
                .map_err(|e| sm_err(&e))?
                .map(|v| decode(&v))
                .transpose()
                .map_err(|e| sm_err(&e))?,
        };
        let mut digests = Vec::new();
        let mut responses = Vec::new();
        let mut applied = self.applied;
        let mut membership = None;
        for entry in entries {
            applied = Some(entry.log_id);
            overlay.entry = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(request) => {
                    let mut results = Vec::with_capacity(request.commands.len());
                    for cmd in request.commands {
                        results.push(
                            overlay
                                .apply_command(entry.log_id.index, cmd)
                                .map_err(|e| sm_err(&e))?,
                        );
                    }
                    Response { results }
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    Response::default()
                }
            };
            responses.push(response);
            let root = match &mut overlay.merkle {
                Some(m) => Digest(m.end_entry().map_err(|e| sm_err(&e))?),
                None => Digest::ZERO,
            };
            if let Some(d) = &overlay.digest {
                digests.push(Held::at(entry.log_id.index, d, root));
            }
        }

        let mut batch = sled::Batch::default();
        let digest = overlay.digest.map(|d| DigestState {
            index: applied.map(|l| l.index).unwrap_or(0),
            ..d
        });
        let stats = overlay.stats.clone();
        let keys_changed = overlay.keys_changed;
        let events = std::mem::take(&mut overlay.events);
        let gens = overlay.gens;
        // A switch of generations is written and published with no janitor step in
        // between: a step sees either the old generations or the new ones with the
        // replaced one retired (so reads that still hold it are waited for).
        let exclusive = (gens != self.gens).then(|| lock(&self.exclusive));
        // Snapshots being built must still see the old values of what this batch writes
        // (the applied id and membership are not in snapshots; the digest is).
        let written = overlay.writes.keys().map(Vec::as_slice);
        let hold = self
            .freezes
            .before_write(&self.tree, written.chain([KEY_KEYS, KEY_BYTES, KEY_DIGEST]))
            .map_err(|e| sm_err(&e))?;
        for (k, v) in overlay.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(KEY_KEYS, &stats.keys.to_be_bytes());
        batch.insert(KEY_BYTES, &stats.bytes.to_be_bytes());
        batch.insert(KEY_APPLIED, encode(&applied).map_err(|e| sm_err(&e))?);
        if let Some(d) = &digest {
            batch.insert(KEY_DIGEST, d.encode());
        }
        if let Some(m) = &membership {
            batch.insert(KEY_MEMBERSHIP, encode(m).map_err(|e| sm_err(&e))?);
        }
        self.tree.apply_batch(batch).map_err(|e| sm_err(&e))?;
        drop(hold);
        if let Some(m) = &mut merkle {
            m.applied(applied.map(|l| l.index).unwrap_or(0))
                .map_err(|e| sm_err(&e))?;
        }
        if let Some(exclusive) = exclusive {
            self.current.switch(gens.current);
            self.gens = gens;
            drop(exclusive);
            if let Some(j) = &self.janitor {
                j.wake();
            }
        }
        self.applied = applied;
        self.digest = digest;
        self.digests.extend(digests);
        if let Some(m) = membership {
            self.membership = m;
        }
        self.applied_index
            .store(applied.map(|l| l.index).unwrap_or(0), Ordering::Release);
        drop(merkle);
        if keys_changed {
            self.reload_keys().map_err(|e| sm_err(&e))?;
        }
        if let Some(sink) = &self.events {
            for (at, kind, detail) in events {
                sink.applied(at, kind, detail);
            }
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The snapshot is this moment's state: a frozen view begins now, on the
        // state-machine task, and is read while applying goes on (see `super::freeze`).
        self.snapshot_seq += 1;
        let freeze = self
            .freezes
            .begin(&self.db, self.snapshot_seq, self.gens.snapshot_view());
        SnapshotBuilder {
            freeze,
            tree: self.tree.clone(),
            scan_batch_keys: self.scan_batch_keys,
            applied: self.applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
            path: self.snapshot_path.clone(),
            started: std::time::Instant::now(),
            housekeeping: self.housekeeping.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let side = self
            .snapshot_path
            .with_extension(snapshot_file::RECEIVING_SUFFIX);
        let file = tokio::fs::File::create(&side)
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        crate::fail_io!("snapshot::install", e => StorageIOError::write_snapshot(Some(meta.signature()), &e).into());
        let err = |e: std::io::Error| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        };
        let started = std::time::Instant::now();
        let side = self
            .snapshot_path
            .with_extension(snapshot_file::RECEIVING_SUFFIX);
        into_side_file(&mut snapshot, &side).await.map_err(err)?;
        drop(snapshot);
        let (path, tree, freezes, exclusive, merkle) = (
            self.snapshot_path.clone(),
            self.tree.clone(),
            self.freezes.clone(),
            self.exclusive.clone(),
            self.merkle.clone(),
        );
        let digest_on = !self.digests.is_off();
        let expected = meta.clone();
        let bytes = blocking(move || {
            // Read through and checked before anything is replaced, so a bad snapshot
            // changes nothing.
            let (stored, _) = snapshot_file::check(&side).inspect_err(|_| {
                // Nothing of it is kept: the leader sends the snapshot again.
                let _ = std::fs::remove_file(&side);
            })?;
            if stored.snapshot_id != expected.snapshot_id || stored.last_log_id != expected.last_log_id {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the snapshot received holds {} (index {:?}), the leader announced {} (index {:?})",
                        stored.snapshot_id,
                        stored.last_log_id.map(|l| l.index),
                        expected.snapshot_id,
                        expected.last_log_id.map(|l| l.index)
                    ),
                ));
            }
            // The install renumbers generations: no janitor step may run meanwhile.
            // The Merkle index's lock first, as an apply takes them: no proof reads the
            // new data with the old tree.
            let mut merkle = merkle.as_ref().map(|m| lock(m));
            let exclusive = lock(&exclusive);
            freezes.wait_idle();
            snapshot_file::promote(&side, &path)?;
            let digest = load_tree(&tree, &path, &expected, digest_on)?;
            drop(exclusive);
            if let Some(m) = &mut merkle {
                let gens = Generations::load(&tree)?;
                let applied = expected.last_log_id.map(|l| l.index).unwrap_or(0);
                m.rebuild(&tree, gens.current, gens.staging, applied)?;
            }
            Ok((snapshot_file::size(&path), digest))
        })
        .await
        .map_err(err)?;
        let (bytes, digest) = bytes;
        self.loaded(meta, digest).map_err(err)?;
        // From the last chunk received: checked, loaded, the Merkle index rebuilt.
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::info!(snapshot = %meta.snapshot_id, bytes, took_ms, "snapshot installed");
        self.housekeeping.record_snapshot(SnapshotRecord {
            index: meta.last_log_id.map(|l| l.index),
            bytes,
            millis: 0,
            unix_ms: unix_millis(),
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let err = |e: std::io::Error| StorageError::from(StorageIOError::read_snapshot(None, &e));
        let path = self.snapshot_path.clone();
        let Some((meta, _)) = blocking(move || snapshot_file::read_meta(&path))
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        // The open file stays readable if a newer snapshot replaces it while it is sent.
        let file = tokio::fs::File::open(&self.snapshot_path)
            .await
            .map_err(err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

/// Makes `side` hold the snapshot `file` carries: openraft hands back the file
/// `begin_receiving_snapshot` made, now filled (it is only made durable), or any other
/// snapshot file (a test's, another store's), which is copied in as a stream.
async fn into_side_file(file: &mut SnapshotFile, side: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    file.flush().await?;
    let given = file.metadata().await?;
    let ours = tokio::fs::metadata(side).await.ok();
    if ours.is_some_and(|m| (m.dev(), m.ino()) == (given.dev(), given.ino())) {
        return file.sync_all().await;
    }
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut copy = tokio::fs::File::create(side).await?;
    tokio::io::copy(file, &mut copy).await?;
    copy.sync_all().await
}

fn file_mtime_ms(path: &std::path::Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs blocking I/O on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("blocking task failed: {e}"))))
}

/// Writes a snapshot from the frozen view `get_snapshot_builder` began, pair by pair.
pub struct SnapshotBuilder {
    freeze: std::io::Result<Freeze>,
    tree: sled::Tree,
    scan_batch_keys: usize,
    applied: Option<LogId>,
    membership: StoredMembership,
    seq: u64,
    path: PathBuf,
    /// When the view began: the snapshot's build time counts from there.
    started: std::time::Instant,
    housekeeping: Arc<Housekeeping>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let err = |e: std::io::Error| StorageError::from(StorageIOError::write_snapshot(None, &e));
        let freeze = std::mem::replace(
            &mut self.freeze,
            Err(std::io::Error::other("this snapshot was built already")),
        )
        .map_err(err)?;
        let snapshot_id = match self.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let (path, tree, stored_meta) = (self.path.clone(), self.tree.clone(), meta.clone());
        let batch_keys = self.scan_batch_keys;
        // Durable before openraft may purge the log it covers. The view ends (and its side
        // tree goes) only once the file is in place, so an install waiting for it cannot
        // have its newer snapshot replaced by this one.
        let bytes = blocking(move || {
            let side = path.with_extension(snapshot_file::BUILDING_SUFFIX);
            let mut out = snapshot_file::SnapshotWriter::create(&side, &stored_meta)?;
            loop {
                let batch = freeze.next_batch(&tree, batch_keys, SNAPSHOT_BATCH_BYTES)?;
                for (k, v) in &batch.pairs {
                    out.pair(k, v)?;
                }
                if batch.done {
                    break;
                }
            }
            let bytes = out.finish()?;
            snapshot_file::promote(&side, &path)?;
            drop(freeze);
            Ok(bytes)
        })
        .await
        .map_err(err)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes, took_ms = self.started.elapsed().as_millis() as u64, "snapshot built");
        self.housekeeping.record_snapshot(SnapshotRecord {
            index: meta.last_log_id.map(|l| l.index),
            bytes,
            millis: self.started.elapsed().as_millis() as u64,
            unix_ms: unix_millis(),
        });
        let file = tokio::fs::File::open(&self.path).await.map_err(err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}
