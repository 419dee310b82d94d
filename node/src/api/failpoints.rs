//! `/debug/failpoints` (only in a build with the test-only `failpoints` feature; without it
//! the routes do not exist), as TiKV's status server's `/fail/NAME`:
//!
//! - `GET /debug/failpoints`: every failpoint, its actions (`off` when none) and where it is;
//! - `PUT /debug/failpoints/NAME` with a `fail` action string as the body (`return(EIO)`,
//!   `sleep(2000)`, `50%return(ENOSPC)`, `off`, …): sets it (`off` clears it).
//!
//! Both need an admin key (`security::auth::http_need`: everything under `/debug/`), and the
//! handlers check the role again. The names are `failpoint::NAMES`; others are refused.

use axum::Router;

#[cfg(feature = "failpoints")]
use axum::{
    extract::{Extension, Path},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
    Json,
};
#[cfg(feature = "failpoints")]
use serde_json::json;

#[cfg(feature = "failpoints")]
use crate::failpoint;
#[cfg(feature = "failpoints")]
use crate::security::auth::Caller;
#[cfg(feature = "failpoints")]
use crate::security::keys::Role;

/// The failpoint routes, to merge into the node's router (inside its key check).
#[cfg(feature = "failpoints")]
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/debug/failpoints", get(list))
        .route("/debug/failpoints/{name}", put(set))
}

/// Without the `failpoints` feature there are none.
#[cfg(not(feature = "failpoints"))]
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}

/// Longest action string accepted.
#[cfg(feature = "failpoints")]
const MAX_ACTIONS: usize = 1024;

#[cfg(feature = "failpoints")]
fn refused(code: StatusCode, error: String, kind: &str) -> Response {
    (code, Json(json!({ "error": error, "kind": kind }))).into_response()
}

#[cfg(feature = "failpoints")]
fn not_admin(caller: &Caller) -> Option<Response> {
    (caller.role != Role::Admin).then(|| {
        refused(
            StatusCode::FORBIDDEN,
            format!(
                "API key {} has role {}, and failpoints need admin",
                caller.key_id, caller.role
            ),
            "permission_denied",
        )
    })
}

#[cfg(feature = "failpoints")]
async fn list(Extension(caller): Extension<Caller>) -> Response {
    if let Some(r) = not_admin(&caller) {
        return r;
    }
    let points: Vec<_> = failpoint::list()
        .into_iter()
        .map(|(name, actions, at)| json!({ "name": name, "actions": actions, "at": at }))
        .collect();
    Json(json!({ "failpoints": points })).into_response()
}

#[cfg(feature = "failpoints")]
async fn set(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = not_admin(&caller) {
        return r;
    }
    if let Err(e) = failpoint::known(&name) {
        return refused(StatusCode::NOT_FOUND, e, "not_found");
    }
    if body.len() > MAX_ACTIONS {
        return refused(
            StatusCode::BAD_REQUEST,
            format!(
                "actions are {} bytes, over the limit of {MAX_ACTIONS}",
                body.len()
            ),
            "invalid",
        );
    }
    let Ok(actions) = std::str::from_utf8(&body) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "actions must be UTF-8 text, e.g. return(EIO)".into(),
            "invalid",
        );
    };
    let actions = actions.trim();
    if actions.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "no actions given: send e.g. return(EIO), sleep(2000) or off as the body".into(),
            "invalid",
        );
    }
    match failpoint::set(&name, actions) {
        Ok(()) => {
            tracing::warn!(failpoint = %name, actions, by = %caller.key_id, "failpoint set over HTTP");
            Json(json!({ "name": name, "actions": actions })).into_response()
        }
        Err(e) => refused(StatusCode::BAD_REQUEST, e, "invalid"),
    }
}
