//! The tokio-util codec: frames arriving in pieces, errors, and a connection closed mid-frame.

use bytes::BytesMut;
use holo_resp::{CodecError, Frame, RespCodec, Version};
use tokio_util::codec::{Decoder, Encoder};

#[test]
fn decodes_pipelined_frames_fed_in_pieces() {
    let mut codec = RespCodec::default();
    let wire = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in wire.chunks(3) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(
        frames,
        [
            Frame::command(["PING"]),
            Frame::command(["GET", "k"]),
            Frame::command(["PING"])
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn protocol_errors_and_truncation() {
    let mut codec = RespCodec::default();
    let mut buf = BytesMut::from(&b"*1\r\n$x\r\n"[..]);
    let e = codec.decode(&mut buf).unwrap_err();
    assert_eq!(e.to_string(), "Protocol error: invalid bulk length");
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPI"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(CodecError::Truncated)
    ));
    assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
}

#[test]
fn encodes_in_the_connection_version() {
    let mut out = BytesMut::new();
    RespCodec::new(Default::default(), Version::Resp2)
        .encode(Frame::Null, &mut out)
        .unwrap();
    RespCodec::new(Default::default(), Version::Resp3)
        .encode(&Frame::Null, &mut out)
        .unwrap();
    assert_eq!(&out[..], b"$-1\r\n_\r\n");
}

#[test]
fn blank_lines_are_dropped_from_the_buffer() {
    let mut codec = RespCodec::default();
    let mut buf = BytesMut::new();
    for _ in 0..10_000 {
        buf.extend_from_slice(b"\r\n");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty(), "blank lines must not accumulate");
    }
    buf.extend_from_slice(b" \t\r\n\nPI");
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(&buf[..], b"PI");
    buf.extend_from_slice(b"NG\r\n");
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Frame::command(["PING"]))
    );
    buf.extend_from_slice(b"\r\n");
    assert!(
        codec.decode_eof(&mut buf).unwrap().is_none(),
        "a trailing blank line is not a truncated frame"
    );
}
