//! `opsdeck rebuild-node`: a replica whose data is suspect (a diverged digest, a damaged
//! disk) made again from the others — the runbook's "stop it, delete its data, let it sync"
//! as one action. Removed from the membership first (refused when that would cost quorum;
//! a leader hands over first), its process stopped and its data dir deleted, started empty
//! on the same id and ports, added back as a learner that catches up by snapshot, and
//! promoted again if it was a voter. Only a dev cluster's nodes can be started by opsdeck
//! (`cluster.toml`); elsewhere the same steps are `remove-node`, wiping the data on its host,
//! starting it, and `add-node`.

use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::{eyre, Result};
use serde::Serialize;

use super::dev_cluster::{respawn, Data};
use super::membership::{
    add_node, remove_node, AddOutcome, Deadlines, NewNode, OnProgress, RemoveOutcome,
};
use crate::client::ClusterClient;

#[derive(Debug, Clone, Serialize)]
pub struct RebuildOutcome {
    pub id: u64,
    pub removed: RemoveOutcome,
    pub added: AddOutcome,
    /// The new process.
    pub pid: u32,
    pub took_ms: u64,
}

impl std::fmt::Display for RebuildOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} rebuilt in {:.1} s: new process pid {}, {} after {} ms of catch-up; voters {:?}",
            self.id,
            self.took_ms as f64 / 1000.0,
            self.pid,
            if self.added.promoted { "a voter again" } else { "a learner" },
            self.added.catch_up_ms,
            self.added.voters
        )
    }
}

/// Rebuilds member `id` of the dev cluster at `dir` (see the module doc).
pub async fn rebuild_node(
    client: &ClusterClient,
    dir: &Path,
    id: u64,
    deadlines: Deadlines,
    progress: OnProgress<'_>,
) -> Result<RebuildOutcome> {
    let started = Instant::now();
    let (_, leader) = client.leader().await?;
    if !leader.members.iter().any(|m| m.id == id) {
        return Err(eyre!(
            "node {id} is not a member of the cluster; nothing to rebuild (`opsdeck add-node` adds one)"
        ));
    }
    // Refuses here, before anything changed, when the others would not keep quorum.
    let removed = remove_node(client, id, false, progress).await?;
    let entry = respawn(dir, id, Data::Delete, progress)
        .await
        .map(|r| r.entry)
        .map_err(|e| {
            eyre!(
            "node {id} was removed from the cluster, but could not be started again empty: {e}; \
             once it runs, `opsdeck add-node --id {id} --grpc ADDR --http ADDR` adds it back"
        )
        })?;
    let node = NewNode {
        id,
        grpc: entry.grpc.clone(),
        http: entry.http.clone(),
    };
    let added = add_node(client, &node, removed.was_voter, deadlines, progress)
        .await
        .map_err(|e| {
            eyre!(
                "node {id} runs again empty (pid {}), but adding it back failed: {e}",
                entry.pid.unwrap_or(0)
            )
        })?;
    Ok(RebuildOutcome {
        id,
        removed,
        added,
        pid: entry.pid.unwrap_or(0),
        took_ms: started.elapsed().as_millis() as u64,
    })
}
