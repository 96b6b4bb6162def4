//! `holo-harness bench`: redis-benchmark-style load from the harness itself, against a fresh
//! HoloStore cluster per storage backend and a plain `redis-server` started for the run, side
//! by side in one run.
//!
//! Each client holds one connection and keeps `pipeline` commands in flight: it writes a batch,
//! then reads the replies; a request's latency runs from the moment its batch was written to
//! the moment its own reply was read (what redis-benchmark measures). `mix` sends SET with
//! probability `set_pct`, else GET. Keys are drawn uniformly
//! from the key space (`key:000000012345`), values are `value_size` bytes. The GET run follows
//! the SET run on the same key space, so most GETs find a value. HoloStore clients are spread
//! over every node; redis-server has one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use holo_resp::Frame;
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterSpec, LocalCluster};
use crate::resp::Client;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub dir: PathBuf,
    pub binary: PathBuf,
    /// HoloStore backends to run (`redb`, `rocksdb`).
    pub backends: Vec<String>,
    /// Also run a plain redis-server on this port (None: skip it).
    pub redis_port: Option<u16>,
    pub clients: usize,
    /// Requests per run with pipeline 1; deeper pipelines run `requests * pipeline / 10`.
    pub requests: u64,
    pub pipelines: Vec<usize>,
    /// `set`, `get`, or `mix` (SET with probability `set_pct`, else GET).
    pub tests: Vec<String>,
    /// Share of SETs in the `mix` test, 0-100.
    pub set_pct: u8,
    pub keyspace: u64,
    pub value_size: usize,
    pub seed: u64,
    /// After the healthy runs of each backend, kill -9 one node and run everything again
    /// against the two survivors.
    pub node_down: bool,
    /// After the healthy runs of each backend, run everything again while ranges split and
    /// merge every 300 ms (before the node-down runs).
    pub split_merge: bool,
    /// After the healthy runs of each backend, run the first test at every pipeline depth
    /// for this long each, and report its throughput per 10-second window (None: skip).
    pub sustain: Option<Duration>,
}

/// Appended to a target's name for its sustained runs.
pub const SUSTAINED_SUFFIX: &str = " sustained";

/// The width of a sustained run's throughput windows.
const WINDOW_SECS: usize = 10;

/// How a run ends: after a number of requests, or after a time.
#[derive(Clone, Copy)]
enum Limit {
    Requests(u64),
    For(Duration),
}

/// Appended to a backend's target name for its runs while ranges split and merge.
pub const SPLIT_MERGE_SUFFIX: &str = " split-merge";

/// Appended to a backend's target name for its runs with one node killed.
pub const NODE_DOWN_SUFFIX: &str = " 1-down";

/// The node killed for the one-node-down runs (index into the cluster; node 3).
const DOWN_NODE: usize = 2;

/// One measured run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRun {
    pub target: String,
    pub test: String,
    pub pipeline: usize,
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// A sustained run's throughput per 10-second window (requests/s), in order; empty for
    /// runs of a fixed number of requests.
    #[serde(default)]
    pub windows: Vec<f64>,
}

impl BenchRun {
    /// A sustained run's last window as a share of its first (1.0: no fall).
    pub fn sustained_share(&self) -> Option<f64> {
        let (first, last) = (self.windows.first()?, self.windows.last()?);
        Some(last / first.max(1e-9))
    }
}

/// The bench results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResults {
    pub kind: String,
    pub clients: usize,
    pub keyspace: u64,
    pub value_size: usize,
    pub runs: Vec<BenchRun>,
    /// Splits and merges done during the split-merge runs.
    #[serde(default)]
    pub split_merge_operations: u64,
}

/// A redis-server started for the run; killed on drop.
struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_redis(port: u16, dir: &std::path::Path) -> anyhow::Result<RedisServer> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context(
            "cannot start redis-server; install it with `apt-get install redis-server`, or pass --no-redis",
        )?;
    let mut server = RedisServer(child);
    crate::resp::wait_pong(&format!("127.0.0.1:{port}"), Duration::from_secs(10))
        .await
        .with_context(|| format!("redis-server on port {port} (is the port taken?)"))?;
    // A PONG from someone else's server on that port must not be measured as ours.
    if let Some(status) = server.0.try_wait()? {
        bail!(
            "redis-server exited ({status}): port {port} is probably taken by another server; pass --redis-port"
        );
    }
    Ok(server)
}

/// Runs every test at every pipeline depth against every target.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<BenchResults> {
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let mut results = BenchResults {
        kind: "bench".into(),
        clients: opts.clients,
        keyspace: opts.keyspace,
        value_size: opts.value_size,
        runs: Vec::new(),
        split_merge_operations: 0,
    };
    println!(
        "{:<20} {:<12} {:>12} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "target", "run", "requests/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
    );
    if let Some(port) = opts.redis_port {
        let _redis = start_redis(port, &opts.dir).await?;
        let addrs = vec![format!("127.0.0.1:{port}")];
        measure(opts, "redis-server", &addrs, &mut results).await?;
    }
    for backend in &opts.backends {
        let dir = opts.dir.join(format!("cluster-{backend}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let spec = ClusterSpec {
            backend: backend.clone(),
            ..ClusterSpec::default()
        };
        let mut cluster = LocalCluster::up(&dir, spec, opts.binary.clone(), false).await?;
        let addrs = cluster.resp_addrs();
        let target = format!("holostore-{backend}");
        let mut outcome = measure(opts, &target, &addrs, &mut results).await;
        if outcome.is_ok()
            && let Some(sustain) = opts.sustain
        {
            outcome = measure_sustained(opts, sustain, &target, &addrs, &mut results).await;
        }
        if outcome.is_ok() && opts.split_merge {
            outcome = measure_split_merge(opts, &cluster, &target, &mut results).await;
        }
        if outcome.is_ok() && opts.node_down {
            outcome = measure_node_down(opts, &mut cluster, &target, &mut results).await;
        }
        cluster.down(Duration::from_secs(10)).await?;
        outcome?;
    }
    crate::suite::write_json(&opts.dir.join("results.json"), &results)?;
    print_comparison(&results);
    Ok(results)
}

/// Every run again while a loop splits and merges ranges (see [`crate::topology`]).
async fn measure_split_merge(
    opts: &BenchOptions,
    cluster: &LocalCluster,
    target: &str,
    results: &mut BenchResults,
) -> anyhow::Result<()> {
    use crate::cluster::ClusterControl;
    let grpcs = cluster.grpc_addrs();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seed = opts.seed ^ 0x5917;
    let changes = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let forever = Duration::from_secs(24 * 3600);
            crate::topology::run(
                &grpcs,
                crate::suite::TOPOLOGY_EVERY,
                Instant::now(),
                forever,
                seed,
                &stop,
            )
            .await
        })
    };
    let outcome = measure(
        opts,
        &format!("{target}{SPLIT_MERGE_SUFFIX}"),
        &cluster.resp_addrs(),
        results,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let events = changes.await?;
    let done: Vec<&crate::topology::TopologyEvent> = events.iter().filter(|e| e.done).collect();
    let splits = done
        .iter()
        .filter(|e| e.action.starts_with("split"))
        .count();
    println!(
        "{:<20} {} splits and {} merges done during these runs ({} asked)",
        format!("{target}{SPLIT_MERGE_SUFFIX}"),
        splits,
        done.len() - splits,
        events.len()
    );
    results.split_merge_operations += done.len() as u64;
    outcome
}

/// kill -9 of one node, kept down for every run after it; clients go to the survivors.
async fn measure_node_down(
    opts: &BenchOptions,
    cluster: &mut LocalCluster,
    target: &str,
    results: &mut BenchResults,
) -> anyhow::Result<()> {
    cluster.kill9(DOWN_NODE).await?;
    let survivors: Vec<String> = cluster
        .resp_addrs()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != DOWN_NODE)
        .map(|(_, a)| a)
        .collect();
    measure(
        opts,
        &format!("{target}{NODE_DOWN_SUFFIX}"),
        &survivors,
        results,
    )
    .await
}

/// Each run's throughput as a share of the run of the same kind on the target `base_of`
/// names for it (None: no comparison).
fn shares(
    results: &BenchResults,
    base_of: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for r in &results.runs {
        let Some(base_target) = base_of(&r.target) else {
            continue;
        };
        if let Some(base) = results
            .runs
            .iter()
            .find(|b| b.target == base_target && b.test == r.test && b.pipeline == r.pipeline)
        {
            out.push((
                r.target.clone(),
                format!("{} -P {}", r.test, r.pipeline),
                r.requests_per_sec / base.requests_per_sec.max(1e-9),
            ));
        }
    }
    out
}

/// Each HoloStore run as a share of redis-server's throughput in the same run kind.
pub fn ratios(results: &BenchResults) -> Vec<(String, String, f64)> {
    shares(results, |t| {
        (t != "redis-server").then(|| "redis-server".to_string())
    })
}

/// Each run with splits and merges going on as a share of the same backend's run of that
/// kind without them (the cost of topology changes).
pub fn split_merge_ratios(results: &BenchResults) -> Vec<(String, String, f64)> {
    shares(results, |t| {
        t.strip_suffix(SPLIT_MERGE_SUFFIX).map(str::to_string)
    })
}

/// Each one-node-down run as a share of the same backend's healthy run of that kind (the
/// bar: at least half).
pub fn down_ratios(results: &BenchResults) -> Vec<(String, String, f64)> {
    shares(results, |t| {
        t.strip_suffix(NODE_DOWN_SUFFIX).map(str::to_string)
    })
}

fn print_comparison(results: &BenchResults) {
    let ratios = ratios(results);
    if !ratios.is_empty() {
        println!("\nthroughput as a share of redis-server's in the same run:");
        for (target, run, ratio) in ratios {
            println!("  {target:<20} {run:<12} {:>6.1}%", ratio * 100.0);
        }
    }
    let topology = split_merge_ratios(results);
    if !topology.is_empty() {
        println!("\nwhile ranges split and merge every 300 ms, as a share of the same without:");
        for (target, run, ratio) in topology {
            println!("  {target:<20} {run:<12} {:>6.1}%", ratio * 100.0);
        }
    }
    let down = down_ratios(results);
    if !down.is_empty() {
        println!(
            "\nwith node {} down, as a share of the healthy cluster (the bar: 50%):",
            DOWN_NODE + 1
        );
        for (target, run, ratio) in down {
            println!("  {target:<20} {run:<12} {:>6.1}%", ratio * 100.0);
        }
    }
}

/// The first test at every pipeline depth for `sustain` each, throughput per window.
async fn measure_sustained(
    opts: &BenchOptions,
    sustain: Duration,
    target: &str,
    addrs: &[String],
    results: &mut BenchResults,
) -> anyhow::Result<()> {
    let Some(test) = opts.tests.first() else {
        return Ok(());
    };
    let target = format!("{target}{SUSTAINED_SUFFIX}");
    for &pipeline in &opts.pipelines {
        let run = one(opts, &target, addrs, test, pipeline, Limit::For(sustain)).await?;
        print_run(&run);
        let windows: Vec<String> = run.windows.iter().map(|w| format!("{w:.0}")).collect();
        println!(
            "{:<20} {:<12} per {WINDOW_SECS} s: {}; last window {:.0}% of the first",
            "",
            "",
            windows.join(" "),
            run.sustained_share().unwrap_or(1.0) * 100.0
        );
        results.runs.push(run);
    }
    Ok(())
}

fn print_run(run: &BenchRun) {
    println!(
        "{:<20} {:<12} {:>12.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
        run.target,
        format!("{} -P {}", run.test, run.pipeline),
        run.requests_per_sec,
        run.p50_ms,
        run.p95_ms,
        run.p99_ms,
        run.max_ms,
        run.errors
    );
}

async fn measure(
    opts: &BenchOptions,
    target: &str,
    addrs: &[String],
    results: &mut BenchResults,
) -> anyhow::Result<()> {
    for test in &opts.tests {
        for &pipeline in &opts.pipelines {
            let requests = if pipeline == 1 {
                opts.requests
            } else {
                opts.requests * pipeline as u64 / 10
            };
            let run = one(
                opts,
                target,
                addrs,
                test,
                pipeline,
                Limit::Requests(requests),
            )
            .await?;
            print_run(&run);
            results.runs.push(run);
        }
    }
    Ok(())
}

async fn one(
    opts: &BenchOptions,
    target: &str,
    addrs: &[String],
    test: &str,
    pipeline: usize,
    limit: Limit,
) -> anyhow::Result<BenchRun> {
    if !matches!(test, "set" | "get" | "mix") {
        bail!("unknown test {test:?}: use set, get or mix");
    }
    let set_pct = u64::from(opts.set_pct.min(100));
    let (requests, deadline) = match limit {
        Limit::Requests(n) => (n, None),
        Limit::For(d) => (u64::MAX, Some(d)),
    };
    let remaining = Arc::new(AtomicU64::new(requests));
    let errors = Arc::new(AtomicU64::new(0));
    let value = "x".repeat(opts.value_size);
    // Requests done, or for a sustained run the seconds gone.
    let bar = crate::progress::steps(
        deadline.map_or(requests, |d| d.as_secs()),
        &format!("{target} {test} -P {pipeline}"),
    );
    let started = Instant::now();
    // Replies per second of the run, for a sustained run's windows.
    let per_second: Arc<Vec<AtomicU64>> = Arc::new(
        (0..deadline.map_or(0, |d| d.as_secs() as usize + 2))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    if let Some(d) = deadline {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            for _ in 0..d.as_secs() {
                tick.tick().await;
                bar.inc(1);
            }
        });
    }
    let mut tasks = Vec::new();
    for c in 0..opts.clients {
        let addr = addrs[c % addrs.len()].clone();
        let per_second = Arc::clone(&per_second);
        let remaining = Arc::clone(&remaining);
        let errors = Arc::clone(&errors);
        let value = value.clone();
        let test = test.to_string();
        let bar = bar.clone();
        let keyspace = opts.keyspace.max(1);
        let mut rng = opts.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr, Duration::from_secs(10)).await?;
            let mut latencies_us: Vec<u32> = Vec::new();
            loop {
                let take = remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                        r.checked_sub(r.min(pipeline as u64)).filter(|_| r > 0)
                    })
                    .map(|r| r.min(pipeline as u64))
                    .unwrap_or(0);
                if take == 0 || deadline.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
                let mut commands = Vec::with_capacity(take as usize);
                for _ in 0..take {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = format!("key:{:012}", rng % keyspace);
                    let set = match test.as_str() {
                        "set" => true,
                        "get" => false,
                        _ => (rng >> 40) % 100 < set_pct,
                    };
                    if set {
                        commands.push(vec!["SET".to_string(), key, value.clone()]);
                    } else {
                        commands.push(vec!["GET".to_string(), key]);
                    }
                }
                let sent = Instant::now();
                let replies = client
                    .pipeline_timed(&commands, Duration::from_secs(60))
                    .await
                    .map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
                for (frame, at) in replies {
                    if matches!(frame, Frame::Error(_) | Frame::BulkError(_)) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(second) =
                        per_second.get(at.duration_since(started).as_secs() as usize)
                    {
                        second.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies_us
                        .push(at.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
                }
                if deadline.is_none() {
                    bar.inc(take);
                }
            }
            anyhow::Ok(latencies_us)
        }));
    }
    let mut all: Vec<u32> = Vec::with_capacity(requests.min(1 << 24) as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    all.sort_unstable();
    let q = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[i]) / 1e3
    };
    Ok(BenchRun {
        target: target.into(),
        test: test.to_uppercase(),
        pipeline,
        clients: opts.clients,
        requests: all.len() as u64 + errors.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        requests_per_sec: all.len() as f64 / seconds.max(1e-9),
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        windows: windows(&per_second, deadline),
    })
}

/// Throughput per whole window of a run that lasted `deadline` (none for other runs).
fn windows(per_second: &[AtomicU64], deadline: Option<Duration>) -> Vec<f64> {
    let Some(d) = deadline else {
        return Vec::new();
    };
    let seconds = d.as_secs() as usize;
    per_second[..seconds.min(per_second.len())]
        .chunks_exact(WINDOW_SECS)
        .map(|w| {
            w.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>() as f64 / WINDOW_SECS as f64
        })
        .collect()
}
