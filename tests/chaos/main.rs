//! Chaos suite: a real cluster of `opsdeck node` processes behind fault-injecting proxies,
//! concurrent clients recording every operation, faults injected on a seeded schedule, then
//! a linearizability check of the history and end checks of every node's data.
//!
//! `cargo test --release --test chaos chaos_short` runs the CI profile;
//! `cargo test --release --test chaos chaos_long -- --ignored --nocapture` the long one.
//! `CHAOS_SEED=N` repeats a run's fault schedule; a failing run writes its history and
//! schedule to a file that `CHAOS_REPLAY=FILE cargo test --release --test chaos
//! chaos_replay -- --ignored --nocapture` checks again.

#[path = "../support/mod.rs"]
mod support;

mod linearizability;
mod nemesis;
mod proxy;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nemesis::{Chaos, Fault, Injected, Profile, Step};
use opsdeck_node::pb::GetRequest;
use serde::{Deserialize, Serialize};

use linearizability::{Event, Op, Outcome};
use workload::{Clients, Shape};

/// Steps of the search per key before the checker gives up (and the run fails).
const CHECK_BUDGET: u64 = 50_000_000;

/// How to run the disk faults a build without failpoints skips.
const NO_FAILPOINTS_FIX: &str = "cargo test --release --features failpoints --test chaos";

fn short_profile() -> Profile {
    Profile {
        name: "short",
        faults: vec![
            (Fault::KillLeader, 10),
            (Fault::IsolateLeader, 1),
            (Fault::SplitFollower, 1),
            (Fault::OneWayFromLeader, 1),
            (Fault::KillFollower, 1),
            (Fault::KillTwo, 1),
            (Fault::PauseLeader, 1),
            (Fault::Slow, 1),
            (Fault::CompactDuringPartition, 1),
            (Fault::MembershipDuringKill, 1),
            (Fault::FsyncErrorFollower, 1),
            (Fault::StallDisk, 1),
        ],
        clients: 8,
    }
}

fn long_profile() -> Profile {
    Profile {
        name: "long",
        faults: vec![
            (Fault::KillLeader, 100),
            (Fault::IsolateLeader, 7),
            (Fault::SplitFollower, 7),
            (Fault::OneWayFromLeader, 6),
            (Fault::KillFollower, 10),
            (Fault::KillTwo, 5),
            (Fault::PauseLeader, 5),
            (Fault::Slow, 5),
            (Fault::CompactDuringPartition, 5),
            (Fault::MembershipDuringKill, 5),
            (Fault::FsyncErrorFollower, 5),
            (Fault::FsyncErrorLeader, 5),
            (Fault::StallDisk, 5),
            (Fault::AppendError, 5),
        ],
        clients: 8,
    }
}

/// What one run saw and concluded.
#[derive(Serialize, Deserialize)]
struct Run {
    profile: String,
    seed: u64,
    schedule: Vec<Step>,
    injected: Vec<Injected>,
    history: Vec<Event>,
    acked_unique: usize,
    lost_writes: Vec<String>,
    phantom_writes: Vec<String>,
    /// Nodes whose final data differs from node 1's.
    diverged: Vec<u64>,
    /// `opsdeck check` on the voters at the end: Ok(what agreed) or Err(why not).
    #[serde(default = "digests_not_checked")]
    digests: Result<String, String>,
    failed_ops: u64,
    errors: BTreeMap<String, u64>,
    seconds: f64,
}

impl Run {
    fn passed(&self, check: &linearizability::Report) -> bool {
        check.linearizable
            && self.lost_writes.is_empty()
            && self.phantom_writes.is_empty()
            && self.diverged.is_empty()
            && self.digests.is_ok()
    }

    /// The longest time no write was acknowledged, from the start of the run to its end.
    fn longest_unavailability(&self) -> Duration {
        let mut acks: Vec<u64> = self
            .history
            .iter()
            .filter(|e| e.op != Op::Get)
            .filter_map(|e| e.completed)
            .collect();
        acks.sort_unstable();
        let gaps = acks.windows(2).map(|w| w[1] - w[0]);
        Duration::from_nanos(gaps.max().unwrap_or(0))
    }

    fn summary(&self, check: &linearizability::Report, check_time: Duration) -> String {
        let count = |f: fn(&Event) -> bool| self.history.iter().filter(|e| f(e)).count();
        let unknown = count(|e| e.outcome == Outcome::Unknown);
        let writes_acked = count(|e| e.op != Op::Get && e.outcome != Outcome::Unknown);
        let mut faults: BTreeMap<String, usize> = BTreeMap::new();
        let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
        for i in &self.injected {
            let into = if i.skipped { &mut skipped } else { &mut faults };
            *into.entry(format!("{:?}", i.fault)).or_default() += 1;
        }
        let installs: u32 = self.injected.iter().map(|i| i.snapshot_installs).sum();
        let longest_recovery = self
            .injected
            .iter()
            .map(|i| Duration::from_nanos(i.recovered - i.healed))
            .max()
            .unwrap_or_default();
        let mut s = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "| {k:<34} | {v:<44} |");
        };
        row(
            "profile / seed",
            format!("{} / {}", self.profile, self.seed),
        );
        row("run time", format!("{:.1} s", self.seconds));
        row(
            "operations (recorded)",
            format!(
                "{} ({} unknown outcome; {} failed for certain)",
                self.history.len(),
                unknown,
                self.failed_ops
            ),
        );
        let mut errors: Vec<(&String, &u64)> = self.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1));
        for (e, n) in errors.into_iter().take(6) {
            row(&format!("  {n} ×"), e.clone());
        }
        let total_faults: usize = faults.values().sum();
        row("faults injected", total_faults.to_string());
        for (kind, n) in &faults {
            row(&format!("  {kind}"), n.to_string());
        }
        if !skipped.is_empty() {
            let total: usize = skipped.values().sum();
            row(
                "faults SKIPPED",
                format!("{total}: no failpoints in this build ({NO_FAILPOINTS_FIX})"),
            );
            for (kind, n) in &skipped {
                row(&format!("  {kind}"), n.to_string());
            }
        }
        row("restarts that needed a snapshot", installs.to_string());
        row(
            "acknowledged writes",
            format!(
                "{writes_acked} register + {} written-once keys",
                self.acked_unique
            ),
        );
        row("lost writes", self.lost_writes.len().to_string());
        row(
            "phantom writes (never acknowledged)",
            self.phantom_writes.len().to_string(),
        );
        row(
            "nodes' final data identical",
            if self.diverged.is_empty() {
                "yes".into()
            } else {
                format!("no: {:?} differ from node 1", self.diverged)
            },
        );
        row(
            "state digests at one index",
            match &self.digests {
                Ok(agreed) => format!("agree: {agreed}"),
                Err(why) => format!("NO: {why}"),
            },
        );
        row(
            "linearizable",
            match (&check.inconclusive, check.linearizable) {
                (Some(why), _) => format!("inconclusive: {why}"),
                (None, true) => format!(
                    "yes ({} keys, {:.1} s)",
                    check.keys,
                    check_time.as_secs_f64()
                ),
                (None, false) => "NO".into(),
            },
        );
        row(
            "longest unavailability (no write)",
            format!("{:.2} s", self.longest_unavailability().as_secs_f64()),
        );
        row(
            "longest recovery after a heal",
            format!("{:.2} s", longest_recovery.as_secs_f64()),
        );
        s
    }
}

fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().expect("CHAOS_SEED must be an integer"),
        Err(_) => rand::random::<u32>() as u64,
    }
}

async fn run(profile: &Profile, seed: u64) -> Run {
    let start = Instant::now();
    let schedule = profile.schedule(seed);
    eprintln!(
        "chaos: profile {} seed {seed}: {} faults",
        profile.name,
        schedule.len()
    );
    let mut chaos = Chaos::start(start).await;
    let disk_faults = schedule
        .iter()
        .filter(|s| s.fault.needs_failpoints())
        .count();
    if disk_faults > 0 && !chaos.failpoints {
        eprintln!(
            "chaos: SKIPPING the {disk_faults} disk faults of this schedule: the nodes were built \
             without failpoints (`{NO_FAILPOINTS_FIX}` runs them)"
        );
    }
    let shape = Shape {
        clients: profile.clients,
        registers: 16,
        think: Duration::from_millis(2),
    };
    let clients = Clients::start(chaos.endpoints(), shape, seed, start);
    // Writes flow before the first fault, so it strikes a busy cluster.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut injected = Vec::new();
    for (i, step) in schedule.iter().enumerate() {
        let done = chaos.inject(*step).await;
        if done.skipped {
            eprintln!(
                "chaos: {}/{} {:?}: SKIPPED (no failpoints in this build)",
                i + 1,
                schedule.len(),
                done.fault
            );
            injected.push(done);
            continue;
        }
        eprintln!(
            "chaos: {}/{} {:?} on {:?}: healed after {:.2} s, recovered {:.2} s later",
            i + 1,
            schedule.len(),
            done.fault,
            done.nodes,
            (done.healed - done.started) as f64 / 1e9,
            (done.recovered - done.healed) as f64 / 1e9,
        );
        injected.push(done);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut recorded = clients.stop().await;
    chaos.net.heal();
    chaos.wait_recovered().await;
    final_reads(&chaos, shape, start, &mut recorded.history).await;
    chaos.wait_recovered().await;

    // Every voter's data, read locally, against node 1's and the writes acknowledged.
    let mut scans = Vec::new();
    for id in 1..=3 {
        let data: BTreeSet<(String, Vec<u8>)> = chaos
            .cluster
            .scan_local(id, "chaos/")
            .await
            .into_iter()
            .collect();
        scans.push((id, data));
    }
    let diverged = scans
        .iter()
        .filter(|(_, d)| *d != scans[0].1)
        .map(|(id, _)| *id)
        .collect();
    let keys = |id: usize| -> BTreeSet<&str> {
        scans[id]
            .1
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with(workload::UNIQUE))
            .collect()
    };
    let present: Vec<BTreeSet<&str>> = (0..scans.len()).map(keys).collect();
    let lost: Vec<String> = recorded
        .unique_acked
        .iter()
        .filter_map(|k| {
            let missing: Vec<u64> = (0..scans.len())
                .filter(|&i| !present[i].contains(k.as_str()))
                .map(|i| scans[i].0)
                .collect();
            (!missing.is_empty()).then(|| format!("{k} (missing on nodes {missing:?})"))
        })
        .collect();
    let written: BTreeSet<&str> = recorded
        .unique_acked
        .iter()
        .chain(&recorded.unique_unknown)
        .map(|k| k.as_str())
        .collect();
    let phantom = present[0]
        .iter()
        .filter(|k| !written.contains(*k))
        .map(|k| k.to_string())
        .collect();
    let digests = check_digests(&chaos).await;
    Run {
        profile: profile.name.to_string(),
        seed,
        schedule,
        injected,
        history: recorded.history,
        acked_unique: recorded.unique_acked.len(),
        lost_writes: lost,
        phantom_writes: phantom,
        diverged,
        digests,
        failed_ops: recorded.failed,
        errors: recorded.errors,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// A run recorded before the end check compared digests.
fn digests_not_checked() -> Result<String, String> {
    Ok("not checked (recorded by an older build)".into())
}

/// `opsdeck check` on the voters, as an operator would run it: their state digests
/// (covering data, keys, quotas, usage and audit, not just the `chaos/` keys the scans
/// compare) at one index all of them applied.
async fn check_digests(chaos: &Chaos) -> Result<String, String> {
    let endpoints: Vec<&str> = (1..=3)
        .map(|id| chaos.cluster.node(id).grpc.as_str())
        .collect();
    let out = support::cli_as(
        None,
        &["check", "--endpoints", &endpoints.join(","), "--json"],
    )
    .await;
    let json = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        format!(
            "check --json printed no report ({e}): {json} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let outcome = &report["outcome"];
    match (out.status.code(), outcome["outcome"].as_str()) {
        (Some(0), Some("agree")) => Ok(format!("3 voters at index {}", outcome["index"])),
        (code, _) => Err(format!("exit {code:?}: {outcome}")),
    }
}

/// One linearizable read of every register after the faults, on a healed cluster: a write
/// acknowledged during the run and lost since shows up in the check.
async fn final_reads(chaos: &Chaos, shape: Shape, start: Instant, history: &mut Vec<Event>) {
    let leader = chaos.leader().await;
    let mut c = chaos.cluster.node(leader).client();
    for reg in 0..shape.registers {
        let key = format!("{}{reg}", workload::REGISTER);
        let invoked = start.elapsed().as_nanos() as u64;
        let r = c
            .get(GetRequest {
                key: key.clone(),
                stale: false,
            })
            .await
            .expect("final read on a healed cluster")
            .into_inner();
        let value = r.found.then(|| {
            String::from_utf8_lossy(&r.value)
                .parse()
                .unwrap_or(u64::MAX)
        });
        history.push(Event {
            client: 0,
            key,
            op: Op::Get,
            outcome: Outcome::Got(value),
            invoked,
            completed: Some(start.elapsed().as_nanos() as u64),
        });
    }
}

/// Checks a run, prints and files its summary; on failure also saves the whole run.
fn conclude(run: &Run) -> bool {
    let began = Instant::now();
    let check = linearizability::check(&run.history, CHECK_BUDGET);
    let summary = run.summary(&check, began.elapsed());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::write(
        dir.join(format!("chaos-{}-summary.md", run.profile)),
        &summary,
    );
    println!("{summary}");
    if let Some(v) = &check.violation {
        eprintln!("chaos: not linearizable: {v}");
    }
    for l in run.lost_writes.iter().take(20) {
        eprintln!("chaos: lost write {l}");
    }
    let passed = run.passed(&check);
    if !passed {
        let file = dir.join(format!("chaos-{}-{}-failed.json", run.profile, run.seed));
        let saved = serde_json::to_vec(run).map(|bytes| std::fs::write(&file, bytes));
        match saved {
            Ok(Ok(())) => eprintln!(
                "chaos: history and fault schedule saved to {} (CHAOS_REPLAY=that file \
                 re-checks it; CHAOS_SEED={} repeats the schedule)",
                file.display(),
                run.seed
            ),
            _ => eprintln!("chaos: could not save the failed run to {}", file.display()),
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short() {
    let run = run(&short_profile(), seed()).await;
    assert!(
        conclude(&run),
        "the short chaos profile failed: see the summary above"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: about 10 minutes; run with --ignored"]
async fn chaos_long() {
    let run = run(&long_profile(), seed()).await;
    assert!(
        conclude(&run),
        "the long chaos profile failed: see the summary above"
    );
}

/// Checks a saved run again (`CHAOS_REPLAY=FILE`), without a cluster.
#[test]
#[ignore = "needs CHAOS_REPLAY=FILE from a failed run"]
fn chaos_replay() {
    let file = std::env::var("CHAOS_REPLAY").expect("set CHAOS_REPLAY to a saved run's file");
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let run: Run =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{file} is not a saved run: {e}"));
    assert!(conclude(&run), "the saved run fails its checks again");
}

/// Proof that the checks can fail: a node that acknowledges puts before they commit
/// (built only with the test-only feature) must be caught.
#[cfg(feature = "chaos-ack-before-commit")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_node_fails_the_checks() {
    let profile = Profile {
        name: "broken",
        faults: vec![(Fault::KillLeader, 3), (Fault::IsolateLeader, 1)],
        clients: 8,
    };
    let run = run(&profile, seed()).await;
    assert!(
        !conclude(&run),
        "a node that acknowledges writes before they commit passed the chaos checks"
    );
}
