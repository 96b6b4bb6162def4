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
    let mut log = settle(&mut nodes);
    let mut now = 0;
    while nodes[0].coordinating() > 0 && now < 10_000_000 {
        now += 50_000;
        for n in &mut nodes {
            n.tick(now);
        }
        log.extend(settle(&mut nodes));
    }
    assert_eq!(nodes[0].coordinating(), 0, "the round ends");
    let invalidated: Vec<TxnId> = log
        .iter()
        .filter_map(|(i, a)| match a {
            Action::Invalidated { txn_id } if *i == 0 => Some(*txn_id),
            _ => None,
        })
        .collect();
    assert_eq!(invalidated, vec![id], "its client hears it never executed");
    assert!(
        !log.iter()
            .any(|(_, a)| matches!(a, Action::Apply { command, .. } if command.txn.id == id))
    );
}
