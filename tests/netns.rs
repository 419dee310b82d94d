//! Five nodes on five "hosts": each node in its own Linux network namespace with its own
//! address (a veth pair to a bridge in a switch namespace), TLS on, started from its
//! `node.toml` as the README's three-host walkthrough does (`opsdeck node --config`, then
//! `opsdeck add-node` from the bastion); the CLI and the test's clients in a separate
//! bastion namespace. Then, under a steady write load: kill -9 of the leader, the leader's
//! link down for 10 s, and a rolling restart by SIGTERM; 0 acknowledged writes may be
//! lost. The same shape runs on loopback (one network stack) for comparison; both sets of
//! figures are printed (BENCHMARKS.md records them).
//!
//! Needs root and iproute2 (`ip netns`); without them it says so and is skipped. The kernel
//! here has no netem, so the links add no latency.

mod support;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsdeck_node::pb::{ScanRequest, StatusRequest};
use support::*;

const NODES: u64 = 5;
const WRITERS: usize = 4;
/// How long the leader's link stays down.
const LINK_DOWN: Duration = Duration::from_secs(10);
/// How long writes/s is measured with nothing failing.
const STEADY: Duration = Duration::from_secs(5);

/// Runs `ip ARGS`; panics with its output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces and links of one run, removed on drop (removing a namespace removes its
/// veth ends, and with them the pairs).
struct Network {
    prefix: String,
    namespaces: Vec<String>,
}

impl Network {
    /// None, with the reason, where namespaces cannot be made (not root, no iproute2).
    fn create() -> Result<Network, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: network namespaces need CAP_SYS_ADMIN".into());
        }
        let prefix = format!("od{}", std::process::id() % 100_000);
        let probe = format!("{prefix}probe");
        match Command::new("ip").args(["netns", "add", &probe]).output() {
            Ok(o) if o.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            }
            Ok(o) => {
                return Err(format!(
                    "`ip netns add` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => return Err(format!("no `ip` command (iproute2): {e}")),
        }
        let mut net = Network {
            prefix: prefix.clone(),
            namespaces: Vec::new(),
        };
        let switch = net.add_namespace("sw");
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for id in 1..=NODES {
            net.add_host(&format!("n{id}"), &host_ip(id));
        }
        net.add_host("b", BASTION_IP);
        Ok(net)
    }

    fn add_namespace(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.prefix);
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        self.namespaces.push(ns.clone());
        ns
    }

    /// A host namespace whose `eth0` has `addr` and is cabled to the bridge.
    fn add_host(&mut self, name: &str, addr: &str) {
        let ns = self.add_namespace(name);
        let switch = self.namespace("sw");
        let (inner, outer) = (format!("{ns}a"), format!("{ns}b"));
        ip(&[
            "link", "add", &inner, "type", "veth", "peer", "name", &outer,
        ]);
        ip(&["link", "set", &inner, "netns", &ns]);
        ip(&["link", "set", &outer, "netns", &switch]);
        ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &switch, "link", "set", &outer, "master", "br0"]);
        ip(&["-n", &switch, "link", "set", &outer, "up"]);
    }

    fn namespace(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Takes node `id`'s link down or up, as a pulled cable would.
    fn link(&self, id: u64, up: bool) {
        let ns = self.namespace(&format!("n{id}"));
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    /// Runs `body` on a thread inside the bastion namespace: every socket it (and every
    /// thread or process it starts) opens is the bastion's.
    fn in_bastion<T: Send + 'static>(&self, body: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.namespace("b"));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the bastion namespace");
            // SAFETY: setns(2) moves only this thread; the fd is open for the call.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            body()
        })
        .join()
        .expect("bastion thread")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

const BASTION_IP: &str = "10.77.0.100";

fn host_ip(id: u64) -> String {
    format!("10.77.0.{id}")
}

/// A CA and a certificate per node for its address.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Pki {
            ca: rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap(),
        }
    }

    fn issue(&self, addr: &str, cert: &Path, key: &Path) {
        let pair = rcgen::KeyPair::generate().unwrap();
        let issued = rcgen::CertificateParams::new(vec![addr.to_string()])
            .unwrap()
            .signed_by(&pair, &self.ca)
            .unwrap();
        std::fs::write(cert, issued.pem()).unwrap();
        std::fs::write(key, pair.serialize_pem()).unwrap();
    }
}

/// One node: its `node.toml` (as `deploy/node.toml`), the namespace it runs in (None: the
/// test's own), its process.
struct Host {
    id: u64,
    grpc: String,
    http: String,
    dir: PathBuf,
    namespace: Option<String>,
    child: Option<Child>,
}

impl Host {
    fn config(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `opsdeck node --config node.toml`, the unit's ExecStart, in the host's namespace.
    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .unwrap();
        let config = self.config();
        let mut cmd = match &self.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("node")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start a node"));
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (`systemctl stop`); true if it exited by itself within 20 s.
    async fn terminate(&mut self) -> bool {
        // `ip netns exec` execs the node in place: the child is the node.
        match self.child.take() {
            Some(c) => terminate(c, Duration::from_secs(20)).await,
            None => true,
        }
    }

    async fn status(&self) -> Option<opsdeck_node::pb::NodeStatus> {
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        client(&self.grpc)
            .status(req)
            .await
            .ok()
            .map(|r| r.into_inner())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What one run measured.
struct Figures {
    writes_per_s: f64,
    kill_failover: Duration,
    kill_writes_resumed: Duration,
    link_failover: Option<Duration>,
    rolling_restart: Duration,
    acked: usize,
    retries: u64,
    longest_write: Duration,
}

struct Cluster {
    hosts: Vec<Host>,
    files: tempfile::TempDir,
}

impl Cluster {
    /// Writes every node's certificate and `node.toml`; host 1 bootstraps (`init = true`).
    fn prepare(pki: &Pki, files: tempfile::TempDir, netns: Option<&Network>) -> Cluster {
        let ca = files.path().join("ca.pem");
        std::fs::write(&ca, pki.ca.pem()).unwrap();
        let admin_seed = files.path().join("admin.seed");
        std::fs::write(&admin_seed, admin_key()).unwrap();
        let hosts = (1..=NODES)
            .map(|id| {
                let dir = files.path().join(format!("host{id}"));
                std::fs::create_dir_all(&dir).unwrap();
                let (addr, grpc, http) = match netns {
                    Some(_) => (host_ip(id), 7101, 7102),
                    None => ("127.0.0.1".to_string(), free_port(), free_port()),
                };
                let (cert, key) = (dir.join("node.pem"), dir.join("node.key"));
                pki.issue(&addr, &cert, &key);
                let host = Host {
                    id,
                    grpc: format!("{addr}:{grpc}"),
                    http: format!("{addr}:{http}"),
                    dir,
                    namespace: netns.map(|n| n.namespace(&format!("n{id}"))),
                    child: None,
                };
                let mut toml = format!(
                    "id = {id}\ngrpc = {:?}\nhttp = {:?}\nadvertise_grpc = {:?}\ndata = {:?}\n\
                     tls_cert = {:?}\ntls_key = {:?}\ntls_ca = {:?}\nstorage_reserve = \"0\"\n",
                    host.grpc,
                    host.http,
                    host.grpc,
                    host.data().display().to_string(),
                    cert.display().to_string(),
                    key.display().to_string(),
                    ca.display().to_string(),
                );
                if id == 1 {
                    // The test's clients present this key; init also writes it to
                    // DATA/admin.key, which the bastion's CLI then uses.
                    toml += &format!(
                        "init = true\nadmin_key_file = {:?}\n",
                        admin_seed.display().to_string()
                    );
                } else {
                    toml += &format!(
                        "cluster_secret_file = {:?}\n",
                        files.path().join("cluster.secret").display().to_string()
                    );
                }
                std::fs::write(host.config(), toml).unwrap();
                host
            })
            .collect();
        Cluster { hosts, files }
    }

    fn host(&mut self, id: u64) -> &mut Host {
        &mut self.hosts[(id - 1) as usize]
    }

    fn endpoints(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.grpc.clone()).collect()
    }

    /// The CLI as the bastion's operator runs it: CA and key files, node 1 as endpoint.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let ca = self.files.path().join("ca.pem");
        let key = self.files.path().join("admin.key");
        let out = Command::new(BIN)
            .args(args)
            .env("OPSDECK_TLS_CA", &ca)
            .env("OPSDECK_KEY_FILE", &key)
            .env_remove("OPSDECK_API_KEY")
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "opsdeck {}: {}",
            args.join(" "),
            stderr_of(&out)
        );
        out
    }

    /// The walkthrough: host 1 bootstraps; its secret and admin key are copied; the others
    /// start and are added from the bastion.
    async fn form(&mut self) {
        self.host(1).start();
        let data = self.host(1).data();
        wait_for("host 1's admin key", Duration::from_secs(20), || async {
            data.join("admin.key").exists().then_some(())
        })
        .await;
        std::fs::copy(
            data.join("cluster.secret"),
            self.files.path().join("cluster.secret"),
        )
        .unwrap();
        let key = self.files.path().join("admin.key");
        std::fs::copy(data.join("admin.key"), &key).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        for id in 2..=NODES {
            self.host(id).start();
        }
        let first = self.hosts[0].grpc.clone();
        for id in 2..=NODES {
            let (grpc, http) = (self.host(id).grpc.clone(), self.host(id).http.clone());
            // As an operator would: the node must be up before it is added (a slow start
            // under load would otherwise be refused as "does not answer").
            let addr: std::net::SocketAddr = grpc.parse().expect("host address");
            wait_for(
                &format!("host {id} to listen"),
                Duration::from_secs(20),
                || async move {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                        .ok()
                        .map(drop)
                },
            )
            .await;
            let id = id.to_string();
            self.cli(&[
                "add-node",
                "--id",
                &id,
                "--grpc",
                &grpc,
                "--http",
                &http,
                "--endpoints",
                &first,
            ]);
        }
        let all = self.endpoints().join(",");
        let status = self.cli(&["status", "--endpoints", &all]);
        let text = stdout_of(&status);
        for h in &self.hosts {
            assert!(text.contains(&h.grpc), "status names {}:\n{text}", h.grpc);
        }
    }

    /// The leader agreed by every running node not in `except`.
    async fn leader(&self, except: &[u64], within: Duration) -> (u64, u64) {
        wait_for("a leader", within, || async {
            let mut seen = None;
            for h in self
                .hosts
                .iter()
                .filter(|h| h.child.is_some() && !except.contains(&h.id))
            {
                let s = h.status().await?;
                let l = s.leader_id?;
                if except.contains(&l) || seen.is_some_and(|(id, _)| id != l) {
                    return None;
                }
                seen = Some((l, s.term));
            }
            seen
        })
        .await
    }

    /// Waits until node `id` has applied what the leader had committed when asked.
    async fn caught_up(&self, id: u64, within: Duration) {
        let (leader, _) = self.leader(&[], within).await;
        let target = self.hosts[(leader - 1) as usize]
            .status()
            .await
            .and_then(|s| s.committed)
            .unwrap_or(0);
        let host = &self.hosts[(id - 1) as usize];
        wait_for("the node to catch up", within, || async {
            (host.status().await?.applied? >= target).then_some(())
        })
        .await;
    }

    /// Every acknowledged write on every node, read locally once all have applied the same.
    async fn check_no_write_lost(&self, acked: &BTreeMap<String, String>) {
        for h in &self.hosts {
            self.caught_up(h.id, Duration::from_secs(30)).await;
            let reply = client(&h.grpc)
                .scan(ScanRequest {
                    prefix: "load/".into(),
                    limit: 1_000_000,
                    stale: true,
                })
                .await
                .expect("scan")
                .into_inner();
            let held: BTreeMap<String, Vec<u8>> = reply
                .items
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect();
            let lost: Vec<&String> = acked
                .iter()
                .filter(|(k, v)| held.get(*k).map(|h| h.as_slice()) != Some(v.as_bytes()))
                .map(|(k, _)| k)
                .collect();
            assert!(
                lost.is_empty(),
                "node {} lost {} acknowledged writes: {:?}",
                h.id,
                lost.len(),
                &lost[..lost.len().min(5)]
            );
        }
    }
}

/// Acknowledged writes so far.
fn acked(load: &SteadyLoad) -> usize {
    load.acked_keys().len()
}

/// The time from now until the load acknowledges one more write than it has.
async fn writes_resume(load: &SteadyLoad, since: Instant) -> Duration {
    let before = acked(load);
    wait_for("writes to resume", Duration::from_secs(30), || async {
        (acked(load) > before).then_some(())
    })
    .await;
    since.elapsed()
}

async fn scenario(mut cluster: Cluster, netns: Option<&Network>) -> Figures {
    cluster.form().await;
    cluster.leader(&[], Duration::from_secs(20)).await;
    let load = SteadyLoad::start(cluster.endpoints(), WRITERS);
    wait_for("the first writes", Duration::from_secs(20), || async {
        (acked(&load) >= 10).then_some(())
    })
    .await;

    // A measuring window, not a wait for a condition.
    let (before, started) = (acked(&load), Instant::now());
    tokio::time::sleep(STEADY).await;
    let writes_per_s = (acked(&load) - before) as f64 / started.elapsed().as_secs_f64();

    // kill -9 of the leader; then it restarts from its data dir.
    let (leader, _) = cluster.leader(&[], Duration::from_secs(10)).await;
    let killed = Instant::now();
    cluster.host(leader).kill9();
    let (next, _) = cluster.leader(&[leader], Duration::from_secs(20)).await;
    assert_ne!(next, leader);
    let kill_failover = killed.elapsed();
    let kill_writes_resumed = writes_resume(&load, killed).await;
    cluster.host(leader).start();
    cluster.caught_up(leader, Duration::from_secs(30)).await;

    // The leader's link down for LINK_DOWN: the others elect among themselves.
    let link_failover = match netns {
        Some(net) => {
            let (leader, _) = cluster.leader(&[], Duration::from_secs(10)).await;
            let down = Instant::now();
            net.link(leader, false);
            cluster.leader(&[leader], Duration::from_secs(20)).await;
            let failover = down.elapsed();
            // The fault's length, not a wait for a condition.
            tokio::time::sleep(LINK_DOWN.saturating_sub(down.elapsed())).await;
            net.link(leader, true);
            cluster.caught_up(leader, Duration::from_secs(30)).await;
            Some(failover)
        }
        None => None,
    };

    // Rolling restart by SIGTERM: followers first, the leader last.
    let rolling = Instant::now();
    let (leader, _) = cluster.leader(&[], Duration::from_secs(10)).await;
    let order: Vec<u64> = (1..=NODES)
        .filter(|id| *id != leader)
        .chain([leader])
        .collect();
    for id in order {
        assert!(
            cluster.host(id).terminate().await,
            "node {id} stops on SIGTERM"
        );
        cluster.host(id).start();
        cluster.caught_up(id, Duration::from_secs(30)).await;
    }
    let rolling_restart = rolling.elapsed();

    let done = load.stop().await;
    assert!(done.failed.is_empty(), "writes failed: {:?}", done.failed);
    cluster.check_no_write_lost(&done.acked).await;
    Figures {
        writes_per_s,
        kill_failover,
        kill_writes_resumed,
        link_failover,
        rolling_restart,
        acked: done.acked.len(),
        retries: done.retries,
        longest_write: done.longest_write,
    }
}

fn run(pki: &Pki, netns: Option<&Network>) -> Figures {
    let files = tempfile::tempdir().unwrap();
    let cluster = Cluster::prepare(pki, files, netns);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(cluster, netns))
}

#[test]
fn five_hosts_in_network_namespaces_lose_no_write_to_a_leader_kill_a_link_down_and_a_rolling_restart(
) {
    let net = match Network::create() {
        Ok(net) => std::sync::Arc::new(net),
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let pki = std::sync::Arc::new(Pki::new());
    let ca = tempfile::tempdir().unwrap();
    std::fs::write(ca.path().join("ca.pem"), pki.ca.pem()).unwrap();
    // Every client of this process speaks TLS with that CA (both runs use it).
    opsdeck_node::transport::tls::use_client_tls(&ca.path().join("ca.pem")).unwrap();

    let (p, n) = (pki.clone(), net.clone());
    let hosts = net.in_bastion(move || run(&p, Some(&n)));
    let loopback = run(&pki, None);
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!("{NODES} nodes, TLS, {WRITERS} writers          namespaces   loopback");
    println!(
        "writes/s (steady, {}s)                {:>10.0}  {:>9.0}",
        STEADY.as_secs(),
        hosts.writes_per_s,
        loopback.writes_per_s
    );
    for (what, a, b) in [
        (
            "kill -9 leader: new leader after",
            hosts.kill_failover,
            loopback.kill_failover,
        ),
        (
            "kill -9 leader: writes resumed after",
            hosts.kill_writes_resumed,
            loopback.kill_writes_resumed,
        ),
        (
            "rolling restart (5 nodes)",
            hosts.rolling_restart,
            loopback.rolling_restart,
        ),
        (
            "longest write (with retries)",
            hosts.longest_write,
            loopback.longest_write,
        ),
    ] {
        println!("{what:<38}{:>10}  {:>9}", ms(a), ms(b));
    }
    println!(
        "{:<38}{:>10}  {:>9}",
        "leader's link down: new leader after",
        hosts.link_failover.map(ms).unwrap_or_default(),
        "n/a"
    );
    println!(
        "{:<38}{:>10}  {:>9}",
        "writes acknowledged, none lost", hosts.acked, loopback.acked
    );
    println!(
        "{:<38}{:>10}  {:>9}",
        "attempts retried", hosts.retries, loopback.retries
    );
}
