//! The cluster under test, and the faults injected into it: kill -9 and restart from the
//! data dir, partitions and delays through the proxies, SIGSTOP/SIGCONT, a log compaction
//! and a membership change while a fault is active, and disk faults through the nodes'
//! failpoints (a build with `--features failpoints`; without it they are skipped, and the
//! run says so).

use std::time::{Duration, Instant};

use opsdeck_node::pb::{AddLearnerRequest, ChangeMembershipRequest, CompactRequest, NodeStatus};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::proxy::{source_ip, Id, Net};
use crate::support::{self, wait_for, TestCluster, TestNode};

/// Voters of the cluster; one more node is kept ready for membership changes.
const VOTERS: u64 = 3;
const SPARE: Id = VOTERS + 1;

/// Snapshots this often, and few log entries kept behind them, so a node that was down for a
/// second catches up by snapshot install, not by log.
const NODE_FLAGS: [&str; 6] = [
    "--snapshot-every",
    "64",
    "--keep-logs",
    "16",
    "--rate-limit",
    "off",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fault {
    KillLeader,
    KillFollower,
    /// The leader and a follower at once: no quorum until they are back.
    KillTwo,
    /// The leader cut off from both followers, both ways.
    IsolateLeader,
    /// One follower on one side, the leader and the other follower on the other.
    SplitFollower,
    /// The leader's messages to the followers are lost; theirs still reach it.
    OneWayFromLeader,
    /// Every link between nodes 20 ms slower each way.
    Slow,
    /// The leader stopped (SIGSTOP) past the election timeout, then continued.
    PauseLeader,
    /// A compaction (snapshot + purge on every node) while a follower is cut off.
    CompactDuringPartition,
    /// A node added (learner, then voter) and removed again while a follower is down.
    MembershipDuringKill,
    /// A follower's log fsync fails (EIO): its Raft stops; healed as a supervisor would, by
    /// restarting the process from its data dir.
    FsyncErrorFollower,
    /// The leader's log fsync fails (ENOSPC): its Raft stops, the others elect a leader;
    /// healed by restarting it.
    FsyncErrorLeader,
    /// Every log fsync (or, by the step's variant, every append) of the leader or a follower
    /// takes 2 s longer while the fault is held; healed by clearing the failpoint.
    StallDisk,
    /// Appending to the log fails (EIO) on the leader or a follower: its Raft stops; healed
    /// by restarting it.
    AppendError,
}

impl Fault {
    /// Injected through the nodes' failpoints (`/debug/failpoints`).
    pub fn needs_failpoints(self) -> bool {
        matches!(
            self,
            Fault::FsyncErrorFollower
                | Fault::FsyncErrorLeader
                | Fault::StallDisk
                | Fault::AppendError
        )
    }
}

/// How many of each fault a run injects.
pub struct Profile {
    pub name: &'static str,
    pub faults: Vec<(Fault, usize)>,
    pub clients: u64,
}

impl Profile {
    /// A shuffled schedule with every fault of the profile, how long each is held and
    /// which follower it picks: the same seed gives the same schedule.
    pub fn schedule(&self, seed: u64) -> Vec<Step> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut all: Vec<Fault> = self
            .faults
            .iter()
            .flat_map(|&(f, n)| std::iter::repeat_n(f, n))
            .collect();
        all.shuffle(&mut rng);
        all.into_iter()
            .map(|fault| Step {
                fault,
                hold_ms: rng.random_range(700..1600),
                pick: rng.random_range(0..VOTERS as usize),
                variant: rng.random_range(0..4),
            })
            .collect()
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Step {
    pub fault: Fault,
    pub hold_ms: u64,
    /// Which of the running followers the fault picks, modulo their number.
    pub pick: usize,
    /// For the disk faults: bit 0 picks the leader (0) or the follower (1) where either
    /// can be hit, bit 1 the fsync (0) or the append (1) for a stall.
    #[serde(default)]
    pub variant: u8,
}

/// One injected fault, as it happened (times in ns since the run started).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Injected {
    pub fault: Fault,
    pub nodes: Vec<Id>,
    pub started: u64,
    pub healed: u64,
    pub recovered: u64,
    /// Restarted nodes that had to be sent a snapshot: every running voter had purged its
    /// log past what that node held.
    pub snapshot_installs: u32,
    /// Not injected: the nodes of this build have no failpoints.
    #[serde(default)]
    pub skipped: bool,
}

pub struct Chaos {
    pub cluster: TestCluster,
    pub net: Net,
    /// Each node's advertised (proxied) gRPC address.
    advertised: Vec<(Id, String)>,
    start: Instant,
    /// Whether the nodes have failpoints (`/debug/failpoints` answers): the disk faults
    /// need them.
    pub failpoints: bool,
}

impl Chaos {
    /// Starts `VOTERS` nodes behind proxies and forms the cluster; the spare node is made
    /// ready but not started.
    pub async fn start(start: Instant) -> Chaos {
        let dir = tempfile::tempdir().expect("temp dir");
        let net = Net::new();
        let mut nodes = Vec::new();
        let mut advertised = Vec::new();
        for id in 1..=SPARE {
            let proxy = format!("127.0.0.1:{}", support::free_port());
            let ip = source_ip(id).to_string();
            let mut flags: Vec<&str> = NODE_FLAGS.to_vec();
            flags.extend(["--advertise-grpc", &proxy, "--source-ip", &ip]);
            let node = TestNode::new(dir.path(), id, &flags);
            let upstream = node.grpc.parse().expect("node address");
            net.proxy(id, proxy.parse().expect("proxy address"), upstream)
                .await;
            advertised.push((id, proxy));
            nodes.push(node);
        }
        let mut chaos = Chaos {
            cluster: TestCluster { dir, nodes },
            net,
            advertised,
            start,
            failpoints: false,
        };
        for id in 1..=VOTERS {
            chaos.cluster.node_mut(id).start(id == 1);
        }
        wait_for("node 1 to bootstrap", Duration::from_secs(15), || async {
            (chaos.cluster.node(1).status().await?.role == "leader").then_some(())
        })
        .await;
        // Nodes 2.. run but belong to no cluster yet, so there is no leader they agree on:
        // they are added through node 1, the leader of its own one-node cluster.
        for id in 2..=VOTERS {
            chaos.add_learner(id, Some(1)).await;
        }
        chaos.set_voters((1..=VOTERS).collect()).await;
        // Clearing a failpoint that is not set changes nothing; 404 means no such route.
        let (code, body) = chaos
            .cluster
            .node(1)
            .failpoint("log_store::flush", "off")
            .await;
        chaos.failpoints = match code {
            200 => true,
            404 => false,
            _ => panic!("asking node 1 for its failpoints answered {code}: {body}"),
        };
        chaos
    }

    /// The voters' listen addresses, for clients (the spare's too: it is down or a member).
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.nodes.iter().map(|n| n.grpc.clone()).collect()
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn advertised(&self, id: Id) -> String {
        let (_, addr) = self.advertised.iter().find(|(i, _)| *i == id).expect("id");
        addr.clone()
    }

    /// Runs `f` against the current leader until it succeeds (leaders change under faults).
    /// `leader`: the node to ask, if known for sure.
    async fn on_leader<T, F, Fut>(&self, what: &str, leader: Option<Id>, f: F) -> T
    where
        F: Fn(support::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        wait_for(what, Duration::from_secs(60), || async {
            let leader = match leader {
                Some(id) => id,
                None => self.leader().await,
            };
            match f(self.cluster.node(leader).client()).await {
                Ok(v) => Some(v),
                Err(e) => {
                    eprintln!("chaos: {what}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    None
                }
            }
        })
        .await
    }

    async fn add_learner(&self, id: Id, leader: Option<Id>) {
        let node = self.cluster.node(id);
        wait_for("node to answer", Duration::from_secs(15), || async {
            node.answers().await.then_some(())
        })
        .await;
        let (grpc, http) = (self.advertised(id), node.http.clone());
        self.on_leader("add learner", leader, |mut c| {
            let req = AddLearnerRequest {
                id,
                grpc: grpc.clone(),
                http: http.clone(),
                blocking: true,
            };
            async move { c.add_learner(req).await }
        })
        .await;
    }

    async fn set_voters(&self, voters: Vec<Id>) {
        self.on_leader("change voters", None, |mut c| {
            let req = ChangeMembershipRequest {
                voters: voters.clone(),
                retain: false,
                remove: Vec::new(),
            };
            async move { c.change_membership(req).await }
        })
        .await;
    }

    async fn remove_member(&self, id: Id) {
        self.on_leader("remove member", None, |mut c| {
            let req = ChangeMembershipRequest {
                voters: Vec::new(),
                retain: false,
                remove: vec![id],
            };
            async move { c.change_membership(req).await }
        })
        .await;
    }

    /// The leader the running voters agree on (the spare node, while it joins, has no say).
    pub async fn leader(&self) -> Id {
        let voter = |id| id <= VOTERS;
        let timeout = Duration::from_secs(30);
        self.cluster.wait_leader_among(voter, timeout).await.0
    }

    fn running_voters(&self) -> Vec<Id> {
        (1..=VOTERS)
            .filter(|&id| self.cluster.node(id).running())
            .collect()
    }

    /// Injects `fault`, holds it for `hold`, heals it and waits until the cluster has a
    /// leader every node agrees on and every node has caught up.
    pub async fn inject(&mut self, step: Step) -> Injected {
        let fault = step.fault;
        let leader = self.leader().await;
        let followers: Vec<Id> = self
            .running_voters()
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        let follower = followers[step.pick % followers.len()];
        let others = |x: Id| -> Vec<Id> { (1..=VOTERS).filter(|&i| i != x).collect() };
        let started = self.now();
        if fault.needs_failpoints() && !self.failpoints {
            return Injected {
                fault,
                nodes: Vec::new(),
                started,
                healed: started,
                recovered: started,
                snapshot_installs: 0,
                skipped: true,
            };
        }
        // The leader or the follower, as the step's variant says.
        let either = if step.variant & 1 == 0 {
            leader
        } else {
            follower
        };
        let mut killed: Vec<(Id, u64)> = Vec::new();
        // Nodes whose Raft a disk fault stopped, to restart at the heal; failpoints to
        // clear at the heal.
        let mut broken: Vec<Id> = Vec::new();
        let mut stalled: Vec<(Id, &str)> = Vec::new();
        let nodes = match fault {
            Fault::KillLeader => {
                killed.push(self.kill(leader).await);
                vec![leader]
            }
            Fault::KillFollower => {
                killed.push(self.kill(follower).await);
                vec![follower]
            }
            Fault::KillTwo => {
                killed.push(self.kill(leader).await);
                killed.push(self.kill(follower).await);
                vec![leader, follower]
            }
            Fault::IsolateLeader => {
                self.net.partition(&[leader], &others(leader));
                vec![leader]
            }
            Fault::SplitFollower => {
                self.net.partition(&[follower], &others(follower));
                vec![follower]
            }
            Fault::OneWayFromLeader => {
                for f in others(leader) {
                    self.net.cut(leader, f);
                }
                vec![leader]
            }
            Fault::Slow => {
                let all: Vec<Id> = (1..=SPARE).collect();
                self.net.slow(&all, Duration::from_millis(20));
                all
            }
            Fault::PauseLeader => {
                self.signal(leader, libc::SIGSTOP);
                vec![leader]
            }
            Fault::CompactDuringPartition => {
                self.net.partition(&[follower], &others(follower));
                self.compact_all().await;
                vec![follower]
            }
            Fault::MembershipDuringKill => {
                killed.push(self.kill(follower).await);
                self.add_and_remove_spare().await;
                vec![follower, SPARE]
            }
            Fault::FsyncErrorFollower => {
                self.break_disk(follower, "log_store::flush", "return(EIO)")
                    .await;
                broken.push(follower);
                vec![follower]
            }
            Fault::FsyncErrorLeader => {
                self.break_disk(leader, "log_store::flush", "return(ENOSPC)")
                    .await;
                broken.push(leader);
                vec![leader]
            }
            Fault::AppendError => {
                self.break_disk(either, "log_store::append", "return(EIO)")
                    .await;
                broken.push(either);
                vec![either]
            }
            Fault::StallDisk => {
                let name = if step.variant & 2 == 0 {
                    "log_store::flush"
                } else {
                    "log_store::append"
                };
                self.set_failpoint(either, name, "sleep(2000)").await;
                stalled.push((either, name));
                vec![either]
            }
        };
        tokio::time::sleep(Duration::from_millis(step.hold_ms)).await;
        self.net.heal();
        if fault == Fault::PauseLeader {
            self.signal(leader, libc::SIGCONT);
        }
        for &(id, name) in &stalled {
            self.set_failpoint(id, name, "off").await;
        }
        // A node whose Raft stopped is restarted the way a supervisor would: SIGTERM, and
        // started again from its data dir (its failpoints are gone with the process).
        for &id in &broken {
            let last = self.index(id, |s| s.last_log_index).await;
            let node = self.cluster.node_mut(id);
            if !node.terminate(Duration::from_secs(10)).await {
                panic!(
                    "node {id}, its Raft stopped by {fault:?}, did not exit within 10 s of SIGTERM"
                );
            }
            killed.push((id, last));
        }
        let healed = self.now();
        let purged_everywhere = self.purged_everywhere().await;
        let mut snapshot_installs = 0;
        for &(id, last_log) in &killed {
            if purged_everywhere > last_log {
                snapshot_installs += 1;
            }
            self.cluster.node_mut(id).start(false);
        }
        self.wait_recovered().await;
        Injected {
            fault,
            nodes,
            started,
            healed,
            recovered: self.now(),
            snapshot_installs,
            skipped: false,
        }
    }

    /// Sets a failpoint on node `id`; the harness's own mistake (a name or action the node
    /// refuses) fails the run.
    async fn set_failpoint(&self, id: Id, name: &str, actions: &str) {
        let (code, body) = self.cluster.node(id).failpoint(name, actions).await;
        assert_eq!(
            code, 200,
            "setting failpoint {name}={actions} on node {id}: {body}"
        );
    }

    /// Makes failpoint `name` of node `id` fail with `actions` and waits until the node's
    /// Raft has stopped on it (status role `shutdown`: openraft stops on a storage error).
    async fn break_disk(&self, id: Id, name: &str, actions: &str) {
        self.set_failpoint(id, name, actions).await;
        let node = self.cluster.node(id);
        let what = format!("node {id}'s Raft to stop after {name}={actions}");
        wait_for(&what, Duration::from_secs(20), || async {
            (node.status().await?.role == "shutdown").then_some(())
        })
        .await;
        eprintln!("chaos: node {id}: {name}={actions}: its Raft stopped");
    }

    /// kill -9; returns the node's last log index as last seen, to tell afterwards whether
    /// it can catch up by log or needs a snapshot.
    async fn kill(&mut self, id: Id) -> (Id, u64) {
        let last = self.index(id, |s| s.last_log_index).await;
        self.cluster.node_mut(id).kill9();
        (id, last)
    }

    /// One of a node's log indexes from its status (0 if it has none or does not answer).
    async fn index(&self, id: Id, which: fn(&NodeStatus) -> Option<u64>) -> u64 {
        let status = self.cluster.node(id).status().await;
        status.as_ref().and_then(which).unwrap_or(0)
    }

    fn signal(&self, id: Id, signal: i32) {
        let pid = self.cluster.node(id).pid().expect("running node");
        // SAFETY: a plain kill(2) on a child process this harness started.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// The lowest purged log index among the running voters: a node restarted with a log
    /// that ends before it can only catch up by snapshot, whoever leads. (No leader is
    /// needed to ask: after `KillTwo` there is none until the nodes are back.)
    async fn purged_everywhere(&self) -> u64 {
        let mut lowest = u64::MAX;
        for id in self.running_voters() {
            lowest = lowest.min(self.index(id, |s| s.purged_index).await);
        }
        lowest
    }

    async fn compact_all(&self) {
        // Best effort: with a follower cut off, its compaction may fail; the leader's and
        // the other follower's must not disturb anything.
        for id in self.running_voters() {
            let mut c = self.cluster.node(id).client();
            let mut req = tonic::Request::new(CompactRequest {});
            req.set_timeout(Duration::from_secs(5));
            if let Err(e) = c.compact(req).await {
                eprintln!("chaos: compact on node {id}: {e}");
            }
        }
    }

    /// The spare node joins as a learner, becomes a voter, and is removed again; its data
    /// is then wiped so the next change starts it fresh.
    async fn add_and_remove_spare(&mut self) {
        let voters = self.running_voters();
        self.cluster.node_mut(SPARE).start(false);
        self.add_learner(SPARE, None).await;
        let mut with_spare: Vec<Id> = (1..=VOTERS).collect();
        with_spare.push(SPARE);
        self.set_voters(with_spare).await;
        self.remove_member(SPARE).await;
        let spare = self.cluster.node_mut(SPARE);
        spare.kill9();
        let _ = std::fs::remove_dir_all(&spare.data);
        eprintln!("chaos: node {SPARE} added and removed while only {voters:?} ran");
    }

    /// A leader every running node agrees on, and every running node caught up with it.
    pub async fn wait_recovered(&self) {
        let leader = self.leader().await;
        let committed = self.index(leader, |s| s.committed).await;
        self.cluster
            .wait_applied(committed, Duration::from_secs(30))
            .await;
    }
}
