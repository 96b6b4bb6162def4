//! The harness CLI end to end against real holo-node processes: a local cluster's life cycle,
//! short versions of both suites (what `make test` runs on every change), and the suite
//! failing when a node carries a planted bug.
//!
//! The nodes are the workspace's `holo-node` binary from the same target directory (nextest
//! and `cargo test --workspace` build it); every port is chosen by the OS (port 0), bound by
//! the harness and passed to the node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn harness() -> Command {
    let node = node_binary();
    assert!(
        node.is_file(),
        "{} is missing: build it with `cargo build -p holo-node` (nextest --workspace does)",
        node.display()
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_holo-harness"));
    c.env("HOLO_NODE_BIN", node).env("HOLO_NODE_LOG", "warn");
    c
}

fn node_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_holo-harness"))
        .parent()
        .expect("target dir")
        .join("holo-node")
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

fn results(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("results.json written")).expect("JSON")
}

/// Stops a CLI-started cluster however the test ends (its nodes are detached).
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        // Not `harness()`: its assertion would panic again while a failed test unwinds.
        let _ = Command::new(env!("CARGO_BIN_EXE_holo-harness"))
            .args(["cluster", "down", "--dir", self.0.to_str().unwrap()])
            .output();
    }
}

#[test]
fn cluster_up_status_workload_nemesis_down() {
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("c");
    let cdir_s = cdir.to_str().unwrap();
    let _down = Down(cdir.clone());
    let (out, text) = run(harness().args([
        "cluster",
        "up",
        "--dir",
        cdir_s,
        "--resp-port",
        "0",
        "--grpc-port",
        "0",
    ]));
    assert!(out.status.success(), "{text}");
    let state = results(&cdir.join("cluster.json"));
    let pids: Vec<u64> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    for pid in &pids {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "node {pid} runs"
        );
    }
    // A second `up` on the same directory refuses instead of starting a second cluster.
    let (out, text) = run(harness().args(["cluster", "up", "--dir", cdir_s]));
    assert!(
        !out.status.success() && text.contains("already holds a running cluster"),
        "{text}"
    );

    let (out, text) = run(harness().args(["cluster", "status", "--dir", cdir_s]));
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" running ").count(), 3, "{text}");

    let history = dir.path().join("h.jsonl");
    let (out, text) = run(harness().args([
        "workload",
        "--dir",
        cdir_s,
        "--clients",
        "4",
        "--keys",
        "8",
        "--duration",
        "2s",
        "--out",
        history.to_str().unwrap(),
        "--check",
    ]));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok"), "{text}");
    let (out, text) = run(harness().args(["check", history.to_str().unwrap()]));
    assert!(out.status.success(), "{text}");

    // kill -9 one node: status says so; restart brings it back on the same port.
    let (out, text) = run(harness().args(["nemesis", "kill", "--node", "2", "--dir", cdir_s]));
    assert!(out.status.success(), "{text}");
    assert!(!Path::new(&format!("/proc/{}", pids[1])).exists() || zombie_or_gone(pids[1]));
    let (out, text) = run(harness().args(["cluster", "status", "--dir", cdir_s]));
    assert!(
        !out.status.success(),
        "status fails while a node is down: {text}"
    );
    assert!(text.contains("stopped"), "{text}");
    let (out, text) = run(harness().args(["nemesis", "restart", "--node", "2", "--dir", cdir_s]));
    assert!(out.status.success(), "{text}");

    let (out, text) = run(harness().args(["cluster", "down", "--dir", cdir_s, "--purge"]));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopped 3 node(s)"), "{text}");
    let state_after: Vec<u64> = pids.clone();
    for pid in state_after {
        assert!(zombie_or_gone(pid), "node {pid} still runs after down");
    }
    assert!(!cdir.exists(), "--purge deletes the directory");
}

/// The harness CLI exits before its detached nodes do, so they are reaped by init; a pid is
/// gone or (briefly) a zombie.
fn zombie_or_gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

/// `holo-harness suite linearizability` into `dir` with the settings both suite tests share,
/// then `extra`.
fn linearizability_suite(dir: &Path, extra: &[&str]) -> Command {
    let mut c = harness();
    c.args(["suite", "linearizability", "--dir", dir.to_str().unwrap()])
        .args(["--clients", "6", "--keys", "12", "--seed", "1"])
        // Debug binaries beside other tests on 2 cores: the per-phase check (nothing
        // completed during a fault phase fails) is what catches a stall here.
        .args(["--min-ops", "5", "--max-stall", "3s"])
        .args(extra);
    c
}

/// Two nodes killed in turn, each kept down for 10 s under load, the second shortly after
/// the first came back (while it still catches up): every phase must keep completing
/// operations, with the history linearizable.
#[test]
fn linearizability_suite_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(&mut linearizability_suite(
        dir.path(),
        &["--scenario", "node-down"],
    ));
    println!("{text}");
    assert!(out.status.success(), "suite failed:\n{text}");
    let r = results(&dir.path().join("results.json"));
    assert_eq!(r["passed"], true);
    let s = &r["scenarios"][0];
    assert_eq!(s["name"], "node-down", "{s}");
    assert_eq!(s["verdict"], "linearizable", "{s}");
    let kills: Vec<&serde_json::Value> = s["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "kill")
        .collect();
    assert_eq!(kills.len(), 2, "two kills: {s}");
    assert_ne!(
        kills[0]["nodes"], kills[1]["nodes"],
        "another victim each time: {s}"
    );
    let ratio = s["down_ratio"].as_f64().unwrap();
    assert!(
        ratio > 0.0,
        "operations completed while a node was down: {s}"
    );
}

/// The linearizability suite's `scenarios` for 4 s each into `dir`; it must pass. Returns
/// its results.
fn short_suite(dir: &Path, scenarios: &str) -> serde_json::Value {
    let (out, text) = run(&mut linearizability_suite(
        dir,
        &["--duration", "4s", "--scenario", scenarios],
    ));
    println!("{text}");
    assert!(out.status.success(), "suite failed:\n{text}");
    results(&dir.join("results.json"))
}

#[test]
fn linearizability_suite_short() {
    let dir = tempfile::tempdir().unwrap();
    // Every scenario but node-down, whose phases take 28 s (it runs on its own above), and
    // the topology ones (below).
    let r = short_suite(
        dir.path(),
        "baseline,hot-key,mixed-nodes,counters,multi-key,disconnects,slow-replica,kill-restart,pause",
    );
    assert_eq!(r["passed"], true);
    assert_eq!(r["complete"], true);
    let scenarios = r["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 9, "every scenario ran");
    for s in scenarios {
        assert_eq!(s["verdict"], "linearizable", "{s}");
        assert!(s["ok"].as_u64().unwrap() > 0, "{s}");
        assert!(s["final_reads"].as_u64().unwrap() > 0, "{s}");
    }
    let kill = scenarios
        .iter()
        .find(|s| s["name"] == "kill-restart")
        .unwrap();
    assert!(
        kill["faults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["action"] == "kill"),
        "the nemesis killed a node: {kill}"
    );
    // The report renders from these results.
    let report = dir.path().join("report");
    let (out, text) = run(harness().args([
        "report",
        dir.path().to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{text}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("kill-restart"));
}

/// Ranges split and merge every 300 ms under register, multi-key and counter workloads,
/// also while the lease holder or another node is killed: every history linearizable, some
/// operations done, and the meta-plane settled (every operation's history cut, every node on
/// the same map) at the end.
#[test]
fn linearizability_suite_split_merge() {
    let dir = tempfile::tempdir().unwrap();
    let r = short_suite(
        dir.path(),
        "split-merge,split-merge-multi,split-merge-counters,split-merge-kill-controller,split-merge-kill-replica",
    );
    let scenarios = r["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 5, "every scenario ran");
    for s in scenarios {
        assert_eq!(s["verdict"], "linearizable", "{s}");
        let done = s["topology"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["done"] == true)
            .count();
        assert!(done > 0, "splits and merges were done: {s}");
    }
    for name in ["split-merge-kill-controller", "split-merge-kill-replica"] {
        let s = scenarios.iter().find(|s| s["name"] == name).unwrap();
        assert!(
            s["faults"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["action"] == "kill"),
            "the nemesis killed a node: {s}"
        );
    }
}

#[test]
fn linearizability_suite_fails_against_stale_local_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(harness().args([
        "suite",
        "linearizability",
        "--dir",
        dir.path().to_str().unwrap(),
        "--scenario",
        "mixed-nodes",
        "--duration",
        "4s",
        "--clients",
        "6",
        "--keys",
        "4",
        "--seed",
        "1",
        "--plant-stale-reads",
    ]));
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "the suite must fail:\n{text}");
    let r = results(&dir.path().join("results.json"));
    assert_eq!(r["scenarios"][0]["verdict"], "NOT linearizable", "{r}");
    let files = r["scenarios"][0]["failure_files"].as_array().unwrap();
    assert!(
        files.iter().any(|f| f.as_str().unwrap().ends_with(".html")),
        "a picture of the failure: {r}"
    );
}

#[test]
fn crash_recovery_suite_short() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = run(harness().args([
        "suite",
        "crash-recovery",
        "--dir",
        dir.path().to_str().unwrap(),
        "--cycles",
        "4",
        "--writers",
        "6",
        "--cycle",
        "2s",
        "--seed",
        "3",
        // The kills land during splits and merges; the meta-plane must settle at the end.
        "--split-merge",
    ]));
    println!("{text}");
    assert!(out.status.success(), "suite failed:\n{text}");
    let r = results(&dir.path().join("results.json"));
    assert_eq!(r["lost_writes"], 0);
    let done: u64 = r["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["topology_done"].as_u64().unwrap())
        .sum();
    assert!(done > 0, "splits and merges ran: {r}");
    assert!(r["acked_writes_checked"].as_u64().unwrap() > 0);
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 4);
    assert_eq!(
        cycles[3]["killed"].as_array().unwrap().len(),
        3,
        "the fourth cycle kills every node at once"
    );
}
