//! Docker clusters end to end: the image from our own binary, a cluster up and down leaving
//! nothing behind, the partition scenarios passing the checker, and the isolate scenario
//! catching a node that serves reads from local state. Those drive the harness's own Docker
//! runtime, whose clusters outlive the command that starts them; containers whose life ends
//! with the test go through testcontainers.
//!
//! When no Docker engine answers, each test says so on stderr and returns (`make test` also
//! prints whether they ran). Each test uses its own /24 subnet and object names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use holo_harness::resp::Client;
use holo_resp::Frame;

fn engine() -> bool {
    let ok = holo_harness::docker::engine_available();
    if !ok {
        eprintln!("SKIPPED: no Docker engine answers (`docker info` failed)");
    }
    ok
}

fn node_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_holo-harness"))
        .parent()
        .expect("target dir")
        .join("holo-node")
}

/// The image, built once per test process from the workspace's holo-node binary.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tag = "holostore/holo-node:test".to_string();
        let (out, text) = run(harness().args(["image", "build", "--tag", &tag]));
        assert!(out.status.success(), "{text}");
        tag
    })
}

fn harness() -> Command {
    let node = node_binary();
    assert!(
        node.is_file(),
        "{} is missing: build it with `cargo build -p holo-node`",
        node.display()
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_holo-harness"));
    c.env("HOLO_NODE_BIN", node).env("HOLO_NODE_LOG", "warn");
    c
}

fn run(c: &mut Command) -> (Output, String) {
    let out = c.output().expect("run holo-harness");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn docker_names(filter: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", filter])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn docker_cluster_comes_up_serves_and_leaves_nothing_behind() {
    if !engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("c");
    let name = format!("t{}", std::process::id());
    let (out, text) = run(harness().args([
        "cluster",
        "up",
        "--runtime",
        "docker",
        "--image",
        image(),
        "--subnet",
        "172.28.41.0/24",
        "--name",
        &name,
        "--resp-port",
        "0",
        "--dir",
        cdir.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{text}");
    assert_eq!(
        docker_names(&format!("name=holo-{name}-n")).lines().count(),
        3,
        "three containers"
    );
    let (out, text) = run(harness().args(["cluster", "status", "--dir", cdir.to_str().unwrap()]));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("serving yes").count(), 3, "{text}");
    // Partition node 2, write through node 1, heal, read through node 2.
    let (out, text) = run(harness().args([
        "nemesis",
        "isolate",
        "--node",
        "2",
        "--dir",
        cdir.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{text}");
    let history = dir.path().join("h.jsonl");
    let (out, text) = run(harness().args([
        "workload",
        "--dir",
        cdir.to_str().unwrap(),
        "--clients",
        "3",
        "--keys",
        "4",
        "--duration",
        "3s",
        "--op-timeout",
        "1s",
        "--out",
        history.to_str().unwrap(),
        "--check",
    ]));
    assert!(out.status.success(), "{text}");
    let (out, text) = run(harness().args([
        "nemesis",
        "heal",
        "--node",
        "1",
        "--dir",
        cdir.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{text}");
    let (out, text) = run(harness().args([
        "cluster",
        "down",
        "--dir",
        cdir.to_str().unwrap(),
        "--purge",
    ]));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("removed 7 Docker object(s)"), "{text}");
    assert_eq!(docker_names(&format!("name=holo-{name}-n")), "");
    let net = Command::new("docker")
        .args(["network", "inspect", &format!("holo-{name}")])
        .output()
        .unwrap();
    assert!(!net.status.success(), "the network is gone");
}

#[test]
fn partition_scenarios_pass_the_checker() {
    if !engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(harness().args([
        "suite",
        "linearizability",
        "--runtime",
        "docker",
        "--image",
        image(),
        "--subnet",
        "172.28.42.0/24",
        "--scenario",
        "isolate,one-way,bridge",
        "--duration",
        "5s",
        "--clients",
        "6",
        "--keys",
        "12",
        "--seed",
        "4",
        // Debug binaries beside the other tests on 2 cores: recovering a cut-off node's txns
        // takes recover_after_ms (500 ms here) plus jitter and retries.
        "--max-stall",
        "3s",
        "--dir",
        dir.path().to_str().unwrap(),
    ]));
    println!("{text}");
    assert!(out.status.success(), "{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    for s in r["scenarios"].as_array().unwrap() {
        assert_eq!(s["verdict"], "linearizable", "{s}");
        let phases = s["phases"].as_array().unwrap();
        assert!(
            phases.iter().any(|p| p["label"] != "healthy"),
            "a fault phase is reported: {s}"
        );
    }
}

#[test]
fn isolate_scenario_catches_stale_local_reads() {
    if !engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(harness().args([
        "suite",
        "linearizability",
        "--runtime",
        "docker",
        "--image",
        image(),
        "--subnet",
        "172.28.43.0/24",
        "--scenario",
        "isolate",
        "--duration",
        "5s",
        "--clients",
        "6",
        "--keys",
        "4",
        "--seed",
        "4",
        "--plant-stale-reads",
        "--dir",
        dir.path().to_str().unwrap(),
    ]));
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "the suite must fail:\n{text}");
    assert!(text.contains("NOT linearizable"), "{text}");
}

/// One node's file for a container cluster named by `prefix`: members by container name,
/// the cluster secret mounted beside it.
fn container_toml(id: u16, prefix: &str) -> String {
    // Docker publishes the Redis port on every host interface: a password, and protected
    // mode stays on.
    let mut text = format!(
        "node_id = {id}\ndata_dir = \"/data\"\n\n[auth]\nrequirepass = \"{PASSWORD}\"\n\n[security]\ncluster_secret_file = \"/etc/holo/cluster.secret\"\n"
    );
    for m in 1..=3 {
        text.push_str(&format!(
            "\n[[members]]\nid = {m}\nresp_addr = \"{prefix}-n{m}:6379\"\ngrpc_addr = \"{prefix}-n{m}:5051\"\n"
        ));
    }
    text
}

const PASSWORD: &str = "container-test-password";

/// Containers whose life ends with the test, through testcontainers: three nodes on a
/// network of their own, named by container name in each other's files and talking with
/// the cluster secret; a write through one is read through another. Dropping them removes
/// the containers and the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testcontainers_cluster_by_name_with_a_secret() {
    use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    if !engine() {
        return;
    }
    let (repository, tag) = image().rsplit_once(':').expect("name:tag");
    let dir = tempfile::tempdir().unwrap();
    // Unique across runs sharing a Docker engine (the pid alone repeats across machines).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("holo-tc{}x{nanos}", std::process::id());
    let secret = dir.path().join("cluster.secret");
    std::fs::write(
        &secret,
        "a cluster secret for the container test, long enough\n",
    )
    .unwrap();
    let mut nodes = Vec::new();
    for id in 1..=3u16 {
        let config = dir.path().join(format!("node{id}.toml"));
        std::fs::write(&config, container_toml(id, &prefix)).unwrap();
        let node = GenericImage::new(repository, tag)
            .with_exposed_port(6379.tcp())
            .with_wait_for(WaitFor::message_on_either_std("serving"))
            .with_network(format!("{prefix}-net"))
            .with_container_name(format!("{prefix}-n{id}"))
            .with_mount(Mount::bind_mount(
                config.display().to_string(),
                "/etc/holo/node.toml",
            ))
            .with_mount(Mount::bind_mount(
                secret.display().to_string(),
                "/etc/holo/cluster.secret",
            ))
            .with_env_var("RUST_LOG", "info")
            .with_label("holostore.cluster", "")
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    let mut ports = Vec::new();
    for node in &nodes {
        ports.push(node.get_host_port_ipv4(6379).await.unwrap());
    }
    let timeout = Duration::from_secs(20);
    let mut first = Client::connect(&format!("127.0.0.1:{}", ports[0]), timeout)
        .await
        .unwrap();
    let auth = first.call(&["AUTH", PASSWORD], timeout).await.unwrap();
    assert_eq!(auth, Frame::ok());
    let reply = first
        .call(&["SET", "tc", "by-name"], timeout)
        .await
        .unwrap();
    assert_eq!(reply, Frame::ok());
    let mut third = Client::connect(&format!("127.0.0.1:{}", ports[2]), timeout)
        .await
        .unwrap();
    let auth = third.call(&["AUTH", PASSWORD], timeout).await.unwrap();
    assert_eq!(auth, Frame::ok());
    let reply = third.call(&["GET", "tc"], timeout).await.unwrap();
    assert_eq!(reply, Frame::Bulk("by-name".into()));

    for node in nodes {
        node.rm().await.unwrap();
    }
    assert_eq!(docker_names(&format!("name=^{prefix}-n[0-9]$")), "");
    // testcontainers removes the network once its last container is gone; poll rather than
    // assume when.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let net = Command::new("docker")
            .args(["network", "inspect", &format!("{prefix}-net")])
            .output()
            .unwrap();
        if !net.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "network {prefix}-net is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
