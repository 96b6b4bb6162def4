//! Every class of malformed input gets its typed error, and never a panic.

use holo_resp::{Frame, Limits, ProtocolError, decode};

fn err(input: &[u8]) -> ProtocolError {
    match decode(input, &Limits::default()) {
        Err(e) => e,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn lengths() {
    use ProtocolError::*;
    assert_eq!(err(b"$-2\r\n"), InvalidBulkLength);
    assert_eq!(err(b"$abc\r\n"), InvalidBulkLength);
    assert_eq!(err(b"$\r\n"), InvalidBulkLength);
    assert_eq!(err(b"$+5\r\n"), InvalidBulkLength);
    assert_eq!(err(b"$99999999999999999999999\r\n"), InvalidBulkLength);
    assert_eq!(err(b"*-5\r\n"), InvalidMultibulkLength);
    assert_eq!(err(b"*1x\r\n"), InvalidMultibulkLength);
    assert_eq!(err(b"%-2\r\n"), InvalidMultibulkLength);
    assert_eq!(
        err(b"$536870913\r\n"),
        BulkTooLarge {
            len: 536_870_913,
            max: 536_870_912
        }
    );
    assert_eq!(
        err(b"*1048577\r\n"),
        AggregateTooLarge {
            len: 1_048_577,
            max: 1_048_576
        }
    );
    assert_eq!(
        err(b"%1048577\r\n"),
        AggregateTooLarge {
            len: 1_048_577,
            max: 1_048_576
        }
    );
}

#[test]
fn line_endings() {
    use ProtocolError::*;
    assert_eq!(err(b"+OK\n"), ExpectedCrlf);
    assert_eq!(err(b":1\n"), ExpectedCrlf);
    assert_eq!(err(b"*1\n$1\r\na\r\n"), ExpectedCrlf);
    assert_eq!(err(b"+O\rK\r\n"), ExpectedCrlf);
    assert_eq!(err(b"$3\r\nfoobar\r\n"), ExpectedCrlf);
    assert_eq!(err(b"$3\r\nfoo\n\n"), ExpectedCrlf);
    assert_eq!(err(b"*1\r\n$1\r\na\n\r"), ExpectedCrlf);
}

#[test]
fn scalar_contents() {
    use ProtocolError::*;
    assert_eq!(err(b":12a\r\n"), InvalidInteger);
    assert_eq!(err(b":\r\n"), InvalidInteger);
    assert_eq!(err(b":9223372036854775808\r\n"), InvalidInteger);
    assert_eq!(err(b":--1\r\n"), InvalidInteger);
    assert_eq!(err(b",abc\r\n"), InvalidDouble);
    assert_eq!(err(b",\r\n"), InvalidDouble);
    assert_eq!(err(b"#x\r\n"), InvalidBoolean);
    assert_eq!(err(b"#\r\n"), InvalidBoolean);
    assert_eq!(err(b"_x\r\n"), InvalidNull);
    assert_eq!(err(b"(12a\r\n"), InvalidBigNumber);
    assert_eq!(err(b"(\r\n"), InvalidBigNumber);
    assert_eq!(err(b"=2\r\nab\r\n"), InvalidVerbatim);
    assert_eq!(err(b"=5\r\ntxtab\r\n"), InvalidVerbatim);
    assert_eq!(err(b"=-1\r\n"), InvalidVerbatim);
    assert_eq!(err(b"*1\r\n?\r\n"), UnexpectedByte(b'?'));
    assert_eq!(err(b"*2\r\n:1\r\nhello\r\n"), UnexpectedByte(b'h'));
}

#[test]
fn edge_values_that_are_valid() {
    let ok = |input: &[u8]| decode(input, &Limits::default()).unwrap().unwrap().0;
    assert_eq!(ok(b":-9223372036854775808\r\n"), Frame::Integer(i64::MIN));
    assert_eq!(ok(b":9223372036854775807\r\n"), Frame::Integer(i64::MAX));
    assert_eq!(ok(b"$0\r\n\r\n"), Frame::bulk(""));
    assert_eq!(ok(b"$-1\r\n"), Frame::Null);
    assert_eq!(ok(b"*-1\r\n"), Frame::Null);
    assert_eq!(ok(b"*0\r\n"), Frame::Array(vec![]));
    assert_eq!(ok(b",inf\r\n"), Frame::Double(f64::INFINITY));
    assert_eq!(ok(b",1e3\r\n"), Frame::Double(1000.0));
    assert!(matches!(ok(b",nan\r\n"), Frame::Double(d) if d.is_nan()));
    assert_eq!(ok(b"$4\r\na\r\nb\r\n"), Frame::bulk("a\r\nb"));
}

#[test]
fn nesting_depth_is_capped() {
    let limits = Limits::default();
    let deep = |levels: usize| {
        let mut wire = b"*1\r\n".repeat(levels);
        wire.extend_from_slice(b":1\r\n");
        wire
    };
    assert!(decode(&deep(limits.depth_max), &limits).unwrap().is_some());
    assert_eq!(
        decode(&deep(limits.depth_max + 1), &limits),
        Err(ProtocolError::TooDeep { max: 64 })
    );
    // Far deeper than the stack could recurse: refused at the limit, no overflow.
    assert_eq!(
        decode(&deep(1_000_000), &limits),
        Err(ProtocolError::TooDeep { max: 64 })
    );
}

#[test]
fn truncated_frames_are_incomplete_not_errors() {
    for input in [
        &b"$5\r\nhel"[..],
        b"*2\r\n$1\r\na\r\n",
        b"+OK",
        b"+OK\r",
        b"$",
        b"*",
        b"%1\r\n:1\r\n",
        b"PING",
    ] {
        assert_eq!(
            decode(input, &Limits::default()),
            Ok(None),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn oversize_lines_are_refused_before_the_newline_arrives() {
    let limits = Limits::default();
    let long_inline = vec![b'a'; limits.inline_bytes_max + 1];
    assert_eq!(
        decode(&long_inline, &limits),
        Err(ProtocolError::InlineTooLong)
    );
    let mut long_simple = vec![b'+'];
    long_simple.extend(vec![b'a'; limits.inline_bytes_max + 1]);
    assert_eq!(
        decode(&long_simple, &limits),
        Err(ProtocolError::LineTooLong)
    );
    let mut long_length = b"$".to_vec();
    long_length.extend(vec![b'1'; limits.inline_bytes_max + 1]);
    assert_eq!(
        decode(&long_length, &limits),
        Err(ProtocolError::LineTooLong)
    );
}

#[test]
fn configured_limits_apply() {
    let limits = Limits {
        bulk_bytes_max: 4,
        aggregate_len_max: 2,
        depth_max: 1,
        inline_bytes_max: 8,
        frame_bytes_max: 64,
    };
    assert_eq!(
        decode(b"$5\r\n", &limits),
        Err(ProtocolError::BulkTooLarge { len: 5, max: 4 })
    );
    assert_eq!(
        decode(b"*3\r\n", &limits),
        Err(ProtocolError::AggregateTooLarge { len: 3, max: 2 })
    );
    assert_eq!(
        decode(b"*1\r\n*1\r\n:1\r\n", &limits),
        Err(ProtocolError::TooDeep { max: 1 })
    );
    assert_eq!(
        decode(b"GET 123456789\r\n", &limits),
        Err(ProtocolError::InlineTooLong)
    );
}

#[test]
fn a_frame_too_large_in_all_is_refused_from_the_header_that_says_so() {
    let limits = Limits {
        bulk_bytes_max: 44,
        frame_bytes_max: 64,
        ..Limits::default()
    };
    // Each bulk is within its own limit; the second one's header already says the frame
    // ends past 64 bytes, so none of its data is waited for.
    let first = format!("*2\r\n$30\r\n{}\r\n", "a".repeat(30));
    assert_eq!(decode(first.as_bytes(), &limits), Ok(None));
    let header = format!("{first}$30\r\n");
    assert_eq!(
        decode(header.as_bytes(), &limits),
        Err(ProtocolError::FrameTooLarge { max: 64 })
    );
    // Exactly at the limit is fine.
    let fits = format!("*2\r\n$3\r\nGET\r\n$44\r\n{}\r\n", "b".repeat(44));
    assert_eq!(fits.len(), 64);
    assert!(matches!(
        decode(fits.as_bytes(), &limits),
        Ok(Some((_, 64)))
    ));
    // Many small lines add up too.
    let lines = format!("*20\r\n{}", ":1\r\n".repeat(20));
    assert_eq!(
        decode(
            lines.as_bytes(),
            &Limits {
                frame_bytes_max: 64,
                ..Limits::default()
            }
        ),
        Err(ProtocolError::FrameTooLarge { max: 64 })
    );
}

#[test]
fn error_messages_use_redis_wording() {
    assert_eq!(
        ProtocolError::InvalidBulkLength.to_string(),
        "invalid bulk length"
    );
    assert_eq!(
        ProtocolError::InvalidMultibulkLength.to_string(),
        "invalid multibulk length"
    );
    assert_eq!(
        ProtocolError::UnbalancedQuotes.to_string(),
        "unbalanced quotes in request"
    );
    assert_eq!(
        ProtocolError::UnexpectedByte(b'\n').to_string(),
        "unexpected byte '\\n' where a frame must start"
    );
}
