//! The sequential model: history entries compiled into compact operations over a partition's
//! registers, and the step function the search runs.
//!
//! Values are interned per partition to `u32` ids (`0` is nil). A string that is the canonical
//! decimal form of an `i64` (what Redis' INCR accepts and what GET returns after INCR) is
//! interned as that integer, so `SET k 5`, `INCR k` and `GET k -> "6"` agree.

use std::collections::HashMap;

use crate::history::{Entry, Op, OpResult, Outcome};

/// The id of nil (an absent key).
pub(crate) const NIL: u32 = 0;

/// A register's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Nil,
    Int(i64),
    Str(String),
}

/// Interns the values of one partition.
#[derive(Clone, Debug)]
pub(crate) struct Interner {
    values: Vec<Value>,
    strs: HashMap<String, u32>,
    ints: HashMap<i64, u32>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            values: vec![Value::Nil],
            strs: HashMap::new(),
            ints: HashMap::new(),
        }
    }
}

/// `Some(n)` when `s` is exactly how Redis would print the integer `n` (no sign for positive
/// numbers, no leading zeros, no spaces): the strings INCR accepts.
pub(crate) fn canonical_int(s: &str) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

impl Interner {
    pub(crate) fn int(&mut self, n: i64) -> u32 {
        if let Some(&id) = self.ints.get(&n) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(Value::Int(n));
        self.ints.insert(n, id);
        id
    }

    pub(crate) fn str(&mut self, s: &str) -> u32 {
        if let Some(n) = canonical_int(s) {
            return self.int(n);
        }
        if let Some(&id) = self.strs.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(Value::Str(s.to_owned()));
        self.strs.insert(s.to_owned(), id);
        id
    }

    pub(crate) fn opt(&mut self, v: Option<&str>) -> u32 {
        v.map_or(NIL, |s| self.str(s))
    }

    pub(crate) fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// The value as GET would return it.
    pub(crate) fn text(&self, id: u32) -> Option<String> {
        match self.value(id) {
            Value::Nil => None,
            Value::Int(n) => Some(n.to_string()),
            Value::Str(s) => Some(s.clone()),
        }
    }

    /// The value for humans: `nil` or the string.
    pub(crate) fn show(&self, id: u32) -> String {
        self.text(id).unwrap_or_else(|| "nil".to_owned())
    }
}

/// What an operation does to, and observes of, the partition's registers (key indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// GET / MGET: every key holds the value (ids), atomically.
    Read { keys: Box<[u32]>, vals: Box<[u32]> },
    /// SET / MSET: every pair written atomically, in order.
    Write { pairs: Box<[(u32, u32)]> },
    /// INCR: the key holds an integer (or nil); `out` is the returned value when known.
    Incr { key: u32, out: Option<i64> },
    /// A transfer: `amount` moves from `from` to `to` (both integers or nil); `out` is
    /// their new values when known.
    Transfer {
        from: u32,
        to: u32,
        amount: i64,
        out: Option<(i64, i64)>,
    },
    /// An `ok` entry whose result does not fit its operation: it can never take effect.
    Impossible,
}

/// One operation of a partition, ready for the search.
#[derive(Clone, Debug)]
pub(crate) struct POp {
    /// Index of the entry in the caller's slice.
    pub entry: usize,
    pub step: Step,
    pub invoke: u64,
    /// `u64::MAX` for an unknown outcome (still open at the end of time).
    pub complete: u64,
    pub unknown: bool,
}

impl POp {
    /// The same operation with an unknown outcome: a write that may or may not take effect at
    /// any point after its invocation. `None` for reads (an unknown read constrains nothing).
    pub(crate) fn as_unknown(&self) -> Option<POp> {
        let step = match &self.step {
            Step::Read { .. } | Step::Impossible => return None,
            Step::Write { pairs } => Step::Write {
                pairs: pairs.clone(),
            },
            Step::Incr { key, .. } => Step::Incr {
                key: *key,
                out: None,
            },
            Step::Transfer {
                from, to, amount, ..
            } => Step::Transfer {
                from: *from,
                to: *to,
                amount: *amount,
                out: None,
            },
        };
        Some(POp {
            entry: self.entry,
            step,
            invoke: self.invoke,
            complete: u64::MAX,
            unknown: true,
        })
    }
}

/// Compiles the entries `idx` of `entries` (already filtered: `ok` ops and unknown writes) over
/// the partition's `keys` (sorted).
pub(crate) fn compile(
    entries: &[Entry],
    idx: &[usize],
    keys: &[String],
    interner: &mut Interner,
) -> Vec<POp> {
    let key_of = |k: &str| -> u32 {
        keys.binary_search_by(|x| x.as_str().cmp(k))
            .expect("partition holds every key of its ops") as u32
    };
    idx.iter()
        .map(|&i| {
            let e = &entries[i];
            let unknown = e.outcome == Outcome::Unknown;
            let step = compile_step(e, unknown, &key_of, interner);
            POp {
                entry: i,
                step,
                invoke: e.invoke_ns,
                complete: if unknown {
                    u64::MAX
                } else {
                    e.complete_ns.max(e.invoke_ns)
                },
                unknown,
            }
        })
        .collect()
}

fn compile_step(
    e: &Entry,
    unknown: bool,
    key_of: &impl Fn(&str) -> u32,
    interner: &mut Interner,
) -> Step {
    let result = if unknown { None } else { e.result.as_ref() };
    match (&e.op, result) {
        (Op::Get { key }, Some(OpResult::Value { v })) => Step::Read {
            keys: Box::new([key_of(key)]),
            vals: Box::new([interner.opt(v.as_deref())]),
        },
        (Op::Mget { keys }, Some(OpResult::Values { v })) if v.len() == keys.len() => Step::Read {
            keys: keys.iter().map(|k| key_of(k)).collect(),
            vals: v.iter().map(|x| interner.opt(x.as_deref())).collect(),
        },
        (Op::Set { key, value }, None | Some(OpResult::Done)) => Step::Write {
            pairs: Box::new([(key_of(key), interner.str(value))]),
        },
        (Op::Mset { pairs }, None | Some(OpResult::Done)) => Step::Write {
            pairs: pairs
                .iter()
                .map(|(k, v)| (key_of(k), interner.str(v)))
                .collect(),
        },
        (Op::Incr { key }, None) if unknown => Step::Incr {
            key: key_of(key),
            out: None,
        },
        (Op::Incr { key }, Some(OpResult::Int { v })) => Step::Incr {
            key: key_of(key),
            out: Some(*v),
        },
        (Op::Transfer { from, to, amount }, None) if unknown => Step::Transfer {
            from: key_of(from),
            to: key_of(to),
            amount: *amount,
            out: None,
        },
        (Op::Transfer { from, to, amount }, Some(OpResult::Ints { v })) if v.len() == 2 => {
            Step::Transfer {
                from: key_of(from),
                to: key_of(to),
                amount: *amount,
                out: Some((v[0], v[1])),
            }
        }
        _ => Step::Impossible,
    }
}

/// Why a step cannot be applied to a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A read saw `seen` at key index `key`, which holds `held`.
    Read { key: u32, seen: u32, held: u32 },
    /// INCR on a key holding a non-integer.
    NotInteger { key: u32, held: u32 },
    /// INCR would overflow.
    Overflow { key: u32 },
    /// INCR returned `out` but the counter becomes `expected`.
    Incr { key: u32, out: i64, expected: i64 },
    /// The result does not fit the operation.
    Impossible,
}

/// The integer a counter register holds (nil counts as 0).
fn counter(key: u32, held: u32, interner: &Interner) -> Result<i64, Refusal> {
    match interner.value(held) {
        Value::Nil => Ok(0),
        Value::Int(n) => Ok(*n),
        Value::Str(_) => Err(Refusal::NotInteger { key, held }),
    }
}

/// A counter's recorded new value, if known, is the one the model computes.
fn expect_out(key: u32, out: Option<i64>, expected: i64) -> Result<(), Refusal> {
    match out {
        Some(out) if out != expected => Err(Refusal::Incr { key, out, expected }),
        _ => Ok(()),
    }
}

/// Applies `step` to `state`, pushing `(key, old value)` to `undo` for every write. On refusal
/// nothing is written.
pub(crate) fn apply(
    step: &Step,
    state: &mut [u32],
    undo: &mut Vec<(u32, u32)>,
    interner: &mut Interner,
) -> Result<(), Refusal> {
    match step {
        Step::Read { keys, vals } => {
            for (&key, &seen) in keys.iter().zip(vals.iter()) {
                let held = state[key as usize];
                if held != seen {
                    return Err(Refusal::Read { key, seen, held });
                }
            }
            Ok(())
        }
        Step::Write { pairs } => {
            for &(key, v) in pairs.iter() {
                undo.push((key, state[key as usize]));
                state[key as usize] = v;
            }
            Ok(())
        }
        Step::Incr { key, out } => {
            let held = state[*key as usize];
            let next = counter(*key, held, interner)?
                .checked_add(1)
                .ok_or(Refusal::Overflow { key: *key })?;
            expect_out(*key, *out, next)?;
            undo.push((*key, held));
            state[*key as usize] = interner.int(next);
            Ok(())
        }
        Step::Transfer {
            from,
            to,
            amount,
            out,
        } => {
            let (held_from, held_to) = (state[*from as usize], state[*to as usize]);
            let next_from = counter(*from, held_from, interner)?
                .checked_sub(*amount)
                .ok_or(Refusal::Overflow { key: *from })?;
            // The same key on both sides nets to nothing.
            let base_to = if from == to {
                next_from
            } else {
                counter(*to, held_to, interner)?
            };
            let next_to = base_to
                .checked_add(*amount)
                .ok_or(Refusal::Overflow { key: *to })?;
            expect_out(*from, out.map(|(f, _)| f), next_from)?;
            expect_out(*to, out.map(|(_, t)| t), next_to)?;
            undo.push((*from, held_from));
            state[*from as usize] = interner.int(next_from);
            undo.push((*to, state[*to as usize]));
            state[*to as usize] = interner.int(next_to);
            Ok(())
        }
        Step::Impossible => Err(Refusal::Impossible),
    }
}

/// Human text for a refusal.
pub(crate) fn describe_refusal(r: &Refusal, keys: &[String], interner: &Interner) -> String {
    match r {
        Refusal::Read { key, seen, held } => format!(
            "it read {}={} but {} holds {}",
            keys[*key as usize],
            interner.show(*seen),
            keys[*key as usize],
            interner.show(*held)
        ),
        Refusal::NotInteger { key, held } => format!(
            "INCR needs an integer but {} holds {}",
            keys[*key as usize],
            interner.show(*held)
        ),
        Refusal::Overflow { key } => format!("INCR of {} would overflow", keys[*key as usize]),
        Refusal::Incr { key, out, expected } => format!(
            "it returned {out} but {} would become {expected}",
            keys[*key as usize]
        ),
        Refusal::Impossible => "its recorded result does not fit the operation".to_owned(),
    }
}

/// A short label for an entry: `set k=v`, `get k -> v`, `incr k -> 3`, `mset a=1 b=2`,
/// `mget a b -> 1 nil`; unknown writes end in `?`, failed ones in `(fail)`.
pub fn label(e: &Entry) -> String {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "nil".to_owned());
    let mut s = match (&e.op, &e.result) {
        (Op::Get { key }, Some(OpResult::Value { v })) if e.outcome == Outcome::Ok => {
            format!("get {key} -> {}", show(v))
        }
        (Op::Get { key }, _) => format!("get {key}"),
        (Op::Set { key, value }, _) => format!("set {key}={value}"),
        (Op::Incr { key }, Some(OpResult::Int { v })) if e.outcome == Outcome::Ok => {
            format!("incr {key} -> {v}")
        }
        (Op::Incr { key }, _) => format!("incr {key}"),
        (Op::Mset { pairs }, _) => {
            let p: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("mset {}", p.join(" "))
        }
        (Op::Mget { keys }, Some(OpResult::Values { v })) if e.outcome == Outcome::Ok => {
            let vals: Vec<String> = v.iter().map(show).collect();
            format!("mget {} -> {}", keys.join(" "), vals.join(" "))
        }
        (Op::Mget { keys }, _) => format!("mget {}", keys.join(" ")),
        (Op::Transfer { from, to, amount }, Some(OpResult::Ints { v }))
            if e.outcome == Outcome::Ok =>
        {
            format!("transfer {amount} {from}->{to} -> {v:?}")
        }
        (Op::Transfer { from, to, amount }, _) => format!("transfer {amount} {from}->{to}"),
        (Op::Acquire { key, token, ttl_ms }, Some(OpResult::Lease { expires_ms }))
            if e.outcome == Outcome::Ok =>
        {
            format!("acquire {key}={token} px {ttl_ms} -> {expires_ms:?}")
        }
        (Op::Acquire { key, token, ttl_ms }, _) => format!("acquire {key}={token} px {ttl_ms}"),
        (Op::Release { key, token }, Some(OpResult::Released { ended_ms }))
            if e.outcome == Outcome::Ok =>
        {
            format!("release {key}={token} -> {ended_ms:?}")
        }
        (Op::Release { key, token }, _) => format!("release {key}={token}"),
    };
    match e.outcome {
        Outcome::Ok => {}
        Outcome::Unknown => s.push_str(" ?"),
        Outcome::Fail => s.push_str(" (fail)"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_are_what_incr_accepts() {
        assert_eq!(canonical_int("0"), Some(0));
        assert_eq!(canonical_int("-12"), Some(-12));
        assert_eq!(canonical_int("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "+1",
            "01",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "x",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn incr_steps_from_nil_and_refuses_strings() {
        let mut i = Interner::default();
        let mut state = vec![NIL];
        let mut undo = Vec::new();
        let incr = |out| Step::Incr { key: 0, out };
        apply(&incr(Some(1)), &mut state, &mut undo, &mut i).unwrap();
        apply(&incr(None), &mut state, &mut undo, &mut i).unwrap();
        assert_eq!(i.text(state[0]).as_deref(), Some("2"));
        let six = i.str("6");
        assert_eq!(
            apply(&incr(Some(2)), &mut state, &mut undo, &mut i),
            Err(Refusal::Incr {
                key: 0,
                out: 2,
                expected: 3
            })
        );
        state[0] = six;
        apply(&incr(Some(7)), &mut state, &mut undo, &mut i).unwrap();
        state[0] = i.str("abc");
        assert!(matches!(
            apply(&incr(None), &mut state, &mut undo, &mut i),
            Err(Refusal::NotInteger { .. })
        ));
        state[0] = i.int(i64::MAX);
        assert_eq!(
            apply(&incr(None), &mut state, &mut undo, &mut i),
            Err(Refusal::Overflow { key: 0 })
        );
        assert_eq!(undo.len(), 3);
    }
}
