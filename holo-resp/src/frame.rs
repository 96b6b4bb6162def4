//! The RESP frame type.

use bytes::Bytes;

/// The protocol version of a connection. RESP2 is the default; `HELLO 3` switches to RESP3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Resp2,
    Resp3,
}

/// One RESP value, RESP2 and RESP3 alike.
///
/// Decoding maps RESP2's null bulk string (`$-1`) and null array (`*-1`) to [`Frame::Null`],
/// as RESP3 does.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`: a short status line, no CR or LF inside.
    Simple(Bytes),
    /// `-ERR message`: an error line; the first word is the error code (`ERR`, `WRONGTYPE`).
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe string.
    Bulk(Bytes),
    /// `_` in RESP3; `$-1` (or `*-1`) in RESP2.
    Null,
    /// `*N`
    Array(Vec<Frame>),
    /// `%N`: key/value pairs in order.
    Map(Vec<(Frame, Frame)>),
    /// `~N`
    Set(Vec<Frame>),
    /// `,3.14`
    Double(f64),
    /// `#t` / `#f`
    Boolean(bool),
    /// `=N\r\ntxt:...`: a string with a three-byte format hint (`txt`, `mkd`).
    Verbatim { format: [u8; 3], data: Bytes },
    /// `(12345678901234567890`: an integer of any size, kept as its decimal digits.
    BigNumber(Bytes),
    /// `!N`: a binary-safe error.
    BulkError(Bytes),
    /// `>N`: out-of-band data (pub/sub, invalidation).
    Push(Vec<Frame>),
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string from a static text.
    pub fn simple(text: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply. `message` starts with the error code, e.g. `ERR unknown command`.
    pub fn error(message: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(message.into()))
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// An array of bulk strings, the shape of every client command.
    pub fn command<I, T>(args: I) -> Frame
    where
        I: IntoIterator<Item = T>,
        T: Into<Bytes>,
    {
        Frame::Array(args.into_iter().map(|a| Frame::Bulk(a.into())).collect())
    }

    /// The bytes of a string-like frame (simple, bulk, verbatim, error, big number).
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b)
            | Frame::Bulk(b)
            | Frame::Error(b)
            | Frame::BulkError(b)
            | Frame::BigNumber(b)
            | Frame::Verbatim { data: b, .. } => Some(b),
            _ => None,
        }
    }

    /// True for `Error` and `BulkError`.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }
}
