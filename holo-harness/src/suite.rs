//! The linearizability and crash-recovery suites against local process clusters.
//!
//! Every linearizability scenario starts a fresh cluster, runs a workload while its nemesis
//! (if any) injects faults, heals, reads every key back through every node (the final reads go
//! into the history), checks the history, and fails when the history is not linearizable, when
//! the checker reaches no verdict, or when throughput fell below the minimum (so a cluster that
//! stalls cannot pass by answering nothing). The crash-recovery suite kills nodes (one, or all at
//! once) under write load again and again and reads every acknowledged write back from every
//! node after each restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use holo_resp::Frame;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::cluster::{ClusterControl, ClusterSpec, LocalCluster, Partition};
use crate::docker::DockerCluster;
use crate::history::{Entry, Op, OpResult, Outcome};
use crate::nemesis::{self, Fault, FaultEvent, Phase, Schedule};
use crate::resp::Client;
use crate::workload::{self, Live, Mode, WorkloadSpec};

/// Options shared by the suites.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Where clusters, histories and results go.
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub backend: String,
    /// Workload time per scenario.
    pub duration: Duration,
    pub clients: usize,
    pub keys: usize,
    pub op_timeout: Duration,
    /// Completed operations per second below which a scenario fails.
    pub min_ops_per_sec: f64,
    /// Longest time without any completed operation before a scenario fails (a stall).
    pub max_stall: Duration,
    /// Only these scenarios (all when empty).
    pub only: Vec<String>,
    pub fail_fast: bool,
    pub seed: u64,
    pub check_deadline: Duration,
    /// Local processes, or Docker containers (which the partition scenarios need).
    pub runtime: Runtime,
    /// Plant a bug: every node answers GET from its own storage without consensus (the suite
    /// must then fail; this checks the suite, not the product).
    pub stale_reads: bool,
}

/// Where a suite's clusters run.
#[derive(Clone, Debug)]
pub enum Runtime {
    Local,
    Docker { image: String, subnet: String },
}

/// One scenario of the linearizability suite.
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    mode: Mode,
    keys: Option<usize>,
    set_pct: u8,
    disconnect_pct: u8,
    split_roles: bool,
    slow_node: Option<(u16, u64)>,
    fault: Option<Fault>,
    /// The workload runs at least this long (the node-down phases need it).
    min_duration: Option<Duration>,
    /// Needs a Docker cluster (network partitions).
    pub docker_only: bool,
    /// Splits and merges run all along (see [`crate::topology`]).
    topology: bool,
}

/// How often the topology scenarios (and the bench's split-merge runs) ask for a split or
/// a merge.
pub const TOPOLOGY_EVERY: Duration = Duration::from_millis(300);

/// The node-down scenario's schedule: first kill, period, and how long the node stays down.
const NODE_DOWN_SCHEDULE: (Duration, Duration, Duration) = (
    Duration::from_secs(2),
    Duration::from_secs(13),
    Duration::from_secs(10),
);

/// Every scenario, in the order the suite runs them.
pub fn scenarios() -> Vec<Scenario> {
    let base = |name, description| Scenario {
        name,
        description,
        mode: Mode::Register,
        keys: None,
        set_pct: 50,
        disconnect_pct: 0,
        split_roles: false,
        slow_node: None,
        fault: None,
        min_duration: None,
        docker_only: false,
        topology: false,
    };
    let topology = |name, description, mode| Scenario {
        mode,
        topology: true,
        ..base(name, description)
    };
    let partition = |name, description, kind| Scenario {
        fault: Some(Fault::Partition(kind)),
        docker_only: true,
        ..base(name, description)
    };
    vec![
        base("baseline", "GET/SET over every node, no faults"),
        Scenario {
            keys: Some(1),
            ..base("hot-key", "every client on one key")
        },
        Scenario {
            split_roles: true,
            ..base(
                "mixed-nodes",
                "writers on node 1, readers on the other nodes",
            )
        },
        Scenario {
            mode: Mode::Incr,
            keys: Some(4),
            ..base("counters", "INCR and GET of a few counters")
        },
        Scenario {
            mode: Mode::Multi,
            ..base(
                "multi-key",
                "MSET/MGET across ranges (strict serializability)",
            )
        },
        Scenario {
            mode: Mode::Transfer,
            fault: Some(Fault::Kill),
            ..base(
                "transfers",
                "MULTI/EXEC transfers between counters in three ranges; kill -9 of a random \
                 node, restarted 1.5 s later",
            )
        },
        Scenario {
            mode: Mode::Lock,
            keys: Some(2),
            fault: Some(Fault::Kill),
            ..base(
                "locks",
                "SET NX PX locks, half released by token (WATCH/GET/MULTI DEL), half left to \
                 expire, checked for mutual exclusion; kill -9 of a random node, restarted \
                 1.5 s later",
            )
        },
        Scenario {
            disconnect_pct: 20,
            ..base(
                "disconnects",
                "clients hang up before a fifth of their writes are answered",
            )
        },
        Scenario {
            slow_node: Some((3, 25)),
            ..base(
                "slow-replica",
                "node 3 delays every message it sends by 25 ms",
            )
        },
        Scenario {
            fault: Some(Fault::Kill),
            ..base(
                "kill-restart",
                "kill -9 of a random node, restarted 1.5 s later",
            )
        },
        Scenario {
            fault: Some(Fault::NodeDown),
            min_duration: Some(NODE_DOWN_SCHEDULE.0 + NODE_DOWN_SCHEDULE.1 * 2),
            ..base(
                "node-down",
                "kill -9 of a random node under load, kept down 10 s, then restarted; twice, \
                 another node each time",
            )
        },
        Scenario {
            fault: Some(Fault::Pause),
            ..base("pause", "SIGSTOP of a random node, SIGCONT 1.5 s later")
        },
        topology(
            "split-merge",
            "GET/SET while ranges split and merge every 300 ms",
            Mode::Register,
        ),
        topology(
            "split-merge-multi",
            "MSET/MGET across ranges while they split and merge every 300 ms",
            Mode::Multi,
        ),
        Scenario {
            keys: Some(4),
            ..topology(
                "split-merge-counters",
                "INCR and GET of a few counters while ranges split and merge every 300 ms",
                Mode::Incr,
            )
        },
        Scenario {
            fault: Some(Fault::KillController),
            ..topology(
                "split-merge-kill-controller",
                "splits and merges every 300 ms; kill -9 of the lease holder, restarted 1.5 s later",
                Mode::Multi,
            )
        },
        Scenario {
            fault: Some(Fault::KillReplica),
            keys: Some(4),
            ..topology(
                "split-merge-kill-replica",
                "counters while ranges split and merge; kill -9 of a node not holding the lease",
                Mode::Incr,
            )
        },
        partition(
            "isolate",
            "a random node cut off from the others (minority/majority), healed 1.5 s later",
            Partition::Isolate,
        ),
        Scenario {
            mode: Mode::Transfer,
            ..partition(
                "transfers-isolate",
                "MULTI/EXEC transfers across ranges while a random node is cut off, healed \
                 1.5 s later",
                Partition::Isolate,
            )
        },
        partition(
            "one-way",
            "a random node hears nobody but is heard, healed 1.5 s later",
            Partition::OneWay,
        ),
        partition(
            "split",
            "a minority (1 of 3, 2 of 5) split from the majority, healed 1.5 s later",
            Partition::Split,
        ),
        partition(
            "bridge",
            "the other nodes split; only a random node talks to both sides",
            Partition::Bridge,
        ),
    ]
}

/// Throughput and latency of one phase of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseStats {
    pub label: String,
    pub start: f64,
    pub end: f64,
    pub ok: usize,
    pub unknown: usize,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// For a healthy phase after a fault: seconds until completed operations per 250 ms
    /// first reached half the rate of the healthy phase before the first fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_after_s: Option<f64>,
}

/// What one scenario produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub description: String,
    pub passed: bool,
    pub problems: Vec<String>,
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
    pub final_reads: usize,
    pub ops_per_sec: f64,
    pub verdict: String,
    pub check_ms: f64,
    pub faults: Vec<FaultEvent>,
    pub phases: Vec<PhaseStats>,
    /// Completed operations per second, second by second.
    pub timeline: Vec<usize>,
    pub history: PathBuf,
    #[serde(default)]
    pub failure_files: Vec<PathBuf>,
    /// Throughput while a node was down (killed and not yet serving again) as a fraction of
    /// the healthy phase before the first fault, when the scenario kills nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_ratio: Option<f64>,
    /// The splits and merges asked for, in the topology scenarios.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology: Vec<crate::topology::TopologyEvent>,
}

/// A suite's results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinearizabilityResults {
    pub kind: String,
    /// False while the suite runs (and forever if it was interrupted): such results FAIL.
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub runtime: String,
    pub backend: String,
    pub seed: u64,
    pub clients: usize,
    pub duration_s: f64,
    pub passed: bool,
    pub scenarios: Vec<ScenarioResult>,
}

/// Runs the linearizability suite; the results are also written to `dir/results.json`.
pub async fn linearizability(opts: &SuiteOptions) -> anyhow::Result<LinearizabilityResults> {
    let names: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
    let unknown: Vec<&String> = opts
        .only
        .iter()
        .filter(|o| !names.contains(&o.as_str()))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "no scenario is called {:?}; the scenarios are {}",
        unknown,
        names.join(", ")
    );
    let docker = matches!(opts.runtime, Runtime::Docker { .. });
    let selected: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| opts.only.is_empty() || opts.only.iter().any(|o| o == s.name))
        .filter(|s| docker || !s.docker_only || !opts.only.is_empty())
        .collect();
    if !docker && let Some(s) = selected.iter().find(|s| s.docker_only) {
        anyhow::bail!(
            "scenario {} partitions the network: it needs --runtime docker",
            s.name
        );
    }
    if selected.is_empty() {
        let names: Vec<&str> = scenarios().iter().map(|s| s.name).collect();
        anyhow::bail!(
            "no scenario matches {:?}; the scenarios are {}",
            opts.only,
            names.join(", ")
        );
    }
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let _ = std::fs::remove_file(opts.dir.join("results.json"));
    let mut results = LinearizabilityResults {
        kind: "linearizability".into(),
        complete: false,
        runtime: if docker { "docker" } else { "local" }.into(),
        backend: opts.backend.clone(),
        seed: opts.seed,
        clients: opts.clients,
        duration_s: opts.duration.as_secs_f64(),
        passed: true,
        scenarios: Vec::new(),
    };
    for (n, scenario) in selected.iter().enumerate() {
        println!(
            "[{}/{}] {}: {}",
            n + 1,
            selected.len(),
            scenario.name,
            scenario.description
        );
        let result = match run_scenario(opts, scenario).await {
            Ok(r) => r,
            Err(e) => ScenarioResult {
                name: scenario.name.into(),
                description: scenario.description.into(),
                passed: false,
                problems: vec![format!("{e:#}")],
                ok: 0,
                fail: 0,
                unknown: 0,
                final_reads: 0,
                ops_per_sec: 0.0,
                verdict: "not run".into(),
                check_ms: 0.0,
                faults: Vec::new(),
                phases: Vec::new(),
                timeline: Vec::new(),
                history: PathBuf::new(),
                failure_files: Vec::new(),
                down_ratio: None,
                topology: Vec::new(),
            },
        };
        print_scenario(&result);
        results.passed &= result.passed;
        let stop = !result.passed && opts.fail_fast;
        results.scenarios.push(result);
        write_json(&opts.dir.join("results.json"), &results)?;
        if stop {
            break;
        }
    }
    results.complete = results.scenarios.len() == selected.len();
    results.passed &= results.complete;
    write_json(&opts.dir.join("results.json"), &results)?;
    Ok(results)
}

fn print_scenario(r: &ScenarioResult) {
    println!(
        "      {}: {} ok, {} fail, {} unknown, {:.0} ops/s, {} final reads, checker: {} ({:.0} ms)",
        if r.passed { "PASS" } else { "FAIL" },
        r.ok,
        r.fail,
        r.unknown,
        r.ops_per_sec,
        r.final_reads,
        r.verdict,
        r.check_ms
    );
    for p in &r.phases {
        let recovered = p
            .recovered_after_s
            .map(|s| format!("  recovered after {s:.2} s"))
            .unwrap_or_default();
        println!(
            "      {:>7.1}-{:<7.1}s {:<26} {:>8.0} ops/s  p50 {:>6.1} ms  p99 {:>7.1} ms  unknown {}{recovered}",
            p.start, p.end, p.label, p.ops_per_sec, p.p50_ms, p.p99_ms, p.unknown
        );
    }
    if let Some(ratio) = r.down_ratio {
        println!(
            "      with a node down: {:.0}% of the healthy throughput",
            ratio * 100.0
        );
    }
    if !r.topology.is_empty() {
        let done = r.topology.iter().filter(|t| t.done).count();
        let splits = r
            .topology
            .iter()
            .filter(|t| t.done && t.action.starts_with("split"))
            .count();
        println!(
            "      topology: {done} of {} asked done ({splits} splits, {} merges)",
            r.topology.len(),
            done - splits
        );
    }
    for problem in &r.problems {
        println!("      problem: {problem}");
    }
    for f in &r.failure_files {
        println!("      see {}", f.display());
    }
}

async fn run_scenario(opts: &SuiteOptions, s: &Scenario) -> anyhow::Result<ScenarioResult> {
    let dir = opts.dir.join(s.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let mut spec = ClusterSpec {
        backend: opts.backend.clone(),
        // Quick progress for the suites: a coordinator that vanished is recovered sooner.
        accord: "recover_after_ms = 500\nretry_ms = 100".into(),
        ..ClusterSpec::default()
    };
    if let Some((node, ms)) = s.slow_node {
        spec.node_faults = vec![(node, format!("send_delay_ms = {ms}"))];
    }
    if opts.stale_reads {
        spec.faults = "stale_local_reads = true".into();
    }
    match &opts.runtime {
        Runtime::Local => {
            let mut cluster =
                LocalCluster::up(&dir.join("cluster"), spec, opts.binary.clone(), false).await?;
            run_on(opts, s, &mut cluster, &dir).await
        }
        Runtime::Docker { image, subnet } => {
            // The pid keeps concurrent suites' Docker objects apart.
            let name = format!("{}-{}", s.name, std::process::id());
            let cluster_dir = dir.join("cluster");
            let mut cluster =
                match DockerCluster::up(&cluster_dir, spec, image, &name, subnet).await {
                    Ok(c) => c,
                    Err(e) => {
                        // Remove whatever part of it was created.
                        if let Ok(mut partial) = DockerCluster::open(&cluster_dir) {
                            let _ = partial.down();
                        }
                        return Err(e);
                    }
                };
            let result = run_on(opts, s, &mut cluster, &dir).await;
            cluster.down()?;
            let left = cluster.leftovers();
            anyhow::ensure!(left.is_empty(), "left behind after down: {left:?}");
            result
        }
    }
}

async fn run_on<C: ClusterControl>(
    opts: &SuiteOptions,
    s: &Scenario,
    cluster: &mut C,
    dir: &Path,
) -> anyhow::Result<ScenarioResult> {
    let keys = s.keys.unwrap_or(opts.keys);
    let duration = s
        .min_duration
        .map_or(opts.duration, |d| d.max(opts.duration));
    let work = WorkloadSpec {
        nodes: cluster.resp_addrs(),
        clients: opts.clients,
        keys,
        set_pct: s.set_pct,
        duration,
        op_timeout: opts.op_timeout,
        mode: s.mode,
        key_prefix: String::new(),
        seed: opts.seed,
        disconnect_pct: s.disconnect_pct,
        split_roles: s.split_roles,
    };
    let grpcs = cluster.grpc_addrs();
    if s.topology {
        // Splits and merges start once a controller holds the lease (a fresh cluster takes
        // one within its first controller ticks).
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::topology::lease_holder(&grpcs).await.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no node took the controller lease within 30 s of the cluster's start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let progress = crate::progress::timed(duration, s.name, Arc::clone(&live));
    let topology_loop = async {
        if s.topology {
            let never = AtomicBool::new(false);
            crate::topology::run(
                &grpcs,
                TOPOLOGY_EVERY,
                origin,
                duration,
                opts.seed ^ 0x7090,
                &never,
            )
            .await
        } else {
            Vec::new()
        }
    };
    let workload_and_faults = async {
        let (run, faults) = match s.fault {
            Some(fault) => {
                let (first, every, hold) = match fault {
                    Fault::NodeDown => NODE_DOWN_SCHEDULE,
                    _ => (
                        Duration::from_millis(1500),
                        Duration::from_secs(4),
                        Duration::from_millis(1500),
                    ),
                };
                let schedule = Schedule {
                    fault,
                    first,
                    every,
                    hold,
                    seed: opts.seed ^ 0xFA17,
                };
                let (run, faults) = tokio::join!(
                    workload::run(&work, origin, Arc::clone(&stop), Arc::clone(&live)),
                    nemesis::run(cluster, &schedule, origin, duration)
                );
                (run?, faults?)
            }
            None => (
                workload::run(&work, origin, Arc::clone(&stop), Arc::clone(&live)).await?,
                Vec::new(),
            ),
        };
        anyhow::Ok((run, faults))
    };
    let (done, topology) = tokio::join!(workload_and_faults, topology_loop);
    let (run, faults) = done?;
    progress.finish_and_clear();
    let mut faults = faults;
    let mut problems = Vec::new();
    if s.fault.is_some() && faults.is_empty() {
        problems.push(format!(
            "the nemesis injected no fault in {:?} (run longer: the first fault comes at 1.5 s and lasts 1.5 s)",
            duration
        ));
    }
    // Heal what the nemesis left (the network, paused nodes). A node that is down now died
    // on its own: that is a finding. It is restarted only so the final reads can go on.
    faults.extend(nemesis::heal(cluster, origin, &[]).await?);
    let dead: Vec<usize> = (0..cluster.len())
        .filter(|&i| !cluster.is_running(i))
        .collect();
    for &i in &dead {
        let log = cluster.log_text(i);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        problems.push(format!(
            "node {} exited on its own; the end of its log:\n{}",
            i + 1,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    if !dead.is_empty() {
        cluster.restart_all(&dead).await?;
    }
    if s.topology {
        if !topology.iter().any(|t| t.done) {
            let asked: Vec<String> = topology
                .iter()
                .take(5)
                .map(|t| format!("{}: {}", t.action, t.outcome))
                .collect();
            problems.push(format!(
                "no split or merge was done in {} asked (first: {})",
                topology.len(),
                asked.join("; ")
            ));
        }
        // Every operation finishes (its history cut) and every node agrees on the map.
        if let Err(e) =
            crate::topology::settled(&cluster.grpc_addrs(), Duration::from_secs(60)).await
        {
            problems.push(format!("{e:#}"));
        }
    }
    for i in 0..cluster.len() {
        if let Some(line) = cluster
            .log_text(i)
            .lines()
            .find(|l| l.contains("panicked at"))
        {
            problems.push(format!("node {} panicked: {line}", i + 1));
        }
    }
    // Phases end with the workload: later there is nothing to measure.
    let end = duration.as_secs_f64();
    let mut entries = run.entries;
    let first_final = entries.len() as u64;
    // A lock's key holds a token only until it expires; locks are checked by their leases.
    let final_reads = if s.mode == Mode::Lock {
        Vec::new()
    } else {
        final_reads(&*cluster, keys, origin, first_final, opts).await?
    };
    let n_final = final_reads.len();
    entries.extend(final_reads);
    let history = dir.join("history.jsonl");
    crate::history::write(&history, &entries)?;

    let ok = entries[..first_final as usize]
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .count();
    let workload_entries = &entries[..first_final as usize];
    let windows: Vec<nemesis::Phase> = nemesis::phases(&faults, end)
        .into_iter()
        .filter(|p| p.start < end)
        .map(|mut p| {
            p.end = p.end.min(end);
            p
        })
        .filter(|p| p.end - p.start >= 0.05)
        .collect();
    let phases = phase_stats(workload_entries, &windows);
    let mut phases = phases;
    recovery_times(workload_entries, &mut phases);
    let ops_per_sec = ok as f64 / duration.as_secs_f64();
    let writes = workload_entries.iter().filter(|e| e.op.is_write());
    let (ok_writes, all_writes) = writes.fold((0, 0), |(ok, all), e| {
        (ok + usize::from(e.outcome == Outcome::Ok), all + 1)
    });
    // A cluster that refuses every write ("not applied") would pass on reads of nil alone.
    if all_writes > 0 && ok_writes * 4 < all_writes {
        problems.push(format!(
            "only {ok_writes} of {all_writes} writes succeeded: a cluster that refuses writes cannot pass"
        ));
    }
    if ops_per_sec < opts.min_ops_per_sec {
        problems.push(format!(
            "throughput {ops_per_sec:.0} ops/s is below the minimum {:.0} ops/s: the cluster stalled",
            opts.min_ops_per_sec
        ));
    }
    // A stall: the longest time in the run during which no operation completed.
    let (stall, stall_at) = longest_stall(workload_entries, end);
    if stall > opts.max_stall.as_secs_f64() {
        let during = phases
            .iter()
            .find(|p| p.start <= stall_at && stall_at < p.end)
            .map_or("the run", |p| p.label.as_str());
        problems.push(format!(
            "no operation completed for {stall:.1} s from {stall_at:.1} s (during {during}); the limit is {:?}",
            opts.max_stall
        ));
    }
    let started = Instant::now();
    let deadline = opts.check_deadline;
    let checked_entries = entries.clone();
    let report = tokio::task::spawn_blocking(move || {
        check::check(&checked_entries, &check::Options { deadline })
    })
    .await?;
    let check_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut failure_files = Vec::new();
    let verdict = match report.verdict {
        check::Verdict::Linearizable if report.locks_taken > 0 => format!(
            "mutual exclusion held: {} locks taken, {} refused",
            report.locks_taken, report.locks_refused
        ),
        check::Verdict::Linearizable => "linearizable".to_string(),
        check::Verdict::NotLinearizable => {
            problems.push(format!(
                "the history is NOT linearizable:\n{}",
                check::render_text(&report)
            ));
            failure_files = check::write_failure(dir, &report)?;
            "NOT linearizable".to_string()
        }
        check::Verdict::Unknown => {
            problems.push(format!(
                "the checker reached no verdict within {deadline:?}"
            ));
            "no verdict".to_string()
        }
    };
    let timeline = timeline(workload_entries, duration);
    let down_ratio = if s.fault == Some(Fault::NodeDown) {
        down_ratio(&phases)
    } else {
        None
    };
    Ok(ScenarioResult {
        name: s.name.into(),
        description: s.description.into(),
        passed: problems.is_empty(),
        problems,
        ok,
        fail: count(workload_entries, Outcome::Fail),
        unknown: count(workload_entries, Outcome::Unknown),
        final_reads: n_final,
        ops_per_sec,
        verdict,
        check_ms,
        faults,
        phases,
        timeline,
        history,
        failure_files,
        down_ratio,
        topology,
    })
}

/// Ops/s over the phases in which a node was down, as a fraction of the first healthy phase.
fn down_ratio(phases: &[PhaseStats]) -> Option<f64> {
    let healthy = phases.iter().find(|p| p.label == "healthy")?.ops_per_sec;
    let down: Vec<&PhaseStats> = phases
        .iter()
        .filter(|p| p.label.ends_with("killed"))
        .collect();
    let secs: f64 = down.iter().map(|p| p.end - p.start).sum();
    if down.is_empty() || healthy <= 0.0 || secs <= 0.0 {
        return None;
    }
    let ops: f64 = down.iter().map(|p| p.ops_per_sec * (p.end - p.start)).sum();
    Some(ops / secs / healthy)
}

/// The longest interval of `[0, end]` seconds in which no operation completed, and its start.
fn longest_stall(entries: &[Entry], end: f64) -> (f64, f64) {
    let mut done: Vec<f64> = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .map(|e| e.complete_ns as f64 / 1e9)
        .filter(|t| *t <= end)
        .collect();
    done.sort_by(f64::total_cmp);
    let mut best = (0.0, 0.0);
    let mut last = 0.0;
    for t in done.into_iter().chain(std::iter::once(end)) {
        if t - last > best.0 {
            best = (t - last, last);
        }
        last = t;
    }
    best
}

fn count(entries: &[Entry], outcome: Outcome) -> usize {
    entries.iter().filter(|e| e.outcome == outcome).count()
}

/// Reads every key through every node after heal, as single-key GETs (one pipeline per node),
/// each recorded in the history.
async fn final_reads<C: ClusterControl>(
    cluster: &C,
    keys: usize,
    origin: Instant,
    first_id: u64,
    opts: &SuiteOptions,
) -> anyhow::Result<Vec<Entry>> {
    let names: Vec<String> = (0..keys).map(|i| workload::key_name("", i)).collect();
    let mut out = Vec::new();
    let mut id = first_id;
    for (n, addr) in cluster.resp_addrs().iter().enumerate() {
        let timeout = Duration::from_secs(30).max(opts.op_timeout);
        let mut client = Client::connect(addr, timeout).await?;
        // A read refused as "not applied" (contention right after heal) had no effect: it is
        // sent again, and only the attempt that answered is recorded, with its own times.
        let mut pending: Vec<&String> = names.iter().collect();
        for attempt in 0.. {
            if pending.is_empty() {
                break;
            }
            anyhow::ensure!(
                attempt < 50,
                "final reads through {addr}: {} keys still refused after 50 attempts",
                pending.len()
            );
            let commands: Vec<[&str; 2]> = pending.iter().map(|k| ["GET", k.as_str()]).collect();
            let invoke_ns = origin.elapsed().as_nanos() as u64;
            let replies = client
                .pipeline(&commands, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("final reads through {addr}: {e}"))?;
            let complete_ns = origin.elapsed().as_nanos() as u64;
            let mut again = Vec::new();
            for (key, reply) in pending.iter().zip(replies) {
                let v = match reply {
                    Frame::Null => None,
                    Frame::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Frame::Error(e) if workload::proves_no_effect(&String::from_utf8_lossy(&e)) => {
                        again.push(*key);
                        continue;
                    }
                    other => anyhow::bail!("final read of {key} through {addr}: {other:?}"),
                };
                out.push(Entry {
                    id,
                    client: 1_000_000 + n as u32,
                    node: Some(addr.clone()),
                    op: Op::Get {
                        key: (*key).clone(),
                    },
                    outcome: Outcome::Ok,
                    result: Some(OpResult::Value { v }),
                    error: None,
                    invoke_ns,
                    complete_ns,
                });
                id += 1;
            }
            pending = again;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(out)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn phase_stats(entries: &[Entry], phases: &[Phase]) -> Vec<PhaseStats> {
    phases
        .iter()
        .map(|p| {
            let inside: Vec<&Entry> = entries
                .iter()
                .filter(|e| {
                    let t = e.invoke_ns as f64 / 1e9;
                    t >= p.start && t < p.end
                })
                .collect();
            let mut lat: Vec<f64> = inside
                .iter()
                .filter(|e| e.outcome == Outcome::Ok)
                .map(|e| (e.complete_ns - e.invoke_ns) as f64 / 1e6)
                .collect();
            lat.sort_by(f64::total_cmp);
            let ok = lat.len();
            PhaseStats {
                label: p.label.clone(),
                start: p.start,
                end: p.end,
                ok,
                unknown: inside
                    .iter()
                    .filter(|e| e.outcome == Outcome::Unknown)
                    .count(),
                ops_per_sec: ok as f64 / (p.end - p.start).max(1e-9),
                p50_ms: percentile(&lat, 0.5),
                p99_ms: percentile(&lat, 0.99),
                recovered_after_s: None,
            }
        })
        .collect()
}

/// Fills `recovered_after_s` of every healthy phase that follows a fault.
fn recovery_times(entries: &[Entry], phases: &mut [PhaseStats]) {
    let Some(baseline) = phases
        .first()
        .filter(|p| p.label == "healthy")
        .map(|p| p.ops_per_sec)
    else {
        return;
    };
    let target = baseline * 0.25 / 2.0; // half the baseline, per 250 ms window
    let mut done: Vec<f64> = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Ok)
        .map(|e| e.complete_ns as f64 / 1e9)
        .collect();
    done.sort_by(f64::total_cmp);
    for i in 1..phases.len() {
        if phases[i].label != "healthy" || phases[i - 1].label == "healthy" {
            continue;
        }
        let (start, end) = (phases[i].start, phases[i].end);
        let mut t = start;
        while t + 0.25 <= end {
            let lo = done.partition_point(|x| *x < t);
            let hi = done.partition_point(|x| *x < t + 0.25);
            if (hi - lo) as f64 >= target {
                phases[i].recovered_after_s = Some(t - start);
                break;
            }
            t += 0.05;
        }
    }
}

/// Completed operations in each whole second of the run (a last partial second would read as
/// a drop in throughput, so it is left out).
fn timeline(entries: &[Entry], duration: Duration) -> Vec<usize> {
    let secs = (duration.as_secs_f64().floor() as usize).max(1);
    let mut out = vec![0; secs];
    for e in entries.iter().filter(|e| e.outcome == Outcome::Ok) {
        let s = (e.complete_ns / 1_000_000_000) as usize;
        if s < secs {
            out[s] += 1;
        }
    }
    out
}

/// Writes any result as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

mod crash;
pub use crash::{CrashOptions, CrashResults, CycleResult, crash_recovery};

#[cfg(test)]
mod tests;
