//! Handler tests that assert the exact actions a node emits, openraft style: one node (or a
//! few wired by hand) fed messages, each test checking what it sends, persists and applies.
//! The helpers below build nodes, transactions and exchanges; `coordination` covers the
//! fast and slow paths, durability and recovery, `sync_points` refusals, GC and inquiries,
//! `epochs` adopting topologies and ordering across them, `ownership` ranges on a subset
//! of the nodes, `reads` ephemeral reads.

mod coordination;
mod epochs;
mod ownership;
mod reads;
mod sync_points;

use std::collections::BTreeSet;

use bytes::Bytes;
use holo_accord::{Action, Config, Envelope, Message, Node, NodeId, RangeId, Status, Topology};

fn topology(nodes: u16) -> Topology {
    Topology::whole((0..nodes).map(NodeId).collect())
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

/// Delivers every message among the nodes, confirming every persist at once, until quiet.
fn settle(nodes: &mut [Node]) -> Vec<(usize, Action)> {
    settle_cut_off(nodes, None)
}

/// [`settle`], with every message to or from node `cut` lost.
fn settle_cut_off(nodes: &mut [Node], cut: Option<usize>) -> Vec<(usize, Action)> {
    let mut log = Vec::new();
    loop {
        let mut progress = false;
        for i in 0..nodes.len() {
            for action in nodes[i].take_actions() {
                progress = true;
                match &action {
                    Action::Send(e) => {
                        let to = e.to.0 as usize;
                        if cut != Some(to) && cut != Some(i) {
                            nodes[to].receive(e.clone());
                        }
                    }
                    Action::Persist { seq, .. } | Action::ReserveClock { seq, .. } => {
                        nodes[i].durable(*seq)
                    }
                    Action::Apply { .. }
                    | Action::Invalidated { .. }
                    | Action::Truncate { .. }
                    | Action::Read { .. } => {}
                }
                log.push((i, action));
            }
        }
        if !progress {
            return log;
        }
    }
}

fn txn(hlc: u64, coordinator: u16, writes: &[&str]) -> holo_accord::Txn {
    let id = holo_accord::TxnId(epoch_1(hlc, 1, coordinator));
    let writes: Vec<Bytes> = writes.iter().map(|k| key(k)).collect();
    holo_accord::Txn::new(id, &[], &writes, Bytes::new())
}

/// A timestamp of epoch 1 (flags: the txn kind's bits, as `TxnId` reads them).
fn epoch_1(hlc: u64, flags: u16, node: u16) -> holo_accord::Timestamp {
    holo_accord::Timestamp {
        epoch: 1,
        hlc,
        flags,
        node,
    }
}

/// The id of an ephemeral read of epoch 1 that `node` coordinates.
fn read_id(hlc: u64, node: u16) -> holo_accord::TxnId {
    holo_accord::TxnId(epoch_1(hlc, 0, node))
}

/// A recovery ballot of epoch 1.
fn ballot(hlc: u64, node: u16) -> holo_accord::Ballot {
    holo_accord::Ballot(epoch_1(hlc, 1, node))
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
    drain(node)
}

/// Takes `node`'s actions until none are left, confirming every persist at once; returns
/// them all.
fn drain(node: &mut Node) -> Vec<Action> {
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

fn sync_point(hlc: u64, coordinator: u16) -> holo_accord::Txn {
    holo_accord::Txn {
        id: holo_accord::TxnId(epoch_1(hlc, 2, coordinator)),
        keys: Vec::new(),
        op: Bytes::new(),
        scope: None,
    }
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
