//! Looking inside a replica: what its waiting transactions wait for, and the invariants
//! tests check after every step.

use super::*;

impl Replica {
    /// What the waiting txns wait for: (txn, dep, dep status if known), for diagnostics.
    pub fn describe_blocked(&self) -> Vec<String> {
        let deps: usize = self
            .waiting
            .iter()
            .map(|id| self.commands[id].deps.len())
            .sum();
        let summary = format!(
            "replica: {} commands, {} waiting to execute with {deps} deps in all, sync floor {}, gc floor {}",
            self.commands.len(),
            self.waiting.len(),
            self.sync_floor,
            self.gc_floor
        );
        std::iter::once(summary)
            .chain(self.waiting.iter().take(20).map(|id| {
                let c = &self.commands[id];
                // The dep readiness looks at next (see `is_ready`), whatever kind it is.
                match self.unresolved.get(id).and_then(|u| u.last()) {
                    Some(d) => {
                        let dc = self.commands.get(d);
                        format!(
                            "{id} (executeAt {}, {} unresolved) waits on {d}: {:?} at {:?}, promised {:?}, waiting here {}",
                            c.execute_at,
                            self.unresolved[id].len(),
                            dc.map(|x| x.status),
                            dc.map(|x| x.execute_at),
                            dc.map(|x| x.promised),
                            self.waiting.contains(d)
                        )
                    }
                    None => format!("{id} (executeAt {}) has no unresolved dep", c.execute_at),
                }
            }))
            .collect()
    }

    /// Checks the replica's internal invariants; tests call it after every step.
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn validate(&self) {
        for (id, command) in &self.commands {
            assert_eq!(*id, command.txn.id, "commands are keyed by their id");
            assert!(
                command.execute_at >= id.timestamp(),
                "{id}: executeAt below t0"
            );
            assert!(!command.deps.contains(id), "{id} depends on itself");
            assert_eq!(
                id.is_sync_point(),
                self.sync_points.contains(id) || self.exclusive.contains(id),
                "{id}: the sync point sets list exactly the sync points held"
            );
            assert_eq!(
                self.waiting.contains(id),
                command.status == Status::Stable,
                "{id}: waiting set out of date"
            );
            assert_eq!(
                self.waiting.contains(id),
                self.unresolved.contains_key(id),
                "{id}: unresolved deps out of date"
            );
            if command.status == Status::Stable {
                for dep in &command.deps {
                    assert!(
                        !self.pending(dep)
                            || self.dependents.get(dep).is_some_and(|w| w.contains(id)),
                        "{id} is not registered with its pending dep {dep}"
                    );
                }
            }
            let finished = matches!(command.status, Status::Applied | Status::Invalidated);
            for (key, access) in &command.txn.keys {
                let indexed = self.keys.get(key).and_then(|state| state.txns.get(id));
                assert!(
                    indexed == Some(access) || (finished && indexed.is_none()),
                    "{id}: missing from the index of its key while not finished"
                );
            }
        }
    }
}
