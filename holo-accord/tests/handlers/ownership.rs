//! Ownership: a node holds only the txns of ranges it replicates.

use super::*;
use holo_accord::{Command, Status, Timestamp, TxnId};

/// Keys below "m" on nodes 0, 1 and 2; from "m" on, on nodes 1, 2 and 3.
fn two_replica_sets() -> Topology {
    let mut t = topology(3);
    let mut right = t.ranges[0].clone();
    right.id = RangeId(2);
    right.start = key("m");
    right.replicas = vec![NodeId(1), NodeId(2), NodeId(3)];
    t.ranges[0].end = Some(key("m"));
    t.ranges.push(right);
    t
}

fn config_with_sync_points() -> Config {
    Config {
        sync_interval_us: 1_000,
        ..Config::default()
    }
}

fn decided(txn: holo_accord::Txn) -> Command {
    Command {
        execute_at: txn.id.timestamp(),
        txn,
        status: Status::Stable,
        deps: Default::default(),
        promised: holo_accord::Ballot::ZERO,
        accepted: holo_accord::Ballot::ZERO,
        fast_vote: true,
    }
}

#[test]
fn a_node_ignores_the_txns_of_ranges_it_does_not_replicate() {
    let mut n = Node::new(NodeId(3), two_replica_sets(), Config::default());
    assert!(!n.replicates_everything());
    let foreign = txn(10, 0, &["a"]);
    let actions = deliver(
        &mut n,
        0,
        vec![
            Message::PreAccept {
                txn: foreign.clone(),
            },
            Message::Stable {
                txn: foreign.clone(),
                execute_at: foreign.id.timestamp(),
                deps: Default::default(),
            },
            Message::Inform {
                command: decided(foreign.clone()),
            },
        ],
    );
    assert!(actions.is_empty(), "{actions:?}");
    assert!(n.replica().command(&foreign.id).is_none());
    assert_eq!(n.stats().not_replicated, 3);
    // Nor does it answer a read of keys it does not replicate: "no writes" from it would
    // be a lie.
    let read_id = read_id(12, 0);
    let answer = exchange(
        &mut n,
        0,
        vec![Message::ReadDeps {
            read_id,
            keys: vec![key("a")],
        }],
    );
    assert!(answer.is_empty(), "{answer:?}");
    // A txn of its own range is witnessed and answered as ever.
    let own = txn(11, 1, &["x"]);
    let replies = exchange(&mut n, 1, vec![Message::PreAccept { txn: own.clone() }]);
    assert!(
        matches!(&replies[..], [Message::PreAcceptOk { txn_id, .. }] if *txn_id == own.id),
        "{replies:?}"
    );
}

#[test]
fn a_restarted_node_resends_each_decision_to_the_replicas_of_its_range_only() {
    let left = txn(10, 1, &["a"]);
    let right = txn(11, 1, &["x"]);
    let mut n = Node::restart(
        NodeId(1),
        vec![two_replica_sets()],
        Config::default(),
        [decided(left.clone()), decided(right.clone())],
        0,
        (TxnId::default(), Timestamp::ZERO),
    );
    drain(&mut n);
    n.tick(10_000_000);
    let mut told: Vec<(u16, TxnId)> = drain(&mut n)
        .iter()
        .filter_map(|a| match a {
            Action::Send(e) => Some(e),
            _ => None,
        })
        .flat_map(|e| {
            e.messages.iter().filter_map(move |m| match m {
                Message::Stable { txn, .. } => Some((e.to.0, txn.id)),
                _ => None,
            })
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        vec![(0, left.id), (2, left.id), (2, right.id), (3, right.id)]
    );
}

#[test]
fn no_sync_point_while_a_range_lives_on_a_subset_of_the_nodes() {
    // Until deps are kept by key, a sync point over every range would gather deps that
    // a node not replicating them waits for in vain.
    let mut partial = Node::new(NodeId(1), two_replica_sets(), config_with_sync_points());
    let mut full = Node::new(NodeId(1), topology(3), config_with_sync_points());
    for n in [&mut partial, &mut full] {
        propose_write_x(n);
        n.tick(1_000_000);
    }
    let proposed = |n: &mut Node| {
        drain(n).iter().any(|a| {
            matches!(a, Action::Send(e) if e.messages.iter().any(
                |m| matches!(m, Message::PreAccept { txn } if txn.id.is_sync_point())))
        })
    };
    assert!(proposed(&mut full), "the control proposes one");
    assert!(!proposed(&mut partial));
    assert_eq!(partial.propose_barrier(), None);
}
