//! The server side of the Raft network: decodes each payload, hands it to the local Raft,
//! and encodes openraft's full `Result` so the caller sees remote errors as such.
//!
//! While this node's storage is full ([`DiskGuard`]) it keeps no new log entries: an
//! AppendEntries is handed to Raft without its entries (so the leader's term, commit index
//! and heartbeat still count, and no election starts) and answered as a partial success up
//! to where it matched, which is exactly what was kept; snapshots are refused. Every reply
//! then carries the storage-full header ([`peer_storage`]).
//!
//! A snapshot's last chunk is refused, before the install replaces anything, when the
//! filesystem lacks room for the tree it loads ([`INSTALL_FACTOR`] times the snapshot,
//! beyond the reserve): the node stays on its old state, serving, and says why with the
//! figures; the leader retries that chunk by itself, so the install goes on once there is
//! room. The received file stays until then (the next attempt truncates it). The first
//! refusal of each snapshot is also a `snapshot_install_refused` event, so the console's
//! Timeline and an incident report show it, not only the node's log; and the leader's
//! status frame marks the follower with the reason until it takes a chunk again
//! (`FollowerProgress.snapshot_refused`: the Overview's "▲ no room", add-node's progress).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest};
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::election_holds::ElectionHolds;
use super::peer_storage;
use crate::clock::unix_millis;
use crate::error::{size, FullNode, NodeError, Pressure};
use crate::pb::raft_server::Raft as RaftRpc;
use crate::pb::{ElectionHintReply, ElectionHintRequest, RaftPayload};
use crate::store::disk_guard::DiskGuard;
use crate::telemetry::events::{ClusterEvent, EventHub};
use crate::types::{NodeId, Raft, TypeConfig};

/// Room a snapshot install needs beyond its received file, per byte of it: sled's tree of
/// the loaded pairs, with the log-structured store's write amplification while loading
/// (tests/disk_full.rs prints the figure: the db dir grew by 2.5-3.7x the snapshot).
pub const INSTALL_FACTOR: u64 = 4;

pub struct RaftService {
    id: NodeId,
    raft: Raft,
    holds: ElectionHolds,
    guard: Arc<DiskGuard>,
    events: Arc<EventHub>,
    /// The snapshot whose install was last refused: its retries are not events again.
    refused: Mutex<Option<String>>,
    /// How long an AppendEntries refused for a full disk waits before answering, so that
    /// a leader retrying at once does not spin (under openraft's one-heartbeat timeout).
    pace: Duration,
}

impl RaftService {
    pub fn new(
        id: NodeId,
        raft: Raft,
        guard: Arc<DiskGuard>,
        events: Arc<EventHub>,
        heartbeat: Duration,
    ) -> Self {
        RaftService {
            id,
            holds: ElectionHolds::new(raft.clone()),
            raft,
            guard,
            events,
            refused: Mutex::new(None),
            pace: heartbeat / 2,
        }
    }

    /// Refuses the last chunk of a snapshot whose tree would not fit (see the module doc).
    fn room_to_install(&self, rpc: &InstallSnapshotRequest<TypeConfig>) -> Result<(), Status> {
        let total = rpc.offset.saturating_add(rpc.data.len() as u64);
        let Err(p) = self.guard.room_for(total.saturating_mul(INSTALL_FACTOR)) else {
            return Ok(());
        };
        let why = format!(
            "snapshot install refused, nothing changed: node {} received snapshot {} ({}, up \
             to index {}); loading it needs {} free on the filesystem of its data dir ({}x the \
             snapshot plus the {} reserve), {} free; free space or grow the volume, and the \
             leader retries the install by itself",
            self.id,
            rpc.meta.snapshot_id,
            size(total),
            rpc.meta.last_log_id.map_or(0, |l| l.index),
            size(p.need),
            INSTALL_FACTOR,
            size(self.guard.reserve()),
            size(p.free),
        );
        tracing::warn!("{why}");
        self.note_refusal(
            rpc,
            format!(
                "snapshot {} ({}) not installed: needs {} free, {} free",
                rpc.meta.snapshot_id,
                size(total),
                size(p.need),
                size(p.free),
            ),
        );
        Err(Status::resource_exhausted(why))
    }

    /// Publishes the first refusal of a snapshot as an event (its retries are not news).
    fn note_refusal(&self, rpc: &InstallSnapshotRequest<TypeConfig>, detail: String) {
        let mut last = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() == Some(rpc.meta.snapshot_id.as_str()) {
            return;
        }
        *last = Some(rpc.meta.snapshot_id.clone());
        self.events.publish(ClusterEvent {
            unix_ms: unix_millis(),
            kind: "snapshot_install_refused",
            detail,
            term: rpc.vote.leader_id().term,
            leader_id: rpc.vote.leader_id().voted_for(),
        });
    }

    fn reply(
        &self,
        reply: Result<Response<RaftPayload>, Status>,
        pressure: Option<Pressure>,
    ) -> Result<Response<RaftPayload>, Status> {
        reply.map(|mut r| {
            peer_storage::mark(r.metadata_mut(), pressure);
            r
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let data = bincode::serialize(result)
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))?;
    Ok(Response::new(RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let mut rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        let pressure = self.guard.check();
        let reply = if pressure.is_some() && !rpc.entries.is_empty() {
            tokio::time::sleep(self.pace).await;
            rpc.entries.clear();
            let matched = rpc.prev_log_id;
            match self.raft.append_entries(rpc).await {
                Ok(AppendEntriesResponse::Success) => {
                    Ok(AppendEntriesResponse::PartialSuccess(matched))
                }
                other => other,
            }
        } else {
            self.raft.append_entries(rpc).await
        };
        self.reply(encode(&reply), pressure)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let pressure = self.guard.pressure();
        self.reply(encode(&self.raft.vote(decode(req)?).await), pressure)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        if let Some(pressure) = self.guard.check() {
            let refusal = NodeError::StorageFull {
                nodes: vec![FullNode {
                    id: self.id,
                    pressure,
                }],
                reading: false,
            };
            let mut status = Status::resource_exhausted(refusal.to_string());
            peer_storage::mark(status.metadata_mut(), Some(pressure));
            return Err(status);
        }
        crate::fail_io!("snapshot::receive_chunk", e => Status::unavailable(format!("receiving a snapshot chunk: {e}")));
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        if rpc.done {
            self.room_to_install(&rpc)?;
        }
        encode(&self.raft.install_snapshot(rpc).await)
    }

    async fn election_hint(
        &self,
        req: Request<ElectionHintRequest>,
    ) -> Result<Response<ElectionHintReply>, Status> {
        self.holds.apply(req.get_ref()).await?;
        Ok(Response::new(ElectionHintReply {}))
    }
}
