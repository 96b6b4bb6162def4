//! Mutual exclusion of the lock workload's locks.
//!
//! A lock is taken with `SET key token NX PX ttl` and `PEXPIRETIME key` in one MULTI/EXEC,
//! and is left to expire. When the SET succeeds, PEXPIRETIME returns the transaction's
//! executeAt plus the TTL: the lock is held over `[expires - ttl, expires)` in the history's
//! own time (the executeAt order, the order every replica applies). Two takings of one lock
//! whose intervals overlap violate mutual exclusion: a second SET NX succeeded while the
//! first holder's key had not expired. Refusals (nil) and unknown outcomes constrain
//! nothing: an unknown taking may have happened, and then its interval is unknown.

use std::collections::BTreeMap;

use crate::history::{Entry, Op, OpResult, Outcome};

/// What the lock check found.
#[derive(Debug, Default)]
pub struct Locks {
    /// Successful takings checked.
    pub taken: usize,
    /// Refused takings (the lock was held).
    pub refused: usize,
    /// One sentence per overlap.
    pub violations: Vec<String>,
}

/// Checks every `Acquire` entry of `entries`.
pub fn check(entries: &[Entry]) -> Locks {
    let mut out = Locks::default();
    let mut by_key: BTreeMap<&str, Vec<(i64, i64, u64, &str)>> = BTreeMap::new();
    for e in entries {
        let (Op::Acquire { key, token, ttl_ms }, Outcome::Ok) = (&e.op, e.outcome) else {
            continue;
        };
        match &e.result {
            Some(OpResult::Lease {
                expires_ms: Some(at),
            }) => {
                out.taken += 1;
                by_key
                    .entry(key)
                    .or_default()
                    .push((at - ttl_ms, *at, e.id, token));
            }
            Some(OpResult::Lease { expires_ms: None }) => out.refused += 1,
            _ => out
                .violations
                .push(format!("entry {}: an acquire without a lease result", e.id)),
        }
    }
    for (key, mut takings) in by_key {
        takings.sort_unstable();
        for pair in takings.windows(2) {
            let ((s1, e1, id1, t1), (s2, e2, id2, t2)) = (pair[0], pair[1]);
            if s2 < e1 {
                out.violations.push(format!(
                    "lock {key}: {t1} held it over [{s1}, {e1}) ms (entry {id1}) and {t2} took it at {s2} ms, until {e2} (entry {id2})"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(id: u64, token: &str, expires_ms: Option<i64>) -> Entry {
        Entry {
            id,
            client: id as u32,
            node: None,
            op: Op::Acquire {
                key: "l".into(),
                token: token.into(),
                ttl_ms: 100,
            },
            outcome: Outcome::Ok,
            result: Some(OpResult::Lease { expires_ms }),
            error: None,
            invoke_ns: id,
            complete_ns: id + 1,
        }
    }

    #[test]
    fn overlapping_takings_are_violations() {
        let fine = [
            acquire(1, "a", Some(1_100)),
            acquire(2, "b", None),
            acquire(3, "b", Some(1_200)),
            acquire(4, "c", Some(1_300)),
        ];
        let r = check(&fine);
        assert_eq!((r.taken, r.refused), (3, 1));
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let bad = [acquire(1, "a", Some(1_100)), acquire(2, "b", Some(1_150))];
        let r = check(&bad);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert!(r.violations[0].contains("b took it at 1050"));
    }
}
