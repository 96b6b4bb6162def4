//! The replica side: the state of every transaction this node has witnessed, the per-key
//! conflict index, the PreAccept / Accept / Stable handlers and execution order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ids::{Ballot, Clock, Timestamp, TxnId};
use crate::txn::{Access, Deps, Key, Txn};

mod exclusion;
mod execution;
mod inspect;

use exclusion::{SyncPoints, above, excluded_in, scope_of};

/// How far a transaction has progressed at this replica. Ordered: a status never goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    PreAccepted,
    Accepted,
    /// A recovery coordinator proposed that the txn never executes.
    AcceptedInvalidate,
    /// Committed with final executeAt and deps (Accord's Stable).
    Stable,
    Applied,
    /// Decided never to execute.
    Invalidated,
}

impl Status {
    /// The outcome is final: Stable, Applied or Invalidated.
    pub fn is_decided(self) -> bool {
        self >= Status::Stable
    }
}

/// One transaction as this replica knows it. This is also the durable record: every change
/// is persisted as the whole new state, so replaying records is idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub txn: Txn,
    pub status: Status,
    /// The witnessed timestamp while PreAccepted, the proposed one while Accepted, the final
    /// one from Stable on.
    pub execute_at: Timestamp,
    pub deps: Deps,
    pub promised: Ballot,
    pub accepted: Ballot,
    /// This replica witnessed the txn at its t0 when the original coordinator's PreAccept
    /// arrived: a fast-path vote. A txn first learnt through recovery or an inquiry never
    /// gets one (pitfall 5).
    pub fast_vote: bool,
}

/// What a replica reports to a recovery coordinator (ACCORD.md section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverInfo {
    pub status: Status,
    pub accepted: Ballot,
    pub execute_at: Timestamp,
    pub deps: Deps,
    pub fast_vote: bool,
    /// A conflicting txn was decided to execute after t0 without this one in its deps: this
    /// txn cannot have taken the fast path.
    pub rejects_fast_path: bool,
    /// A conflicting txn is Accepted after t0 without this one in its deps, not decided yet:
    /// the recovery must wait for its decision and retry.
    pub undecided_blocker: bool,
    /// The replier refuses the txn (it is below a sync point not decided there) and recorded
    /// nothing, no promise either: its evidence counts, but not towards the recovery's
    /// majority. A majority that witnessed the txn is what makes later conflicting txns list
    /// it or show up in the evidence; counting a refuser let a recovery propose t0 while the
    /// refusers went on to decide a conflicting txn without it, then lifted their refusal
    /// and accepted it.
    pub refused: bool,
}

/// The conflict index of one key.
#[derive(Debug, Default, Clone)]
struct KeyState {
    /// Every transaction that touches the key, and how.
    txns: BTreeMap<TxnId, Access>,
    /// The highest t0 or executeAt of a writer / a reader seen on the key.
    max_write: Timestamp,
    max_read: Timestamp,
}

/// The replica state of one node (all the ranges it replicates share one key space).
#[derive(Debug, Default)]
pub struct Replica {
    commands: BTreeMap<TxnId, Command>,
    keys: HashMap<Key, KeyState>,
    /// Stable transactions not yet applied.
    waiting: BTreeSet<TxnId>,
    /// For an undecided or unapplied dep, the waiting txns that list it: when the dep is
    /// decided or applied, only these can become ready.
    dependents: BTreeMap<TxnId, BTreeSet<TxnId>>,
    /// Waiting txns whose readiness may have changed since the last `take_ready`.
    recheck: BTreeSet<TxnId>,
    /// For each waiting txn, the deps not yet known to be out of its way, highest first (the
    /// lowest, likeliest to resolve first, at the end). A dep out of the way (applied,
    /// invalidated, decided to run later, or excluded) stays so, and a check stops at the
    /// first dep that still blocks, so each dep is popped once and a check costs one look:
    /// a sync point lists thousands of deps and is checked each time one changes.
    unresolved: HashMap<TxnId, Vec<TxnId>>,
    /// The highest sync point over every range witnessed (or the GC floor): an unknown txn
    /// started below it may be refused (see [`Replica::refusal`]).
    sync_floor: TxnId,
    /// The sync points over every range held here.
    sync_points: BTreeSet<TxnId>,
    /// The exclusive sync points (scoped to a span of keys) held here: an unknown txn
    /// started below one and touching its span may be refused.
    exclusive: BTreeSet<TxnId>,
    /// Every replica durably applied the sync point with this id: the records of finished
    /// txns below it are dropped, and an unknown txn below it is finished (see
    /// [`Replica::gc`]).
    gc_floor: TxnId,
    /// The highest t0 or executeAt of any dropped txn: conflicts are computed as if every
    /// key had been written there.
    gc_max: Timestamp,
}

/// Why a replica refuses a txn it never witnessed (see [`Replica::refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A sync point above the txn, witnessed here without it, is not decided yet: asked
    /// again once it is, this replica either takes part or says `Excluded`.
    Pending,
    /// The txn can never execute: a sync point above it was decided without it (or every
    /// replica applied one above it). Whoever holds it may decide its invalidation.
    Excluded,
}

/// A replica's answer to a PreAccept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreAcceptReply {
    Ok(Timestamp, Deps),
    /// A recovery ballot was promised: the original coordinator must stand aside.
    Nack(Ballot),
    /// A duplicate of a PreAccept whose round is over: nothing to say.
    Silent,
}

impl<R> Handled<R> {
    fn unchanged(reply: R) -> Self {
        Handled {
            changed: None,
            reply,
        }
    }
}

/// The outcome of a handler: the new command state to persist (if it changed) and the
/// reply to send once that state is durable.
pub struct Handled<R> {
    pub changed: Option<Command>,
    pub reply: R,
}

impl Replica {
    pub fn command(&self, id: &TxnId) -> Option<&Command> {
        self.commands.get(id)
    }

    /// Transactions this replica holds a record of.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// Whether this replica must refuse to witness or accept `txn_id` (see [`Refusal`]).
    ///
    /// A replica that answered a sync point S without a txn T below it (T was unknown
    /// here) pledged that T never executes through its vote: S's deps are fixed from the
    /// answers of a majority that witnessed S, and a majority or fast quorum that lets T
    /// execute meets it in a replica that either knew T first (so T is in S's deps) or
    /// refuses T. The pledge is needed only while some S above T may be decided without T:
    /// - S decided (Stable or Applied) with T in its deps: S waits for T whatever T's fate,
    ///   and a sync point has one decision (its deps are the value of its Accept), so the
    ///   pledge is void for S.
    /// - S decided without T: T can never execute ([`Refusal::Excluded`]), and any node may
    ///   decide its invalidation without a round.
    /// - S not decided yet: the pledge holds ([`Refusal::Pending`]) until it is.
    ///
    /// So a replica refuses T for good only if T can never execute, and otherwise only
    /// until the sync points above T are decided; a minority lost for good cannot leave T
    /// with no majority able to decide it (neither execution nor invalidation).
    ///
    /// A PreAccept below a sync point is refused whatever the sync point's state
    /// ([`Replica::refuses_pre_accept`]): its answer would count as a fast-path vote.
    ///
    /// An exclusive sync point makes the same pledge for the txns that touch its span only
    /// (the argument is the same, restricted to them: its deps are the txns below it that
    /// touch the span), so txns elsewhere go on undisturbed while a split or merge cuts the
    /// history of its ranges.
    pub fn refusal(&self, txn: &Txn) -> Option<Refusal> {
        if self.commands.contains_key(&txn.id) {
            return None;
        }
        if self.excluded_txn(txn) {
            return Some(Refusal::Excluded);
        }
        let undecided = |s: &TxnId| !self.commands[s].status.is_decided();
        let global = txn.id < self.sync_floor && above(&self.sync_points, txn.id).any(undecided);
        let exclusive = self
            .exclusive_above(txn)
            .any(|s| undecided(s) && txn.touches(scope_of(&self.commands[s])));
        (global || exclusive).then_some(Refusal::Pending)
    }

    /// The exclusive sync points above `txn` that may refuse it (none for a sync point).
    fn exclusive_above<'a>(&'a self, txn: &Txn) -> impl Iterator<Item = &'a TxnId> {
        let ordinary = !txn.id.is_sync_point();
        above(&self.exclusive, txn.id).filter(move |_| ordinary)
    }

    /// A PreAccept of `txn` is refused: the txn is unknown here and below a sync point
    /// witnessed here (over every range, or exclusive with a span it touches). Witnessed
    /// now, an answer at t0 would count as a fast-path vote that a recovery, having heard
    /// this replica refuse, may already have counted as missing; the refusal sends the
    /// coordinator to the slow path, where [`Replica::refusal`] decides.
    pub fn refuses_pre_accept(&self, txn: &Txn) -> bool {
        if self.commands.contains_key(&txn.id) {
            return false;
        }
        txn.id < self.sync_floor
            || self
                .exclusive_above(txn)
                .any(|s| txn.touches(scope_of(&self.commands[s])))
    }

    /// No sync point over every range known here can settle `txn_id` (unknown here): every
    /// one above it is decided with it in its deps, or invalidated (or there is none). An
    /// undecided one may still leave it out, and one decided without it already proved it
    /// can never execute. Exclusive sync points do not count: without the txn's keys this
    /// replica cannot tell whether one covers it.
    pub fn no_sync_point_settles(&self, txn_id: &TxnId) -> bool {
        self.sync_points
            .range((
                std::ops::Bound::Excluded(*txn_id),
                std::ops::Bound::Unbounded,
            ))
            .all(|s| {
                let sync = &self.commands[s];
                match sync.status {
                    Status::Invalidated => true,
                    Status::Stable | Status::Applied => sync.deps.contains(txn_id),
                    _ => false,
                }
            })
    }

    /// `txn_id` can never execute: it is below the GC floor without a record here (every
    /// replica applied a sync point above it, which either waited for it or was decided
    /// without it), or a sync point above it was decided (Stable or Applied) without it in
    /// its deps: one over every range, or an exclusive one whose span the txn touches (known
    /// only if the txn is held here). Said only of a txn that is not decided here.
    pub fn excluded(&self, txn_id: &TxnId) -> bool {
        excluded_in(&self.commands, self.points(), txn_id, None)
    }

    /// [`Replica::excluded`] of a txn whose definition the caller has (its coordinator),
    /// held here or not.
    pub fn excluded_txn(&self, txn: &Txn) -> bool {
        excluded_in(&self.commands, self.points(), &txn.id, Some(txn))
    }

    fn points(&self) -> SyncPoints<'_> {
        SyncPoints {
            global: &self.sync_points,
            exclusive: &self.exclusive,
            gc_floor: self.gc_floor,
        }
    }

    /// What a replica that refuses `txn` reports to its recovery: no vote and no acceptance.
    /// The refusal itself is not evidence that the fast path failed: with 5 replicas a fast
    /// quorum of 4 can have formed without this one, so the recovery counts it as one missing
    /// vote, no more. What the replica knows of conflicting txns is evidence as from any
    /// other replica: a conflict decided after t0 without `txn` in its deps rules the fast
    /// path out, an accepted one makes the recovery wait. (Hiding it let a recovery commit a
    /// read at t0 below a write that had been committed without it, in the simulator.)
    pub fn refusal_info(&self, txn: &Txn) -> RecoverInfo {
        RecoverInfo {
            status: Status::PreAccepted,
            accepted: Ballot::ZERO,
            execute_at: txn.id.timestamp(),
            deps: Deps::new(),
            fast_vote: false,
            rejects_fast_path: self.decided_after_without(txn),
            undecided_blocker: self.accepted_after_without(txn),
            refused: true,
        }
    }

    /// The GC floor: unknown txns below it are finished.
    pub fn gc_floor(&self) -> TxnId {
        self.gc_floor
    }

    /// The highest timestamp among dropped txns.
    pub fn gc_max(&self) -> Timestamp {
        self.gc_max
    }

    /// Holds any txn other than sync points.
    pub fn holds_ordinary(&self) -> bool {
        self.commands.keys().any(|id| !id.is_sync_point())
    }

    /// Holds a sync point that is neither applied nor invalidated. Every sync point held is
    /// in `sync_points` or `exclusive` (see `insert` and `gc`), so this looks at those only,
    /// not at every record: read barriers ask it for each keyspace command.
    pub fn holds_unfinished_sync_point(&self) -> bool {
        self.sync_points.iter().chain(&self.exclusive).any(|id| {
            self.commands
                .get(id)
                .is_some_and(|c| !matches!(c.status, Status::Applied | Status::Invalidated))
        })
    }

    /// Every replica durably applied the sync point `floor`: every txn below it that ever
    /// executes is applied everywhere, and the others never execute. Drops the records of
    /// the finished ones (keys whose index empties go too; `gc_max` keeps ordering new txns
    /// above the dropped ones). Returns how many records were dropped.
    pub fn gc(&mut self, floor: TxnId, max: Timestamp) -> usize {
        self.gc_floor = self.gc_floor.max(floor);
        self.sync_floor = self.sync_floor.max(floor);
        self.gc_max = self.gc_max.max(max);
        // Deps that are unknown here and now below the floor are done: whoever waits on
        // them needs another look.
        let below: Vec<TxnId> = self
            .dependents
            .range(..self.gc_floor)
            .map(|(id, _)| *id)
            .filter(|id| !self.commands.contains_key(id))
            .collect();
        for id in below {
            let waiting = self.dependents.remove(&id).unwrap_or_default();
            self.recheck.extend(waiting);
        }
        let dropped: Vec<TxnId> = self
            .commands
            .range(..self.gc_floor)
            .filter(|(_, c)| matches!(c.status, Status::Applied | Status::Invalidated))
            .map(|(id, _)| *id)
            .collect();
        for id in &dropped {
            let command = self.commands.remove(id).expect("listed above");
            self.sync_points.remove(id);
            self.exclusive.remove(id);
            self.gc_max = self
                .gc_max
                .max(command.execute_at)
                .max(command.txn.id.timestamp());
            self.dependents.remove(id);
            for (key, _) in &command.txn.keys {
                if let Some(state) = self.keys.get_mut(key) {
                    state.txns.remove(id);
                    if state.txns.is_empty() {
                        // The key's highest timestamps live on in gc_max.
                        self.gc_max = self.gc_max.max(state.max_write).max(state.max_read);
                        self.keys.remove(key);
                    }
                }
            }
        }
        dropped.len()
    }

    /// PreAccept: witness `txn` at t0 if nothing conflicting has a timestamp at or above it,
    /// else at a fresh timestamp above every conflict. Deps: conflicting txns below t0.
    /// Refused once a recovery ballot was promised.
    pub fn pre_accept(&mut self, txn: &Txn, clock: &mut Clock) -> Handled<PreAcceptReply> {
        if let Some(existing) = self.commands.get(&txn.id) {
            // A coordinator counts an answer at t0 as a fast-path vote. A record made without
            // one (the txn was learnt from a peer's `Inform`) must not answer so: a recovery
            // reads the record, finds no vote, and may invalidate a txn the coordinator
            // decided on the strength of that answer (pitfall 5 of ACCORD.md).
            let votes_or_is_no_vote = existing.fast_vote
                || existing.execute_at != txn.id.timestamp()
                || txn.id.is_sync_point();
            let reply = if existing.promised > Ballot::ZERO {
                PreAcceptReply::Nack(existing.promised)
            } else if existing.status == Status::PreAccepted && votes_or_is_no_vote {
                // A duplicate: answer as before.
                PreAcceptReply::Ok(existing.execute_at, existing.deps.clone())
            } else {
                PreAcceptReply::Silent
            };
            return Handled {
                changed: None,
                reply,
            };
        }
        let command = self.witness(txn, clock, true);
        let reply = PreAcceptReply::Ok(command.execute_at, command.deps.clone());
        Handled {
            changed: Some(command),
            reply,
        }
    }

    /// Records a txn first seen now as PreAccepted, with a fast-path vote only if asked.
    fn witness(&mut self, txn: &Txn, clock: &mut Clock, vote: bool) -> Command {
        let t0 = txn.id.timestamp();
        if txn.id.is_sync_point() {
            // Nothing is ordered against a sync point: it executes at its t0 and never votes
            // (it always takes the slow path, so its recovery needs no fast-path evidence).
            let command = Command {
                txn: txn.clone(),
                status: Status::PreAccepted,
                execute_at: t0,
                deps: self.conflicts_below(txn, t0),
                promised: Ballot::ZERO,
                accepted: Ballot::ZERO,
                fast_vote: false,
            };
            self.insert(command.clone());
            return command;
        }
        let max_conflict = self.max_conflict(txn);
        let witnessed = if t0 > max_conflict {
            t0
        } else {
            clock.unique_now(txn.id.kind(), max_conflict)
        };
        let command = Command {
            txn: txn.clone(),
            status: Status::PreAccepted,
            execute_at: witnessed,
            deps: self.conflicts_below(txn, t0),
            promised: Ballot::ZERO,
            accepted: Ballot::ZERO,
            fast_vote: vote && witnessed == t0,
        };
        self.insert(command.clone());
        command
    }

    /// BeginRecovery: promise `ballot` (refused below an earlier promise) and report what this
    /// replica knows; an unknown txn is pre-accepted first, without a fast-path vote.
    pub fn begin_recovery(
        &mut self,
        txn: &Txn,
        ballot: Ballot,
        clock: &mut Clock,
    ) -> Handled<Result<RecoverInfo, Ballot>> {
        if let Some(existing) = self.commands.get(&txn.id)
            && existing.promised > ballot
        {
            return Handled::unchanged(Err(existing.promised));
        }
        if !self.commands.contains_key(&txn.id) {
            self.witness(txn, clock, false);
        }
        let command = self.commands.get_mut(&txn.id).expect("witnessed above");
        let changed = (command.promised != ballot).then(|| {
            command.promised = ballot;
            command.clone()
        });
        let command = &self.commands[&txn.id];
        let info = RecoverInfo {
            status: command.status,
            accepted: command.accepted,
            execute_at: command.execute_at,
            deps: command.deps.clone(),
            fast_vote: command.fast_vote,
            rejects_fast_path: self.decided_after_without(txn),
            undecided_blocker: self.accepted_after_without(txn),
            refused: false,
        };
        Handled {
            changed,
            reply: Ok(info),
        }
    }

    /// A conflicting txn decided (Stable or Applied) to execute after t0 without `txn` in
    /// its final deps: had `txn` committed at t0, that txn would have to wait for it
    /// (invariant 3), so `txn` did not take the fast path. Whether the other txn started
    /// before or after t0 does not matter.
    fn decided_after_without(&self, txn: &Txn) -> bool {
        let t0 = txn.id.timestamp();
        self.conflicting(txn).any(|other| {
            matches!(other.status, Status::Stable | Status::Applied)
                && other.execute_at > t0
                && !other.deps.contains(&txn.id)
        })
    }

    /// A conflicting txn Accepted (not decided) after t0 without `txn` in its deps here:
    /// whether `txn` could have taken the fast path depends on that txn's final deps, so
    /// recovery must wait for its decision. (One replica's Accept deps are not final: with
    /// 5 replicas `txn` may still have committed on the fast path.)
    fn accepted_after_without(&self, txn: &Txn) -> bool {
        let t0 = txn.id.timestamp();
        self.conflicting(txn).any(|other| {
            other.status == Status::Accepted
                && other.execute_at > t0
                && !other.deps.contains(&txn.id)
        })
    }

    /// Every other known txn that conflicts with `txn` on some key.
    fn conflicting<'a>(&'a self, txn: &'a Txn) -> impl Iterator<Item = &'a Command> + 'a {
        let mut ids = BTreeSet::new();
        for (key, access) in &txn.keys {
            if let Some(state) = self.keys.get(key) {
                for (other, other_access) in &state.txns {
                    if *other != txn.id && access.conflicts_with(*other_access) {
                        ids.insert(*other);
                    }
                }
            }
        }
        ids.into_iter().map(|id| &self.commands[&id])
    }

    /// AcceptInvalidate: record, under `ballot`, the proposal that `txn` never executes.
    pub fn accept_invalidate(
        &mut self,
        txn: &Txn,
        ballot: Ballot,
        clock: &mut Clock,
    ) -> Handled<Result<(), Ballot>> {
        // (A replica that refuses the txn never gets here: the node answers `Refused`.
        // Once the refusal is lifted, the invalidation is recorded like any other.)
        if let Some(existing) = self.commands.get(&txn.id) {
            if existing.promised > ballot {
                return Handled::unchanged(Err(existing.promised));
            }
            if existing.status.is_decided() {
                return Handled::unchanged(Ok(()));
            }
        } else {
            self.witness(txn, clock, false);
        }
        let command = self.commands.get_mut(&txn.id).expect("known by now");
        command.status = Status::AcceptedInvalidate;
        command.promised = ballot;
        command.accepted = ballot;
        Handled {
            changed: Some(command.clone()),
            reply: Ok(()),
        }
    }

    /// Invalidate: the decision that `txn` never executes.
    ///
    /// # Panics
    /// If `txn` was already decided to execute: two decisions for one txn is a protocol bug.
    pub fn invalidate(&mut self, txn: &Txn, clock: &mut Clock) -> Option<Command> {
        if self.finished_and_dropped(&txn.id) {
            return None;
        }
        if !self.commands.contains_key(&txn.id) {
            self.witness(txn, clock, false);
        }
        let command = self.commands.get_mut(&txn.id).expect("known by now");
        match command.status {
            Status::Invalidated => None,
            Status::Stable | Status::Applied => {
                panic!("{} decided both to execute and to be invalidated", txn.id)
            }
            _ => {
                command.status = Status::Invalidated;
                let invalidated = command.clone();
                self.status_changed(txn.id);
                Some(invalidated)
            }
        }
    }

    /// Adopts what a peer told us: a decision is taken over; an undecided txn we never saw
    /// is recorded (without a vote) so recovery can finish it.
    pub fn inform(&mut self, command: &Command, clock: &mut Clock) -> Option<Command> {
        match command.status {
            Status::Stable | Status::Applied => {
                self.stable(&command.txn, command.execute_at, &command.deps)
            }
            Status::Invalidated => self.invalidate(&command.txn, clock),
            _ if !self.commands.contains_key(&command.txn.id)
                && self.refusal(&command.txn).is_none() =>
            {
                Some(self.witness(&command.txn, clock, false))
            }
            _ => None,
        }
    }

    /// Accept: record the proposed executeAt under `ballot`; deps are recomputed as every
    /// conflicting txn below executeAt (PreAccept's deps miss those started between t0 and t).
    /// A sync point's deps are part of the proposed value instead (`proposed`: the union of
    /// the PreAccept answers of a majority that witnessed it, or the value a recovery found
    /// accepted), so it has exactly one decision (see [`Replica::refusal`]).
    pub fn accept(
        &mut self,
        txn: &Txn,
        ballot: Ballot,
        execute_at: Timestamp,
        proposed: &Deps,
    ) -> Handled<Result<Deps, Ballot>> {
        let mut fast_vote = false;
        if let Some(existing) = self.commands.get(&txn.id) {
            if existing.promised > ballot {
                return Handled::unchanged(Err(existing.promised));
            }
            if existing.status.is_decided() {
                return Handled::unchanged(Ok(existing.deps.clone()));
            }
            fast_vote = existing.fast_vote;
        }
        let deps = if txn.id.is_sync_point() {
            proposed.clone()
        } else {
            self.conflicts_below(txn, execute_at)
        };
        let command = Command {
            txn: txn.clone(),
            status: Status::Accepted,
            execute_at,
            deps: deps.clone(),
            promised: ballot,
            accepted: ballot,
            fast_vote,
        };
        self.insert(command.clone());
        Handled {
            changed: Some(command),
            reply: Ok(deps),
        }
    }

    /// Stable: the decision. Returns the new state if it changed.
    ///
    /// # Panics
    /// If `txn` was already invalidated: two decisions for one txn is a protocol bug.
    pub fn stable(&mut self, txn: &Txn, execute_at: Timestamp, deps: &Deps) -> Option<Command> {
        if self.finished_and_dropped(&txn.id) {
            return None;
        }
        let previous = self.commands.get(&txn.id);
        match previous.map(|c| c.status) {
            Some(Status::Stable | Status::Applied) => return None,
            Some(Status::Invalidated) => {
                panic!("{} decided both to be invalidated and to execute", txn.id)
            }
            _ => {}
        }
        let (promised, accepted, fast_vote) = previous
            .map_or((Ballot::ZERO, Ballot::ZERO, false), |c| {
                (c.promised, c.accepted, c.fast_vote)
            });
        let command = Command {
            txn: txn.clone(),
            status: Status::Stable,
            execute_at,
            deps: deps.clone(),
            promised,
            accepted,
            fast_vote,
        };
        self.insert(command.clone());
        self.start_waiting(txn.id);
        self.status_changed(txn.id);
        if txn.id.is_sync_point() {
            self.excluded_by(txn.id);
        }
        Some(command)
    }

    /// The sync point `sync` was decided: undecided or unknown txns below it that it left
    /// out (and covers: an exclusive one, those known to touch its span) can never execute,
    /// so whoever waits on them needs another look.
    fn excluded_by(&mut self, sync: TxnId) {
        let deps = &self.commands[&sync].deps;
        let excluded: Vec<TxnId> = self
            .dependents
            .range(..sync)
            .map(|(id, _)| *id)
            .filter(|id| !deps.contains(id) && self.excluded(id))
            .collect();
        for id in excluded {
            let waiting = self.dependents.remove(&id).unwrap_or_default();
            self.recheck.extend(waiting);
        }
    }

    /// Unknown and below the GC floor: applied everywhere and dropped, or never executes. A
    /// message about it is a late duplicate.
    fn finished_and_dropped(&self, txn_id: &TxnId) -> bool {
        *txn_id < self.gc_floor && !self.commands.contains_key(txn_id)
    }

    /// Rebuilds state from a persisted record (records are whole states; the last one for a
    /// txn wins). Applied is not persisted: Stable txns execute again and the host's apply
    /// is idempotent.
    pub fn restore(&mut self, command: Command) {
        let id = command.txn.id;
        let mut command = command;
        if command.status == Status::Applied {
            command.status = Status::Stable;
        }
        let stable = command.status == Status::Stable;
        self.waiting.remove(&id);
        self.unresolved.remove(&id);
        self.insert(command);
        if stable {
            self.start_waiting(id);
            if id.is_sync_point() {
                self.excluded_by(id);
            }
        }
        self.status_changed(id);
    }

    /// The highest timestamp in any record: a restarted clock starts above it.
    pub fn max_timestamp(&self) -> Timestamp {
        self.commands
            .values()
            .flat_map(|c| {
                [
                    c.txn.id.timestamp(),
                    c.execute_at,
                    c.promised.0,
                    c.accepted.0,
                ]
            })
            .max()
            .unwrap_or(Timestamp::ZERO)
    }

    fn insert(&mut self, command: Command) {
        let id = command.txn.id;
        if command.txn.is_exclusive_sync_point() {
            // However this replica learns of a sync point (PreAccept, Accept, a decision,
            // recovery), it may refuse unknown txns below it from then on: an exclusive
            // one, those that touch its span.
            self.exclusive.insert(id);
        } else if id.is_sync_point() {
            self.sync_floor = self.sync_floor.max(id);
            self.sync_points.insert(id);
        }
        for (key, access) in &command.txn.keys {
            let state = self.keys.entry(key.clone()).or_default();
            state.txns.insert(id, *access);
            let max = match access {
                Access::Write => &mut state.max_write,
                Access::Read => &mut state.max_read,
            };
            *max = (*max).max(command.execute_at).max(id.timestamp());
        }
        self.commands.insert(id, command);
    }

    /// The highest timestamp of anything that conflicts with `txn` on any of its keys
    /// (dropped txns count as conflicting with everything).
    fn max_conflict(&self, txn: &Txn) -> Timestamp {
        let indexed = txn
            .keys
            .iter()
            .filter_map(|(key, access)| {
                let state = self.keys.get(key)?;
                Some(match access {
                    Access::Write => state.max_write.max(state.max_read),
                    Access::Read => state.max_write,
                })
            })
            .max()
            .unwrap_or(Timestamp::ZERO);
        indexed.max(self.gc_max)
    }

    /// Conflicting transactions with a TxnId below `bound`, other than `txn` itself. A sync
    /// point over every range conflicts with every txn, earlier sync points included (so
    /// applying one means every earlier one is done too); an exclusive sync point with the
    /// txns that touch its span, and no sync point; ordinary txns never list one.
    fn conflicts_below(&self, txn: &Txn, bound: Timestamp) -> Deps {
        if txn.id.is_sync_point() {
            let below = self
                .commands
                .range(..TxnId(bound))
                .filter(|(id, _)| **id != txn.id);
            return match &txn.scope {
                None => below.map(|(id, _)| *id).collect(),
                Some(scope) => below
                    .filter(|(id, c)| !id.is_sync_point() && c.txn.touches(scope))
                    .map(|(id, _)| *id)
                    .collect(),
            };
        }
        let mut deps = Deps::new();
        for (key, access) in &txn.keys {
            let Some(state) = self.keys.get(key) else {
                continue;
            };
            for (other, other_access) in state.txns.range(..TxnId(bound)) {
                if *other != txn.id && access.conflicts_with(*other_access) {
                    deps.insert(*other);
                }
            }
        }
        deps
    }
}
