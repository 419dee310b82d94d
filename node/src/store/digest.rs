//! The state digest: one 256-bit number that every node holding the same replicated state
//! holds too, kept up to date by each apply in O(1) per changed key (no scan).
//!
//! The digest of a set of pairs is the sum, modulo 2^256, of `sha256(len(name) as u64 BE
//! ‖ name ‖ value)` over its pairs. A sum is order-independent (nodes that batch entries
//! differently agree), and an overwrite or a delete is undone by subtracting the old pair's
//! term. XOR would be too, but it cancels a term that appears twice: a node holding two
//! extra pairs with the same term — or having applied one insert twice in its bookkeeping —
//! would XOR back to the right answer. A sum only returns to it when the terms themselves
//! sum to zero, which needs a preimage-like search on SHA-256. The name's length prefix
//! keeps `("ab", "c")` and `("a", "bc")` apart.
//!
//! What is covered (the *logical* replicated state, the same on every node whatever its
//! generation numbers): the current generation's user data (named `d/KEY`), API key
//! records `k/`, tenant quotas `q/` and usage `u/`, and the audit trail `a/`. Not covered:
//! the node's own bookkeeping under `m/` (applied id, membership, counts, the generation
//! numbers, a staged restore's record), data of generations that are not current, and what a
//! restore stages before its commit — its data is summed separately ([`DigestState::staged`])
//! as its chunks are applied, so the commit switches to it in O(1).

use std::collections::VecDeque;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

/// A 256-bit digest, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub const ZERO: Digest = Digest([0; 32]);

    /// The term one pair contributes.
    pub fn of_pair(name: &[u8], value: &[u8]) -> Digest {
        let mut h = Sha256::new();
        h.update((name.len() as u64).to_be_bytes());
        h.update(name);
        h.update(value);
        Digest(h.finalize().into())
    }

    /// `self + other` mod 2^256.
    #[must_use]
    pub fn plus(self, other: Digest) -> Digest {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let s = u16::from(self.0[i]) + u16::from(other.0[i]) + carry;
            out[i] = (s & 0xff) as u8;
            carry = s >> 8;
        }
        Digest(out)
    }

    /// `self - other` mod 2^256.
    #[must_use]
    pub fn minus(self, other: Digest) -> Digest {
        self.plus(other.negated())
    }

    /// `-self` mod 2^256 (two's complement).
    #[must_use]
    fn negated(self) -> Digest {
        let mut inv = self.0;
        for b in &mut inv {
            *b = !*b;
        }
        let mut one = [0u8; 32];
        one[31] = 1;
        Digest(inv).plus(Digest(one))
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let bytes = hex::decode(s).ok()?;
        Some(Digest(bytes.try_into().ok()?))
    }

    pub fn from_slice(b: &[u8]) -> Option<Digest> {
        Some(Digest(b.try_into().ok()?))
    }
}

/// Which sum a covered key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The current generation's user data.
    Data,
    /// The generation a restore is staging.
    Staged,
    /// Key records, quotas, usage, audit.
    Records,
}

/// The sums as stored (`m/digest`), with the applied index they are the state of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DigestState {
    /// The applied index this is the digest at (0: nothing applied). Stored, so a data dir
    /// an older build applied entries to (which leaves `m/digest` behind) is recomputed.
    pub index: u64,
    pub data: Digest,
    pub records: Digest,
    /// The restore being staged, if any.
    pub staged: Option<Digest>,
}

const STATE_LEN: usize = 8 + 32 + 32 + 1 + 32;

impl DigestState {
    /// The digest of the replicated state.
    pub fn total(&self) -> Digest {
        self.data.plus(self.records)
    }

    fn part(&mut self, part: Part) -> &mut Digest {
        match part {
            Part::Data => &mut self.data,
            Part::Records => &mut self.records,
            // A staged pair with no restore being staged cannot happen (the staging
            // generation is set first); it is summed into a fresh staging sum regardless.
            Part::Staged => self.staged.get_or_insert(Digest::ZERO),
        }
    }

    /// Pair `name` goes from `old` to `new` (None: absent).
    pub fn change(&mut self, part: Part, name: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) {
        let sum = self.part(part);
        if let Some(old) = old {
            *sum = sum.minus(Digest::of_pair(name, old));
        }
        if let Some(new) = new {
            *sum = sum.plus(Digest::of_pair(name, new));
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_LEN);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.data.0);
        out.extend_from_slice(&self.records.0);
        out.push(u8::from(self.staged.is_some()));
        out.extend_from_slice(&self.staged.unwrap_or_default().0);
        out
    }

    /// None: not a stored digest state (another length, a bad flag).
    pub fn decode(b: &[u8]) -> Option<DigestState> {
        if b.len() != STATE_LEN {
            return None;
        }
        let index = u64::from_be_bytes(b[0..8].try_into().ok()?);
        let data = Digest::from_slice(&b[8..40])?;
        let records = Digest::from_slice(&b[40..72])?;
        let staged = match b[72] {
            0 => None,
            1 => Some(Digest::from_slice(&b[73..105])?),
            _ => return None,
        };
        Some(DigestState {
            index,
            data,
            records,
            staged,
        })
    }
}

/// Applied indexes whose digest the ring keeps (one per entry: ~40 bytes each, 320 KiB).
pub const RING_ENTRIES: usize = 8192;

/// The digest after each recently applied entry, in memory, so nodes can be compared at
/// one index without pausing anyone. Indexes are contiguous, except that a snapshot install
/// starts the ring over at the snapshot's index.
#[derive(Debug, Default)]
pub struct DigestRing {
    ring: Mutex<VecDeque<(u64, Digest)>>,
    /// Off (`OPSDECK_DIGEST=off`): nothing is recorded and every lookup says so.
    off: bool,
}

/// The answer to "the digest at index N?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    At(u64, Digest),
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
    pub fn extend(&self, entries: impl IntoIterator<Item = (u64, Digest)>) {
        let mut ring = lock(&self.ring);
        for (index, d) in entries {
            if ring.back().is_some_and(|(newest, _)| *newest >= index) {
                continue;
            }
            if ring.len() == RING_ENTRIES {
                ring.pop_front();
            }
            ring.push_back((index, d));
        }
    }

    /// Starts over at `index` (a snapshot was installed: earlier indexes were never applied
    /// here).
    pub fn reset(&self, index: u64, d: Digest) {
        let mut ring = lock(&self.ring);
        ring.clear();
        ring.push_back((index, d));
    }

    /// The digest at `index`, or the newest one (`None`).
    pub fn lookup(&self, index: Option<u64>) -> Lookup {
        if self.off {
            return Lookup::Off;
        }
        let ring = lock(&self.ring);
        let (Some(&(oldest, _)), Some(&newest)) = (ring.front(), ring.back()) else {
            return Lookup::NotHeld {
                oldest: 0,
                newest: 0,
            };
        };
        let Some(index) = index else {
            return Lookup::At(newest.0, newest.1);
        };
        match ring.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => Lookup::At(index, ring[at].1),
            Err(_) => Lookup::NotHeld {
                oldest,
                newest: newest.0,
            },
        }
    }

    /// The indexes held, oldest and newest (None: none, or off).
    pub fn held(&self) -> Option<(u64, u64)> {
        let ring = lock(&self.ring);
        Some((ring.front()?.0, ring.back()?.0))
    }

    /// The newest held index that is a multiple of `step` (the frame's checkpoint, so
    /// nodes sampled at different moments still report one index in common).
    pub fn checkpoint(&self, step: u64) -> Option<(u64, Digest)> {
        if self.off || step == 0 {
            return None;
        }
        let ring = lock(&self.ring);
        let &(newest, _) = ring.back()?;
        let want = newest - newest % step;
        let at = ring.binary_search_by_key(&want, |(i, _)| *i).ok()?;
        Some(ring[at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_minus_are_inverse_and_wrap() {
        let a = Digest::of_pair(b"d/a", b"1");
        let b = Digest::of_pair(b"d/b", b"2");
        assert_eq!(a.plus(b).minus(b), a);
        assert_eq!(a.plus(b), b.plus(a));
        let max = Digest([0xff; 32]);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(max.plus(Digest(one)), Digest::ZERO);
        assert_eq!(Digest::ZERO.minus(Digest(one)), max);
    }

    #[test]
    fn state_round_trips() {
        let s = DigestState {
            index: 7,
            data: Digest::of_pair(b"x", b"y"),
            records: Digest::of_pair(b"k/1", b""),
            staged: Some(Digest([3; 32])),
        };
        assert_eq!(DigestState::decode(&s.encode()), Some(s));
        assert_eq!(DigestState::decode(&s.encode()[1..]), None);
    }
}
