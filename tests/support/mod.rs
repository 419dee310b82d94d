//! Test harness: real `opsdeck node` processes on free loopback ports, in temp dirs, always
//! killed and removed when the test ends (pass or fail). Waits poll a condition against a
//! deadline; nothing sleeps blindly.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opsdeck_node::pb::node_client::NodeClient;
use opsdeck_node::pb::*;
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_opsdeck");

/// A port that was free a moment ago. Ports are handed out from a per-process base and
/// checked by binding, so parallel tests in one binary never get the same port.
pub fn free_port() -> u16 {
    reserve_ports(1)
}

/// The first of `count` consecutive ports that were all free a moment ago; none of them is
/// handed out again by this process.
pub fn reserve_ports(count: u16) -> u16 {
    static NEXT: OnceLock<AtomicU16> = OnceLock::new();
    let next =
        NEXT.get_or_init(|| AtomicU16::new(20_000 + (std::process::id() % 2000) as u16 * 10));
    loop {
        let base = next.fetch_add(count, Ordering::Relaxed);
        if base > 60_000 {
            next.store(20_000, Ordering::Relaxed);
            continue;
        }
        if (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn client(addr: &str) -> NodeClient<Channel> {
    let channel = opsdeck_node::transport::lazy_channel(addr).expect("valid address");
    NodeClient::new(channel)
}

pub struct TestNode {
    pub id: u64,
    pub grpc: String,
    pub http: String,
    pub data: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl TestNode {
    pub fn new(dir: &Path, id: u64, extra: &[&str]) -> TestNode {
        TestNode {
            id,
            grpc: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data: dir.join(format!("n{id}")),
            log: dir.join(format!("n{id}.log")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            child: None,
        }
    }

    pub fn start(&mut self, init: bool) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "node",
            "--id",
            &self.id.to_string(),
            "--grpc",
            &self.grpc,
            "--http",
            &self.http,
        ])
        .arg("--data")
        .arg(&self.data)
        .args(&self.extra)
        .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
        if init {
            cmd.arg("--init");
        }
        self.child = Some(cmd.spawn().expect("spawn opsdeck node"));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> NodeClient<Channel> {
        client(&self.grpc)
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        let mut c = self.client();
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        c.status(req).await.ok().map(|r| r.into_inner())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
}

impl Drop for TestCluster {
    /// On a failing test, show the end of every node's log: the only evidence of what the
    /// cluster did, since the temp dir is removed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &mut self.nodes {
                let state = match n.child.as_mut().map(|c| c.try_wait()) {
                    None => "not running (stopped by the test)".to_string(),
                    Some(Ok(None)) => "still running".to_string(),
                    Some(Ok(Some(status))) => format!("EXITED on its own: {status}"),
                    Some(Err(e)) => format!("unknown: {e}"),
                };
                eprintln!("----- node {}: {state}", n.id);
                let text = n.log_text();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("----- node {} log (last 60 lines) -----", n.id);
                for l in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl TestCluster {
    /// Starts `n` nodes: node 1 bootstraps, the rest join as learners and become voters.
    pub async fn start(n: u64, extra: &[&str]) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<TestNode> = (1..=n)
            .map(|id| TestNode::new(dir.path(), id, extra))
            .collect();
        for node in &mut nodes {
            node.start(node.id == 1);
        }
        let cluster = TestCluster { dir, nodes };
        let first = &cluster.nodes[0];
        wait_for("node 1 to bootstrap", Duration::from_secs(15), || async {
            (first.status().await?.role == "leader").then_some(())
        })
        .await;
        for i in 1..cluster.nodes.len() {
            let node = &cluster.nodes[i];
            wait_for("node to answer", Duration::from_secs(15), || async {
                node.status().await
            })
            .await;
            let (id, grpc, http) = (node.id, node.grpc.clone(), node.http.clone());
            cluster.nodes[0]
                .client()
                .add_learner(AddLearnerRequest {
                    id,
                    grpc,
                    http,
                    blocking: true,
                })
                .await
                .expect("add learner");
        }
        if n > 1 {
            let voters: Vec<u64> = cluster.nodes.iter().map(|n| n.id).collect();
            cluster.nodes[0]
                .client()
                .change_membership(ChangeMembershipRequest {
                    voters,
                    retain: false,
                })
                .await
                .expect("promote voters");
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.grpc.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The leader as agreed by every running node that answers, with its term.
    pub async fn wait_leader(&self, timeout: Duration) -> (u64, u64) {
        wait_for("a leader", timeout, || async {
            let mut leader = None;
            for n in self.nodes.iter().filter(|n| n.running()) {
                let s = n.status().await?;
                if s.role == "leader" {
                    leader = Some((s.id, s.term));
                }
            }
            let (id, term) = leader?;
            for n in self.nodes.iter().filter(|n| n.running()) {
                if n.status().await?.leader_id != Some(id) {
                    return None;
                }
            }
            Some((id, term))
        })
        .await
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) {
        for n in self.nodes.iter().filter(|n| n.running()) {
            wait_for(
                &format!("node {} to apply {index}", n.id),
                timeout,
                || async {
                    let s = n.status().await?;
                    (s.applied.unwrap_or(0) >= index).then_some(())
                },
            )
            .await;
        }
    }

    /// Every key-value pair under `prefix` on one node, read locally.
    pub async fn scan_local(&self, id: u64, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let reply = self
            .node(id)
            .client()
            .scan(ScanRequest {
                prefix: prefix.into(),
                limit: 1_000_000,
                stale: true,
            })
            .await
            .expect("scan")
            .into_inner();
        reply
            .items
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    pub async fn voters(&self, id: u64) -> BTreeSet<u64> {
        let s = self.node(id).status().await.expect("status");
        s.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
    }
}

/// Runs the opsdeck binary to completion with a deadline.
pub fn run_cli(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsdeck");
    wait_output(child, Duration::from_secs(60))
}

/// Waits for a child's output, killing it at the deadline.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "opsdeck did not finish within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `writers × per_writer` keys `load/W/I` through the node at `addr` with that many
/// concurrent writers (group commit turns them into few Raft entries). Panics on an error.
pub async fn write_load(addr: &str, writers: usize, per_writer: usize) {
    let base = client(addr);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = base.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    c.put(PutRequest {
                        key: format!("load/{w}/{i}"),
                        value: vec![b'v'; 100],
                    })
                    .await
                    .unwrap_or_else(|e| panic!("write load: put load/{w}/{i}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
}
