//! Backups and restores.
//!
//! A backup is a Raft snapshot of the state machine (one applied index, built without
//! stopping writes: applying waits only while the tree is copied in memory) streamed by the
//! leader in chunks; the client wraps it in a file with a manifest ([`crate::backup::format`]). A restore
//! goes back through the log as staged chunks and one atomic switch of data generations
//! (`store::state_machine::restore`), so every node ends with the backup's data.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::backup::format;
use crate::error::NodeError;
use crate::pb;
use crate::service::NodeCore;
use crate::types::Command;

/// Bytes per streamed backup message.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Longest a backup waits for its snapshot to be built.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);

pub type BackupStream = mpsc::Receiver<Result<pb::BackupChunk, tonic::Status>>;

/// A restore nobody is sending chunks to: what it was (id, chunks staged) and since when.
struct Idle {
    staging: (String, u64),
    since: tokio::time::Instant,
}

impl NodeCore {
    /// Gives up, from the leader, a restore whose staging has not moved for `idle` (its
    /// client was killed or lost the cluster): its staged copy would otherwise stay on every
    /// node's disk until the next restore. A client still sending is not affected: each
    /// chunk moves the staging on. Until `stopped`.
    pub fn spawn_restore_expiry(
        &self,
        idle: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let core = self.clone();
        let every = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut last: Option<Idle> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let Some(staging) = core.reader().restore_staging() else {
                    last = None;
                    continue;
                };
                // Watched on every node, so a new leader does not start counting from zero.
                let since = match &last {
                    Some(l) if l.staging == staging => l.since,
                    _ => {
                        last = Some(Idle {
                            staging,
                            since: tokio::time::Instant::now(),
                        });
                        continue;
                    }
                };
                if !core.is_leader() || since.elapsed() < idle {
                    continue;
                }
                let (id, chunks) = staging;
                let reason = format!(
                    "no chunk for {} (--restore-idle-timeout); the data in use is unchanged, \
                     start the restore again",
                    humantime::format_duration(idle)
                );
                tracing::warn!(restore = %id, chunks, "abandoning a restore: {reason}");
                let command = Command::RestoreAbandon {
                    id: id.clone(),
                    actor: format!("node {}", core.id()),
                    at_ms: crate::clock::unix_millis(),
                    reason,
                };
                if let Err(e) = core.propose(command).await {
                    tracing::warn!(restore = %id, error = %e, "could not abandon the idle restore; will try again");
                }
            }
        });
    }

    /// Streams a backup: a header, the snapshot payload in chunks, then its SHA-256. Only the
    /// leader serves backups (it alone can vouch that the snapshot holds every write
    /// acknowledged before the request).
    pub async fn backup(&self, actor: &str) -> Result<BackupStream, NodeError> {
        let raft = self.raft().clone();
        if !self.is_leader() {
            return Err(NodeError::Rejected(format!(
                "node {} is not the leader; backups are streamed from the leader ({})",
                self.id(),
                self.leader_hint()
            )));
        }
        // Everything committed before this request is at or below this index.
        let target = self.read_index().await?;
        let covered = |m: &openraft::RaftMetrics<u64, crate::types::NodeAddr>| {
            m.snapshot.is_some_and(|s| s.index >= target)
        };
        if !covered(&raft.metrics().borrow()) {
            raft.trigger()
                .snapshot()
                .await
                .map_err(|e| NodeError::Internal(format!("raft stopped: {e}")))?;
            raft.wait(Some(SNAPSHOT_TIMEOUT))
                .metrics(covered, "backup snapshot")
                .await
                .map_err(|e| {
                    NodeError::Internal(format!(
                        "the snapshot for the backup was not built within {SNAPSHOT_TIMEOUT:?}: {e}"
                    ))
                })?;
        }
        let path = self.data_dir().join(crate::store::snapshot_file::FILE_NAME);
        // The open file stays readable even if a newer snapshot replaces it meanwhile.
        let (mut file, meta, body_len) = crate::store::snapshot_file::open_body(&path)
            .await
            .map_err(|e| NodeError::Internal(format!("cannot open {}: {e}", path.display())))?;
        let applied = meta.last_log_id.unwrap_or_default();
        let membership = meta.last_membership.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let header = pb::BackupHeader {
            cluster_id: self.reader().cluster_id(),
            applied_term: applied.leader_id.term,
            applied_index: applied.index,
            source_node: self.id(),
            members: membership
                .nodes()
                .map(|(id, n)| pb::Member {
                    id: *id,
                    grpc: n.grpc.clone(),
                    http: n.http.clone(),
                    voter: voters.contains(id),
                })
                .collect(),
            payload_bytes: body_len,
            created_unix_ms: crate::clock::unix_millis(),
        };
        let (tx, rx) = mpsc::channel(4);
        let (core, actor) = (self.clone(), actor.to_string());
        tokio::spawn(async move {
            use pb::backup_chunk::Part;
            use sha2::Digest;
            let send = |part| tx.send(Ok(pb::BackupChunk { part: Some(part) }));
            let args = format!("index={} bytes={body_len}", header.applied_index);
            if send(Part::Header(header)).await.is_err() {
                return;
            }
            let mut hasher = sha2::Sha256::new();
            let mut left = body_len;
            while left > 0 {
                let mut buf = vec![0u8; CHUNK_BYTES.min(left as usize)];
                if let Err(e) = file.read_exact(&mut buf).await {
                    let _ = tx
                        .send(Err(tonic::Status::internal(format!(
                            "reading the snapshot failed: {e}"
                        ))))
                        .await;
                    core.record_audit(&actor, "backup", args, format!("failed: {e}"))
                        .await;
                    return;
                }
                left -= buf.len() as u64;
                hasher.update(&buf);
                if send(Part::Data(buf)).await.is_err() {
                    return; // the client went away
                }
            }
            let sha = hex::encode(hasher.finalize());
            if send(Part::Trailer(pb::BackupTrailer {
                payload_sha256: sha.clone(),
            }))
            .await
            .is_ok()
            {
                let args = format!("{args} sha256={sha}");
                core.record_audit(&actor, "backup", args, "ok".into()).await;
            }
        });
        Ok(rx)
    }

    /// One step of a restore (begin, chunk or commit), proposed through the log.
    pub async fn restore_step(
        &self,
        actor: &str,
        req: pb::RestoreRequest,
    ) -> Result<pb::RestoreReply, NodeError> {
        use pb::restore_request::Step;
        let id = req.restore_id;
        if id.is_empty() || id.len() > 64 {
            return Err(NodeError::InvalidInput(
                "a restore needs an id of 1-64 characters".into(),
            ));
        }
        let at_ms = crate::clock::unix_millis();
        let command = match req.step {
            Some(Step::Begin(b)) => Command::RestoreBegin {
                id,
                actor: actor.into(),
                at_ms,
                source: b.source,
                backup_cluster: b.backup_cluster_id,
                allow_foreign: b.allow_foreign_cluster,
            },
            Some(Step::Chunk(bytes)) => {
                let pairs = format::PairReader::new(bytes.as_slice())
                    .and_then(|r| r.collect::<std::io::Result<Vec<_>>>())
                    .map_err(|e| {
                        NodeError::InvalidInput(format!(
                            "restore chunk {} is damaged: {e}",
                            req.seq
                        ))
                    })?;
                Command::RestoreChunk {
                    id,
                    seq: req.seq,
                    pairs,
                }
            }
            Some(Step::Commit(c)) => Command::RestoreCommit {
                id,
                actor: actor.into(),
                at_ms,
                chunks: c.chunks,
                pairs: c.pairs,
            },
            None => return Err(NodeError::InvalidInput("a restore step is missing".into())),
        };
        let (keys, commit_index) = match self.propose(command).await? {
            crate::types::CommandResult::Restored { keys, index } => (keys, index),
            _ => (0, 0),
        };
        Ok(pb::RestoreReply {
            keys,
            applied_index: self.reader().applied_index(),
            commit_index,
        })
    }
}
