//! Strings: GET, SET (with its options), the counters, ranges and bits.

use bytes::Bytes;
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode, encode_all};
use super::{Parsed, Spec, expiry_arg, not_integer, parse_f64, parse_i64, syntax_error};

/// The value size limit of Redis (`proto-max-bulk-len` default) for APPEND and SETRANGE.
pub const MAX_STRING_BYTES: usize = 512 * 1024 * 1024;

const NX: u8 = 1;
const XX: u8 = 2;
const GET: u8 = 4;
const KEEPTTL: u8 = 8;
/// Argument 2 is an expiry in milliseconds from executeAt.
pub const TTL_RELATIVE: u8 = 16;
/// Argument 2 is an expiry as a Unix time in milliseconds.
pub const TTL_ABSOLUTE: u8 = 32;
const PERSIST: u8 = 64;

fn too_big() -> Frame {
    Frame::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// The expiry an op's flags and argument give at `now_ms`.
pub fn expiry_at(flags: u8, arg: Option<i64>, now_ms: u64) -> Option<u64> {
    let ms = arg?.max(0) as u64;
    if flags & TTL_RELATIVE != 0 {
        Some(now_ms.saturating_add(ms).min(i64::MAX as u64))
    } else if flags & TTL_ABSOLUTE != 0 {
        Some(ms)
    } else {
        None
    }
}

/// Parses an `EX s | PX ms | EXAT s | PXAT ms` option at `opts[i]` into the flag and the
/// millisecond argument.
fn ttl_option(name: &str, opts: &[Bytes], i: usize) -> Result<(u8, i64), Frame> {
    let unit = opts[i].to_ascii_uppercase();
    let Some(arg) = opts.get(i + 1) else {
        return Err(syntax_error());
    };
    let (seconds, absolute) = match unit.as_slice() {
        b"EX" => (true, false),
        b"PX" => (false, false),
        b"EXAT" => (true, true),
        _ => (false, true),
    };
    let ms = expiry_arg(name, arg, seconds, absolute, false)?;
    Ok((if absolute { TTL_ABSOLUTE } else { TTL_RELATIVE }, ms))
}

pub fn parse_get(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let code = match spec.name {
        "get" => Code::Get,
        _ => Code::Strlen,
    };
    Parsed::read(vec![rest[0].clone()], encode(code, 0, &[&rest[0]]))
}

pub fn parse_set(_: &Spec, rest: &[Bytes]) -> Parsed {
    let mut flags = 0;
    let mut ttl = None;
    let mut i = 2;
    while i < rest.len() {
        let opt = rest[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" if flags & XX == 0 => flags |= NX,
            b"XX" if flags & NX == 0 => flags |= XX,
            b"GET" => flags |= GET,
            b"KEEPTTL" if ttl.is_none() => flags |= KEEPTTL,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if ttl.is_none() && flags & KEEPTTL == 0 => {
                match ttl_option("set", rest, i) {
                    Ok((f, ms)) => {
                        flags |= f;
                        ttl = Some(ms);
                    }
                    Err(e) => return Parsed::Reply(e),
                }
                i += 1;
            }
            _ => return Parsed::Reply(syntax_error()),
        }
        i += 1;
    }
    let ms = ttl.map(i64::to_le_bytes);
    let mut args: Vec<&[u8]> = vec![&rest[0], &rest[1]];
    if let Some(ms) = &ms {
        args.push(ms);
    }
    let blind = flags & (NX | XX | GET) == 0;
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::Set, flags, &args),
        blind,
    )
}

/// SETEX and PSETEX: SET with EX or PX.
pub fn parse_setex(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let ms = match expiry_arg(spec.name, &rest[1], spec.name == "setex", false, false) {
        Ok(ms) => ms,
        Err(e) => return Parsed::Reply(e),
    };
    let op = encode(
        Code::Set,
        TTL_RELATIVE,
        &[&rest[0], &rest[2], &ms.to_le_bytes()],
    );
    Parsed::write(vec![rest[0].clone()], op, true)
}

pub fn parse_getex(_: &Spec, rest: &[Bytes]) -> Parsed {
    let mut flags = 0;
    let mut ms = None;
    match rest.get(1).map(|o| o.to_ascii_uppercase()).as_deref() {
        None => {}
        Some(b"PERSIST") if rest.len() == 2 => flags = PERSIST,
        Some(b"EX" | b"PX" | b"EXAT" | b"PXAT") if rest.len() == 3 => {
            match ttl_option("getex", rest, 1) {
                Ok((f, m)) => {
                    flags = f;
                    ms = Some(m.to_le_bytes());
                }
                Err(e) => return Parsed::Reply(e),
            }
        }
        Some(_) => return Parsed::Reply(syntax_error()),
    }
    let mut args: Vec<&[u8]> = vec![&rest[0]];
    if let Some(ms) = &ms {
        args.push(ms);
    }
    let op = encode(Code::GetEx, flags, &args);
    if flags == 0 {
        Parsed::read(vec![rest[0].clone()], op)
    } else {
        Parsed::write(vec![rest[0].clone()], op, false)
    }
}

pub fn parse_key_value(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let code = match spec.name {
        "setnx" => Code::SetNx,
        "getset" => Code::GetSet,
        _ => Code::Append,
    };
    Parsed::write(
        vec![rest[0].clone()],
        encode(code, 0, &[&rest[0], &rest[1]]),
        false,
    )
}

pub fn parse_getdel(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::GetDel, 0, &[&rest[0]]),
        false,
    )
}

pub fn parse_mget(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::read(rest.to_vec(), encode_all(Code::MGet, 0, rest))
}

pub fn parse_mset(spec: &Spec, rest: &[Bytes]) -> Parsed {
    if !rest.len().is_multiple_of(2) {
        return super::wrong_args(spec.name);
    }
    let code = if spec.name == "mset" {
        Code::MSet
    } else {
        Code::MSetNx
    };
    let keys = rest.iter().step_by(2).cloned().collect();
    Parsed::write(keys, encode_all(code, 0, rest), code == Code::MSet)
}

pub fn parse_incr(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let delta = match spec.name {
        "incr" => 1,
        "decr" => -1,
        _ => {
            let Some(delta) = parse_i64(&rest[1]) else {
                return Parsed::Reply(not_integer());
            };
            if spec.name == "decrby" {
                let Some(d) = delta.checked_neg() else {
                    return Parsed::Reply(Frame::error("ERR decrement would overflow"));
                };
                d
            } else {
                delta
            }
        }
    };
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::IncrBy, 0, &[&rest[0], &delta.to_le_bytes()]),
        false,
    )
}

pub fn parse_incrbyfloat(_: &Spec, rest: &[Bytes]) -> Parsed {
    if parse_f64(&rest[1]).is_none() {
        return Parsed::Reply(Frame::error("ERR value is not a valid float"));
    }
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::IncrByFloat, 0, &[&rest[0], &rest[1]]),
        false,
    )
}

pub fn parse_getrange(_: &Spec, rest: &[Bytes]) -> Parsed {
    let (Some(start), Some(end)) = (parse_i64(&rest[1]), parse_i64(&rest[2])) else {
        return Parsed::Reply(not_integer());
    };
    Parsed::read(
        vec![rest[0].clone()],
        encode(
            Code::GetRange,
            0,
            &[&rest[0], &start.to_le_bytes(), &end.to_le_bytes()],
        ),
    )
}

pub fn parse_setrange(_: &Spec, rest: &[Bytes]) -> Parsed {
    let offset = match parse_i64(&rest[1]) {
        Some(o) if o >= 0 => o,
        Some(_) => return Parsed::Reply(Frame::error("ERR offset is out of range")),
        None => return Parsed::Reply(not_integer()),
    };
    if offset as u64 + rest[2].len() as u64 > MAX_STRING_BYTES as u64 {
        return Parsed::Reply(too_big());
    }
    Parsed::write(
        vec![rest[0].clone()],
        encode(
            Code::SetRange,
            0,
            &[&rest[0], &offset.to_le_bytes(), &rest[2]],
        ),
        false,
    )
}

pub fn parse_setbit(_: &Spec, rest: &[Bytes]) -> Parsed {
    let offset = match parse_i64(&rest[1]) {
        Some(o) if (0..(MAX_STRING_BYTES as i64) * 8).contains(&o) => o,
        _ => {
            return Parsed::Reply(Frame::error(
                "ERR bit offset is not an integer or out of range",
            ));
        }
    };
    let bit: &[u8] = match &rest[2][..] {
        b"0" => b"0",
        b"1" => b"1",
        _ => {
            return Parsed::Reply(Frame::error("ERR bit is not an integer or out of range"));
        }
    };
    Parsed::write(
        vec![rest[0].clone()],
        encode(Code::SetBit, 0, &[&rest[0], &offset.to_le_bytes(), bit]),
        false,
    )
}

pub fn parse_getbit(_: &Spec, rest: &[Bytes]) -> Parsed {
    let Some(offset) = parse_i64(&rest[1]).filter(|o| *o >= 0) else {
        return Parsed::Reply(Frame::error(
            "ERR bit offset is not an integer or out of range",
        ));
    };
    Parsed::read(
        vec![rest[0].clone()],
        encode(Code::GetBit, 0, &[&rest[0], &offset.to_le_bytes()]),
    )
}

/// BITCOUNT key [start end [BYTE | BIT]]: flag 1 for a range, 2 for bit units.
pub fn parse_bitcount(_: &Spec, rest: &[Bytes]) -> Parsed {
    let (flags, range) = match rest.len() {
        1 => (0, [0, 0]),
        3 | 4 => {
            let (Some(s), Some(e)) = (parse_i64(&rest[1]), parse_i64(&rest[2])) else {
                return Parsed::Reply(not_integer());
            };
            let unit = match rest.get(3).map(|u| u.to_ascii_uppercase()).as_deref() {
                None | Some(b"BYTE") => 0,
                Some(b"BIT") => 2,
                Some(_) => return Parsed::Reply(syntax_error()),
            };
            (1 | unit, [s, e])
        }
        _ => return Parsed::Reply(syntax_error()),
    };
    Parsed::read(
        vec![rest[0].clone()],
        encode(
            Code::BitCount,
            flags,
            &[&rest[0], &range[0].to_le_bytes(), &range[1].to_le_bytes()],
        ),
    )
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    v.map_or(Frame::Null, Frame::Bulk)
}

/// Redis's range normalisation (GETRANGE, BITCOUNT): `None` for an empty range.
fn normalise(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    (len > 0 && start <= end).then_some((start as usize, end as usize))
}

/// Formats a float the way INCRBYFLOAT replies: the shortest text that reads back the same,
/// without an exponent.
pub fn format_f64(v: f64) -> Bytes {
    let text = if v.fract() == 0.0 && v.abs() < 1e17 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    };
    Bytes::from(text)
}

/// Adds `incr` (text) to the float `current`; the error Redis gives otherwise.
pub fn add_float(current: Option<&[u8]>, incr: &[u8], not_float: &str) -> Result<f64, Frame> {
    let base = match current {
        None => 0.0,
        Some(v) => parse_f64(v).ok_or_else(|| Frame::error(not_float.to_string()))?,
    };
    let incr = parse_f64(incr).ok_or_else(|| Frame::error("ERR value is not a valid float"))?;
    let next = base + incr;
    if next.is_finite() {
        Ok(next)
    } else {
        Err(Frame::error("ERR increment would produce NaN or Infinity"))
    }
}

/// Whether the operation's effect and reply are the same whatever the keys hold: a plain SET
/// (with or without a new expiry) or MSET. The executor reads nothing for such a write.
pub fn reads_nothing(code: Code, flags: u8) -> bool {
    match code {
        Code::Set => flags & (NX | XX | GET | KEEPTTL) == 0,
        Code::MSet => true,
        _ => false,
    }
}

pub fn exec(code: Code, flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    let key = args.at(0)?;
    Ok(match code {
        Code::Get => bulk_or_null(ctx.str(key)?),
        Code::Strlen => Frame::Integer(ctx.str(key)?.map_or(0, |v| v.len() as i64)),
        Code::Set => {
            let check = flags & (NX | XX | GET | KEEPTTL) != 0;
            let old = if check { ctx.live(key) } else { None };
            let old_bytes = match (&old, flags & GET != 0) {
                (Some(v), true) => match &v.data {
                    super::value::Data::Str(b) => Some(b.clone()),
                    _ => return Err(super::op::wrong_type()),
                },
                _ => None,
            };
            let blocked = (flags & NX != 0 && old.is_some()) || (flags & XX != 0 && old.is_none());
            if !blocked {
                let ttl = args.0.get(2).map(|_| args.int(2)).transpose()?;
                let expires_at = if flags & KEEPTTL != 0 {
                    old.as_ref().and_then(|v| v.expires_at)
                } else {
                    expiry_at(flags, ttl, ctx.now_ms)
                };
                ctx.put_str_ttl(key, Bytes::copy_from_slice(args.at(1)?), expires_at);
            }
            match (flags & GET != 0, blocked) {
                (true, _) => bulk_or_null(old_bytes),
                (false, true) => Frame::Null,
                (false, false) => Frame::ok(),
            }
        }
        Code::GetEx => {
            let Some((value, old_expiry)) = ctx.string(key)? else {
                return Ok(Frame::Null);
            };
            if flags != 0 {
                let ttl = args.0.get(1).map(|_| args.int(1)).transpose()?;
                let expires_at = if flags & PERSIST != 0 {
                    None
                } else {
                    expiry_at(flags, ttl, ctx.now_ms)
                };
                if expires_at.is_some_and(|at| at <= ctx.now_ms) {
                    // Live, just read: deleting it needs no second look.
                    ctx.kv.put(key, None);
                } else if expires_at != old_expiry {
                    ctx.put_str_ttl(key, value.clone(), expires_at);
                }
            }
            Frame::Bulk(value)
        }
        Code::SetNx => {
            if ctx.live(key).is_some() {
                Frame::Integer(0)
            } else {
                ctx.put_str(key, Bytes::copy_from_slice(args.at(1)?));
                Frame::Integer(1)
            }
        }
        Code::GetSet => {
            let old = ctx.str(key)?;
            ctx.put_str(key, Bytes::copy_from_slice(args.at(1)?));
            bulk_or_null(old)
        }
        Code::GetDel => {
            let old = ctx.str(key)?;
            if old.is_some() {
                ctx.kv.put(key, None);
            }
            bulk_or_null(old)
        }
        Code::MGet => Frame::Array(
            args.0
                .iter()
                .map(|k| bulk_or_null(ctx.str(k).ok().flatten()))
                .collect(),
        ),
        Code::MSet | Code::MSetNx => {
            if args.is_empty() || !args.len().is_multiple_of(2) {
                return Err(super::op::undecodable());
            }
            if code == Code::MSetNx && args.0.chunks(2).any(|p| ctx.live(p[0]).is_some()) {
                return Ok(Frame::Integer(0));
            }
            for pair in args.0.chunks(2) {
                ctx.put_str(pair[0], Bytes::copy_from_slice(pair[1]));
            }
            if code == Code::MSet {
                Frame::ok()
            } else {
                Frame::Integer(1)
            }
        }
        Code::IncrBy => {
            let old = ctx.string(key)?;
            let current = match &old {
                None => 0,
                Some((v, _)) => parse_i64(v).ok_or_else(not_integer)?,
            };
            let Some(next) = current.checked_add(args.int(1)?) else {
                return Err(Frame::error("ERR increment or decrement would overflow"));
            };
            let mut buf = itoa::Buffer::new();
            let text = Bytes::copy_from_slice(buf.format(next).as_bytes());
            ctx.put_str_ttl(key, text, old.and_then(|(_, at)| at));
            Frame::Integer(next)
        }
        Code::IncrByFloat => {
            let old = ctx.string(key)?;
            let next = add_float(
                old.as_ref().map(|(v, _)| &v[..]),
                args.at(1)?,
                "ERR value is not a valid float",
            )?;
            let text = format_f64(next);
            ctx.put_str_ttl(key, text.clone(), old.and_then(|(_, at)| at));
            Frame::Bulk(text)
        }
        Code::Append => {
            let old = ctx.string(key)?;
            let patch = args.at(1)?;
            let mut value = old.as_ref().map(|(v, _)| v.to_vec()).unwrap_or_default();
            if value.len() + patch.len() > MAX_STRING_BYTES {
                return Err(too_big());
            }
            value.extend_from_slice(patch);
            let len = value.len() as i64;
            ctx.put_str_ttl(key, Bytes::from(value), old.and_then(|(_, at)| at));
            Frame::Integer(len)
        }
        Code::GetRange => {
            let value = ctx.str(key)?.unwrap_or_default();
            match normalise(args.int(1)?, args.int(2)?, value.len() as i64) {
                Some((s, e)) => Frame::Bulk(value.slice(s..=e)),
                None => Frame::Bulk(Bytes::new()),
            }
        }
        Code::SetRange => {
            let offset = usize::try_from(args.int(1)?).map_err(|_| super::op::undecodable())?;
            let patch = args.at(2)?;
            if offset.saturating_add(patch.len()) > MAX_STRING_BYTES {
                return Err(too_big());
            }
            let old = ctx.string(key)?;
            if patch.is_empty() {
                return Ok(Frame::Integer(old.map_or(0, |(v, _)| v.len() as i64)));
            }
            let mut value = old.as_ref().map(|(v, _)| v.to_vec()).unwrap_or_default();
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            let len = value.len() as i64;
            ctx.put_str_ttl(key, Bytes::from(value), old.and_then(|(_, at)| at));
            Frame::Integer(len)
        }
        Code::SetBit => {
            let offset = usize::try_from(args.int(1)?).map_err(|_| super::op::undecodable())?;
            if offset / 8 >= MAX_STRING_BYTES {
                return Err(super::op::undecodable());
            }
            let old = ctx.string(key)?;
            let mut value = old.as_ref().map(|(v, _)| v.to_vec()).unwrap_or_default();
            if value.len() <= offset / 8 {
                value.resize(offset / 8 + 1, 0);
            }
            let mask = 0x80u8 >> (offset % 8);
            let was = value[offset / 8] & mask != 0;
            if args.at(2)? == b"1" {
                value[offset / 8] |= mask;
            } else {
                value[offset / 8] &= !mask;
            }
            ctx.put_str_ttl(key, Bytes::from(value), old.and_then(|(_, at)| at));
            Frame::Integer(i64::from(was))
        }
        Code::GetBit => {
            let offset = usize::try_from(args.int(1)?).map_err(|_| super::op::undecodable())?;
            let value = ctx.str(key)?.unwrap_or_default();
            let bit = value
                .get(offset / 8)
                .is_some_and(|b| b & (0x80u8 >> (offset % 8)) != 0);
            Frame::Integer(i64::from(bit))
        }
        Code::BitCount => {
            let value = ctx.str(key)?.unwrap_or_default();
            if flags & 1 == 0 {
                return Ok(Frame::Integer(
                    value.iter().map(|b| i64::from(b.count_ones())).sum(),
                ));
            }
            let (start, end) = (args.int(1)?, args.int(2)?);
            if flags & 2 == 0 {
                return Ok(Frame::Integer(
                    normalise(start, end, value.len() as i64).map_or(0, |(s, e)| {
                        value[s..=e].iter().map(|b| i64::from(b.count_ones())).sum()
                    }),
                ));
            }
            let bits = value.len() as i64 * 8;
            Frame::Integer(normalise(start, end, bits).map_or(0, |(s, e)| {
                (s..=e)
                    .filter(|i| value[i / 8] & (0x80u8 >> (i % 8)) != 0)
                    .count() as i64
            }))
        }
        _ => return Err(super::op::undecodable()),
    })
}
