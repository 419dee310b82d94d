//! `opsdeck logs` against real nodes: merged, filtered by node, level and regex.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_of_one_node_at_info_in_time_order_and_grep_filters() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints = cluster.endpoints();

    let out = run_cli(&[
        "logs",
        "--node",
        "2",
        "--level",
        "info",
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let records: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        records.iter().any(|r| r["message"] == "node started"),
        "{records:?}"
    );
    let mut prev = 0;
    for r in &records {
        assert_eq!(r["node"], 2, "{r}");
        let level = r["level"].as_str().unwrap();
        assert!(["INFO", "WARN", "ERROR"].contains(&level), "{r}");
        let t = r["unix_ms"].as_i64().unwrap();
        assert!(t >= prev, "out of order: {records:?}");
        prev = t;
    }

    // --grep keeps only matching records, from every node.
    let out = run_cli(&[
        "logs",
        "--grep",
        "node st.rted",
        "--json",
        "--endpoints",
        &endpoints,
    ]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let started: Vec<serde_json::Value> = stdout_of(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut nodes: Vec<u64> = started
        .iter()
        .map(|r| r["node"].as_u64().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![1, 2, 3], "{started:?}");

    // A node that is down is reported once; the others still print.
    cluster.node_mut(3).kill9();
    let out = run_cli(&["logs", "--grep", "node started", "--endpoints", &endpoints]);
    assert!(out.status.success(), "logs failed: {}", stderr_of(&out));
    let text = stdout_of(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(" n1 INFO ") && text.contains(" n2 INFO "),
        "{text}"
    );
    let err = stderr_of(&out);
    assert_eq!(err.matches(&cluster.node(3).grpc).count(), 1, "{err}");

    // A bad regex is one clear line.
    let out = run_cli(&["logs", "--grep", "(", "--endpoints", &endpoints]);
    assert!(!out.status.success());
    assert_eq!(
        stderr_of(&out).trim(),
        "error: bad --grep \"(\": unclosed group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follow_prints_new_records_as_they_happen_and_ends_when_its_reader_goes() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let endpoints = cluster.endpoints();
    let mut child = Command::new(BIN)
        .env("OPSDECK_API_KEY", admin_key())
        .args([
            "logs",
            "--follow",
            "--grep",
            "compact done",
            "--endpoints",
            &endpoints,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opsdeck logs --follow");
    let stdout = child.stdout.take().unwrap();
    // Reads until the first matching line, then drops the pipe: the reader is gone.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
    });
    // Nothing matches yet; a compact on every node logs "compact done" three times.
    let out = run_cli(&["compact", "--endpoints", &endpoints]);
    assert!(out.status.success(), "compact failed: {}", stderr_of(&out));
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a live record within 10 s");
    assert!(
        line.contains("INFO") && line.contains("compact done"),
        "{line}"
    );

    // With its reader gone, the next record it prints ends it.
    let out = run_cli(&["compact", "--endpoints", &endpoints]);
    assert!(out.status.success(), "compact failed: {}", stderr_of(&out));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("logs --follow still running after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
