//! gRPC `Node` service: client calls plus the two internal calls followers use to reach the
//! leader (forwarded batches and read-index requests).

use std::collections::BTreeSet;

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use crate::error::NodeError;
use crate::pb::node_server::Node;
use crate::pb::*;
use crate::security::auth::caller_of;
use crate::security::keys::{KeyRecord, Role};
use crate::security::quota::Tier;
use crate::service::admin::{tenant_usage, writes_paused};
use crate::service::NodeCore;
use crate::telemetry::events::ClusterEvent as ClusterEventData;
use crate::telemetry::logs::LogRecord as LogRecordData;
use crate::telemetry::Telemetry;
use crate::types::{Command, NodeAddr};

/// Largest scan answered in one reply when the client gives no limit.
pub const DEFAULT_SCAN_LIMIT: usize = 10_000;

/// Status frame interval when the subscriber does not ask for one.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// Fastest status interval a subscriber may ask for.
const MIN_STATUS_INTERVAL: Duration = Duration::from_millis(100);
/// Messages buffered per Watch subscriber before the node stops reading the hubs for it
/// (the hubs then count what it misses; the node itself never waits).
const WATCH_BUFFER: usize = 256;

pub struct NodeService {
    core: NodeCore,
    telemetry: Telemetry,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl NodeService {
    /// `stopping` turns true when the node shuts down: Watch streams end then, since the
    /// server's graceful shutdown waits for every open stream.
    pub fn new(
        core: NodeCore,
        telemetry: Telemetry,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        NodeService {
            core,
            telemetry,
            stopping,
        }
    }
}

fn log_event(node_id: u64, r: LogRecordData) -> WatchEvent {
    WatchEvent {
        kind: Some(watch_event::Kind::Log(LogRecord {
            node_id,
            seq: r.seq,
            unix_ms: r.unix_ms,
            level: r.level,
            target: r.target,
            message: r.message,
            fields: r.fields,
        })),
    }
}

fn cluster_event(node_id: u64, e: ClusterEventData) -> WatchEvent {
    WatchEvent {
        kind: Some(watch_event::Kind::Event(ClusterEvent {
            node_id,
            unix_ms: e.unix_ms,
            kind: e.kind.to_string(),
            detail: e.detail,
            term: e.term,
            leader_id: e.leader_id,
        })),
    }
}

fn dropped(records: u64) -> WatchEvent {
    WatchEvent {
        kind: Some(watch_event::Kind::Dropped(Dropped { records })),
    }
}

/// Next item of an optional hub subscription; pending forever when not subscribed.
async fn next_item<T: Clone>(
    rx: &mut Option<broadcast::Receiver<T>>,
) -> Result<T, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Node for NodeService {
    type WatchStream = WatchStream;
    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<BackupChunk, Status>>;

    async fn backup(
        &self,
        req: Request<BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let rx = self.core.backup(&actor).await?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn restore(
        &self,
        req: Request<RestoreRequest>,
    ) -> Result<Response<RestoreReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        Ok(Response::new(
            self.core.restore_step(&actor, req.into_inner()).await?,
        ))
    }

    async fn watch(&self, req: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let r = req.into_inner();
        let interval = match r.status_interval_ms {
            0 => DEFAULT_STATUS_INTERVAL,
            ms => Duration::from_millis(ms as u64).max(MIN_STATUS_INTERVAL),
        };
        let (tx, rx) = mpsc::channel::<Result<WatchEvent, Status>>(WATCH_BUFFER);
        let core = self.core.clone();
        let id = core.id();
        let (log_history, mut logs) = match r.logs {
            true => {
                let (mut h, rx) = self.telemetry.logs.subscribe();
                h.drain(..h.len().saturating_sub(r.log_history as usize));
                (h, Some(rx))
            }
            false => (Vec::new(), None),
        };
        let (event_history, mut events) = match r.events {
            true => {
                let (h, rx) = self.telemetry.events.subscribe();
                (h, Some(rx))
            }
            false => (Vec::new(), None),
        };
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let backlog = event_history
                .into_iter()
                .map(|e| cluster_event(id, e))
                .chain(log_history.into_iter().map(|r| log_event(id, r)));
            for item in backlog {
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let item = tokio::select! {
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                    _ = tick.tick() => WatchEvent { kind: Some(watch_event::Kind::Status(core.frame())) },
                    r = next_item(&mut logs) => match r {
                        Ok(rec) => log_event(id, rec),
                        Err(broadcast::error::RecvError::Lagged(n)) => dropped(n),
                        Err(broadcast::error::RecvError::Closed) => { logs = None; continue }
                    },
                    e = next_item(&mut events) => match e {
                        Ok(ev) => cluster_event(id, ev),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => { events = None; continue }
                    },
                };
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().key)?;
        let r = req.into_inner();
        let revision = self.core.put(r.key, r.value).await?;
        Ok(Response::new(PutReply { revision }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().key)?;
        let r = req.into_inner();
        let value = self.core.get(r.key, r.stale).await?;
        Ok(Response::new(GetReply {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn proof(&self, req: Request<ProofRequest>) -> Result<Response<ProofReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().key)?;
        let r = req.into_inner();
        let proof = self.core.proof(r.key, r.stale).await?;
        let proof_json =
            serde_json::to_string(&proof).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ProofReply { proof_json }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<DeleteReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().key)?;
        let existed = self.core.delete(req.into_inner().key).await?;
        Ok(Response::new(DeleteReply { existed }))
    }

    async fn cas(&self, req: Request<CasRequest>) -> Result<Response<CasReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().key)?;
        let r = req.into_inner();
        let (succeeded, current) = self.core.cas(r.key, r.expected, r.new_value).await?;
        Ok(Response::new(CasReply { succeeded, current }))
    }

    async fn scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanReply>, Status> {
        caller_of(&req)?.check_tenant(&req.get_ref().prefix)?;
        let r = req.into_inner();
        let limit = if r.limit == 0 {
            DEFAULT_SCAN_LIMIT
        } else {
            r.limit as usize
        };
        let (items, truncated) = self.core.scan(r.prefix, limit, r.stale).await?;
        Ok(Response::new(ScanReply {
            items: items
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            truncated,
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(self.core.frame()))
    }

    async fn digest(&self, req: Request<DigestRequest>) -> Result<Response<DigestReply>, Status> {
        Ok(Response::new(self.core.digest(req.into_inner().index)))
    }

    async fn add_learner(
        &self,
        req: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let addr = NodeAddr {
            grpc: r.grpc,
            http: r.http,
        };
        let args = format!("id={} {addr}", r.id);
        let result = self.core.add_learner(r.id, addr, r.blocking).await;
        self.audit(&actor, "member.add_learner", args, &result)
            .await;
        Ok(Response::new(self.membership_reply(result?)))
    }

    async fn change_membership(
        &self,
        req: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let voters: BTreeSet<u64> = r.voters.into_iter().collect();
        let remove: BTreeSet<u64> = r.remove.into_iter().collect();
        let (args, result) = if remove.is_empty() {
            let args = format!("voters={voters:?} retain={}", r.retain);
            (args, self.core.change_membership(voters, r.retain).await)
        } else if voters.is_empty() {
            let args = format!("remove={remove:?}");
            (args, self.core.remove_members(remove).await)
        } else {
            return Err(Status::invalid_argument(
                "give either the new voters or the members to remove, not both",
            ));
        };
        self.audit(&actor, "member.change", args, &result).await;
        Ok(Response::new(self.membership_reply(result?)))
    }

    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        let commands: Vec<Command> = bincode::deserialize(&req.into_inner().commands)
            .map_err(|e| Status::invalid_argument(format!("undecodable command batch: {e}")))?;
        let results = self.core.propose_forwarded(commands).await?;
        let results = bincode::serialize(&results).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ProposeReply { results }))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let to = req.into_inner().to;
        let result = self.core.transfer_leader(to).await;
        // Refusals that changed nothing (not the leader, bad target) are not audited; a
        // transfer that ran is, whatever its outcome. The record is proposed after the
        // handover, so it reaches the new leader.
        let ran = match &result {
            Ok(_) => true,
            Err(e) => {
                !matches!(
                    e,
                    NodeError::InvalidInput(_) | NodeError::NotFound(_) | NodeError::NoLeader
                ) && !e.to_string().contains("is not the leader")
                    && !e.to_string().contains("already in progress")
            }
        };
        if ran {
            let args = match &result {
                Ok(r) => format!(
                    "from={} to={to} term={} took_ms={} writes_paused_ms={}",
                    r.from, r.term, r.took_ms, r.writes_paused_ms
                ),
                Err(_) => format!("from={} to={to}", self.core.id()),
            };
            self.audit(&actor, "member.transfer_leader", args, &result)
                .await;
        }
        Ok(Response::new(result?))
    }

    async fn compact(
        &self,
        req: Request<CompactRequest>,
    ) -> Result<Response<CompactReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let result = self.core.compact().await;
        let args = format!("node={}", self.core.id());
        self.audit(&actor, "compact", args, &result).await;
        Ok(Response::new(result?))
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        let applied_index = self.core.read_index().await?;
        Ok(Response::new(ReadIndexReply { applied_index }))
    }

    async fn create_key(
        &self,
        req: Request<CreateKeyRequest>,
    ) -> Result<Response<NewKeyReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let role = Role::parse(&r.role).map_err(Status::invalid_argument)?;
        let expires = (r.expires_in_ms > 0).then(|| Duration::from_millis(r.expires_in_ms));
        let (key, secret) = self
            .core
            .create_key(&actor, role, r.tenants, expires)
            .await?;
        Ok(Response::new(NewKeyReply {
            key: Some(key_info(&key)),
            secret,
            replaced: None,
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<RotateKeyRequest>,
    ) -> Result<Response<NewKeyReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let grace = Duration::from_millis(r.grace_ms);
        let (key, old, secret) = self.core.rotate_key(&actor, &r.id, grace).await?;
        Ok(Response::new(NewKeyReply {
            key: Some(key_info(&key)),
            secret,
            replaced: Some(key_info(&old)),
        }))
    }

    async fn revoke_key(
        &self,
        req: Request<RevokeKeyRequest>,
    ) -> Result<Response<ApiKeyInfo>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let key = self.core.revoke_key(&actor, &req.into_inner().id).await?;
        Ok(Response::new(key_info(&key)))
    }

    async fn list_keys(
        &self,
        _: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysReply>, Status> {
        let keys = self.core.list_keys().await?;
        Ok(Response::new(ListKeysReply {
            keys: keys.iter().map(key_info).collect(),
        }))
    }

    async fn set_quota(
        &self,
        req: Request<SetQuotaRequest>,
    ) -> Result<Response<TenantUsage>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let tier = Tier::parse(if r.tier.is_empty() { "free" } else { &r.tier })
            .map_err(Status::invalid_argument)?;
        let info = self
            .core
            .set_quota(&actor, &r.tenant, tier, r.max_keys, r.max_bytes)
            .await?;
        Ok(Response::new(tenant_usage(&info)))
    }

    async fn reset_quota(
        &self,
        req: Request<ResetQuotaRequest>,
    ) -> Result<Response<TenantUsage>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let info = self
            .core
            .reset_quota(&actor, &req.into_inner().tenant)
            .await?;
        Ok(Response::new(tenant_usage(&info)))
    }

    async fn list_quotas(
        &self,
        _: Request<ListQuotasRequest>,
    ) -> Result<Response<ListQuotasReply>, Status> {
        let tenants = self.core.tenants().await?;
        Ok(Response::new(ListQuotasReply {
            tenants: tenants.iter().map(tenant_usage).collect(),
        }))
    }

    async fn pause_writes(
        &self,
        req: Request<PauseWritesRequest>,
    ) -> Result<Response<WritesPaused>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let for_ = (r.for_ms > 0).then(|| Duration::from_millis(r.for_ms));
        let pause = self.core.pause_writes(&actor, &r.reason, for_).await?;
        Ok(Response::new(writes_paused(&pause)))
    }

    async fn resume_writes(
        &self,
        req: Request<ResumeWritesRequest>,
    ) -> Result<Response<WritesPaused>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let pause = self.core.resume_writes(&actor).await?;
        Ok(Response::new(writes_paused(&pause)))
    }

    async fn annotate(
        &self,
        req: Request<AnnotateRequest>,
    ) -> Result<Response<AnnotateReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let until = (r.until_unix_ms > 0).then_some(r.until_unix_ms);
        let unix_ms = self
            .core
            .annotate(&actor, &r.kind, &r.subject, until, &r.note)
            .await?;
        Ok(Response::new(AnnotateReply { unix_ms }))
    }

    async fn record_backup_verified(
        &self,
        req: Request<BackupVerifiedRequest>,
    ) -> Result<Response<BackupVerifiedReply>, Status> {
        let actor = caller_of(&req)?.key_id.clone();
        let r = req.into_inner();
        let (last, unix_ms) = self
            .core
            .record_backup_verified(&actor, &r.payload_sha256, r.applied_index, &r.file)
            .await?;
        Ok(Response::new(BackupVerifiedReply { last, unix_ms }))
    }

    async fn list_audit(
        &self,
        req: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditReply>, Status> {
        let limit = match req.into_inner().limit {
            0 => 100,
            n => n as usize,
        };
        let records = self.core.audit(limit).await?;
        Ok(Response::new(ListAuditReply {
            records: records
                .into_iter()
                .map(|r| AuditEntry {
                    seq: r.seq,
                    unix_ms: r.at_ms,
                    actor: r.actor,
                    action: r.action,
                    args: r.args,
                    result: r.result,
                })
                .collect(),
        }))
    }
}

impl NodeService {
    /// Records an admin action and its outcome in the audit trail.
    async fn audit<T>(
        &self,
        actor: &str,
        action: &str,
        args: String,
        result: &Result<T, NodeError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        self.core.record_audit(actor, action, args, outcome).await;
    }

    fn membership_reply(&self, log_index: u64) -> MembershipReply {
        MembershipReply {
            members: self
                .core
                .status()
                .members
                .into_iter()
                .map(Into::into)
                .collect(),
            log_index,
        }
    }
}

/// A key as listed; its state is judged by this node's clock.
fn key_info(k: &KeyRecord) -> ApiKeyInfo {
    let state = if k.revoked_ms.is_some() {
        "revoked"
    } else if k.refusal(crate::clock::unix_millis()).is_some() {
        "expired"
    } else {
        "valid"
    };
    ApiKeyInfo {
        id: k.id.clone(),
        role: k.role.name().to_string(),
        tenants: k.tenants.clone(),
        created_unix_ms: k.created_ms,
        expires_unix_ms: k.expires_ms,
        revoked_unix_ms: k.revoked_ms,
        last_used_unix_ms: k.last_used_ms,
        successor: k.successor.clone(),
        state: state.to_string(),
    }
}
