//! The state machine of every key/value command against an in-memory view, at chosen
//! executeAt times.

use std::collections::BTreeMap;

use bytes::Bytes;
use holo_accord::Timestamp;
use holo_resp::Frame;

use super::op::{Code, KvView, encode};
use super::value::Value;
use super::{Parsed, parse};

#[derive(Default)]
struct Map {
    values: BTreeMap<Vec<u8>, (Timestamp, Option<Value>)>,
    /// The executeAt of the op running, in ms (stands for its version too).
    now: u64,
}

impl KvView for Map {
    fn get(&mut self, key: &[u8]) -> Option<Value> {
        self.values.get(key).and_then(|(_, v)| v.clone())
    }
    fn put(&mut self, key: &[u8], value: Option<Value>) {
        let version = Timestamp {
            hlc: self.now * 1000,
            ..Timestamp::ZERO
        };
        self.values.insert(key.to_vec(), (version, value));
    }
    fn version(&mut self, key: &[u8]) -> Timestamp {
        self.values.get(key).map_or(Timestamp::ZERO, |(t, _)| *t)
    }
}

/// The replies of `op` at `now`.
fn run_op(op: &[u8], kv: &mut Map, now: u64) -> Vec<Frame> {
    super::execute_all(op, kv, now)
        .into_iter()
        .map(|e| e.frame)
        .collect()
}

fn args(command: &str) -> Vec<Bytes> {
    command
        .split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn op(command: &str) -> Result<Bytes, Frame> {
    match parse(&args(command)) {
        Some(Parsed::Txn(txn)) => Ok(txn.op),
        Some(Parsed::Reply(frame)) => Err(frame),
        None => panic!("{command} is not a key/value command"),
    }
}

/// Runs `command` at time `now` (ms).
fn at(map: &mut Map, now: u64, command: &str) -> Frame {
    map.now = now;
    match op(command) {
        Ok(op) => run_op(&op, map, now).remove(0),
        Err(frame) => frame,
    }
}

fn run(map: &mut Map, command: &str) -> Frame {
    let now = map.now.max(1_000_000);
    at(map, now, command)
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Frame {
    Frame::error(s)
}

fn check(map: &mut Map, cases: &[(&str, Frame)]) {
    for (command, expected) in cases {
        assert_eq!(&run(map, command), expected, "{command}");
    }
}

fn not_integer() -> Frame {
    super::not_integer()
}

#[test]
fn strings_behave_like_redis() {
    let mut m = Map::default();
    check(
        &mut m,
        &[
            ("GET a", Frame::Null),
            ("set a 1", Frame::ok()),
            ("GET a", bulk("1")),
            ("SET a 2 NX", Frame::Null),
            ("SET b 2 XX", Frame::Null),
            ("SET a 3 XX GET", bulk("1")),
            ("SET a 4 NX XX", err("ERR syntax error")),
            ("SETNX a 9", Frame::Integer(0)),
            ("SETNX c 9", Frame::Integer(1)),
            ("GETSET c 10", bulk("9")),
            ("INCR c", Frame::Integer(11)),
            ("DECRBY c 20", Frame::Integer(-9)),
            ("INCRBY c x", not_integer()),
            ("INCR a", Frame::Integer(4)),
            ("APPEND a xy", Frame::Integer(3)),
            ("INCR a", not_integer()),
            ("STRLEN a", Frame::Integer(3)),
            ("GETRANGE a 0 -1", bulk("4xy")),
            ("GETRANGE a -2 -1", bulk("xy")),
            ("GETRANGE a 5 10", bulk("")),
            ("SETRANGE d 2 hi", Frame::Integer(4)),
            ("GET d", Frame::Bulk(Bytes::from_static(b"\0\0hi"))),
            ("MSET k1 v1 k2 v2", Frame::ok()),
            (
                "MGET k1 zz k2",
                Frame::Array(vec![bulk("v1"), Frame::Null, bulk("v2")]),
            ),
            ("MSETNX k1 x k3 y", Frame::Integer(0)),
            ("MSETNX k3 x k4 y", Frame::Integer(1)),
            ("EXISTS k1 k1 nope", Frame::Integer(2)),
            ("DEL k1 k2 nope", Frame::Integer(2)),
            ("GETDEL k3", bulk("x")),
            ("GETDEL k3", Frame::Null),
            (
                "MSET k1",
                err("ERR wrong number of arguments for 'mset' command"),
            ),
            (
                "GET",
                err("ERR wrong number of arguments for 'get' command"),
            ),
            ("INCRBYFLOAT f 10.5", bulk("10.5")),
            ("INCRBYFLOAT f 0.1", bulk("10.6")),
            ("INCRBYFLOAT f -5", bulk("5.6")),
            (
                "INCRBYFLOAT f 1e400",
                err("ERR increment would produce NaN or Infinity"),
            ),
            ("INCRBYFLOAT f abc", err("ERR value is not a valid float")),
            ("INCRBYFLOAT a 1", err("ERR value is not a valid float")),
            ("SET n 3", Frame::ok()),
            ("INCRBYFLOAT n 2", bulk("5")),
            ("SETBIT bits 7 1", Frame::Integer(0)),
            ("SETBIT bits 7 0", Frame::Integer(1)),
            ("SETBIT bits 1 1", Frame::Integer(0)),
            ("GETBIT bits 1", Frame::Integer(1)),
            ("GETBIT bits 100", Frame::Integer(0)),
            ("GET bits", bulk("@")),
            (
                "SETBIT bits -1 1",
                err("ERR bit offset is not an integer or out of range"),
            ),
            (
                "SETBIT bits 1 2",
                err("ERR bit is not an integer or out of range"),
            ),
            ("SET foobar foobar", Frame::ok()),
            ("BITCOUNT foobar", Frame::Integer(26)),
            ("BITCOUNT foobar 0 0", Frame::Integer(4)),
            ("BITCOUNT foobar 1 1", Frame::Integer(6)),
            ("BITCOUNT foobar 1 1 BYTE", Frame::Integer(6)),
            ("BITCOUNT foobar 5 30 BIT", Frame::Integer(17)),
            ("BITCOUNT nope", Frame::Integer(0)),
        ],
    );
}

#[test]
fn overflow_is_refused_and_changes_nothing() {
    let mut m = Map::default();
    run(&mut m, &format!("SET n {}", i64::MAX));
    assert_eq!(
        run(&mut m, "INCR n"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(run(&mut m, "GET n"), bulk(&i64::MAX.to_string()));
    assert_eq!(run(&mut m, "INCRBY n 007"), not_integer());
}

#[test]
fn expiry_is_decided_at_execute_time() {
    let mut m = Map::default();
    assert_eq!(at(&mut m, 1_000, "SET k v PX 100"), Frame::ok());
    assert_eq!(at(&mut m, 1_050, "PTTL k"), Frame::Integer(50));
    assert_eq!(at(&mut m, 1_050, "TTL k"), Frame::Integer(0));
    assert_eq!(at(&mut m, 1_099, "GET k"), bulk("v"));
    // Expiry is inclusive: at its millisecond the key is gone, at every replica alike.
    assert_eq!(at(&mut m, 1_100, "GET k"), Frame::Null);
    assert_eq!(at(&mut m, 1_100, "EXISTS k"), Frame::Integer(0));
    assert_eq!(at(&mut m, 1_100, "TTL k"), Frame::Integer(-2));
    assert_eq!(at(&mut m, 1_100, "SET k v NX"), Frame::ok());
    assert_eq!(at(&mut m, 1_100, "TTL k"), Frame::Integer(-1));

    assert_eq!(at(&mut m, 2_000, "SET e v EX 10"), Frame::ok());
    assert_eq!(at(&mut m, 2_400, "TTL e"), Frame::Integer(10));
    assert_eq!(at(&mut m, 2_600, "TTL e"), Frame::Integer(9));
    assert_eq!(at(&mut m, 2_600, "EXPIRETIME e"), Frame::Integer(12));
    assert_eq!(at(&mut m, 2_600, "PEXPIRETIME e"), Frame::Integer(12_000));
    // Writes that keep the value's TTL, and those that drop it.
    assert_eq!(at(&mut m, 2_600, "APPEND e x"), Frame::Integer(2));
    assert_eq!(at(&mut m, 2_600, "PTTL e"), Frame::Integer(9_400));
    assert_eq!(at(&mut m, 2_600, "SET e w KEEPTTL"), Frame::ok());
    assert_eq!(at(&mut m, 2_600, "PTTL e"), Frame::Integer(9_400));
    assert_eq!(at(&mut m, 2_600, "SET e w"), Frame::ok());
    assert_eq!(at(&mut m, 2_600, "PTTL e"), Frame::Integer(-1));

    assert_eq!(at(&mut m, 3_000, "SET p v PXAT 3500"), Frame::ok());
    assert_eq!(at(&mut m, 3_000, "PERSIST p"), Frame::Integer(1));
    assert_eq!(at(&mut m, 3_000, "PERSIST p"), Frame::Integer(0));
    assert_eq!(at(&mut m, 9_000, "GET p"), bulk("v"));
    assert_eq!(at(&mut m, 9_000, "SETEX s 1 v"), Frame::ok());
    assert_eq!(at(&mut m, 9_999, "GET s"), bulk("v"));
    assert_eq!(at(&mut m, 10_000, "GET s"), Frame::Null);
    assert_eq!(at(&mut m, 10_000, "PSETEX s 5 v"), Frame::ok());
    assert_eq!(at(&mut m, 10_001, "GETEX s PERSIST"), bulk("v"));
    assert_eq!(at(&mut m, 20_000, "GETEX s PX 10"), bulk("v"));
    assert_eq!(at(&mut m, 20_010, "GET s"), Frame::Null);
}

#[test]
fn expire_options_follow_redis() {
    let mut m = Map::default();
    check(
        &mut m,
        &[
            ("EXPIRE nope 10", Frame::Integer(0)),
            ("SET k v", Frame::ok()),
            ("EXPIRE k 100 XX", Frame::Integer(0)),
            ("EXPIRE k 100 GT", Frame::Integer(0)),
            ("EXPIRE k 100 LT", Frame::Integer(1)),
            ("EXPIRE k 50 NX", Frame::Integer(0)),
            ("EXPIRE k 200 GT", Frame::Integer(1)),
            ("EXPIRE k 100 GT", Frame::Integer(0)),
            ("TTL k", Frame::Integer(200)),
            ("PEXPIRE k 1500 LT", Frame::Integer(1)),
            ("PTTL k", Frame::Integer(1500)),
            (
                "EXPIRE k 10 NX XX",
                err("ERR NX and XX, GT or LT options at the same time are not compatible"),
            ),
            (
                "EXPIRE k 10 GT LT",
                err("ERR GT and LT options at the same time are not compatible"),
            ),
            ("EXPIRE k 10 FOO", err("ERR Unsupported option FOO")),
            ("EXPIRE k ten", not_integer()),
            (
                "EXPIRE k 9223372036854775807",
                err("ERR invalid expire time in 'expire' command"),
            ),
            (
                "SET k v EX 0",
                err("ERR invalid expire time in 'set' command"),
            ),
            (
                "SET k v PX -5",
                err("ERR invalid expire time in 'set' command"),
            ),
            (
                "SETEX k -1 v",
                err("ERR invalid expire time in 'setex' command"),
            ),
            ("SET k v EX 10 PX 10", err("ERR syntax error")),
            ("SET k v EX 10 KEEPTTL", err("ERR syntax error")),
            ("SET k v EX", err("ERR syntax error")),
            ("TTL k", Frame::Integer(2)),
            // A time in the past deletes the key.
            ("EXPIRE k -1", Frame::Integer(1)),
            ("EXISTS k", Frame::Integer(0)),
            ("SET k v", Frame::ok()),
            ("EXPIREAT k 1", Frame::Integer(1)),
            ("GET k", Frame::Null),
        ],
    );
}

#[test]
fn purge_removes_only_what_expired_at_its_time() {
    let mut m = Map::default();
    at(&mut m, 1_000, "SET gone v PX 10");
    at(&mut m, 1_000, "SET stays v PX 10000");
    at(&mut m, 1_000, "SET plain v");
    let purge = super::expire::purge_op(&[
        Bytes::from_static(b"gone"),
        Bytes::from_static(b"stays"),
        Bytes::from_static(b"plain"),
    ]);
    m.now = 2_000;
    assert_eq!(run_op(&purge, &mut m, 2_000), vec![Frame::Integer(1)]);
    assert!(m.values[b"gone".as_slice()].1.is_none());
    assert!(m.values[b"stays".as_slice()].1.is_some());
}

#[test]
fn keyspace_commands() {
    let mut m = Map::default();
    check(
        &mut m,
        &[
            ("TYPE nope", Frame::simple("none")),
            ("SET s 12", Frame::ok()),
            ("TYPE s", Frame::simple("string")),
            ("OBJECT ENCODING s", bulk("int")),
            ("HSET h f v", Frame::Integer(1)),
            ("TYPE h", Frame::simple("hash")),
            ("OBJECT ENCODING h", bulk("listpack")),
            ("OBJECT ENCODING nope", Frame::Null),
            ("RENAME nope x", err("ERR no such key")),
            ("RENAME s t", Frame::ok()),
            ("GET s", Frame::Null),
            ("GET t", bulk("12")),
            ("RENAMENX t h", Frame::Integer(0)),
            ("RENAME t t", Frame::ok()),
            ("COPY t u", Frame::Integer(1)),
            ("COPY t u", Frame::Integer(0)),
            ("SET t 13", Frame::ok()),
            ("COPY t u REPLACE", Frame::Integer(1)),
            ("GET u", bulk("13")),
            ("COPY t u DB 1", err("ERR DB index is out of range")),
            ("TOUCH t u nope", Frame::Integer(2)),
            ("DEL t u h", Frame::Integer(3)),
        ],
    );
}

#[test]
fn hashes() {
    let mut m = Map::default();
    check(
        &mut m,
        &[
            ("HSET h a 1 b 2", Frame::Integer(2)),
            ("HSET h a 3 c 4", Frame::Integer(1)),
            ("HGET h a", bulk("3")),
            ("HGET h z", Frame::Null),
            ("HGET nope a", Frame::Null),
            (
                "HMGET h a z c",
                Frame::Array(vec![bulk("3"), Frame::Null, bulk("4")]),
            ),
            ("HLEN h", Frame::Integer(3)),
            ("HEXISTS h b", Frame::Integer(1)),
            ("HEXISTS h z", Frame::Integer(0)),
            ("HSTRLEN h a", Frame::Integer(1)),
            (
                "HGETALL h",
                Frame::Map(vec![
                    (bulk("a"), bulk("3")),
                    (bulk("b"), bulk("2")),
                    (bulk("c"), bulk("4")),
                ]),
            ),
            (
                "HKEYS h",
                Frame::Array(vec![bulk("a"), bulk("b"), bulk("c")]),
            ),
            (
                "HVALS h",
                Frame::Array(vec![bulk("3"), bulk("2"), bulk("4")]),
            ),
            ("HSETNX h a 9", Frame::Integer(0)),
            ("HSETNX h d 9", Frame::Integer(1)),
            ("HMSET h e 5", Frame::ok()),
            ("HINCRBY h a 10", Frame::Integer(13)),
            ("HINCRBY h new -2", Frame::Integer(-2)),
            ("HINCRBYFLOAT h a 0.5", bulk("13.5")),
            ("HINCRBY h a 1", err("ERR hash value is not an integer")),
            ("HSET h s x", Frame::Integer(1)),
            ("HINCRBYFLOAT h s 1", err("ERR hash value is not a float")),
            (
                "HSCAN h 0 MATCH [ab]",
                Frame::Array(vec![
                    bulk("0"),
                    Frame::Array(vec![bulk("a"), bulk("13.5"), bulk("b"), bulk("2")]),
                ]),
            ),
            (
                "HSCAN h 0 MATCH a NOVALUES",
                Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("a")])]),
            ),
            ("HDEL h a b z", Frame::Integer(2)),
            ("HDEL h c d e new s", Frame::Integer(5)),
            // The last field gone, the key is gone.
            ("EXISTS h", Frame::Integer(0)),
            (
                "HSET h a",
                err("ERR wrong number of arguments for 'hset' command"),
            ),
            ("SET s v", Frame::ok()),
            (
                "HSET s a 1",
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ),
            (
                "HGET s a",
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ),
            ("HSET h2 f v", Frame::Integer(1)),
            (
                "GET h2",
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ),
            (
                "INCR h2",
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ),
            ("MGET h2 s", Frame::Array(vec![Frame::Null, bulk("v")])),
            ("SET h2 now-a-string", Frame::ok()),
            ("GET h2", bulk("now-a-string")),
        ],
    );
}

#[test]
fn exec_runs_all_or_nothing_by_its_watch_tokens() {
    let mut m = Map::default();
    at(&mut m, 1_000, "SET a 1");
    let watch = super::multi::watch_op(&[Bytes::from_static(b"a")]);
    m.now = 1_001;
    let Frame::Array(tokens) = run_op(&watch, &mut m, 1_001).remove(0) else {
        panic!("tokens");
    };
    let Frame::Bulk(token) = tokens[0].clone() else {
        panic!("a token")
    };
    let ops = vec![op("INCR a").unwrap(), op("GET a").unwrap()];
    let exec = super::multi::exec_op(&[(Bytes::from_static(b"a"), token.clone())], &ops);
    m.now = 1_002;
    assert_eq!(
        run_op(&exec, &mut m, 1_002),
        vec![Frame::Array(vec![Frame::Integer(2), bulk("2")])]
    );
    // `a` changed since the token was read: nothing runs.
    m.now = 1_003;
    assert_eq!(run_op(&exec, &mut m, 1_003), vec![Frame::Null]);
    assert_eq!(at(&mut m, 1_004, "GET a"), bulk("2"));
    // A watched key that expires changes its token too.
    at(&mut m, 2_000, "SET t v PX 10");
    m.now = 2_001;
    let watch = super::multi::watch_op(&[Bytes::from_static(b"t")]);
    let Frame::Array(tokens) = run_op(&watch, &mut m, 2_001).remove(0) else {
        panic!("tokens");
    };
    let Frame::Bulk(token) = tokens[0].clone() else {
        panic!("a token")
    };
    let exec = super::multi::exec_op(&[(Bytes::from_static(b"t"), token)], &[]);
    assert_eq!(run_op(&exec, &mut m, 2_005), vec![Frame::Array(vec![])]);
    assert_eq!(run_op(&exec, &mut m, 2_010), vec![Frame::Null]);
}

#[test]
fn a_batch_runs_its_commands_in_order() {
    let ops = [
        op("SET a 1").unwrap(),
        op("INCR a").unwrap(),
        op("GET a").unwrap(),
    ];
    let batch = super::encode_batch(ops.iter().map(|o| &o[..]));
    let mut m = Map::default();
    assert_eq!(
        run_op(&batch, &mut m, 5),
        vec![Frame::ok(), Frame::Integer(2), bulk("2")]
    );
    assert_eq!(run_op(&ops[2], &mut m, 5), vec![bulk("2")]);
}

#[test]
fn malformed_ops_are_errors_not_panics() {
    let mut m = Map::default();
    let bad: Vec<Bytes> = vec![
        Bytes::from_static(&[1, 0]),
        Bytes::from_static(&[8, 0, 1, 0, 0, 0, b'k']),
        Bytes::from_static(&[10, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'x']),
        Bytes::from_static(&[99]),
        Bytes::new(),
        encode(Code::SetRange, 0, &[b"k", &(i64::MAX).to_le_bytes(), b"x"]),
        encode(Code::SetBit, 0, &[b"k", &(i64::MAX).to_le_bytes(), b"1"]),
        encode(Code::HSet, 0, &[b"k", b"f"]),
        encode(Code::Exec, 0, &[&(u64::MAX).to_le_bytes()]),
        encode(Code::Expire, 0, &[b"k"]),
        Bytes::from_static(&[0, 5, 0, 0, 0, 200]),
    ];
    for op in bad {
        for frame in run_op(&op, &mut m, 1) {
            assert!(frame.is_error(), "{op:?} gave {frame:?}");
        }
    }
    // An EXEC inside an EXEC (no client can send one) is refused, not recursed into.
    let inner = super::multi::exec_op(&[], &[op("SET a 1").unwrap()]);
    let nested = super::multi::exec_op(&[], &[inner]);
    assert_eq!(
        run_op(&nested, &mut m, 1),
        vec![Frame::Array(vec![super::op::undecodable()])]
    );
    assert!(m.values.is_empty());
}

#[test]
fn blind_writes_are_recognised() {
    let txn = |command: &str| match parse(&args(command)) {
        Some(Parsed::Txn(t)) => t,
        other => panic!("{other:?}"),
    };
    assert!(txn("SET a 1").is_blind());
    assert!(txn("SET a 1 KEEPTTL").is_blind());
    assert!(txn("SET a 1 EX 5").is_blind());
    assert!(txn("MSET a 1 b 2").is_blind());
    for not_blind in [
        "SET a 1 NX",
        "SET a 1 GET",
        "SETNX a 1",
        "INCR a",
        "DEL a",
        "GET a",
        "EXPIRE a 5",
    ] {
        assert!(!txn(not_blind).is_blind(), "{not_blind}");
    }
}

#[test]
fn keys_are_classified() {
    let Some(Parsed::Txn(t)) = parse(&args("MGET a b")) else {
        panic!("MGET parses")
    };
    assert_eq!((t.reads.len(), t.writes.len()), (2, 0));
    let Some(Parsed::Txn(t)) = parse(&args("COPY a b")) else {
        panic!("COPY parses")
    };
    assert_eq!(
        (t.reads, t.writes),
        (vec![Bytes::from("a")], vec![Bytes::from("b")])
    );
    assert_eq!(parse(&args("PING")), None);
    assert_eq!(parse(&args("NOSUCHCOMMAND")), None);
}

#[test]
fn the_table_is_consistent() {
    let mut names = std::collections::BTreeSet::new();
    for (i, spec) in super::TABLE.iter().enumerate() {
        assert!(names.insert(spec.name), "{} twice", spec.name);
        assert_eq!(spec.name, spec.name.to_ascii_lowercase());
        assert!(
            spec.name.len() <= 16,
            "{} is longer than lookup allows",
            spec.name
        );
        assert_eq!(super::lookup(spec.name.to_uppercase().as_bytes()), Some(i));
    }
    let spec = &super::TABLE[super::lookup(b"mset").unwrap()];
    let a = args("MSET k1 v1 k2 v2");
    assert_eq!(spec.key_args(&a), vec![&a[1], &a[3]]);
}

#[test]
fn glob_patterns() {
    use super::glob;
    assert!(glob(b"*", b"save", false));
    assert!(glob(b"SAVE", b"save", true));
    assert!(!glob(b"SAVE", b"save", false));
    assert!(glob(b"max*", b"maxmemory", false));
    assert!(glob(b"s?ve", b"save", false));
    assert!(!glob(b"max", b"maxmemory", false));
    assert!(glob(b"*a*b", b"xxaxxb", false));
    assert!(!glob(b"*a*b", b"xxaxxbc", false));
    assert!(glob(b"h[ae]llo", b"hello", false));
    assert!(!glob(b"h[^e]llo", b"hello", false));
    assert!(glob(b"h[a-b]llo", b"hbllo", false));
    assert!(glob(b"h\\*llo", b"h*llo", false));
    assert!(!glob(b"h\\*llo", b"hello", false));
    let mut hostile = [b'*'; 40].to_vec();
    hostile.push(b'z');
    assert!(!glob(&hostile, b"maxmemory-policy-and-more", false));
    assert!(
        !glob(&vec![b'*'; 100_000], b"save", false),
        "long patterns match nothing"
    );
}

#[test]
fn edge_cases() {
    let mut m = Map::default();
    check(
        &mut m,
        &[
            // The empty key and the empty value are ordinary.
            ("SET  x", Frame::ok()),
            ("GET ", bulk("x")),
            ("EXISTS ", Frame::Integer(1)),
            ("STRLEN ", Frame::Integer(1)),
            ("GETRANGE a 0 9223372036854775807", bulk("")),
            ("SET a hello", Frame::ok()),
            (
                "GETRANGE a -9223372036854775808 9223372036854775807",
                bulk("hello"),
            ),
            ("GETRANGE a 9223372036854775807 0", bulk("")),
            (
                "EXPIRE a -9223372036854775808",
                err("ERR invalid expire time in 'expire' command"),
            ),
            (
                "PEXPIRE a 9223372036854775807",
                err("ERR invalid expire time in 'pexpire' command"),
            ),
            ("PEXPIREAT a 9223372036854775807", Frame::Integer(1)),
            ("PEXPIRETIME a", Frame::Integer(i64::MAX)),
            ("GET a", bulk("hello")),
            (
                "SETEX a 9223372036854775807 v",
                err("ERR invalid expire time in 'setex' command"),
            ),
            (
                "GETEX a EX 0",
                err("ERR invalid expire time in 'getex' command"),
            ),
            ("GETEX a FOO", err("ERR syntax error")),
            ("GETEX nope PERSIST", Frame::Null),
            ("PERSIST nope", Frame::Integer(0)),
            ("TTL nope", Frame::Integer(-2)),
            ("HSET h f v", Frame::Integer(1)),
            (
                "HSCAN h 0 COUNT 9223372036854775807",
                Frame::Array(vec![bulk("0"), Frame::Array(vec![bulk("f"), bulk("v")])]),
            ),
            ("HSCAN h 0 COUNT 0", err("ERR syntax error")),
            ("HSCAN h x", err("ERR invalid cursor")),
            ("EXPIRE h 100", Frame::Integer(1)),
            ("TTL h", Frame::Integer(100)),
            ("HSET h g w", Frame::Integer(1)),
            ("TTL h", Frame::Integer(100)),
            (
                "SETRANGE big 536870912 x",
                err("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
            ),
            (
                "SETBIT big 4294967296 1",
                err("ERR bit offset is not an integer or out of range"),
            ),
        ],
    );
}

#[test]
fn a_reply_says_which_expiry_it_found_passed() {
    let mut m = Map::default();
    at(&mut m, 1_000, "SET k v PX 100");
    at(&mut m, 1_000, "SET other v");
    let seen = |m: &mut Map, now: u64, command: &str| {
        m.now = now;
        super::execute_all(&op(command).unwrap(), m, now)[0].expired_seen
    };
    assert_eq!(seen(&mut m, 1_050, "GET k"), 0, "not expired yet");
    assert_eq!(seen(&mut m, 1_200, "GET k"), 1_100);
    assert_eq!(seen(&mut m, 1_200, "EXISTS other k"), 1_100);
    assert_eq!(seen(&mut m, 1_200, "GET other"), 0);
    assert_eq!(
        seen(&mut m, 1_200, "SET k w NX"),
        1_100,
        "the lock was free because it expired"
    );
    assert_eq!(seen(&mut m, 1_300, "GET k"), 0, "k is a new value now");
}

#[test]
fn lcs_as_redis_documents_it() {
    let mut m = Map::default();
    let range = |s: i64, e: i64| Frame::Array(vec![Frame::Integer(s), Frame::Integer(e)]);
    check(
        &mut m,
        &[
            ("MSET key1 ohmytext key2 mynewtext", Frame::ok()),
            ("LCS key1 key2", bulk("mytext")),
            ("LCS key1 key2 LEN", Frame::Integer(6)),
            (
                "LCS key1 key2 IDX",
                Frame::Map(vec![
                    (
                        bulk("matches"),
                        Frame::Array(vec![
                            Frame::Array(vec![range(4, 7), range(5, 8)]),
                            Frame::Array(vec![range(2, 3), range(0, 1)]),
                        ]),
                    ),
                    (bulk("len"), Frame::Integer(6)),
                ]),
            ),
            (
                "LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN",
                Frame::Map(vec![
                    (
                        bulk("matches"),
                        Frame::Array(vec![Frame::Array(vec![
                            range(4, 7),
                            range(5, 8),
                            Frame::Integer(4),
                        ])]),
                    ),
                    (bulk("len"), Frame::Integer(6)),
                ]),
            ),
            ("LCS key1 nope", bulk("")),
            (
                "LCS key1 key2 LEN IDX",
                err("ERR If you want both the length and indexes, please just use IDX."),
            ),
            ("LCS key1 key2 FOO", err("ERR syntax error")),
            ("HSET h f v", Frame::Integer(1)),
            (
                "LCS key1 h",
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ),
        ],
    );
    let long = "x".repeat(5000);
    run(&mut m, &format!("MSET a {long} b {long}"));
    assert!(run(&mut m, "LCS a b").is_error(), "beyond the cell limit");
}
