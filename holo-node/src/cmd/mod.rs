//! The command table: every command HoloStore serves, in one place.
//!
//! A command's name is looked up once ([`lookup`]) into a [`Spec`]: its arity, flags and key
//! positions as Redis's COMMAND reports them, and how it runs ([`Kind`]). The arity check,
//! COMMAND (COUNT, INFO, DOCS, LIST, GETKEYS), the metrics labels and the dispatch of the
//! connection code are all derived from this table, so a command is added in one place.
//!
//! Each family of key/value commands has one module with its parsing (into the keys it reads
//! and writes and an operation, [`op`]) and its execution at the replicas: [`string`],
//! [`expire`], [`keyspace`], [`hash`], [`multi`]. Commands answered by the node itself
//! (connection state, configuration, scans of this node's storage) are in [`conn`] and
//! [`node`].

pub mod conn;
pub mod expire;
pub mod hash;
pub mod keyspace;
pub mod lcs;
pub mod multi;
pub mod node;
pub mod op;
pub mod string;
pub mod value;

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;
use holo_resp::Frame;

use crate::server::Session;

pub use op::{KvView, encode_batch, execute_all};

/// How a command runs.
pub enum Kind {
    /// A key/value command: parsed into a transaction (or an immediate reply).
    Txn(fn(&Spec, &[Bytes]) -> Parsed),
    /// Answered by this node from the connection's state or its own.
    Local(fn(&Spec, &mut Session<'_>, &[Bytes]) -> Frame),
    /// Reads this node's storage: run off the async workers, a few at a time.
    Scan(fn(&Spec, &crate::server::Shared, &[Bytes]) -> Frame),
    /// Changes the connection's transaction state (MULTI, EXEC, DISCARD, WATCH, UNWATCH).
    Multi,
    /// Runs asynchronously on the node (HOLODEBUG, FLUSHALL, KEYS and SCAN barriers).
    Node,
}

/// One command.
pub struct Spec {
    /// Lower case, as COMMAND reports it.
    pub name: &'static str,
    /// Redis's arity: `n` exactly `n` arguments (the name included), `-n` at least `n`.
    pub arity: i64,
    pub flags: &'static [&'static str],
    /// First key, last key (negative: from the end) and step, as COMMAND reports them.
    pub keys: (i64, i64, i64),
    pub kind: Kind,
}

impl Spec {
    /// Whether `argc` arguments (the name included) fit the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Whether clients may run it before authenticating.
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// The keys among `args` (the name included) by the key positions.
    pub fn key_args<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        let (first, last, step) = self.keys;
        if first <= 0 || args.len() <= first as usize {
            return Vec::new();
        }
        let last = if last < 0 {
            args.len() as i64 + last
        } else {
            last.min(args.len() as i64 - 1)
        };
        (first..=last)
            .step_by(step.max(1) as usize)
            .filter_map(|i| args.get(i as usize))
            .collect()
    }
}

use Kind::{Local, Multi, Node, Scan, Txn};

const R: &[&str] = &["readonly", "fast"];
const RS: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "fast"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const F: &[&str] = &["fast"];
const NONE: &[&str] = &[];
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);
const NOKEY: (i64, i64, i64) = (0, 0, 0);

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $kind:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            kind: $kind,
        }
    };
}

/// Every command, in the order of the metrics series.
pub static TABLE: &[Spec] = &[
    spec!("get", 2, R, ONE, Txn(string::parse_get)),
    spec!("set", -3, W, ONE, Txn(string::parse_set)),
    spec!("setnx", 3, WDF, ONE, Txn(string::parse_key_value)),
    spec!("setex", 4, W, ONE, Txn(string::parse_setex)),
    spec!("psetex", 4, W, ONE, Txn(string::parse_setex)),
    spec!("getset", 3, WDF, ONE, Txn(string::parse_key_value)),
    spec!("getdel", 2, WF, ONE, Txn(string::parse_getdel)),
    spec!("getex", -2, WF, ONE, Txn(string::parse_getex)),
    spec!("mget", -2, R, ALL, Txn(string::parse_mget)),
    spec!("mset", -3, W, (1, -1, 2), Txn(string::parse_mset)),
    spec!("msetnx", -3, W, (1, -1, 2), Txn(string::parse_mset)),
    spec!("incr", 2, WDF, ONE, Txn(string::parse_incr)),
    spec!("decr", 2, WDF, ONE, Txn(string::parse_incr)),
    spec!("incrby", 3, WDF, ONE, Txn(string::parse_incr)),
    spec!("decrby", 3, WDF, ONE, Txn(string::parse_incr)),
    spec!("incrbyfloat", 3, WDF, ONE, Txn(string::parse_incrbyfloat)),
    spec!("append", 3, WDF, ONE, Txn(string::parse_key_value)),
    spec!("strlen", 2, R, ONE, Txn(string::parse_get)),
    spec!("getrange", 4, RS, ONE, Txn(string::parse_getrange)),
    spec!("substr", 4, RS, ONE, Txn(string::parse_getrange)),
    spec!("setrange", 4, W, ONE, Txn(string::parse_setrange)),
    spec!("setbit", 4, W, ONE, Txn(string::parse_setbit)),
    spec!("getbit", 3, R, ONE, Txn(string::parse_getbit)),
    spec!("bitcount", -2, RS, ONE, Txn(string::parse_bitcount)),
    spec!("lcs", -3, RS, (1, 2, 1), Txn(lcs::parse)),
    spec!("expire", -3, WF, ONE, Txn(expire::parse_expire)),
    spec!("pexpire", -3, WF, ONE, Txn(expire::parse_expire)),
    spec!("expireat", -3, WF, ONE, Txn(expire::parse_expire)),
    spec!("pexpireat", -3, WF, ONE, Txn(expire::parse_expire)),
    spec!("ttl", 2, R, ONE, Txn(expire::parse_ttl)),
    spec!("pttl", 2, R, ONE, Txn(expire::parse_ttl)),
    spec!("expiretime", 2, R, ONE, Txn(expire::parse_ttl)),
    spec!("pexpiretime", 2, R, ONE, Txn(expire::parse_ttl)),
    spec!("persist", 2, WF, ONE, Txn(expire::parse_persist)),
    spec!("del", -2, &["write"], ALL, Txn(keyspace::parse_del)),
    spec!("unlink", -2, WF, ALL, Txn(keyspace::parse_del)),
    spec!("exists", -2, R, ALL, Txn(keyspace::parse_exists)),
    spec!("touch", -2, R, ALL, Txn(keyspace::parse_exists)),
    spec!("type", 2, R, ONE, Txn(keyspace::parse_type)),
    spec!(
        "rename",
        3,
        &["write"],
        (1, 2, 1),
        Txn(keyspace::parse_rename)
    ),
    spec!("renamenx", 3, WF, (1, 2, 1), Txn(keyspace::parse_rename)),
    spec!("copy", -3, W, (1, 2, 1), Txn(keyspace::parse_copy)),
    spec!(
        "object",
        -2,
        &["slow"],
        (2, 2, 1),
        Txn(keyspace::parse_object)
    ),
    spec!("hset", -4, WDF, ONE, Txn(hash::parse_hset)),
    spec!("hmset", -4, WDF, ONE, Txn(hash::parse_hset)),
    spec!("hsetnx", 4, WDF, ONE, Txn(hash::parse_hset)),
    spec!("hget", 3, R, ONE, Txn(hash::parse_read)),
    spec!("hmget", -3, R, ONE, Txn(hash::parse_read)),
    spec!("hexists", 3, R, ONE, Txn(hash::parse_read)),
    spec!("hlen", 2, R, ONE, Txn(hash::parse_read)),
    spec!("hstrlen", 3, R, ONE, Txn(hash::parse_read)),
    spec!("hgetall", 2, RS, ONE, Txn(hash::parse_read)),
    spec!("hkeys", 2, RS, ONE, Txn(hash::parse_read)),
    spec!("hvals", 2, RS, ONE, Txn(hash::parse_read)),
    spec!("hdel", -3, WF, ONE, Txn(hash::parse_hdel)),
    spec!("hincrby", 4, WDF, ONE, Txn(hash::parse_hincrby)),
    spec!("hincrbyfloat", 4, WDF, ONE, Txn(hash::parse_hincrby)),
    spec!("hscan", -3, RS, ONE, Txn(hash::parse_hscan)),
    spec!("multi", 1, TX, NOKEY, Multi),
    spec!(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NOKEY,
        Multi
    ),
    spec!("discard", 1, TX, NOKEY, Multi),
    spec!("watch", -2, TX, ALL, Multi),
    spec!("unwatch", 1, TX, NOKEY, Multi),
    spec!("ping", -1, F, NOKEY, Local(conn::ping)),
    spec!("echo", 2, F, NOKEY, Local(conn::echo)),
    spec!("quit", -1, AUTH, NOKEY, Local(conn::quit)),
    spec!("reset", 1, AUTH, NOKEY, Local(conn::reset)),
    spec!("hello", -1, AUTH, NOKEY, Local(conn::hello)),
    spec!("auth", -2, AUTH, NOKEY, Local(conn::auth)),
    spec!("acl", -2, NONE, NOKEY, Local(conn::acl)),
    spec!("select", 2, F, NOKEY, Local(conn::select)),
    spec!("client", -2, NONE, NOKEY, Local(conn::client)),
    spec!("command", -1, NONE, NOKEY, Local(node::command)),
    spec!("config", -2, NONE, NOKEY, Local(node::config)),
    spec!("holometrics", 1, NONE, NOKEY, Local(node::holometrics)),
    spec!("info", -1, NONE, NOKEY, Scan(node::info)),
    spec!("dbsize", 1, R, NOKEY, Node),
    spec!("keys", 2, RS, NOKEY, Node),
    spec!("scan", -2, RS, NOKEY, Node),
    spec!("randomkey", 1, RS, NOKEY, Node),
    spec!("flushall", -1, &["write"], NOKEY, Node),
    spec!("flushdb", -1, &["write"], NOKEY, Node),
    spec!("holodebug", 1, NONE, NOKEY, Node),
];

/// The metrics label of commands not in the table.
pub const OTHER: &str = "other";

static BY_NAME: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| TABLE.iter().enumerate().map(|(i, s)| (s.name, i)).collect());

/// The table index of command `name` (any case).
pub fn lookup(name: &[u8]) -> Option<usize> {
    let mut lower = [0u8; 16];
    let lower = lower.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(std::str::from_utf8(lower).ok()?).copied()
}

/// A key/value command ready to be proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTxn {
    pub reads: Vec<Bytes>,
    pub writes: Vec<Bytes>,
    pub op: Bytes,
    /// The reply does not depend on the state it runs against: `+OK` (plain SET, MSET).
    /// Such a command is answered as soon as its transaction is committed.
    blind: bool,
}

impl KvTxn {
    /// A transaction that is not blind.
    pub fn new(reads: Vec<Bytes>, writes: Vec<Bytes>, op: Bytes) -> KvTxn {
        KvTxn {
            reads,
            writes,
            op,
            blind: false,
        }
    }

    /// A transaction that only reads `keys`.
    pub fn reading(keys: Vec<Bytes>, op: Bytes) -> KvTxn {
        KvTxn::new(keys, Vec::new(), op)
    }

    pub fn is_blind(&self) -> bool {
        self.blind
    }

    /// The proposal for the core, and where its reply comes.
    pub fn into_proposal(self) -> (crate::core::Proposal, tokio::sync::oneshot::Receiver<Frame>) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let proposal = crate::core::Proposal {
            blind: self.blind,
            txn_only: false,
            reads: self.reads,
            writes: self.writes,
            op: self.op,
            reply,
        };
        (proposal, answer)
    }
}

/// What parsing a key/value command gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Propose this transaction.
    Txn(KvTxn),
    /// Answer at once (an argument error).
    Reply(Frame),
}

impl Parsed {
    fn read(keys: Vec<Bytes>, op: Bytes) -> Parsed {
        Parsed::Txn(KvTxn {
            reads: keys,
            writes: Vec::new(),
            op,
            blind: false,
        })
    }

    fn write(keys: Vec<Bytes>, op: Bytes, blind: bool) -> Parsed {
        Parsed::Txn(KvTxn {
            reads: Vec::new(),
            writes: keys,
            op,
            blind,
        })
    }

    fn also_reads(mut self, key: &Bytes) -> Parsed {
        if let Parsed::Txn(t) = &mut self
            && !t.writes.contains(key)
        {
            t.reads.push(key.clone());
        }
        self
    }
}

/// Parses a key/value command (`args[0]` its name) by the table; `None` if `args` is not one.
pub fn parse(args: &[Bytes]) -> Option<Parsed> {
    let spec = &TABLE[lookup(args.first()?)?];
    let Kind::Txn(parse) = spec.kind else {
        return None;
    };
    Some(if spec.arity_ok(args.len()) {
        parse(spec, &args[1..])
    } else {
        wrong_args(spec.name)
    })
}

pub fn wrong_args(name: &str) -> Parsed {
    Parsed::Reply(wrong_args_frame(name))
}

pub fn wrong_args_frame(name: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

pub fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

/// Parses a decimal i64 the way Redis does (no spaces, no `+`, no leading zeros).
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with('+')
        || (text.len() > 1 && text.starts_with('0'))
        || text.starts_with("-0")
    {
        return None;
    }
    text.parse().ok()
}

/// Parses a float as Redis's INCRBYFLOAT does: no spaces, not NaN.
pub fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| !v.is_nan())
}

/// This node's wall clock in Unix milliseconds. Never for deciding expiry, which runs at
/// executeAt: for refusing expiry times that would overflow (as Redis does when it parses
/// them), for answers from this node's own copy, and for holding replies (the executor).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Parses an expiry argument of command `name` into milliseconds (relative or a Unix time).
/// `allow_past`: EXPIRE accepts zero and negative times (the key is deleted); SET, SETEX
/// and GETEX refuse them.
pub fn expiry_arg(
    name: &str,
    arg: &[u8],
    seconds: bool,
    absolute: bool,
    allow_past: bool,
) -> Result<i64, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    let v = parse_i64(arg).ok_or_else(not_integer)?;
    if !allow_past && v <= 0 {
        return Err(invalid());
    }
    let ms = if seconds {
        v.checked_mul(1000).ok_or_else(invalid)?
    } else {
        v
    };
    if !absolute && ms.checked_add(wall_ms() as i64).is_none() {
        return Err(invalid());
    }
    Ok(ms)
}

/// Redis's glob-style match (`*`, `?`, `[abc]`, `[^a-z]`, `\` escapes), for KEYS, SCAN
/// MATCH, HSCAN MATCH and CONFIG GET. Patterns longer than 256 bytes match nothing, so the
/// time is bounded by 256 times the text's length.
pub fn glob(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    if pattern.len() > 256 {
        return false;
    }
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // One element of the pattern at `p` against `c`: (matched, pattern length used).
    let one = |p: usize, c: u8| -> (bool, usize) {
        match pattern[p] {
            b'?' => (true, 1),
            b'\\' if p + 1 < pattern.len() => (eq(pattern[p + 1], c), 2),
            b'[' => {
                let mut i = p + 1;
                let negate = pattern.get(i) == Some(&b'^');
                if negate {
                    i += 1;
                }
                let mut matched = false;
                while i < pattern.len() && pattern[i] != b']' {
                    if pattern[i] == b'\\' && i + 1 < pattern.len() {
                        matched |= eq(pattern[i + 1], c);
                        i += 2;
                    } else if i + 2 < pattern.len()
                        && pattern[i + 1] == b'-'
                        && pattern[i + 2] != b']'
                    {
                        let (mut lo, mut hi) = (pattern[i], pattern[i + 2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let c2 = if nocase { c.to_ascii_lowercase() } else { c };
                        let (lo2, hi2) = if nocase {
                            (lo.to_ascii_lowercase(), hi.to_ascii_lowercase())
                        } else {
                            (lo, hi)
                        };
                        matched |= (lo..=hi).contains(&c) || (lo2..=hi2).contains(&c2);
                        i += 3;
                    } else {
                        matched |= eq(pattern[i], c);
                        i += 1;
                    }
                }
                (matched != negate, (i + 1).min(pattern.len()) - p)
            }
            other => (eq(other, c), 1),
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
            continue;
        }
        if p < pattern.len() {
            let (ok, used) = one(p, text[t]);
            if ok {
                p += used;
                t += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
