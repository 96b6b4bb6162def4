//! WAL append benchmark: appends/s and p50/p99 latency for 1, 16 and 64 concurrent appenders
//! of 100-byte records in `sync_data` mode, beside this machine's raw 4 KiB write+fdatasync
//! rate measured in the same run.
//!
//! `cargo bench -p holo-wal [-- --seconds N]` (default 3 seconds per run). The directory is
//! under cargo's target tmpdir, on the same file system as the build, never tmpfs.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use holo_wal::{PersistMode, Wal, WalConfig};

const RECORD_BYTES: usize = 100;

struct Run {
    label: String,
    ops: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> u32 {
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[index]
    }
}

fn raw_fdatasync(dir: &Path, duration: Duration) -> Run {
    let path = dir.join("raw.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open raw file");
    let block = vec![0xA5u8; 4096];
    let mut latencies_us = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        latencies_us.push(t.elapsed().as_micros() as u32);
    }
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(path);
    latencies_us.sort_unstable();
    Run {
        label: "raw 4 KiB write+fdatasync".into(),
        ops: latencies_us.len() as u64,
        elapsed,
        latencies_us,
    }
}

fn wal_appenders(dir: &Path, appenders: usize, duration: Duration) -> Run {
    let wal_dir = dir.join(format!("wal-{appenders}"));
    let _ = std::fs::remove_dir_all(&wal_dir);
    let config = WalConfig {
        persist: PersistMode::SyncData,
        ..WalConfig::default()
    };
    let wal = Wal::open(&wal_dir, config).expect("open WAL");
    let barrier = Barrier::new(appenders + 1);
    let payload = [0x5Au8; RECORD_BYTES];
    let (mut latencies_us, elapsed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..appenders)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    barrier.wait();
                    let start = Instant::now();
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        wal.append(&payload).expect("append");
                        mine.push(t.elapsed().as_micros() as u32);
                    }
                    mine
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let all: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("appender"))
            .collect();
        (all, start.elapsed())
    });
    let stats = wal.stats();
    drop(wal);
    let _ = std::fs::remove_dir_all(&wal_dir);
    latencies_us.sort_unstable();
    let per_sync = stats.records_written as f64 / stats.group_writes.max(1) as f64;
    Run {
        label: format!("WAL, {appenders} appenders ({per_sync:.1} records/fdatasync)"),
        ops: latencies_us.len() as u64,
        elapsed,
        latencies_us,
    }
}

fn seconds_arg() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(3, |s| s.parse().expect("--seconds takes a whole number"))
}

fn main() {
    let duration = Duration::from_secs(seconds_arg());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("holo-wal-bench");
    std::fs::create_dir_all(&dir).expect("create bench dir");
    println!(
        "holo-wal append benchmark: {RECORD_BYTES}-byte records, sync_data, {duration:?} per run, in {}",
        dir.display()
    );
    let mut runs = vec![raw_fdatasync(&dir, duration)];
    for appenders in [1, 16, 64] {
        runs.push(wal_appenders(&dir, appenders, duration));
    }
    println!(
        "{:<48} {:>12} {:>10} {:>10}",
        "run", "ops/s", "p50 us", "p99 us"
    );
    for run in &runs {
        println!(
            "{:<48} {:>12.0} {:>10} {:>10}",
            run.label,
            run.rate(),
            run.percentile(0.5),
            run.percentile(0.99)
        );
    }
    let single = runs[1].rate();
    let sixty_four = runs[3].rate();
    println!(
        "group commit: 64 appenders reach {:.1}x the single-appender durable rate (target: at least 20x)",
        sixty_four / single
    );
}
