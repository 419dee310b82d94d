//! Test harness: real `opsdeck node` processes on free loopback ports, in temp dirs, always
//! killed and removed when the test ends (pass or fail). Waits poll a condition against a
//! deadline; nothing sleeps blindly.
#![allow(dead_code)]

pub mod dev;
pub mod follow;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opsdeck_node::pb::node_client::NodeClient;
use opsdeck_node::pb::*;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_opsdeck");

/// A port that was free a moment ago. Ports are handed out from a per-process base and
/// checked by binding, so parallel tests in one binary never get the same port.
pub fn free_port() -> u16 {
    reserve_ports(1)
}

/// The first of `count` consecutive ports that were all free a moment ago; none of them is
/// handed out again by this process. Ports stay in 10000-32767, below Linux's ephemeral
/// range (32768-60999), so an outgoing connection of the kernel's choosing cannot take
/// one between the check and the node's bind. Each test process starts at its own offset.
pub fn reserve_ports(count: u16) -> u16 {
    const FIRST: u16 = 10_000;
    const END: u16 = 32_768;
    static NEXT: OnceLock<AtomicU16> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU16::new(FIRST + (std::process::id() % 1100) as u16 * 20));
    loop {
        let base = next.fetch_add(count, Ordering::Relaxed);
        if base < FIRST || base.saturating_add(count) > END {
            next.store(FIRST, Ordering::Relaxed);
            continue;
        }
        if (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

/// Flips a bit of the first stored value under `prefix` in the stopped node's data dir
/// `data`, behind Raft's back, and drops its stored digest, so that its next start computes
/// the digest of what it now holds (as for a data dir from before digests): a replica that
/// no longer agrees with the others.
pub fn corrupt_one_value(data: &std::path::Path, prefix: &str) {
    let db = sled::open(data.join("db")).expect("open the stopped node's sled");
    let sm = db.open_tree("sm").expect("sm tree");
    let (k, v) = sm
        .scan_prefix(prefix)
        .next()
        .expect("a data key")
        .expect("read");
    let mut flipped = v.to_vec();
    flipped[0] ^= 0x01;
    sm.insert(k, flipped).expect("flip");
    assert!(
        sm.remove("m/digest").expect("remove").is_some(),
        "no stored digest"
    );
    db.flush().expect("flush");
    drop((sm, db));
    // The node started next must find the database unlocked.
    assert!(
        opsdeck_node::store::wait_until_unlocked(&data.join("db"), Duration::from_secs(10)),
        "the flipped database stayed locked"
    );
}

/// Polls `check` every 20 ms until it returns Some, or panics naming `what` at the deadline
/// (formatted only then, so it may read what a process said by that time).
pub async fn wait_for<T>(
    what: impl std::fmt::Display,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
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

/// The first admin key of every cluster this test process starts (nodes bootstrap with
/// `--admin-key-file`), random per process so no secret is written in the source.
pub fn admin_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("odk_{hex}")
    })
}

/// Sends `authorization: Bearer KEY` (or nothing).
#[derive(Clone)]
pub struct WithKey(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for WithKey {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Client = NodeClient<InterceptedService<Channel, WithKey>>;

/// A client presenting the test admin key.
pub fn client(addr: &str) -> Client {
    client_with_key(addr, Some(admin_key()))
}

/// A client presenting `key` (None: no key at all).
pub fn client_with_key(addr: &str, key: Option<&str>) -> Client {
    let channel = opsdeck_node::transport::lazy_channel(addr).expect("valid address");
    let header = key.map(|k| format!("Bearer {k}").parse().expect("ascii key"));
    NodeClient::with_interceptor(channel, WithKey(header))
        .max_decoding_message_size(256 * 1024 * 1024)
}

/// An HTTP client presenting the test admin key (`authorization: Bearer`).
pub fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", admin_key())
        .parse()
        .expect("ascii key");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// Files every node of a test dir shares: the cluster secret and the first admin key.
fn shared_secrets(dir: &Path) -> Vec<String> {
    let secret = dir.join("cluster.secret");
    if !secret.exists() {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&secret, hex).expect("write cluster secret");
    }
    let admin = dir.join("admin.seed");
    if !admin.exists() {
        std::fs::write(&admin, admin_key()).expect("write admin key");
    }
    vec![
        "--cluster-secret-file".into(),
        secret.display().to_string(),
        "--admin-key-file".into(),
        admin.display().to_string(),
    ]
}

pub struct TestNode {
    pub id: u64,
    pub grpc: String,
    pub http: String,
    pub data: PathBuf,
    log: PathBuf,
    /// The log's length when the node was last started: where that run's lines begin.
    log_at_start: usize,
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
            log_at_start: 0,
            extra: shared_secrets(dir)
                .into_iter()
                .chain(extra.iter().map(|s| s.to_string()))
                .collect(),
            env: Vec::new(),
            child: None,
        }
    }

    pub fn start(&mut self, init: bool) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        self.log_at_start = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
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

    /// The first start of a node on the ports `new` picked: starts it and waits until it
    /// serves. A port checked free can still be taken before the node binds it (by a
    /// process outside this test binary); a node that exits on "Address already in use"
    /// before it ever served is started again on fresh ports, which no one has been told
    /// of yet. Any other early exit panics with the node's log.
    pub async fn launch(&mut self, init: bool) {
        self.start(init);
        self.serving(init).await;
    }

    /// The wait of [`TestNode::launch`] for a node just [`start`](TestNode::start)ed, so
    /// that a cluster's nodes can all be started before any is waited for.
    pub async fn serving(&mut self, init: bool) {
        for _ in 0..5 {
            let what = format!("node {} to serve on {}", self.id, self.grpc);
            let exited = wait_for(what, Duration::from_secs(15), async || {
                if self.answers().await {
                    return Some(None);
                }
                let child = self.child.as_mut().expect("started");
                child.try_wait().ok().flatten().map(Some)
            })
            .await;
            let Some(status) = exited else {
                return;
            };
            self.child = None;
            let text = self.log_text();
            let this_run = text.get(self.log_at_start..).unwrap_or(&text);
            assert!(
                this_run.contains("Address already in use"),
                "node {} exited on start ({status}):\n{this_run}",
                self.id
            );
            eprintln!(
                "node {}: {} or {} was taken before it could bind; trying fresh ports",
                self.id, self.grpc, self.http
            );
            self.grpc = format!("127.0.0.1:{}", free_port());
            self.http = format!("127.0.0.1:{}", free_port());
            self.start(init);
        }
        panic!("node {} found no free ports in 5 tries", self.id);
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

    /// SIGTERM, as a supervisor restarting the node would send, and wait up to `timeout`
    /// for the process to exit; then kill -9. True if it exited on its own.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        match self.child.take() {
            Some(c) => terminate(c, timeout).await,
            None => true,
        }
    }

    /// Sets failpoint `name` of this node to `actions` (`off` clears it) over its HTTP
    /// route; the route's status and body. 404: the node was built without failpoints.
    pub async fn failpoint(&self, name: &str, actions: &str) -> (u16, String) {
        let url = format!("http://{}/debug/failpoints/{name}", self.http);
        match http_client()
            .put(url)
            .body(actions.to_string())
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> Client {
        client(&self.grpc)
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        let mut c = self.client();
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        c.status(req).await.ok().map(|r| r.into_inner())
    }

    /// The index the node has applied (None: it does not answer, or applied nothing).
    pub async fn applied(&self) -> Option<u64> {
        self.status().await.and_then(|s| s.applied)
    }

    /// Whether the node serves gRPC at all (one that has not joined a cluster yet knows no
    /// API keys, so it refuses every key: that still counts).
    pub async fn answers(&self) -> bool {
        let mut c = self.client();
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        match c.status(req).await {
            Ok(_) => true,
            Err(s) => s.code() == tonic::Code::Unauthenticated,
        }
    }

    /// `GET /digest` of this node (at `index`, or its newest), as JSON; panics on an
    /// error status, naming it.
    pub async fn digest(&self, index: Option<u64>) -> serde_json::Value {
        let at = index.map(|i| format!("?index={i}")).unwrap_or_default();
        let url = format!("http://{}/digest{at}", self.http);
        let reply = http_client()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = reply.status();
        let body = reply.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// SIGTERM to `child`, then up to `timeout` for it to exit; then kill -9. True if it
/// exited on its own.
pub async fn terminate(mut child: Child, timeout: Duration) -> bool {
    // SAFETY: a plain kill(2) on a child process this harness started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    false
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
        TestCluster::start_in(tempfile::tempdir().expect("temp dir"), n, extra).await
    }

    /// `start` in `dir`, where node N's data dir is `dir/nN` (which the test may have
    /// prepared, e.g. as a mount point).
    pub async fn start_in(dir: tempfile::TempDir, n: u64, extra: &[&str]) -> TestCluster {
        let mut nodes: Vec<TestNode> = (1..=n)
            .map(|id| TestNode::new(dir.path(), id, extra))
            .collect();
        for node in &mut nodes {
            node.start(node.id == 1);
        }
        for node in &mut nodes {
            node.serving(node.id == 1).await;
        }
        let cluster = TestCluster { dir, nodes };
        let first = &cluster.nodes[0];
        wait_for("node 1 to bootstrap", Duration::from_secs(15), || async {
            (first.status().await?.role == "leader").then_some(())
        })
        .await;
        for i in 1..cluster.nodes.len() {
            let node = &cluster.nodes[i];
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
                    remove: Vec::new(),
                })
                .await
                .expect("promote voters");
        }
        cluster
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }

    /// A member other than `leader` (the first in id order).
    pub fn a_follower(&self, leader: u64) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.id)
            .find(|&id| id != leader)
            .expect("a member other than the leader")
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
        self.wait_leader_among(|_| true, timeout).await
    }

    /// The leader as agreed by the running nodes that `member` picks, with its term.
    pub async fn wait_leader_among(
        &self,
        member: impl Fn(u64) -> bool,
        timeout: Duration,
    ) -> (u64, u64) {
        let nodes = || self.nodes.iter().filter(|n| n.running() && member(n.id));
        wait_for("a leader", timeout, || async {
            let mut leader = None;
            for n in nodes() {
                let s = n.status().await?;
                if s.role == "leader" {
                    leader = Some((s.id, s.term));
                }
            }
            let (id, term) = leader?;
            for n in nodes() {
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
/// Runs the CLI with the test admin key in `OPSDECK_API_KEY`.
pub fn run_cli(args: &[&str]) -> Output {
    run_cli_as(Some(admin_key()), args)
}

/// The CLI run off the async workers (it blocks until the process ends), with `key` in
/// `OPSDECK_API_KEY` (None: the test admin key).
pub async fn cli_as(key: Option<&str>, args: &[&str]) -> Output {
    let key = key.map(str::to_string);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli_as(Some(key.as_deref().unwrap_or(admin_key())), &args)
    })
    .await
    .expect("cli task")
}

/// Runs the CLI with `key` in `OPSDECK_API_KEY` (None: no key from the environment).
pub fn run_cli_as(key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("OPSDECK_API_KEY");
    if let Some(k) = key {
        cmd.env("OPSDECK_API_KEY", k);
    }
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsdeck");
    wait_output(child, Duration::from_secs(60))
}

/// Waits for a child's output, killing it at the deadline. Both pipes are read while it
/// runs (by two threads), so a child that prints more than a pipe holds does not stall.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    type Bytes = std::sync::mpsc::Receiver<Vec<u8>>;
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> Bytes {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // The pipes end with the child, unless something it started still holds them.
            let rest = |rx: Bytes| rx.recv_timeout(timeout).expect("the child's output to end");
            return Output {
                status,
                stdout: rest(stdout),
                stderr: rest(stderr),
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr
                .recv_timeout(Duration::from_secs(2))
                .unwrap_or_default();
            panic!(
                "opsdeck did not finish within {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&stderr)
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
    write_load_sized(addr, writers, per_writer, 100).await
}

/// `write_load` with values of `value_bytes`.
pub async fn write_load_sized(addr: &str, writers: usize, per_writer: usize, value_bytes: usize) {
    let base = client(addr);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = base.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    c.put(PutRequest {
                        key: format!("load/{w}/{i}"),
                        value: vec![b'v'; value_bytes],
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

/// Checks Prometheus text with `promtool check metrics` (Debian `prometheus`).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test: apt-get install prometheus (.ci/run does)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a `SteadyLoad`'s writers saw.
#[derive(Default)]
pub struct Load {
    pub acked: std::collections::BTreeMap<String, String>,
    /// Keys that could not be written within the retry budget.
    pub failed: Vec<String>,
    /// Longest time one key took from first attempt to acknowledgement.
    pub longest_write: Duration,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Longest time between two acknowledgements (of any writer): how long writes stopped.
    pub longest_gap: Duration,
    last_ack: Option<Instant>,
}

/// Writers that each write `load/wW-I` (value: the key) through the endpoints in turn,
/// retrying a key on the next endpoint until it is acknowledged or [`KEY_BUDGET`] has
/// passed, until stopped. A key that runs out of it is reported with every attempt it made.
pub struct SteadyLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    load: std::sync::Arc<std::sync::Mutex<Load>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long a writer retries one key. Each attempt may use its whole 3 s timeout (a node
/// that accepts but cannot answer yet: restarting, or cut off from the leader), so the
/// 10 s this was allowed only three such attempts: CI's run of stop 29 and one local run
/// in eleven of tests/netns each gave up on one key after 10 s, its last error a broken
/// pipe or a TLS handshake cut short (a node going down or coming up).
pub const KEY_BUDGET: Duration = Duration::from_secs(20);

impl SteadyLoad {
    pub fn start(endpoints: Vec<String>, writers: usize) -> SteadyLoad {
        SteadyLoad::start_as(endpoints, writers, None)
    }

    /// The writers present `key` (None: the test's admin key).
    pub fn start_as(endpoints: Vec<String>, writers: usize, key: Option<String>) -> SteadyLoad {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = std::sync::Arc::new(std::sync::Mutex::new(Load::default()));
        let tasks = (0..writers)
            .map(|w| {
                let (endpoints, stop, load) = (endpoints.clone(), stop.clone(), load.clone());
                let key_of_writer = key.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    let mut turn = w;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("load/w{w}-{i}");
                        let started = Instant::now();
                        // Every failed attempt on this key: when, where, why.
                        let mut tried: Vec<String> = Vec::new();
                        loop {
                            let addr = &endpoints[turn % endpoints.len()];
                            let mut req = tonic::Request::new(PutRequest {
                                key: key.clone(),
                                value: key.as_bytes().to_vec(),
                            });
                            req.set_timeout(Duration::from_secs(3));
                            turn += 1;
                            let mut c = match &key_of_writer {
                                Some(k) => client_with_key(addr, Some(k)),
                                None => client(addr),
                            };
                            match c.put(req).await {
                                Ok(_) => {
                                    let mut l = load.lock().expect("load");
                                    l.acked.insert(key.clone(), key.clone());
                                    l.longest_write = l.longest_write.max(started.elapsed());
                                    let now = Instant::now();
                                    if let Some(last) = l.last_ack {
                                        l.longest_gap =
                                            l.longest_gap.max(now.saturating_duration_since(last));
                                    }
                                    l.last_ack = Some(now);
                                    break;
                                }
                                Err(e) if started.elapsed() < KEY_BUDGET => {
                                    tried.push(format!(
                                        "{:?} {addr}: {}",
                                        started.elapsed(),
                                        e.message()
                                    ));
                                    load.lock().expect("load").retries += 1;
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                                Err(e) => {
                                    eprintln!(
                                        "write {key} failed for good: {e}; after {:?} and \
                                         these attempts:\n  {}",
                                        started.elapsed(),
                                        tried.join("\n  ")
                                    );
                                    load.lock().expect("load").failed.push(key.clone());
                                    break;
                                }
                            }
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        SteadyLoad { stop, load, tasks }
    }

    /// Keys acknowledged so far.
    pub fn acked_keys(&self) -> Vec<String> {
        self.load
            .lock()
            .expect("load")
            .acked
            .keys()
            .cloned()
            .collect()
    }

    /// Stops the writers and returns what they saw.
    pub async fn stop(self) -> Load {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer task");
        }
        std::mem::take(&mut *self.load.lock().expect("load"))
    }
}
