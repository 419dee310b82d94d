//! Running nodes as a supervisor would: settings from `node.toml` and `OPSDECK_NODE_*`
//! variables (flags > variables > file), and SIGTERM on the leader handing its leadership
//! over before it stops. (SIGHUP's certificate reload is in tls_reload.rs: its TLS client
//! setting is process-wide.)

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_leadership_over_before_it_stops() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, term) = cluster.wait_leader(Duration::from_secs(15)).await;
    let took = Instant::now();
    assert!(
        cluster
            .node_mut(leader)
            .terminate(Duration::from_secs(15))
            .await,
        "the leader exits on SIGTERM"
    );
    let stopped_in = took.elapsed();
    let log = cluster.node(leader).log_text();
    assert!(
        log.contains("stopping: handed leadership to node"),
        "the leader hands over before stopping:\n{log}"
    );
    // Among the nodes still running.
    let (next, next_term) = cluster.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(next, leader);
    assert!(next_term > term);
    println!("leader {leader} stopped in {stopped_in:?}; node {next} leads in term {next_term}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_variables_and_variables_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "id = 1\ngrpc = \"127.0.0.1:{grpc}\"\nhttp = \"127.0.0.1:{http}\"\ndata = {:?}\ninit = true\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let health = format!("http://127.0.0.1:{http}/health");
    for (env, args, id) in [
        (None, vec![], 1),
        (Some("5"), vec![], 5),
        (Some("5"), vec!["--id", "6"], 6),
    ] {
        let _ = std::fs::remove_dir_all(dir.path().join("data"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"));
        cmd.args(["node", "--config", config.to_str().unwrap()])
            .args(&args)
            .env_remove("OPSDECK_NODE_ID")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(v) = env {
            cmd.env("OPSDECK_NODE_ID", v);
        }
        let mut child = KillOnDrop(cmd.spawn().unwrap());
        // /health needs no key and names the node.
        let answered: serde_json::Value =
            wait_for("the node's /health", Duration::from_secs(15), || async {
                let r = http_client()
                    .get(&health)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .ok()?;
                r.json().await.ok()
            })
            .await;
        assert_eq!(answered["id"], id, "env {env:?}, flags {args:?}");
        child.stop();
    }
}

struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_bad_node_config_is_refused_with_its_line_and_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expect) in [
        (
            "id = 1\nbogus = 3\n",
            ":2: unknown key \"bogus\"; a node config takes: id, grpc",
        ),
        (
            "id = 1\nstorage_reserve = \"lots\"\n",
            ":2: storage_reserve: invalid value 'lots'",
        ),
        (
            "init = 5\n",
            ":1: init is a switch: write init = true or leave it out",
        ),
        ("id = [1]\n", ":1: id must be a string or a number"),
        ("id = \n", ":1: string values must be quoted"),
    ] {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        let out = run_cli(&["node", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("{}{expect}", path.display())),
            "{text:?}: {err}"
        );
    }
}

/// `systemd-analyze verify` accepts every shipped unit (the node, the backup service and
/// its timer), with ExecStart pointed at this build (verify checks that the program
/// exists). Any warning about a unit fails too: systemd only warns about a misspelt key.
#[test]
fn systemd_accepts_the_shipped_units() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-analyze is not installed here");
        return;
    }
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let node = std::fs::read_to_string(shipped.join("opsdeck-node.service")).unwrap();
    assert!(node.contains("ExecStart=/usr/local/bin/opsdeck node --config /etc/opsdeck/node.toml"));
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for name in [
        "opsdeck-node.service",
        "opsdeck-backup.service",
        "opsdeck-backup.timer",
    ] {
        let text = std::fs::read_to_string(shipped.join(name)).unwrap();
        let unit = dir.path().join(name);
        std::fs::write(
            &unit,
            text.replace("/usr/local/bin/opsdeck", env!("CARGO_BIN_EXE_opsdeck")),
        )
        .unwrap();
        units.push(unit);
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("opsdeck-"), "{said}");
}
