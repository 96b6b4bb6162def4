//! The pure, incremental RESP decoder.

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::frame::Frame;
use crate::inline;

/// Hard limits on what the decoder accepts, checked before any memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (also verbatim strings and bulk errors). Redis: `proto-max-bulk-len`.
    pub bulk_bytes_max: usize,
    /// Most elements in one array, set or push, and most pairs in one map.
    pub aggregate_len_max: usize,
    /// Deepest nesting of aggregates; a command (an array of bulks) has depth 1.
    pub depth_max: usize,
    /// Longest inline command line, and longest type line (`+...`, `:...`, lengths).
    pub inline_bytes_max: usize,
    /// Most bytes of one whole frame, however its parts add up: a frame whose lines and
    /// declared bulk lengths reach past this is refused as soon as that is known, so a
    /// reader never buffers more than this (plus one read) for a frame.
    pub frame_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            aggregate_len_max: 1024 * 1024,
            depth_max: 64,
            inline_bytes_max: 64 * 1024,
            frame_bytes_max: usize::MAX,
        }
    }
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(Some((frame, used)))` when a whole frame is present (`used` bytes of `buf`),
/// `Ok(None)` when `buf` holds only the start of a frame (read more, then call again with the
/// longer buffer), and `Err` when `buf` can never start a valid frame.
///
/// Empty inline lines before a frame are consumed as Redis does. A line that does not start
/// with a RESP type byte is an inline command and decodes to an array of bulk strings.
///
/// # Errors
/// A [`ProtocolError`] for malformed input or input that exceeds `limits`.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    // A first pass checks that a whole, valid frame is present without copying or allocating
    // anything, so a large frame arriving in many reads costs a scan per read, not a copy.
    let mut check = Parser {
        buf,
        pos: 0,
        limits,
        build: false,
    };
    match check.top() {
        Ok(_) => {}
        Err(Halt::Incomplete) => return Ok(None),
        Err(Halt::Invalid(e)) => return Err(e),
    }
    let mut parser = Parser {
        buf,
        pos: 0,
        limits,
        build: true,
    };
    match parser.top() {
        Ok(frame) => {
            debug_assert_eq!(parser.pos, check.pos, "both passes parse the same bytes");
            Ok(Some((frame, parser.pos)))
        }
        Err(Halt::Incomplete) => unreachable!("the check pass found a complete frame"),
        Err(Halt::Invalid(e)) => Err(e),
    }
}

/// How many bytes at the front of `buf` are blank inline lines (whitespace, then LF), which
/// [`decode`] skips. A framed reader drops them before decoding so a peer sending only blank
/// lines cannot grow its buffer.
pub fn blank_prefix_len(buf: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(lf) = buf[pos..].iter().position(|&b| b == b'\n') {
        if !buf[pos..pos + lf]
            .iter()
            .all(|&b| matches!(b, b' ' | b'\t' | b'\r'))
        {
            break;
        }
        pos += lf + 1;
    }
    pos
}

/// Why parsing stopped short of a frame.
enum Halt {
    Incomplete,
    Invalid(ProtocolError),
}

impl From<ProtocolError> for Halt {
    fn from(e: ProtocolError) -> Self {
        Halt::Invalid(e)
    }
}

type Step<T> = Result<T, Halt>;

/// The smallest encoding of any frame (`_\r\n`), used to bound preallocation.
const FRAME_BYTES_MIN: usize = 3;

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    /// False for the check pass: validate and measure, but copy and allocate nothing.
    build: bool,
}

impl<'a> Parser<'a> {
    fn top(&mut self) -> Step<Frame> {
        loop {
            let Some(&first) = self.buf.get(self.pos) else {
                return Err(Halt::Incomplete);
            };
            if is_type_byte(first) {
                return self.value(0);
            }
            let Some((args, used)) = inline::parse(&self.buf[self.pos..], self.limits)? else {
                return Err(Halt::Incomplete);
            };
            self.pos += used;
            if !args.is_empty() {
                return Ok(Frame::Array(args));
            }
        }
    }

    fn value(&mut self, depth: usize) -> Step<Frame> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Err(Halt::Incomplete);
        };
        self.pos += 1;
        match kind {
            b'+' => Ok(Frame::Simple(self.line_bytes()?)),
            b'-' => Ok(Frame::Error(self.line_bytes()?)),
            b':' => Ok(Frame::Integer(self.integer()?)),
            b'$' => Ok(self
                .bulk()?
                .map_or(Frame::Null, |b| Frame::Bulk(self.copy(b)))),
            b'!' => Ok(self
                .bulk()?
                .map_or(Frame::Null, |b| Frame::BulkError(self.copy(b)))),
            b'=' => self.verbatim(),
            b'*' => Ok(self.sequence(depth)?.map_or(Frame::Null, Frame::Array)),
            b'~' => Ok(self.sequence(depth)?.map_or(Frame::Null, Frame::Set)),
            b'>' => Ok(self.sequence(depth)?.map_or(Frame::Null, Frame::Push)),
            b'%' => self.map(depth),
            b',' => Ok(Frame::Double(parse_double(self.line()?)?)),
            b'#' => match self.line()? {
                b"t" => Ok(Frame::Boolean(true)),
                b"f" => Ok(Frame::Boolean(false)),
                _ => Err(ProtocolError::InvalidBoolean.into()),
            },
            b'(' => {
                let line = self.line()?;
                if !is_big_number(line) {
                    return Err(ProtocolError::InvalidBigNumber.into());
                }
                Ok(Frame::BigNumber(self.copy(line)))
            }
            b'_' => match self.line()? {
                b"" => Ok(Frame::Null),
                _ => Err(ProtocolError::InvalidNull.into()),
            },
            other => Err(ProtocolError::UnexpectedByte(other).into()),
        }
    }

    /// The rest of the current line, without its CRLF; the position moves past the CRLF.
    fn line(&mut self) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > self.limits.inline_bytes_max {
                return Err(ProtocolError::LineTooLong.into());
            }
            return Err(Halt::Incomplete);
        };
        if lf == 0 || rest[lf - 1] != b'\r' {
            return Err(ProtocolError::ExpectedCrlf.into());
        }
        let line = &rest[..lf - 1];
        if line.len() > self.limits.inline_bytes_max {
            return Err(ProtocolError::LineTooLong.into());
        }
        self.check_end(self.pos + lf + 1)?;
        if line.contains(&b'\r') {
            return Err(ProtocolError::ExpectedCrlf.into());
        }
        self.pos += lf + 1;
        Ok(line)
    }

    fn line_bytes(&mut self) -> Step<Bytes> {
        let line = self.line()?;
        Ok(self.copy(line))
    }

    /// Refuses a frame that would end past `frame_bytes_max`.
    fn check_end(&self, end: usize) -> Step<()> {
        let max = self.limits.frame_bytes_max;
        if end > max {
            return Err(ProtocolError::FrameTooLarge { max }.into());
        }
        Ok(())
    }

    /// A copy of `bytes` in the build pass; nothing in the check pass.
    fn copy(&self, bytes: &[u8]) -> Bytes {
        if self.build {
            Bytes::copy_from_slice(bytes)
        } else {
            Bytes::new()
        }
    }

    fn integer(&mut self) -> Step<i64> {
        parse_i64(self.line()?).ok_or_else(|| ProtocolError::InvalidInteger.into())
    }

    /// A declared length: `Ok(None)` for `-1`, the length otherwise.
    fn length(&mut self, invalid: ProtocolError) -> Step<Option<u64>> {
        let line = self.line()?;
        if line == b"-1" {
            return Ok(None);
        }
        match parse_u64(line) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid.into()),
        }
    }

    /// A bulk payload: `Ok(None)` for the RESP2 null bulk string.
    fn bulk(&mut self) -> Step<Option<&'a [u8]>> {
        let Some(len) = self.length(ProtocolError::InvalidBulkLength)? else {
            return Ok(None);
        };
        let max = self.limits.bulk_bytes_max;
        if len > max as u64 {
            return Err(ProtocolError::BulkTooLarge { len, max }.into());
        }
        let len = len as usize;
        self.check_end(self.pos.saturating_add(len).saturating_add(2))?;
        let rest = &self.buf[self.pos..];
        if rest.len() < 2 || rest.len() - 2 < len {
            return Err(Halt::Incomplete);
        }
        if &rest[len..len + 2] != b"\r\n" {
            return Err(ProtocolError::ExpectedCrlf.into());
        }
        self.pos += len + 2;
        Ok(Some(&rest[..len]))
    }

    fn verbatim(&mut self) -> Step<Frame> {
        let Some(data) = self.bulk()? else {
            return Err(ProtocolError::InvalidVerbatim.into());
        };
        if data.len() < 4 || data[3] != b':' {
            return Err(ProtocolError::InvalidVerbatim.into());
        }
        let format = [data[0], data[1], data[2]];
        Ok(Frame::Verbatim {
            format,
            data: self.copy(&data[4..]),
        })
    }

    /// Checks an aggregate's declared length and depth; returns the length, `None` for `-1`.
    fn aggregate_len(&mut self, depth: usize, per_item: u64) -> Step<Option<usize>> {
        let Some(len) = self.length(ProtocolError::InvalidMultibulkLength)? else {
            return Ok(None);
        };
        let max = self.limits.aggregate_len_max;
        if len > max as u64 {
            return Err(ProtocolError::AggregateTooLarge { len, max }.into());
        }
        if depth + 1 > self.limits.depth_max {
            return Err(ProtocolError::TooDeep {
                max: self.limits.depth_max,
            }
            .into());
        }
        let len = len as usize;
        // A declared length is never trusted for allocation: fail fast when the input cannot
        // possibly hold that many frames yet.
        let rest = (self.buf.len() - self.pos) as u64;
        if (len as u64)
            .saturating_mul(per_item)
            .saturating_mul(FRAME_BYTES_MIN as u64)
            > rest
        {
            return Err(Halt::Incomplete);
        }
        Ok(Some(len))
    }

    /// The starting capacity of an aggregate: none in the check pass, and never more than a
    /// modest amount up front (the vector grows as elements actually parse).
    fn capacity(&self, len: usize) -> usize {
        if self.build { len.min(1024) } else { 0 }
    }

    fn sequence(&mut self, depth: usize) -> Step<Option<Vec<Frame>>> {
        let Some(len) = self.aggregate_len(depth, 1)? else {
            return Ok(None);
        };
        let mut items = Vec::with_capacity(self.capacity(len));
        for _ in 0..len {
            let item = self.value(depth + 1)?;
            if self.build {
                items.push(item);
            }
        }
        Ok(Some(items))
    }

    fn map(&mut self, depth: usize) -> Step<Frame> {
        let Some(len) = self.aggregate_len(depth, 2)? else {
            return Ok(Frame::Null);
        };
        let mut pairs = Vec::with_capacity(self.capacity(len));
        for _ in 0..len {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            if self.build {
                pairs.push((key, value));
            }
        }
        Ok(Frame::Map(pairs))
    }
}

fn is_type_byte(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b':'
            | b'$'
            | b'*'
            | b'%'
            | b'~'
            | b','
            | b'#'
            | b'='
            | b'('
            | b'!'
            | b'>'
            | b'_'
    )
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A signed decimal integer that fits in `i64` (no sign other than a leading `-`).
pub(crate) fn parse_i64(line: &[u8]) -> Option<i64> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    let magnitude = parse_u64(digits)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidDouble)?;
    match text {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            text.parse().map_err(|_| ProtocolError::InvalidDouble)
        }
        _ => Err(ProtocolError::InvalidDouble),
    }
}

fn is_big_number(line: &[u8]) -> bool {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
