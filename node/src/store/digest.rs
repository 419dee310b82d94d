//! The state digest kept by each node: the arithmetic and the stored sums are
//! [`crate::sums`] (re-exported here); this file holds the ring of recent digests.
//!
//! What is covered (the *logical* replicated state, the same on every node whatever its
//! generation numbers): the current generation's user data (named `d/KEY`), tenant quotas
//! `q/` and usage `u/`, API key records `k/` and the audit trail `a/`. Not covered: the
//! node's own bookkeeping under `m/` (applied id, membership, counts, the generation
//! numbers, a staged restore's record), data of generations that are not current, and what a
//! restore stages before its commit — its data is summed separately ([`DigestState::staged`])
//! as its chunks are applied, so the commit switches to it in O(1).

use std::collections::VecDeque;
use std::sync::Mutex;

pub use crate::sums::{Digest, DigestState, Part};

/// Applied indexes whose digest the ring keeps (one per entry: ~136 bytes each, 1.1 MiB).
pub const RING_ENTRIES: usize = 8192;

/// The digest after one applied entry: the total, the parts a restore replaces, and the
/// root of the Merkle tree over the data (`crate::merkle`; the proofs' root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    pub index: u64,
    pub total: Digest,
    pub data: Digest,
    pub tenants: Digest,
    pub merkle: Digest,
}

impl Held {
    pub fn of(state: &DigestState, merkle: Digest) -> Held {
        Held {
            index: state.index,
            total: state.total(),
            data: state.data,
            tenants: state.tenants,
            merkle,
        }
    }

    pub fn at(index: u64, state: &DigestState, merkle: Digest) -> Held {
        Held {
            index,
            ..Held::of(state, merkle)
        }
    }
}

/// The digest after each recently applied entry, in memory, so nodes can be compared at
/// one index without pausing anyone. Indexes are contiguous, except that a snapshot install
/// starts the ring over at the snapshot's index.
#[derive(Debug, Default)]
pub struct DigestRing {
    ring: Mutex<VecDeque<Held>>,
    /// Off (`OPSDECK_DIGEST=off`): nothing is recorded and every lookup says so.
    off: bool,
}

/// The answer to "the digest at index N?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    At(Held),
    /// Not held: the ring holds `oldest..=newest`.
    NotHeld {
        oldest: u64,
        newest: u64,
    },
    /// The node keeps no digest (turned off for measuring).
    Off,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DigestRing {
    pub fn new(off: bool) -> DigestRing {
        DigestRing {
            ring: Mutex::new(VecDeque::with_capacity(if off { 0 } else { RING_ENTRIES })),
            off,
        }
    }

    pub fn is_off(&self) -> bool {
        self.off
    }

    /// Entries applied, in order (indexes at or below the newest held are ignored).
    pub fn extend(&self, entries: impl IntoIterator<Item = Held>) {
        let mut ring = lock(&self.ring);
        for held in entries {
            if ring.back().is_some_and(|newest| newest.index >= held.index) {
                continue;
            }
            if ring.len() == RING_ENTRIES {
                ring.pop_front();
            }
            ring.push_back(held);
        }
    }

    /// Starts over at `held.index` (a snapshot was installed: earlier indexes were never
    /// applied here).
    pub fn reset(&self, held: Held) {
        let mut ring = lock(&self.ring);
        ring.clear();
        ring.push_back(held);
    }

    /// The digest at `index`, or the newest one (`None`).
    pub fn lookup(&self, index: Option<u64>) -> Lookup {
        if self.off {
            return Lookup::Off;
        }
        let ring = lock(&self.ring);
        let (Some(oldest), Some(newest)) = (ring.front(), ring.back()) else {
            return Lookup::NotHeld {
                oldest: 0,
                newest: 0,
            };
        };
        let Some(index) = index else {
            return Lookup::At(*newest);
        };
        match ring.binary_search_by_key(&index, |h| h.index) {
            Ok(at) => Lookup::At(ring[at]),
            Err(_) => Lookup::NotHeld {
                oldest: oldest.index,
                newest: newest.index,
            },
        }
    }

    /// The indexes held, oldest and newest (None: none, or off).
    pub fn held(&self) -> Option<(u64, u64)> {
        let ring = lock(&self.ring);
        Some((ring.front()?.index, ring.back()?.index))
    }

    /// The newest held index that is a multiple of `step` (the frame's checkpoint, so
    /// nodes sampled at different moments still report one index in common).
    pub fn checkpoint(&self, step: u64) -> Option<(u64, Digest)> {
        if self.off || step == 0 {
            return None;
        }
        let ring = lock(&self.ring);
        let newest = ring.back()?.index;
        let want = newest - newest % step;
        let at = ring.binary_search_by_key(&want, |h| h.index).ok()?;
        Some((ring[at].index, ring[at].total))
    }
}
