//! What a node asks of its host.

use bytes::Bytes;

use crate::ids::{Timestamp, TxnId};
use crate::messages::Envelope;
use crate::replica::Command;
use crate::txn::Key;

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a batch of messages to one peer.
    Send(Envelope),
    /// Make this command state durable (the WAL), then call [`Node::durable`] with `seq`.
    /// Replies that depend on it are held until then.
    Persist { seq: u64, command: Command },
    /// Execute the transaction's operation against storage at `command.execute_at`. Apply
    /// actions come in a valid execution order; the host applies them in the order given,
    /// each after the Persist actions before it are durable, and idempotently (after a
    /// restart a transaction may be applied again). `client`: this node owes a client the
    /// result.
    ///
    /// A client that needs no result from execution (a blind write) may be answered as
    /// soon as this action is emitted, before the host applies it: the txn is decided
    /// durably at a quorum and so is everything that executes before it. Not sooner: at
    /// commit a dep may still be undecided, and a txn that a client starts after the answer
    /// (with no conflict with this one, from a node whose clock is behind) can then be
    /// ordered below that dep while the dep is ordered below this txn, so real time is
    /// broken through the dep (the simulator found such a history when it answered writes at
    /// commit, once in tens of thousands of seeds).
    Apply { command: Command, client: bool },
    /// A transaction this node owes a client the answer for was invalidated: it never
    /// executes, and the client gets a definite failure.
    Invalidated { txn_id: TxnId },
    /// Make durable that this node's clock may issue timestamps with an hlc below `upto`,
    /// then call [`Node::durable`] with `seq` (same sequence as Persist). A restarted node
    /// starts its clock at the highest durable reservation ([`Node::restart`]), so messages
    /// carrying a timestamp below the durable reservation leave at once instead of waiting
    /// for the record that holds the timestamp.
    ReserveClock { seq: u64, upto: u64 },
    /// Every replica durably applied the sync point `floor`: the records of finished txns
    /// below it are gone from memory. The host persists `floor` and `max` (for
    /// [`Node::restart`]) and may then drop every record of a txn below `floor` that the
    /// replica ([`Node::replica`], its `command`) no longer holds. The host must call
    /// [`Node::sync_durable`] for a sync point's Apply once everything applied up to it is
    /// durable in storage.
    Truncate { floor: TxnId, max: Timestamp },
    /// An ephemeral read ([`Node::read`]) may run: execute `op` against the state applied
    /// here, at `at` (the read's time: the epoch and clock its replicas had reached, for
    /// whatever the host derives from time). It comes after the Apply actions it must see,
    /// and the host runs it in that order, like an Apply. `as_txn`: a consistent read that
    /// cannot be served from this state; the host runs it as a transaction instead.
    Read {
        read_id: TxnId,
        keys: Vec<Key>,
        op: Bytes,
        at: Timestamp,
        as_txn: bool,
    },
}
