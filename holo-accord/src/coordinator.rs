//! The coordinator side: driving one transaction through PreAccept, the fast or slow path,
//! and Stable. Pure decisions over the replies collected so far; the node sends and times.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{NodeId, Timestamp};
use crate::topology::RangeInfo;
use crate::txn::{Deps, Txn};

/// Where a coordination stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    PreAccepting {
        replies: BTreeMap<NodeId, (Timestamp, Deps)>,
    },
    Accepting {
        execute_at: Timestamp,
        replies: BTreeMap<NodeId, Deps>,
    },
    Committing {
        execute_at: Timestamp,
        deps: Deps,
        acked: BTreeSet<NodeId>,
    },
}

/// One transaction this node coordinates.
#[derive(Debug, Clone)]
pub struct Coordination {
    pub txn: Txn,
    pub ranges: Vec<RangeInfo>,
    pub replicas: Vec<NodeId>,
    pub phase: Phase,
    /// When the current phase started and when its message was last sent (host time).
    pub phase_started: u64,
    pub last_sent: u64,
    /// The local replica applied it, so the client has its answer.
    pub client_done: bool,
}

/// What the coordinator decided after the replies so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Wait,
    /// Fast path: every fast quorum witnessed t0.
    Stable {
        execute_at: Timestamp,
        deps: Deps,
    },
    /// Slow path: propose the highest witnessed timestamp.
    Accept {
        execute_at: Timestamp,
    },
}

impl Coordination {
    /// Decides after PreAccept replies. `waited_enough`: the fast-path wait has passed.
    pub fn decide_pre_accept(&self, waited_enough: bool) -> Decision {
        let Phase::PreAccepting { replies } = &self.phase else {
            return Decision::Wait;
        };
        let t0 = self.txn.id.timestamp();
        let fast_everywhere = self.ranges.iter().all(|range| {
            let votes = range
                .replicas
                .iter()
                .filter(|n| replies.get(n).is_some_and(|(w, _)| *w == t0));
            votes.count() >= range.fast_quorum()
        });
        if fast_everywhere {
            let deps = replies
                .values()
                .filter(|(w, _)| *w == t0)
                .flat_map(|(_, d)| d.iter().copied())
                .collect();
            return Decision::Stable {
                execute_at: t0,
                deps,
            };
        }
        let majority_everywhere = self.ranges.iter().all(|range| {
            range
                .replicas
                .iter()
                .filter(|n| replies.contains_key(n))
                .count()
                >= range.slow_quorum()
        });
        let fast_impossible = self.ranges.iter().any(|range| {
            let against = range
                .replicas
                .iter()
                .filter(|n| replies.get(n).is_some_and(|(w, _)| *w != t0));
            against.count() > range.replicas.len() - range.fast_quorum()
        });
        if majority_everywhere && (fast_impossible || waited_enough) {
            let execute_at = replies
                .values()
                .map(|(w, _)| *w)
                .max()
                .expect("a majority replied");
            return Decision::Accept { execute_at };
        }
        Decision::Wait
    }

    /// The union of the Accept replies' deps once a majority of every range accepted.
    pub fn decide_accept(&self) -> Option<(Timestamp, Deps)> {
        let Phase::Accepting {
            execute_at,
            replies,
        } = &self.phase
        else {
            return None;
        };
        let majority_everywhere = self.ranges.iter().all(|range| {
            range
                .replicas
                .iter()
                .filter(|n| replies.contains_key(n))
                .count()
                >= range.slow_quorum()
        });
        majority_everywhere.then(|| (*execute_at, replies.values().flatten().copied().collect()))
    }

    /// Replicas that have not answered the current phase.
    pub fn unanswered(&self) -> Vec<NodeId> {
        let answered = |n: &NodeId| match &self.phase {
            Phase::PreAccepting { replies } => replies.contains_key(n),
            Phase::Accepting { replies, .. } => replies.contains_key(n),
            Phase::Committing { acked, .. } => acked.contains(n),
        };
        self.replicas
            .iter()
            .copied()
            .filter(|n| !answered(n))
            .collect()
    }

    /// Done: the decision reached every replica and the client has its answer.
    pub fn finished(&self) -> bool {
        self.client_done
            && matches!(&self.phase, Phase::Committing { acked, .. } if acked.len() == self.replicas.len())
    }
}
