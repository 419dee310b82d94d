//! Linearizability checker for the histories the chaos suite records.
//!
//! The search is Wing & Gong's with Lowe's memoization, as in the Go `porcupine` checker.
//! The history is checked per key (P-compositionality: a history is linearizable iff every
//! key's sub-history is), each key against a register that starts absent. For one key, every
//! answered op becomes a call entry and a return entry in a doubly linked list sorted by
//! time; the search repeatedly picks a call that comes before the first remaining return
//! (so nothing that had to precede it is still pending), applies it to the model and
//! unlinks it, with an explicit stack to backtrack. A cache of (ops placed, model state)
//! stops it from exploring a configuration twice.
//!
//! Refinements, each of which keeps the check exact (see the comments where applied):
//! - Ops with an unknown outcome never return: they get no return entry and are tried only
//!   once no answered op can go next, so they are placed where the history needs their
//!   effect. The search is done when every answered op is placed: unknown ops left over go
//!   last, which is the same as never.
//! - Unknown ops with the same effect are interchangeable, so they are placed in the order
//!   of invocation only; values that no op compares with are renamed to one value, so
//!   states holding any of them are one state.
//! - The cache subsumes: with the same answered ops placed and the same state, having placed
//!   fewer unknown ops is never worse, so a configuration is pruned when one with a subset of
//!   its unknown ops was explored. The answered ops placed are not stored as a bitset over the
//!   key's ops but as the few unplaced ones whose calls come before the first remaining
//!   return, which determine them.
//! - An answered op that never changes the state (a get, a compare-and-set that reports a
//!   mismatch, a delete of an absent key) is placed as soon as its outcome fits, without
//!   trying its siblings: placing it first never hurts.
//!
//! A step of the search (what the budget counts) is one move: arriving at a configuration,
//! trying one candidate, or backtracking once.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A value written to a key: every write in a history writes a distinct value.
pub type Value = u64;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    Get,
    Put(Value),
    Delete,
    /// Compare-and-set: if the current value equals `expected` (None = absent), set it to `new` (None = delete).
    Cas {
        expected: Option<Value>,
        new: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// A get that answered: the value seen (None = absent).
    Got(Option<Value>),
    /// A put that was acknowledged.
    Written,
    /// A delete that was acknowledged; whether the key existed.
    Deleted { existed: bool },
    /// A cas that answered: whether it applied.
    Swapped(bool),
    /// No answer (timeout, connection lost, leader died...): the op may or may not have taken effect, at any time after its invocation.
    Unknown,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub client: u64,
    pub key: String,
    pub op: Op,
    pub outcome: Outcome,
    /// Nanoseconds since the start of the run, when the client sent the request.
    pub invoked: u64,
    /// When the answer arrived; None exactly when outcome is Unknown.
    pub completed: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub linearizable: bool,
    pub keys: usize,
    pub ops: usize,
    /// Set when the search gave up on some key (see budget): then `linearizable` is false and this says which key and why.
    pub inconclusive: Option<String>,
    /// For the first key found not linearizable: a human-readable explanation
    /// (the key, the longest linearizable prefix found — the op ids in order with the model value after each —
    /// and the ops that could not be placed next, each with client, op, outcome, invoked, completed).
    pub violation: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.linearizable {
            "linearizable"
        } else {
            "NOT linearizable"
        };
        write!(f, "{verdict} ({} keys, {} ops)", self.keys, self.ops)?;
        if let Some(why) = &self.inconclusive {
            write!(f, "; inconclusive: {why}")?;
        }
        if let Some(v) = &self.violation {
            write!(f, "; violation: {v}")?;
        }
        Ok(())
    }
}

/// Checks every key's sub-history against a register that starts absent.
/// `budget` bounds the search steps per key; past it the key is reported inconclusive (never "linearizable").
///
/// Op ids in the report are indices into `history`. `ops` counts all events; unknown gets
/// are dropped before the search (they cannot have had an effect). An event whose outcome
/// cannot answer its op (say a get that was `Written`) makes the history not linearizable,
/// with the event named in `violation`.
pub fn check(history: &[Event], budget: u64) -> Report {
    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (id, e) in history.iter().enumerate() {
        let ids = by_key.entry(e.key.as_str()).or_default();
        if !(e.op == Op::Get && e.outcome == Outcome::Unknown) {
            ids.push(id);
        }
    }
    let mut report = Report {
        linearizable: true,
        keys: by_key.len(),
        ops: history.len(),
        inconclusive: None,
        violation: None,
    };
    if let Some((id, e)) = history
        .iter()
        .enumerate()
        .find(|(_, e)| Act::new(&e.op, &e.outcome).is_none())
    {
        report.linearizable = false;
        report.violation = Some(format!(
            "key {:?}: event #{id} is malformed: outcome {} cannot answer {}",
            e.key,
            outcome_text(&e.outcome),
            op_text(&e.op)
        ));
        return report;
    }
    let mut keys: Vec<(&str, Vec<usize>)> = by_key.into_iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // Keys are reported in name order, whatever order the threads finish in.
    for ((key, _), verdict) in keys.iter().zip(check_keys(history, &keys, budget)) {
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Violation(why) => {
                report.linearizable = false;
                report.violation.get_or_insert(why);
            }
            Verdict::GaveUp { steps, ops } => {
                report.linearizable = false;
                report.inconclusive.get_or_insert(format!(
                    "key {key:?}: search gave up after {steps} steps on its {ops} ops \
                     (raise the budget or record a shorter history)"
                ));
            }
        }
    }
    report
}

enum Verdict {
    Linearizable,
    Violation(String),
    GaveUp { steps: u64, ops: usize },
}

/// Checks the keys on as many threads as there are cores, biggest keys first.
fn check_keys(history: &[Event], keys: &[(&str, Vec<usize>)], budget: u64) -> Vec<Verdict> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(keys.len());
    if threads <= 1 {
        return keys
            .iter()
            .map(|(_, ids)| check_key(history, ids, budget))
            .collect();
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&k| std::cmp::Reverse(keys[k].1.len()));
    let next = AtomicUsize::new(0);
    let mut verdicts: Vec<Option<Verdict>> = (0..keys.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&k) = order.get(j) else { break };
                        done.push((k, check_key(history, &keys[k].1, budget)));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            let done = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            for (k, v) in done {
                verdicts[k] = Some(v);
            }
        }
    });
    verdicts
        .into_iter()
        .map(|v| v.expect("every key is checked"))
        .collect()
}

fn check_key(history: &[Event], ids: &[usize], budget: u64) -> Verdict {
    let mut search = Search::new(history, ids);
    match search.run(budget) {
        Ok(true) => Verdict::Linearizable,
        Ok(false) => Verdict::Violation(search.explain(history)),
        Err(steps) => Verdict::GaveUp {
            steps,
            ops: ids.len(),
        },
    }
}

/// What an op does to the register, given its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Act {
    /// Requires the state to be this.
    Read(Option<Value>),
    /// Sets the state whatever it was: an acknowledged or unknown put, an unknown delete.
    Set(Option<Value>),
    /// Requires presence to match, then deletes.
    Delete { existed: bool },
    /// Requires the state to be `expected`, then sets `new`.
    CasApplied {
        expected: Option<Value>,
        new: Option<Value>,
    },
    /// Requires the state not to be `expected`.
    CasRefused { expected: Option<Value> },
    /// Unknown cas: applies iff the state is `expected`.
    CasMaybe {
        expected: Option<Value>,
        new: Option<Value>,
    },
    /// Unknown get.
    Nothing,
}

impl Act {
    /// None when the outcome is not an answer to the op.
    fn new(op: &Op, outcome: &Outcome) -> Option<Act> {
        Some(match (op, outcome) {
            (Op::Get, Outcome::Got(v)) => Act::Read(*v),
            (Op::Get, Outcome::Unknown) => Act::Nothing,
            (Op::Put(v), Outcome::Written | Outcome::Unknown) => Act::Set(Some(*v)),
            (Op::Delete, Outcome::Deleted { existed }) => Act::Delete { existed: *existed },
            (Op::Delete, Outcome::Unknown) => Act::Set(None),
            (Op::Cas { expected, new }, Outcome::Swapped(true)) => Act::CasApplied {
                expected: *expected,
                new: *new,
            },
            (Op::Cas { expected, .. }, Outcome::Swapped(false)) => Act::CasRefused {
                expected: *expected,
            },
            (Op::Cas { expected, new }, Outcome::Unknown) => Act::CasMaybe {
                expected: *expected,
                new: *new,
            },
            _ => return None,
        })
    }

    /// The values the op tells apart from others (as opposed to values it only writes).
    fn observes(self) -> Option<Value> {
        match self {
            Act::Read(v)
            | Act::CasApplied { expected: v, .. }
            | Act::CasRefused { expected: v }
            | Act::CasMaybe { expected: v, .. } => v,
            Act::Set(_) | Act::Delete { .. } | Act::Nothing => None,
        }
    }

    /// The op with values renamed: observed ones to their ids, the others to [`UNSEEN`].
    fn renamed(self, ids: &HashMap<Value, Value>) -> Act {
        let id = |v: Option<Value>| v.map(|v| ids.get(&v).copied().unwrap_or(UNSEEN));
        match self {
            Act::Read(v) => Act::Read(id(v)),
            Act::Set(v) => Act::Set(id(v)),
            Act::CasApplied { expected, new } => Act::CasApplied {
                expected: id(expected),
                new: id(new),
            },
            Act::CasRefused { expected } => Act::CasRefused {
                expected: id(expected),
            },
            Act::CasMaybe { expected, new } => Act::CasMaybe {
                expected: id(expected),
                new: id(new),
            },
            Act::Delete { .. } | Act::Nothing => self,
        }
    }

    /// Whether the op leaves the state as it is in every state where its outcome is possible.
    fn read_only(self) -> bool {
        match self {
            Act::Read(_) | Act::CasRefused { .. } | Act::Delete { existed: false } => true,
            Act::CasApplied { expected, new } => expected == new,
            Act::Set(_) | Act::Delete { existed: true } | Act::CasMaybe { .. } => false,
            Act::Nothing => true,
        }
    }

    /// The state after the op, or None if its outcome is impossible in `state`.
    fn apply(self, state: Option<Value>) -> Option<Option<Value>> {
        match self {
            Act::Read(v) => (state == v).then_some(state),
            Act::Set(v) => Some(v),
            Act::Delete { existed } => (state.is_some() == existed).then_some(None),
            Act::CasApplied { expected, new } => (state == expected).then_some(new),
            Act::CasRefused { expected } => (state != expected).then_some(state),
            Act::CasMaybe { expected, new } => Some(if state == expected { new } else { state }),
            Act::Nothing => Some(state),
        }
    }
}

const NONE: usize = usize::MAX;
/// Index of the sentinel at the head of the call/return list.
const HEAD: usize = 0;
/// The return time of an op that never returned.
const NEVER: u64 = u64::MAX;
/// In the search, the one name of every value that no op of the key observes. No op can tell
/// such values apart (they are only written, never compared with), so states holding any of
/// them behave alike and share cache entries; observed values are renamed to small ids.
const UNSEEN: Value = u64::MAX;

struct KeyOp {
    /// Index in the history.
    id: usize,
    /// With values renamed (see [`UNSEEN`]); `real` has the values of the history.
    act: Act,
    real: Act,
    invoked: u64,
    /// [`NEVER`] for unknown outcomes.
    completed: u64,
    known: bool,
    /// Unknown ops: bit index in the bitset of unknown ops placed.
    slot: usize,
    /// Known ops: the call node in `main`. Unknown ops: the index of its [`Class`].
    node: usize,
}

/// A node of the call/return list of known ops.
struct Entry {
    prev: usize,
    next: usize,
    op: usize,
    /// For a call: its return node. NONE for a return.
    ret: usize,
    time: u64,
}

/// Unknown ops with the same effect (after renaming). Once invoked they are interchangeable,
/// so they are placed in the order of invocation only: which of them are placed does not
/// matter, only how many.
struct Class {
    act: Act,
    /// By invocation.
    members: Vec<usize>,
    placed: usize,
}

struct Frame {
    op: usize,
    /// The state before the op, restored on backtracking.
    before: Option<Value>,
    after: Option<Value>,
    /// Placed without branching: backtracking goes straight past it.
    forced: bool,
    /// Its index in the options of the configuration it was placed from.
    choice: usize,
}

/// An explored configuration. The known ops placed are determined by the ones not placed
/// whose calls come before the first remaining return (everything invoked earlier is placed;
/// nothing invoked later is), so only those few are kept, in `Cache::windows`.
struct Cached {
    state: Option<Value>,
    /// The next entry with the same hash, or NIL.
    next: u32,
    window: (usize, usize),
    /// Offset of its unknown-op bitset in `Cache::unknown`.
    unknown: usize,
}

const NIL: u32 = u32::MAX;

#[derive(Default)]
struct Cache {
    heads: HashMap<u64, u32, BuildHasherDefault<PassHasher>>,
    entries: Vec<Cached>,
    windows: Vec<u32>,
    unknown: Vec<u64>,
}

impl Cache {
    /// Whether a configuration with this state and window and at most these unknown ops
    /// placed was explored; if not, records this one.
    fn check(&mut self, hash: u64, state: Option<Value>, window: &[u32], unknown: &[u64]) -> bool {
        let head = self.heads.get(&hash).copied().unwrap_or(NIL);
        let mut i = head;
        let mut dominated = NIL;
        while i != NIL {
            let c = &self.entries[i as usize];
            if c.state == state && self.windows[c.window.0..c.window.1] == *window {
                let theirs = &self.unknown[c.unknown..c.unknown + unknown.len()];
                if subset(theirs, unknown) {
                    return true;
                }
                if dominated == NIL && subset(unknown, theirs) {
                    dominated = i;
                }
            }
            i = c.next;
        }
        if dominated != NIL {
            // Fewer unknown ops placed, so this one covers it: take its place.
            let at = self.entries[dominated as usize].unknown;
            self.unknown[at..at + unknown.len()].copy_from_slice(unknown);
            return false;
        }
        let start = self.windows.len();
        self.windows.extend_from_slice(window);
        self.entries.push(Cached {
            state,
            next: head,
            window: (start, self.windows.len()),
            unknown: self.unknown.len(),
        });
        self.unknown.extend_from_slice(unknown);
        let id = u32::try_from(self.entries.len() - 1).expect("fewer than 4G configurations");
        self.heads.insert(hash, id);
        false
    }
}

/// The cache keys are already well-mixed 64-bit hashes.
#[derive(Default)]
struct PassHasher(u64);

impl Hasher for PassHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn state_hash(state: Option<Value>) -> u64 {
    match state {
        None => 0x6a09_e667_f3bc_c908,
        Some(v) => splitmix(v ^ 0x3c6e_f372_fe94_f82b),
    }
}

fn flip(bits: &mut [u64], slot: usize) {
    bits[slot / 64] ^= 1 << (slot % 64);
}

fn subset(small: &[u64], big: &[u64]) -> bool {
    small.iter().zip(big).all(|(s, b)| s & !b == 0)
}

enum Cursor {
    /// Just arrived at a configuration.
    Fresh,
    /// Trying the configuration's known candidate with this index.
    Known(usize),
    /// Trying the configuration's unknown candidate with this index.
    Unknown(usize),
    Back,
}

/// What can go next from an unforced configuration on the stack.
#[derive(Default)]
struct Options {
    /// The known ops that can, in the order they are tried.
    known: Vec<usize>,
    /// The first remaining return time: unknown ops invoked by then can go next.
    frontier: u64,
    /// The unknown ops that can, once no known op could.
    unknown: Vec<usize>,
}

/// The search over one key's sub-history.
struct Search {
    ops: Vec<KeyOp>,
    main: Vec<Entry>,
    classes: Vec<Class>,
    /// The classes of unknown puts and deletes, which can go anywhere.
    blind: Vec<usize>,
    /// The classes of unknown compare-and-sets, by the state in which they take effect.
    cas_by_expected: HashMap<Option<Value>, Vec<usize>>,
    state: Option<Value>,
    /// The unknown ops placed, by slot.
    unknown: Vec<u64>,
    /// Zobrist hash of the set of known ops placed.
    zobrist: u64,
    known_left: usize,
    stack: Vec<Frame>,
    stack_known: usize,
    /// `options[d]`: for the configuration with `d` ops placed, when it is not forced.
    options: Vec<Options>,
    cache: Cache,
    /// Scratch: the current configuration's window.
    window: Vec<u32>,
    /// The placements with the most known ops so far, and how long a prefix of the stack
    /// agrees with it (so that keeping it costs O(1) amortized per push).
    best: Vec<(usize, Option<Value>)>,
    best_known: usize,
    agree: usize,
}

impl Search {
    fn new(history: &[Event], ids: &[usize]) -> Search {
        let real: Vec<Act> = ids
            .iter()
            .map(|&id| Act::new(&history[id].op, &history[id].outcome).expect("validated"))
            .collect();
        let mut renames: HashMap<Value, Value> = HashMap::new();
        for v in real.iter().filter_map(|a| a.observes()) {
            let next = renames.len() as Value;
            renames.entry(v).or_insert(next);
        }
        let mut ops = Vec::with_capacity(ids.len());
        let (mut known_n, mut unknown_n) = (0, 0);
        for (&id, &real) in ids.iter().zip(&real) {
            let e = &history[id];
            let known = e.outcome != Outcome::Unknown;
            // A known outcome without a completion time is taken as answered "at the end".
            let completed = match (known, e.completed) {
                (true, Some(t)) => t.max(e.invoked),
                _ => NEVER,
            };
            let count = if known { &mut known_n } else { &mut unknown_n };
            ops.push(KeyOp {
                id,
                act: real.renamed(&renames),
                real,
                invoked: e.invoked,
                completed,
                known,
                slot: *count,
                node: NONE,
            });
            *count += 1;
        }

        // Calls sort before returns at the same time: a return and a call at the same
        // instant count as concurrent.
        let mut times: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * known_n);
        for (i, o) in ops.iter().enumerate().filter(|(_, o)| o.known) {
            times.push((o.invoked, false, i));
            times.push((o.completed, true, i));
        }
        times.sort_unstable();
        let mut main = Vec::with_capacity(times.len() + 1);
        main.push(Entry {
            prev: NONE,
            next: NONE,
            op: NONE,
            ret: NONE,
            time: 0,
        });
        let mut call_of = vec![NONE; ops.len()];
        for &(time, is_return, op) in &times {
            let n = main.len();
            main[n - 1].next = n;
            main.push(Entry {
                prev: n - 1,
                next: NONE,
                op,
                ret: NONE,
                time,
            });
            if is_return {
                main[call_of[op]].ret = n;
            } else {
                call_of[op] = n;
                ops[op].node = n;
            }
        }

        let mut unknown: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].known).collect();
        unknown.sort_by_key(|&i| (ops[i].invoked, i));
        let mut classes: Vec<Class> = Vec::new();
        let mut class_of: HashMap<Act, usize> = HashMap::new();
        for &op in &unknown {
            let act = ops[op].act;
            let c = *class_of.entry(act).or_insert_with(|| {
                classes.push(Class {
                    act,
                    members: Vec::new(),
                    placed: 0,
                });
                classes.len() - 1
            });
            classes[c].members.push(op);
            ops[op].node = c;
        }
        let mut blind = Vec::new();
        let mut cas_by_expected: HashMap<Option<Value>, Vec<usize>> = HashMap::new();
        for (c, class) in classes.iter().enumerate() {
            match class.act {
                Act::CasMaybe { expected, .. } => {
                    cas_by_expected.entry(expected).or_default().push(c)
                }
                _ => blind.push(c),
            }
        }

        Search {
            ops,
            main,
            classes,
            blind,
            cas_by_expected,
            state: None,
            unknown: vec![0; unknown_n.div_ceil(64)],
            zobrist: 0,
            known_left: known_n,
            stack: Vec::new(),
            stack_known: 0,
            options: Vec::new(),
            cache: Cache::default(),
            window: Vec::new(),
            best: Vec::new(),
            best_known: 0,
            agree: 0,
        }
    }

    /// Ok(true) if linearizable, Ok(false) if not, Err(steps) past the budget.
    fn run(&mut self, budget: u64) -> Result<bool, u64> {
        let mut cursor = Cursor::Fresh;
        let mut steps = 0;
        loop {
            if self.known_left == 0 {
                return Ok(true);
            }
            if steps >= budget {
                return Err(steps);
            }
            steps += 1;
            cursor = match cursor {
                // Arriving at a configuration explored before, or dominated by one,
                // backtracks at once.
                Cursor::Fresh => self.arrive(),
                Cursor::Known(i) => {
                    let options = &self.options[self.stack.len()];
                    match options.known.get(i) {
                        // No other known op can go next.
                        None => self.unknown_options(),
                        Some(&op) => match self.ops[op].act.apply(self.state) {
                            Some(after) => {
                                self.push(op, after, false, i);
                                Cursor::Fresh
                            }
                            None => Cursor::Known(i + 1),
                        },
                    }
                }
                Cursor::Unknown(i) => match self.options[self.stack.len()].unknown.get(i) {
                    None => Cursor::Back,
                    Some(&op) => {
                        let after = self.ops[op].act.apply(self.state).expect("always fits");
                        self.push(op, after, false, i);
                        Cursor::Fresh
                    }
                },
                Cursor::Back => match self.pop() {
                    None => return Ok(false),
                    Some(f) if f.forced => Cursor::Back,
                    Some(f) if self.ops[f.op].known => Cursor::Known(f.choice + 1),
                    Some(f) => Cursor::Unknown(f.choice + 1),
                },
            };
        }
    }

    /// At a new configuration: back off if the cache covers it; else place a read-only known
    /// op, if one can go next. Placing it first loses nothing: any linearization from here
    /// stays valid with it moved to the front (it changes no state wherever it goes, and
    /// every remaining op returns after it was invoked), so its siblings need not be tried.
    /// Otherwise, list the known ops that can go next.
    fn arrive(&mut self) -> Cursor {
        let depth = self.stack.len();
        if self.options.len() <= depth {
            self.options.push(Options::default());
        }
        let mut known = std::mem::take(&mut self.options[depth].known);
        known.clear();
        self.window.clear();
        let mut forced = None;
        let mut n = self.main[HEAD].next;
        while n != NONE && self.main[n].ret != NONE {
            let op = self.main[n].op;
            let act = self.ops[op].act;
            if forced.is_none() && act.read_only() && act.apply(self.state).is_some() {
                forced = Some(op);
            }
            known.push(op);
            self.window.push(op as u32);
            n = self.main[n].next;
        }
        let hash = self.zobrist ^ state_hash(self.state);
        if self
            .cache
            .check(hash, self.state, &self.window, &self.unknown)
        {
            self.options[depth].known = known;
            return Cursor::Back;
        }
        if let Some(op) = forced {
            self.options[depth].known = known;
            self.push(op, self.state, true, 0);
            return Cursor::Fresh;
        }
        let frontier = if n == NONE { NEVER } else { self.main[n].time };
        // Ops that need a particular state (a swap, a delete that found the key) are tried
        // in the order of their invocation, as in porcupine: they can only go while that
        // state lasts. Blind writes are tried in the order of their deadlines, so a write
        // that stayed in flight long is placed late, where it usually took effect, and
        // placing it too late shows soon (its deadline), where placing it too early would
        // show only when its value was read.
        known.sort_by_key(|&op| {
            let o = &self.ops[op];
            match o.act {
                Act::Set(_) => (1, o.completed, op),
                _ => (0, o.invoked, op),
            }
        });
        self.options[depth].known = known;
        self.options[depth].frontier = frontier;
        Cursor::Known(0)
    }

    /// Lists the unknown ops worth trying here, once no known op can go next.
    fn unknown_options(&mut self) -> Cursor {
        let depth = self.stack.len();
        let mut unknown = std::mem::take(&mut self.options[depth].unknown);
        unknown.clear();
        let frontier = self.options[depth].frontier;
        let cas = self.cas_by_expected.get(&self.state);
        for &c in self.blind.iter().chain(cas.into_iter().flatten()) {
            let class = &self.classes[c];
            // Only the first of its class not placed yet, and only once it was invoked.
            match class.members.get(class.placed) {
                Some(&op) if self.ops[op].invoked <= frontier && self.worth_placing(class.act) => {
                    unknown.push(op);
                }
                _ => {}
            }
        }
        unknown.sort_unstable_by_key(|&op| (self.ops[op].invoked, op));
        self.options[depth].unknown = unknown;
        Cursor::Unknown(0)
    }

    /// Whether placing an unknown op with effect `act` now can lead anywhere new.
    fn worth_placing(&self, act: Act) -> bool {
        let after = act.apply(self.state).expect("always fits");
        // No effect: the configuration with it placed is dominated by this one.
        if after == self.state {
            return false;
        }
        // Right after another unknown op whose effect it overwrites: the same state is
        // reached by placing it instead of that one, which the parent tries too, with fewer
        // unknown ops placed.
        match self.stack.last() {
            Some(top) if !self.ops[top.op].known => act.apply(top.before) != Some(after),
            _ => true,
        }
    }

    /// Places `op`; the cache is consulted on arrival.
    fn push(&mut self, op: usize, after: Option<Value>, forced: bool, choice: usize) {
        let (known, node) = (self.ops[op].known, self.ops[op].node);
        if known {
            self.zobrist ^= splitmix(op as u64);
            self.unlink_main(node);
            self.unlink_main(self.main[node].ret);
            self.known_left -= 1;
            self.stack_known += 1;
        } else {
            flip(&mut self.unknown, self.ops[op].slot);
            self.classes[node].placed += 1;
        }
        let depth = self.stack.len();
        self.stack.push(Frame {
            op,
            before: self.state,
            after,
            forced,
            choice,
        });
        self.state = after;
        if self.agree == depth && self.best.get(depth) == Some(&(op, after)) {
            self.agree += 1;
        }
        if self.stack_known > self.best_known {
            self.best.truncate(self.agree);
            let tail = self.stack[self.agree..].iter().map(|f| (f.op, f.after));
            self.best.extend(tail);
            self.agree = self.stack.len();
            self.best_known = self.stack_known;
        }
    }

    fn pop(&mut self) -> Option<Frame> {
        let f = self.stack.pop()?;
        self.agree = self.agree.min(self.stack.len());
        self.state = f.before;
        let o = &self.ops[f.op];
        let node = o.node;
        if o.known {
            self.zobrist ^= splitmix(f.op as u64);
            // Relinked in the reverse order of unlinking.
            self.relink_main(self.main[node].ret);
            self.relink_main(node);
            self.known_left += 1;
            self.stack_known -= 1;
        } else {
            flip(&mut self.unknown, o.slot);
            self.classes[node].placed -= 1;
        }
        Some(f)
    }

    fn unlink_main(&mut self, n: usize) {
        let (prev, next) = (self.main[n].prev, self.main[n].next);
        self.main[prev].next = next;
        if next != NONE {
            self.main[next].prev = prev;
        }
    }

    fn relink_main(&mut self, n: usize) {
        let (prev, next) = (self.main[n].prev, self.main[n].next);
        self.main[prev].next = n;
        if next != NONE {
            self.main[next].prev = n;
        }
    }

    /// Describes the failure: the longest prefix found, and why nothing could follow it.
    fn explain(&self, history: &[Event]) -> String {
        use std::fmt::Write as _;
        const SHOWN: usize = 100;
        let key = &history[self.ops[0].id].key;
        let unknown = self.ops.iter().filter(|o| !o.known).count();
        let mut s = format!(
            "key {key:?}: not linearizable ({} ops, {unknown} with unknown outcome).\n",
            self.ops.len()
        );
        let _ = write!(
            s,
            "Longest linearizable prefix found ({} ops, the register starting absent; \
             op id → value after it):",
            self.best.len()
        );
        // The search ran on renamed values; replaying the prefix gives the real ones.
        let mut state = None;
        let mut replay = Vec::with_capacity(self.best.len());
        for &(op, _) in &self.best {
            state = self.ops[op].real.apply(state).expect("a placed op fits");
            replay.push((op, state));
        }
        if replay.len() > SHOWN {
            let _ = write!(s, " … {} earlier ops …", replay.len() - SHOWN);
        }
        let start = replay.len().saturating_sub(SHOWN);
        for (i, &(op, after)) in replay.iter().enumerate().skip(start) {
            let sep = if i == start { " " } else { ", " };
            let e = &history[self.ops[op].id];
            let _ = write!(
                s,
                "{sep}#{} {} → {}",
                self.ops[op].id,
                op_text(&e.op),
                value_text(after)
            );
        }
        if self.best.is_empty() {
            s.push_str(" (none)");
        }

        let mut placed = vec![false; self.ops.len()];
        for &(op, _) in &self.best {
            placed[op] = true;
        }
        let remaining = || {
            self.ops
                .iter()
                .zip(&placed)
                .filter(|(_, &p)| !p)
                .map(|(o, _)| o)
        };
        let deadline = remaining()
            .filter(|o| o.known)
            .min_by_key(|o| (o.completed, o.invoked));
        let Some(deadline) = deadline else {
            return s;
        };
        let _ = write!(
            s,
            "\nThen the register holds {}, and none of the ops that could go next can be placed \
             (one of them must, before #{} returns at {}):",
            value_text(state),
            deadline.id,
            time_text(deadline.completed)
        );
        let mut candidates: Vec<&KeyOp> = remaining()
            .filter(|o| o.invoked <= deadline.completed)
            .collect();
        // Answered ops first; unknown ones stay candidates forever, so only the latest few.
        const UNKNOWN_SHOWN: usize = 10;
        candidates.sort_by_key(|o| (!o.known, o.invoked, o.id));
        let unknown = candidates.iter().filter(|o| !o.known).count();
        let hidden = unknown.saturating_sub(UNKNOWN_SHOWN);
        let known = candidates.len() - unknown;
        candidates.drain(known..known + hidden);
        let note =
            format!("\n  ({hidden} earlier ops with unknown outcome, not shown, could go too)");
        if hidden > 0 && known == 0 {
            s.push_str(&note);
        }
        for (i, o) in candidates.into_iter().enumerate() {
            let e = &history[o.id];
            let why = match (o.known, o.real.apply(state)) {
                (true, None) => {
                    format!("impossible while the register holds {}", value_text(state))
                }
                (true, Some(_)) => "possible, but no linearization continues from there".into(),
                (false, Some(after)) if after == state => {
                    "outcome unknown; would change nothing here".into()
                }
                (false, _) => {
                    "outcome unknown; may take effect here, but no linearization continues \
                     from there"
                        .into()
                }
            };
            let _ = write!(
                s,
                "\n  #{} client {}: {} → {}, invoked {}, completed {}: {why}",
                o.id,
                e.client,
                op_text(&e.op),
                outcome_text(&e.outcome),
                e.invoked,
                e.completed.map_or("never".into(), |t| t.to_string()),
            );
            if hidden > 0 && i + 1 == known {
                s.push_str(&note);
            }
        }
        s
    }
}

fn value_text(v: Option<Value>) -> String {
    v.map_or("absent".into(), |v| v.to_string())
}

fn time_text(t: u64) -> String {
    if t == NEVER {
        "the end".into()
    } else {
        t.to_string()
    }
}

fn op_text(op: &Op) -> String {
    match op {
        Op::Get => "get".into(),
        Op::Put(v) => format!("put({v})"),
        Op::Delete => "delete".into(),
        Op::Cas { expected, new } => {
            format!("cas({} → {})", value_text(*expected), value_text(*new))
        }
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Got(v) => format!("got {}", value_text(*v)),
        Outcome::Written => "written".into(),
        Outcome::Deleted { existed: true } => "deleted (existed)".into(),
        Outcome::Deleted { existed: false } => "deleted (was absent)".into(),
        Outcome::Swapped(true) => "swapped".into(),
        Outcome::Swapped(false) => "not swapped".into(),
        Outcome::Unknown => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 10_000_000;

    fn ev(client: u64, key: &str, op: Op, outcome: Outcome, at: (u64, u64)) -> Event {
        Event {
            client,
            key: key.into(),
            op,
            outcome,
            invoked: at.0,
            completed: Some(at.1),
        }
    }

    fn put(client: u64, key: &str, v: Value, at: (u64, u64)) -> Event {
        ev(client, key, Op::Put(v), Outcome::Written, at)
    }

    fn get(client: u64, key: &str, v: Option<Value>, at: (u64, u64)) -> Event {
        ev(client, key, Op::Get, Outcome::Got(v), at)
    }

    fn del(client: u64, key: &str, existed: bool, at: (u64, u64)) -> Event {
        ev(client, key, Op::Delete, Outcome::Deleted { existed }, at)
    }

    fn cas(
        client: u64,
        key: &str,
        swap: (Option<Value>, Option<Value>),
        ok: bool,
        at: (u64, u64),
    ) -> Event {
        let op = Op::Cas {
            expected: swap.0,
            new: swap.1,
        };
        ev(client, key, op, Outcome::Swapped(ok), at)
    }

    fn unknown(client: u64, key: &str, op: Op, invoked: u64) -> Event {
        Event {
            client,
            key: key.into(),
            op,
            outcome: Outcome::Unknown,
            invoked,
            completed: None,
        }
    }

    fn passes(history: &[Event]) -> Report {
        let r = check(history, BUDGET);
        assert!(r.linearizable, "expected linearizable: {r}");
        assert!(r.violation.is_none() && r.inconclusive.is_none(), "{r}");
        r
    }

    /// Asserts the history is found not linearizable; returns the explanation.
    fn fails(history: &[Event]) -> String {
        let r = check(history, BUDGET);
        assert!(!r.linearizable, "expected a violation");
        assert!(r.inconclusive.is_none(), "{r}");
        r.violation.expect("a violation is explained")
    }

    #[test]
    fn empty_history_passes() {
        let r = passes(&[]);
        assert_eq!((r.keys, r.ops), (0, 0));
    }

    #[test]
    fn sequential_history_passes() {
        let k = "k";
        let r = passes(&[
            get(1, k, None, (0, 1)),
            put(1, k, 1, (2, 3)),
            get(2, k, Some(1), (4, 5)),
            put(1, k, 2, (6, 7)),
            get(1, k, Some(2), (8, 9)),
            del(2, k, true, (10, 11)),
            get(1, k, None, (12, 13)),
            del(1, k, false, (14, 15)),
            cas(2, k, (None, Some(3)), true, (16, 17)),
            cas(1, k, (Some(1), Some(4)), false, (18, 19)),
            get(2, k, Some(3), (20, 21)),
            cas(1, k, (Some(3), None), true, (22, 23)),
            get(1, k, None, (24, 25)),
        ]);
        assert_eq!((r.keys, r.ops), (1, 13));
    }

    #[test]
    fn overlapping_put_and_get_may_see_either_value() {
        for seen in [1, 2] {
            passes(&[
                put(1, "k", 1, (0, 10)),
                put(1, "k", 2, (20, 40)),
                get(2, "k", Some(seen), (25, 35)),
            ]);
        }
    }

    #[test]
    fn concurrent_writes_may_take_effect_in_either_order() {
        for (first, last) in [(1, 2), (2, 1)] {
            passes(&[
                put(1, "k", 1, (0, 100)),
                put(2, "k", 2, (10, 90)),
                get(3, "k", Some(last), (101, 110)),
                get(3, "k", Some(last), (120, 130)),
            ]);
            // Both orders are possible, but not both at once.
            fails(&[
                put(1, "k", 1, (0, 100)),
                put(2, "k", 2, (10, 90)),
                get(3, "k", Some(first), (101, 110)),
                get(3, "k", Some(last), (120, 130)),
            ]);
        }
    }

    #[test]
    fn many_concurrent_readers_pass() {
        let mut h = vec![put(0, "k", 1, (0, 10))];
        for c in 1..=16 {
            h.push(get(c, "k", Some(1), (20 + c, 100)));
            h.push(get(
                c,
                "k",
                Some(if c % 2 == 0 { 1 } else { 2 }),
                (200 + c, 300),
            ));
        }
        h.push(put(0, "k", 2, (150, 250)));
        passes(&h);
    }

    #[test]
    fn equal_timestamps_count_as_concurrent() {
        // Returned at 10, invoked at 10: either order.
        passes(&[put(1, "k", 1, (0, 10)), get(2, "k", None, (10, 20))]);
        fails(&[put(1, "k", 1, (0, 10)), get(2, "k", None, (11, 20))]);
    }

    #[test]
    fn stale_read_fails_and_names_the_key() {
        let v = fails(&[
            put(1, "reg", 1, (0, 10)),
            put(1, "reg", 2, (20, 30)),
            get(2, "reg", Some(1), (40, 50)),
        ]);
        assert!(v.contains("\"reg\""), "{v}");
        // The prefix, and the read that cannot follow it.
        assert!(v.contains("#0 put(1) → 1, #1 put(2) → 2"), "{v}");
        assert!(
            v.contains("#2 client 2: get → got 1, invoked 40, completed 50"),
            "{v}"
        );
        assert!(v.contains("impossible while the register holds 2"), "{v}");
    }

    #[test]
    fn lost_write_fails() {
        fails(&[put(1, "k", 1, (0, 10)), get(2, "k", None, (20, 30))]);
        fails(&[
            put(1, "k", 1, (0, 10)),
            get(2, "k", Some(1), (11, 19)),
            put(1, "k", 2, (20, 30)),
            get(3, "k", Some(2), (25, 35)),
            get(2, "k", Some(1), (40, 50)),
        ]);
    }

    #[test]
    fn read_of_a_value_never_written_fails() {
        fails(&[get(1, "k", Some(7), (0, 10))]);
        fails(&[
            put(1, "k", 1, (0, 10)),
            put(2, "k", 2, (5, 15)),
            get(3, "k", Some(3), (0, 20)),
        ]);
    }

    #[test]
    fn unknown_put_observed_later_passes() {
        passes(&[
            put(1, "k", 1, (0, 10)),
            unknown(2, "k", Op::Put(2), 20),
            get(3, "k", Some(2), (30, 40)),
            get(3, "k", Some(2), (50, 60)),
        ]);
        // It may take effect long after its client gave up on it.
        passes(&[
            put(1, "k", 1, (0, 10)),
            unknown(2, "k", Op::Put(2), 20),
            get(3, "k", Some(1), (30, 40)),
            put(2, "k", 3, (50, 60)),
            get(3, "k", Some(3), (70, 80)),
            get(3, "k", Some(2), (1000, 1010)),
        ]);
    }

    #[test]
    fn unknown_put_never_observed_passes() {
        passes(&[
            put(1, "k", 1, (0, 10)),
            unknown(2, "k", Op::Put(2), 20),
            unknown(2, "k", Op::Delete, 25),
            get(3, "k", Some(1), (30, 40)),
            get(3, "k", Some(1), (50, 60)),
        ]);
    }

    #[test]
    fn unknown_put_observed_then_older_value_again_fails() {
        let v = fails(&[
            put(1, "k", 1, (0, 10)),
            unknown(2, "k", Op::Put(2), 20),
            get(3, "k", Some(2), (30, 40)),
            get(3, "k", Some(1), (50, 60)),
        ]);
        assert!(v.contains("1 with unknown outcome"), "{v}");
    }

    #[test]
    fn unknown_op_cannot_take_effect_before_its_invocation() {
        fails(&[
            get(1, "k", Some(2), (0, 10)),
            unknown(2, "k", Op::Put(2), 20),
        ]);
    }

    #[test]
    fn unknown_get_is_ignored() {
        let r = passes(&[put(1, "k", 1, (0, 10)), unknown(2, "k", Op::Get, 20)]);
        assert_eq!((r.keys, r.ops), (1, 2));
    }

    #[test]
    fn cas_outcomes_must_match_the_state() {
        let k = "k";
        passes(&[
            put(1, k, 1, (0, 10)),
            cas(2, k, (Some(1), Some(2)), true, (20, 30)),
            get(1, k, Some(2), (40, 50)),
            cas(2, k, (Some(1), Some(3)), false, (60, 70)),
            cas(2, k, (Some(2), None), true, (80, 90)),
            cas(1, k, (Some(2), Some(4)), false, (100, 110)),
            cas(1, k, (None, Some(5)), true, (120, 130)),
            get(2, k, Some(5), (140, 150)),
        ]);
        // Swapped, but the value was not the expected one.
        fails(&[
            put(1, k, 1, (0, 10)),
            cas(2, k, (Some(9), Some(2)), true, (20, 30)),
        ]);
        // Not swapped, but the value was the expected one.
        fails(&[
            put(1, k, 1, (0, 10)),
            cas(2, k, (Some(1), Some(2)), false, (20, 30)),
        ]);
        fails(&[cas(2, k, (None, Some(2)), false, (20, 30))]);
        // A swap takes effect: the old value cannot come back.
        fails(&[
            put(1, k, 1, (0, 10)),
            cas(2, k, (Some(1), Some(2)), true, (20, 30)),
            get(1, k, Some(1), (40, 50)),
        ]);
        // A concurrent put can make a swap fail or succeed.
        passes(&[
            put(1, k, 1, (0, 10)),
            put(1, k, 2, (20, 40)),
            cas(2, k, (Some(1), Some(3)), false, (25, 35)),
            get(1, k, Some(2), (50, 60)),
        ]);
    }

    #[test]
    fn unknown_cas_applies_only_on_a_match() {
        let k = "k";
        passes(&[
            put(1, k, 1, (0, 10)),
            unknown(
                2,
                k,
                Op::Cas {
                    expected: Some(1),
                    new: Some(2),
                },
                20,
            ),
            get(1, k, Some(2), (40, 50)),
        ]);
        fails(&[
            put(1, k, 1, (0, 10)),
            unknown(
                2,
                k,
                Op::Cas {
                    expected: Some(9),
                    new: Some(2),
                },
                20,
            ),
            get(1, k, Some(2), (40, 50)),
        ]);
        // A chain of unknown ops: put 5, then cas 5 → 6.
        passes(&[
            put(1, k, 1, (0, 10)),
            unknown(2, k, Op::Put(5), 20),
            unknown(
                3,
                k,
                Op::Cas {
                    expected: Some(5),
                    new: Some(6),
                },
                21,
            ),
            get(1, k, Some(6), (40, 50)),
            get(1, k, Some(6), (60, 70)),
        ]);
    }

    #[test]
    fn delete_existed_must_match() {
        let k = "k";
        fails(&[put(1, k, 1, (0, 10)), del(2, k, false, (20, 30))]);
        fails(&[del(2, k, true, (20, 30))]);
        fails(&[
            put(1, k, 1, (0, 10)),
            del(2, k, true, (20, 30)),
            del(2, k, true, (40, 50)),
        ]);
        passes(&[
            put(1, k, 1, (0, 10)),
            del(2, k, true, (20, 30)),
            del(2, k, false, (40, 50)),
            get(1, k, None, (60, 70)),
        ]);
        // An unknown put explains a delete that found the key.
        passes(&[unknown(1, k, Op::Put(1), 0), del(2, k, true, (20, 30))]);
        passes(&[
            put(1, k, 1, (0, 10)),
            unknown(2, k, Op::Delete, 15),
            get(1, k, None, (40, 50)),
        ]);
    }

    #[test]
    fn violation_on_one_key_among_many_is_found() {
        let mut h = Vec::new();
        for key in 0..8 {
            let key = format!("key{key}");
            for i in 0..20u64 {
                let v = key.len() as u64 * 1000 + i;
                h.push(put(1, &key, v, (i * 10, i * 10 + 5)));
                h.push(get(2, &key, Some(v), (i * 10 + 6, i * 10 + 9)));
            }
        }
        passes(&h);
        h.push(put(1, "bad", 1, (0, 10)));
        h.push(put(1, "bad", 2, (20, 30)));
        h.push(get(2, "bad", Some(1), (40, 50)));
        let r = check(&h, BUDGET);
        assert!(!r.linearizable && r.inconclusive.is_none());
        assert_eq!((r.keys, r.ops), (9, 323));
        let v = r.violation.unwrap();
        assert!(v.starts_with("key \"bad\""), "{v}");
    }

    #[test]
    fn malformed_event_is_a_violation() {
        let r = check(&[ev(1, "k", Op::Get, Outcome::Written, (0, 1))], BUDGET);
        assert!(!r.linearizable);
        assert!(r.violation.unwrap().contains("#0 is malformed"));
    }

    /// Many concurrent writes, then reads that no order explains: the search must try
    /// every order before it can say no.
    fn hard_history() -> Vec<Event> {
        let mut h = Vec::new();
        for c in 0..10 {
            h.push(put(c, "k", c + 1, (0, 100)));
            h.push(unknown(c + 10, "k", Op::Put(c + 100), 0));
        }
        h.push(get(20, "k", Some(1), (200, 210)));
        h.push(get(20, "k", Some(2), (220, 230)));
        h
    }

    #[test]
    fn tiny_budget_is_inconclusive() {
        let r = check(&hard_history(), 10);
        assert!(!r.linearizable);
        assert!(r.violation.is_none());
        let why = r.inconclusive.expect("gave up");
        assert!(why.contains("\"k\"") && why.contains("10 steps"), "{why}");
        // With room to search, the same history is a violation.
        fails(&hard_history());
    }

    /// A tiny xorshift PRNG, so the generated histories are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(splitmix(seed) | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct Shape {
        ops: usize,
        keys: u64,
        clients: u64,
        unknown_per_mille: u64,
    }

    /// A linearizable history: clients issue ops on overlapping intervals, each op takes
    /// effect at a point inside its interval (an unknown one at some point after its
    /// invocation, or never), and outcomes come from applying them to real registers in
    /// the order of those points.
    fn generate(seed: u64, shape: &Shape) -> Vec<Event> {
        let mut rng = Rng::new(seed);
        let mut free_at = vec![0u64; shape.clients as usize];
        let mut last_written: Vec<Option<Value>> = vec![None; shape.keys as usize];
        let mut next_value = 0;
        let mut fresh = || {
            next_value += 1;
            next_value
        };
        let mut effects: Vec<(u64, usize)> = Vec::new();
        let mut h = Vec::with_capacity(shape.ops);
        for id in 0..shape.ops {
            let client = (0..free_at.len()).min_by_key(|&c| free_at[c]).unwrap();
            let invoked = free_at[client] + rng.below(5);
            let mut latency = 1 + rng.below(40);
            if rng.below(100) == 0 {
                latency += rng.below(1000); // a slow one, overlapping many others
            }
            let key = rng.below(shape.keys) as usize;
            let op = match rng.below(100) {
                0..40 => Op::Get,
                40..70 => Op::Put(fresh()),
                70..80 => Op::Delete,
                _ => Op::Cas {
                    expected: match rng.below(3) {
                        0 => None,
                        _ => last_written[key],
                    },
                    new: (rng.below(5) > 0).then(&mut fresh),
                },
            };
            match op {
                Op::Put(v) | Op::Cas { new: Some(v), .. } => last_written[key] = Some(v),
                _ => {}
            }
            let completed = if rng.below(1000) < shape.unknown_per_mille {
                if rng.below(2) == 0 {
                    effects.push((invoked + rng.below(400), id));
                }
                free_at[client] = invoked + 100; // the client's timeout
                None
            } else {
                effects.push((invoked + rng.below(latency + 1), id));
                free_at[client] = invoked + latency + 1;
                Some((invoked + latency) * 1000)
            };
            h.push(Event {
                client: client as u64,
                key: format!("k{key}"),
                op,
                outcome: Outcome::Unknown,
                invoked: invoked * 1000,
                completed,
            });
        }
        effects.sort_unstable();
        let mut registers: HashMap<String, Option<Value>> = HashMap::new();
        for (_, id) in effects {
            let e = &mut h[id];
            let reg = registers.entry(e.key.clone()).or_default();
            let outcome = match e.op {
                Op::Get => Outcome::Got(*reg),
                Op::Put(v) => {
                    *reg = Some(v);
                    Outcome::Written
                }
                Op::Delete => Outcome::Deleted {
                    existed: reg.take().is_some(),
                },
                Op::Cas { expected, new } => {
                    let swapped = *reg == expected;
                    if swapped {
                        *reg = new;
                    }
                    Outcome::Swapped(swapped)
                }
            };
            if e.completed.is_some() {
                e.outcome = outcome;
            }
        }
        h
    }

    #[test]
    fn generated_histories_pass_and_a_corrupted_read_fails() {
        let shape = Shape {
            ops: 1500,
            keys: 3,
            clients: 8,
            unknown_per_mille: 20,
        };
        for seed in 1..=4 {
            let mut h = generate(seed, &shape);
            assert!(h.iter().any(|e| e.outcome == Outcome::Swapped(true)));
            assert!(h.iter().any(|e| e.outcome == Outcome::Swapped(false)));
            assert!(h.iter().any(|e| e.outcome == Outcome::Unknown));
            passes(&h);

            // A read of a value that is only written after the read returned.
            let mut rng = Rng::new(seed + 100);
            let (read, future) = loop {
                let read = rng.below(h.len() as u64) as usize;
                let Outcome::Got(_) = h[read].outcome else {
                    continue;
                };
                let done = h[read].completed.unwrap();
                let future = h.iter().find_map(|e| match e.op {
                    Op::Put(v) if e.key == h[read].key && e.invoked > done => Some(v),
                    _ => None,
                });
                if let Some(v) = future {
                    break (read, v);
                }
            };
            let seen = h[read].outcome.clone();
            h[read].outcome = Outcome::Got(Some(future));
            let v = fails(&h);
            assert!(v.starts_with(&format!("key {:?}", h[read].key)), "{v}");
            assert!(v.contains(&format!("#{read} client")), "{v}");

            // A read of a value never written.
            h[read].outcome = Outcome::Got(Some(u64::MAX));
            fails(&h);
            h[read].outcome = seen;
            passes(&h);
        }
    }

    /// The plain definition, by exhaustive search: some order of the known ops, and of any
    /// of the unknown ones, that respects real time and the register. Dead ends are
    /// remembered by (ops placed, state), nothing more.
    fn brute_force(h: &[Event]) -> bool {
        fn go(
            h: &[Event],
            placed: u32,
            state: Option<Value>,
            dead: &mut Vec<(u32, Option<Value>)>,
        ) -> bool {
            let is_placed = |i: usize| placed & (1 << i) != 0;
            if (0..h.len()).all(|i| is_placed(i) || h[i].completed.is_none()) {
                return true;
            }
            if dead.contains(&(placed, state)) {
                return false;
            }
            for i in (0..h.len()).filter(|&i| !is_placed(i)) {
                let ready = (0..h.len()).all(|j| {
                    is_placed(j) || h[j].completed.is_none_or(|done| done >= h[i].invoked)
                });
                let act = Act::new(&h[i].op, &h[i].outcome).unwrap();
                match act.apply(state) {
                    Some(after) if ready && go(h, placed | 1 << i, after, dead) => return true,
                    _ => {}
                }
            }
            dead.push((placed, state));
            false
        }
        go(h, 0, None, &mut Vec::new())
    }

    /// Random small histories, mostly impossible ones, with values from a small set so that
    /// they repeat (the checker does not rely on values being distinct).
    #[test]
    fn small_random_histories_agree_with_brute_force() {
        let mut rng = Rng::new(7);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..4000 {
            let n = 1 + rng.below(9) as usize;
            let value = |rng: &mut Rng| (rng.below(4) > 0).then(|| rng.below(3) + 1);
            let h: Vec<Event> = (0..n)
                .map(|i| {
                    let op = match rng.below(4) {
                        0 => Op::Get,
                        1 => Op::Put(rng.below(3) + 1),
                        2 => Op::Delete,
                        _ => Op::Cas {
                            expected: value(&mut rng),
                            new: value(&mut rng),
                        },
                    };
                    let outcome = match (&op, rng.below(6)) {
                        (Op::Get, 0) => Outcome::Got(None),
                        (_, 0) => Outcome::Unknown,
                        (Op::Get, _) => Outcome::Got(value(&mut rng)),
                        (Op::Put(_), _) => Outcome::Written,
                        (Op::Delete, r) => Outcome::Deleted {
                            existed: r % 2 == 0,
                        },
                        (Op::Cas { .. }, r) => Outcome::Swapped(r % 2 == 0),
                    };
                    let invoked = rng.below(20);
                    let completed = (outcome != Outcome::Unknown).then(|| invoked + rng.below(10));
                    Event {
                        client: i as u64,
                        key: "k".into(),
                        op,
                        outcome,
                        invoked,
                        completed,
                    }
                })
                .collect();
            let expected = brute_force(&h);
            let r = check(&h, BUDGET);
            assert_eq!(r.linearizable, expected, "{h:#?}\n{r}");
            assert!(r.inconclusive.is_none());
            if expected {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
    }

    /// `cargo test --release twenty_thousand -- --ignored --nocapture`
    #[test]
    #[ignore = "timing"]
    fn twenty_thousand_ops_timing() {
        let shapes = [(16, 16), (4, 16), (8, 6)];
        for (seed, (keys, clients)) in (1..).zip(shapes) {
            let shape = Shape {
                ops: 20_000,
                keys,
                clients,
                unknown_per_mille: 15,
            };
            let mut h = generate(seed, &shape);
            let unknown = h.iter().filter(|e| e.outcome == Outcome::Unknown).count();
            let began = std::time::Instant::now();
            passes(&h);
            let pass = began.elapsed();
            // Late in the run, so that most of the history must be searched to rule it out.
            let read = (h.len() * 3 / 4..h.len())
                .find(|&i| matches!(h[i].outcome, Outcome::Got(_)))
                .unwrap();
            h[read].outcome = Outcome::Got(Some(u64::MAX));
            let began = std::time::Instant::now();
            fails(&h);
            println!(
                "{} ops on {keys} keys by {clients} clients, {unknown} unknown: \
                 linearizable in {pass:?}, corrupted read found in {:?}",
                h.len(),
                began.elapsed()
            );
        }
    }
}
