//! MULTI/EXEC and WATCH as operations.
//!
//! A connection queues the commands between MULTI and EXEC (see `server`); EXEC proposes
//! them as one operation ([`Code::Exec`]) over every key they touch, so the whole block is
//! one Accord transaction: atomic and strictly serializable across ranges and nodes.
//!
//! WATCH reads a token per key ([`Code::Watch`]): the executeAt of the key's last write and
//! whether it was live. EXEC carries the tokens and runs nothing (replying null) if any key's
//! token at EXEC's executeAt differs: the key was written, deleted or expired since WATCH
//! read it, at any replica alike.

use bytes::{BufMut, Bytes};
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode, encode_all, execute};

/// The token of `key` at the operation's executeAt.
fn token(ctx: &mut Ctx<'_>, key: &[u8]) -> Bytes {
    let version = ctx.kv.version(key);
    let mut out = Vec::with_capacity(21);
    out.put_u64(version.epoch);
    out.put_u64(version.hlc);
    out.put_u16(version.flags);
    out.put_u16(version.node);
    out.put_u8(u8::from(ctx.live(key).is_some()));
    Bytes::from(out)
}

/// The op reading the WATCH tokens of `keys`.
pub fn watch_op(keys: &[Bytes]) -> Bytes {
    encode_all(Code::Watch, 0, keys)
}

/// The op running `ops` in order if every watched key still has its token.
pub fn exec_op(watched: &[(Bytes, Bytes)], ops: &[Bytes]) -> Bytes {
    let count = (watched.len() as u64).to_le_bytes();
    let mut args: Vec<&[u8]> = vec![&count];
    for (key, token) in watched {
        args.push(key);
        args.push(token);
    }
    args.extend(ops.iter().map(|o| &o[..]));
    encode(Code::Exec, 0, &args)
}

pub fn exec(code: Code, _flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    if code == Code::Watch {
        return Ok(Frame::Array(
            args.0.iter().map(|k| Frame::Bulk(token(ctx, k))).collect(),
        ));
    }
    if ctx.in_exec {
        return Err(super::op::undecodable());
    }
    let watched = usize::try_from(args.int(0)?).map_err(|_| super::op::undecodable())?;
    let ops_at = watched
        .checked_mul(2)
        .and_then(|n| n.checked_add(1))
        .filter(|n| *n <= args.len())
        .ok_or_else(super::op::undecodable)?;
    for pair in args.0[1..ops_at].chunks(2) {
        if token(ctx, pair[0]) != pair[1] {
            return Ok(Frame::Null);
        }
    }
    ctx.in_exec = true;
    let replies = args
        .from(ops_at)
        .iter()
        .map(|op| execute(op, ctx))
        .collect();
    ctx.in_exec = false;
    Ok(Frame::Array(replies))
}
