//! The `holo-harness` binary: clusters, workloads, the checker, suites, benchmarks, reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use holo_harness::cluster::{self, ClusterControl, ClusterSpec, LocalCluster, Partition};
use holo_harness::docker::{self, DockerCluster};
use holo_harness::workload::{self, Mode, WorkloadSpec};
use holo_harness::{bench, check, history, report, suite};

/// HoloStore's harness: local clusters, register workloads, a linearizability checker, fault
/// suites, benchmarks beside redis-server, and reports.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start, stop or inspect a local cluster of holo-node processes.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Run a register workload against running nodes and write its history.
    Workload(WorkloadArgs),
    /// Check a history for linearizability (strict serializability for MSET/MGET).
    Check(CheckArgs),
    /// Kill, restart, pause or resume one node of a local cluster.
    Nemesis(NemesisArgs),
    /// Run a suite against fresh local clusters.
    Suite {
        #[command(subcommand)]
        suite: SuiteKind,
    },
    /// Benchmark HoloStore (per backend) beside a plain redis-server, in one run.
    Bench(BenchArgs),
    /// Render results.json files into report.md and report.html.
    Report(ReportArgs),
    /// Build the holo-node Docker image from our own binary (no registry needed).
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
}

#[derive(Subcommand)]
enum ImageAction {
    /// `FROM scratch` with the binary and the shared libraries ldd lists for it.
    Build {
        /// The holo-node binary (default: $HOLO_NODE_BIN, else next to holo-harness).
        #[arg(long)]
        bin: Option<PathBuf>,
        #[arg(long, default_value = docker::DEFAULT_IMAGE)]
        tag: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeArg {
    /// holo-node processes on this host.
    Local,
    /// One container per node on a private Docker network.
    Docker,
}

#[derive(Args, Clone)]
struct DockerArgs {
    /// The node image (`holo-harness image build` makes it).
    #[arg(long, default_value = docker::DEFAULT_IMAGE)]
    image: String,
    /// The Docker network's pinned /24 subnet.
    #[arg(long, default_value = "172.28.5.0/24")]
    subnet: String,
}

#[derive(Args, Clone)]
struct ClusterArgs {
    /// The cluster's directory (node files, data, logs, cluster.json).
    #[arg(long, default_value = ".holostore/harness-cluster")]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Write node files, start the nodes, wait until each serves.
    Up {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// A cluster file (see config/harness-cluster.toml); flags override it.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        nodes: Option<usize>,
        /// redb or rocksdb.
        #[arg(long)]
        backend: Option<String>,
        /// RESP port of node 1 (node N: +N-1); 0 lets the OS choose.
        #[arg(long)]
        resp_port: Option<u16>,
        /// gRPC port of node 1; 0 lets the OS choose.
        #[arg(long)]
        grpc_port: Option<u16>,
        /// The holo-node binary (default: $HOLO_NODE_BIN, else next to holo-harness).
        #[arg(long)]
        bin: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = RuntimeArg::Local)]
        runtime: RuntimeArg,
        #[command(flatten)]
        docker: DockerArgs,
        /// Docker object name prefix (network holo-NAME, containers holo-NAME-nN).
        #[arg(long, default_value = "cluster")]
        name: String,
    },
    /// Stop exactly the nodes `up` started (SIGTERM, SIGKILL after 10 s); for a Docker
    /// cluster, remove its containers, volumes and network.
    Down {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Also delete the cluster directory.
        #[arg(long)]
        purge: bool,
    },
    /// Each node's process, PING answer and key count.
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct WorkloadArgs {
    /// RESP addresses, comma-separated (or a cluster dir with --dir).
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// Take the addresses from this local cluster's directory.
    #[arg(long, conflicts_with = "nodes")]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 32)]
    keys: usize,
    /// Percentage of writes.
    #[arg(long, default_value_t = 50)]
    set_pct: u8,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    op_timeout: Duration,
    #[arg(long, value_enum, default_value_t = Mode::Register)]
    mode: Mode,
    /// Prepended to key names (keeps runs apart).
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// Percentage of writes sent and then abandoned by disconnecting.
    #[arg(long, default_value_t = 0)]
    disconnect_pct: u8,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The history file to write.
    #[arg(long, default_value = "history.jsonl")]
    out: PathBuf,
    /// Check the history right away.
    #[arg(long)]
    check: bool,
}

#[derive(Args)]
struct CheckArgs {
    history: PathBuf,
    /// Give up after this long ("no verdict" is a failure).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    deadline: Duration,
    /// Where the failing sub-history and its picture go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

#[derive(Args)]
struct NemesisArgs {
    /// kill (SIGKILL), stop (SIGTERM), restart, pause (SIGSTOP), resume (SIGCONT); on a
    /// Docker cluster also isolate, one-way, bridge, split (partitions around --node) and
    /// heal.
    action: String,
    /// 1-based node id.
    #[arg(long)]
    node: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args, Clone)]
struct SuiteCommon {
    /// Where clusters, histories and results go.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value = "redb")]
    backend: String,
    #[arg(long)]
    bin: Option<PathBuf>,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Seed for workload and fault choices (printed; the same seed replays the same choices).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Subcommand)]
enum SuiteKind {
    /// Scenarios: baseline, hot-key, mixed-nodes, counters, multi-key, disconnects,
    /// slow-replica, kill-restart, pause.
    Linearizability {
        #[command(flatten)]
        common: SuiteCommon,
        /// Workload time per scenario.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 32)]
        keys: usize,
        /// Fail a scenario whose completed operations per second fall below this.
        #[arg(long, default_value_t = 50.0)]
        min_ops: f64,
        /// Fail a scenario in which no operation completed for this long (a stall), faults
        /// included: the majority must keep serving.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        max_stall: Duration,
        /// Only these scenarios (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        scenario: Vec<String>,
        /// Stop at the first failing scenario.
        #[arg(long)]
        fail_fast: bool,
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        check_deadline: Duration,
        /// Run the clusters as Docker containers (needed by isolate, one-way, bridge).
        #[arg(long, value_enum, default_value_t = RuntimeArg::Local)]
        runtime: RuntimeArg,
        #[command(flatten)]
        docker: DockerArgs,
        /// Plant a bug to check the suite itself: nodes answer GET from local storage
        /// without consensus (`faults.stale_local_reads`). The suite must FAIL.
        #[arg(long)]
        plant_stale_reads: bool,
    },
    /// Repeated kill -9 (one node, or all at once every fourth cycle) under write load; every
    /// acknowledged write is read back from every node after each restart.
    CrashRecovery {
        #[command(flatten)]
        common: SuiteCommon,
        #[arg(long, default_value_t = 12)]
        cycles: usize,
        #[arg(long, default_value_t = 8)]
        writers: usize,
        /// Write time per cycle (the kill comes halfway).
        #[arg(long, default_value = "4s", value_parser = parse_duration)]
        cycle: Duration,
        /// Split and merge ranges every 300 ms all through every cycle (kills land during
        /// the operations); the meta-plane must settle at the end.
        #[arg(long)]
        split_merge: bool,
    },
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, default_value = ".holostore/bench")]
    dir: PathBuf,
    /// HoloStore backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "redb,rocksdb")]
    backends: Vec<String>,
    /// Skip the redis-server runs.
    #[arg(long)]
    no_redis: bool,
    /// Skip the runs with one node killed (by default every backend runs again with node 3
    /// down, against the two survivors).
    #[arg(long)]
    no_node_down: bool,
    /// Skip the runs while ranges split and merge every 300 ms (by default every backend
    /// runs again with them, before the node-down runs).
    #[arg(long)]
    no_split_merge: bool,
    /// After each backend's healthy runs, run the first test at every pipeline depth for
    /// this many seconds each and print its throughput per 10 s (0: skip)
    #[arg(long, default_value_t = 0)]
    sustain: u64,
    #[arg(long, default_value_t = 16390)]
    redis_port: u16,
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Requests per -P 1 run (deeper pipelines run requests*P/10).
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pipelines: Vec<usize>,
    /// set, get and/or mix (SET with probability --set-pct, else GET).
    #[arg(long, value_delimiter = ',', default_value = "set,get")]
    tests: Vec<String>,
    /// Share of SETs in the mix test.
    #[arg(long, default_value_t = 50)]
    set_pct: u8,
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    #[arg(long, default_value_t = 3)]
    value_size: usize,
    #[arg(long)]
    bin: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// results.json files or directories searched for them.
    #[arg(default_value = ".holostore")]
    inputs: Vec<PathBuf>,
    #[arg(long, default_value = ".holostore/report")]
    out: PathBuf,
}

/// "250ms", "10s", "2m" or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(0.0..1e7).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn binary(bin: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    bin.map_or_else(cluster::default_binary, Ok)
}

fn seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
    })
}

fn run_dir(dir: Option<PathBuf>, kind: &str) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from(".holostore").join(kind))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("holo-harness: cannot install signal handlers");
        return ExitCode::from(2);
    };
    // On a signal the running command's future is dropped, which stops the nodes it started
    // (suites, benches); `cluster up` leaves its nodes running on purpose.
    let outcome = tokio::select! {
        r = dispatch(cli.command) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        _ = hup.recv() => Err(anyhow::anyhow!("hung up")),
    };
    if let Err(e) = &outcome
        && matches!(
            e.to_string().as_str(),
            "interrupted" | "terminated" | "hung up"
        )
    {
        eprintln!("holo-harness: {e}; the nodes this run started are stopped");
        // Do not wait for a checker thread that may run until its deadline.
        std::process::exit(130);
    }
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("holo-harness: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` means it ran and found a failure.
async fn dispatch(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Cluster { action } => cluster_command(action).await,
        Command::Workload(args) => workload_command(args).await,
        Command::Check(args) => {
            let entries = history::read(&args.history)?;
            let deadline = args.deadline;
            let report = tokio::task::spawn_blocking(move || {
                check::check(&entries, &check::Options { deadline })
            })
            .await?;
            println!("{}", check::render_text(&report));
            if report.verdict == check::Verdict::NotLinearizable {
                for f in check::write_failure(&args.out, &report)? {
                    println!("wrote {}", f.display());
                }
            }
            Ok(report.verdict == check::Verdict::Linearizable)
        }
        Command::Nemesis(args) if DockerCluster::is_docker_dir(&args.cluster.dir) => {
            let mut c = DockerCluster::open(&args.cluster.dir)?;
            anyhow::ensure!(
                (1..=c.len()).contains(&args.node),
                "--node {}: the cluster has nodes 1 to {}",
                args.node,
                c.len()
            );
            let i = args.node - 1;
            match args.action.as_str() {
                "kill" => c.kill9(i).await?,
                "restart" => c.restart_all(&[i]).await?,
                "pause" => c.pause(i)?,
                "resume" => c.resume(i)?,
                "isolate" => println!("{}", c.partition(Partition::Isolate, i).await?),
                "one-way" => println!("{}", c.partition(Partition::OneWay, i).await?),
                "bridge" => println!("{}", c.partition(Partition::Bridge, i).await?),
                "split" => println!("{}", c.partition(Partition::Split, i).await?),
                "heal" => {
                    // A separate invocation does not know what an earlier one cut: flush all.
                    c.force_heal()?;
                }
                other => anyhow::bail!(
                    "unknown nemesis action {other:?}: use kill, restart, pause, resume, isolate, one-way, bridge, split or heal"
                ),
            }
            println!("node {}: {} done", args.node, args.action);
            Ok(true)
        }
        Command::Nemesis(args) => {
            let mut c = LocalCluster::open(&args.cluster.dir)?;
            anyhow::ensure!(
                (1..=c.len()).contains(&args.node),
                "--node {}: the cluster has nodes 1 to {}",
                args.node,
                c.len()
            );
            let i = args.node - 1;
            match args.action.as_str() {
                "kill" => c.kill9(i).await?,
                "stop" => c.stop(i, Duration::from_secs(10)).await?,
                "restart" => c.restart(i).await?,
                "pause" => c.pause(i)?,
                "resume" => c.resume(i)?,
                other => anyhow::bail!(
                    "unknown nemesis action {other:?}: use kill, stop, restart, pause or resume"
                ),
            }
            c.detach();
            println!("node {}: {} done", args.node, args.action);
            Ok(true)
        }
        Command::Suite { suite } => suite_command(suite).await,
        Command::Bench(args) => {
            let opts = bench::BenchOptions {
                dir: args.dir.clone(),
                binary: binary(args.bin)?,
                backends: args.backends,
                redis_port: (!args.no_redis).then_some(args.redis_port),
                clients: args.clients,
                requests: args.requests,
                pipelines: args.pipelines,
                tests: args.tests,
                set_pct: args.set_pct,
                keyspace: args.keyspace,
                value_size: args.value_size,
                seed: 7,
                node_down: !args.no_node_down,
                split_merge: !args.no_split_merge,
                sustain: (args.sustain > 0).then(|| std::time::Duration::from_secs(args.sustain)),
            };
            let results = bench::run(&opts).await?;
            let errors: u64 = results.runs.iter().map(|r| r.errors).sum();
            println!("results: {}", args.dir.join("results.json").display());
            if errors > 0 {
                eprintln!("holo-harness: {errors} requests got an error reply");
            }
            Ok(errors == 0)
        }
        Command::Image {
            action: ImageAction::Build { bin, tag },
        } => {
            let bin = binary(bin)?;
            let libs = docker::build_image(&bin, &tag)?;
            println!(
                "built image {tag} from {} ({})",
                bin.display(),
                if libs == 0 {
                    "static binary".to_string()
                } else {
                    format!("{libs} shared libraries copied in")
                }
            );
            Ok(true)
        }
        Command::Report(args) => {
            let results = report::collect(&args.inputs)?;
            let (md, html) = report::render(&results, &args.out)?;
            println!(
                "rendered {} results files:\n  {}\n  {}",
                results.len(),
                md.display(),
                html.display()
            );
            Ok(true)
        }
    }
}

async fn cluster_command(action: ClusterAction) -> anyhow::Result<bool> {
    match action {
        ClusterAction::Up {
            cluster,
            file,
            nodes,
            backend,
            resp_port,
            grpc_port,
            bin,
            runtime,
            docker,
            name,
        } => {
            let mut spec = match &file {
                Some(f) => ClusterSpec::load(f)?,
                None => ClusterSpec::default(),
            };
            if let Some(n) = nodes {
                spec.nodes = n;
            }
            if let Some(b) = backend {
                spec.backend = b;
            }
            if let Some(p) = resp_port {
                spec.resp_base_port = p;
            }
            if let Some(p) = grpc_port {
                spec.grpc_base_port = p;
            }
            let started = Instant::now();
            if runtime == RuntimeArg::Docker {
                let c = match DockerCluster::up(
                    &cluster.dir,
                    spec,
                    &docker.image,
                    &name,
                    &docker.subnet,
                )
                .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        if let Ok(mut partial) = DockerCluster::open(&cluster.dir) {
                            partial.down()?;
                        }
                        return Err(e);
                    }
                };
                println!(
                    "docker cluster up in {:.1} s: {} containers ({}), network {} ({}), directory {}",
                    started.elapsed().as_secs_f64(),
                    c.len(),
                    c.state.spec.backend,
                    c.state.network,
                    c.state.subnet,
                    c.dir.display()
                );
                for n in &c.state.nodes {
                    println!(
                        "  node {}: container {}, RESP {} (host {}), volume {}",
                        n.id, n.container, n.resp_addr, n.host_resp, n.volume
                    );
                }
                return Ok(true);
            }
            let c = LocalCluster::up(&cluster.dir, spec, binary(bin)?, true).await?;
            println!(
                "cluster up in {:.1} s: {} nodes ({}), directory {}",
                started.elapsed().as_secs_f64(),
                c.len(),
                c.state.spec.backend,
                c.dir.display()
            );
            for n in &c.state.nodes {
                println!(
                    "  node {}: pid {}, RESP {}, gRPC {}, log {}",
                    n.id,
                    n.pid.unwrap_or(0),
                    n.resp_addr,
                    n.grpc_addr,
                    n.log.display()
                );
            }
            println!(
                "  redis-cli -p {}    |    holo-harness cluster down --dir {}",
                c.state.nodes[0].resp_addr.rsplit(':').next().unwrap_or(""),
                cluster.dir.display()
            );
            c.detach();
            Ok(true)
        }
        ClusterAction::Down { cluster, purge } => {
            if DockerCluster::is_docker_dir(&cluster.dir) {
                let mut c = DockerCluster::open(&cluster.dir)?;
                let removed = c.down()?;
                let left = c.leftovers();
                anyhow::ensure!(left.is_empty(), "still present after down: {left:?}");
                println!("removed {removed} Docker object(s) (containers, volumes, network)");
            } else {
                let mut c = LocalCluster::open(&cluster.dir)?;
                let stopped = c.down(Duration::from_secs(10)).await?;
                println!("stopped {stopped} node(s)");
            }
            if purge {
                std::fs::remove_dir_all(&cluster.dir)
                    .with_context(|| format!("cannot delete {}", cluster.dir.display()))?;
                println!("deleted {}", cluster.dir.display());
            }
            Ok(true)
        }
        ClusterAction::Status { cluster, json } if DockerCluster::is_docker_dir(&cluster.dir) => {
            let c = DockerCluster::open(&cluster.dir)?;
            let mut all = true;
            for (i, n) in c.state.nodes.iter().enumerate() {
                let running = c.is_running(i);
                let serving = running
                    && holo_harness::resp::wait_pong(&n.resp_addr, Duration::from_secs(2))
                        .await
                        .is_ok();
                all &= serving;
                println!(
                    "node {} {:<24} {:<8} serving {:<3} RESP {} (host {})",
                    n.id,
                    n.container,
                    if running { "running" } else { "stopped" },
                    if serving { "yes" } else { "no" },
                    n.resp_addr,
                    n.host_resp
                );
            }
            let _ = json;
            Ok(all)
        }
        ClusterAction::Status { cluster, json } => {
            let c = LocalCluster::open(&cluster.dir)?;
            let status = c.status().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{:<5} {:<8} {:<8} {:<8} {:>8} {:>8}  {:<22} {:<22}",
                    "node", "pid", "process", "serving", "keys", "ping ms", "RESP", "gRPC"
                );
                for n in &status {
                    println!(
                        "{:<5} {:<8} {:<8} {:<8} {:>8} {:>8}  {:<22} {:<22}",
                        n.id,
                        n.pid.map_or("-".into(), |p| p.to_string()),
                        n.process,
                        if n.serving { "yes" } else { "no" },
                        n.keys.map_or("-".into(), |k| k.to_string()),
                        n.ping_ms.map_or("-".into(), |p| format!("{p:.2}")),
                        n.resp_addr,
                        n.grpc_addr
                    );
                }
            }
            c.detach();
            Ok(status.iter().all(|n| n.serving))
        }
    }
}

async fn workload_command(args: WorkloadArgs) -> anyhow::Result<bool> {
    let nodes = match &args.dir {
        Some(dir) if DockerCluster::is_docker_dir(dir) => DockerCluster::open(dir)?.resp_addrs(),
        Some(dir) => {
            let c = LocalCluster::open(dir)?;
            let addrs = c.resp_addrs();
            c.detach();
            addrs
        }
        None => args.nodes.clone(),
    };
    anyhow::ensure!(
        !nodes.is_empty(),
        "give the nodes: --nodes 127.0.0.1:16379,127.0.0.1:16380 or --dir CLUSTER_DIR"
    );
    let spec = WorkloadSpec {
        nodes,
        clients: args.clients,
        keys: args.keys,
        set_pct: args.set_pct,
        duration: args.duration,
        op_timeout: args.op_timeout,
        mode: args.mode,
        key_prefix: args.key_prefix,
        seed: args.seed,
        disconnect_pct: args.disconnect_pct,
        split_roles: false,
    };
    let live = Arc::new(workload::Live::default());
    let bar = holo_harness::progress::timed(spec.duration, "workload", Arc::clone(&live));
    let run = workload::run(
        &spec,
        Instant::now(),
        Arc::new(AtomicBool::new(false)),
        live,
    )
    .await?;
    bar.finish_and_clear();
    history::write(&args.out, &run.entries)?;
    println!(
        "{} operations in {:.1} s: {} ok ({:.0}/s), {} fail, {} unknown; history in {}",
        run.entries.len(),
        run.elapsed.as_secs_f64(),
        run.count(history::Outcome::Ok),
        run.ok_per_sec(),
        run.count(history::Outcome::Fail),
        run.count(history::Outcome::Unknown),
        args.out.display()
    );
    if !args.check {
        return Ok(true);
    }
    let entries = run.entries;
    let report = tokio::task::spawn_blocking(move || {
        check::check(
            &entries,
            &check::Options {
                deadline: Duration::from_secs(120),
            },
        )
    })
    .await?;
    println!("{}", check::render_text(&report));
    if report.verdict == check::Verdict::NotLinearizable {
        let dir = args
            .out
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        for f in check::write_failure(&dir, &report)? {
            println!("wrote {}", f.display());
        }
    }
    Ok(report.verdict == check::Verdict::Linearizable)
}

async fn suite_command(kind: SuiteKind) -> anyhow::Result<bool> {
    match kind {
        SuiteKind::Linearizability {
            common,
            duration,
            clients,
            keys,
            min_ops,
            max_stall,
            scenario,
            fail_fast,
            check_deadline,
            runtime,
            docker,
            plant_stale_reads,
        } => {
            let seed = seed(common.seed);
            let dir = run_dir(common.dir, "linearizability");
            println!(
                "linearizability suite: backend {}, {clients} clients, {keys} keys, {:.0} s per scenario, seed {seed} (replay with --seed {seed}), output in {}",
                common.backend,
                duration.as_secs_f64(),
                dir.display()
            );
            let opts = suite::SuiteOptions {
                dir: dir.clone(),
                binary: binary(common.bin)?,
                backend: common.backend,
                duration,
                clients,
                keys,
                op_timeout: common.op_timeout,
                min_ops_per_sec: min_ops,
                max_stall,
                only: scenario,
                fail_fast,
                seed,
                check_deadline,
                runtime: match runtime {
                    RuntimeArg::Local => suite::Runtime::Local,
                    RuntimeArg::Docker => suite::Runtime::Docker {
                        image: docker.image,
                        subnet: docker.subnet,
                    },
                },
                stale_reads: plant_stale_reads,
            };
            let results = suite::linearizability(&opts).await?;
            let failed: Vec<&str> = results
                .scenarios
                .iter()
                .filter(|s| !s.passed)
                .map(|s| s.name.as_str())
                .collect();
            if failed.is_empty() {
                println!(
                    "linearizability suite PASSED: {} scenarios; results in {}",
                    results.scenarios.len(),
                    dir.join("results.json").display()
                );
            } else {
                println!(
                    "linearizability suite FAILED: {}; results in {} (seed {seed})",
                    failed.join(", "),
                    dir.join("results.json").display()
                );
            }
            Ok(results.passed)
        }
        SuiteKind::CrashRecovery {
            common,
            cycles,
            writers,
            cycle,
            split_merge,
        } => {
            let seed = seed(common.seed);
            let dir = run_dir(common.dir, "crash-recovery");
            println!(
                "crash-recovery suite: backend {}, {cycles} cycles of {:.1} s, {writers} writers, seed {seed}, output in {}",
                common.backend,
                cycle.as_secs_f64(),
                dir.display()
            );
            let opts = suite::CrashOptions {
                dir: dir.clone(),
                binary: binary(common.bin)?,
                backend: common.backend,
                cycles,
                writers,
                cycle,
                op_timeout: common.op_timeout,
                seed,
                split_merge,
            };
            let r = suite::crash_recovery(&opts).await?;
            println!(
                "crash-recovery suite {}: {} cycles, {} acknowledged writes read back from every node ({} reads), {} lost, restart {:.0} ms mean / {:.0} ms max; results in {}",
                if r.passed { "PASSED" } else { "FAILED" },
                r.cycles.len(),
                r.acked_writes_checked,
                r.reads_checked,
                r.lost_writes,
                r.restart_ms_mean,
                r.restart_ms_max,
                dir.join("results.json").display()
            );
            for e in &r.lost_examples {
                println!("  lost: {e}");
            }
            Ok(r.passed)
        }
    }
}
