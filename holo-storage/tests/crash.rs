//! Kill -9 crash test for each durable backend. A child process
//! (`holo-storage-crash-writer`) writes numbered batches and acknowledges each durable one;
//! the test kills it with SIGKILL after a random number of acknowledgements, reopens the
//! store and checks that every acknowledged batch and its applied marker are present, and
//! that every batch is there whole or not at all. Several cycles run on the same files.
//!
//! A failure prints its seed; `HOLO_STORAGE_SEED=<seed>` replays the same kill points.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use holo_storage::{Backend, RangeId, StateStore, StorageConfig, Store};

struct Rng(u64);

impl Rng {
    fn upto(&mut self, max: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % (max + 1)
    }
}

fn key(batch: u64, j: u64) -> String {
    format!("k{batch:08}-{j}")
}

fn seed() -> u64 {
    std::env::var("HOLO_STORAGE_SEED").map_or(0x5EED, |s| {
        s.parse().expect("HOLO_STORAGE_SEED is a number")
    })
}

/// Starts the writer, kills it after `kill_after` acknowledgements, returns the highest one.
fn run_writer(backend: &str, dir: &Path, mode: &str, first: u64, kill_after: u64) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holo-storage-crash-writer"))
        .args([
            backend,
            &dir.display().to_string(),
            mode,
            &first.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash writer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = 0;
    let mut seen = 0;
    while seen < kill_after {
        let line = lines
            .next()
            .expect("the writer exited before it was killed")
            .expect("read");
        acked = line
            .strip_prefix("ack ")
            .expect("ack line")
            .parse()
            .expect("number");
        seen += 1;
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // Acknowledgements printed before the kill still count.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ack ") {
            acked = n.parse().expect("number");
        }
    }
    acked
}

/// Checks the reopened store; returns the applied marker.
fn verify(store: &Store, acked: u64, context: &str) -> u64 {
    let marker = store.applied(RangeId(1)).unwrap().map_or(0, |m| m.index);
    assert!(
        marker >= acked,
        "{context}: acknowledged batch {acked} lost; applied marker is {marker}"
    );
    if marker > 0 {
        assert_eq!(
            store.get(b"last").unwrap(),
            Some(marker.to_le_bytes().to_vec()),
            "{context}: `last` disagrees with the marker"
        );
    }
    for n in 1..=marker {
        for j in 0..=n % 7 {
            let expect_present = j > 0 || n + 3 > marker;
            let got = store.get(key(n, j).as_bytes()).unwrap();
            assert_eq!(
                got.is_some(),
                expect_present,
                "{context}: key {} of batch {n} (marker {marker})",
                key(n, j)
            );
            if let Some(value) = got {
                assert_eq!(
                    value,
                    format!("value {n} {j}").repeat(8).into_bytes(),
                    "{context}: value of {}",
                    key(n, j)
                );
            }
        }
    }
    let beyond = store
        .scan(key(marker + 1, 0).as_bytes(), Some(b"l"), 10)
        .unwrap();
    assert!(
        beyond.is_empty(),
        "{context}: keys of batches after the marker are present: {:?}",
        beyond[0].0
    );
    marker
}

fn crash_cycles(backend: Backend, name: &str) {
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        backend,
        ..StorageConfig::default()
    };
    let mut next = 1;
    for cycle in 0..6 {
        let mode = if cycle % 2 == 0 { "sync" } else { "deferred" };
        let kill_after = 1 + rng.upto(if mode == "sync" { 40 } else { 6 });
        let context =
            format!("{name}, seed {seed}, cycle {cycle} ({mode}, killed after {kill_after} acks)");
        let acked = run_writer(name, dir.path(), mode, next, kill_after);
        let store = Store::open(&config, dir.path())
            .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
        let marker = verify(&store, acked, &context);
        eprintln!("{context}: acknowledged {acked}, recovered {marker}");
        next = marker + 1;
    }
}

#[test]
fn redb_survives_kill_9() {
    crash_cycles(Backend::Redb, "redb");
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_survives_kill_9() {
    crash_cycles(Backend::Rocksdb, "rocksdb");
}
