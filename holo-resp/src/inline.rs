//! Inline commands: a plain text line such as `SET key "hello world"`, as `telnet` sends.
//!
//! Arguments are split like Redis's `sdssplitargs`: whitespace separates arguments; double
//! quotes allow `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"` and `\xHH` escapes; single quotes allow
//! `\'`; a closing quote must be followed by whitespace or the end of the line.

use bytes::Bytes;

use crate::decode::Limits;
use crate::error::ProtocolError;
use crate::frame::Frame;

/// Parses one inline line from the front of `buf`. `Ok(None)` when the line is not complete.
/// An empty or blank line yields no arguments; the caller skips it.
pub(crate) fn parse(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Vec<Frame>, usize)>, ProtocolError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.inline_bytes_max {
            return Err(ProtocolError::InlineTooLong);
        }
        return Ok(None);
    };
    if lf > limits.inline_bytes_max {
        return Err(ProtocolError::InlineTooLong);
    }
    let line = buf[..lf].strip_suffix(b"\r").unwrap_or(&buf[..lf]);
    let args = split_args(line)?;
    Ok(Some((
        args.into_iter()
            .map(|a| Frame::Bulk(Bytes::from(a)))
            .collect(),
        lf + 1,
    )))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | 0)
}

fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let (arg, next) = one_arg(line, i)?;
        args.push(arg);
        i = next;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Double,
    Single,
}

/// One argument starting at `start`; returns it and the index after it.
fn one_arg(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), ProtocolError> {
    let mut arg = Vec::new();
    let mut quote = Quote::None;
    let mut i = start;
    loop {
        let Some(&b) = line.get(i) else {
            if quote != Quote::None {
                return Err(ProtocolError::UnbalancedQuotes);
            }
            return Ok((arg, i));
        };
        match quote {
            Quote::None => match b {
                _ if is_space(b) => return Ok((arg, i)),
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                _ => arg.push(b),
            },
            Quote::Double => match b {
                b'\\' => {
                    let (byte, used) = escape(&line[i + 1..]);
                    arg.push(byte);
                    i += used;
                }
                b'"' => {
                    closing_quote_ok(line, i)?;
                    quote = Quote::None;
                }
                _ => arg.push(b),
            },
            Quote::Single => match b {
                b'\\' if line.get(i + 1) == Some(&b'\'') => {
                    arg.push(b'\'');
                    i += 1;
                }
                b'\'' => {
                    closing_quote_ok(line, i)?;
                    quote = Quote::None;
                }
                _ => arg.push(b),
            },
        }
        i += 1;
    }
}

/// A closing quote must be followed by whitespace or the end of the line.
fn closing_quote_ok(line: &[u8], quote_at: usize) -> Result<(), ProtocolError> {
    match line.get(quote_at + 1) {
        Some(&b) if !is_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(()),
    }
}

/// The byte a backslash escape stands for, and how many bytes after the backslash it used.
fn escape(rest: &[u8]) -> (u8, usize) {
    match rest {
        [b'x', h, l, ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
            (hex_value(*h) << 4 | hex_value(*l), 3)
        }
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'b', ..] => (0x08, 1),
        [b'a', ..] => (0x07, 1),
        [other, ..] => (*other, 1),
        [] => (b'\\', 0),
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}
