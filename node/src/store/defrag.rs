//! Offline defrag of a stopped node's database. sled never gives space back: deleted pairs
//! leave its segments partly empty and it only truncates free segments at the end of its
//! file. Rewriting every tree into a fresh database and swapping it in does.
//!
//! [`defrag`] opens the stopped node's `DATA/db` (refused while a node holds its lock),
//! copies every tree into `DATA/db.defrag` in batches of at most [`BATCH_KEYS`] keys /
//! [`BATCH_BYTES`] (never the whole database in memory: sled's own `export`/`import` stream
//! too, but panic on any I/O error), flushes it, compares both pair by pair, and swaps:
//! `db` → `db.old` (the commit point: from here on the new copy is complete and checked),
//! `db.defrag` → `db`, then `db.old` removed, with the data dir fsynced after each rename.
//! [`recover_swap`], which `Storage::open` calls before opening sled, finishes or rolls
//! back a swap a kill -9 interrupted, so a node opens either the old or the new database,
//! never neither.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::disk_guard::dir_bytes;
use super::{wait_until_unlocked, DB_DIR, IDENTITY_FILE};

/// The fresh copy, while it is being written.
pub const NEW_DIR: &str = "db.defrag";
/// The old database between the two renames of the swap, and until it is removed.
pub const OLD_DIR: &str = "db.old";
/// At most this many keys, or [`BATCH_BYTES`], in one sled batch of the copy.
pub const BATCH_KEYS: usize = 4096;
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Room asked for beyond the current database's size: sled's own files (its config, a
/// snapshot of its page table, preallocated segments) in the new one.
pub const HEADROOM: u64 = 64 * 1024 * 1024;
/// Each of the two databases' page cache during the copy.
const CACHE: u64 = 16 * 1024 * 1024;
/// How long a closed database may stay locked by sled's background thread.
const RELEASE: Duration = Duration::from_secs(10);

/// What one defrag did.
#[derive(Debug, Clone, Serialize)]
pub struct DefragReport {
    /// The database directory's bytes before and after.
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub trees: usize,
    pub pairs: u64,
    /// Bytes of keys and values copied: the live data.
    pub live_bytes: u64,
    pub took_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DefragError {
    #[error(
        "{path} is not an opsdeck data dir ({what} missing); point --data at a node's data dir"
    )]
    NotADataDir { path: PathBuf, what: &'static str },
    #[error(
        "defrag refused, nothing changed: the database in {path} is locked by a running \
         process ({reason}); stop the node first (e.g. `systemctl stop opsdeck-node`)"
    )]
    Locked { path: PathBuf, reason: String },
    #[error(
        "defrag refused, nothing changed: not enough free space on the filesystem of {path}: \
         needed {needed} bytes ({needed_h}: the current database's size plus {headroom_h} \
         headroom, an upper bound of the copy), free {free} bytes ({free_h}); free space or \
         grow the volume"
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        free: u64,
        needed_h: String,
        free_h: String,
        headroom_h: String,
    },
    #[error("defrag of {path}: {step}: {reason}; the old database is unchanged")]
    Copy {
        path: PathBuf,
        step: &'static str,
        reason: String,
    },
    #[error(
        "defrag of {path}: {step}: {reason}; the node's next start (or the next defrag) \
         finishes the swap"
    )]
    Swap {
        path: PathBuf,
        step: &'static str,
        reason: String,
    },
}

/// The free-space check before anything changes: `needed` is the current database's size
/// plus [`HEADROOM`]. The copy holds the live pairs only, which the current database holds
/// too (with the garbage), so its size is an upper bound known without reading it; the
/// live size would need a full scan before the check, and a bound that errs low fails the
/// copy halfway on a full disk instead of up front.
pub fn check_space(path: &Path, db_bytes: u64, free: u64) -> Result<u64, DefragError> {
    let needed = db_bytes.saturating_add(HEADROOM);
    if free < needed {
        return Err(DefragError::NoSpace {
            path: path.to_path_buf(),
            needed,
            free,
            needed_h: human(needed),
            free_h: human(free),
            headroom_h: human(HEADROOM),
        });
    }
    Ok(needed)
}

fn human(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= 1024 * 1024 * 1024 {
        format!("{:.1} GiB", n as f64 / MIB / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / MIB)
    }
}

/// The size of the database in the data dir `data` and the free space of its filesystem:
/// the figures of the up-front check, for a caller that checks before stopping the node.
pub fn precheck(data: &Path) -> Result<DefragPlan, DefragError> {
    for (name, what) in [(IDENTITY_FILE, "its node.toml"), (DB_DIR, "its db")] {
        if !data.join(name).exists() {
            return Err(DefragError::NotADataDir {
                path: data.to_path_buf(),
                what,
            });
        }
    }
    let db_bytes = dir_bytes(&data.join(DB_DIR));
    let free = fs4::available_space(data).map_err(|e| DefragError::Copy {
        path: data.to_path_buf(),
        step: "reading the free space",
        reason: e.to_string(),
    })?;
    let needed = check_space(data, db_bytes, free)?;
    Ok(DefragPlan {
        db_bytes,
        needed,
        free,
    })
}

/// The figures of the free-space check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DefragPlan {
    pub db_bytes: u64,
    pub needed: u64,
    pub free: u64,
}

/// Rewrites the database of the stopped node whose data dir is `data` into a fresh one and
/// swaps it in. Refused, changing nothing, while the database is locked or when the
/// filesystem has not the room ([`check_space`]).
pub fn defrag(data: &Path) -> Result<DefragReport, DefragError> {
    let started = Instant::now();
    if !data.join(IDENTITY_FILE).exists() {
        return Err(DefragError::NotADataDir {
            path: data.to_path_buf(),
            what: "its node.toml",
        });
    }
    // A swap a crash interrupted is finished first, so the copy starts from one database.
    recover_swap(data);
    let plan = precheck(data)?;
    let db_path = data.join(DB_DIR);
    let new_path = data.join(NEW_DIR);
    let copy_err = |step: &'static str| {
        move |e: &dyn std::fmt::Display| DefragError::Copy {
            path: data.to_path_buf(),
            step,
            reason: e.to_string(),
        }
    };
    let src = sled::Config::new()
        .path(&db_path)
        .cache_capacity(CACHE)
        .open()
        .map_err(|e| {
            let reason = e.to_string();
            if reason.contains("could not acquire lock") {
                DefragError::Locked {
                    path: db_path.clone(),
                    reason,
                }
            } else {
                copy_err("opening the database")(&e)
            }
        })?;
    // A copy left by an interrupted defrag (never swapped in) is started over.
    remove_dir(&new_path).map_err(|e| copy_err("removing an unfinished copy")(&e))?;
    let (trees, pairs, live_bytes) = match copy_and_check(&src, &new_path) {
        Ok(figures) => figures,
        Err(e) => {
            drop(src);
            let _ = remove_dir(&new_path);
            return Err(e);
        }
    };
    drop(src);
    swap(data)?;
    Ok(DefragReport {
        before_bytes: plan.db_bytes,
        after_bytes: dir_bytes(&db_path),
        trees,
        pairs,
        live_bytes,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Copies every tree of `src` into a new database at `to`, flushes it, and compares the
/// two pair by pair. Answers trees, pairs and bytes copied.
fn copy_and_check(src: &sled::Db, to: &Path) -> Result<(usize, u64, u64), DefragError> {
    let err = |step: &'static str| {
        move |e: sled::Error| DefragError::Copy {
            path: to.to_path_buf(),
            step,
            reason: e.to_string(),
        }
    };
    let dst = sled::Config::new()
        .path(to)
        .cache_capacity(CACHE)
        .open()
        .map_err(err("creating the new database"))?;
    let names = src.tree_names();
    let (mut pairs, mut bytes) = (0u64, 0u64);
    for name in &names {
        let from = src.open_tree(name).map_err(err("opening a tree"))?;
        let into = dst.open_tree(name).map_err(err("creating a tree"))?;
        let mut batch = sled::Batch::default();
        let (mut keys, mut size) = (0usize, 0usize);
        for kv in from.iter() {
            let (k, v) = kv.map_err(err("reading the database"))?;
            size += k.len() + v.len();
            bytes += (k.len() + v.len()) as u64;
            keys += 1;
            pairs += 1;
            batch.insert(k, v);
            if keys >= BATCH_KEYS || size >= BATCH_BYTES {
                into.apply_batch(std::mem::take(&mut batch))
                    .map_err(err("writing the new database"))?;
                keys = 0;
                size = 0;
            }
        }
        if keys > 0 {
            into.apply_batch(batch)
                .map_err(err("writing the new database"))?;
        }
    }
    dst.flush().map_err(err("flushing the new database"))?;
    // What was written is read back and compared with the original, pair by pair.
    let mismatch = |what: String| DefragError::Copy {
        path: to.to_path_buf(),
        step: "comparing the copy",
        reason: what,
    };
    let mut dst_names = dst.tree_names();
    let mut src_names = names.clone();
    dst_names.sort();
    src_names.sort();
    if dst_names != src_names {
        return Err(mismatch("the trees differ".into()));
    }
    for name in &names {
        let a = src.open_tree(name).map_err(err("opening a tree"))?;
        let b = dst.open_tree(name).map_err(err("opening a tree"))?;
        let mut bi = b.iter();
        for kv in a.iter() {
            let kv = kv.map_err(err("reading the database"))?;
            match bi.next() {
                Some(Ok(other)) if other == kv => {}
                Some(Err(e)) => return Err(err("reading the new database")(e)),
                _ => return Err(mismatch(format!("tree {:?} differs", name.as_ref()))),
            }
        }
        if bi.next().is_some() {
            return Err(mismatch(format!(
                "tree {:?} has more pairs in the copy",
                name.as_ref()
            )));
        }
    }
    drop(dst);
    // The node that opens this database next must not find it still locked by us.
    if !wait_until_unlocked(to, RELEASE) {
        return Err(DefragError::Copy {
            path: to.to_path_buf(),
            step: "closing the new database",
            reason: format!("still locked after {} s", RELEASE.as_secs()),
        });
    }
    Ok((names.len(), pairs, bytes))
}

/// The swap: `db` → `db.old` (commit point), `db.defrag` → `db`, `db.old` removed.
fn swap(data: &Path) -> Result<(), DefragError> {
    let err = |step: &'static str| {
        move |e: io::Error| DefragError::Swap {
            path: data.to_path_buf(),
            step,
            reason: e.to_string(),
        }
    };
    // The copy's own files are on disk (sled flushed them); its directory entries too.
    sync_dir(&data.join(NEW_DIR)).map_err(err("syncing the new database"))?;
    fs::rename(data.join(DB_DIR), data.join(OLD_DIR)).map_err(|e| DefragError::Copy {
        path: data.to_path_buf(),
        step: "moving the old database aside",
        reason: e.to_string(),
    })?;
    sync_dir(data).map_err(err("syncing the data dir"))?;
    fs::rename(data.join(NEW_DIR), data.join(DB_DIR)).map_err(err("moving the new database in"))?;
    sync_dir(data).map_err(err("syncing the data dir"))?;
    remove_dir(&data.join(OLD_DIR)).map_err(err("removing the old database"))?;
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Finishes or rolls back a defrag a crash interrupted, from which of `db`, `db.defrag`
/// and `db.old` exist in the data dir `data`. Answers what it did, if anything (also
/// logged). `db.old` exists only once the copy was complete and checked, so:
///
/// - `db` and `db.defrag`: the copy never committed: `db.defrag` is removed;
/// - `db.old` and `db.defrag`, no `db`: between the renames: `db.defrag` becomes `db`;
/// - `db` and `db.old`: swapped, the old one not yet (fully) removed: it is removed;
/// - `db.old` alone: `db.old` becomes `db` again.
pub fn recover_swap(data: &Path) -> Option<String> {
    let (db, new, old) = (data.join(DB_DIR), data.join(NEW_DIR), data.join(OLD_DIR));
    let did = match (db.exists(), new.exists(), old.exists()) {
        (true, true, _) => remove_dir(&new).map(|()| "removed an unfinished defrag copy"),
        (false, true, true) => fs::rename(&new, &db)
            .and_then(|()| sync_dir(data))
            .and_then(|()| remove_dir(&old))
            .map(|()| "finished an interrupted defrag: its checked copy is the database now"),
        (true, false, true) => {
            remove_dir(&old).map(|()| "removed the old database a finished defrag left")
        }
        (false, false, true) => fs::rename(&old, &db)
            .and_then(|()| sync_dir(data))
            .map(|()| "put back the old database an interrupted defrag had moved aside"),
        _ => return None,
    };
    match did {
        Ok(what) => {
            tracing::warn!(dir = %data.display(), "repaired: {what}");
            Some(what.to_string())
        }
        Err(e) => {
            tracing::warn!(dir = %data.display(), error = %e, "cannot repair an interrupted defrag");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir with a node.toml and a database holding `n` pairs in two trees, most of
    /// them deleted again; answers its pairs.
    fn fixture(data: &Path, n: u32) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        fs::create_dir_all(data).unwrap();
        fs::write(data.join(IDENTITY_FILE), "format = 2\nnode_id = 1\n").unwrap();
        let db = sled::open(data.join(DB_DIR)).unwrap();
        let t = db.open_tree("sm").unwrap();
        for i in 0..n {
            t.insert(format!("k{i:06}"), vec![b'x'; 2048]).unwrap();
            db.insert(format!("log{i:06}"), vec![b'l'; 512]).unwrap();
        }
        for i in 0..n {
            if i % 10 != 0 {
                t.remove(format!("k{i:06}")).unwrap();
                db.remove(format!("log{i:06}")).unwrap();
            }
        }
        db.flush().unwrap();
        drop((t, db));
        assert!(wait_until_unlocked(&data.join(DB_DIR), RELEASE));
        contents(data)
    }

    fn contents(data: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let db = sled::open(data.join(DB_DIR)).unwrap();
        let mut all = Vec::new();
        for name in db.tree_names() {
            let tree = db.open_tree(&name).unwrap();
            for kv in tree.iter() {
                let (k, v) = kv.unwrap();
                all.push((
                    String::from_utf8_lossy(&name).into_owned(),
                    k.to_vec(),
                    v.to_vec(),
                ));
            }
        }
        all.sort();
        drop(db);
        assert!(wait_until_unlocked(&data.join(DB_DIR), RELEASE));
        all
    }

    #[test]
    fn defrag_keeps_every_pair_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("n1");
        let before = fixture(&data, 4000);
        assert_eq!(before.iter().filter(|p| p.0 == "sm").count(), 400);
        let report = defrag(&data).unwrap();
        eprintln!("{report:?}");
        assert_eq!(contents(&data), before, "the content is identical");
        assert_eq!(report.pairs, before.len() as u64);
        assert!(
            report.after_bytes < report.before_bytes,
            "the database shrank: {report:?}"
        );
        for leftover in [NEW_DIR, OLD_DIR] {
            assert!(!data.join(leftover).exists(), "{leftover} left behind");
        }
    }

    #[test]
    fn defrag_is_refused_while_the_database_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("n1");
        fixture(&data, 10);
        let held = sled::open(data.join(DB_DIR)).unwrap();
        let err = defrag(&data).unwrap_err();
        assert!(matches!(err, DefragError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("stop the node first"), "{err}");
        let db_dir = data.join(DB_DIR);
        assert!(!wait_until_unlocked(&db_dir, Duration::from_millis(50)));
        drop(held);
        assert!(
            wait_until_unlocked(&db_dir, RELEASE),
            "released after the drop"
        );
        assert!(!data.join(NEW_DIR).exists() && !data.join(OLD_DIR).exists());
    }

    #[test]
    fn a_dir_that_is_no_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = defrag(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not an opsdeck data dir"), "{err}");
    }

    #[test]
    fn the_space_check_names_needed_and_free() {
        let p = Path::new("/data");
        let err = check_space(p, 500 << 20, 100 << 20).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("needed 591396864 bytes (564.0 MiB"), "{text}");
        assert!(text.contains("free 104857600 bytes (100.0 MiB)"), "{text}");
        assert!(text.contains("nothing changed"), "{text}");
        assert_eq!(check_space(p, 500 << 20, 600 << 20).unwrap(), 564 << 20);
        // Exactly enough is enough.
        assert!(check_space(p, 0, HEADROOM).is_ok());
        assert!(check_space(p, 1, HEADROOM).is_err());
    }

    /// Each state a kill -9 can leave: the node opens either the old or the new database,
    /// with the same content.
    #[test]
    fn an_interrupted_swap_is_finished_or_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("n1");
        let want = fixture(&data, 200);
        let copy = |from: &str, to: &str| {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(data.join(from))
                .arg(data.join(to))
                .status()
                .unwrap();
            assert!(status.success());
        };
        let names = |data: &Path| {
            let mut n: Vec<String> = fs::read_dir(data)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("db"))
                .collect();
            n.sort();
            n
        };
        // Killed during the copy: db and a half db.defrag.
        fs::create_dir_all(data.join(NEW_DIR)).unwrap();
        fs::write(data.join(NEW_DIR).join("db"), b"half").unwrap();
        assert!(recover_swap(&data).is_some());
        assert_eq!(names(&data), ["db"]);
        assert_eq!(contents(&data), want);

        // Killed between the renames: db.old and the complete db.defrag.
        copy(DB_DIR, NEW_DIR);
        fs::rename(data.join(DB_DIR), data.join(OLD_DIR)).unwrap();
        assert!(recover_swap(&data).is_some());
        assert_eq!(names(&data), ["db"]);
        assert_eq!(contents(&data), want);

        // Killed while removing db.old.
        copy(DB_DIR, OLD_DIR);
        assert!(recover_swap(&data).is_some());
        assert_eq!(names(&data), ["db"]);

        // Only db.old (the new one lost): the old one is put back.
        fs::rename(data.join(DB_DIR), data.join(OLD_DIR)).unwrap();
        assert!(recover_swap(&data).is_some());
        assert_eq!(names(&data), ["db"]);
        assert_eq!(contents(&data), want);

        // Nothing to do.
        assert!(recover_swap(&data).is_none());

        // And through Storage::open, as a node's start does.
        copy(DB_DIR, NEW_DIR);
        fs::rename(data.join(DB_DIR), data.join(OLD_DIR)).unwrap();
        fs::write(data.join(IDENTITY_FILE), "format = 2\nnode_id = 1\n").unwrap();
        let storage = crate::store::Storage::open(&data, 1).unwrap();
        drop(storage);
        assert_eq!(names(&data), ["db"]);
    }
}
