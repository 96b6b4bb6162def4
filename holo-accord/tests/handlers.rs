//! Handler tests that assert the exact actions a node emits, openraft style.

use std::collections::BTreeSet;

use bytes::Bytes;
use holo_accord::{
    Action, Config, Envelope, Message, Node, NodeId, RangeId, RangeInfo, Status, Topology,
};

fn topology(nodes: u16) -> Topology {
    let replicas = (0..nodes).map(NodeId).collect();
    Topology {
        ranges: vec![RangeInfo {
            id: RangeId(1),
            start: Bytes::new(),
            end: None,
            replicas,
        }],
    }
}

fn node(id: u16) -> Node {
    Node::new(NodeId(id), topology(3), Config::default())
}

fn key(k: &str) -> Bytes {
    Bytes::copy_from_slice(k.as_bytes())
}

fn sends(actions: &[Action]) -> Vec<&Envelope> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Send(e) = a {
                Some(e)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn propose_persists_t0_before_any_pre_accept_leaves_and_batches_per_peer() {
    let mut n0 = node(0);
    let a = n0.propose(&[], &[key("x")], Bytes::new());
    let b = n0.propose(&[key("y")], &[], Bytes::new());
    let actions = n0.take_actions();
    // The local replica witnessed both (one Persist each); nothing leaves before that is
    // durable, so a crash can never let the node re-issue a t0 a peer has seen.
    let persisted: Vec<_> = actions
        .iter()
        .filter_map(|a| {
            if let Action::Persist { seq, command } = a {
                Some((*seq, command.txn.id, command.status))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        persisted,
        vec![(1, a, Status::PreAccepted), (2, b, Status::PreAccepted)]
    );
    assert!(sends(&actions).is_empty());
    n0.durable(2);
    let actions = n0.take_actions();
    let envelopes = sends(&actions);
    assert_eq!(
        envelopes.iter().map(|e| e.to).collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2)]
    );
    for e in envelopes {
        assert_eq!(e.messages.len(), 2, "both PreAccepts travel in one batch");
    }
    n0.validate();
}

#[test]
fn a_reply_waits_until_its_state_is_durable() {
    let mut n0 = node(0);
    let mut n1 = node(1);
    n0.propose(&[], &[key("x")], Bytes::new());
    n0.take_actions();
    n0.durable(1);
    let to_n1 = sends(&n0.take_actions())
        .into_iter()
        .find(|e| e.to == NodeId(1))
        .cloned()
        .unwrap();
    n1.receive(to_n1);
    let actions = n1.take_actions();
    assert!(
        sends(&actions).is_empty(),
        "no reply before the PreAccept record is durable"
    );
    assert!(matches!(
        actions.as_slice(),
        [Action::Persist { seq: 1, .. }]
    ));
    n1.durable(1);
    let actions = n1.take_actions();
    let [Action::Send(reply)] = actions.as_slice() else {
        panic!("expected one reply, got {actions:?}")
    };
    let [
        Message::PreAcceptOk {
            witnessed, deps, ..
        },
    ] = reply.messages.as_slice()
    else {
        panic!("{reply:?}")
    };
    assert_eq!(reply.to, NodeId(0));
    assert_eq!(
        witnessed.node, 0,
        "witnessed at t0, the coordinator's timestamp"
    );
    assert!(deps.is_empty());
    n1.validate();
}

/// Delivers every message among the nodes, confirming every persist at once, until quiet.
fn settle(nodes: &mut [Node]) -> Vec<(usize, Action)> {
    let mut log = Vec::new();
    loop {
        let mut progress = false;
        for i in 0..nodes.len() {
            for action in nodes[i].take_actions() {
                progress = true;
                match &action {
                    Action::Send(e) => {
                        let to = e.to.0 as usize;
                        nodes[to].receive(e.clone());
                    }
                    Action::Persist { seq, .. } => nodes[i].durable(*seq),
                    Action::Apply { .. } | Action::Invalidated { .. } => {}
                }
                log.push((i, action));
            }
        }
        if !progress {
            return log;
        }
    }
}

#[test]
fn without_conflicts_all_three_agree_and_the_fast_path_commits_at_t0() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    let id = nodes[0].propose(&[], &[key("x")], Bytes::new());
    let log = settle(&mut nodes);
    let accepts = log.iter().filter(|(_, a)| matches!(a, Action::Send(e) if e.messages.iter().any(|m| matches!(m, Message::Accept { .. })))).count();
    assert_eq!(accepts, 0, "no slow path");
    let applies: Vec<(usize, bool)> = log
        .iter()
        .filter_map(|(i, a)| match a {
            Action::Apply { command, client } => {
                assert_eq!(
                    command.execute_at,
                    id.timestamp(),
                    "fast path: executeAt = t0"
                );
                Some((*i, *client))
            }
            _ => None,
        })
        .collect();
    let mut sorted = applies.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![(0, true), (1, false), (2, false)],
        "every replica applies once; the coordinator answers its client"
    );
    assert_eq!(nodes[0].coordinating(), 0);
    nodes.iter().for_each(Node::validate);
}

#[test]
fn a_replica_that_saw_a_later_conflict_forces_the_slow_path_with_recomputed_deps() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    // Node 2 coordinates a later write to x and witnesses it locally first.
    let first = nodes[0].propose(&[], &[key("x")], Bytes::new());
    nodes[2].tick(1_000_000);
    let second = nodes[2].propose(&[], &[key("x")], Bytes::new());
    assert!(second > first);
    let log = settle(&mut nodes);
    let decided: BTreeSet<_> = log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Apply { command, .. } if command.txn.id == first => Some(command.execute_at),
            _ => None,
        })
        .collect();
    assert_eq!(
        decided.len(),
        1,
        "every replica applies `first` at one executeAt"
    );
    let execute_at = *decided.iter().next().unwrap();
    assert!(
        execute_at > second.timestamp(),
        "node 2 witnessed `first` above `second`, so the slow path moved it"
    );
    // `second` kept its t0 and may list `first` in its deps (replicas saw `first` start
    // earlier), but `first` executes later, so every replica applies `second` first.
    for replica in 0..3 {
        let order: Vec<_> = log
            .iter()
            .filter_map(|(i, a)| match a {
                Action::Apply { command, .. } if *i == replica => {
                    Some((command.txn.id, command.execute_at))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            vec![(second, second.timestamp()), (first, execute_at)],
            "replica {replica}"
        );
    }
    nodes.iter().for_each(Node::validate);
}
