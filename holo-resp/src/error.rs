//! Why a byte stream is not valid RESP.

/// A protocol violation found while decoding. The stream cannot be resynchronised after one:
/// a server answers `-ERR Protocol error: <this message>` and closes the connection.
///
/// The messages follow Redis's wording where Redis has one, so client libraries and people
/// who know Redis recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A bulk length that is not `-1` or a non-negative decimal number.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An aggregate (array, map, set, push) length that is not `-1` or a non-negative number.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk string longer than [`crate::Limits::bulk_bytes_max`].
    #[error("bulk length {len} exceeds the limit of {max} bytes")]
    BulkTooLarge { len: u64, max: usize },
    /// An aggregate with more elements than [`crate::Limits::aggregate_len_max`].
    #[error("multibulk length {len} exceeds the limit of {max} elements")]
    AggregateTooLarge { len: u64, max: usize },
    /// A frame larger in all than [`crate::Limits::frame_bytes_max`].
    #[error("request larger than the limit of {max} bytes")]
    FrameTooLarge { max: usize },
    /// Aggregates nested deeper than [`crate::Limits::depth_max`].
    #[error("nesting deeper than {max} levels")]
    TooDeep { max: usize },
    /// An inline command line longer than [`crate::Limits::inline_bytes_max`].
    #[error("too big inline request")]
    InlineTooLong,
    /// A type line (simple string, error, number) longer than [`crate::Limits::inline_bytes_max`].
    #[error("too big line")]
    LineTooLong,
    /// A line or bulk payload not terminated by CRLF, or a bare CR or LF inside a line.
    #[error("expected CRLF")]
    ExpectedCrlf,
    /// An inline command with a quote that is never closed.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `:` frame whose line is not a signed 64-bit decimal integer.
    #[error("invalid integer")]
    InvalidInteger,
    /// A `,` frame whose line is not a floating-point number.
    #[error("invalid double")]
    InvalidDouble,
    /// A `#` frame whose line is not `t` or `f`.
    #[error("invalid boolean")]
    InvalidBoolean,
    /// A `(` frame whose line is not a decimal integer.
    #[error("invalid big number")]
    InvalidBigNumber,
    /// A `=` frame without its three-byte format and colon.
    #[error("invalid verbatim string")]
    InvalidVerbatim,
    /// A `_` frame with something on its line.
    #[error("invalid null")]
    InvalidNull,
    /// A type byte that RESP does not define, where a frame must start.
    #[error("unexpected byte '{}' where a frame must start", char::from(*.0).escape_default())]
    UnexpectedByte(u8),
}
