//! Operator commands (`[contexts.NAME.commands.X]` of config.toml) run by `opsdeck cmd run`
//! against a real 3-node cluster: a fake restart script records its arguments (the node's
//! real addresses, one argument per placeholder even when the value has spaces), a mutating
//! command is refused under `--read-only` without running, a hanging one is killed with its
//! children at its timeout, a flood of output is capped, a non-zero exit is passed on.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// The CLI's exit status and stdout (which may be far larger than a pipe holds).
async fn cli_big_output(args: &[&str]) -> (Option<i32>, String) {
    let out = cli_as(None, args).await;
    (out.status.code(), stdout_of(&out))
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn write_config(dir: &Path, cluster: &TestCluster) -> std::path::PathBuf {
    let script = dir.join("fake-restart");
    let record = dir.join("restart.argv");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\necho restarted node \"$1\"\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pid_file = dir.join("hang.pid");
    let data = format!("{}/n{{id}}", cluster.dir.path().display());
    let text = format!(
        r#"current_context = "t"

[contexts.t]
endpoints = ["{endpoints}"]
data_dir = "{data}"

[contexts.t.commands.restart]
run = ["{script}", "{{id}}", "{{grpc}}", "{{grpc_host}}", "{{http}}", "{{http_host}}", "{{data}}", "{{context}}", "with space; rm -rf /"]
key = "R"
description = "restart the node (fake)"

[contexts.t.commands.logs]
run = "sh -c 'echo logs of {{grpc_host}}; echo to stderr >&2; exit 7'"
mutating = false

[contexts.t.commands.hang]
run = "sh -c 'sleep 600 & echo $! > {pid}; sleep 600'"
mutating = false
timeout = "1s"

[contexts.t.commands.flood]
run = "head -c 10485760 /dev/zero"
mutating = false
"#,
        endpoints = cluster.endpoints().replace(',', "\", \""),
        script = script.display(),
        pid = pid_file.display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_fill_refuse_time_out_and_cap() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &cluster);
    let config = config.to_str().unwrap();
    let record = dir.path().join("restart.argv");

    // The list names each command, its key and whether it is mutating.
    let out = cli_as(None, &["cmd", "list", "--config", config]).await;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let restart = text.lines().find(|l| l.starts_with("restart")).unwrap();
    assert!(
        restart.contains(" R ") && restart.contains("mutating"),
        "{text}"
    );
    let logs = text.lines().find(|l| l.starts_with("logs")).unwrap();
    assert!(!logs.contains("mutating"), "{text}");

    // --read-only refuses the mutating command, and the script did not run.
    let out = cli_as(
        None,
        &[
            "cmd",
            "run",
            "restart",
            "--node",
            "2",
            "--read-only",
            "--yes",
            "--config",
            config,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("restart is a mutating command and --read-only"),
        "{}",
        stderr_of(&out)
    );
    assert!(!record.exists(), "the refused command ran");
    // Without a terminal and without --yes it is refused too.
    let out = cli_as(
        None,
        &["cmd", "run", "restart", "--node", "2", "--config", config],
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
    assert!(!record.exists(), "the unconfirmed command ran");

    // Placeholders filled with node 2's real addresses, one argument each.
    let out = cli_as(
        None,
        &[
            "cmd", "run", "restart", "--node", "2", "--yes", "--config", config,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "restarted node 2\n");
    let n2 = cluster.node(2);
    let argv: Vec<String> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        argv,
        vec![
            "2".to_string(),
            n2.grpc.clone(),
            "127.0.0.1".into(),
            n2.http.clone(),
            "127.0.0.1".into(),
            n2.data.display().to_string(),
            "t".into(),
            "with space; rm -rf /".into(),
        ]
    );
    assert!(n2.data.is_dir(), "{{data}} is node 2's real data dir");

    // A non-zero exit is reported with its code, and becomes ours.
    let out = cli_as(
        None,
        &[
            "cmd", "run", "logs", "--node", "3", "--json", "--config", config,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["exit_code"], 7);
    assert_eq!(v["outcome"]["end"], "exited");
    let output = v["outcome"]["output"].as_str().unwrap();
    assert!(
        output.contains("logs of 127.0.0.1\n") && output.contains("to stderr\n"),
        "{v}"
    );

    // A hanging command times out in about its timeout, its background child killed too.
    let started = Instant::now();
    let out = cli_as(
        None,
        &["cmd", "run", "hang", "--node", "1", "--config", config],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("hang on node 1: timed out after 1s"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} for a 1s timeout"
    );
    let pid: u32 = std::fs::read_to_string(dir.path().join("hang.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the hanging command's child to be gone",
        Duration::from_secs(5),
        || async { gone(pid).then_some(()) },
    )
    .await;

    // 10 MiB of output: the first 256 KiB kept, the rest counted.
    let (code, text) = cli_big_output(&[
        "cmd", "run", "flood", "--node", "1", "--json", "--config", config,
    ])
    .await;
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["outcome"]["output"].as_str().unwrap().len(), 256 * 1024);
    assert_eq!(v["outcome"]["dropped_bytes"], 10_485_760 - 256 * 1024);
    let (code, text) =
        cli_big_output(&["cmd", "run", "flood", "--node", "1", "--config", config]).await;
    assert_eq!(code, Some(0));
    assert!(
        text.ends_with("… 9.75 MiB more not shown\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );

    // A node that is not a member, and a command that does not exist.
    let out = cli_as(
        None,
        &["cmd", "run", "logs", "--node", "9", "--config", config],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("node 9 is not a member"),
        "{}",
        stderr_of(&out)
    );
    let out = cli_as(
        None,
        &["cmd", "run", "nope", "--node", "1", "--config", config],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
}

/// A config whose commands are wrong is refused at its line, before anything runs.
#[test]
fn bad_command_tables_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let cases = [
        (
            "[commands.a]\nrun = \"ls {nope}\"\n",
            "config.toml:1: run: unknown placeholder {nope}",
        ),
        (
            "[commands.a]\nrun = \"ls\"\nkey = \"x\"\n\n[commands.b]\nrun = \"ls\"\nkey = \"x\"\n",
            "config.toml:5: command \"b\" has key 'x', which command \"a\" already has",
        ),
        (
            "[contexts.p]\nendpoints = [\"a:1\"]\n\n[contexts.p.commands.c]\nrun = \"\"\n",
            "config.toml:4: run is empty",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&path, text).unwrap();
        let out = run_cli(&["cmd", "list", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            stderr_of(&out).contains(want),
            "{text}: {}",
            stderr_of(&out)
        );
    }
}
