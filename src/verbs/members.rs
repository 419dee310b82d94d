//! `opsdeck add-node`, `remove-node`, `transfer-leader`: thin CLI wrappers over
//! [`crate::ops::membership`], plus what only a dev cluster has (spawning and stopping the
//! node processes, `cluster.toml`).

use color_eyre::eyre::{eyre, Result};
use serde_json::json;

use super::progress_printer as printer;
use crate::cli::{
    AddNodeArgs, RebuildNodeArgs, RemoveNodeArgs, RestartNodeArgs, RollingRestartArgs,
    TransferLeaderArgs,
};
use crate::ops::membership::{self, NewNode, Progress};

fn check_addr(what: &str, addr: &str) -> Result<String> {
    let addr = addr.trim();
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        return Err(eyre!(
            "bad {what} address {addr:?}: expected HOST:PORT, e.g. 127.0.0.1:7104"
        ));
    }
    Ok(addr.to_string())
}

pub async fn add_node(args: AddNodeArgs) -> Result<()> {
    let client = super::connect(&args.cluster)?;
    let mut progress = printer();
    let (node, spawned) = if args.spawn {
        let dir = args.cluster.target()?.dev_dir().ok_or_else(|| {
            eyre!(
                "--spawn starts the node in a dev cluster: pass --cluster DIR (a dir made by \
                 `opsdeck dev`), not --endpoints; for another cluster start the node yourself \
                 and pass --id, --grpc and --http"
            )
        })?;
        let (node, entry) =
            crate::ops::dev_cluster::spawn_into(&client, &dir, &mut progress).await?;
        (node, Some((dir, entry)))
    } else {
        let (Some(id), Some(grpc), Some(http)) = (args.id, &args.grpc, &args.http) else {
            return Err(eyre!("give --spawn, or all of --id, --grpc and --http"));
        };
        (
            NewNode {
                id,
                grpc: check_addr("--grpc", grpc)?,
                http: check_addr("--http", http)?,
            },
            None,
        )
    };
    let outcome = membership::add_node(
        &client,
        &node,
        !args.no_promote,
        membership::Deadlines {
            catch_up: args.catch_up_timeout,
            stall: args.stall_timeout,
        },
        &mut progress,
    )
    .await;
    let outcome = match (outcome, &spawned) {
        (Ok(o), _) => o,
        (Err(e), Some((dir, entry))) => {
            return Err(eyre!(
                "{e}\nnode {} (pid {}) keeps running in {} and is listed in its cluster.toml; \
                 `opsdeck remove-node --id {} --cluster {}` stops and drops it",
                entry.id,
                entry.pid.unwrap_or(0),
                dir.display(),
                entry.id,
                dir.display()
            ))
        }
        (Err(e), None) => return Err(e),
    };
    if args.cluster.json() {
        let mut v = serde_json::to_value(&outcome)?;
        if let Some((dir, entry)) = &spawned {
            v["spawned"] = json!({
                "pid": entry.pid,
                "data": entry.data,
                "cluster_dir": dir,
            });
        }
        super::print_json(&v)?;
    } else {
        println!(
            "node {} ({}) added{} after {} ms of catch-up; voters {:?}",
            outcome.id,
            outcome.grpc,
            if outcome.promoted {
                " as a voter"
            } else {
                " as a learner (--no-promote)"
            },
            outcome.catch_up_ms,
            outcome.voters
        );
        if let Some((_, entry)) = &spawned {
            println!(
                "its process: pid {}, data {}",
                entry.pid.unwrap_or(0),
                entry.data.display()
            );
        }
    }
    Ok(())
}

pub async fn remove_node(args: RemoveNodeArgs) -> Result<()> {
    let client = super::connect(&args.cluster)?;
    let mut progress = printer();
    let outcome = membership::remove_node(&client, args.id, args.force, &mut progress).await?;
    if let Some(why) = &outcome.overridden {
        eprintln!("warning: removed despite --force: {why}");
    }
    // In a dev cluster the removed node's process goes too.
    let mut stopped = None;
    if let Some(dir) = args.cluster.target()?.dev_dir() {
        let pid = crate::client::cluster_file::ClusterFile::load(&dir)
            .ok()
            .and_then(|f| f.nodes.into_iter().find(|n| n.id == args.id))
            .and_then(|n| n.pid);
        if let Some(pid) = pid {
            progress(&Progress::StoppingProcess { id: args.id, pid });
        }
        stopped = crate::ops::dev_cluster::stop_member(&dir, args.id)
            .await
            .map_err(|e| {
                eyre!(
                    "node {} was removed from the cluster, but stopping its process failed: {e}",
                    args.id
                )
            })?;
    }
    if args.cluster.json() {
        let mut v = serde_json::to_value(&outcome)?;
        v["stopped"] = match stopped {
            Some((pid, killed)) => json!({ "pid": pid, "killed": killed }),
            None => serde_json::Value::Null,
        };
        super::print_json(&v)?;
    } else {
        if let Some(t) = &outcome.transfer {
            println!(
                "leadership moved from node {} to node {} in {} ms (writes paused {} ms)",
                t.from, t.to, t.took_ms, t.writes_paused_ms
            );
        }
        println!(
            "node {} removed; voters now {:?}",
            outcome.id, outcome.voters
        );
        if let Some((pid, killed)) = stopped {
            println!(
                "its process (pid {pid}) {}",
                if killed {
                    "did not stop within 5 s and was killed"
                } else {
                    "stopped"
                }
            );
        }
    }
    Ok(())
}

/// The dev dir of a verb that starts node processes itself, or why it cannot (`by_hand`:
/// the same steps for a cluster on other hosts).
fn dev_dir_for(
    verb: &str,
    cluster: &crate::cli::ClusterArgs,
    by_hand: &str,
) -> Result<std::path::PathBuf> {
    cluster.target()?.dev_dir().ok_or_else(|| {
        eyre!(
            "{verb} starts the node again itself, which opsdeck can do only in a dev cluster \
             (--cluster DIR); for a node of another cluster: {by_hand}"
        )
    })
}

/// How the verb's cluster restarts nodes (a dev cluster's processes, or the context's
/// `restart` operator command), and a client for it: one reading of the config for both.
fn restarter_for(
    cluster: &crate::cli::ClusterArgs,
) -> Result<(crate::ops::restart::Restarter, crate::client::ClusterClient)> {
    let config = cluster.config.load()?;
    let target = cluster.target_in(&config)?;
    let how = crate::ops::restart::Restarter::for_target(&target, &config).map_err(|e| eyre!(e))?;
    Ok((how, target.connect()?))
}

pub async fn restart_node(args: RestartNodeArgs) -> Result<()> {
    let (how, client) = restarter_for(&args.cluster)?;
    let mut progress = printer();
    let outcome = crate::ops::restart::restart_node(
        &client,
        &how,
        args.id,
        args.timeout_rejoin,
        &mut progress,
    )
    .await?;
    if args.cluster.json() {
        super::print_json(&outcome)?;
    } else {
        println!("{outcome}");
    }
    Ok(())
}

pub async fn rolling_restart(args: RollingRestartArgs) -> Result<()> {
    let (how, client) = restarter_for(&args.cluster)?;
    let mut progress = printer();
    let outcome =
        crate::ops::restart::rolling_restart(&client, &how, args.timeout_rejoin, &mut progress)
            .await?;
    if args.cluster.json() {
        super::print_json(&outcome)?;
    } else {
        for r in &outcome.restarts {
            println!("{r}");
        }
        println!("{outcome}");
    }
    Ok(())
}

pub async fn rebuild_node(args: RebuildNodeArgs) -> Result<()> {
    let dir = dev_dir_for(
        "rebuild-node",
        &args.cluster,
        &format!(
            "`opsdeck remove-node --id {id}`, delete its data dir on its host and start it, then \
             `opsdeck add-node --id {id} --grpc ADDR --http ADDR`",
            id = args.id
        ),
    )?;
    let client = super::connect(&args.cluster)?;
    let mut progress = printer();
    let deadlines = membership::Deadlines {
        catch_up: args.catch_up_timeout,
        ..Default::default()
    };
    let outcome =
        crate::ops::rebuild::rebuild_node(&client, &dir, args.id, deadlines, &mut progress).await?;
    // The point of a rebuild: the replicas agree again.
    let report =
        crate::ops::check::check(&client, args.cluster.timeout.min(super::check::PER_NODE)).await;
    if args.cluster.json() {
        let mut v = serde_json::to_value(&outcome)?;
        v["check"] = serde_json::to_value(&report)?;
        super::print_json(&v)?;
    } else {
        println!("{outcome}");
    }
    super::check::verdict(&report, !args.cluster.json())
}

pub async fn transfer_leader(args: TransferLeaderArgs) -> Result<()> {
    let client = super::connect(&args.cluster)?;
    let mut progress = printer();
    let t = membership::transfer_leader(&client, args.to, &mut progress).await?;
    if args.cluster.json() {
        super::print_json(&t)?;
    } else {
        println!(
            "node {} is the leader (term {}), was node {}: took {} ms, writes paused {} ms",
            t.to, t.term, t.from, t.took_ms, t.writes_paused_ms
        );
    }
    Ok(())
}
