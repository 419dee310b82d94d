//! The cross-node consistency check behind `opsdeck check`: the replicas' state digests
//! (see `opsdeck_node::store::digest`) compared at one applied index every answering node
//! holds in its ring of recent digests. Only reads: no node pauses, writes go on.
//!
//! 1. Ask every node for its newest digest and the indexes its ring holds.
//! 2. Take the highest index all of them hold: the lowest newest index (the slowest node's),
//!    provided every node still holds it (not below its oldest).
//! 3. Ask every other node for the digest at that index (a node whose newest it is already
//!    sent it in 1: on an idle cluster that is all of them, and a check is one call per node).
//!    A node that dropped it from its ring meanwhile (a fast node under load) sends us back
//!    to 1, up to [`ATTEMPTS`] times.

use std::time::Duration;

use opsdeck_node::pb::{DigestReply, DigestRequest};
use serde::Serialize;

use crate::client::digests::{hex_of, verdict, NodeDigest, Outcome};
use crate::client::ClusterClient;

/// Rounds of "find a common index, ask for it" before giving up.
pub const ATTEMPTS: usize = 5;

/// A node that could not take part, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Missing {
    pub endpoint: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub nodes: Vec<NodeDigest>,
    pub unreachable: Vec<Missing>,
    /// Rounds it took.
    pub attempts: usize,
}

/// The answers of `endpoints` to `Digest(index)`, at once; a dead node costs at most
/// `timeout`.
async fn ask(
    client: &ClusterClient,
    endpoints: &[String],
    index: Option<u64>,
    timeout: Duration,
) -> Vec<(String, Result<DigestReply, String>)> {
    let asks = client
        .node_clients()
        .into_iter()
        .filter(|(endpoint, _)| endpoints.contains(endpoint))
        .map(|(endpoint, mut c)| async move {
            let mut req = tonic::Request::new(DigestRequest { index });
            req.set_timeout(timeout);
            let result = match tokio::time::timeout(timeout, c.digest(req)).await {
                Ok(Ok(r)) => Ok(r.into_inner()),
                Ok(Err(s)) => Err(crate::client::explain(&endpoint, &s).await),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (endpoint, result)
        });
    futures_util::future::join_all(asks).await
}

/// The highest index every reply's ring holds, or why there is none.
pub fn common_index(replies: &[&DigestReply]) -> Result<u64, String> {
    let lowest_newest = replies.iter().map(|r| r.newest).min().unwrap_or(0);
    let highest_oldest = replies.iter().map(|r| r.oldest).max().unwrap_or(0);
    if lowest_newest < highest_oldest {
        let held: Vec<String> = replies
            .iter()
            .map(|r| format!("node {} holds {}..{}", r.node_id, r.oldest, r.newest))
            .collect();
        return Err(format!(
            "the nodes hold no applied index in common ({}): a node is too far behind; check again once it caught up",
            held.join(", ")
        ));
    }
    Ok(lowest_newest)
}

fn node_digest(endpoint: String, r: &DigestReply) -> NodeDigest {
    NodeDigest {
        endpoint,
        node_id: r.node_id,
        digest: hex_of(&r.digest),
        merkle_root: hex_of(&r.merkle_root),
    }
}

/// Runs the check (see the module doc).
pub async fn check(client: &ClusterClient, timeout: Duration) -> Report {
    let mut unreachable = Vec::new();
    let mut attempts = 0;
    let inconclusive = |reason: String, unreachable, attempts| Report {
        outcome: Outcome::Inconclusive { reason },
        nodes: Vec::new(),
        unreachable,
        attempts,
    };
    while attempts < ATTEMPTS {
        attempts += 1;
        unreachable.clear();
        let mut newest = Vec::new();
        for (endpoint, r) in ask(client, &client.endpoints(), None, timeout).await {
            match r {
                Ok(r) if r.off => unreachable.push(Missing {
                    endpoint,
                    reason: format!(
                        "node {} keeps no state digest (OPSDECK_DIGEST=off)",
                        r.node_id
                    ),
                }),
                Ok(r) => newest.push((endpoint, r)),
                Err(reason) => unreachable.push(Missing { endpoint, reason }),
            }
        }
        if newest.len() < 2 {
            return inconclusive(
                format!(
                    "{} node(s) answered; comparing needs at least 2",
                    newest.len()
                ),
                unreachable,
                attempts,
            );
        }
        let replies: Vec<&DigestReply> = newest.iter().map(|(_, r)| r).collect();
        let index = match common_index(&replies) {
            Ok(i) => i,
            Err(reason) => return inconclusive(reason, unreachable, attempts),
        };
        let mut nodes = Vec::new();
        let mut dropped = false;
        let mut behind = Vec::new();
        for (endpoint, r) in newest {
            if r.held && r.index == index {
                nodes.push(node_digest(endpoint, &r));
            } else {
                behind.push(endpoint);
            }
        }
        if !behind.is_empty() {
            for (endpoint, r) in ask(client, &behind, Some(index), timeout).await {
                match r {
                    Ok(r) if r.held => nodes.push(node_digest(endpoint, &r)),
                    Ok(_) => dropped = true,
                    Err(reason) => unreachable.push(Missing { endpoint, reason }),
                }
            }
        }
        if dropped {
            continue; // a node moved past `index` meanwhile: a newer common index
        }
        nodes.sort_by_key(|n| n.node_id);
        if nodes.len() < 2 {
            return inconclusive(
                format!(
                    "{} node(s) answered at index {index}; comparing needs at least 2",
                    nodes.len()
                ),
                unreachable,
                attempts,
            );
        }
        return Report {
            outcome: verdict(index, &nodes),
            nodes,
            unreachable,
            attempts,
        };
    }
    inconclusive(
        format!("no index stayed in every node's ring for {ATTEMPTS} rounds (the cluster applies faster than its ring of recent digests covers the check's round trips)"),
        unreachable,
        attempts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_index_is_the_slowest_nodes_newest_if_all_hold_it() {
        let r = |oldest, newest| DigestReply {
            held: true,
            oldest,
            newest,
            ..Default::default()
        };
        assert_eq!(common_index(&[&r(10, 100), &r(50, 90), &r(0, 95)]), Ok(90));
        assert!(common_index(&[&r(10, 20), &r(50, 90)]).is_err());
    }
}
