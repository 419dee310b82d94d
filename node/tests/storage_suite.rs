//! Proves the sled log store and state machine against openraft's own storage test suite,
//! plus the recovery behaviour the suite does not cover.

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use opsdeck_node::store::{LogStore, StateMachine, Storage};
use opsdeck_node::types::{Command, CommandResult, Request, StorageError, TypeConfig};
use tempfile::TempDir;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let storage = Storage::open(dir.path(), 1).expect("open storage");
        Ok((dir, storage.log, storage.state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}

fn put_entry(index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request {
            commands: vec![Command::Put {
                key: key.into(),
                value: value.as_bytes().to_vec(),
            }],
        }),
    }
}

#[tokio::test]
async fn applied_data_and_snapshot_survive_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let mut storage = Storage::open(dir.path(), 7).unwrap();
        let results = storage
            .state_machine
            .apply(vec![put_entry(1, "a/x", "1"), put_entry(2, "a/y", "22")])
            .await
            .unwrap();
        assert_eq!(results[1].results, vec![CommandResult::Put { revision: 2 }]);
        let mut builder = storage.state_machine.get_snapshot_builder().await;
        let snap = builder.build_snapshot().await.unwrap();
        assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(2));
        storage
            .state_machine
            .apply(vec![put_entry(3, "a/z", "333")])
            .await
            .unwrap();
        storage.db.flush().unwrap();
    }
    let mut storage = Storage::open(dir.path(), 7).unwrap();
    let (applied, _) = storage.state_machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(3));
    let reader = storage.state_machine.reader();
    assert_eq!(reader.get("a/z").unwrap(), Some(b"333".to_vec()));
    assert_eq!(reader.stats().keys, 3);
    assert_eq!(reader.stats().bytes, (3 + 1) + (3 + 2) + (3 + 3));
    let snap = storage
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(2));
    let (state, _) = (storage.log.get_log_state().await.unwrap(), ());
    assert_eq!(state.last_log_id, None);
}

#[tokio::test]
async fn installing_a_snapshot_replaces_all_data() {
    let source_dir = TempDir::new().unwrap();
    let mut source = Storage::open(source_dir.path(), 1).unwrap();
    source
        .state_machine
        .apply(vec![put_entry(1, "t/keep", "v")])
        .await
        .unwrap();
    let snap = source
        .state_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let dir = TempDir::new().unwrap();
    let mut target = Storage::open(dir.path(), 2).unwrap();
    target
        .state_machine
        .apply(vec![put_entry(1, "t/gone", "old")])
        .await
        .unwrap();
    target
        .state_machine
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    let reader = target.state_machine.reader();
    assert_eq!(reader.get("t/gone").unwrap(), None);
    assert_eq!(reader.get("t/keep").unwrap(), Some(b"v".to_vec()));
    assert_eq!(reader.stats().keys, 1);
}

#[tokio::test]
async fn over_limit_values_are_rejected_at_apply_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let mut storage = Storage::open(dir.path(), 1).unwrap();
    let big = "x".repeat(opsdeck_node::types::limits::MAX_VALUE_BYTES + 1);
    let results = storage
        .state_machine
        .apply(vec![put_entry(1, "t/big", &big)])
        .await
        .unwrap();
    assert!(matches!(
        results[0].results[0],
        CommandResult::Rejected { .. }
    ));
    assert_eq!(storage.state_machine.reader().get("t/big").unwrap(), None);
}

#[test]
fn a_foreign_or_mismatched_data_dir_is_refused() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "not ours").unwrap();
    let err = Storage::open(dir.path(), 1).err().expect("must refuse");
    assert!(
        err.to_string().contains("is not an opsdeck data dir"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "not ours"
    );

    let dir = TempDir::new().unwrap();
    drop(Storage::open(dir.path(), 1).unwrap());
    let err = Storage::open(dir.path(), 2).err().expect("must refuse");
    assert!(
        err.to_string().contains("belongs to node 1, not node 2"),
        "{err}"
    );
}
