use super::*;

#[test]
fn scenario_names_are_unique() {
    let mut names: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn the_longest_stall_is_found_anywhere_in_the_run() {
    let at = |s: f64| Entry {
        id: 0,
        client: 0,
        node: None,
        op: Op::Get { key: "k".into() },
        outcome: Outcome::Ok,
        result: Some(OpResult::Value { v: None }),
        error: None,
        invoke_ns: 0,
        complete_ns: (s * 1e9) as u64,
    };
    let entries = [at(0.5), at(1.0), at(3.5), at(4.0)];
    assert_eq!(longest_stall(&entries, 4.5), (2.5, 1.0));
    assert_eq!(
        longest_stall(&entries, 9.0),
        (5.0, 4.0),
        "a stall at the end counts"
    );
    assert_eq!(longest_stall(&[], 2.0), (2.0, 0.0));
}

#[test]
fn percentiles_of_sorted_latencies() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), 51.0);
    assert_eq!(percentile(&v, 0.99), 99.0);
    assert_eq!(percentile(&[], 0.99), 0.0);
}
