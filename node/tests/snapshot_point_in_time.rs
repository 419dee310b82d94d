//! A snapshot is the state at exactly its index, although applying goes on while it is
//! built: writes, overwrites and deletes land ahead of and behind the scan, and the file
//! holds none of them. Installed elsewhere, it gives that state back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use opsdeck_node::store::{snapshot_file, Storage};
use opsdeck_node::types::{Command, Request, TypeConfig};
use tempfile::TempDir;

fn entry(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request { commands }),
    }
}

fn put(key: String, value: String) -> Command {
    Command::Put {
        key,
        value: value.into_bytes(),
    }
}

/// What the data is after `commands`, as a plain map (the model the files are held to).
fn replay(model: &mut BTreeMap<String, Vec<u8>>, commands: &[Command]) {
    for c in commands {
        match c {
            Command::Put { key, value } => {
                model.insert(key.clone(), value.clone());
            }
            Command::Delete { key } => {
                model.remove(key);
            }
            other => panic!("not used here: {other:?}"),
        }
    }
}

/// Applies `commands` as entry `index`, and to the model.
async fn apply(
    storage: &mut Storage,
    model: &mut BTreeMap<String, Vec<u8>>,
    index: u64,
    commands: Vec<Command>,
) {
    replay(model, &commands);
    storage
        .state_machine
        .apply(vec![entry(index, commands)])
        .await
        .unwrap();
}

/// The user data a snapshot file holds.
fn data_in(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let (_, pairs) = snapshot_file::pairs(path).unwrap();
    pairs
        .map(|p| p.unwrap())
        .filter_map(|(k, v)| {
            k.strip_prefix(b"d/")
                .map(|k| (String::from_utf8(k.to_vec()).unwrap(), v))
        })
        .collect()
}

fn scan_all(storage: &Storage) -> BTreeMap<String, Vec<u8>> {
    let (pairs, more) = storage.state_machine.reader().scan("", usize::MAX).unwrap();
    assert!(!more);
    pairs.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_the_state_at_its_index_while_applies_go_on() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let mut model = BTreeMap::new();
    let mut index = 0;
    // 3,000 keys in 300 entries: t/0000 .. t/2999.
    for chunk in 0..300 {
        index += 1;
        let commands: Vec<Command> = (0..10)
            .map(|i| {
                put(
                    format!("t/{:04}", chunk * 10 + i),
                    format!("v0-{chunk}-{i}"),
                )
            })
            .collect();
        apply(&mut storage, &mut model, index, commands).await;
    }
    let at_snapshot = model.clone();
    let snapshot_index = index;

    // One key per scan step, so the scan is slow and the applies below interleave with it.
    storage.state_machine.set_snapshot_scan_batch(1);
    let mut builder = storage.state_machine.get_snapshot_builder().await;
    let build = tokio::spawn(async move { builder.build_snapshot().await });

    // Overwrite, delete and create keys all over the key range (ahead of the scan and
    // behind it), and keys before and after every existing one, until the build is done.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut during = 0;
    let mut round = 0u64;
    while !build.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the snapshot build did not finish"
        );
        round += 1;
        index += 1;
        let n = (round * 37) % 3000;
        let commands = vec![
            put(format!("t/{n:04}"), format!("v{round}")),
            Command::Delete {
                key: format!("t/{:04}", (n + 1500) % 3000),
            },
            put(format!("t/{n:04}-new"), format!("n{round}")),
            put(format!("a/{round}"), "before every t/ key".into()),
            put(format!("z/{round}"), "after every t/ key".into()),
        ];
        apply(&mut storage, &mut model, index, commands).await;
        during += 1;
        tokio::task::yield_now().await;
    }
    let snap = build.await.unwrap().unwrap();
    assert!(
        during >= 20,
        "only {during} applies ran during the build: the test did not interleave them"
    );
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(snapshot_index));

    // The file holds exactly the state at the snapshot's index, none of what came after.
    let stored = dir.path().join(snapshot_file::FILE_NAME);
    let got = data_in(&stored);
    assert_eq!(got.len(), at_snapshot.len());
    assert!(
        got == at_snapshot,
        "the snapshot differs from the state at its index"
    );
    // The live data has every write made meanwhile.
    assert_eq!(scan_all(&storage), model);
    // The copy-on-write side trees are gone.
    assert!(
        !storage
            .db
            .tree_names()
            .iter()
            .any(|n| n.starts_with(opsdeck_node::store::freeze::SIDE_TREE_PREFIX.as_bytes())),
        "a side tree outlived its snapshot"
    );

    // Installed on another node, the snapshot gives that state back, counts included.
    let other_dir = TempDir::new().unwrap();
    let mut other = Storage::open(other_dir.path(), 2).unwrap();
    let current = storage
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    let mut receiving = other
        .state_machine
        .begin_receiving_snapshot()
        .await
        .unwrap();
    let mut source = current.snapshot;
    tokio::io::copy(&mut source, &mut *receiving).await.unwrap();
    other
        .state_machine
        .install_snapshot(&current.meta, receiving)
        .await
        .unwrap();
    assert!(scan_all(&other) == at_snapshot);
    let stats = other.state_machine.reader().stats();
    assert_eq!(stats.keys, at_snapshot.len() as u64);
    let bytes: usize = at_snapshot.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(stats.bytes, bytes as u64);
    let (applied, _) = other.state_machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(snapshot_index));
}

/// A snapshot from the leader that is cut short is refused before anything is replaced.
#[tokio::test]
async fn a_truncated_snapshot_changes_nothing() {
    let source_dir = TempDir::new().unwrap();
    let mut source = Storage::open(source_dir.path(), 1).unwrap();
    let commands: Vec<Command> = (0..100)
        .map(|i| put(format!("t/{i}"), "x".repeat(100)))
        .collect();
    source
        .state_machine
        .apply(vec![entry(1, commands)])
        .await
        .unwrap();
    let snap = source
        .state_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let full = std::fs::read(source_dir.path().join(snapshot_file::FILE_NAME)).unwrap();

    let dir = TempDir::new().unwrap();
    let mut target = Storage::open(dir.path(), 2).unwrap();
    target
        .state_machine
        .apply(vec![entry(1, vec![put("t/mine".into(), "kept".into())])])
        .await
        .unwrap();
    let mut receiving = target
        .state_machine
        .begin_receiving_snapshot()
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *receiving, &full[..full.len() / 2])
        .await
        .unwrap();
    let err = target
        .state_machine
        .install_snapshot(&snap.meta, receiving)
        .await
        .expect_err("a truncated snapshot must be refused");
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert_eq!(
        target.state_machine.reader().get("t/mine").unwrap(),
        Some(b"kept".to_vec())
    );
}
