//! The CLI as a user meets it: bad input gets one clear line and a non-zero exit, and
//! `opsdeck dev` forms a cluster, answers the verbs, and cleans up after itself.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        stdout_of(out)
    );
    let err = stderr_of(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        err.contains(needle),
        "error should mention {needle:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn node_args<'a>(data: &'a str, grpc: &'a str, http: &'a str) -> Vec<&'a str> {
    vec![
        "node", "--id", "1", "--grpc", grpc, "--http", http, "--data", data,
    ]
}

#[test]
fn a_foreign_data_dir_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.db");
    std::fs::write(&precious, b"someone else's data").unwrap();
    let (g, h) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let data = dir.path().to_str().unwrap();
    let out = run_cli(&node_args(data, &g, &h));
    assert_one_line_error(&out, "is not an opsdeck data dir");
    assert_eq!(std::fs::read(&precious).unwrap(), b"someone else's data");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing may be added"
    );
}

#[test]
fn an_unusable_data_dir_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let data = file.join("data");
    let (g, h) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let out = run_cli(&node_args(data.to_str().unwrap(), &g, &h));
    assert_one_line_error(&out, "data dir");
}

#[test]
fn a_data_dir_of_another_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let mut node = TestNode::new(dir.path(), 1, &[]);
    node.data = data.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(node.launch(true));
    node.stop();
    let (g, h) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let out = run_cli(&[
        "node",
        "--id",
        "2",
        "--grpc",
        &g,
        "--http",
        &h,
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "belongs to node 1, not node 2");
}

#[test]
fn a_port_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _busy = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let g = format!("127.0.0.1:{port}");
    let h = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("n1");
    let out = run_cli(&node_args(data.to_str().unwrap(), &g, &h));
    assert_one_line_error(&out, &format!("port {port}"));
    assert!(
        !data.exists(),
        "a failed start must not create the data dir"
    );
}

#[test]
fn bad_and_unreachable_endpoints_fail_fast_with_a_clear_error() {
    let out = run_cli(&["get", "k", "--endpoints", "not-an-endpoint"]);
    assert_one_line_error(&out, "bad endpoint \"not-an-endpoint\"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad endpoint is a usage error"
    );

    let nobody = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let out = run_cli(&["put", "k", "v", "--endpoints", &nobody, "--timeout", "1s"]);
    assert_one_line_error(&out, "did not answer");
    assert_eq!(out.status.code(), Some(4), "an unreachable cluster exits 4");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let out = run_cli(&["status", "--endpoints", &nobody, "--timeout", "1s"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("no node reachable"),
        "{}",
        stderr_of(&out)
    );
}

/// A loopback port that accepts connections and never answers on them (a hung process, a
/// firewall that swallows bytes). Connections stay open until the test process ends.
fn silent_listener() -> String {
    let listener = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            held.push(conn);
        }
    });
    addr
}

/// `--timeout` bounds the whole verb (connecting, every request and every retry): it used
/// to take about 5× as long (1 s → 5.0 s, 3 s → 19.2 s) against a port that never answers.
#[test]
fn timeout_bounds_the_whole_verb_against_a_node_that_never_answers() {
    let silent = silent_listener();
    for (timeout, secs) in [("1s", 1.0), ("3s", 3.0)] {
        for verb in [
            vec!["get", "k"],
            vec!["put", "k", "v"],
            vec!["members"],
            vec!["transfer-leader", "--to", "2"],
        ] {
            let args = [&verb[..], &["--endpoints", &silent, "--timeout", timeout]].concat();
            let started = std::time::Instant::now();
            let out = run_cli(&args);
            let took = started.elapsed().as_secs_f64();
            assert_one_line_error(&out, "did not answer within");
            assert!(
                stderr_of(&out).contains(&format!("timeout of {timeout}")),
                "{verb:?}: {}",
                stderr_of(&out)
            );
            // The slack covers starting the process.
            assert!(
                took < secs + 0.75,
                "{verb:?} with --timeout {timeout} took {took:.1}s"
            );
        }
    }
    // A timeout too long to add to the clock is waited on, not a panic.
    let mut child = Command::new(BIN)
        .args([
            "get",
            "k",
            "--endpoints",
            &silent,
            "--timeout",
            "500000000000y",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watched_until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < watched_until {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!("exited ({status}): {}", stderr_of(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_keys_and_values_are_refused_and_nothing_is_written() {
    let cluster = TestCluster::start(1, &[]).await;
    let endpoints = cluster.endpoints();
    let long_key = "k".repeat(2000);
    let out = tokio::task::spawn_blocking({
        let (k, e) = (long_key.clone(), endpoints.clone());
        move || run_cli(&["put", &k, "v", "--endpoints", &e])
    })
    .await
    .unwrap();
    assert_one_line_error(&out, "over the limit of 1024 bytes");

    // Over HTTP, a value over 1 MiB is refused with the numbers (tests/http.rs has more).
    let http = &cluster.node(1).http;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let resp = http_client()
        .put(format!("http://{http}/kv/t/big"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("value is 1048577 bytes, over the limit of 1048576 bytes"),
        "{body}"
    );
    let status = cluster.node(1).status().await.unwrap();
    assert_eq!(
        status.storage_keys, 0,
        "a refused write must change nothing"
    );
}

#[test]
fn dev_forms_a_cluster_answers_verbs_and_stops_its_children() {
    let dir = tempfile::tempdir().unwrap();
    // dev uses base+1..3 (gRPC) and base+101..103 (HTTP).
    let base = reserve_ports(104);
    let mut dev = Command::new(BIN)
        .args([
            "dev",
            "--headless",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // dev prints its summary once the cluster is formed; read it line by line.
    let (rx, reader) = lines_of(&mut dev);
    let Ok(formed) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = dev.kill();
        let out = dev.wait_with_output().unwrap();
        panic!(
            "dev did not report a formed cluster; stderr:\n{}",
            stderr_of(&out)
        )
    };
    assert!(formed.contains("3 nodes in"), "{formed}");
    let cluster_dir = dir.path().to_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let file = dir.path().join("cluster.toml");

    // Verbs find the dev cluster's admin key in its dir; only its owner may read it.
    let key_mode = std::fs::metadata(dir.path().join("admin.key"))
        .expect("dev writes DIR/admin.key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let out = run_cli_as(
        None,
        &["put", "greeting", "hello", "--cluster", &cluster_dir],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = run_cli_as(None, &["get", "greeting", "--cluster", &cluster_dir]);
    assert_eq!(stdout_of(&out).trim(), "hello");
    let out = run_cli_as(None, &["status", "--json", "--cluster", &cluster_dir]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "leader").count(), 1);
    for n in nodes {
        for field in [
            "id",
            "reachable",
            "role",
            "term",
            "leader_id",
            "last_log_index",
            "committed",
            "applied",
        ] {
            assert!(!n[field].is_null(), "status --json lacks {field}: {n}");
        }
    }
    let pids = recorded_pids(&file, 3);

    unsafe { libc::kill(dev.id() as i32, libc::SIGTERM) };
    let out = wait_output(dev, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "dev exited badly: {}",
        stderr_of(&out)
    );
    assert!(reader.join().unwrap().contains("Ctrl-C stops the cluster"));
    for pid in pids {
        rt.block_on(wait_for(
            "node process to exit",
            Duration::from_secs(10),
            || async {
                // Reaped by dev, so kill(0) fails once it is gone.
                (unsafe { libc::kill(pid, 0) } != 0).then_some(())
            },
        ));
    }
    assert!(!std::fs::read_to_string(&file).unwrap().contains("pid ="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_applies_only_when_the_current_value_is_the_expected_one() {
    let cluster = TestCluster::start(1, &[]).await;
    let e = cluster.endpoints();
    tokio::task::spawn_blocking(move || {
        let cas = |args: &[&str]| {
            let mut all = vec!["cas"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--endpoints", &e]);
            run_cli(&all)
        };
        let get = |k: &str| stdout_of(&run_cli(&["get", k, "--endpoints", &e]));
        assert!(cas(&["t/k", "v1", "--absent"]).status.success());
        let out = cas(&["t/k", "v2", "--absent"]);
        assert_one_line_error(&out, "current value is \"v1\"");
        assert_eq!(out.status.code(), Some(3), "a lost compare-and-set exits 3");
        let out = cas(&["t/k", "v2", "--expect", "other"]);
        assert_one_line_error(&out, "not applied");
        assert_eq!(get("t/k").trim(), "v1");
        assert!(cas(&["t/k", "v2", "--expect", "v1"]).status.success());
        assert_eq!(get("t/k").trim(), "v2");
        assert!(cas(&["t/k", "--delete", "--expect", "v2"]).status.success());
        let out = cas(&["t/k", "v3", "--expect", "v2"]);
        assert_one_line_error(&out, "absent (no such key)");
    })
    .await
    .unwrap();
}

/// `bench --duration 1h` ended by SIGTERM stops and prints what it measured so far (as a
/// script measuring writes beside another operation does), and writes only keys under its
/// `--prefix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stopped_by_sigterm_prints_its_figures_and_writes_only_under_its_prefix() {
    let cluster = TestCluster::start(1, &[]).await;
    cluster.wait_leader(Duration::from_secs(15)).await;
    let e = cluster.endpoints();
    let child = Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args([
            "bench",
            "--prefix",
            "load/",
            "--keys",
            "5",
            "--clients",
            "2",
        ])
        .args(["--duration", "1h", "--json", "--endpoints", &e])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsdeck bench");
    let scan = async |prefix: &str| {
        let out = cli_as(None, &["scan", prefix, "--endpoints", &e, "--json"]).await;
        json_of(&out)["items"].as_array().map_or(0, Vec::len)
    };
    wait_for(
        "bench's writes under load/",
        Duration::from_secs(20),
        async || (scan("load/").await > 0).then_some(()),
    )
    .await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || wait_output(child, Duration::from_secs(20)))
        .await
        .expect("wait for bench");
    let report = json_of(&out);
    assert!(report["writes"]["ok"].as_u64() > Some(0), "{report}");
    assert_eq!(report["writes"]["errors"], 0, "{report}");
    assert_eq!(report["prefix"], "load/", "{report}");
    assert!(
        report["duration_secs"].as_f64() < Some(60.0),
        "it ran on after SIGTERM: {report}"
    );
    assert_eq!(scan("bench/").await, 0, "bench wrote outside its --prefix");
}

/// The exit statuses of `opsdeck --help`, each from a real failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_has_its_exit_status() {
    let cluster = TestCluster::start(1, &[]).await;
    let e = cluster.endpoints();
    tokio::task::spawn_blocking(move || {
        let code = |key: Option<&str>, args: &[&str]| {
            let mut all = args.to_vec();
            all.extend_from_slice(&["--endpoints", &e]);
            let out = run_cli_as(key, &all);
            (out.status.code(), stderr_of(&out))
        };
        let admin = Some(admin_key());
        assert_eq!(code(admin, &["put", "x/k", "v"]).0, Some(0));
        let (c, err) = code(admin, &["get", "x/missing"]);
        assert_eq!(c, Some(3), "not found: {err}");
        let (c, err) = code(admin, &["put", "bad key with spaces\u{7}", "v"]);
        assert_eq!(c, Some(2), "invalid key: {err}");
        let (c, err) = code(
            Some("odk_not_a_real_key_at_all_0000000000"),
            &["get", "x/k"],
        );
        assert_eq!(c, Some(5), "refused key: {err}");
        let (c, err) = code(admin, &["get"]);
        assert_eq!(c, Some(2), "clap usage error: {err}");
    })
    .await
    .unwrap();
}

/// The node pids a dev cluster's cluster.toml records; there must be `count`.
fn recorded_pids(file: &std::path::Path, count: usize) -> Vec<i32> {
    let text = std::fs::read_to_string(file).unwrap();
    let pids: Vec<i32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pid = "))
        .map(|p| p.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), count, "{text}");
    pids
}

/// Reads a child's stdout lines on a thread: (receiver of each line, handle to all text).
fn lines_of(
    child: &mut std::process::Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, reader)
}

/// One `opsdeck dev` per dir: a second one is refused naming the first one's pid and the
/// dir; when every node of a dev dies, dev reaps them, says so and exits non-zero, and the
/// pids it drops from cluster.toml are only those that no longer run.
#[test]
fn a_second_dev_on_a_dir_is_refused_and_dev_notices_its_nodes_dying() {
    let dir = tempfile::tempdir().unwrap();
    let dev_args = |base: u16| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "dev",
            "--headless",
            "--nodes",
            "2",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .env_remove("OPSDECK_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };
    let mut first = dev_args(reserve_ports(103)).spawn().unwrap();
    let (rx, _reader) = lines_of(&mut first);
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = first.kill();
        panic!(
            "dev did not start: {}",
            stderr_of(&first.wait_with_output().unwrap())
        );
    }

    // Another port range, so only the lock can refuse it.
    let second = dev_args(reserve_ports(103)).spawn().unwrap();
    let out = wait_output(second, Duration::from_secs(20));
    assert_one_line_error(&out, &format!("pid {}", first.id()));
    assert!(
        stderr_of(&out).contains(&dir.path().canonicalize().unwrap().display().to_string()),
        "{}",
        stderr_of(&out)
    );

    let file = dir.path().join("cluster.toml");
    let pids = recorded_pids(&file, 2);
    for pid in &pids {
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let out = wait_output(first, Duration::from_secs(20));
    let err = stderr_of(&out);
    assert!(
        !out.status.success(),
        "dev must fail once its nodes died: {err}"
    );
    assert!(err.contains("every node of the dev cluster"), "{err}");
    assert!(
        err.contains("node 1 exited") && err.contains("node 2 exited"),
        "{err}"
    );
    assert!(!std::fs::read_to_string(&file).unwrap().contains("pid ="));
}

/// A verb pointed at a node's HTTP port says so and names the node's gRPC address, instead
/// of "grpc-status header missing, mapped from HTTP status code 404".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verb_pointed_at_the_http_port_names_the_grpc_port() {
    let cluster = TestCluster::start(1, &[]).await;
    let node = cluster.node(1);
    for verb in [vec!["get", "k"], vec!["put", "k", "v"], vec!["status"]] {
        let args: Vec<String> = verb
            .iter()
            .map(|s| s.to_string())
            .chain(["--endpoints".into(), node.http.clone()])
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert!(!out.status.success(), "{verb:?}: {}", stdout_of(&out));
        let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
        let want = format!(
            "{} is the node's HTTP port, not its gRPC port; use its gRPC port (the node's \
             status says it: {})",
            node.http, node.grpc
        );
        assert!(text.contains(&want), "{verb:?}: {text}");
        assert!(
            !text.contains("grpc-status header missing"),
            "{verb:?}: {text}"
        );
    }
}

/// `restore DIR` names the mistake once (it used to print "Is a directory (os error 21)"
/// twice); a key file every user can read is refused, one its group can read is used with
/// a warning, both naming the fix.
#[test]
fn a_directory_for_a_backup_and_a_readable_key_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["restore", d, "--yes", "--endpoints", "127.0.0.1:1"],
        vec!["verify-backup", d],
    ] {
        let out = run_cli(&args);
        assert_one_line_error(&out, &format!("{d} is a directory; give the backup file"));
        assert!(!stderr_of(&out).contains("os error"), "{}", stderr_of(&out));
    }

    let key = dir.path().join("admin.key");
    std::fs::write(&key, admin_key()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let k = key.to_str().unwrap();
    let get_with_key = || {
        let args = [
            "get",
            "x",
            "--key-file",
            k,
            "--endpoints",
            "127.0.0.1:1",
            "--timeout",
            "1s",
        ];
        run_cli_as(None, &args)
    };
    let out = get_with_key();
    assert_one_line_error(
        &out,
        &format!(
            "refusing the key file {k}: every user can read it (mode 0644); run `chmod 600 {k}`"
        ),
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = get_with_key();
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "warning: the key file {k} can be read by other users (mode 0640)"
        )) && err.contains(&format!("chmod 600 {k}")),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = get_with_key();
    assert!(!stderr_of(&out).contains("warning"), "{}", stderr_of(&out));
}

/// Runs `opsdeck ARGS` with `input` on its standard input.
fn run_with_stdin(args: &[&str], input: Vec<u8>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The CLI stops reading past the limit, so the writer may see a broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = wait_output(child, Duration::from_secs(30));
    let _ = writer.join();
    out
}

/// `put KEY --file F` and `put KEY -` (stdin) write any bytes; a value over the node's limit
/// is refused before anything is sent, and a huge file is not read at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_reads_a_value_from_a_file_or_stdin_within_the_limit() {
    let cluster = TestCluster::start(1, &[]).await;
    let e = cluster.endpoints();
    let dir = tempfile::tempdir().unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let file = dir.path().join("value.bin");
    std::fs::write(&file, &binary).unwrap();
    let f = file.to_str().unwrap().to_string();
    let (e2, f2, b2) = (e.clone(), f.clone(), binary.clone());
    tokio::task::spawn_blocking(move || {
        let out = run_cli(&["put", "t/file", "--file", &f2, "--endpoints", &e2]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let out = run_with_stdin(&["put", "t/stdin", "-", "--endpoints", &e2], b2.clone());
        assert!(out.status.success(), "{}", stderr_of(&out));

        // Over the limit: refused naming it, before connecting (the endpoint is closed).
        let big = vec![b'x'; 1024 * 1024 + 1];
        let out = run_with_stdin(&["put", "t/big", "-", "--endpoints", "127.0.0.1:1"], big);
        assert_one_line_error(&out, "over the limit of 1048576 bytes");
        assert!(
            stderr_of(&out).contains("standard input"),
            "{}",
            stderr_of(&out)
        );
        let huge = std::path::Path::new(&f2).with_file_name("huge.bin");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let started = std::time::Instant::now();
        let out = run_cli(&[
            "put",
            "t/huge",
            "--file",
            huge.to_str().unwrap(),
            "--endpoints",
            "127.0.0.1:1",
        ]);
        assert_one_line_error(
            &out,
            "is 1099511627776 bytes, over the value limit of 1048576 bytes",
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let out = run_cli(&["put", "t/x", "v", "--file", &f2, "--endpoints", &e2]);
        assert!(
            !out.status.success(),
            "a VALUE and --file together must be refused"
        );
    })
    .await
    .unwrap();
    let pairs = cluster.scan_local(1, "t/").await;
    assert_eq!(
        pairs,
        vec![
            ("t/file".to_string(), binary.clone()),
            ("t/stdin".to_string(), binary)
        ]
    );
}

#[test]
fn completions_man_page_and_info_describe_this_binary() {
    // `output()` reads while the child writes: a completion script is bigger than a pipe.
    let run = |args: &[&str]| Command::new(BIN).args(args).output().expect("run opsdeck");
    let out = run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let script = stdout_of(&out);
    assert!(
        script.contains("_opsdeck()") && script.contains("restore"),
        "bash completion"
    );
    for shell in ["zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(
            out.status.success() && stdout_of(&out).contains("opsdeck"),
            "{shell}"
        );
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let out = run(&["man"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let page = stdout_of(&out);
    assert!(
        page.contains(".TH opsdeck") && page.contains("Exit status"),
        "man page"
    );
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man");
    let out = run(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(pages.join("opsdeck-put.1").exists(), "one page per verb");

    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["info", "--json"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("OPSDECK_API_KEY");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info --json");
    assert_eq!(
        info["config_file"]["path"],
        home.path()
            .join("config/opsdeck/config.toml")
            .display()
            .to_string()
    );
    assert_eq!(info["config_file"]["state"], "absent");
    assert_eq!(
        info["dev_cluster_dir"]["path"],
        home.path().join("data/opsdeck/dev").display().to_string()
    );
    assert!(
        info["api_key_from"]
            .as_str()
            .unwrap()
            .contains("none found"),
        "{info}"
    );
}

#[test]
fn version_names_the_commit_and_its_date() {
    let out = run_cli(&["--version"]);
    assert!(out.status.success());
    let expected = format!(
        "opsdeck {} (commit {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("OPSDECK_GIT_SHA"),
        env!("OPSDECK_BUILD_DATE")
    );
    assert_eq!(stdout_of(&out).trim(), expected);
    let date = env!("OPSDECK_BUILD_DATE");
    assert!(
        date == "unknown"
            || (date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-'),
        "{date}"
    );
}

/// `opsdeck ARGS` with `$XDG_CONFIG_HOME` = `home` (so `home/opsdeck/config.toml` is the
/// default config), no key in the environment, and `env` set.
fn run_home(home: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    for k in [
        "OPSDECK_API_KEY",
        "OPSDECK_CONTEXT",
        "OPSDECK_CONFIG",
        "OPSDECK_ENDPOINTS",
        "OPSDECK_KEY_FILE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("XDG_CONFIG_HOME", home).envs(env.iter().copied());
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run opsdeck")
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr_of(out));
    serde_json::from_str(&stdout_of(out)).expect("json")
}

/// Contexts in the default config.toml reach every verb (the key comes from the context's
/// key_file: without it the writes would be refused); `--context`, `$OPSDECK_CONTEXT` and
/// `current_context` pick one, `ctx use` rewrites only its line; unknown contexts, bad
/// files and a world-readable key file are refused with the fix; `-o json` / `--json`
/// print binary values base64-encoded and marked, `get` in a table prints the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_pick_the_cluster_for_every_verb_and_json_never_loses_bytes() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let cluster = TestCluster::start(1, &[]).await;
    cluster.wait_leader(Duration::from_secs(15)).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_path_buf();
    let key = h.join("one.key");
    std::fs::write(&key, admin_key()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(h.join("opsdeck")).unwrap();
    let config = h.join("opsdeck/config.toml");
    let text = format!(
        "# my clusters\ncurrent_context = \"down\"   # nothing listens there\n\n\
         [contexts.down]\nendpoints = [\"127.0.0.1:1\"]\n\n\
         [contexts.one]\n# the test cluster\nendpoints = [{:?}]\nkey_file = {:?}\n",
        cluster.nodes[0].grpc,
        key.display().to_string()
    );
    std::fs::write(&config, &text).unwrap();
    let binary: Vec<u8> = vec![0xff, 0x00, 0xfe, b'a', 0x80];
    let bin_file = h.join("value.bin");
    std::fs::write(&bin_file, &binary).unwrap();
    let b = bin_file.to_str().unwrap().to_string();

    tokio::task::spawn_blocking(move || {
        let run = |env: &[(&str, &str)], args: &[&str]| run_home(&h, env, args);
        let one = [("OPSDECK_CONTEXT", "one")];
        let out = run(&[], &["put", "t/bin", "--file", &b, "--context", "one"]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let out = run(&one, &["put", "t/text", "héllo"]);
        assert!(out.status.success(), "{}", stderr_of(&out));

        // JSON: text as "value", other bytes as "value_base64"; a table prints the bytes.
        let got = json_of(&run(&one, &["get", "t/bin", "-o", "json"]));
        assert!(got.get("value").is_none(), "{got}");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(got["value_base64"].as_str().expect("value_base64"))
            .unwrap();
        assert_eq!(decoded, binary);
        let got = json_of(&run(&one, &["get", "t/text", "--json"]));
        assert_eq!(got["value"], "héllo");
        let out = run(&one, &["get", "t/bin", "-o", "table"]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(out.stdout, [binary.as_slice(), b"\n"].concat());
        let scan = json_of(&run(&one, &["scan", "t/", "-o", "json"]));
        let items = scan["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{scan}");
        assert!(items[0]["value_base64"].is_string() && items[0].get("value").is_none());
        assert_eq!(items[1]["value"], "héllo");
        let out = run(&one, &["get", "t/bin", "-o", "json", "--json"]);
        assert!(!out.status.success(), "-o and --json together are refused");

        // current_context ("down") is used without a flag; every verb reads it.
        let out = run(&[], &["status", "--timeout", "1s"]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("127.0.0.1:1"),
            "{}",
            stderr_of(&out)
        );
        let members = json_of(&run(&one, &["members", "-o", "json"]));
        assert_eq!(members["members"].as_array().map(Vec::len), Some(1));

        // ctx: list marks the one in use; use rewrites only that line.
        let list = json_of(&run(&[], &["ctx", "list", "-o", "json"]));
        assert_eq!(list["current"], "down", "{list}");
        let names: Vec<&str> = list["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["dev", "down", "one"]);
        let table = stdout_of(&run(&one, &["ctx", "list"]));
        assert!(
            table
                .lines()
                .any(|l| l.starts_with('*') && l.contains("one")),
            "{table}"
        );
        let out = run(&[], &["ctx", "use", "one"]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            text.replace(
                "current_context = \"down\"   #",
                "current_context = \"one\"   #"
            )
        );
        let status = json_of(&run(&[], &["status", "--json"]));
        assert_eq!(
            status["nodes"].as_array().map(Vec::len),
            Some(1),
            "{status}"
        );
        let show = json_of(&run(&[], &["ctx", "show", "-o", "json"]));
        assert_eq!(show["name"], "one");

        // Refusals.
        let out = run(&[], &["status", "--context", "nope"]);
        assert_one_line_error(
            &out,
            "no context \"nope\" in the config; known contexts: dev, down, one",
        );
        let out = run(&[], &["ctx", "use", "nope"]);
        assert_one_line_error(&out, "known contexts: dev, down, one");
        assert!(std::fs::read_to_string(&config)
            .unwrap()
            .contains("current_context = \"one\""));
        let out = run(
            &[],
            &["status", "--context", "one", "--endpoints", "127.0.0.1:1"],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(&[], &["status"]);
        assert_one_line_error(&out, "every user can read it (mode 0644)");
        assert!(stderr_of(&out).contains("chmod 600"), "{}", stderr_of(&out));
        let bad = h.join("bad.toml");
        std::fs::write(&bad, "theme = \"light\"\n\n[contexts.x]\ncolour = 1\n").unwrap();
        let c = bad.to_str().unwrap();
        let out = run(&[], &["get", "k", "--config", c]);
        assert_one_line_error(&out, &format!("config {c}:4: unknown field `colour`"));
        std::fs::write(&bad, "[contexts.x]\nendpoints = \"a:1\"\n").unwrap();
        let out = run(&[("OPSDECK_CONFIG", c)], &["ctx", "list"]);
        assert_one_line_error(&out, &format!("config {c}:2: invalid type"));
    })
    .await
    .unwrap();
}

/// Every verb's `--help` ends with examples (and `-o` is there on every cluster verb).
#[test]
fn every_verb_help_has_examples() {
    for verb in [
        "node",
        "dev",
        "console",
        "status",
        "members",
        "put",
        "get",
        "del",
        "cas",
        "scan",
        "bench",
        "keys",
        "quota",
        "audit",
        "compact",
        "defrag-data",
        "logs",
        "backup",
        "verify-backup",
        "restore",
        "add-node",
        "remove-node",
        "transfer-leader",
        "info",
        "ctx",
        "incident",
        "incident report",
        "incident ack",
        "incident silence",
    ] {
        let out = Command::new(BIN)
            .args(verb.split(' ').chain(["--help"]))
            .output()
            .expect("run opsdeck");
        let help = stdout_of(&out);
        assert!(
            out.status.success() && help.contains("Examples:\n  opsdeck "),
            "{verb}: {help}"
        );
    }
    let help = stdout_of(&Command::new(BIN).args(["get", "--help"]).output().unwrap());
    assert!(
        help.contains("-o, --output <FORMAT>") && help.contains("value_base64"),
        "{help}"
    );
}
