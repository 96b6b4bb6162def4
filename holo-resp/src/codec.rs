//! A `tokio-util` codec over [`decode`] and [`encode`], for framed async sockets.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::{Limits, blank_prefix_len, decode};
use crate::encode::encode;
use crate::error::ProtocolError;
use crate::frame::{Frame, Version};

/// Why a framed RESP stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent bytes that are not RESP; the stream cannot continue.
    #[error("Protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection closed in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes frames under [`Limits`] and encodes them in the connection's [`Version`].
#[derive(Debug, Clone, Default)]
pub struct RespCodec {
    pub limits: Limits,
    pub version: Version,
}

impl RespCodec {
    pub fn new(limits: Limits, version: Version) -> Self {
        RespCodec { limits, version }
    }
}

impl Decoder for RespCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // Drop blank lines now, so a peer sending nothing else cannot grow the buffer.
        src.advance(blank_prefix_len(src));
        match decode(src, &self.limits)? {
            Some((frame, used)) => {
                src.advance(used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated),
        }
    }
}

impl Encoder<&Frame> for RespCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode(frame, self.version, dst);
        Ok(())
    }
}

impl Encoder<Frame> for RespCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode(&frame, self.version, dst);
        Ok(())
    }
}
