//! The Raft log on sled: entries in tree `raft_log` (big-endian index keys), vote, committed
//! and purged ids in tree `raft_meta`.
//!
//! openraft 0.9 calls the log store from its core task, so every millisecond spent here
//! stalls all client writes. Two background threads keep slow work off that path:
//! - the flusher makes appends durable: it drains every append queued while the previous
//!   fsync ran and flushes once for all of them (one fsync per batch of appends, never one
//!   per entry), then acknowledges them in order;
//! - the purger deletes purged entries in small batches. A purge only records the purge point
//!   and returns; readers never see entries at or below it, deleted yet or not.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};

use super::housekeeping::{Housekeeping, PurgeRecord};
use super::{decode, encode};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";
/// Entries deleted per sled batch by the purger, so it never holds the tree for long.
const PURGE_CHUNK: usize = 1024;

/// The log store handed to openraft.
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// Lowest index that is not purged; readers start here.
    floor: Arc<AtomicU64>,
    stats: Arc<LogStats>,
    committed: Arc<AtomicU64>,
    // Declared last: dropped (and joined) after the handles above are no longer used.
    flusher: Worker<LogFlushed<TypeConfig>>,
    purger: Worker<u64>,
}

/// Counters of the background threads, for the write-path benchmark and metrics.
#[derive(Default, Debug)]
pub struct LogStats {
    pub fsyncs: AtomicU64,
    pub appends: AtomicU64,
}

/// The log's extent on disk (entries not yet deleted by the purger included), for GC
/// figures and `compact`.
#[derive(Clone)]
pub struct LogDisk {
    log: sled::Tree,
}

impl LogDisk {
    /// First and last index stored. Indexes are contiguous: the purger deletes from the
    /// bottom and truncation from the top.
    pub fn extent(&self) -> Result<Option<(u64, u64)>, sled::Error> {
        let key = |k: &[u8]| <[u8; 8]>::try_from(k).map(u64::from_be_bytes).unwrap_or(0);
        match (self.log.first()?, self.log.last()?) {
            (Some((first, _)), Some((last, _))) => Ok(Some((key(&first), key(&last)))),
            _ => Ok(None),
        }
    }
}

impl LogDisk {
    /// Bytes of the keys and values of every entry on disk (walks the log).
    pub fn bytes(&self) -> Result<u64, sled::Error> {
        self.log.iter().try_fold(0u64, |sum, item| {
            let (k, v) = item?;
            Ok(sum + (k.len() + v.len()) as u64)
        })
    }
}

/// A read-only view of the log, used by openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    log: sled::Tree,
    floor: Arc<AtomicU64>,
}

/// A background thread fed by a queue. Dropping it closes the queue and joins the thread,
/// so the database is released when the store is (a reopen in the same process works).
struct Worker<T> {
    queue: Option<mpsc::Sender<T>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(
        name: &str,
        body: impl FnOnce(mpsc::Receiver<T>) + Send + 'static,
    ) -> std::io::Result<Worker<T>> {
        let (queue, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || body(rx))?;
        Ok(Worker {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    fn send(&self, item: T) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(item).is_ok())
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LogStore {
    pub fn open(
        db: &sled::Db,
        housekeeping: Arc<Housekeeping>,
    ) -> Result<LogStore, std::io::Error> {
        let log = db.open_tree("raft_log").map_err(super::io_error)?;
        let meta = db.open_tree("raft_meta").map_err(super::io_error)?;
        let stats = Arc::new(LogStats::default());

        let (flush_db, flush_stats) = (db.clone(), stats.clone());
        let flusher = Worker::spawn("raft-log-flush", move |rx| {
            flush_loop(flush_db, rx, flush_stats)
        })?;
        let purge_log = log.clone();
        let purger = Worker::spawn("raft-log-purge", move |rx| {
            purge_loop(purge_log, rx, housekeeping)
        })?;

        // `purged` is stored as a LogId, `committed` as an Option<LogId> (see purge and
        // save_committed).
        let purged: Option<LogId> = match meta.get(KEY_PURGED).map_err(super::io_error)? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        let committed: Option<LogId> = match meta.get(KEY_COMMITTED).map_err(super::io_error)? {
            Some(bytes) => decode(&bytes)?,
            None => None,
        };
        let store = LogStore {
            db: db.clone(),
            floor: Arc::new(AtomicU64::new(purged.map(|l| l.index + 1).unwrap_or(0))),
            committed: Arc::new(AtomicU64::new(committed.map(|l| l.index).unwrap_or(0))),
            log,
            meta,
            stats,
            flusher,
            purger,
        };
        // Finish deleting whatever a crash left below the purge point.
        if let Some(p) = purged {
            store.purger.send(p.index);
        }
        Ok(store)
    }

    pub fn disk(&self) -> LogDisk {
        LogDisk {
            log: self.log.clone(),
        }
    }

    pub fn stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }

    /// The last committed index this node knows of (0 if none), kept current by openraft.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn read_meta<T: for<'a> serde::Deserialize<'a>>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(|e| StorageIOError::read(&e))? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| StorageIOError::read(&e))?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(|e| StorageIOError::write(&e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }
}

fn flush_loop(db: sled::Db, queue: mpsc::Receiver<LogFlushed<TypeConfig>>, stats: Arc<LogStats>) {
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        let result = crate::fail_io_or!("log_store::flush", e => sled::Error::Io(e); db.flush());
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats
            .appends
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        for callback in waiting {
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(outcome);
        }
    }
}

fn purge_loop(log: sled::Tree, queue: mpsc::Receiver<u64>, housekeeping: Arc<Housekeeping>) {
    while let Ok(first) = queue.recv() {
        let upto = queue.try_iter().fold(first, u64::max);
        let started = std::time::Instant::now();
        let mut removed = 0usize;
        loop {
            let keys: Vec<_> = log
                .range(..=index_key(upto))
                .keys()
                .take(PURGE_CHUNK)
                .filter_map(|k| k.ok())
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut batch = sled::Batch::default();
            for k in &keys {
                batch.remove(k.clone());
            }
            if let Err(e) = log.apply_batch(batch) {
                tracing::error!(error = %e, upto, "purging the raft log failed; will retry at the next purge");
                break;
            }
            removed += keys.len();
        }
        housekeeping.record_purge(PurgeRecord {
            upto,
            entries: removed as u64,
        });
        tracing::debug!(
            upto,
            removed,
            took_ms = started.elapsed().as_millis() as u64,
            "log entries deleted"
        );
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_range<RB: RangeBounds<u64>>(
    log: &sled::Tree,
    floor: u64,
    range: RB,
) -> Result<Vec<Entry>, StorageError> {
    let start = match range.start_bound() {
        Bound::Included(i) => Bound::Included(index_key((*i).max(floor))),
        Bound::Excluded(i) if *i < floor => Bound::Included(index_key(floor)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Included(index_key(floor)),
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Bound::Included(index_key(*i)),
        Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
        Bound::Unbounded => Bound::Unbounded,
    };
    if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
        (&start, &end)
    {
        if s > e {
            return Ok(Vec::new());
        }
    }
    log.range::<[u8; 8], _>((start, end))
        .map(|item| {
            let (_, bytes) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            Ok(decode::<Entry>(&bytes).map_err(|e| StorageIOError::read_logs(&e))?)
        })
        .collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.log, self.floor.load(Ordering::Acquire), range)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        read_range(&self.log, self.floor.load(Ordering::Acquire), range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_PURGED)?;
        let last_entry = match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            Some((_, bytes)) => Some(
                decode::<Entry>(&bytes)
                    .map_err(|e| StorageIOError::read_logs(&e))?
                    .log_id,
            ),
            None => None,
        };
        // An entry not yet deleted by the purger may lie at or below the purge point.
        let last_log_id = std::cmp::max(last_entry, last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            log: self.log.clone(),
            floor: self.floor.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(KEY_VOTE, vote)?;
        crate::fail_io!("log_store::flush", e => StorageIOError::write_vote(&e).into());
        // A vote must be durable before it is acted on.
        self.db
            .flush_async()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: openraft recovers a lost committed id from the quorum.
        self.committed
            .store(committed.map(|l| l.index).unwrap_or(0), Ordering::Release);
        self.write_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        crate::fail_io!("log_store::append", e => StorageIOError::write_logs(&e).into());
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        if !self.flusher.send(callback) {
            let stopped = std::io::Error::other("log flusher thread has stopped");
            return Err(StorageIOError::write_logs(&stopped).into());
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Conflicting entries are few (at most one replication batch), so this is quick.
        let mut batch = sled::Batch::default();
        for key in self.log.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(|e| StorageIOError::write_logs(&e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_meta(KEY_PURGED, &log_id)?;
        self.floor.fetch_max(log_id.index + 1, Ordering::AcqRel);
        if !self.purger.send(log_id.index) {
            tracing::warn!(
                "log purger thread has stopped; purged entries stay on disk until restart"
            );
        }
        Ok(())
    }
}
