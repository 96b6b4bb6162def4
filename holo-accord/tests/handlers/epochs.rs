//! Epochs: adopted in order, carried by every new txn id, and ordering first.

use super::*;
use holo_accord::{EpochError, TxnId};

/// The single range of `topology(3)` split at "m", in `epoch`.
fn split_at_m(epoch: u64) -> Topology {
    let mut t = topology(3);
    t.epoch = epoch;
    let mut right = t.ranges[0].clone();
    right.id = RangeId(2);
    right.start = key("m");
    t.ranges[0].end = Some(key("m"));
    t.ranges.push(right);
    t
}

#[test]
fn epochs_are_adopted_in_order_and_new_txns_carry_the_current_one() {
    let mut n = node(0);
    assert_eq!(n.epoch(), 1);
    assert_eq!(
        n.adopt(split_at_m(3)),
        Err(EpochError::OutOfOrder { current: 1, got: 3 })
    );
    assert_eq!(n.epoch(), 1, "a refused topology changes nothing");
    let before = n.propose(&[], &[key("a")], Bytes::new());
    n.adopt(split_at_m(2)).unwrap();
    let after = n.propose(&[], &[key("a")], Bytes::new());
    assert_eq!((before.timestamp().epoch, after.timestamp().epoch), (1, 2));
    assert!(after > before);
    // The old epoch stays until the host retires it; the current one always stays.
    assert_eq!(n.oldest_epoch(), 1);
    n.retire_epochs_below(5);
    assert_eq!((n.oldest_epoch(), n.epoch()), (2, 2));
    assert_eq!(n.topology().ranges.len(), 2);
}

#[test]
fn a_txn_of_an_old_epoch_witnessed_above_a_later_one_executes_in_the_later() {
    let mut replica = node(1);
    replica.adopt(split_at_m(2)).unwrap();
    // A write of epoch 2 at a low hlc, then a conflicting one of epoch 1 at a higher hlc:
    // epoch orders first, so the second is below the first and must be witnessed above it.
    let mut later = txn(10, 2, &["k"]);
    later.id.0.epoch = 2;
    exchange(
        &mut replica,
        2,
        vec![Message::PreAccept { txn: later.clone() }],
    );
    let lagging = txn(500, 0, &["k"]);
    let replies = exchange(&mut replica, 0, vec![Message::PreAccept { txn: lagging }]);
    let [Message::PreAcceptOk { witnessed, .. }] = replies.as_slice() else {
        panic!("{replies:?}");
    };
    assert!(
        *witnessed > later.id.timestamp(),
        "{witnessed} above {}",
        later.id
    );
    assert_eq!(witnessed.epoch, 2);
}

/// Ticks every node until node 0 coordinates nothing; returns everything they did.
fn run_until_node_0_is_done(nodes: &mut [Node]) -> Vec<(usize, Action)> {
    let mut log = settle(nodes);
    let mut now = 0;
    while nodes[0].coordinating() > 0 && now < 10_000_000 {
        now += 50_000;
        for n in nodes.iter_mut() {
            n.tick(now);
        }
        log.extend(settle(nodes));
    }
    assert_eq!(nodes[0].coordinating(), 0, "the round ends");
    log
}

/// What node 0 told its clients: (invalidated, applied) txn ids.
fn node_0_outcomes(log: &[(usize, Action)]) -> (Vec<TxnId>, Vec<TxnId>) {
    let mut outcomes = (Vec::new(), Vec::new());
    for (_, action) in log.iter().filter(|(i, _)| *i == 0) {
        match action {
            Action::Invalidated { txn_id } => outcomes.0.push(*txn_id),
            Action::Apply { command, .. } => outcomes.1.push(command.txn.id),
            _ => {}
        }
    }
    outcomes
}

#[test]
fn a_lagging_coordinators_txn_below_a_later_sync_point_is_invalidated_not_recovered_for_ever() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    for n in &mut nodes[1..] {
        n.adopt(split_at_m(2)).unwrap();
    }
    nodes[1].propose_sync_point();
    settle(&mut nodes);
    // Node 0 still routes with epoch 1: every id it issues is below the sync point of
    // epoch 2, which was decided without it, so every replica (its own included) refuses it.
    let id = nodes[0].propose(&[], &[key("a")], Bytes::new());
    assert_eq!(id.timestamp().epoch, 1);
    let log = run_until_node_0_is_done(&mut nodes);
    let (invalidated, applied) = node_0_outcomes(&log);
    assert_eq!(invalidated, vec![id], "its client hears it never executed");
    assert!(!applied.contains(&id));
}

#[test]
fn a_stale_maps_txn_is_refused_only_on_the_span_a_cut_covers() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    for n in &mut nodes[1..] {
        n.adopt(split_at_m(2)).unwrap();
    }
    // A history cut of epoch 2: an exclusive sync point over the keys from "m" on.
    let cut = nodes[1].propose_exclusive_sync_point(holo_accord::KeySpan {
        start: key("m"),
        end: None,
    });
    settle(&mut nodes);
    assert_eq!(cut.timestamp().epoch, 2);
    // Node 0 still routes with epoch 1: its txn on the cut span is refused by every replica
    // and its client told it never executed (the host proposes it again in the new epoch);
    // its txn elsewhere executes as usual.
    let inside = nodes[0].propose(&[], &[key("x")], Bytes::new());
    let outside = nodes[0].propose(&[], &[key("a")], Bytes::new());
    assert_eq!(
        (inside.timestamp().epoch, outside.timestamp().epoch),
        (1, 1)
    );
    let log = run_until_node_0_is_done(&mut nodes);
    let (invalidated, applied) = node_0_outcomes(&log);
    assert_eq!(invalidated, vec![inside]);
    assert_eq!(applied, vec![outside]);
}
