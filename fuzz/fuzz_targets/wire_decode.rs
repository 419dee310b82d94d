//! Bytes a node (or the CLI and console) receives from the network, decoded as the code
//! does before it trusts them:
//! - every protobuf message of `node/proto/opsdeck.proto` (requests a node receives,
//!   replies and stream items clients receive), re-encoded and decoded again;
//! - the bincode inside them: openraft's AppendEntries / Vote / InstallSnapshot requests in
//!   `RaftPayload` (transport/raft_service.rs), their replies (transport/raft_network.rs),
//!   the `Vec<Command>` of `ProposeRequest` (api/grpc.rs) and the `Vec<CommandResult>` of
//!   its reply (core.rs), and the pair encoding of restore chunks (backup/mod.rs);
//! - then the checks a node runs on decoded client requests before proposing them (key,
//!   value and tenant limits, roles, tiers).
//!
//! The input is tried as every one of these (no selector byte), both on its own and as
//! the payload of the protobuf message that carries it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use opsdeck_node::backup::format::PairReader;
use opsdeck_node::pb;
use opsdeck_node::security::keys::Role;
use opsdeck_node::security::quota::{tenant_of, Tier};
use opsdeck_node::service::admin::validate_tenant;
use opsdeck_node::types::{validate_entry, Command, CommandResult, NodeId, TypeConfig};
use prost::Message;

/// Decodes as `T`; if that works, the message must encode and decode back to itself.
fn proto<T: Message + Default>(data: &[u8]) -> Option<T> {
    let m = T::decode(data).ok()?;
    let bytes = m.encode_to_vec();
    let again = T::decode(bytes.as_slice()).expect("a re-encoded message decodes");
    // Compared as bytes: float fields may hold NaN.
    assert_eq!(again.encode_to_vec(), bytes, "re-encoding is not stable");
    Some(m)
}

/// What a node does with bincode it receives (the same `bincode::deserialize` call).
fn raft_payload(data: &[u8]) {
    if let Ok(r) = bincode::deserialize::<AppendEntriesRequest<TypeConfig>>(data) {
        let _ = format!("{r:?}");
        for e in &r.entries {
            let _ = bincode::serialized_size(e);
        }
    }
    if let Ok(r) = bincode::deserialize::<VoteRequest<NodeId>>(data) {
        let _ = format!("{r:?}");
    }
    if let Ok(r) = bincode::deserialize::<InstallSnapshotRequest<TypeConfig>>(data) {
        let _ = format!("{r:?}");
    }
    // Replies, as the sending node decodes them.
    let _ = bincode::deserialize::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(data);
    let _ = bincode::deserialize::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(data);
    let _ = bincode::deserialize::<
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    >(data);
}

fn commands(data: &[u8]) {
    if let Ok(batch) = bincode::deserialize::<Vec<Command>>(data) {
        for c in &batch {
            let _ = (c.size_hint(), c.op_name());
            if let Command::Admin { action, .. } = c {
                let _ = action.describe();
            }
        }
    }
    let _ = bincode::deserialize::<Vec<CommandResult>>(data);
}

fn restore_chunk(data: &[u8]) {
    if let Ok(r) = PairReader::new(data) {
        let _ = r.total();
        for p in r {
            if p.is_err() {
                break;
            }
        }
    }
}

fn key(k: &str, value: Option<&[u8]>) {
    let _ = validate_entry(k, value);
    let _ = tenant_of(k);
}

fn requests(data: &[u8]) {
    if let Some(r) = proto::<pb::RaftPayload>(data) {
        raft_payload(&r.data);
    }
    let _ = proto::<pb::ElectionHintRequest>(data);
    if let Some(r) = proto::<pb::PutRequest>(data) {
        key(&r.key, Some(&r.value));
    }
    if let Some(r) = proto::<pb::GetRequest>(data) {
        key(&r.key, None);
    }
    if let Some(r) = proto::<pb::DeleteRequest>(data) {
        key(&r.key, None);
    }
    if let Some(r) = proto::<pb::CasRequest>(data) {
        key(&r.key, r.new_value.as_deref());
        let _ = r
            .expected
            .as_deref()
            .map(|v| validate_entry(&r.key, Some(v)));
    }
    if let Some(r) = proto::<pb::ScanRequest>(data) {
        let _ = tenant_of(&r.prefix);
    }
    let _ = proto::<pb::StatusRequest>(data);
    if let Some(r) = proto::<pb::AddLearnerRequest>(data) {
        let _ = format!("{} {} {}", r.id, r.grpc, r.http);
    }
    let _ = proto::<pb::ChangeMembershipRequest>(data);
    if let Some(r) = proto::<pb::ProposeRequest>(data) {
        commands(&r.commands);
    }
    let _ = proto::<pb::ReadIndexRequest>(data);
    if let Some(r) = proto::<pb::WatchRequest>(data) {
        // As `NodeService::watch` computes them.
        let _ = std::time::Duration::from_millis(r.status_interval_ms as u64);
        let mut history = vec![0u8; 16];
        history.drain(..history.len().saturating_sub(r.log_history as usize));
    }
    if let Some(r) = proto::<pb::CreateKeyRequest>(data) {
        let _ = Role::parse(&r.role);
        for t in &r.tenants {
            let _ = validate_tenant(t);
        }
    }
    let _ = proto::<pb::RotateKeyRequest>(data);
    let _ = proto::<pb::RevokeKeyRequest>(data);
    let _ = proto::<pb::ListKeysRequest>(data);
    if let Some(r) = proto::<pb::SetQuotaRequest>(data) {
        let _ = Tier::parse(&r.tier).map(|t| t.quota());
        let _ = validate_tenant(&r.tenant);
    }
    if let Some(r) = proto::<pb::ResetQuotaRequest>(data) {
        let _ = validate_tenant(&r.tenant);
    }
    let _ = proto::<pb::ListQuotasRequest>(data);
    let _ = proto::<pb::ListAuditRequest>(data);
    let _ = proto::<pb::CompactRequest>(data);
    let _ = proto::<pb::BackupRequest>(data);
    if let Some(r) = proto::<pb::RestoreRequest>(data) {
        if let Some(pb::restore_request::Step::Chunk(c)) = &r.step {
            restore_chunk(c);
        }
    }
    let _ = proto::<pb::TransferLeaderRequest>(data);
}

/// Replies and stream items, as the CLI, the console and forwarding nodes decode them.
fn replies(data: &[u8]) {
    let _ = proto::<pb::ElectionHintReply>(data);
    let _ = proto::<pb::PutReply>(data);
    let _ = proto::<pb::GetReply>(data);
    let _ = proto::<pb::DeleteReply>(data);
    let _ = proto::<pb::CasReply>(data);
    let _ = proto::<pb::ScanReply>(data);
    let _ = proto::<pb::NodeStatus>(data);
    let _ = proto::<pb::MembershipReply>(data);
    if let Some(r) = proto::<pb::ProposeReply>(data) {
        let _ = bincode::deserialize::<Vec<CommandResult>>(&r.results);
    }
    let _ = proto::<pb::ReadIndexReply>(data);
    let _ = proto::<pb::WatchEvent>(data);
    let _ = proto::<pb::NewKeyReply>(data);
    let _ = proto::<pb::ApiKeyInfo>(data);
    let _ = proto::<pb::ListKeysReply>(data);
    let _ = proto::<pb::TenantUsage>(data);
    let _ = proto::<pb::ListQuotasReply>(data);
    let _ = proto::<pb::ListAuditReply>(data);
    let _ = proto::<pb::CompactReply>(data);
    if let Some(c) = proto::<pb::BackupChunk>(data) {
        if let Some(pb::backup_chunk::Part::Data(d)) = &c.part {
            restore_chunk(d);
        }
    }
    let _ = proto::<pb::RestoreReply>(data);
    let _ = proto::<pb::TransferLeaderReply>(data);
}

fuzz_target!(|data: &[u8]| {
    raft_payload(data);
    commands(data);
    restore_chunk(data);
    requests(data);
    replies(data);
});
