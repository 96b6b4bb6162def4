//! Sync points: refusals below them and when they lift, GC, and inquiries about what a
//! replica never saw.

use super::*;

#[test]
fn a_replica_that_saw_a_sync_point_refuses_unknown_txns_below_it() {
    let mut n1 = node(1);
    let known = txn(10, 0, &["x"]);
    exchange(&mut n1, 0, vec![Message::PreAccept { txn: known.clone() }]);
    // The sync point's deps are every txn below it that the replica knows; it never votes.
    let s = sync_point(20, 2);
    let replies = exchange(&mut n1, 2, vec![Message::PreAccept { txn: s.clone() }]);
    assert_eq!(
        replies,
        vec![Message::PreAcceptOk {
            txn_id: s.id,
            witnessed: s.id.timestamp(),
            deps: BTreeSet::from([known.id]),
        }]
    );
    assert!(!n1.replica().command(&s.id).unwrap().fast_vote);
    // Unknown and below it: refused in every round, and recovery hears no vote and a
    // fast path ruled out. Known txns below it and txns above it are served as before.
    let late = txn(15, 0, &["y"]);
    let replies = exchange(
        &mut n1,
        0,
        vec![
            Message::PreAccept { txn: late.clone() },
            Message::Accept {
                txn: late.clone(),
                ballot: holo_accord::Ballot::ZERO,
                execute_at: late.id.timestamp(),
                deps: holo_accord::Deps::new(),
            },
            // Invalidation too: acknowledging it without recording it would let a later
            // recovery hear that nothing was accepted.
            Message::AcceptInvalidate {
                txn: late.clone(),
                ballot: ballot(29, 0),
            },
        ],
    );
    assert_eq!(
        replies,
        vec![
            Message::Refused {
                txn_id: late.id,
                excluded: false
            },
            Message::Refused {
                txn_id: late.id,
                excluded: false
            },
            Message::Refused {
                txn_id: late.id,
                excluded: false
            },
        ]
    );
    let ballot = ballot(30, 0);
    let replies = exchange(
        &mut n1,
        0,
        vec![Message::BeginRecovery {
            txn: late.clone(),
            ballot,
        }],
    );
    assert_eq!(
        replies,
        vec![Message::RecoverOk {
            txn_id: late.id,
            ballot,
            info: holo_accord::RecoverInfo {
                status: Status::PreAccepted,
                accepted: holo_accord::Ballot::ZERO,
                execute_at: late.id.timestamp(),
                deps: BTreeSet::new(),
                fast_vote: false,
                rejects_fast_path: false,
                undecided_blocker: false,
                refused: true,
            },
        }]
    );
    assert!(n1.replica().command(&late.id).is_none(), "never recorded");
    let above = txn(25, 0, &["y"]);
    let replies = exchange(&mut n1, 0, vec![Message::PreAccept { txn: above.clone() }]);
    assert!(matches!(&replies[..], [Message::PreAcceptOk { txn_id, .. }] if *txn_id == above.id));
    n1.validate();
}

#[test]
fn gc_drops_finished_records_once_every_replica_applied_a_sync_point() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    let a = nodes[0].propose(&[], &[key("x")], Bytes::new());
    settle(&mut nodes);
    let s = nodes[1].propose_sync_point();
    let log = settle(&mut nodes);
    // Every node applies the sync point after the txn below it.
    for i in 0..3 {
        let applied: Vec<_> = log
            .iter()
            .filter_map(|(n, action)| match action {
                Action::Apply { command, .. } if *n == i => Some(command.txn.id),
                _ => None,
            })
            .collect();
        assert_eq!(applied, vec![s], "node {i}");
    }
    // Nothing is dropped until every replica said its apply is durable.
    nodes[0].sync_durable(s);
    nodes[1].sync_durable(s);
    let log = settle(&mut nodes);
    assert!(
        !log.iter()
            .any(|(_, a)| matches!(a, Action::Truncate { .. }))
    );
    assert!(nodes[0].replica().command(&a).is_some());
    nodes[2].sync_durable(s);
    let log = settle(&mut nodes);
    let truncated: Vec<usize> = log
        .iter()
        .filter_map(|(n, action)| match action {
            Action::Truncate { floor, .. } if *floor == s => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(truncated, vec![2, 0, 1]);
    for n in &nodes {
        assert!(n.replica().command(&a).is_none(), "dropped");
        assert!(
            n.replica().command(&s).is_some(),
            "the sync point itself stays"
        );
        assert_eq!(n.sync_state(), (s, s));
        n.validate();
    }
    // A late duplicate of the dropped txn's decision changes nothing.
    let replies = exchange(
        &mut nodes[1],
        0,
        vec![Message::Stable {
            txn: holo_accord::Txn::new(a, &[], &[key("x")], Bytes::new()),
            execute_at: a.timestamp(),
            deps: BTreeSet::new(),
        }],
    );
    assert_eq!(replies, vec![Message::StableOk { txn_id: a }]);
    assert!(nodes[1].replica().command(&a).is_none());
}

#[test]
fn no_new_sync_point_while_an_earlier_one_waits_for_a_lagging_peer() {
    let config = Config {
        sync_interval_us: 100_000,
        ..Config::default()
    };
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::new(NodeId(i), topology(3), config))
        .collect();
    nodes[0].propose(&[], &[key("x")], Bytes::new());
    settle(&mut nodes);
    // Due and holding a record to collect: node 0 proposes a sync point; all apply it.
    nodes[0].tick(100_000);
    let log = settle(&mut nodes);
    let proposed = sync_points_proposed(&log, 0);
    assert_eq!(proposed.len(), 1, "{log:?}");
    let s = *proposed.first().unwrap();
    // Nodes 0 and 1 made the apply durable; node 2 lags (in the field: it is down).
    nodes[0].sync_durable(s);
    nodes[1].sync_durable(s);
    nodes[0].propose(&[], &[key("y")], Bytes::new());
    settle(&mut nodes);
    // Another interval: a new sync point could not be collected before node 2 applies `s`,
    // so none is proposed (each one depends on every earlier one).
    nodes[0].tick(250_000);
    let log = settle(&mut nodes);
    assert!(sync_points_proposed(&log, 0).is_empty(), "{log:?}");
    // Node 2 catches up: GC runs and the next sync point follows on the next tick.
    nodes[2].sync_durable(s);
    let log = settle(&mut nodes);
    assert!(
        log.iter()
            .any(|(_, a)| matches!(a, Action::Truncate { floor, .. } if *floor == s))
    );
    nodes[0].tick(400_000);
    let log = settle(&mut nodes);
    let next = sync_points_proposed(&log, 0);
    assert!(next.len() == 1 && *next.first().unwrap() > s, "{log:?}");
    for n in &nodes {
        n.validate();
    }
}

#[test]
fn no_new_sync_point_while_an_earlier_one_waits_for_its_deps() {
    let config = Config {
        sync_interval_us: 50_000,
        ..Config::default()
    };
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::new(NodeId(i), topology(3), config))
        .collect();
    // Node 1 pre-accepted a txn whose coordinator, node 0, then went away.
    let u = txn(10, 0, &["x"]);
    exchange(
        &mut nodes[1],
        0,
        vec![Message::PreAccept { txn: u.clone() }],
    );
    // Node 1's sync point is decided with `u` among its deps; it cannot be applied while
    // `u` is undecided.
    nodes[1].tick(50_000);
    let log = settle(&mut nodes);
    let proposed = sync_points_proposed(&log, 1);
    assert_eq!(proposed.len(), 1, "{log:?}");
    let s = *proposed.first().unwrap();
    let command = nodes[1].replica().command(&s).expect("known");
    assert_eq!(command.status, Status::Stable);
    assert!(command.deps.contains(&u.id));
    // Another interval, before recovery of `u` is due: no second sync point behind the first.
    nodes[1].tick(120_000);
    let log = settle(&mut nodes);
    assert!(sync_points_proposed(&log, 1).is_empty(), "{log:?}");
    for n in &nodes {
        n.validate();
    }
}

#[test]
fn a_refusing_replica_still_reports_conflicts_decided_or_accepted_after_t0() {
    let mut n1 = node(1);
    // A write on x decided at its t0 (30) without the txn below, and one on y accepted at 31.
    let w = txn(30, 2, &["x"]);
    let a = txn(31, 2, &["y"]);
    exchange(
        &mut n1,
        2,
        vec![
            Message::Stable {
                txn: w.clone(),
                execute_at: w.id.timestamp(),
                deps: BTreeSet::new(),
            },
            Message::Accept {
                txn: a.clone(),
                ballot: holo_accord::Ballot::ZERO,
                execute_at: a.id.timestamp(),
                deps: holo_accord::Deps::new(),
            },
        ],
    );
    exchange(
        &mut n1,
        2,
        vec![Message::PreAccept {
            txn: sync_point(40, 2),
        }],
    );
    // Txns below the sync point that n1 never saw are refused, but recovery hears what n1
    // knows: the write decided after t0 without them rules out their fast path (else a
    // recovery could commit a read of x at t0 below `w`, which never waited for it), and
    // the accepted one makes a recovery of a txn on y wait for its decision.
    let ballot = ballot(50, 0);
    for (t, rejects, blocker) in [
        (txn(10, 0, &["x"]), true, false),
        (txn(11, 0, &["y"]), false, true),
        (txn(12, 0, &["z"]), false, false),
    ] {
        let replies = exchange(
            &mut n1,
            0,
            vec![Message::BeginRecovery {
                txn: t.clone(),
                ballot,
            }],
        );
        assert_eq!(
            replies,
            vec![Message::RecoverOk {
                txn_id: t.id,
                ballot,
                info: holo_accord::RecoverInfo {
                    status: Status::PreAccepted,
                    accepted: holo_accord::Ballot::ZERO,
                    execute_at: t.id.timestamp(),
                    deps: BTreeSet::new(),
                    fast_vote: false,
                    rejects_fast_path: rejects,
                    undecided_blocker: blocker,
                    refused: true,
                },
            }],
            "{t:?}"
        );
        assert!(
            n1.replica().command(&t.id).is_none(),
            "refused, not recorded"
        );
    }
    n1.validate();
}

#[test]
fn a_replica_asks_about_a_sync_point_a_peer_applied_and_it_never_saw() {
    let mut n2 = node(2);
    let s = sync_point(20, 0);
    n2.receive(Envelope {
        from: NodeId(0),
        to: NodeId(2),
        messages: vec![Message::SyncApplied {
            txn_id: s.id,
            query: true,
        }],
    });
    n2.take_actions();
    n2.tick(1_000);
    let actions = n2.take_actions();
    let inquiries: Vec<(NodeId, Message)> = sends(&actions)
        .into_iter()
        .flat_map(|e| e.messages.iter().map(|m| (e.to, m.clone())))
        .filter(|(_, m)| matches!(m, Message::Inquire { .. }))
        .collect();
    assert_eq!(
        inquiries,
        vec![
            (NodeId(0), Message::Inquire { txn_id: s.id }),
            (NodeId(1), Message::Inquire { txn_id: s.id }),
        ]
    );
}

#[test]
fn refusals_decide_nothing_until_a_replica_proves_the_txn_can_never_execute() {
    let mut n0 = node(0);
    let t = propose_write_x(&mut n0);
    // Both peers saw a later sync point not decided there yet: they refuse for now, and will
    // take part once it is decided, so their refusals decide nothing (an invalidation
    // decided by counting them could meet an execution accepted by the same replicas later).
    let pending = Message::Refused {
        txn_id: t,
        excluded: false,
    };
    let mut actions = Vec::new();
    for from in [1, 2] {
        actions.extend(deliver(&mut n0, from, vec![pending.clone()]));
    }
    n0.tick(1_000);
    actions.extend(n0.take_actions());
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Invalidated { .. })),
        "{actions:?}"
    );
    // Then one of them has the sync point decided without the txn: it can never execute,
    // and the coordinator decides the invalidation without another round.
    let excluded = Message::Refused {
        txn_id: t,
        excluded: true,
    };
    let actions = deliver(&mut n0, 1, vec![excluded]);
    assert!(
        actions.contains(&Action::Invalidated { txn_id: t }),
        "{actions:?}"
    );
    let invalidates: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|e| {
            e.messages
                .iter()
                .any(|m| matches!(m, Message::Invalidate { txn } if txn.id == t))
        })
        .map(|e| e.to)
        .collect();
    assert_eq!(invalidates, vec![NodeId(1), NodeId(2)]);
    assert_eq!(
        n0.replica().command(&t).unwrap().status,
        Status::Invalidated
    );
    n0.validate();
}

/// A replica that refused a txn below an undecided sync point: once the sync point is
/// decided with the txn in its deps it takes part (without a fast-path vote), and once one
/// is decided without it, it says the txn can never execute.
#[test]
fn a_refusal_lasts_until_the_sync_point_above_is_decided() {
    let s = sync_point(20, 2);
    let late = txn(15, 0, &["y"]);
    let stable = |deps: Vec<holo_accord::TxnId>| Message::Stable {
        txn: s.clone(),
        execute_at: s.id.timestamp(),
        deps: deps.into_iter().collect(),
    };
    let ballot = ballot(30, 0);
    // Decided with the txn in its deps (another replica knew it): the refusal is void, but
    // a PreAccept is still refused (an answer at t0 would count as a fast-path vote), so the
    // coordinator takes the slow path, and its Accept is taken.
    let mut n1 = node(1);
    exchange(&mut n1, 2, vec![Message::PreAccept { txn: s.clone() }]);
    exchange(&mut n1, 2, vec![stable(vec![late.id])]);
    let replies = exchange(
        &mut n1,
        0,
        vec![
            Message::PreAccept { txn: late.clone() },
            Message::Accept {
                txn: late.clone(),
                ballot: holo_accord::Ballot::ZERO,
                execute_at: late.id.timestamp(),
                deps: holo_accord::Deps::new(),
            },
        ],
    );
    assert!(
        matches!(
            &replies[..],
            [
                Message::Refused {
                    excluded: false,
                    ..
                },
                Message::AcceptOk { txn_id, .. }
            ] if *txn_id == late.id
        ),
        "{replies:?}"
    );
    assert!(!n1.replica().command(&late.id).unwrap().fast_vote);
    n1.validate();
    // Decided without it: it can never execute, in every round, recovery included.
    let mut n1 = node(1);
    exchange(&mut n1, 2, vec![Message::PreAccept { txn: s.clone() }]);
    exchange(&mut n1, 2, vec![stable(vec![])]);
    let replies = exchange(
        &mut n1,
        0,
        vec![
            Message::PreAccept { txn: late.clone() },
            Message::BeginRecovery {
                txn: late.clone(),
                ballot,
            },
        ],
    );
    let excluded = Message::Refused {
        txn_id: late.id,
        excluded: true,
    };
    assert_eq!(replies, vec![excluded.clone(), excluded]);
    assert!(n1.replica().command(&late.id).is_none(), "never recorded");
    n1.validate();
}

#[test]
fn an_inquiry_is_answered_with_the_state_held_and_the_answer_unblocks_a_waiting_txn() {
    let mut n1 = node(1);
    let y = txn(10, 0, &["x"]);
    let x = txn(20, 0, &["x"]);
    exchange(
        &mut n1,
        0,
        vec![Message::Stable {
            txn: y.clone(),
            execute_at: y.id.timestamp(),
            deps: holo_accord::Deps::new(),
        }],
    );
    let held = n1.replica().command(&y.id).unwrap().clone();
    // Known: the whole record. Unknown: silence (another replica may know it).
    let replies = exchange(
        &mut n1,
        2,
        vec![
            Message::Inquire { txn_id: y.id },
            Message::Inquire { txn_id: x.id },
        ],
    );
    assert_eq!(
        replies,
        vec![Message::Inform {
            command: held.clone()
        }]
    );

    // Node 2 holds x, which waits for y, and never heard of y: the answer lets x execute.
    let mut n2 = node(2);
    exchange(
        &mut n2,
        0,
        vec![Message::Stable {
            txn: x.clone(),
            execute_at: x.id.timestamp(),
            deps: [y.id].into_iter().collect(),
        }],
    );
    assert!(n2.replica().command(&y.id).is_none());
    n2.receive(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        messages: vec![Message::Inform { command: held }],
    });
    let applied: Vec<holo_accord::TxnId> = n2
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Apply { command, .. } => Some(command.txn.id),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![y.id, x.id]);
    n2.validate();
}

fn exclusive_sync_point(hlc: u64, coordinator: u16, start: &str, end: &str) -> holo_accord::Txn {
    holo_accord::Txn {
        scope: Some(holo_accord::KeySpan {
            start: key(start),
            end: Some(key(end)),
        }),
        ..sync_point(hlc, coordinator)
    }
}

#[test]
fn an_exclusive_sync_point_refuses_only_txns_that_touch_its_span() {
    let mut n1 = node(1);
    let inside = txn(10, 0, &["k4"]);
    let outside = txn(11, 0, &["a"]);
    exchange(
        &mut n1,
        0,
        vec![
            Message::PreAccept {
                txn: inside.clone(),
            },
            Message::PreAccept {
                txn: outside.clone(),
            },
        ],
    );
    // Its deps are the txns below it that touch its span only.
    let x = exclusive_sync_point(20, 2, "k3", "k6");
    let replies = exchange(&mut n1, 2, vec![Message::PreAccept { txn: x.clone() }]);
    assert_eq!(
        replies,
        vec![Message::PreAcceptOk {
            txn_id: x.id,
            witnessed: x.id.timestamp(),
            deps: BTreeSet::from([inside.id]),
        }]
    );
    // Unknown txns below it: refused if they touch the span (one key is enough), served
    // as before elsewhere.
    let late_inside = txn(15, 0, &["k5"]);
    let late_across = txn(16, 0, &["a", "k3"]);
    let late_outside = txn(17, 0, &["k6"]);
    let replies = exchange(
        &mut n1,
        0,
        [&late_inside, &late_across, &late_outside]
            .into_iter()
            .map(|t| Message::PreAccept { txn: t.clone() })
            .collect(),
    );
    assert_eq!(
        replies[..2],
        [
            Message::Refused {
                txn_id: late_inside.id,
                excluded: false
            },
            Message::Refused {
                txn_id: late_across.id,
                excluded: false
            },
        ]
    );
    assert!(
        matches!(&replies[2], Message::PreAcceptOk { txn_id, .. } if *txn_id == late_outside.id)
    );
    // Decided without them: they can never execute, and a recovery hears so.
    exchange(
        &mut n1,
        2,
        vec![Message::Stable {
            txn: x.clone(),
            execute_at: x.id.timestamp(),
            deps: BTreeSet::from([inside.id]),
        }],
    );
    let recovery = Message::BeginRecovery {
        txn: late_inside.clone(),
        ballot: ballot(30, 0),
    };
    assert_eq!(
        exchange(&mut n1, 0, vec![recovery]),
        vec![Message::Refused {
            txn_id: late_inside.id,
            excluded: true
        }]
    );
    assert!(n1.replica().excluded_txn(&late_across));
    assert!(!n1.replica().excluded_txn(&late_outside));
    n1.validate();
}

#[test]
fn a_cut_is_done_once_every_replica_applied_its_exclusive_sync_point() {
    use holo_accord::CutStatus;
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    let a = nodes[0].propose(&[], &[key("k4")], Bytes::new());
    let b = nodes[0].propose(&[], &[key("z")], Bytes::new());
    settle(&mut nodes);
    let span = holo_accord::KeySpan {
        start: key("k3"),
        end: Some(key("k6")),
    };
    let x = nodes[1].propose_exclusive_sync_point(span);
    let log = settle(&mut nodes);
    for (i, n) in nodes.iter().enumerate() {
        let applied: Vec<_> = log
            .iter()
            .filter_map(|(n, action)| match action {
                Action::Apply { command, .. } if *n == i => Some(command.txn.id),
                _ => None,
            })
            .collect();
        assert_eq!(applied, vec![x], "node {i}");
        assert_eq!(
            n.replica().command(&x).unwrap().deps,
            BTreeSet::from([a]),
            "only the txn in its span is a dep, not {b}"
        );
    }
    assert_eq!(nodes[1].cut_status(x), CutStatus::Waiting);
    assert_eq!(
        nodes[0].cut_status(x),
        CutStatus::Unknown,
        "not proposed there"
    );
    nodes[1].cut_durable(x);
    nodes[0].cut_durable(x);
    settle(&mut nodes);
    assert_eq!(nodes[1].cut_status(x), CutStatus::Waiting);
    // The last replica's word is lost: the coordinator asks again after a retry period.
    nodes[2].cut_durable(x);
    nodes[2].take_actions();
    assert_eq!(nodes[1].cut_status(x), CutStatus::Waiting);
    let later = Config::default().retry_us + 1;
    nodes[1].tick(later);
    let log = settle(&mut nodes);
    assert_eq!(nodes[1].cut_status(x), CutStatus::Done);
    // A cut never collects garbage: that takes a sync point over every range.
    assert!(
        !log.iter()
            .any(|(_, a)| matches!(a, Action::Truncate { .. }))
    );
    assert!(nodes[0].replica().command(&a).is_some());
}

#[test]
fn read_barriers_go_one_at_a_time_and_stop_once_gc_has_been_behind_for_long() {
    let config = Config {
        sync_interval_us: 0,
        ..Config::default()
    };
    let mut nodes: Vec<Node> = (0..3)
        .map(|id| Node::new(NodeId(id), topology(3), config))
        .collect();
    nodes[0].propose(&[], &[key("x")], Bytes::new());
    settle(&mut nodes);
    let b = nodes[0].propose_barrier().expect("nothing waits");
    assert_eq!(nodes[0].propose_barrier(), None, "one on its way at a time");
    settle(&mut nodes);
    // Applied durably here and not yet by the peers: GC is behind, for a moment.
    nodes[0].sync_durable(b);
    settle(&mut nodes);
    nodes[0].tick(1_000_000);
    assert!(
        nodes[0].propose_barrier().is_some(),
        "GC behind for a moment does not stop them"
    );
    settle(&mut nodes);
    // Still behind 4 s later (a peer is down): no more sync points to pile up.
    nodes[0].tick(5_000_000);
    assert_eq!(nodes[0].propose_barrier(), None);
}
