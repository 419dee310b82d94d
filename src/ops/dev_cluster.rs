//! The dev cluster: `opsdeck node` child processes on 127.0.0.1, started, formed, resumed
//! and stopped (the `opsdeck dev` verb runs it and opens the console on it).
//!
//! A fresh directory gets a new cluster (node 1 bootstraps, the others join as learners and
//! are promoted to voters); a directory holding a stopped cluster is resumed from its data.
//! Children die with this process (unless `--keep`), so a killed `dev` leaves no orphans.
//!
//! Nodes added later by `opsdeck add-node --spawn` ([`spawn_member`]) are not children of
//! `dev` (they outlive the CLI that started them): they are recorded in `cluster.toml` with
//! their pid, and stopping the dev cluster stops every recorded pid it did not spawn
//! itself. `opsdeck remove-node` stops a removed node ([`stop_member`]) and drops it from
//! the file.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result, WrapErr};
use opsdeck_node::pb::{AddLearnerRequest, ChangeMembershipRequest, StatusRequest};
use opsdeck_node::store::defrag::{self, DefragError, DefragReport};
use tokio::process::{Child, Command};

use super::membership::{NewNode, Progress};
use crate::cli::{DevArgs, RaftTiming};
use crate::client::cluster_file::{
    default_dev_dir, ClusterFile, NodeEntry, NodeSettings, ADMIN_KEY_FILE, FILE_NAME,
};
use crate::client::{self, ApiKey};
use opsdeck_node::security::cluster_secret::{self, write_private, ClusterSecret};

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The file one `opsdeck dev` holds locked (and writes its pid into) while it runs on a dir.
pub const LOCK_FILE: &str = "dev.lock";

pub struct DevCluster {
    pub dir: PathBuf,
    pub file: ClusterFile,
    children: Vec<(u64, Child)>,
    keep: bool,
    /// Held for the life of `opsdeck dev` (None for a node spawned by add-node).
    _lock: Option<DirLock>,
}

/// An exclusive `flock` on `DIR/dev.lock`: the kernel drops it when this process ends, so
/// a killed `dev` never leaves a stale lock. The file is opened close-on-exec, so the
/// nodes it starts do not inherit it.
pub struct DirLock {
    _file: File,
}

/// Locks `dir` for this `opsdeck dev`, or fails naming the pid of the `dev` holding it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .wrap_err_with(|| format!("cannot open the lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor this File owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "unknown pid".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(eyre!(
                "another `opsdeck dev` ({holder}) is running on {}; stop it first (Ctrl-C in \
                 its terminal), or pass --dir for another cluster",
                dir.display()
            ));
        }
        return Err(eyre!("cannot lock {}: {err}", path.display()));
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    Ok(DirLock { _file: file })
}

/// A node process of this `dev` that ended on its own.
#[derive(Debug, Clone)]
pub struct NodeExit {
    pub id: u64,
    pub status: std::process::ExitStatus,
    /// Where its log is, and how it ends.
    pub log: PathBuf,
    pub log_tail: String,
}

impl std::fmt::Display for NodeExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} exited ({}); its log {} ends with:\n{}",
            self.id,
            self.status,
            self.log.display(),
            self.log_tail
        )
    }
}

/// Fails naming the port if anything already listens on it.
fn check_port_free(addr: &str) -> Result<()> {
    TcpListener::bind(addr).map(drop).map_err(|e| {
        eyre!(
            "port {} ({addr}) is not free: {e}; stop what uses it or pass --base-port",
            port_of(addr)
        )
    })
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(_, p)| p).unwrap_or(addr)
}

fn process_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by its parent) is not running.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        return stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z');
    }
    // Signal 0 checks existence without delivering anything.
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    unsafe { libc::kill(pid, 0) == 0 }
}

/// SIGTERM, then SIGKILL if it is still running after 5 s. Answers whether it had to kill.
pub async fn terminate(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if !process_alive(pid) {
        return false;
    }
    unsafe { libc::kill(raw, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(raw, libc::SIGKILL) };
    true
}

impl NodeSettings {
    fn of(args: &DevArgs) -> NodeSettings {
        NodeSettings {
            snapshot_every: args.snapshot_every,
            keep_logs: args.keep_logs,
            heartbeat_ms: args.timing.heartbeat_ms,
            election_timeout_ms: args.timing.election_timeout_ms,
        }
    }
}

/// A free loopback address (the port is free at the moment of asking).
fn free_addr() -> Result<(TcpListener, String)> {
    let l = TcpListener::bind("127.0.0.1:0").wrap_err("cannot find a free port on 127.0.0.1")?;
    let addr = l.local_addr()?.to_string();
    Ok((l, addr))
}

/// Node `id`'s ports in the layout `opsdeck dev --base-port` gave the first nodes (gRPC at
/// base + id, HTTP at base + 100 + id), when both are free: a new node stays in the range
/// the cluster was given (tests reserve theirs) rather than on an ephemeral port.
fn planned_addrs(file: &ClusterFile, id: u64) -> Option<(String, String)> {
    let first = file.nodes.iter().min_by_key(|n| n.id)?;
    let port = |addr: &str| addr.rsplit_once(':')?.1.parse::<u64>().ok();
    let base = port(&first.grpc)?.checked_sub(first.id)?;
    if id >= 100 || port(&first.http)? != base + 100 + first.id {
        return None;
    }
    let at = |p: u64| u16::try_from(p).ok().map(|p| format!("127.0.0.1:{p}"));
    let (grpc, http) = (at(base + id)?, at(base + 100 + id)?);
    let taken = |a: &str| file.nodes.iter().any(|n| n.grpc == a || n.http == a);
    if taken(&grpc) || taken(&http) {
        return None;
    }
    // Free now (bound and released at once), as with an ephemeral port.
    let free = |a: &str| TcpListener::bind(a).is_ok();
    (free(&grpc) && free(&http)).then_some((grpc, http))
}

/// Starts one more node in the dev cluster at `dir`: the next free id, free ports, data in
/// `DIR/nN`, the same flags as the other nodes. It is detached from this process (it
/// outlives the CLI) and recorded in `cluster.toml` with its pid. Answers once it serves.
pub async fn spawn_member(dir: &Path, taken: &[u64]) -> Result<NodeEntry> {
    let file = ClusterFile::load(dir)?;
    let secret = dir.join(cluster_secret::FILE_NAME);
    if !secret.exists() {
        return Err(eyre!(
            "{} has no cluster secret ({}): is it a dev cluster made by `opsdeck dev`?",
            dir.display(),
            secret.display()
        ));
    }
    let mut id = file
        .nodes
        .iter()
        .map(|n| n.id)
        .chain(taken.iter().copied())
        .max()
        .unwrap_or(0)
        + 1;
    while dir.join(format!("n{id}")).exists() {
        id += 1;
    }
    let (grpc, http) = match planned_addrs(&file, id) {
        Some(addrs) => addrs,
        None => {
            let (grpc_l, grpc) = free_addr()?;
            let (http_l, http) = free_addr()?;
            drop((grpc_l, http_l));
            (grpc, http)
        }
    };
    let entry = NodeEntry {
        id,
        grpc,
        http,
        data: dir.join(format!("n{id}")),
        pid: None,
    };
    start_detached(dir, file, entry).await
}

/// What [`respawn`] starts the node with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// Its data dir as it is (`restart-node`).
    Keep,
    /// Nothing: the data dir deleted first (`rebuild-node`, once it is no longer a member).
    Delete,
    /// Its data, with the database rewritten offline into a fresh one while the process is
    /// down (`compact --defrag`, [`opsdeck_node::store::defrag::defrag`]).
    Defrag,
}

/// How long a defrag retries a database still locked after the process is gone: a killed
/// or exiting node's threads can hold sled's lock for a moment after its main thread
/// ended (its `/proc/PID` is still there).
const LOCK_RELEASE: Duration = Duration::from_secs(10);

/// A node started again by [`respawn`].
#[derive(Debug, Clone)]
pub struct Respawned {
    pub entry: NodeEntry,
    /// What the defrag did, with [`Data::Defrag`].
    pub defrag: Option<DefragReport>,
}

/// Node `id` of the dev cluster at `dir` started again: stops its process if it runs
/// (SIGTERM: a leader hands over first), deletes its data dir with [`Data::Delete`] (only a
/// dir inside `dir`) or defragments its database with [`Data::Defrag`], and starts it on
/// the same id and ports, detached like a node of [`spawn_member`]. Answers once it serves.
///
/// A defrag is checked for room before the process is stopped (nothing changes when
/// refused); a defrag that fails once the node is down leaves the old database in place,
/// and the node is started again on it before the error is returned.
pub async fn respawn(
    dir: &Path,
    id: u64,
    data: Data,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Respawned> {
    let mut file = ClusterFile::load(dir)?;
    let Some(pos) = file.nodes.iter().position(|n| n.id == id) else {
        return Err(eyre!(
            "node {id} is not listed in {}; nothing to start",
            dir.join(FILE_NAME).display()
        ));
    };
    let mut entry = file.nodes.remove(pos);
    let plan = match data {
        Data::Defrag => Some(
            defrag::precheck(&entry.data)
                .map_err(|e| eyre!("node {id}: {e}; node {id} was not stopped"))?,
        ),
        Data::Keep | Data::Delete => None,
    };
    if let Some(pid) = entry.pid.take().filter(|p| process_alive(*p)) {
        progress(&Progress::StoppingProcess { id, pid });
        terminate(pid).await;
    }
    let mut defragged = None;
    match (data, plan) {
        (Data::Delete, _) => delete_data(dir, &entry, progress)?,
        (Data::Defrag, Some(plan)) => {
            progress(&Progress::Defragmenting {
                id,
                before_bytes: plan.db_bytes,
            });
            defragged = Some(defrag_unlocked(&entry.data).await);
        }
        _ => {}
    }
    let entry = start_detached(dir, file, entry).await?;
    progress(&Progress::Spawned {
        id,
        pid: entry.pid.unwrap_or(0),
        grpc: entry.grpc.clone(),
        http: entry.http.clone(),
    });
    let defrag = match defragged {
        None => None,
        Some(Ok(report)) => {
            progress(&Progress::Defragmented {
                id,
                before_bytes: report.before_bytes,
                after_bytes: report.after_bytes,
                took_ms: report.took_ms,
            });
            Some(report)
        }
        Some(Err(e)) => {
            return Err(eyre!(
                "defrag of node {id} failed: {e}; node {id} was started again (pid {}) on its \
                 database",
                entry.pid.unwrap_or(0)
            ))
        }
    };
    Ok(Respawned { entry, defrag })
}

/// [`defrag::defrag`] of the stopped node's data dir `data` on the blocking pool, retried
/// while the database is still locked by the ending process, for at most [`LOCK_RELEASE`].
async fn defrag_unlocked(data: &Path) -> std::result::Result<DefragReport, DefragError> {
    let until = Instant::now() + LOCK_RELEASE;
    loop {
        let path = data.to_path_buf();
        let result = tokio::task::spawn_blocking(move || defrag::defrag(&path))
            .await
            .unwrap_or_else(|e| {
                Err(DefragError::Copy {
                    path: data.to_path_buf(),
                    step: "running the copy",
                    reason: e.to_string(),
                })
            });
        match result {
            Err(DefragError::Locked { .. }) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Deletes `entry`'s data dir, refusing one outside the dev dir `dir`.
fn delete_data(
    dir: &Path,
    entry: &NodeEntry,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<()> {
    let id = entry.id;
    let inside = match (entry.data.canonicalize(), dir.canonicalize()) {
        (Ok(data), Ok(dir)) => data.starts_with(&dir) && data != dir,
        // Nothing there to delete.
        (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => true,
        _ => false,
    };
    if !inside {
        return Err(eyre!(
            "node {id}'s data dir {} is not inside the dev cluster's {}: not deleting it",
            entry.data.display(),
            dir.display()
        ));
    }
    progress(&Progress::DeletingData {
        id,
        path: entry.data.display().to_string(),
    });
    match std::fs::remove_dir_all(&entry.data) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(eyre!(
                "cannot delete node {id}'s data dir {}: {e}",
                entry.data.display()
            ))
        }
    }
    Ok(())
}

/// Starts `entry` with the flags `opsdeck dev` recorded, detached from this process (it
/// outlives the CLI), records it with its pid in `file` (which must not list it yet), and
/// answers once it serves.
async fn start_detached(
    dir: &Path,
    mut file: ClusterFile,
    mut entry: NodeEntry,
) -> Result<NodeEntry> {
    let id = entry.id;
    let settings = file.settings.clone().unwrap_or(NodeSettings {
        snapshot_every: 10_000,
        keep_logs: 1_000,
        heartbeat_ms: 50,
        election_timeout_ms: (150, 300),
    });
    let args = DevArgs {
        nodes: 1,
        dir: Some(dir.to_path_buf()),
        base_port: 0,
        headless: true,
        keymap: None,
        theme: None,
        // Not tied to this process: it must outlive the CLI.
        keep: true,
        snapshot_every: settings.snapshot_every,
        keep_logs: settings.keep_logs,
        timing: RaftTiming {
            heartbeat_ms: settings.heartbeat_ms,
            election_timeout_ms: settings.election_timeout_ms,
        },
        notify: Default::default(),
    };
    let child = spawn_node(dir, &entry, false, &args)?;
    entry.pid = child.id();
    // Recorded before anything else can fail, so `dev` and remove-node can always find it.
    file.nodes.push(entry.clone());
    file.save(dir)?;
    let mut cluster = DevCluster {
        dir: dir.to_path_buf(),
        file,
        children: vec![(id, child)],
        keep: true,
        _lock: None,
    };
    let serving = cluster.wait_until_serving(&entry).await;
    // Dropping the handle leaves the process running (tokio does not kill on drop).
    cluster.children.clear();
    serving?;
    Ok(entry)
}

/// Starts a new node in the dev cluster at `dir` (next free id and ports), not yet a member.
pub async fn spawn_into(
    client: &crate::client::ClusterClient,
    dir: &std::path::Path,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<(NewNode, NodeEntry)> {
    let (_, leader) = client.leader().await?;
    let taken: Vec<u64> = leader.members.iter().map(|m| m.id).collect();
    let entry = spawn_member(dir, &taken).await?;
    progress(&Progress::Spawned {
        id: entry.id,
        pid: entry.pid.unwrap_or(0),
        grpc: entry.grpc.clone(),
        http: entry.http.clone(),
    });
    let node = NewNode {
        id: entry.id,
        grpc: entry.grpc.clone(),
        http: entry.http.clone(),
    };
    Ok((node, entry))
}

/// Stops node `id` of the dev cluster at `dir` (if it runs) and drops it from
/// `cluster.toml`. Answers its pid, if it was running, and whether it had to be killed.
pub async fn stop_member(dir: &Path, id: u64) -> Result<Option<(u32, bool)>> {
    let mut file = ClusterFile::load(dir)?;
    let Some(entry) = file.nodes.iter().find(|n| n.id == id).cloned() else {
        return Ok(None);
    };
    let mut stopped = None;
    if let Some(pid) = entry.pid.filter(|p| process_alive(*p)) {
        stopped = Some((pid, terminate(pid).await));
    }
    file.nodes.retain(|n| n.id != id);
    file.save(dir)?;
    Ok(stopped)
}

impl DevCluster {
    pub async fn start(args: &DevArgs) -> Result<DevCluster> {
        let dir = args.dir.clone().unwrap_or_else(default_dev_dir);
        std::fs::create_dir_all(&dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .wrap_err_with(|| format!("cannot resolve {}", dir.display()))?;
        let lock = lock_dir(&dir)?;

        let resume = dir.join(FILE_NAME).exists();
        let mut file = if resume {
            let file = ClusterFile::load(&dir)?;
            for n in &file.nodes {
                if let Some(pid) = n.pid.filter(|p| process_alive(*p)) {
                    return Err(eyre!(
                        "a dev cluster is already running in {} (node {} is pid {pid}); \
                         stop it first, or pass --dir for another cluster",
                        dir.display(),
                        n.id
                    ));
                }
            }
            file
        } else {
            plan(&dir, args.nodes, args.base_port)?
        };
        for n in &file.nodes {
            check_port_free(&n.grpc)?;
            check_port_free(&n.http)?;
        }
        // One secret for the nodes to recognise each other, handed to each at start.
        ClusterSecret::load_or_create(&dir, None, true).map_err(|e| eyre!("{e}"))?;

        let mut cluster = DevCluster {
            dir: dir.clone(),
            file: file.clone(),
            children: Vec::new(),
            keep: args.keep,
            _lock: Some(lock),
        };
        for n in &mut file.nodes {
            let init = !resume && n.id == 1;
            let child = spawn_node(&dir, n, init, args)?;
            n.pid = child.id();
            cluster.children.push((n.id, child));
        }
        file.settings = Some(NodeSettings::of(args));
        cluster.file = file;
        if let Err(e) = cluster.form(resume).await {
            // A cluster that never formed is not worth resuming: leave no cluster.toml.
            cluster.stop_children().await;
            return Err(e);
        }
        cluster.file.save(&dir)?;
        Ok(cluster)
    }

    /// Waits for every node, then (for a new cluster) joins nodes 2.. as learners and makes
    /// every node a voter.
    async fn form(&mut self, resume: bool) -> Result<()> {
        for n in self.file.nodes.clone() {
            self.wait_until_serving(&n).await?;
        }
        if resume {
            return Ok(());
        }
        // Node 1 created the cluster's first admin key; the dev dir is where verbs and the
        // console look for it.
        let key_file = self.file.nodes[0].data.join(ADMIN_KEY_FILE);
        let secret = std::fs::read_to_string(&key_file).wrap_err_with(|| {
            format!("node 1 did not write its admin key {}", key_file.display())
        })?;
        write_private(&self.dir.join(ADMIN_KEY_FILE), secret.trim().as_bytes())
            .wrap_err("cannot write the dev cluster's admin.key")?;
        if self.file.nodes.len() == 1 {
            return Ok(());
        }
        let mut first = client::connect(&self.file.nodes[0].grpc, &ApiKey::new(&secret)?)?;
        for n in &self.file.nodes[1..] {
            first
                .add_learner(AddLearnerRequest {
                    id: n.id,
                    grpc: n.grpc.clone(),
                    http: n.http.clone(),
                    blocking: true,
                })
                .await
                .map_err(|s| eyre!("adding node {} as a learner failed: {}", n.id, s.message()))?;
        }
        let voters: BTreeSet<u64> = self.file.nodes.iter().map(|n| n.id).collect();
        first
            .change_membership(ChangeMembershipRequest {
                voters: voters.into_iter().collect(),
                retain: false,
                remove: Vec::new(),
            })
            .await
            .map_err(|s| eyre!("promoting the learners to voters failed: {}", s.message()))?;
        Ok(())
    }

    async fn wait_until_serving(&mut self, n: &NodeEntry) -> Result<()> {
        let mut client = client::connect(&n.grpc, &ApiKey::none())?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((_, child)) = self.children.iter_mut().find(|(id, _)| *id == n.id) {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(eyre!(
                        "node {} exited at start ({status}); its log {} ends with:\n{}",
                        n.id,
                        log_path(&self.dir, n.id).display(),
                        log_tail(&log_path(&self.dir, n.id), 8)
                    ));
                }
            }
            // A node that has not joined yet knows no API keys: any answer means it serves.
            match tokio::time::timeout(Duration::from_millis(500), client.status(StatusRequest {}))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => return Ok(()),
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(eyre!(
                    "node {} did not answer on {} within {START_TIMEOUT:?}; see {}",
                    n.id,
                    n.grpc,
                    log_path(&self.dir, n.id).display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn print_summary(&self) {
        // Fits an 80-column terminal.
        println!(
            "opsdeck dev cluster: {} nodes in {}",
            self.file.nodes.len(),
            self.dir.display()
        );
        for n in &self.file.nodes {
            println!(
                "  node {}  grpc {}  http {}  pid {}",
                n.id,
                n.grpc,
                n.http,
                n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            );
        }
        println!("node logs: {}", self.dir.join("n*.log").display());
        println!(
            "admin key: {} (verbs and the console use it by default)",
            self.dir.join(ADMIN_KEY_FILE).display()
        );
        println!("try: opsdeck status --cluster {}", self.dir.display());
        if let Some(first) = self.file.nodes.first() {
            println!("     curl http://{}/health", first.http);
        }
        if self.keep {
            println!("Ctrl-C exits and leaves the nodes running (--keep).");
        } else {
            println!("Ctrl-C stops the cluster.");
        }
    }

    /// Reaps node processes as they end (so none stays a zombie), calling `on_exit` for
    /// each, and returns once every node this `dev` started has ended and no other node
    /// recorded in `cluster.toml` (add-node --spawn) runs either.
    pub async fn until_all_exited(&mut self, on_exit: &mut (dyn FnMut(&NodeExit) + Send)) {
        let mut ended: BTreeSet<u64> = BTreeSet::new();
        loop {
            for (id, child) in &mut self.children {
                if ended.contains(id) {
                    continue;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    ended.insert(*id);
                    let log = log_path(&self.dir, *id);
                    on_exit(&NodeExit {
                        id: *id,
                        status,
                        log_tail: log_tail(&log, 8),
                        log,
                    });
                }
            }
            if ended.len() == self.children.len() {
                // Our children are dead by now: a live pid in the file is a node started
                // since (add-node --spawn, or rebuild-node under one of our ids).
                let others_run = ClusterFile::load(&self.dir)
                    .is_ok_and(|f| f.nodes.iter().any(|n| n.pid.is_some_and(process_alive)));
                if !others_run {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the children (SIGTERM, then SIGKILL after 5 s) unless `--keep`, and records
    /// that they are stopped.
    pub async fn stop(mut self) -> Result<()> {
        if self.keep {
            return Ok(());
        }
        // Known by pid, not id: a node rebuilt (`rebuild-node`) has one of our ids but is a
        // process of its own. (A child's id is gone once it has been waited for.)
        let ours: Vec<u32> = self.children.iter().filter_map(|(_, c)| c.id()).collect();
        self.stop_children().await;
        // Nodes added, removed or rebuilt since start (add-node --spawn, remove-node,
        // rebuild-node) are in the file, not in our copy: stop the ones we did not spawn,
        // keep the file's list.
        let mut file = ClusterFile::load(&self.dir).unwrap_or_else(|_| self.file.clone());
        for n in &file.nodes {
            if let Some(pid) = n.pid.filter(|p| !ours.contains(p) && process_alive(*p)) {
                if terminate(pid).await {
                    eprintln!(
                        "node {} (pid {pid}) did not stop within 5 s; killed it",
                        n.id
                    );
                }
            }
        }
        // Only pids that no longer run are dropped: a node that is still up stays findable.
        for n in &mut file.nodes {
            n.pid = n.pid.filter(|p| process_alive(*p));
        }
        file.save(&self.dir)
    }

    async fn stop_children(&mut self) {
        for (_, child) in &self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        for (id, child) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                eprintln!("node {id} did not stop within 5 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

fn plan(dir: &Path, nodes: u64, base_port: u16) -> Result<ClusterFile> {
    let mut planned = Vec::new();
    for id in 1..=nodes {
        let grpc = u16::try_from(base_port as u64 + id).ok();
        let http = u16::try_from(base_port as u64 + 100 + id).ok();
        let (Some(grpc), Some(http)) = (grpc, http) else {
            return Err(eyre!(
                "--base-port {base_port} is too high for {nodes} nodes"
            ));
        };
        planned.push(NodeEntry {
            id,
            grpc: format!("127.0.0.1:{grpc}"),
            http: format!("127.0.0.1:{http}"),
            data: dir.join(format!("n{id}")),
            pid: None,
        });
    }
    Ok(ClusterFile {
        nodes: planned,
        settings: None,
    })
}

/// Where node `id` of the dev cluster at `dir` writes its output.
pub fn log_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("n{id}.log"))
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn spawn_node(dir: &Path, n: &NodeEntry, init: bool, args: &DevArgs) -> Result<Child> {
    let exe = std::env::current_exe().wrap_err("cannot find the opsdeck executable")?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path(dir, n.id))
        .wrap_err_with(|| format!("cannot open {}", log_path(dir, n.id).display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("node")
        .args([
            "--id",
            &n.id.to_string(),
            "--grpc",
            &n.grpc,
            "--http",
            &n.http,
        ])
        .arg("--data")
        .arg(&n.data)
        .args(["--snapshot-every", &args.snapshot_every.to_string()])
        .arg("--cluster-secret-file")
        .arg(dir.join(cluster_secret::FILE_NAME))
        .args(["--keep-logs", &args.keep_logs.to_string()])
        .args(args.timing.to_args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if init {
        cmd.arg("--init");
    }
    if args.keep {
        // Its own process group: Ctrl-C in the terminal that started it does not reach it.
        cmd.process_group(0);
    } else {
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the child
        // when this process dies, so a killed `dev` leaves no orphan nodes.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd.spawn()
        .wrap_err_with(|| format!("cannot start node {}", n.id))
}
