//! Mutual exclusion of the lock workload's locks.
//!
//! A lock is taken with `SET key token NX PX ttl` and `PEXPIRETIME key` in one MULTI/EXEC.
//! When the SET succeeds, PEXPIRETIME returns the transaction's executeAt plus the TTL: the
//! lock is held from `expires - ttl` in the history's own time (the executeAt order, the
//! order every replica applies) until it expires, or until its holder releases it: WATCH,
//! GET (still its token?), then `PEXPIRE key 1; PEXPIRETIME key; DEL key` in one EXEC,
//! whose PEXPIRETIME says when (its executeAt plus one millisecond), and the next holder
//! may take it from that executeAt on. Two holds of one lock
//! that overlap violate mutual exclusion: a second SET NX succeeded while the first holder's
//! key was still there. A release that ran outside its own hold is a violation too (it
//! deleted someone else's lock). Refusals and unknown outcomes constrain nothing: an unknown
//! taking may have happened, and then its interval is unknown; an unknown release may have
//! ended a hold early, so a hold whose release is unknown is not checked against the next.

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
    // Releases by token: when they ended the hold, or None when unknown.
    let mut released: BTreeMap<&str, Option<i64>> = BTreeMap::new();
    for e in entries {
        if let Op::Release { token, .. } = &e.op {
            match (e.outcome, &e.result) {
                (Outcome::Ok, Some(OpResult::Released { ended_ms: Some(at) })) => {
                    released.insert(token, Some(*at));
                }
                (Outcome::Unknown, _) => {
                    released.insert(token, None);
                }
                _ => {}
            }
        }
    }
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
                let start = at - ttl_ms;
                let end = match released.get(token.as_str()) {
                    None => *at,
                    Some(Some(ended)) => {
                        // PEXPIRETIME answered the release's executeAt plus one.
                        let r = ended - 1;
                        if !(start <= r && r < *at) {
                            out.violations.push(format!(
                                "lock {key}: {token} was released at {r} ms, outside its hold [{start}, {at})"
                            ));
                        }
                        r.min(*at)
                    }
                    // Released at an unknown time: the next holder may have come any time.
                    Some(None) => start,
                };
                by_key
                    .entry(key)
                    .or_default()
                    .push((start, end, e.id, token));
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
            if s2 < e1 && s1 < e1 {
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

    fn release(id: u64, token: &str, ended_ms: Option<i64>) -> Entry {
        Entry {
            op: Op::Release {
                key: "l".into(),
                token: token.into(),
            },
            result: Some(OpResult::Released { ended_ms }),
            ..acquire(id, token, None)
        }
    }

    #[test]
    fn a_release_ends_a_hold_early_only_inside_it() {
        let fine = [
            acquire(1, "a", Some(1_100)),
            release(2, "a", Some(1_020)),
            acquire(3, "b", Some(1_130)),
        ];
        let r = check(&fine);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let early = [
            acquire(1, "a", Some(1_100)),
            release(2, "a", Some(1_050)),
            acquire(3, "b", Some(1_130)),
        ];
        assert_eq!(
            check(&early).violations.len(),
            1,
            "b took it before a let go"
        );
        let outside = [acquire(1, "a", Some(1_100)), release(2, "a", Some(1_200))];
        assert_eq!(
            check(&outside).violations.len(),
            1,
            "released after it expired"
        );
    }
}
