//! Membership actions: add a node (learner, catch-up, promotion), remove a node (quorum
//! check, leadership moved first), transfer leadership. The CLI verbs and the console
//! call these; each reports its steps through a progress callback and ends with an
//! outcome or an error saying which node, what failed and what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{
    AddLearnerRequest, ChangeMembershipRequest, NodeStatus, StatusRequest, TransferLeaderRequest,
};
use serde::Serialize;

use crate::client::{describe, ClusterClient, NodeRpc};

/// A learner this close to the leader's last log index is promoted (under a steady write
/// load the last few entries are always in flight).
pub const CAUGHT_UP_LAG: u64 = 64;
/// How long add-node waits for a learner to catch up unless told otherwise.
pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long add-node waits for a new learner to gain any entry before it removes it again
/// unless told otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long add-node waits: for the whole catch-up, and for any progress at all.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Past this the node stays a learner and add-node fails.
    pub catch_up: Duration,
    /// A learner this call added that gains no entry (nor snapshot bytes) for this long is
    /// removed again.
    pub stall: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            catch_up: DEFAULT_CATCH_UP_TIMEOUT,
            stall: DEFAULT_STALL_TIMEOUT,
        }
    }
}
/// How often catch-up is measured and reported.
pub const POLL: Duration = Duration::from_millis(250);
/// Deadline of one membership call (the node answers within its own 10 s).
const MEMBERSHIP_CALL: Duration = Duration::from_secs(15);
/// Deadline of a leadership transfer call (catch-up 3 s + lease + election 5 s).
const TRANSFER_CALL: Duration = Duration::from_secs(15);

/// A learner's catch-up, as measured on the leader.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CatchUp {
    pub id: u64,
    /// Highest log index the leader knows the learner holds (None: nothing yet).
    pub matched: Option<u64>,
    pub leader_last: u64,
    pub behind: u64,
    /// Entries the learner gained per second, recently.
    pub entries_per_sec: f64,
    /// At the current pace (None: not closing in yet).
    pub eta: Option<Duration>,
    /// A snapshot the leader is sending it: bytes acknowledged, of the snapshot's size.
    pub snapshot: Option<SnapshotSend>,
    /// It refused the snapshot's last chunk (no room to load it), and why, with the
    /// figures: the leader retries by itself once there is room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A snapshot on its way to a node that is catching up.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SnapshotSend {
    pub sent_bytes: u64,
    pub total_bytes: u64,
    /// Bytes per second, recently (0 until measured).
    pub bytes_per_sec: f64,
}

/// One step of an action, for a progress display.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Progress {
    Spawned {
        id: u64,
        pid: u32,
        grpc: String,
        http: String,
    },
    AddingLearner {
        id: u64,
    },
    CatchingUp(CatchUp),
    Promoting {
        id: u64,
        voters: Vec<u64>,
    },
    TransferringLeader {
        from: u64,
        to: u64,
    },
    LeaderTransferred(TransferOutcome),
    ChangingMembership {
        voters: Vec<u64>,
    },
    StoppingProcess {
        id: u64,
        pid: u32,
    },
    DeletingData {
        id: u64,
        path: String,
    },
    /// An operator command (the context's `restart`) runs for node `id`; `argv` as run.
    RunningCommand {
        id: u64,
        name: String,
        argv: String,
    },
    /// A rolling restart begins its `nth` node of `of`.
    RollingStep {
        /// "rolling restart" or "rolling defrag".
        what: &'static str,
        nth: usize,
        of: usize,
        id: u64,
    },
    /// A restarted node: applied of the index the cluster had committed when it came back.
    Rejoining {
        id: u64,
        applied: u64,
        target: u64,
    },
    /// A stopped node's database being rewritten offline (`compact --defrag`); its size.
    Defragmenting {
        id: u64,
        before_bytes: u64,
    },
    /// The rewritten database swapped in: its size before and after, and the copy's time.
    Defragmented {
        id: u64,
        before_bytes: u64,
        after_bytes: u64,
        took_ms: u64,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Spawned { id, pid, grpc, .. } => {
                write!(f, "started node {id} (pid {pid}) on {grpc}")
            }
            Progress::AddingLearner { id } => write!(f, "adding node {id} as a learner"),
            Progress::CatchingUp(c) => {
                write!(
                    f,
                    "node {} catching up: {} / {} ({} behind), {:.0} entries/s",
                    c.id,
                    c.matched
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "-".into()),
                    c.leader_last,
                    c.behind,
                    c.entries_per_sec
                )?;
                if let Some(s) = &c.snapshot {
                    write!(
                        f,
                        "; receiving a snapshot: {} of {}, {}/s",
                        crate::format::bytes(s.sent_bytes),
                        crate::format::bytes(s.total_bytes),
                        crate::format::bytes(s.bytes_per_sec as u64)
                    )?;
                }
                if let Some(why) = &c.refused {
                    write!(f, "; REFUSED: {why}")?;
                }
                match c.eta {
                    Some(eta) => write!(f, ", ETA {}s", eta.as_secs()),
                    None => Ok(()),
                }
            }
            Progress::Promoting { id, voters } => {
                write!(f, "promoting node {id} to voter (voters {voters:?})")
            }
            Progress::TransferringLeader { from, to } => {
                write!(f, "moving leadership from node {from} to node {to}")
            }
            Progress::LeaderTransferred(t) => write!(
                f,
                "node {} is leader (term {}) after {} ms; writes paused {} ms",
                t.to, t.term, t.took_ms, t.writes_paused_ms
            ),
            Progress::ChangingMembership { voters } => {
                write!(f, "changing membership: voters {voters:?}")
            }
            Progress::StoppingProcess { id, pid } => write!(f, "stopping node {id} (pid {pid})"),
            Progress::RunningCommand { id, name, argv } => {
                write!(f, "running {name} for node {id}: {argv}")
            }
            Progress::DeletingData { id, path } => write!(f, "deleting node {id}'s data ({path})"),
            Progress::RollingStep { what, nth, of, id } => {
                write!(f, "{what} {nth}/{of}: node {id}")
            }
            Progress::Rejoining {
                id,
                applied,
                target,
            } => write!(f, "node {id} rejoining: applied {applied} of {target}"),
            Progress::Defragmenting { id, before_bytes } => write!(
                f,
                "defragmenting node {id}'s database ({})",
                crate::format::bytes(*before_bytes)
            ),
            Progress::Defragmented {
                id,
                before_bytes,
                after_bytes,
                took_ms,
            } => write!(
                f,
                "node {id}'s database defragmented: {} → {} in {:.1} s",
                crate::format::bytes(*before_bytes),
                crate::format::bytes(*after_bytes),
                *took_ms as f64 / 1000.0
            ),
        }
    }
}

/// The progress callback every action takes.
pub type OnProgress<'a> = &'a mut (dyn FnMut(&Progress) + Send);

/// A node to add: its id and addresses (it must already be running).
#[derive(Debug, Clone, Serialize)]
pub struct NewNode {
    pub id: u64,
    pub grpc: String,
    pub http: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AddOutcome {
    pub id: u64,
    pub grpc: String,
    pub http: String,
    pub promoted: bool,
    pub voters: Vec<u64>,
    pub catch_up_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransferOutcome {
    pub from: u64,
    pub to: u64,
    pub term: u64,
    pub took_ms: u64,
    pub writes_paused_ms: u64,
    pub catch_up_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoveOutcome {
    pub id: u64,
    pub was_voter: bool,
    /// The leadership transfer done first, when the removed node led.
    pub transfer: Option<TransferOutcome>,
    pub voters: Vec<u64>,
    /// With --force: what the quorum check would have refused.
    pub overridden: Option<String>,
}

/// A member and whether it answered.
#[derive(Debug, Clone)]
pub struct MemberHealth {
    pub id: u64,
    pub grpc: String,
    pub voter: bool,
    /// Its status, or why there is none.
    pub status: std::result::Result<Option<NodeStatus>, String>,
}

impl MemberHealth {
    pub fn reachable(&self) -> bool {
        self.status.is_ok()
    }
}

fn voters_of(s: &NodeStatus) -> BTreeSet<u64> {
    s.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
}

fn members_of(s: &NodeStatus) -> Vec<u64> {
    s.members.iter().map(|m| m.id).collect()
}

/// Asks every member (as the leader lists them) for its status at once.
pub async fn member_health(client: &ClusterClient, leader: &NodeStatus) -> Vec<MemberHealth> {
    let asks = leader.members.iter().map(|m| async move {
        let status = if m.id == leader.id {
            Ok(Some(leader.clone()))
        } else {
            match client.connect_to(&m.grpc) {
                Err(e) => Err(e.to_string()),
                Ok(mut c) => {
                    let mut req = tonic::Request::new(StatusRequest {});
                    req.set_timeout(Duration::from_millis(1500));
                    match tokio::time::timeout(Duration::from_secs(2), c.status(req)).await {
                        Ok(Ok(r)) => Ok(Some(r.into_inner())),
                        // Up, but does not know our key yet: reachable all the same.
                        Ok(Err(s))
                            if matches!(
                                s.code(),
                                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                            ) =>
                        {
                            Ok(None)
                        }
                        Ok(Err(s)) => Err(describe(&s)),
                        Err(_) => Err("no answer within 2s".into()),
                    }
                }
            }
        };
        MemberHealth {
            id: m.id,
            grpc: m.grpc.clone(),
            voter: m.voter,
            status,
        }
    });
    futures_util::future::join_all(asks).await
}

/// Refuses removing voter `id` when the voters left that answer would not be a majority of
/// the voters left. Pure, so the console can run it on what it already knows.
pub fn quorum_after_removal(
    id: u64,
    voters: &BTreeSet<u64>,
    health: &[MemberHealth],
) -> std::result::Result<(), String> {
    if !voters.contains(&id) {
        return Ok(());
    }
    let rest: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != id).collect();
    if rest.is_empty() {
        return Err(format!(
            "node {id} is the only voter; a cluster cannot remove its last voter"
        ));
    }
    let needed = rest.len() / 2 + 1;
    let up: Vec<u64> = rest
        .iter()
        .copied()
        .filter(|v| health.iter().any(|h| h.id == *v && h.reachable()))
        .collect();
    if up.len() >= needed {
        return Ok(());
    }
    let down: Vec<String> = rest
        .iter()
        .filter(|v| !up.contains(v))
        .map(|v| match health.iter().find(|h| h.id == *v) {
            Some(h) => format!(
                "node {v} at {} is down ({})",
                h.grpc,
                h.status.as_ref().err().map(String::as_str).unwrap_or("?")
            ),
            None => format!("node {v} is down (no address known)"),
        })
        .collect();
    Err(format!(
        "removing voter {id} would leave voters {rest:?}, which need {needed} reachable to \
         commit anything, and only {} answer ({up:?}): {}. Bring the down node(s) back, or \
         remove them first; --force removes anyway (the change then waits until enough \
         voters are back)",
        up.len(),
        down.join("; ")
    ))
}

/// Calls the leader; a refusal naming another leader (it changed meanwhile) is tried
/// once more on the new leader.
async fn leader_call<T, F, Fut>(client: &ClusterClient, what: &str, call: F) -> Result<T>
where
    F: Fn(NodeRpc, NodeStatus) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = String::new();
    for _ in 0..3 {
        let (rpc, leader) = client.leader().await?;
        let id = leader.id;
        match call(rpc, leader).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s)
                if s.message().contains("is not the leader")
                    || s.message().contains("go to the leader")
                    || s.code() == tonic::Code::Unavailable =>
            {
                last = format!("leader node {id}: {}", describe(&s));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => return Err(eyre!("{what} (leader node {id}): {}", describe(&s))),
        }
    }
    Err(eyre!("{what}: {last}"))
}

/// Hands leadership to voter `to`.
pub async fn transfer_leader(
    client: &ClusterClient,
    to: u64,
    progress: OnProgress<'_>,
) -> Result<TransferOutcome> {
    let (_, leader) = client.leader().await?;
    if leader.id == to {
        return Err(eyre!("node {to} is already the leader; nothing to do"));
    }
    if !members_of(&leader).contains(&to) {
        return Err(eyre!(
            "node {to} is not a member of the cluster (members: {:?})",
            members_of(&leader)
        ));
    }
    progress(&Progress::TransferringLeader {
        from: leader.id,
        to,
    });
    let r = leader_call(
        client,
        &format!("transfer leadership to node {to}"),
        |mut rpc, _| {
            let mut req = tonic::Request::new(TransferLeaderRequest { to });
            req.set_timeout(TRANSFER_CALL);
            async move { rpc.transfer_leader(req).await }
        },
    )
    .await?;
    let outcome = TransferOutcome {
        from: r.from,
        to: r.to,
        term: r.term,
        took_ms: r.took_ms,
        writes_paused_ms: r.writes_paused_ms,
        catch_up_ms: r.catch_up_ms,
    };
    progress(&Progress::LeaderTransferred(outcome.clone()));
    Ok(outcome)
}

/// Removes a learner that gained nothing for `stall` and says why it was added and removed.
async fn remove_stalled(
    client: &ClusterClient,
    node: &NewNode,
    stall: Duration,
    c: &CatchUp,
) -> color_eyre::Report {
    let removed = leader_call(
        client,
        &format!("remove the stalled learner {}", node.id),
        |mut rpc, _| {
            let mut req = tonic::Request::new(ChangeMembershipRequest {
                voters: Vec::new(),
                retain: false,
                remove: vec![node.id],
            });
            req.set_timeout(MEMBERSHIP_CALL);
            async move { rpc.change_membership(req).await }
        },
    )
    .await;
    let what = match removed {
        Ok(_) => "it was removed from the cluster again".to_string(),
        Err(e) => format!(
            "removing it again failed too ({e:#}): run `opsdeck remove-node --id {}`",
            node.id
        ),
    };
    eyre!(
        "node {} at {} gained no log entries in {stall:?} (it holds index {} of the leader's \
         {}): the leader cannot replicate to it; {what}. Check that it runs with this \
         cluster's secret (--cluster-secret-file) and an empty data dir, and the leader's \
         log, then add it again",
        node.id,
        node.grpc,
        c.matched
            .map(|m| m.to_string())
            .unwrap_or_else(|| "none".into()),
        c.leader_last
    )
}

/// Measures catch-up from successive looks at the leader.
struct Pace {
    samples: Vec<(Instant, u64, u64, u64)>,
}

impl Pace {
    fn look(
        &mut self,
        id: u64,
        matched: Option<u64>,
        last: u64,
        snapshot: Option<(u64, u64)>,
    ) -> CatchUp {
        let now = Instant::now();
        let m = matched.unwrap_or(0);
        let sent = snapshot.map(|(sent, _)| sent).unwrap_or(0);
        self.samples.push((now, m, last, sent));
        // Pace over the last ~5 s.
        self.samples
            .retain(|(t, ..)| now.duration_since(*t) <= Duration::from_secs(5));
        let (t0, m0, l0, s0) = self.samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        let (rate, closing) = if secs > 0.2 {
            (
                m.saturating_sub(m0) as f64 / secs,
                (m as f64 - m0 as f64 - (last as f64 - l0 as f64)) / secs,
            )
        } else {
            (0.0, 0.0)
        };
        let behind = last.saturating_sub(m);
        let snapshot = snapshot.map(|(sent_bytes, total_bytes)| {
            let bytes_per_sec = if secs > 0.2 && sent >= s0 {
                (sent - s0) as f64 / secs
            } else {
                0.0
            };
            SnapshotSend {
                sent_bytes,
                total_bytes,
                bytes_per_sec,
            }
        });
        // While a snapshot is on its way, entries do not move: its bytes tell the pace.
        let eta = match snapshot {
            Some(s) if s.bytes_per_sec > 0.0 => Some(Duration::from_secs_f64(
                s.total_bytes.saturating_sub(s.sent_bytes) as f64 / s.bytes_per_sec,
            )),
            Some(_) => None,
            None => (closing > 0.0).then(|| Duration::from_secs_f64(behind as f64 / closing)),
        };
        CatchUp {
            id,
            matched,
            leader_last: last,
            behind,
            entries_per_sec: rate,
            eta,
            snapshot,
            refused: None,
        }
    }
}

/// Adds `node` as a learner, reports its catch-up, and (unless `!promote`) makes it a
/// voter once it is within [`CAUGHT_UP_LAG`] entries of the leader. Gives up after
/// `deadlines.catch_up`, leaving it a learner; a learner this call added that gains nothing
/// for `deadlines.stall` is removed again (the leader cannot replicate to it at all).
pub async fn add_node(
    client: &ClusterClient,
    node: &NewNode,
    promote: bool,
    deadlines: Deadlines,
    progress: OnProgress<'_>,
) -> Result<AddOutcome> {
    let catch_up_timeout = deadlines.catch_up;
    if node.id == 0 {
        return Err(eyre!("node ids start at 1"));
    }
    let (_, leader) = client.leader().await?;
    let already_member = leader.members.iter().any(|m| m.id == node.id);
    if let Some(m) = leader.members.iter().find(|m| m.id == node.id) {
        if m.grpc != node.grpc {
            return Err(eyre!(
                "node {} is already a member at {}, not {}; pick another id \
                 (members: {:?})",
                node.id,
                m.grpc,
                node.grpc,
                members_of(&leader)
            ));
        }
        if m.voter {
            return Err(eyre!("node {} is already a voter; nothing to do", node.id));
        }
    }
    // A node that does not answer would never catch up: say so now, not at the timeout.
    // One that has not joined yet knows no API keys and refuses ours: that is an answer.
    let mut rpc = client.connect_to(&node.grpc)?;
    let mut req = tonic::Request::new(StatusRequest {});
    req.set_timeout(Duration::from_secs(2));
    match tokio::time::timeout(Duration::from_secs(3), rpc.status(req)).await {
        Ok(Ok(_)) => {}
        Ok(Err(s))
            if matches!(
                s.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) => {}
        Ok(Err(s)) => {
            return Err(eyre!(
                "node {} at {} does not answer ({}): start it first (`opsdeck node --id {} \
                 --grpc {} --http {} --data DIR --cluster-secret-file SECRET`)",
                node.id,
                node.grpc,
                describe(&s),
                node.id,
                node.grpc,
                node.http
            ))
        }
        Err(_) => {
            return Err(eyre!(
                "node {} at {} does not answer within 3 s: start it first, or check the address",
                node.id,
                node.grpc
            ))
        }
    }
    progress(&Progress::AddingLearner { id: node.id });
    leader_call(
        client,
        &format!("add node {} as a learner", node.id),
        |mut rpc, _| {
            let mut req = tonic::Request::new(AddLearnerRequest {
                id: node.id,
                grpc: node.grpc.clone(),
                http: node.http.clone(),
                blocking: false,
            });
            req.set_timeout(MEMBERSHIP_CALL);
            async move { rpc.add_learner(req).await }
        },
    )
    .await?;

    let started = Instant::now();
    let mut pace = Pace {
        samples: Vec::new(),
    };
    let mut leader_rpc: Option<NodeRpc> = None;
    // The learner's highest matched index and when it last gained: an index, or bytes of
    // a snapshot being sent (its index moves only once installed, which at many GiB is
    // longer than the stall timeout).
    let mut gained: (Option<u64>, Instant) = (None, started);
    let mut sent_before: Option<u64> = None;
    loop {
        let status = match &mut leader_rpc {
            Some(rpc) => {
                let mut req = tonic::Request::new(StatusRequest {});
                req.set_timeout(Duration::from_secs(2));
                match rpc.status(req).await {
                    Ok(s) if s.get_ref().role == "leader" => Some(s.into_inner()),
                    _ => None,
                }
            }
            None => None,
        };
        let status = match status {
            Some(s) => s,
            None => {
                let (rpc, s) = client.leader().await?;
                leader_rpc = Some(rpc);
                s
            }
        };
        let last = status.last_log_index.unwrap_or(0);
        let follower = status.followers.iter().find(|f| f.id == node.id);
        let matched = follower.and_then(|f| f.matched);
        let snapshot = follower.and_then(|f| f.snapshot_sent_bytes.zip(f.snapshot_bytes));
        let mut c = pace.look(node.id, matched, last, snapshot);
        c.refused = follower
            .map(|f| f.snapshot_refused.clone())
            .filter(|why| !why.is_empty());
        let caught_up = matched.is_some() && c.behind <= CAUGHT_UP_LAG;
        progress(&Progress::CatchingUp(c.clone()));
        if caught_up {
            break;
        }
        let sent = snapshot.map(|(sent, _)| sent);
        if matched > gained.0 {
            gained = (matched, Instant::now());
        } else if sent > sent_before {
            gained.1 = Instant::now();
        }
        sent_before = sent;
        if !already_member && gained.1.elapsed() > deadlines.stall {
            return Err(remove_stalled(client, node, deadlines.stall, &c).await);
        }
        if started.elapsed() > catch_up_timeout {
            return Err(eyre!(
                "node {} at {} did not catch up within {catch_up_timeout:?}: it holds log \
                 index {} of the leader's {last} ({} behind, {:.0} entries/s). It stays a \
                 learner; check its log, then run add-node again with the same id and \
                 addresses, or remove-node --id {}",
                node.id,
                node.grpc,
                matched
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "none".into()),
                c.behind,
                c.entries_per_sec,
                node.id
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let catch_up_ms = started.elapsed().as_millis() as u64;
    if !promote {
        let (_, leader) = client.leader().await?;
        return Ok(AddOutcome {
            id: node.id,
            grpc: node.grpc.clone(),
            http: node.http.clone(),
            promoted: false,
            voters: voters_of(&leader).into_iter().collect(),
            catch_up_ms,
        });
    }
    let (_, leader) = client.leader().await?;
    let mut planned = voters_of(&leader);
    planned.insert(node.id);
    progress(&Progress::Promoting {
        id: node.id,
        voters: planned.into_iter().collect(),
    });
    let reply = leader_call(
        client,
        &format!("promote node {} to voter", node.id),
        |mut rpc, leader: NodeStatus| {
            let mut voters = voters_of(&leader);
            voters.insert(node.id);
            let mut req = tonic::Request::new(ChangeMembershipRequest {
                voters: voters.into_iter().collect(),
                retain: false,
                remove: Vec::new(),
            });
            req.set_timeout(MEMBERSHIP_CALL);
            async move { rpc.change_membership(req).await }
        },
    )
    .await?;
    let voters: Vec<u64> = reply
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    if !voters.contains(&node.id) {
        return Err(eyre!(
            "promoting node {} answered, yet the voters are {voters:?}; check `opsdeck members`",
            node.id
        ));
    }
    Ok(AddOutcome {
        id: node.id,
        grpc: node.grpc.clone(),
        http: node.http.clone(),
        promoted: true,
        voters,
        catch_up_ms,
    })
}

/// Removes member `id`: refuses losing quorum (unless `force`), moves leadership away
/// first when `id` leads, then drops it from the membership.
pub async fn remove_node(
    client: &ClusterClient,
    id: u64,
    force: bool,
    progress: OnProgress<'_>,
) -> Result<RemoveOutcome> {
    let (_, leader) = client.leader().await?;
    let Some(member) = leader.members.iter().find(|m| m.id == id).cloned() else {
        return Err(eyre!(
            "node {id} is not a member of the cluster (members: {:?}); nothing to remove",
            members_of(&leader)
        ));
    };
    let voters = voters_of(&leader);
    let health = member_health(client, &leader).await;
    let mut overridden = None;
    if let Err(why) = quorum_after_removal(id, &voters, &health) {
        if !force {
            return Err(eyre!("refusing to remove node {id}: {why}"));
        }
        overridden = Some(why);
    }
    let mut transfer = None;
    if leader.id == id {
        // The most caught-up voter that answers takes over.
        let matched: BTreeMap<u64, u64> = leader
            .followers
            .iter()
            .map(|f| (f.id, f.matched.unwrap_or(0)))
            .collect();
        let to = health
            .iter()
            .filter(|h| h.voter && h.id != id && h.reachable())
            .max_by_key(|h| {
                (
                    matched.get(&h.id).copied().unwrap_or(0),
                    std::cmp::Reverse(h.id),
                )
            })
            .map(|h| h.id)
            .ok_or_else(|| {
                eyre!(
                    "node {id} leads and no other voter answers to take over; \
                     bring another voter back first"
                )
            })?;
        transfer = Some(
            transfer_leader(client, to, progress)
                .await
                .map_err(|e| eyre!("node {id} leads, and moving leadership away failed: {e}"))?,
        );
    }
    let rest: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
    progress(&Progress::ChangingMembership {
        voters: rest.clone(),
    });
    let reply = leader_call(client, &format!("remove node {id}"), |mut rpc, _| {
        let mut req = tonic::Request::new(ChangeMembershipRequest {
            voters: Vec::new(),
            retain: false,
            remove: vec![id],
        });
        req.set_timeout(MEMBERSHIP_CALL);
        async move { rpc.change_membership(req).await }
    })
    .await?;
    if reply.members.iter().any(|m| m.id == id) {
        return Err(eyre!(
            "removing node {id} answered, yet it is still listed; check `opsdeck members`"
        ));
    }
    Ok(RemoveOutcome {
        id,
        was_voter: member.voter,
        transfer,
        voters: reply
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.id)
            .collect(),
        overridden,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(id: u64, up: bool) -> MemberHealth {
        MemberHealth {
            id,
            grpc: format!("127.0.0.1:{}", 7100 + id),
            voter: true,
            status: if up {
                Ok(None)
            } else {
                Err("connection refused".into())
            },
        }
    }

    #[test]
    fn catch_up_by_snapshot_shows_bytes_and_an_eta_from_them() {
        let mut pace = Pace {
            samples: Vec::new(),
        };
        let t0 = Instant::now() - Duration::from_secs(2);
        pace.samples.push((t0, 0, 500, 0));
        let c = pace.look(4, None, 500, Some((40 << 20, 100 << 20)));
        let s = c.snapshot.expect("a snapshot on its way");
        assert!(
            (s.bytes_per_sec - 20.0 * 1024.0 * 1024.0).abs() < 2.0 * 1024.0 * 1024.0,
            "{s:?}"
        );
        let eta = c.eta.expect("an ETA from the bytes").as_secs_f64();
        assert!((2.5..3.5).contains(&eta), "{eta}");
        let line = Progress::CatchingUp(c).to_string();
        assert!(
            line.contains("receiving a snapshot: 40.0 MiB of 100 MiB"),
            "{line}"
        );
    }

    #[test]
    fn quorum_check_names_the_down_nodes() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        let all_up = [health(1, true), health(2, true), health(3, true)];
        assert!(quorum_after_removal(2, &voters, &all_up).is_ok());
        let three_down = [health(1, true), health(2, true), health(3, false)];
        let err = quorum_after_removal(2, &voters, &three_down).unwrap_err();
        assert!(err.contains("node 3 at 127.0.0.1:7103 is down"), "{err}");
        assert!(err.contains("need 2"), "{err}");
        // Removing the down node itself is fine.
        assert!(quorum_after_removal(3, &voters, &three_down).is_ok());
        // Learners are not voters: nothing to check.
        assert!(quorum_after_removal(9, &voters, &three_down).is_ok());
        let only: BTreeSet<u64> = [1].into();
        assert!(quorum_after_removal(1, &only, &[health(1, true)]).is_err());
    }
}
