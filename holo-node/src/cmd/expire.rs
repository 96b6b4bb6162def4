//! Expiry: EXPIRE and its variants, TTL and its variants, PERSIST, and the purge of expired
//! keys.
//!
//! Whether a key has expired is decided at the transaction's executeAt (see [`super::op`]):
//! an expired key is absent for every command from that point of the history on, at every
//! replica, whatever its own clock says. Expired values stay in storage until a purge
//! transaction ([`Code::PurgeExpired`], proposed in the background by the node holding the
//! controller lease) deletes them, again only if they have expired at its executeAt.

use bytes::Bytes;
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode, encode_all};
use super::{Parsed, Spec, expiry_arg};

const NX: u8 = 1;
const XX: u8 = 2;
const GT: u8 = 4;
const LT: u8 = 8;
const ABSOLUTE: u8 = 16;

const IN_MS: u8 = 1;
const AS_TIME: u8 = 2;

pub fn parse_expire(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let seconds = matches!(spec.name, "expire" | "expireat");
    let absolute = spec.name.ends_with("at");
    let mut flags = if absolute { ABSOLUTE } else { 0 };
    for opt in &rest[2..] {
        flags |= match opt.to_ascii_uppercase().as_slice() {
            b"NX" => NX,
            b"XX" => XX,
            b"GT" => GT,
            b"LT" => LT,
            _ => {
                return Parsed::Reply(Frame::error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        };
    }
    if flags & NX != 0 && flags & (XX | GT | LT) != 0 {
        return Parsed::Reply(Frame::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flags & GT != 0 && flags & LT != 0 {
        return Parsed::Reply(Frame::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let ms = match expiry_arg(spec.name, &rest[1], seconds, absolute, true) {
        Ok(ms) => ms,
        Err(e) => return Parsed::Reply(e),
    };
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::Expire, flags, &[&rest[0], &ms.to_le_bytes()]),
        false,
    )
}

pub fn parse_ttl(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let flags = match spec.name {
        "ttl" => 0,
        "pttl" => IN_MS,
        "expiretime" => AS_TIME,
        _ => IN_MS | AS_TIME,
    };
    Parsed::read(vec![rest[0].clone()], encode(Code::Ttl, flags, &[&rest[0]]))
}

pub fn parse_persist(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::Persist, 0, &[&rest[0]]),
        false,
    )
}

/// The op that deletes those of `keys` that have expired at its executeAt.
pub fn purge_op(keys: &[Bytes]) -> Bytes {
    encode_all(Code::PurgeExpired, 0, keys)
}

pub fn exec(code: Code, flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    if code == Code::PurgeExpired {
        let mut purged = 0;
        for key in &args.0 {
            if ctx.kv.get(key).is_some_and(|v| v.expired(ctx.now_ms)) {
                ctx.kv.put(key, None);
                purged += 1;
            }
        }
        return Ok(Frame::Integer(purged));
    }
    let key = args.at(0)?;
    if code == Code::Expire {
        args.int(1)?;
    }
    let Some(mut value) = ctx.live(key) else {
        return Ok(Frame::Integer(match code {
            Code::Ttl => -2,
            _ => 0,
        }));
    };
    Ok(match code {
        Code::Ttl => match value.expires_at {
            None => Frame::Integer(-1),
            Some(at) => {
                let shown = if flags & AS_TIME != 0 {
                    at
                } else {
                    at.saturating_sub(ctx.now_ms)
                };
                let shown = shown.min(i64::MAX as u64);
                Frame::Integer(if flags & IN_MS != 0 {
                    shown as i64
                } else if flags & AS_TIME != 0 {
                    (shown / 1000) as i64
                } else {
                    // Rounded to the nearest second, as Redis does.
                    ((shown + 500) / 1000) as i64
                })
            }
        },
        Code::Persist => {
            if value.expires_at.take().is_none() {
                Frame::Integer(0)
            } else {
                ctx.kv.put(key, Some(value));
                Frame::Integer(1)
            }
        }
        Code::Expire => {
            let ms = args.int(1)?;
            let at = if flags & ABSOLUTE != 0 {
                i128::from(ms)
            } else {
                i128::from(ctx.now_ms) + i128::from(ms)
            };
            // No expiry counts as an infinite one for GT and LT, as in Redis.
            let current = value.expires_at.map_or(i128::MAX, i128::from);
            let refused = (flags & NX != 0 && value.expires_at.is_some())
                || (flags & XX != 0 && value.expires_at.is_none())
                || (flags & GT != 0 && at <= current)
                || (flags & LT != 0 && at >= current);
            if refused {
                return Ok(Frame::Integer(0));
            }
            if at <= i128::from(ctx.now_ms) {
                ctx.kv.put(key, None);
            } else {
                // Beyond i64 milliseconds nothing expires anyway; keep TTL replies in range.
                value.expires_at = Some(at.min(i128::from(i64::MAX)) as u64);
                ctx.kv.put(key, Some(value));
            }
            Frame::Integer(1)
        }
        _ => return Err(super::op::undecodable()),
    })
}
