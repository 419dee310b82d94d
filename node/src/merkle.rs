//! Merkle proofs per key: the hash tree over the user data that a node keeps as it applies
//! (`store::merkle_index`), and the proof a client can check offline (`opsdeck
//! verify-proof`).
//!
//! Keys fall into [`BUCKETS`] buckets by the first two bytes of SHA-256(key), so buckets
//! stay small and even whatever the key names look like. A bucket's leaf hashes every
//! (key, SHA-256(value)) pair in it, in key order; an empty bucket's leaf is all zeros. The
//! tree over the leaves is a complete binary tree (16 levels), each node
//! SHA-256(1 ‖ left ‖ right). A proof carries the key's whole bucket (keys and value
//! hashes, not the other values) and the 16 sibling hashes up to the root, so it proves
//! both presence (the value hashes to its entry) and absence (the key is not in its bucket).
//!
//! The leaf is a hash of the bucket's contents, not a sum of per-pair terms like the state
//! digest ([`crate::sums`]): with a sum, a forger could pick any value and one made-up
//! "other entry" term that makes the total come out right.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Hashes are 32 bytes.
pub type Hash = [u8; 32];

/// Levels of the tree: 2^16 buckets.
pub const LEVELS: u32 = 16;
pub const BUCKETS: usize = 1 << LEVELS;

const TAG_LEAF: u8 = 0;
const TAG_NODE: u8 = 1;

/// The bucket a user key falls in.
pub fn bucket_of(key: &[u8]) -> u16 {
    let h = Sha256::digest(key);
    u16::from_be_bytes([h[0], h[1]])
}

/// What a bucket records of a value.
pub fn value_hash(value: &[u8]) -> Hash {
    Sha256::digest(value).into()
}

/// One pair of a bucket, as the leaf hashes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value_hash: Hash,
}

/// The leaf of bucket `bucket` holding `entries` (sorted by key, no repeats).
pub fn leaf(bucket: u16, entries: &[Entry]) -> Hash {
    if entries.is_empty() {
        return [0; 32];
    }
    let mut h = Sha256::new();
    h.update([TAG_LEAF]);
    h.update(bucket.to_be_bytes());
    h.update((entries.len() as u64).to_be_bytes());
    for e in entries {
        h.update((e.key.len() as u64).to_be_bytes());
        h.update(&e.key);
        h.update(e.value_hash);
    }
    h.finalize().into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([TAG_NODE]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The whole tree in memory: 2 × 65,536 hashes (4 MiB), whatever the data size. Node 1 is
/// the root, node `i` has children `2i` and `2i + 1`, the leaves are `BUCKETS..2·BUCKETS`.
#[derive(Clone)]
pub struct Tree {
    nodes: Vec<Hash>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "merkle::Tree(root {})", hex::encode(self.root()))
    }
}

impl Default for Tree {
    fn default() -> Tree {
        Tree::empty()
    }
}

impl Tree {
    /// The tree of no data: each level's nodes are equal, so it costs 16 hashes.
    pub fn empty() -> Tree {
        let mut nodes = vec![[0u8; 32]; 2 * BUCKETS];
        let mut level_hash = [0u8; 32];
        let mut width = BUCKETS;
        while width > 1 {
            level_hash = node(&level_hash, &level_hash);
            width /= 2;
            nodes[width..2 * width].fill(level_hash);
        }
        Tree { nodes }
    }

    /// The tree over `leaves` (one per bucket, in order; missing ones are empty).
    pub fn from_leaves(leaves: impl IntoIterator<Item = (u16, Hash)>) -> Tree {
        let mut nodes = vec![[0u8; 32]; 2 * BUCKETS];
        for (bucket, h) in leaves {
            nodes[BUCKETS + usize::from(bucket)] = h;
        }
        for i in (1..BUCKETS).rev() {
            nodes[i] = node(&nodes[2 * i], &nodes[2 * i + 1]);
        }
        Tree { nodes }
    }

    pub fn root(&self) -> Hash {
        self.nodes[1]
    }

    pub fn leaf(&self, bucket: u16) -> Hash {
        self.nodes[BUCKETS + usize::from(bucket)]
    }

    /// Sets one leaf and rehashes its 16 ancestors.
    pub fn set(&mut self, bucket: u16, leaf: Hash) {
        let mut i = BUCKETS + usize::from(bucket);
        if self.nodes[i] == leaf {
            return;
        }
        self.nodes[i] = leaf;
        while i > 1 {
            i /= 2;
            self.nodes[i] = node(&self.nodes[2 * i], &self.nodes[2 * i + 1]);
        }
    }

    /// The sibling hashes from `bucket`'s leaf up to the root (16 of them).
    pub fn path(&self, bucket: u16) -> Vec<Hash> {
        let mut i = BUCKETS + usize::from(bucket);
        let mut out = Vec::with_capacity(LEVELS as usize);
        while i > 1 {
            out.push(self.nodes[i ^ 1]);
            i /= 2;
        }
        out
    }
}

/// The root that `leaf` of `bucket` and its sibling `path` lead to.
pub fn root_from(bucket: u16, leaf: Hash, path: &[Hash]) -> Hash {
    let mut h = leaf;
    let mut i = usize::from(bucket);
    for sibling in path {
        h = if i % 2 == 0 {
            node(&h, sibling)
        } else {
            node(sibling, &h)
        };
        i /= 2;
    }
    h
}

/// A proof file's format name: a reader refuses any other.
pub const FORMAT: &str = "opsdeck-proof/1";

/// One entry of a proof's bucket, as the file carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofEntry {
    /// The key, hex (keys are bytes to the tree).
    pub key: String,
    pub value_hash: String,
}

/// That `key` held `value` (or nothing) at applied `index`, in the tree whose root is
/// `root`. Hex everywhere, so the file is plain text an edit cannot silently re-encode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub format: String,
    /// The user key, as given.
    pub key: String,
    /// The value, hex; null: the key is absent (the proof is one of absence).
    pub value: Option<String>,
    pub index: u64,
    pub bucket: u16,
    /// Every pair of the bucket, sorted by key.
    pub entries: Vec<ProofEntry>,
    /// Sibling hashes from the leaf up, hex.
    pub path: Vec<String>,
    pub root: String,
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof is malformed: {0}")]
    Malformed(String),
    #[error("the proof's bucket is {claimed}, but key {key:?} falls in bucket {actual}: it was made for another key or edited")]
    WrongBucket {
        key: String,
        claimed: u16,
        actual: u16,
    },
    #[error("the bucket's entries are not in strict key order: the proof was edited")]
    Unsorted,
    #[error("the value does not hash to the key's entry in its bucket: the value or the entry was edited")]
    ValueMismatch,
    #[error("the proof claims a value for {0:?}, but the key is not in its bucket")]
    NotInBucket(String),
    #[error("the proof claims {0:?} is absent, but its bucket holds it")]
    PresentNotClaimed(String),
    #[error("the bucket and path lead to root {computed}, not the proof's root {claimed}: the proof was edited")]
    RootMismatch { computed: String, claimed: String },
}

fn hash_from_hex(what: &str, s: &str) -> Result<Hash, ProofError> {
    let bytes = hex::decode(s).map_err(|e| ProofError::Malformed(format!("{what}: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ProofError::Malformed(format!("{what}: not 32 bytes")))
}

impl Proof {
    /// The proof for `key` from its bucket's `entries` (sorted) and the tree.
    pub fn new(
        key: &str,
        value: Option<&[u8]>,
        index: u64,
        entries: &[Entry],
        tree: &Tree,
    ) -> Proof {
        let bucket = bucket_of(key.as_bytes());
        Proof {
            format: FORMAT.to_string(),
            key: key.to_string(),
            value: value.map(hex::encode),
            index,
            bucket,
            entries: entries
                .iter()
                .map(|e| ProofEntry {
                    key: hex::encode(&e.key),
                    value_hash: hex::encode(e.value_hash),
                })
                .collect(),
            path: tree.path(bucket).iter().map(hex::encode).collect(),
            root: hex::encode(tree.root()),
        }
    }

    /// The root this proof claims, checked for form.
    pub fn root_hash(&self) -> Result<Hash, ProofError> {
        hash_from_hex("root", &self.root)
    }

    /// Checks the proof on its own: the value (or its absence) is what the bucket records,
    /// and the bucket and path lead to `root`. Whether that root is one the cluster agreed
    /// on is the caller's to check (a quorum of nodes reported it at `index`).
    pub fn verify(&self) -> Result<(), ProofError> {
        if self.format != FORMAT {
            return Err(ProofError::Malformed(format!(
                "format {:?}, expected {FORMAT:?}",
                self.format
            )));
        }
        let actual = bucket_of(self.key.as_bytes());
        if actual != self.bucket {
            return Err(ProofError::WrongBucket {
                key: self.key.clone(),
                claimed: self.bucket,
                actual,
            });
        }
        if self.path.len() != LEVELS as usize {
            return Err(ProofError::Malformed(format!(
                "{} path hashes, expected {LEVELS}",
                self.path.len()
            )));
        }
        let mut entries = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let key = hex::decode(&e.key)
                .map_err(|err| ProofError::Malformed(format!("entry {i} key: {err}")))?;
            let value_hash = hash_from_hex(&format!("entry {i} value_hash"), &e.value_hash)?;
            entries.push(Entry { key, value_hash });
        }
        if entries.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(ProofError::Unsorted);
        }
        if entries.iter().any(|e| bucket_of(&e.key) != self.bucket) {
            return Err(ProofError::Malformed(
                "an entry's key does not fall in the proof's bucket".into(),
            ));
        }
        let mine = entries.iter().find(|e| e.key == self.key.as_bytes());
        match (&self.value, mine) {
            (Some(v), Some(e)) => {
                let value =
                    hex::decode(v).map_err(|err| ProofError::Malformed(format!("value: {err}")))?;
                if value_hash(&value) != e.value_hash {
                    return Err(ProofError::ValueMismatch);
                }
            }
            (Some(_), None) => return Err(ProofError::NotInBucket(self.key.clone())),
            (None, Some(_)) => return Err(ProofError::PresentNotClaimed(self.key.clone())),
            (None, None) => {}
        }
        let mut path = Vec::with_capacity(self.path.len());
        for (i, p) in self.path.iter().enumerate() {
            path.push(hash_from_hex(&format!("path hash {i}"), p)?);
        }
        let computed = root_from(self.bucket, leaf(self.bucket, &entries), &path);
        let claimed = self.root_hash()?;
        if computed != claimed {
            return Err(ProofError::RootMismatch {
                computed: hex::encode(computed),
                claimed: self.root.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree over `pairs` built the slow way (every bucket's leaf from its entries).
    fn tree_of(pairs: &[(&str, &str)]) -> (Tree, Vec<Vec<Entry>>) {
        let mut buckets = vec![Vec::new(); BUCKETS];
        for (k, v) in pairs {
            buckets[usize::from(bucket_of(k.as_bytes()))].push(Entry {
                key: k.as_bytes().to_vec(),
                value_hash: value_hash(v.as_bytes()),
            });
        }
        for b in &mut buckets {
            b.sort_by(|x, y| x.key.cmp(&y.key));
        }
        let leaves = buckets
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u16, leaf(i as u16, e)));
        (Tree::from_leaves(leaves), buckets)
    }

    fn proof(pairs: &[(&str, &str)], key: &str) -> Proof {
        let (tree, buckets) = tree_of(pairs);
        let value = pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_bytes());
        let b = usize::from(bucket_of(key.as_bytes()));
        Proof::new(key, value, 7, &buckets[b], &tree)
    }

    #[test]
    fn empty_tree_and_incremental_sets_match_a_full_build() {
        assert_eq!(Tree::empty().root(), Tree::from_leaves([]).root());
        let pairs = [("a", "1"), ("b", "2"), ("tenant/x", "3")];
        let (full, buckets) = tree_of(&pairs);
        let mut inc = Tree::empty();
        for (i, e) in buckets.iter().enumerate() {
            if !e.is_empty() {
                inc.set(i as u16, leaf(i as u16, e));
            }
        }
        assert_eq!(inc.root(), full.root());
        assert_ne!(full.root(), Tree::empty().root());
    }

    #[test]
    fn proofs_of_presence_and_absence_verify() {
        let pairs: Vec<(String, String)> = (0..300)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for key in ["k0", "k17", "k299"] {
            proof(&pairs, key).verify().unwrap();
        }
        let absent = proof(&pairs, "nope");
        assert_eq!(absent.value, None);
        absent.verify().unwrap();
    }

    #[test]
    fn any_edited_hex_digit_fails() {
        // Two keys in one bucket would be rare; put several pairs in so entries exist.
        let pairs = [("a", "1"), ("b", "2"), ("c", "3")];
        let good = proof(&pairs, "b");
        good.verify().unwrap();
        let text = serde_json::to_string(&good).unwrap();
        let mut edits = 0;
        for (i, ch) in text.char_indices() {
            let Some(d) = ch.to_digit(16) else { continue };
            // Only digits inside hex strings and the bucket/index numbers matter; any
            // edit that still parses must fail to verify (or change what is claimed).
            let swapped = std::char::from_digit((d + 1) % 16, 16).unwrap();
            let mut edited = text.clone();
            edited.replace_range(i..i + 1, &swapped.to_string());
            let Ok(p) = serde_json::from_str::<Proof>(&edited) else {
                continue;
            };
            if p.index != good.index {
                continue; // the index is what a quorum is asked about, not hashed
            }
            edits += 1;
            assert!(p.verify().is_err(), "edit at {i} verified: {edited}");
        }
        assert!(edits > 100, "only {edits} edits tried");
    }

    #[test]
    fn a_proof_for_another_key_or_a_false_absence_fails() {
        let pairs = [("a", "1"), ("b", "2")];
        let mut p = proof(&pairs, "a");
        p.key = "b".into();
        assert!(p.verify().is_err());
        let mut absent = proof(&pairs, "a");
        absent.value = None;
        assert_eq!(
            absent.verify(),
            Err(ProofError::PresentNotClaimed("a".into()))
        );
        let mut other_value = proof(&pairs, "a");
        other_value.value = Some(hex::encode("2"));
        assert_eq!(other_value.verify(), Err(ProofError::ValueMismatch));
    }
}
