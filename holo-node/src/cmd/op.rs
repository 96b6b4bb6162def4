//! Operations: what a key/value command becomes once parsed, as it travels in a transaction
//! and sits in the WAL, and the deterministic state machine that runs it at every replica.
//!
//! The encoding is `[opcode u8][flags u8]` followed by length-prefixed arguments (`u32`
//! little-endian length, bytes). It is part of the WAL format: opcodes are never renumbered
//! and a flag bit, once given a meaning, keeps it.
//!
//! # Time
//! An operation that depends on time (expiry, TTL) reads it from `now_ms`: the hybrid-logical
//! clock of the transaction's agreed executeAt, in milliseconds. Every replica, and every
//! replay of the WAL, runs the operation with the same `now_ms`, so all agree on whether a
//! key has expired; and executeAt order is the order of the history, so expiry is
//! linearizable. A replica's own wall clock is never read here.

use bytes::{BufMut, Bytes, BytesMut};
use holo_accord::Timestamp;
use holo_resp::Frame;

use super::value::{Data, Value};

/// Opcodes. The numbers are part of the WAL format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
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
    Expire = 16,
    Ttl = 17,
    Persist = 18,
    GetEx = 19,
    Type = 20,
    Rename = 21,
    Copy = 22,
    ObjectEncoding = 23,
    IncrByFloat = 24,
    HSet = 25,
    HGet = 26,
    HMGet = 27,
    HDel = 28,
    HExists = 29,
    HLen = 30,
    HGetAll = 31,
    HKeys = 32,
    HVals = 33,
    HIncrBy = 34,
    HIncrByFloat = 35,
    HStrLen = 36,
    HScan = 37,
    Exec = 38,
    Watch = 39,
    PurgeExpired = 40,
    SetBit = 41,
    GetBit = 42,
    BitCount = 43,
    Lcs = 44,
}

const CODES: &[Code] = &[
    Code::Get,
    Code::Set,
    Code::GetSet,
    Code::GetDel,
    Code::Del,
    Code::Exists,
    Code::MGet,
    Code::MSet,
    Code::MSetNx,
    Code::IncrBy,
    Code::Append,
    Code::Strlen,
    Code::GetRange,
    Code::SetRange,
    Code::SetNx,
    Code::Expire,
    Code::Ttl,
    Code::Persist,
    Code::GetEx,
    Code::Type,
    Code::Rename,
    Code::Copy,
    Code::ObjectEncoding,
    Code::IncrByFloat,
    Code::HSet,
    Code::HGet,
    Code::HMGet,
    Code::HDel,
    Code::HExists,
    Code::HLen,
    Code::HGetAll,
    Code::HKeys,
    Code::HVals,
    Code::HIncrBy,
    Code::HIncrByFloat,
    Code::HStrLen,
    Code::HScan,
    Code::Exec,
    Code::Watch,
    Code::PurgeExpired,
    Code::SetBit,
    Code::GetBit,
    Code::BitCount,
    Code::Lcs,
];

impl Code {
    fn from_u8(b: u8) -> Option<Code> {
        // Opcodes are 1, 2, 3 ... in `CODES` order (checked by a test).
        CODES.get(usize::from(b).checked_sub(1)?).copied()
    }
}

/// The opcode of a batch: several client commands proposed as one transaction.
const BATCH: u8 = 0;

/// Encodes an operation.
pub fn encode(code: Code, flags: u8, args: &[&[u8]]) -> Bytes {
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

/// Encodes an operation whose arguments are all client arguments (keys, fields, values).
pub fn encode_all(code: Code, flags: u8, args: &[Bytes]) -> Bytes {
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    encode(code, flags, &refs)
}

/// A decoded operation's arguments. Operations arrive from peers and from the WAL too, so
/// every accessor checks: a malformed operation is an error reply, never a panic.
pub struct Args<'a>(pub Vec<&'a [u8]>);

impl<'a> Args<'a> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Argument `i`.
    pub fn at(&self, i: usize) -> Result<&'a [u8], Frame> {
        self.0.get(i).copied().ok_or_else(undecodable)
    }

    /// Argument `i` as the `i64` the parser encoded.
    pub fn int(&self, i: usize) -> Result<i64, Frame> {
        self.at(i)?
            .try_into()
            .map(i64::from_le_bytes)
            .map_err(|_| undecodable())
    }

    /// Arguments from `i` on.
    pub fn from(&self, i: usize) -> &[&'a [u8]] {
        self.0.get(i..).unwrap_or_default()
    }
}

/// The reply to an operation that does not decode.
pub fn undecodable() -> Frame {
    Frame::error("ERR internal: undecodable operation")
}

fn decode(op: &[u8]) -> Option<(Code, u8, Args<'_>)> {
    let (&code, rest) = op.split_first()?;
    let (&flags, mut rest) = rest.split_first()?;
    let mut args = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let arg = rest.get(4..4usize.checked_add(len)?)?;
        args.push(arg);
        rest = &rest[4 + len..];
    }
    Some((Code::from_u8(code)?, flags, Args(args)))
}

/// The key/value state an operation runs against. `put(key, None)` deletes.
pub trait KvView {
    /// The stored value, expired or not.
    fn get(&mut self, key: &[u8]) -> Option<Value>;
    fn put(&mut self, key: &[u8], value: Option<Value>);
    /// The executeAt of the last write of `key` (a delete too); zero if none is stored.
    fn version(&mut self, key: &[u8]) -> Timestamp;
}

/// What an operation runs with: the state, and the time of its executeAt.
pub struct Ctx<'a> {
    pub kv: &'a mut dyn KvView,
    pub now_ms: u64,
    /// The latest expiry of a value the operation found expired (0: none): its reply
    /// depends on time having passed it (see [`Executed::expired_seen`]).
    pub expired_seen: u64,
    /// Inside an EXEC: another EXEC is refused (ops from peers are not trusted to nest).
    pub in_exec: bool,
}

/// The error of a command run on a key holding another type.
pub fn wrong_type() -> Frame {
    Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

impl Ctx<'_> {
    /// The value of `key` unless it has expired.
    pub fn live(&mut self, key: &[u8]) -> Option<Value> {
        let value = self.kv.get(key)?;
        if value.expired(self.now_ms) {
            self.saw_expired(&value);
            return None;
        }
        Some(value)
    }

    fn saw_expired(&mut self, value: &Value) {
        self.expired_seen = self.expired_seen.max(value.expires_at.unwrap_or(0));
    }

    /// The string at `key`, with its expiry; WRONGTYPE for another type.
    pub fn string(&mut self, key: &[u8]) -> Result<Option<(Bytes, Option<u64>)>, Frame> {
        match self.live(key) {
            None => Ok(None),
            Some(Value {
                data: Data::Str(b),
                expires_at,
            }) => Ok(Some((b, expires_at))),
            Some(_) => Err(wrong_type()),
        }
    }

    /// The string at `key`; WRONGTYPE for another type.
    pub fn str(&mut self, key: &[u8]) -> Result<Option<Bytes>, Frame> {
        Ok(self.string(key)?.map(|(b, _)| b))
    }

    /// Stores a string without expiry.
    pub fn put_str(&mut self, key: &[u8], bytes: Bytes) {
        self.kv.put(key, Some(Value::string(bytes)));
    }

    /// Stores a string keeping `expires_at`.
    pub fn put_str_ttl(&mut self, key: &[u8], bytes: Bytes, expires_at: Option<u64>) {
        self.kv.put(
            key,
            Some(Value {
                data: Data::Str(bytes),
                expires_at,
            }),
        );
    }

    /// Deletes `key`; true if it held a live value.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        match self.kv.get(key) {
            Some(v) => {
                self.kv.put(key, None);
                if v.expired(self.now_ms) {
                    self.saw_expired(&v);
                    return false;
                }
                true
            }
            None => false,
        }
    }
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

/// Whether executing `op` (one operation or a batch) reads nothing from storage: every
/// operation in it is one whose effect and reply do not depend on what its keys hold (see
/// [`super::string::reads_nothing`]). Anything undecodable reads, to be safe.
pub fn reads_nothing(op: &[u8]) -> bool {
    let single = |op: &[u8]| {
        op.first()
            .and_then(|&c| Code::from_u8(c))
            .is_some_and(|code| {
                super::string::reads_nothing(code, op.get(1).copied().unwrap_or(u8::MAX))
            })
    };
    if op.first() != Some(&BATCH) {
        return single(op);
    }
    let Some(count) = op
        .get(1..5)
        .and_then(|c| c.try_into().ok())
        .map(u32::from_le_bytes)
    else {
        return false;
    };
    split_ops(&op[5..], count)
        .into_iter()
        .all(|sub| sub.is_some_and(single))
}

/// Whether `op`'s answer is time itself (TTL, PTTL, EXPIRETIME, PEXPIRETIME), not just a
/// value that time may have expired.
pub fn answers_with_time(op: &[u8]) -> bool {
    op.first().and_then(|&c| Code::from_u8(c)) == Some(Code::Ttl)
}

/// Splits a batch (or a list of ops encoded the same way without the opcode) into its ops.
pub fn split_ops(mut rest: &[u8], count: u32) -> Vec<Option<&[u8]>> {
    let mut out = Vec::new();
    for _ in 0..count {
        let len = rest
            .get(..4)
            .and_then(|c| c.try_into().ok())
            .map_or(usize::MAX, |c| u32::from_le_bytes(c) as usize);
        match rest.get(4..4usize.saturating_add(len)) {
            Some(sub) => {
                out.push(Some(sub));
                rest = &rest[4 + len..];
            }
            None => {
                out.push(None);
                rest = &[];
            }
        }
    }
    out
}

/// The reply to one client command, and what it observed of time.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub frame: Frame,
    /// The latest expiry (Unix ms) of a value the command found expired, 0 if none. Such a
    /// reply says time passed that point; it is sent only once no node's clock can still be
    /// before it (see `docs/redis-commands.md`, "Expiry and the clock").
    pub expired_seen: u64,
}

/// Runs a single or batched op at time `now_ms` (the executeAt's); one reply per client
/// command, in order.
pub fn execute_all(op: &[u8], kv: &mut dyn KvView, now_ms: u64) -> Vec<Executed> {
    let mut ctx = Ctx {
        kv,
        now_ms,
        expired_seen: 0,
        in_exec: false,
    };
    let run = |sub: Option<&[u8]>, ctx: &mut Ctx<'_>| {
        ctx.expired_seen = 0;
        let frame = match sub {
            Some(sub) => execute(sub, ctx),
            None => Frame::error("ERR internal: undecodable batch"),
        };
        Executed {
            frame,
            expired_seen: ctx.expired_seen,
        }
    };
    if op.first() != Some(&BATCH) {
        return vec![run(Some(op), &mut ctx)];
    }
    let Some(count) = op
        .get(1..5)
        .and_then(|c| c.try_into().ok())
        .map(u32::from_le_bytes)
    else {
        return vec![run(None, &mut ctx)];
    };
    split_ops(&op[5..], count)
        .into_iter()
        .map(|sub| run(sub, &mut ctx))
        .collect()
}

/// Runs `op` and returns the client's reply. Deterministic: the same op on the same state at
/// the same `now_ms` gives the same writes and reply at every replica.
pub fn execute(op: &[u8], ctx: &mut Ctx<'_>) -> Frame {
    let Some((code, flags, args)) = decode(op) else {
        return undecodable();
    };
    let result = match code {
        Code::Get
        | Code::Set
        | Code::GetSet
        | Code::GetDel
        | Code::MGet
        | Code::MSet
        | Code::MSetNx
        | Code::IncrBy
        | Code::IncrByFloat
        | Code::Append
        | Code::Strlen
        | Code::GetRange
        | Code::SetRange
        | Code::SetNx
        | Code::GetEx
        | Code::SetBit
        | Code::GetBit
        | Code::BitCount => super::string::exec(code, flags, &args, ctx),
        Code::Lcs => super::lcs::exec(flags, &args, ctx),
        Code::Expire | Code::Ttl | Code::Persist | Code::PurgeExpired => {
            super::expire::exec(code, flags, &args, ctx)
        }
        Code::Del
        | Code::Exists
        | Code::Type
        | Code::Rename
        | Code::Copy
        | Code::ObjectEncoding => super::keyspace::exec(code, flags, &args, ctx),
        Code::HSet
        | Code::HGet
        | Code::HMGet
        | Code::HDel
        | Code::HExists
        | Code::HLen
        | Code::HGetAll
        | Code::HKeys
        | Code::HVals
        | Code::HIncrBy
        | Code::HIncrByFloat
        | Code::HStrLen
        | Code::HScan => super::hash::exec(code, flags, &args, ctx),
        Code::Exec | Code::Watch => super::multi::exec(code, flags, &args, ctx),
    };
    result.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_numbered_in_table_order() {
        for (i, code) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, i + 1, "{code:?}");
            assert_eq!(Code::from_u8(*code as u8), Some(*code));
        }
        assert_eq!(Code::from_u8(0), None);
        assert_eq!(Code::from_u8(CODES.len() as u8 + 1), None);
    }
}
