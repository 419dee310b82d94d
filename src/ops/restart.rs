//! `opsdeck restart-node`: a member's process stopped (SIGTERM: a leader hands over first)
//! and started again on its own data, then waited for until it has rejoined — it names a
//! leader — and caught up: it has applied what the cluster had committed when it came
//! back. Only a dev cluster's processes can be started by opsdeck (`cluster.toml`).

use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::StatusRequest;
use serde::Serialize;

use super::dev_cluster::{respawn, Data};
use super::membership::{OnProgress, Progress, POLL};
use crate::client::ClusterClient;

#[derive(Debug, Clone, Serialize)]
pub struct RestartOutcome {
    pub id: u64,
    /// The new process.
    pub pid: u32,
    /// The index it had to apply to count as caught up, and when it had.
    pub caught_up_to: u64,
    pub took_ms: u64,
}

/// Restarts member `id` of the dev cluster at `dir` and waits (up to `deadline` after it
/// serves) until it has rejoined and caught up.
pub async fn restart_node(
    client: &ClusterClient,
    dir: &Path,
    id: u64,
    deadline: Duration,
    progress: OnProgress<'_>,
) -> Result<RestartOutcome> {
    let started = Instant::now();
    let (_, leader) = client.leader().await?;
    if !leader.members.iter().any(|m| m.id == id) {
        return Err(eyre!(
            "node {id} is not a member of the cluster; nothing to restart"
        ));
    }
    let entry = respawn(dir, id, Data::Keep, progress).await?;
    let pid = entry.pid.unwrap_or(0);
    let mut node = client.connect_to(&entry.grpc)?;
    let until = Instant::now() + deadline;
    // What the cluster had committed once the node was back: applying it is catching up.
    let mut target = None;
    loop {
        if target.is_none() {
            target = client.leader().await.ok().and_then(|(_, l)| l.committed);
        }
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_secs(1));
        let status = node.status(req).await.ok().map(|r| r.into_inner());
        let applied = status.as_ref().and_then(|s| s.applied).unwrap_or(0);
        let leader_known = status.as_ref().is_some_and(|s| s.leader_id.is_some());
        if let Some(t) = target {
            progress(&Progress::Rejoining {
                id,
                applied,
                target: t,
            });
            if leader_known && applied >= t {
                return Ok(RestartOutcome {
                    id,
                    pid,
                    caught_up_to: t,
                    took_ms: started.elapsed().as_millis() as u64,
                });
            }
        }
        if Instant::now() > until {
            return Err(eyre!(
                "node {id} runs again (pid {pid}) but has not {} within {}: its log is {}",
                match target {
                    Some(t) if leader_known => format!("caught up (applied {applied} of {t})"),
                    _ => "rejoined (it names no leader)".to_string(),
                },
                humantime::format_duration(deadline),
                super::dev_cluster::log_path(dir, id).display()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
