//! A client for a whole cluster: fails over between endpoints and retries while a leader is
//! being elected, so a CLI verb works as long as any node answers. Nodes forward writes and
//! linearizable reads to the leader themselves, so any reachable node will do.

pub mod cluster_file;
pub mod digests;
pub mod failure;
mod target;

pub use failure::{Class, Failure};
pub use target::Target;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::node_client::NodeClient;
use opsdeck_node::pb::{NodeStatus, StatusRequest};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A gRPC client of one node that presents the API key on every call.
pub type NodeRpc = NodeClient<InterceptedService<Channel, ApiKey>>;

/// The API key sent as `authorization: Bearer …` (none: calls go out without one and the
/// node answers Unauthenticated, naming how to pass a key).
#[derive(Clone, Default)]
pub struct ApiKey(Option<MetadataValue<Ascii>>);

impl ApiKey {
    pub fn new(secret: &str) -> Result<ApiKey> {
        let value = format!("Bearer {}", secret.trim())
            .parse()
            .map_err(|_| eyre!("the API key holds characters that cannot be sent in a header"))?;
        Ok(ApiKey(Some(value)))
    }

    pub fn none() -> ApiKey {
        ApiKey(None)
    }

    /// The secret itself (None without a key): for the HTTP calls of `debug bundle`, and
    /// for its last pass, which drops any line holding it.
    pub fn secret(&self) -> Option<String> {
        let text = self.0.as_ref()?.to_str().ok()?;
        text.strip_prefix("Bearer ").map(str::to_string)
    }
}

impl Interceptor for ApiKey {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// Deadline of a single request to a single node (writes may wait up to the node's own
/// 5 s cluster timeout).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Clone)]
struct Endpoint {
    addr: String,
    client: NodeRpc,
}

pub struct ClusterClient {
    endpoints: Vec<Endpoint>,
    preferred: AtomicUsize,
    retry_for: Duration,
    key: ApiKey,
}

/// The figures of a status frame that `opsdeck status --json` and the diagnostics bundle
/// both print, as a JSON object each adds its own fields to.
pub fn status_fields(s: &NodeStatus) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::json!({
        "id": s.id,
        "grpc": s.grpc,
        "http": s.http,
        "role": s.role,
        "term": s.term,
        "leader_id": s.leader_id,
        "last_log_index": s.last_log_index,
        "committed": s.committed,
        "applied": s.applied,
        "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index,
        "storage_keys": s.storage_keys,
        "storage_bytes": s.storage_bytes,
        "cluster_id": s.cluster_id,
        "last_backup_unix_ms": s.last_backup_unix_ms,
        "last_backup_verified_unix_ms": s.last_backup_verified_unix_ms,
    }) {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    }
}

/// One node's answer (or failure) to a status request.
pub struct NodeReport {
    pub endpoint: String,
    pub status: Result<NodeStatus, String>,
    /// The node answered but refused our API key (e.g. a new member that has not yet
    /// replicated the keys): it is up, we just cannot see its figures.
    pub refused: bool,
}

/// A failed call: the last error per endpoint, and whether waiting could help.
#[derive(Debug)]
struct CallError {
    retryable: bool,
    message: String,
    /// The class of the node's refusal, when a node refused the call.
    class: Class,
}

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    )
}

pub(crate) use opsdeck_node::transport::describe;

/// Whether a gRPC call got a plain HTTP answer (no gRPC status): it reached an HTTP server,
/// such as a node's HTTP port.
fn is_plain_http(status: &Status) -> bool {
    status.message().starts_with("grpc-status header missing")
}

/// What to tell a person about `status`, an answer from `addr`: [`describe`], except that a
/// node's HTTP port given as a gRPC endpoint is named as such, with the node's gRPC address
/// when its `/health` tells it.
pub async fn explain(addr: &str, status: &Status) -> String {
    if !is_plain_http(status) {
        return describe(status);
    }
    match health_grpc_addr(addr).await {
        Some(grpc) => format!(
            "{addr} is the node's HTTP port, not its gRPC port; use its gRPC port (the \
             node's status says it: {grpc})"
        ),
        None => format!(
            "{addr} answered plain HTTP, not gRPC ({}): it is probably a node's HTTP port, \
             not its gRPC port; use its gRPC port (`GET http://{addr}/health` shows it)",
            describe(status)
        ),
    }
}

/// The gRPC address in the `/health` answer of the HTTP server at `addr` (None without TLS
/// support here, or when it does not answer so within 2 s).
async fn health_grpc_addr(addr: &str) -> Option<String> {
    use http_body_util::BodyExt;
    if opsdeck_node::transport::tls::client_tls().is_some() {
        return None;
    }
    let ask = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/health")
            .header(hyper::header::HOST, addr)
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .ok()?;
        let body = sender.send_request(req).await.ok()?.into_body();
        // A health answer is a few hundred bytes; read no more than 64 KiB of anything.
        let body = http_body_util::Limited::new(body, 64 * 1024)
            .collect()
            .await
            .ok()?
            .to_bytes();
        let health: serde_json::Value = serde_json::from_slice(&body).ok()?;
        health["grpc"].as_str().map(str::to_string)
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

impl ClusterClient {
    /// Checks every endpoint is `host:port`; no connection is made until the first call.
    pub fn new(endpoints: &[String], retry_for: Duration, key: ApiKey) -> Result<ClusterClient> {
        if endpoints.is_empty() {
            return Err(Failure::new(
                Class::Usage,
                "no endpoints given: pass --endpoints HOST:PORT,... or --cluster DIR",
            )
            .into());
        }
        let mut parsed = Vec::new();
        for addr in endpoints {
            let addr = addr.trim().trim_start_matches("http://").to_string();
            let valid = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(Failure::new(
                    Class::Usage,
                    format!("bad endpoint {addr:?}: expected HOST:PORT, e.g. 127.0.0.1:7101"),
                )
                .into());
            }
            let client = connect(&addr, &key).map_err(|e| eyre!("bad endpoint {addr:?}: {e}"))?;
            parsed.push(Endpoint { addr, client });
        }
        Ok(ClusterClient {
            endpoints: parsed,
            preferred: AtomicUsize::new(0),
            retry_for,
            key,
        })
    }

    /// The API key every call presents.
    pub fn api_key(&self) -> &ApiKey {
        &self.key
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.addr.clone()).collect()
    }

    /// One client per endpoint, for calls that must reach every node (e.g. Watch, Digest).
    pub fn node_clients(&self) -> Vec<(String, NodeRpc)> {
        self.endpoints
            .iter()
            .map(|e| (e.addr.clone(), e.client.clone()))
            .collect()
    }

    /// A client for another node address (e.g. a leader learned from a status), with the
    /// same API key.
    pub fn connect_to(&self, addr: &str) -> Result<NodeRpc> {
        connect(addr, &self.key)
    }

    /// Runs `call` on the preferred endpoint, failing over to the others, and retrying with
    /// backoff while every node is unreachable or without a leader — all of it within the
    /// client's timeout (`--timeout`): each request gets what is left of it, and the call
    /// fails when it is spent.
    pub async fn call<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn(NodeRpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = self.deadline();
        let last = std::sync::Mutex::new(String::new());
        let attempt = || async {
            let result = self.try_each(&call, deadline).await;
            if let Err(e) = &result {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = e.message.clone();
            }
            result
        };
        let retried = attempt
            .retry(self.backoff(Duration::from_millis(50)).with_jitter())
            .when(|e: &CallError| e.retryable);
        let outcome = tokio::time::timeout_at(deadline.into(), retried).await;
        let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if !e.retryable => {
                Err(Failure::new(e.class, format!("{what}: {}", e.message)).into())
            }
            Ok(Err(e)) => Err(self.gave_up(what, &e.message)),
            Err(_) => Err(self.gave_up(what, &last)),
        }
    }

    /// When a call started now must end: `--timeout` from now (a timeout too long to add to
    /// the clock, e.g. `500000000000y`, is as good as a year).
    fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.retry_for)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(now)
    }

    /// Backoff between attempts: from `min` up to 1 s, the sleeps adding up to at most the
    /// timeout (the caller also bounds the whole retry by it).
    fn backoff(&self, min: Duration) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(Duration::from_secs(1))
            .with_total_delay(Some(self.retry_for))
            .without_max_times()
    }

    /// The error of a call that found no node to answer within the timeout.
    fn gave_up(&self, what: &str, last: &str) -> color_eyre::Report {
        let last = if last.is_empty() {
            "no node answered yet".to_string()
        } else {
            last.to_string()
        };
        Failure::new(
            Class::Unavailable,
            format!(
                "{what}: the cluster did not answer within the timeout of {} (--timeout): \
                 {last} (is it running? `opsdeck dev` starts one; check --endpoints)",
                humantime::format_duration(self.retry_for)
            ),
        )
        .into()
    }

    async fn try_each<T, F, Fut>(
        &self,
        call: &F,
        deadline: Instant,
    ) -> std::result::Result<T, CallError>
    where
        F: Fn(NodeRpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let start = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for offset in 0..self.endpoints.len() {
            let i = (start + offset) % self.endpoints.len();
            let ep = &self.endpoints[i];
            let timeout = REQUEST_TIMEOUT
                .min(self.retry_for)
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(timeout, call(ep.client.clone())).await {
                Ok(Ok(resp)) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(resp.into_inner());
                }
                Ok(Err(status)) if retryable(&status) => {
                    failures.push(format!("{}: {}", ep.addr, describe(&status)))
                }
                Ok(Err(status)) => {
                    return Err(CallError {
                        retryable: false,
                        class: Class::of(&status),
                        message: explain(&ep.addr, &status).await,
                    })
                }
                Err(_) => failures.push(format!(
                    "{}: the node did not answer within {}",
                    ep.addr,
                    humantime::format_duration(timeout)
                )),
            }
        }
        Err(CallError {
            retryable: true,
            class: Class::Unavailable,
            message: failures.join("; "),
        })
    }

    /// Asks every endpoint for its status at once; a dead node costs at most `timeout`.
    pub async fn status_all(&self, timeout: Duration) -> Vec<NodeReport> {
        let asks = self.endpoints.iter().map(|ep| {
            let mut client = ep.client.clone();
            async move {
                let mut req = tonic::Request::new(StatusRequest {});
                req.set_timeout(timeout);
                let (status, refused) =
                    match tokio::time::timeout(timeout, client.status(req)).await {
                        Ok(Ok(r)) => (Ok(r.into_inner()), false),
                        Ok(Err(s)) => (
                            Err(explain(&ep.addr, &s).await),
                            matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied)
                                && !is_plain_http(&s),
                        ),
                        Err(_) => (Err(format!("no answer within {timeout:?}")), false),
                    };
                NodeReport {
                    endpoint: ep.addr.clone(),
                    status,
                    refused,
                }
            }
        });
        futures_util::future::join_all(asks).await
    }

    /// The current leader's status and a client connected to it, retrying during elections.
    pub async fn leader(&self) -> Result<(NodeRpc, NodeStatus)> {
        let find = || async {
            let reports = self
                .status_all(Duration::from_secs(2).min(self.retry_for))
                .await;
            let mut seen = Vec::new();
            for r in &reports {
                match &r.status {
                    Ok(s) if s.role == "leader" => {
                        let ep = self.endpoints.iter().find(|e| e.addr == r.endpoint);
                        let client = match ep {
                            Some(e) => e.client.clone(),
                            None => self.connect_to(&s.grpc)?,
                        };
                        return Ok((client, s.clone()));
                    }
                    Ok(s) => {
                        if let Some(leader) = s
                            .leader_id
                            .and_then(|l| s.members.iter().find(|m| m.id == l))
                        {
                            let mut client = self.connect_to(&leader.grpc)?;
                            if let Ok(Ok(st)) = tokio::time::timeout(
                                Duration::from_secs(2),
                                client.status(StatusRequest {}),
                            )
                            .await
                            {
                                let st = st.into_inner();
                                if st.role == "leader" {
                                    return Ok((client, st));
                                }
                            }
                        }
                        seen.push(format!("{}: {} (term {})", r.endpoint, s.role, s.term));
                    }
                    Err(e) => seen.push(format!("{}: {e}", r.endpoint)),
                }
            }
            Err(Failure::new(
                Class::Unavailable,
                format!("no leader found: {}", seen.join("; ")),
            )
            .into())
        };
        let deadline = self.deadline();
        let last = std::sync::Mutex::new(String::new());
        let attempt = || async {
            let result = find().await;
            if let Err(e) = &result {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = format!("{e:#}");
            }
            result
        };
        let retried = attempt.retry(self.backoff(Duration::from_millis(100)));
        match tokio::time::timeout_at(deadline.into(), retried).await {
            Ok(result) => result,
            Err(_) => Err(self.gave_up(
                "finding the leader",
                &last.into_inner().unwrap_or_else(|p| p.into_inner()),
            )),
        }
    }
}

/// A client for one node address (lazy: connects on first use).
pub fn connect(addr: &str, key: &ApiKey) -> Result<NodeRpc> {
    let channel = opsdeck_node::transport::lazy_channel(addr)
        .map_err(|e| eyre!("bad address {addr:?}: {e}"))?;
    Ok(NodeClient::with_interceptor(channel, key.clone())
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024))
}
