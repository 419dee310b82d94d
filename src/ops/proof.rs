//! Merkle proofs of a key's value (see `opsdeck_node::merkle`), behind `opsdeck get --proof`
//! and `opsdeck verify-proof`.
//!
//! Making one: one node answers the value with a proof to its data's root at its applied
//! index I (after a read barrier, so I covers every write acknowledged before the call);
//! then every node is asked for its root at I from its ring of recent digests (a node
//! behind is waited for, up to the timeout). The file records the proof, the voters, and
//! each node's answer.
//!
//! Checking one: the proof must hold on its own (the value hashes into its bucket, the
//! bucket and path lead to the root), and a quorum of the voters must have reported that
//! root at I. The reports in a file are what the nodes answered, not signed: offline they
//! show what the cluster said when the proof was made; `--live` asks the nodes again while
//! their rings still hold I.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use opsdeck_node::merkle::{Proof, ProofError};
use opsdeck_node::pb::{ProofRequest, StatusRequest};
use serde::{Deserialize, Serialize};

use crate::client::digests::{digest_at, hex_of, DigestWait};
use crate::client::ClusterClient;

/// A proof file's format name.
pub const FILE_FORMAT: &str = "opsdeck-proof-file/1";

/// One node's answer to "your root at index I?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootReport {
    pub endpoint: String,
    /// None when the node did not answer.
    pub node_id: Option<u64>,
    /// Hex; None with `error`.
    pub root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `get --proof` writes and `verify-proof` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofFile {
    pub format: String,
    pub proof: Proof,
    /// The voters' ids when the proof was made.
    pub voters: Vec<u64>,
    pub reports: Vec<RootReport>,
}

/// A proof that holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub key: String,
    pub present: bool,
    pub index: u64,
    pub root: String,
    /// Voters that reported the root at the index.
    pub agreeing: Vec<u64>,
    pub voters: usize,
}

/// Why a proof file does not prove its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Proof(#[from] ProofError),
    #[error("the proof's root {root} at index {index} was reported by {agreeing} of {voters} voters; a root the cluster agreed on needs {quorum} (a quorum): the proof was made against a root no quorum reported, or the reports were edited")]
    NoQuorum {
        root: String,
        index: u64,
        agreeing: usize,
        voters: usize,
        quorum: usize,
    },
    #[error("not a proof file: {0}")]
    Format(String),
}

/// Checks `file` (see the module doc) against the reports it carries, or against `live`
/// ones asked again.
pub fn verify(file: &ProofFile, live: Option<&[RootReport]>) -> Result<Verified, Refusal> {
    if file.format != FILE_FORMAT {
        return Err(Refusal::Format(format!(
            "format {:?}, expected {FILE_FORMAT:?}",
            file.format
        )));
    }
    file.proof.verify()?;
    let reports = live.unwrap_or(&file.reports);
    let root = file.proof.root.to_ascii_lowercase();
    let agreeing: BTreeSet<u64> = reports
        .iter()
        .filter(|r| r.root.as_deref().map(str::to_ascii_lowercase).as_deref() == Some(&root))
        .filter_map(|r| r.node_id)
        .filter(|id| file.voters.contains(id))
        .collect();
    let voters: BTreeSet<u64> = file.voters.iter().copied().collect();
    let quorum = voters.len() / 2 + 1;
    if voters.is_empty() || agreeing.len() < quorum {
        return Err(Refusal::NoQuorum {
            root: file.proof.root.clone(),
            index: file.proof.index,
            agreeing: agreeing.len(),
            voters: voters.len(),
            quorum,
        });
    }
    Ok(Verified {
        key: file.proof.key.clone(),
        present: file.proof.value.is_some(),
        index: file.proof.index,
        root: file.proof.root.clone(),
        agreeing: agreeing.into_iter().collect(),
        voters: voters.len(),
    })
}

/// Every node's root at `index` ([`digest_at`]); a node behind is asked again until `wait`
/// has passed, one that cannot be reached is not.
pub async fn roots_at(client: &ClusterClient, index: u64, wait: Duration) -> Vec<RootReport> {
    let wait = DigestWait {
        deadline: Instant::now() + wait,
        per_call: wait,
        unreachable_for: Duration::ZERO,
    };
    let asks = client
        .node_clients()
        .into_iter()
        .map(|(endpoint, c)| async move {
            let (node_id, root, error) = match digest_at(&endpoint, c, index, wait).await {
                Ok(r) if r.merkle_root.len() == 32 => {
                    (Some(r.node_id), Some(hex_of(&r.merkle_root)), None)
                }
                Ok(r) => (
                    Some(r.node_id),
                    None,
                    Some(format!(
                        "node {} answered without a Merkle root (an older build)",
                        r.node_id
                    )),
                ),
                Err(n) => (n.node_id, None, Some(n.why)),
            };
            RootReport {
                endpoint,
                node_id,
                root,
                error,
            }
        });
    futures_util::future::join_all(asks).await
}

/// Makes the proof file for `key` (see the module doc).
pub async fn make(
    client: &ClusterClient,
    key: &str,
    stale: bool,
    wait: Duration,
) -> color_eyre::Result<ProofFile> {
    let reply = client
        .call("proof", |mut c| {
            let key = key.to_string();
            async move { c.proof(ProofRequest { key, stale }).await }
        })
        .await?;
    let proof: Proof = serde_json::from_str(&reply.proof_json)
        .map_err(|e| color_eyre::eyre::eyre!("a node answered a proof that does not parse: {e}"))?;
    let status = client
        .call("members", |mut c| async move {
            c.status(StatusRequest {}).await
        })
        .await?;
    let voters = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    let reports = roots_at(client, proof.index, wait).await;
    Ok(ProofFile {
        format: FILE_FORMAT.to_string(),
        proof,
        voters,
        reports,
    })
}
