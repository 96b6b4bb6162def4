//! Inline commands, as `telnet` or `nc` send them.

use holo_resp::{Frame, Limits, ProtocolError, decode};

fn args(input: &[u8]) -> (Vec<String>, usize) {
    let (frame, used) = decode(input, &Limits::default()).unwrap().unwrap();
    let Frame::Array(items) = frame else {
        panic!("inline decodes to an array")
    };
    let args = items
        .iter()
        .map(|f| String::from_utf8_lossy(f.as_bytes().unwrap()).into_owned())
        .collect();
    (args, used)
}

#[test]
fn splits_on_whitespace() {
    assert_eq!(args(b"PING\r\n"), (vec!["PING".to_owned()], 6));
    assert_eq!(args(b"SET  k\tv\n").0, ["SET", "k", "v"]);
}

#[test]
fn skips_blank_lines() {
    assert_eq!(args(b"\r\n\n  \r\nPING\r\n"), (vec!["PING".to_owned()], 13));
    assert_eq!(decode(b"\r\n\r\n", &Limits::default()), Ok(None));
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(
        args(b"SET k \"hello world\"\r\n").0,
        ["SET", "k", "hello world"]
    );
    assert_eq!(
        args(b"SET k \"a\\x41\\n\\\"\"\r\n").0,
        ["SET", "k", "aA\n\""]
    );
    assert_eq!(args(b"SET k 'it\\'s'\r\n").0, ["SET", "k", "it's"]);
    assert_eq!(args(b"SET k \"\"\r\n").0, ["SET", "k", ""]);
}

#[test]
fn unbalanced_quotes_are_errors() {
    for input in [
        &b"SET k \"open\r\n"[..],
        b"SET k 'open\r\n",
        b"SET k \"a\"b\r\n",
        b"SET k \"\\\"\r\n",
    ] {
        assert_eq!(
            decode(input, &Limits::default()),
            Err(ProtocolError::UnbalancedQuotes),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
