//! Liveness with a node down: kill -9 of a node under pipelined write load, then, while it
//! stays down, writes through each survivor must complete. Repeated with every node as the
//! victim, because the stall this guards against (a txn below a sync point that the one live
//! peer refused, so neither its execution nor its invalidation could reach a majority) came
//! up in about one kill in four: a handful of kills passes a broken build too often. With
//! twelve kills a build with that bug passes with a chance of about 2%.
//!
//! Real `holo-node` processes on OS-chosen ports (the workspace's binary, or `HOLO_NODE_BIN`
//! to try another build). `HOLO_TEST_SEED` replays the key and timing choices of a run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use holo_harness::cluster::{ClusterSpec, LocalCluster};
use holo_harness::resp::Client;
use holo_harness::workload::Rng;
use holo_resp::Frame;

/// Kills per run: every node is the victim four times.
const TRIALS: usize = 12;
/// Pipelined load through the two survivors, as (connections, commands per pipeline): the
/// load under which the stall was reported (`redis-benchmark -c 50 -P 16` and `-c 20 -P 4`),
/// scaled down.
const LOAD: [(usize, usize); 2] = [(32, 16), (16, 4)];
/// How long one write through a survivor may take before the test calls it a stall. Far
/// above any healthy latency (a few ms): this bounds liveness, it does not time performance.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the load after a kill may take (a few thousand writes: seconds when healthy).
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

fn node_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOLO_NODE_BIN") {
        return bin.into();
    }
    Path::new(env!("CARGO_BIN_EXE_holo-harness"))
        .parent()
        .expect("target dir")
        .join("holo-node")
}

fn seed() -> u64 {
    std::env::var("HOLO_TEST_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        },
        |s| s.parse().expect("HOLO_TEST_SEED is a number"),
    )
}

/// Pipelines SETs of random keys through `addr` until `stop`, counting replies in `done`.
async fn load(
    addr: String,
    pipeline: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) {
    let mut rng = Rng::new(seed);
    let Ok(mut client) = Client::connect(&addr, Duration::from_secs(5)).await else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let commands: Vec<Vec<String>> = (0..pipeline)
            .map(|_| {
                let key = format!("k{}", rng.below(100_000));
                vec!["SET".into(), key, format!("v{}", rng.below(1 << 30))]
            })
            .collect();
        match client.pipeline(&commands, Duration::from_secs(30)).await {
            Ok(replies) => {
                done.fetch_add(replies.len() as u64, Ordering::Relaxed);
            }
            // The victim's connections break; the others' may time out if writes stall,
            // which the check after the kill reports.
            Err(_) => return,
        }
    }
}

/// Polls until `done` reaches `target`; false if `within` passes first.
async fn wait_for(done: &AtomicU64, target: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while done.load(Ordering::Relaxed) < target {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Writes through `addr` one at a time, each within `WRITE_DEADLINE`, then reads the last
/// back; the error says which write stalled.
async fn writes_complete(addr: &str, trial: usize, victim: usize) -> Result<(), String> {
    let mut client = Client::connect(addr, Duration::from_secs(5))
        .await
        .map_err(|e| format!("cannot connect to survivor {addr}: {e}"))?;
    for i in 0..20 {
        let key = format!("check-{trial}-{i}");
        let reply = client
            .call(&["SET", &key, "x"], WRITE_DEADLINE)
            .await
            .map_err(|e| {
                format!(
                    "trial {trial}: node {} down, write {i} through {addr} did not complete \
                     within {WRITE_DEADLINE:?}: {e}",
                    victim + 1
                )
            })?;
        if reply != Frame::ok() {
            return Err(format!(
                "trial {trial}: write {i} through {addr} answered {reply:?}"
            ));
        }
    }
    let key = format!("check-{trial}-19");
    let reply = client
        .call(&["GET", &key], WRITE_DEADLINE)
        .await
        .map_err(|e| format!("trial {trial}: read through {addr}: {e}"))?;
    match reply {
        Frame::Bulk(value) if &value[..] == b"x" => Ok(()),
        other => Err(format!("trial {trial}: {key} read back as {other:?}")),
    }
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_survivors_complete_after_every_kill() {
    let seed = seed();
    println!("HOLO_TEST_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    for trial in 0..TRIALS {
        // A fresh cluster each time, with the default timing knobs (as `make run` has them):
        // the kill then lands among the first sync points, recoveries and GC, as in the
        // report, instead of in a cluster still catching up from the previous kill.
        let mut cluster = LocalCluster::up(
            &dir.path().join(format!("c{trial}")),
            ClusterSpec::default(),
            node_binary(),
            false,
        )
        .await
        .expect("cluster up");
        let addrs = cluster.resp_addrs();
        let victim = trial % addrs.len();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let survivors: Vec<&String> = (0..addrs.len())
            .filter(|i| *i != victim)
            .map(|i| &addrs[i])
            .collect();
        for (addr, (connections, pipeline)) in survivors.iter().zip(LOAD) {
            for c in 0..connections {
                let task_seed = seed ^ ((trial * 1_000 + c) as u64) ^ pipeline as u64;
                tasks.push(tokio::spawn(load(
                    (*addr).clone(),
                    pipeline,
                    task_seed,
                    Arc::clone(&stop),
                    Arc::clone(&done),
                )));
            }
        }
        // Kill in the middle of the load, at a random moment within its first seconds (when
        // the first sync points run); the delay is the fault's timing, nothing waits on it.
        assert!(
            wait_for(&done, 1_000, Duration::from_secs(30)).await,
            "trial {trial}: the healthy cluster did not complete 1,000 writes in 30 s \
             (seed {seed})"
        );
        tokio::time::sleep(Duration::from_millis(rng.below(2_000) as u64)).await;
        cluster.kill9(victim).await.expect("kill -9");
        // The load goes on through the kill and after it: with the victim down, the
        // survivors must keep completing it.
        let at_kill = done.load(Ordering::Relaxed);
        let after = at_kill + 10_000 + rng.below(10_000) as u64;
        if !wait_for(&done, after, LOAD_DEADLINE).await {
            panic!(
                "trial {trial}: node {} down, the pipelined load through the survivors \
                 stalled at {} of {after} writes for {LOAD_DEADLINE:?} (seed {seed}; replay \
                 with HOLO_TEST_SEED={seed})",
                victim + 1,
                done.load(Ordering::Relaxed)
            );
        }
        stop.store(true, Ordering::Relaxed);
        for task in &tasks {
            task.abort();
        }
        for addr in survivors {
            if let Err(e) = writes_complete(addr, trial, victim).await {
                panic!("{e} (seed {seed}; replay with HOLO_TEST_SEED={seed})");
            }
        }
        cluster.down(Duration::from_secs(5)).await.expect("down");
    }
}
