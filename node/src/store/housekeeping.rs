//! What the stores did last to keep the disk in check (snapshot built or installed, log
//! purge, manual compact), read by the status sampler for the GC figures.

use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub index: Option<u64>,
    pub bytes: u64,
    /// Time to copy, encode and write it (0 when installed from the leader or found on start).
    pub millis: u64,
    pub unix_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeRecord {
    pub upto: u64,
    /// Entries deleted from disk by that purge.
    pub entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactRecord {
    pub sled_bytes_before: u64,
    pub sled_bytes_after: u64,
}

#[derive(Debug, Default)]
pub struct Housekeeping {
    snapshot: Mutex<Option<SnapshotRecord>>,
    purge: Mutex<Option<PurgeRecord>>,
    compact: Mutex<Option<CompactRecord>>,
}

fn get<T: Copy>(m: &Mutex<Option<T>>) -> Option<T> {
    *m.lock().unwrap_or_else(|p| p.into_inner())
}

fn set<T>(m: &Mutex<Option<T>>, v: T) {
    *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
}

impl Housekeeping {
    pub fn snapshot(&self) -> Option<SnapshotRecord> {
        get(&self.snapshot)
    }
    pub fn purge(&self) -> Option<PurgeRecord> {
        get(&self.purge)
    }
    pub fn compact(&self) -> Option<CompactRecord> {
        get(&self.compact)
    }
    pub fn record_snapshot(&self, r: SnapshotRecord) {
        set(&self.snapshot, r)
    }
    pub fn record_purge(&self, r: PurgeRecord) {
        set(&self.purge, r)
    }
    pub fn record_compact(&self, r: CompactRecord) {
        set(&self.compact, r)
    }
}
