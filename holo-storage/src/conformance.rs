//! The conformance suite every [`StateStore`] implementation passes unchanged.
//!
//! [`CASES`] are behaviour checks on a fresh, empty store each; [`reopen_keeps_state`] checks
//! durability across close and reopen for the durable backends. The tests of this crate run
//! them against redb, RocksDB and the in-memory store; a new backend adds one line there.

use crate::store::StateStore;
use crate::types::{AppliedMarker, Durability, RangeId, WriteBatch};

/// A conformance case: a name and a check on a fresh, empty store.
pub type Case = (&'static str, fn(&dyn StateStore));

/// Every behaviour case.
pub const CASES: &[Case] = &[
    ("point_reads", point_reads),
    ("multi_get_keeps_order", multi_get_keeps_order),
    ("ops_apply_in_batch_order", ops_apply_in_batch_order),
    ("markers_are_per_range", markers_are_per_range),
    (
        "scan_is_ordered_and_half_open",
        scan_is_ordered_and_half_open,
    ),
    (
        "delete_range_bounded_and_unbounded",
        delete_range_bounded_and_unbounded,
    ),
    (
        "binary_and_empty_keys_and_values",
        binary_and_empty_keys_and_values,
    ),
    ("large_values", large_values),
    ("durability_modes_and_flush", durability_modes_and_flush),
    (
        "readers_never_see_half_a_batch",
        readers_never_see_half_a_batch,
    ),
];

/// Runs every case, each on a store from `fresh`; a failure names its case.
///
/// # Panics
/// When a case fails.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn StateStore>) {
    for (name, case) in CASES {
        eprintln!("conformance case {name}");
        let store = fresh();
        case(&*store);
    }
}

fn marker(index: u64) -> AppliedMarker {
    AppliedMarker {
        generation: 1,
        index,
    }
}

fn write(store: &dyn StateStore, build: impl FnOnce(&mut WriteBatch)) {
    let mut batch = WriteBatch::new();
    build(&mut batch);
    store.write(&batch).expect("write");
}

fn get(store: &dyn StateStore, key: &[u8]) -> Option<Vec<u8>> {
    store.get(key).expect("get")
}

fn keys_of(store: &dyn StateStore, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
    store
        .scan(start, end, limit)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn point_reads(store: &dyn StateStore) {
    assert_eq!(get(store, b"k"), None);
    write(store, |b| {
        b.put("k", "v1");
    });
    assert_eq!(get(store, b"k"), Some(b"v1".to_vec()));
    write(store, |b| {
        b.put("k", "v2");
    });
    assert_eq!(get(store, b"k"), Some(b"v2".to_vec()));
    write(store, |b| {
        b.delete("k");
    });
    assert_eq!(get(store, b"k"), None);
    write(store, |b| {
        b.delete("never-written");
    });
}

fn multi_get_keeps_order(store: &dyn StateStore) {
    write(store, |b| {
        b.put("a", "1").put("c", "3");
    });
    let got = store
        .multi_get(&[b"c", b"b", b"a", b"c"])
        .expect("multi_get");
    assert_eq!(
        got,
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert_eq!(
        store.multi_get(&[]).expect("multi_get"),
        Vec::<Option<Vec<u8>>>::new()
    );
}

fn ops_apply_in_batch_order(store: &dyn StateStore) {
    write(store, |b| {
        b.put("x", "1").delete("x").put("y", "1").put("y", "2");
        b.put("z", "1").delete_range("z", None).put("z", "3");
    });
    assert_eq!(get(store, b"x"), None);
    assert_eq!(get(store, b"y"), Some(b"2".to_vec()));
    assert_eq!(get(store, b"z"), Some(b"3".to_vec()));
    // An open-ended delete covers keys put earlier in the same batch, beyond any stored key.
    write(store, |b| {
        b.put("zzz", "1").put("zz", "1").delete_range("a", None);
    });
    assert_eq!(keys_of(store, b"", None, 10), Vec::<Vec<u8>>::new());
}

fn markers_are_per_range(store: &dyn StateStore) {
    let (r1, r2) = (RangeId(1), RangeId(u64::MAX));
    assert_eq!(store.applied(r1).expect("applied"), None);
    write(store, |b| {
        b.put("k", "v").set_applied(r1, marker(5));
    });
    assert_eq!(store.applied(r1).expect("applied"), Some(marker(5)));
    assert_eq!(store.applied(r2).expect("applied"), None);
    write(store, |b| {
        b.set_applied(r1, marker(6)).set_applied(
            r2,
            AppliedMarker {
                generation: 9,
                index: 1,
            },
        );
    });
    assert_eq!(store.applied(r1).expect("applied"), Some(marker(6)));
    assert_eq!(
        store.applied(r2).expect("applied"),
        Some(AppliedMarker {
            generation: 9,
            index: 1
        })
    );
}

fn scan_is_ordered_and_half_open(store: &dyn StateStore) {
    write(store, |b| {
        for key in ["b", "a", "d", "c", "e", "ab"] {
            b.put(key, format!("v-{key}"));
        }
    });
    let all = store.scan(b"", None, usize::MAX).expect("scan");
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"a".as_slice(), b"ab", b"b", b"c", b"d", b"e"]);
    assert_eq!(all[1].1, b"v-ab".to_vec());
    assert_eq!(
        keys_of(store, b"ab", Some(b"d"), 100),
        [b"ab".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        keys_of(store, b"b", None, 2),
        [b"b".to_vec(), b"c".to_vec()]
    );
    assert!(keys_of(store, b"c", Some(b"c"), 10).is_empty());
    assert!(keys_of(store, b"d", Some(b"b"), 10).is_empty());
    assert!(keys_of(store, b"a", None, 0).is_empty());
}

fn delete_range_bounded_and_unbounded(store: &dyn StateStore) {
    write(store, |b| {
        for key in ["a", "b", "c", "d", "e", "f"] {
            b.put(key, "v");
        }
    });
    write(store, |b| {
        b.delete_range("b", Some(b"d".to_vec()));
    });
    assert_eq!(
        keys_of(store, b"", None, 10),
        [b"a".to_vec(), b"d".to_vec(), b"e".to_vec(), b"f".to_vec()]
    );
    write(store, |b| {
        b.delete_range("z", Some(b"a".to_vec()))
            .delete_range("q", None);
    });
    assert_eq!(keys_of(store, b"", None, 10).len(), 4);
    write(store, |b| {
        b.delete_range("e", None);
    });
    assert_eq!(
        keys_of(store, b"", None, 10),
        [b"a".to_vec(), b"d".to_vec()]
    );
    write(store, |b| {
        b.delete_range("", None);
    });
    assert!(keys_of(store, b"", None, 10).is_empty());
}

fn binary_and_empty_keys_and_values(store: &dyn StateStore) {
    let keys: [&[u8]; 4] = [b"", b"\x00", b"\x00\x00", b"\xff\xff"];
    write(store, |b| {
        for (i, key) in keys.iter().enumerate() {
            b.put(*key, vec![i as u8; i]);
        }
    });
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(get(store, key), Some(vec![i as u8; i]), "key {key:?}");
    }
    assert_eq!(keys_of(store, b"", None, 10), keys.map(<[u8]>::to_vec));
}

fn large_values(store: &dyn StateStore) {
    let value: Vec<u8> = (0..4 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    write(store, |b| {
        b.put("big", value.clone());
    });
    assert_eq!(get(store, b"big"), Some(value));
}

fn durability_modes_and_flush(store: &dyn StateStore) {
    write(store, |b| {
        b.put("sync", "1").with_durability(Durability::Sync);
    });
    write(store, |b| {
        b.put("deferred", "1")
            .set_applied(RangeId(3), marker(1))
            .with_durability(Durability::Deferred);
    });
    assert_eq!(get(store, b"deferred"), Some(b"1".to_vec()));
    store.flush().expect("flush");
    store.flush().expect("flush again");
    assert_eq!(get(store, b"sync"), Some(b"1".to_vec()));
    assert_eq!(store.applied(RangeId(3)).expect("applied"), Some(marker(1)));
}

fn readers_never_see_half_a_batch(store: &dyn StateStore) {
    const ROUNDS: u64 = 300;
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut last = 0u64;
            while last < ROUNDS {
                let values = store.multi_get(&[b"left", b"right"]).expect("multi_get");
                assert_eq!(values[0], values[1], "a read saw half of a batch");
                let marker = store
                    .applied(RangeId(1))
                    .expect("applied")
                    .map_or(0, |m| m.index);
                assert!(marker >= last, "the applied marker went backwards");
                last = marker;
            }
        });
        for i in 1..=ROUNDS {
            write(store, |b| {
                let value = i.to_le_bytes();
                b.put("left", value)
                    .put("right", value)
                    .set_applied(RangeId(1), marker(i));
            });
        }
        reader.join().expect("reader");
    });
}

/// Writes through one store, drops it, reopens with `open` and checks that every batch
/// written with `Sync`, or before a flush, is still there, markers included.
///
/// # Panics
/// When state is lost or altered.
pub fn reopen_keeps_state(open: &dyn Fn() -> Box<dyn StateStore>) {
    {
        let store = open();
        write(&*store, |b| {
            b.put("a", "1")
                .set_applied(RangeId(1), marker(1))
                .with_durability(Durability::Sync);
        });
        write(&*store, |b| {
            b.put("b", "2")
                .delete("a")
                .set_applied(RangeId(1), marker(2));
        });
        store.flush().expect("flush");
    }
    let store = open();
    assert_eq!(get(&*store, b"a"), None);
    assert_eq!(get(&*store, b"b"), Some(b"2".to_vec()));
    assert_eq!(store.applied(RangeId(1)).expect("applied"), Some(marker(2)));
}
