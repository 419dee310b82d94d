//! Concurrent clients doing get / put / delete / compare-and-set on a few register keys
//! (and writes of keys that are written once, for the lost-write check), recording every
//! operation with its invoke and complete times and its outcome.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsdeck_node::pb::{CasRequest, DeleteRequest, GetRequest, PutRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::linearizability::{Event, Op, Outcome, Value};
use crate::support;

/// Register keys live under this prefix, written-once keys under [`UNIQUE`].
pub const REGISTER: &str = "chaos/r/";
pub const UNIQUE: &str = "chaos/u/";

/// How long a client waits for an answer before it records the outcome as unknown.
const OP_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy)]
pub struct Shape {
    pub clients: u64,
    pub registers: u64,
    /// Pause between one client's operations, so the history stays checkable in seconds.
    pub think: Duration,
}

/// Everything the clients saw.
#[derive(Default)]
pub struct Recorded {
    pub history: Vec<Event>,
    /// Written-once keys whose put was acknowledged, and those whose outcome is unknown.
    pub unique_acked: Vec<String>,
    pub unique_unknown: Vec<String>,
    /// Operations that failed for certain (refused before anything was done, or a read).
    pub failed: u64,
    /// Every error seen, by gRPC code and the start of its message.
    pub errors: BTreeMap<String, u64>,
}

pub struct Clients {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Recorded>>,
}

impl Clients {
    /// Starts `shape.clients` clients; each sends every operation to a node picked at random
    /// from `endpoints` (the nodes' own listen addresses: clients are never partitioned).
    pub fn start(endpoints: Vec<String>, shape: Shape, seed: u64, start: Instant) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (1..=shape.clients)
            .map(|id| {
                let client = Client {
                    id,
                    endpoints: endpoints.clone(),
                    shape,
                    rng: SmallRng::seed_from_u64(seed ^ (id << 48)),
                    start,
                    seq: 0,
                    seen: vec![None; shape.registers as usize],
                    recorded: Recorded::default(),
                };
                tokio::spawn(client.run(stop.clone()))
            })
            .collect();
        Clients { stop, tasks }
    }

    /// Stops the clients (each finishes its operation in flight) and merges what they saw.
    pub async fn stop(self) -> Recorded {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Recorded::default();
        for t in self.tasks {
            let r = t.await.expect("client task");
            all.history.extend(r.history);
            all.unique_acked.extend(r.unique_acked);
            all.unique_unknown.extend(r.unique_unknown);
            all.failed += r.failed;
            for (e, n) in r.errors {
                *all.errors.entry(e).or_default() += n;
            }
        }
        all.history.sort_by_key(|e| e.invoked);
        all
    }
}

struct Client {
    id: u64,
    endpoints: Vec<String>,
    shape: Shape,
    rng: SmallRng,
    start: Instant,
    seq: u64,
    /// The last value this client saw in each register: what its compare-and-sets expect.
    seen: Vec<Option<Value>>,
    recorded: Recorded,
}

/// What one call came back with.
enum Answer {
    Done(Outcome),
    /// Certainly not applied: refused before anything happened.
    Refused(tonic::Status),
    /// No answer: it may have been applied.
    Unknown(tonic::Status),
}

impl Client {
    async fn run(mut self, stop: Arc<AtomicBool>) -> Recorded {
        let mut read_back: Option<u64> = None;
        while !stop.load(Ordering::Relaxed) {
            let node = self.rng.random_range(0..self.endpoints.len());
            let addr = self.endpoints[node].clone();
            match read_back.take() {
                // Right after a write, read it back through another node: an acknowledged
                // write that is not yet visible everywhere shows up here.
                Some(reg) => {
                    let other = &self.endpoints[(node + 1) % self.endpoints.len()];
                    self.register_op(other.clone(), reg, Op::Get).await;
                }
                None => {
                    let reg = self.rng.random_range(0..self.shape.registers);
                    let roll = self.rng.random_range(0..100);
                    let op = match roll {
                        0..35 => Op::Get,
                        35..65 => Op::Put(self.fresh_value()),
                        65..75 => Op::Delete,
                        75..90 => Op::Cas {
                            expected: self.seen[reg as usize],
                            new: (self.rng.random_range(0..5) > 0).then(|| self.fresh_value()),
                        },
                        _ => {
                            self.unique_put(addr).await;
                            continue;
                        }
                    };
                    let write = !matches!(op, Op::Get);
                    let done = self.register_op(addr, reg, op).await;
                    if write && done && self.rng.random_bool(0.5) {
                        read_back = Some(reg);
                    }
                }
            }
            if !self.shape.think.is_zero() {
                let jitter = self
                    .rng
                    .random_range(0..=self.shape.think.as_micros() as u64);
                tokio::time::sleep(Duration::from_micros(jitter)).await;
            }
        }
        self.recorded
    }

    fn fresh_value(&mut self) -> Value {
        self.seq += 1;
        (self.id << 32) | self.seq
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Runs one register operation and records it; true if it answered.
    async fn register_op(&mut self, addr: String, reg: u64, op: Op) -> bool {
        let key = format!("{REGISTER}{reg}");
        let invoked = self.now();
        let answer = call(&addr, &key, &op).await;
        let completed = self.now();
        let outcome = match answer {
            Answer::Done(o) => o,
            // A read that got no answer did nothing: not part of the history.
            Answer::Unknown(s) if op != Op::Get => {
                self.note_error(&s).await;
                Outcome::Unknown
            }
            Answer::Refused(s) | Answer::Unknown(s) => {
                self.recorded.failed += 1;
                self.note_error(&s).await;
                return false;
            }
        };
        let seen = &mut self.seen[reg as usize];
        match (&op, &outcome) {
            (_, Outcome::Got(v)) => *seen = *v,
            (Op::Put(v), Outcome::Written) => *seen = Some(*v),
            (Op::Delete, Outcome::Deleted { .. }) => *seen = None,
            (Op::Cas { new, .. }, Outcome::Swapped(true)) => *seen = *new,
            _ => {}
        }
        let known = outcome != Outcome::Unknown;
        self.recorded.history.push(Event {
            client: self.id,
            key,
            op,
            outcome,
            invoked,
            completed: known.then_some(completed),
        });
        known
    }

    async fn unique_put(&mut self, addr: String) {
        self.seq += 1;
        let key = format!("{UNIQUE}c{}-{}", self.id, self.seq);
        let mut c = support::client(&addr);
        let mut req = tonic::Request::new(PutRequest {
            key: key.clone(),
            value: b"1".to_vec(),
        });
        req.set_timeout(OP_TIMEOUT);
        match classify(c.put(req).await.map(|_| ())) {
            Answer::Done(_) => self.recorded.unique_acked.push(key),
            Answer::Unknown(s) => {
                self.recorded.unique_unknown.push(key);
                self.note_error(&s).await;
            }
            Answer::Refused(s) => {
                self.recorded.failed += 1;
                self.note_error(&s).await;
            }
        }
    }

    /// Counts an error, and backs off a little: a client does not hammer a node that is
    /// down or a cluster that is electing.
    async fn note_error(&mut self, s: &tonic::Status) {
        let what: String = s.message().chars().take(48).collect();
        let kind = format!("{:?}: {what}", s.code());
        *self.recorded.errors.entry(kind).or_default() += 1;
        let pause = self.rng.random_range(10..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Sends `op` on `key` to the node at `addr`.
async fn call(addr: &str, key: &str, op: &Op) -> Answer {
    let mut c = support::client(addr);
    let key = key.to_string();
    macro_rules! timed {
        ($msg:expr) => {{
            let mut req = tonic::Request::new($msg);
            req.set_timeout(OP_TIMEOUT);
            req
        }};
    }
    let reply = match op {
        Op::Get => c
            .get(timed!(GetRequest { key, stale: false }))
            .await
            .map(|r| {
                let r = r.into_inner();
                Outcome::Got(r.found.then(|| decode(&r.value)))
            }),
        Op::Put(v) => c
            .put(timed!(PutRequest {
                key,
                value: v.to_string().into_bytes(),
            }))
            .await
            .map(|_| Outcome::Written),
        Op::Delete => c
            .delete(timed!(DeleteRequest { key }))
            .await
            .map(|r| Outcome::Deleted {
                existed: r.into_inner().existed,
            }),
        Op::Cas { expected, new } => c
            .cas(timed!(CasRequest {
                key,
                expected: expected.map(|v| v.to_string().into_bytes()),
                new_value: new.map(|v| v.to_string().into_bytes()),
            }))
            .await
            .map(|r| Outcome::Swapped(r.into_inner().succeeded)),
    };
    classify(reply)
}

/// A value read back. Anything that is not one this harness wrote becomes a value nobody
/// wrote, which the checker then rejects.
fn decode(bytes: &[u8]) -> Value {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Value::MAX)
}

/// Which failures prove the operation was not applied: a refusal of the request itself, or
/// no connection at all. Everything else (a deadline, a lost connection, a leader that
/// stepped down) may have been applied.
fn classify<T: Into<Outcome>>(reply: Result<T, tonic::Status>) -> Answer {
    match reply {
        Ok(o) => Answer::Done(o.into()),
        Err(s) => match s.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::ResourceExhausted => Answer::Refused(s),
            tonic::Code::Unavailable if refused_connection(&s) => Answer::Refused(s),
            // The node's NoLeader: refused before it reached any log (see RaftSink::write).
            // Were that wrong, a write dropped from the history here would be seen by a read
            // later, and the check would fail on a value nobody wrote.
            tonic::Code::Unavailable if s.message().starts_with("no leader") => Answer::Refused(s),
            _ => Answer::Unknown(s),
        },
    }
}

fn refused_connection(s: &tonic::Status) -> bool {
    let text = format!("{s:?}");
    text.contains("Connection refused") || text.contains("tcp connect error")
}

impl From<()> for Outcome {
    fn from(_: ()) -> Outcome {
        Outcome::Written
    }
}
