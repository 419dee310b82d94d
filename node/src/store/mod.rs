//! Durable storage of one node: a data directory holding an identity file and one sled
//! database with the Raft log ([`log_store`]) and the state machine ([`state_machine`]).

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); helpers
// that feed those traits return it as is.
pub mod defrag;
pub mod digest;
pub mod disk_guard;
pub mod freeze;
pub mod housekeeping;
#[allow(clippy::result_large_err)]
pub mod log_store;
pub mod snapshot_file;
pub mod state_machine;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use state_machine::{KvReader, StateMachine};

use crate::types::NodeId;

/// Version of the on-disk layout; a directory written by another version is refused.
/// Version 2 keeps data in generations (`state_machine::generations`), so a restore's
/// commit is a switch; an older build would read an empty or stale `d/` there.
pub const DATA_FORMAT: u32 = 2;
/// Older layouts this build opens and upgrades in place: version 1 kept all data under
/// `d/`, which is generation 0 of version 2, so the upgrade only rewrites the identity file.
const UPGRADES_FROM: &[u32] = &[1];
const IDENTITY_FILE: &str = "node.toml";
const DB_DIR: &str = "db";
/// The node's own log file (and its rotated copies `node.log.1`, ...).
pub const LOG_FILE: &str = "node.log";

/// Why a data directory could not be opened. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data dir {path}: {source} (check the path and its permissions)")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "data dir {path} is not an opsdeck data dir (it holds other files and no {IDENTITY_FILE}); \
         point --data at an empty or opsdeck-owned directory"
    )]
    Foreign { path: PathBuf },
    #[error("data dir {path}: {IDENTITY_FILE} is unreadable: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
    #[error(
        "data dir {path} belongs to node {found}, not node {wanted}; \
         use --id {found} or another --data directory"
    )]
    WrongNode {
        path: PathBuf,
        found: NodeId,
        wanted: NodeId,
    },
    #[error("data dir {path} has format version {found}, this build reads version {DATA_FORMAT}")]
    WrongFormat { path: PathBuf, found: u32 },
    #[error(
        "data dir {path}: another process holds the database lock ({reason}); stop the other \
         node using this directory, or point --data elsewhere"
    )]
    Locked { path: PathBuf, reason: String },
    #[error(
        "data dir {path}: cannot open the database: {reason}. If it is corrupt, rebuild this \
         node: move the data dir aside and add the node back to the cluster (it catches up \
         from the others), or restore a backup"
    )]
    Db { path: PathBuf, reason: String },
    #[error(
        "data dir {path}: no space left on the device to open the database ({reason}); \
         free space or grow the volume"
    )]
    NoSpace { path: PathBuf, reason: String },
}

/// The identity file written on first start and checked on every later one.
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    format: u32,
    node_id: NodeId,
}

/// An opened data directory: the sled database and the two Raft stores on it.
pub struct Storage {
    pub db: sled::Db,
    pub log: LogStore,
    pub state_machine: StateMachine,
    /// True when the directory was created by this call (a brand-new node).
    pub fresh: bool,
    pub housekeeping: Arc<housekeeping::Housekeeping>,
}

impl Storage {
    /// Opens (creating if empty or missing) the data directory of node `node_id`.
    pub fn open(path: &Path, node_id: NodeId) -> Result<Storage, OpenError> {
        let io_err = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        fs::create_dir_all(path).map_err(io_err)?;
        let identity_path = path.join(IDENTITY_FILE);
        let mut upgrade_from = None;
        let fresh = match fs::read_to_string(&identity_path) {
            Ok(text) => {
                let id: Identity = toml::from_str(&text).map_err(|e| OpenError::BadIdentity {
                    path: path.to_path_buf(),
                    reason: e.message().to_string(),
                })?;
                if UPGRADES_FROM.contains(&id.format) {
                    upgrade_from = Some(id.format);
                } else if id.format != DATA_FORMAT {
                    return Err(OpenError::WrongFormat {
                        path: path.to_path_buf(),
                        found: id.format,
                    });
                }
                if id.node_id != node_id {
                    return Err(OpenError::WrongNode {
                        path: path.to_path_buf(),
                        found: id.node_id,
                        wanted: node_id,
                    });
                }
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Only a database (and the log file) left by a start that crashed before
                // writing the identity file may be there; anything else is someone else's.
                for entry in fs::read_dir(path).map_err(io_err)? {
                    let name = entry.map_err(io_err)?.file_name();
                    let ours = name == DB_DIR || name.to_string_lossy().starts_with(LOG_FILE);
                    if !ours {
                        return Err(OpenError::Foreign {
                            path: path.to_path_buf(),
                        });
                    }
                }
                true
            }
            Err(e) => return Err(io_err(e)),
        };

        defrag::recover_swap(path);
        repair_leftovers(&path.join(DB_DIR));
        let db = sled::Config::new()
            .path(path.join(DB_DIR))
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|e| open_failure(path, e))?;
        let db_err = |e: io::Error| {
            let reason = e.to_string();
            let path = path.to_path_buf();
            if e.raw_os_error() == Some(28) || reason.contains(NO_SPACE) {
                OpenError::NoSpace { path, reason }
            } else {
                OpenError::Db { path, reason }
            }
        };
        let housekeeping = Arc::new(housekeeping::Housekeeping::default());
        let log = LogStore::open(&db, housekeeping.clone()).map_err(db_err)?;
        let state_machine = StateMachine::open(
            &db,
            path.join(snapshot_file::FILE_NAME),
            housekeeping.clone(),
        )
        .map_err(db_err)?;

        if let Some(from) = upgrade_from {
            tracing::info!(
                from,
                to = DATA_FORMAT,
                "upgrading the data dir's format (in place: only its identity file changes)"
            );
        }
        if fresh || upgrade_from.is_some() {
            // Written last, so a crash before this point leaves a directory that is
            // retried as fresh rather than one that claims an identity it never finished.
            let text = toml::to_string(&Identity {
                format: DATA_FORMAT,
                node_id,
            })
            .map_err(|e| OpenError::BadIdentity {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            fs::write(&identity_path, text).map_err(io_err)?;
        }
        Ok(Storage {
            db,
            log,
            state_machine,
            fresh,
            housekeeping,
        })
    }
}

/// Removes what an interrupted sled snapshot write leaves: sled writes `snap.N.generating`,
/// syncs it, then renames it to `snap.N`, so a `.generating` file is never complete. sled
/// itself would pick the newest one at the next start and refuse it as corrupt (a full
/// disk leaves them empty).
fn repair_leftovers(db_dir: &Path) {
    let Ok(entries) = fs::read_dir(db_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::warn!(file = %entry.path().display(), bytes = len,
                    "repaired: removed a half-written database snapshot left by a crash or a full disk"),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e,
                    "cannot remove a half-written database snapshot"),
            }
        }
    }
}

/// Waits, for at most `within`, until nothing holds the lock of the sled database in
/// `db_dir` (sled takes an exclusive `flock` on `db_dir/db`; this takes it too and lets go
/// at once), and answers whether it was released. Dropping a `sled::Db` does not close its
/// files at once: a background thread holds them a little longer (spacejam/sled#1234), so
/// code that closes a database and hands it on (defrag, then the node) waits here first.
pub fn wait_until_unlocked(db_dir: &Path, within: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + within;
    loop {
        let free = match fs::File::open(db_dir.join("db")) {
            Ok(file) => fs4::fs_std::FileExt::try_lock_exclusive(&file).unwrap_or(false),
            // No database file: nothing to hold.
            Err(_) => true,
        };
        if free || std::time::Instant::now() >= until {
            return free;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How the OS words ENOSPC, for errors that lost their code on the way through sled.
const NO_SPACE: &str = "No space left on device";

/// Names why sled could not open: the lock, a full disk, or the database itself.
fn open_failure(path: &Path, e: sled::Error) -> OpenError {
    let reason = e.to_string();
    let path = path.to_path_buf();
    match &e {
        sled::Error::Io(io) if io.raw_os_error() == Some(28) || reason.contains(NO_SPACE) => {
            OpenError::NoSpace { path, reason }
        }
        sled::Error::Io(_) if reason.contains("could not acquire lock") => {
            OpenError::Locked { path, reason }
        }
        _ => OpenError::Db { path, reason },
    }
}

impl OpenError {
    /// True when the open failed only for want of space (the node may wait and retry).
    pub fn is_no_space(&self) -> bool {
        matches!(self, OpenError::NoSpace { .. })
            || matches!(self, OpenError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

/// Maps a sled or codec failure to openraft's storage error.
pub(crate) fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, io::Error> {
    bincode::serialize(value).map_err(io_error)
}

pub(crate) fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, io::Error> {
    bincode::deserialize(bytes).map_err(io_error)
}
