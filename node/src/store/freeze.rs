//! Point-in-time views of the state-machine tree for snapshots, without pausing applies.
//!
//! sled has no snapshots of its own, so a snapshot is a scan of the live tree in key order
//! while applies go on, made consistent by copy-on-write: from the moment a snapshot's
//! index is fixed (a [`Freeze`] begins) until its scan ends, an apply that is about to
//! overwrite or delete a key the scan has not reached yet first saves the key's old value,
//! or an "absent" marker for a key it creates, in a side tree of that freeze. The scan
//! prefers the side tree's entry for a key, so it sees every key as it was at the index.
//!
//! The scan and the applies meet at one mutex per freeze: the scan holds it while it reads
//! one bounded batch of keys (a few MiB) and moves its position; an apply holds it from
//! saving the old values to writing its own batch. Neither waits for more than one batch
//! of the other. Only keys an apply touches are copied, so the cost is proportional to the
//! writes made during the scan, never to the size of the data.
//!
//! A freeze also has a *view*, fixed when it begins: which keys of the tree its snapshot
//! holds and under which names (the state machine keeps its data in generations and names
//! the current one `d/` in snapshots, see `state_machine`). Keys outside the view are
//! neither copied nor emitted, and a freeze names the generations its view reads so the
//! state machine's janitor leaves them alone while it lasts ([`Freezes::protected`]).

use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::io_error;

type IoResult<T> = std::io::Result<T>;

/// Side trees are named with this prefix and the freeze's number.
pub const SIDE_TREE_PREFIX: &str = "snapshot_side/";
/// Marks, in a side tree, a key that did not exist at the snapshot's index.
const ABSENT: u8 = 0;
const PRESENT: u8 = 1;

/// The freezes in progress on one state machine. One mutex covers them all: there is
/// rarely more than one, and an apply must hold back every scan at once.
#[derive(Default)]
pub struct Freezes {
    active: Mutex<Vec<Frozen>>,
    idle: Condvar,
}

struct Frozen {
    id: u64,
    side: sled::Tree,
    /// The last key the scan has passed; None before the first batch.
    passed: Option<Vec<u8>>,
    view: View,
}

/// A key's name in a snapshot (None: the snapshot leaves it out).
pub type Naming = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// What a freeze's snapshot holds: the name each key of the tree has in it, and the data
/// generations that naming reads.
#[derive(Clone)]
pub struct View {
    pub name: Naming,
    pub generations: Vec<u64>,
}

/// A snapshot's frozen view, as its builder holds it.
pub struct Freeze {
    freezes: Arc<Freezes>,
    db: sled::Db,
    id: u64,
}

/// One batch of a scan: pairs as they were at the snapshot's index, and whether the scan
/// is complete.
pub struct Batch {
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    pub done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn side_name(id: u64) -> String {
    format!("{SIDE_TREE_PREFIX}{id}")
}

impl Freezes {
    /// Starts a frozen view of the tree as it is now. Must be called where no apply runs
    /// concurrently (on the state-machine task), so "now" is one applied index.
    pub fn begin(self: &Arc<Self>, db: &sled::Db, id: u64, view: View) -> IoResult<Freeze> {
        let side = db.open_tree(side_name(id)).map_err(io_error)?;
        side.clear().map_err(io_error)?;
        lock(&self.active).push(Frozen {
            id,
            side,
            passed: None,
            view,
        });
        Ok(Freeze {
            freezes: self.clone(),
            db: db.clone(),
            id,
        })
    }

    /// Waits until no freeze is in progress (before the whole tree is replaced).
    pub fn wait_idle(&self) {
        let mut active = lock(&self.active);
        while !active.is_empty() {
            active = self.idle.wait(active).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The data generations some freeze in progress still reads.
    pub fn protected(&self) -> Vec<u64> {
        lock(&self.active)
            .iter()
            .flat_map(|f| f.view.generations.iter().copied())
            .collect()
    }

    /// Saves, for every freeze whose scan has not passed them yet, the current values of
    /// `keys` (which the caller is about to write in `tree`). The guard holds every scan
    /// where it is until the caller's batch is written and the guard dropped.
    pub fn before_write<'k>(
        &self,
        tree: &sled::Tree,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
    ) -> IoResult<WriteHold<'_>> {
        let active = lock(&self.active);
        for frozen in active.iter() {
            for key in keys.clone() {
                let ahead = frozen.passed.as_deref().is_none_or(|p| key > p);
                // A key outside the view is never read by the scan: nothing to keep.
                if ahead
                    && (frozen.view.name)(key).is_some()
                    && !frozen.side.contains_key(key).map_err(io_error)?
                {
                    let marker = match tree.get(key).map_err(io_error)? {
                        Some(old) => [&[PRESENT], old.as_ref()].concat(),
                        None => vec![ABSENT],
                    };
                    frozen.side.insert(key, marker).map_err(io_error)?;
                }
            }
        }
        Ok(WriteHold(active))
    }
}

/// Held by an apply from saving old values until its own batch is written.
pub struct WriteHold<'a>(#[allow(dead_code)] MutexGuard<'a, Vec<Frozen>>);

impl Freeze {
    /// The next keys of the frozen view, at most `max_keys` and about `max_bytes` read,
    /// named as the view names them (so not in key order when it renames).
    pub fn next_batch(
        &self,
        tree: &sled::Tree,
        max_keys: usize,
        max_bytes: usize,
    ) -> IoResult<Batch> {
        let mut active = lock(&self.freezes.active);
        let Some(frozen) = active.iter_mut().find(|f| f.id == self.id) else {
            return Err(std::io::Error::other(
                "the snapshot's frozen view was ended",
            ));
        };
        let from = match &frozen.passed {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let live = take_bounded(
            tree.range((from.clone(), Bound::Unbounded)),
            max_keys,
            max_bytes,
        )?;
        let side = take_bounded(
            frozen.side.range((from, Bound::Unbounded)),
            max_keys,
            max_bytes,
        )?;
        // Keys up to `upto` are complete in both lists; a list cut short ends earlier.
        let upto = [&live, &side]
            .iter()
            .filter(|l| l.cut)
            .filter_map(|l| l.items.last().map(|(k, _)| k.clone()))
            .min();
        let within = |k: &[u8]| upto.as_deref().is_none_or(|u| k <= u);
        let mut pairs = Vec::new();
        let mut last = None;
        let mut li = live.items.into_iter().peekable();
        let mut si = side.items.into_iter().peekable();
        loop {
            let from_live = match (li.peek(), si.peek()) {
                (None, None) => break,
                (Some((lk, _)), Some((sk, _))) => lk < sk,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let (key, value) = if from_live {
                let Some((k, v)) = li.next() else { break };
                (k, Some(v))
            } else {
                let Some((k, marker)) = si.next() else { break };
                // A live key of the same name is what came after the index: skip it.
                if li.peek().is_some_and(|(lk, _)| *lk == k) {
                    li.next();
                }
                let value = match marker.split_first() {
                    Some((&PRESENT, old)) => Some(old.to_vec()),
                    _ => None,
                };
                (k, value)
            };
            if !within(&key) {
                break;
            }
            if let (Some(v), Some(name)) = (value, (frozen.view.name)(&key)) {
                pairs.push((name, v));
            }
            last = Some(key);
        }
        if let Some(k) = last {
            frozen.passed = Some(k);
        }
        Ok(Batch {
            pairs,
            done: upto.is_none(),
        })
    }
}

impl Drop for Freeze {
    /// Ends the freeze, finished or abandoned, and drops its side tree.
    fn drop(&mut self) {
        let mut active = lock(&self.freezes.active);
        active.retain(|f| f.id != self.id);
        if active.is_empty() {
            self.freezes.idle.notify_all();
        }
        drop(active);
        let name = side_name(self.id);
        if let Err(e) = self.db.drop_tree(name.as_bytes()) {
            tracing::warn!(tree = %name, error = %e, "cannot drop a snapshot's side tree; it is dropped on the next start");
        }
    }
}

struct Taken {
    items: Vec<(Vec<u8>, Vec<u8>)>,
    /// Stopped at a limit: more keys may follow.
    cut: bool,
}

fn take_bounded(
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    max_keys: usize,
    max_bytes: usize,
) -> IoResult<Taken> {
    let mut items = Vec::new();
    let mut bytes = 0usize;
    for item in iter {
        let (k, v) = item.map_err(io_error)?;
        bytes = bytes.saturating_add(k.len() + v.len());
        items.push((k.to_vec(), v.to_vec()));
        if items.len() >= max_keys || bytes >= max_bytes {
            return Ok(Taken { items, cut: true });
        }
    }
    Ok(Taken { items, cut: false })
}

/// Drops side trees a crash left behind (their snapshots were never finished).
pub fn drop_leftovers(db: &sled::Db) -> IoResult<usize> {
    let mut dropped = 0;
    for name in db.tree_names() {
        if name.starts_with(SIDE_TREE_PREFIX.as_bytes()) {
            db.drop_tree(&name).map_err(io_error)?;
            dropped += 1;
        }
    }
    Ok(dropped)
}
