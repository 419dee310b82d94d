//! The check every client call passes: who is calling (API key, or a fellow node with the
//! cluster secret), whether their role allows the call, and whether their rate allows it
//! now. gRPC calls are checked by a tower layer from the method path, HTTP calls by an
//! axum middleware from the route; both put the [`Caller`] into the request's extensions
//! for handlers that must also check the tenant of a key.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{self, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use serde_json::json;

use super::cluster_secret::{ClusterSecret, HEADER as SECRET_HEADER};
use super::keys::{hash_secret, KeyRegistry, Role};
use super::quota::tenant_of;
use crate::clock::unix_millis;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (liveness checks).
    Open,
    Role(Role),
    /// Only fellow nodes (Raft traffic, forwarded writes and reads).
    Internal,
}

/// The gRPC method paths and what they need. A method not listed needs an admin key, so a
/// new call is never open by accident.
pub fn grpc_need(path: &str) -> Need {
    match path {
        "/opsdeck.v1.Node/Get"
        | "/opsdeck.v1.Node/Scan"
        | "/opsdeck.v1.Node/Status"
        | "/opsdeck.v1.Node/Digest"
        | "/opsdeck.v1.Node/Proof"
        | "/opsdeck.v1.Node/Watch" => Need::Role(Role::Read),
        "/opsdeck.v1.Node/Put" | "/opsdeck.v1.Node/Delete" | "/opsdeck.v1.Node/Cas" => {
            Need::Role(Role::Write)
        }
        "/opsdeck.v1.Node/Propose" | "/opsdeck.v1.Node/ReadIndex" => Need::Internal,
        p if p.starts_with("/opsdeck.v1.Raft/") => Need::Internal,
        _ => Need::Role(Role::Admin),
    }
}

/// HTTP paths anyone may ask: the probes of supervisors and load balancers, which have
/// no key (they say only whether this node serves, never any data).
pub const OPEN_HTTP_PATHS: [&str; 3] = ["/health", "/livez", "/readyz"];

/// HTTP paths a scrape credential (a `metrics` key) may read: Prometheus' scrape and its
/// service discovery. Everything else needs at least a read key.
pub const SCRAPE_HTTP_PATHS: [&str; 2] = ["/metrics", "/sd/prometheus"];

/// The HTTP routes and what they need.
pub fn http_need(method: &Method, path: &str) -> Need {
    if OPEN_HTTP_PATHS.contains(&path) {
        Need::Open
    } else if path.starts_with("/debug/") {
        // Failpoints (test builds) and whatever debug route comes next.
        Need::Role(Role::Admin)
    } else if SCRAPE_HTTP_PATHS.contains(&path) && matches!(*method, Method::GET | Method::HEAD) {
        Need::Role(Role::Metrics)
    } else if path.starts_with("/kv/") && !matches!(*method, Method::GET | Method::HEAD) {
        Need::Role(Role::Write)
    } else {
        Need::Role(Role::Read)
    }
}

/// Who made a call that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Key id; `node` for a fellow node, `anonymous` on open routes.
    pub key_id: String,
    pub role: Role,
    pub tenants: Vec<String>,
}

impl Caller {
    fn node() -> Caller {
        Caller {
            key_id: "node".into(),
            role: Role::Admin,
            tenants: Vec::new(),
        }
    }

    /// Refuses a key (or a scan prefix) outside the caller's tenants.
    pub fn check_tenant(&self, key: &str) -> Result<(), AuthError> {
        let tenant = tenant_of(key);
        if self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.iter().any(|k| k == t)) {
            return Ok(());
        }
        Err(AuthError::Tenant {
            key_id: self.key_id.clone(),
            tenant: tenant.map(str::to_string),
            allowed: self.tenants.clone(),
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no API key given: send `authorization: Bearer KEY` or `x-api-key: KEY` \
         (CLI and console: --key-file FILE or OPSDECK_API_KEY; a dev cluster's admin key is DIR/admin.key)"
    )]
    Missing,
    #[error("API key not recognised: check the key file, or ask an admin for a key (`opsdeck keys create`)")]
    Unknown,
    #[error("{0}; ask an admin for a new key")]
    Refused(String),
    #[error("API key {key_id} has role {role}, and this call needs {need}")]
    Forbidden {
        key_id: String,
        role: Role,
        need: Role,
    },
    #[error("API key {key_id} may not touch {}: it is limited to tenants {allowed:?}", match .tenant { Some(t) => format!("tenant {t:?}"), None => "keys outside a tenant (no `tenant/` prefix)".into() })]
    Tenant {
        key_id: String,
        tenant: Option<String>,
        allowed: Vec<String>,
    },
    #[error("rate limited, retry after {retry_after_ms} ms (key {key_id})")]
    RateLimited { key_id: String, retry_after_ms: u64 },
    #[error("this call is for cluster members only (missing or wrong cluster secret)")]
    NotAMember,
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            AuthError::Missing
            | AuthError::Unknown
            | AuthError::Refused(_)
            | AuthError::NotAMember => tonic::Status::unauthenticated(msg),
            AuthError::Forbidden { .. } | AuthError::Tenant { .. } => {
                tonic::Status::permission_denied(msg)
            }
            AuthError::RateLimited { .. } => tonic::Status::resource_exhausted(msg),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let code = match &self {
            AuthError::Missing
            | AuthError::Unknown
            | AuthError::Refused(_)
            | AuthError::NotAMember => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } | AuthError::Tenant { .. } => StatusCode::FORBIDDEN,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        };
        let body = axum::Json(json!({ "error": self.to_string(), "kind": self.kind() }));
        match &self {
            AuthError::RateLimited { retry_after_ms, .. } => {
                let secs = retry_after_ms.div_ceil(1000).max(1).to_string();
                (code, [(http::header::RETRY_AFTER, secs)], body).into_response()
            }
            _ => (code, body).into_response(),
        }
    }
}

impl AuthError {
    /// Short label for error counters.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::Unknown | AuthError::Refused(_) => "unauthenticated",
            AuthError::NotAMember => "not_a_member",
            AuthError::Forbidden { .. } | AuthError::Tenant { .. } => "permission_denied",
            AuthError::RateLimited { .. } => "rate_limited",
        }
    }
}

/// A token bucket per key: `requests` per `per`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Default for RateLimit {
    /// 2000 requests a minute with bursts of 200, as the seed's nginx limits.
    fn default() -> Self {
        RateLimit {
            requests: 2000,
            per: Duration::from_secs(60),
            burst: 200,
        }
    }
}

pub struct Authenticator {
    keys: KeyRegistry,
    secret: ClusterSecret,
    /// The rate in effect and its buckets; replaced whole by [`Authenticator::set_rate`].
    limiter: RwLock<(Option<RateLimit>, Option<Arc<KeyedLimiter>>)>,
    /// Keys seen since the last report, with when (reported by [`Authenticator::take_uses`]).
    uses: Mutex<HashMap<String, i64>>,
}

impl Authenticator {
    /// `rate: None` turns rate limiting off.
    pub fn new(keys: KeyRegistry, secret: ClusterSecret, rate: Option<RateLimit>) -> Authenticator {
        Authenticator {
            keys,
            secret,
            limiter: RwLock::new((rate, limiter(rate))),
            uses: Mutex::new(HashMap::new()),
        }
    }

    /// Puts `rate` in effect from the next request on (SIGHUP). A changed rate starts
    /// every key with a full bucket. Returns whether it changed.
    pub fn set_rate(&self, rate: Option<RateLimit>) -> bool {
        let mut current = self.limiter.write().unwrap_or_else(|p| p.into_inner());
        if current.0 == rate {
            return false;
        }
        *current = (rate, limiter(rate));
        true
    }

    pub fn rate(&self) -> Option<RateLimit> {
        self.limiter.read().unwrap_or_else(|p| p.into_inner()).0
    }

    pub fn check(&self, headers: &HeaderMap, need: Need) -> Result<Caller, AuthError> {
        if need == Need::Open {
            return Ok(Caller {
                key_id: "anonymous".into(),
                role: Role::Read,
                tenants: Vec::new(),
            });
        }
        if let Some(presented) = headers.get(SECRET_HEADER) {
            return match self.secret.matches(presented.as_bytes()) {
                true => Ok(Caller::node()),
                false => Err(AuthError::NotAMember),
            };
        }
        let Need::Role(need) = need else {
            return Err(AuthError::NotAMember);
        };
        let token = bearer(headers).ok_or(AuthError::Missing)?;
        let key = self
            .keys
            .lookup(&hash_secret(token))
            .ok_or(AuthError::Unknown)?;
        let now = unix_millis();
        if let Some(why) = key.refusal(now) {
            return Err(AuthError::Refused(why));
        }
        if key.role < need {
            return Err(AuthError::Forbidden {
                key_id: key.id,
                role: key.role,
                need,
            });
        }
        // Admin keys are not limited, so an operator can always act during an incident.
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone();
        if let (Some(limiter), true) = (limiter, key.role < Role::Admin) {
            if let Err(not_until) = limiter.check_key(&key.id) {
                let wait = not_until.wait_time_from(limiter.clock().now());
                return Err(AuthError::RateLimited {
                    key_id: key.id,
                    retry_after_ms: (wait.as_millis() as u64).max(1),
                });
            }
        }
        self.uses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.id.clone(), now);
        Ok(Caller {
            key_id: key.id,
            role: key.role,
            tenants: key.tenants,
        })
    }

    /// The keys used since the last call, with their latest use.
    pub fn take_uses(&self) -> Vec<(String, i64)> {
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = uses.drain().collect();
        out.sort();
        out
    }
}

type KeyedLimiter = DefaultKeyedRateLimiter<String>;

fn limiter(rate: Option<RateLimit>) -> Option<Arc<KeyedLimiter>> {
    let r = rate?;
    let period = r.per.checked_div(r.requests.max(1))?;
    let quota = governor::Quota::with_period(period)?.allow_burst(NonZeroU32::new(r.burst.max(1))?);
    Some(Arc::new(RateLimiter::keyed(quota)))
}

/// The API key of a request: `authorization: Bearer KEY` or `x-api-key: KEY`. A bare
/// `authorization: odk_...` passes too: Prometheus 2.42 sends that from `http_sd_configs`
/// whose `authorization` names no `type` (it leaves out its own `Bearer` default there).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        if v.starts_with(super::keys::SECRET_PREFIX) && !v.contains(' ') {
            return Some(v);
        }
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The caller a handler was reached by (put there by the gRPC layer or HTTP middleware).
pub fn caller_of<B>(req: &tonic::Request<B>) -> Result<&Caller, tonic::Status> {
    req.extensions()
        .get::<Caller>()
        .ok_or_else(|| tonic::Status::internal("request reached a handler without an auth check"))
}

/// Tower layer checking every gRPC call before it reaches a service.
#[derive(Clone)]
pub struct GrpcAuthLayer(pub Arc<Authenticator>);

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;
    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            auth: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.auth.check(req.headers(), grpc_need(req.uri().path())) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(e) => {
                let status = tonic::Status::from(e);
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// axum middleware checking every HTTP request.
pub async fn http_middleware(
    axum::extract::State(auth): axum::extract::State<Arc<Authenticator>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match auth.check(req.headers(), http_need(req.method(), req.uri().path())) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::keys::{generate, KeyRecord};

    fn setup(rate: Option<RateLimit>) -> (Authenticator, Vec<(String, Role)>) {
        let registry = KeyRegistry::default();
        let mut secrets = Vec::new();
        let mut records = Vec::new();
        for (role, tenants, expires, revoked) in [
            (Role::Read, vec![], None, None),
            (Role::Write, vec!["acme".to_string()], None, None),
            (Role::Admin, vec![], None, None),
            (Role::Admin, vec![], Some(1), None),
            (Role::Admin, vec![], None, Some(1)),
        ] {
            let k = generate();
            records.push(KeyRecord {
                id: k.id,
                hash: k.hash,
                role,
                tenants,
                created_ms: 0,
                expires_ms: expires,
                revoked_ms: revoked,
                last_used_ms: None,
                successor: None,
            });
            secrets.push((k.secret, role));
        }
        registry.replace(records);
        let dir = tempfile::tempdir().unwrap();
        let secret = ClusterSecret::load_or_create(dir.path(), None, true).unwrap();
        (Authenticator::new(registry, secret, rate), secrets)
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn keys_roles_and_refusals() {
        let (auth, keys) = setup(None);
        let read = Need::Role(Role::Read);
        assert!(matches!(
            auth.check(&HeaderMap::new(), read),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            auth.check(&headers("authorization", "Bearer odk_garbage"), read),
            Err(AuthError::Unknown)
        ));
        let reader = headers("authorization", &format!("Bearer {}", keys[0].0));
        assert_eq!(auth.check(&reader, read).unwrap().role, Role::Read);
        assert!(matches!(
            auth.check(&reader, Need::Role(Role::Write)),
            Err(AuthError::Forbidden {
                need: Role::Write,
                ..
            })
        ));
        // Without a scheme, as Prometheus' service discovery may send it.
        let bare = headers("authorization", &keys[0].0);
        assert_eq!(auth.check(&bare, read).unwrap().role, Role::Read);
        assert!(matches!(
            auth.check(&headers("authorization", "Basic abc"), read),
            Err(AuthError::Missing)
        ));
        let writer = headers("x-api-key", &keys[1].0);
        let caller = auth.check(&writer, Need::Role(Role::Write)).unwrap();
        assert!(caller.check_tenant("acme/x").is_ok());
        assert!(matches!(
            caller.check_tenant("other/x"),
            Err(AuthError::Tenant { .. })
        ));
        assert!(matches!(
            caller.check_tenant("plain"),
            Err(AuthError::Tenant { .. })
        ));
        let expired = headers("authorization", &format!("bearer {}", keys[3].0));
        assert!(
            matches!(auth.check(&expired, read), Err(AuthError::Refused(m)) if m.contains("expired"))
        );
        let revoked = headers("authorization", &format!("Bearer {}", keys[4].0));
        assert!(
            matches!(auth.check(&revoked, read), Err(AuthError::Refused(m)) if m.contains("revoked"))
        );
        // A user key never passes for a node, whatever its role.
        let admin = headers("authorization", &format!("Bearer {}", keys[2].0));
        assert!(matches!(
            auth.check(&admin, Need::Internal),
            Err(AuthError::NotAMember)
        ));
        assert!(matches!(
            auth.check(&headers(SECRET_HEADER, "wrong"), Need::Internal),
            Err(AuthError::NotAMember)
        ));
        assert!(auth.check(&HeaderMap::new(), Need::Open).is_ok());
        let used: Vec<_> = auth.take_uses().into_iter().map(|(id, _)| id).collect();
        assert_eq!(used.len(), 2, "{used:?}");
        assert!(auth.take_uses().is_empty());
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_with_a_retry_time_and_admins_are_exempt() {
        let rate = RateLimit {
            requests: 10,
            per: Duration::from_secs(10),
            burst: 3,
        };
        let (auth, keys) = setup(Some(rate));
        let reader = headers("x-api-key", &keys[0].0);
        for _ in 0..3 {
            auth.check(&reader, Need::Role(Role::Read)).unwrap();
        }
        match auth.check(&reader, Need::Role(Role::Read)) {
            Err(AuthError::RateLimited { retry_after_ms, .. }) => {
                assert!((1..=1000).contains(&retry_after_ms), "{retry_after_ms}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        let admin = headers("x-api-key", &keys[2].0);
        for _ in 0..50 {
            auth.check(&admin, Need::Role(Role::Admin)).unwrap();
        }
    }

    #[test]
    fn a_new_rate_takes_effect_at_the_next_request() {
        let tight = RateLimit {
            requests: 1,
            per: Duration::from_secs(60),
            burst: 1,
        };
        let (auth, keys) = setup(Some(tight));
        let reader = headers("x-api-key", &keys[0].0);
        auth.check(&reader, Need::Role(Role::Read)).unwrap();
        assert!(auth.check(&reader, Need::Role(Role::Read)).is_err());
        assert!(!auth.set_rate(Some(tight)), "the same rate is no change");
        let loose = RateLimit {
            burst: 100,
            ..tight
        };
        assert!(auth.set_rate(Some(loose)));
        assert_eq!(auth.rate(), Some(loose));
        for _ in 0..50 {
            auth.check(&reader, Need::Role(Role::Read)).unwrap();
        }
        assert!(auth.set_rate(None));
        for _ in 0..500 {
            auth.check(&reader, Need::Role(Role::Read)).unwrap();
        }
    }

    #[test]
    fn every_method_not_listed_needs_admin() {
        assert_eq!(grpc_need("/opsdeck.v1.Node/Put"), Need::Role(Role::Write));
        assert_eq!(grpc_need("/opsdeck.v1.Node/Watch"), Need::Role(Role::Read));
        assert_eq!(
            grpc_need("/opsdeck.v1.Node/AddLearner"),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            grpc_need("/opsdeck.v1.Node/SomethingNew"),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            grpc_need("/opsdeck.v1.Node/TransferLeader"),
            Need::Role(Role::Admin)
        );
        assert_eq!(grpc_need("/opsdeck.v1.Raft/ElectionHint"), Need::Internal);
        assert_eq!(grpc_need("/opsdeck.v1.Raft/Vote"), Need::Internal);
        assert_eq!(http_need(&Method::PUT, "/kv/a"), Need::Role(Role::Write));
        assert_eq!(
            http_need(&Method::GET, "/metrics"),
            Need::Role(Role::Metrics)
        );
        assert_eq!(
            http_need(&Method::GET, "/sd/prometheus"),
            Need::Role(Role::Metrics)
        );
        assert_eq!(http_need(&Method::POST, "/metrics"), Need::Role(Role::Read));
        assert_eq!(
            http_need(&Method::GET, "/cluster/nodes"),
            Need::Role(Role::Read)
        );
        assert_eq!(
            http_need(&Method::GET, "/debug/failpoints"),
            Need::Role(Role::Admin)
        );
        for open in ["/health", "/livez", "/readyz"] {
            assert_eq!(http_need(&Method::GET, open), Need::Open);
        }
        assert_eq!(http_need(&Method::GET, "/livez/x"), Need::Role(Role::Read));
    }

    #[test]
    fn a_metrics_key_reaches_the_scrape_paths_and_nothing_else() {
        let (auth, keys) = setup(None);
        // Every other role may scrape too.
        for (secret, role) in &keys[..3] {
            let h = headers("x-api-key", secret);
            assert_eq!(
                auth.check(&h, http_need(&Method::GET, "/metrics"))
                    .unwrap()
                    .role,
                *role
            );
        }
        let registry_key = generate();
        let records = vec![KeyRecord {
            id: "kmetrics".into(),
            hash: registry_key.hash,
            role: Role::Metrics,
            tenants: vec![],
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
            last_used_ms: None,
            successor: None,
        }];
        auth.keys.replace(records);
        let scraper = headers("authorization", &format!("Bearer {}", registry_key.secret));
        for path in SCRAPE_HTTP_PATHS {
            let need = http_need(&Method::GET, path);
            assert_eq!(auth.check(&scraper, need).unwrap().role, Role::Metrics);
        }
        for (method, path) in [
            (Method::GET, "/kv/acme/x"),
            (Method::PUT, "/kv/acme/x"),
            (Method::GET, "/cluster/info"),
            (Method::GET, "/cluster/nodes"),
        ] {
            assert!(
                matches!(
                    auth.check(&scraper, http_need(&method, path)),
                    Err(AuthError::Forbidden {
                        role: Role::Metrics,
                        ..
                    })
                ),
                "{method} {path}"
            );
        }
        for method in [
            "/opsdeck.v1.Node/Get",
            "/opsdeck.v1.Node/Scan",
            "/opsdeck.v1.Node/Status",
            "/opsdeck.v1.Node/Watch",
            "/opsdeck.v1.Node/Put",
            "/opsdeck.v1.Node/ListKeys",
        ] {
            assert!(
                matches!(
                    auth.check(&scraper, grpc_need(method)),
                    Err(AuthError::Forbidden { .. })
                ),
                "{method}"
            );
        }
    }
}
