//! The messages replicas exchange. The core emits them in batches, one [`Envelope`] per peer
//! per step, so the transport sends one RPC per peer per batch.

use crate::ids::{Ballot, NodeId, Timestamp, TxnId};
use crate::txn::{Deps, Txn};

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
    /// Coordinator -> replicas (slow path): accept `execute_at` under `ballot`.
    Accept {
        txn: Txn,
        ballot: Ballot,
        execute_at: Timestamp,
    },
    /// Replica -> coordinator: accepted; `deps` are every conflicting txn below `execute_at`.
    AcceptOk { txn_id: TxnId, deps: Deps },
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
}

impl Message {
    /// The transaction the message is about.
    pub fn txn_id(&self) -> TxnId {
        match self {
            Message::PreAccept { txn }
            | Message::Accept { txn, .. }
            | Message::Stable { txn, .. } => txn.id,
            Message::PreAcceptOk { txn_id, .. }
            | Message::AcceptOk { txn_id, .. }
            | Message::AcceptNack { txn_id, .. }
            | Message::StableOk { txn_id } => *txn_id,
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
