//! The real console binary in a private tmux server at 80×24 against a real 3-node cluster:
//! what a person would see and press, a follower killed, and the terminal restored on quit.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

/// A private tmux server, killed when dropped (pass or fail).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux must be installed to run this test (apt-get install tmux)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.run(&["send-keys", "-t", "console", k]);
            assert!(
                out.status.success(),
                "send-keys {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn typed(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "console", "-l", text]);
        assert!(out.status.success());
    }

    fn display(&self, format: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["display-message", "-p", "-t", "console", format])
                .stdout,
        )
        .trim()
        .to_string()
    }

    /// Presses `q` and waits for the console's shell line saying it exited with 0; the last
    /// screen (what the terminal shows after the console) is returned.
    async fn quit(&self, what: &str, timeout: Duration) -> String {
        self.keys(&["q"]);
        self.wait(what, timeout, |s| s.contains("console exited with 0"))
            .await
    }

    /// Polls the screen until `ok` holds, or fails showing the last screen.
    async fn wait(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}; the screen was:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // tmux leaves its socket file behind after kill-server.
        let socket = self.run(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.run(&["kill-server"]);
        let path = String::from_utf8_lossy(&socket.stdout).trim().to_string();
        if !path.is_empty() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_cluster_follows_keys_sees_a_node_die_and_restores_the_terminal() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let (leader, _) = cluster.wait_leader(Duration::from_secs(15)).await;
    let (home, key_file) = operator_home();
    let tmux = tmux_session(
        "console",
        home.path(),
        home.path(),
        &format!(
            "{BIN} console --endpoints {} --key-file {} --refresh-ms 300",
            cluster.endpoints(),
            key_file.display()
        ),
    );
    let t = Duration::from_secs(15);

    let screen = tmux
        .wait("3 nodes and a leader", t, |s| {
            leader_and_followers(s, 2) && s.contains("HEALTHY")
        })
        .await;
    assert!(
        screen.contains(&format!("{leader}   127.0.0.1:")),
        "{screen}"
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "the console runs in the alternate screen"
    );
    for line in screen.lines() {
        assert!(
            line.chars().count() <= 80,
            "line wider than the terminal: {line:?}"
        );
    }

    // Logs, then a search that must find the startup lines of every node.
    tmux.keys(&["2"]);
    tmux.wait("the logs pane", t, |s| {
        s.contains("Logs ·") && s.contains("node started")
    })
    .await;
    tmux.keys(&["/"]);
    tmux.typed("node started");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait("search results", t, |s| {
            s.contains("/node started (") && s.contains("lines match")
        })
        .await;
    assert!(!screen.contains("0 lines match"), "{screen}");
    tmux.keys(&["N"]);
    tmux.keys(&["x"]);
    tmux.wait("filters cleared", t, |s| !s.contains("/node started ("))
        .await;

    // Every other pane, by number and by Tab.
    tmux.keys(&["3"]);
    tmux.wait("metrics", t, |s| {
        s.contains("Metrics · cluster") && s.contains("p99")
    })
    .await;
    tmux.keys(&["Tab"]);
    tmux.wait("disk", t, |s| {
        s.contains("DATA DIR") && s.contains("FULL IN")
    })
    .await;
    tmux.keys(&["Tab"]);
    tmux.wait("gc", t, |s| s.contains("GC ·") && s.contains("LOG ON DISK"))
        .await;
    tmux.keys(&["6"]);
    tmux.wait("timeline", t, |s| {
        s.contains("Timeline ·") && s.contains("leader_change")
    })
    .await;

    // The new panes: the keys listed with the admin key (never a secret), quotas.
    tmux.keys(&["9"]);
    let screen = tmux
        .wait("the key list", t, |s| {
            s.contains("Keys ·") && s.contains("admin") && s.contains("valid")
        })
        .await;
    assert!(!screen.contains("odk_"), "no secret on screen:\n{screen}");
    tmux.keys(&["8"]);
    tmux.wait("quotas", t, |s| s.contains("Quotas ·")).await;

    // The live keymap for the pane, then closed again.
    tmux.keys(&["1", "?"]);
    tmux.wait("help", t, |s| {
        s.contains("keys: Overview") && s.contains("pane_logs")
    })
    .await;
    tmux.keys(&["Escape"]);
    tmux.wait("help closed", t, |s| !s.contains("keys: Overview"))
        .await;

    // The command line.
    tmux.keys(&[":"]);
    tmux.typed("pane timeline");
    tmux.keys(&["Enter"]);
    tmux.wait(":pane timeline", t, |s| s.contains("Timeline ·"))
        .await;
    tmux.keys(&[":"]);
    tmux.typed("bogus");
    tmux.keys(&["Enter"]);
    tmux.wait("an unknown command refused", t, |s| {
        s.contains("unknown command \"bogus\"")
    })
    .await;
    tmux.keys(&["1"]);

    // A follower dies: the console keeps going and says since when.
    let follower = cluster.a_follower(leader);
    cluster.node_mut(follower).kill9();
    let screen = tmux
        .wait("the killed follower shown down", t, |s| {
            s.contains("down since") && s.contains("DEGRADED")
        })
        .await;
    assert!(screen.contains(&format!("node {follower} ")), "{screen}");
    assert!(screen.contains("✖ DOWN"), "{screen}");
    tmux.keys(&["6"]);
    tmux.wait("node_down on the timeline", t, |s| s.contains("node_down"))
        .await;
    tmux.keys(&["7"]);
    tmux.wait("the dead follower pending on the Alerts pane", t, |s| {
        s.contains("Alerts ·") && s.contains("node_down") && s.contains("unreachable")
    })
    .await;

    let screen = tmux.quit("the console to exit", t).await;
    assert!(
        !screen.contains("DEGRADED"),
        "the UI is still on screen:\n{screen}"
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert_eq!(tmux.display("#{cursor_flag}"), "1", "cursor shown again");
}

/// Whether the Overview shows a leader and `followers` followers.
fn leader_and_followers(screen: &str, followers: usize) -> bool {
    screen.contains("★ leader") && screen.matches("follower").count() == followers
}

/// An operator's home (where [`tmux_session`] points the XDG directories) holding the
/// test admin key in `admin.key`, mode 0600 as they would keep it (a key file others can
/// read is refused).
fn operator_home() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("temp dir");
    let path = home.path().join("admin.key");
    std::fs::write(&path, admin_key()).expect("write key file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    (home, path)
}

/// `text` as the opsdeck config file of the operator's `home`.
fn write_config(home: &std::path::Path, text: &str) {
    let dir = home.join("config").join("opsdeck");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("config.toml"), text).expect("write config");
}

/// A cluster's gRPC addresses as a TOML array, for a context's `endpoints`.
fn endpoints_toml(cluster: &TestCluster) -> String {
    let quoted: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{:?}", n.grpc))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// `opsdeck` run in a dev cluster's directory, as the tests' operator would.
fn cli_in(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let cluster = dir.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--cluster", &cluster, "--json"]);
    let out = run_cli_as(None, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    serde_json::from_str(&stdout_of(&out)).expect("json")
}

/// Node id → pid, from a dev cluster's cluster.toml.
fn dev_pids(dir: &std::path::Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(dir.join("cluster.toml")).expect("cluster.toml");
    text.split("[[node]]")
        .filter_map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == name)
                        .then(|| v.trim().parse::<u64>().ok())
                        .flatten()
                })
            };
            Some((field("id")?, u32::try_from(field("pid")?).ok()?))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Opens `command` in a private tmux server at 80x24, in `dir`, with XDG dirs under `home`;
/// the pane stays after the command exits and says how it exited.
fn tmux_session(name: &str, dir: &std::path::Path, home: &std::path::Path, command: &str) -> Tmux {
    let tmux = Tmux {
        socket: format!("opsdeck-{name}-{}-{}", std::process::id(), free_port()),
    };
    let script = format!("{command}; echo \"console exited with $?\"; exec sleep 600");
    let env = |k: &str, sub: &str| format!("{k}={}", home.join(sub).display());
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "80",
        "-y",
        "24",
        "-c",
        &dir.display().to_string(),
        "-e",
        "TERM=xterm-256color",
        "-e",
        &env("XDG_CONFIG_HOME", "config"),
        "-e",
        &env("XDG_DATA_HOME", "data"),
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_in_tmux_actions_by_key_read_only_refusal_and_a_killed_leader() {
    let home = tempfile::tempdir().expect("temp dir");
    let dir = home.path().join("cluster");
    std::fs::create_dir_all(&dir).expect("cluster dir");
    let base = reserve_ports(250).to_string();
    let tmux = tmux_session(
        "dev",
        home.path(),
        home.path(),
        &format!("{BIN} dev --dir {} --base-port {base}", dir.display()),
    );
    let t = Duration::from_secs(20);
    tmux.wait("3 nodes and a leader", t, |s| {
        leader_and_followers(s, 2) && s.contains("HEALTHY")
    })
    .await;
    // Whatever happens next, the dev cluster's nodes do not outlive the test.
    struct KillNodes(std::path::PathBuf);
    impl Drop for KillNodes {
        fn drop(&mut self) {
            for (_, pid) in dev_pids(&self.0) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
    let _cleanup = KillNodes(dir.clone());

    tmux.keys(&["2"]);
    tmux.wait("a recent log line", t, |s| {
        s.contains("Logs ·") && s.contains("node started")
    })
    .await;

    // A read-only console on the same cluster refuses the add-node key and changes nothing.
    let ro = tmux_session(
        "ro",
        home.path(),
        home.path(),
        &format!("{BIN} console --read-only --cluster {}", dir.display()),
    );
    ro.wait("the read-only console", t, |s| s.contains("★ leader"))
        .await;
    ro.keys(&["a"]);
    ro.wait("the refusal", t, |s| {
        s.contains("add_node is not allowed: the console is read-only")
    })
    .await;
    ro.quit("the read-only console to exit", t).await;
    drop(ro);
    let members = cli_in(&dir, &["members"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );

    // Add a node: the console starts it and promotes it once caught up.
    tmux.keys(&["1", "a"]);
    tmux.wait("the add-node question", t, |s| {
        s.contains("add node to dev:cluster: enter starts")
    })
    .await;
    tmux.keys(&["Enter"]);
    tmux.wait("node 4 added", t, |s| {
        s.contains("add node: done") && s.contains("node 4") && s.contains("as a voter")
    })
    .await;
    tmux.keys(&["Escape"]);
    tmux.wait("4 voters, node 4 watched", t, |s| {
        s.contains("4/4 voters up")
            && s.lines()
                .any(|l| l.starts_with("│4 ") && l.contains("follower"))
    })
    .await;

    // Backup to the suggested file, in the console's directory.
    tmux.keys(&["b"]);
    tmux.wait("the backup question", t, |s| {
        s.contains("backup dev:cluster to file: opsdeck-backup-")
    })
    .await;
    tmux.keys(&["Enter"]);
    tmux.wait("the backup written", t, |s| {
        s.contains("backup to") && s.contains(": done")
    })
    .await;
    tmux.keys(&["Escape"]);
    let backup = std::fs::read_dir(home.path())
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "odb"))
        .expect("a backup file in the console's directory");
    let verified = run_cli(&["verify-backup", &backup.display().to_string()]);
    assert!(verified.status.success(), "{}", stderr_of(&verified));

    // Rotate a key picked in the Keys pane; the new secret is shown once and saved.
    let created = cli_in(&dir, &["keys", "create", "--role", "read"]);
    let new_id = created["key"]["id"].as_str().expect("key id").to_string();
    let mut ids: Vec<String> = cli_in(&dir, &["keys", "list"])["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    tmux.keys(&["9"]);
    tmux.wait("both keys listed", t, |s| s.contains(&new_id))
        .await;
    for _ in 0..ids.iter().position(|i| *i == new_id).expect("listed") {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["r"]);
    tmux.wait("the grace question", t, |s| {
        s.contains(&format!(
            "rotate key {new_id} of dev:cluster: the old key stays valid for 24h"
        ))
    })
    .await;
    tmux.keys(&["BSpace", "BSpace", "BSpace"]);
    tmux.typed("2h");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait("the new secret", t, |s| {
            s.contains(&format!("key {new_id} rotated"))
                && s.contains("new secret:")
                && s.contains("odk_")
        })
        .await;
    let successor = screen
        .split("its successor is ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("successor id")
        .trim()
        .to_string();
    tmux.keys(&["Enter"]);
    tmux.wait("the secret saved", t, |s| {
        s.contains("the new secret is in")
    })
    .await;
    let saved =
        std::fs::read_to_string(home.path().join(format!("opsdeck-key-{successor}.secret")))
            .expect("the saved secret");
    assert!(saved.starts_with("odk_"), "{saved}");
    let keys = cli_in(&dir, &["keys", "list"]);
    let old = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == new_id.as_str())
        .expect("old key")
        .clone();
    assert_eq!(old["successor"], successor.as_str(), "{old}");
    assert!(old["expires"].is_string(), "{old}");

    // kill -9 the leader: marked down, and a new leader within 3 s.
    tmux.keys(&["1"]);
    let status = cli_in(&dir, &["status"]);
    let leader = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["role"] == "leader")
        .and_then(|n| n["id"].as_u64())
        .expect("a leader");
    let (_, pid) = dev_pids(&dir)
        .into_iter()
        .find(|(id, _)| *id == leader)
        .expect("the leader's pid");
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let screen = tmux
        .wait(
            "the leader down and a new one",
            Duration::from_secs(3),
            |s| {
                let rows: Vec<&str> = s.lines().filter(|l| l.starts_with('│')).collect();
                let down = rows
                    .iter()
                    .any(|l| l.starts_with(&format!("│{leader} ")) && l.contains("✖ DOWN"));
                let new_leader = rows
                    .iter()
                    .any(|l| l.contains("★ leader") && !l.starts_with(&format!("│{leader} ")));
                down && new_leader
            },
        )
        .await;
    println!(
        "new leader shown {:?} after the kill:\n{screen}",
        killed.elapsed()
    );

    // Restart the killed node from the Overview (select it, `r`, type its id): it rejoins.
    for _ in 1..leader {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["r"]);
    tmux.wait("the restart question", t, |s| {
        s.contains(&format!("Restart node {leader} (")) && s.contains("type")
    })
    .await;
    tmux.typed(&leader.to_string());
    tmux.keys(&["Enter"]);
    tmux.wait(
        "the node restarted and caught up",
        Duration::from_secs(90),
        |s| s.contains(&format!("restart node {leader}: done")) && s.contains("caught up to index"),
    )
    .await;
    tmux.keys(&["Escape"]);
    tmux.wait("4 voters up again", t, |s| s.contains("4/4 voters up"))
        .await;

    // A rolling restart by key (typed confirmation: the context's name), followers first.
    let before = dev_pids(&dir);
    tmux.keys(&["S"]);
    tmux.wait("the rolling restart question", t, |s| {
        s.contains("Rolling restart of dev:cluster (one node at a time)? type dev:cluster")
    })
    .await;
    tmux.typed("dev:cluster");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait("the rolling restart done", Duration::from_secs(240), |s| {
            s.contains("rolling restart: done") && s.contains("rolling restart of 4 nodes done")
        })
        .await;
    println!("{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait("4 voters up after the rolling restart", t, |s| {
        s.contains("4/4 voters up")
    })
    .await;
    let after = dev_pids(&dir);
    for (id, pid) in &before {
        assert!(
            after.iter().any(|(i, p)| i == id && p != pid),
            "node {id} was not restarted: {before:?} -> {after:?}"
        );
    }

    let pids = dev_pids(&dir);
    assert_eq!(pids.len(), 4, "{pids:?}");
    let screen = tmux.quit("the console to exit", t).await;
    assert!(
        !screen.contains("HEALTHY") && !screen.contains("DEGRADED"),
        "{screen}"
    );
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "alternate screen left"
    );
    assert_eq!(tmux.display("#{cursor_flag}"), "1", "cursor shown again");
    // Quitting dev stopped every node, the one the console started included.
    wait_for("every node to stop", Duration::from_secs(15), || async {
        pids.iter().all(|(_, pid)| !alive(*pid)).then_some(())
    })
    .await;
}

#[test]
fn dev_without_a_terminal_says_to_pass_headless_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = reserve_ports(250).to_string();
    let out = run_cli(&[
        "dev",
        "--base-port",
        &base,
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("pass --headless"), "{err}");
    assert!(
        !dir.path().join("cluster.toml").exists(),
        "no cluster was formed"
    );
    assert!(!dir.path().join("n1").exists(), "no node was started");
}

/// Two clusters (3 nodes and 1 node) as two contexts of the operator's config.toml: the
/// console opens on the current one, `:ctx` lists both, `:ctx beta` switches live (the other
/// cluster's single node, its port, no follower), and a remove-node question names the
/// context it would act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctx_switches_the_console_to_another_cluster_live_and_questions_name_it() {
    let alpha = TestCluster::start(3, &[]).await;
    let beta = TestCluster::start(1, &[]).await;
    let t = Duration::from_secs(20);
    alpha.wait_leader(t).await;
    beta.wait_leader(t).await;
    let (home, key_file) = operator_home();
    let key = format!("{:?}", key_file.display().to_string());
    write_config(
        home.path(),
        &format!(
            "# two clusters\ncurrent_context = \"alpha\"\n\n[contexts.alpha]\nendpoints = {}\n\
             key_file = {key}\n\n[contexts.beta]\nendpoints = {}\nkey_file = {key}\n",
            endpoints_toml(&alpha),
            endpoints_toml(&beta)
        ),
    );
    let tmux = tmux_session(
        "ctx",
        home.path(),
        home.path(),
        &format!("env -u OPSDECK_API_KEY {BIN} console --refresh-ms 300"),
    );
    let alpha_ports: Vec<&str> = alpha
        .nodes
        .iter()
        .filter_map(|n| n.grpc.rsplit(':').next())
        .collect();
    let beta_port = beta.nodes[0].grpc.rsplit(':').next().expect("port");

    tmux.wait("alpha's 3 nodes", t, |s| {
        s.contains("[alpha]")
            && s.contains("★ leader")
            && s.matches("follower").count() == 2
            && alpha_ports.iter().all(|p| s.contains(p))
    })
    .await;
    tmux.keys(&[":"]);
    tmux.typed("ctx");
    tmux.keys(&["Enter"]);
    tmux.wait("the context list", t, |s| {
        s.contains("contexts: *alpha, beta, dev (:ctx NAME switches)")
    })
    .await;

    tmux.keys(&[":"]);
    tmux.typed("ctx beta");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait("beta's single node", t, |s| {
            s.contains("switched to beta: watching 1 nodes")
                && s.contains("★ leader")
                && s.contains(beta_port)
        })
        .await;
    assert_eq!(screen.matches("follower").count(), 0, "{screen}");
    for p in &alpha_ports {
        assert!(
            !screen.contains(p),
            "alpha's port {p} still shown:\n{screen}"
        );
    }
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("[beta] switched to beta")),
        "the context on the status line:\n{screen}"
    );

    // A question before a change names the cluster it would change.
    tmux.keys(&["x"]);
    tmux.wait("the remove question naming beta", t, |s| {
        s.contains(&format!(
            "Remove node 1 ({}) from beta? type 1 to confirm:",
            beta.nodes[0].grpc
        ))
    })
    .await;
    tmux.keys(&["Escape"]);
    // An unknown context is refused, listing the known ones; the console stays on beta.
    tmux.keys(&[":"]);
    tmux.typed("ctx gamma");
    tmux.keys(&["Enter"]);
    tmux.wait("the refusal", t, |s| {
        s.contains("no context \"gamma\" in the config; known contexts: alpha, beta, dev")
    })
    .await;
    let members = run_cli(&["members", "--endpoints", &beta.endpoints(), "--json"]);
    assert!(members.status.success(), "{}", stderr_of(&members));
    let members: serde_json::Value =
        serde_json::from_str(&stdout_of(&members)).expect("members json");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));

    tmux.quit("the console to exit", t).await;
}

/// Operator commands from the console: a context's non-mutating command bound to a key
/// prints its placeholders for the selected node in the output dialog, and goes on the
/// Timeline; a mutating one asks y/N and then runs; a hanging one is killed at its timeout
/// and says so; a `--read-only` console refuses the mutating one and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_run_by_key_on_the_selected_node_and_read_only_refuses_mutating_ones() {
    let cluster = TestCluster::start(3, &[]).await;
    let t = Duration::from_secs(20);
    cluster.wait_leader(t).await;
    let (home, key_file) = operator_home();
    let marker = home.path().join("bounced");
    write_config(
        home.path(),
        &format!(
            "current_context = \"ops\"\n\n[contexts.ops]\nendpoints = {}\nkey_file = {:?}\n\n\
             [contexts.ops.commands.where]\nrun = [\"sh\", \"-c\", \"echo node={{id}} grpc={{grpc}} ctx={{context}}\"]\n\
             key = \"E\"\nmutating = false\ndescription = \"where the node listens\"\n\n\
             [contexts.ops.commands.bounce]\nrun = [\"sh\", \"-c\", \"echo {{id}} > {}\"]\nkey = \"Z\"\n\n\
             [contexts.ops.commands.hang]\nrun = [\"sh\", \"-c\", \"echo waiting; sleep 600\"]\nmutating = false\ntimeout = \"1s\"\n",
            endpoints_toml(&cluster),
            key_file.display().to_string(),
            marker.display(),
        ),
    );
    let console = |name: &str, flags: &str| {
        tmux_session(
            name,
            home.path(),
            home.path(),
            &format!("env -u OPSDECK_API_KEY {BIN} console --refresh-ms 300 {flags}"),
        )
    };

    // Read-only first: the mutating command's key is refused, nothing runs; the other is
    // still offered.
    let ro = console("cmd-ro", "--read-only");
    ro.wait("the read-only console", t, |s| leader_and_followers(s, 2))
        .await;
    ro.keys(&["Z"]);
    ro.wait("the refusal", t, |s| {
        s.contains("cmd bounce is not allowed: the console is read-only")
    })
    .await;
    ro.keys(&[":"]);
    ro.typed("cmd bounce");
    ro.keys(&["Enter"]);
    ro.wait("the refusal of :cmd", t, |s| {
        s.contains("cmd bounce is not allowed: the console is read-only")
    })
    .await;
    ro.quit("the read-only console to exit", t).await;
    drop(ro);
    assert!(
        !marker.exists(),
        "a read-only console ran a mutating command"
    );

    let tmux = console("cmd", "");
    tmux.wait("3 nodes and a leader", t, |s| leader_and_followers(s, 2))
        .await;
    // The second row is selected: its node's placeholders are filled.
    let second = &cluster.nodes[1];
    tmux.keys(&["Down", "E"]);
    let want = format!("node={} grpc={} ctx=ops", second.id, second.grpc);
    let screen = tmux
        .wait("the output dialog", t, |s| {
            s.contains(&format!("where on node {}: exit 0 in", second.id)) && s.contains(&want)
        })
        .await;
    assert!(screen.contains("$ sh -c 'echo node="), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait("the dialog closed", t, |s| !s.contains(&want))
        .await;

    // The mutating one asks, naming the command, the node and the context; n runs nothing.
    tmux.keys(&["Z"]);
    let question = format!("Run bounce on node {} of ops? y/N", second.id);
    tmux.wait("the question", t, |s| s.contains(&question))
        .await;
    tmux.typed("n");
    tmux.keys(&["Enter"]);
    tmux.wait("not confirmed", t, |s| s.contains("bounce was not run"))
        .await;
    assert!(!marker.exists(), "bounce ran unconfirmed");
    tmux.keys(&["Z"]);
    tmux.wait("the question again", t, |s| s.contains(&question))
        .await;
    tmux.typed("y");
    tmux.keys(&["Enter"]);
    tmux.wait("bounce done", t, |s| {
        s.contains(&format!("bounce on node {}: exit 0 in", second.id))
    })
    .await;
    let written = std::fs::read_to_string(&marker).expect("bounce wrote its marker");
    assert_eq!(written.trim(), second.id.to_string());
    tmux.keys(&["Escape"]);

    // A hanging command: the console keeps drawing, and it is killed at its 1 s timeout.
    tmux.keys(&[":"]);
    tmux.typed("cmd hang");
    tmux.keys(&["Enter"]);
    let screen = tmux
        .wait("the timeout", Duration::from_secs(10), |s| {
            s.contains(&format!(
                "hang on node {}: timed out after 1s; its processes were killed",
                second.id
            ))
        })
        .await;
    assert!(screen.contains("waiting"), "{screen}");
    tmux.keys(&["Escape"]);

    // Every run is on the Timeline.
    tmux.keys(&["6"]);
    tmux.wait("the runs on the timeline", t, |s| {
        s.contains(&format!("cmd where on node {}: exit 0", second.id))
            && s.contains(&format!("cmd bounce on node {}: exit 0", second.id))
            && s.contains(&format!("cmd hang on node {}: timed out", second.id))
    })
    .await;
    tmux.quit("the console to exit", t).await;
}
