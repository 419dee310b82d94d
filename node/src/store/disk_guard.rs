//! Disk pressure as a state, not a crash. sled remembers the first I/O error it meets and
//! fails every later call with it, so one `ENOSPC` inside sled would stop Raft on this node
//! until the process restarts. The guard keeps sled from ever getting there:
//!
//! - it watches the free space of the filesystem holding the data dir; below the reserve
//!   (`--storage-reserve`) the node is *storage full*: the leader refuses writes with
//!   [`StorageFull`](crate::error::NodeError::StorageFull), a follower stops taking new log
//!   entries (the Raft transport hands it heartbeats only), and both go on serving reads,
//!   voting and keeping their role; when the space comes back (the reserve plus an eighth,
//!   so the state does not flap) it clears by itself;
//! - it keeps a *ballast* file (a quarter of the reserve, at most 64 MiB, really allocated)
//!   in the data dir, released the moment the disk is found full and before sled is opened
//!   on a full disk: the room the node needs to finish applying what it already accepted,
//!   to write its vote, and for sled's recovery at start-up. It is allocated again before
//!   the state clears.
//!
//! A reserve of 0 turns the guard (and the ballast) off.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

pub use crate::error::{size, Pressure};

/// The ballast file in the data dir.
pub const BALLAST_FILE: &str = "ballast";

/// The reserve of a node started without `--storage-reserve`.
pub const DEFAULT_RESERVE: u64 = 128 * 1024 * 1024;
const MAX_BALLAST: u64 = 64 * 1024 * 1024;
/// How old a free-space reading may be before a check reads it again.
const FRESH: Duration = Duration::from_millis(100);

/// Bytes of the files under `path` (0 when it does not exist; files vanishing during the
/// walk are skipped).
pub fn dir_bytes(path: &Path) -> u64 {
    files_bytes(path, None)
}

/// [`dir_bytes`] of a data dir but its ballast: room held in reserve, not data (counting it
/// would show the data dir growing by the ballast's size when it is allocated).
pub fn data_dir_bytes(data_dir: &Path) -> u64 {
    files_bytes(data_dir, Some(BALLAST_FILE))
}

/// Bytes of the files under `top`, leaving out its direct entry named `skip`.
fn files_bytes(top: &Path, skip: Option<&str>) -> u64 {
    let mut total = 0;
    let mut stack = vec![top.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if dir == top && skip.is_some_and(|name| e.file_name() == name) {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

pub struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    ballast_len: u64,
    full: AtomicBool,
    free: AtomicU64,
    state: Mutex<State>,
}

struct State {
    read_at: Option<Instant>,
    /// The last failure to read the free space, logged once per distinct message.
    read_error: Option<String>,
}

impl DiskGuard {
    /// A guard for the data dir `dir` keeping `reserve` bytes free (0: off).
    pub fn new(dir: &Path, reserve: u64) -> DiskGuard {
        DiskGuard {
            dir: dir.to_path_buf(),
            reserve,
            ballast_len: (reserve / 4).min(MAX_BALLAST),
            full: AtomicBool::new(false),
            free: AtomicU64::new(u64::MAX),
            state: Mutex::new(State {
                read_at: None,
                read_error: None,
            }),
        }
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    fn ballast_path(&self) -> PathBuf {
        self.dir.join(BALLAST_FILE)
    }

    /// Whether the filesystem has `bytes` free beyond the reserve, read now rather than the
    /// last reading: the check before something big is written in one go (a snapshot
    /// install's tree). Err holds the figures. A free space that cannot be read passes: the
    /// guard's watch goes on protecting each write.
    pub fn room_for(&self, bytes: u64) -> Result<(), Pressure> {
        let Ok(free) = fs4::available_space(&self.dir) else {
            return Ok(());
        };
        let need = self.reserve.saturating_add(bytes);
        if free < need {
            return Err(Pressure { free, need });
        }
        Ok(())
    }

    /// The last reading, without touching the filesystem: Some while storage is full.
    pub fn pressure(&self) -> Option<Pressure> {
        self.full.load(Ordering::Acquire).then(|| Pressure {
            free: self.free.load(Ordering::Acquire),
            need: self.reserve,
        })
    }

    /// Free bytes at the last reading (u64::MAX before the first or with the guard off).
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Acquire)
    }

    /// Reads the free space again if the last reading is older than 100 ms, moves between
    /// the states, and returns the pressure if storage is full.
    pub fn check(&self) -> Option<Pressure> {
        if self.reserve == 0 {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.read_at.is_some_and(|t| t.elapsed() < FRESH) {
            return self.pressure();
        }
        state.read_at = Some(Instant::now());
        match fs4::available_space(&self.dir) {
            Ok(free) => {
                state.read_error = None;
                self.update(free);
            }
            Err(e) => {
                let message = e.to_string();
                if state.read_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(dir = %self.dir.display(), error = %message,
                        "cannot read the free space of the data dir's filesystem; keeping the last state");
                    state.read_error = Some(message);
                }
            }
        }
        self.pressure()
    }

    fn update(&self, free: u64) {
        self.free.store(free, Ordering::Release);
        let margin = self.reserve / 8;
        let ballast = self.ballast_path().exists();
        if !self.full.load(Ordering::Acquire) {
            if free < self.reserve {
                self.full.store(true, Ordering::Release);
                let released = ballast && self.release_ballast();
                tracing::error!(
                    free = %size(free), reserve = %size(self.reserve), released_ballast = released,
                    "storage full: refusing new writes and log entries until space is freed; \
                     free space or grow the volume"
                );
            } else if !ballast && free >= self.reserve + self.ballast_len + margin {
                self.allocate_ballast();
            }
            return;
        }
        let wanted = self.reserve + margin + if ballast { 0 } else { self.ballast_len };
        if free >= wanted && (ballast || self.allocate_ballast()) {
            self.full.store(false, Ordering::Release);
            tracing::info!(free = %size(free), "storage has room again: taking writes");
        }
    }

    /// Removes the ballast; true if it was removed.
    fn release_ballast(&self) -> bool {
        match fs::remove_file(self.ballast_path()) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove the ballast file");
                false
            }
        }
    }

    /// Creates the ballast with its blocks allocated (not a sparse file); true on success.
    fn allocate_ballast(&self) -> bool {
        if self.ballast_len == 0 {
            return true;
        }
        let path = self.ballast_path();
        let made = File::create(&path)
            .and_then(|f| f.allocate(self.ballast_len).and_then(|()| f.sync_all()));
        match made {
            Ok(()) => true,
            Err(e) => {
                let _ = fs::remove_file(&path);
                tracing::warn!(error = %e, "cannot allocate the ballast file");
                false
            }
        }
    }

    /// Before sled opens the database: on a disk already below the reserve, release the
    /// ballast so that sled's recovery has room to write.
    pub fn before_open(&self) {
        if self.reserve == 0 {
            return;
        }
        if let Ok(free) = fs4::available_space(&self.dir) {
            if free < self.reserve && self.release_ballast() {
                tracing::warn!(free = %size(free), "disk nearly full at start: released the ballast for recovery");
            }
        }
    }

    /// Reads the free space every 250 ms until `stopped`, so that the state changes even
    /// when nothing is written (freed space is noticed without a write to trigger it).
    pub fn spawn_watch(
        self: std::sync::Arc<Self>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.reserve == 0 {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let guard = self.clone();
                        let _ = tokio::task::spawn_blocking(move || guard.check()).await;
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_below_the_reserve_releases_the_ballast_and_clears_with_room() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path(), 8 * 1024 * 1024);
        guard.update(100 * 1024 * 1024);
        assert!(guard.ballast_path().exists(), "ballast allocated with room");
        assert_eq!(guard.pressure(), None);

        guard.update(1024 * 1024);
        assert_eq!(
            guard.pressure(),
            Some(Pressure {
                free: 1024 * 1024,
                need: 8 * 1024 * 1024
            })
        );
        assert!(!guard.ballast_path().exists(), "ballast released when full");

        // Just above the reserve is not enough: the ballast and a margin must fit too.
        guard.update(8 * 1024 * 1024 + 1);
        assert!(guard.pressure().is_some());
        guard.update(20 * 1024 * 1024);
        assert_eq!(guard.pressure(), None);
        assert!(guard.ballast_path().exists());
    }

    #[test]
    fn a_reserve_of_zero_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path(), 0);
        assert_eq!(guard.check(), None);
        assert!(!guard.ballast_path().exists());
    }
}
