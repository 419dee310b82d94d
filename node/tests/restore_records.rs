//! Regression (found by the node_api fuzz target): a restore whose backup held records the
//! state machine cannot read — here the payload of the fuzz seed, whose API-key, quota and
//! usage pairs are placeholder bytes — was swapped in, and the apply that then read them
//! (the commit itself reloading the API keys, or the next write to the tenant) failed; a
//! failed apply stops Raft, on every node, since they all apply the same entries. The
//! commit must refuse such a backup and change nothing, and the node must go on working.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use opsdeck_node::security::keys::{KeyRecord, Role};
use opsdeck_node::security::quota::{Tier, Usage};
use opsdeck_node::store::{StateMachine, Storage};
use opsdeck_node::types::{AdminAction, Command, CommandResult, Request, TypeConfig};
use tempfile::TempDir;

fn entry(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request { commands }),
    }
}

async fn apply(sm: &mut StateMachine, index: u64, command: Command) -> CommandResult {
    let mut r = sm
        .apply(vec![entry(index, vec![command])])
        .await
        .unwrap_or_else(|e| panic!("apply {index} failed (this stops Raft): {e}"));
    r.remove(0).results.remove(0)
}

/// Restores `pairs` as one chunk; returns the commit's result.
async fn restore(
    sm: &mut StateMachine,
    first: u64,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
) -> CommandResult {
    let n = pairs.len() as u64;
    let begin = Command::RestoreBegin {
        id: format!("r{first}"),
        actor: "k1".into(),
        at_ms: 1,
        source: "fuzz".into(),
        backup_cluster: String::new(),
        // These state machines have no cluster id: every backup is foreign to them.
        allow_foreign: true,
    };
    assert_eq!(apply(sm, first, begin).await, CommandResult::Done);
    let chunk = Command::RestoreChunk {
        id: format!("r{first}"),
        seq: 0,
        pairs,
    };
    assert_eq!(apply(sm, first + 1, chunk).await, CommandResult::Done);
    let commit = Command::RestoreCommit {
        id: format!("r{first}"),
        actor: "k1".into(),
        at_ms: 1,
        chunks: 1,
        pairs: n,
    };
    apply(sm, first + 2, commit).await
}

fn pair(k: &str, v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.to_vec())
}

fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_backup_with_unreadable_records_is_refused_and_the_node_goes_on() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let sm = &mut storage.state_machine;
    assert!(matches!(
        apply(sm, 1, put("acme/kept", "1")).await,
        CommandResult::Put { .. }
    ));
    // What the fuzzer restored: the seed backup's payload, as the Restore RPC received it.
    let seed = vec![
        pair("d/acme/orders/1", b"hello"),
        pair("d/acme/orders/2", b"world"),
        pair("d/plain", b""),
        pair("k/k0000beef", b"key record"),
        pair("q/acme", b"quota"),
        pair("u/acme", b"usage"),
    ];
    for (i, bad) in [
        seed,
        vec![pair("d/acme/x", b"1"), pair("u/acme", b"usage")],
        vec![pair("d/acme/x", b"1"), pair("q/acme", b"quota")],
    ]
    .into_iter()
    .enumerate()
    {
        match restore(sm, 10 * (i as u64 + 1), bad).await {
            CommandResult::Rejected { reason } => {
                assert!(reason.contains("cannot read"), "{reason}")
            }
            other => panic!("an unreadable backup was restored: {other:?}"),
        }
    }
    // Nothing changed, and writes to the tenant still apply.
    let reader = sm.reader();
    assert_eq!(reader.get("acme/kept").unwrap(), Some(b"1".to_vec()));
    assert_eq!(reader.get("acme/orders/1").unwrap(), None);
    assert!(matches!(
        apply(sm, 40, put("acme/new", "2")).await,
        CommandResult::Put { .. }
    ));
    assert!(reader.api_keys().is_ok());
    assert!(reader.tenants().is_ok());
}

#[tokio::test]
async fn a_restore_counts_keys_from_the_data_not_from_the_backups_bookkeeping() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let sm = &mut storage.state_machine;
    let usage = bincode::serialize(&Usage {
        keys: 2,
        bytes: 7,
        violations: 0,
    })
    .unwrap();
    let quota = bincode::serialize(&Tier::parse("free").unwrap().quota()).unwrap();
    let pairs = vec![
        pair("d/acme/a", b"1"),
        pair("d/acme/b", b"22"),
        // Bookkeeping that disagrees with the data (a forged or damaged backup).
        pair("m/keys", &0u64.to_be_bytes()),
        pair("m/bytes", &0u64.to_be_bytes()),
        pair("u/acme", &usage),
        pair("q/acme", &quota),
    ];
    assert_restored(restore(sm, 1, pairs).await, 2);
    let stats = sm.reader().stats();
    assert_eq!((stats.keys, stats.bytes), (2, (6 + 1) + (6 + 2)));
    // Deleting both keys leaves zero, not an underflow.
    for (i, k) in ["acme/a", "acme/b"].iter().enumerate() {
        let r = apply(sm, 10 + i as u64, Command::Delete { key: k.to_string() }).await;
        assert_eq!(r, CommandResult::Delete { existed: true });
    }
    assert_eq!(sm.reader().stats().keys, 0);
    // Admin actions on the restored tenant read its records.
    let reset = Command::Admin {
        actor: "k1".into(),
        at_ms: 1,
        action: AdminAction::ResetQuota {
            tenant: "acme".into(),
        },
    };
    assert_eq!(apply(sm, 20, reset).await, CommandResult::Done);
}

/// Chunks sent several at a time may be applied in any order; each is staged once (a
/// retried one is ignored), and a commit with a chunk missing is refused.
#[tokio::test]
async fn chunks_stage_in_any_order_and_a_missing_one_refuses_the_commit() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let sm = &mut storage.state_machine;
    let chunk = |id: &str, seq: u64| Command::RestoreChunk {
        id: id.into(),
        seq,
        pairs: vec![pair(&format!("d/t/{seq}"), format!("v{seq}").as_bytes())],
    };
    let begin = |id: &str| Command::RestoreBegin {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 1,
        source: "test".into(),
        backup_cluster: String::new(),
        allow_foreign: true,
    };
    let commit = |id: &str, chunks: u64| Command::RestoreCommit {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 1,
        chunks,
        pairs: chunks,
    };
    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };

    // Chunk 1 never arrives: two chunks staged, the commit names two, but not 0 and 1.
    assert_eq!(apply(sm, next(), begin("a")).await, CommandResult::Done);
    for seq in [2, 0] {
        assert_eq!(
            apply(sm, next(), chunk("a", seq)).await,
            CommandResult::Done
        );
    }
    let refused = apply(sm, next(), commit("a", 2)).await;
    assert!(
        matches!(&refused, CommandResult::Rejected { reason } if reason.contains("nothing was changed")),
        "{refused:?}"
    );
    assert_eq!(sm.reader().get("t/0").unwrap(), None);

    // Out of order, with a retry of chunk 0: all three land, once each.
    assert_eq!(apply(sm, next(), begin("b")).await, CommandResult::Done);
    for seq in [2, 0, 1, 0] {
        assert_eq!(
            apply(sm, next(), chunk("b", seq)).await,
            CommandResult::Done
        );
    }
    assert_restored(apply(sm, next(), commit("b", 3)).await, 3);
    for seq in 0..3 {
        assert_eq!(
            sm.reader().get(&format!("t/{seq}")).unwrap(),
            Some(format!("v{seq}").into_bytes())
        );
    }
    assert_eq!(sm.reader().stats().keys, 3);
    // What restore "a" staged (abandoned when "b" began) and the data "b" replaced are
    // deleted in the background; only "b"'s three keys are left.
    eventually(
        "the abandoned and the replaced generations to be deleted",
        || {
            raw_keys(&storage, b"d/") + raw_keys(&storage, b"g/") == 3
                && raw_keys(&storage, b"x/") == 0
        },
    )
    .await;
}

fn key(id: &str, role: Role, revoked_ms: Option<i64>) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        hash: [id.as_bytes()[1]; 32],
        role,
        tenants: vec![],
        created_ms: 1,
        expires_ms: None,
        revoked_ms,
        last_used_ms: None,
        successor: None,
    }
}

fn admin(action: AdminAction) -> Command {
    Command::Admin {
        actor: "k1".into(),
        at_ms: 10,
        action,
    }
}

/// Issue 15, defect 3: a restore never changes who can reach the cluster. Key records are
/// never taken from a backup (not a key of another cluster, not a key revoked since), and a
/// backup of another cluster, by its manifest or by its own `m/cluster_id` pair, is refused
/// unless the restore was begun with `allow_foreign`.
#[tokio::test]
async fn a_restore_never_touches_api_keys_and_refuses_a_foreign_backup_without_the_flag() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let sm = &mut storage.state_machine;
    let init = Command::InitCluster {
        cluster_id: "c1".into(),
    };
    assert_eq!(apply(sm, 1, init).await, CommandResult::Done);
    for (i, action) in [
        AdminAction::CreateKey(key("k1", Role::Admin, None)),
        AdminAction::CreateKey(key("k2", Role::Admin, None)),
        AdminAction::RevokeKey { id: "k2".into() },
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            apply(sm, 2 + i as u64, admin(action)).await,
            CommandResult::Done
        );
    }
    assert!(matches!(
        apply(sm, 5, put("t/old", "1")).await,
        CommandResult::Put { .. }
    ));
    let keys_before = sm.reader().api_keys().unwrap();
    let enc = |k: &KeyRecord| bincode::serialize(k).unwrap();
    // Another cluster's backup: its own admin key, and k2 not revoked there.
    let theirs = vec![
        pair("d/t/new", b"2"),
        pair("k/k2", &enc(&key("k2", Role::Admin, None))),
        pair("k/kx", &enc(&key("kx", Role::Admin, None))),
        pair("m/cluster_id", b"c2"),
    ];
    let begin = |id: &str, backup_cluster: &str, allow_foreign| Command::RestoreBegin {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 10,
        source: "test".into(),
        backup_cluster: backup_cluster.into(),
        allow_foreign,
    };
    let chunk = |id: &str, pairs: &Vec<(Vec<u8>, Vec<u8>)>| Command::RestoreChunk {
        id: id.into(),
        seq: 0,
        pairs: pairs.clone(),
    };
    let commit = |id: &str, pairs: usize| Command::RestoreCommit {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 10,
        chunks: 1,
        pairs: pairs as u64,
    };
    let refused = |r: &CommandResult| {
        matches!(r, CommandResult::Rejected { reason }
            if reason.contains("taken on cluster c2") && reason.contains("this is cluster c1")
                && reason.contains("--allow-foreign-cluster"))
    };
    // Named foreign by the manifest: refused at begin.
    let r = apply(sm, 10, begin("a", "c2", false)).await;
    assert!(refused(&r), "{r:?}");
    // A client that says nothing (or claims it is ours): the backup's own pair decides.
    for (i, claimed) in ["", "c1"].into_iter().enumerate() {
        let id = format!("b{i}");
        let at = 20 + 10 * i as u64;
        assert_eq!(
            apply(sm, at, begin(&id, claimed, false)).await,
            CommandResult::Done
        );
        let r = apply(sm, at + 1, chunk(&id, &theirs)).await;
        assert!(refused(&r), "{r:?}");
        let r = apply(sm, at + 2, commit(&id, theirs.len())).await;
        assert!(matches!(r, CommandResult::Rejected { .. }), "{r:?}");
    }
    // A backup that names no cluster at all counts as foreign.
    let anonymous = vec![pair("d/t/new", b"2")];
    assert_eq!(
        apply(sm, 40, begin("n", "", false)).await,
        CommandResult::Done
    );
    assert_eq!(
        apply(sm, 41, chunk("n", &anonymous)).await,
        CommandResult::Done
    );
    let r = apply(sm, 42, commit("n", 1)).await;
    assert!(
        matches!(&r, CommandResult::Rejected { reason } if reason.contains("does not say which cluster")),
        "{r:?}"
    );
    assert_eq!(sm.reader().get("t/old").unwrap(), Some(b"1".to_vec()));
    assert_eq!(sm.reader().get("t/new").unwrap(), None);

    // With the flag: the other cluster's data, and exactly this cluster's keys.
    assert_eq!(
        apply(sm, 50, begin("f", "c2", true)).await,
        CommandResult::Done
    );
    assert_eq!(
        apply(sm, 51, chunk("f", &theirs)).await,
        CommandResult::Done
    );
    assert_restored(apply(sm, 52, commit("f", theirs.len())).await, 1);
    let reader = sm.reader();
    assert_eq!(reader.get("t/new").unwrap(), Some(b"2".to_vec()));
    assert_eq!(reader.get("t/old").unwrap(), None);
    assert_eq!(reader.api_keys().unwrap(), keys_before);
    assert_eq!(reader.cluster_id(), "c1");
    let registry = sm.key_registry();
    assert!(
        registry.lookup(&[b'x'; 32]).is_none(),
        "the foreign key was imported"
    );
    assert!(registry
        .lookup(&[b'2'; 32])
        .is_some_and(|k| k.revoked_ms.is_some()));

    // This cluster's own older backup, where k2 was not revoked yet: restored without the
    // flag, and k2 stays revoked.
    let ours = vec![
        pair("d/t/old", b"1"),
        pair("k/k2", &enc(&key("k2", Role::Admin, None))),
        pair("m/cluster_id", b"c1"),
    ];
    assert_eq!(
        apply(sm, 60, begin("o", "c1", false)).await,
        CommandResult::Done
    );
    assert_eq!(apply(sm, 61, chunk("o", &ours)).await, CommandResult::Done);
    assert_restored(apply(sm, 62, commit("o", ours.len())).await, 1);
    assert_eq!(sm.reader().get("t/old").unwrap(), Some(b"1".to_vec()));
    assert_eq!(sm.reader().api_keys().unwrap(), keys_before);
}

/// Keys of the state-machine tree under `prefix` (the physical layout, for the cleanup).
fn raw_keys(storage: &Storage, prefix: &[u8]) -> usize {
    let tree = storage.db.open_tree("sm").unwrap();
    tree.scan_prefix(prefix).count()
}

/// Polls `check` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn begin(id: &str) -> Command {
    Command::RestoreBegin {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 1,
        source: "test".into(),
        backup_cluster: String::new(),
        allow_foreign: true,
    }
}

fn chunk(id: &str, seq: u64, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Command {
    Command::RestoreChunk {
        id: id.into(),
        seq,
        pairs,
    }
}

fn commit(id: &str, chunks: u64, pairs: u64) -> Command {
    Command::RestoreCommit {
        id: id.into(),
        actor: "k1".into(),
        at_ms: 1,
        chunks,
        pairs,
    }
}

/// Everything a client can see of a state machine: the data, the counts, the tenants.
type Visible = (Vec<(String, Vec<u8>)>, (u64, u64), String);

fn visible(sm: &StateMachine) -> Visible {
    let reader = sm.reader();
    let (pairs, more) = reader.scan("", usize::MAX).unwrap();
    assert!(!more);
    let stats = reader.stats();
    let tenants = format!("{:?}", reader.tenants().unwrap());
    (pairs, (stats.keys, stats.bytes), tenants)
}

/// Issue 14: the commit switches generations, and the replaced one is deleted afterwards
/// by the janitor — but not while a snapshot build's frozen view still reads it: that
/// snapshot holds the data as it was at its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replaced_generation_is_deleted_after_the_commit_but_not_under_a_snapshot() {
    use openraft::RaftSnapshotBuilder;
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let mut index = 0;
    for i in 0..300 {
        index += 1;
        let r = apply(
            &mut storage.state_machine,
            index,
            put(&format!("acme/old/{i}"), "o"),
        )
        .await;
        assert!(matches!(r, CommandResult::Put { .. }));
    }
    let before = visible(&storage.state_machine);
    let pairs: Vec<_> = (0..200)
        .map(|i| pair(&format!("d/acme/new/{i}"), b"n"))
        .collect();
    let sm = &mut storage.state_machine;
    assert_eq!(apply(sm, index + 1, begin("g")).await, CommandResult::Done);
    assert_eq!(
        apply(sm, index + 2, chunk("g", 0, pairs)).await,
        CommandResult::Done
    );
    // A snapshot's view begins before the commit and is built after it.
    let mut builder = sm.get_snapshot_builder().await;
    assert_restored(apply(sm, index + 3, commit("g", 1, 200)).await, 200);
    let after = visible(sm);
    assert_eq!(after.0.len(), 200);
    let bytes: usize = (0..200).map(|i| format!("acme/new/{i}").len() + 1).sum();
    assert_eq!(after.1, (200, bytes as u64));
    // Given time, the janitor still leaves generation 0 alone: the view reads it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(raw_keys(&storage, b"d/"), 300);
    let snapshot = builder.build_snapshot().await.unwrap();
    let path = dir
        .path()
        .join(opsdeck_node::store::snapshot_file::FILE_NAME);
    let (_, in_file) = opsdeck_node::store::snapshot_file::pairs(&path).unwrap();
    let data: Vec<(String, Vec<u8>)> = in_file
        .map(|p| p.unwrap())
        .filter_map(|(k, v)| {
            k.strip_prefix(b"d/")
                .map(|k| (String::from_utf8(k.to_vec()).unwrap(), v))
        })
        .collect();
    let mut expected = before.0.clone();
    expected.sort();
    let mut data_sorted = data.clone();
    data_sorted.sort();
    assert_eq!(
        data_sorted, expected,
        "the snapshot is not the state at its index"
    );
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(index + 2));
    drop(snapshot);
    // Now the janitor deletes it, and what the restore staged besides data.
    eventually("generation 0 to be deleted", || {
        raw_keys(&storage, b"d/") == 0
    })
    .await;
    eventually("the staging's markers to be deleted", || {
        raw_keys(&storage, b"x/") == 0
    })
    .await;
    assert_eq!(visible(&storage.state_machine), after);
}

/// A snapshot taken while a restore is staged, installed on another node, carries the
/// staging along: the rest of the restore then applies there exactly as on the leader,
/// whatever generation numbers each node uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_snapshot_carries_a_staged_restore_and_ends_in_the_leaders_state() {
    let (d1, d2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut leader = Storage::open(d1.path(), 1).unwrap();
    let mut other = Storage::open(d2.path(), 2).unwrap();
    let usage = bincode::serialize(&Usage {
        keys: 2,
        bytes: 4,
        violations: 0,
    })
    .unwrap();
    let quota = bincode::serialize(&Tier::parse("free").unwrap().quota()).unwrap();
    let sm = &mut leader.state_machine;
    // Two restores on the leader, so its generations are numbered past the installer's.
    let mut index = 0;
    for round in 0..2 {
        let id = format!("warm{round}");
        index += 1;
        assert_eq!(apply(sm, index, begin(&id)).await, CommandResult::Done);
        index += 1;
        let c = chunk(&id, 0, vec![pair(&format!("d/w/{round}"), b"w")]);
        assert_eq!(apply(sm, index, c).await, CommandResult::Done);
        index += 1;
        let r = apply(sm, index, commit(&id, 1, 1)).await;
        assert_restored(r, 1);
    }
    index += 1;
    assert!(matches!(
        apply(sm, index, put("w/live", "x")).await,
        CommandResult::Put { .. }
    ));
    index += 1;
    assert_eq!(apply(sm, index, begin("r")).await, CommandResult::Done);
    index += 1;
    let first = vec![pair("d/acme/a", b"1"), pair("u/acme", &usage)];
    assert_eq!(
        apply(sm, index, chunk("r", 0, first)).await,
        CommandResult::Done
    );
    // The snapshot, mid-staging, installed on the other node.
    let mut builder = sm.get_snapshot_builder().await;
    {
        use openraft::RaftSnapshotBuilder;
        builder.build_snapshot().await.unwrap();
    }
    let snap = sm.get_current_snapshot().await.unwrap().unwrap();
    other
        .state_machine
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(
        visible(&other.state_machine),
        visible(&leader.state_machine)
    );
    // The rest of the restore, on both.
    let rest = [
        chunk(
            "r",
            1,
            vec![pair("d/acme/b", b"22"), pair("q/acme", &quota)],
        ),
        commit("r", 2, 4),
    ];
    for (i, c) in rest.into_iter().enumerate() {
        let at = index + 1 + i as u64;
        let a = apply(&mut leader.state_machine, at, c.clone()).await;
        let b = apply(&mut other.state_machine, at, c).await;
        assert_eq!(a, b);
    }
    let (l, o) = (
        visible(&leader.state_machine),
        visible(&other.state_machine),
    );
    assert_eq!(l, o);
    assert_eq!(
        l.0,
        vec![
            ("acme/a".into(), b"1".to_vec()),
            ("acme/b".into(), b"22".to_vec())
        ]
    );
    assert!(l.2.contains("acme"), "{}", l.2);
    // Both clean up what they no longer use: only the current generation's keys are left.
    for s in [&leader, &other] {
        eventually("the old generations to be deleted", || {
            raw_keys(s, b"d/") + raw_keys(s, b"g/") == 2 && raw_keys(s, b"x/") == 0
        })
        .await;
    }
}

/// A restore given up (its client went away): the data in use stays, its commit is then
/// refused, the staging is gone from the reader's view, and a new restore works.
#[tokio::test]
async fn an_abandoned_restore_changes_nothing_and_cannot_be_committed() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let sm = &mut storage.state_machine;
    assert!(matches!(
        apply(sm, 1, put("t/kept", "1")).await,
        CommandResult::Put { .. }
    ));
    let begin = Command::RestoreBegin {
        id: "gone".into(),
        actor: "k1".into(),
        at_ms: 1,
        source: "test".into(),
        backup_cluster: String::new(),
        allow_foreign: true,
    };
    assert_eq!(apply(sm, 2, begin).await, CommandResult::Done);
    let chunk = Command::RestoreChunk {
        id: "gone".into(),
        seq: 0,
        pairs: vec![pair("d/t/staged", b"x")],
    };
    assert_eq!(apply(sm, 3, chunk).await, CommandResult::Done);
    assert_eq!(sm.reader().restore_staging(), Some(("gone".into(), 1)));

    let abandon = |id: &str| Command::RestoreAbandon {
        id: id.into(),
        actor: "node 1".into(),
        at_ms: 2,
        reason: "idle".into(),
    };
    // Another id is not the one staged: nothing is given up.
    assert!(matches!(
        apply(sm, 4, abandon("other")).await,
        CommandResult::Rejected { .. }
    ));
    assert_eq!(apply(sm, 5, abandon("gone")).await, CommandResult::Done);
    assert_eq!(sm.reader().restore_staging(), None);
    let commit = Command::RestoreCommit {
        id: "gone".into(),
        actor: "k1".into(),
        at_ms: 3,
        chunks: 1,
        pairs: 1,
    };
    match apply(sm, 6, commit).await {
        CommandResult::Rejected { reason } => {
            assert!(reason.contains("not being staged"), "{reason}")
        }
        other => panic!("an abandoned restore was committed: {other:?}"),
    }
    let reader = sm.reader();
    assert_eq!(reader.get("t/kept").unwrap(), Some(b"1".to_vec()));
    assert_eq!(reader.get("t/staged").unwrap(), None);
    let audit = reader.audit(10).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "restore_abandon" && a.result.contains("after 1 chunks")),
        "{audit:?}"
    );
    // A new restore after it goes through.
    assert_restored(restore(sm, 10, vec![pair("d/t/new", b"n")]).await, 1);
    assert_eq!(sm.reader().get("t/new").unwrap(), Some(b"n".to_vec()));
}

/// A commit that went through, with `keys` user keys (at whichever index carried it).
#[track_caller]
fn assert_restored(result: CommandResult, keys: u64) {
    assert!(
        matches!(result, CommandResult::Restored { keys: k, .. } if k == keys),
        "{result:?}, expected {keys} keys restored"
    );
}
