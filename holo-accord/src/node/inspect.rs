//! Looking inside a node: diagnostics for a stuck run, quiescence, and the invariants tests
//! check after every step.

use super::*;

impl Node {
    /// A line per coordination (id, ballot, phase), for diagnosing a stuck simulation.
    pub fn describe_coordinations(&self) -> Vec<String> {
        let persisted = (self.persist_seq, self.durable_seq, self.held.len());
        let mut lines: Vec<String> = self
            .coordinating
            .values()
            .take(20)
            .map(|c| {
                format!(
                    "{} ballot {:?} phase {:?} (persisted, durable, held) {persisted:?}",
                    c.txn.id, c.ballot, c.phase
                )
            })
            .collect();
        lines.extend(self.replica.describe_blocked());
        lines.extend(
            self.progress
                .iter()
                .take(20)
                .map(|(id, p)| format!("progress {id}: {p:?} now {}", self.now)),
        );
        lines
    }

    /// Decisions `peer` has not acknowledged and is still to be sent.
    pub fn missed_by(&self, peer: NodeId) -> usize {
        self.missed.get(&peer).map_or(0, BTreeSet::len)
    }

    /// Nothing left to do: no coordination, nothing undecided, nothing waiting to execute.
    pub fn quiescent(&self) -> bool {
        self.coordinating.is_empty()
            && self.progress.is_empty()
            && self.replica.idle()
            && self.held.is_empty()
            && self.reads.is_empty()
    }

    /// Checks internal invariants; tests call it after every step.
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn validate(&self) {
        self.replica.validate();
        assert!(
            self.durable_seq <= self.persist_seq,
            "durable beyond what was persisted"
        );
        assert!(
            self.held.iter().all(|(s, _, _)| *s > self.durable_seq),
            "a releasable message is held"
        );
        for (id, c) in &self.coordinating {
            assert_eq!(*id, c.txn.id);
            if c.ballot == Ballot::ZERO {
                assert_eq!(
                    id.coordinator(),
                    self.id,
                    "coordinating another node's txn at ballot zero"
                );
            }
        }
        for id in self.progress.keys() {
            assert!(
                self.replica
                    .command(id)
                    .is_none_or(|c| !c.status.is_decided()),
                "{id}: watching a decided txn"
            );
        }
    }
}
