//! Hashes: HSET, HGET and the rest of the H commands. A hash is one stored value (see
//! [`super::value`]); a hash left without fields is deleted, as in Redis.

use std::collections::BTreeMap;

use bytes::Bytes;
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode, encode_all, wrong_type};
use super::string::{add_float, format_f64};
use super::value::{Data, Value};
use super::{Parsed, Spec, glob, not_integer, parse_i64, syntax_error};

const HMSET: u8 = 1;
const HSETNX: u8 = 2;
const NOVALUES: u8 = 1;

pub fn parse_hset(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let flags = match spec.name {
        "hmset" => HMSET,
        "hsetnx" => HSETNX,
        _ => 0,
    };
    if !(rest.len() - 1).is_multiple_of(2) || (flags == HSETNX && rest.len() != 3) {
        return super::wrong_args(spec.name);
    }
    Parsed::write(
        vec![rest[0].clone()],
        encode_all(Code::HSet, flags, rest),
        false,
    )
}

/// The read-only commands of one key and some fields.
pub fn parse_read(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let code = match spec.name {
        "hget" => Code::HGet,
        "hmget" => Code::HMGet,
        "hexists" => Code::HExists,
        "hlen" => Code::HLen,
        "hgetall" => Code::HGetAll,
        "hkeys" => Code::HKeys,
        "hvals" => Code::HVals,
        _ => Code::HStrLen,
    };
    Parsed::read(vec![rest[0].clone()], encode_all(code, 0, rest))
}

pub fn parse_hdel(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::write(
        vec![rest[0].clone()],
        encode_all(Code::HDel, 0, rest),
        false,
    )
}

pub fn parse_hincrby(spec: &Spec, rest: &[Bytes]) -> Parsed {
    if spec.name == "hincrby" {
        let Some(delta) = parse_i64(&rest[2]) else {
            return Parsed::Reply(not_integer());
        };
        return Parsed::write(
            vec![rest[0].clone()],
            encode(
                Code::HIncrBy,
                0,
                &[&rest[0], &rest[1], &delta.to_le_bytes()],
            ),
            false,
        );
    }
    if super::parse_f64(&rest[2]).is_none() {
        return Parsed::Reply(Frame::error("ERR value is not a valid float"));
    }
    Parsed::write(
        vec![rest[0].clone()],
        encode_all(Code::HIncrByFloat, 0, rest),
        false,
    )
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]. A hash is one value, so one
/// call returns every matching field and the cursor 0; COUNT is a hint in Redis too.
pub fn parse_hscan(_: &Spec, rest: &[Bytes]) -> Parsed {
    if parse_u64(&rest[1]).is_none() {
        return Parsed::Reply(Frame::error("ERR invalid cursor"));
    }
    let mut flags = 0;
    let mut pattern: &[u8] = b"*";
    let mut i = 2;
    while i < rest.len() {
        match (rest[i].to_ascii_uppercase().as_slice(), rest.get(i + 1)) {
            (b"MATCH", Some(p)) => {
                pattern = p;
                i += 1;
            }
            (b"COUNT", Some(c)) => {
                if parse_i64(c).is_none_or(|c| c < 1) {
                    return Parsed::Reply(if parse_i64(c).is_some() {
                        syntax_error()
                    } else {
                        not_integer()
                    });
                }
                i += 1;
            }
            (b"NOVALUES", _) => flags |= NOVALUES,
            _ => return Parsed::Reply(syntax_error()),
        }
        i += 1;
    }
    Parsed::read(
        vec![rest[0].clone()],
        encode(Code::HScan, flags, &[&rest[0], pattern]),
    )
}

fn parse_u64(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// A hash's fields and its expiry.
type Hash = (BTreeMap<Bytes, Bytes>, Option<u64>);

/// The hash at `key` and its expiry; WRONGTYPE for another type.
fn hash(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Hash>, Frame> {
    match ctx.live(key) {
        None => Ok(None),
        Some(Value {
            data: Data::Hash(h),
            expires_at,
        }) => Ok(Some((h, expires_at))),
        Some(_) => Err(wrong_type()),
    }
}

fn store(ctx: &mut Ctx<'_>, key: &[u8], h: BTreeMap<Bytes, Bytes>, expires_at: Option<u64>) {
    if h.is_empty() {
        ctx.kv.put(key, None);
    } else {
        ctx.kv.put(
            key,
            Some(Value {
                data: Data::Hash(h),
                expires_at,
            }),
        );
    }
}

fn bulk(b: &Bytes) -> Frame {
    Frame::Bulk(b.clone())
}

pub fn exec(code: Code, flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    let key = args.at(0)?;
    let fields = args.from(1);
    let field = || args.at(1);
    let (mut h, expires_at) = hash(ctx, key)?.unwrap_or_default();
    Ok(match code {
        Code::HSet => {
            if fields.is_empty() || !fields.len().is_multiple_of(2) {
                return Err(super::op::undecodable());
            }
            if flags == HSETNX && h.contains_key(fields[0]) {
                return Ok(Frame::Integer(0));
            }
            let mut added = 0;
            for pair in fields.chunks(2) {
                let old = h.insert(
                    Bytes::copy_from_slice(pair[0]),
                    Bytes::copy_from_slice(pair[1]),
                );
                added += i64::from(old.is_none());
            }
            store(ctx, key, h, expires_at);
            match flags {
                HMSET => Frame::ok(),
                _ => Frame::Integer(added),
            }
        }
        Code::HGet => h.get(field()?).map_or(Frame::Null, bulk),
        Code::HMGet => Frame::Array(
            fields
                .iter()
                .map(|f| h.get(*f).map_or(Frame::Null, bulk))
                .collect(),
        ),
        Code::HExists => Frame::Integer(i64::from(h.contains_key(field()?))),
        Code::HLen => Frame::Integer(h.len() as i64),
        Code::HStrLen => Frame::Integer(h.get(field()?).map_or(0, |v| v.len() as i64)),
        Code::HGetAll => Frame::Map(h.iter().map(|(f, v)| (bulk(f), bulk(v))).collect()),
        Code::HKeys => Frame::Array(h.keys().map(bulk).collect()),
        Code::HVals => Frame::Array(h.values().map(bulk).collect()),
        Code::HDel => {
            let removed = fields.iter().filter(|f| h.remove(**f).is_some()).count();
            if removed > 0 {
                store(ctx, key, h, expires_at);
            }
            Frame::Integer(removed as i64)
        }
        Code::HIncrBy => {
            let f = Bytes::copy_from_slice(field()?);
            let current = match h.get(&f) {
                None => 0,
                Some(v) => {
                    parse_i64(v).ok_or_else(|| Frame::error("ERR hash value is not an integer"))?
                }
            };
            let next = current
                .checked_add(args.int(2)?)
                .ok_or_else(|| Frame::error("ERR increment or decrement would overflow"))?;
            h.insert(f, Bytes::from(next.to_string()));
            store(ctx, key, h, expires_at);
            Frame::Integer(next)
        }
        Code::HIncrByFloat => {
            let f = Bytes::copy_from_slice(field()?);
            let next = add_float(
                h.get(&f).map(|v| &v[..]),
                args.at(2)?,
                "ERR hash value is not a float",
            )?;
            let text = format_f64(next);
            h.insert(f, text.clone());
            store(ctx, key, h, expires_at);
            Frame::Bulk(text)
        }
        Code::HScan => {
            let pattern = args.at(1)?;
            let mut items = Vec::new();
            for (f, v) in &h {
                if glob(pattern, f, false) {
                    items.push(bulk(f));
                    if flags & NOVALUES == 0 {
                        items.push(bulk(v));
                    }
                }
            }
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"0")),
                Frame::Array(items),
            ])
        }
        _ => return Err(super::op::undecodable()),
    })
}
