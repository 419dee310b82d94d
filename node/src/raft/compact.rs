//! Manual log compaction on one node (`opsdeck compact`): build a snapshot of everything
//! applied, purge the log up to it, wait until the entries are gone from disk, flush sled,
//! and report the figures before and after.
//!
//! sled does not give freed space back to the filesystem at once: deleted entries leave
//! their segments partly empty, sled reuses them for new writes and only truncates free
//! segments at the end of its file. So the space a compact frees is measured as the bytes
//! of log entries deleted (`log_bytes` before - after); the sled file size is reported too
//! and may even grow a little (deletions are written to sled's own log first).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::NodeError;
use crate::pb;
use crate::store::disk_guard::data_dir_bytes;
use crate::store::housekeeping::{CompactRecord, Housekeeping};
use crate::store::log_store::LogDisk;
use crate::telemetry::sampler::Sampler;
use crate::types::Raft;

/// Longest a compact may wait for the snapshot, and again for the purge.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Compactor {
    pub raft: Raft,
    pub db: sled::Db,
    pub log: LogDisk,
    pub housekeeping: Arc<Housekeeping>,
    pub data_dir: PathBuf,
    /// One compact at a time per node.
    pub running: tokio::sync::Mutex<()>,
}

impl Compactor {
    /// Log entries, sled size, data dir bytes and snapshot index, as on disk now.
    async fn figures(&self) -> Result<pb::CompactFigures, NodeError> {
        let (db, log, dir) = (self.db.clone(), self.log.clone(), self.data_dir.clone());
        let snapshot_index = self.raft.metrics().borrow().snapshot.map(|l| l.index);
        tokio::task::spawn_blocking(move || {
            let internal = |e: sled::Error| NodeError::Internal(e.to_string());
            let extent = log.extent().map_err(internal)?;
            Ok(pb::CompactFigures {
                log_entries: extent.map(|(f, l)| l - f + 1).unwrap_or(0),
                log_bytes: log.bytes().map_err(internal)?,
                sled_bytes: db.size_on_disk().map_err(internal)?,
                data_dir_bytes: data_dir_bytes(&dir),
                snapshot_index,
            })
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
    }

    async fn wait(
        &self,
        what: &str,
        done: impl Fn(&openraft::RaftMetrics<u64, crate::types::NodeAddr>) -> bool + Send,
    ) -> Result<(), NodeError> {
        self.raft
            .wait(Some(STEP_TIMEOUT))
            .metrics(done, what)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => NodeError::Timeout(STEP_TIMEOUT),
                other => NodeError::Internal(format!("{what}: {other}")),
            })
    }

    pub async fn run(&self, sampler: &Sampler) -> Result<pb::CompactReply, NodeError> {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let before = self.figures().await?;
        let fatal = |e: openraft::error::Fatal<u64>| NodeError::Internal(format!("raft: {e}"));
        let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
        if let Some(target) = applied {
            let covered = |m: &openraft::RaftMetrics<u64, crate::types::NodeAddr>| {
                m.snapshot.is_some_and(|s| s.index >= target)
            };
            if !covered(&self.raft.metrics().borrow()) {
                self.raft.trigger().snapshot().await.map_err(fatal)?;
                self.wait("snapshot", covered).await?;
            }
        }
        let snapshot = self.raft.metrics().borrow().snapshot.map(|l| l.index);
        if let Some(upto) = snapshot {
            self.raft.trigger().purge_log(upto).await.map_err(fatal)?;
            self.wait("log purge", move |m| {
                m.purged.is_some_and(|p| p.index >= upto)
            })
            .await?;
            // openraft records the purge at once; our purger thread deletes in the background.
            let deadline = Instant::now() + STEP_TIMEOUT;
            while self
                .log
                .extent()
                .map_err(|e| NodeError::Internal(e.to_string()))?
                .is_some_and(|(first, _)| first <= upto)
            {
                if Instant::now() > deadline {
                    return Err(NodeError::Timeout(STEP_TIMEOUT));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.db
            .flush_async()
            .await
            .map_err(|e| NodeError::Internal(format!("flushing sled: {e}")))?;
        let after = self.figures().await?;
        self.housekeeping.record_compact(CompactRecord {
            sled_bytes_before: before.sled_bytes,
            sled_bytes_after: after.sled_bytes,
        });
        sampler.refresh_full().await;
        tracing::info!(
            entries_before = before.log_entries,
            entries_after = after.log_entries,
            sled_before = before.sled_bytes,
            sled_after = after.sled_bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "compact done"
        );
        Ok(pb::CompactReply {
            before: Some(before),
            after: Some(after),
            took_ms: started.elapsed().as_millis() as u64,
            node_id: 0, // set by NodeCore, which knows the node's id
        })
    }
}
