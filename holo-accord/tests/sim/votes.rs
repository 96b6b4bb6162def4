//! Fast-path votes, watched from outside the nodes (ACCORD.md section 6, pitfalls 1 and 5).
//!
//! Neither pitfall breaks safety here, so the history checks cannot see them: a coordinator
//! that misses its own vote still finishes on the slow path after the fast-path wait (only
//! slower), and a recovery that counts a vote cast in recovery proposes t0 where it could
//! have invalidated, which the superseding checks keep safe. Both are still the protocol
//! done wrong, so the simulator checks them directly:
//! - a coordinator that has received t0 votes from a fast quorum of every range must not
//!   take the slow path (votes are counted as the simulated network delivers them; the
//!   coordinator's own vote counts once its PreAccept record is durable, when the node
//!   releases the reply to itself);
//! - a replica casts a fast-path vote (a record with `fast_vote`) only in a step in which
//!   the original coordinator's PreAccept reached it (or, at the coordinator, in which the
//!   txn was proposed), never when it learnt the txn through recovery or an inquiry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use holo_accord::{Ballot, Command, Envelope, Message, NodeId, Status, Topology, TxnId};

#[derive(Default)]
pub struct Votes {
    /// (coordinator, txn) -> the replicas whose t0 vote reached the coordinator.
    received: HashMap<(usize, TxnId), BTreeSet<NodeId>>,
    /// A coordinator's own vote, waiting for its record to be durable: (node, seq) -> txn.
    own_pending: BTreeMap<(usize, u64), TxnId>,
    /// (node, txn) pairs that cast a fast-path vote (checked once each).
    cast: HashSet<(usize, TxnId)>,
    /// (coordinator, txn) pairs whose slow path was checked (the first Accept only; retries
    /// come after more votes may have arrived).
    slow: HashSet<(usize, TxnId)>,
    /// Txns whose original PreAccept the stepping node received (or proposed) in this step.
    pre_accepted_now: HashSet<TxnId>,
}

impl Votes {
    /// A new step begins.
    pub fn step(&mut self) {
        self.pre_accepted_now.clear();
    }

    /// `node` proposed `id` in this step (its own PreAccept).
    pub fn proposed(&mut self, id: TxnId) {
        self.pre_accepted_now.insert(id);
    }

    /// An envelope is delivered to a running node, before the node handles it.
    pub fn delivered(&mut self, envelope: &Envelope) {
        let to = envelope.to.0 as usize;
        for message in &envelope.messages {
            match message {
                Message::PreAccept { txn } if envelope.from == txn.id.coordinator() => {
                    self.pre_accepted_now.insert(txn.id);
                }
                Message::PreAcceptOk {
                    txn_id, witnessed, ..
                } if *witnessed == txn_id.timestamp() && txn_id.coordinator() == envelope.to => {
                    self.received
                        .entry((to, *txn_id))
                        .or_default()
                        .insert(envelope.from);
                }
                _ => {}
            }
        }
    }

    /// `node` persisted `command` under `seq`.
    pub fn persisted(&mut self, node: usize, seq: u64, command: &Command) {
        if !command.fast_vote || !self.cast.insert((node, command.txn.id)) {
            return;
        }
        let id = command.txn.id;
        assert!(
            command.status == Status::PreAccepted && self.pre_accepted_now.contains(&id),
            "pitfall 5: node {node} cast a fast-path vote for {id} without the original \
             coordinator's PreAccept (status {:?}, promised {:?})",
            command.status,
            command.promised
        );
        if id.coordinator().0 as usize == node {
            self.own_pending.insert((node, seq), id);
        }
    }

    /// `node`'s records up to `seq` are durable.
    pub fn synced(&mut self, node: usize, seq: u64) {
        let durable: Vec<(usize, u64)> = self
            .own_pending
            .range((node, 0)..=(node, seq))
            .map(|(k, _)| *k)
            .collect();
        for key in durable {
            let id = self.own_pending.remove(&key).expect("listed");
            self.received
                .entry((node, id))
                .or_default()
                .insert(NodeId(node as u16));
        }
    }

    /// `node` crashed: its coordinations and unsynced records are gone.
    pub fn crashed(&mut self, node: usize) {
        self.received.retain(|(n, _), _| *n != node);
        self.own_pending.retain(|(n, _), _| *n != node);
    }

    /// An envelope leaves a node.
    /// `topologies`: every epoch's, index `e - 1` holding epoch `e`.
    pub fn sent(&mut self, envelope: &Envelope, topologies: &[Topology]) {
        let from = envelope.from.0 as usize;
        for message in &envelope.messages {
            let Message::Accept { txn, ballot, .. } = message else {
                continue;
            };
            if *ballot != Ballot::ZERO
                || txn.id.is_sync_point()
                || txn.id.coordinator() != envelope.from
                || !self.slow.insert((from, txn.id))
            {
                continue;
            }
            let votes = self.received.get(&(from, txn.id));
            // The ranges of the txn's own epoch: later epochs changed range bounds only,
            // never replicas, so their fast quorums are the same nodes.
            let topology = &topologies[txn.id.timestamp().epoch as usize - 1];
            let ranges = topology.ranges_of(txn.keys.iter().map(|(k, _)| k));
            let fast_everywhere = ranges.iter().all(|range| {
                let count = range
                    .replicas
                    .iter()
                    .filter(|n| votes.is_some_and(|v| v.contains(n)))
                    .count();
                count >= range.fast_quorum()
            });
            assert!(
                !fast_everywhere,
                "pitfall 1: coordinator {from} took the slow path for {} although t0 votes \
                 from a fast quorum of every range reached it: {votes:?}",
                txn.id
            );
        }
    }
}
