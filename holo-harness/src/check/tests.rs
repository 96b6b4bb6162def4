//! End-to-end tests of the checker on generated histories.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::history::{Op, OpResult};

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The shape of a generated history.
struct Shape {
    seed: u64,
    clients: u32,
    ops: usize,
    keys: usize,
    /// Percent of keys used as INCR counters.
    counters: u64,
    /// Percent of operations that are MSET/MGET over groups of three keys.
    multi: u64,
    /// Percent of operations with an unknown outcome, and with a failed one.
    unknown: u64,
    fail: u64,
}

/// A legal history: every client issues operations one after another with random gaps and
/// durations; each operation (that takes effect) gets a random instant inside its interval
/// (anywhere after its invocation for unknown ones), and a sequential register model run in
/// the order of those instants fills in the results.
fn generate(s: &Shape) -> Vec<Entry> {
    let mut rng = Rng(s.seed);
    let counters = (s.keys as u64 * s.counters / 100) as usize;
    let key = |i: usize| format!("k{i}");
    // (entry, linearization instant or None when it has no effect)
    let mut planned: Vec<(Entry, Option<u64>)> = Vec::with_capacity(s.ops);
    let mut clock = vec![0u64; s.clients as usize];
    for n in 0..s.ops {
        let client = rng.below(u64::from(s.clients)) as u32;
        let invoke = clock[client as usize] + rng.below(40);
        let complete = invoke + 1 + rng.below(300);
        clock[client as usize] = complete;
        let write = rng.chance(50);
        let op = if s.keys >= 3 && rng.chance(s.multi) {
            // Groups of three keys among the non-counters.
            let groups = (s.keys - counters) / 3;
            let g = counters + 3 * rng.below(groups.max(1) as u64) as usize;
            let keys: Vec<String> = (g..g + 3).filter(|_| rng.chance(80)).map(key).collect();
            let keys = if keys.is_empty() { vec![key(g)] } else { keys };
            if write {
                Op::Mset {
                    pairs: keys
                        .into_iter()
                        .map(|k| (k, format!("{client}-{n}")))
                        .collect(),
                }
            } else {
                Op::Mget { keys }
            }
        } else {
            let k = rng.below(s.keys as u64) as usize;
            match (k < counters, write) {
                (true, true) => Op::Incr { key: key(k) },
                (false, true) => Op::Set {
                    key: key(k),
                    value: format!("{client}-{n}"),
                },
                (_, false) => Op::Get { key: key(k) },
            }
        };
        let outcome = if rng.chance(s.unknown) {
            Outcome::Unknown
        } else if rng.chance(s.fail) {
            Outcome::Fail
        } else {
            Outcome::Ok
        };
        let at = match outcome {
            Outcome::Ok => Some(invoke + rng.below(complete - invoke + 1)),
            Outcome::Fail => None,
            Outcome::Unknown => rng.chance(50).then(|| invoke + rng.below(2_000)),
        };
        let entry = Entry {
            id: n as u64,
            client,
            node: None,
            op,
            outcome,
            result: None,
            error: (outcome != Outcome::Ok).then(|| "generated".to_owned()),
            invoke_ns: invoke,
            complete_ns: complete,
        };
        planned.push((entry, at));
    }
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].1.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].1, i));
    let mut state: HashMap<String, String> = HashMap::new();
    for i in order {
        let e = &mut planned[i].0;
        let result = match &e.op {
            Op::Get { key } => OpResult::Value {
                v: state.get(key).cloned(),
            },
            Op::Set { key, value } => {
                state.insert(key.clone(), value.clone());
                OpResult::Done
            }
            Op::Incr { key } => {
                let n = state.get(key).map_or(0, |v| v.parse::<i64>().unwrap()) + 1;
                state.insert(key.clone(), n.to_string());
                OpResult::Int { v: n }
            }
            Op::Mset { pairs } => {
                for (k, v) in pairs {
                    state.insert(k.clone(), v.clone());
                }
                OpResult::Done
            }
            Op::Mget { keys } => OpResult::Values {
                v: keys.iter().map(|k| state.get(k).cloned()).collect(),
            },
            Op::Transfer { .. } | Op::Acquire { .. } | Op::Release { .. } => {
                unreachable!("the generator makes no transfers or locks")
            }
        };
        if e.outcome == Outcome::Ok {
            e.result = Some(result);
        }
    }
    planned.into_iter().map(|(e, _)| e).collect()
}

fn opts() -> Options {
    Options {
        deadline: Duration::from_secs(120),
    }
}

#[test]
fn large_random_history_is_linearizable() {
    let h = generate(&Shape {
        seed: 1,
        clients: 32,
        ops: 100_000,
        keys: 300,
        counters: 10,
        multi: 10,
        unknown: 1,
        fail: 1,
    });
    let report = check(&h, &opts());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "{}",
        render_text(&report)
    );
    assert_eq!(report.ops_total, 100_000);
    assert!(report.partitions > 100, "{}", report.partitions);
    assert!(report.unknown_writes > 0 && report.dropped_failed > 0);
}

#[test]
fn hot_key_with_ten_clients_is_linearizable() {
    let h = generate(&Shape {
        seed: 2,
        clients: 10,
        ops: 5_000,
        keys: 1,
        counters: 0,
        multi: 0,
        unknown: 2,
        fail: 1,
    });
    let report = check(&h, &opts());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "{}",
        render_text(&report)
    );
    assert_eq!(report.partitions, 1);
}

#[test]
fn hot_counter_with_unknown_increments_is_linearizable() {
    let h = generate(&Shape {
        seed: 3,
        clients: 10,
        ops: 5_000,
        keys: 1,
        counters: 100,
        multi: 0,
        unknown: 3,
        fail: 1,
    });
    let report = check(&h, &opts());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "{}",
        render_text(&report)
    );
}

#[test]
fn hot_multi_key_group_is_strictly_serializable() {
    let h = generate(&Shape {
        seed: 4,
        clients: 10,
        ops: 3_000,
        keys: 3,
        counters: 0,
        multi: 60,
        unknown: 2,
        fail: 1,
    });
    let report = check(&h, &opts());
    assert_eq!(
        report.verdict,
        Verdict::Linearizable,
        "{}",
        render_text(&report)
    );
    assert_eq!(report.partitions, 1);
}

#[test]
fn a_read_of_a_value_never_written_shrinks_to_itself() {
    let mut h = generate(&Shape {
        seed: 5,
        clients: 10,
        ops: 2_000,
        keys: 1,
        counters: 0,
        multi: 0,
        unknown: 1,
        fail: 0,
    });
    let victim = h
        .iter()
        .position(|e| matches!(e.op, Op::Get { .. }) && e.outcome == Outcome::Ok && e.id > 1000)
        .unwrap();
    h[victim].result = Some(OpResult::Value {
        v: Some("bogus".into()),
    });
    let report = check(&h, &opts());
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let f = &report.failing[0];
    assert_eq!(f.keys, vec!["k0".to_owned()]);
    assert!(f.longest_prefix > 500, "{}", f.longest_prefix);
    assert!(f.minimal);
    assert_eq!(f.history.len(), 1, "{:?}", f.history);
    assert_eq!(f.history[0].id, h[victim].id);
    assert_eq!(f.stuck, Some(h[victim].id));
    assert!(f.explanation.contains("bogus"), "{}", f.explanation);
}

#[test]
fn a_stale_read_shrinks_to_three_operations() {
    let mut h = generate(&Shape {
        seed: 6,
        clients: 10,
        ops: 2_000,
        keys: 1,
        counters: 0,
        multi: 0,
        unknown: 1,
        fail: 0,
    });
    let end = h.iter().map(|e| e.complete_ns).max().unwrap() + 10_000;
    let mk = |id, op, result, t0, t1| Entry {
        id,
        client: 99,
        node: None,
        op,
        outcome: Outcome::Ok,
        result: Some(result),
        error: None,
        invoke_ns: t0,
        complete_ns: t1,
    };
    let set = |v: &str| Op::Set {
        key: "k0".into(),
        value: v.into(),
    };
    let get = || Op::Get { key: "k0".into() };
    h.push(mk(90_000, set("old"), OpResult::Done, end, end + 10));
    h.push(mk(90_001, set("new"), OpResult::Done, end + 20, end + 30));
    h.push(mk(
        90_002,
        get(),
        OpResult::Value {
            v: Some("old".into()),
        },
        end + 40,
        end + 50,
    ));
    let report = check(&h, &opts());
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let f = &report.failing[0];
    let ids: Vec<u64> = f.history.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![90_000, 90_001, 90_002], "{}", f.explanation);
    assert_eq!(f.prefix, vec![90_000, 90_001]);
    assert_eq!(f.stuck, Some(90_002));
    assert_eq!(f.state, vec![("k0".to_owned(), Some("new".to_owned()))]);
}

#[test]
fn a_tiny_deadline_gives_unknown() {
    let h = generate(&Shape {
        seed: 7,
        clients: 10,
        ops: 2_000,
        keys: 10,
        counters: 0,
        multi: 0,
        unknown: 0,
        fail: 0,
    });
    let report = check(
        &h,
        &Options {
            deadline: Duration::ZERO,
        },
    );
    assert_eq!(report.verdict, Verdict::Unknown);
    assert_eq!(report.partitions_unfinished, report.partitions);
}

#[test]
fn partitions_follow_multi_key_operations() {
    let e = |id, op| Entry {
        id,
        client: 0,
        node: None,
        op,
        outcome: Outcome::Ok,
        result: None,
        error: None,
        invoke_ns: id * 10,
        complete_ns: id * 10 + 5,
    };
    let pairs = |ks: &[&str]| Op::Mset {
        pairs: ks
            .iter()
            .map(|k| (k.to_string(), "v".to_string()))
            .collect(),
    };
    let h = vec![
        e(0, pairs(&["a", "b"])),
        e(1, pairs(&["c"])),
        e(2, pairs(&["b", "d"])),
        e(3, pairs(&["e"])),
        e(4, pairs(&["e", "c"])),
        e(5, pairs(&["f"])),
    ];
    let checked: Vec<usize> = (0..h.len()).collect();
    let (parts, keys) = partition(&h, &checked);
    assert_eq!(keys, 6);
    let got: Vec<(Vec<String>, Vec<usize>)> = parts.into_iter().map(|p| (p.keys, p.idx)).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (s(&["a", "b", "d"]), vec![0, 2]),
            (s(&["c", "e"]), vec![1, 3, 4]),
            (s(&["f"]), vec![5]),
        ]
    );
    assert_eq!(check(&h, &opts()).verdict, Verdict::Linearizable);
}

/// The model, run on strings: `None` when the op cannot take effect.
fn brute_step(state: &mut HashMap<String, String>, e: &Entry) -> Option<()> {
    let ok = e.outcome == Outcome::Ok;
    match (&e.op, &e.result) {
        (Op::Get { key }, Some(OpResult::Value { v })) => {
            (state.get(key) == v.as_ref()).then_some(())
        }
        (Op::Mget { keys }, Some(OpResult::Values { v })) if v.len() == keys.len() => keys
            .iter()
            .zip(v)
            .all(|(k, v)| state.get(k) == v.as_ref())
            .then_some(()),
        (Op::Set { key, value }, r) if !ok || r.is_none() || r == &Some(OpResult::Done) => {
            state.insert(key.clone(), value.clone());
            Some(())
        }
        (Op::Mset { pairs }, r) if !ok || r.is_none() || r == &Some(OpResult::Done) => {
            for (k, v) in pairs {
                state.insert(k.clone(), v.clone());
            }
            Some(())
        }
        (Op::Incr { key }, r) => {
            let current = match state.get(key) {
                None => 0,
                Some(s) => model::canonical_int(s)?,
            };
            let next = current.checked_add(1)?;
            match r {
                Some(OpResult::Int { v }) if ok && *v == next => {}
                None if !ok => {}
                _ => return None,
            }
            state.insert(key.clone(), next.to_string());
            Some(())
        }
        _ => None,
    }
}

/// Linearizable by brute force: some subset of the unknown writes and some order of the
/// chosen ops respects real time and the model.
fn brute_linearizable(entries: &[Entry]) -> bool {
    let ops: Vec<&Entry> = entries
        .iter()
        .filter(|e| match e.outcome {
            Outcome::Ok => true,
            Outcome::Unknown => e.op.is_write(),
            Outcome::Fail => false,
        })
        .collect();
    let end = |e: &Entry| {
        if e.outcome == Outcome::Unknown {
            u64::MAX
        } else {
            e.complete_ns
        }
    };
    fn search(
        ops: &[&Entry],
        end: &dyn Fn(&Entry) -> u64,
        done: &mut Vec<bool>,
        state: &HashMap<String, String>,
    ) -> bool {
        if ops
            .iter()
            .zip(done.iter())
            .all(|(e, &d)| d || e.outcome == Outcome::Unknown)
        {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            // Every op that returned before this one was invoked must already be done.
            let ready =
                (0..ops.len()).all(|j| j == i || done[j] || end(ops[j]) >= ops[i].invoke_ns);
            if !ready {
                continue;
            }
            let mut next = state.clone();
            if brute_step(&mut next, ops[i]).is_some() {
                done[i] = true;
                let found = search(ops, end, done, &next);
                done[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    search(&ops, &end, &mut vec![false; ops.len()], &HashMap::new())
}

#[test]
fn the_search_agrees_with_brute_force_on_small_histories() {
    let mut rng = Rng(42);
    let (mut legal, mut illegal) = (0, 0);
    for round in 0..3_000u64 {
        let keys = ["a", "b"];
        let values = ["1", "2", "x"];
        let n = 1 + rng.below(7) as usize;
        let mut entries = Vec::new();
        for id in 0..n as u64 {
            let invoke = rng.below(20);
            let complete = invoke + rng.below(8);
            let k = keys[rng.below(2) as usize].to_owned();
            let v = |rng: &mut Rng| values[rng.below(3) as usize].to_owned();
            let op = match rng.below(6) {
                0 => Op::Get { key: k },
                1 => Op::Set {
                    key: k,
                    value: v(&mut rng),
                },
                2 => Op::Incr { key: k },
                3 => Op::Mset {
                    pairs: vec![("a".into(), v(&mut rng)), ("b".into(), v(&mut rng))],
                },
                4 => Op::Mget {
                    keys: vec!["a".into(), "b".into()],
                },
                _ => Op::Get { key: k },
            };
            let outcome = match rng.below(10) {
                0 | 1 => Outcome::Unknown,
                2 => Outcome::Fail,
                _ => Outcome::Ok,
            };
            let val = |rng: &mut Rng| match rng.below(4) {
                0 => None,
                _ => Some(v(rng)),
            };
            let result = (outcome == Outcome::Ok).then(|| match &op {
                Op::Get { .. } => OpResult::Value { v: val(&mut rng) },
                Op::Mget { keys } => OpResult::Values {
                    v: keys.iter().map(|_| val(&mut rng)).collect(),
                },
                Op::Incr { .. } => OpResult::Int {
                    v: 1 + rng.below(3) as i64,
                },
                _ => OpResult::Done,
            });
            entries.push(Entry {
                id,
                client: id as u32,
                node: None,
                op,
                outcome,
                result,
                error: None,
                invoke_ns: invoke,
                complete_ns: complete,
            });
        }
        let expected = brute_linearizable(&entries);
        let report = check(&entries, &opts());
        let got = match report.verdict {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable => false,
            Verdict::Unknown => panic!("deadline on a tiny history"),
        };
        assert_eq!(got, expected, "round {round}: {entries:#?}");
        if expected {
            legal += 1;
        } else {
            illegal += 1;
            // The shrunk history is still not linearizable.
            for f in &report.failing {
                assert!(!brute_linearizable(&f.history), "round {round}: {f:#?}");
            }
        }
    }
    assert!(
        legal > 300 && illegal > 300,
        "{legal} legal, {illegal} illegal"
    );
}

fn entry(id: u64, op: Op, result: Option<OpResult>, invoke_ns: u64, complete_ns: u64) -> Entry {
    Entry {
        id,
        client: id as u32,
        node: None,
        outcome: if result.is_some() {
            Outcome::Ok
        } else {
            Outcome::Unknown
        },
        op,
        result,
        error: None,
        invoke_ns,
        complete_ns,
    }
}

#[test]
fn transfers_are_checked_as_one_step_over_both_counters() {
    let transfer = |amount| Op::Transfer {
        from: "a".into(),
        to: "b".into(),
        amount,
    };
    let mget = || Op::Mget {
        keys: vec!["a".into(), "b".into()],
    };
    let values = |a: &str, b: &str| {
        Some(OpResult::Values {
            v: vec![Some(a.into()), Some(b.into())],
        })
    };
    let fine = vec![
        entry(
            0,
            transfer(5),
            Some(OpResult::Ints { v: vec![-5, 5] }),
            0,
            10,
        ),
        entry(1, mget(), values("-5", "5"), 20, 30),
        entry(2, transfer(2), None, 40, 50),
        entry(3, mget(), values("-7", "7"), 60, 70),
    ];
    assert_eq!(check(&fine, &opts()).verdict, Verdict::Linearizable);
    // A read that saw only half of a transfer.
    let torn = vec![
        entry(
            0,
            transfer(5),
            Some(OpResult::Ints { v: vec![-5, 5] }),
            0,
            10,
        ),
        entry(1, mget(), values("-5", "0"), 20, 30),
    ];
    assert_eq!(check(&torn, &opts()).verdict, Verdict::NotLinearizable);
    // New values that do not follow from the old ones.
    let wrong = vec![entry(
        0,
        transfer(5),
        Some(OpResult::Ints { v: vec![-5, 6] }),
        0,
        10,
    )];
    assert_eq!(check(&wrong, &opts()).verdict, Verdict::NotLinearizable);
}
