//! Comparing the replicas' state digests (see `opsdeck_node::store::digest`): grouping
//! equal digests at one index into a verdict, for `opsdeck check` (which asks the nodes at
//! an index they all hold) and for observers that only have status frames (the console's
//! Overview, the `replica_divergence` alert), which compare whenever two frames carry a
//! digest at the same index — each frame has the newest one and a checkpoint at a multiple
//! of 256 entries, so nodes sampled at different moments under load still meet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opsdeck_node::pb::{DigestReply, DigestRequest, NodeStatus};
use serde::Serialize;

use super::NodeRpc;

/// A node's digest at the index compared.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeDigest {
    pub endpoint: String,
    pub node_id: u64,
    /// Hex.
    pub digest: String,
    /// The root of the node's Merkle tree over the data at the index (hex; empty where
    /// unknown: status frames carry none). Compared with the digest: the sums and the tree
    /// are kept apart, so either could be what went wrong.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub merkle_root: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Every node compared has the same digest at `index`.
    Agree { index: u64, digest: String },
    /// Not all do: the nodes outside the largest group of equal digests are `differing`
    /// (when no group is larger than the others, all of them).
    Diverged { index: u64, differing: Vec<u64> },
    /// Fewer than two nodes answered, or they hold no index in common.
    Inconclusive { reason: String },
}

/// How [`digest_at`] waits for one node.
#[derive(Debug, Clone, Copy)]
pub struct DigestWait {
    /// Give up on a node that is behind at this instant.
    pub deadline: Instant,
    /// The most one call may take (and never more than is left before the deadline).
    pub per_call: Duration,
    /// How long a node that cannot be reached is asked again (ZERO: not again): a node
    /// restarting answers soon, one that is down does not.
    pub unreachable_for: Duration,
}

/// Why a node gave no digest at the index asked for: `node_id` when it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAt {
    pub node_id: Option<u64>,
    pub why: String,
}

/// How often a node that is behind is asked again.
const BEHIND_POLL: Duration = Duration::from_millis(50);

/// Asks `c` (at `endpoint`) for its digest at `index` until it holds it: a node that has
/// not applied `index` yet is asked again until the deadline. Ok: a reply that holds it.
/// Err: why not, worded for people and naming the node (off, past it, still behind at the
/// deadline, unreachable).
pub async fn digest_at(
    endpoint: &str,
    mut c: NodeRpc,
    index: u64,
    wait: DigestWait,
) -> Result<DigestReply, NotAt> {
    let unreachable_until = Instant::now() + wait.unreachable_for;
    loop {
        let left = wait.deadline.saturating_duration_since(Instant::now());
        let per_call = wait.per_call.min(left).max(Duration::from_millis(200));
        let mut req = tonic::Request::new(DigestRequest { index: Some(index) });
        req.set_timeout(per_call);
        let unreachable = |why| {
            (
                NotAt { node_id: None, why },
                Instant::now() < unreachable_until,
            )
        };
        let (not_at, again) = match tokio::time::timeout(per_call, c.digest(req)).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                if r.held {
                    return Ok(r);
                }
                let why = if r.off {
                    "keeps no state digest (OPSDECK_DIGEST=off)".to_string()
                } else if r.newest < index {
                    format!("has applied only up to index {}", r.newest)
                } else {
                    format!(
                        "no longer holds index {index} (its ring holds {}..{}: it installed a snapshot past it, or applied more than its ring keeps since)",
                        r.oldest, r.newest
                    )
                };
                let not_at = NotAt {
                    node_id: Some(r.node_id),
                    why: format!("node {} {why}", r.node_id),
                };
                (not_at, !r.off && r.newest < index)
            }
            Ok(Err(s)) => unreachable(super::explain(endpoint, &s).await),
            Err(_) => unreachable(format!("no answer within {per_call:?}")),
        };
        if !again || Instant::now() >= wait.deadline {
            return Err(not_at);
        }
        tokio::time::sleep(BEHIND_POLL).await;
    }
}

pub fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first 12 hex digits, as people compare them.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Groups equal digests: the outcome of comparing `nodes` at `index`.
pub fn verdict(index: u64, nodes: &[NodeDigest]) -> Outcome {
    let mut groups: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for n in nodes {
        groups
            .entry((&n.digest, &n.merkle_root))
            .or_default()
            .push(n.node_id);
    }
    if groups.len() <= 1 {
        return Outcome::Agree {
            index,
            digest: nodes.first().map(|n| n.digest.clone()).unwrap_or_default(),
        };
    }
    let largest = groups.values().map(Vec::len).max().unwrap_or(0);
    let tie = groups.values().filter(|g| g.len() == largest).count() > 1;
    let mut differing: Vec<u64> = groups
        .values()
        .filter(|g| tie || g.len() < largest)
        .flatten()
        .copied()
        .collect();
    differing.sort_unstable();
    Outcome::Diverged { index, differing }
}

/// A comparison made from status frames: its outcome, and the newest frame time (node
/// clock, unix ms) of the frames compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameCheck {
    pub outcome: Outcome,
    pub nodes: usize,
    pub at_ms: i64,
}

/// Compares the digests `frames` carry at the highest index two or more of them share
/// (None: no two share one). `endpoint` names each frame's source.
pub fn from_frames<'a>(
    frames: impl IntoIterator<Item = (&'a str, &'a NodeStatus)>,
) -> Option<FrameCheck> {
    // index -> (node id -> (endpoint, digest, frame time))
    let mut at: BTreeMap<u64, BTreeMap<u64, (&str, String, i64)>> = BTreeMap::new();
    for (endpoint, s) in frames {
        for d in [&s.digest, &s.digest_checkpoint].into_iter().flatten() {
            at.entry(d.index)
                .or_default()
                .insert(s.id, (endpoint, hex_of(&d.digest), s.unix_ms));
        }
    }
    let (index, nodes) = at.into_iter().rev().find(|(_, n)| n.len() >= 2)?;
    let at_ms = nodes.values().map(|(_, _, t)| *t).max().unwrap_or(0);
    let compared: Vec<NodeDigest> = nodes
        .into_iter()
        .map(|(node_id, (endpoint, digest, _))| NodeDigest {
            endpoint: endpoint.to_string(),
            node_id,
            digest,
            merkle_root: String::new(),
        })
        .collect();
    Some(FrameCheck {
        outcome: verdict(index, &compared),
        nodes: compared.len(),
        at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsdeck_node::pb::StateDigest;

    fn n(id: u64, d: &str) -> NodeDigest {
        NodeDigest {
            endpoint: format!("e{id}"),
            node_id: id,
            digest: d.into(),
            merkle_root: String::new(),
        }
    }

    #[test]
    fn the_minority_is_named_and_a_tie_names_everyone() {
        assert_eq!(
            verdict(5, &[n(1, "aa"), n(2, "aa"), n(3, "aa")]),
            Outcome::Agree {
                index: 5,
                digest: "aa".into()
            }
        );
        assert_eq!(
            verdict(5, &[n(1, "aa"), n(2, "bb"), n(3, "aa")]),
            Outcome::Diverged {
                index: 5,
                differing: vec![2]
            }
        );
        // The same sums but another Merkle root is a divergence too.
        let mut odd = n(3, "aa");
        odd.merkle_root = "ff".into();
        assert_eq!(
            verdict(5, &[n(1, "aa"), n(2, "aa"), odd]),
            Outcome::Diverged {
                index: 5,
                differing: vec![3]
            }
        );
        assert_eq!(
            verdict(5, &[n(1, "aa"), n(2, "bb")]),
            Outcome::Diverged {
                index: 5,
                differing: vec![1, 2]
            }
        );
    }

    fn frame(id: u64, newest: (u64, u8), checkpoint: Option<(u64, u8)>) -> NodeStatus {
        let d = |(index, b): (u64, u8)| StateDigest {
            index,
            digest: vec![b; 32],
        };
        NodeStatus {
            id,
            unix_ms: 1000 * id as i64,
            digest: Some(d(newest)),
            digest_checkpoint: checkpoint.map(d),
            ..Default::default()
        }
    }

    #[test]
    fn frames_are_compared_at_the_highest_index_two_of_them_share() {
        // Node 1 is ahead; 2 and 3 meet at their newest index 600, all three at 512.
        let f = [
            frame(1, (700, 9), Some((512, 1))),
            frame(2, (600, 2), Some((512, 1))),
            frame(3, (600, 3), Some((512, 1))),
        ];
        let c = from_frames(f.iter().map(|s| ("e", s))).expect("a common index");
        assert_eq!(
            c.outcome,
            Outcome::Diverged {
                index: 600,
                differing: vec![2, 3]
            }
        );
        assert_eq!(c.at_ms, 3000);
        let agree = [
            frame(1, (700, 9), Some((512, 1))),
            frame(2, (600, 2), Some((512, 1))),
        ];
        let c = from_frames(agree.iter().map(|s| ("e", s))).expect("a common index");
        assert!(matches!(c.outcome, Outcome::Agree { index: 512, .. }));
        let apart = [frame(1, (700, 9), None), frame(2, (600, 2), None)];
        assert_eq!(from_frames(apart.iter().map(|s| ("e", s))), None);
    }
}
