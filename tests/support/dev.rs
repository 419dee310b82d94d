//! A dev cluster (`opsdeck dev --headless`) as a test runs it: the process, the CLI with the
//! cluster's own admin key, and what `cluster.toml` records of its nodes.

use std::process::Output;
use std::time::{Duration, Instant};

use super::*;

/// Whether `pid` is a running process (not a zombie).
pub fn running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|s| s != 'Z'),
        Err(_) => false,
    }
}

/// The dev cluster's admin key is its own, not the test's: no key from the environment.
pub async fn dev_cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli_as(None, &args)
    })
    .await
    .expect("cli task")
}

/// Stops the dev process (and so its cluster) even when the test fails: SIGTERM first, so
/// it also stops the detached nodes recorded in `cluster.toml`, then SIGKILL after 10 s.
pub struct DevProcess(pub std::process::Child);

impl DevProcess {
    /// `opsdeck dev --headless` of `nodes` nodes in `dir`, once it says it serves. A dev
    /// cluster that exits because one of its ports was taken after the check (by a process
    /// outside this test binary) is started again on fresh ports.
    pub async fn start(dir: &std::path::Path, nodes: u32) -> DevProcess {
        let out = dir.join("dev.out");
        for _ in 0..5 {
            let base = reserve_ports(200);
            let log = std::fs::File::create(&out).unwrap();
            let mut dev = DevProcess(
                std::process::Command::new(BIN)
                    .args(["dev", "--headless", "--nodes", &nodes.to_string()])
                    .arg("--dir")
                    .arg(dir)
                    .args(["--base-port", &base.to_string()])
                    .stdin(std::process::Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            );
            let what = Said("the dev cluster", &out);
            let serving = wait_for(&what, Duration::from_secs(30), async || {
                if what.text().contains("Ctrl-C") {
                    return Some(true);
                }
                dev.0.try_wait().ok().flatten().map(|_| false)
            })
            .await;
            if serving {
                return dev;
            }
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            assert!(
                text.contains("is not free") || text.contains("Address already in use"),
                "opsdeck dev exited on start:\n{text}"
            );
            eprintln!("a port of {base}.. was taken before the dev cluster bound it; fresh ports");
            // A cluster that never formed: nothing of it is worth keeping.
            let _ = std::fs::remove_file(dir.join("cluster.toml"));
            for id in 1..=nodes {
                let _ = std::fs::remove_dir_all(dir.join(format!("n{id}")));
            }
        }
        panic!("the dev cluster found no free ports in 5 tries");
    }
}

/// A process named with what it wrote to `.1` so far, read when shown: a timeout's message
/// says what the process said by then.
struct Said<'a>(&'a str, &'a std::path::Path);

impl Said<'_> {
    fn text(&self) -> String {
        std::fs::read_to_string(self.1).unwrap_or_default()
    }
}

impl std::fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; it said:\n{}", self.0, self.text())
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid `cluster.toml` records for node `id`.
pub fn pid_of(dir: &std::path::Path, id: u64) -> Option<u64> {
    let file: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("cluster.toml")).ok()?).ok()?;
    file.get("node")?
        .as_array()?
        .iter()
        .find(|n| n.get("id").and_then(|i| i.as_integer()) == Some(id as i64))?
        .get("pid")?
        .as_integer()
        .map(|p| p as u64)
}

/// The dev cluster's admin key (`DIR/admin.key`).
pub fn dev_admin_key(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("admin.key"))
        .expect("the dev cluster's admin key")
        .trim()
        .to_string()
}

/// Every node's gRPC address, in id order, as `cluster.toml` records them.
pub fn dev_endpoints(dir: &std::path::Path) -> Vec<(u64, String)> {
    let file: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("cluster.toml")).unwrap()).unwrap();
    let mut nodes: Vec<(u64, String)> = file["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_integer().unwrap() as u64,
                n["grpc"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    nodes.sort();
    nodes
}
