//! Progress: resending rounds replicas have not answered, telling replicas the decisions
//! they missed, and recovering (or asking peers about) txns undecided here for too long.

use super::*;

/// Inquiries about an unknown txn left unanswered before this node proposes a sync point
/// to settle it (see `make_progress`).
const UNANSWERED_INQUIRIES: u32 = 2;

/// How often missed decisions go to a replica not heard from (a batch each time).
const MISSED_PROBE_US: u64 = 1_000_000;

impl Node {
    /// The host's link to `peer` is up again (it reconnected): send it the decisions it
    /// missed while it was unreachable.
    pub fn peer_up(&mut self, peer: NodeId) {
        self.unreachable.remove(&peer);
        if self.missed.contains_key(&peer) {
            self.catching_up.insert(peer);
        }
    }

    /// The host's link to `peer` is down (connecting fails, or the stream broke). A hint
    /// for speed only: a coordinator whose fast quorum needs `peer` takes the slow path as
    /// soon as a majority answered, instead of waiting out `fast_path_wait_us` for a vote
    /// that cannot come. Hearing from the peer, or [`Node::peer_up`], ends it.
    pub fn peer_down(&mut self, peer: NodeId) {
        if peer != self.id {
            self.unreachable.insert(peer);
        }
    }

    /// How many peers are reported unreachable (see [`Node::peer_down`]).
    pub fn unreachable_peers(&self) -> usize {
        self.unreachable.len()
    }

    /// Starts the recovery clock of an undecided txn, unless it is running.
    pub(super) fn watch(&mut self, id: TxnId) {
        let deadline = self.now + self.backoff(id, 0);
        if self.inquired.remove(&id) {
            // Learnt through an inquiry (its coordinator is likely cut off, and txns here
            // already wait on it): recover one base period from now, whatever the backoff of
            // the inquiries reached.
            self.progress.insert(id, (deadline, 0));
        } else {
            self.progress.entry(id).or_insert((deadline, 0));
        }
    }

    /// Another node drives `id` under `ballot` (a recovery, or its Accept): this node's own
    /// recovery of it waits a backoff from now. Recovering at every timer regardless, every
    /// replica of a txn whose coordinator went away started ballot after ballot, each
    /// pre-empting the others' before it could finish (a livelock: five nodes, 1,200
    /// attempts each, nothing decided).
    pub(super) fn another_drives(&mut self, from: NodeId, id: TxnId, ballot: Ballot) {
        if from == self.id || ballot == Ballot::ZERO {
            return;
        }
        let now = self.now;
        let Some(attempt) = self.progress.get(&id).map(|(_, a)| *a) else {
            return;
        };
        let later = now + self.backoff(id, attempt);
        let entry = self.progress.get_mut(&id).expect("checked");
        entry.0 = entry.0.max(later);
    }

    /// `recover_after_us` plus deterministic jitter of up to as much again, doubling with
    /// each attempt (capped).
    pub(super) fn backoff(&self, id: TxnId, attempt: u32) -> u64 {
        let base = self.config.recover_after_us << attempt.min(4);
        let mix = (id.timestamp().hlc ^ (u64::from(self.id.0) << 48) ^ u64::from(attempt))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        base + (mix >> 33) % base.max(1)
    }

    /// Resends the current round to replicas that have not answered it.
    pub(super) fn retry(&mut self, id: TxnId) {
        let now = self.now;
        let Some(c) = self.coordinating.get_mut(&id) else {
            return;
        };
        if now.saturating_sub(c.last_sent) < self.config.retry_us {
            return;
        }
        c.last_sent = now;
        let txn = c.txn.clone();
        let message = match &c.phase {
            Phase::PreAccepting { .. } => Message::PreAccept { txn },
            Phase::Recovering { .. } => Message::BeginRecovery {
                txn,
                ballot: c.ballot,
            },
            Phase::Accepting {
                execute_at,
                proposed,
                ..
            } => Message::Accept {
                txn,
                ballot: c.ballot,
                execute_at: *execute_at,
                deps: proposed.clone(),
            },
            Phase::Invalidating { .. } => Message::AcceptInvalidate {
                txn,
                ballot: c.ballot,
            },
            Phase::Committing {
                decision: Outcome::Execute { execute_at, deps },
                ..
            } => Message::Stable {
                txn,
                execute_at: *execute_at,
                deps: deps.clone(),
            },
            Phase::Committing {
                decision: Outcome::Invalidate,
                ..
            } => Message::Invalidate { txn },
            Phase::Following => return,
        };
        for to in c.unanswered() {
            self.send(to, message.clone());
        }
    }

    /// Sends a batch of the decisions each returning replica missed; and, once a second,
    /// to every replica that missed some, heard from or not: the last message it sent may
    /// predate what it missed, and a quiet replica would otherwise never learn it. A
    /// decision stays missed until the replica acknowledges it (`StableOk`, see
    /// [`Node::missed_acknowledged`]): one sent while the replica was cut off is lost, and
    /// nothing else may ever bring it (a read no later txn depends on). The next batch goes
    /// once the last is acknowledged, or again after a retry period.
    pub(super) fn send_missed(&mut self) {
        if self.now.saturating_sub(self.last_missed_probe) >= MISSED_PROBE_US {
            self.last_missed_probe = self.now;
            self.catching_up.extend(self.missed.keys().copied());
        }
        for replica in std::mem::take(&mut self.catching_up) {
            let Some(missed) = self.missed.get_mut(&replica) else {
                continue;
            };
            let waiting = self
                .missed_batches
                .get(&replica)
                .is_some_and(|(at, batch)| {
                    self.now.saturating_sub(*at) < self.config.retry_us
                        && batch.iter().any(|id| missed.contains(id))
                });
            if waiting {
                continue;
            }
            // Collected by GC meanwhile: every replica applied it.
            missed.retain(|id| self.replica.command(id).is_some());
            let batch: Vec<TxnId> = missed.iter().take(MISSED_PER_TICK).copied().collect();
            if missed.is_empty() {
                self.missed.remove(&replica);
                self.missed_batches.remove(&replica);
                continue;
            }
            for id in &batch {
                let command = self.replica.command(id).expect("kept above");
                let message = match command.status {
                    Status::Stable | Status::Applied => Message::Stable {
                        txn: command.txn.clone(),
                        execute_at: command.execute_at,
                        deps: command.deps.clone(),
                    },
                    Status::Invalidated => Message::Invalidate {
                        txn: command.txn.clone(),
                    },
                    _ => continue,
                };
                self.send(replica, message);
            }
            self.missed_batches.insert(replica, (self.now, batch));
        }
    }

    /// `from` acknowledged the decision of `id`: no longer missed there.
    pub(super) fn missed_acknowledged(&mut self, from: NodeId, id: TxnId) {
        let Some(missed) = self.missed.get_mut(&from) else {
            return;
        };
        missed.remove(&id);
        if missed.is_empty() {
            self.missed.remove(&from);
            self.missed_batches.remove(&from);
        } else {
            // The next batch may be due: looked at on the next tick.
            self.catching_up.insert(from);
        }
    }

    /// A txn undecided here for too long: recover it if we know it, else ask peers.
    pub(super) fn make_progress(&mut self, id: TxnId) {
        let attempt = self.progress.get(&id).map_or(0, |(_, a)| *a + 1);
        let deadline = self.now + self.backoff(id, attempt);
        self.progress.insert(id, (deadline, attempt));
        match self.replica.command(&id) {
            Some(command) if command.status.is_decided() => {
                self.progress.remove(&id);
            }
            Some(command) => {
                // A coordination that stood aside for a higher ballot waits for an outcome
                // the other coordinator may never deliver (it may have crashed): recover the
                // txn ourselves, still owing our client the answer.
                let client = match self.coordinating.get(&id) {
                    None => false,
                    Some(c) if c.phase == Phase::Following => c.client && !c.client_done,
                    Some(_) => return,
                };
                let txn = command.txn.clone();
                let ballot = Ballot(self.clock.unique_now(TxnKind::Write, Timestamp::ZERO));
                self.stats.recoveries += 1;
                self.coordinating.remove(&id);
                self.coordinate(txn, ballot, client);
            }
            None if self.replica.excluded(&id) => {
                // Dropped by GC everywhere, or left out of a decided sync point above it:
                // finished or never to execute, nothing to ask.
                self.progress.remove(&id);
                self.inquired.remove(&id);
            }
            None => {
                if attempt >= UNANSWERED_INQUIRIES && self.replica.no_sync_point_settles(&id) {
                    // Nobody reachable knows it: perhaps only a node lost for good witnessed
                    // it. A sync point decided by the live majority leaves it out (none of
                    // them knows it, and they refuse it from then on), which proves it can
                    // never execute, and whoever waits on it goes on. Only when no sync point
                    // known here can still settle it: each depends on every txn below it, so
                    // proposing one per unanswered inquiry while GC waits for a down node
                    // piled up sync points with thousands of deps each (a node at 100% CPU,
                    // its log writes and replies seconds behind).
                    self.sync_wanted = true;
                }
                for peer in self.all_replicas.clone() {
                    if peer != self.id {
                        self.send(peer, Message::Inquire { txn_id: id });
                    }
                }
                // Once a peer's answer makes the txn known here, its recovery is due one base
                // period later, not after this doubled backoff (see `watch`).
                self.inquired.insert(id);
            }
        }
    }
}
