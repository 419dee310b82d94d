//! The state digest's arithmetic, below every layer that uses it: the state machine keeps
//! the sums as it applies (`store::digest`, `store::state_machine`), the backup format
//! recomputes them from a payload (`backup::format`).
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
//! The sums are kept in parts (see [`Part`]); the digest of the replicated state is
//! data + tenants + records. Splitting a sum changes no total: the parts only let a check
//! compare what one operation replaced (a restore replaces data, quotas and usage).

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

/// Which sum a covered pair belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The current generation's user data (named `d/KEY`).
    Data,
    /// Tenant quotas `q/` and usage `u/`: what a restore replaces besides the data.
    Tenants,
    /// API key records `k/` and the audit trail `a/`: what a restore keeps.
    Records,
    /// The generation a restore is staging (not part of the state's digest until its
    /// commit makes it the data).
    Staged,
}

pub const DATA_PREFIX: &[u8] = b"d/";
const TENANT_PREFIXES: [&[u8]; 2] = [b"q/", b"u/"];
const RECORD_PREFIXES: [&[u8]; 2] = [b"k/", b"a/"];

/// The part a pair of the *logical* state belongs to, by its name as snapshots and backups
/// carry it (data as `d/KEY`), or None when the digest does not cover it (the `m/`
/// bookkeeping, a staged restore's `r/…`). The state machine maps its stored names (data
/// under a generation prefix) to these names first.
pub fn part_of(name: &[u8]) -> Option<Part> {
    if name.starts_with(DATA_PREFIX) {
        Some(Part::Data)
    } else if TENANT_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some(Part::Tenants)
    } else if RECORD_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some(Part::Records)
    } else {
        None
    }
}

/// The prefixes of the covered records (besides data), for scans.
pub fn record_prefixes() -> impl Iterator<Item = &'static [u8]> {
    TENANT_PREFIXES.into_iter().chain(RECORD_PREFIXES)
}

/// The sums as stored (`m/digest`), with the applied index they are the state of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DigestState {
    /// The applied index this is the digest at (0: nothing applied). Stored, so a data dir
    /// an older build applied entries to (which leaves `m/digest` behind) is recomputed.
    pub index: u64,
    pub data: Digest,
    pub tenants: Digest,
    pub records: Digest,
    /// The restore being staged, if any.
    pub staged: Option<Digest>,
}

const STATE_LEN: usize = 8 + 32 + 32 + 32 + 1 + 32;

impl DigestState {
    /// The digest of the replicated state.
    pub fn total(&self) -> Digest {
        self.data.plus(self.tenants).plus(self.records)
    }

    fn part(&mut self, part: Part) -> &mut Digest {
        match part {
            Part::Data => &mut self.data,
            Part::Tenants => &mut self.tenants,
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
        out.extend_from_slice(&self.tenants.0);
        out.extend_from_slice(&self.records.0);
        out.push(u8::from(self.staged.is_some()));
        out.extend_from_slice(&self.staged.unwrap_or_default().0);
        out
    }

    /// None: not a stored digest state (another length — an older build's, without the
    /// tenants part —, a bad flag).
    pub fn decode(b: &[u8]) -> Option<DigestState> {
        if b.len() != STATE_LEN {
            return None;
        }
        let index = u64::from_be_bytes(b[0..8].try_into().ok()?);
        let data = Digest::from_slice(&b[8..40])?;
        let tenants = Digest::from_slice(&b[40..72])?;
        let records = Digest::from_slice(&b[72..104])?;
        let staged = match b[104] {
            0 => None,
            1 => Some(Digest::from_slice(&b[105..137])?),
            _ => return None,
        };
        Some(DigestState {
            index,
            data,
            tenants,
            records,
            staged,
        })
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
            tenants: Digest::of_pair(b"q/t", b"z"),
            records: Digest::of_pair(b"k/1", b""),
            staged: Some(Digest([3; 32])),
        };
        assert_eq!(DigestState::decode(&s.encode()), Some(s));
        assert_eq!(DigestState::decode(&s.encode()[1..]), None);
    }

    #[test]
    fn names_fall_into_their_parts() {
        assert_eq!(part_of(b"d/x"), Some(Part::Data));
        assert_eq!(part_of(b"q/t"), Some(Part::Tenants));
        assert_eq!(part_of(b"u/t"), Some(Part::Tenants));
        assert_eq!(part_of(b"k/id"), Some(Part::Records));
        assert_eq!(part_of(b"a/\0\0"), Some(Part::Records));
        for outside in [&b"m/digest"[..], b"r/d/x", b"r/q/t", b"g/12345678x"] {
            assert_eq!(part_of(outside), None);
        }
    }
}
