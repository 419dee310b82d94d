//! `opsdeck bench`: drives concurrent writes (and optionally linearizable reads) against a
//! cluster and prints throughput and latency percentiles. A measurement, not a test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use hdrhistogram::Histogram;
use opsdeck_node::pb::{GetRequest, PutRequest};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::cli::BenchArgs;
use crate::client::failure::class_of;
use crate::client::{Class, ClusterClient, NodeRpc};

/// Latency in microseconds, 1 µs .. 60 s at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

#[derive(Default)]
struct Tally {
    writes: Option<Histogram<u64>>,
    reads: Option<Histogram<u64>>,
    write_errors: u64,
    read_errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            writes: Some(histogram()),
            reads: Some(histogram()),
            ..Default::default()
        }
    }

    fn merge(&mut self, other: Tally) {
        for (mine, theirs) in [
            (&mut self.writes, other.writes),
            (&mut self.reads, other.reads),
        ] {
            if let (Some(m), Some(t)) = (mine.as_mut(), theirs) {
                let _ = m.add(t);
            }
        }
        self.write_errors += other.write_errors;
        self.read_errors += other.read_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn key_name(prefix: &str, i: usize) -> String {
    format!("{prefix}k{i:05}")
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.clients == 0 || args.keys == 0 {
        return Err(eyre!("--clients and --keys must be at least 1"));
    }
    let cluster = Arc::new(super::connect(&args.cluster)?);
    let (target, target_desc) = match &args.target {
        Some(t) => (t.clone(), "as given".to_string()),
        None => {
            let (_, leader) = cluster.leader().await?;
            let desc = format!("leader, node {}; followed after an error", leader.id);
            (leader.grpc.clone(), desc)
        }
    };
    // Several HTTP/2 connections, so one connection's flow control is not the bottleneck.
    let connections = args.clients.div_ceil(16).clamp(1, 16);
    let clients: Vec<NodeRpc> = (0..connections)
        .map(|_| cluster.connect_to(&target))
        .collect::<Result<_>>()?;
    let value = vec![b'v'; args.value_size];

    if args.reads > 0 {
        prefill(&cluster, &args.prefix, args.keys, &value).await?;
    }

    let started = Instant::now();
    let deadline = started + args.duration;
    let stopped = stop_on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.clients {
        let mut c = clients[i % clients.len()].clone();
        let value = value.clone();
        let (keys, reads, prefix) = (args.keys, args.reads, args.prefix.clone());
        let stopped = stopped.clone();
        // Without --target a client whose write fails asks again who leads (a failover or a
        // rolling restart is then measured as the clients see it, not as errors against a
        // node that is down).
        let follow = args.target.is_none().then(|| cluster.clone());
        tasks.spawn(async move {
            let mut tally = Tally::new();
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            while Instant::now() < deadline && !stopped.load(Ordering::Relaxed) {
                let key = key_name(&prefix, rng.random_range(0..keys));
                let read = rng.random_range(0..100u8) < reads;
                let t0 = Instant::now();
                let outcome = if read {
                    c.get(GetRequest { key, stale: false }).await.map(|_| ())
                } else {
                    c.put(PutRequest {
                        key,
                        value: value.clone(),
                    })
                    .await
                    .map(|_| ())
                };
                let micros = t0.elapsed().as_micros().min(60_000_000) as u64;
                match (outcome, read) {
                    (Ok(()), false) => tally
                        .writes
                        .as_mut()
                        .map(|h| h.saturating_record(micros.max(1))),
                    (Ok(()), true) => tally
                        .reads
                        .as_mut()
                        .map(|h| h.saturating_record(micros.max(1))),
                    (Err(e), r) => {
                        if r {
                            tally.read_errors += 1
                        } else {
                            tally.write_errors += 1
                        }
                        tally
                            .first_error
                            .get_or_insert_with(|| e.message().to_string());
                        if let Some(cluster) = &follow {
                            if let Ok((leader, _)) = cluster.leader().await {
                                c = leader;
                            }
                        }
                        None
                    }
                };
            }
            tally
        });
    }
    let mut total = Tally::new();
    while let Some(t) = tasks.join_next().await {
        total.merge(t.map_err(|e| eyre!("bench client failed: {e}"))?);
    }
    let elapsed = started.elapsed();
    report(&args, &target, &target_desc, elapsed, &total);
    Ok(())
}

/// Set once Ctrl-C, SIGTERM or SIGHUP arrives ([`super::node::shutdown_signal`], as the
/// console ends): the clients stop and the figures so far are printed, so a script can
/// measure writes for exactly as long as something else runs.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    tokio::spawn(async move {
        super::node::shutdown_signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    stopped
}

/// How long a prefill keeps trying one key while the cluster is unavailable.
const PREFILL_RETRY: Duration = Duration::from_secs(120);

/// Writes every key once, 64 at a time, each put through [`ClusterClient::call`] (failed
/// over while no leader is elected) and tried again for up to [`PREFILL_RETRY`] while the
/// cluster is unavailable, so a leader change or a stall during a long prefill of large
/// values does not end the bench.
async fn prefill(
    cluster: &Arc<ClusterClient>,
    prefix: &str,
    keys: usize,
    value: &[u8],
) -> Result<()> {
    let value = Arc::new(value.to_vec());
    let prefix: Arc<str> = prefix.into();
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 64.min(keys);
    for w in 0..workers {
        let (cluster, value, prefix) = (cluster.clone(), value.clone(), prefix.clone());
        tasks.spawn(async move {
            for i in (w..keys).step_by(workers) {
                let key = key_name(&prefix, i);
                let started = Instant::now();
                loop {
                    let put = cluster
                        .call(&format!("prefill: put {key}"), |mut rpc| {
                            let req = PutRequest {
                                key: key.clone(),
                                value: value.to_vec(),
                            };
                            async move { rpc.put(req).await }
                        })
                        .await;
                    match put {
                        Ok(_) => break,
                        // The same put again is harmless: one whose outcome is unknown (it
                        // timed out) or that found no leader is tried again.
                        Err(e)
                            if class_of(&e) == Class::Unavailable
                                && started.elapsed() < PREFILL_RETRY => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok::<_, color_eyre::eyre::Report>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| eyre!("prefill task failed: {e}"))??;
    }
    Ok(())
}

fn summary(h: &Histogram<u64>, errors: u64, elapsed: Duration) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "ok": h.len(),
        "errors": errors,
        "ops_per_sec": (h.len() as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "max_ms": h.max() as f64 / 1000.0,
    })
}

fn report(args: &BenchArgs, target: &str, target_desc: &str, elapsed: Duration, t: &Tally) {
    let (Some(w), Some(r)) = (&t.writes, &t.reads) else {
        return;
    };
    let writes = summary(w, t.write_errors, elapsed);
    let reads = summary(r, t.read_errors, elapsed);
    if args.cluster.json() {
        let out = json!({
            "clients": args.clients, "value_size": args.value_size, "keys": args.keys, "prefix": args.prefix,
            "duration_secs": elapsed.as_secs_f64(), "read_percent": args.reads,
            "target": target, "writes": writes, "reads": reads, "first_error": t.first_error,
        });
        println!("{out}");
        return;
    }
    println!(
        "bench: {} clients, {}-byte values, {} keys, {:.1}s, {}% reads, target {target} ({target_desc})",
        args.clients,
        args.value_size,
        args.keys,
        elapsed.as_secs_f64(),
        args.reads
    );
    for (name, s) in [("writes", &writes), ("reads", &reads)] {
        if s["ok"].as_u64() == Some(0) && s["errors"].as_u64() == Some(0) {
            continue;
        }
        println!(
            "{name:>6}: {:>8} ops/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} ok, {} errors)",
            s["ops_per_sec"], s["p50_ms"].as_f64().unwrap_or(0.0), s["p95_ms"].as_f64().unwrap_or(0.0),
            s["p99_ms"].as_f64().unwrap_or(0.0), s["max_ms"].as_f64().unwrap_or(0.0), s["ok"], s["errors"]
        );
    }
    if let Some(e) = &t.first_error {
        println!("first error: {e}");
    }
}
