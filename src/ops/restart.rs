//! `opsdeck restart-node`: a member's process stopped and started again on its own data,
//! then waited for until it has rejoined — it names a leader — and caught up: it has
//! applied what the cluster had committed when it came back. A dev cluster's process is
//! stopped (SIGTERM: a leader hands over first) and started from `cluster.toml`; any other
//! cluster's node is restarted by the context's `restart` operator command
//! (`config::commands`, e.g. `ssh {grpc_host} sudo systemctl restart opsdeck-node`), and
//! counts as restarted once it answers with a start time after the one it had before.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{NodeStatus, StatusRequest};
use serde::Serialize;

use super::dev_cluster::{respawn, Data};
use super::membership::{OnProgress, Progress, POLL};
use crate::client::{ClusterClient, NodeRpc, Target};
use crate::config::commands::Command;
use crate::config::Config;

/// The operator command that restarts a node outside a dev cluster.
pub const RESTART_COMMAND: &str = "restart";

/// How a member is restarted.
#[derive(Debug, Clone)]
pub enum Restarter {
    /// A dev cluster's process, started again from `cluster.toml` in this directory.
    Dev(PathBuf),
    /// The context's `restart` operator command, with the context's `data_dir` template.
    Command(Box<ByCommand>),
}

/// The context's `restart` operator command, with what fills its placeholders.
#[derive(Debug, Clone)]
pub struct ByCommand {
    pub command: Command,
    pub target: Target,
    /// The context's `data_dir` template.
    pub data_dir: Option<String>,
}

impl Restarter {
    /// How `target`'s nodes are restarted: its dev cluster's processes, else its context's
    /// `restart` command; or why they cannot be (the error names what to configure).
    pub fn for_target(target: &Target, config: &Config) -> Result<Restarter, String> {
        if let Some(dir) = target.dev_dir() {
            return Ok(Restarter::Dev(dir));
        }
        let context = target.context.as_deref().and_then(|n| config.context(n));
        let (commands, data_dir) = config.commands_and_data_dir(context.as_ref());
        match commands.into_iter().find(|(n, _)| n == RESTART_COMMAND) {
            Some((_, command)) => Ok(Restarter::Command(Box::new(ByCommand {
                command,
                target: target.clone(),
                data_dir,
            }))),
            None => Err(format!(
                "{} is not a dev cluster and its config defines no `{RESTART_COMMAND}` command: add \
                 [contexts.{}.commands.{RESTART_COMMAND}] with run = \"ssh {{grpc_host}} sudo systemctl restart opsdeck-node\" \
                 to config.toml, or restart the node with its supervisor",
                target.label(),
                target.context.as_deref().unwrap_or("NAME"),
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartOutcome {
    pub id: u64,
    /// The new process, when opsdeck started it (a dev cluster).
    pub pid: Option<u32>,
    /// The index it had to apply to count as caught up, and when it had.
    pub caught_up_to: u64,
    pub took_ms: u64,
}

impl std::fmt::Display for RestartOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} restarted", self.id)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        write!(
            f,
            " and caught up to index {} in {:.1} s",
            self.caught_up_to,
            self.took_ms as f64 / 1000.0
        )
    }
}

/// Restarts member `id` the way `how` says and waits (up to `deadline` after it is back)
/// until it has rejoined and caught up.
pub async fn restart_node(
    client: &ClusterClient,
    how: &Restarter,
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
    let (pid, grpc, started_before, log) = match how {
        Restarter::Dev(dir) => {
            let entry = respawn(dir, id, Data::Keep, progress).await?;
            let log = super::dev_cluster::log_path(dir, id).display().to_string();
            (entry.pid, entry.grpc, None, format!("its log is {log}"))
        }
        Restarter::Command(by) => {
            let ByCommand {
                command,
                target,
                data_dir,
            } = by.as_ref();
            let vars = super::commands::vars_for(client, target, data_dir.as_deref(), id).await?;
            // The old process started before this frame was taken; the new one after it.
            let before = match client.connect_to(&vars.grpc) {
                Ok(mut node) => status_of(&mut node).await.map(|s| s.unix_ms),
                Err(_) => None,
            };
            let argv = super::commands::argv(command, &vars)?;
            progress(&Progress::RunningCommand {
                id,
                name: RESTART_COMMAND.into(),
                argv: shlex::try_join(argv.iter().map(String::as_str))
                    .unwrap_or_else(|_| argv.join(" ")),
            });
            let ran = super::commands::run(argv, command.timeout).await?;
            if !ran.end.ok() {
                return Err(eyre!(
                    "the {RESTART_COMMAND} command for node {id} ended with {}; the node was not waited for. Its output:\n{}",
                    ran.end.describe(command.timeout),
                    last_lines(&ran.output_text(), 20)
                ));
            }
            (
                None,
                vars.grpc,
                before,
                format!("see `opsdeck cmd run logs --node {id}` or the node's journal"),
            )
        }
    };
    let mut node = client.connect_to(&grpc)?;
    let until = Instant::now() + deadline;
    // What the cluster had committed once the node was back: applying it is catching up.
    let mut target = None;
    let mut restarted = started_before.is_none();
    loop {
        if target.is_none() && restarted {
            target = client.leader().await.ok().and_then(|(_, l)| l.committed);
        }
        let status = status_of(&mut node).await;
        // A node restarted by a command counts once it answers as a newer process (a
        // build that does not report its start says 0: never counted).
        if let (Some(s), Some(before)) = (&status, started_before) {
            restarted |= s.started_unix_ms > before;
        }
        let status = status.filter(|_| restarted);
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
            let running = match pid {
                Some(pid) => format!("runs again (pid {pid})"),
                None if restarted => "runs again".to_string(),
                None => {
                    return Err(eyre!(
                        "the {RESTART_COMMAND} command for node {id} succeeded but the node still answers as the process it was before (no restart seen) after {}: check the command",
                        humantime::format_duration(deadline)
                    ))
                }
            };
            return Err(eyre!(
                "node {id} {running} but has not {} within {}: {log}",
                match target {
                    Some(t) if leader_known => format!("caught up (applied {applied} of {t})"),
                    _ => "rejoined (it names no leader)".to_string(),
                },
                humantime::format_duration(deadline),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The node's status, if it answers within a second.
async fn status_of(node: &mut NodeRpc) -> Option<NodeStatus> {
    let mut req = tonic::Request::new(StatusRequest {});
    req.set_timeout(Duration::from_secs(1));
    node.status(req).await.ok().map(|r| r.into_inner())
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

/// Restarts every member (the way `how` says), one at a time: followers first, then
/// the leader after it handed leadership to the most caught-up follower; each one must
/// rejoin and catch up (within `deadline`) before the next goes down, so the cluster keeps
/// quorum throughout. Refused before anything changes when a member does not answer: one
/// more down would lose quorum (3 voters) or is at least no routine restart.
pub async fn rolling_restart(
    client: &ClusterClient,
    how: &Restarter,
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
        let done = restart_node(client, how, id, deadline, progress)
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
