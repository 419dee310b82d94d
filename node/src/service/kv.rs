//! Client reads and writes: validated puts, deletes and compare-and-sets through group
//! commit, linearizable or stale gets and scans, and the leader's side of followers'
//! forwarded batches and read-index requests.

use super::NodeCore;
use crate::error::{FullNode, NodeError};
use crate::merkle::Proof;
use crate::raft::forward::CLUSTER_TIMEOUT;
use crate::types::{validate_entry, Command, CommandResult};

impl NodeCore {
    /// Refuses a client write while writes are paused. Decided by the leader (a follower
    /// forwards, and the leader's apply answers), whose state is the newest; a pause whose
    /// time is up is ended first, as an entry of its own. The apply refuses again whatever
    /// this says, so a pause committed meanwhile is never missed.
    async fn check_writes(&self) -> Result<(), NodeError> {
        let Some(pause) = self.inner.reader.writes_pause() else {
            return Ok(());
        };
        if !self.is_leader() {
            return Ok(());
        }
        if pause.expired(crate::clock::unix_millis()) {
            return self.end_expired_pause(&pause).await;
        }
        Err(NodeError::WritesPaused(pause.refusal()))
    }

    pub async fn put(&self, key: String, value: Vec<u8>) -> Result<u64, NodeError> {
        self.observed("put", async {
            validate_entry(&key, Some(&value)).map_err(NodeError::InvalidInput)?;
            self.check_writes().await?;
            match self.propose(Command::Put { key, value }).await? {
                CommandResult::Put { revision } => Ok(revision),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    pub async fn delete(&self, key: String) -> Result<bool, NodeError> {
        self.observed("delete", async {
            validate_entry(&key, None).map_err(NodeError::InvalidInput)?;
            self.check_writes().await?;
            match self.propose(Command::Delete { key }).await? {
                CommandResult::Delete { existed } => Ok(existed),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    /// Compare-and-set; returns whether it applied and, if not, the current value.
    pub async fn cas(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<(bool, Option<Vec<u8>>), NodeError> {
        self.observed("cas", async {
            validate_entry(&key, new.as_deref()).map_err(NodeError::InvalidInput)?;
            self.check_writes().await?;
            match self.propose(Command::Cas { key, expected, new }).await? {
                CommandResult::Cas { succeeded, current } => Ok((succeeded, current)),
                other => Err(NodeError::Internal(format!("unexpected result {other:?}"))),
            }
        })
        .await
    }

    pub async fn get(&self, key: String, stale: bool) -> Result<Option<Vec<u8>>, NodeError> {
        self.observed("get", async {
            validate_entry(&key, None).map_err(NodeError::InvalidInput)?;
            self.read_barrier(stale).await?;
            self.inner
                .reader
                .get(&key)
                .map_err(|e| NodeError::Internal(e.to_string()))
        })
        .await
    }

    /// `key`'s value with its Merkle proof at this node's applied index (after a read
    /// barrier unless `stale`, so the index covers every write acknowledged before).
    pub async fn proof(&self, key: String, stale: bool) -> Result<Proof, NodeError> {
        self.observed("proof", async {
            validate_entry(&key, None).map_err(NodeError::InvalidInput)?;
            self.read_barrier(stale).await?;
            match self.inner.reader.proof(&key) {
                Ok(Some(proof)) => Ok(proof),
                Ok(None) => Err(NodeError::Rejected(
                    "this node keeps no state digest (started with OPSDECK_DIGEST=off), so it has no Merkle tree to prove from; ask another node (--endpoints)".into(),
                )),
                Err(e) => Err(NodeError::Internal(e.to_string())),
            }
        })
        .await
    }

    pub async fn scan(
        &self,
        prefix: String,
        limit: usize,
        stale: bool,
    ) -> Result<(crate::store::state_machine::KeyValues, bool), NodeError> {
        self.observed("scan", async {
            self.read_barrier(stale).await?;
            self.inner
                .reader
                .scan(&prefix, limit)
                .map_err(|e| NodeError::Internal(e.to_string()))
        })
        .await
    }

    /// Applies a batch forwarded by a follower; never forwards again.
    pub async fn propose_forwarded(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<CommandResult>, NodeError> {
        self.check_storage()?;
        // A timed pause of writes that ran out ends before the batch (its writes would be
        // refused otherwise); the apply refuses each write of a paused cluster.
        if let Some(pause) = self.inner.reader.writes_pause() {
            self.end_expired_pause(&pause).await?;
        }
        // Held back while a leadership transfer has paused proposals, like local ones.
        let _pass = self.inner.proposer.gate().enter().await;
        self.inner.sink.write(commands, false).await
    }

    /// Leader side of a read: the index reads arriving now must see applied. Concurrent
    /// callers (local reads and followers' forwarded reads) share leadership checks.
    pub async fn read_index(&self) -> Result<u64, NodeError> {
        self.inner.leader_reads.read_index().await
    }

    /// Makes the next local read linearizable: on the leader a read index; on a follower the
    /// leader's read index, then waiting until this node has applied up to it.
    pub(crate) async fn read_barrier(&self, stale: bool) -> Result<(), NodeError> {
        if stale {
            return Ok(());
        }
        let leader = self.inner.raft.metrics().borrow().current_leader;
        let index = match leader {
            None => return Err(NodeError::NoLeader),
            Some(l) if l == self.inner.id => self.read_index().await?,
            Some(l) => {
                let node = self.member_addr(l).ok_or_else(|| {
                    NodeError::Internal(format!("leader {l} is not in the membership"))
                })?;
                self.inner.sink.remote_read_index(l, &node).await?
            }
        };
        if self.inner.reader.applied_index() >= index {
            return Ok(());
        }
        // A node whose storage is full keeps no new entries: it would wait in vain.
        if let Some(pressure) = self.inner.guard.pressure() {
            let logged = self
                .inner
                .raft
                .metrics()
                .borrow()
                .last_log_index
                .unwrap_or(0);
            if logged < index {
                return Err(NodeError::StorageFull {
                    nodes: vec![FullNode {
                        id: self.inner.id,
                        pressure,
                    }],
                    reading: true,
                });
            }
        }
        self.inner
            .raft
            .wait(Some(CLUSTER_TIMEOUT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|_| NodeError::Timeout(CLUSTER_TIMEOUT))
    }
}
