//! The Merkle tree over the user data ([`crate::merkle`]), kept as entries are applied, for
//! per-key proofs; its root after each entry goes into the digest ring beside the sums.
//!
//! A bucket's leaf hashes all of the bucket's pairs, so a change needs the bucket's other
//! pairs; they are scattered through the data (buckets are by hash, data is by key), so each
//! live generation has an index of its own, a sled tree `merkle/<gen>/<nonce>`:
//!
//! - `b` + bucket (2 bytes) → the bucket's pairs in key order, each as key length (4 bytes),
//!   user key and SHA-256(value): one `get` per changed bucket (a sled scan of a few pairs
//!   cost ten times as much: its iterator copies whole pages);
//! - `s` → the applied index the index is the state of, written in the same sled batch as
//!   the rest.
//!
//! A start hashes the leaves from the bucket records (O(keys), no values read). Leaves are
//! not stored: a record per changed bucket is all a write costs. An index of the older
//! layout, which stored them under `l`, is rebuilt once.
//!
//! Changed buckets are kept whole in memory (a write-back cache) and written once they hold
//! [`FLUSH_PAIRS`] pairs, every [`FLUSH_EVERY`], after a generation died, or when the node
//! stops, not with each apply: sled's cost is per record written, a second sled batch per
//! apply cost a fifth of the writes/s and a write every 500 ms still 12 % (BENCHMARKS.md).
//! Written rarely, a bucket changed many times is written once. A kill in between, a failed
//! apply, a data dir of an older build or one `OPSDECK_DIGEST=off` ran on leaves a stamp
//! that is not the applied index, and the index is rebuilt from the data at the next
//! start. Writing more often would not spare that: under writes the stamp is always behind.
//!
//! The tree of each live generation (4 MiB) is in memory. The index is node-local derived
//! data, like a database index: never in snapshots, rebuilt after an install. A
//! generation's index goes with the generation (a restore's commit makes the staged one
//! current in O(1)); dead ones are dropped on a thread of their own. The nonce makes every
//! index tree's name new, so a drop still running never meets a tree of the same name (an
//! install numbers generations from 0 again).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::merkle::{self, bucket_of, value_hash, Entry, Hash, Proof};
use crate::store::io_error;

use super::generations::data_prefix;

type IoResult<T> = std::io::Result<T>;

const TREE_PREFIX: &str = "merkle/";
/// What a rebuild's scratch tree's name ends with (dropped as dead when a stop left it).
const BUILD_SUFFIX: &str = "-build";
const TAG_BUCKET: u8 = b'b';
/// The leaves of the older layout (see the module doc): an index holding one is rebuilt.
const TAG_OLD_LEAF: u8 = b'l';
const KEY_STAMP: &[u8] = b"s";
/// Pairs (or buckets) per sled batch while an index is rebuilt.
const REBUILD_BATCH: usize = 8192;
/// Longest changed buckets wait in memory before they are written (when entries are
/// applied; an idle node writes nothing until the next apply or its stop).
const FLUSH_EVERY: Duration = Duration::from_secs(30);
/// Most pairs the changed buckets held in memory may hold before they are written: with
/// user keys of about 100 bytes, some 20 MiB.
const FLUSH_PAIRS: usize = 131_072;

fn bucket_key(bucket: u16) -> [u8; 3] {
    let [hi, lo] = bucket.to_be_bytes();
    [TAG_BUCKET, hi, lo]
}

fn encode_bucket(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| 36 + e.key.len()).sum());
    for e in entries {
        // User keys are bounded far below 4 GiB (types.rs input limits).
        out.extend_from_slice(&(e.key.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.key);
        out.extend_from_slice(&e.value_hash);
    }
    out
}

fn decode_bucket(mut bytes: &[u8]) -> IoResult<Vec<Entry>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(damaged("a bucket record cut short"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len.saturating_add(32) {
            return Err(damaged("a bucket record cut short"));
        }
        let (key, rest) = rest.split_at(len);
        let (hash, rest) = rest.split_at(32);
        let Ok(value_hash) = Hash::try_from(hash) else {
            return Err(damaged("a bucket record cut short"));
        };
        entries.push(Entry {
            key: key.to_vec(),
            value_hash,
        });
        bytes = rest;
    }
    Ok(entries)
}

fn stored_bucket(tree: &sled::Tree, bucket: u16) -> IoResult<Vec<Entry>> {
    match tree.get(bucket_key(bucket)).map_err(io_error)? {
        Some(v) => decode_bucket(&v),
        None => Ok(Vec::new()),
    }
}

/// The index of one generation.
struct GenIndex {
    tree: sled::Tree,
    hashes: merkle::Tree,
    /// Buckets changed since the last write, whole and in key order: read instead of `tree`.
    dirty: BTreeMap<u16, Vec<Entry>>,
    /// Pairs `dirty` holds.
    dirty_pairs: usize,
    /// Buckets changed since the last entry ended.
    touched: BTreeSet<u16>,
}

impl GenIndex {
    fn on(tree: sled::Tree) -> GenIndex {
        GenIndex {
            tree,
            hashes: merkle::Tree::empty(),
            dirty: BTreeMap::new(),
            dirty_pairs: 0,
            touched: BTreeSet::new(),
        }
    }

    fn fresh(db: &sled::Db, gen: u64) -> IoResult<GenIndex> {
        let name = format!("{TREE_PREFIX}{gen}/{:016x}", rand::random::<u64>());
        Ok(GenIndex::on(db.open_tree(name).map_err(io_error)?))
    }

    /// The bucket's pairs, with the changes not written yet.
    fn entries(&self, bucket: u16) -> IoResult<Vec<Entry>> {
        match self.dirty.get(&bucket) {
            Some(entries) => Ok(entries.clone()),
            None => stored_bucket(&self.tree, bucket),
        }
    }

    /// User key `key` goes to `value_hash` (None: deleted).
    fn change(&mut self, key: &[u8], value_hash: Option<Hash>) -> IoResult<()> {
        let bucket = bucket_of(key);
        let entries = match self.dirty.entry(bucket) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let stored = stored_bucket(&self.tree, bucket)?;
                self.dirty_pairs += stored.len();
                v.insert(stored)
            }
        };
        match (
            entries.binary_search_by(|e| e.key.as_slice().cmp(key)),
            value_hash,
        ) {
            (Ok(i), Some(h)) => entries[i].value_hash = h,
            (Ok(i), None) => {
                entries.remove(i);
                self.dirty_pairs -= 1;
            }
            (Err(i), Some(h)) => {
                entries.insert(
                    i,
                    Entry {
                        key: key.to_vec(),
                        value_hash: h,
                    },
                );
                self.dirty_pairs += 1;
            }
            (Err(_), None) => {}
        }
        self.touched.insert(bucket);
        Ok(())
    }

    /// Rehashes the buckets changed since the last call.
    fn end_entry(&mut self) {
        for bucket in std::mem::take(&mut self.touched) {
            let entries = self.dirty.get(&bucket).map(Vec::as_slice).unwrap_or(&[]);
            self.hashes.set(bucket, merkle::leaf(bucket, entries));
        }
    }

    /// Writes the changed buckets, stamped `applied`.
    fn write(&mut self, applied: u64) -> IoResult<()> {
        let mut batch = sled::Batch::default();
        for (bucket, entries) in std::mem::take(&mut self.dirty) {
            if entries.is_empty() {
                batch.remove(&bucket_key(bucket));
            } else {
                batch.insert(&bucket_key(bucket), encode_bucket(&entries));
            }
        }
        self.dirty_pairs = 0;
        batch.insert(KEY_STAMP, &applied.to_be_bytes());
        self.tree.apply_batch(batch).map_err(io_error)
    }

    /// Hashes the leaves of the stored buckets (the stamp matched), one bucket in memory
    /// at a time.
    fn load_leaves(&mut self) -> IoResult<()> {
        let mut leaves = Vec::new();
        for item in self.tree.scan_prefix([TAG_BUCKET]) {
            let (k, v) = item.map_err(io_error)?;
            let Ok(b) = <[u8; 2]>::try_from(&k[1..]) else {
                return Err(damaged("a bucket record under a key of the wrong size"));
            };
            let b = u16::from_be_bytes(b);
            leaves.push((b, merkle::leaf(b, &decode_bucket(&v)?)));
        }
        self.hashes = merkle::Tree::from_leaves(leaves);
        Ok(())
    }

    /// Whether the index is of the older layout (it stored leaves).
    fn old_layout(&self) -> IoResult<bool> {
        Ok(self
            .tree
            .scan_prefix([TAG_OLD_LEAF])
            .next()
            .transpose()
            .map_err(io_error)?
            .is_some())
    }

    /// Indexes generation `gen`'s data in `sm` from scratch (the tree is fresh): the pairs
    /// go through a scratch tree, which sorts them by bucket, into one record per bucket.
    /// Returns the pairs indexed and the scratch tree, for the caller to drop.
    fn build(
        &mut self,
        db: &sled::Db,
        sm: &sled::Tree,
        gen: u64,
        applied: u64,
    ) -> IoResult<(u64, sled::Tree)> {
        let name = format!(
            "{}{BUILD_SUFFIX}",
            String::from_utf8_lossy(&self.tree.name())
        );
        let scratch = db.open_tree(name).map_err(io_error)?;
        let prefix = data_prefix(gen);
        let mut batch = sled::Batch::default();
        let (mut in_batch, mut pairs) = (0usize, 0u64);
        for item in sm.scan_prefix(&prefix) {
            let (k, v) = item.map_err(io_error)?;
            let user = &k[prefix.len()..];
            let key = [&bucket_of(user).to_be_bytes()[..], user].concat();
            batch.insert(key, &value_hash(&v));
            (in_batch, pairs) = (in_batch + 1, pairs + 1);
            if in_batch == REBUILD_BATCH {
                scratch
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(io_error)?;
                in_batch = 0;
            }
        }
        scratch.apply_batch(batch).map_err(io_error)?;
        // One pass over the scratch tree in bucket order writes every bucket and leaf.
        let mut leaves = Vec::new();
        let mut batch = sled::Batch::default();
        let mut in_batch = 0usize;
        let mut open: Option<(u16, Vec<Entry>)> = None;
        let mut close = |open: Option<(u16, Vec<Entry>)>,
                         batch: &mut sled::Batch,
                         in_batch: &mut usize|
         -> IoResult<()> {
            if let Some((b, entries)) = open {
                let h = merkle::leaf(b, &entries);
                batch.insert(&bucket_key(b), encode_bucket(&entries));
                leaves.push((b, h));
                *in_batch += 1;
                if *in_batch == REBUILD_BATCH {
                    self.tree
                        .apply_batch(std::mem::take(batch))
                        .map_err(io_error)?;
                    *in_batch = 0;
                }
            }
            Ok(())
        };
        for item in scratch.iter() {
            let (k, v) = item.map_err(io_error)?;
            let (Some(b), Ok(h)) = (k.get(0..2), Hash::try_from(v.as_ref())) else {
                return Err(damaged("a scratch record of the wrong size"));
            };
            let b = u16::from_be_bytes([b[0], b[1]]);
            let entry = Entry {
                key: k[2..].to_vec(),
                value_hash: h,
            };
            match &mut open {
                Some((ob, entries)) if *ob == b => entries.push(entry),
                _ => {
                    close(open.take(), &mut batch, &mut in_batch)?;
                    open = Some((b, vec![entry]));
                }
            }
        }
        close(open.take(), &mut batch, &mut in_batch)?;
        batch.insert(KEY_STAMP, &applied.to_be_bytes());
        self.tree.apply_batch(batch).map_err(io_error)?;
        self.hashes = merkle::Tree::from_leaves(leaves);
        Ok((pairs, scratch))
    }

    fn stamp(&self) -> IoResult<Option<u64>> {
        Ok(self
            .tree
            .get(KEY_STAMP)
            .map_err(io_error)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }
}

fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the Merkle index holds {what}: the data dir is damaged: rebuild the node from the cluster (opsdeck rebuild-node --id N)"),
    )
}

/// The generation of an index tree's name (`merkle/<gen>/<nonce>`, or a rebuild's
/// scratch tree `merkle/<gen>/<nonce>-build`), and whether it is a scratch tree.
fn gen_of(name: &[u8]) -> Option<(u64, bool)> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name.strip_prefix(TREE_PREFIX)?;
    Some((
        rest.split('/').next()?.parse().ok()?,
        name.ends_with(BUILD_SUFFIX),
    ))
}

/// The indexes of the live generations, and the trees of each.
pub(super) struct MerkleIndex {
    db: sled::Db,
    current: u64,
    gens: BTreeMap<u64, GenIndex>,
    /// Index trees of generations no longer live, dropped after the next write.
    dead: Vec<sled::Tree>,
    /// The applied index the in-memory state is of, and when it was last written.
    applied: u64,
    written_at: Instant,
    /// An apply began and has not ended: what is in memory is ahead of the data, so it is
    /// not written (an apply that failed leaves it so, and the next start rebuilds).
    in_apply: bool,
    /// The first error of the apply in progress (a bucket that could not be read).
    failed: Option<std::io::Error>,
}

impl MerkleIndex {
    /// The indexes of `current` and `staging` as of `applied`: stored ones whose stamp is
    /// `applied`, others rebuilt from `sm`. Index trees of any other generation are dropped.
    pub fn open(
        db: &sled::Db,
        sm: &sled::Tree,
        current: u64,
        staging: Option<u64>,
        applied: u64,
    ) -> IoResult<MerkleIndex> {
        let mut index = MerkleIndex {
            db: db.clone(),
            current,
            gens: BTreeMap::new(),
            dead: Vec::new(),
            applied,
            written_at: Instant::now(),
            in_apply: false,
            failed: None,
        };
        let live: Vec<u64> = [Some(current), staging].into_iter().flatten().collect();
        for name in db.tree_names() {
            let Some((gen, scratch)) = gen_of(&name) else {
                continue;
            };
            let mut gi = GenIndex::on(db.open_tree(&name).map_err(io_error)?);
            if !scratch
                && live.contains(&gen)
                && !index.gens.contains_key(&gen)
                && gi.stamp()? == Some(applied)
                && !gi.old_layout()?
            {
                gi.load_leaves()?;
                index.gens.insert(gen, gi);
            } else {
                index.dead.push(gi.tree);
            }
        }
        for gen in live {
            if index.gens.contains_key(&gen) {
                continue;
            }
            let started = std::time::Instant::now();
            let mut gi = GenIndex::fresh(db, gen)?;
            let (pairs, scratch) = gi.build(db, sm, gen, applied)?;
            index.dead.push(scratch);
            if pairs > 0 {
                tracing::info!(
                    generation = gen,
                    pairs,
                    took_ms = started.elapsed().as_millis() as u64,
                    "built the Merkle index of the data (its stored index was not of the applied index: a kill or a failed apply before the index was last written, or a data dir of an older build or of OPSDECK_DIGEST=off)"
                );
            }
            index.gens.insert(gen, gi);
        }
        index.drop_dead();
        Ok(index)
    }

    /// The root of the current data.
    pub fn root(&self) -> Hash {
        self.gens
            .get(&self.current)
            .map(|g| g.hashes.root())
            .unwrap_or_else(|| merkle::Tree::empty().root())
    }

    /// An apply begins (its changes follow; [`Self::applied`] ends it).
    pub fn begin(&mut self) {
        self.in_apply = true;
    }

    /// User key `key` of generation `gen` goes to `value` (None: deleted).
    pub fn change(&mut self, gen: u64, key: &[u8], value: Option<&[u8]>) {
        let Some(g) = self.gens.get_mut(&gen) else {
            return;
        };
        if let Err(e) = g.change(key, value.map(value_hash)) {
            self.failed.get_or_insert(e);
        }
    }

    /// The generations are now `current` and `staging` (a restore began staging, committed,
    /// or was abandoned).
    pub fn switch(&mut self, current: u64, staging: Option<u64>) -> IoResult<()> {
        self.current = current;
        let live = |g: &u64| *g == current || Some(*g) == staging;
        let gone: Vec<u64> = self.gens.keys().copied().filter(|g| !live(g)).collect();
        for gen in gone {
            if let Some(g) = self.gens.remove(&gen) {
                self.dead.push(g.tree);
            }
        }
        for gen in [Some(current), staging].into_iter().flatten() {
            if !self.gens.contains_key(&gen) {
                // A new generation starts empty.
                self.gens.insert(gen, GenIndex::fresh(&self.db, gen)?);
            }
        }
        Ok(())
    }

    /// An entry ended: rehashes the buckets it changed; the current data's root after it.
    pub fn end_entry(&mut self) -> IoResult<Hash> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        for g in self.gens.values_mut() {
            g.end_entry();
        }
        Ok(self.root())
    }

    /// The state machine's batch up to `applied` is written: the index's changes are
    /// written too when they have waited long enough or are many.
    pub fn applied(&mut self, applied: u64) -> IoResult<()> {
        self.applied = applied;
        self.in_apply = false;
        let waiting: usize = self.gens.values().map(|g| g.dirty_pairs).sum();
        // A generation died (a restore committed or was abandoned): its index tree is
        // dropped with the next write, so that write is not left to wait.
        let died = !self.dead.is_empty();
        if waiting >= FLUSH_PAIRS || died || self.written_at.elapsed() >= FLUSH_EVERY {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the index's changes, stamped with the applied index (the state machine's
    /// batch of it is written), and drops the indexes of generations that died.
    pub fn write(&mut self) -> IoResult<()> {
        if self.in_apply {
            return Ok(());
        }
        self.written_at = Instant::now();
        for g in self.gens.values_mut() {
            g.write(self.applied)?;
        }
        self.drop_dead();
        Ok(())
    }

    /// Starts over from `sm` as an installed snapshot left it.
    pub fn rebuild(
        &mut self,
        sm: &sled::Tree,
        current: u64,
        staging: Option<u64>,
        applied: u64,
    ) -> IoResult<()> {
        self.dead
            .extend(std::mem::take(&mut self.gens).into_values().map(|g| g.tree));
        self.current = current;
        self.applied = applied;
        self.in_apply = false;
        self.failed = None;
        for gen in [Some(current), staging].into_iter().flatten() {
            let mut gi = GenIndex::fresh(&self.db, gen)?;
            let (_, scratch) = gi.build(&self.db, sm, gen, applied)?;
            self.dead.push(scratch);
            self.gens.insert(gen, gi);
        }
        self.drop_dead();
        Ok(())
    }

    /// The proof for `key` as of `index`, with its `value` read from the data by the
    /// caller under the same lock (no apply in progress).
    pub fn proof(&self, key: &str, value: Option<&[u8]>, index: u64) -> IoResult<Proof> {
        if self.in_apply {
            return Err(std::io::Error::other(
                "an apply failed on this node, so its Merkle tree is not of its data: ask another node, or restart this one (it rebuilds the tree)",
            ));
        }
        let bucket = bucket_of(key.as_bytes());
        let Some(g) = self.gens.get(&self.current) else {
            return Ok(Proof::new(key, value, index, &[], &merkle::Tree::empty()));
        };
        Ok(Proof::new(
            key,
            value,
            index,
            &g.entries(bucket)?,
            &g.hashes,
        ))
    }

    /// Drops dead index trees on a thread (sled frees their pages one by one).
    fn drop_dead(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        let (db, dead) = (self.db.clone(), std::mem::take(&mut self.dead));
        let spawned = std::thread::Builder::new()
            .name("merkle-drop".into())
            .spawn(move || {
                for tree in dead {
                    let name = tree.name();
                    drop(tree);
                    if let Err(e) = db.drop_tree(&name) {
                        tracing::warn!(tree = %String::from_utf8_lossy(&name), error = %e, "could not drop a dead Merkle index tree; the next start tries again");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the thread that drops dead Merkle index trees; the next start tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root of `pairs` computed from nothing but the definitions in `merkle`.
    fn root_of(pairs: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
        let mut buckets: BTreeMap<u16, Vec<Entry>> = BTreeMap::new();
        for (k, v) in pairs {
            buckets.entry(bucket_of(k)).or_default().push(Entry {
                key: k.clone(),
                value_hash: value_hash(v),
            });
        }
        let leaves = buckets.into_iter().map(|(b, mut e)| {
            e.sort_by(|x, y| x.key.cmp(&y.key));
            (b, merkle::leaf(b, &e))
        });
        merkle::Tree::from_leaves(leaves).root()
    }

    #[test]
    fn kept_index_matches_a_rebuild_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("sled");
        let sm = db.open_tree("sm").expect("tree");
        let prefix = data_prefix(0);
        let mut pairs = BTreeMap::new();
        for i in 0..500u32 {
            let (k, v) = (
                format!("key/{i}").into_bytes(),
                vec![b'v'; (i % 7) as usize],
            );
            sm.insert([&prefix[..], &k].concat(), v.clone())
                .expect("insert");
            pairs.insert(k, v);
        }
        let mut index = MerkleIndex::open(&db, &sm, 0, None, 10).expect("open");
        assert_eq!(index.root(), root_of(&pairs), "the build");

        // Changes as applies make them: overwrite, delete, add, over several entries.
        index.begin();
        for i in 0..100u32 {
            let k = format!("key/{i}").into_bytes();
            if i % 2 == 0 {
                index.change(0, &k, None);
                pairs.remove(&k);
            } else {
                index.change(0, &k, Some(b"new"));
                pairs.insert(k, b"new".to_vec());
            }
            if i % 10 == 0 {
                index.end_entry().expect("entry");
            }
        }
        index.change(0, b"fresh", Some(b"x"));
        pairs.insert(b"fresh".to_vec(), b"x".to_vec());
        let root = index.end_entry().expect("entry");
        assert_eq!(root, root_of(&pairs), "kept per entry");
        // A write while the apply is open writes nothing (the stamp would lie).
        index.write().expect("write");
        index.applied(11).expect("applied");
        index.write().expect("write");
        drop(index);

        // Reopened at the stamped index: loaded, not rebuilt, and the same.
        let index = MerkleIndex::open(&db, &sm, 0, None, 11).expect("reopen");
        assert_eq!(index.root(), root);
        let proof = index
            .proof("fresh", Some(b"x"), 11)
            .expect("proof of a present key");
        assert_eq!(proof.root_hash().expect("root"), root);
        proof.verify().expect("the proof holds");
        drop(index);

        // An index of the older layout (it stored leaves under `l`), stamp and all, is
        // rebuilt from `sm` rather than loaded: its root is then that of the 500 pairs.
        let mut original = BTreeMap::new();
        for i in 0..500u32 {
            original.insert(
                format!("key/{i}").into_bytes(),
                vec![b'v'; (i % 7) as usize],
            );
        }
        let name = db
            .tree_names()
            .into_iter()
            .find(|n| gen_of(n) == Some((0, false)))
            .expect("the index tree");
        let tree = db.open_tree(name).expect("index tree");
        tree.insert([TAG_OLD_LEAF, 0, 0], &[0u8; 32])
            .expect("old leaf");
        drop(tree);
        let index = MerkleIndex::open(&db, &sm, 0, None, 11).expect("reopen, old layout");
        assert_eq!(index.root(), root_of(&original), "rebuilt");
        drop(index);

        // Reopened at another index (a stop between the two writes): rebuilt from `sm`,
        // which still holds the first 500 pairs.
        let index = MerkleIndex::open(&db, &sm, 0, None, 12).expect("rebuild");
        assert_eq!(index.root(), root_of(&original));
    }

    #[test]
    fn a_bucket_record_cut_short_is_damage_not_a_panic() {
        let entries = vec![Entry {
            key: b"abc".to_vec(),
            value_hash: [7; 32],
        }];
        let bytes = encode_bucket(&entries);
        assert_eq!(decode_bucket(&bytes).expect("decodes"), entries);
        for cut in 1..bytes.len() {
            let err = decode_bucket(&bytes[..cut]).expect_err("cut short");
            assert!(err.to_string().contains("rebuild-node"), "{err}");
        }
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_bucket(&huge).is_err());
    }
}
