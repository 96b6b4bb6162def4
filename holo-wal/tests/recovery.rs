//! The log on real files: replay, rotation, truncation, torn tails and corruption.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use holo_wal::{Lsn, PersistMode, Wal, WalConfig, WalError};

fn payload(lsn: Lsn) -> Vec<u8> {
    let len = (lsn * 37 % 300) as usize;
    let mut p = format!("record-{lsn}-").into_bytes();
    p.extend((0..len).map(|i| (i as u64 ^ lsn) as u8));
    p
}

fn small_segments() -> WalConfig {
    WalConfig {
        segment_bytes_target: 4096,
        ..WalConfig::default()
    }
}

/// No zeros written ahead: the file ends where its records do, so a test can cut or extend
/// it at the end of the records.
fn appending() -> WalConfig {
    WalConfig {
        preallocate_bytes: 0,
        ..WalConfig::default()
    }
}

/// Zeros 64 KiB at a time ahead of the records.
fn zeros_ahead() -> WalConfig {
    WalConfig {
        preallocate_bytes: 64 * 1024,
        ..WalConfig::default()
    }
}

/// Where the records `1..=last` written by [`append_range`] end in a segment.
fn records_end(last: Lsn) -> usize {
    16 + (1..=last).map(|l| 16 + payload(l).len()).sum::<usize>()
}

fn append_range(wal: &Wal, lsns: std::ops::RangeInclusive<Lsn>) {
    for lsn in lsns {
        assert_eq!(wal.append(&payload(lsn)).unwrap(), lsn);
    }
}

fn replayed(wal: &Wal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    wal.replay(from).unwrap().collect::<Result<_, _>>().unwrap()
}

fn assert_records(records: &[(Lsn, Vec<u8>)], lsns: std::ops::RangeInclusive<Lsn>) {
    let expected: Vec<(Lsn, Vec<u8>)> = lsns.map(|l| (l, payload(l))).collect();
    assert_eq!(records.len(), expected.len());
    assert!(records == expected.as_slice(), "replayed records differ");
}

/// A closed log in a new directory holding records `1..=last`.
fn written_log(config: WalConfig, last: Lsn) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1..=last);
    dir
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn replays_after_a_clean_close_and_continues() {
    let dir = written_log(WalConfig::default(), 500);
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.next_lsn(), 501);
    assert_records(&replayed(&wal, 1), 1..=500);
    assert_records(&replayed(&wal, 321), 321..=500);
    append_range(&wal, 501..=510);
    assert_records(&replayed(&wal, 490), 490..=510);
    assert!(replayed(&wal, 511).is_empty());
}

#[test]
fn rotates_segments_and_truncates_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small_segments()).unwrap();
    append_range(&wal, 1..=400);
    let before = segments(dir.path());
    assert!(
        before.len() > 5,
        "expected rotation, got {} segments",
        before.len()
    );
    assert_records(&replayed(&wal, 1), 1..=400);

    let removed = wal.truncate_below(200).unwrap();
    let after = segments(dir.path());
    assert_eq!(after.len(), before.len() - removed);
    let first = wal.first_lsn();
    let records = replayed(&wal, first);
    assert!(
        matches!(wal.replay(first - 1), Err(WalError::Compacted { .. })),
        "replay below the first LSN must say so"
    );
    assert!(
        first <= 200,
        "truncation removed LSN {first} and above, which were not below 200"
    );
    assert_records(&records, first..=400);
    drop(wal);

    let wal = Wal::open(dir.path(), small_segments()).unwrap();
    assert_records(&replayed(&wal, first), first..=400);
    let before_all = segments(dir.path()).len();
    assert_eq!(wal.truncate_below(u64::MAX).unwrap(), before_all - 1);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the active segment is never deleted"
    );
    append_range(&wal, 401..=410);
}

#[test]
fn torn_tails_are_truncated_at_every_cut() {
    let dir = written_log(appending(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let full = std::fs::read(&segment).unwrap();
    assert_eq!(full.len(), records_end(20));
    let last_record_len = 16 + payload(20).len();
    for cut in 1..last_record_len {
        std::fs::write(&segment, &full[..full.len() - cut]).unwrap();
        let wal = Wal::open(dir.path(), appending()).unwrap();
        assert_records(&replayed(&wal, 1), 1..=19);
        assert_eq!(wal.next_lsn(), 20, "cut {cut}");
    }
    // After the repair the log continues as if record 20 had never been written.
    std::fs::write(&segment, &full[..full.len() - 5]).unwrap();
    let wal = Wal::open(dir.path(), appending()).unwrap();
    append_range(&wal, 20..=25);
    drop(wal);
    let wal = Wal::open(dir.path(), appending()).unwrap();
    assert_records(&replayed(&wal, 1), 1..=25);
}

#[test]
fn zeros_are_written_ahead_and_a_reopened_log_writes_over_them() {
    let config = zeros_ahead();
    let dir = written_log(config.clone(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let end = records_end(20);
    assert!(bytes.len() >= end + 32 * 1024, "{} bytes", bytes.len());
    assert!(
        bytes[end..].iter().all(|&b| b == 0),
        "zeros after the records"
    );
    let wal = Wal::open(dir.path(), config.clone()).unwrap();
    assert_eq!(wal.next_lsn(), 21);
    append_range(&wal, 21..=30);
    drop(wal);
    let bytes = std::fs::read(&segment).unwrap();
    assert!(bytes[records_end(30)..].iter().all(|&b| b == 0));
    let wal = Wal::open(dir.path(), config).unwrap();
    assert_records(&replayed(&wal, 1), 1..=30);
}

#[test]
fn a_torn_write_over_zeros_is_cut_and_later_records_replay() {
    let config = zeros_ahead();
    let dir = written_log(config.clone(), 20);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Part of record 21 reached the disk over the zeros, the rest did not.
    let end = records_end(20);
    bytes[end..end + 40].copy_from_slice(&[0xA5; 40]);
    std::fs::write(&segment, &bytes).unwrap();
    let wal = Wal::open(dir.path(), config.clone()).unwrap();
    assert_records(&replayed(&wal, 1), 1..=20);
    // Shorter records than the torn one: nothing of it may be read back after them.
    for lsn in 21..=23 {
        assert_eq!(wal.append(b"x").unwrap(), lsn);
    }
    drop(wal);
    let wal = Wal::open(dir.path(), config).unwrap();
    assert_eq!(wal.next_lsn(), 24);
    assert_eq!(replayed(&wal, 21).len(), 3);
}

#[test]
fn garbage_and_zeros_after_the_last_record_are_not_records() {
    for tail in [
        vec![0u8; 4096],
        vec![0xFF; 7],
        b"not a record at all, just junk".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
            append_range(&wal, 1..=10);
        }
        let segment = segments(dir.path()).pop().unwrap();
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(&tail)
            .unwrap();
        let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        assert_records(&replayed(&wal, 1), 1..=10);
    }
}

fn corrupt_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn expect_corruption(dir: &Path, config: WalConfig, file: &Path) -> String {
    match Wal::open(dir, config) {
        Err(e @ WalError::Corruption { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&file.display().to_string()),
                "message does not name the file: {message}"
            );
            message
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a corrupt log opened"),
    }
}

#[test]
fn a_bad_record_followed_by_valid_ones_refuses_to_open() {
    let dir = written_log(WalConfig::default(), 100);
    let segment = segments(dir.path()).pop().unwrap();
    // Record 1 starts after the 16-byte header; hit the payload of record 2.
    let offset = 16 + 16 + payload(1).len() + 20;
    corrupt_byte(&segment, offset);
    let message = expect_corruption(dir.path(), WalConfig::default(), &segment);
    // The report points at the start of the damaged record (record 2).
    let record_2 = 16 + 16 + payload(1).len();
    assert!(
        message.contains(&format!("offset {record_2} ")),
        "{message}"
    );
    // Nothing was changed by the refused open.
    assert_eq!(
        std::fs::read(&segment).unwrap().len(),
        std::fs::metadata(&segment).unwrap().len() as usize
    );
    expect_corruption(dir.path(), WalConfig::default(), &segment);
}

#[test]
fn a_bad_record_in_an_older_segment_refuses_to_open() {
    let dir = written_log(small_segments(), 200);
    let all = segments(dir.path());
    let older = &all[1];
    let len = std::fs::metadata(older).unwrap().len() as usize;
    // The very last byte of a full segment: its tail, but not the log's tail.
    corrupt_byte(older, len - 1);
    expect_corruption(dir.path(), small_segments(), older);
}

#[test]
fn a_missing_segment_refuses_to_open() {
    let dir = written_log(small_segments(), 200);
    let all = segments(dir.path());
    std::fs::remove_file(&all[2]).unwrap();
    let message = expect_corruption(dir.path(), small_segments(), &all[3]);
    assert!(message.contains("missing"), "{message}");
}

#[test]
fn oversize_records_are_refused_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        record_bytes_max: 1000,
        ..WalConfig::default()
    };
    let wal = Wal::open(dir.path(), config).unwrap();
    append_range(&wal, 1..=3);
    let err = wal.submit(&[&payload(4), &vec![0u8; 1001]]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::RecordTooLarge {
                len: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    assert_eq!(wal.next_lsn(), 4);
    append_range(&wal, 4..=4);
}

#[test]
fn bad_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_bytes_target: 10,
        ..WalConfig::default()
    };
    let err = Wal::open(dir.path(), config).err().unwrap();
    assert!(
        err.to_string().contains("wal.segment_bytes_target"),
        "{err}"
    );
    let parsed: Result<WalConfig, _> = toml::from_str("persist = \"sync_data\"\nsegment_byte = 1");
    assert!(parsed.unwrap_err().to_string().contains("segment_byte"));
    let parsed: WalConfig = toml::from_str("persist = \"buffer\"").unwrap();
    assert_eq!(parsed.persist, PersistMode::Buffer);
}

#[test]
fn concurrent_appenders_get_unique_lsns_and_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small_segments()).unwrap();
    let threads = 16;
    let per_thread = 50;
    let lsns: Vec<(Lsn, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let wal = &wal;
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let p = format!("thread {t} append {i}").into_bytes();
                            (wal.append(&p).unwrap(), p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut sorted = lsns.clone();
    sorted.sort();
    assert_eq!(
        sorted.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        (1..=(threads * per_thread) as u64).collect::<Vec<_>>()
    );
    let stats = wal.stats();
    assert!(stats.group_writes <= stats.records_written);
    drop(wal);
    let wal = Wal::open(dir.path(), small_segments()).unwrap();
    assert_eq!(replayed(&wal, 1), sorted);
}

#[test]
fn async_callers_wait_on_a_future() {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let last = wal.submit(&[b"a".as_slice(), b"b", b"c"]).unwrap();
    assert_eq!(last, 3);
    let mut future = std::pin::pin!(wal.durable(last));
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(result) => break result.unwrap(),
            Poll::Pending => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the record never became durable"
                );
                std::thread::park_timeout(std::time::Duration::from_millis(100));
            }
        }
    }
    assert!(wal.durable_below() > 3);
}

#[test]
fn buffer_mode_still_replays_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        persist: PersistMode::Buffer,
        ..small_segments()
    };
    {
        let wal = Wal::open(dir.path(), config.clone()).unwrap();
        append_range(&wal, 1..=100);
    }
    let wal = Wal::open(dir.path(), config).unwrap();
    assert_records(&replayed(&wal, 1), 1..=100);
}

#[test]
fn a_lone_appender_after_a_crowd_is_never_stuck() {
    // Regression: after a group write woke many appenders, the writer gathers the next group;
    // one appender arriving alone must still be written promptly, not wait for the crowd.
    let dir = tempfile::tempdir().unwrap();
    let wal = std::sync::Arc::new(Wal::open(dir.path(), WalConfig::default()).unwrap());
    let (done, finished) = std::sync::mpsc::channel();
    let worker = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for round in 0..20u32 {
                std::thread::scope(|scope| {
                    for t in 0..16u32 {
                        let wal = &wal;
                        scope.spawn(move || wal.append(&(round * 100 + t).to_le_bytes()).unwrap());
                    }
                });
                for _ in 0..3 {
                    wal.append(b"alone").unwrap();
                }
            }
            done.send(()).unwrap();
        })
    };
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("appends stalled: a lone appender waited for a group that never came");
    worker.join().unwrap();
    assert_eq!(wal.next_lsn(), 20 * 19 + 1);
}

#[test]
fn the_example_config_parses_to_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/node.example.toml");
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let wal: WalConfig = file["wal"].clone().try_into().unwrap();
    assert_eq!(wal, WalConfig::default());
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let err = Wal::open(dir.path(), WalConfig::default())
        .err()
        .expect("a second open must fail");
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    drop(wal);
    Wal::open(dir.path(), WalConfig::default()).expect("open after the first closed");
}

#[test]
fn waiting_for_an_lsn_never_appended_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_range(&wal, 1..=2);
    wal.wait_durable(2).unwrap();
    assert!(matches!(
        wal.wait_durable(3),
        Err(WalError::NotAppended { lsn: 3, next: 3 })
    ));
}

#[test]
fn an_intact_record_out_of_sequence_at_the_tail_is_corruption() {
    let dir = written_log(appending(), 10);
    let segment = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - (16 + payload(10).len());
    // Record 10 again where record 11 belongs: its checksum holds, its LSN does not.
    let duplicate = bytes[last..].to_vec();
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&duplicate)
        .unwrap();
    let message = expect_corruption(dir.path(), appending(), &segment);
    assert!(message.contains("out of sequence"), "{message}");
}
