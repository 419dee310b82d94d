//! Notifications without Prometheus: the console and `opsdeck alerts --follow` send the
//! alerts that fire and resolve to Alertmanager (API v2) and to JSON or Slack-compatible
//! webhooks, and turn the console's acks and silences into Alertmanager silences.
//!
//! ```ignore
//! let mut n = Notifier::start(receivers, source)?;   // one tokio task per receiver
//! n.observe(now_ms, &evaluator.observe(now_ms, &reports));  // never waits
//! n.silence(&id, now_ms, until_ms, "acknowledged");  // Alertmanager receivers only
//! for d in n.deliveries() { /* ok/failed, when, why */ }
//! ```
//!
//! Each receiver has its own task and a queue of at most [`QUEUE`] jobs; when full, the
//! oldest job is dropped (and counted), so a dead or hanging receiver costs the caller
//! nothing but a push. Each request has the receiver's timeout and is retried with
//! exponential backoff (backon: 250 ms, doubling, at most 4 s apart, 3 retries) on a
//! timeout, a connection failure, 429 or 5xx; a 4xx is not retried. Alertmanager is sent
//! every firing alert again every [`RESEND`] with `endsAt` = now + 4 × RESEND, the way
//! Prometheus does, so an alert lost to a failed delivery comes back and one whose sender
//! died resolves by itself.

/// The receivers' settings live with the rest of `config.toml`.
pub use crate::config::notify as config;
pub mod payload;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::alerts::{AlertId, State, Transition};
use crate::client::NodeReport;
pub use config::{Format, Kind, Receiver};
pub use payload::{Notice, Source};

/// Jobs waiting per receiver; beyond this the oldest is dropped.
pub const QUEUE: usize = 64;
/// How often Alertmanager is sent every firing alert again.
pub const RESEND: Duration = Duration::from_secs(30);
const RETRIES: usize = 3;

/// What a receiver task is asked to send.
#[derive(Clone, Debug)]
enum Job {
    /// Alerts that changed (or, for Alertmanager, every firing one again).
    Alerts(Vec<Notice>, Source),
    /// An Alertmanager silence; `what` names it in the outcome.
    Silence { body: Value, what: String },
}

/// The last delivery to a receiver, as the Alerts pane and `--follow` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub at_ms: i64,
    /// What was sent, or why it failed.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub name: String,
    pub kind: Kind,
    pub last: Option<Outcome>,
    /// Jobs dropped because the queue was full.
    pub dropped: u64,
}

/// A bounded queue that drops its oldest job when full.
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Notify,
}

impl Queue {
    /// Adds `job`; true if an older job had to be dropped for it.
    fn push(&self, job: Job) -> bool {
        let dropped = {
            let mut q = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let full = q.len() >= QUEUE;
            if full {
                q.pop_front();
            }
            q.push_back(job);
            full
        };
        self.ready.notify_one();
        dropped
    }

    async fn pop(&self) -> Job {
        loop {
            if let Some(j) = self
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return j;
            }
            self.ready.notified().await;
        }
    }
}

struct Worker {
    receiver: Receiver,
    queue: Arc<Queue>,
    status: Arc<Mutex<Delivery>>,
    task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a request failed, and whether trying again may help.
#[derive(Debug)]
struct Failed {
    why: String,
    retry: bool,
}

/// Sends alerts and silences to every receiver; see the module text.
pub struct Notifier {
    workers: Vec<Worker>,
    /// Firing alerts with when they started, for re-sends and the resolve's `startsAt`.
    firing: BTreeMap<AlertId, Notice>,
    last_resend_ms: Option<i64>,
    /// Given to every alert sent from now on (the cluster id is learnt as nodes answer).
    pub source: Source,
    /// Per receiver: the last outcome `news` told of.
    told: Vec<Option<Outcome>>,
}

impl Notifier {
    /// Starts one task per receiver (on the current tokio runtime).
    pub fn start(receivers: Vec<Receiver>, source: Source) -> Result<Notifier, String> {
        let mut workers = Vec::new();
        for receiver in receivers {
            let http = reqwest::Client::builder()
                .timeout(receiver.timeout)
                .connect_timeout(receiver.timeout)
                .user_agent(concat!("opsdeck/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("receiver {}: cannot set up HTTP: {e}", receiver.name))?;
            let queue = Arc::new(Queue {
                jobs: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
            });
            let status = Arc::new(Mutex::new(Delivery {
                name: receiver.name.clone(),
                kind: receiver.kind,
                last: None,
                dropped: 0,
            }));
            let task = tokio::spawn(run(receiver.clone(), http, queue.clone(), status.clone()));
            workers.push(Worker {
                receiver,
                queue,
                status,
                task,
            });
        }
        Ok(Notifier {
            told: vec![None; workers.len()],
            workers,
            firing: BTreeMap::new(),
            last_resend_ms: None,
            source,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    fn push(&self, job: &Job, to: impl Fn(&Receiver) -> bool) {
        for w in self.workers.iter().filter(|w| to(&w.receiver)) {
            if w.queue.push(job.clone()) {
                w.status.lock().unwrap_or_else(|p| p.into_inner()).dropped += 1;
            }
        }
    }

    /// Hands the alerts that started firing or resolved in `changes` to every receiver,
    /// and every [`RESEND`] all firing ones again to Alertmanager. Never waits.
    pub fn observe(&mut self, now_ms: i64, changes: &[Transition]) {
        let mut notices = Vec::new();
        for c in changes {
            match (c.from, c.to) {
                (_, State::Firing) => {
                    let n = Notice {
                        alert: c.alert.clone(),
                        starts_ms: c.at_ms,
                        resolved_ms: None,
                    };
                    self.firing.insert(c.alert.id.clone(), n.clone());
                    notices.push(n);
                }
                (State::Firing, State::Resolved | State::Inactive) => {
                    let starts_ms = self
                        .firing
                        .remove(&c.alert.id)
                        .map_or(c.at_ms, |n| n.starts_ms);
                    notices.push(Notice {
                        alert: c.alert.clone(),
                        starts_ms,
                        resolved_ms: Some(c.at_ms),
                    });
                }
                _ => {}
            }
        }
        // The latest figures of what still fires, for the re-sends' text.
        for c in changes.iter().filter(|c| c.to == State::Firing) {
            if let Some(n) = self.firing.get_mut(&c.alert.id) {
                n.alert = c.alert.clone();
            }
        }
        if !notices.is_empty() {
            self.push(&Job::Alerts(notices, self.source.clone()), |_| true);
        }
        let due = self
            .last_resend_ms
            .is_none_or(|t| now_ms - t >= RESEND.as_millis() as i64);
        if due {
            self.last_resend_ms = Some(now_ms);
            if !self.firing.is_empty() && changes.iter().all(|c| c.to != State::Firing) {
                let all: Vec<Notice> = self.firing.values().cloned().collect();
                self.push(&Job::Alerts(all, self.source.clone()), |r| {
                    r.kind == Kind::Alertmanager
                });
            }
        }
    }

    /// Asks every Alertmanager receiver to silence alert `id` from `starts_ms` to
    /// `ends_ms`; the number of receivers asked (0: no Alertmanager is configured).
    pub fn silence(&self, id: &AlertId, starts_ms: i64, ends_ms: i64, comment: &str) -> usize {
        let by = match std::env::var("USER") {
            Ok(u) if !u.is_empty() => format!("{u} (opsdeck console)"),
            _ => "opsdeck console".to_string(),
        };
        let job = Job::Silence {
            body: payload::silence(id, starts_ms, ends_ms, &by, comment),
            what: id.to_string(),
        };
        self.push(&job, |r| r.kind == Kind::Alertmanager);
        self.workers
            .iter()
            .filter(|w| w.receiver.kind == Kind::Alertmanager)
            .count()
    }

    /// `receiver NAME: why` for each failed delivery since the last call, and `receiver
    /// NAME: delivering again (what)` once after failures end; for `--follow`'s stderr.
    pub fn news(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for (d, told) in self.deliveries().into_iter().zip(&mut self.told) {
            let Some(last) = d.last else { continue };
            if told.as_ref() == Some(&last) {
                continue;
            }
            let was_failing = told.as_ref().is_some_and(|t| !t.ok);
            if !last.ok {
                lines.push(format!("receiver {}: {}", d.name, last.text));
            } else if was_failing {
                lines.push(format!(
                    "receiver {}: delivering again ({})",
                    d.name, last.text
                ));
            }
            *told = Some(last);
        }
        lines
    }

    /// Every receiver's last delivery, in configuration order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.workers
            .iter()
            .map(|w| w.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }
}

/// The cluster id, from the first node that told it (the `cluster` label).
pub fn cluster_of(reports: &[NodeReport]) -> Option<String> {
    reports.iter().find_map(|r| {
        r.status
            .as_ref()
            .ok()
            .map(|s| s.cluster_id.clone())
            .filter(|c| !c.is_empty())
    })
}

/// A receiver's task: takes jobs one by one and records each one's outcome.
async fn run(
    receiver: Receiver,
    http: reqwest::Client,
    queue: Arc<Queue>,
    status: Arc<Mutex<Delivery>>,
) {
    loop {
        let job = queue.pop().await;
        let outcome = match deliver(&receiver, &http, &job).await {
            Ok(text) => (true, text),
            Err(why) => (false, why),
        };
        status.lock().unwrap_or_else(|p| p.into_inner()).last = Some(Outcome {
            ok: outcome.0,
            at_ms: crate::format::unix_ms(),
            text: outcome.1,
        });
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Sends one job, retrying; what was sent, or why not.
async fn deliver(receiver: &Receiver, http: &reqwest::Client, job: &Job) -> Result<String, String> {
    let (url, body, what) = match job {
        Job::Alerts(notices, source) => {
            let body = match (receiver.kind, receiver.format) {
                (Kind::Alertmanager, _) => {
                    let valid_until = crate::format::unix_ms() + 4 * RESEND.as_millis() as i64;
                    payload::alertmanager(notices, source, valid_until)
                }
                (Kind::Webhook, Format::Json) => payload::webhook(notices, source),
                (Kind::Webhook, Format::Slack) => payload::slack(notices),
            };
            let resolved = notices.iter().filter(|n| n.resolved_ms.is_some()).count();
            let what = match (notices.len() - resolved, resolved) {
                (f, 0) => format!("sent {} firing", plural(f, "alert")),
                (0, r) => format!("sent {} resolved", plural(r, "alert")),
                (f, r) => format!("sent {f} firing, {r} resolved"),
            };
            (receiver.alerts_url(), body, what)
        }
        Job::Silence { body, what } => (
            receiver.api("silences"),
            body.clone(),
            format!("silenced {what}"),
        ),
    };
    let attempt = || post(http, &url, &body, receiver.timeout);
    let tries = std::sync::atomic::AtomicUsize::new(0);
    let result = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(4))
                .with_max_times(RETRIES),
        )
        .when(|f: &Failed| f.retry)
        .notify(|_, _| {
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await;
    let tries = tries.load(std::sync::atomic::Ordering::Relaxed) + 1;
    match result {
        Ok(answer) if answer.is_empty() => Ok(what),
        Ok(answer) => Ok(format!("{what} ({answer})")),
        Err(f) if tries > 1 => Err(format!("{} ({tries} tries)", f.why)),
        Err(f) => Err(f.why),
    }
}

/// The innermost cause of an error, short: `connection refused` rather than reqwest's
/// `error sending request for url (...)` or the OS's `Connection refused (os error 111)`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    chars
        .next()
        .map_or(text.clone(), |c| c.to_lowercase().chain(chars).collect())
}

/// One POST; a short note from the answer (a silence's id) or why it failed. The reasons
/// leave the host out: the receiver's name is printed before them (and holds it, unless
/// named otherwise).
async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    body: &Value,
    timeout: Duration,
) -> Result<String, Failed> {
    let answer = http
        .post(url.clone())
        .json(body)
        .send()
        .await
        .map_err(|e| {
            let why = if e.is_timeout() {
                format!("no answer within {}", humantime::format_duration(timeout))
            } else if e.is_connect() {
                format!("connect: {}", root_cause(&e))
            } else {
                format!("send: {}", root_cause(&e))
            };
            Failed { why, retry: true }
        })?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status.is_success() {
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["silenceID"].as_str().map(|id| format!("id {id}")));
        return Ok(id.unwrap_or_default());
    }
    let said: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let said = crate::format::cut(&said, 120);
    Err(Failed {
        why: if said.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {said}")
        },
        retry: status.is_server_error() || status.as_u16() == 429,
    })
}
