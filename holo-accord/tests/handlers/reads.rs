//! Ephemeral reads: who is asked, what they answer, and when the read may run.

use super::*;

/// The decision that `t` executes at its t0 with no deps.
fn stable_at_t0(t: &holo_accord::Txn) -> Message {
    Message::Stable {
        txn: t.clone(),
        execute_at: t.id.timestamp(),
        deps: Default::default(),
    }
}

/// The `as_txn` of the read `read_id` among `actions`, if it was emitted.
fn read_as_txn(actions: &[Action], read_id: holo_accord::TxnId) -> Option<bool> {
    actions.iter().find_map(|a| match a {
        Action::Read {
            read_id: r, as_txn, ..
        } if *r == read_id => Some(*as_txn),
        _ => None,
    })
}

fn messages_to(actions: &[Action], to: u16) -> Vec<Message> {
    sends(actions)
        .into_iter()
        .filter(|e| e.to == NodeId(to))
        .flat_map(|e| e.messages.clone())
        .collect()
}

#[test]
fn an_ephemeral_read_waits_for_a_write_only_a_peer_knows_and_runs_after_it() {
    let mut reader = node(2);
    let mut peer = node(0);
    // Node 1 coordinates a write of "a"; node 0 witnessed it, node 2 has not heard of it.
    let w = txn(100, 1, &["a"]);
    exchange(&mut peer, 1, vec![Message::PreAccept { txn: w.clone() }]);

    let read_id = reader.read(&[key("a")], Bytes::from_static(b"get a"), false);
    let asked = drain(&mut reader);
    assert!(
        !asked.iter().any(|a| matches!(a, Action::Persist { .. })),
        "a read records nothing"
    );
    let ask = messages_to(&asked, 0);
    assert!(matches!(&ask[..], [Message::ReadDeps { .. }]), "{ask:?}");
    let answer = exchange(&mut peer, 2, ask);
    match &answer[..] {
        [Message::ReadDepsOk { deps, .. }] => assert!(deps.contains(&w.id), "{deps:?}"),
        other => panic!("{other:?}"),
    }
    // A majority (node 2 itself and node 0) answered; the write is not done here.
    let actions = deliver(&mut reader, 0, answer);
    assert!(!actions.iter().any(|a| matches!(a, Action::Read { .. })));
    assert_eq!(reader.reads_in_progress(), 1);

    // The decision reaches node 2: it applies the write, and then runs the read.
    let actions = deliver(&mut reader, 1, vec![stable_at_t0(&w)]);
    let apply = actions
        .iter()
        .position(|a| matches!(a, Action::Apply { command, .. } if command.txn.id == w.id));
    let read = actions
        .iter()
        .position(|a| matches!(a, Action::Read { read_id: r, .. } if *r == read_id));
    assert!(
        matches!((apply, read), (Some(a), Some(r)) if a < r),
        "the read after the write's apply: {actions:?}"
    );
    assert_eq!(reader.reads_in_progress(), 0);
    assert!(reader.quiescent());
}

#[test]
fn an_ephemeral_read_with_no_writes_in_flight_runs_once_a_majority_answered() {
    let mut reader = node(0);
    let mut peer = node(1);
    let read_id = reader.read(&[key("b")], Bytes::new(), false);
    let actions = drain(&mut reader);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Read { .. })),
        "one answer of three"
    );
    let answer = exchange(&mut peer, 0, messages_to(&actions, 1));
    let actions = deliver(&mut reader, 1, answer);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Read { read_id: r, keys, .. } if *r == read_id && keys == &[key("b")])),
        "{actions:?}"
    );
}

/// Node 2 reads "a" and "b" at one point while a write of "a" it holds (as does node 0) is
/// not decided yet; with `late`, a write of "b" nobody named is decided and applied at node
/// 2 while it waits. Returns whether the read came out `as_txn`.
fn consistent_read(late: bool) -> bool {
    let mut reader = node(2);
    let mut peer = node(0);
    let wa = txn(100, 1, &["a"]);
    exchange(&mut peer, 1, vec![Message::PreAccept { txn: wa.clone() }]);
    exchange(&mut reader, 1, vec![Message::PreAccept { txn: wa.clone() }]);
    let read_id = reader.read(&[key("a"), key("b")], Bytes::new(), true);
    let asked = drain(&mut reader);
    let answer = exchange(&mut peer, 2, messages_to(&asked, 0));
    deliver(&mut reader, 0, answer);
    if late {
        let wb = txn(200, 1, &["b"]);
        let actions = deliver(&mut reader, 1, vec![stable_at_t0(&wb)]);
        assert!(actions.iter().any(|a| matches!(a, Action::Apply { .. })));
    }
    let actions = deliver(&mut reader, 1, vec![stable_at_t0(&wa)]);
    read_as_txn(&actions, read_id).expect("the read is emitted once the write of a is applied")
}

#[test]
fn a_consistent_read_that_finds_a_write_nobody_named_applied_goes_as_a_transaction() {
    assert!(
        !consistent_read(false),
        "only writes held at the start applied: served"
    );
    assert!(
        consistent_read(true),
        "a later write of b applied: as a transaction"
    );
}

#[test]
fn a_consistent_read_counts_only_its_own_start_as_before_it() {
    // A write of "b" that node 2 did not hold when its read began, named by node 0 (which
    // may have witnessed it after the read began) and applied here while the read waits:
    // nothing shows it began before the read, so the read goes as a transaction.
    let mut reader = node(2);
    let mut peer = node(0);
    let wb = txn(200, 1, &["b"]);
    let read_id = reader.read(&[key("a"), key("b")], Bytes::new(), true);
    let asked = drain(&mut reader);
    exchange(&mut peer, 1, vec![Message::PreAccept { txn: wb.clone() }]);
    let answer = exchange(&mut peer, 2, messages_to(&asked, 0));
    deliver(&mut reader, 0, answer);
    let actions = deliver(&mut reader, 1, vec![stable_at_t0(&wb)]);
    assert_eq!(read_as_txn(&actions, read_id), Some(true), "{actions:?}");
}

#[test]
fn a_peer_names_a_write_in_its_answer_only_once_the_record_of_it_is_durable() {
    let mut peer = node(0);
    let w = txn(100, 1, &["a"]);
    // Witnessed, its record persisted but not durable yet.
    peer.receive(Envelope {
        from: NodeId(1),
        to: NodeId(0),
        messages: vec![Message::PreAccept { txn: w.clone() }],
    });
    let persisted = peer.take_actions();
    let seq = persisted
        .iter()
        .find_map(|a| match a {
            Action::Persist { seq, .. } => Some(*seq),
            _ => None,
        })
        .expect("the witness is persisted");
    let read_id = read_id(101, 2);
    peer.receive(Envelope {
        from: NodeId(2),
        to: NodeId(0),
        messages: vec![Message::ReadDeps {
            read_id,
            keys: vec![key("a")],
        }],
    });
    assert!(
        messages_to(&peer.take_actions(), 2).is_empty(),
        "a write named from memory could be lost in a crash here with its coordinator"
    );
    peer.durable(seq);
    let answer = messages_to(&peer.take_actions(), 2);
    match &answer[..] {
        [Message::ReadDepsOk { deps, .. }] => assert!(deps.contains(&w.id), "{deps:?}"),
        other => panic!("{other:?}"),
    }
}
