//! Backup, verify and restore: the operations behind `opsdeck backup | verify-backup |
//! restore` and the console's backup and restore dialogs. Progress goes to a callback so the CLI can
//! draw a line on stderr and the console a gauge.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use opsdeck_node::backup::format::{self, BackupWriter, Manifest, MemberRecord};
use opsdeck_node::pb::{self, backup_chunk::Part, restore_request::Step};

use serde::Serialize;

use crate::client::digests::{digest_at, hex_of, short, DigestWait};
use crate::client::{describe, ClusterClient};
use crate::format as fmt;

/// Bytes done of a total, since a start time.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub started: Instant,
}

impl Progress {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        }
    }
}

/// The leader builds a snapshot first; on a big cluster that takes a while.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(330);
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Payload bytes per restore chunk (one command each).
const RESTORE_CHUNK_BYTES: usize = 1 << 20;
/// Restore chunks sent at once.
const RESTORE_IN_FLIGHT: usize = 4;

/// Streams a backup from the leader into `out` (via `out.partial`, renamed when complete and
/// checked). Writes on the cluster go on meanwhile; they are not in the backup.
pub async fn backup(
    client: &ClusterClient,
    out: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Manifest> {
    let (mut leader, status) = client.leader().await?;
    let mut stream = leader
        .backup(pb::BackupRequest {})
        .await
        .map_err(|s| eyre!("backup from node {} failed: {}", status.id, describe(&s)))?
        .into_inner();
    let Some(Part::Header(header)) = next_part(&mut stream, FIRST_MESSAGE_TIMEOUT).await? else {
        return Err(eyre!(
            "the leader's backup stream did not start with a header"
        ));
    };
    let mut writer = BackupWriter::create(out)?;
    let started = Instant::now();
    let sha = loop {
        let part = match next_part(&mut stream, CHUNK_TIMEOUT).await {
            Ok(p) => p,
            Err(e) => {
                let written = writer.written();
                writer.abandon();
                return Err(e.wrap_err(format!(
                    "backup to {} failed after {written} bytes; no file was written",
                    out.display()
                )));
            }
        };
        match part {
            Some(Part::Data(bytes)) => {
                if let Err(e) = writer.write(&bytes) {
                    writer.abandon();
                    return Err(e.into());
                }
                progress(Progress {
                    done: writer.written(),
                    total: header.payload_bytes,
                    started,
                });
            }
            Some(Part::Trailer(t)) => break t.payload_sha256,
            _ => {
                writer.abandon();
                return Err(eyre!("the leader sent an unexpected message mid-backup"));
            }
        }
    };
    if writer.written() != header.payload_bytes {
        let got = writer.written();
        writer.abandon();
        return Err(eyre!(
            "the leader announced {} payload bytes and sent {got}; run the backup again",
            header.payload_bytes
        ));
    }
    let manifest = Manifest {
        format_version: format::FORMAT_VERSION,
        cluster_id: header.cluster_id,
        applied_term: header.applied_term,
        applied_index: header.applied_index,
        source_node: header.source_node,
        membership: header
            .members
            .into_iter()
            .map(|m| MemberRecord {
                id: m.id,
                grpc: m.grpc,
                http: m.http,
                voter: m.voter,
            })
            .collect(),
        key_count: 0,
        data_bytes: 0,
        pairs: 0,
        payload_bytes: 0,
        payload_sha256: String::new(),
        created_unix_ms: header.created_unix_ms,
        data_digest: String::new(),
        tenants_digest: String::new(),
        state_digest: String::new(),
    };
    Ok(writer.finish(manifest, &sha)?)
}

async fn next_part(
    stream: &mut tonic::Streaming<pb::BackupChunk>,
    timeout: Duration,
) -> Result<Option<Part>> {
    match tokio::time::timeout(timeout, stream.message()).await {
        Ok(Ok(Some(c))) => Ok(c.part),
        Ok(Ok(None)) => Err(eyre!("the leader ended the backup stream early")),
        Ok(Err(s)) => Err(eyre!("the leader failed the backup: {}", describe(&s))),
        Err(_) => Err(eyre!("the leader sent nothing for {timeout:?}")),
    }
}

/// What a restore did.
pub struct Restored {
    pub keys: u64,
    pub chunks: u64,
    pub took: Duration,
    /// Of which the commit (the swap on every node).
    pub commit: Duration,
    /// Every node's digest after the commit against the backup's.
    pub check: RestoreCheck,
}

/// How long a restore waits for every node to apply its commit and answer for its digest.
const CONFIRM_WAIT: Duration = Duration::from_secs(30);
/// How long it keeps trying a node it cannot reach at all (it is down: waiting for it to
/// come back is not the restore's business; `opsdeck check` compares it later).
const UNREACHABLE_WAIT: Duration = Duration::from_secs(3);
/// One node's answer to a digest request.
const CONFIRM_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The check after a restore's commit: whether every node holds exactly the backup's data,
/// quotas and usage (what a restore replaces; API keys and the audit trail it keeps, so the
/// total digest is not the backup's and is not compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RestoreCheck {
    /// The data and tenants digests at the commit's index of every node that answered are
    /// the manifest's; `unchecked` could not answer for that index.
    Matches {
        index: u64,
        nodes: Vec<u64>,
        data_digest: String,
        unchecked: Vec<Unchecked>,
    },
    /// Not checked at all, and why (an older backup without a digest, an older node).
    NotChecked { reason: String },
}

/// A node that could not answer for the commit's index, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unchecked {
    pub endpoint: String,
    pub reason: String,
}

impl RestoreCheck {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            RestoreCheck::Matches {
                index,
                nodes,
                data_digest,
                unchecked,
            } if unchecked.is_empty() => format!(
                "every node's data digest matches the backup's ({} nodes, at index {index}: {})",
                nodes.len(),
                short(data_digest)
            ),
            RestoreCheck::Matches {
                index,
                nodes,
                data_digest,
                unchecked,
            } => {
                let missing: Vec<String> = unchecked
                    .iter()
                    .map(|u| format!("{} ({})", u.endpoint, u.reason))
                    .collect();
                format!(
                    "the data digest of {} node(s) ({}) matches the backup's (at index {index}: {}); not checked: {}; compare them with `opsdeck check` once they are back",
                    nodes.len(),
                    nodes.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                    short(data_digest),
                    missing.join("; ")
                )
            }
            RestoreCheck::NotChecked { reason } => {
                format!("the nodes' digests were not checked: {reason}")
            }
        }
    }
}

/// One node's digest parts at the commit's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeParts {
    pub node_id: u64,
    pub data: String,
    pub tenants: String,
}

/// `c`'s data and tenants digests at `index` ([`digest_at`]: it may not have applied the
/// commit yet), waiting up to `deadline` (a node it cannot reach, [`UNREACHABLE_WAIT`]).
async fn parts_at(
    endpoint: &str,
    c: crate::client::NodeRpc,
    index: u64,
    deadline: Instant,
) -> std::result::Result<NodeParts, String> {
    let wait = DigestWait {
        deadline,
        per_call: CONFIRM_CALL_TIMEOUT,
        unreachable_for: UNREACHABLE_WAIT,
    };
    let r = digest_at(endpoint, c, index, wait)
        .await
        .map_err(|n| n.why)?;
    if r.data.len() != 32 {
        return Err(format!(
            "node {} does not report the parts of its digest (an older opsdeck-node)",
            r.node_id
        ));
    }
    Ok(NodeParts {
        node_id: r.node_id,
        data: hex_of(&r.data),
        tenants: hex_of(&r.tenants),
    })
}

/// The verdict on every endpoint's answer for the commit's `index`: Err names each node
/// whose data or tenants digest differs from the manifest's (the data stays as restored);
/// a node that could not answer is listed as not checked.
pub fn judge(
    manifest: &Manifest,
    index: u64,
    answers: Vec<(String, std::result::Result<NodeParts, String>)>,
) -> Result<RestoreCheck> {
    let mut differ = Vec::new();
    let mut nodes = Vec::new();
    let mut unchecked = Vec::new();
    for (endpoint, r) in answers {
        match r {
            Ok(p) if p.data != manifest.data_digest => differ.push(format!(
                "node {} ({endpoint}) differs: its data digest at index {index} is {}, the backup's is {}",
                p.node_id,
                short(&p.data),
                short(&manifest.data_digest)
            )),
            Ok(p) if p.tenants != manifest.tenants_digest => differ.push(format!(
                "node {} ({endpoint}) differs: its quotas-and-usage digest at index {index} is {}, the backup's is {}",
                p.node_id,
                short(&p.tenants),
                short(&manifest.tenants_digest)
            )),
            Ok(p) => nodes.push(p.node_id),
            Err(reason) => unchecked.push(Unchecked { endpoint, reason }),
        }
    }
    if !differ.is_empty() {
        return Err(eyre!(
            "the restore committed at index {index}, but {}. The data is left as restored; compare the replicas with `opsdeck check`, and rebuild a node that differs with `opsdeck rebuild-node --id N`",
            differ.join("; ")
        ));
    }
    if nodes.is_empty() {
        return Ok(RestoreCheck::NotChecked {
            reason: format!(
                "no node answered for index {index}: {}",
                unchecked
                    .iter()
                    .map(|u| format!("{} ({})", u.endpoint, u.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    nodes.sort_unstable();
    Ok(RestoreCheck::Matches {
        index,
        nodes,
        data_digest: manifest.data_digest.clone(),
        unchecked,
    })
}

/// Checks that every node's data and tenants digests at `index` (the commit's entry, which
/// carries nothing else) are the backup's (see [`judge`]).
pub async fn confirm_restored(
    client: &ClusterClient,
    manifest: &Manifest,
    index: u64,
) -> Result<RestoreCheck> {
    if !manifest.has_digest() {
        return Ok(RestoreCheck::NotChecked {
            reason: "no digest in manifest (older backup)".into(),
        });
    }
    if index == 0 {
        return Ok(RestoreCheck::NotChecked {
            reason: "the leader did not say which entry carried the commit (an older opsdeck-node, or its answer was lost)".into(),
        });
    }
    let deadline = Instant::now() + CONFIRM_WAIT;
    let asks = client
        .node_clients()
        .into_iter()
        .map(|(endpoint, c)| async move {
            let r = parts_at(&endpoint, c, index, deadline).await;
            (endpoint, r)
        });
    judge(manifest, index, futures_util::future::join_all(asks).await)
}

/// Checks the backup file at `path` whole ([`format::verify`]: its checksums and the
/// payload's digest) off the async workers.
pub async fn verify_file(path: &Path) -> Result<Manifest> {
    let file = path.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || format::verify(&file))
        .await
        .map_err(|e| eyre!("checking {} failed: {e}", path.display()))?;
    checked.map_err(|e| eyre!("{}: {e}", path.display()))
}

/// Whether the cluster took a verification as its last backup's: `Ok(true)` it was the
/// last backup (now verified), `Ok(false)` an older one, `Err` not recorded and why.
pub type Recorded = std::result::Result<bool, String>;

/// Records in the cluster's audit trail that the backup `manifest` describes, in `file`,
/// was verified whole; when it is the cluster's last backup that one no longer counts as
/// "not verified" (`backup_unverified`).
pub async fn record_verified(client: &ClusterClient, manifest: &Manifest, file: &Path) -> Recorded {
    let req = pb::BackupVerifiedRequest {
        payload_sha256: manifest.payload_sha256.clone(),
        applied_index: manifest.applied_index,
        file: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    client
        .call("recording the backup's verification", |mut c| {
            let req = req.clone();
            async move { c.record_backup_verified(req).await }
        })
        .await
        .map(|r| r.last)
        .map_err(|e| format!("{e:#}"))
}

/// [`verify_file`], then [`record_verified`] when it passed.
pub async fn verify_and_record(
    client: &ClusterClient,
    path: &Path,
) -> Result<(Manifest, Recorded)> {
    let manifest = verify_file(path).await?;
    let recorded = record_verified(client, &manifest, path).await;
    Ok((manifest, recorded))
}

/// What [`record_verified`] did, for people.
pub fn describe_recorded(r: &Recorded) -> String {
    match r {
        Ok(true) => "recorded in the cluster: its last backup is verified".into(),
        Ok(false) => "recorded in the cluster, but it is not the cluster's last backup, which stays not verified".into(),
        Err(e) => format!("not recorded in the cluster ({e}): its last backup still counts as not verified"),
    }
}

/// A backup file checked whole (see `format::verify`), ready to restore.
pub type Verified = (Manifest, format::Payload);

/// Whose data a restore brings in, next to the cluster it goes into: what the
/// confirmation shows, and what decides whether `--allow-foreign-cluster` is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The cluster the backup was taken on; None when its manifest does not say.
    pub backup_cluster: Option<String>,
    /// The cluster being restored into (as its leader reports it).
    pub this_cluster: String,
}

impl Plan {
    pub fn new(manifest: &Manifest, this_cluster: &str) -> Plan {
        Plan {
            backup_cluster: Some(manifest.cluster_id.clone()).filter(|c| !c.is_empty()),
            this_cluster: this_cluster.to_string(),
        }
    }

    /// Whether the backup is not provably this cluster's own.
    pub fn foreign(&self) -> bool {
        self.this_cluster.is_empty() || self.backup_cluster.as_deref() != Some(&self.this_cluster)
    }

    /// The backup's cluster for people: its id, or that it is unknown.
    pub fn backup_cluster_text(&self) -> &str {
        self.backup_cluster
            .as_deref()
            .unwrap_or("unknown (the manifest does not say)")
    }

    /// Why a restore of `file` is refused without `--allow-foreign-cluster`.
    pub fn refusal(&self, file: &Path) -> String {
        let this = if self.this_cluster.is_empty() {
            "this cluster reports no id".to_string()
        } else {
            format!("this is cluster {}", self.this_cluster)
        };
        match &self.backup_cluster {
            Some(theirs) => format!(
                "backup {} was taken on cluster {theirs}; {this}. Restoring it replaces this cluster's data with the other cluster's (its API keys are never imported); rerun with --allow-foreign-cluster if that is what you want",
                file.display()
            ),
            None => format!(
                "backup {} does not say which cluster it was taken on (its manifest has no cluster id); {this}. Restoring it replaces this cluster's data with the backup's, which may be another cluster's (its API keys are never imported); rerun with --allow-foreign-cluster if that is what you want",
                file.display()
            ),
        }
    }
}

/// The plan of restoring `manifest`'s backup into the cluster `client` reaches.
pub async fn plan(client: &ClusterClient, manifest: &Manifest) -> Result<Plan> {
    let (_, status) = client.leader().await?;
    Ok(Plan::new(manifest, &status.cluster_id))
}

/// Restores a verified backup into the cluster: stages it through the log chunk by chunk
/// and swaps it in with one commit. A backup of another cluster (or one whose manifest
/// names none) is refused unless `allow_foreign`; the nodes check that again themselves.
pub async fn restore(
    client: &ClusterClient,
    file: &Path,
    (manifest, pairs): Verified,
    allow_foreign: bool,
    mut progress: impl FnMut(Progress),
) -> Result<Restored> {
    let plan = plan(client, &manifest).await?;
    if plan.foreign() && !allow_foreign {
        return Err(eyre!("{}; nothing was changed", plan.refusal(file)));
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let started = Instant::now();
    let step = |seq: u64, step: Step| pb::RestoreRequest {
        restore_id: id.clone(),
        seq,
        step: Some(step),
    };
    let send = |req: pb::RestoreRequest| async move {
        client
            .call("restore", |mut c| {
                let req = req.clone();
                async move { c.restore(req).await }
            })
            .await
    };
    let source = format!(
        "file={} cluster={} index={} keys={} sha256={}",
        file.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        manifest.cluster_id,
        manifest.applied_index,
        manifest.key_count,
        &manifest.payload_sha256[..16.min(manifest.payload_sha256.len())]
    );
    send(step(
        0,
        Step::Begin(pb::RestoreBegin {
            source,
            backup_cluster_id: manifest.cluster_id.clone(),
            allow_foreign_cluster: allow_foreign,
        }),
    ))
    .await?;
    let (mut seq, mut sent_pairs, mut done) = (0u64, 0u64, 8u64);
    let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut pairs = pairs.peekable();
    // Up to RESTORE_IN_FLIGHT chunks are sent at once (the nodes stage them in any order),
    // so the leader can group them into fewer log entries and fsyncs; at most that many
    // chunks of the file are in memory.
    type Sent<'a> = Pin<Box<dyn Future<Output = (u64, u64, Result<pb::RestoreReply>)> + Send + 'a>>;
    let mut in_flight: FuturesUnordered<Sent> = FuturesUnordered::new();
    let chunk_failed = |seq: u64, e: color_eyre::eyre::Report| {
        e.wrap_err(format!(
            "restore stopped at chunk {seq}: the cluster still holds its previous data (staged chunks are never visible); run the restore again"
        ))
    };
    while pairs.peek().is_some() || !in_flight.is_empty() {
        if in_flight.len() >= RESTORE_IN_FLIGHT || pairs.peek().is_none() {
            if let Some((n, sent, result)) = in_flight.next().await {
                result.map_err(|e| chunk_failed(n, e))?;
                done += sent;
                progress(Progress {
                    done,
                    total: manifest.payload_bytes,
                    started,
                });
            }
            continue;
        }
        let Some(pair) = pairs.next() else { break };
        let (k, v) =
            pair.map_err(|e| eyre!("{}: reading the payload failed: {e}", file.display()))?;
        chunk_bytes += 16 + k.len() + v.len();
        chunk.push((k, v));
        if chunk_bytes >= RESTORE_CHUNK_BYTES || pairs.peek().is_none() {
            let bytes = encode_pairs(&chunk);
            sent_pairs += chunk.len() as u64;
            let (n, size, req) = (seq, chunk_bytes as u64, step(seq, Step::Chunk(bytes)));
            in_flight.push(Box::pin(async move { (n, size, send(req).await) }));
            seq += 1;
            chunk.clear();
            chunk_bytes = 0;
        }
    }
    let commit_started = Instant::now();
    let commit = send(step(
        seq,
        Step::Commit(pb::RestoreCommit {
            chunks: seq,
            pairs: sent_pairs,
        }),
    ))
    .await;
    let (keys, commit_index) = match commit {
        Ok(reply) => (reply.keys, reply.commit_index),
        // The commit only switches generations on each node, so it answers within the
        // call whatever the size; but the answer can be lost (the leader changed or died
        // after proposing it), and then its audit record tells how it ended.
        Err(e) => committed_keys(client, &id)
            .await
            .map(|keys| (keys, 0))
            .map_err(|wait| {
                e.wrap_err(format!(
                    "the restore's commit did not go through ({wait}): the cluster holds either its previous data or the backup's, never a mix; check with `opsdeck audit`, and run the restore again if it is not there"
                ))
            })?,
    };
    let commit = commit_started.elapsed();
    let check = confirm_restored(client, &manifest, commit_index).await?;
    Ok(Restored {
        keys,
        chunks: seq,
        took: started.elapsed(),
        commit,
        check,
    })
}

/// How long to look for the outcome of a commit whose call timed out.
const COMMIT_OUTCOME_WAIT: Duration = Duration::from_secs(60);

/// Waits for restore `id`'s audit record: the key count it reports, or its refusal.
async fn committed_keys(client: &ClusterClient, id: &str) -> Result<u64> {
    let deadline = Instant::now() + COMMIT_OUTCOME_WAIT;
    let marker = format!("id={id} ");
    while Instant::now() < deadline {
        let audit = client
            .call("audit", |mut c| async move {
                c.list_audit(pb::ListAuditRequest { limit: 50 }).await
            })
            .await;
        if let Ok(audit) = audit {
            let found = audit
                .records
                .iter()
                .find(|r| r.action == "restore" && r.args.starts_with(&marker));
            if let Some(r) = found {
                return match r.result.strip_prefix("ok: ") {
                    Some(rest) => Ok(rest
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)),
                    None => Err(eyre!("the commit was refused: {}", r.result)),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(eyre!("no outcome recorded within {COMMIT_OUTCOME_WAIT:?}"))
}

/// Pairs in the payload's own encoding (what `PairReader` reads).
pub(crate) fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = pairs.iter().map(|(k, v)| 16 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u64).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// One line describing a manifest, for people.
pub fn describe_manifest(m: &Manifest) -> String {
    format!(
        "cluster {}, index {} (term {}), {} keys, {} of data, {} payload, taken {}",
        if m.cluster_id.is_empty() {
            "unknown"
        } else {
            &m.cluster_id
        },
        m.applied_index,
        m.applied_term,
        m.key_count,
        fmt::bytes(m.data_bytes),
        fmt::bytes(m.payload_bytes),
        fmt::date_time(m.created_unix_ms, 0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with(data: &str, tenants: &str) -> Manifest {
        Manifest {
            format_version: format::FORMAT_VERSION,
            cluster_id: "c".into(),
            applied_term: 1,
            applied_index: 10,
            source_node: 1,
            data_digest: data.into(),
            tenants_digest: tenants.into(),
            state_digest: "ff".repeat(32),
            ..Manifest::default()
        }
    }

    fn parts(id: u64, data: &str, tenants: &str) -> std::result::Result<NodeParts, String> {
        Ok(NodeParts {
            node_id: id,
            data: data.into(),
            tenants: tenants.into(),
        })
    }

    #[test]
    fn a_restore_check_names_the_node_that_differs_and_lists_the_unreachable() {
        let (d, t) = ("aa".repeat(32), "bb".repeat(32));
        let m = manifest_with(&d, &t);
        let all = judge(
            &m,
            7,
            vec![
                ("n1".into(), parts(1, &d, &t)),
                ("n3".into(), parts(3, &d, &t)),
                ("n2".into(), parts(2, &d, &t)),
            ],
        )
        .unwrap();
        assert_eq!(
            all.describe(),
            "every node's data digest matches the backup's (3 nodes, at index 7: aaaaaaaaaaaa)"
        );
        let e = judge(
            &m,
            7,
            vec![
                ("n1".into(), parts(1, &d, &t)),
                ("n2".into(), parts(2, &"cc".repeat(32), &t)),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("node 2 (n2) differs: its data digest at index 7 is cccccccccccc")
                && e.contains("The data is left as restored"),
            "{e}"
        );
        let e = judge(&m, 7, vec![("n3".into(), parts(3, &d, &"00".repeat(32)))])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node 3 (n3) differs: its quotas-and-usage digest"),
            "{e}"
        );
        let some = judge(
            &m,
            7,
            vec![
                ("n1".into(), parts(1, &d, &t)),
                ("n2".into(), Err("connection refused".into())),
            ],
        )
        .unwrap();
        assert!(
            some.describe()
                .starts_with("the data digest of 1 node(s) (1) matches")
                && some
                    .describe()
                    .contains("not checked: n2 (connection refused)"),
            "{}",
            some.describe()
        );
        let none = judge(&m, 7, vec![("n2".into(), Err("down".into()))]).unwrap();
        assert!(matches!(none, RestoreCheck::NotChecked { .. }), "{none:?}");
    }

    #[test]
    fn encoded_chunks_read_back_with_the_payload_reader() {
        let pairs = vec![(b"d/a".to_vec(), b"1".to_vec()), (b"k/x".to_vec(), vec![])];
        let bytes = encode_pairs(&pairs);
        let back: Vec<_> = format::PairReader::new(bytes.as_slice())
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(back, pairs);
    }
}
