//! The linearizability checker on hand-built and published histories.

use std::path::{Path, PathBuf};
use std::time::Duration;

use holo_harness::check::{self, Options, Report, Verdict};
use holo_harness::history::{self, Entry, Op, OpResult, Outcome};

/// Builds histories: `client`, `[t0, t1]`, operation and result.
#[derive(Default)]
struct H {
    entries: Vec<Entry>,
}

impl H {
    fn push(
        &mut self,
        client: u32,
        op: Op,
        outcome: Outcome,
        result: Option<OpResult>,
        t0: u64,
        t1: u64,
    ) -> &mut Self {
        let id = self.entries.len() as u64;
        self.entries.push(Entry {
            id,
            client,
            node: Some("127.0.0.1:16379".into()),
            op,
            outcome,
            error: (outcome != Outcome::Ok).then(|| "timeout".into()),
            result,
            invoke_ns: t0,
            complete_ns: t1,
        });
        self
    }
    fn set(&mut self, c: u32, k: &str, v: &str, t0: u64, t1: u64) -> &mut Self {
        self.set_outcome(c, k, v, Outcome::Ok, t0, t1)
    }
    fn set_outcome(&mut self, c: u32, k: &str, v: &str, o: Outcome, t0: u64, t1: u64) -> &mut Self {
        let op = Op::Set {
            key: k.into(),
            value: v.into(),
        };
        let result = (o == Outcome::Ok).then_some(OpResult::Done);
        self.push(c, op, o, result, t0, t1)
    }
    fn get(&mut self, c: u32, k: &str, v: Option<&str>, t0: u64, t1: u64) -> &mut Self {
        let result = OpResult::Value {
            v: v.map(str::to_owned),
        };
        self.push(
            c,
            Op::Get { key: k.into() },
            Outcome::Ok,
            Some(result),
            t0,
            t1,
        )
    }
    fn incr(&mut self, c: u32, k: &str, v: Option<i64>, t0: u64, t1: u64) -> &mut Self {
        let (outcome, result) = match v {
            Some(v) => (Outcome::Ok, Some(OpResult::Int { v })),
            None => (Outcome::Unknown, None),
        };
        self.push(c, Op::Incr { key: k.into() }, outcome, result, t0, t1)
    }
    fn mset(&mut self, c: u32, pairs: &[(&str, &str)], t0: u64, t1: u64) -> &mut Self {
        let op = Op::Mset {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.push(c, op, Outcome::Ok, Some(OpResult::Done), t0, t1)
    }
    fn mget(
        &mut self,
        c: u32,
        keys: &[&str],
        vals: &[Option<&str>],
        t0: u64,
        t1: u64,
    ) -> &mut Self {
        let op = Op::Mget {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let result = OpResult::Values {
            v: vals.iter().map(|v| v.map(str::to_owned)).collect(),
        };
        self.push(c, op, Outcome::Ok, Some(result), t0, t1)
    }
    fn report(&self) -> Report {
        check::check(&self.entries, &Options::default())
    }
    fn verdict(&self) -> Verdict {
        self.report().verdict
    }
}

fn legal(h: &H) {
    let r = h.report();
    assert_eq!(
        r.verdict,
        Verdict::Linearizable,
        "{}",
        check::render_text(&r)
    );
}

fn illegal(h: &H) -> Report {
    let r = h.report();
    assert_eq!(
        r.verdict,
        Verdict::NotLinearizable,
        "{}",
        check::render_text(&r)
    );
    assert!(!r.failing.is_empty());
    r
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    legal(&H::default());
    let mut h = H::default();
    h.get(0, "x", None, 0, 1)
        .set(0, "x", "a", 2, 3)
        .get(1, "x", Some("a"), 4, 5)
        .set(1, "x", "b", 6, 7)
        .get(0, "x", Some("b"), 8, 9)
        .get(0, "y", None, 10, 11);
    legal(&h);
}

#[test]
fn stale_read_after_a_completed_write() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 10)
        .set(0, "x", "b", 20, 30)
        .get(1, "x", Some("a"), 40, 50);
    let r = illegal(&h);
    let f = &r.failing[0];
    assert_eq!(f.keys, vec!["x".to_owned()]);
    assert_eq!(f.stuck, Some(2));
    assert_eq!(f.prefix, vec![0, 1]);
    assert!(f.explanation.contains("x=b"), "{}", f.explanation);
    // The read overlapping the second write may see either value.
    let mut h = H::default();
    h.set(0, "x", "a", 0, 10)
        .set(0, "x", "b", 20, 30)
        .get(1, "x", Some("a"), 25, 50);
    legal(&h);
}

#[test]
fn read_of_a_value_never_written() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 10).get(1, "x", Some("zzz"), 20, 30);
    let r = illegal(&h);
    assert_eq!(r.failing[0].history.len(), 1);
    assert_eq!(r.failing[0].stuck, Some(1));
}

#[test]
fn readers_disagreeing_on_the_order_of_concurrent_writes() {
    let mut h = H::default();
    h.set(0, "x", "1", 0, 10).set(1, "x", "2", 0, 10);
    // Reader 2 sees 1 then 2, reader 3 sees 2 then 1: no single order explains both.
    h.get(2, "x", Some("1"), 1, 4)
        .get(2, "x", Some("2"), 5, 8)
        .get(3, "x", Some("2"), 1, 4)
        .get(3, "x", Some("1"), 5, 8);
    illegal(&h);
    // Both readers seeing 1 then 2 is fine.
    let mut h = H::default();
    h.set(0, "x", "1", 0, 10)
        .set(1, "x", "2", 0, 10)
        .get(2, "x", Some("1"), 1, 4)
        .get(2, "x", Some("2"), 5, 8)
        .get(3, "x", Some("1"), 1, 4)
        .get(3, "x", Some("2"), 5, 8);
    legal(&h);
}

#[test]
fn read_sees_a_write_before_it_was_invoked() {
    let mut h = H::default();
    h.get(0, "x", Some("a"), 0, 5).set(1, "x", "a", 10, 15);
    illegal(&h);
    // Overlapping is enough.
    let mut h = H::default();
    h.get(0, "x", Some("a"), 0, 10).set(1, "x", "a", 10, 15);
    legal(&h);
}

#[test]
fn unknown_write_observed_later_is_legal() {
    let mut h = H::default();
    h.set_outcome(0, "x", "a", Outcome::Unknown, 0, 5)
        .get(1, "x", None, 6, 7)
        .get(1, "x", Some("a"), 100, 101);
    legal(&h);
    // Never observed: never took effect.
    let mut h = H::default();
    h.set(1, "x", "b", 0, 1)
        .set_outcome(0, "x", "a", Outcome::Unknown, 2, 5)
        .get(1, "x", Some("b"), 6, 7);
    legal(&h);
}

#[test]
fn unknown_write_observed_then_its_overwritten_value_reappears() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 1)
        .set_outcome(1, "x", "b", Outcome::Unknown, 2, 3)
        .get(2, "x", Some("b"), 4, 5)
        .get(2, "x", Some("a"), 6, 7);
    illegal(&h);
}

#[test]
fn failed_write_observed_is_illegal() {
    let mut h = H::default();
    h.set_outcome(0, "x", "a", Outcome::Fail, 0, 1)
        .get(1, "x", Some("a"), 2, 3);
    let r = illegal(&h);
    assert_eq!(r.dropped_failed, 1);
    let mut h = H::default();
    h.set_outcome(0, "x", "a", Outcome::Fail, 0, 1)
        .get(1, "x", None, 2, 3);
    legal(&h);
}

#[test]
fn lost_increment_is_illegal() {
    let mut h = H::default();
    h.incr(0, "c", Some(1), 0, 1)
        .incr(1, "c", Some(2), 2, 3)
        .incr(2, "c", Some(2), 4, 5);
    illegal(&h);
    // Two concurrent increments cannot both return 1.
    let mut h = H::default();
    h.incr(0, "c", Some(1), 0, 10).incr(1, "c", Some(1), 0, 10);
    illegal(&h);
    // A read between them pins the count.
    let mut h = H::default();
    h.incr(0, "c", Some(1), 0, 1)
        .incr(1, "c", Some(2), 2, 3)
        .get(2, "c", Some("1"), 4, 5);
    illegal(&h);
}

#[test]
fn unknown_increment_keeps_the_counter_within_range() {
    let incrs = |last: i64| {
        let mut h = H::default();
        h.incr(0, "c", Some(1), 0, 1)
            .incr(1, "c", None, 2, 3)
            .incr(2, "c", Some(last), 4, 5)
            .get(2, "c", Some(&last.to_string()), 6, 7);
        h
    };
    legal(&incrs(2));
    legal(&incrs(3));
    illegal(&incrs(4));
    let mut h = incrs(2);
    h.get(0, "c", Some("3"), 10, 11);
    legal(&h);
}

#[test]
fn incr_on_a_non_integer_is_impossible() {
    let mut h = H::default();
    h.set(0, "c", "abc", 0, 1).incr(0, "c", Some(1), 2, 3);
    let r = illegal(&h);
    assert!(
        r.failing[0].explanation.contains("integer"),
        "{}",
        r.failing[0].explanation
    );
    // An integer string is incremented.
    let mut h = H::default();
    h.set(0, "c", "41", 0, 1)
        .incr(0, "c", Some(42), 2, 3)
        .get(0, "c", Some("42"), 4, 5);
    legal(&h);
}

#[test]
fn mget_sees_half_of_an_mset() {
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mget(1, &["x", "y"], &[Some("1"), None], 2, 8);
    let r = illegal(&h);
    assert_eq!(r.partitions, 1);
    assert_eq!(r.failing[0].keys, vec!["x".to_owned(), "y".to_owned()]);
}

#[test]
fn mgets_across_two_msets_in_one_order() {
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mset(1, &[("x", "2"), ("y", "2")], 0, 10)
        .mget(2, &["x", "y"], &[Some("1"), Some("1")], 1, 5)
        .mget(3, &["y", "x"], &[Some("2"), Some("2")], 1, 9)
        .mget(2, &["x", "y"], &[Some("2"), Some("2")], 6, 9)
        .get(4, "y", Some("2"), 11, 12);
    legal(&h);
    // A mix of both is not atomic.
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mset(1, &[("x", "2"), ("y", "2")], 0, 10)
        .mget(2, &["x", "y"], &[Some("1"), Some("2")], 11, 12);
    illegal(&h);
    // Two readers seeing the MSETs in opposite orders.
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mset(1, &[("x", "2"), ("y", "2")], 0, 10)
        .get(2, "x", Some("1"), 1, 2)
        .get(2, "x", Some("2"), 3, 4)
        .get(3, "y", Some("2"), 1, 2)
        .get(3, "y", Some("1"), 3, 4);
    illegal(&h);
}

#[test]
fn real_time_order_across_keys() {
    // A's MSET completed before B's MGET started: B must see both keys.
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mget(1, &["x", "y"], &[Some("1"), None], 20, 30);
    illegal(&h);
    // Seeing neither is serializable (MGET first) but not strictly serializable.
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mget(1, &["x", "y"], &[None, None], 20, 30);
    illegal(&h);
    let mut h = H::default();
    h.mset(0, &[("x", "1"), ("y", "1")], 0, 10)
        .mget(1, &["x", "y"], &[None, None], 5, 30);
    legal(&h);
}

#[test]
fn results_that_do_not_fit_their_operation_are_illegal() {
    let mut h = H::default();
    h.push(0, Op::Get { key: "x".into() }, Outcome::Ok, None, 0, 1);
    illegal(&h);
    let mut h = H::default();
    h.mget(0, &["x", "y"], &[None], 0, 1);
    illegal(&h);
}

#[test]
fn unknown_reads_and_failures_are_dropped() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 1)
        .push(1, Op::Get { key: "x".into() }, Outcome::Unknown, None, 2, 3)
        .push(1, Op::Get { key: "x".into() }, Outcome::Fail, None, 4, 5)
        .set_outcome(2, "y", "b", Outcome::Unknown, 6, 7)
        .get(0, "x", Some("a"), 8, 9);
    let r = h.report();
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(
        (
            r.ops_total,
            r.ops_checked,
            r.dropped_failed,
            r.dropped_unknown_reads,
            r.unknown_writes
        ),
        (5, 3, 1, 1, 1)
    );
    assert_eq!((r.keys, r.partitions, r.largest_partition), (2, 2, 2));
}

#[test]
fn independent_keys_fail_independently() {
    let mut h = H::default();
    for k in ["a", "b", "c"] {
        h.set(0, k, "1", 0, 1).set(0, k, "2", 2, 3);
    }
    h.get(1, "b", Some("1"), 10, 11)
        .get(1, "c", Some("2"), 10, 11);
    let r = illegal(&h);
    assert_eq!(r.partitions, 3);
    assert_eq!(r.partitions_failed, 1);
    assert_eq!(r.failing[0].keys, vec!["b".to_owned()]);
    let text = check::render_text(&r);
    assert!(
        text.contains("NOT LINEARIZABLE") && text.contains("[b]"),
        "{text}"
    );
}

/// Batches of eight concurrent operations on one key (sets, and reads of the set before).
fn busy_history(ops: u64) -> H {
    let mut h = H::default();
    for i in 0..ops {
        let c = (i % 8) as u32;
        let t = i / 8 * 10;
        if i % 2 == 0 {
            h.set(c, "x", &i.to_string(), t, t + 9);
        } else {
            h.get(c, "x", Some(&(i - 1).to_string()), t, t + 9);
        }
    }
    h
}

#[test]
fn a_zero_deadline_gives_unknown() {
    let h = busy_history(2_000);
    let r = check::check(
        &h.entries,
        &Options {
            deadline: Duration::ZERO,
        },
    );
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.partitions_unfinished, 1);
    assert!(check::render_text(&r).contains("UNKNOWN"));
    assert_eq!(h.verdict(), Verdict::Linearizable);
}

#[test]
fn write_failure_writes_a_minimal_history_and_a_page() {
    let mut h = busy_history(400);
    // A stale read in the middle, plus an unknown write and some noise on another key.
    h.get(9, "x", Some("10"), 600, 610)
        .set_outcome(10, "x", "u", Outcome::Unknown, 300, 305)
        .set(11, "other", "1", 0, 1);
    let r = illegal(&h);
    let f = &r.failing[0];
    assert_eq!(f.keys, vec!["x".to_owned()]);
    assert!(
        f.history.len() <= f.ops && f.history.len() < 10,
        "{:?}",
        f.history
    );
    assert!(f.minimal);
    assert!(f.stuck.is_some());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("failures");
    let paths = check::write_failure(&out, &r).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["failure-1.jsonl", "failure-1.html"]);

    let minimal = history::read(&paths[0]).unwrap();
    assert_eq!(minimal, f.history);
    let again = check::check(&minimal, &Options::default());
    assert_eq!(again.verdict, Verdict::NotLinearizable);
    assert!(again.failing[0].history.len() <= minimal.len());

    let html = std::fs::read_to_string(&paths[1]).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("get x -&gt; 10"), "{html}");
    // Self-contained: no scripts, no external resources.
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
}

#[test]
fn unknown_ops_are_drawn_open_ended() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 1)
        .set_outcome(1, "x", "b", Outcome::Unknown, 2, 3)
        .get(2, "x", Some("b"), 4, 5)
        .get(2, "x", Some("a"), 6, 7);
    let r = illegal(&h);
    let f = &r.failing[0];
    assert_eq!(f.history.len(), 4);
    let html = check::render_html(f);
    assert!(
        html.contains("url(#hatch)") && html.contains("set x=b ?"),
        "{html}"
    );
}

#[test]
fn reports_serialize_as_json() {
    let mut h = H::default();
    h.set(0, "x", "a", 0, 10).get(1, "x", None, 20, 30);
    let r = illegal(&h);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"verdict\":\"not_linearizable\""), "{json}");
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn check_file(name: &str) -> Verdict {
    let entries = history::read(&data(name)).unwrap();
    check::check(&entries, &Options::default()).verdict
}

/// Porcupine's `TestRegisterModel` (anishathalye/porcupine, porcupine_test.go), taken from
/// MIT 6.824's 2017 quiz 2, section VII: a register initialised to 0 (here nil: Porcupine's
/// `get() -> 0` is our `get -> nil`).
#[test]
fn published_porcupine_6824_register_examples() {
    assert_eq!(
        check_file("porcupine-6824-linearizable.jsonl"),
        Verdict::Linearizable
    );
    assert_eq!(
        check_file("porcupine-6824-not-linearizable.jsonl"),
        Verdict::NotLinearizable
    );
}

/// Porcupine's `TestZeroDuration`: operations whose invocation and completion coincide.
#[test]
fn published_porcupine_zero_duration_examples() {
    assert_eq!(
        check_file("porcupine-zero-duration-linearizable.jsonl"),
        Verdict::Linearizable
    );
    assert_eq!(
        check_file("porcupine-zero-duration-not-linearizable.jsonl"),
        Verdict::NotLinearizable
    );
}

/// The two examples of Knossos' README (jepsen-io/knossos), with event indices as times: a
/// crashed (`:info`) write of 3 concurrent with a read of 3 (linearizable: the write took
/// effect), and `rethink-fail-minimal.edn`, RethinkDB letting a read see a value (3) no
/// write wrote.
#[test]
fn published_knossos_examples() {
    assert_eq!(
        check_file("knossos-crashed-write.jsonl"),
        Verdict::Linearizable
    );
    assert_eq!(
        check_file("knossos-rethink-fail-minimal.jsonl"),
        Verdict::NotLinearizable
    );
}

#[test]
fn tuning_limits_the_failures_described() {
    let mut h = H::default();
    for k in ["a", "b", "c"] {
        h.set(0, k, "1", 0, 1).get(1, k, Some("2"), 2, 3);
    }
    let tuning = check::Tuning {
        max_failures: 1,
        threads: 1,
        ..check::Tuning::default()
    };
    let r = check::check_with(&h.entries, &Options::default(), &tuning);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!((r.partitions_failed, r.failing.len()), (3, 1));
    assert_eq!(r.failing[0].keys, vec!["a".to_owned()]);
    assert!(check::render_text(&r).contains("2 more failing partitions"));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(check::write_failure(dir.path(), &r).unwrap().len(), 2);
}
