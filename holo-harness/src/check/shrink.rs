//! Shrinking a failing partition to a small non-linearizable sub-history, and explaining it.
//!
//! Removing operations from a non-linearizable history can make it linearizable, so every
//! candidate removal is checked with the search. Two rules keep the result meaningful rather
//! than merely small:
//!
//! - a SET/MSET is only removed together with every remaining read of its value (otherwise
//!   the shrunk history would fail for the trivial reason that a read sees a value nobody
//!   wrote);
//! - a removed INCR (whose effect every later counter value depends on) stays in the check as
//!   an *unknown* INCR (a "ghost"): the shrunk history must be non-linearizable even if the
//!   removed increments took effect at any point after their invocation, or not at all. Such
//!   a history is in particular non-linearizable without them.
//!
//! The search starts from a truncation after the first operation the search got stuck on,
//! then removes chunks of operations, halving the chunk size (ddmin-style) down to single
//! operations, until nothing more can go or the budget is spent.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::model::{Interner, POp, Step, Value, apply, describe_refusal, label};
use super::search::{Found, search};
use crate::history::Entry;

pub(crate) struct Shrunk {
    /// Indices into the ops, by invocation.
    pub kept: Vec<usize>,
    /// Removed INCRs kept in the checks as unknown.
    pub ghosts: usize,
    /// False when the budget ran out before no single removal was possible.
    pub fixpoint: bool,
}

struct Shrinker<'a> {
    ops: &'a [POp],
    nkeys: usize,
    interner: &'a mut Interner,
    deadline: Instant,
    kept: Vec<bool>,
    ghost: Vec<bool>,
    readers: HashMap<(u32, u32), Vec<usize>>,
    incrs: HashMap<u32, Vec<usize>>,
    /// Removals that failed, by the number of ops kept then (kept sets only shrink, so the
    /// count identifies the set).
    refused: HashSet<(usize, Vec<usize>)>,
}

impl Shrinker<'_> {
    /// True when a kept op observes one of the values write `w` wrote.
    fn observed(&self, w: usize, kept: &[bool]) -> bool {
        let Step::Write { pairs } = &self.ops[w].step else {
            return false;
        };
        pairs.iter().any(|&(k, v)| {
            let read = self
                .readers
                .get(&(k, v))
                .is_some_and(|r| r.iter().any(|&i| kept[i]));
            let counted = matches!(self.interner.value(v), Value::Int(_))
                && self
                    .incrs
                    .get(&k)
                    .is_some_and(|r| r.iter().any(|&i| kept[i]));
            read || counted
        })
    }

    /// Tries to remove `remove`; keeps the removal when the rest is still not linearizable.
    fn attempt(&mut self, remove: &[usize]) -> bool {
        let count = self.kept.iter().filter(|&&k| k).count();
        if self.refused.contains(&(count, remove.to_vec())) {
            return false;
        }
        let mut kept = self.kept.clone();
        for &r in remove {
            kept[r] = false;
        }
        for &r in remove {
            if self.observed(r, &kept) {
                kept[r] = true;
            }
        }
        if remove.iter().all(|&r| kept[r]) {
            return false;
        }
        let mut ghost = self.ghost.clone();
        for &r in remove {
            if !kept[r] && matches!(self.ops[r].step, Step::Incr { .. } | Step::Transfer { .. }) {
                ghost[r] = true;
            }
        }
        let sub: Vec<POp> = (0..self.ops.len())
            .filter_map(|i| {
                if kept[i] {
                    Some(self.ops[i].clone())
                } else if ghost[i] {
                    self.ops[i].as_unknown()
                } else {
                    None
                }
            })
            .collect();
        let found = search(&sub, self.nkeys, self.interner, self.deadline).found;
        if found == Found::NotLinearizable {
            self.kept = kept;
            self.ghost = ghost;
            true
        } else {
            if found == Found::Linearizable {
                self.refused.insert((count, remove.to_vec()));
            }
            false
        }
    }

    fn kept_list(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.ops.len()).filter(|&i| self.kept[i]).collect();
        v.sort_by_key(|&i| (self.ops[i].invoke, i));
        v
    }

    fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// Shrinks the non-linearizable `ops` (`best` is the longest prefix the search found).
pub(crate) fn shrink(
    ops: &[POp],
    nkeys: usize,
    interner: &mut Interner,
    best: &[u32],
    deadline: Instant,
) -> Shrunk {
    let mut readers: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    let mut incrs: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match &op.step {
            Step::Read { keys, vals } => {
                for (&k, &v) in keys.iter().zip(vals.iter()) {
                    readers.entry((k, v)).or_default().push(i);
                }
            }
            Step::Incr { key, .. } => incrs.entry(*key).or_default().push(i),
            Step::Write { .. } | Step::Transfer { .. } | Step::Impossible => {}
        }
    }
    let mut s = Shrinker {
        ops,
        nkeys,
        interner,
        deadline,
        kept: vec![true; ops.len()],
        ghost: vec![false; ops.len()],
        readers,
        incrs,
        refused: HashSet::new(),
    };

    // Truncate after the first op the search could not get past.
    let mut in_best = vec![false; ops.len()];
    for &b in best {
        in_best[b as usize] = true;
    }
    let stuck_at = (0..ops.len())
        .filter(|&i| !in_best[i] && !ops[i].unknown)
        .map(|i| ops[i].complete)
        .min();
    if let Some(t) = stuck_at {
        let later: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].invoke > t).collect();
        if !later.is_empty() {
            s.attempt(&later);
        }
    }

    // ddmin-style chunks.
    let mut chunk = (s.kept_list().len() / 2).max(1);
    let fixpoint = loop {
        let mut changed = false;
        let mut at = 0;
        loop {
            if s.out_of_time() {
                break;
            }
            let list = s.kept_list();
            if at >= list.len() {
                break;
            }
            let end = (at + chunk).min(list.len());
            if s.attempt(&list[at..end]) {
                changed = true;
            } else {
                at += chunk;
            }
        }
        if s.out_of_time() {
            break false;
        }
        if chunk == 1 && !changed {
            break true;
        }
        if !changed {
            chunk /= 2;
        }
        chunk = chunk.min(s.kept_list().len()).max(1);
    };
    Shrunk {
        kept: s.kept_list(),
        ghosts: s.ghost.iter().filter(|&&g| g).count(),
        fixpoint,
    }
}

pub(crate) struct Explained {
    /// Indices into the ops of the longest linearizable prefix, in order.
    pub prefix: Vec<usize>,
    /// The op the search could not get past.
    pub stuck: Option<usize>,
    /// The state after the prefix (value ids per key).
    pub state: Vec<u32>,
    pub text: String,
}

fn describe(e: &Entry) -> String {
    format!("#{} (client {}: {})", e.id, e.client, label(e))
}

/// Runs the search on `ops` and explains where it got stuck.
pub(crate) fn explain(
    ops: &[POp],
    keys: &[String],
    entries: &[Entry],
    interner: &mut Interner,
    budget: Duration,
) -> Explained {
    let out = search(ops, keys.len(), interner, Instant::now() + budget);
    let prefix: Vec<usize> = out.best.iter().map(|&b| b as usize).collect();
    let mut state = vec![super::model::NIL; keys.len()];
    let mut undo = Vec::new();
    for &p in &prefix {
        // The prefix is a valid linearization: every step applies.
        let _ = apply(&ops[p].step, &mut state, &mut undo, interner);
    }
    let state_text = || {
        let parts: Vec<String> = keys
            .iter()
            .zip(&state)
            .map(|(k, &v)| format!("{k}={}", interner.show(v)))
            .collect();
        parts.join(", ")
    };
    if out.found != Found::NotLinearizable {
        let text = match out.found {
            Found::TimedOut => "the search ran out of time before it could explain the failure",
            _ => "this history is linearizable",
        };
        return Explained {
            prefix,
            stuck: None,
            state,
            text: text.to_owned(),
        };
    }
    let mut in_prefix = vec![false; ops.len()];
    for &p in &prefix {
        in_prefix[p] = true;
    }
    let stuck = (0..ops.len())
        .filter(|&i| !in_prefix[i] && !ops[i].unknown)
        .min_by_key(|&i| (ops[i].complete, ops[i].invoke, i));
    let Some(x) = stuck else {
        return Explained {
            prefix,
            stuck: None,
            state,
            text: "no operation was left over (inconsistent search result)".to_owned(),
        };
    };
    let unknown = ops.iter().filter(|o| o.unknown).count();
    let mut text = format!(
        "The longest linearizable prefix found has {} of the {} operations{}; after it {}. \
         Operation {} must take effect before it completes, ",
        prefix.len(),
        ops.len(),
        if unknown > 0 {
            format!(" ({unknown} with an unknown outcome)")
        } else {
            String::new()
        },
        state_text(),
        describe(&entries[ops[x].entry]),
    );
    let mut scratch = state.clone();
    match apply(&ops[x].step, &mut scratch, &mut undo, interner) {
        Err(r) => text.push_str(&format!(
            "but it cannot take effect there: {}",
            describe_refusal(&r, keys, interner)
        )),
        Ok(()) => text.push_str(
            "but once it takes effect, no order of the operations concurrent with it can follow",
        ),
    }
    let others: Vec<usize> = (0..ops.len())
        .filter(|&i| i != x && !in_prefix[i] && ops[i].invoke <= ops[x].complete)
        .collect();
    if others.is_empty() {
        text.push_str(", and no other operation could have taken effect before it.");
    } else {
        let shown: Vec<String> = others
            .iter()
            .take(6)
            .map(|&i| describe(&entries[ops[i].entry]))
            .collect();
        text.push_str(&format!(
            "; none of the {} operation(s) that could take effect first helps: {}{}.",
            others.len(),
            shown.join(", "),
            if others.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    Explained {
        prefix,
        stuck: Some(x),
        state,
        text,
    }
}
