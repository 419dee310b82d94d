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
    let home = tempfile::tempdir().expect("temp dir");
    let tmux = Tmux {
        socket: format!(
            "opsdeck-console-test-{}-{}",
            std::process::id(),
            free_port()
        ),
    };
    // The operator's key, in a file as they would keep it.
    let key_file = home.path().join("admin.key");
    std::fs::write(&key_file, admin_key()).expect("write key file");
    // The pane outlives the console so we can see what it leaves behind.
    let script = format!(
        "{BIN} console --endpoints {} --key-file {} --refresh-ms 300; echo \"console exited with $?\"; exec sleep 600",
        cluster.endpoints(),
        key_file.display()
    );
    let home_env = |k: &str, sub: &str| format!("{k}={}", home.path().join(sub).display());
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "80",
        "-y",
        "24",
        "-e",
        "TERM=xterm-256color",
        "-e",
        &home_env("XDG_CONFIG_HOME", "config"),
        "-e",
        &home_env("XDG_DATA_HOME", "data"),
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Duration::from_secs(15);

    let screen = tmux
        .wait("3 nodes and a leader", t, |s| {
            s.contains("★ leader") && s.matches("follower").count() == 2 && s.contains("HEALTHY")
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
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .expect("a follower");
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

    tmux.keys(&["q"]);
    let screen = tmux
        .wait("the console to exit", t, |s| {
            s.contains("console exited with 0")
        })
        .await;
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
