//! Register workloads over RESP: each client on its own connection records every operation
//! with monotonic invoke and complete times and an honest outcome.
//!
//! Outcomes: `ok` when the reply says what happened; `fail` only when the reply proves the
//! operation had no effect (an error reply whose prefix says so, see [`proves_no_effect`]); `unknown` on a
//! timeout, a broken connection or an unexpected reply. A measured operation is never retried:
//! after an unknown outcome the client drops its connection and goes on with a new operation on
//! the next node, so a late effect of the old one stays a single, unknown operation.
//!
//! Keys are spread over every range: key `i` is `<hex digit of i % 16>-<prefix><i>`, and the
//! node's split points cut the keyspace by leading hex digit. Written values are unique
//! (`<client>-<sequence>`), which is what lets the checker tell writes apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use holo_resp::Frame;
use serde::{Deserialize, Serialize};

use crate::history::{Entry, Op, OpResult, Outcome};
use crate::resp::Client;

/// Which operations the clients issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// GET and SET of single keys.
    Register,
    /// INCR and GET of counters.
    Incr,
    /// MSET and MGET over groups of three keys (in different ranges), checked for strict
    /// serializability, mixed with single-key GET and SET.
    Multi,
    /// MULTI/EXEC transfers between the counters of a group of three keys (in different
    /// ranges) and MGET of the group: checked for strict serializability, so the total of a
    /// group never changes in any read.
    Transfer,
    /// Locks taken with `SET key token NX PX ttl` (with PEXPIRETIME, in one MULTI/EXEC);
    /// half released by their holder with a token check (WATCH, GET, MULTI/DEL/EXEC), the
    /// others left to expire: checked for mutual exclusion (see `check::locks`).
    Lock,
}

/// The time-to-live of the lock workload's locks.
pub const LOCK_TTL_MS: i64 = 150;

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// RESP addresses; client `c` starts on node `c % len` and moves on after an unknown outcome.
    pub nodes: Vec<String>,
    pub clients: usize,
    pub keys: usize,
    /// Share of writes (SET, INCR, MSET), 0-100.
    pub set_pct: u8,
    pub duration: Duration,
    pub op_timeout: Duration,
    pub mode: Mode,
    /// Prepended to every key so runs against one cluster do not see each other's keys.
    pub key_prefix: String,
    pub seed: u64,
    /// Share of writes (0-100) a client sends and then disconnects without reading the reply
    /// (recorded as unknown).
    #[serde(default)]
    pub disconnect_pct: u8,
    /// Writers and readers on different nodes: even clients only write, through the first
    /// node; odd clients only read, through the others.
    #[serde(default)]
    pub split_roles: bool,
}

/// Counts a run keeps while it goes (for progress and phase reports).
#[derive(Default, Debug)]
pub struct Live {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub unknown: AtomicU64,
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub entries: Vec<Entry>,
    pub elapsed: Duration,
}

impl Run {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == outcome).count()
    }

    /// Completed (`ok`) operations per second over the whole run.
    pub fn ok_per_sec(&self) -> f64 {
        self.count(Outcome::Ok) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The key name of key number `i`. Its leading hex digit picks the range (the split points
/// cut at "4", "8", "c"): keys `3g`, `3g+1`, `3g+2` (group `g` of the multi-key mode) get
/// digits 4 apart, so every group spans three ranges, and the groups rotate over all four.
pub fn key_name(prefix: &str, i: usize) -> String {
    let (g, j) = (i / 3, i % 3);
    let digit = (g % 4) + 4 * ((j + g) % 4);
    format!("{digit:x}-{prefix}{i}")
}

/// A tiny deterministic generator (SplitMix64): per client, and for fault choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs the workload until `spec.duration` passes or `stop` is set. Times are measured from
/// `origin`, which the caller shares with anything else it wants on the same clock (faults).
pub async fn run(
    spec: &WorkloadSpec,
    origin: Instant,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
) -> anyhow::Result<Run> {
    ensure!(!spec.nodes.is_empty(), "--nodes: give at least one address");
    ensure!(spec.clients > 0, "--clients must be at least 1");
    ensure!(spec.keys > 0, "--keys must be at least 1");
    ensure!(spec.set_pct <= 100, "--set-pct must be between 0 and 100");
    if matches!(spec.mode, Mode::Multi | Mode::Transfer) {
        ensure!(
            spec.keys >= 3,
            "--mode multi and transfer need --keys of at least 3"
        );
    }
    let started = Instant::now();
    let deadline = started + spec.duration;
    let ids = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..spec.clients {
        let spec = spec.clone();
        let stop = Arc::clone(&stop);
        let live = Arc::clone(&live);
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            client(c as u32, &spec, origin, deadline, &stop, &live, &ids).await
        }));
    }
    let mut entries = Vec::new();
    for task in tasks {
        entries.extend(task.await?);
    }
    entries.sort_by_key(|e| (e.invoke_ns, e.id));
    Ok(Run {
        entries,
        elapsed: started.elapsed(),
    })
}

fn nanos(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

async fn client(
    id: u32,
    spec: &WorkloadSpec,
    origin: Instant,
    deadline: Instant,
    stop: &AtomicBool,
    live: &Live,
    ids: &AtomicU64,
) -> Vec<Entry> {
    let mut rng = Rng(spec.seed ^ (u64::from(id) << 32 | 0x5EED));
    // With split roles, writers use node 0 and readers the others.
    let role = |c: u32| -> Option<bool> { spec.split_roles.then_some(c.is_multiple_of(2)) };
    let pick = |n: usize| -> usize {
        match role(id) {
            _ if spec.nodes.len() == 1 => 0,
            Some(true) => 0,
            Some(false) => 1 + n % (spec.nodes.len() - 1),
            None => n % spec.nodes.len(),
        }
    };
    let mut turn = id as usize;
    let mut node = pick(turn);
    let mut conn: Option<Client> = None;
    let mut seq = 0u64;
    let mut out = Vec::new();
    // The lock this client took last (lock mode), which it may release.
    let mut held: Option<(String, String)> = None;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match Client::connect(&spec.nodes[node], spec.op_timeout).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    // That node is down or cut off: try the next one after a short backoff
                    // (nothing was invoked, so nothing is recorded).
                    turn += 1;
                    node = pick(turn);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        seq += 1;
        let op = match held.take() {
            // Half the locks taken are released by their holder, the others expire.
            Some((key, token)) if rng.below(2) == 0 => Op::Release { key, token },
            _ => next_op(spec, role(id), id, seq, &mut rng),
        };
        let invoke_ns = nanos(origin);
        if op.is_write() && rng.below(100) < usize::from(spec.disconnect_pct) {
            // Send the command and hang up without reading the reply: the write may or may
            // not happen, and the history says so.
            for command in commands(&op) {
                let _ = c.send(&command).await;
            }
            conn = None;
            live.unknown.fetch_add(1, Ordering::Relaxed);
            out.push(Entry {
                id: ids.fetch_add(1, Ordering::Relaxed),
                client: id,
                node: Some(spec.nodes[node].clone()),
                op,
                outcome: Outcome::Unknown,
                result: None,
                error: Some("client disconnected before the reply".into()),
                invoke_ns,
                complete_ns: nanos(origin),
            });
            continue;
        }
        let reply = match &op {
            Op::Release { key, token } => release(c, key, token, spec.op_timeout).await,
            _ => c
                .pipeline(&commands(&op), spec.op_timeout)
                .await
                .map(transaction_reply),
        };
        let complete_ns = nanos(origin);
        let (outcome, result, error) = match reply {
            Ok(frame) => classify(&op, frame),
            Err(e) => (Outcome::Unknown, None, Some(e.to_string())),
        };
        if let (
            Op::Acquire { key, token, .. },
            Some(OpResult::Lease {
                expires_ms: Some(_),
            }),
        ) = (&op, &result)
        {
            held = Some((key.clone(), token.clone()));
        }
        match outcome {
            Outcome::Ok => live.ok.fetch_add(1, Ordering::Relaxed),
            Outcome::Fail => live.fail.fetch_add(1, Ordering::Relaxed),
            Outcome::Unknown => live.unknown.fetch_add(1, Ordering::Relaxed),
        };
        out.push(Entry {
            id: ids.fetch_add(1, Ordering::Relaxed),
            client: id,
            node: Some(spec.nodes[node].clone()),
            op,
            outcome,
            result,
            error,
            invoke_ns,
            complete_ns,
        });
        if outcome == Outcome::Unknown {
            // Never reuse a connection whose reply is still owed; never retry the op.
            conn = None;
            turn += 1;
            node = pick(turn);
        }
    }
    out
}

/// `commands` between MULTI and EXEC.
fn multi_exec(commands: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut all = vec![vec!["MULTI".to_owned()]];
    all.extend(commands);
    all.push(vec!["EXEC".to_owned()]);
    all
}

/// The commands that perform `op`: one, or a MULTI/EXEC block.
fn commands(op: &Op) -> Vec<Vec<String>> {
    let s = |t: &str| t.to_owned();
    let one = |args: Vec<String>| vec![args];
    match op {
        Op::Get { key } => one(vec![s("GET"), key.clone()]),
        Op::Set { key, value } => one(vec![s("SET"), key.clone(), value.clone()]),
        Op::Incr { key } => one(vec![s("INCR"), key.clone()]),
        Op::Mset { pairs } => {
            let mut args = vec![s("MSET")];
            for (k, v) in pairs {
                args.extend([k.clone(), v.clone()]);
            }
            one(args)
        }
        Op::Mget { keys } => {
            let mut args = vec![s("MGET")];
            args.extend(keys.iter().cloned());
            one(args)
        }
        Op::Transfer { from, to, amount } => multi_exec(vec![
            vec![s("DECRBY"), from.clone(), amount.to_string()],
            vec![s("INCRBY"), to.clone(), amount.to_string()],
        ]),
        Op::Acquire { key, token, ttl_ms } => multi_exec(vec![
            vec![
                s("SET"),
                key.clone(),
                token.clone(),
                s("NX"),
                s("PX"),
                ttl_ms.to_string(),
            ],
            vec![s("PEXPIRETIME"), key.clone()],
        ]),
        // Two round trips (see `release`); sent with `--disconnect-pct`, the first only.
        Op::Release { key, .. } => vec![vec![s("WATCH"), key.clone()], vec![s("GET"), key.clone()]],
    }
}

/// Releases `key` if it still holds `token`: WATCH and GET, then either UNWATCH (not ours:
/// answered as a nil EXEC) or `MULTI; PEXPIRE key 1; PEXPIRETIME key; DEL key; EXEC`.
async fn release(
    c: &mut Client,
    key: &str,
    token: &str,
    timeout: Duration,
) -> Result<Frame, crate::resp::CallError> {
    let check = c.pipeline(&[["WATCH", key], ["GET", key]], timeout).await?;
    match &check[..] {
        [Frame::Simple(ok), Frame::Bulk(v)]
            if ok.as_ref() == b"OK" && v.as_ref() == token.as_bytes() => {}
        [Frame::Simple(ok), _] if ok.as_ref() == b"OK" => {
            c.call(&["UNWATCH"], timeout).await?;
            return Ok(Frame::Null);
        }
        [other, ..] => return Ok(other.clone()),
        [] => return Ok(Frame::Null),
    }
    let block = multi_exec(vec![
        vec!["PEXPIRE".into(), key.into(), "1".into()],
        vec!["PEXPIRETIME".into(), key.into()],
        vec!["DEL".into(), key.into()],
    ]);
    Ok(transaction_reply(c.pipeline(&block, timeout).await?))
}

/// The reply that says what a command block did: the only reply of one command, or EXEC's.
/// A MULTI or a queued command answered other than `+OK`/`+QUEUED` is returned instead: an
/// error there means EXEC did nothing.
fn transaction_reply(mut replies: Vec<Frame>) -> Frame {
    if replies.len() == 1 {
        return replies.remove(0);
    }
    let exec = replies.pop().unwrap_or(Frame::Null);
    for (i, r) in replies.into_iter().enumerate() {
        let expected = if i == 0 { &b"OK"[..] } else { &b"QUEUED"[..] };
        match r {
            Frame::Simple(s) if s.as_ref() == expected => {}
            other => return other,
        }
    }
    exec
}

/// A random group of three keys, in three ranges (see [`key_name`]).
fn group(spec: &WorkloadSpec, rng: &mut Rng) -> Vec<String> {
    let g = rng.below(spec.keys / 3);
    (0..3)
        .map(|j| key_name(&spec.key_prefix, g * 3 + j))
        .collect()
}

fn next_op(spec: &WorkloadSpec, writer: Option<bool>, client: u32, seq: u64, rng: &mut Rng) -> Op {
    let write = writer.unwrap_or_else(|| rng.below(100) < usize::from(spec.set_pct));
    let value = || format!("{client}-{seq}");
    match spec.mode {
        Mode::Register => {
            let key = key_name(&spec.key_prefix, rng.below(spec.keys));
            if write {
                Op::Set {
                    key,
                    value: value(),
                }
            } else {
                Op::Get { key }
            }
        }
        Mode::Incr => {
            let key = key_name(&spec.key_prefix, rng.below(spec.keys));
            if write {
                Op::Incr { key }
            } else {
                Op::Get { key }
            }
        }
        Mode::Multi => {
            let group = group(spec, rng);
            match (write, rng.below(4)) {
                (true, 0) => Op::Set {
                    key: group[rng.below(3)].clone(),
                    value: value(),
                },
                (true, _) => {
                    // Two or three keys of the group.
                    let skip = rng.below(4);
                    let pairs = group
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != skip)
                        .map(|(j, k)| (k.clone(), format!("{client}-{seq}.{j}")))
                        .collect();
                    Op::Mset { pairs }
                }
                (false, 0) => Op::Get {
                    key: group[rng.below(3)].clone(),
                },
                (false, _) => Op::Mget { keys: group },
            }
        }
        Mode::Transfer => {
            let group = group(spec, rng);
            if write {
                let from = rng.below(3);
                let to = (from + 1 + rng.below(2)) % 3;
                Op::Transfer {
                    from: group[from].clone(),
                    to: group[to].clone(),
                    amount: 1 + rng.below(9) as i64,
                }
            } else {
                Op::Mget { keys: group }
            }
        }
        Mode::Lock => Op::Acquire {
            key: key_name(&spec.key_prefix, rng.below(spec.keys)),
            token: value(),
            ttl_ms: LOCK_TTL_MS,
        },
    }
}

/// True for the error replies that prove the command had no effect, decided by the reply's
/// prefix (HoloStore's README, "Error replies"): `-UNKNOWN` leaves the outcome open, and so
/// does any prefix this harness does not know; `-TRYAGAIN` (never applied, safe to retry) and
/// the refusals Redis itself sends (`-ERR`, `-WRONGTYPE`, ...) prove no effect.
pub fn proves_no_effect(message: &str) -> bool {
    const NO_EFFECT: [&str; 7] = [
        "TRYAGAIN",
        "ERR",
        "WRONGTYPE",
        "NOPROTO",
        "NOAUTH",
        "NOPERM",
        "EXECABORT",
    ];
    let prefix = message.split(' ').next().unwrap_or_default();
    NO_EFFECT.contains(&prefix)
}

/// Maps a reply to an outcome. An error reply is `fail` only when it proves no effect; a reply
/// of the wrong shape is recorded as unknown (and shows in the history).
fn classify(op: &Op, frame: Frame) -> (Outcome, Option<OpResult>, Option<String>) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let result = match (op, &frame) {
        (_, Frame::Error(e) | Frame::BulkError(e)) => {
            let message = text(e);
            let outcome = if proves_no_effect(&message) {
                Outcome::Fail
            } else {
                Outcome::Unknown
            };
            return (outcome, None, Some(message));
        }
        (Op::Set { .. } | Op::Mset { .. }, Frame::Simple(s)) if s.as_ref() == b"OK" => {
            OpResult::Done
        }
        (Op::Get { .. }, Frame::Null) => OpResult::Value { v: None },
        (Op::Get { .. }, Frame::Bulk(b)) => OpResult::Value { v: Some(text(b)) },
        (Op::Incr { .. }, Frame::Integer(n)) => OpResult::Int { v: *n },
        (Op::Transfer { .. }, Frame::Array(items)) if items.len() == 2 => {
            match (&items[0], &items[1]) {
                (Frame::Integer(a), Frame::Integer(b)) => OpResult::Ints { v: vec![*a, *b] },
                _ => return unexpected(&frame),
            }
        }
        (Op::Release { .. }, Frame::Null) => OpResult::Released { ended_ms: None },
        (Op::Release { .. }, Frame::Array(items)) if items.len() == 3 => {
            match (&items[0], &items[1], &items[2]) {
                (Frame::Integer(1), Frame::Integer(at), Frame::Integer(1)) => OpResult::Released {
                    ended_ms: Some(*at),
                },
                _ => return unexpected(&frame),
            }
        }
        (Op::Acquire { .. }, Frame::Array(items)) if items.len() == 2 => {
            match (&items[0], &items[1]) {
                (Frame::Simple(s), Frame::Integer(at)) if s.as_ref() == b"OK" => OpResult::Lease {
                    expires_ms: Some(*at),
                },
                (Frame::Null, Frame::Integer(_)) => OpResult::Lease { expires_ms: None },
                _ => return unexpected(&frame),
            }
        }
        (Op::Mget { keys }, Frame::Array(items)) if items.len() == keys.len() => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Frame::Null => values.push(None),
                    Frame::Bulk(b) => values.push(Some(text(b))),
                    _ => return unexpected(&frame),
                }
            }
            OpResult::Values { v: values }
        }
        _ => return unexpected(&frame),
    };
    (Outcome::Ok, Some(result), None)
}

fn unexpected(frame: &Frame) -> (Outcome, Option<OpResult>, Option<String>) {
    (
        Outcome::Unknown,
        None,
        Some(format!("unexpected reply {frame:?}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_span_three_ranges_and_keys_cover_all_four() {
        let range = |name: String| match name.chars().next().unwrap() {
            '0'..='3' => 0,
            '4'..='7' => 1,
            '8'..='b' => 2,
            _ => 3,
        };
        for g in 0..8 {
            let ranges: std::collections::BTreeSet<u8> =
                (0..3).map(|j| range(key_name("p", g * 3 + j))).collect();
            assert_eq!(ranges.len(), 3, "group {g}");
        }
        let all: std::collections::BTreeSet<u8> =
            (0..12).map(|i| range(key_name("p", i))).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(key_name("run1-", 0), "0-run1-0");
    }

    #[test]
    fn replies_map_to_outcomes() {
        let set = Op::Set {
            key: "k".into(),
            value: "v".into(),
        };
        assert_eq!(classify(&set, Frame::ok()).0, Outcome::Ok);
        assert_eq!(
            classify(&set, Frame::error("TRYAGAIN transaction was not applied")).0,
            Outcome::Fail
        );
        assert_eq!(
            classify(&set, Frame::error("UNKNOWN node is stopping")).0,
            Outcome::Unknown
        );
        assert_eq!(
            classify(&set, Frame::error("SOMETHINGNEW went wrong")).0,
            Outcome::Unknown,
            "an error whose prefix does not prove no effect is unknown"
        );
        assert_eq!(
            classify(
                &set,
                Frame::error("ERR wrong number of arguments for 'set'")
            )
            .0,
            Outcome::Fail,
            "a refusal before anything happened"
        );
        assert_eq!(
            classify(&set, Frame::error("WRONGTYPE Operation against a key")).0,
            Outcome::Fail
        );
        assert_eq!(classify(&set, Frame::Integer(1)).0, Outcome::Unknown);
        let mget = Op::Mget {
            keys: vec!["a".into(), "b".into()],
        };
        let (outcome, result, _) =
            classify(&mget, Frame::Array(vec![Frame::bulk("1"), Frame::Null]));
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(
            result,
            Some(OpResult::Values {
                v: vec![Some("1".into()), None]
            })
        );
        assert_eq!(
            classify(&mget, Frame::Array(vec![Frame::Null])).0,
            Outcome::Unknown
        );
    }
}
