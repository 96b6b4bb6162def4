//! Wing & Gong's search with Lowe's memoisation over one partition.
//!
//! The history is a doubly linked list of call and return events sorted by time (calls before
//! returns at equal times: operations that touch are concurrent). The search walks the list
//! from its head: at a call it tries to take the operation's effect now (the model step must
//! accept it); if the resulting configuration (set of linearized operations, model state) was
//! never seen, it pushes a frame, *lifts* the call and its return out of the list and restarts
//! from the head. Reaching a return means an operation that already completed was not
//! linearized: the last choice is undone (*unlift*) and the search resumes after it. The
//! history is linearizable when no definite (`ok`) operation remains; it is not when the
//! stack is empty at a return. Visited configurations are never explored twice.
//!
//! Reductions, each of which keeps the search complete:
//!
//! - **Reads first, without alternatives.** The candidates (calls before the first return)
//!   are tried in three passes: reads, definite writes, unknown writes. A read that fits the
//!   current state is taken at once, and when backtracking past it no other candidate is
//!   tried at that level: a read changes nothing, and every operation that must precede it
//!   (returned before it was invoked) is already linearized, so any linearization from this
//!   configuration can be reordered to start with it. Without this, a write taken before a
//!   pending read of the old value dooms a whole branch that the memo cannot cut short.
//! - **Unknown writes placed lazily.** Their return is at the end of time (after every
//!   definite return); they are tried only after every definite candidate of a level failed,
//!   and they may also never be linearized (the search succeeds with them left over).
//! - **Unobserved unknown writes dropped.** An unknown SET/MSET none of whose values any
//!   operation of the partition reads (or, for an integer value, any INCR of that key
//!   could see) is left out: removing it from a linearization changes no value any
//!   operation observed.
//! - **Unknown INCRs of one key in invocation order.** They are interchangeable, so an
//!   unknown INCR is only tried once the previous unknown INCR of its key is linearized.
//!
//! The memo key is compact: operations are numbered by invocation (definite ones first, then
//! unknown ones from a fresh 64-bit word), so a linearized set is a run of full words, a short
//! window, and the unknown region; only the window and the unknown words are stored. States of
//! up to four registers are stored inline, up to [`EXACT_STATE_KEYS`] in a boxed slice, and
//! larger ones by a 128-bit Zobrist fingerprint maintained incrementally (a collision, with
//! odds near 2^-100, could only prune a branch).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::model::{Interner, NIL, POp, Step, Value, apply};

/// States of at most this many registers are memoised exactly.
pub(crate) const EXACT_STATE_KEYS: usize = 16;

/// How often (iterations) the search looks at the clock.
const CLOCK_EVERY: u64 = 1 << 10;

const NONE: u32 = u32::MAX;

/// The result of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Linearizable,
    NotLinearizable,
    TimedOut,
}

#[derive(Clone, Debug)]
pub(crate) struct SearchOutcome {
    pub found: Found,
    /// Indices (into the ops) of the longest linearizable prefix seen, in linearization order
    /// (the full linearization when linearizable).
    pub best: Vec<u32>,
    /// Loop iterations.
    pub steps: u64,
}

/// FxHash-style hasher: the keys are already well mixed words.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum StateKey {
    /// Up to four registers (the unused slots nil).
    Inline([u32; 4]),
    Exact(Box<[u32]>),
    Print(u128),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct MemoKey {
    lead: u32,
    split: u32,
    words: Box<[u64]>,
    state: StateKey,
}

/// The set of linearized operations, with the bookkeeping for compact memo keys.
struct Linearized {
    words: Vec<u64>,
    /// Words `0..def_words` hold the definite operations.
    def_words: usize,
    /// `words[..lead]` are full, `words[lead]` is not (or `lead == def_words`).
    lead: usize,
    /// Upper bounds (exclusive) of the non-zero definite and unknown words.
    hi_def: usize,
    hi_unk: usize,
}

impl Linearized {
    fn new(definite: usize, unknown: usize) -> Self {
        let def_words = definite.div_ceil(64);
        let unk_words = unknown.div_ceil(64);
        Linearized {
            words: vec![0; def_words + unk_words],
            def_words,
            lead: 0,
            hi_def: 0,
            hi_unk: def_words,
        }
    }

    fn get(&self, bit: u32) -> bool {
        self.words[bit as usize / 64] & (1 << (bit % 64)) != 0
    }

    fn set(&mut self, bit: u32) {
        let w = bit as usize / 64;
        self.words[w] |= 1 << (bit % 64);
        if w < self.def_words {
            self.hi_def = self.hi_def.max(w + 1);
            while self.lead < self.def_words && self.words[self.lead] == u64::MAX {
                self.lead += 1;
            }
        } else {
            self.hi_unk = self.hi_unk.max(w + 1);
        }
    }

    fn clear(&mut self, bit: u32) {
        let w = bit as usize / 64;
        self.words[w] &= !(1 << (bit % 64));
        if w < self.lead {
            self.lead = w;
        }
    }

    fn key(&mut self, state: StateKey) -> MemoKey {
        while self.hi_def > self.lead && self.words[self.hi_def - 1] == 0 {
            self.hi_def -= 1;
        }
        while self.hi_unk > self.def_words && self.words[self.hi_unk - 1] == 0 {
            self.hi_unk -= 1;
        }
        let window = &self.words[self.lead..self.hi_def.max(self.lead)];
        let unknown = &self.words[self.def_words..self.hi_unk];
        let mut words = Vec::with_capacity(window.len() + unknown.len());
        words.extend_from_slice(window);
        words.extend_from_slice(unknown);
        MemoKey {
            lead: self.lead as u32,
            split: window.len() as u32,
            words: words.into_boxed_slice(),
            state,
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Zobrist term of "register `key` holds `value`".
fn zobrist(key: u32, value: u32) -> u128 {
    let x = (u64::from(key) << 32) | u64::from(value);
    (u128::from(splitmix(x)) << 64) | u128::from(splitmix(x ^ 0x6a09_e667_f3bc_c908))
}

/// The candidates a pass over the list tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Reads,
    Writes,
    Unknown,
}

fn pass_of(op: &POp) -> Pass {
    match (&op.step, op.unknown) {
        (_, true) => Pass::Unknown,
        (Step::Read { .. }, false) => Pass::Reads,
        _ => Pass::Writes,
    }
}

/// One choice on the search stack.
struct Frame {
    /// The lifted call event.
    node: u32,
    /// Where this op's undo records start.
    undo: u32,
    print: u128,
}

/// Checks `ops` (over `nkeys` registers, all starting nil). Stops at `deadline`.
pub(crate) fn search(
    ops: &[POp],
    nkeys: usize,
    interner: &mut Interner,
    deadline: Instant,
) -> SearchOutcome {
    let n = ops.len();
    let active = needed(ops, interner);
    // Bit numbering: definite ops by invocation, then unknown ones from a fresh word.
    let mut order: Vec<u32> = (0..n as u32).filter(|&i| active[i as usize]).collect();
    order.sort_by_key(|&i| (ops[i as usize].unknown, ops[i as usize].invoke, i));
    let definite = ops.iter().filter(|o| !o.unknown).count();
    let mut bit = vec![0u32; n];
    for (rank, &i) in order.iter().enumerate() {
        bit[i as usize] = if rank < definite {
            rank as u32
        } else {
            (definite.div_ceil(64) * 64 + rank - definite) as u32
        };
    }
    // Symmetry cut for unknown INCRs: the previous unknown INCR of the same key.
    let mut before = vec![NONE; n];
    {
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &i in order.iter().skip(definite) {
            if let Step::Incr { key, out: None } = ops[i as usize].step
                && let Some(prev) = last.insert(key, i)
            {
                before[i as usize] = prev;
            }
        }
    }

    // Events: 2i is the call of op i, 2i+1 its return; the head sentinel is 2n.
    let head = 2 * n as u32;
    let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * order.len());
    for &i in &order {
        let op = &ops[i as usize];
        events.push((op.invoke, false, 2 * i));
        events.push((op.complete.max(op.invoke), true, 2 * i + 1));
    }
    events.sort_unstable();
    let mut next = vec![NONE; 2 * n + 1];
    let mut prev = vec![NONE; 2 * n + 1];
    let mut last = head;
    for &(_, _, e) in &events {
        next[last as usize] = e;
        prev[e as usize] = last;
        last = e;
    }

    let exact = nkeys <= EXACT_STATE_KEYS;
    let mut state = vec![NIL; nkeys];
    let mut print: u128 = if exact {
        0
    } else {
        (0..nkeys as u32).fold(0, |acc, k| acc ^ zobrist(k, NIL))
    };
    let mut linearized = Linearized::new(definite, n - definite);
    let mut memo: HashSet<MemoKey, BuildHasherDefault<FastHasher>> = HashSet::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut undo: Vec<(u32, u32)> = Vec::new();
    let mut remaining = definite;
    let mut best: Vec<u32> = Vec::new();
    let mut best_dirty = false;
    let mut steps: u64 = 0;

    let snapshot = |stack: &[Frame], best: &mut Vec<u32>| {
        best.clear();
        best.extend(stack.iter().map(|f| f.node / 2));
    };

    // Candidates (the calls before the first return) are tried in three passes: reads, then
    // definite writes, then unknown writes (placed lazily, where needed). A read that fits the
    // state is taken at once and no alternative is tried at that level: it changes nothing
    // and no pending op must precede it, so any linearization from here has one starting
    // with it.
    let mut pass = Pass::Reads;
    let mut entry = next[head as usize];
    let found = loop {
        if remaining == 0 {
            snapshot(&stack, &mut best);
            break Found::Linearizable;
        }
        if steps.is_multiple_of(CLOCK_EVERY) && Instant::now() >= deadline {
            if best_dirty {
                snapshot(&stack, &mut best);
            }
            break Found::TimedOut;
        }
        steps += 1;
        if entry != NONE && entry.is_multiple_of(2) {
            // A call: try to linearize the op here.
            let i = (entry / 2) as usize;
            let op = &ops[i];
            if pass_of(op) != pass {
                entry = next[entry as usize];
                continue;
            }
            let cut = before[i] != NONE && !linearized.get(bit[before[i] as usize]);
            let mark = undo.len();
            if !cut && apply(&op.step, &mut state, &mut undo, interner).is_ok() {
                let old_print = print;
                if !exact {
                    for &(k, old) in &undo[mark..] {
                        print ^= zobrist(k, old) ^ zobrist(k, state[k as usize]);
                    }
                }
                linearized.set(bit[i]);
                let key = linearized.key(if state.len() <= 4 {
                    let mut inline = [NIL; 4];
                    inline[..state.len()].copy_from_slice(&state);
                    StateKey::Inline(inline)
                } else if exact {
                    StateKey::Exact(state.clone().into_boxed_slice())
                } else {
                    StateKey::Print(print)
                });
                if memo.insert(key) {
                    stack.push(Frame {
                        node: entry,
                        undo: mark as u32,
                        print: old_print,
                    });
                    if !op.unknown {
                        remaining -= 1;
                    }
                    if stack.len() > best.len() {
                        best_dirty = true;
                    }
                    lift(&mut next, &mut prev, entry);
                    pass = Pass::Reads;
                    entry = next[head as usize];
                    continue;
                }
                linearized.clear(bit[i]);
                print = old_print;
                revert(&mut state, &mut undo, mark);
                if pass == Pass::Reads {
                    // Known dead, and no alternative needed: backtrack.
                    pass = Pass::Unknown;
                    entry = NONE;
                    continue;
                }
            }
            entry = next[entry as usize];
        } else if pass != Pass::Unknown {
            // The first return: the next pass.
            pass = if pass == Pass::Reads {
                Pass::Writes
            } else {
                Pass::Unknown
            };
            entry = next[head as usize];
        } else {
            // Every candidate failed: backtrack.
            if best_dirty {
                snapshot(&stack, &mut best);
                best_dirty = false;
            }
            let Some(frame) = stack.pop() else {
                break Found::NotLinearizable;
            };
            let i = (frame.node / 2) as usize;
            revert(&mut state, &mut undo, frame.undo as usize);
            print = frame.print;
            linearized.clear(bit[i]);
            if !ops[i].unknown {
                remaining += 1;
            }
            unlift(&mut next, &mut prev, frame.node);
            pass = pass_of(&ops[i]);
            entry = if pass == Pass::Reads {
                // A read was taken without alternatives: keep backtracking.
                pass = Pass::Unknown;
                NONE
            } else {
                next[frame.node as usize]
            };
        }
    };
    SearchOutcome { found, best, steps }
}

/// Which ops the search needs: every definite one and unknown INCRs, but an unknown SET/MSET
/// only when some op could observe one of its values (a read of that key and value, or an
/// INCR of that key when the value is an integer). An unobserved unknown write can always be
/// left out: removing it from a linearization changes no value any operation saw.
fn needed(ops: &[POp], interner: &Interner) -> Vec<bool> {
    let mut read: HashSet<(u32, u32)> = HashSet::new();
    let mut counted: HashSet<u32> = HashSet::new();
    for op in ops {
        match &op.step {
            Step::Read { keys, vals } => {
                read.extend(keys.iter().copied().zip(vals.iter().copied()))
            }
            Step::Incr { key, .. } => {
                counted.insert(*key);
            }
            Step::Transfer { from, to, .. } => {
                counted.insert(*from);
                counted.insert(*to);
            }
            Step::Write { .. } | Step::Impossible => {}
        }
    }
    ops.iter()
        .map(|op| match &op.step {
            Step::Write { pairs } if op.unknown => pairs.iter().any(|&(k, v)| {
                read.contains(&(k, v))
                    || (counted.contains(&k) && matches!(interner.value(v), Value::Int(_)))
            }),
            _ => true,
        })
        .collect()
}

fn revert(state: &mut [u32], undo: &mut Vec<(u32, u32)>, mark: usize) {
    while undo.len() > mark {
        let (k, old) = undo.pop().expect("len > mark");
        state[k as usize] = old;
    }
}

/// Removes call `c` and its return `c + 1` from the list (they keep their own links).
fn lift(next: &mut [u32], prev: &mut [u32], c: u32) {
    for e in [c, c + 1] {
        let (p, n) = (prev[e as usize], next[e as usize]);
        next[p as usize] = n;
        if n != NONE {
            prev[n as usize] = p;
        }
    }
}

/// Puts back what [`lift`] removed (the return first: the reverse order).
fn unlift(next: &mut [u32], prev: &mut [u32], c: u32) {
    for e in [c + 1, c] {
        let (p, n) = (prev[e as usize], next[e as usize]);
        next[p as usize] = e;
        if n != NONE {
            prev[n as usize] = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// A tiny DSL: ops over registers 0..nkeys with values as small integers (0 = nil).
    struct H {
        ops: Vec<POp>,
        interner: Interner,
    }

    impl H {
        fn new() -> Self {
            H {
                ops: Vec::new(),
                interner: Interner::default(),
            }
        }
        fn push(&mut self, step: Step, invoke: u64, complete: Option<u64>) -> &mut Self {
            let entry = self.ops.len();
            self.ops.push(POp {
                entry,
                step,
                invoke,
                complete: complete.unwrap_or(u64::MAX),
                unknown: complete.is_none(),
            });
            self
        }
        fn val(&mut self, v: u32) -> u32 {
            if v == 0 {
                NIL
            } else {
                self.interner.str(&format!("v{v}"))
            }
        }
        fn w(&mut self, k: u32, v: u32, t0: u64, t1: Option<u64>) -> &mut Self {
            let v = self.val(v);
            self.push(
                Step::Write {
                    pairs: Box::new([(k, v)]),
                },
                t0,
                t1,
            )
        }
        fn r(&mut self, k: u32, v: u32, t0: u64, t1: u64) -> &mut Self {
            let v = self.val(v);
            self.push(
                Step::Read {
                    keys: Box::new([k]),
                    vals: Box::new([v]),
                },
                t0,
                Some(t1),
            )
        }
        fn incr(&mut self, out: Option<i64>, t0: u64, t1: Option<u64>) -> &mut Self {
            self.push(Step::Incr { key: 0, out }, t0, t1)
        }
        fn run(&mut self, nkeys: usize) -> SearchOutcome {
            search(&self.ops, nkeys, &mut self.interner, later())
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(H::new().run(1).found, Found::Linearizable);
    }

    #[test]
    fn sequential_register() {
        let mut h = H::new();
        h.r(0, 0, 0, 1).w(0, 1, 2, Some(3)).r(0, 1, 4, 5);
        let out = h.run(1);
        assert_eq!(out.found, Found::Linearizable);
        assert_eq!(out.best, vec![0, 1, 2]);
    }

    #[test]
    fn stale_read_is_caught() {
        let mut h = H::new();
        h.w(0, 1, 0, Some(1)).w(0, 2, 2, Some(3)).r(0, 1, 4, 5);
        let out = h.run(1);
        assert_eq!(out.found, Found::NotLinearizable);
        assert_eq!(out.best, vec![0, 1]);
    }

    #[test]
    fn concurrent_ops_are_reordered() {
        // The read overlaps the write and sees its value; the later read must see it too.
        let mut h = H::new();
        h.r(0, 1, 0, 10).w(0, 1, 5, Some(20)).r(0, 1, 11, 12);
        assert_eq!(h.run(1).found, Found::Linearizable);
        // Touching intervals count as concurrent.
        let mut h = H::new();
        h.r(0, 1, 0, 5).w(0, 1, 5, Some(6));
        assert_eq!(h.run(1).found, Found::Linearizable);
    }

    #[test]
    fn unknown_write_may_or_may_not_happen() {
        let mut h = H::new();
        h.w(0, 1, 0, None).r(0, 0, 5, 6).r(0, 1, 7, 8);
        assert_eq!(h.run(1).found, Found::Linearizable);
        let mut h = H::new();
        h.w(0, 1, 0, None).r(0, 0, 5, 6);
        assert_eq!(h.run(1).found, Found::Linearizable);
        // Once seen, it cannot be undone.
        let mut h = H::new();
        h.w(0, 1, 0, None).r(0, 1, 5, 6).r(0, 0, 7, 8);
        assert_eq!(h.run(1).found, Found::NotLinearizable);
    }

    #[test]
    fn unknown_increments_are_counted_once_each() {
        let mut h = H::new();
        for t in 0..5 {
            h.incr(None, t, None);
        }
        h.incr(Some(6), 10, Some(11));
        assert_eq!(h.run(1).found, Found::Linearizable);
        let mut h = H::new();
        for t in 0..5 {
            h.incr(None, t, None);
        }
        h.incr(Some(7), 10, Some(11));
        assert_eq!(h.run(1).found, Found::NotLinearizable);
        // An increment that returned cannot be skipped.
        let mut h = H::new();
        h.incr(Some(1), 0, Some(1))
            .incr(None, 2, None)
            .incr(Some(2), 3, Some(4));
        assert_eq!(h.run(1).found, Found::Linearizable);
        let mut h = H::new();
        h.incr(Some(1), 0, Some(1)).incr(Some(1), 2, Some(3));
        assert_eq!(h.run(1).found, Found::NotLinearizable);
    }

    #[test]
    fn many_unknown_increments_stay_cheap() {
        // 60 unknown INCRs, then reads that pin the count: without the symmetry cut this is
        // 2^60 subsets.
        let mut h = H::new();
        for t in 0..60 {
            h.incr(None, t, None);
        }
        h.incr(Some(31), 100, Some(101));
        let out = h.run(1);
        assert_eq!(out.found, Found::Linearizable);
        assert!(out.steps < 100_000, "{}", out.steps);
    }

    #[test]
    fn multi_key_reads_are_atomic() {
        let mut h = H::new();
        let (a, b) = (h.val(1), h.val(2));
        h.push(
            Step::Write {
                pairs: Box::new([(0, a), (1, b)]),
            },
            0,
            Some(10),
        );
        h.push(
            Step::Read {
                keys: Box::new([0, 1]),
                vals: Box::new([a, NIL]),
            },
            1,
            Some(9),
        );
        assert_eq!(h.run(2).found, Found::NotLinearizable);
    }

    #[test]
    fn large_states_use_fingerprints() {
        // 40 registers: one write each, then reads of every one, and a stale read.
        let nkeys = 40;
        let mut h = H::new();
        for k in 0..nkeys {
            h.w(k, k + 1, u64::from(k) * 2, Some(u64::from(k) * 2 + 3));
        }
        for k in 0..nkeys {
            h.r(k, k + 1, 1000 + u64::from(k), 1000 + u64::from(k));
        }
        assert_eq!(h.run(nkeys as usize).found, Found::Linearizable);
        h.r(3, 0, 2000, 2001);
        assert_eq!(h.run(nkeys as usize).found, Found::NotLinearizable);
    }

    #[test]
    fn the_deadline_stops_the_search() {
        let mut h = H::new();
        h.w(0, 1, 0, Some(1));
        let out = search(&h.ops, 1, &mut h.interner, Instant::now());
        assert_eq!(out.found, Found::TimedOut);
    }

    #[test]
    fn memo_keys_are_canonical() {
        let mut l = Linearized::new(130, 3);
        for b in 0..64 {
            l.set(b);
        }
        l.set(70);
        let k1 = l.key(StateKey::Print(1));
        assert_eq!((k1.lead, k1.split, &*k1.words), (1, 1, &[1u64 << 6][..]));
        l.set(192); // the first unknown op
        l.clear(70);
        l.clear(5);
        l.set(5);
        let k2 = l.key(StateKey::Print(1));
        assert_eq!((k2.lead, k2.split, &*k2.words), (1, 0, &[1u64][..]));
        l.clear(192);
        l.set(70);
        assert_eq!(l.key(StateKey::Print(1)), k1);
    }
}
