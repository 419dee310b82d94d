//! The state digest: the same state gives the same digest whatever the order and batching
//! of the commands that made it; the incremental digest equals a full recompute (the scan
//! a data dir without one gets at start-up); it survives a snapshot install and a restore's
//! generation switch; the ring answers for earlier indexes.

use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use opsdeck_node::security::keys::{KeyRecord, Role};
use opsdeck_node::security::quota::{Quota, Tier};
use opsdeck_node::store::digest::{Digest, DigestState, Lookup, RING_ENTRIES};
use opsdeck_node::store::Storage;
use opsdeck_node::types::{AdminAction, Command, Request, TypeConfig};
use tempfile::TempDir;

fn entry(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request { commands }),
    }
}

fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

fn del(key: &str) -> Command {
    Command::Delete { key: key.into() }
}

fn admin(action: AdminAction) -> Command {
    Command::Admin {
        actor: "k1".into(),
        at_ms: 1,
        action,
    }
}

fn newest(storage: &Storage) -> (u64, Digest) {
    match storage.state_machine.reader().digest(None) {
        Lookup::At(h) => (h.index, h.total),
        other => panic!("no digest: {other:?}"),
    }
}

/// Applies each group of commands as one entry, all entries in one `apply` call per chunk
/// of `per_call` entries, starting at index `first`; returns the next index.
async fn apply_all(
    storage: &mut Storage,
    first: u64,
    groups: Vec<Vec<Command>>,
    per_call: usize,
) -> u64 {
    let mut index = first;
    let entries: Vec<_> = groups
        .into_iter()
        .map(|g| {
            let e = entry(index, g);
            index += 1;
            e
        })
        .collect();
    for chunk in entries.chunks(per_call.max(1)) {
        storage.state_machine.apply(chunk.to_vec()).await.unwrap();
    }
    index
}

/// Reopens the data dir with its stored digest removed, so start-up recomputes it by a
/// scan (the format upgrade), and returns that digest.
fn recomputed(dir: &TempDir, id: u64, storage: Storage) -> (Storage, Digest) {
    let tree = storage.db.open_tree("sm").unwrap();
    assert!(
        tree.remove("m/digest").unwrap().is_some(),
        "no digest was stored"
    );
    tree.flush().unwrap();
    drop(tree);
    drop(storage);
    let reopened = Storage::open(dir.path(), id).unwrap();
    let (_, d) = newest(&reopened);
    (reopened, d)
}

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        hash: opsdeck_node::security::keys::hash_secret(id),
        role: Role::Write,
        tenants: vec![],
        created_ms: 1,
        expires_ms: None,
        revoked_ms: None,
        last_used_ms: None,
        successor: None,
    }
}

#[tokio::test]
async fn the_same_state_has_the_same_digest_whatever_the_order_and_it_equals_a_recompute() {
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut a = Storage::open(dir_a.path(), 1).unwrap();
    let mut b = Storage::open(dir_b.path(), 2).unwrap();
    let empty = newest(&a).1;
    assert_eq!(empty, Digest::ZERO);

    // A: inserts, overwrites, deletes, one command per entry, one entry per call.
    let groups_a = vec![
        vec![put("x/a", "1")],
        vec![put("x/b", "2")],
        vec![put("x/c", "3")],
        vec![put("x/a", "9")],
        vec![del("x/b")],
        vec![put("x/d", "4")],
        vec![del("x/nothing")],
        vec![admin(AdminAction::CreateKey(key("w1")))],
        vec![admin(AdminAction::SetQuota {
            tenant: "t".into(),
            quota: Quota {
                tier: Tier::Free,
                max_keys: 10,
                max_bytes: 1 << 20,
            },
        })],
        vec![put("t/k", "v")],
    ];
    let next_a = apply_all(&mut a, 1, groups_a, 1).await;
    // B: the same end state reached another way, in one call; the same admin commands in
    // the same order (the audit trail numbers them).
    let groups_b = vec![
        vec![put("x/d", "4"), put("x/c", "3")],
        vec![put("x/a", "0"), put("x/b", "gone soon")],
        vec![del("x/b"), put("x/a", "9")],
        vec![admin(AdminAction::CreateKey(key("w1")))],
        vec![admin(AdminAction::SetQuota {
            tenant: "t".into(),
            quota: Quota {
                tier: Tier::Free,
                max_keys: 10,
                max_bytes: 1 << 20,
            },
        })],
        vec![put("t/k", "v")],
    ];
    apply_all(&mut b, 1, groups_b, 10).await;
    let (da, db) = (newest(&a).1, newest(&b).1);
    assert_eq!(da, db, "the same state, different digests");
    assert_ne!(da, empty);

    // One value different: a different digest.
    let next_a = apply_all(&mut a, next_a, vec![vec![put("x/c", "33")]], 1).await;
    assert_ne!(newest(&a).1, db);
    apply_all(&mut a, next_a, vec![vec![put("x/c", "3")]], 1).await;
    assert_eq!(
        newest(&a).1,
        db,
        "putting the value back gives the digest back"
    );

    // The incremental digest is the digest of what is stored.
    let (a, scanned) = recomputed(&dir_a, 1, a);
    assert_eq!(scanned, db);
    drop(a);
    let (_b, scanned) = recomputed(&dir_b, 2, b);
    assert_eq!(scanned, db);
}

#[tokio::test]
async fn the_ring_answers_for_earlier_indexes_and_says_what_it_holds() {
    let dir = TempDir::new().unwrap();
    let mut s = Storage::open(dir.path(), 1).unwrap();
    let mut after = Vec::new();
    for i in 1..=5u64 {
        apply_all(&mut s, i, vec![vec![put(&format!("k{i}"), "v")]], 1).await;
        after.push(newest(&s));
    }
    let reader = s.state_machine.reader();
    for (i, d) in &after {
        assert!(
            matches!(reader.digest(Some(*i)), Lookup::At(h) if h.index == *i && h.total == *d),
            "index {i}"
        );
    }
    assert_eq!(
        reader.digest(Some(99)),
        Lookup::NotHeld {
            oldest: 0,
            newest: 5
        }
    );
    // Entries applied in one call each get their own digest.
    apply_all(
        &mut s,
        6,
        vec![vec![put("k6", "v")], vec![put("k7", "v")], vec![]],
        3,
    )
    .await;
    let Lookup::At(d6) = reader.digest(Some(6)) else {
        panic!("6 not held")
    };
    let Lookup::At(d7) = reader.digest(Some(7)) else {
        panic!("7 not held")
    };
    assert_ne!(d6.total, d7.total);
    assert!(matches!(reader.digest(Some(8)), Lookup::At(h) if h.index == 8 && h.total == d7.total));
    // Bounded: the oldest entries drop out.
    let groups: Vec<_> = (0..RING_ENTRIES as u64 + 10)
        .map(|i| vec![put("r", &i.to_string())])
        .collect();
    apply_all(&mut s, 9, groups, 512).await;
    assert!(matches!(reader.digest(Some(6)), Lookup::NotHeld { oldest, .. } if oldest > 6));
    // After a restart the ring holds the applied index (from the stored digest).
    let (index, d) = newest(&s);
    drop(reader);
    drop(s);
    let s = Storage::open(dir.path(), 1).unwrap();
    assert_eq!(newest(&s), (index, d));
}

#[tokio::test]
async fn a_snapshot_install_and_a_restore_carry_the_digest() {
    let (src_dir, dst_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut src = Storage::open(src_dir.path(), 1).unwrap();
    let groups: Vec<_> = (0..200)
        .map(|i| vec![put(&format!("t/{i}"), &"x".repeat(i % 17))])
        .collect();
    let mut next = apply_all(&mut src, 1, groups, 50).await;
    next = apply_all(
        &mut src,
        next,
        vec![vec![admin(AdminAction::CreateKey(key("w2")))]],
        1,
    )
    .await;

    // A restore staged in chunks and committed: the digest switches to the staged data's.
    let id = "r1".to_string();
    let pairs = |from: u32, to: u32| -> Vec<(Vec<u8>, Vec<u8>)> {
        (from..to)
            .map(|i| (format!("d/restored/{i}").into_bytes(), vec![b'v'; 3]))
            .collect()
    };
    let begin = Command::RestoreBegin {
        id: id.clone(),
        actor: "k1".into(),
        at_ms: 1,
        source: "test".into(),
        backup_cluster: String::new(),
        allow_foreign: true,
    };
    let chunk = |seq: u64, p| Command::RestoreChunk {
        id: id.clone(),
        seq,
        pairs: p,
    };
    next = apply_all(
        &mut src,
        next,
        vec![
            vec![begin],
            vec![chunk(1, pairs(50, 100))],
            vec![put("t/live", "during")],
        ],
        1,
    )
    .await;
    let before_commit = newest(&src).1;

    // Mid-restore, the staged generation travels in snapshots: an installer computes both.
    let mut builder = src.state_machine.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap();
    drop(builder);
    let mut dst = Storage::open(dst_dir.path(), 2).unwrap();
    let current = src
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    let mut receiving = dst.state_machine.begin_receiving_snapshot().await.unwrap();
    let mut file = current.snapshot;
    tokio::io::copy(&mut file, &mut *receiving).await.unwrap();
    dst.state_machine
        .install_snapshot(&current.meta, receiving)
        .await
        .unwrap();
    assert_eq!(newest(&dst), newest(&src), "the installed digest differs");

    // The same commit on both: they agree, and the digest changed.
    let commit = vec![
        vec![chunk(0, pairs(0, 50))],
        vec![Command::RestoreCommit {
            id: id.clone(),
            actor: "k1".into(),
            at_ms: 1,
            chunks: 2,
            pairs: 100,
        }],
    ];
    apply_all(&mut src, next, commit.clone(), 1).await;
    apply_all(&mut dst, next, commit, 2).await;
    let (reader, _) = (src.state_machine.reader(), ());
    let (keys, _) = reader.scan("", usize::MAX).unwrap();
    assert_eq!(keys.len(), 100, "the restore did not commit");
    assert_eq!(newest(&src), newest(&dst));
    assert_ne!(newest(&src).1, before_commit);

    // Both equal a full recompute of what they store (current generation only: the
    // replaced one is the janitor's).
    let want = newest(&src).1;
    drop(reader);
    let (_src, scanned) = recomputed(&src_dir, 1, src);
    assert_eq!(scanned, want);
    let (_dst, scanned) = recomputed(&dst_dir, 2, dst);
    assert_eq!(scanned, want);
}

#[tokio::test]
async fn a_stale_stored_digest_is_recomputed() {
    // An older build that applied entries leaves `m/digest` at an older index.
    let dir = TempDir::new().unwrap();
    let mut s = Storage::open(dir.path(), 1).unwrap();
    apply_all(&mut s, 1, vec![vec![put("a", "1")], vec![put("b", "2")]], 1).await;
    let want = newest(&s).1;
    let tree = s.db.open_tree("sm").unwrap();
    let mut stale = DigestState::decode(&tree.get("m/digest").unwrap().unwrap()).unwrap();
    stale.index = 1;
    stale.data = Digest::ZERO;
    tree.insert("m/digest", stale.encode()).unwrap();
    tree.flush().unwrap();
    drop(tree);
    drop(s);
    let s = Storage::open(dir.path(), 1).unwrap();
    assert_eq!(newest(&s), (2, want));
}

/// The digest the ring holds at `index` (panics if it holds none).
fn held_at(storage: &Storage, index: u64) -> opsdeck_node::store::digest::Held {
    match storage.state_machine.reader().digest(Some(index)) {
        Lookup::At(h) => h,
        other => panic!("index {index} not held: {other:?}"),
    }
}

#[tokio::test]
async fn a_snapshot_carries_the_digest_of_its_own_index_and_a_backup_of_it_verifies() {
    use opsdeck_node::backup::format::{self, BackupWriter, Manifest};
    use opsdeck_node::store::snapshot_file;
    use tokio::io::AsyncReadExt;

    let dir = TempDir::new().unwrap();
    let mut s = Storage::open(dir.path(), 1).unwrap();
    // Scan one pair per step, so the applies below land while the snapshot is read.
    s.state_machine.set_snapshot_scan_batch(1);
    let groups: Vec<_> = (0..60)
        .map(|i| vec![put(&format!("t/{i}"), &"v".repeat(i % 7))])
        .collect();
    let mut next = apply_all(&mut s, 1, groups, 10).await;
    next = apply_all(
        &mut s,
        next,
        vec![
            vec![admin(AdminAction::CreateKey(key("w3")))],
            vec![admin(AdminAction::SetQuota {
                tenant: "t".into(),
                quota: Quota {
                    tier: Tier::Free,
                    max_keys: 1000,
                    max_bytes: 1 << 20,
                },
            })],
        ],
        1,
    )
    .await;
    // A committed restore: the data now lives in generation 1 (`g/…` in the tree), which
    // snapshots, backups and the digest all name `d/KEY`.
    let id = "r2".to_string();
    next = apply_all(
        &mut s,
        next,
        vec![
            vec![Command::RestoreBegin {
                id: id.clone(),
                actor: "k1".into(),
                at_ms: 1,
                source: "test".into(),
                backup_cluster: String::new(),
                allow_foreign: true,
            }],
            vec![Command::RestoreChunk {
                id: id.clone(),
                seq: 0,
                pairs: (0..30)
                    .map(|i| (format!("d/t/r{i}").into_bytes(), vec![b'r'; i]))
                    .collect(),
            }],
            vec![Command::RestoreCommit {
                id,
                actor: "k1".into(),
                at_ms: 1,
                chunks: 1,
                pairs: 30,
            }],
            vec![put("t/after", "restore")],
        ],
        1,
    )
    .await;
    let at = next - 1;
    let before = held_at(&s, at);

    // The view begins at `at`; more writes (overwrites, deletes, a key record) apply while
    // it is read; the snapshot is of `at` whatever they did.
    let mut builder = s.state_machine.get_snapshot_builder().await;
    apply_all(
        &mut s,
        next,
        vec![
            vec![put("t/r3", "changed"), del("t/r4"), put("t/new", "x")],
            vec![admin(AdminAction::CreateKey(key("w4")))],
        ],
        1,
    )
    .await;
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(at));
    assert_ne!(
        newest(&s).1,
        before.total,
        "the later writes changed the digest"
    );

    // The payload as a backup streams it, wrapped by the client's writer.
    let path = dir.path().join(snapshot_file::FILE_NAME);
    let (mut body, meta, len) = snapshot_file::open_body(&path).await.unwrap();
    let mut bytes = vec![0; len as usize];
    body.read_exact(&mut bytes).await.unwrap();
    let out = dir.path().join("b.odb");
    let mut w = BackupWriter::create(&out).unwrap();
    w.write(&bytes).unwrap();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let manifest = Manifest {
        format_version: 0,
        cluster_id: String::new(),
        applied_term: 1,
        applied_index: meta.last_log_id.map(|l| l.index).unwrap_or(0),
        source_node: 1,
        membership: vec![],
        key_count: 0,
        data_bytes: 0,
        pairs: 0,
        payload_bytes: 0,
        payload_sha256: String::new(),
        created_unix_ms: 1,
        data_digest: String::new(),
        tenants_digest: String::new(),
        state_digest: String::new(),
    };
    let written = w.finish(manifest, &sha).unwrap();
    assert_eq!(written.state_digest, before.total.hex());
    assert_eq!(written.data_digest, before.data.hex());
    assert_eq!(written.tenants_digest, before.tenants.hex());
    let verified = format::verify(&out).unwrap();
    assert_eq!(verified, written);
    assert_eq!(verified.key_count, 31, "30 restored keys and t/after");
}
