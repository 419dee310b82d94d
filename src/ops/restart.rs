//! `opsdeck restart-node`: a member's process stopped and started again on its own data,
//! then waited for until it has rejoined — it names a leader — and caught up: it has
//! applied what the cluster had committed when it came back. A dev cluster's process is
//! stopped (SIGTERM: a leader hands over first) and started from `cluster.toml`; any other
//! cluster's node is restarted by the context's `restart` operator command
//! (`config::commands`, e.g. `ssh {grpc_host} sudo systemctl restart opsdeck-node`), and
//! counts as restarted once it answers with a start time after the one it had before.
//!
//! The rolling restart does that to every member in turn; `compact --defrag`
//! ([`rolling_defrag`], dev clusters only) is the same rolling restart with the database
//! of each stopped node rewritten offline between stop and start ([`Data::Defrag`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{NodeStatus, StatusRequest};
use opsdeck_node::store::defrag::{self, DefragReport};
use serde::Serialize;

use super::dev_cluster::{respawn, Data};
use super::membership::{MemberHealth, OnProgress, Progress, POLL};
use crate::client::cluster_file::ClusterFile;
use crate::client::{ClusterClient, NodeRpc, Target};
use crate::config::commands::Command;
use crate::config::Config;
use crate::format;

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
        let (commands, data_dir) = config.commands_of_context(target.context.as_deref());
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
    /// What the defrag between stop and start did ([`Data::Defrag`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragReport>,
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
    restart_with(client, how, id, Data::Keep, deadline, progress).await
}

/// [`restart_node`] with `data` done between stop and start ([`Data::Keep`] or, in a dev
/// cluster only, [`Data::Defrag`]).
async fn restart_with(
    client: &ClusterClient,
    how: &Restarter,
    id: u64,
    data: Data,
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
    let (pid, grpc, started_before, log, defrag) = match how {
        Restarter::Dev(dir) => {
            let respawned = respawn(dir, id, data, progress).await?;
            let log = super::dev_cluster::log_path(dir, id).display().to_string();
            let entry = respawned.entry;
            let log = format!("its log is {log}");
            (entry.pid, entry.grpc, None, log, respawned.defrag)
        }
        Restarter::Command(_) if data != Data::Keep => {
            return Err(eyre!(
                "node {id} is restarted by the context's {RESTART_COMMAND} command, which cannot \
                 change its data dir; defrag and rebuild run only in a dev cluster"
            ));
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
                None,
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
                    defrag,
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
    rolling(client, how, Data::Keep, deadline, progress).await
}

/// The rolling restart with `data` done to each node between its stop and its start.
async fn rolling(
    client: &ClusterClient,
    how: &Restarter,
    data: Data,
    deadline: Duration,
    progress: OnProgress<'_>,
) -> Result<RollingOutcome> {
    let started = Instant::now();
    let (leader, health) = precheck(client, how, data).await?;
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
            what: what(data),
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
        let done = restart_with(client, how, id, data, deadline, progress)
            .await
            .map_err(|e| {
                eyre!(
                    "{} stopped at node {id} (step {} of {}; restarted before it: {:?}): {e}",
                    what(data),
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

fn what(data: Data) -> &'static str {
    match data {
        Data::Defrag => "rolling defrag",
        Data::Keep | Data::Delete => "rolling restart",
    }
}

/// What a rolling restart (with `data`) checks before anything changes: the leader, and
/// every member answers; with [`Data::Defrag`], every member has the room on its
/// filesystem. Answers the leader's status and the members' health.
async fn precheck(
    client: &ClusterClient,
    how: &Restarter,
    data: Data,
) -> Result<(opsdeck_node::pb::NodeStatus, Vec<MemberHealth>)> {
    let what = what(data);
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
            "{what} refused, nothing was restarted: the cluster is already degraded ({}); \
             bring it back first (`opsdeck restart-node --id N`)",
            down.join("; ")
        ));
    }
    if data == Data::Defrag {
        let Restarter::Dev(dir) = how else {
            return Err(eyre!(
                "{what} refused: a node's database can be rewritten offline only in a dev \
                 cluster; elsewhere stop the node and run `opsdeck defrag-data --data DIR` on its host"
            ));
        };
        let short = room_for_defrag(dir, &health);
        if !short.is_empty() {
            return Err(eyre!(
                "{what} refused, nothing was restarted: {}",
                short.join("; ")
            ));
        }
    }
    Ok((leader, health))
}

/// The checks of [`rolling_defrag`] alone, for a caller that does something else first
/// (`compact --defrag` compacts): every member answers and has the room.
pub async fn precheck_defrag(client: &ClusterClient, dir: &Path) -> Result<()> {
    let how = Restarter::Dev(dir.to_path_buf());
    precheck(client, &how, Data::Defrag).await.map(drop)
}

/// Why members have not the room a defrag needs ([`defrag::check_space`]: the database's
/// size plus headroom, free on its filesystem), from the figures in their status frames:
/// sled's own size and the free space of the data dir's filesystem. A node whose frame
/// has no free-space figure (its filesystem unknown to the node) is measured here, as its
/// data dir is local in a dev cluster. Empty when every member has room.
fn room_for_defrag(dir: &Path, health: &[MemberHealth]) -> Vec<String> {
    let file = ClusterFile::load(dir).ok();
    let mut short = Vec::new();
    for h in health {
        let data = file
            .as_ref()
            .and_then(|f| f.nodes.iter().find(|n| n.id == h.id))
            .map(|n| n.data.clone());
        let path = data
            .clone()
            .unwrap_or_else(|| format!("node {}'s data dir", h.id).into());
        let framed = match &h.status {
            Ok(Some(s)) if s.fs_total_bytes > 0 => {
                let db = match s.sled_size_on_disk {
                    0 => s.data_dir_bytes,
                    n => n,
                };
                Some(defrag::check_space(&path, db, s.fs_free_bytes).map(drop))
            }
            _ => None,
        };
        let checked = match (framed, &data) {
            (Some(r), _) => r,
            (None, Some(d)) => defrag::precheck(d).map(drop),
            (None, None) => {
                short.push(format!(
                    "node {}: reports no free-space figure and is not in {}",
                    h.id,
                    dir.display()
                ));
                continue;
            }
        };
        if let Err(e) = checked {
            short.push(format!("node {}: {e}", h.id));
        }
    }
    short
}

/// One node of a rolling defrag.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDefrag {
    pub id: u64,
    /// Its database directory's bytes before and after.
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub pairs: u64,
    /// The offline copy, check and swap.
    pub defrag_ms: u64,
    /// From its stop until it had rejoined and caught up again.
    pub took_ms: u64,
    pub caught_up_to: u64,
}

/// `compact --defrag`: every node's database rewritten, one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct DefragOutcome {
    /// Followers first, the leader last.
    pub nodes: Vec<NodeDefrag>,
    pub transfer: Option<super::membership::TransferOutcome>,
    pub took_ms: u64,
}

impl std::fmt::Display for DefragOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.id.to_string(),
                    format::bytes(n.before_bytes),
                    format::bytes(n.after_bytes),
                    format::bytes_signed(n.after_bytes as i64 - n.before_bytes as i64),
                    n.pairs.to_string(),
                    secs(n.defrag_ms),
                    secs(n.took_ms),
                ]
            })
            .collect();
        writeln!(
            f,
            "{}",
            format::table::render(
                &[
                    "ID",
                    "DB BEFORE",
                    "DB AFTER",
                    "CHANGE",
                    "PAIRS",
                    "DEFRAG",
                    "DOWN+CATCH-UP"
                ],
                &rows
            )
        )?;
        let (before, after) = self.nodes.iter().fold((0u64, 0u64), |(b, a), n| {
            (b + n.before_bytes, a + n.after_bytes)
        });
        write!(
            f,
            "rolling defrag of {} nodes done in {}: databases {} → {}",
            self.nodes.len(),
            secs(self.took_ms),
            format::bytes(before),
            format::bytes(after)
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

/// `opsdeck compact --defrag` on the dev cluster at `dir`: the rolling restart
/// ([`rolling_restart`]: every member must answer, followers first, the leader last after
/// a handover, each caught up before the next goes down) with each stopped node's database
/// rewritten offline ([`defrag::defrag`]) before it starts again. Refused before anything
/// changes when a member does not answer or has not the room on its filesystem (named,
/// with the figures).
pub async fn rolling_defrag(
    client: &ClusterClient,
    dir: &Path,
    deadline: Duration,
    progress: OnProgress<'_>,
) -> Result<DefragOutcome> {
    let how = Restarter::Dev(dir.to_path_buf());
    let rolled = rolling(client, &how, Data::Defrag, deadline, progress).await?;
    let nodes = rolled
        .restarts
        .iter()
        .map(|r| {
            let d = r.defrag.as_ref();
            NodeDefrag {
                id: r.id,
                before_bytes: d.map_or(0, |d| d.before_bytes),
                after_bytes: d.map_or(0, |d| d.after_bytes),
                pairs: d.map_or(0, |d| d.pairs),
                defrag_ms: d.map_or(0, |d| d.took_ms),
                took_ms: r.took_ms,
                caught_up_to: r.caught_up_to,
            }
        })
        .collect();
    Ok(DefragOutcome {
        nodes,
        transfer: rolled.transfer,
        took_ms: rolled.took_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsdeck_node::pb::NodeStatus;

    fn member(id: u64, db: u64, free: u64) -> MemberHealth {
        MemberHealth {
            id,
            grpc: format!("127.0.0.1:{}", 7100 + id),
            voter: true,
            status: Ok(Some(NodeStatus {
                id,
                sled_size_on_disk: db,
                data_dir_bytes: db + 1,
                fs_total_bytes: 10 << 30,
                fs_free_bytes: free,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_defrag_is_refused_naming_the_node_short_of_room_with_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        const MIB: u64 = 1 << 20;
        let health = [
            member(1, 100 * MIB, 1 << 30),
            member(2, 100 * MIB, 150 * MIB),
        ];
        let short = room_for_defrag(dir.path(), &health);
        assert_eq!(short.len(), 1, "{short:?}");
        let why = &short[0];
        // Needed: the db's size plus the 64 MiB headroom; free as reported.
        let needed = 100 * MIB + defrag::HEADROOM;
        assert!(
            why.starts_with("node 2: ")
                && why.contains(&format!("needed {needed} bytes"))
                && why.contains(&format!("free {} bytes", 150 * MIB)),
            "{why}"
        );
        assert!(room_for_defrag(dir.path(), &health[..1]).is_empty());
        // A member that told nothing (not even its free space) and is not in the dev dir.
        let silent = MemberHealth {
            status: Ok(None),
            ..member(3, 0, 0)
        };
        let short = room_for_defrag(dir.path(), &[silent]);
        assert!(
            short.len() == 1 && short[0].contains("node 3: reports no free-space figure"),
            "{short:?}"
        );
    }
}
