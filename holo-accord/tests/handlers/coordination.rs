//! The fast and slow paths, durability before replies, recovery, and decisions that end
//! rounds.

use super::*;

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
    let ballot = ballot(50, 2);
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
fn a_decision_a_cut_off_replica_missed_is_sent_until_it_acknowledges_it() {
    let mut nodes: Vec<Node> = (0..3).map(node).collect();
    let cut = Some(2);
    nodes[0].peer_down(NodeId(2));
    let a = nodes[0].propose(&[key("x")], &[], Bytes::new());
    settle_cut_off(&mut nodes, cut);
    assert!(nodes[0].replica().command(&a).unwrap().status.is_decided());
    // Its coordination stops resending after a while and remembers what node 2 missed.
    let retry = Config::default().retry_us;
    nodes[0].tick(10 * retry);
    settle_cut_off(&mut nodes, cut);
    assert_eq!(nodes[0].coordinating(), 0);
    assert_eq!(nodes[0].missed_by(NodeId(2)), 1);
    // The periodic probe sends it while node 2 is still cut off: lost, so still missed.
    nodes[0].tick(10 * retry + 1_000_000);
    settle_cut_off(&mut nodes, cut);
    assert_eq!(nodes[0].missed_by(NodeId(2)), 1);
    // Once node 2 is reachable the next probe gets through, and its acknowledgement ends it.
    nodes[0].tick(10 * retry + 2_000_000);
    settle(&mut nodes);
    assert_eq!(nodes[0].missed_by(NodeId(2)), 0);
    assert!(nodes[2].replica().command(&a).unwrap().status.is_decided());
}

#[test]
fn a_replica_that_learnt_a_txn_from_a_peer_never_answers_its_pre_accept_with_a_vote() {
    let mut replica = node(2);
    let t = txn(100, 1, &["a"]);
    // Node 1's record, as an inquiry brings it: PreAccepted at t0 with node 1's vote.
    let peer_record = holo_accord::Command {
        txn: t.clone(),
        status: Status::PreAccepted,
        execute_at: t.id.timestamp(),
        deps: Default::default(),
        promised: holo_accord::Ballot::ZERO,
        accepted: holo_accord::Ballot::ZERO,
        fast_vote: true,
    };
    exchange(
        &mut replica,
        1,
        vec![Message::Inform {
            command: peer_record,
        }],
    );
    let recorded = replica.replica().command(&t.id).expect("recorded");
    assert!(
        !recorded.fast_vote,
        "learnt from a peer: no vote of its own"
    );
    // The coordinator's PreAccept arrives late: an answer at t0 would count as the vote a
    // recovery will not find in this replica's record.
    let replies = exchange(&mut replica, 1, vec![Message::PreAccept { txn: t.clone() }]);
    for reply in &replies {
        if let Message::PreAcceptOk { witnessed, .. } = reply {
            assert_ne!(
                *witnessed,
                t.id.timestamp(),
                "a fast-path vote without a record of it"
            );
        }
    }
}
