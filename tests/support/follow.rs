//! `opsdeck alerts --follow --json` as a child process: its stdout (one JSON object per
//! change) and stderr (what it says of its receivers) read line by line on threads, waited
//! on with deadlines. Killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{admin_key, BIN};

pub struct Follow {
    child: Child,
    lines: Receiver<String>,
    errors: Receiver<String>,
    /// Every change read so far.
    pub seen: Vec<Value>,
    /// Every stderr line read so far.
    pub said: Vec<String>,
}

fn lines_of(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A change of `rule` (for node `node`, if given) to state `to`.
pub fn is(v: &Value, rule: &str, node: Option<u64>, to: &str) -> bool {
    v["rule"] == rule && v["to"] == to && node.is_none_or(|id| v["node_id"] == id)
}

impl Follow {
    /// `opsdeck alerts --follow --json --interval 200ms` on `endpoints` with `rules`, and
    /// `extra` flags.
    pub fn start(endpoints: &str, rules: &Path, extra: &[&str]) -> Follow {
        let mut child = Command::new(BIN)
            .env("OPSDECK_API_KEY", admin_key())
            .args(["alerts", "--follow", "--json", "--interval", "200ms"])
            .args(["--endpoints", endpoints, "--rules"])
            .arg(rules)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn opsdeck alerts");
        let lines = lines_of(child.stdout.take().expect("piped stdout"));
        let errors = lines_of(child.stderr.take().expect("piped stderr"));
        Follow {
            child,
            lines,
            errors,
            seen: Vec::new(),
            said: Vec::new(),
        }
    }

    /// Reads changes until one matches, or panics at the deadline listing what was seen.
    pub fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(e) => self.gave_up(what, timeout, e),
            }
        }
    }

    /// Reads stderr until a line matches, or panics at the deadline.
    pub fn wait_said(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.errors.recv_timeout(left) {
                Ok(line) => {
                    self.said.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => self.gave_up(what, timeout, e),
            }
        }
    }

    fn gave_up(&self, what: &str, timeout: Duration, e: RecvTimeoutError) -> ! {
        let how = match e {
            RecvTimeoutError::Timeout => format!("timed out after {timeout:?}"),
            RecvTimeoutError::Disconnected => "opsdeck alerts exited".to_string(),
        };
        panic!("{how} waiting for {what}; saw:\n{}", self.log())
    }

    pub fn log(&self) -> String {
        self.seen
            .iter()
            .map(Value::to_string)
            .chain(self.said.iter().map(|l| format!("stderr: {l}")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
