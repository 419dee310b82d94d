//! Where the user data lives in the `sm` tree: in *generations*, so a restore can stage a
//! whole backup beside the current data and its commit only switches which generation is
//! current (O(1), whatever the size), leaving the old one to the janitor.
//!
//! - generation 0 is `d/KEY` (where all data lived before generations, so older data dirs
//!   need no migration); generation N ≥ 1 is `g/` + N (8 bytes, big-endian) + `KEY`;
//! - what a restore stages besides data goes under `x/` + N: `c` + seq (8 bytes) marks a
//!   staged chunk, `r` + `q/…` or `u/…` is a staged quota or usage record;
//! - `m/data_gen` (absent: 0) is the current generation, `m/staging_gen` the one a restore
//!   stages into (absent: none), `m/next_gen` (absent: 1) the next one to hand out. They
//!   only ever grow, so a generation that stopped being current or staging never becomes
//!   either again, and the janitor may delete it whenever nothing reads it.
//!
//! Snapshots (and so backups) keep the layout they had before generations: the current
//! generation is named `d/`, a staged restore `r/d/` (its records `r/q/`, `r/u/`, its chunk
//! markers `m/restore_chunk/`), and everything else of the layout is left out but the
//! digest (`m/digest`, the sums of the state the snapshot holds). An
//! installer puts them back as generation 0 and, for a staged restore, generation 1, so
//! every node holds the same logical state whatever numbers its generations have.

use std::sync::{Arc, Mutex};

use super::{KEY_APPLIED, KEY_DIGEST, KEY_MEMBERSHIP};
use crate::store::freeze::{Naming, View};

pub(super) const DATA_PREFIX: &[u8] = b"d/";
pub(super) const GEN_PREFIX: &[u8] = b"g/";
pub(super) const EXTRA_PREFIX: &[u8] = b"x/";
const TAG_CHUNK: u8 = b'c';
const TAG_RECORD: u8 = b'r';
pub(super) const KEY_DATA_GEN: &[u8] = b"m/data_gen";
pub(super) const KEY_STAGING_GEN: &[u8] = b"m/staging_gen";
pub(super) const KEY_NEXT_GEN: &[u8] = b"m/next_gen";
/// A staged restore's names in snapshots (and, before generations, in the tree).
pub(super) const STAGE_PREFIX: &[u8] = b"r/";
pub(super) const CHUNK_MARK_PREFIX: &[u8] = b"m/restore_chunk/";
/// The generation an installed snapshot's staged restore goes to.
const INSTALLED_STAGING: u64 = 1;

/// The key prefix of generation `gen`'s data.
pub(super) fn data_prefix(gen: u64) -> Vec<u8> {
    if gen == 0 {
        DATA_PREFIX.to_vec()
    } else {
        [GEN_PREFIX, &gen.to_be_bytes()].concat()
    }
}

/// The user key of `key` if it is generation `gen`'s data.
pub(super) fn user_key(gen: u64, key: &[u8]) -> Option<&[u8]> {
    if gen == 0 {
        return key.strip_prefix(DATA_PREFIX);
    }
    split_gen(key, GEN_PREFIX).and_then(|(g, rest)| (g == gen).then_some(rest))
}

/// The key prefix of what generation `gen`'s restore stages besides data.
pub(super) fn extra_prefix(gen: u64) -> Vec<u8> {
    [EXTRA_PREFIX, &gen.to_be_bytes()].concat()
}

pub(super) fn chunk_mark(gen: u64, seq: u64) -> Vec<u8> {
    [&extra_prefix(gen)[..], &[TAG_CHUNK], &seq.to_be_bytes()].concat()
}

/// Where a staged quota or usage record (`key` = `q/…`, `u/…`) of generation `gen` waits.
pub(super) fn staged_record(gen: u64, key: &[u8]) -> Vec<u8> {
    [&extra_prefix(gen)[..], &[TAG_RECORD], key].concat()
}

/// The prefix of every staged record of generation `gen`.
pub(super) fn staged_records(gen: u64) -> Vec<u8> {
    [&extra_prefix(gen)[..], &[TAG_RECORD]].concat()
}

/// Splits `g/`+N+rest or `x/`+N+rest into (N, rest).
pub(super) fn split_gen<'k>(key: &'k [u8], prefix: &[u8]) -> Option<(u64, &'k [u8])> {
    let rest = key.strip_prefix(prefix)?;
    let (n, rest) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(n.try_into().ok()?), rest))
}

/// Which generation is current, which one a restore stages into, and the next one free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Generations {
    pub current: u64,
    pub staging: Option<u64>,
    pub next: u64,
}

fn read_gen(tree: &sled::Tree, key: &[u8]) -> std::io::Result<Option<u64>> {
    match tree.get(key).map_err(crate::store::io_error)? {
        None => Ok(None),
        Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
            Ok(b) => Ok(Some(u64::from_be_bytes(b))),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, not 8: the data dir is damaged",
                    String::from_utf8_lossy(key),
                    v.len()
                ),
            )),
        },
    }
}

impl Generations {
    pub fn load(tree: &sled::Tree) -> std::io::Result<Generations> {
        Ok(Generations {
            current: read_gen(tree, KEY_DATA_GEN)?.unwrap_or(0),
            staging: read_gen(tree, KEY_STAGING_GEN)?,
            next: read_gen(tree, KEY_NEXT_GEN)?.unwrap_or(1),
        })
    }

    /// What an installed snapshot uses: its data as generation 0, its staged restore (if it
    /// has one) as generation 1.
    pub fn installed(staged: bool) -> Generations {
        Generations {
            current: 0,
            staging: staged.then_some(INSTALLED_STAGING),
            next: INSTALLED_STAGING + 1,
        }
    }

    /// The pairs that record these generations in the tree (None: delete the key).
    pub fn records(&self) -> [(&'static [u8], Option<Vec<u8>>); 3] {
        let be = |n: u64| n.to_be_bytes().to_vec();
        [
            (KEY_DATA_GEN, Some(be(self.current))),
            (KEY_STAGING_GEN, self.staging.map(be)),
            (KEY_NEXT_GEN, Some(be(self.next))),
        ]
    }

    /// Whether generation `gen`'s data is in use (current or being staged).
    pub fn live(&self, gen: u64) -> bool {
        gen == self.current || Some(gen) == self.staging
    }

    /// How snapshots taken now name the tree's keys, and the generations they read.
    pub fn snapshot_view(&self) -> View {
        let gens = *self;
        let name: Naming = Arc::new(move |key: &[u8]| gens.snapshot_name(key));
        View {
            name,
            generations: [Some(self.current), self.staging]
                .into_iter()
                .flatten()
                .collect(),
        }
    }

    /// A key's name in a snapshot taken now (None: left out).
    fn snapshot_name(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.starts_with(DATA_PREFIX) {
            return (self.current == 0).then(|| key.to_vec());
        }
        if let Some((gen, rest)) = split_gen(key, GEN_PREFIX) {
            return if gen == self.current {
                Some([DATA_PREFIX, rest].concat())
            } else if Some(gen) == self.staging {
                Some([STAGE_PREFIX, DATA_PREFIX, rest].concat())
            } else {
                None
            };
        }
        if let Some((gen, rest)) = split_gen(key, EXTRA_PREFIX) {
            if Some(gen) != self.staging {
                return None;
            }
            return match rest.split_first() {
                Some((&TAG_CHUNK, seq)) => Some([CHUNK_MARK_PREFIX, seq].concat()),
                Some((&TAG_RECORD, record)) => Some([STAGE_PREFIX, record].concat()),
                _ => None,
            };
        }
        // The digest is the one layout record snapshots carry: the sums of exactly the
        // state they hold, which a backup's manifest records and `verify-backup` checks.
        // An installer never takes it (see `installed_name`): it sums what it loads.
        let layout = key.starts_with(GEN_PREFIX)
            || key.starts_with(EXTRA_PREFIX)
            || key.starts_with(STAGE_PREFIX)
            || key.starts_with(CHUNK_MARK_PREFIX)
            || (LAYOUT_RECORDS.contains(&key) && key != KEY_DIGEST);
        (!layout).then(|| key.to_vec())
    }
}

/// The layout's own single records: where data lives and what is applied, never copied
/// between nodes as they are.
const LAYOUT_RECORDS: [&[u8]; 6] = [
    KEY_APPLIED,
    KEY_MEMBERSHIP,
    KEY_DATA_GEN,
    KEY_STAGING_GEN,
    KEY_NEXT_GEN,
    KEY_DIGEST,
];

/// Where a snapshot's pair goes in the tree of a node that installs it with
/// [`Generations::installed`] (None: dropped — the layout's own records, and what a snapshot
/// of an older release staged that a restore no longer uses).
pub(super) fn installed_name(key: &[u8]) -> Option<Vec<u8>> {
    if let Some(staged) = key.strip_prefix(STAGE_PREFIX) {
        if let Some(rest) = staged.strip_prefix(DATA_PREFIX) {
            return Some([&data_prefix(INSTALLED_STAGING)[..], rest].concat());
        }
        if staged.starts_with(super::QUOTA_PREFIX) || staged.starts_with(super::USAGE_PREFIX) {
            return Some(staged_record(INSTALLED_STAGING, staged));
        }
        return None;
    }
    if let Some(seq) = key.strip_prefix(CHUNK_MARK_PREFIX) {
        let seq: [u8; 8] = seq.try_into().ok()?;
        return Some(chunk_mark(INSTALLED_STAGING, u64::from_be_bytes(seq)));
    }
    let layout = key.starts_with(GEN_PREFIX)
        || key.starts_with(EXTRA_PREFIX)
        || LAYOUT_RECORDS.contains(&key);
    (!layout).then(|| key.to_vec())
}

/// The generation reads use. A read takes the current [`Slot`] and holds it to its end;
/// the state machine switches it when a restore commits and keeps the old one in
/// `retired`, and the janitor deletes a replaced generation only once no read holds it.
pub struct Current {
    slot: Mutex<Arc<Slot>>,
    retired: Mutex<Vec<Arc<Slot>>>,
}

pub struct Slot {
    pub gen: u64,
    pub prefix: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Current {
    pub(super) fn new(gen: u64) -> Current {
        Current {
            slot: Mutex::new(Arc::new(Slot {
                gen,
                prefix: data_prefix(gen),
            })),
            retired: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self) -> Arc<Slot> {
        lock(&self.slot).clone()
    }

    pub(super) fn switch(&self, gen: u64) {
        let new = Arc::new(Slot {
            gen,
            prefix: data_prefix(gen),
        });
        let old = std::mem::replace(&mut *lock(&self.slot), new);
        if old.gen != gen {
            lock(&self.retired).push(old);
        }
    }

    /// Whether a read may still hold generation `gen` (a replaced slot someone holds).
    pub(super) fn in_use(&self, gen: u64) -> bool {
        let mut retired = lock(&self.retired);
        retired.retain(|s| Arc::strong_count(s) > 1);
        retired.iter().any(|s| s.gen == gen)
    }
}
