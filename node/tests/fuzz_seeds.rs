//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from the real
//! encoders: a backup made with the backup writer, protobuf and bincode messages as nodes
//! send them, requests for the running-node target, and the shipped keymaps, themes and
//! rules. Ignored in the normal run; regenerate with
//!
//! ```sh
//! cargo test --release -p opsdeck-node --test fuzz_seeds -- --ignored
//! ```
//!
//! The input layouts are described in fuzz/README.md and at the top of each target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, StoredMembership, Vote};
use opsdeck_node::backup::format::{BackupWriter, Manifest, MemberRecord, MAGIC};
use opsdeck_node::pb;
use opsdeck_node::security::keys::{KeyRecord, Role};
use opsdeck_node::security::quota::Tier;
use opsdeck_node::types::{
    AdminAction, Command, CommandResult, Entry, NodeAddr, Request, SnapshotMeta, TypeConfig,
};
use prost::Message;
use sha2::{Digest, Sha256};

fn seeds(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

fn addr(n: u64) -> NodeAddr {
    NodeAddr {
        grpc: format!("127.0.0.1:710{n}"),
        http: format!("127.0.0.1:720{n}"),
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<u64, NodeAddr> {
    let nodes: BTreeMap<u64, NodeAddr> = (1..=3).map(|n| (n, addr(n))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn key_record() -> KeyRecord {
    KeyRecord {
        id: "k0000beef".into(),
        hash: Sha256::digest(b"odk_seed").into(),
        role: Role::Write,
        tenants: vec!["acme".into()],
        created_ms: 1_700_000_000_000,
        expires_ms: Some(1_800_000_000_000),
        revoked_ms: None,
        last_used_ms: None,
        successor: None,
    }
}

/// One of every command.
fn commands() -> Vec<Command> {
    vec![
        Command::InitCluster {
            cluster_id: "0123456789abcdef0123456789abcdef".into(),
        },
        Command::Put {
            key: "acme/orders/1".into(),
            value: b"hello".to_vec(),
        },
        Command::Delete {
            key: "acme/orders/1".into(),
        },
        Command::Cas {
            key: "acme/x".into(),
            expected: None,
            new: Some(b"1".to_vec()),
        },
        Command::Admin {
            actor: "k1".into(),
            at_ms: 1_700_000_000_000,
            action: AdminAction::CreateKey(key_record()),
        },
        Command::Admin {
            actor: "k1".into(),
            at_ms: 1_700_000_000_000,
            action: AdminAction::RotateKey {
                old_id: "k0000beef".into(),
                new_id: "k0000cafe".into(),
                new_hash: [7; 32],
                grace_until_ms: 1_700_000_100_000,
            },
        },
        Command::Admin {
            actor: "k1".into(),
            at_ms: 1,
            action: AdminAction::RevokeKey {
                id: "k0000cafe".into(),
            },
        },
        Command::Admin {
            actor: "k1".into(),
            at_ms: 1,
            action: AdminAction::SetQuota {
                tenant: "acme".into(),
                quota: Tier::parse("free").unwrap().quota(),
            },
        },
        Command::Admin {
            actor: "k1".into(),
            at_ms: 1,
            action: AdminAction::ResetQuota {
                tenant: "acme".into(),
            },
        },
        Command::Audit {
            actor: "k1".into(),
            at_ms: 1,
            action: "compact".into(),
            args: "node=1".into(),
            result: "ok".into(),
        },
        Command::TouchKeys {
            used: vec![("k0000beef".into(), 5)],
        },
        Command::RestoreBegin {
            id: "r1".into(),
            actor: "k1".into(),
            at_ms: 1,
            source: "nightly.odb".into(),
            backup_cluster: "c1".into(),
            allow_foreign: false,
        },
        Command::RestoreChunk {
            id: "r1".into(),
            seq: 0,
            pairs: vec![(b"d/acme/x".to_vec(), b"1".to_vec())],
        },
        Command::RestoreCommit {
            id: "r1".into(),
            actor: "k1".into(),
            at_ms: 1,
            chunks: 1,
            pairs: 1,
        },
    ]
}

fn pairs_payload(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    bincode::serialize(&owned).unwrap()
}

fn backup_seeds() -> Vec<u8> {
    let dir = seeds("backup_file");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("seed.odb");
    let payload = pairs_payload(&[
        (b"d/acme/orders/1", b"hello"),
        (b"d/acme/orders/2", b"world"),
        (b"d/plain", b""),
        (b"k/k0000beef", b"key record"),
        (b"q/acme", b"quota"),
        (b"u/acme", b"usage"),
    ]);
    let mut w = BackupWriter::create(&path).unwrap();
    for chunk in payload.chunks(7) {
        w.write(chunk).unwrap();
    }
    let sha = hex::encode(Sha256::digest(&payload));
    w.finish(
        Manifest {
            format_version: 0,
            cluster_id: "0123456789abcdef0123456789abcdef".into(),
            applied_term: 2,
            applied_index: 41,
            source_node: 1,
            membership: (1..=3)
                .map(|n| MemberRecord {
                    id: n,
                    grpc: addr(n).grpc,
                    http: addr(n).http,
                    voter: n < 3,
                })
                .collect(),
            key_count: 0,
            data_bytes: 0,
            pairs: 0,
            payload_bytes: 0,
            payload_sha256: String::new(),
            created_unix_ms: 1_700_000_000_000,
            data_digest: String::new(),
            tenants_digest: String::new(),
            state_digest: String::new(),
        },
        &sha,
    )
    .unwrap();
    let file = std::fs::read(&path).unwrap();
    write(&dir, "real.odb", &file);
    // The same backup as parts: PARTS, flags (fix length and hash), LEN, payload, manifest.
    let manifest_len =
        u32::from_be_bytes(file[file.len() - 49..file.len() - 45].try_into().unwrap());
    let manifest_end = file.len() - 49;
    let manifest = &file[manifest_end - manifest_len as usize..manifest_end];
    let mut parts = b"PARTS".to_vec();
    parts.push(0b11);
    parts.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    parts.extend_from_slice(&payload);
    parts.extend_from_slice(manifest);
    write(&dir, "real.parts", &parts);
    let mut empty_payload = b"PARTS".to_vec();
    empty_payload.push(0b11);
    let empty = pairs_payload(&[]);
    empty_payload.extend_from_slice(&(empty.len() as u32).to_le_bytes());
    empty_payload.extend_from_slice(&empty);
    empty_payload.extend_from_slice(manifest);
    write(&dir, "empty.parts", &empty_payload);
    write(&dir, "header-only.odb", MAGIC);
    payload
}

fn wire_seeds(payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    let vote = Vote::new_committed(3, 1);
    let entries: Vec<Entry> = vec![
        Entry {
            log_id: log_id(3, 10),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(3, 11),
            payload: EntryPayload::Normal(Request {
                commands: commands(),
            }),
        },
        Entry {
            log_id: log_id(3, 12),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(2, 9)),
        entries,
        leader_commit: Some(log_id(3, 10)),
    };
    let snapshot = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 12)),
            last_membership: StoredMembership::new(Some(log_id(3, 12)), membership()),
            snapshot_id: "3-12-1".into(),
        },
        offset: 0,
        data: payload.to_vec(),
        done: true,
    };
    let request_vote = VoteRequest::new(Vote::new(4, 2), Some(log_id(3, 12)));
    let results = vec![
        CommandResult::Done,
        CommandResult::Put { revision: 11 },
        CommandResult::Delete { existed: true },
        CommandResult::Cas {
            succeeded: false,
            current: Some(b"2".to_vec()),
        },
        CommandResult::Rejected {
            reason: "too big".into(),
        },
        CommandResult::QuotaExceeded {
            reason: "over".into(),
        },
        CommandResult::NotFound {
            reason: "no key".into(),
        },
        CommandResult::Restored { keys: 3, index: 14 },
    ];
    let append = bincode::serialize(&append).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = vec![
        ("bincode-append-entries".into(), append.clone()),
        (
            "bincode-vote".into(),
            bincode::serialize(&request_vote).unwrap(),
        ),
        (
            "bincode-install-snapshot".into(),
            bincode::serialize(&snapshot).unwrap(),
        ),
        (
            "bincode-commands".into(),
            bincode::serialize(&commands()).unwrap(),
        ),
        (
            "bincode-results".into(),
            bincode::serialize(&results).unwrap(),
        ),
        ("pairs".into(), payload.to_vec()),
    ];
    let mut proto = |name: &str, bytes: Vec<u8>| out.push((format!("pb-{name}"), bytes));
    proto(
        "raft-payload",
        pb::RaftPayload { data: append }.encode_to_vec(),
    );
    proto(
        "propose",
        pb::ProposeRequest {
            commands: bincode::serialize(&commands()).unwrap(),
        }
        .encode_to_vec(),
    );
    proto(
        "put",
        pb::PutRequest {
            key: "acme/orders/1".into(),
            value: b"hello".to_vec(),
        }
        .encode_to_vec(),
    );
    proto(
        "cas",
        pb::CasRequest {
            key: "acme/x".into(),
            expected: Some(b"1".to_vec()),
            new_value: Some(b"2".to_vec()),
        }
        .encode_to_vec(),
    );
    proto(
        "scan",
        pb::ScanRequest {
            prefix: "acme/".into(),
            limit: 10,
            stale: true,
        }
        .encode_to_vec(),
    );
    proto(
        "watch",
        pb::WatchRequest {
            status_interval_ms: 100,
            logs: true,
            events: true,
            log_history: 100,
        }
        .encode_to_vec(),
    );
    proto(
        "create-key",
        pb::CreateKeyRequest {
            role: "write".into(),
            tenants: vec!["acme".into()],
            expires_in_ms: 60_000,
        }
        .encode_to_vec(),
    );
    proto(
        "set-quota",
        pb::SetQuotaRequest {
            tenant: "acme".into(),
            tier: "free".into(),
            max_keys: Some(5),
            max_bytes: Some(1000),
        }
        .encode_to_vec(),
    );
    proto(
        "restore-chunk",
        pb::RestoreRequest {
            restore_id: "r1".into(),
            seq: 0,
            step: Some(pb::restore_request::Step::Chunk(payload.to_vec())),
        }
        .encode_to_vec(),
    );
    proto(
        "add-learner",
        pb::AddLearnerRequest {
            id: 4,
            grpc: "127.0.0.1:7104".into(),
            http: "127.0.0.1:7204".into(),
            blocking: true,
        }
        .encode_to_vec(),
    );
    proto(
        "change-membership",
        pb::ChangeMembershipRequest {
            voters: vec![1, 2, 3],
            retain: true,
            remove: vec![],
        }
        .encode_to_vec(),
    );
    proto("node-status", node_status().encode_to_vec());
    proto(
        "watch-event",
        pb::WatchEvent {
            kind: Some(pb::watch_event::Kind::Status(node_status())),
        }
        .encode_to_vec(),
    );
    proto(
        "backup-chunk",
        pb::BackupChunk {
            part: Some(pb::backup_chunk::Part::Header(pb::BackupHeader {
                cluster_id: "c".into(),
                applied_term: 3,
                applied_index: 12,
                source_node: 1,
                members: vec![],
                payload_bytes: 9,
                created_unix_ms: 1_700_000_000_000,
            })),
        }
        .encode_to_vec(),
    );
    out
}

fn node_status() -> pb::NodeStatus {
    pb::NodeStatus {
        id: 1,
        grpc: addr(1).grpc,
        http: addr(1).http,
        role: "leader".into(),
        term: 3,
        leader_id: Some(1),
        last_log_index: Some(120),
        committed: Some(120),
        applied: Some(120),
        members: (1..=3)
            .map(|n| pb::Member {
                id: n,
                grpc: addr(n).grpc,
                http: addr(n).http,
                voter: true,
            })
            .collect(),
        followers: vec![pb::FollowerProgress {
            id: 2,
            matched: Some(100),
            lag: 20,
            ..Default::default()
        }],
        ops: vec![pb::OpStats {
            op: "put".into(),
            per_sec: 12.5,
            total: 1000,
            errors: 12,
            p50_us: 800,
            p95_us: 4000,
            p99_us: 1_500_000,
            max_us: 2_000_000,
        }],
        fs_total_bytes: 100_000,
        fs_free_bytes: 10_000,
        quotas: vec![pb::TenantUsage {
            tenant: "acme".into(),
            tier: "free".into(),
            keys: 9_500,
            bytes: 100,
            max_keys: Some(10_000),
            max_bytes: Some(10_485_760),
            violations: 2,
        }],
        last_backup_unix_ms: Some(1_700_000_000_000),
        ..Default::default()
    }
}

fn node_api_seeds(wire: &[(String, Vec<u8>)]) {
    let dir = seeds("node_api");
    for (name, text) in [
        ("http-health", "GET /health\n\n"),
        (
            "http-put-admin",
            "PUT /kv/acme/greeting\nAuthorization: Bearer $ADMIN\n\nhello",
        ),
        (
            "http-get-read",
            "GET /kv/acme/greeting\nX-API-Key: $READ\n\n",
        ),
        (
            "http-get-stale",
            "GET /kv/acme/greeting?stale=true\nX-API-Key: $WRITE\n\n",
        ),
        (
            "http-delete-write",
            "DELETE /kv/acme/greeting\nAuthorization: Bearer $WRITE\n\n",
        ),
        (
            "http-put-other-tenant",
            "PUT /kv/other/x\nx-api-key: $WRITE\n\nv",
        ),
        (
            "http-put-unknown-key",
            "PUT /kv/acme/x\nAuthorization: Bearer odk_0000\n\n1",
        ),
        ("http-put-no-key", "PUT /kv/acme/x\n\n1"),
        (
            "http-metrics",
            "GET /metrics\nAuthorization: Bearer $READ\n\n",
        ),
        (
            "http-cluster-info",
            "GET /cluster/info\nAuthorization: Bearer $ADMIN\n\n",
        ),
        (
            "http-cluster-nodes",
            "GET /cluster/nodes\nAuthorization: bearer $READ\n\n",
        ),
        (
            "http-cluster-leader",
            "GET /cluster/leader\nX-API-Key: $ADMIN\n\n",
        ),
        (
            "http-secret",
            "GET /cluster/info\nx-opsdeck-cluster-secret: $SECRET\n\n",
        ),
    ] {
        write(&dir, name, text);
    }
    let grpc = |name: &str, path: &str, auth: &str, body: &[u8]| {
        let mut bytes = format!("GRPC /opsdeck.v1.Node/{path}\n{auth}\n\n").into_bytes();
        bytes.extend_from_slice(body);
        write(&dir, &format!("grpc-{name}"), bytes);
    };
    let admin = "authorization: Bearer $ADMIN";
    let by_name = |n: &str| {
        wire.iter()
            .find(|(w, _)| w == n)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    grpc("put", "Put", "x-api-key: $WRITE", &by_name("pb-put"));
    grpc("cas", "Cas", admin, &by_name("pb-cas"));
    grpc("scan", "Scan", "x-api-key: $READ", &by_name("pb-scan"));
    grpc(
        "get",
        "Get",
        admin,
        &pb::GetRequest {
            key: "acme/orders/1".into(),
            stale: false,
        }
        .encode_to_vec(),
    );
    grpc(
        "delete",
        "Delete",
        admin,
        &pb::DeleteRequest {
            key: "acme/orders/1".into(),
        }
        .encode_to_vec(),
    );
    grpc("status", "Status", "x-api-key: $READ", &[]);
    grpc("watch", "Watch", admin, &by_name("pb-watch"));
    grpc("create-key", "CreateKey", admin, &by_name("pb-create-key"));
    grpc(
        "rotate-key",
        "RotateKey",
        admin,
        &pb::RotateKeyRequest {
            id: "k00000000".into(),
            grace_ms: 1000,
        }
        .encode_to_vec(),
    );
    grpc(
        "revoke-key",
        "RevokeKey",
        admin,
        &pb::RevokeKeyRequest {
            id: "k00000000".into(),
        }
        .encode_to_vec(),
    );
    grpc("list-keys", "ListKeys", admin, &[]);
    grpc("set-quota", "SetQuota", admin, &by_name("pb-set-quota"));
    grpc(
        "reset-quota",
        "ResetQuota",
        admin,
        &pb::ResetQuotaRequest {
            tenant: "acme".into(),
        }
        .encode_to_vec(),
    );
    grpc("list-quotas", "ListQuotas", admin, &[]);
    grpc(
        "list-audit",
        "ListAudit",
        admin,
        &pb::ListAuditRequest { limit: 5 }.encode_to_vec(),
    );
    grpc("compact", "Compact", admin, &[]);
    grpc("backup", "Backup", admin, &[]);
    grpc(
        "restore-begin",
        "Restore",
        admin,
        &pb::RestoreRequest {
            restore_id: "r1".into(),
            seq: 0,
            step: Some(pb::restore_request::Step::Begin(pb::RestoreBegin {
                source: "seed".into(),
                backup_cluster_id: String::new(),
                allow_foreign_cluster: true,
            })),
        }
        .encode_to_vec(),
    );
    grpc(
        "restore-chunk",
        "Restore",
        admin,
        &by_name("pb-restore-chunk"),
    );
    grpc(
        "restore-commit",
        "Restore",
        admin,
        &pb::RestoreRequest {
            restore_id: "r1".into(),
            seq: 1,
            step: Some(pb::restore_request::Step::Commit(pb::RestoreCommit {
                chunks: 1,
                pairs: 6,
            })),
        }
        .encode_to_vec(),
    );
    let secret = "x-opsdeck-cluster-secret: $SECRET";
    grpc(
        "propose",
        "Propose",
        secret,
        &pb::ProposeRequest {
            commands: bincode::serialize(&commands()[1..4]).unwrap(),
        }
        .encode_to_vec(),
    );
    grpc("read-index", "ReadIndex", secret, &[]);
    grpc(
        "add-learner",
        "AddLearner",
        admin,
        &by_name("pb-add-learner"),
    );
    grpc("put-no-key", "Put", "x-other: 1", &by_name("pb-put"));
    let mut raw = b"GRPC /opsdeck.v1.Node/Put\nx-api-key: $ADMIN\nraw\n\n".to_vec();
    raw.extend_from_slice(&[1, 0, 0, 0, 3, 1, 2, 3]);
    write(&dir, "grpc-raw-compressed-flag", raw);
    let mut raft =
        b"GRPC /opsdeck.v1.Raft/AppendEntries\nx-opsdeck-cluster-secret: $SECRET\n\n".to_vec();
    raft.extend_from_slice(&by_name("pb-raft-payload"));
    write(&dir, "grpc-raft-append", raft);
}

fn text_seeds() {
    let dir = seeds("text_inputs");
    for f in ["keymaps/default.toml", "keymaps/vim.toml"] {
        write(&dir, &f.replace('/', "-"), repo_file(f));
    }
    for f in [
        "themes/dark.toml",
        "themes/light.toml",
        "themes/high-contrast.toml",
        "themes/mono.toml",
    ] {
        write(&dir, &f.replace('/', "-"), repo_file(f));
    }
    let rules = repo_file("src/alerts/default_rules.toml");
    write(&dir, "default_rules.toml", &rules);
    let mut with_status = rules.into_bytes();
    with_status.push(0);
    with_status.extend_from_slice(&node_status().encode_to_vec());
    write(&dir, "default_rules-with-status", with_status);
    write(
        &dir,
        "config.toml",
        "endpoints = [\"127.0.0.1:7101\", \"127.0.0.1:7102\"]\nkey_file = \"/home/me/admin.key\"\n\
         keymap = \"vim\"\ntheme = \"light\"\nrefresh_ms = 500\nread_only = true\n\
         war_room_cycle_secs = 15\nrules = \"my-rules.toml\"\n",
    );
    write(
        &dir,
        "cluster.toml",
        "[[node]]\nid = 1\ngrpc = \"127.0.0.1:7101\"\nhttp = \"127.0.0.1:7201\"\n\
         data = \"/tmp/dev/n1\"\npid = 4242\n\n[settings]\nsnapshot_every = 10000\n\
         keep_logs = 1000\nheartbeat_ms = 50\nelection_timeout_ms = [150, 300]\n",
    );
    for (name, args) in [
        (
            "cli-node",
            "node\n--id\n1\n--grpc\n127.0.0.1:7101\n--http\n127.0.0.1:7201\n--data\n/tmp/n1\n\
             --init\n--rate-limit\n2000/60s\n--rate-burst\n200\n--election-timeout-ms\n150-300",
        ),
        (
            "cli-quota",
            "quota\nset\nacme\n--tier\nfree\n--max-bytes\n50MiB\n--endpoints\n127.0.0.1:7101",
        ),
        (
            "cli-logs",
            "logs\n--level\nwarn\n--since\n10m\n--grep\nraft.*\n--node\n2\n--json",
        ),
        (
            "cli-keys",
            "keys\nrotate\n--id\nk1a2b3c4\n--grace\n24h\n--timeout\n3s",
        ),
        (
            "cli-add-node",
            "add-node\n--id\n4\n--grpc\n10.0.0.4:7101\n--http\n10.0.0.4:7201\n--no-promote",
        ),
        (
            "cli-bench",
            "bench\n--clients\n64\n--duration\n20s\n--reads\n100",
        ),
        (
            "cli-console",
            "console\n--keymap\nvim\n--theme\nlight\n--war-room\n--cycle-secs\n15\n--read-only",
        ),
        ("cli-alerts", "alerts\n--print-rules"),
    ] {
        write(&dir, name, args);
    }
}

#[test]
#[ignore = "writes fuzz/seeds; run explicitly to regenerate them"]
fn write_fuzz_seeds() {
    let payload = backup_seeds();
    let wire = wire_seeds(&payload);
    let dir = seeds("wire_decode");
    for (name, bytes) in &wire {
        write(&dir, name, bytes);
    }
    node_api_seeds(&wire);
    text_seeds();
}
