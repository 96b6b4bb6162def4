//! The linearizability checker: is a recorded [history](crate::history) explainable by a
//! single copy of the data, with every operation taking effect at one instant between its
//! invocation and its completion?
//!
//! # Model
//!
//! Every key is a register that starts absent (nil). SET writes a string; INCR treats nil as
//! 0, needs the register to hold a canonical decimal `i64` (a string Redis' INCR accepts; an
//! `ok` INCR on anything else, or one that would overflow, is impossible), stores and returns
//! the incremented value, which GET then returns as its decimal string. MSET writes all its
//! pairs and MGET reads all its keys at one instant. An `ok` entry whose result does not fit
//! its operation (a GET without a value, an MGET with the wrong number of values) can never
//! take effect and makes the history non-linearizable.
//!
//! # Outcomes
//!
//! - `fail` proves the operation had no effect: it is dropped.
//! - `unknown` reads (GET, MGET) are dropped: a read that returned nothing constrains nothing.
//! - `unknown` writes (SET, INCR, MSET) have no completion: they may take effect at any instant
//!   after their invocation, including after every other operation, or never. In the search
//!   their return event sits at the end of time, after every definite return, so they never
//!   force a backtrack, and the search succeeds as soon as every definite (`ok`) operation is
//!   linearized, whatever unknown ones are left. They are tried only where no definite
//!   operation fits (placed lazily, where a later read needs them); an unknown SET/MSET whose
//!   values no operation could observe is dropped (it can always be taken as never having
//!   happened); unknown INCRs of one key are interchangeable and tried in invocation order
//!   only, which keeps counters with many timeouts cheap.
//!
//! # Partitions and strict serializability
//!
//! Linearizability is local (Herlihy & Wing, Theorem 1): a history of several objects is
//! linearizable iff the sub-history of each object is. Single-key operations make every key
//! its own object; MSET and MGET join their keys: the partitions are the connected
//! components of the graph whose edges are the key sets of operations (union-find). A
//! component is one composite object whose state is the map of its keys' values, and each
//! operation is one atomic step on it. Checking that component for linearizability therefore
//! asks for a total order of its operations, consistent with real time, in which every MGET
//! sees every key as the preceding MSETs, SETs and INCRs left it: exactly strict
//! serializability of the multi-key operations as transactions. No operation spans two
//! components, so components are independent and the whole history passes iff each does.
//! Partitions are checked on [`Tuning::threads`] threads, largest first.
//!
//! # Search
//!
//! Wing & Gong's backtracking search with Lowe's memoisation, the approach of Porcupine
//! (see `search.rs`): call and return events in a doubly linked list, operations *lifted*
//! out of it when linearized and put back on backtracking, a stack of choices, and a set of
//! visited configurations (bitset of linearized operations, model state) so that no
//! configuration is explored twice. On top of it, a partial-order reduction: a pending read
//! that fits the current state is linearized at once without trying alternatives (it changes
//! nothing, and nothing pending must precede it), which keeps hot keys with many concurrent
//! clients close to linear. Values are interned per partition to `u32` ids, states are
//! small vectors of ids, the bitsets are stored compactly (operations are numbered by
//! invocation, so a linearized set is mostly a run of full words). The search looks at the
//! clock periodically; past [`Options::deadline`] the verdict is [`Verdict::Unknown`], which
//! callers must treat as a failure to verify. All partitions are checked even after a
//! violation (cheap, and the report then names every failing key set).
//!
//! # Failures
//!
//! For a failing partition the report holds its keys, the length of the longest linearizable
//! prefix the search found, and a small failing sub-history (see `shrink.rs`): a truncation
//! after the operation the search got stuck on, then chunks of operations removed (halving
//! the chunk size down to single operations) while the rest stays non-linearizable, within
//! [`Tuning::minimize_budget`]. A write is only removed together with the reads of its value
//! (so the result does not fail merely because a read saw a value nobody wrote), and a
//! removed INCR stays in the checks as an unknown one (so the result does not fail merely
//! because an increment is missing). The shrunk history is re-checked to find its own
//! longest linearizable prefix, the operation that could not follow it and why.
//! [`write_failure`] writes it as JSON Lines and as a self-contained HTML page with an SVG
//! timeline.
//!
//! # Costs
//!
//! In a debug build, 100,000 operations over 300 keys (32 clients, unknown and failed
//! outcomes, MSET/MGET groups) check in about 2 s; a single key with 5,000 operations from
//! 10 clients in under a second, and a violation at the very end of it (which needs the
//! search to exhaust every configuration before) with shrinking to 3 operations in about 5 s.

pub mod locks;
mod model;
mod render;
mod search;
mod shrink;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::history::{Entry, Op, Outcome};
pub use model::label;
pub use render::{render_html, render_text, write_failure};

/// How to check. Construct it literally (`Options { deadline }`) or with `Default` (60 s).
#[derive(Clone, Debug)]
pub struct Options {
    /// Time for the whole check (every partition); past it the verdict is `Unknown` unless a
    /// violation was already found. Shrinking failures takes at most [`Tuning`]'s budget more.
    pub deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            deadline: Duration::from_secs(60),
        }
    }
}

/// Secondary knobs, for [`check_with`].
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Time for shrinking the failing partitions after the check (all of them together),
    /// capped at `Options::deadline`.
    pub minimize_budget: Duration,
    /// Failing partitions described (and shrunk) in detail; the others are only counted.
    pub max_failures: usize,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            minimize_budget: Duration::from_secs(10),
            max_failures: 4,
            threads: 0,
        }
    }
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The deadline passed before every partition was checked (and no violation was found).
    Unknown,
}

/// A partition that is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFailure {
    /// The keys of the partition (one, or a component joined by MSET/MGET).
    pub keys: Vec<String>,
    /// Operations of the partition that were checked.
    pub ops: usize,
    /// Length of the longest linearizable prefix the search found in the whole partition.
    pub longest_prefix: usize,
    /// The shrunk failing sub-history, by invocation time: still not linearizable.
    pub history: Vec<Entry>,
    /// True when shrinking reached a point where no single operation could be removed;
    /// false when its budget ran out first.
    pub minimal: bool,
    /// Removed INCRs that the shrunk history fails even with (as unknown operations).
    pub ghost_increments: usize,
    /// Ids (in `history`) of the longest linearizable prefix of `history`, in order.
    pub prefix: Vec<u64>,
    /// Id of the operation the search could not linearize after that prefix.
    pub stuck: Option<u64>,
    /// The registers after the prefix (`None` for nil).
    pub state: Vec<(String, Option<String>)>,
    /// Why the history is not linearizable, in a few sentences.
    pub explanation: String,
}

/// What the checker found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub verdict: Verdict,
    /// Entries in the history.
    pub ops_total: usize,
    /// Entries the search considered: `ok` ones and unknown writes.
    pub ops_checked: usize,
    /// `fail` entries (no effect).
    pub dropped_failed: usize,
    /// Unknown reads (no constraint).
    pub dropped_unknown_reads: usize,
    /// Unknown writes (may or may not have taken effect).
    pub unknown_writes: usize,
    /// Distinct keys among the checked entries.
    pub keys: usize,
    pub partitions: usize,
    /// Operations in the largest partition.
    pub largest_partition: usize,
    /// Partitions not decided before the deadline.
    pub partitions_unfinished: usize,
    /// Partitions found not linearizable (`failing` holds up to `Tuning::max_failures`).
    pub partitions_failed: usize,
    /// Wall time of the check, shrinking included.
    pub elapsed_ms: u64,
    /// Iterations of the search over every partition (shrinking excluded): its effort.
    pub search_steps: u64,
    pub failing: Vec<PartitionFailure>,
    /// Locks taken (lock workload), checked for mutual exclusion instead of by the search.
    #[serde(default)]
    pub locks_taken: usize,
    #[serde(default)]
    pub locks_refused: usize,
    /// Overlapping holds of one lock, one sentence each.
    #[serde(default)]
    pub lock_violations: Vec<String>,
}

struct Partition {
    keys: Vec<String>,
    idx: Vec<usize>,
}

enum PartResult {
    Linearizable,
    Unfinished,
    Failed {
        ops: Vec<model::POp>,
        interner: model::Interner,
        best: Vec<u32>,
    },
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Splits the checked entries into independent partitions (connected components of keys).
fn partition(entries: &[Entry], checked: &[usize]) -> (Vec<Partition>, usize) {
    let mut key_id: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    for &i in checked {
        let mut first = None;
        for k in entries[i].op.keys() {
            let id = *key_id.entry(k).or_insert_with(|| {
                names.push(k);
                parent.push(parent.len());
                parent.len() - 1
            });
            match first {
                None => first = Some(id),
                Some(f) => {
                    let (a, b) = (find(&mut parent, f), find(&mut parent, id));
                    parent[a] = b;
                }
            }
        }
    }
    let mut by_root: HashMap<usize, usize> = HashMap::new();
    let mut parts: Vec<Partition> = Vec::new();
    for (id, name) in names.iter().enumerate() {
        let root = find(&mut parent, id);
        let p = *by_root.entry(root).or_insert_with(|| {
            parts.push(Partition {
                keys: Vec::new(),
                idx: Vec::new(),
            });
            parts.len() - 1
        });
        parts[p].keys.push((*name).to_owned());
    }
    for &i in checked {
        match entries[i].op.keys().first() {
            Some(k) => {
                let root = find(&mut parent, key_id[k]);
                parts[by_root[&root]].idx.push(i);
            }
            // An operation without keys is an object of its own.
            None => parts.push(Partition {
                keys: Vec::new(),
                idx: vec![i],
            }),
        }
    }
    for p in &mut parts {
        p.keys.sort();
        p.idx.sort_by_key(|&i| (entries[i].invoke_ns, i));
    }
    parts.sort_by(|a, b| (a.keys.is_empty(), &a.keys).cmp(&(b.keys.is_empty(), &b.keys)));
    (parts, names.len())
}

fn check_partition(entries: &[Entry], p: &Partition, deadline: Instant) -> (PartResult, u64) {
    if Instant::now() >= deadline {
        return (PartResult::Unfinished, 0);
    }
    let mut interner = model::Interner::default();
    let ops = model::compile(entries, &p.idx, &p.keys, &mut interner);
    let out = search::search(&ops, p.keys.len(), &mut interner, deadline);
    let result = match out.found {
        search::Found::Linearizable => PartResult::Linearizable,
        search::Found::TimedOut => PartResult::Unfinished,
        search::Found::NotLinearizable => PartResult::Failed {
            ops,
            interner,
            best: out.best,
        },
    };
    (result, out.steps)
}

/// Checks `entries` for linearizability (strict serializability for MSET/MGET).
pub fn check(entries: &[Entry], opts: &Options) -> Report {
    check_with(entries, opts, &Tuning::default())
}

/// [`check`] with secondary knobs.
pub fn check_with(entries: &[Entry], opts: &Options, tuning: &Tuning) -> Report {
    let start = Instant::now();
    let deadline = start + opts.deadline;
    let (mut dropped_failed, mut dropped_unknown_reads, mut unknown_writes) = (0, 0, 0);
    let mut checked = Vec::with_capacity(entries.len());
    let locks = locks::check(entries);
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.op, Op::Acquire { .. } | Op::Release { .. }) {
            continue;
        }
        match e.outcome {
            Outcome::Fail => dropped_failed += 1,
            Outcome::Unknown if !e.op.is_write() => dropped_unknown_reads += 1,
            Outcome::Unknown => {
                unknown_writes += 1;
                checked.push(i);
            }
            Outcome::Ok => checked.push(i),
        }
    }
    let (parts, keys) = partition(entries, &checked);

    // Check every partition, largest first, on a few threads.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(parts[p].idx.len()));
    let threads = match tuning.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, parts.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(PartResult, u64)>>> =
        Mutex::new((0..parts.len()).map(|_| None).collect());
    let work = || {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(&p) = order.get(n) else { break };
            let r = check_partition(entries, &parts[p], deadline);
            results.lock().expect("no worker panics")[p] = Some(r);
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let (results, steps): (Vec<PartResult>, Vec<u64>) = results
        .into_inner()
        .expect("no worker panics")
        .into_iter()
        .map(|r| r.expect("every partition was taken"))
        .unzip();

    let partitions_unfinished = results
        .iter()
        .filter(|r| matches!(r, PartResult::Unfinished))
        .count();
    let partitions_failed = results
        .iter()
        .filter(|r| matches!(r, PartResult::Failed { .. }))
        .count();

    // Shrink and explain the failures.
    let shrink_deadline = Instant::now() + tuning.minimize_budget.min(opts.deadline);
    let mut failing = Vec::new();
    let detailed = partitions_failed.min(tuning.max_failures);
    for (p, r) in results.into_iter().enumerate() {
        if failing.len() >= detailed {
            break;
        }
        if let PartResult::Failed {
            ops,
            mut interner,
            best,
        } = r
        {
            let left = detailed - failing.len();
            let now = Instant::now();
            let share = shrink_deadline.saturating_duration_since(now) / left as u32;
            failing.push(describe_failure(
                entries,
                &parts[p],
                &ops,
                &mut interner,
                &best,
                now + share,
            ));
        }
    }

    let verdict = if partitions_failed > 0 || !locks.violations.is_empty() {
        Verdict::NotLinearizable
    } else if partitions_unfinished > 0 {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Report {
        verdict,
        ops_total: entries.len(),
        ops_checked: checked.len(),
        dropped_failed,
        dropped_unknown_reads,
        unknown_writes,
        keys,
        partitions: parts.len(),
        largest_partition: parts.iter().map(|p| p.idx.len()).max().unwrap_or(0),
        partitions_unfinished,
        partitions_failed,
        elapsed_ms: start.elapsed().as_millis() as u64,
        search_steps: steps.iter().sum(),
        failing,
        locks_taken: locks.taken,
        locks_refused: locks.refused,
        lock_violations: locks.violations,
    }
}

fn describe_failure(
    entries: &[Entry],
    part: &Partition,
    ops: &[model::POp],
    interner: &mut model::Interner,
    best: &[u32],
    deadline: Instant,
) -> PartitionFailure {
    let shrunk = shrink::shrink(ops, part.keys.len(), interner, best, deadline);
    let sub: Vec<model::POp> = shrunk.kept.iter().map(|&i| ops[i].clone()).collect();
    // The shrunk history is small; give its explanation a little time even past the budget.
    let explained = shrink::explain(&sub, &part.keys, entries, interner, Duration::from_secs(2));
    let id = |i: usize| entries[sub[i].entry].id;
    let mut explanation = explained.text;
    if shrunk.ghosts > 0 {
        explanation.push_str(&format!(
            " ({} INCR(s) were removed while shrinking; the history stays non-linearizable \
             whether or not they took effect.)",
            shrunk.ghosts
        ));
    }
    PartitionFailure {
        keys: part.keys.clone(),
        ops: ops.len(),
        longest_prefix: best.len(),
        history: sub.iter().map(|o| entries[o.entry].clone()).collect(),
        minimal: shrunk.fixpoint,
        ghost_increments: shrunk.ghosts,
        prefix: explained.prefix.iter().map(|&i| id(i)).collect(),
        stuck: explained.stuck.map(id),
        state: part
            .keys
            .iter()
            .zip(&explained.state)
            .map(|(k, &v)| (k.clone(), interner.text(v)))
            .collect(),
        explanation,
    }
}

#[cfg(test)]
mod tests;
