//! `opsdeck compact --defrag` and `opsdeck defrag-data` on a real 3-node dev cluster: sled
//! files that only shrink by an offline rewrite, rewritten one node at a time under a
//! steady write load, and the refusals that change nothing.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use opsdeck_node::pb::{DeleteRequest, GetRequest, PutRequest};
use opsdeck_node::store::disk_guard::dir_bytes;
use support::dev::*;
use support::*;

/// Keys of the bulk data, of which every tenth survives the deletes.
const BULK: usize = 6_000;
const VALUE: usize = 4 * 1024;
/// Generous against the dev cluster's election timeout of 150–300 ms (one election: a
/// timeout plus a vote round, under 0.5 s here): a rolling defrag moves leadership by a
/// transfer, so no election at all should be needed.
const MAX_GAP: Duration = Duration::from_secs(3);

fn db_bytes(dir: &Path, id: u64) -> u64 {
    dir_bytes(&dir.join(format!("n{id}")).join("db"))
}

fn value_of(i: usize) -> Vec<u8> {
    let mut v = format!("bulk/{i:05}:").into_bytes();
    v.resize(VALUE, b'a' + (i % 26) as u8);
    v
}

/// Each file under `path` with its size: what "nothing changed" compares.
fn listing(path: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().display().to_string(), m.len());
            }
        }
    }
    out
}

/// Runs `f` on `jobs` items with `width` at a time.
async fn bulk<F, Fut>(width: usize, jobs: usize, f: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..width)
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                for i in (w..jobs).step_by(width) {
                    f(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("bulk task");
    }
}

/// Waits until `opsdeck check` says the replicas agree.
async fn check_agrees(d: &str) -> String {
    wait_for("check to agree", Duration::from_secs(20), || async {
        let out = dev_cli(&["check", "--cluster", d]).await;
        out.status.success().then(|| stdout_of(&out))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_defrag_shrinks_every_node_under_load_and_refuses_what_would_cost_quorum() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let _dev = DevProcess::start(dir.path(), 3).await;
    let key = dev_admin_key(dir.path());
    let nodes = dev_endpoints(dir.path());
    let endpoints: Vec<String> = nodes.iter().map(|(_, g)| g.clone()).collect();

    // ~24 MiB of 4 KiB values, then 90 % of them deleted and the log purged: sled keeps
    // the space (see ARCHITECTURE.md, "Compaction").
    let base = client_with_key(&endpoints[0], Some(&key));
    let c0 = base.clone();
    bulk(16, BULK, move |i| {
        let mut c = c0.clone();
        async move {
            c.put(PutRequest {
                key: format!("bulk/{i:05}"),
                value: value_of(i),
            })
            .await
            .unwrap_or_else(|e| panic!("put bulk/{i:05}: {e}"));
        }
    })
    .await;
    let c0 = base.clone();
    bulk(16, BULK, move |i| {
        let mut c = c0.clone();
        async move {
            if i % 10 != 0 {
                c.delete(DeleteRequest {
                    key: format!("bulk/{i:05}"),
                })
                .await
                .unwrap_or_else(|e| panic!("delete bulk/{i:05}: {e}"));
            }
        }
    })
    .await;
    let out = dev_cli(&["compact", "--cluster", &d]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let before: BTreeMap<u64, u64> = nodes
        .iter()
        .map(|(id, _)| (*id, db_bytes(dir.path(), *id)))
        .collect();
    eprintln!(
        "bulk written, 90 % deleted, log purged after {:?}",
        started.elapsed()
    );

    // The rolling defrag while writes go on.
    let load = SteadyLoad::start_as(endpoints.clone(), 4, Some(key.clone()));
    wait_for("writes to flow", Duration::from_secs(10), || async {
        (load.acked_keys().len() > 50).then_some(())
    })
    .await;
    let out = dev_cli(&["compact", "--defrag", "--cluster", &d, "--json"]).await;
    let load = load.stop().await;
    assert!(
        out.status.success(),
        "{}{}",
        stderr_of(&out),
        stdout_of(&out)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout_of(&out)));
    let report = v["defrag"]["nodes"].as_array().expect("defrag nodes");
    assert_eq!(report.len(), 3, "{v}");
    assert!(v["defrag"]["transfer"]["to"].is_u64(), "{v}");
    for (id, b) in &before {
        let after = db_bytes(dir.path(), *id);
        let r = report
            .iter()
            .find(|r| r["id"] == *id)
            .unwrap_or_else(|| panic!("no report for node {id}: {v}"));
        eprintln!(
            "node {id}: db dir {:.1} MiB → {:.1} MiB now (the defrag: {:.1} → {:.1} MiB, \
             {} pairs, copy {} ms, down and caught up again in {} ms)",
            *b as f64 / 1048576.0,
            after as f64 / 1048576.0,
            r["before_bytes"].as_u64().unwrap() as f64 / 1048576.0,
            r["after_bytes"].as_u64().unwrap() as f64 / 1048576.0,
            r["pairs"],
            r["defrag_ms"],
            r["took_ms"]
        );
        assert!(
            after < b / 2,
            "node {id}'s db dir did not shrink by half: {b} → {after} bytes"
        );
        // Against the measurement above, not the report's own "before": sled's segment
        // cleaner may reclaim the tail on its own in between, and a fresh database (with
        // its preallocated segments) is then no smaller than the cleaned one.
        assert!(
            r["after_bytes"].as_u64().is_some_and(|a| a < b / 2),
            "node {id}'s defrag left {r} (before the defrag the dir held {b} bytes)"
        );
    }
    eprintln!(
        "under the defrag: {} writes acknowledged, {} retried, longest gap between \
         acknowledgements {:?}, longest single write {:?} (election timeout 150-300 ms), \
         rolling defrag {} ms",
        load.acked.len(),
        load.retries,
        load.longest_gap,
        load.longest_write,
        v["defrag"]["took_ms"]
    );
    assert!(load.failed.is_empty(), "writes failed: {:?}", load.failed);
    assert!(
        load.longest_gap < MAX_GAP,
        "writes stopped for {:?}",
        load.longest_gap
    );

    // Nothing acknowledged is lost, the survivors of the deletes are intact, the deleted
    // stay deleted, and the replicas agree.
    let mut c = base.clone();
    for k in load.acked.keys() {
        let got = c
            .get(GetRequest {
                key: k.clone(),
                stale: false,
            })
            .await
            .expect("get")
            .into_inner();
        assert!(got.found && got.value == k.as_bytes(), "{k} lost");
    }
    for i in (0..BULK).step_by(5) {
        let got = c
            .get(GetRequest {
                key: format!("bulk/{i:05}"),
                stale: false,
            })
            .await
            .expect("get")
            .into_inner();
        if i % 10 == 0 {
            assert!(got.found && got.value == value_of(i), "bulk/{i:05} lost");
        } else {
            assert!(!got.found, "bulk/{i:05} came back");
        }
    }
    check_agrees(&d).await;

    // With node 2 down a rolling defrag is refused naming it, before anything changed: no
    // compact, no node stopped or started.
    let pid2 = pid_of(dir.path(), 2).expect("node 2's pid");
    unsafe { libc::kill(pid2 as i32, libc::SIGKILL) };
    wait_for("node 2 to be gone", Duration::from_secs(10), || async {
        (!Path::new(&format!("/proc/{pid2}")).exists()).then_some(())
    })
    .await;
    let pids: Vec<Option<u64>> = [1, 3].iter().map(|id| pid_of(dir.path(), *id)).collect();
    let n2 = listing(&dir.path().join("n2"));
    let out = dev_cli(&["compact", "--defrag", "--cluster", &d]).await;
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("rolling defrag refused, nothing was restarted") && err.contains("node 2"),
        "{err}"
    );
    assert!(stdout_of(&out).is_empty(), "not even the compact ran");
    let now: Vec<Option<u64>> = [1, 3].iter().map(|id| pid_of(dir.path(), *id)).collect();
    assert_eq!(pids, now, "no node was restarted");
    assert!(now.iter().flatten().all(|p| running(*p)));
    assert_eq!(listing(&dir.path().join("n2")), n2, "node 2's data changed");

    // By hand: refused on a running node's data dir, done on the stopped one's.
    let n1 = dir.path().join("n1");
    let out = dev_cli(&["defrag-data", "--data", n1.to_str().unwrap()]).await;
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("locked by a running process") && err.contains("stop the node first"),
        "{err}"
    );
    assert!(
        !n1.join("db.defrag").exists(),
        "a refused defrag leaves nothing"
    );
    let n2 = dir.path().join("n2");
    let out = dev_cli(&["defrag-data", "--data", n2.to_str().unwrap(), "--json"]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("json");
    eprintln!("defrag-data of the stopped node 2: {r}");
    assert!(r["pairs"].as_u64().is_some_and(|p| p > 0), "{r}");
    let out = dev_cli(&["restart-node", "--id", "2", "--cluster", &d]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = dev_cli(&["put", "after", "by-hand", "--cluster", &d]).await;
    assert!(out.status.success(), "{}", stderr_of(&out));
    check_agrees(&d).await;
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Outside a dev cluster opsdeck cannot stop and start the nodes: the error gives the
/// steps by hand, and nothing is compacted (no node is even asked).
#[test]
fn compact_defrag_outside_a_dev_cluster_gives_the_steps_by_hand() {
    let port = free_port();
    let out = run_cli(&[
        "compact",
        "--defrag",
        "--endpoints",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("only in a dev cluster")
            && err.contains("systemctl stop opsdeck-node; opsdeck defrag-data --data /var/lib/opsdeck; systemctl start opsdeck-node"),
        "{err}"
    );
    assert!(
        !err.contains("compact: no node could be compacted"),
        "{err}"
    );
}
