//! Commands on keys whatever their type: DEL, UNLINK, EXISTS, TOUCH, TYPE, RENAME,
//! RENAMENX, COPY, OBJECT ENCODING.

use bytes::Bytes;
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode, encode_all};
use super::{Parsed, Spec, syntax_error};

const NX: u8 = 1;
const REPLACE: u8 = 2;

pub fn parse_del(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::write(rest.to_vec(), encode_all(Code::Del, 0, rest), false)
}

pub fn parse_exists(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::read(rest.to_vec(), encode_all(Code::Exists, 0, rest))
}

pub fn parse_type(_: &Spec, rest: &[Bytes]) -> Parsed {
    Parsed::read(vec![rest[0].clone()], encode(Code::Type, 0, &[&rest[0]]))
}

pub fn parse_rename(spec: &Spec, rest: &[Bytes]) -> Parsed {
    let flags = if spec.name == "renamenx" { NX } else { 0 };
    Parsed::write(
        rest.to_vec(),
        encode(Code::Rename, flags, &[&rest[0], &rest[1]]),
        false,
    )
}

pub fn parse_copy(_: &Spec, rest: &[Bytes]) -> Parsed {
    let mut flags = 0;
    let mut i = 2;
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => flags |= REPLACE,
            b"DB" if i + 1 < rest.len() => {
                if &rest[i + 1][..] != b"0" {
                    return Parsed::Reply(Frame::error("ERR DB index is out of range"));
                }
                i += 1;
            }
            _ => return Parsed::Reply(syntax_error()),
        }
        i += 1;
    }
    Parsed::write(
        vec![rest[1].clone()],
        encode(Code::Copy, flags, &[&rest[0], &rest[1]]),
        false,
    )
    .also_reads(&rest[0])
}

pub fn parse_object(_: &Spec, rest: &[Bytes]) -> Parsed {
    match (rest[0].to_ascii_uppercase().as_slice(), rest.len()) {
        (b"ENCODING", 2) => Parsed::read(
            vec![rest[1].clone()],
            encode(Code::ObjectEncoding, 0, &[&rest[1]]),
        ),
        (b"HELP", 1) => Parsed::Reply(Frame::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
            ]
            .iter()
            .map(|l| Frame::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
        )),
        (sub, _) => Parsed::Reply(Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        ))),
    }
}

pub fn exec(code: Code, flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    Ok(match code {
        Code::Del => {
            let removed = args.0.iter().filter(|k| ctx.delete(k)).count();
            Frame::Integer(removed as i64)
        }
        Code::Exists => {
            Frame::Integer(args.0.iter().filter(|k| ctx.live(k).is_some()).count() as i64)
        }
        Code::Type => Frame::Simple(Bytes::from_static(
            ctx.live(args.at(0)?)
                .map_or("none", |v| v.type_name())
                .as_bytes(),
        )),
        Code::ObjectEncoding => match ctx.live(args.at(0)?) {
            Some(v) => Frame::Bulk(Bytes::from_static(v.encoding().as_bytes())),
            None => Frame::Null,
        },
        Code::Rename => {
            let (from, to) = (args.at(0)?, args.at(1)?);
            let Some(value) = ctx.live(from) else {
                return Err(Frame::error("ERR no such key"));
            };
            if flags & NX != 0 && ctx.live(to).is_some() {
                return Ok(Frame::Integer(0));
            }
            if from != to {
                ctx.kv.put(to, Some(value));
                ctx.kv.put(from, None);
            }
            if flags & NX != 0 {
                Frame::Integer(1)
            } else {
                Frame::ok()
            }
        }
        Code::Copy => {
            let (from, to) = (args.at(0)?, args.at(1)?);
            let Some(value) = ctx.live(from) else {
                return Ok(Frame::Integer(0));
            };
            if from == to || (flags & REPLACE == 0 && ctx.live(to).is_some()) {
                return Ok(Frame::Integer(0));
            }
            ctx.kv.put(to, Some(value));
            Frame::Integer(1)
        }
        _ => return Err(super::op::undecodable()),
    })
}
