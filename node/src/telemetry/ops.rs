//! Per-operation figures for status frames: lifetime totals and errors, the rate over the
//! last few seconds, and latency percentiles over roughly the last minute (a ring of
//! per-10-second HDR histograms, so old samples age out without a sliding structure).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::pb;

/// Width of one latency window, and how many are kept (~ one minute).
const WINDOW: Duration = Duration::from_secs(10);
const WINDOWS: u64 = 6;
/// Seconds the rate is averaged over (complete seconds only).
const RATE_SECONDS: u64 = 5;
/// Listed in every frame, even before the first call, so a console's table keeps its rows.
const CLIENT_OPS: [&str; 5] = ["put", "get", "delete", "scan", "cas"];
/// Latencies are recorded in microseconds, 1 µs .. 10 min, 2 significant digits.
const MAX_MICROS: u64 = 600_000_000;

struct Op {
    total: u64,
    errors: u64,
    /// (window number, latencies in it), oldest first.
    windows: VecDeque<(u64, Histogram<u64>)>,
    /// (second, operations in it), oldest first.
    seconds: VecDeque<(u64, u64)>,
}

impl Op {
    fn new() -> Op {
        Op {
            total: 0,
            errors: 0,
            windows: VecDeque::with_capacity(WINDOWS as usize + 1),
            seconds: VecDeque::with_capacity(RATE_SECONDS as usize + 2),
        }
    }
}

struct Inner {
    ops: BTreeMap<&'static str, Op>,
    errors: BTreeMap<&'static str, u64>,
}

/// Records every client operation; read by the status sampler.
pub struct OpRecorder {
    started: Instant,
    inner: Mutex<Inner>,
}

impl Default for OpRecorder {
    fn default() -> Self {
        OpRecorder {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                ops: CLIENT_OPS.iter().map(|op| (*op, Op::new())).collect(),
                errors: BTreeMap::new(),
            }),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's limits.
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid histogram bounds")
}

impl OpRecorder {
    /// One operation `op` that took `elapsed`; `error` names its error kind if it failed.
    pub fn record(&self, op: &'static str, elapsed: Duration, error: Option<&'static str>) {
        let now = self.started.elapsed();
        let (window, second) = (now.as_secs() / WINDOW.as_secs(), now.as_secs());
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let o = inner.ops.entry(op).or_insert_with(Op::new);
        o.total += 1;
        if error.is_some() {
            o.errors += 1;
        }
        if o.windows.back().map(|(w, _)| *w) != Some(window) {
            o.windows.push_back((window, new_histogram()));
        }
        while o
            .windows
            .front()
            .is_some_and(|(w, _)| *w + WINDOWS <= window)
        {
            o.windows.pop_front();
        }
        if let Some((_, h)) = o.windows.back_mut() {
            h.saturating_record(micros);
        }
        match o.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => o.seconds.push_back((second, 1)),
        }
        while o
            .seconds
            .front()
            .is_some_and(|(s, _)| *s + RATE_SECONDS < second)
        {
            o.seconds.pop_front();
        }
        if let Some(kind) = error {
            *inner.errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// Figures of every operation seen so far, and error counts by kind.
    pub fn snapshot(&self) -> (Vec<pb::OpStats>, Vec<pb::ErrorCount>) {
        let now = self.started.elapsed().as_secs();
        let window = now / WINDOW.as_secs();
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let ops = inner
            .ops
            .iter()
            .map(|(name, o)| {
                let mut merged = new_histogram();
                for (_, h) in o.windows.iter().filter(|(w, _)| w + WINDOWS > window) {
                    // Same bounds on both sides, so adding cannot fail.
                    let _ = merged.add(h);
                }
                // The current second is still filling up: average the complete ones before it.
                let recent: u64 = o
                    .seconds
                    .iter()
                    .filter(|(s, _)| *s < now && *s + RATE_SECONDS >= now)
                    .map(|(_, n)| n)
                    .sum();
                let span = RATE_SECONDS.min(now).max(1);
                let q = |q: f64| {
                    if merged.is_empty() {
                        0
                    } else {
                        merged.value_at_quantile(q)
                    }
                };
                pb::OpStats {
                    op: name.to_string(),
                    per_sec: recent as f64 / span as f64,
                    total: o.total,
                    errors: o.errors,
                    p50_us: q(0.50),
                    p95_us: q(0.95),
                    p99_us: q(0.99),
                    max_us: if merged.is_empty() { 0 } else { merged.max() },
                }
            })
            .collect();
        let errors = inner
            .errors
            .iter()
            .map(|(kind, count)| pb::ErrorCount {
                kind: kind.to_string(),
                count: *count,
            })
            .collect();
        (ops, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_errors_and_ordered_percentiles() {
        let r = OpRecorder::default();
        for i in 1..=1000u64 {
            r.record("put", Duration::from_micros(i * 10), None);
        }
        r.record("get", Duration::from_millis(2), Some("timeout"));
        let (ops, errors) = r.snapshot();
        let put = ops.iter().find(|o| o.op == "put").unwrap();
        assert_eq!(put.total, 1000);
        assert_eq!(put.errors, 0);
        assert!(put.p50_us > 4_000 && put.p50_us < 6_000, "{put:?}");
        assert!(put.p50_us <= put.p95_us && put.p95_us <= put.p99_us);
        assert!(put.p99_us <= put.max_us && put.max_us >= 9_900, "{put:?}");
        let get = ops.iter().find(|o| o.op == "get").unwrap();
        assert_eq!((get.total, get.errors), (1, 1));
        let scan = ops.iter().find(|o| o.op == "scan").unwrap();
        assert_eq!((scan.total, scan.p99_us, scan.per_sec), (0, 0, 0.0));
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].kind.as_str(), errors[0].count), ("timeout", 1));
    }
}
