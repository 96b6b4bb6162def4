//! Transactions: the keys they touch and the deterministic operation they run.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::ids::{TxnId, TxnKind};

/// A key of the store.
pub type Key = Bytes;

/// Transactions a transaction must wait for (or be ordered after).
pub type Deps = BTreeSet<TxnId>;

/// How a transaction uses one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// Writes conflict with reads and writes; reads conflict only with writes.
    pub fn conflicts_with(self, other: Access) -> bool {
        self == Access::Write || other == Access::Write
    }
}

/// A transaction: its id (`t0`), the keys it reads and writes, and an operation the host
/// runs deterministically against those keys at every replica, in executeAt order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub id: TxnId,
    /// Sorted by key, each key once; a key both read and written is a `Write`.
    pub keys: Vec<(Key, Access)>,
    /// Opaque to the protocol; the host interprets it.
    pub op: Bytes,
}

impl Txn {
    /// Builds a transaction; the keys are sorted and deduplicated.
    pub fn new(id: TxnId, reads: &[Key], writes: &[Key], op: Bytes) -> Txn {
        let mut keys: Vec<(Key, Access)> = writes
            .iter()
            .map(|k| (k.clone(), Access::Write))
            .chain(reads.iter().map(|k| (k.clone(), Access::Read)))
            .collect();
        // Writes sort before reads of the same key, so dedup keeps the write.
        keys.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        keys.dedup_by(|later, earlier| later.0 == earlier.0);
        Txn { id, keys, op }
    }

    /// The kind its keys imply: `Write` if it writes any key.
    pub fn kind_of(writes: &[Key]) -> TxnKind {
        if writes.is_empty() {
            TxnKind::Read
        } else {
            TxnKind::Write
        }
    }
}
