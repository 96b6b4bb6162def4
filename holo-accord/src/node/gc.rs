//! GC through sync points: proposing them (one at a time, see the crate docs), telling
//! peers which one this node applied durably, and dropping what every replica applied.
//! Also the history cuts of splits and merges: exclusive sync points, and learning when
//! every replica applied one.

use super::*;

/// How long GC may be behind (a sync point applied here and not yet by every replica)
/// before [`Node::propose_barrier`] stops proposing sync points: long enough for lagging
/// flushes (the host makes applies durable every half second), short for a down peer.
const BARRIER_GC_BEHIND_MAX_US: u64 = 3_000_000;

/// Most exclusive sync points a node keeps track of (the host proposes one per split or
/// merge and asks again if it lost track).
const CUTS_MAX: usize = 64;

/// An exclusive sync point this node proposed: its replicas, and those that said they
/// applied it durably.
#[derive(Debug, Clone)]
pub(super) struct Cut {
    replicas: Vec<NodeId>,
    applied: BTreeSet<NodeId>,
}

/// How an exclusive sync point a node proposed stands (see [`Node::cut_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutStatus {
    /// Not yet applied durably at every replica of its ranges.
    Waiting,
    /// Applied durably at every replica: no txn below it that touches its span executes
    /// anywhere any more.
    Done,
    /// It never executes: propose another.
    Invalidated,
    /// Not proposed here, or forgotten (a restart, or many proposed since): propose another.
    Unknown,
}

impl Node {
    /// Starts a sync point over every range (see [`Config::sync_interval_us`]). Only while
    /// every range is on every node ([`Node::replicates_everything`]): until deps are kept
    /// by key, one gathers deps a node that does not replicate them waits for in vain.
    pub fn propose_sync_point(&mut self) -> TxnId {
        debug_assert!(
            self.replicates_everything,
            "no sync point over every range while a range lives on a subset of the nodes"
        );
        let id = TxnId(self.clock.unique_now(TxnKind::SyncPoint, Timestamp::ZERO));
        self.last_sync = self.now;
        let txn = Txn {
            id,
            keys: Vec::new(),
            op: Bytes::new(),
            scope: None,
        };
        self.coordinate(txn, Ballot::ZERO, false);
        id
    }

    /// Starts a sync point for the host to use as a read barrier (once it is applied here,
    /// so is every txn with a lower id that ever executes), unless some range lives on a
    /// subset of the nodes (see `ownership.rs`), one is still on its way here, or GC has
    /// been behind for longer than `BARRIER_GC_BEHIND_MAX_US` (a peer is
    /// down or lagging): then `None`. Sync points piling up behind a down peer cost
    /// quadratic memory (each depends on everything since), so barriers stop soon after
    /// GC does, and the pile-up is bounded by what that time allows.
    pub fn propose_barrier(&mut self) -> Option<TxnId> {
        let behind_too_long = self
            .gc_behind_since
            .is_some_and(|since| self.now.saturating_sub(since) > BARRIER_GC_BEHIND_MAX_US);
        let waits = !self.replicates_everything
            || self.proposing_sync_point()
            || behind_too_long
            || self.replica.holds_unfinished_sync_point();
        (!waits).then(|| self.propose_sync_point())
    }

    /// Starts an exclusive sync point over `scope` in the current epoch: the history cut
    /// of a split or merge. Once applied it means every txn below it that touches `scope`
    /// and ever executes was applied there; replicas refuse the others (see
    /// `Replica::refusal`). Txns elsewhere are not disturbed. [`Node::cut_status`] says when
    /// every replica applied it.
    pub fn propose_exclusive_sync_point(&mut self, scope: KeySpan) -> TxnId {
        let id = TxnId(self.clock.unique_now(TxnKind::SyncPoint, Timestamp::ZERO));
        let txn = Txn {
            id,
            keys: Vec::new(),
            op: Bytes::new(),
            scope: Some(scope),
        };
        let replicas = self.replicas_for(&txn);
        if self.cuts.len() >= CUTS_MAX {
            self.cuts.pop_first();
        }
        self.cuts.insert(
            id,
            Cut {
                replicas,
                applied: BTreeSet::new(),
            },
        );
        self.coordinate(txn, Ballot::ZERO, false);
        id
    }

    /// How the exclusive sync point `id`, proposed here, stands.
    pub fn cut_status(&self, id: TxnId) -> CutStatus {
        let held = self.replica.command(&id);
        if held.is_some_and(|c| c.status == Status::Invalidated) {
            return CutStatus::Invalidated;
        }
        let Some(cut) = self.cuts.get(&id) else {
            return CutStatus::Unknown;
        };
        if cut.applied.contains(&self.id) {
            if cut.replicas.iter().all(|n| cut.applied.contains(n)) {
                CutStatus::Done
            } else {
                CutStatus::Waiting
            }
        } else if held.is_none() && self.replica.excluded(&id) {
            // Refused everywhere (below a sync point over every range decided without it).
            CutStatus::Invalidated
        } else {
            CutStatus::Waiting
        }
    }

    /// The host made durable everything applied up to and including the exclusive sync
    /// point `txn_id` (its Apply action): tell its coordinator.
    pub fn cut_durable(&mut self, txn_id: TxnId) {
        // Recorded even below the GC floor (a restart re-applies what its log holds, and
        // the record it restored answers queries until the next GC drops both).
        self.cuts_durable.insert(txn_id);
        self.cut_applied(self.id, txn_id);
        let coordinator = txn_id.coordinator();
        if coordinator != self.id {
            self.send(
                coordinator,
                Message::CutApplied {
                    txn_id,
                    query: false,
                },
            );
        }
    }

    /// `from` applied the exclusive sync point `txn_id` durably.
    pub(super) fn cut_applied(&mut self, from: NodeId, txn_id: TxnId) {
        if let Some(cut) = self.cuts.get_mut(&txn_id) {
            cut.applied.insert(from);
        }
    }

    /// A coordinator asks whether this replica applied the exclusive sync point `txn_id`
    /// durably. Yes if it said so to the host, or if the txn is below the GC floor and no
    /// longer held: every replica durably applied a sync point over every range above it,
    /// which waited for it unless it never executes (and its coordinator, having applied
    /// it, knows it does).
    pub(super) fn cut_query(&mut self, from: NodeId, txn_id: TxnId) {
        let held = self.replica.command(&txn_id).is_some();
        if self.cuts_durable.contains(&txn_id) || (!held && txn_id < self.replica.gc_floor()) {
            self.send(
                from,
                Message::CutApplied {
                    txn_id,
                    query: false,
                },
            );
        } else if !held {
            // Its messages were lost: ask for it.
            self.progress.entry(txn_id).or_insert((self.now, 0));
        }
    }

    /// Asks the replicas that have not said so whether they applied this node's cuts.
    fn query_cuts(&mut self) {
        let mut queries = Vec::new();
        for (id, cut) in &self.cuts {
            if !cut.applied.contains(&self.id) {
                continue;
            }
            for n in &cut.replicas {
                if *n != self.id && !cut.applied.contains(n) {
                    queries.push((*n, *id));
                }
            }
        }
        for (to, txn_id) in queries {
            self.send(
                to,
                Message::CutApplied {
                    txn_id,
                    query: true,
                },
            );
        }
    }

    /// This node coordinates a sync point over every range.
    fn proposing_sync_point(&self) -> bool {
        self.coordinating
            .values()
            .any(|c| c.txn.id.is_sync_point() && c.txn.scope.is_none())
    }

    /// The host made durable everything applied up to and including the sync point
    /// `txn_id` (its Apply action): tell every peer, and collect garbage if all are there.
    pub fn sync_durable(&mut self, txn_id: TxnId) {
        if txn_id <= self.sync_applied {
            return;
        }
        self.sync_applied = txn_id;
        for peer in self.all_replicas.clone() {
            if peer != self.id {
                self.send(
                    peer,
                    Message::SyncApplied {
                        txn_id,
                        query: false,
                    },
                );
            }
        }
        self.collect_garbage();
    }

    /// Drops what every replica has durably applied below a common sync point.
    pub(super) fn collect_garbage(&mut self) {
        let floor = self
            .all_replicas
            .iter()
            .map(|n| {
                if *n == self.id {
                    self.sync_applied
                } else {
                    self.sync_known.get(n).copied().unwrap_or_default()
                }
            })
            .min()
            .unwrap_or_default();
        if floor <= self.replica.gc_floor() {
            return;
        }
        self.replica.gc(floor, Timestamp::ZERO);
        // Below the floor a query is answered from the floor itself.
        self.cuts_durable = self.cuts_durable.split_off(&floor);
        self.actions.push(Action::Truncate {
            floor,
            max: self.replica.gc_max(),
        });
        // Deps that were unknown here and are now below the floor no longer block.
        self.execute_ready();
    }

    /// The sync point this node applied durably and the GC floor, for metrics.
    pub fn sync_state(&self) -> (TxnId, TxnId) {
        (self.sync_applied, self.replica.gc_floor())
    }

    /// Proposes a sync point when one is due (none while some range lives on a subset of
    /// the nodes, see `ownership.rs`) and asks peers that lag for news.
    pub(super) fn sync_tick(&mut self) {
        if self.sync_applied > self.replica.gc_floor() {
            self.gc_behind_since.get_or_insert(self.now);
        } else {
            self.gc_behind_since = None;
        }
        let holds_off = !self.replicates_everything || self.proposing_sync_point();
        if self.sync_wanted && !holds_off {
            // Asked for by progress (an unknown dep nobody answers for), whatever the
            // interval: one at a time, as the inquiries' backoff paces the requests.
            self.sync_wanted = false;
            self.propose_sync_point();
        }
        let interval = self.config.sync_interval_us;
        if interval > 0
            && self.now.saturating_sub(self.last_sync) >= interval
            && !holds_off
            && self.replica.holds_ordinary()
        {
            // Not while an earlier sync point waits, here for its deps or for a lagging peer
            // to apply it: a new one could not be applied or collected sooner, and as each
            // depends on every earlier one, sync points piling up while a txn is stuck or a
            // peer is down cost quadratic memory and work.
            if self.sync_applied <= self.replica.gc_floor()
                && !self.replica.holds_unfinished_sync_point()
            {
                self.propose_sync_point();
            } else {
                // Looked at again an interval later.
                self.last_sync = self.now;
            }
        }
        if self.now.saturating_sub(self.last_sync_query) < self.config.retry_us {
            return;
        }
        self.last_sync_query = self.now;
        self.query_cuts();
        let own = self.sync_applied;
        for peer in self.all_replicas.clone() {
            if peer != self.id && self.sync_known.get(&peer).copied().unwrap_or_default() < own {
                self.send(
                    peer,
                    Message::SyncApplied {
                        txn_id: own,
                        query: true,
                    },
                );
            }
        }
    }
}
