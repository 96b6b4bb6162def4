//! Key/value commands as Accord transactions: parsing a Redis command into the keys it reads
//! and writes plus an operation (`op` bytes), and running that operation deterministically
//! against a key/value view at every replica, in executeAt order.
//!
//! The op encoding is `[opcode u8][flags u8]` followed by length-prefixed arguments
//! (`u32` little-endian length, bytes). It is part of the WAL format: opcodes are never
//! renumbered.

use bytes::{BufMut, Bytes, BytesMut};
use holo_resp::Frame;

/// The value size limit of Redis (`proto-max-bulk-len` default) for APPEND and SETRANGE.
pub const MAX_STRING_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Code {
    Get = 1,
    Set = 2,
    GetSet = 3,
    GetDel = 4,
    Del = 5,
    Exists = 6,
    MGet = 7,
    MSet = 8,
    MSetNx = 9,
    IncrBy = 10,
    Append = 11,
    Strlen = 12,
    GetRange = 13,
    SetRange = 14,
    SetNx = 15,
}

impl Code {
    fn from_u8(b: u8) -> Option<Code> {
        use Code::*;
        Some(match b {
            1 => Get,
            2 => Set,
            3 => GetSet,
            4 => GetDel,
            5 => Del,
            6 => Exists,
            7 => MGet,
            8 => MSet,
            9 => MSetNx,
            10 => IncrBy,
            11 => Append,
            12 => Strlen,
            13 => GetRange,
            14 => SetRange,
            15 => SetNx,
            _ => return None,
        })
    }
}

/// The opcode of a batch: several client commands proposed as one transaction.
const BATCH: u8 = 0;

const SET_NX: u8 = 1;
const SET_XX: u8 = 2;
const SET_GET: u8 = 4;

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
    pub fn is_blind(&self) -> bool {
        self.blind
    }
}

/// What parsing a command name and arguments gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Propose this transaction.
    Txn(KvTxn),
    /// Answer at once (an argument error).
    Reply(Frame),
    /// Not a key/value command.
    NotKv,
}

fn wrong_args(name: &str) -> Parsed {
    Parsed::Reply(Frame::error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )))
}

fn syntax_error() -> Parsed {
    Parsed::Reply(Frame::error("ERR syntax error"))
}

fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

fn encode(code: Code, flags: u8, args: &[&[u8]]) -> Bytes {
    let len: usize = 2 + args.iter().map(|a| 4 + a.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_u8(code as u8);
    out.put_u8(flags);
    for arg in args {
        out.put_u32_le(arg.len() as u32);
        out.put_slice(arg);
    }
    out.freeze()
}

fn decode(op: &[u8]) -> Option<(Code, u8, Vec<&[u8]>)> {
    let (&code, rest) = op.split_first()?;
    let (&flags, mut rest) = rest.split_first()?;
    let mut args = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let arg = rest.get(4..4 + len)?;
        args.push(arg);
        rest = &rest[4 + len..];
    }
    let code = Code::from_u8(code)?;
    // Ops arrive from peers and from the WAL too: a malformed one is refused, never a panic.
    let fixed = |n: usize| args.len() == n;
    let ints_ok = |at: &[usize]| {
        at.iter()
            .all(|&i| args.get(i).is_some_and(|a| a.len() == 8))
    };
    let well_formed = match code {
        Code::Get | Code::Strlen | Code::GetDel => fixed(1),
        Code::Set | Code::SetNx | Code::GetSet | Code::Append => fixed(2),
        Code::Del | Code::Exists | Code::MGet => !args.is_empty(),
        Code::MSet | Code::MSetNx => !args.is_empty() && args.len().is_multiple_of(2),
        Code::IncrBy => fixed(2) && ints_ok(&[1]),
        Code::GetRange => fixed(3) && ints_ok(&[1, 2]),
        Code::SetRange => {
            fixed(3)
                && ints_ok(&[1])
                && usize::try_from(i64_arg(args[1]))
                    .is_ok_and(|o| o.saturating_add(args[2].len()) <= MAX_STRING_BYTES)
        }
    };
    well_formed.then_some((code, flags, args))
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

/// Parses `args` (the command name first, any case) into a transaction.
pub fn parse(args: &[Bytes]) -> Parsed {
    let Some(name) = args.first() else {
        return Parsed::NotKv;
    };
    let mut upper = [0u8; 16];
    if name.len() > upper.len() {
        return Parsed::NotKv;
    }
    let upper = &mut upper[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let name = std::str::from_utf8(upper).unwrap_or("");
    let rest = &args[1..];
    let n = rest.len();
    let key = |i: usize| rest[i].clone();
    let blind_txn = |reads: Vec<Bytes>, writes: Vec<Bytes>, op: Bytes, blind: bool| {
        Parsed::Txn(KvTxn {
            reads,
            writes,
            op,
            blind,
        })
    };
    let txn = |reads, writes, op| blind_txn(reads, writes, op, false);
    let refs: Vec<&[u8]> = rest.iter().map(|b| &b[..]).collect();
    match name {
        "GET" | "STRLEN" => {
            if n != 1 {
                return wrong_args(name);
            }
            let code = if name == "GET" {
                Code::Get
            } else {
                Code::Strlen
            };
            txn(vec![key(0)], vec![], encode(code, 0, &[&rest[0]]))
        }
        "SET" => {
            if n < 2 {
                return wrong_args(name);
            }
            let mut flags = 0;
            for opt in &rest[2..] {
                match opt.to_ascii_uppercase().as_slice() {
                    b"NX" if flags & SET_XX == 0 => flags |= SET_NX,
                    b"XX" if flags & SET_NX == 0 => flags |= SET_XX,
                    b"GET" => flags |= SET_GET,
                    b"KEEPTTL" => {}
                    b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                        return Parsed::Reply(Frame::error(
                            "ERR key expiry (EX, PX, EXAT, PXAT) is not supported by HoloStore",
                        ));
                    }
                    _ => return syntax_error(),
                }
            }
            blind_txn(
                vec![],
                vec![key(0)],
                encode(Code::Set, flags, &[&rest[0], &rest[1]]),
                flags == 0,
            )
        }
        "SETNX" | "GETSET" | "APPEND" => {
            if n != 2 {
                return wrong_args(name);
            }
            let code = match name {
                "SETNX" => Code::SetNx,
                "GETSET" => Code::GetSet,
                _ => Code::Append,
            };
            txn(vec![], vec![key(0)], encode(code, 0, &[&rest[0], &rest[1]]))
        }
        "GETDEL" => {
            if n != 1 {
                return wrong_args(name);
            }
            txn(vec![], vec![key(0)], encode(Code::GetDel, 0, &[&rest[0]]))
        }
        "DEL" | "UNLINK" => {
            if n < 1 {
                return wrong_args(name);
            }
            txn(vec![], rest.to_vec(), encode(Code::Del, 0, &refs))
        }
        "EXISTS" | "MGET" => {
            if n < 1 {
                return wrong_args(name);
            }
            let code = if name == "EXISTS" {
                Code::Exists
            } else {
                Code::MGet
            };
            txn(rest.to_vec(), vec![], encode(code, 0, &refs))
        }
        "MSET" | "MSETNX" => {
            if n < 2 || !n.is_multiple_of(2) {
                return wrong_args(name);
            }
            let code = if name == "MSET" {
                Code::MSet
            } else {
                Code::MSetNx
            };
            let keys = rest.iter().step_by(2).cloned().collect();
            blind_txn(vec![], keys, encode(code, 0, &refs), code == Code::MSet)
        }
        "INCR" | "DECR" => {
            if n != 1 {
                return wrong_args(name);
            }
            let delta: i64 = if name == "INCR" { 1 } else { -1 };
            txn(
                vec![],
                vec![key(0)],
                encode(Code::IncrBy, 0, &[&rest[0], &delta.to_le_bytes()]),
            )
        }
        "INCRBY" | "DECRBY" => {
            if n != 2 {
                return wrong_args(name);
            }
            let Some(mut delta) = parse_i64(&rest[1]) else {
                return Parsed::Reply(not_integer());
            };
            if name == "DECRBY" {
                let Some(d) = delta.checked_neg() else {
                    return Parsed::Reply(Frame::error("ERR decrement would overflow"));
                };
                delta = d;
            }
            txn(
                vec![],
                vec![key(0)],
                encode(Code::IncrBy, 0, &[&rest[0], &delta.to_le_bytes()]),
            )
        }
        "GETRANGE" | "SUBSTR" => {
            if n != 3 {
                return wrong_args(name);
            }
            let (Some(start), Some(end)) = (parse_i64(&rest[1]), parse_i64(&rest[2])) else {
                return Parsed::Reply(not_integer());
            };
            txn(
                vec![key(0)],
                vec![],
                encode(
                    Code::GetRange,
                    0,
                    &[&rest[0], &start.to_le_bytes(), &end.to_le_bytes()],
                ),
            )
        }
        "SETRANGE" => {
            if n != 3 {
                return wrong_args(name);
            }
            let offset = match parse_i64(&rest[1]) {
                Some(o) if o >= 0 => o,
                Some(_) => return Parsed::Reply(Frame::error("ERR offset is out of range")),
                None => return Parsed::Reply(not_integer()),
            };
            if offset as u64 + rest[2].len() as u64 > MAX_STRING_BYTES as u64 {
                return Parsed::Reply(Frame::error(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                ));
            }
            txn(
                vec![],
                vec![key(0)],
                encode(
                    Code::SetRange,
                    0,
                    &[&rest[0], &offset.to_le_bytes(), &rest[2]],
                ),
            )
        }
        _ => Parsed::NotKv,
    }
}

/// The key/value state an operation runs against. `put(key, None)` deletes.
pub trait KvView {
    fn get(&mut self, key: &[u8]) -> Option<Bytes>;
    fn put(&mut self, key: &[u8], value: Option<Bytes>);
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    v.map_or(Frame::Null, Frame::Bulk)
}

fn i64_arg(arg: &[u8]) -> i64 {
    i64::from_le_bytes(arg.try_into().unwrap_or([0; 8]))
}

/// One operation running several client commands in order: `[0][count u32]` followed by
/// each command's op, length-prefixed. The core proposes everything its clients sent during
/// one step as one transaction, so consensus, the WAL and apply pay per batch, not per
/// command, and a hot key sees a handful of transactions in flight instead of thousands.
pub fn encode_batch<'a>(ops: impl ExactSizeIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(BATCH);
    out.put_u32_le(ops.len() as u32);
    for op in ops {
        out.put_u32_le(op.len() as u32);
        out.put_slice(op);
    }
    out.freeze()
}

/// Runs a single or batched op; one reply per client command, in order.
pub fn execute_all(op: &[u8], kv: &mut impl KvView) -> Vec<Frame> {
    if op.first() != Some(&BATCH) {
        return vec![execute(op, kv)];
    }
    let mut replies = Vec::new();
    let Some(count) = op
        .get(1..5)
        .and_then(|c| c.try_into().ok())
        .map(u32::from_le_bytes)
    else {
        return vec![Frame::error("ERR internal: undecodable batch")];
    };
    let mut rest = &op[5..];
    for _ in 0..count {
        let len = rest
            .get(..4)
            .and_then(|c| c.try_into().ok())
            .map_or(usize::MAX, |c| u32::from_le_bytes(c) as usize);
        let Some(sub) = rest.get(4..4usize.saturating_add(len)) else {
            replies.push(Frame::error("ERR internal: undecodable batch"));
            continue;
        };
        replies.push(execute(sub, kv));
        rest = &rest[4 + len..];
    }
    replies
}

/// Runs `op` against `kv` and returns the client's reply. Deterministic: the same op on the
/// same state gives the same writes and reply at every replica.
pub fn execute(op: &[u8], kv: &mut impl KvView) -> Frame {
    let Some((code, flags, args)) = decode(op) else {
        return Frame::error("ERR internal: undecodable operation");
    };
    match code {
        Code::Get => bulk_or_null(kv.get(args[0])),
        Code::Strlen => Frame::Integer(kv.get(args[0]).map_or(0, |v| v.len() as i64)),
        Code::Set => {
            let old = if flags & (SET_NX | SET_XX | SET_GET) != 0 {
                kv.get(args[0])
            } else {
                None
            };
            let blocked =
                (flags & SET_NX != 0 && old.is_some()) || (flags & SET_XX != 0 && old.is_none());
            if !blocked {
                kv.put(args[0], Some(Bytes::copy_from_slice(args[1])));
            }
            match (flags & SET_GET != 0, blocked) {
                (true, _) => bulk_or_null(old),
                (false, true) => Frame::Null,
                (false, false) => Frame::ok(),
            }
        }
        Code::SetNx => {
            if kv.get(args[0]).is_some() {
                Frame::Integer(0)
            } else {
                kv.put(args[0], Some(Bytes::copy_from_slice(args[1])));
                Frame::Integer(1)
            }
        }
        Code::GetSet => {
            let old = kv.get(args[0]);
            kv.put(args[0], Some(Bytes::copy_from_slice(args[1])));
            bulk_or_null(old)
        }
        Code::GetDel => {
            let old = kv.get(args[0]);
            if old.is_some() {
                kv.put(args[0], None);
            }
            bulk_or_null(old)
        }
        Code::Del => {
            let mut removed = 0;
            for key in &args {
                if kv.get(key).is_some() {
                    kv.put(key, None);
                    removed += 1;
                }
            }
            Frame::Integer(removed)
        }
        Code::Exists => Frame::Integer(args.iter().filter(|k| kv.get(k).is_some()).count() as i64),
        Code::MGet => Frame::Array(args.iter().map(|k| bulk_or_null(kv.get(k))).collect()),
        Code::MSet => {
            for pair in args.chunks(2) {
                kv.put(pair[0], Some(Bytes::copy_from_slice(pair[1])));
            }
            Frame::ok()
        }
        Code::MSetNx => {
            if args.chunks(2).any(|pair| kv.get(pair[0]).is_some()) {
                return Frame::Integer(0);
            }
            for pair in args.chunks(2) {
                kv.put(pair[0], Some(Bytes::copy_from_slice(pair[1])));
            }
            Frame::Integer(1)
        }
        Code::IncrBy => {
            let current = match kv.get(args[0]) {
                None => 0,
                Some(v) => match parse_i64(&v) {
                    Some(n) => n,
                    None => return not_integer(),
                },
            };
            let Some(next) = current.checked_add(i64_arg(args[1])) else {
                return Frame::error("ERR increment or decrement would overflow");
            };
            let mut buf = itoa::Buffer::new();
            kv.put(
                args[0],
                Some(Bytes::copy_from_slice(buf.format(next).as_bytes())),
            );
            Frame::Integer(next)
        }
        Code::Append => {
            let mut value = kv.get(args[0]).map(|v| v.to_vec()).unwrap_or_default();
            if value.len() + args[1].len() > MAX_STRING_BYTES {
                return Frame::error(
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                );
            }
            value.extend_from_slice(args[1]);
            let len = value.len() as i64;
            kv.put(args[0], Some(Bytes::from(value)));
            Frame::Integer(len)
        }
        Code::GetRange => {
            let value = kv.get(args[0]).unwrap_or_default();
            let len = value.len() as i64;
            let (mut start, mut end) = (i64_arg(args[1]), i64_arg(args[2]));
            if start < 0 && end < 0 && start > end {
                return Frame::Bulk(Bytes::new());
            }
            if start < 0 {
                start = (len + start).max(0);
            }
            if end < 0 {
                end = (len + end).max(0);
            }
            end = end.min(len - 1);
            if len == 0 || start > end {
                return Frame::Bulk(Bytes::new());
            }
            Frame::Bulk(value.slice(start as usize..=end as usize))
        }
        Code::SetRange => {
            let offset = i64_arg(args[1]) as usize;
            let patch = args[2];
            let current = kv.get(args[0]);
            if patch.is_empty() {
                return Frame::Integer(current.map_or(0, |v| v.len() as i64));
            }
            let mut value = current.map(|v| v.to_vec()).unwrap_or_default();
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            let len = value.len() as i64;
            kv.put(args[0], Some(Bytes::from(value)));
            Frame::Integer(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Map(BTreeMap<Vec<u8>, Bytes>);

    impl KvView for Map {
        fn get(&mut self, key: &[u8]) -> Option<Bytes> {
            self.0.get(key).cloned()
        }
        fn put(&mut self, key: &[u8], value: Option<Bytes>) {
            match value {
                Some(v) => self.0.insert(key.to_vec(), v),
                None => self.0.remove(key),
            };
        }
    }

    fn run(map: &mut Map, command: &str) -> Frame {
        let args: Vec<Bytes> = command
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        match parse(&args) {
            Parsed::Txn(txn) => execute(&txn.op, map),
            Parsed::Reply(frame) => frame,
            Parsed::NotKv => Frame::error("not kv"),
        }
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn commands_behave_like_redis() {
        let mut m = Map::default();
        let cases: Vec<(&str, Frame)> = vec![
            ("GET a", Frame::Null),
            ("set a 1", Frame::ok()),
            ("GET a", bulk("1")),
            ("SET a 2 NX", Frame::Null),
            ("SET b 2 XX", Frame::Null),
            ("SET a 3 XX GET", bulk("1")),
            ("SET a 4 NX XX", Frame::error("ERR syntax error")),
            ("SETNX a 9", Frame::Integer(0)),
            ("SETNX c 9", Frame::Integer(1)),
            ("GETSET c 10", bulk("9")),
            ("INCR c", Frame::Integer(11)),
            ("DECRBY c 20", Frame::Integer(-9)),
            ("INCRBY c x", not_integer()),
            ("INCR a", Frame::Integer(4)),
            ("APPEND a xy", Frame::Integer(3)),
            ("INCR a", not_integer()),
            ("STRLEN a", Frame::Integer(3)),
            ("GETRANGE a 0 -1", bulk("4xy")),
            ("GETRANGE a -2 -1", bulk("xy")),
            ("GETRANGE a 5 10", bulk("")),
            ("SETRANGE d 2 hi", Frame::Integer(4)),
            ("GET d", Frame::Bulk(Bytes::from_static(b"\0\0hi"))),
            ("MSET k1 v1 k2 v2", Frame::ok()),
            (
                "MGET k1 zz k2",
                Frame::Array(vec![bulk("v1"), Frame::Null, bulk("v2")]),
            ),
            ("MSETNX k1 x k3 y", Frame::Integer(0)),
            ("MSETNX k3 x k4 y", Frame::Integer(1)),
            ("EXISTS k1 k1 nope", Frame::Integer(2)),
            ("DEL k1 k2 nope", Frame::Integer(2)),
            ("GETDEL k3", bulk("x")),
            ("GETDEL k3", Frame::Null),
            (
                "MSET k1",
                Frame::error("ERR wrong number of arguments for 'mset' command"),
            ),
            (
                "GET",
                Frame::error("ERR wrong number of arguments for 'get' command"),
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(run(&mut m, command), expected, "{command}");
        }
    }

    #[test]
    fn overflow_is_refused_and_changes_nothing() {
        let mut m = Map::default();
        run(&mut m, &format!("SET n {}", i64::MAX));
        assert_eq!(
            run(&mut m, "INCR n"),
            Frame::error("ERR increment or decrement would overflow")
        );
        assert_eq!(run(&mut m, "GET n"), bulk(&i64::MAX.to_string()));
        assert_eq!(run(&mut m, "INCRBY n 007"), not_integer());
    }

    #[test]
    fn a_batch_runs_its_commands_in_order() {
        let parse_op = |command: &str| {
            let args: Vec<Bytes> = command
                .split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect();
            match parse(&args) {
                Parsed::Txn(t) => t.op,
                other => panic!("{other:?}"),
            }
        };
        let ops = [parse_op("SET a 1"), parse_op("INCR a"), parse_op("GET a")];
        let batch = encode_batch(ops.iter().map(|o| &o[..]));
        let mut m = Map::default();
        assert_eq!(
            execute_all(&batch, &mut m),
            vec![Frame::ok(), Frame::Integer(2), bulk("2")]
        );
        assert_eq!(execute_all(&ops[2], &mut m), vec![bulk("2")]);
    }

    #[test]
    fn malformed_ops_are_errors_not_panics() {
        let mut m = Map::default();
        let bad: Vec<Bytes> = vec![
            Bytes::from_static(&[1, 0]),
            Bytes::from_static(&[8, 0, 1, 0, 0, 0, b'k']),
            Bytes::from_static(&[10, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'x']),
            Bytes::from_static(&[99]),
            Bytes::new(),
            encode(Code::SetRange, 0, &[b"k", &(i64::MAX).to_le_bytes(), b"x"]),
            Bytes::from_static(&[0, 5, 0, 0, 0, 200]),
        ];
        for op in bad {
            for frame in execute_all(&op, &mut m) {
                assert!(frame.is_error(), "{op:?} gave {frame:?}");
            }
        }
        assert!(m.0.is_empty());
    }

    #[test]
    fn blind_writes_are_recognised() {
        let txn = |command: &str| {
            let args: Vec<Bytes> = command
                .split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect();
            match parse(&args) {
                Parsed::Txn(t) => t,
                other => panic!("{other:?}"),
            }
        };
        assert!(txn("SET a 1").is_blind());
        assert!(txn("SET a 1 KEEPTTL").is_blind());
        assert!(txn("MSET a 1 b 2").is_blind());
        for not_blind in [
            "SET a 1 NX",
            "SET a 1 GET",
            "SETNX a 1",
            "INCR a",
            "DEL a",
            "GET a",
        ] {
            assert!(!txn(not_blind).is_blind(), "{not_blind}");
        }
    }

    #[test]
    fn keys_are_classified() {
        let args: Vec<Bytes> = ["MGET", "a", "b"].iter().map(|s| Bytes::from(*s)).collect();
        let Parsed::Txn(t) = parse(&args) else {
            panic!("MGET parses")
        };
        assert_eq!((t.reads.len(), t.writes.len()), (2, 0));
        assert_eq!(parse(&[Bytes::from("PING")]), Parsed::NotKv);
    }
}
