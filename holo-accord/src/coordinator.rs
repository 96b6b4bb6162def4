//! The coordinator side: driving one transaction through PreAccept, the fast or slow path
//! and Stable, or recovering one whose coordinator went away. Pure decisions over the
//! replies collected so far; the node sends and keeps time.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{Ballot, NodeId, Timestamp};
use crate::replica::{RecoverInfo, Status};
use crate::topology::RangeInfo;
use crate::txn::{Deps, Txn};

/// Where a coordination stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    PreAccepting {
        replies: BTreeMap<NodeId, (Timestamp, Deps)>,
    },
    Recovering {
        replies: BTreeMap<NodeId, RecoverInfo>,
    },
    Accepting {
        execute_at: Timestamp,
        /// A sync point's proposed deps (see `Message::Accept`); empty for other txns.
        proposed: Deps,
        replies: BTreeMap<NodeId, Deps>,
    },
    Invalidating {
        replies: BTreeSet<NodeId>,
    },
    /// The decision is out; waiting for every replica's acknowledgement.
    Committing {
        decision: Outcome,
        acked: BTreeSet<NodeId>,
    },
    /// A higher ballot took over; the local replica will learn the outcome.
    Following,
}

/// The final outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Execute { execute_at: Timestamp, deps: Deps },
    Invalidate,
}

/// One transaction this node coordinates (as the original coordinator, or recovering it).
#[derive(Debug, Clone)]
pub struct Coordination {
    pub txn: Txn,
    pub ranges: Vec<RangeInfo>,
    pub replicas: Vec<NodeId>,
    pub ballot: Ballot,
    pub phase: Phase,
    /// When the current phase started and when its message was last sent (host time).
    pub phase_started: u64,
    pub last_sent: u64,
    /// This node owes a client the answer.
    pub client: bool,
    /// The local replica executed or invalidated it, so the client has its answer.
    pub client_done: bool,
    /// Replicas that refused the txn (unknown there and below a sync point not decided
    /// there yet): they cast no fast-path vote for it, and accept it only once that sync
    /// point is decided, so they are asked again.
    pub refused: BTreeSet<NodeId>,
    /// A replica proved that the txn can never execute (`Message::Refused` with
    /// `excluded`): its invalidation is decided without a round.
    pub excluded: bool,
}

/// What the coordinator decided after the replies so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Wait,
    Commit(Outcome),
    /// Propose `execute_at` with Accept under the coordination's ballot (`deps`: a sync
    /// point's proposed deps, empty for other txns).
    Accept {
        execute_at: Timestamp,
        deps: Deps,
    },
    /// Propose invalidation under the coordination's ballot.
    Invalidate,
    /// Give up this attempt; recovery retries later.
    Retry,
    /// PreAccept cannot reach a majority (replicas refuse it): recover under a ballot now.
    Recover,
}

impl Coordination {
    fn majority_everywhere(&self, answered: impl Fn(&NodeId) -> bool) -> bool {
        self.ranges
            .iter()
            .all(|r| r.replicas.iter().filter(|n| answered(n)).count() >= r.slow_quorum())
    }

    /// Decides after PreAccept replies. `waited_enough`: the fast-path wait has passed.
    /// `unreachable`: replicas the host believes down; their vote is not waited for (a
    /// speed hint, never a safety one: a vote counts whenever it arrives).
    pub fn decide_pre_accept(
        &self,
        waited_enough: bool,
        unreachable: &BTreeSet<NodeId>,
    ) -> Decision {
        let Phase::PreAccepting { replies } = &self.phase else {
            return Decision::Wait;
        };
        let t0 = self.txn.id.timestamp();
        let answered = |n: &NodeId| replies.contains_key(n);
        if !self.majority_everywhere(answered)
            && waited_enough
            && !self.refused.is_empty()
            && self.majority_everywhere(|n| answered(n) || self.refused.contains(n))
        {
            // A refuser never answers a PreAccept below its sync point: without it no
            // majority may ever answer (a replica down for good), and a recovery's rounds
            // are ones it does take part in.
            return Decision::Recover;
        }
        if self.txn.id.is_sync_point() {
            // A sync point never takes the fast path, and its recovery needs no fast-path
            // evidence. Its deps are the union of the answers of a majority that witnessed
            // it (refusers are not among them), proposed as part of its Accept value so that
            // it has one decision.
            if self.majority_everywhere(|n| replies.contains_key(n)) {
                let deps = replies
                    .values()
                    .flat_map(|(_, d)| d.iter().copied())
                    .collect();
                return Decision::Accept {
                    execute_at: t0,
                    deps,
                };
            }
            return Decision::Wait;
        }
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
            return Decision::Commit(Outcome::Execute {
                execute_at: t0,
                deps,
            });
        }
        let fast_impossible = self.ranges.iter().any(|range| {
            let against = range.replicas.iter().filter(|n| match replies.get(n) {
                Some((w, _)) => *w != t0 || self.refused.contains(n),
                None => self.refused.contains(n) || unreachable.contains(n),
            });
            against.count() > range.replicas.len() - range.fast_quorum()
        });
        if self.majority_everywhere(answered) && (fast_impossible || waited_enough) {
            let execute_at = replies
                .values()
                .map(|(w, _)| *w)
                .max()
                .expect("a majority replied");
            return Decision::Accept {
                execute_at,
                deps: Deps::new(),
            };
        }
        Decision::Wait
    }

    /// Decides after BeginRecovery replies from a majority of every range (ACCORD.md
    /// section 4).
    pub fn decide_recovery(&self) -> Decision {
        let Phase::Recovering { replies } = &self.phase else {
            return Decision::Wait;
        };
        // Refusers' evidence counts below, but only replicas that witnessed the txn (and
        // promised the ballot) make the majority (see `RecoverInfo::refused`).
        if !self.majority_everywhere(|n| replies.get(n).is_some_and(|i| !i.refused)) {
            return Decision::Wait;
        }
        // 1. Decided somewhere: finish with that decision.
        for info in replies.values() {
            match info.status {
                Status::Stable | Status::Applied => {
                    let outcome = Outcome::Execute {
                        execute_at: info.execute_at,
                        deps: info.deps.clone(),
                    };
                    return Decision::Commit(outcome);
                }
                Status::Invalidated => return Decision::Commit(Outcome::Invalidate),
                _ => {}
            }
        }
        // 2. Accepted somewhere: re-propose the value of the highest accepted ballot.
        let accepted = replies
            .values()
            .filter(|i| matches!(i.status, Status::Accepted | Status::AcceptedInvalidate))
            .max_by_key(|i| i.accepted);
        if let Some(info) = accepted {
            return match info.status {
                Status::AcceptedInvalidate => Decision::Invalidate,
                // A sync point's accepted deps are part of its value.
                _ if self.txn.id.is_sync_point() => Decision::Accept {
                    execute_at: info.execute_at,
                    deps: info.deps.clone(),
                },
                _ => Decision::Accept {
                    execute_at: info.execute_at,
                    deps: Deps::new(),
                },
            };
        }
        // 3. Only PreAccepted.
        if self.txn.id.is_sync_point() {
            // A sync point never votes, so no fast path to honour, and invalidating it here
            // would let recoveries racing its coordinator (eager timers, a slow first round)
            // invalidate every sync point proposed, for as long as they race. Its value is
            // the union of the answers of a majority that witnessed it: those replies are
            // one (each replier refuses unknown txns below it from its witness on), and
            // the ballot makes it the only value decided.
            let deps = replies
                .values()
                .filter(|i| !i.refused)
                .flat_map(|i| i.deps.iter().copied())
                .collect();
            return Decision::Accept {
                execute_at: self.txn.id.timestamp(),
                deps,
            };
        }
        if replies.values().any(|i| i.rejects_fast_path) || self.fast_path_provably_failed(replies)
        {
            return Decision::Invalidate;
        }
        if replies.values().any(|i| i.undecided_blocker) {
            return Decision::Retry;
        }
        Decision::Accept {
            execute_at: self.txn.id.timestamp(),
            deps: Deps::new(),
        }
    }

    /// More repliers than |E| - |F| in some range have no fast-path vote: whatever the
    /// others did, the original coordinator cannot have gathered a fast quorum there.
    fn fast_path_provably_failed(&self, replies: &BTreeMap<NodeId, RecoverInfo>) -> bool {
        self.ranges.iter().any(|range| {
            let without_vote = range
                .replicas
                .iter()
                .filter(|n| replies.get(n).is_some_and(|i| !i.fast_vote));
            without_vote.count() > range.replicas.len() - range.fast_quorum()
        })
    }

    /// The union of the Accept replies' deps once a majority of every range accepted.
    pub fn decide_accept(&self) -> Decision {
        let Phase::Accepting {
            execute_at,
            replies,
            ..
        } = &self.phase
        else {
            return Decision::Wait;
        };
        if !self.majority_everywhere(|n| replies.contains_key(n)) {
            return Decision::Wait;
        }
        let deps = replies.values().flatten().copied().collect();
        Decision::Commit(Outcome::Execute {
            execute_at: *execute_at,
            deps,
        })
    }

    /// Commit the invalidation once a majority of every range accepted it. (A replica that
    /// proved the txn can never execute ends the round sooner, see `excluded`.) Refusals
    /// alone decide nothing: a refuser takes part once the sync point it waits for is
    /// decided, so a count of refusals today says nothing of who accepts tomorrow.
    pub fn decide_invalidate(&self) -> Decision {
        let Phase::Invalidating { replies } = &self.phase else {
            return Decision::Wait;
        };
        if self.majority_everywhere(|n| replies.contains(n)) {
            Decision::Commit(Outcome::Invalidate)
        } else {
            Decision::Wait
        }
    }

    /// Replicas that have not answered the current phase.
    pub fn unanswered(&self) -> Vec<NodeId> {
        // Refusers are asked again: their refusal lasts only until a sync point is decided.
        let answered = |n: &NodeId| match &self.phase {
            Phase::PreAccepting { replies } => replies.contains_key(n),
            Phase::Recovering { replies } => replies.get(n).is_some_and(|i| !i.refused),
            Phase::Accepting { replies, .. } => replies.contains_key(n),
            Phase::Invalidating { replies } => replies.contains(n),
            Phase::Committing { acked, .. } => acked.contains(n),
            Phase::Following => true,
        };
        self.replicas
            .iter()
            .copied()
            .filter(|n| !answered(n))
            .collect()
    }

    /// The decision reached a majority of every range and the client (if any) has its
    /// answer: replicas that have not acknowledged it (down, or cut off) will learn it through
    /// their own progress mechanism (recovery of what they hold, inquiries for deps they miss),
    /// so after `patience` of resending the coordinator may stop. Keeps a down replica from
    /// making every coordination live (and be resent) until it returns.
    pub fn done_enough(&self, now: u64, patience: u64) -> bool {
        let Phase::Committing { acked, .. } = &self.phase else {
            return false;
        };
        (!self.client || self.client_done)
            && now.saturating_sub(self.phase_started) >= patience
            && self.majority_everywhere(|n| acked.contains(n))
    }

    /// Done: the decision reached every replica (or another coordinator owns it) and the
    /// client, if any, has its answer.
    pub fn finished(&self) -> bool {
        let decision_out = match &self.phase {
            Phase::Committing { acked, .. } => acked.len() == self.replicas.len(),
            Phase::Following => true,
            _ => false,
        };
        decision_out && (!self.client || self.client_done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RangeId, TxnId};
    use bytes::Bytes;

    fn ts(hlc: u64, node: u16) -> Timestamp {
        Timestamp {
            epoch: 1,
            hlc,
            flags: 1,
            node,
        }
    }

    fn coordination(n: u16, replies: &[(u16, Timestamp)]) -> Coordination {
        let t0 = ts(10, 0);
        let replicas: Vec<NodeId> = (0..n).map(NodeId).collect();
        let range = RangeInfo {
            id: RangeId(1),
            start: Bytes::new(),
            end: None,
            replicas: replicas.clone(),
        };
        let replies = replies
            .iter()
            .map(|(node, w)| (NodeId(*node), (*w, Deps::new())))
            .collect();
        Coordination {
            txn: Txn::new(TxnId(t0), &[], &[Bytes::from_static(b"k")], Bytes::new()),
            ranges: vec![range],
            replicas,
            ballot: Ballot::ZERO,
            phase: Phase::PreAccepting { replies },
            phase_started: 0,
            last_sent: 0,
            client: true,
            client_done: false,
            refused: BTreeSet::new(),
            excluded: false,
        }
    }

    /// (replicas, replies as (node, witnessed hlc), waited, expected): the fast-path rule as
    /// data. The coordinator is node 0; its own reply counts like any other.
    #[test]
    fn pre_accept_decision_table() {
        let fast = |hlc| {
            Decision::Commit(Outcome::Execute {
                execute_at: ts(hlc, 0),
                deps: Deps::new(),
            })
        };
        let slow = |hlc, node| Decision::Accept {
            execute_at: ts(hlc, node),
            deps: Deps::new(),
        };
        type Case = (u16, Vec<(u16, Timestamp)>, bool, Decision);
        let cases: Vec<Case> = vec![
            (
                3,
                vec![(0, ts(10, 0)), (1, ts(10, 0)), (2, ts(10, 0))],
                false,
                fast(10),
            ),
            (
                3,
                vec![(0, ts(10, 0)), (1, ts(10, 0))],
                false,
                Decision::Wait,
            ),
            (3, vec![(0, ts(10, 0)), (1, ts(10, 0))], true, slow(10, 0)),
            (3, vec![(0, ts(10, 0)), (1, ts(12, 1))], false, slow(12, 1)),
            (3, vec![(0, ts(10, 0))], true, Decision::Wait),
            (
                5,
                vec![
                    (0, ts(10, 0)),
                    (1, ts(10, 0)),
                    (2, ts(10, 0)),
                    (3, ts(10, 0)),
                ],
                false,
                fast(10),
            ),
            (
                5,
                vec![(0, ts(10, 0)), (1, ts(10, 0)), (2, ts(11, 2))],
                false,
                Decision::Wait,
            ),
            (
                5,
                vec![(0, ts(10, 0)), (1, ts(13, 1)), (2, ts(11, 2))],
                false,
                slow(13, 1),
            ),
        ];
        for (n, replies, waited, expected) in cases {
            let decision = coordination(n, &replies).decide_pre_accept(waited, &BTreeSet::new());
            assert_eq!(
                decision, expected,
                "n = {n}, replies {replies:?}, waited {waited}"
            );
        }
    }

    /// (replicas, recovery replies as (node, fast vote), expected): what a recovery that found
    /// the txn only PreAccepted decides. Refusals (a replica that saw a later sync point and
    /// never the txn) are missing votes, no more: with 5 replicas the fast quorum of 4 may
    /// have formed without the refuser (the simulator found a recovery that counted one as a
    /// rejection of the fast path).
    #[test]
    fn recovery_decision_table() {
        use crate::replica::{RecoverInfo, Replica, Status};
        let t0 = ts(10, 0);
        let info = |vote: bool| RecoverInfo {
            status: Status::PreAccepted,
            accepted: Ballot::ZERO,
            execute_at: t0,
            deps: Deps::new(),
            fast_vote: vote,
            rejects_fast_path: false,
            undecided_blocker: false,
            refused: false,
        };
        let at_t0 = Decision::Accept {
            execute_at: t0,
            deps: Deps::new(),
        };
        // Some(vote) is an ordinary reply; None a refusal.
        type Case = (u16, Vec<(u16, Option<bool>)>, Decision);
        let cases: Vec<Case> = vec![
            (3, vec![(0, Some(true)), (1, Some(true))], at_t0.clone()),
            (
                3,
                vec![(0, Some(true)), (1, Some(false))],
                Decision::Invalidate,
            ),
            // A refuser's reply is evidence, not part of the majority.
            (3, vec![(0, Some(true)), (1, None)], Decision::Wait),
            (
                3,
                vec![(0, Some(true)), (1, None), (2, Some(true))],
                Decision::Invalidate,
            ),
            (
                5,
                vec![(0, Some(true)), (1, Some(true)), (2, None)],
                Decision::Wait,
            ),
            (
                5,
                vec![(0, Some(true)), (1, Some(true)), (2, None), (3, Some(true))],
                at_t0.clone(),
            ),
            (
                5,
                vec![(0, Some(true)), (1, Some(true)), (2, Some(false))],
                at_t0.clone(),
            ),
            (
                5,
                vec![
                    (0, Some(true)),
                    (1, None),
                    (2, Some(false)),
                    (3, Some(true)),
                ],
                Decision::Invalidate,
            ),
            (
                5,
                vec![(0, Some(true)), (1, Some(true)), (2, Some(true))],
                at_t0,
            ),
        ];
        for (n, votes, expected) in cases {
            let mut c = coordination(n, &[]);
            let txn = c.txn.clone();
            let replies = votes
                .iter()
                .map(|(node, vote)| {
                    let reply = match vote {
                        Some(v) => info(*v),
                        None => Replica::default().refusal_info(&txn),
                    };
                    (NodeId(*node), reply)
                })
                .collect();
            c.phase = Phase::Recovering { replies };
            assert_eq!(c.decide_recovery(), expected, "n = {n}, votes {votes:?}");
        }
    }

    /// A sync point found only PreAccepted is accepted with the union of the deps of the
    /// replicas that witnessed it (refusers are not among them), never invalidated: it has
    /// no fast path to honour.
    #[test]
    fn a_recovered_sync_point_keeps_the_union_of_its_witnesses_deps() {
        use crate::replica::{RecoverInfo, Replica, Status};
        let mut c = coordination(3, &[]);
        c.txn = Txn {
            id: TxnId(Timestamp {
                flags: 2,
                ..ts(10, 0)
            }),
            keys: Vec::new(),
            op: Bytes::new(),
            scope: None,
        };
        let witnessed = |deps: &[u64]| RecoverInfo {
            status: Status::PreAccepted,
            accepted: Ballot::ZERO,
            execute_at: c.txn.id.timestamp(),
            deps: deps.iter().map(|h| TxnId(ts(*h, 1))).collect(),
            fast_vote: false,
            rejects_fast_path: false,
            undecided_blocker: false,
            refused: false,
        };
        let replies = BTreeMap::from([
            (NodeId(0), witnessed(&[3])),
            (NodeId(1), Replica::default().refusal_info(&c.txn)),
            (NodeId(2), witnessed(&[4, 5])),
        ]);
        c.phase = Phase::Recovering { replies };
        assert_eq!(
            c.decide_recovery(),
            Decision::Accept {
                execute_at: c.txn.id.timestamp(),
                deps: [3, 4, 5].iter().map(|h| TxnId(ts(*h, 1))).collect(),
            }
        );
    }

    /// Invalidation needs a majority of acknowledgements; refusals, however many, decide
    /// nothing (a refuser may take part later).
    #[test]
    fn invalidation_decision() {
        let cases: Vec<(u16, Vec<u16>, Vec<u16>, Decision)> = vec![
            (3, vec![0], vec![], Decision::Wait),
            (3, vec![0, 1], vec![], Decision::Commit(Outcome::Invalidate)),
            (3, vec![0], vec![1], Decision::Wait),
            (3, vec![], vec![1, 2], Decision::Wait),
            (5, vec![0], vec![1, 2], Decision::Wait),
            (5, vec![], vec![1, 2, 3], Decision::Wait),
            (
                5,
                vec![0, 3, 4],
                vec![1, 2],
                Decision::Commit(Outcome::Invalidate),
            ),
        ];
        for (n, acked, refused, expected) in cases {
            let mut c = coordination(n, &[]);
            c.phase = Phase::Invalidating {
                replies: acked.iter().copied().map(NodeId).collect(),
            };
            c.refused = refused.iter().copied().map(NodeId).collect();
            assert_eq!(
                c.decide_invalidate(),
                expected,
                "n = {n}, acked {acked:?}, refused {refused:?}"
            );
        }
    }
}
