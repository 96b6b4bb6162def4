//! The RESP encoder.

use bytes::{BufMut, BytesMut};

use crate::frame::{Frame, Version};

/// Appends `frame` to `out` in the given protocol version.
///
/// RESP3-only frames are downgraded for RESP2 as Redis does: `Null` becomes `$-1`, maps
/// become flat arrays, sets and pushes arrays, booleans the integers 1 and 0, doubles, big
/// numbers and verbatim strings bulk strings, bulk errors simple errors.
///
/// Simple strings and errors cannot carry CR or LF on the wire; any that a message contains
/// (for example a user's key echoed in an error) are sent as spaces, as Redis does.
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) {
    match frame {
        Frame::Simple(s) => line(out, b'+', s),
        Frame::Error(s) => line(out, b'-', s),
        Frame::Integer(n) => integer(out, b':', *n),
        Frame::Bulk(b) => bulk(out, b'$', b),
        Frame::Null => match version {
            Version::Resp2 => out.put_slice(b"$-1\r\n"),
            Version::Resp3 => out.put_slice(b"_\r\n"),
        },
        Frame::Array(items) => sequence(out, b'*', items, version),
        Frame::Set(items) => sequence(out, resp3_or(version, b'~', b'*'), items, version),
        Frame::Push(items) => sequence(out, resp3_or(version, b'>', b'*'), items, version),
        Frame::Map(pairs) => map(out, pairs, version),
        Frame::Double(d) => double(out, *d, version),
        Frame::Boolean(b) => match version {
            Version::Resp2 => integer(out, b':', i64::from(*b)),
            Version::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        },
        Frame::Verbatim { format, data } => match version {
            Version::Resp2 => bulk(out, b'$', data),
            Version::Resp3 => {
                length(out, b'=', data.len() + 4);
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(data);
                out.put_slice(b"\r\n");
            }
        },
        Frame::BigNumber(digits) => match version {
            Version::Resp2 => bulk(out, b'$', digits),
            Version::Resp3 => line(out, b'(', digits),
        },
        Frame::BulkError(e) => match version {
            Version::Resp2 => line(out, b'-', e),
            Version::Resp3 => bulk(out, b'!', e),
        },
    }
}

fn resp3_or(version: Version, resp3: u8, resp2: u8) -> u8 {
    match version {
        Version::Resp2 => resp2,
        Version::Resp3 => resp3,
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn integer(out: &mut BytesMut, kind: u8, n: i64) {
    let mut digits = itoa::Buffer::new();
    line(out, kind, digits.format(n).as_bytes());
}

fn length(out: &mut BytesMut, kind: u8, n: usize) {
    let mut digits = itoa::Buffer::new();
    line(out, kind, digits.format(n).as_bytes());
}

fn bulk(out: &mut BytesMut, kind: u8, data: &[u8]) {
    length(out, kind, data.len());
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn sequence(out: &mut BytesMut, kind: u8, items: &[Frame], version: Version) {
    length(out, kind, items.len());
    for item in items {
        encode(item, version, out);
    }
}

fn map(out: &mut BytesMut, pairs: &[(Frame, Frame)], version: Version) {
    match version {
        Version::Resp2 => length(out, b'*', pairs.len() * 2),
        Version::Resp3 => length(out, b'%', pairs.len()),
    }
    for (key, value) in pairs {
        encode(key, version, out);
        encode(value, version, out);
    }
}

fn double(out: &mut BytesMut, d: f64, version: Version) {
    let text = if d.is_nan() {
        "nan".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // `{:?}` is the shortest text that parses back to the same value.
        format!("{d:?}")
    };
    match version {
        Version::Resp2 => bulk(out, b'$', text.as_bytes()),
        Version::Resp3 => line(out, b',', text.as_bytes()),
    }
}
