//! Execution order: which Stable txns wait for which deps, and which are ready to apply,
//! in executeAt order; and the conflict index shrinking as writes apply.

use std::collections::BTreeSet;

use super::exclusion::{SyncPoints, excluded_in};
use super::{Access, Command, Deps, Key, Replica, Status, Timestamp, TxnId};

impl Replica {
    /// Puts a Stable txn among the waiting and registers it with the deps it may wait for.
    pub(super) fn start_waiting(&mut self, id: TxnId) {
        self.waiting.insert(id);
        self.unresolved
            .insert(id, self.commands[&id].deps.iter().rev().copied().collect());
        self.recheck.insert(id);
        for dep in &self.commands[&id].deps {
            if self.pending(dep) {
                self.dependents.entry(*dep).or_default().insert(id);
            }
        }
    }

    /// `dep` may still hold up a txn that lists it: not applied, invalidated or dropped.
    pub(super) fn pending(&self, dep: &TxnId) -> bool {
        match self.commands.get(dep).map(|d| d.status) {
            Some(Status::Applied | Status::Invalidated) => false,
            Some(Status::Stable) => true,
            // Undecided or unknown: done once it is proven never to execute.
            _ => !self.excluded(dep),
        }
    }

    /// `id` became Stable, Applied or Invalidated: its dependents need a new look, and once
    /// it is final they no longer need to be told about it.
    pub(super) fn status_changed(&mut self, id: TxnId) {
        let finished = self
            .commands
            .get(&id)
            .is_some_and(|c| matches!(c.status, Status::Applied | Status::Invalidated));
        let dependents = if finished {
            self.dependents.remove(&id).unwrap_or_default()
        } else {
            self.dependents.get(&id).cloned().unwrap_or_default()
        };
        self.recheck.extend(dependents);
    }

    /// `id` is done for anything waiting on it: applied or invalidated here, or, undecided
    /// or unknown, proven never to execute (dropped below the GC floor counts as applied).
    /// A Stable txn not applied yet is not done.
    pub fn finished(&self, id: &TxnId) -> bool {
        !self.pending(id)
    }

    /// Every write of `keys` this replica holds in its conflict index (an ephemeral read
    /// waits for them; see `Node::read`). Writes compacted out of the index are applied
    /// here and ordered before a later write of the key that is still in it.
    pub fn writes_on(&self, keys: &[Key]) -> Deps {
        let mut deps = Deps::new();
        for key in keys {
            if let Some(state) = self.keys.get(key) {
                deps.extend(
                    state
                        .txns
                        .iter()
                        .filter(|(_, access)| **access == Access::Write)
                        .map(|(id, _)| *id),
                );
            }
        }
        deps
    }

    /// Dependencies of Stable txns that this replica has never heard of: it must ask peers.
    pub fn unknown_deps(&self) -> BTreeSet<TxnId> {
        self.unresolved
            .values()
            .flatten()
            .filter(|dep| !self.commands.contains_key(dep) && !self.excluded(dep))
            .copied()
            .collect()
    }

    /// Nothing is waiting to execute.
    pub fn idle(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Stable transactions whose deps allow execution now, in executeAt order, marked
    /// Applied. The host must apply them in the returned order.
    pub fn take_ready(&mut self) -> Vec<Command> {
        let mut applied = Vec::new();
        loop {
            // Only txns whose deps changed can have become ready: no scan of all waiting.
            let candidates = std::mem::take(&mut self.recheck);
            let mut ready: Vec<(Timestamp, TxnId)> = Vec::new();
            for id in candidates {
                if self.waiting.contains(&id) && self.is_ready(&id) {
                    ready.push((self.commands[&id].execute_at, id));
                }
            }
            if ready.is_empty() {
                return applied;
            }
            ready.sort();
            for (_, id) in ready {
                self.waiting.remove(&id);
                self.unresolved.remove(&id);
                let command = self.commands.get_mut(&id).expect("waiting txns exist");
                command.status = Status::Applied;
                applied.push(command.clone());
                self.status_changed(id);
                self.compact_after(id);
            }
        }
    }

    /// `id`, which writes some keys, was just applied: on each key it writes, its deps that
    /// are already Applied or Invalidated here leave the key's conflict index. Every later
    /// txn that conflicts on the key and is ordered after `id` has `id` (or a later such
    /// write) in its deps and waits for it, and `id` waited for them, so they stay ordered
    /// transitively; deps stay as small as the txns in flight instead of growing with the
    /// key's history. A txn that starts below `id`'s executeAt is bumped above it by
    /// PreAccept (this replica's max_write), and its Accept recomputes deps from there.
    /// Recovery stays exact: a replica that compacted `d` knows `d` is decided (and a
    /// majority of the replicas that gave a later txn its deps without `d` did too), and
    /// `id`, still in the index, carries the evidence that later txns skipped an undecided
    /// one. The checker verifies the transitive form of invariant 3.
    pub(super) fn compact_after(&mut self, id: TxnId) {
        let command = &self.commands[&id];
        let commands = &self.commands;
        for (key, access) in &command.txn.keys {
            if *access != Access::Write {
                continue;
            }
            let Some(state) = self.keys.get_mut(key) else {
                continue;
            };
            // The key's index is small (compaction keeps it so): walk it, not the deps.
            state.txns.retain(|other, _| {
                !(command.deps.contains(other)
                    && commands
                        .get(other)
                        .is_some_and(|d| matches!(d.status, Status::Applied | Status::Invalidated)))
            });
        }
    }

    /// A Stable txn may execute once every dep is Applied, or is Stable with a later
    /// executeAt (it will execute after this one). An unknown or undecided dep blocks.
    /// A sync point waits for every dep to be applied or invalidated, whatever its executeAt
    /// (it has no keys, so nothing is ordered against it; what it promises is that every
    /// txn below it is done). A dep dropped by GC is done.
    pub(super) fn is_ready(&mut self, id: &TxnId) -> bool {
        let execute_at = self.commands[id].execute_at;
        let sync_point = id.is_sync_point();
        let commands = &self.commands;
        let points = SyncPoints {
            global: &self.sync_points,
            exclusive: &self.exclusive,
            gc_floor: self.gc_floor,
        };
        let unresolved = self
            .unresolved
            .get_mut(id)
            .expect("waiting txns are tracked");
        let dependents = &mut self.dependents;
        while let Some(dep) = unresolved.last() {
            let blocks = match commands.get(dep) {
                Some(d) if matches!(d.status, Status::Applied | Status::Invalidated) => false,
                Some(d) if d.status == Status::Stable && !sync_point => d.execute_at <= execute_at,
                Some(d) if d.status == Status::Stable => true,
                // Undecided or never seen here: done if it can never execute (below the GC
                // floor, or left out of a decided sync point above it), such as a txn only a
                // lost node witnessed; its invalidation may never reach this replica.
                _ => !excluded_in(commands, points, dep, None),
            };
            if blocks {
                // Told when it changes. `start_waiting` registers only the deps pending then,
                // and one not known yet that counts as done (a decided sync point above it
                // leaves it out, as finished txns are compacted away) can still arrive: a
                // restart restores records in log order, and GC rewrites old live records
                // at the end, so a dep's Stable record can follow this txn's.
                dependents.entry(*dep).or_default().insert(*id);
                return false;
            }
            unresolved.pop();
        }
        true
    }
}
