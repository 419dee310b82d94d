//! The replicated state machine on sled: tree `sm` holds the ledger's data under `d/` and
//! its bookkeeping under `m/`; the last built or installed snapshot is a file
//! ([`super::snapshot_file`]).
//!
//! Committed entries are applied in batches: every command of every entry handed to one
//! `apply` call is folded into one atomic sled batch. Snapshots are taken as a point-in-time
//! copy on the state-machine task, then encoded and stored off it. Bulk work (the copy, the
//! encoding, file I/O) runs on the blocking pool so it never stalls the async workers that
//! carry client requests and heartbeats.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};

use super::housekeeping::{Housekeeping, SnapshotRecord};
use super::{decode, encode, snapshot_file};
use crate::telemetry::unix_millis;
use crate::types::{
    validate_entry, Command, CommandResult, Entry, LogId, Response, Snapshot, SnapshotMeta,
    StorageError, StoredMembership, TypeConfig,
};

const DATA_PREFIX: &[u8] = b"d/";
const KEY_APPLIED: &[u8] = b"m/applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_KEYS: &[u8] = b"m/keys";
const KEY_BYTES: &[u8] = b"m/bytes";
const KEY_CLUSTER_ID: &[u8] = b"m/cluster_id";

fn data_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(DATA_PREFIX.len() + key.len());
    k.extend_from_slice(DATA_PREFIX);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The encoded body of a snapshot: every pair of the `sm` tree except the applied id and
/// membership, which travel in the snapshot's meta.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

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
}

impl KvReader {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sled::Error> {
        Ok(self.tree.get(data_key(key))?.map(|v| v.to_vec()))
    }

    /// Up to `limit` pairs whose key starts with `prefix`, in key order; the flag says
    /// whether more were left out.
    pub fn scan(&self, prefix: &str, limit: usize) -> Result<(KeyValues, bool), sled::Error> {
        let mut items = Vec::new();
        for item in self.tree.scan_prefix(data_key(prefix)) {
            let (k, v) = item?;
            if items.len() == limit {
                return Ok((items, true));
            }
            let key = String::from_utf8_lossy(&k[DATA_PREFIX.len()..]).into_owned();
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

    /// Index of the last applied log entry (0 before anything was applied).
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
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

/// The state machine handed to openraft.
pub struct StateMachine {
    tree: sled::Tree,
    snapshot_path: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    applied_index: Arc<AtomicU64>,
    snapshot_seq: u64,
    housekeeping: Arc<Housekeeping>,
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
        let mut sm = StateMachine {
            tree,
            snapshot_path,
            applied,
            membership,
            applied_index: Arc::new(AtomicU64::new(applied.map(|l| l.index).unwrap_or(0))),
            snapshot_seq: 0,
            housekeeping,
        };
        // A crash while installing a snapshot leaves the snapshot stored but the data only
        // partly replaced; finish the install now (openraft does not re-install on start).
        if let Some((meta, data)) = snapshot_file::read(&sm.snapshot_path)? {
            sm.housekeeping.record_snapshot(SnapshotRecord {
                index: meta.last_log_id.map(|l| l.index),
                bytes: data.len() as u64,
                millis: 0,
                unix_ms: file_mtime_ms(&sm.snapshot_path),
            });
            if meta.last_log_id > sm.applied {
                tracing::warn!(snapshot = ?meta.last_log_id, applied = ?sm.applied, "finishing an interrupted snapshot install");
                sm.load_snapshot(&meta, decode(&data)?)?;
            }
        }
        Ok(sm)
    }

    pub fn reader(&self) -> KvReader {
        KvReader {
            tree: self.tree.clone(),
            applied_index: self.applied_index.clone(),
        }
    }

    /// Replaces all data with the snapshot's. The applied id is written in the same atomic
    /// batch as the data, so a crash in between is detected and finished by `open`.
    fn load_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        body: SnapshotBody,
    ) -> Result<(), std::io::Error> {
        self.tree.clear().map_err(super::io_error)?;
        let mut batch = sled::Batch::default();
        for (k, v) in body.pairs {
            batch.insert(k, v);
        }
        let membership =
            StoredMembership::new(meta.last_log_id, meta.last_membership.membership().clone());
        batch.insert(KEY_MEMBERSHIP, encode(&membership)?);
        batch.insert(KEY_APPLIED, encode(&meta.last_log_id)?);
        self.tree.apply_batch(batch).map_err(super::io_error)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_index.store(
            meta.last_log_id.map(|l| l.index).unwrap_or(0),
            Ordering::Release,
        );
        Ok(())
    }
}

/// Pending writes of one `apply` call, read through before the tree so later commands in
/// the batch see earlier ones.
struct Overlay<'a> {
    tree: &'a sled::Tree,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    stats: DataStats,
}

impl Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    fn set(&mut self, key: &str, value: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, sled::Error> {
        let k = data_key(key);
        let old = self.get(&k)?;
        if let Some(old) = &old {
            self.stats.keys -= 1;
            self.stats.bytes -= (key.len() + old.len()) as u64;
        }
        if let Some(new) = &value {
            self.stats.keys += 1;
            self.stats.bytes += (key.len() + new.len()) as u64;
        }
        self.writes.insert(k, value);
        Ok(old)
    }

    fn apply_command(&mut self, index: u64, cmd: Command) -> Result<CommandResult, sled::Error> {
        Ok(match cmd {
            Command::InitCluster { cluster_id } => {
                self.writes
                    .insert(KEY_CLUSTER_ID.to_vec(), Some(cluster_id.into_bytes()));
                CommandResult::Done
            }
            Command::Put { key, value } => {
                if let Err(reason) = validate_entry(&key, Some(&value)) {
                    return Ok(CommandResult::Rejected { reason });
                }
                self.set(&key, Some(value))?;
                CommandResult::Put { revision: index }
            }
            Command::Delete { key } => {
                let existed = self.set(&key, None)?.is_some();
                CommandResult::Delete { existed }
            }
            Command::Cas { key, expected, new } => {
                if let Err(reason) = validate_entry(&key, new.as_deref()) {
                    return Ok(CommandResult::Rejected { reason });
                }
                let current = self.get(&data_key(&key))?;
                if current == expected {
                    self.set(&key, new)?;
                    CommandResult::Cas {
                        succeeded: true,
                        current: None,
                    }
                } else {
                    CommandResult::Cas {
                        succeeded: false,
                        current,
                    }
                }
            }
        })
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
        let sm_err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::write_state_machine(&super::io_error(e)))
        };
        let mut overlay = Overlay {
            tree: &self.tree,
            writes: BTreeMap::new(),
            stats: DataStats {
                keys: read_u64(&self.tree, KEY_KEYS),
                bytes: read_u64(&self.tree, KEY_BYTES),
            },
        };
        let mut responses = Vec::new();
        let mut applied = self.applied;
        let mut membership = None;
        for entry in entries {
            applied = Some(entry.log_id);
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
        }

        let mut batch = sled::Batch::default();
        let stats = overlay.stats.clone();
        for (k, v) in overlay.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch.insert(KEY_KEYS, &stats.keys.to_be_bytes());
        batch.insert(KEY_BYTES, &stats.bytes.to_be_bytes());
        batch.insert(KEY_APPLIED, encode(&applied).map_err(|e| sm_err(&e))?);
        if let Some(m) = &membership {
            batch.insert(KEY_MEMBERSHIP, encode(m).map_err(|e| sm_err(&e))?);
        }
        self.tree.apply_batch(batch).map_err(|e| sm_err(&e))?;
        self.applied = applied;
        if let Some(m) = membership {
            self.membership = m;
        }
        self.applied_index
            .store(applied.map(|l| l.index).unwrap_or(0), Ordering::Release);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Copy now, while the state-machine task waits, so the snapshot is one point in time;
        // applying goes on as soon as the copy is taken.
        let tree = self.tree.clone();
        let started = std::time::Instant::now();
        let copy = tokio::task::spawn_blocking(move || {
            tree.iter()
                .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .filter(|item| {
                    !matches!(item, Ok((k, _)) if k.as_slice() == KEY_APPLIED || k.as_slice() == KEY_MEMBERSHIP)
                })
                .collect::<Result<Vec<_>, sled::Error>>()
                .map_err(super::io_error)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot copy taken"
        );
        self.snapshot_seq += 1;
        SnapshotBuilder {
            pairs: copy,
            applied: self.applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
            path: self.snapshot_path.clone(),
            started,
            housekeeping: self.housekeeping.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let err = |e: std::io::Error| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        };
        // Decoded before anything is replaced, so a bad snapshot changes nothing.
        let body: SnapshotBody = decode(&data).map_err(err)?;
        let (path, stored_meta) = (self.snapshot_path.clone(), meta.clone());
        let bytes = data.len() as u64;
        blocking(move || snapshot_file::write(&path, &stored_meta, &data))
            .await
            .map_err(err)?;
        self.load_snapshot(meta, body).map_err(err)?;
        self.housekeeping.record_snapshot(SnapshotRecord {
            index: meta.last_log_id.map(|l| l.index),
            bytes,
            millis: 0,
            unix_ms: unix_millis(),
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let path = self.snapshot_path.clone();
        let stored = blocking(move || snapshot_file::read(&path))
            .await
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(None, &e)))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
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

/// Encodes and stores a snapshot from the copy taken by `get_snapshot_builder`.
pub struct SnapshotBuilder {
    pairs: std::io::Result<Vec<(Vec<u8>, Vec<u8>)>>,
    applied: Option<LogId>,
    membership: StoredMembership,
    seq: u64,
    path: PathBuf,
    /// When the copy began: the snapshot's build time includes it.
    started: std::time::Instant,
    housekeeping: Arc<Housekeeping>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let err = |e: std::io::Error| StorageError::from(StorageIOError::write_snapshot(None, &e));
        let pairs = std::mem::replace(&mut self.pairs, Ok(Vec::new())).map_err(err)?;
        let snapshot_id = match self.applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("none-{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let (path, stored_meta) = (self.path.clone(), meta.clone());
        let started = std::time::Instant::now();
        // Durable before openraft may purge the log it covers.
        let data = blocking(move || {
            let data = encode(&SnapshotBody { pairs })?;
            snapshot_file::write(&path, &stored_meta, &data)?;
            Ok(data)
        })
        .await
        .map_err(err)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), took_ms = started.elapsed().as_millis() as u64, "snapshot built");
        self.housekeeping.record_snapshot(SnapshotRecord {
            index: meta.last_log_id.map(|l| l.index),
            bytes: data.len() as u64,
            millis: self.started.elapsed().as_millis() as u64,
            unix_ms: unix_millis(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
