//! Requests from the network to a real node: one single-node cluster started in-process per
//! fuzz process with `opsdeck_node::server::start` (temp data dir under /dev/shm, the real
//! HTTP router and gRPC services behind their real auth layers, rate limiting off so keyed
//! requests reach the handlers), reached over loopback TCP by a hyper client: HTTP/1.1 to
//! the HTTP port, HTTP/2 (gRPC) to the gRPC port. Nothing is mocked.
//!
//! Input (text head, blank line, body):
//!
//! ```text
//! METHOD PATH              HTTP request; or `GRPC PATH` for a gRPC call (POST, h2)
//! Name: value              any headers; `$ADMIN`, `$READ`, `$WRITE` (tenant acme) and
//!                          `$SECRET` (the cluster secret) in a value become real secrets
//! raw                      gRPC only: send BODY as the HTTP/2 body, without the 5-byte
//!                          gRPC frame header the target adds otherwise
//!
//! BODY                     request body (for gRPC: the protobuf message)
//! ```
//!
//! Secrets are not filled in for calls that would take the one node out of its own cluster
//! (AddLearner, ChangeMembership, TransferLeader) or make it follow a fabricated peer (the
//! `Raft` service): those reach the auth check with a wrong secret, and the decoding of
//! their messages is fuzzed by `wire_decode`. Everything else, including `Propose` and
//! `ReadIndex` with the cluster secret, runs for real.
//!
//! A panic anywhere in the node (any thread) aborts the process: libFuzzer records the
//! input. So does Raft stopping (the harness checks openraft's `running_state` after each
//! input). A request that never gets an answer shows as a libFuzzer timeout. Answers with
//! HTTP 500 (or another 5xx but 503/504/507) and the node's own gRPC INTERNAL errors are
//! printed once each to stderr for review.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use libfuzzer_sys::fuzz_target;
use opsdeck_node::security::cluster_secret::{self, ClusterSecret};
use opsdeck_node::security::keys::Role;
use opsdeck_node::server::{self, NodeConfig, RunningNode};
use opsdeck_node::telemetry::logs::LogHub;
use sha2::{Digest, Sha256};

struct Harness {
    rt: tokio::runtime::Runtime,
    node: RunningNode,
    /// `$ADMIN`, `$READ`, `$WRITE`, `$SECRET`.
    secrets: [(&'static [u8], Vec<u8>); 4],
    h1: Mutex<Option<http1::SendRequest<Full<Bytes>>>>,
    h2: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
    reported: Mutex<HashSet<String>>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(start)
}

fn start() -> Harness {
    let dir = tempfile::Builder::new()
        .prefix("opsdeck-fuzz-node-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let data = dir.path().join("data");
    // The first admin key comes from a file, so the harness knows its secret.
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    let admin = format!("odk_{}", hex::encode(Sha256::digest(seed.as_bytes())));
    let admin_file = dir.path().join("admin.key.in");
    std::fs::write(&admin_file, &admin).expect("write the admin key file");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut config = NodeConfig::new(1, localhost, localhost, data.clone());
    config.init = true;
    config.admin_key_file = Some(admin_file);
    config.rate_limit = None;
    let node = rt
        .block_on(server::start(config, LogHub::new()))
        .expect("the node starts");
    let (_, read) = rt
        .block_on(node.core.create_key("fuzz", Role::Read, vec![], None))
        .expect("create a read key");
    let (_, write) = rt
        .block_on(
            node.core
                .create_key("fuzz", Role::Write, vec!["acme".into()], None),
        )
        .expect("create a write key");
    let secret = ClusterSecret::read(&data.join(cluster_secret::FILE_NAME)).expect("secret");
    let secret = secret.header().to_str().expect("ascii secret").to_string();
    eprintln!(
        "node_api: node 1 serving gRPC {} HTTP {} from {}",
        node.grpc,
        node.http,
        data.display()
    );
    Harness {
        rt,
        node,
        secrets: [
            (b"$ADMIN", admin.into_bytes()),
            (b"$READ", read.into_bytes()),
            (b"$WRITE", write.into_bytes()),
            (b"$SECRET", secret.into_bytes()),
        ],
        h1: Mutex::new(None),
        h2: Mutex::new(None),
        reported: Mutex::new(HashSet::new()),
        _dir: dir,
    }
}

/// One decoded input.
struct Call<'a> {
    method: &'a [u8],
    path: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    raw: bool,
    body: &'a [u8],
}

fn parse(data: &[u8]) -> Call<'_> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &data[data.len()..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, path) = match first.iter().position(|b| *b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let mut call = Call {
        method,
        path,
        headers: Vec::new(),
        raw: false,
        body,
    };
    for line in lines {
        if line == b"raw" {
            call.raw = true;
        } else if let Some(i) = line.iter().position(|b| *b == b':') {
            let value = &line[i + 1..];
            let skip = value.iter().take_while(|b| **b == b' ').count();
            call.headers.push((&line[..i], &value[skip..]));
        }
    }
    call
}

fn percent_decoded_lowercase(path: &[u8]) -> Vec<u8> {
    percent_decoded(path).to_ascii_lowercase()
}

fn percent_decoded(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if path[i] == b'%' && i + 2 < path.len() {
            if let (Some(h), Some(l)) = (hex(path[i + 1]), hex(path[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

/// gRPC calls the harness sends without real credentials (see the module docs).
fn unauthenticated_only(path: &[u8]) -> bool {
    let p = percent_decoded_lowercase(path);
    let has = |s: &[u8]| p.windows(s.len()).any(|w| w == s);
    has(b"raft") || has(b"addlearner") || has(b"changemembership") || has(b"transferleader")
}

impl Harness {
    fn fill(&self, value: &[u8], real: bool) -> Vec<u8> {
        let mut out = value.to_vec();
        for (token, secret) in &self.secrets {
            let with: &[u8] = if real { secret } else { b"odk_not-a-real-key" };
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(token) {
                    next.extend_from_slice(with);
                    i += token.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }

    fn report(&self, what: String) {
        let mut seen = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < 1000 && seen.insert(what.clone()) {
            eprintln!("node_api: server error: {what}");
        }
    }

    fn run(&'static self, call: Call<'_>) {
        if call.method == b"GRPC" {
            self.rt.block_on(self.grpc(call));
        } else {
            self.rt.block_on(self.http(call));
        }
    }

    async fn http(&'static self, call: Call<'_>) {
        let Ok(method) = Method::from_bytes(call.method) else {
            return;
        };
        let Ok(uri) = Uri::try_from(call.path) else {
            return;
        };
        let mut req = Request::new(Full::new(Bytes::copy_from_slice(call.body)));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let host = HeaderValue::from_str(&self.node.http.to_string()).expect("host");
        req.headers_mut().insert(hyper::header::HOST, host);
        for (name, value) in &call.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_bytes(&self.fill(value, true)),
            ) else {
                continue;
            };
            req.headers_mut().append(name, value);
        }
        let path = req.uri().path().to_string();
        let Some(mut sender) = self.h1_sender().await else {
            return;
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(_) => return, // refused by hyper on either side; the connection is dropped
        };
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        *self.h1.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
        // 503/504: no leader or a timeout; 507: a tenant's quota. Both are answers.
        if status.is_server_error() && ![503, 504, 507].contains(&status.as_u16()) {
            let body = body.map(|b| String::from_utf8_lossy(&b).into_owned());
            self.report(format!("HTTP {status} on {path}: {body:?}"));
        }
    }

    async fn h1_sender(&self) -> Option<http1::SendRequest<Full<Bytes>>> {
        let cached = self.h1.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut s) = cached {
            if s.ready().await.is_ok() {
                return Some(s);
            }
        }
        let tcp = tokio::net::TcpStream::connect(self.node.http).await.ok()?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.ready().await.ok()?;
        Some(sender)
    }

    async fn h2_sender(&self) -> Option<http2::SendRequest<Full<Bytes>>> {
        let cached = self.h2.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut s) = cached {
            if s.ready().await.is_ok() {
                return Some(s);
            }
        }
        let tcp = tokio::net::TcpStream::connect(self.node.grpc).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.ready().await.ok()?;
        Some(sender)
    }

    async fn grpc(&'static self, call: Call<'_>) {
        let Ok(path) = PathAndQuery::try_from(call.path) else {
            return;
        };
        let authority = Authority::try_from(self.node.grpc.to_string()).expect("authority");
        let Ok(uri) = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path)
            .build()
        else {
            return;
        };
        let real = !unauthenticated_only(call.path);
        let body = if call.raw {
            Bytes::copy_from_slice(call.body)
        } else {
            let mut framed = Vec::with_capacity(call.body.len() + 5);
            framed.push(0);
            framed.extend_from_slice(&(call.body.len() as u32).to_be_bytes());
            framed.extend_from_slice(call.body);
            Bytes::from(framed)
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("te", HeaderValue::from_static("trailers"));
        for (name, value) in &call.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_bytes(&self.fill(value, real)),
            ) else {
                continue;
            };
            h.insert(name, value);
        }
        let path = req.uri().path().to_string();
        let streaming = path.ends_with("/Watch");
        let Some(mut sender) = self.h2_sender().await else {
            return;
        };
        let sent = sender.send_request(req);
        *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
        let Ok(resp) = sent.await else {
            return;
        };
        let head = resp.headers().clone();
        let mut body = resp.into_body();
        let trailers = if streaming {
            // Watch never ends: the first frame (or trailers, for a refusal) is enough.
            let _ = tokio::time::timeout(Duration::from_secs(2), body.frame()).await;
            None
        } else {
            match body.collect().await {
                Ok(c) => c.trailers().cloned(),
                Err(_) => None,
            }
        };
        // A trailers-only answer (most refusals) carries the status in its headers.
        let get = |name: &str| {
            head.get(name)
                .or_else(|| trailers.as_ref()?.get(name))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        if get("grpc-status").as_deref() == Some("13") {
            let message = String::from_utf8_lossy(&percent_decoded(
                get("grpc-message").unwrap_or_default().as_bytes(),
            ))
            .into_owned();
            // tonic answers undecodable protobuf and bad framing with INTERNAL itself
            // (tonic-prost `from_decode_error`); only the node's own INTERNALs are news.
            let tonic = [
                "failed to decode Protobuf message",
                "protocol error",
                "Missing request message",
                "Unexpected EOF",
            ];
            if !tonic.iter().any(|t| message.starts_with(t)) {
                self.report(format!("gRPC INTERNAL on {path}: {message}"));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.run(parse(data));
    // A node whose Raft stopped (a storage error in apply, a fatal error in the core)
    // answers everything with errors from then on: as bad as a panic, and silent. Blame
    // this input (or, if the stop is published a moment late, the next one).
    if let Err(fatal) = &h.node.raft.metrics().borrow().running_state {
        panic!("the node's Raft stopped: {fatal}");
    }
});
