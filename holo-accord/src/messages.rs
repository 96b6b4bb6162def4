//! The messages replicas exchange. The core emits them in batches, one [`Envelope`] per peer
//! per step, so the transport sends one RPC per peer per batch.

use crate::ids::{Ballot, NodeId, Timestamp, TxnId};
use crate::replica::{Command, RecoverInfo};
use crate::txn::{Deps, Key, Txn};

/// A protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Coordinator -> replicas: witness `txn` at `txn.id` if you can.
    PreAccept { txn: Txn },
    /// Replica -> coordinator: the timestamp this replica witnessed and the conflicting
    /// transactions started before `txn_id`.
    PreAcceptOk {
        txn_id: TxnId,
        witnessed: Timestamp,
        deps: Deps,
    },
    /// Coordinator -> replicas (slow path): accept `execute_at` under `ballot`. `deps`: a
    /// sync point's proposed deps (part of its value); empty for other txns, whose deps
    /// each replica computes.
    Accept {
        txn: Txn,
        ballot: Ballot,
        execute_at: Timestamp,
        deps: Deps,
    },
    /// Replica -> coordinator: accepted; `deps` are every conflicting txn below `execute_at`.
    AcceptOk {
        txn_id: TxnId,
        ballot: Ballot,
        deps: Deps,
    },
    /// Replica -> coordinator: refused, a higher ballot was promised.
    AcceptNack { txn_id: TxnId, promised: Ballot },
    /// Coordinator -> replicas: the decision; execute once `deps` allow.
    Stable {
        txn: Txn,
        execute_at: Timestamp,
        deps: Deps,
    },
    /// Replica -> coordinator: the decision is recorded durably.
    StableOk { txn_id: TxnId },
    /// Replica -> original coordinator: refused, a recovery coordinator holds a ballot.
    PreAcceptNack { txn_id: TxnId, promised: Ballot },
    /// Recovery coordinator -> replicas: promise `ballot` and report what you know.
    BeginRecovery { txn: Txn, ballot: Ballot },
    /// Replica -> recovery coordinator.
    RecoverOk {
        txn_id: TxnId,
        ballot: Ballot,
        info: RecoverInfo,
    },
    /// Replica -> recovery coordinator: refused, a higher ballot was promised.
    RecoverNack { txn_id: TxnId, promised: Ballot },
    /// Recovery coordinator -> replicas: accept that `txn` never executes.
    AcceptInvalidate { txn: Txn, ballot: Ballot },
    /// Replica -> recovery coordinator.
    AcceptInvalidateOk { txn_id: TxnId, ballot: Ballot },
    /// Coordinator -> replicas: the decision is that `txn` never executes.
    Invalidate { txn: Txn },
    /// Replica -> peers: tell me what you know of `txn_id` (a dependency I never saw).
    Inquire { txn_id: TxnId },
    /// Peer -> replica: what this node knows of a transaction.
    Inform { command: Command },
    /// Replica -> coordinator: `txn_id` is unknown here and below a sync point witnessed
    /// here that is not decided yet: this replica does not witness or accept it for now.
    /// `excluded`: it never will, the txn can never execute (see `Replica::refusal`).
    Refused { txn_id: TxnId, excluded: bool },
    /// Node -> node: the sender durably applied every sync point up to `txn_id` (GC happens
    /// below the lowest such point of all replicas). `query`: the sender asks for the
    /// receiver's own point in return.
    SyncApplied { txn_id: TxnId, query: bool },
    /// Replica -> coordinator of the exclusive sync point `txn_id`: applied durably here.
    /// `query` (coordinator -> replica): have you?
    CutApplied { txn_id: TxnId, query: bool },
    /// Coordinator of an ephemeral read -> replicas: which writes of `keys` do you know?
    /// Nothing is recorded (see `Node::read`).
    ReadDeps { read_id: TxnId, keys: Vec<Key> },
    /// Replica -> coordinator: the writes of the keys in its conflict index, and the epoch
    /// and hlc it has reached (`seen`), which the read executes at or above.
    ReadDepsOk {
        read_id: TxnId,
        deps: Deps,
        seen: Timestamp,
    },
}

impl Message {
    /// The transaction a message carries whole (a round, a decision, what a peer knows);
    /// replies and queries carry only its id.
    pub fn txn(&self) -> Option<&Txn> {
        match self {
            Message::PreAccept { txn }
            | Message::Accept { txn, .. }
            | Message::Stable { txn, .. }
            | Message::BeginRecovery { txn, .. }
            | Message::AcceptInvalidate { txn, .. }
            | Message::Invalidate { txn } => Some(txn),
            Message::Inform { command } => Some(&command.txn),
            _ => None,
        }
    }

    /// The transaction the message is about.
    pub fn txn_id(&self) -> TxnId {
        match self {
            Message::PreAccept { txn }
            | Message::Accept { txn, .. }
            | Message::Stable { txn, .. }
            | Message::BeginRecovery { txn, .. }
            | Message::AcceptInvalidate { txn, .. }
            | Message::Invalidate { txn } => txn.id,
            Message::Inform { command } => command.txn.id,
            Message::PreAcceptOk { txn_id, .. }
            | Message::AcceptOk { txn_id, .. }
            | Message::AcceptNack { txn_id, .. }
            | Message::StableOk { txn_id }
            | Message::PreAcceptNack { txn_id, .. }
            | Message::RecoverOk { txn_id, .. }
            | Message::RecoverNack { txn_id, .. }
            | Message::AcceptInvalidateOk { txn_id, .. }
            | Message::Inquire { txn_id }
            | Message::Refused { txn_id, .. }
            | Message::SyncApplied { txn_id, .. }
            | Message::CutApplied { txn_id, .. } => *txn_id,
            Message::ReadDeps { read_id, .. } | Message::ReadDepsOk { read_id, .. } => *read_id,
        }
    }
}

/// A batch of messages from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub messages: Vec<Message>,
}
