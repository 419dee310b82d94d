//! Runs an operator command (`config::commands`) on one node: placeholders filled from the
//! node's addresses, the program started without a shell (unless the command names one),
//! stdin closed, in its own process group; its stdout and stderr captured together up to a
//! cap; killed with its whole group (SIGTERM, then SIGKILL) when it outlives its timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use opsdeck_node::pb::StatusRequest;

use crate::client::failure::{Class, Failure};
use crate::client::{ClusterClient, Target};
use crate::config::commands::Command;

/// Output kept per run; the rest is counted, not kept.
pub const OUTPUT_CAP: usize = 256 * 1024;
/// How long a command may take to end after SIGTERM before its group gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the output pipes may stay open after the command ended (a child it left in the
/// background holding them): then its group is killed.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// What the placeholders are filled with.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub id: u64,
    /// gRPC address (HOST:PORT).
    pub grpc: String,
    /// HTTP address (HOST:PORT).
    pub http: String,
    /// The node's data dir, when known.
    pub data: Option<PathBuf>,
    pub context: String,
}

impl Vars {
    fn value(&self, name: &str) -> Result<String, String> {
        let host = |addr: &str| {
            // "[::1]:7101" -> "::1", "10.0.0.1:7101" -> "10.0.0.1".
            let h = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        };
        match name {
            "id" => Ok(self.id.to_string()),
            "grpc" => Ok(self.grpc.clone()),
            "grpc_host" => Ok(host(&self.grpc)),
            "http" => Ok(self.http.clone()),
            "http_host" => Ok(host(&self.http)),
            "context" => Ok(self.context.clone()),
            "data" => self.data.as_ref().map(|d| d.display().to_string()).ok_or_else(|| {
                format!(
                    "{{data}}: node {}'s data dir is not known here: set data_dir = \"/path/n{{id}}\" in the context's table of config.toml",
                    self.id
                )
            }),
            other => Err(format!("unknown placeholder {{{other}}}")),
        }
    }
}

/// The placeholders' values for node `id`: its addresses from the cluster's membership
/// (asked of the cluster), its data dir from the dev cluster's file, else from the
/// `data_dir` template (`{id}` filled).
pub async fn vars_for(
    client: &ClusterClient,
    target: &Target,
    data_dir: Option<&str>,
    id: u64,
) -> Result<Vars> {
    let status = client
        .call("members", |mut c| async move {
            c.status(StatusRequest {}).await
        })
        .await?;
    let member = status.members.iter().find(|m| m.id == id).ok_or_else(|| {
        let ids: Vec<String> = status.members.iter().map(|m| m.id.to_string()).collect();
        eyre!(Failure::new(
            Class::NotFound,
            format!(
                "node {id} is not a member; the members are {}",
                ids.join(", ")
            )
        ))
    })?;
    let data = target
        .dev_data_dir(id)
        .or_else(|| data_dir.map(|t| PathBuf::from(t.replace("{id}", &id.to_string()))));
    Ok(Vars {
        id,
        grpc: member.grpc.clone(),
        http: member.http.clone(),
        data,
        context: target.label(),
    })
}

/// The arguments `command` runs with on the node `vars` describes.
pub fn argv(command: &Command, vars: &Vars) -> Result<Vec<String>> {
    command
        .fill(|name| vars.value(name))
        .map_err(|why| eyre!(Failure::new(Class::Usage, why)))
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "end", content = "value")]
pub enum End {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it (not ours).
    Signal(i32),
    /// It outlived its timeout; its group was killed.
    TimedOut,
}

impl End {
    /// "exit 0", "exit 3", "killed by signal 9", "timed out after 30s".
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            End::Exited(c) => format!("exit {c}"),
            End::Signal(s) => format!("killed by signal {s}"),
            End::TimedOut => format!("timed out after {}", humantime::format_duration(timeout)),
        }
    }

    pub fn ok(&self) -> bool {
        *self == End::Exited(0)
    }

    /// The exit status `opsdeck cmd run` ends with: the command's own code, 128+signal as
    /// a shell reports it, 124 on a timeout (as timeout(1)).
    pub fn exit_code(&self) -> i32 {
        match self {
            End::Exited(c) => *c,
            End::Signal(s) => 128 + s,
            End::TimedOut => 124,
        }
    }
}

/// One run's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub argv: Vec<String>,
    #[serde(flatten)]
    pub end: End,
    /// Stdout and stderr as they came, the first [`OUTPUT_CAP`] bytes (lossy UTF-8).
    pub output: String,
    /// Bytes printed beyond the cap (not kept).
    pub dropped_bytes: u64,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Outcome {
    /// One line for people: "logs on node 2: exit 0 in 0.4s", or "hang on node 1: timed out
    /// after 5s; its processes were killed" (the CLI's last line, the console's timeline).
    pub fn summary(&self, name: &str, node: u64, timeout: Duration) -> String {
        match self.end {
            End::TimedOut => format!(
                "{name} on node {node}: {}; its processes were killed",
                self.end.describe(timeout)
            ),
            end => format!(
                "{name} on node {node}: {} in {:.1}s",
                end.describe(timeout),
                self.duration.as_secs_f64()
            ),
        }
    }

    /// The output, with a last line saying how much more was not kept.
    pub fn output_text(&self) -> String {
        let mut text = self.output.clone();
        if self.dropped_bytes > 0 {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "… {} more not shown\n",
                crate::format::bytes(self.dropped_bytes)
            ));
        }
        text
    }
}

#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    dropped: u64,
}

async fn pump(mut from: impl AsyncRead + Unpin, into: Arc<Mutex<Capture>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut c) = into.lock() else { return };
                let room = OUTPUT_CAP.saturating_sub(c.kept.len()).min(n);
                c.kept.extend_from_slice(&buf[..room]);
                c.dropped += (n - room) as u64;
            }
        }
    }
}

fn kill_group(pgid: u32, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) on a process group we created; ESRCH (all gone) is fine.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Runs `argv` with `timeout`; never waits longer than timeout + a few seconds.
pub async fn run(argv: Vec<String>, timeout: Duration) -> Result<Outcome> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| eyre!("an operator command needs a program"))?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| eyre!("cannot start {program:?}: {e} (is it installed and on $PATH?)"))?;
    let pgid = child
        .id()
        .ok_or_else(|| eyre!("{program:?} ended before its process id was read"))?;
    let capture = Arc::new(Mutex::new(Capture::default()));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, capture.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, capture.clone())));
    }
    let end = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => End::Exited(c),
                (None, Some(s)) => End::Signal(s),
                (None, None) => End::Exited(-1),
            }
        }
        Ok(Err(e)) => return Err(eyre!("waiting for {program:?}: {e}")),
        Err(_) => {
            kill_group(pgid, libc::SIGTERM);
            if tokio::time::timeout(TERM_GRACE, child.wait())
                .await
                .is_err()
            {
                kill_group(pgid, libc::SIGKILL);
                let _ = child.wait().await;
            }
            End::TimedOut
        }
    };
    // The pipes close when every process of the group has ended; one still holding them
    // after the grace (a child left running, or one that ignored SIGTERM) is killed.
    let grace = tokio::time::timeout(PIPE_GRACE, futures_util::future::join_all(&mut pumps));
    if grace.await.is_err() {
        kill_group(pgid, libc::SIGKILL);
        let _ = tokio::time::timeout(PIPE_GRACE, futures_util::future::join_all(&mut pumps)).await;
        for p in &pumps {
            p.abort();
        }
    } else if end == End::TimedOut {
        // Members of the group that closed their pipes may still run: end them too.
        kill_group(pgid, libc::SIGKILL);
    }
    let (output, dropped_bytes) = {
        let c = capture
            .lock()
            .map_err(|_| eyre!("the output capture of {program:?} broke"))?;
        (String::from_utf8_lossy(&c.kept).into_owned(), c.dropped)
    };
    Ok(Outcome {
        argv,
        end,
        output,
        dropped_bytes,
        duration: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn exit_codes_output_caps_and_timeouts() {
        let o = run(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(o.end, End::Exited(3));
        assert_eq!(o.end.exit_code(), 3);
        assert!(
            o.output.contains("out\n") && o.output.contains("err\n"),
            "{o:?}"
        );
        let o = run(
            sh("head -c 3000000 /dev/zero | tr '\\0' x"),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(o.end.ok());
        assert_eq!(o.output.len(), OUTPUT_CAP);
        assert_eq!(o.dropped_bytes, 3_000_000 - OUTPUT_CAP as u64);
        assert!(
            o.output_text().ends_with("more not shown\n"),
            "{}",
            o.output_text()
        );
        let started = Instant::now();
        let o = run(sh("sleep 600 & sleep 600"), Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(o.end, End::TimedOut);
        assert_eq!(o.end.exit_code(), 124);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let e = run(vec!["/no/such/program".into()], Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot start \"/no/such/program\""), "{e}");
    }

    #[test]
    fn hosts_and_a_missing_data_dir() {
        let v = Vars {
            id: 3,
            grpc: "[::1]:7103".into(),
            http: "10.0.0.3:7203".into(),
            data: None,
            context: "prod".into(),
        };
        assert_eq!(v.value("grpc_host").unwrap(), "::1");
        assert_eq!(v.value("http_host").unwrap(), "10.0.0.3");
        let e = v.value("data").unwrap_err();
        assert!(e.contains("set data_dir"), "{e}");
    }
}
