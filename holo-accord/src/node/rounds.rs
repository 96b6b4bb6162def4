//! The rounds this node coordinates: replies counted, and each coordination moved to its
//! next phase (or handed to a coordinator with a higher ballot) when they allow.

use super::*;

impl Node {
    /// A reply to a round this node coordinates.
    pub(super) fn coordinator_reply(&mut self, from: NodeId, message: Message) {
        let id = message.txn_id();
        if matches!(message, Message::StableOk { .. }) {
            self.missed_acknowledged(from, id);
        }
        let Some(c) = self.coordinating.get_mut(&id) else {
            return;
        };
        match (message, &mut c.phase) {
            (
                Message::PreAcceptOk {
                    witnessed, deps, ..
                },
                Phase::PreAccepting { replies },
            ) => {
                self.clock.observe(witnessed);
                replies.insert(from, (witnessed, deps));
            }
            (Message::RecoverOk { info, ballot, .. }, Phase::Recovering { replies })
                if ballot == c.ballot =>
            {
                replies.insert(from, info);
            }
            (Message::AcceptOk { deps, ballot, .. }, Phase::Accepting { replies, .. })
                if ballot == c.ballot =>
            {
                replies.insert(from, deps);
            }
            (Message::AcceptInvalidateOk { ballot, .. }, Phase::Invalidating { replies })
                if ballot == c.ballot =>
            {
                replies.insert(from);
            }
            (Message::StableOk { .. }, Phase::Committing { acked, .. }) => {
                acked.insert(from);
            }
            (
                Message::Refused { excluded, .. },
                Phase::PreAccepting { .. }
                | Phase::Recovering { .. }
                | Phase::Accepting { .. }
                | Phase::Invalidating { .. },
            ) => {
                c.refused.insert(from);
                c.excluded |= excluded;
            }
            (
                Message::PreAcceptNack { promised, .. }
                | Message::AcceptNack { promised, .. }
                | Message::RecoverNack { promised, .. },
                _,
            ) if promised > c.ballot => {
                // Another coordinator holds a higher ballot and will finish the txn.
                self.clock.observe(promised.0);
                self.stand_aside(id);
                return;
            }
            _ => return,
        }
        self.advance(id);
        self.finish_if_done(id);
    }

    /// The local replica learnt the decision of `id`: a round this node still drives for it
    /// (a coordinator cut off while a recovery decided, or a recovery overtaken by another)
    /// stops; the client, if owed, hears at the Apply or the invalidation. Driving on was
    /// wrong, not just wasted: once every replica collected the txn, the others refuse it as
    /// unknown below their GC floor, and refusals from too many make a round decide to
    /// invalidate, so a txn executed here was decided invalidated too (found by the
    /// simulator).
    pub(super) fn decided_here(&mut self, id: TxnId) {
        if self
            .coordinating
            .get(&id)
            .is_some_and(|c| !matches!(c.phase, Phase::Committing { .. } | Phase::Following))
        {
            self.stand_aside(id);
        }
    }

    /// A txn the local replica does not hold (it refused it: a txn proposed in an epoch
    /// behind a sync point of a later one is below it, whatever its hlc) and which a replica
    /// proved can never execute (`Refused { excluded }`, or the local replica's own proof).
    /// Recovering it would go on for ever: every replica refuses it, and the local one holds
    /// nothing to invalidate; the round just stops. If its client is still owed, the answer
    /// is "invalidated": the proof may also mean "finished and collected" (below a GC
    /// floor), but not for this txn, since had it executed it would have executed here too
    /// before any GC floor passed it, and that Apply answered the client.
    pub(super) fn never_held_yet_excluded(&self, c: &Coordination) -> bool {
        let id = c.txn.id;
        self.replica.command(&id).is_none() && (c.excluded || self.replica.excluded_txn(&c.txn))
    }

    /// Hands a txn over to the coordinator with the higher ballot.
    pub(super) fn stand_aside(&mut self, id: TxnId) {
        let Some(c) = self.coordinating.get_mut(&id) else {
            return;
        };
        if c.client && !c.client_done {
            c.phase = Phase::Following;
        } else {
            self.coordinating.remove(&id);
        }
    }

    /// Moves a coordination to its next phase when its replies allow.
    pub(super) fn advance(&mut self, id: TxnId) {
        let Some(c) = self.coordinating.get(&id) else {
            return;
        };
        // The local replica's decision is final: a recovery whose replies predate it (a
        // replier may have dropped the txn by GC since and answer as if it never saw it)
        // finishes with it instead of deciding again.
        let known = self.replica.command(&id).and_then(|cmd| match cmd.status {
            Status::Stable | Status::Applied => Some(Outcome::Execute {
                execute_at: cmd.execute_at,
                deps: cmd.deps.clone(),
            }),
            Status::Invalidated => Some(Outcome::Invalidate),
            _ => None,
        });
        // Proof that it can never execute, from a replica or from what this one knows (only
        // looked up when refusals or a recovery suggest it may be so). The local replica
        // holds it undecided: a txn decided here made the round stand aside.
        let undecided = !matches!(c.phase, Phase::Committing { .. } | Phase::Following);
        if undecided && known.is_none() && self.never_held_yet_excluded(c) {
            // Nothing to commit: no replica can still hold it in a way that lets it run.
            self.learned_invalidated(id);
            self.coordinating.remove(&id);
            return;
        }
        let excluded = undecided
            && known.is_none()
            && self.replica.command(&id).is_some()
            && (c.excluded
                || (c.ballot != Ballot::ZERO || !c.refused.is_empty())
                    && self.replica.excluded(&id));
        let decision = match &c.phase {
            Phase::PreAccepting { .. }
            | Phase::Recovering { .. }
            | Phase::Accepting { .. }
            | Phase::Invalidating { .. }
                if known.is_some() =>
            {
                Decision::Commit(known.expect("checked"))
            }
            _ if excluded => Decision::Commit(Outcome::Invalidate),
            Phase::PreAccepting { .. } => {
                let waited =
                    self.now.saturating_sub(c.phase_started) >= self.config.fast_path_wait_us;
                c.decide_pre_accept(waited, &self.unreachable)
            }
            Phase::Recovering { .. } => c.decide_recovery(),
            Phase::Accepting { .. } => c.decide_accept(),
            Phase::Invalidating { .. } => c.decide_invalidate(),
            Phase::Committing { .. } | Phase::Following => Decision::Wait,
        };
        let (phase, message) = match decision {
            Decision::Wait => return,
            Decision::Recover => {
                // Refusals keep PreAccept from ever reaching a majority: recover the txn
                // under a ballot, which refusers answer (they witness it once the sync point
                // above it is decided, or report what they know, or prove it can never
                // execute), still owing the client the answer.
                let c = self.coordinating.remove(&id).expect("checked above");
                let ballot = Ballot(self.clock.unique_now(TxnKind::Write, Timestamp::ZERO));
                self.stats.recoveries += 1;
                self.coordinate(c.txn, ballot, c.client && !c.client_done);
                return;
            }
            Decision::Retry => {
                // Recovery must wait for an earlier txn's fate; try again later. A client
                // still owed the answer keeps its coordination (standing aside, Following),
                // so the next recovery attempt still answers it.
                if c.client && !c.client_done {
                    let c = self.coordinating.get_mut(&id).expect("checked above");
                    c.phase = Phase::Following;
                    self.watch(id);
                } else {
                    self.coordinating.remove(&id);
                }
                return;
            }
            Decision::Accept { execute_at, deps } => (
                Phase::Accepting {
                    execute_at,
                    proposed: deps.clone(),
                    replies: BTreeMap::new(),
                },
                Message::Accept {
                    txn: c.txn.clone(),
                    ballot: c.ballot,
                    execute_at,
                    deps,
                },
            ),
            Decision::Invalidate => (
                Phase::Invalidating {
                    replies: BTreeSet::new(),
                },
                Message::AcceptInvalidate {
                    txn: c.txn.clone(),
                    ballot: c.ballot,
                },
            ),
            Decision::Commit(outcome) => {
                match (&outcome, &c.phase) {
                    _ if id.is_sync_point() => {}
                    (Outcome::Invalidate, _) => self.stats.invalidations += 1,
                    (_, Phase::PreAccepting { .. }) => self.stats.fast_path += 1,
                    _ => self.stats.slow_path += 1,
                }
                let message = match &outcome {
                    Outcome::Execute { execute_at, deps } => Message::Stable {
                        txn: c.txn.clone(),
                        execute_at: *execute_at,
                        deps: deps.clone(),
                    },
                    Outcome::Invalidate => Message::Invalidate { txn: c.txn.clone() },
                };
                (
                    Phase::Committing {
                        decision: outcome,
                        acked: BTreeSet::new(),
                    },
                    message,
                )
            }
        };
        let now = self.now;
        let c = self.coordinating.get_mut(&id).expect("checked above");
        c.phase = phase;
        c.phase_started = now;
        c.last_sent = now;
        for to in c.replicas.clone() {
            self.send(to, message.clone());
        }
    }
}
