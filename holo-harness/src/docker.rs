//! Docker clusters: an image built from our own binary, one container per node on a private
//! network with a pinned subnet, data on named volumes, and network faults made with iptables
//! in each container's network namespace from the host.
//!
//! No image can be pulled on our machines, so `image build` makes one `FROM scratch`: the
//! `holo-node` binary plus, unless it is static, exactly the shared libraries `ldd` lists for
//! it (an imported root file system; RocksDB's `librocksdb.so` comes along), with no
//! `# syntax=` line. The container takes its TOML file at `/etc/holo/node.toml` (a read-only
//! bind mount of the file the harness wrote) and keeps its data in `/data` (a named volume, so
//! a restarted container keeps its disk).
//!
//! Addresses: node N gets `<subnet>.(10 + N)`, RESP on 6379 and gRPC on 5051 inside its
//! container. The harness reaches the nodes at those addresses directly (the host has an
//! interface on the network's bridge); RESP is also published on the host's loopback (a fixed
//! port when asked, else one Docker picks) for ordinary clients. Partition rules drop traffic
//! between node addresses only, so the host's connections (from the bridge gateway) stay up:
//! clients of a cut-off node see its operations time out, as they would in production.
//!
//! The Docker CLI is driven directly (`docker network|volume|run|kill|start|pause|rm`) rather
//! than through the testcontainers crate: a cluster here must outlive the command that
//! started it (`cluster up`, then `cluster down` later), while testcontainers ties a
//! container's life to a handle in one process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterControl, ClusterSpec, NodeState, Partition};

/// The default image tag.
pub const DEFAULT_IMAGE: &str = "holostore/holo-node:dev";
const RESP_PORT: u16 = 6379;
const GRPC_PORT: u16 = 5051;

/// Runs `docker` with `args`; its stdout, or an error with its stderr.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("cannot run `docker`; is the Docker CLI installed?")?;
    if !out.status.success() {
        bail!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True when a Docker engine answers.
pub fn engine_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The shared libraries (and loader) `binary` needs, from `ldd`; empty for a static binary.
pub fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs
}

/// Builds the node image from `binary`; returns the number of libraries copied in.
pub fn build_image(binary: &Path, tag: &str) -> anyhow::Result<usize> {
    ensure!(
        binary.is_file(),
        "{} does not exist; build it with `cargo build --release -p holo-node`",
        binary.display()
    );
    let ctx = tempfile::tempdir().context("cannot create a build context")?;
    let root = ctx.path().join("rootfs");
    for dir in ["data", "etc/holo", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy(binary, root.join("holo-node"))
        .with_context(|| format!("cannot copy {}", binary.display()))?;
    let libs = shared_libraries(binary)?;
    for lib in &libs {
        let dest = root.join(lib.strip_prefix("/").unwrap_or(lib));
        std::fs::create_dir_all(dest.parent().expect("a lib has a parent"))?;
        // Copies the content behind any symlink.
        std::fs::copy(lib, &dest).with_context(|| format!("cannot copy {}", lib.display()))?;
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/holo-node\"]\nCMD [\"--config\", \"/etc/holo/node.toml\"]\n",
    )?;
    let ctx_path = ctx.path().to_str().context("non-UTF-8 temp dir")?;
    let out = Command::new("docker")
        .args(["build", "--quiet", "-t", tag, ctx_path])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .context("cannot run `docker build`")?;
    if !out.status.success() {
        bail!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(libs.len())
}

/// One container as recorded in `cluster.json`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ContainerState {
    pub id: u16,
    pub container: String,
    pub volume: String,
    pub ip: String,
    /// Where the harness reaches RESP (the container's address).
    pub resp_addr: String,
    /// RESP published on the host's loopback.
    pub host_resp: String,
    pub config: PathBuf,
}

/// `cluster.json` of a Docker cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DockerState {
    pub runtime: String,
    pub name: String,
    pub image: String,
    pub network: String,
    pub subnet: String,
    pub spec: ClusterSpec,
    pub nodes: Vec<ContainerState>,
}

/// A cluster of containers.
pub struct DockerCluster {
    pub dir: PathBuf,
    pub state: DockerState,
    paused: Vec<bool>,
    partitioned: bool,
}

/// `a.b.c.0/24` -> `a.b.c.` (the harness pins /24 subnets).
fn subnet_prefix(subnet: &str) -> anyhow::Result<String> {
    let (net, bits) = subnet
        .split_once('/')
        .with_context(|| format!("subnet {subnet:?}: expected a.b.c.0/24"))?;
    ensure!(
        bits == "24",
        "subnet {subnet:?}: only /24 subnets are supported"
    );
    let octets: Vec<&str> = net.split('.').collect();
    ensure!(
        octets.len() == 4 && octets.iter().all(|o| o.parse::<u8>().is_ok()) && octets[3] == "0",
        "subnet {subnet:?}: expected a.b.c.0/24"
    );
    Ok(format!("{}.{}.{}.", octets[0], octets[1], octets[2]))
}

impl DockerCluster {
    /// Creates the network, volumes and containers, and waits until every node serves.
    /// `name` keeps clusters apart (it prefixes every Docker object).
    pub async fn up(
        dir: &Path,
        spec: ClusterSpec,
        image: &str,
        name: &str,
        subnet: &str,
    ) -> anyhow::Result<Self> {
        spec.validate()?;
        ensure!(
            engine_available(),
            "no Docker engine answers (`docker info` failed)"
        );
        ensure!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "cluster name {name:?}: use letters, digits, - and _"
        );
        docker(&["image", "inspect", "--format", "{{.Id}}", image]).with_context(|| {
            format!("image {image} is missing; build it with `holo-harness image build`")
        })?;
        let prefix = subnet_prefix(subnet)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let network = format!("holo-{name}");
        let state = DockerState {
            runtime: "docker".into(),
            name: name.into(),
            image: image.into(),
            network: network.clone(),
            subnet: subnet.into(),
            spec: spec.clone(),
            nodes: Vec::new(),
        };
        let members: Vec<NodeState> = (1..=spec.nodes as u16)
            .map(|id| {
                let ip = format!("{prefix}{}", 10 + id);
                NodeState {
                    id,
                    pid: None,
                    resp_addr: format!("{ip}:{RESP_PORT}"),
                    grpc_addr: format!("{ip}:{GRPC_PORT}"),
                    config: dir.join(format!("node{id}.toml")),
                    data_dir: PathBuf::from("/data"),
                    log: PathBuf::new(),
                }
            })
            .collect();
        docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            subnet,
            "--label",
            "holostore.cluster",
            &network,
        ])
        .with_context(|| {
            format!(
                "cannot create network {network} on {subnet} (is the subnet taken? pass --subnet)"
            )
        })?;
        // From here on, whatever fails leaves a state file that `down` can clean up from.
        let mut cluster = DockerCluster {
            dir: dir.clone(),
            state,
            paused: vec![false; spec.nodes],
            partitioned: false,
        };
        cluster.save()?;
        for m in &members {
            std::fs::write(&m.config, spec.node_toml(m.id, &m.data_dir, &members))
                .with_context(|| format!("cannot write {}", m.config.display()))?;
            let container = format!("holo-{name}-n{}", m.id);
            let volume = format!("holo-{name}-n{}", m.id);
            docker(&["volume", "create", "--label", "holostore.cluster", &volume])?;
            let ip = m.resp_addr.rsplit_once(':').expect("ip:port").0.to_string();
            cluster.state.nodes.push(ContainerState {
                id: m.id,
                container: container.clone(),
                volume: volume.clone(),
                ip: ip.clone(),
                resp_addr: m.resp_addr.clone(),
                host_resp: String::new(),
                config: m.config.clone(),
            });
            cluster.save()?;
            let publish = if spec.resp_base_port == 0 {
                format!("127.0.0.1::{RESP_PORT}")
            } else {
                format!("127.0.0.1:{}:{RESP_PORT}", spec.resp_base_port + m.id - 1)
            };
            let mount = format!("{}:/etc/holo/node.toml:ro", m.config.display());
            let data = format!("{volume}:/data");
            let log_env = format!(
                "RUST_LOG={}",
                std::env::var("HOLO_NODE_LOG").unwrap_or_else(|_| "info".into())
            );
            docker(&[
                "run",
                "--detach",
                "--name",
                &container,
                "--label",
                "holostore.cluster",
                "--network",
                &network,
                "--ip",
                &ip,
                "--volume",
                &data,
                "--volume",
                &mount,
                "--publish",
                &publish,
                "--env",
                &log_env,
                image,
            ])?;
            let host = docker(&["port", &container, &format!("{RESP_PORT}/tcp")])?;
            cluster.state.nodes.last_mut().expect("pushed").host_resp =
                host.lines().next().unwrap_or_default().to_string();
            cluster.save()?;
        }
        for i in 0..cluster.state.nodes.len() {
            cluster.wait_serving(i, Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// Opens the Docker cluster recorded in `dir/cluster.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("cluster.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no cluster in {} ({} is missing)",
                dir.display(),
                path.display()
            )
        })?;
        let state: DockerState = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a Docker cluster state file", path.display()))?;
        let n = state.nodes.len();
        Ok(DockerCluster {
            dir: dir.to_path_buf(),
            state,
            paused: vec![false; n],
            partitioned: false,
        })
    }

    /// True when `dir/cluster.json` describes a Docker cluster.
    pub fn is_docker_dir(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join("cluster.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["runtime"] == "docker")
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join("cluster.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&self.state)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Removes exactly what `up` created: containers, volumes, the network. Returns how many
    /// objects were removed.
    pub fn down(&mut self) -> anyhow::Result<usize> {
        let mut removed = 0;
        for n in &self.state.nodes {
            if docker(&["rm", "--force", "--volumes", &n.container]).is_ok() {
                removed += 1;
            }
        }
        for n in &self.state.nodes {
            if docker(&["volume", "rm", "--force", &n.volume]).is_ok() {
                removed += 1;
            }
        }
        if docker(&["network", "rm", &self.state.network]).is_ok() {
            removed += 1;
        }
        Ok(removed)
    }

    /// Docker objects of this cluster that still exist (empty after `down`).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for n in &self.state.nodes {
            if docker(&["container", "inspect", "--format", "{{.Id}}", &n.container]).is_ok() {
                left.push(format!("container {}", n.container));
            }
            if docker(&["volume", "inspect", "--format", "{{.Name}}", &n.volume]).is_ok() {
                left.push(format!("volume {}", n.volume));
            }
        }
        if docker(&[
            "network",
            "inspect",
            "--format",
            "{{.Id}}",
            &self.state.network,
        ])
        .is_ok()
        {
            left.push(format!("network {}", self.state.network));
        }
        left
    }

    async fn wait_serving(&self, i: usize, within: Duration) -> anyhow::Result<()> {
        let n = &self.state.nodes[i];
        match crate::resp::wait_pong(&n.resp_addr, within).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let logs = docker(&["logs", "--tail", "20", &n.container]).unwrap_or_default();
                Err(e).with_context(|| {
                    format!(
                        "node {} ({}); its last log lines:\n{logs}",
                        n.id, n.container
                    )
                })
            }
        }
    }

    fn container_pid(&self, i: usize) -> anyhow::Result<String> {
        let c = &self.state.nodes[i].container;
        let pid = docker(&["inspect", "--format", "{{.State.Pid}}", c])?;
        ensure!(
            pid != "0" && !pid.is_empty(),
            "container {c} is not running"
        );
        Ok(pid)
    }

    /// Runs iptables in the network namespace of the process `pid` (node `i`'s container).
    fn iptables(pid: &str, i: usize, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("nsenter")
            .args(["--target", pid, "--net", "iptables", "-w"])
            .args(args)
            .output()
            .context("cannot run nsenter/iptables (the harness needs root for network faults)")?;
        ensure!(
            out.status.success(),
            "iptables {} in node {}'s namespace: {}",
            args.join(" "),
            i + 1,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Flushes every node's partition rules (for a `heal` from a separate invocation).
    pub fn force_heal(&mut self) -> anyhow::Result<()> {
        self.flush_rules()?;
        self.partitioned = false;
        Ok(())
    }

    fn flush_rules(&self) -> anyhow::Result<()> {
        for i in 0..self.state.nodes.len() {
            if let Ok(pid) = self.container_pid(i) {
                Self::iptables(&pid, i, &["-F", "INPUT"])?;
                Self::iptables(&pid, i, &["-F", "OUTPUT"])?;
            }
        }
        Ok(())
    }

    /// Drops traffic from node `from` to node `to` (both ends drop it); `pids` are the
    /// containers' process ids.
    fn cut(&self, pids: &[String], from: usize, to: usize) -> anyhow::Result<()> {
        let to_ip = &self.state.nodes[to].ip;
        let from_ip = &self.state.nodes[from].ip;
        Self::iptables(
            &pids[from],
            from,
            &["-A", "OUTPUT", "-d", to_ip, "-j", "DROP"],
        )?;
        Self::iptables(&pids[to], to, &["-A", "INPUT", "-s", from_ip, "-j", "DROP"])
    }

    fn pids(&self) -> anyhow::Result<Vec<String>> {
        (0..self.state.nodes.len())
            .map(|i| self.container_pid(i))
            .collect()
    }
}

impl ClusterControl for DockerCluster {
    fn len(&self) -> usize {
        self.state.nodes.len()
    }

    fn resp_addrs(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .map(|n| n.resp_addr.clone())
            .collect()
    }

    fn grpc_addrs(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .map(|n| format!("{}:{GRPC_PORT}", n.ip))
            .collect()
    }

    async fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        if self.paused[i] {
            docker(&["unpause", &self.state.nodes[i].container])?;
            self.paused[i] = false;
        }
        docker(&["kill", "--signal", "KILL", &self.state.nodes[i].container])?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.is_running(i) {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "container {} survived SIGKILL for 10 s",
                self.state.nodes[i].container
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn kill9_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        let mut args = vec!["kill", "--signal", "KILL"];
        for &i in which {
            if self.paused[i] {
                docker(&["unpause", &self.state.nodes[i].container])?;
                self.paused[i] = false;
            }
        }
        args.extend(
            which
                .iter()
                .map(|&i| self.state.nodes[i].container.as_str()),
        );
        docker(&args)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while which.iter().any(|&i| self.is_running(i)) {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "a container survived SIGKILL for 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn log_text(&self, i: usize) -> String {
        let out = Command::new("docker")
            .args(["logs", &self.state.nodes[i].container])
            .output();
        out.map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
    }

    async fn restart_all(&mut self, which: &[usize]) -> anyhow::Result<()> {
        for &i in which {
            docker(&["start", &self.state.nodes[i].container])?;
        }
        // A restarted container gets a new network namespace: no partition rule survives.
        for &i in which {
            self.wait_serving(i, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        docker(&["pause", &self.state.nodes[i].container])?;
        self.paused[i] = true;
        Ok(())
    }

    fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        docker(&["unpause", &self.state.nodes[i].container])?;
        self.paused[i] = false;
        Ok(())
    }

    fn is_paused(&self, i: usize) -> bool {
        self.paused[i]
    }

    fn is_running(&self, i: usize) -> bool {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &self.state.nodes[i].container,
        ])
        .is_ok_and(|s| s == "true")
    }

    async fn partition(&mut self, kind: Partition, victim: usize) -> anyhow::Result<String> {
        let n = self.len();
        let others: Vec<usize> = (0..n).filter(|&j| j != victim).collect();
        let id = victim + 1;
        let pids = self.pids()?;
        self.partitioned = true;
        match kind {
            Partition::Isolate => {
                for &j in &others {
                    self.cut(&pids, victim, j)?;
                    self.cut(&pids, j, victim)?;
                }
                Ok(format!("node {id} isolated"))
            }
            Partition::OneWay => {
                for &j in &others {
                    self.cut(&pids, j, victim)?;
                }
                Ok(format!("node {id} hears nobody (one-way)"))
            }
            Partition::Split => {
                let minority: Vec<usize> = (0..n.saturating_sub(1) / 2)
                    .map(|k| (victim + k) % n)
                    .collect();
                for &a in &minority {
                    for b in (0..n).filter(|b| !minority.contains(b)) {
                        self.cut(&pids, a, b)?;
                        self.cut(&pids, b, a)?;
                    }
                }
                let ids: Vec<String> = minority.iter().map(|m| (m + 1).to_string()).collect();
                Ok(format!("minority {{{}}} split off", ids.join(",")))
            }
            Partition::Bridge => {
                // Two sides of the remaining nodes; only the victim talks to both.
                let (left, right) = others.split_at(others.len() / 2);
                for &a in left {
                    for &b in right {
                        self.cut(&pids, a, b)?;
                        self.cut(&pids, b, a)?;
                    }
                }
                Ok(format!("node {id} bridges a split"))
            }
        }
    }

    async fn heal_network(&mut self) -> anyhow::Result<bool> {
        if !self.partitioned {
            return Ok(false);
        }
        self.flush_rules()?;
        self.partitioned = false;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_lists_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn subnets_must_be_pinned_slash_24() {
        assert_eq!(subnet_prefix("172.28.5.0/24").unwrap(), "172.28.5.");
        assert!(subnet_prefix("172.28.5.0/16").is_err());
        assert!(subnet_prefix("172.28.5.1/24").is_err());
        assert!(subnet_prefix("nonsense").is_err());
    }
}
