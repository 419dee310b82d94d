//! Deletes what no generation uses any more, in bounded steps on a thread of its own: the
//! data of generations that are neither current nor staging (the one a restore replaced, a
//! staging a newer restore abandoned), the chunk markers and staged records of everything
//! but the staging generation, and what restores of older releases staged (`r/`,
//! `m/restore_chunk/`).
//!
//! Nothing of this is replicated: every node works out what is garbage from its own tree
//! (see [`super::generations`]: a generation that stopped being current or staging never
//! becomes either again), so it needs no bookkeeping of its own and simply carries on
//! after a restart. Each step deletes at most `step_keys` keys (and about 4 MiB of them)
//! in one sled batch, and skips a generation while a snapshot build's frozen view or a
//! read still uses it. Steps are never applied concurrently with the installation of a
//! snapshot, which renumbers generations (`exclusive`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::generations::{
    data_prefix, extra_prefix, split_gen, Current, Generations, CHUNK_MARK_PREFIX, DATA_PREFIX,
    EXTRA_PREFIX, GEN_PREFIX, STAGE_PREFIX,
};
use crate::store::freeze::Freezes;
use crate::store::io_error;

/// Keys per cleanup step (a test may make it smaller).
pub const STEP_KEYS: usize = 4096;
/// Key bytes per cleanup step, about.
const STEP_BYTES: usize = 4 * 1024 * 1024;
/// How often the janitor looks again when nothing woke it (a generation it skipped because
/// a snapshot or a read held it may be free now).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// What the janitor works on.
#[derive(Clone)]
pub(super) struct Context {
    pub tree: sled::Tree,
    pub freezes: Arc<Freezes>,
    pub current: Arc<Current>,
    /// Held by each step, and by a snapshot install for its whole length.
    pub exclusive: Arc<Mutex<()>>,
    pub step_keys: Arc<AtomicUsize>,
    /// A pause after each step, in ms (0 but in tests that stop a node mid-way).
    pub step_pause_ms: Arc<AtomicU64>,
}

#[derive(Default)]
struct Signal {
    state: Mutex<(bool, bool)>, // (woken, stop)
    cv: Condvar,
}

/// The janitor thread; stopped and joined when dropped.
pub(super) struct Janitor {
    signal: Arc<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Janitor {
    pub fn start(cx: Context) -> std::io::Result<Janitor> {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("sm-janitor".into())
            .spawn(move || run(cx, s))?;
        Ok(Janitor {
            signal,
            thread: Some(thread),
        })
    }

    /// Something may have become garbage: look now.
    pub fn wake(&self) {
        lock(&self.signal.state).0 = true;
        self.signal.cv.notify_all();
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        lock(&self.signal.state).1 = true;
        self.signal.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one range of garbage is, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Range {
    pub prefix: Vec<u8>,
    pub what: String,
}

fn run(cx: Context, signal: Arc<Signal>) {
    // The range being deleted, when it began and how many keys so far.
    let mut working: Option<(Range, Instant, u64)> = None;
    loop {
        {
            let mut state = lock(&signal.state);
            if state.1 {
                return;
            }
            if !state.0 && working.is_none() {
                state = signal
                    .cv
                    .wait_timeout(state, IDLE_LOOK)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                if state.1 {
                    return;
                }
            }
            state.0 = false;
        }
        loop {
            if lock(&signal.state).1 {
                return;
            }
            match step(&cx) {
                Ok(Some((range, keys))) => {
                    let same = working.as_ref().is_some_and(|(r, ..)| *r == range);
                    if !same {
                        finish(&cx.tree, working.take());
                        tracing::info!(what = %range.what, "cleanup: deleting {} in bounded steps", range.what);
                        working = Some((range, Instant::now(), 0));
                    }
                    if let Some(w) = working.as_mut() {
                        w.2 += keys as u64;
                    }
                    // Leaves the disk and the tree to applies between steps.
                    match cx.step_pause_ms.load(Ordering::Relaxed) {
                        0 => std::thread::yield_now(),
                        ms => std::thread::sleep(Duration::from_millis(ms)),
                    }
                }
                Ok(None) => {
                    finish(&cx.tree, working.take());
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cleanup step failed; trying again in a second");
                    break;
                }
            }
        }
        // Steps that found only protected garbage wait for the next look.
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn finish(tree: &sled::Tree, done: Option<(Range, Instant, u64)>) {
    if let Some((range, started, keys)) = done {
        if tree.scan_prefix(&range.prefix).next().is_some() {
            // Held by a snapshot build or a read for now: it goes on later.
            tracing::info!(what = %range.what, keys, "cleanup: paused deleting {}", range.what);
            return;
        }
        tracing::info!(
            what = %range.what,
            keys,
            took_ms = started.elapsed().as_millis() as u64,
            "cleanup: deleted {}",
            range.what
        );
    }
}

/// Deletes one bounded batch of garbage; answers which range and how many keys, or None
/// when there is nothing that may be deleted now.
pub(super) fn step(cx: &Context) -> std::io::Result<Option<(Range, usize)>> {
    let _exclusive = lock(&cx.exclusive);
    let gens = Generations::load(&cx.tree)?;
    let protected = cx.freezes.protected();
    let free = |gen: u64| !protected.contains(&gen) && !cx.current.in_use(gen);
    let Some(range) = garbage(&cx.tree, &gens, &free)? else {
        return Ok(None);
    };
    let max_keys = cx.step_keys.load(Ordering::Relaxed).max(1);
    let mut batch = sled::Batch::default();
    let (mut keys, mut bytes) = (0usize, 0usize);
    for item in cx.tree.scan_prefix(&range.prefix).keys() {
        let k = item.map_err(io_error)?;
        bytes = bytes.saturating_add(k.len());
        batch.remove(k);
        keys += 1;
        if keys >= max_keys || bytes >= STEP_BYTES {
            break;
        }
    }
    cx.tree.apply_batch(batch).map_err(io_error)?;
    Ok(Some((range, keys)))
}

/// The first range of garbage that may be deleted now.
fn garbage(
    tree: &sled::Tree,
    gens: &Generations,
    free: &dyn Fn(u64) -> bool,
) -> std::io::Result<Option<Range>> {
    let non_empty = |prefix: &[u8]| -> std::io::Result<bool> {
        Ok(tree
            .scan_prefix(prefix)
            .next()
            .transpose()
            .map_err(io_error)?
            .is_some())
    };
    for (prefix, what) in [
        (
            STAGE_PREFIX,
            "what a restore of an older release staged (r/)",
        ),
        (
            CHUNK_MARK_PREFIX,
            "the chunk markers of a restore of an older release",
        ),
    ] {
        if non_empty(prefix)? {
            return Ok(Some(Range {
                prefix: prefix.to_vec(),
                what: what.into(),
            }));
        }
    }
    if !gens.live(0) && free(0) && non_empty(DATA_PREFIX)? {
        return Ok(Some(Range {
            prefix: data_prefix(0),
            what: "data generation 0".into(),
        }));
    }
    // Generations N ≥ 1, in order: the first key at or after `g/`+N names the next one.
    let mut gen = 1u64;
    loop {
        let from = data_prefix(gen);
        let Some(first) = tree
            .range(from..)
            .keys()
            .next()
            .transpose()
            .map_err(io_error)?
        else {
            break;
        };
        let Some((found, _)) = split_gen(&first, GEN_PREFIX) else {
            break;
        };
        if !gens.live(found) && free(found) {
            return Ok(Some(Range {
                prefix: data_prefix(found),
                what: format!("data generation {found}"),
            }));
        }
        match found.checked_add(1) {
            Some(n) => gen = n,
            None => break,
        }
    }
    // Staged extras: every generation's but the staging one's.
    let mut gen = 0u64;
    loop {
        let from = extra_prefix(gen);
        let Some(first) = tree
            .range(from..)
            .keys()
            .next()
            .transpose()
            .map_err(io_error)?
        else {
            break;
        };
        let Some((found, _)) = split_gen(&first, EXTRA_PREFIX) else {
            break;
        };
        if Some(found) != gens.staging && free(found) {
            return Ok(Some(Range {
                prefix: extra_prefix(found),
                what: format!("the staging records of generation {found}"),
            }));
        }
        match found.checked_add(1) {
            Some(n) => gen = n,
            None => break,
        }
    }
    Ok(None)
}
