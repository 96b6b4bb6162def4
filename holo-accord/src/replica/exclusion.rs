//! Which txns a sync point proves can never execute: below the GC floor, left out of a
//! decided sync point over every range, or (for a txn whose keys are known) out of a decided
//! exclusive sync point whose span it touches.

use std::collections::{BTreeMap, BTreeSet};

use super::{Command, Status};
use crate::ids::TxnId;
use crate::txn::{KeySpan, Txn};

/// The sync points of a replica: what [`excluded_in`] looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct SyncPoints<'a> {
    pub(super) global: &'a BTreeSet<TxnId>,
    pub(super) exclusive: &'a BTreeSet<TxnId>,
    pub(super) gc_floor: TxnId,
}

/// The ids in `set` above `txn_id`.
pub(super) fn above(set: &BTreeSet<TxnId>, txn_id: TxnId) -> impl Iterator<Item = &TxnId> {
    set.range((
        std::ops::Bound::Excluded(txn_id),
        std::ops::Bound::Unbounded,
    ))
}

/// [`Replica::excluded`] over the parts of a replica (so it can be asked while another part
/// is borrowed mutably). `txn`: the txn's definition when the caller has it; otherwise the
/// record held here, if any. Exclusive sync points settle only txns whose keys are known
/// to touch their span: an unknown dep, of which only the id is known, is excluded by a
/// sync point over every range only (a later one of those settles it too).
pub(super) fn excluded_in(
    commands: &BTreeMap<TxnId, Command>,
    points: SyncPoints<'_>,
    txn_id: &TxnId,
    txn: Option<&Txn>,
) -> bool {
    let known = commands.get(txn_id);
    if known.is_some_and(|c| c.status.is_decided()) {
        return false;
    }
    if *txn_id < points.gc_floor {
        return true;
    }
    let decided_without = |s: &TxnId| {
        let sync = &commands[s];
        matches!(sync.status, Status::Stable | Status::Applied) && !sync.deps.contains(txn_id)
    };
    if above(points.global, *txn_id).any(decided_without) {
        return true;
    }
    let Some(txn) = txn.or(known.map(|c| &c.txn)) else {
        return false;
    };
    !txn.id.is_sync_point()
        && above(points.exclusive, *txn_id)
            .any(|s| txn.touches(scope_of(&commands[s])) && decided_without(s))
}

/// The span of an exclusive sync point's record.
pub(super) fn scope_of(command: &Command) -> &KeySpan {
    command
        .txn
        .scope
        .as_ref()
        .expect("exclusive sync points have a scope")
}
