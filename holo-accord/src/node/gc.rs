//! GC through sync points: proposing them (one at a time, see the crate docs), telling
//! peers which one this node applied durably, and dropping what every replica applied.

use super::*;

impl Node {
    /// Starts a sync point over every range (see [`Config::sync_interval_us`]).
    pub fn propose_sync_point(&mut self) -> TxnId {
        let id = TxnId(self.clock.unique_now(TxnKind::SyncPoint, Timestamp::ZERO));
        self.last_sync = self.now;
        let txn = Txn {
            id,
            keys: Vec::new(),
            op: Bytes::new(),
        };
        self.coordinate(txn, Ballot::ZERO, false);
        id
    }

    /// Asks for a sync point at the next tick, whatever the interval (one at a time, as
    /// for every sync point): a host that must see the history below this moment cut (a
    /// split's or merge's new epoch) calls it rather than waiting for the interval.
    pub fn request_sync_point(&mut self) {
        self.sync_wanted = true;
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

    /// Proposes a sync point when one is due and asks peers that lag for news.
    pub(super) fn sync_tick(&mut self) {
        let proposing = self.coordinating.keys().any(|id| id.is_sync_point());
        if self.sync_wanted && !proposing {
            // Asked for by progress (an unknown dep nobody answers for), whatever the
            // interval: one at a time, as the inquiries' backoff paces the requests.
            self.sync_wanted = false;
            self.propose_sync_point();
        }
        let interval = self.config.sync_interval_us;
        if interval > 0
            && self.now.saturating_sub(self.last_sync) >= interval
            && !self.coordinating.keys().any(|id| id.is_sync_point())
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
                // Looked at again an interval later (the check scans the held records).
                self.last_sync = self.now;
            }
        }
        if self.now.saturating_sub(self.last_sync_query) < self.config.retry_us {
            return;
        }
        self.last_sync_query = self.now;
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
