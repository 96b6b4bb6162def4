//! The Accord core's CPU cost per transaction, without any I/O: three in-memory nodes, every
//! message delivered and every persist confirmed at once, transactions proposed by node 1.
//! It measures what the protocol itself costs (conflict index, deps, messages, records) and
//! nothing of the network, the WAL or storage.
//!
//! ```text
//! cargo bench -p holo-accord --bench core -- [--scenario write|read|batch|all] [--txns N]
//! make bench-cpu    # the same under valgrind --tool=callgrind: instructions per transaction
//! ```
//!
//! Wall time on a shared machine is noisy; the instruction count under callgrind is not (it
//! changes only when the code does), which is what `make bench-cpu` reports.
//!
//! Scenarios: `write`, one single-key write per transaction (keys cycle through 1,024, so
//! the conflict index sees reuse); `read`, one single-key read; `batch`, 64 keys written in
//! one transaction (what the node's batching proposes under pipelined load). Every 256
//! transactions a sync point is applied and made durable everywhere, so GC keeps the state
//! bounded as in a running cluster.

use std::time::Instant;

use bytes::Bytes;
use holo_accord::{Action, Config, Node, NodeId, Topology};

fn topology() -> Topology {
    Topology::whole((0..3).map(NodeId).collect())
}

/// Delivers every message and confirms every persist until nothing moves; returns the
/// sync points applied by node 0.
fn settle(nodes: &mut [Node]) -> Vec<holo_accord::TxnId> {
    let mut applied = Vec::new();
    loop {
        let mut progress = false;
        for i in 0..nodes.len() {
            for action in nodes[i].take_actions() {
                progress = true;
                match action {
                    Action::Send(e) => {
                        let to = e.to.0 as usize;
                        nodes[to].receive(e);
                    }
                    Action::Persist { seq, .. } | Action::ReserveClock { seq, .. } => {
                        nodes[i].durable(seq);
                    }
                    Action::Apply { command, .. } if i == 0 && command.txn.id.is_sync_point() => {
                        applied.push(command.txn.id);
                    }
                    _ => {}
                }
            }
        }
        if !progress {
            return applied;
        }
    }
}

fn run(scenario: &str, txns: usize) -> f64 {
    let config = Config {
        sync_interval_us: 0,
        ..Config::default()
    };
    let mut nodes: Vec<Node> = (0..3)
        .map(|id| Node::new(NodeId(id), topology(), config))
        .collect();
    let keys: Vec<Bytes> = (0..1024).map(|i| Bytes::from(format!("key{i}"))).collect();
    let op = Bytes::from_static(b"op");
    let started = Instant::now();
    for n in 0..txns {
        match scenario {
            "write" => {
                nodes[0].propose(&[], &[keys[n % keys.len()].clone()], op.clone());
            }
            "read" => {
                nodes[0].propose(&[keys[n % keys.len()].clone()], &[], op.clone());
            }
            _ => {
                let batch: Vec<Bytes> = (0..64)
                    .map(|j| keys[(n * 64 + j) % keys.len()].clone())
                    .collect();
                nodes[0].propose(&[], &batch, op.clone());
            }
        }
        settle(&mut nodes);
        if n % 256 == 255 {
            let s = nodes[0].propose_sync_point();
            settle(&mut nodes);
            for node in &mut nodes {
                node.sync_durable(s);
            }
            settle(&mut nodes);
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / txns as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let txns: usize = value("--txns")
        .and_then(|t| t.parse().ok())
        .unwrap_or(20_000);
    let scenario = value("--scenario").unwrap_or_else(|| "all".into());
    let scenarios: Vec<&str> = match scenario.as_str() {
        "all" => vec!["write", "read", "batch"],
        one => vec![one],
    };
    for s in scenarios {
        let us = run(s, txns);
        println!("core {s:<6} {txns} txns: {us:.2} us per transaction (wall time, three nodes)");
    }
}
