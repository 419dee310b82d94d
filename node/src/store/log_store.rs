//! The Raft log on sled: entries in tree `raft_log` (big-endian index keys), vote, committed
//! and purged ids in tree `raft_meta`.
//!
//! Appends are written to sled at once and made durable by one background flusher thread,
//! which drains every append queued while the previous fsync ran and flushes once for all
//! of them: one fsync per batch of appends, never one per entry.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};

use super::{decode, encode};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";

/// The log store handed to openraft.
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: Flusher,
    stats: Arc<FlushStats>,
    committed: Arc<AtomicU64>,
}

/// The flusher thread and its queue. Dropping it stops the thread and waits for it, so the
/// database is released when the store is (a reopen in the same process then succeeds).
struct Flusher {
    queue: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counters of the flusher, for the write-path benchmark and metrics.
#[derive(Default, Debug)]
pub struct FlushStats {
    pub fsyncs: std::sync::atomic::AtomicU64,
    pub appends: std::sync::atomic::AtomicU64,
}

/// A read-only view of the log, used by openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    log: sled::Tree,
}

impl LogStore {
    pub fn open(db: &sled::Db) -> Result<LogStore, std::io::Error> {
        let log = db.open_tree("raft_log").map_err(super::io_error)?;
        let meta = db.open_tree("raft_meta").map_err(super::io_error)?;
        let stats = Arc::new(FlushStats::default());
        let (flusher, queue) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_db = db.clone();
        let flush_stats = stats.clone();
        let thread = thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(flush_db, queue, flush_stats))?;
        let flusher = Flusher {
            queue: Some(flusher),
            thread: Some(thread),
        };
        let mut store = LogStore {
            db: db.clone(),
            log,
            meta,
            flusher,
            stats,
            committed: Arc::new(AtomicU64::new(0)),
        };
        let committed: Option<LogId> = store.read_meta::<Option<LogId>>(KEY_COMMITTED).map_err(super::io_error)?.flatten();
        store.committed = Arc::new(AtomicU64::new(committed.map(|l| l.index).unwrap_or(0)));
        Ok(store)
    }

    /// The last committed index this node knows of (0 if none), kept current by openraft.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    pub fn flush_stats(&self) -> Arc<FlushStats> {
        self.stats.clone()
    }

    fn read_meta<T: for<'a> serde::Deserialize<'a>>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(|e| StorageIOError::read(&e))? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| StorageIOError::read(&e))?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(|e| StorageIOError::write(&e))?;
        self.meta.insert(key, bytes).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }
}

fn flush_loop(db: sled::Db, queue: mpsc::Receiver<LogFlushed<TypeConfig>>, stats: Arc<FlushStats>) {
    use std::sync::atomic::Ordering::Relaxed;
    // Ends when the LogStore (the only sender) is dropped.
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        let result = db.flush();
        stats.fsyncs.fetch_add(1, Relaxed);
        stats.appends.fetch_add(waiting.len() as u64, Relaxed);
        for callback in waiting {
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(outcome);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn last_entry_log_id(log: &sled::Tree) -> Result<Option<LogId>, StorageError> {
    match log.last().map_err(|e| StorageIOError::read_logs(&e))? {
        Some((_, bytes)) => {
            let entry: Entry = decode(&bytes).map_err(|e| StorageIOError::read_logs(&e))?;
            Ok(Some(entry.log_id))
        }
        None => Ok(None),
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.log, range)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.log, range)
    }
}

fn read_range<RB: RangeBounds<u64>>(log: &sled::Tree, range: RB) -> Result<Vec<Entry>, StorageError> {
    let start = match range.start_bound() {
        Bound::Included(i) => Bound::Included(index_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Bound::Included(index_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    };
    log.range::<[u8; 8], _>((start, end))
        .map(|item| {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            Ok(decode::<Entry>(&bytes).map_err(|e| StorageIOError::read_logs(&e))?)
        })
        .collect()
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_PURGED)?;
        let last_log_id = last_entry_log_id(&self.log)?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader { log: self.log.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote)?;
        // A vote must be durable before it is acted on.
        self.db.flush_async().await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: openraft recovers a lost committed id from the quorum.
        self.committed
            .store(committed.map(|l| l.index).unwrap_or(0), std::sync::atomic::Ordering::Release);
        self.write_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        let queued = self.flusher.queue.as_ref().is_some_and(|q| q.send(callback).is_ok());
        if !queued {
            let stopped = std::io::Error::other("log flusher thread has stopped");
            return Err(StorageIOError::write_logs(&stopped).into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self.log.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash half-way leaves extra entries, never a gap.
        self.write_meta(KEY_PURGED, &log_id)?;
        let mut batch = sled::Batch::default();
        for key in self.log.range(..=index_key(log_id.index)).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.log.apply_batch(batch).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
