//! Crash tests on the lossy file system: randomized workloads crashed at every fsync boundary
//! and at random moments under concurrent appenders. After every crash the log must open,
//! hold every acknowledged record, and hold nothing that was not appended (no corruption,
//! no gaps, no invented records).
//!
//! A failure prints its seed; `HOLO_WAL_SEED=<seed> cargo test -p holo-wal --test crash`
//! replays just that seed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use holo_wal::sim::{SimFs, SimRng};
use holo_wal::{Lsn, Wal, WalConfig};

const DIR: &str = "/wal";

/// Records one appender submitted, by LSN.
type Submitted = Vec<(Lsn, Vec<u8>)>;

fn config() -> WalConfig {
    WalConfig {
        segment_bytes_target: 4096,
        ..WalConfig::default()
    }
}

/// Zeros written ahead a segment at a time, a part of one at a time (so zeros are added in
/// the middle of a segment too), or not at all.
fn config_for(seed: u64) -> WalConfig {
    WalConfig {
        preallocate_bytes: [4096, 1000, 0][(seed % 3) as usize],
        ..config()
    }
}

fn payload(rng: &mut SimRng) -> Vec<u8> {
    let len = rng.upto(600);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// What the test appended: the payload submitted at each LSN, and the highest LSN known
/// durable (acknowledged).
#[derive(Default)]
struct Model {
    submitted: BTreeMap<Lsn, Vec<u8>>,
    acked: Lsn,
}

impl Model {
    /// Checks the recovered log against the model and forgets unacknowledged records that
    /// did not survive (their LSNs will be reused).
    fn verify(&mut self, wal: &Wal, context: &str) {
        let records: Vec<(Lsn, Vec<u8>)> = wal
            .replay(wal.first_lsn())
            .unwrap_or_else(|e| panic!("{context}: replay failed: {e}"))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{context}: replay failed: {e}"));
        let last = records.last().map_or(wal.next_lsn() - 1, |(lsn, _)| *lsn);
        assert!(
            last >= self.acked,
            "{context}: acknowledged LSN {} lost; the log ends at {last}",
            self.acked
        );
        assert_eq!(wal.next_lsn(), last + 1, "{context}: next LSN");
        for (i, (lsn, data)) in records.iter().enumerate() {
            assert_eq!(*lsn, records[0].0 + i as u64, "{context}: gap in LSNs");
            let expected = self
                .submitted
                .get(lsn)
                .unwrap_or_else(|| panic!("{context}: LSN {lsn} was never appended"));
            assert!(
                data == expected,
                "{context}: LSN {lsn} holds other bytes than were appended"
            );
        }
        self.submitted.retain(|lsn, _| *lsn <= last);
    }
}

/// Runs a random workload until the file system fails (or `steps` run out). Single-threaded,
/// so the sequence of syncs is a function of the seed.
fn workload(wal: &Wal, model: &mut Model, rng: &mut SimRng, steps: usize) {
    for _ in 0..steps {
        if rng.chance(10) {
            let below = model.acked.saturating_sub(rng.upto(50) as u64);
            if wal.truncate_below(below).is_err() {
                return;
            }
            continue;
        }
        let batch: Vec<Vec<u8>> = (0..1 + rng.upto(4)).map(|_| payload(rng)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let Ok(last) = wal.submit(&refs) else { return };
        let first = last + 1 - batch.len() as u64;
        for (lsn, data) in (first..).zip(batch) {
            model.submitted.insert(lsn, data);
        }
        if wal.wait_durable(last).is_err() {
            return;
        }
        model.acked = last;
    }
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("HOLO_WAL_SEED") {
        Ok(seed) => vec![seed.parse().expect("HOLO_WAL_SEED is a number")],
        Err(_) => default.collect(),
    }
}

fn with_seed(seed: u64, test: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(test)).is_err() {
        panic!(
            "seed {seed} failed; replay it with: HOLO_WAL_SEED={seed} cargo test -p holo-wal --test crash"
        );
    }
}

/// Counts the syncs a seed's first cycle makes when nothing crashes.
fn syncs_without_crash(seed: u64, steps: usize) -> u64 {
    let fs = SimFs::new();
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config_for(seed)).unwrap();
    let start = fs.sync_count();
    workload(&wal, &mut Model::default(), &mut SimRng::new(seed), steps);
    fs.sync_count() - start
}

#[test]
fn crash_at_every_fsync_boundary() {
    const STEPS: usize = 40;
    for seed in seeds(0..12) {
        let syncs = syncs_without_crash(seed, STEPS);
        assert!(syncs > STEPS as u64 / 2, "the workload should sync often");
        for crash_at in 1..=syncs {
            with_seed(seed * 10_000 + crash_at, || {
                crash_cycles(seed, crash_at, STEPS)
            });
        }
    }
}

/// Crashes at sync `crash_at` of the first cycle, then at random syncs of two more cycles,
/// verifying after each restart.
fn crash_cycles(seed: u64, crash_at: u64, steps: usize) {
    let fs = SimFs::new();
    let mut model = Model::default();
    let mut rng = SimRng::new(seed);
    let mut chooser = SimRng::new(seed ^ crash_at.rotate_left(32));
    for cycle in 0..3 {
        let context = format!("seed {seed}, first crash at sync {crash_at}, cycle {cycle}");
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config_for(seed))
            .unwrap_or_else(|e| panic!("{context}: open failed: {e}"));
        model.verify(&wal, &context);
        let offset = if cycle == 0 {
            crash_at
        } else {
            1 + chooser.upto(60) as u64
        };
        fs.crash_at_sync(fs.sync_count() + offset);
        workload(&wal, &mut model, &mut rng, steps);
        fs.freeze();
        drop(wal);
        fs.crash(chooser.next_u64());
    }
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config_for(seed)).unwrap();
    model.verify(&wal, &format!("seed {seed}, crash at {crash_at}, final"));
}

#[test]
fn crash_at_random_moments_under_concurrent_appenders() {
    for seed in seeds(100..130) {
        with_seed(seed, || concurrent_crash(seed));
    }
}

fn concurrent_crash(seed: u64) {
    let fs = SimFs::new();
    let mut rng = SimRng::new(seed);
    let mut model = Model::default();
    for cycle in 0..3 {
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config_for(seed)).unwrap();
        model.verify(&wal, &format!("seed {seed}, cycle {cycle}"));
        let acks = AtomicU64::new(0);
        let crash_after = 1 + rng.upto(200) as u64;
        let results: Vec<(Submitted, Lsn)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8u64)
                .map(|t| {
                    let (wal, acks) = (&wal, &acks);
                    let mut rng = SimRng::new(seed * 1000 + cycle * 100 + t);
                    scope.spawn(move || appender(wal, acks, &mut rng))
                })
                .collect();
            // Poll (not sleep) until enough appends were acknowledged, then pull the plug.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while acks.load(Ordering::SeqCst) < crash_after {
                assert!(std::time::Instant::now() < deadline, "appends stalled");
                std::thread::yield_now();
            }
            fs.freeze();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (submitted, acked) in results {
            model.submitted.extend(submitted);
            model.acked = model.acked.max(acked);
        }
        drop(wal);
        fs.crash(rng.next_u64());
    }
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config_for(seed)).unwrap();
    model.verify(&wal, &format!("seed {seed}, final"));
}

/// Appends until the file system fails; returns what it submitted and its highest
/// acknowledged LSN.
fn appender(wal: &Wal, acks: &AtomicU64, rng: &mut SimRng) -> (Submitted, Lsn) {
    let mut submitted = Vec::new();
    let mut acked = 0;
    loop {
        let data = payload(rng);
        let Ok(lsn) = wal.submit(&[&data]) else { break };
        submitted.push((lsn, data));
        if wal.wait_durable(lsn).is_err() {
            break;
        }
        acked = lsn;
        acks.fetch_add(1, Ordering::SeqCst);
    }
    (submitted, acked)
}

#[test]
fn rot_in_synced_data_is_refused_not_skipped() {
    let fs = SimFs::new();
    {
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config()).unwrap();
        for i in 0..40u32 {
            wal.append(&i.to_le_bytes().repeat(20)).unwrap();
        }
    }
    let paths = fs.paths();
    let middle = paths
        .iter()
        .find(|p| p.starts_with(Path::new(DIR)))
        .unwrap();
    fs.flip_bit(middle, 8 * 40);
    let err = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config())
        .err()
        .expect("corruption must refuse to open");
    assert!(
        err.to_string().contains(&middle.display().to_string()),
        "{err}"
    );
}

#[test]
fn opening_syncs_what_a_crashed_process_left_unsynced() {
    // A process crash (not a power loss) leaves written-but-unsynced records in the page
    // cache. Recovery must make them durable before the node treats them as durable.
    let fs = SimFs::new();
    let config = WalConfig {
        persist: holo_wal::PersistMode::Buffer,
        ..config()
    };
    {
        let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config.clone()).unwrap();
        for i in 0..50u32 {
            wal.append(&i.to_le_bytes()).unwrap();
        }
    }
    assert!(
        fs.unsynced_bytes() > 0,
        "buffer mode leaves writes unsynced"
    );
    let wal = Wal::open_with_fs(Arc::new(fs.clone()), DIR, config).unwrap();
    assert_eq!(fs.unsynced_bytes(), 0, "recovery left records unsynced");
    assert_eq!(wal.next_lsn(), 51);
}
