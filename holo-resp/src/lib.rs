//! RESP2 and RESP3 for HoloStore: frames, a pure incremental decoder and an encoder.
//!
//! This crate owns the Redis wire format and nothing else. It is a leaf: no I/O, no async
//! runtime (the optional `codec` feature adds a `tokio-util` adapter). Both the server
//! (`holo-node`) and the harness client (`holo-harness`) use it, so both sides of every test
//! speak through the same code.
//!
//! # Decoding
//! [`decode`] reads one frame from the front of a byte slice. It returns `Ok(None)` when the
//! slice holds only part of a frame (a normal outcome: read more and call again), the frame and
//! the number of bytes it used when it is complete, or a [`ProtocolError`] when the bytes can
//! never become a valid frame. A frame split at any byte boundary decodes the same.
//!
//! Every length a peer declares is checked against [`Limits`] before anything is allocated.
//! A first pass over the input validates the frame without copying or allocating; only a
//! complete, valid frame is then built, with aggregates reserving at most 1,024 elements up
//! front. So a hostile or broken peer cannot make the decoder reserve memory it never sends,
//! and a large frame arriving in many reads is scanned per read, not copied per read.
//!
//! Lines that do not start with a RESP type byte are inline commands (as typed in
//! `telnet`), split into arguments like Redis does, quotes included.
//!
//! # Encoding
//! [`encode`] appends a frame to a `BytesMut` in the requested [`Version`]; RESP3-only types
//! are downgraded to their RESP2 forms (maps to flat arrays, booleans to integers, ...) when
//! the connection speaks RESP2.
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use holo_resp::{decode, encode, Frame, Limits, Version};
//!
//! let limits = Limits::default();
//! // Half a command: not an error, just not complete yet.
//! assert_eq!(decode(b"*2\r\n$3\r\nGET\r\n$1", &limits), Ok(None));
//! let (frame, used) = decode(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &limits).unwrap().unwrap();
//! assert_eq!(frame, Frame::command(["GET", "k"]));
//! assert_eq!(used, 20);
//! // Garbage is a typed error, never a panic.
//! assert!(decode(b"$-5\r\n", &limits).is_err());
//!
//! let mut out = BytesMut::new();
//! encode(&Frame::Null, Version::Resp2, &mut out);
//! encode(&Frame::Null, Version::Resp3, &mut out);
//! assert_eq!(&out[..], b"$-1\r\n_\r\n");
//! ```

mod decode;
mod encode;
mod error;
mod frame;
mod inline;

#[cfg(feature = "codec")]
mod codec;

#[cfg(feature = "codec")]
pub use codec::{CodecError, RespCodec};
pub use decode::{Limits, blank_prefix_len, decode};
pub use encode::encode;
pub use error::ProtocolError;
pub use frame::{Frame, Version};
