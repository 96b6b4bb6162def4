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
fn a_t0_leaves_once_a_clock_reservation_covers_it_and_batches_per_peer() {
    let mut n0 = node(0);
    let a = n0.propose(&[], &[key("x")], Bytes::new());
    let b = n0.propose(&[key("y")], &[], Bytes::new());
    let actions = n0.take_actions();
    // The local replica witnessed both (one Persist each) and the node reserved its clock
    // above them; nothing leaves before the reservation is durable, so a crash can never
    // let the node re-issue a t0 a peer has seen.
    let persisted: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist { seq, command } => Some((*seq, Some(command.txn.id))),
            Action::ReserveClock { seq, upto } => {
                assert!(*upto > b.timestamp().hlc, "the reservation covers both t0s");
                Some((*seq, None))
            }
            _ => None,
        })
        .collect();
    assert_eq!(persisted, vec![(1, Some(a)), (2, None), (3, Some(b))]);
    assert!(sends(&actions).is_empty());
    n0.durable(3);
    let actions = n0.take_actions();
    let envelopes = sends(&actions);
    assert_eq!(
        envelopes.iter().map(|e| e.to).collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2)]
    );
    for e in envelopes {
        assert_eq!(e.messages.len(), 2, "both PreAccepts travel in one batch");
    }
    // Under a durable reservation a new t0 leaves at once, beside its own Persist.
    let c = n0.propose(&[], &[key("z")], Bytes::new());
    let actions = n0.take_actions();
    assert!(matches!(
        actions.as_slice()[0],
        Action::Persist { seq: 4, .. }
    ));
    let envelopes = sends(&actions);
    assert_eq!(envelopes.len(), 2);
    assert!(envelopes.iter().all(|e| e.messages[0].txn_id() == c));
    n0.validate();
}

#[test]
fn a_reply_waits_until_its_state_is_durable() {
    let mut n0 = node(0);
    let mut n1 = node(1);
    n0.propose(&[], &[key("x")], Bytes::new());
    n0.take_actions();
    n0.durable(2);
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
                    Action::Persist { seq, .. } | Action::ReserveClock { seq, .. } => {
                        nodes[i].durable(*seq)
                    }
                    Action::Apply { .. } | Action::Invalidated { .. } | Action::Truncate { .. } => {
                    }
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

fn txn(hlc: u64, coordinator: u16, writes: &[&str]) -> holo_accord::Txn {
    let id = holo_accord::TxnId(holo_accord::Timestamp {
        epoch: 1,
        hlc,
        flags: 1,
        node: coordinator,
    });
    let writes: Vec<Bytes> = writes.iter().map(|k| key(k)).collect();
    holo_accord::Txn::new(id, &[], &writes, Bytes::new())
}

/// Delivers `messages` from `from` to `node`, confirms every persist, returns the replies.
fn exchange(node: &mut Node, from: u16, messages: Vec<Message>) -> Vec<Message> {
    deliver(node, from, messages)
        .into_iter()
        .flat_map(|action| match action {
            Action::Send(e) => e.messages,
            _ => Vec::new(),
        })
        .collect()
}

/// Delivers `messages` from `from` to `node`, confirms every persist, returns every action.
fn deliver(node: &mut Node, from: u16, messages: Vec<Message>) -> Vec<Action> {
    node.receive(Envelope {
        from: NodeId(from),
        to: node.id(),
        messages,
    });
    let mut all = Vec::new();
    loop {
        let actions = node.take_actions();
        if actions.is_empty() {
            return all;
        }
        for action in &actions {
            if let Action::Persist { seq, .. } | Action::ReserveClock { seq, .. } = action {
                node.durable(*seq);
            }
        }
        all.extend(actions);
    }
}

#[test]
fn accept_recomputes_deps_up_to_execute_at() {
    let mut n1 = node(1);
    let a = txn(10, 0, &["x"]);
    let b = txn(20, 2, &["x"]);
    let replies = exchange(&mut n1, 0, vec![Message::PreAccept { txn: a.clone() }]);
    assert!(matches!(&replies[..], [Message::PreAcceptOk { deps, .. }] if deps.is_empty()));
    exchange(&mut n1, 2, vec![Message::PreAccept { txn: b.clone() }]);
    let execute_at = holo_accord::Timestamp {
        epoch: 1,
        hlc: 30,
        flags: 1,
        node: 1,
    };
    let replies = exchange(
        &mut n1,
        0,
        vec![Message::Accept {
            txn: a.clone(),
            ballot: holo_accord::Ballot::ZERO,
            execute_at,
            deps: holo_accord::Deps::new(),
        }],
    );
    let [Message::AcceptOk { deps, .. }] = &replies[..] else {
        panic!("{replies:?}")
    };
    assert_eq!(
        deps.iter().copied().collect::<Vec<_>>(),
        vec![b.id],
        "b started before a's executeAt"
    );
    n1.validate();
}

#[test]
fn begin_recovery_promises_and_witnesses_an_unknown_txn_without_a_vote() {
    let mut n1 = node(1);
    let t = txn(10, 0, &["x"]);
    let ballot = holo_accord::Ballot(holo_accord::Timestamp {
        epoch: 1,
        hlc: 50,
        flags: 1,
        node: 2,
    });
    let replies = exchange(
        &mut n1,
        2,
        vec![Message::BeginRecovery {
            txn: t.clone(),
            ballot,
        }],
    );
    let [
        Message::RecoverOk {
            info,
            ballot: echoed,
            ..
        },
    ] = &replies[..]
    else {
        panic!("{replies:?}")
    };
    assert_eq!(*echoed, ballot);
    assert_eq!(info.status, Status::PreAccepted);
    assert!(
        !info.fast_vote,
        "a txn first seen in recovery gets no fast-path vote"
    );
    // The original coordinator's late PreAccept and Accept are refused.
    let replies = exchange(&mut n1, 0, vec![Message::PreAccept { txn: t.clone() }]);
    assert!(
        matches!(&replies[..], [Message::PreAcceptNack { promised, .. }] if *promised == ballot)
    );
    let execute_at = t.id.timestamp();
    let replies = exchange(
        &mut n1,
        0,
        vec![Message::Accept {
            txn: t.clone(),
            ballot: holo_accord::Ballot::ZERO,
            execute_at,
            deps: holo_accord::Deps::new(),
        }],
    );
    assert!(matches!(&replies[..], [Message::AcceptNack { promised, .. }] if *promised == ballot));
    n1.validate();
}

#[test]
fn an_invalidated_dep_does_not_block_execution() {
    let mut n1 = node(1);
    let y = txn(10, 0, &["x"]);
    let x = txn(20, 2, &["x"]);
    let deps: holo_accord::Deps = [y.id].into_iter().collect();
    n1.receive(Envelope {
        from: NodeId(2),
        to: NodeId(1),
        messages: vec![Message::Stable {
            txn: x.clone(),
            execute_at: x.id.timestamp(),
            deps,
        }],
    });
    let applied = |actions: &[Action]| {
        actions
            .iter()
            .any(|a| matches!(a, Action::Apply { command, .. } if command.txn.id == x.id))
    };
    assert!(
        !applied(&n1.take_actions()),
        "x waits for its undecided dep"
    );
    n1.receive(Envelope {
        from: NodeId(0),
        to: NodeId(1),
        messages: vec![Message::Invalidate { txn: y.clone() }],
    });
    assert!(
        applied(&n1.take_actions()),
        "an invalidated dep never executes, so x may"
    );
    n1.validate();
}

fn sync_point(hlc: u64, coordinator: u16) -> holo_accord::Txn {
    holo_accord::Txn {
        id: holo_accord::TxnId(holo_accord::Timestamp {
            epoch: 1,
            hlc,
            flags: 2,
            node: coordinator,
        }),
        keys: Vec::new(),
        op: Bytes::new(),
    }
}

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
                ballot: holo_accord::Ballot(holo_accord::Timestamp {
                    epoch: 1,
                    hlc: 29,
                    flags: 1,
                    node: 0,
                }),
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
    let ballot = holo_accord::Ballot(holo_accord::Timestamp {
        epoch: 1,
        hlc: 30,
        flags: 1,
        node: 0,
    });
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

/// The sync points `node` proposed in `log` (the PreAccepts it sent for one).
fn sync_points_proposed(log: &[(usize, Action)], node: usize) -> BTreeSet<holo_accord::TxnId> {
    log.iter()
        .filter(|(n, _)| *n == node)
        .flat_map(|(_, action)| match action {
            Action::Send(e) => e.messages.clone(),
            _ => Vec::new(),
        })
        .filter_map(|m| match m {
            Message::PreAccept { txn } if txn.id.is_sync_point() => Some(txn.id),
            _ => None,
        })
        .collect()
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
    let ballot = holo_accord::Ballot(holo_accord::Timestamp {
        epoch: 1,
        hlc: 50,
        flags: 1,
        node: 0,
    });
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

/// Node `n` proposes a write of x; its PreAccepts leave (and are dropped here).
fn propose_write_x(n: &mut Node) -> holo_accord::TxnId {
    let t = n.propose(&[], &[key("x")], Bytes::new());
    for action in n.take_actions() {
        if let Action::Persist { seq, .. } | Action::ReserveClock { seq, .. } = action {
            n.durable(seq);
        }
    }
    n.take_actions();
    t
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
    let ballot = holo_accord::Ballot(holo_accord::Timestamp {
        epoch: 1,
        hlc: 30,
        flags: 1,
        node: 0,
    });
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
fn a_coordinator_that_learns_the_decision_stops_its_round() {
    let mut n0 = node(0);
    let t = propose_write_x(&mut n0);
    // Node 0 was cut off; node 1 recovered the txn and decided it. Node 0 learns that.
    let stable = Message::Stable {
        txn: holo_accord::Txn::new(t, &[], &[key("x")], Bytes::new()),
        execute_at: t.timestamp(),
        deps: holo_accord::Deps::new(),
    };
    let actions = deliver(&mut n0, 1, vec![stable]);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Apply { command, client: true } if command.txn.id == t)),
        "{actions:?}"
    );
    // Every replica then collected the txn, so the peers refuse node 0's late round as
    // unknown below their GC floor. That round is over: refusals must not decide an
    // invalidation of a txn that executed (simulator seed 4656).
    let refused = Message::Refused {
        txn_id: t,
        excluded: true,
    };
    let mut actions = deliver(&mut n0, 1, vec![refused.clone()]);
    actions.extend(deliver(&mut n0, 2, vec![refused]));
    n0.tick(10_000_000);
    actions.extend(n0.take_actions());
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Invalidated { .. })),
        "{actions:?}"
    );
    assert!(
        sends(&actions)
            .iter()
            .all(|e| e.messages.iter().all(|m| m.txn_id() != t)),
        "no round of {t} goes on: {actions:?}"
    );
    assert_ne!(
        n0.replica().command(&t).map(|c| c.status),
        Some(Status::Invalidated)
    );
    n0.validate();
}

#[test]
fn a_stale_round_of_a_decided_txn_gets_the_decision_not_a_vote() {
    let mut n1 = node(1);
    let t = txn(5, 0, &["x"]);
    let execute_at = t.id.timestamp();
    let deps = holo_accord::Deps::new();
    exchange(
        &mut n1,
        2,
        vec![Message::Stable {
            txn: t.clone(),
            execute_at,
            deps: deps.clone(),
        }],
    );
    let decided = n1.replica().command(&t.id).unwrap().clone();
    let stale_ballot = holo_accord::Ballot::default();
    let other_at = holo_accord::Timestamp {
        hlc: 9,
        ..execute_at
    };
    // The original coordinator, cut off while a recovery decided, tries another value and
    // then an invalidation: neither may be acknowledged.
    let replies = exchange(
        &mut n1,
        0,
        vec![
            Message::Accept {
                txn: t.clone(),
                ballot: stale_ballot,
                execute_at: other_at,
                deps: holo_accord::Deps::new(),
            },
            Message::AcceptInvalidate {
                txn: t.clone(),
                ballot: stale_ballot,
            },
        ],
    );
    assert_eq!(
        replies,
        vec![
            Message::Inform {
                command: decided.clone()
            },
            Message::Inform { command: decided }
        ]
    );
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
