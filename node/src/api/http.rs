//! HTTP surface for curl users, probes and Prometheus: `/health`, `/livez`, `/readyz` (no
//! key), `/cluster/{info,nodes,leader}`, `/kv/{key}` (GET, PUT, DELETE; `?stale=true` for a
//! local read), `/metrics` (Prometheus text or OpenMetrics, as `Accept` asks) and
//! `/sd/prometheus` (every member as a Prometheus `http_sd` target group), `/digest[?index=N]`
//! (the state digest and Merkle root at an applied index this node holds), `/proof/{key}`
//! (a key's value with its Merkle proof).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::linger::LingerFlag;
use crate::error::NodeError;
use crate::security::auth::{http_middleware, Authenticator, Caller};
use crate::service::status::MemberInfo;
use crate::service::NodeCore;
use crate::store::log_store::LogStats;
use crate::telemetry::metrics::Format;

#[derive(Clone)]
struct HttpState {
    core: NodeCore,
    flush: Arc<LogStats>,
}

pub fn router(core: NodeCore, flush: Arc<LogStats>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/sd/prometheus", get(sd_prometheus))
        .route("/cluster/info", get(cluster_info))
        .route("/cluster/nodes", get(cluster_nodes))
        .route("/cluster/leader", get(cluster_leader))
        .route("/digest", get(digest))
        .route("/proof/{*key}", get(proof))
        .route("/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/metrics", get(metrics))
        .merge(super::failpoints::routes())
        .merge(super::datadir::routes(core.data_dir().to_path_buf()))
        .layer(axum::middleware::from_fn_with_state(auth, http_middleware))
        // Outermost: an oversize request is answered before its key is checked or any of
        // its body is read.
        .layer(axum::middleware::from_fn(refuse_oversize))
        .with_state(HttpState { core, flush })
}

/// Largest request body: one value (a PUT's body is the value).
const MAX_BODY_BYTES: usize = crate::types::limits::MAX_VALUE_BYTES;

/// Answers a request whose `Content-Length` is over [`MAX_BODY_BYTES`] at once, without
/// reading its body (a client claiming 10^18 bytes used to be held open unanswered). A
/// connection answered 413 (here or by [`read_value`]) closes lingering, so a client still
/// sending the body reads the answer.
async fn refuse_oversize(req: Request, next: Next) -> Response {
    let linger = req
        .extensions()
        .get::<ConnectInfo<LingerFlag>>()
        .map(|c| c.0.clone());
    let claimed = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let response = match claimed {
        Some(n) if n > MAX_BODY_BYTES as u64 => too_large(Some(n)),
        _ => next.run(req).await,
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        if let Some(flag) = linger {
            flag.set();
        }
    }
    response
}

/// The one answer to every oversize body: 413, JSON naming the limit and the size claimed
/// (None: a chunked body, refused once it passed the limit). The connection is closed, so
/// the rest of the body is never read.
fn too_large(claimed: Option<u64>) -> Response {
    let error = match claimed {
        Some(n) => format!(
            "value is {n} bytes, over the limit of {MAX_BODY_BYTES} bytes (as its \
             Content-Length says; nothing was read or written)"
        ),
        None => format!(
            "value is over the limit of {MAX_BODY_BYTES} bytes (the chunked body passed it); \
             nothing was written"
        ),
    };
    let body = json!({
        "error": error,
        "kind": "too_large",
        "limit_bytes": MAX_BODY_BYTES,
        "claimed_bytes": claimed,
    });
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, "close")],
        Json(body),
    )
        .into_response()
}

/// The body as one value, read up to [`MAX_BODY_BYTES`] and no further.
async fn read_value(body: Body) -> Result<Vec<u8>, Response> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(None)),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            Json(
                json!({ "error": format!("cannot read the request body: {e}"), "kind": "invalid" }),
            ),
        )
            .into_response()),
    }
}

/// 200 while this node is part of a cluster with a known leader, 503 otherwise; the body
/// always says who the node is (id, gRPC and HTTP addresses) and what it sees.
async fn health(State(s): State<HttpState>) -> Response {
    let st = s.core.status();
    let stopped = s.core.raft_stopped();
    let full = s.core.disk_guard().pressure();
    // Never "serving" for a node whose Raft stopped: it can neither read nor write.
    let (code, status) = match (&stopped, st.leader_id, full) {
        (Some(_), _, _) => (StatusCode::SERVICE_UNAVAILABLE, "raft stopped"),
        (None, None, _) => (StatusCode::SERVICE_UNAVAILABLE, "no leader"),
        // Reads go on; writes are refused while the disk is below the reserve.
        (None, Some(_), Some(_)) => (StatusCode::OK, "storage full"),
        (None, Some(_), None) => (StatusCode::OK, "serving"),
    };
    let body = json!({
        "status": status,
        "id": st.id,
        "grpc": st.grpc,
        "http": st.http,
        "role": st.role,
        "leader": st.leader_id,
        "term": st.term,
        "raft_stopped": stopped,
        "storage_full": full.map(|p| json!({
            "free_bytes": p.free,
            "reserve_bytes": p.need,
            "message": p.to_string(),
        })),
    });
    (code, Json(body)).into_response()
}

/// Liveness: 200 while the process serves HTTP, whatever the cluster's state (a node that
/// lost its quorum is alive and must not be restarted for it); 503 only once Raft stopped
/// for good (a fatal storage error), which a restart from disk is the cure for.
async fn livez(State(s): State<HttpState>) -> Response {
    let id = s.core.id();
    match s.core.raft_stopped() {
        None => Json(json!({ "status": "live", "id": id })).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "raft stopped",
                "id": id,
                "reason": format!("{why}; restart the node (it recovers from its data dir)"),
            })),
        )
            .into_response(),
    }
}

/// `/readyz` says not ready while this node's applied index is more than this many entries
/// behind its committed index: it is replaying its log after a start, or applying lags.
pub const READY_MAX_APPLY_LAG: u64 = 1_000;

/// Readiness: 200 when this node can serve requests now: a member of a cluster, a leader
/// known (a leader: a quorum acknowledged it recently), Raft running, and its applied index
/// within [`READY_MAX_APPLY_LAG`] of its committed index; 503 with the reason otherwise.
async fn readyz(State(s): State<HttpState>) -> Response {
    let st = s.core.status();
    let quorum_ack = s.core.raft().metrics().borrow().millis_since_quorum_ack;
    let election_max = s.core.raft().config().election_timeout_max;
    let (committed, applied) = (st.committed.unwrap_or(0), st.applied.unwrap_or(0));
    let voters = st.members.iter().filter(|m| m.voter).count();
    let quorum_limit = (2 * election_max).max(1_000);
    let not_ready = if let Some(why) = s.core.raft_stopped() {
        Some(format!("raft stopped: {why}"))
    } else if !st.members.iter().any(|m| m.id == st.id) {
        Some("not a member of a cluster yet (add it with `opsdeck add-node`)".to_string())
    } else if st.leader_id.is_none() {
        Some("no leader known (an election is under way, or a majority is unreachable)".into())
    } else if st.role == "leader" && voters > 1 && quorum_ack.is_none_or(|ms| ms > quorum_limit) {
        Some(format!(
            "leader without a quorum: no majority acknowledged it for over {quorum_limit} ms"
        ))
    } else if committed.saturating_sub(applied) > READY_MAX_APPLY_LAG {
        Some(format!(
            "applied index {applied} is {} entries behind committed {committed} (ready within \
             {READY_MAX_APPLY_LAG})",
            committed - applied
        ))
    } else {
        None
    };
    let body = json!({
        "status": not_ready.as_deref().unwrap_or("ready"),
        "ready": not_ready.is_none(),
        "id": st.id,
        "role": st.role,
        "leader": st.leader_id,
        "committed": st.committed,
        "applied": st.applied,
    });
    let code = match not_ready {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(body)).into_response()
}

/// The address Prometheus should scrape a member at: its HTTP address, except that a node
/// listening on every interface (`0.0.0.0`, `[::]`) is reached at its advertised gRPC host.
fn scrape_address(m: &MemberInfo) -> String {
    let Ok(http) = m.http.parse::<std::net::SocketAddr>() else {
        return m.http.clone(); // a host name: as recorded
    };
    if !http.ip().is_unspecified() {
        return m.http.clone();
    }
    match m.grpc.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() => format!("{host}:{}", http.port()),
        _ => m.http.clone(),
    }
}

/// Prometheus HTTP service discovery (`http_sd_configs`): one target group per member, its
/// scrape address with `opsdeck_node_id` and `opsdeck_role` (`voter` or `learner`: the
/// membership, not the Raft state, so labels change only when membership does). Prometheus
/// re-reads it every `refresh_interval` and follows nodes being added and removed.
async fn sd_prometheus(State(s): State<HttpState>) -> Json<serde_json::Value> {
    let st = s.core.status();
    let groups: Vec<_> = st
        .members
        .iter()
        .filter(|m| !m.http.is_empty())
        .map(|m| {
            json!({
                "targets": [scrape_address(m)],
                "labels": {
                    "opsdeck_node_id": m.id.to_string(),
                    "opsdeck_role": if m.voter { "voter" } else { "learner" },
                },
            })
        })
        .collect();
    Json(serde_json::Value::Array(groups))
}

async fn cluster_info(State(s): State<HttpState>) -> Json<serde_json::Value> {
    let st = s.core.status();
    Json(json!({
        "cluster_id": st.cluster_id,
        "leader": st.leader_id,
        "term": st.term,
        "members": st.members,
        "node": st,
    }))
}

async fn cluster_nodes(State(s): State<HttpState>) -> Json<serde_json::Value> {
    let st = s.core.status();
    let nodes: Vec<_> = st
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "grpc": m.grpc,
                "http": m.http,
                "voter": m.voter,
                "leader": Some(m.id) == st.leader_id,
            })
        })
        .collect();
    Json(json!({ "nodes": nodes }))
}

async fn cluster_leader(State(s): State<HttpState>) -> Response {
    let st = s.core.status();
    match st
        .leader_id
        .and_then(|l| st.members.iter().find(|m| m.id == l))
    {
        Some(m) => Json(json!({ "id": m.id, "grpc": m.grpc, "http": m.http, "term": st.term }))
            .into_response(),
        None => NodeError::NoLeader.into_response(),
    }
}

#[derive(Deserialize)]
struct DigestParams {
    index: Option<u64>,
}

/// `GET /digest[?index=N]`: `{index, digest, data, tenants}` (hex: the total and two of its
/// parts), or 404 naming the indexes held.
async fn digest(State(s): State<HttpState>, Query(p): Query<DigestParams>) -> Response {
    let r = s.core.digest(p.index);
    if r.held {
        return Json(json!({
            "index": r.index,
            "digest": hex::encode(&r.digest),
            "data": hex::encode(&r.data),
            "tenants": hex::encode(&r.tenants),
            "merkle_root": hex::encode(&r.merkle_root),
        }))
        .into_response();
    }
    let error = if r.off {
        "this node keeps no state digest (started with OPSDECK_DIGEST=off)".to_string()
    } else {
        format!(
            "not held: this node holds indexes {}..{}",
            r.oldest, r.newest
        )
    };
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": error, "index": r.index, "oldest": r.oldest, "newest": r.newest, "off": r.off })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ReadParams {
    #[serde(default)]
    stale: bool,
}

/// `GET /proof/KEY[?stale=true]`: the key's value with its Merkle proof (the file `opsdeck
/// verify-proof` reads, less the other nodes' roots: ask each `GET /digest?index=I`).
async fn proof(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(p): Query<ReadParams>,
) -> Response {
    if let Err(e) = caller.check_tenant(&key) {
        return e.into_response();
    }
    match s.core.proof(key, p.stale).await {
        Ok(proof) => Json(proof).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn kv_get(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(p): Query<ReadParams>,
) -> Response {
    if let Err(e) = caller.check_tenant(&key) {
        return e.into_response();
    }
    match s.core.get(key.clone(), p.stale).await {
        Ok(Some(value)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("key {key:?} not found") })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn kv_put(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    body: Body,
) -> Response {
    if let Err(e) = caller.check_tenant(&key) {
        return e.into_response();
    }
    let value = match read_value(body).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match s.core.put(key, value).await {
        Ok(revision) => Json(json!({ "revision": revision })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn kv_delete(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
) -> Response {
    if let Err(e) = caller.check_tenant(&key) {
        return e.into_response();
    }
    match s.core.delete(key).await {
        Ok(existed) => Json(json!({ "deleted": existed })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let text = s.core.metrics().render(&s.core.frame(), &s.flush, format);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(grpc: &str, http: &str) -> MemberInfo {
        MemberInfo {
            id: 1,
            grpc: grpc.into(),
            http: http.into(),
            voter: true,
        }
    }

    #[test]
    fn a_node_listening_everywhere_is_scraped_at_its_advertised_host() {
        let a = |g, h| scrape_address(&member(g, h));
        assert_eq!(a("10.0.0.1:7101", "10.0.0.1:7201"), "10.0.0.1:7201");
        assert_eq!(
            a("node1.example:7101", "0.0.0.0:7201"),
            "node1.example:7201"
        );
        assert_eq!(a("[fd00::1]:7101", "[::]:7201"), "[fd00::1]:7201");
        assert_eq!(a("", "0.0.0.0:7201"), "0.0.0.0:7201");
        assert_eq!(a("x:1", "node1.example:7201"), "node1.example:7201");
    }
}
