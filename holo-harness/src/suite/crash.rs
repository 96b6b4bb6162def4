//! The crash-recovery suite: kill -9 cycles under write load, every acknowledged write read
//! back through every node after each restart.

use super::*;

/// Options of the crash-recovery suite.
#[derive(Clone, Debug)]
pub struct CrashOptions {
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub backend: String,
    pub cycles: usize,
    pub writers: usize,
    /// Write time per cycle; the kill comes halfway through.
    pub cycle: Duration,
    pub op_timeout: Duration,
    pub seed: u64,
    /// Splits and merges run all through every cycle, so the kills land during them.
    pub split_merge: bool,
}

/// One kill cycle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycleResult {
    pub cycle: usize,
    pub killed: Vec<u16>,
    pub acked: usize,
    pub unknown: usize,
    pub restart_ms: f64,
    pub lost: usize,
    /// Splits and merges done during the cycle (with `split_merge`).
    #[serde(default)]
    pub topology_done: usize,
}

/// The crash-recovery results file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrashResults {
    pub kind: String,
    pub backend: String,
    pub seed: u64,
    pub passed: bool,
    pub cycles: Vec<CycleResult>,
    /// Acknowledged writes read back after the last cycle, from every node.
    pub acked_writes_checked: usize,
    pub reads_checked: usize,
    pub lost_writes: usize,
    pub lost_examples: Vec<String>,
    #[serde(default)]
    pub problems: Vec<String>,
    pub restart_ms_max: f64,
    pub restart_ms_mean: f64,
}

/// Kills nodes under write load `cycles` times (every fourth cycle kills all of them at once),
/// restarts them, and reads every acknowledged write back through every node after each cycle.
pub async fn crash_recovery(opts: &CrashOptions) -> anyhow::Result<CrashResults> {
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let cluster_dir = opts.dir.join("cluster");
    if cluster_dir.exists() {
        std::fs::remove_dir_all(&cluster_dir)?;
    }
    // A results file from an earlier run must not survive a run that errors out.
    let _ = std::fs::remove_file(opts.dir.join("results.json"));
    let spec = ClusterSpec {
        backend: opts.backend.clone(),
        accord: "recover_after_ms = 500\nretry_ms = 100".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = LocalCluster::up(&cluster_dir, spec, opts.binary.clone(), false).await?;
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut results = CrashResults {
        kind: "crash-recovery".into(),
        backend: opts.backend.clone(),
        seed: opts.seed,
        passed: true,
        cycles: Vec::new(),
        acked_writes_checked: 0,
        reads_checked: 0,
        lost_writes: 0,
        lost_examples: Vec::new(),
        problems: Vec::new(),
        restart_ms_max: 0.0,
        restart_ms_mean: 0.0,
    };
    let mut rng = crate::workload::Rng::new(opts.seed);
    for cycle in 0..opts.cycles {
        let victims: Vec<usize> = if cycle % 4 == 3 {
            (0..cluster.len()).collect()
        } else {
            vec![rng.below(cluster.len())]
        };
        let addrs = cluster.resp_addrs();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..opts.writers {
            let addrs = addrs.clone();
            let stop = Arc::clone(&stop);
            let timeout = opts.op_timeout;
            writers.push(tokio::spawn(async move {
                crash_writer(cycle, w, addrs, stop, timeout).await
            }));
        }
        let topology = opts.split_merge.then(|| {
            let grpcs = cluster.grpc_addrs();
            let (every, until, seed) = (TOPOLOGY_EVERY, opts.cycle, opts.seed ^ cycle as u64);
            tokio::spawn(async move {
                let never = std::sync::atomic::AtomicBool::new(false);
                crate::topology::run(&grpcs, every, Instant::now(), until, seed, &never).await
            })
        });
        tokio::time::sleep(opts.cycle / 2).await;
        cluster.kill9_all(&victims).await?;
        tokio::time::sleep(opts.cycle / 2).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let topology_done = match topology {
            Some(t) => t.await?.iter().filter(|t| t.done).count(),
            None => 0,
        };
        let mut cycle_acked = 0;
        let mut unknown = 0;
        for w in writers {
            let (a, u) = w.await?;
            cycle_acked += a.len();
            unknown += u;
            acked.extend(a);
        }
        let restarted = Instant::now();
        cluster.restart_all(&victims).await?;
        let restart_ms = restarted.elapsed().as_secs_f64() * 1e3;
        let (lost, examples) = verify(&cluster, &acked, opts.op_timeout).await?;
        let killed: Vec<u16> = victims.iter().map(|v| *v as u16 + 1).collect();
        let splits_merges = if opts.split_merge {
            format!(", {topology_done} splits and merges")
        } else {
            String::new()
        };
        println!(
            "cycle {:>3}: killed {:?}, {} writes acknowledged ({} unknown){splits_merges}, restart {:.0} ms, {} of {} acknowledged writes lost",
            cycle + 1,
            killed,
            cycle_acked,
            unknown,
            restart_ms,
            lost,
            acked.len()
        );
        results.cycles.push(CycleResult {
            cycle: cycle + 1,
            killed,
            acked: cycle_acked,
            unknown,
            restart_ms,
            lost,
            topology_done,
        });
        if cycle_acked == 0 {
            results.passed = false;
            results
                .problems
                .push(format!("cycle {}: no write was acknowledged", cycle + 1));
        }
        if lost > 0 {
            results.passed = false;
            results.lost_writes = lost;
            results.lost_examples = examples;
            break;
        }
    }
    if opts.split_merge {
        if results.cycles.iter().all(|c| c.topology_done == 0) {
            results.passed = false;
            results
                .problems
                .push("no split or merge was done in any cycle".into());
        }
        if let Err(e) =
            crate::topology::settled(&cluster.grpc_addrs(), Duration::from_secs(60)).await
        {
            results.passed = false;
            results.problems.push(format!("{e:#}"));
        }
    }
    results.acked_writes_checked = acked.len();
    results.reads_checked = acked.len() * cluster.len();
    let restarts: Vec<f64> = results.cycles.iter().map(|c| c.restart_ms).collect();
    results.restart_ms_max = restarts.iter().copied().fold(0.0, f64::max);
    results.restart_ms_mean = restarts.iter().sum::<f64>() / restarts.len().max(1) as f64;
    if acked.is_empty() {
        results.passed = false;
    }
    write_json(&opts.dir.join("results.json"), &results)?;
    Ok(results)
}

/// Writes unique keys through the nodes in turn until `stop`; returns the acknowledged
/// (key, value) pairs and the number of writes whose outcome is unknown.
async fn crash_writer(
    cycle: usize,
    w: usize,
    addrs: Vec<String>,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) -> (Vec<(String, String)>, usize) {
    let mut acked = Vec::new();
    let mut unknown = 0;
    let mut node = w % addrs.len();
    let mut conn: Option<Client> = None;
    let mut n = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if conn.is_none() {
            match Client::connect(&addrs[node], timeout).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    node = (node + 1) % addrs.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        n += 1;
        let key = format!("{:x}-crash-{cycle}-{w}-{n}", n % 16);
        let value = format!("{cycle}.{w}.{n}");
        let c = conn.as_mut().expect("connected");
        match c
            .call(&["SET", key.as_str(), value.as_str()], timeout)
            .await
        {
            Ok(Frame::Simple(s)) if s.as_ref() == b"OK" => acked.push((key, value)),
            Ok(Frame::Error(e)) if workload::proves_no_effect(&String::from_utf8_lossy(&e)) => {}
            _ => {
                unknown += 1;
                conn = None;
                node = (node + 1) % addrs.len();
            }
        }
    }
    (acked, unknown)
}

/// Reads every acknowledged write through every node; returns how many reads disagreed.
async fn verify(
    cluster: &LocalCluster,
    acked: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut lost = 0;
    let mut examples = Vec::new();
    for addr in cluster.resp_addrs() {
        let mut client = Client::connect(&addr, timeout).await?;
        for chunk in acked.chunks(1000) {
            let mut pending: Vec<&(String, String)> = chunk.iter().collect();
            for attempt in 0.. {
                if pending.is_empty() {
                    break;
                }
                anyhow::ensure!(
                    attempt < 50,
                    "reading back through {addr}: {} keys still refused after 50 attempts",
                    pending.len()
                );
                let commands: Vec<[&str; 2]> =
                    pending.iter().map(|(k, _)| ["GET", k.as_str()]).collect();
                let replies = client
                    .pipeline(&commands, Duration::from_secs(60))
                    .await
                    .map_err(|e| anyhow::anyhow!("reading back through {addr}: {e}"))?;
                let mut again = Vec::new();
                for (kv, reply) in pending.iter().zip(replies) {
                    let (key, value) = *kv;
                    if let Frame::Error(e) = &reply
                        && workload::proves_no_effect(&String::from_utf8_lossy(e))
                    {
                        // Not applied (contention after restart): ask again.
                        again.push(*kv);
                        continue;
                    }
                    let got = crate::resp::string_reply(&reply)
                        .with_context(|| format!("GET {key} through {addr}"))?;
                    if got.as_deref() != Some(value.as_str()) {
                        lost += 1;
                        if examples.len() < 10 {
                            examples
                                .push(format!("{addr}: {key} should be {value:?}, read {got:?}"));
                        }
                    }
                }
                pending = again;
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Ok((lost, examples))
}
