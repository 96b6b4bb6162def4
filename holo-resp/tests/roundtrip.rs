//! Property tests: encode then decode gives the frame back, whole or fed byte by byte, and no
//! input of any shape makes the decoder panic.

use bytes::{Bytes, BytesMut};
use holo_resp::{Frame, Limits, Version, decode, encode};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Text without CR or LF, as simple strings and errors carry.
fn line_text() -> impl Strategy<Value = Bytes> {
    "[a-zA-Z0-9 _.:-]{0,24}".prop_map(Bytes::from)
}

fn leaf() -> impl Strategy<Value = Frame> {
    prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes(64).prop_map(Frame::Bulk),
        Just(Frame::Null),
        prop_oneof![
            any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan()),
            Just(f64::INFINITY)
        ]
        .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        ("[a-z]{3}", bytes(32)).prop_map(|(f, data)| {
            let f = f.as_bytes();
            Frame::Verbatim {
                format: [f[0], f[1], f[2]],
                data,
            }
        }),
        "-?[0-9]{1,40}".prop_map(|d| Frame::BigNumber(Bytes::from(d))),
        bytes(32).prop_map(Frame::BulkError),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// Frames that RESP2 carries unchanged.
fn resp2_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::Simple),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes(64).prop_map(Frame::Bulk),
        Just(Frame::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Frame::Array)
    })
}

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resp3_round_trips(frame in frame()) {
        let wire = encoded(&frame, Version::Resp3);
        let (decoded, used) = decode(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(used, wire.len());
    }

    #[test]
    fn resp2_round_trips(frame in resp2_frame()) {
        let wire = encoded(&frame, Version::Resp2);
        let (decoded, used) = decode(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(used, wire.len());
    }

    #[test]
    fn every_prefix_is_incomplete(frame in frame()) {
        let wire = encoded(&frame, Version::Resp3);
        for cut in 0..wire.len() {
            prop_assert_eq!(decode(&wire[..cut], &Limits::default()), Ok(None), "cut at {}", cut);
        }
    }

    #[test]
    fn pipelined_frames_decode_in_order(frames in proptest::collection::vec(frame(), 1..6)) {
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(encoded(f, Version::Resp3));
        }
        let mut rest = wire.as_slice();
        for f in &frames {
            let (decoded, used) = decode(rest, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(&decoded, f);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&input, &Limits::default());
        let tight = Limits { bulk_bytes_max: 8, aggregate_len_max: 4, depth_max: 3, inline_bytes_max: 16, frame_bytes_max: 48 };
        let _ = decode(&input, &tight);
    }

    #[test]
    fn mutated_frames_never_panic(frame in frame(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut wire = encoded(&frame, Version::Resp3);
        for (at, byte) in flips {
            let len = wire.len();
            wire[at % len] = byte;
        }
        if let Ok(Some((_, used))) = decode(&wire, &Limits::default()) {
            prop_assert!(used <= wire.len());
        }
    }
}

#[test]
fn resp2_downgrades_resp3_types() {
    let cases: Vec<(Frame, &[u8])> = vec![
        (Frame::Null, b"$-1\r\n"),
        (Frame::Boolean(true), b":1\r\n"),
        (Frame::Double(1.5), b"$3\r\n1.5\r\n"),
        (
            Frame::Map(vec![(Frame::bulk("k"), Frame::Integer(1))]),
            b"*2\r\n$1\r\nk\r\n:1\r\n",
        ),
        (Frame::Set(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n"),
        (
            Frame::Verbatim {
                format: *b"txt",
                data: Bytes::from("hi"),
            },
            b"$2\r\nhi\r\n",
        ),
        (Frame::BigNumber(Bytes::from("123")), b"$3\r\n123\r\n"),
        (Frame::BulkError(Bytes::from("ERR x")), b"-ERR x\r\n"),
    ];
    for (frame, wire) in cases {
        assert_eq!(encoded(&frame, Version::Resp2), wire, "{frame:?}");
    }
}

#[test]
fn resp3_encodings_are_canonical() {
    let cases: Vec<(Frame, &[u8])> = vec![
        (Frame::Null, b"_\r\n"),
        (Frame::Boolean(false), b"#f\r\n"),
        (Frame::Double(f64::NEG_INFINITY), b",-inf\r\n"),
        (Frame::Double(2.0), b",2.0\r\n"),
        (
            Frame::Verbatim {
                format: *b"txt",
                data: Bytes::from("hi"),
            },
            b"=6\r\ntxt:hi\r\n",
        ),
        (Frame::Map(vec![]), b"%0\r\n"),
        (Frame::Push(vec![Frame::bulk("m")]), b">1\r\n$1\r\nm\r\n"),
    ];
    for (frame, wire) in cases {
        assert_eq!(encoded(&frame, Version::Resp3), wire, "{frame:?}");
    }
}

#[test]
fn line_breaks_in_errors_are_replaced_on_the_wire() {
    let wire = encoded(&Frame::error("ERR bad\r\nkey"), Version::Resp2);
    assert_eq!(wire, b"-ERR bad  key\r\n");
}
