//! WAL append benchmark: appends/s and p50/p99 latency for 1, 16 and 64 concurrent appenders
//! of 100-byte records in `sync_data` mode, beside this machine's raw 4 KiB write+fdatasync
//! rate measured in the same run.
//!
//! `cargo bench -p holo-wal [-- --seconds N]` (default 5 seconds per run). The directory is
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
    let (latencies_us, elapsed) = std::thread::scope(|scope| {
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
    finish_run(
        &wal_dir,
        format!("{appenders} appenders"),
        stats,
        latencies_us,
        elapsed,
    )
}

/// The same load from async tasks on a 2-worker tokio runtime, as the node appends: a task
/// submits and awaits [`Wal::durable`], so a wake-up is a task switch, not a thread switch.
fn wal_tasks(dir: &Path, tasks: usize, duration: Duration) -> Run {
    let wal_dir = dir.join(format!("wal-tasks-{tasks}"));
    let _ = std::fs::remove_dir_all(&wal_dir);
    let config = WalConfig {
        persist: PersistMode::SyncData,
        ..WalConfig::default()
    };
    let wal = std::sync::Arc::new(Wal::open(&wal_dir, config).expect("open WAL"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let started = Instant::now();
    let latencies_us: Vec<u32> = runtime.block_on(async {
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    let payload = [0x5Au8; RECORD_BYTES];
                    let mut mine = Vec::new();
                    while started.elapsed() < duration {
                        let t = Instant::now();
                        let lsn = wal.submit(&[&payload]).expect("submit");
                        wal.durable(lsn).await.expect("durable");
                        mine.push(t.elapsed().as_micros() as u32);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.expect("task"));
        }
        all
    });
    let elapsed = started.elapsed();
    let stats = wal.stats();
    drop(wal);
    finish_run(
        &wal_dir,
        format!("{tasks} async tasks"),
        stats,
        latencies_us,
        elapsed,
    )
}

/// Removes the run's log and summarises it.
fn finish_run(
    wal_dir: &Path,
    who: String,
    stats: holo_wal::WalStats,
    mut latencies_us: Vec<u32>,
    elapsed: Duration,
) -> Run {
    let _ = std::fs::remove_dir_all(wal_dir);
    latencies_us.sort_unstable();
    let per_sync = stats.records_written as f64 / stats.group_writes.max(1) as f64;
    Run {
        label: format!("WAL, {who} ({per_sync:.1} records/fdatasync)"),
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
        .map_or(5, |s| s.parse().expect("--seconds takes a whole number"))
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
    for tasks in [1, 16, 64] {
        runs.push(wal_tasks(&dir, tasks, duration));
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
    let ratio = |one: usize, many: usize| runs[many].rate() / runs[one].rate();
    println!(
        "group commit at 64 appenders (target: at least 20x the single-appender durable rate):\n  \
         async tasks (how holo-node appends): {:.1}x\n  \
         OS threads: {:.1}x (each append costs two thread switches; on 2 cores that, not the disk, is the limit)",
        ratio(4, 6),
        ratio(1, 3)
    );
}
