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

impl std::fmt::Display for RestartOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} restarted (pid {}) and caught up to index {} in {:.1} s",
            self.id,
            self.pid,
            self.caught_up_to,
            self.took_ms as f64 / 1000.0
        )
    }
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

#[derive(Debug, Clone, Serialize)]
pub struct RollingOutcome {
    /// The nodes in the order they were restarted: followers first, the leader last.
    pub order: Vec<u64>,
    pub restarts: Vec<RestartOutcome>,
    /// The old leader's handover before its own restart.
    pub transfer: Option<super::membership::TransferOutcome>,
    pub took_ms: u64,
}

impl std::fmt::Display for RollingOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rolling restart of {} nodes done in {:.1} s",
            self.order.len(),
            self.took_ms as f64 / 1000.0
        )?;
        if let Some(t) = &self.transfer {
            write!(
                f,
                " (leadership moved from node {} to node {} first: {} ms, writes paused {} ms)",
                t.from, t.to, t.took_ms, t.writes_paused_ms
            )?;
        }
        Ok(())
    }
}

/// Restarts every member of the dev cluster at `dir`, one at a time: followers first, then
/// the leader after it handed leadership to the most caught-up follower; each one must
/// rejoin and catch up (within `deadline`) before the next goes down, so the cluster keeps
/// quorum throughout. Refused before anything changes when a member does not answer: one
/// more down would lose quorum (3 voters) or is at least no routine restart.
pub async fn rolling_restart(
    client: &ClusterClient,
    dir: &Path,
    deadline: Duration,
    progress: OnProgress<'_>,
) -> Result<RollingOutcome> {
    let started = Instant::now();
    let (_, leader) = client.leader().await?;
    let health = super::membership::member_health(client, &leader).await;
    let down: Vec<String> = health
        .iter()
        .filter_map(|h| match &h.status {
            Err(e) => Some(format!("node {} ({}): {e}", h.id, h.grpc)),
            Ok(_) => None,
        })
        .collect();
    if !down.is_empty() {
        return Err(eyre!(
            "rolling restart refused, nothing was restarted: the cluster is already degraded ({}); \
             bring it back first (`opsdeck restart-node --id N`)",
            down.join("; ")
        ));
    }
    let mut order: Vec<u64> = health
        .iter()
        .map(|h| h.id)
        .filter(|id| *id != leader.id)
        .collect();
    order.sort_unstable();
    order.push(leader.id);
    let mut restarts = Vec::new();
    let mut transfer = None;
    for (n, &id) in order.iter().enumerate() {
        progress(&Progress::RollingStep {
            nth: n + 1,
            of: order.len(),
            id,
        });
        if id == leader.id && order.len() > 1 {
            // The voter furthest along takes over, so the handover waits least.
            let (_, now) = client.leader().await?;
            let to = now
                .followers
                .iter()
                .filter(|f| health.iter().any(|h| h.id == f.id && h.voter))
                .min_by_key(|f| f.lag)
                .map(|f| f.id)
                .ok_or_else(|| {
                    eyre!("no voter to hand leadership to before restarting node {id}")
                })?;
            transfer = Some(super::membership::transfer_leader(client, to, progress).await?);
        }
        let done = restart_node(client, dir, id, deadline, progress)
            .await
            .map_err(|e| {
                eyre!(
                    "rolling restart stopped at node {id} (step {} of {}; restarted before it: {:?}): {e}",
                    n + 1,
                    order.len(),
                    &order[..n]
                )
            })?;
        restarts.push(done);
    }
    Ok(RollingOutcome {
        order,
        restarts,
        transfer,
        took_ms: started.elapsed().as_millis() as u64,
    })
}
