//! Local process clusters: node files, start, stop, kill -9, pause, status.
//!
//! `up` binds every node's RESP and gRPC listener itself (on the configured ports, or on port 0
//! so the OS picks free ones), writes each node's TOML file with the addresses it got, and
//! starts `holo-node` with the listening sockets passed down (`--resp-fd`/`--grpc-fd`), so no
//! port is ever picked by bind-and-release. The cluster directory holds `cluster.json` (the
//! state: pids, addresses, paths), `nodeN.toml`, `data/nodeN/` and `logs/nodeN.log`; `down`
//! signals exactly the pids recorded there, after checking each still runs our binary with
//! that node's config. A restarted node binds its recorded addresses again and keeps its data.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::resp;

/// What to start: the command line or a cluster file in `config/`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// Number of nodes (3 or 5).
    pub nodes: usize,
    /// Storage backend: `redb` or `rocksdb`.
    pub backend: String,
    /// RESP port of node 1 (node N gets base + N - 1); 0 lets the OS pick free ports.
    pub resp_base_port: u16,
    /// gRPC port of node 1; 0 lets the OS pick free ports.
    pub grpc_base_port: u16,
    /// Listen host.
    pub host: String,
    /// Range split points.
    pub split_points: Vec<String>,
    /// TOML lines added to every node's `[accord]` table (e.g. `retry_ms = 100`).
    pub accord: String,
    /// TOML lines for every node's `[faults]` table (deliberate misbehaviour, for tests).
    pub faults: String,
    /// Per node (1-based id), extra lines for its `[faults]` table (e.g. a slow replica's
    /// `send_delay_ms = 25`).
    pub node_faults: Vec<(u16, String)>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 3,
            backend: "redb".into(),
            resp_base_port: 0,
            grpc_base_port: 0,
            host: "127.0.0.1".into(),
            split_points: vec!["4".into(), "8".into(), "c".into()],
            accord: String::new(),
            faults: String::new(),
            node_faults: Vec::new(),
        }
    }
}

impl ClusterSpec {
    /// Reads a cluster file; unknown fields and bad values are errors naming the file.
    pub fn load(path: &Path) -> anyhow::Result<ClusterSpec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let spec: ClusterSpec =
            toml::from_str(&text).with_context(|| format!("{}: invalid", path.display()))?;
        spec.validate()
            .with_context(|| format!("{}: invalid", path.display()))?;
        Ok(spec)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            (1..=7).contains(&self.nodes),
            "nodes: {} is not between 1 and 7",
            self.nodes
        );
        for (field, base) in [
            ("resp_base_port", self.resp_base_port),
            ("grpc_base_port", self.grpc_base_port),
        ] {
            ensure!(
                base == 0 || usize::from(base) + self.nodes <= 65_536,
                "{field}: {base} + {} nodes runs past port 65535",
                self.nodes
            );
        }
        ensure!(
            matches!(self.backend.as_str(), "redb" | "rocksdb"),
            "backend: {:?} is neither \"redb\" nor \"rocksdb\"",
            self.backend
        );
        Ok(())
    }

    pub(crate) fn node_toml(&self, id: u16, data_dir: &Path, members: &[NodeState]) -> String {
        let mut text = format!(
            "# Written by holo-harness.\nnode_id = {id}\ndata_dir = {:?}\n\n[ranges]\nsplit_points = {:?}\n\n[storage]\nbackend = {:?}\n\n[accord]\n{}\n\n[faults]\n{}\n",
            data_dir.display().to_string(),
            self.split_points,
            self.backend,
            self.accord,
            self.faults,
        );
        for (node, extra) in &self.node_faults {
            if *node == id {
                text.push_str(extra);
                text.push('\n');
            }
        }
        let beyond_loopback = members.iter().any(|m| {
            m.id == id
                && m.resp_addr
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| !a.ip().is_loopback())
        });
        if beyond_loopback {
            // Containers listen on the address of a Docker network the harness created for
            // this cluster alone, which only the harness and the other nodes reach.
            text.push_str("\n[auth]\nprotected_mode = false\n");
            text.push_str("\n[security]\nallow_unauthenticated_peers = true\n");
        }
        for m in members {
            text.push_str(&format!(
                "\n[[members]]\nid = {}\nresp_addr = {:?}\ngrpc_addr = {:?}\n",
                m.id, m.resp_addr, m.grpc_addr
            ));
        }
        text
    }
}

/// One node as recorded in `cluster.json`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct NodeState {
    pub id: u16,
    /// The running process, when any.
    pub pid: Option<u32>,
    pub resp_addr: String,
    pub grpc_addr: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// `cluster.json`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ClusterState {
    pub binary: PathBuf,
    pub spec: ClusterSpec,
    pub nodes: Vec<NodeState>,
}

/// A local cluster: its directory and state, plus the child handles of the nodes this process
/// started (so it can reap them).
pub struct LocalCluster {
    pub dir: PathBuf,
    pub state: ClusterState,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    detached: bool,
}

/// A node's health as `status` reports it.
#[derive(Debug, Serialize)]
pub struct NodeHealth {
    pub id: u16,
    pub pid: Option<u32>,
    pub process: &'static str,
    pub serving: bool,
    pub keys: Option<i64>,
    pub ping_ms: Option<f64>,
    pub resp_addr: String,
    pub grpc_addr: String,
    pub log: PathBuf,
}

/// A network fault between nodes (Docker clusters only: each node needs its own host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partition {
    /// The victim can neither send to nor receive from any other node.
    Isolate,
    /// The victim receives nothing from the other nodes but its messages still reach them.
    OneWay,
    /// The nodes split into two sides that only the victim (the bridge) connects.
    Bridge,
    /// A minority (the victim and, with 5 nodes, the next node) cut off from the majority.
    Split,
}

/// What suites and the nemesis need from a cluster, whatever runs it.
#[allow(async_fn_in_trait)]
pub trait ClusterControl {
    /// Number of nodes.
    fn len(&self) -> usize;
    /// A cluster always has nodes; here for the `len` convention.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where the harness reaches each node's RESP port, node 1 first.
    fn resp_addrs(&self) -> Vec<String>;
    /// Where the harness reaches each node's gRPC (admin) service.
    fn grpc_addrs(&self) -> Vec<String>;
    /// SIGKILL node `i` and wait until it is gone.
    async fn kill9(&mut self, i: usize) -> anyhow::Result<()>;
    /// SIGKILL every node in `which` at once, then wait until all are gone.
    async fn kill9_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        for &i in which {
            self.kill9(i).await?;
        }
        Ok(())
    }
    /// The node's log so far (for crash and panic reports).
    fn log_text(&self, i: usize) -> String {
        let _ = i;
        String::new()
    }
    /// Start the given stopped nodes again and wait until each serves.
    async fn restart_all(&mut self, which: &[usize]) -> anyhow::Result<()>;
    fn pause(&mut self, i: usize) -> anyhow::Result<()>;
    fn resume(&mut self, i: usize) -> anyhow::Result<()>;
    fn is_paused(&self, i: usize) -> bool;
    fn is_running(&self, i: usize) -> bool;
    /// Cut the network around `victim`; returns a description (e.g. "node 2 isolated").
    async fn partition(&mut self, kind: Partition, victim: usize) -> anyhow::Result<String> {
        let _ = (kind, victim);
        bail!("network partitions need a Docker cluster (--runtime docker)")
    }
    /// Remove every partition rule; true if there was any.
    async fn heal_network(&mut self) -> anyhow::Result<bool> {
        Ok(false)
    }
}

impl ClusterControl for LocalCluster {
    fn len(&self) -> usize {
        self.state.nodes.len()
    }
    fn resp_addrs(&self) -> Vec<String> {
        LocalCluster::resp_addrs(self)
    }
    fn grpc_addrs(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .map(|n| n.grpc_addr.clone())
            .collect()
    }
    async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        LocalCluster::kill9(self, i).await
    }
    async fn kill9_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        LocalCluster::kill9_all(self, which).await
    }
    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.state.nodes[i].log).unwrap_or_default()
    }
    async fn restart_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        LocalCluster::restart_all(self, which).await
    }
    fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        LocalCluster::pause(self, i)
    }
    fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        LocalCluster::resume(self, i)
    }
    fn is_paused(&self, i: usize) -> bool {
        LocalCluster::is_paused(self, i)
    }
    fn is_running(&self, i: usize) -> bool {
        LocalCluster::is_running(self, i)
    }
}

/// The `holo-node` binary: `$HOLO_NODE_BIN`, else next to this executable.
pub fn default_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("HOLO_NODE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("cannot find the holo-harness executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test executables live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir.join("holo-node"))
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

impl LocalCluster {
    /// Creates the cluster directory, binds every listener, writes node files, starts the
    /// nodes and waits until each answers PING.
    /// `detached`: the nodes get their own process group, so they outlive a Ctrl-C or a
    /// SIGTERM aimed at the harness (`cluster up`); suites and benches keep them in the
    /// harness's group, so a test runner that kills the group kills them too.
    pub async fn up(
        dir: &Path,
        spec: ClusterSpec,
        binary: PathBuf,
        detached: bool,
    ) -> anyhow::Result<Self> {
        spec.validate()?;
        ensure!(
            binary.is_file(),
            "{} does not exist; build it with `cargo build --release -p holo-node` or pass --bin",
            binary.display()
        );
        if let Ok(existing) = LocalCluster::open(dir) {
            let running: Vec<u16> = existing
                .state
                .nodes
                .iter()
                .filter(|n| existing.process_alive(n))
                .map(|n| n.id)
                .collect();
            ensure!(
                running.is_empty(),
                "{} already holds a running cluster (nodes {running:?}); run `holo-harness cluster down --dir {}` first",
                dir.display(),
                dir.display()
            );
        }
        for sub in ["data", "logs"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let mut listeners = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..spec.nodes {
            let port = |base: u16| if base == 0 { 0 } else { base + i as u16 };
            let resp = bind(&format!("{}:{}", spec.host, port(spec.resp_base_port)))?;
            let grpc = bind(&format!("{}:{}", spec.host, port(spec.grpc_base_port)))?;
            let id = i as u16 + 1;
            nodes.push(NodeState {
                id,
                pid: None,
                resp_addr: resp.local_addr()?.to_string(),
                grpc_addr: grpc.local_addr()?.to_string(),
                config: dir.join(format!("node{id}.toml")),
                data_dir: dir.join("data").join(format!("node{id}")),
                log: dir.join("logs").join(format!("node{id}.log")),
            });
            listeners.push((resp, grpc));
        }
        for node in &nodes {
            std::fs::write(
                &node.config,
                spec.node_toml(node.id, &node.data_dir, &nodes),
            )
            .with_context(|| format!("cannot write {}", node.config.display()))?;
        }
        let n = nodes.len();
        let mut cluster = LocalCluster {
            dir,
            state: ClusterState {
                binary,
                spec,
                nodes,
            },
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            detached,
        };
        for (i, (resp, grpc)) in listeners.into_iter().enumerate() {
            cluster.spawn(i, resp, grpc)?;
        }
        cluster.save()?;
        for i in 0..n {
            cluster.wait_serving(i, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// Opens the cluster recorded in `dir/cluster.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = state_path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no cluster in {} ({} is missing); start one with `holo-harness cluster up`",
                dir.display(),
                path.display()
            )
        })?;
        let state: ClusterState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a cluster state file", path.display()))?;
        let n = state.nodes.len();
        Ok(LocalCluster {
            dir: dir.to_path_buf(),
            state,
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            detached: true,
        })
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = state_path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// RESP addresses, node 1 first.
    pub fn resp_addrs(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .map(|n| n.resp_addr.clone())
            .collect()
    }

    fn spawn(&mut self, i: usize, resp: TcpListener, grpc: TcpListener) -> anyhow::Result<()> {
        let node = &self.state.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("cannot open {}", node.log.display()))?;
        let mut command = Command::new(&self.state.binary);
        command
            .arg("--config")
            .arg(&node.config)
            .args(["--resp-fd", "3", "--grpc-fd", "4"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("HOLO_NODE_LOG").unwrap_or_else(|_| "info".into()),
            );
        if self.detached {
            // Its own process group: a Ctrl-C aimed at the harness does not reach the nodes
            // of a cluster that `cluster up` leaves running.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        command
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: resp.into(),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: grpc.into(),
                    child_fd: 4,
                },
            ])
            .context("cannot pass the listeners to holo-node")?;
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.state.binary.display()))?;
        // `command` holds this process's copies of the listeners; drop them so a killed node's
        // ports really close.
        drop(command);
        self.state.nodes[i].pid = Some(child.id());
        self.children[i] = Some(child);
        self.paused[i] = false;
        Ok(())
    }

    /// True when the node's recorded pid runs our binary with its config file.
    pub fn process_alive(&self, node: &NodeState) -> bool {
        let Some(pid) = node.pid else { return false };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if exited(pid, None) {
            return false;
        }
        let config = node.config.as_os_str().as_encoded_bytes();
        cmdline.split(|b| *b == 0).any(|arg| arg == config)
    }

    /// Polls PING on node `i` until it answers; fails early if the process died.
    pub async fn wait_serving(&self, i: usize, within: Duration) -> anyhow::Result<()> {
        let node = &self.state.nodes[i];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if resp::wait_pong(&node.resp_addr, Duration::from_millis(500))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if !self.process_alive(node) {
                bail!(
                    "node {} exited during start-up; the end of {}:\n{}",
                    node.id,
                    node.log.display(),
                    tail(&node.log, 20)
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "node {} does not answer on {} after {within:?}; see {}",
                    node.id,
                    node.resp_addr,
                    node.log.display()
                );
            }
        }
    }

    fn signal(&self, i: usize, signal: Signal) -> anyhow::Result<()> {
        let node = &self.state.nodes[i];
        ensure!(self.process_alive(node), "node {} is not running", node.id);
        let pid = node.pid.expect("alive");
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("cannot send {signal} to node {} (pid {pid})", node.id))
    }

    /// Waits until node `i`'s process is gone (reaping it when this process started it).
    ///
    /// Not [`LocalCluster::process_alive`]: a process in the middle of exiting has already
    /// dropped its memory, so its cmdline reads empty while it still holds its pid, its
    /// sockets and its files. It is gone once its pid is free or a zombie (or a different
    /// process, by start time).
    async fn wait_exit(&mut self, i: usize, within: Duration) -> anyhow::Result<bool> {
        let deadline = tokio::time::Instant::now() + within;
        let pid = self.state.nodes[i].pid;
        let started = pid.and_then(proc_stat).map(|(_, start)| start);
        loop {
            if let Some(child) = self.children[i].as_mut() {
                if child.try_wait()?.is_some() {
                    self.children[i] = None;
                    return Ok(true);
                }
            } else if started.is_none() || pid.is_some_and(|pid| exited(pid, started)) {
                return Ok(true);
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL node `i` and wait until it is gone.
    pub async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        if self.paused[i] {
            // A stopped process dies of SIGKILL too; remember it is no longer paused.
            self.paused[i] = false;
        }
        self.signal(i, Signal::SIGKILL)?;
        ensure!(
            self.wait_exit(i, Duration::from_secs(10)).await?,
            "node {} survived SIGKILL for 10 s",
            i + 1
        );
        self.state.nodes[i].pid = None;
        self.save()
    }

    /// SIGKILL every node in `which` first, then waits for each (all at once, as a power cut).
    pub async fn kill9_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        for &i in which {
            self.paused[i] = false;
            self.signal(i, Signal::SIGKILL)?;
        }
        for &i in which {
            ensure!(
                self.wait_exit(i, Duration::from_secs(10)).await?,
                "node {} survived SIGKILL for 10 s",
                i + 1
            );
            self.state.nodes[i].pid = None;
        }
        self.save()
    }

    /// SIGTERM node `i`, SIGKILL after `grace`.
    pub async fn stop(&mut self, i: usize, grace: Duration) -> anyhow::Result<()> {
        if !self.process_alive(&self.state.nodes[i]) {
            self.state.nodes[i].pid = None;
            return self.save();
        }
        // Another harness process may have paused it: always continue it first.
        let _ = self.signal(i, Signal::SIGCONT);
        self.paused[i] = false;
        if self.signal(i, Signal::SIGTERM).is_ok() && !self.wait_exit(i, grace).await? {
            eprintln!(
                "holo-harness: node {} ignored SIGTERM for {grace:?}; killing it",
                i + 1
            );
            if self.process_alive(&self.state.nodes[i]) {
                self.kill9(i).await?;
            }
        }
        self.state.nodes[i].pid = None;
        self.save()
    }

    /// Starts node `i` again on its recorded addresses and data dir, and waits until it serves.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.restart_all(&[i]).await
    }

    /// Starts every node in `which` again, then waits until each serves.
    pub async fn restart_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        for &i in which {
            ensure!(
                !self.process_alive(&self.state.nodes[i]),
                "node {} is still running",
                i + 1
            );
            let resp = bind_retry(&self.state.nodes[i].resp_addr).await?;
            let grpc = bind_retry(&self.state.nodes[i].grpc_addr).await?;
            self.spawn(i, resp, grpc)?;
        }
        self.save()?;
        for &i in which {
            self.wait_serving(i, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// True while node `i` is stopped by [`LocalCluster::pause`].
    pub fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, Signal::SIGSTOP)?;
        self.paused[i] = true;
        Ok(())
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, Signal::SIGCONT)?;
        self.paused[i] = false;
        Ok(())
    }

    /// True when node `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.process_alive(&self.state.nodes[i])
    }

    /// Stops every node this cluster recorded (SIGTERM, then SIGKILL after `grace`).
    pub async fn down(&mut self, grace: Duration) -> anyhow::Result<usize> {
        let mut stopped = 0;
        for i in 0..self.len() {
            if self.process_alive(&self.state.nodes[i]) {
                self.stop(i, grace).await?;
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// Each node's process state, PING answer and key count.
    pub async fn status(&self) -> Vec<NodeHealth> {
        let mut out = Vec::new();
        for node in &self.state.nodes {
            let alive = self.process_alive(node);
            let mut health = NodeHealth {
                id: node.id,
                pid: node.pid.filter(|_| alive),
                process: if alive { "running" } else { "stopped" },
                serving: false,
                keys: None,
                ping_ms: None,
                resp_addr: node.resp_addr.clone(),
                grpc_addr: node.grpc_addr.clone(),
                log: node.log.clone(),
            };
            if alive
                && let Ok(mut c) =
                    resp::Client::connect(&node.resp_addr, Duration::from_secs(1)).await
            {
                let started = std::time::Instant::now();
                if let Ok(holo_resp::Frame::Simple(_)) =
                    c.call(&["PING"], Duration::from_secs(2)).await
                {
                    health.serving = true;
                    health.ping_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                    if let Ok(holo_resp::Frame::Integer(n)) =
                        c.call(&["DBSIZE"], Duration::from_secs(5)).await
                    {
                        health.keys = Some(n);
                    }
                }
            }
            out.push(health);
        }
        out
    }
}

impl Drop for LocalCluster {
    /// Nodes this process started for itself (suites) do not outlive it by accident: callers
    /// that want a cluster to stay up (`cluster up`) call [`LocalCluster::detach`].
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LocalCluster {
    /// Lets the started nodes outlive this process.
    pub fn detach(mut self) {
        for child in &mut self.children {
            child.take();
        }
    }
}

fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

/// Binds an address a node just released (its old socket may take a moment to close).
async fn bind_retry(addr: &str) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr} again")),
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// No process `pid` runs: none exists, it is a zombie (dead, waiting to be reaped), or it
/// is another process than the one that started at `started` (clock ticks since boot).
fn exited(pid: u32, started: Option<u64>) -> bool {
    proc_stat(pid).is_none_or(|(state, start)| {
        matches!(state, 'Z' | 'X') || started.is_some_and(|s| s != start)
    })
}

/// State letter and start time (clock ticks since boot) of process `pid`, from
/// `/proc/PID/stat`; `None` when no such process exists.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it do not.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // starttime is field 22; `fields` now starts at field 4.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_files_reject_unknown_fields_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "nodes = 3\nbakend = \"redb\"\n").unwrap();
        let err = format!("{:#}", ClusterSpec::load(&path).unwrap_err());
        assert!(err.contains("bakend") && err.contains("c.toml"), "{err}");
        std::fs::write(&path, "backend = \"sqlite\"\n").unwrap();
        let err = format!("{:#}", ClusterSpec::load(&path).unwrap_err());
        assert!(err.contains("backend") && err.contains("sqlite"), "{err}");
        std::fs::write(&path, "nodes = 5\nbackend = \"rocksdb\"\n").unwrap();
        let spec = ClusterSpec::load(&path).unwrap();
        assert_eq!((spec.nodes, spec.backend.as_str()), (5, "rocksdb"));
    }

    #[test]
    fn node_files_name_every_member() {
        let spec = ClusterSpec {
            node_faults: vec![(2, "send_delay_ms = 50".into())],
            ..ClusterSpec::default()
        };
        let members: Vec<NodeState> = (1..=3)
            .map(|id| NodeState {
                id,
                pid: None,
                resp_addr: format!("127.0.0.1:{}", 7000 + id),
                grpc_addr: format!("127.0.0.1:{}", 8000 + id),
                config: PathBuf::new(),
                data_dir: PathBuf::new(),
                log: PathBuf::new(),
            })
            .collect();
        let two: toml::Table =
            toml::from_str(&spec.node_toml(2, Path::new("/d"), &members)).expect("valid TOML");
        assert_eq!(two["node_id"].as_integer(), Some(2));
        assert_eq!(two["members"].as_array().unwrap().len(), 3);
        assert_eq!(two["faults"]["send_delay_ms"].as_integer(), Some(50));
        let one: toml::Table =
            toml::from_str(&spec.node_toml(1, Path::new("/d"), &members)).unwrap();
        assert!(one["faults"].get("send_delay_ms").is_none());
    }

    #[test]
    fn proc_stat_tells_running_from_zombie_from_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let (state, start) = proc_stat(pid).expect("a running child has a stat");
        // Running, sleeping, or in disk sleep while exec loads it (seen once under load).
        assert!(!matches!(state, 'Z' | 'X'), "{state}");
        assert!(start > 0);
        child.kill().unwrap();
        // Not reaped yet: it becomes a zombie with the same start time.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proc_stat(pid).map(|(s, _)| s) != Some('Z') {
            assert!(std::time::Instant::now() < deadline, "{:?}", proc_stat(pid));
            std::thread::yield_now();
        }
        assert_eq!(proc_stat(pid).map(|(_, s)| s), Some(start));
        child.wait().unwrap();
        assert_eq!(proc_stat(pid), None);
    }
}
