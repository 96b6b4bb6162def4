//! The sans-IO node: events in (`propose`, `receive`, `tick`, `durable`), actions out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

mod action;
mod config;
mod epochs;
mod gc;
mod inspect;
mod ownership;
mod progress;
mod reads;
mod restart;
mod rounds;

pub use action::Action;
pub use config::Config;
pub use gc::CutStatus;

use crate::coordinator::{Coordination, Decision, Outcome, Phase};
use crate::ids::{Ballot, Clock, NodeId, Timestamp, TxnId, TxnKind};
use crate::messages::{Envelope, Message};
use crate::replica::{Command, Handled, PreAcceptReply, Refusal, Replica, Status};
use crate::topology::{RangeInfo, Topology};
use crate::txn::{Access, Deps, Key, KeySpan, Txn};

/// How many retry periods a coordinator keeps resending a decision to replicas that have
/// not acknowledged it, once a majority of every range has.
const COMMIT_RESENDS: u64 = 5;

/// Most missed decisions remembered per replica (beyond, it catches up lazily: through
/// the deps of later transactions and its progress mechanism).
const MISSED_MAX: usize = 1 << 20;

/// Missed decisions sent to a returning replica per tick.
const MISSED_PER_TICK: usize = 256;

/// How far above the current hlc (microseconds) one clock reservation reaches.
const CLOCK_RESERVATION_US: u64 = 1_000_000;

/// Counters for metrics: how the transactions this node coordinated were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Decided on the fast path (PreAccept only).
    pub fast_path: u64,
    /// Decided after an Accept round (slow path), including recoveries.
    pub slow_path: u64,
    /// Recoveries this node started (BeginRecovery rounds).
    pub recoveries: u64,
    /// Transactions decided never to execute by a coordination of this node.
    pub invalidations: u64,
    /// Messages about transactions of ranges this node does not replicate, ignored.
    pub not_replicated: u64,
}

/// One node of the cluster: a replica of its ranges and the coordinator of the
/// transactions its clients propose.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    /// The topologies of the epochs still in use, consecutive, the current one last.
    topologies: BTreeMap<u64, Topology>,
    config: Config,
    clock: Clock,
    now: u64,
    replica: Replica,
    coordinating: BTreeMap<TxnId, Coordination>,
    /// Undecided txns (and unknown deps) and when to recover (or inquire about) them.
    progress: BTreeMap<TxnId, (u64, u32)>,
    /// Unknown txns this node asked its peers about, until it learns them.
    inquired: BTreeSet<TxnId>,
    persist_seq: u64,
    durable_seq: u64,
    /// Messages held until the state they report is durable: (persist seq, to, message).
    held: VecDeque<(u64, NodeId, Message)>,
    /// Messages to this node itself, handled within the current step.
    local: VecDeque<Message>,
    outbox: BTreeMap<NodeId, Vec<Message>>,
    actions: Vec<Action>,
    stats: Stats,
    /// Decisions a replica never acknowledged before its coordination stopped resending
    /// them, by replica: sent again once the replica is heard from, so a node that was down
    /// catches up on everything it missed, not only on what later reads touch.
    missed: BTreeMap<NodeId, BTreeSet<TxnId>>,
    /// Replicas heard from that have missed decisions to be sent.
    catching_up: BTreeSet<NodeId>,
    /// When missed decisions last went to every replica that has some.
    last_missed_probe: u64,
    /// The last batch of missed decisions sent to each replica, and when.
    missed_batches: BTreeMap<NodeId, (u64, Vec<TxnId>)>,
    /// Peers the host reported unreachable (see [`Node::peer_down`]).
    unreachable: BTreeSet<NodeId>,
    /// Timestamps with an hlc below this may leave before their record is durable.
    clock_reserved: u64,
    /// A reservation persisted but not yet durable: (seq, upto).
    reserving: Option<(u64, u64)>,
    /// When this node last proposed a sync point.
    last_sync: u64,
    /// The highest sync point this node applied durably (the host said so).
    sync_applied: TxnId,
    /// Since when a sync point this node applied durably waits for a peer to apply it
    /// (GC is behind); `None` while GC keeps up.
    gc_behind_since: Option<u64>,
    /// The highest sync point each peer said it applied durably.
    sync_known: BTreeMap<NodeId, TxnId>,
    /// When this node last asked lagging peers for their sync point.
    last_sync_query: u64,
    /// Progress asks for a sync point now (an unknown dep nobody answers for).
    sync_wanted: bool,
    /// Every replica of every range in every epoch kept, this node included.
    all_replicas: Vec<NodeId>,
    /// Every range kept is on every node of `all_replicas` (see `ownership.rs`).
    replicates_everything: bool,
    /// The exclusive sync points this node proposed, and who applied them.
    cuts: BTreeMap<TxnId, gc::Cut>,
    /// The exclusive sync points this node applied durably (down to the GC floor).
    cuts_durable: BTreeSet<TxnId>,
    /// Ephemeral reads this node coordinates (see [`Node::read`]).
    reads: BTreeMap<TxnId, reads::Read>,
}

/// Why a topology was not adopted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("epoch {got} does not follow epoch {current}: epochs are adopted in order")]
    OutOfOrder { current: u64, got: u64 },
}

impl Node {
    pub fn new(id: NodeId, topology: Topology, config: Config) -> Node {
        let epoch = topology.epoch;
        let mut node = Node {
            id,
            topologies: BTreeMap::from([(epoch, topology)]),
            config,
            clock: Clock::new(id, epoch, 0),
            now: 0,
            replica: Replica::default(),
            coordinating: BTreeMap::new(),
            progress: BTreeMap::new(),
            inquired: BTreeSet::new(),
            persist_seq: 0,
            durable_seq: 0,
            held: VecDeque::new(),
            local: VecDeque::new(),
            outbox: BTreeMap::new(),
            actions: Vec::new(),
            stats: Stats::default(),
            missed: BTreeMap::new(),
            catching_up: BTreeSet::new(),
            last_missed_probe: 0,
            missed_batches: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            clock_reserved: 0,
            reserving: None,
            last_sync: 0,
            sync_applied: TxnId::default(),
            gc_behind_since: None,
            sync_known: BTreeMap::new(),
            last_sync_query: 0,
            sync_wanted: false,
            all_replicas: Vec::new(),
            replicates_everything: true,
            cuts: BTreeMap::new(),
            cuts_durable: BTreeSet::new(),
            reads: BTreeMap::new(),
        };
        node.refresh_replicas();
        node
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Decision counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Advances host time for the clock only (cheap; no timers run). A host calls it before
    /// proposing so new transaction ids follow real time; [`Node::tick`] runs the timers.
    pub fn observe_time(&mut self, now_micros: u64) {
        self.now = self.now.max(now_micros);
        self.clock.observe_now(now_micros);
    }

    /// Transactions this node still coordinates.
    pub fn coordinating(&self) -> usize {
        self.coordinating.len()
    }

    /// Client transactions this node proposed that are not decided yet (still in PreAccept
    /// or Accept). A host that limits how many it has in flight batches the commands that
    /// arrive meanwhile into fewer transactions; a decided transaction waiting to execute
    /// (behind a recovery, say) does not count, so it never holds up new proposals.
    pub fn undecided_proposals(&self) -> usize {
        self.coordinating
            .values()
            .filter(|c| {
                c.client
                    && matches!(
                        c.phase,
                        Phase::PreAccepting { .. } | Phase::Accepting { .. }
                    )
            })
            .count()
    }

    /// Starts coordinating a transaction over `reads` and `writes`; returns its id.
    pub fn propose(&mut self, reads: &[Key], writes: &[Key], op: Bytes) -> TxnId {
        let kind = Txn::kind_of(writes);
        let id = TxnId(self.clock.unique_now(kind, Timestamp::ZERO));
        let txn = Txn::new(id, reads, writes, op);
        self.coordinate(txn, Ballot::ZERO, true);
        id
    }

    /// The highest clock reservation persisted (durable or in flight): a host that rewrites
    /// its log keeps a record of it.
    pub fn clock_reserved(&self) -> u64 {
        self.reserving.map_or(self.clock_reserved, |(_, upto)| {
            upto.max(self.clock_reserved)
        })
    }

    fn coordinate(&mut self, txn: Txn, ballot: Ballot, client: bool) {
        let ranges = self.ranges_for(&txn);
        let replicas = Topology::replicas_of(&ranges.iter().collect::<Vec<_>>());
        assert!(
            replicas.contains(&self.id),
            "a coordinator replicates every range of its transactions"
        );
        let (phase, message) = if ballot == Ballot::ZERO {
            (
                Phase::PreAccepting {
                    replies: BTreeMap::new(),
                },
                Message::PreAccept { txn: txn.clone() },
            )
        } else {
            (
                Phase::Recovering {
                    replies: BTreeMap::new(),
                },
                Message::BeginRecovery {
                    txn: txn.clone(),
                    ballot,
                },
            )
        };
        let coordination = Coordination {
            txn,
            ranges,
            replicas,
            ballot,
            phase,
            phase_started: self.now,
            last_sent: self.now,
            client,
            client_done: false,
            refused: BTreeSet::new(),
            excluded: false,
        };
        let id = coordination.txn.id;
        self.coordinating.insert(id, coordination);
        // The message carries a timestamp (t0 or the ballot) this node just issued. Below
        // the durable clock reservation it leaves at once; otherwise a new reservation is
        // persisted and the message leaves once it (and the local record) is durable.
        let issued = if ballot == Ballot::ZERO {
            id.timestamp().hlc
        } else {
            ballot.0.hlc
        };
        self.handle(self.id, message.clone());
        let replicas = self.coordinating[&id].replicas.clone();
        self.send_issued(issued, &message, replicas);
        self.drain_local();
    }

    /// Sends `message`, which carries the hlc `issued` this node just issued, to each of
    /// `replicas` but itself: at once below the durable clock reservation, else once a new
    /// reservation (persisted now) and everything persisted before it are durable.
    fn send_issued(&mut self, issued: u64, message: &Message, replicas: Vec<NodeId>) {
        let reserved = issued < self.clock_reserved;
        if !reserved {
            self.reserve_clock(issued);
        }
        for to in replicas {
            if to == self.id {
                continue;
            }
            if reserved {
                self.send(to, message.clone());
            } else {
                self.reply(to, message.clone());
            }
        }
    }

    /// Handles a batch of messages from a peer.
    pub fn receive(&mut self, envelope: Envelope) {
        self.unreachable.remove(&envelope.from);
        if self.missed.contains_key(&envelope.from) {
            self.catching_up.insert(envelope.from);
        }
        for message in envelope.messages {
            self.handle(envelope.from, message);
        }
        self.drain_local();
    }

    /// Advances host time: resends unanswered rounds, takes the slow path where the
    /// fast-path wait is over, recovers transactions left undecided too long and asks
    /// peers about dependencies never seen.
    pub fn tick(&mut self, now_micros: u64) {
        self.now = self.now.max(now_micros);
        self.clock.observe_now(now_micros);
        let ids: Vec<TxnId> = self.coordinating.keys().copied().collect();
        let patience = COMMIT_RESENDS * self.config.retry_us;
        for id in ids {
            self.advance(id);
            self.retry(id);
            if self
                .coordinating
                .get(&id)
                .is_some_and(|c| c.done_enough(self.now, patience))
            {
                let c = self.coordinating.remove(&id).expect("checked");
                for replica in c.unanswered() {
                    let missed = self.missed.entry(replica).or_default();
                    if missed.len() < MISSED_MAX {
                        missed.insert(id);
                    }
                }
            }
        }
        self.send_missed();
        self.sync_tick();
        self.reads_tick();
        for dep in self.replica.unknown_deps() {
            self.progress.entry(dep).or_insert((self.now, 0));
        }
        let due: Vec<TxnId> = self
            .progress
            .iter()
            .filter(|(_, (at, _))| *at <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.make_progress(id);
        }
        self.drain_local();
    }

    /// Persists a clock reservation above `hlc` unless one in flight already covers it.
    fn reserve_clock(&mut self, hlc: u64) {
        if self.reserving.is_some_and(|(_, upto)| hlc < upto) {
            return;
        }
        let upto = hlc.saturating_add(CLOCK_RESERVATION_US);
        self.persist_seq += 1;
        self.reserving = Some((self.persist_seq, upto));
        self.actions.push(Action::ReserveClock {
            seq: self.persist_seq,
            upto,
        });
    }

    /// Every Persist and ReserveClock action up to `seq` is durable: release what waited.
    pub fn durable(&mut self, seq: u64) {
        self.durable_seq = self.durable_seq.max(seq);
        if let Some((s, upto)) = self.reserving
            && s <= self.durable_seq
        {
            self.clock_reserved = self.clock_reserved.max(upto);
            self.reserving = None;
        }
        while self
            .held
            .front()
            .is_some_and(|(s, _, _)| *s <= self.durable_seq)
        {
            let (_, to, message) = self.held.pop_front().expect("checked");
            self.send(to, message);
        }
        self.drain_local();
    }

    /// The actions produced so far; messages are batched into one envelope per peer.
    pub fn take_actions(&mut self) -> Vec<Action> {
        let mut actions = std::mem::take(&mut self.actions);
        for (to, messages) in std::mem::take(&mut self.outbox) {
            actions.push(Action::Send(Envelope {
                from: self.id,
                to,
                messages,
            }));
        }
        actions
    }

    fn send(&mut self, to: NodeId, message: Message) {
        if to == self.id {
            self.local.push_back(message);
        } else {
            self.outbox.entry(to).or_default().push(message);
        }
    }

    /// Sends once everything persisted so far is durable.
    fn reply(&mut self, to: NodeId, message: Message) {
        if self.persist_seq <= self.durable_seq {
            self.send(to, message);
        } else {
            self.held.push_back((self.persist_seq, to, message));
        }
    }

    fn persist(&mut self, command: Option<Command>) {
        let Some(command) = command else { return };
        if command.status.is_decided() {
            self.progress.remove(&command.txn.id);
            self.inquired.remove(&command.txn.id);
            self.decided_here(command.txn.id);
        } else {
            self.watch(command.txn.id);
        }
        if command.status == Status::Invalidated {
            self.learned_invalidated(command.txn.id);
        }
        self.persist_seq += 1;
        self.actions.push(Action::Persist {
            seq: self.persist_seq,
            command,
        });
    }

    fn drain_local(&mut self) {
        while let Some(message) = self.local.pop_front() {
            self.handle(self.id, message);
        }
        self.reads_ready();
    }

    fn handle(&mut self, from: NodeId, message: Message) {
        if message.txn().is_some_and(|txn| !self.owns(txn)) {
            // Not a replica of its ranges: neither record it nor answer (see `ownership.rs`).
            self.stats.not_replicated += 1;
            return;
        }
        self.clock.observe(message.txn_id().timestamp());
        match message {
            // A refusing replica takes part in no round of the txn, invalidation included: it
            // records nothing for it, so it could not remember an acknowledged invalidation
            // and would tell a later recovery that nothing was accepted (the simulator found an
            // invalidation acknowledged that way and an execution both decided).
            // Once the sync points above the txn are decided it takes part, or proves the
            // txn can never execute (`Replica::refusal`).
            Message::PreAccept { txn } if self.replica.refuses_pre_accept(&txn) => {
                self.refuse(from, &txn);
            }
            Message::Accept { txn, .. } | Message::AcceptInvalidate { txn, .. }
                if self.replica.refusal(&txn).is_some() =>
            {
                self.refuse(from, &txn);
            }
            Message::PreAccept { txn }
            | Message::Accept { txn, .. }
            | Message::AcceptInvalidate { txn, .. }
                if self
                    .replica
                    .command(&txn.id)
                    .is_some_and(|c| c.status.is_decided()) =>
            {
                // A late, repeated or stale round of a decided txn: tell the coordinator the
                // decision instead of voting, so its node learns it and the round ends
                // (`decided_here`). An acknowledgement would let a stale round count this
                // replica for a value or an invalidation it never recorded.
                let command = self.replica.command(&txn.id).expect("checked").clone();
                self.reply(from, Message::Inform { command });
            }
            Message::BeginRecovery { txn, .. }
                if self.replica.refusal(&txn) == Some(Refusal::Excluded) =>
            {
                self.refuse(from, &txn);
            }
            Message::BeginRecovery { txn, ballot } if self.replica.refusal(&txn).is_some() => {
                let info = self.replica.refusal_info(&txn);
                self.reply(
                    from,
                    Message::RecoverOk {
                        txn_id: txn.id,
                        ballot,
                        info,
                    },
                );
            }
            Message::SyncApplied { txn_id, query } => {
                let known = self.sync_known.entry(from).or_default();
                *known = (*known).max(txn_id);
                if txn_id > self.sync_applied
                    && txn_id >= self.replica.gc_floor()
                    && self.replica.command(&txn_id).is_none()
                {
                    // A sync point a peer applied and this replica never heard of (its
                    // messages were lost): ask for it. No later sync point will bring it as
                    // a dep while GC waits for this replica to apply it.
                    self.progress.entry(txn_id).or_insert((self.now, 0));
                }
                if query && self.sync_applied >= txn_id {
                    let own = self.sync_applied;
                    self.send(
                        from,
                        Message::SyncApplied {
                            txn_id: own,
                            query: false,
                        },
                    );
                }
                self.collect_garbage();
            }
            Message::ReadDeps { read_id, keys } => self.answer_read(from, read_id, &keys),
            Message::ReadDepsOk {
                read_id,
                deps,
                seen,
            } => self.read_answered(from, read_id, deps, seen),
            Message::CutApplied { txn_id, query } => {
                if query {
                    self.cut_query(from, txn_id);
                } else {
                    self.cut_applied(from, txn_id);
                }
            }
            Message::PreAccept { txn } => {
                let handled = self.replica.pre_accept(&txn, &mut self.clock);
                self.persist(handled.changed);
                match handled.reply {
                    PreAcceptReply::Ok(witnessed, deps) => {
                        self.reply(
                            from,
                            Message::PreAcceptOk {
                                txn_id: txn.id,
                                witnessed,
                                deps,
                            },
                        );
                    }
                    PreAcceptReply::Nack(promised) => {
                        self.reply(
                            from,
                            Message::PreAcceptNack {
                                txn_id: txn.id,
                                promised,
                            },
                        );
                    }
                    PreAcceptReply::Silent => {}
                }
            }
            Message::Accept {
                txn,
                ballot,
                execute_at,
                deps,
            } => {
                self.clock.observe(execute_at);
                self.clock.observe(ballot.0);
                let handled = self.replica.accept(&txn, ballot, execute_at, &deps);
                self.another_drives(from, txn.id, ballot);
                self.answer(
                    from,
                    txn.id,
                    handled,
                    |deps| Message::AcceptOk {
                        txn_id: txn.id,
                        ballot,
                        deps,
                    },
                    |txn_id, promised| Message::AcceptNack { txn_id, promised },
                );
            }
            Message::Stable {
                txn,
                execute_at,
                deps,
            } => {
                self.clock.observe(execute_at);
                let changed = self.replica.stable(&txn, execute_at, &deps);
                self.persist(changed);
                self.reply(from, Message::StableOk { txn_id: txn.id });
                self.execute_ready();
            }
            Message::BeginRecovery { txn, ballot } => {
                self.clock.observe(ballot.0);
                let handled = self.replica.begin_recovery(&txn, ballot, &mut self.clock);
                self.another_drives(from, txn.id, ballot);
                self.answer(
                    from,
                    txn.id,
                    handled,
                    |info| Message::RecoverOk {
                        txn_id: txn.id,
                        ballot,
                        info,
                    },
                    |txn_id, promised| Message::RecoverNack { txn_id, promised },
                );
            }
            Message::AcceptInvalidate { txn, ballot } => {
                self.clock.observe(ballot.0);
                let handled = self
                    .replica
                    .accept_invalidate(&txn, ballot, &mut self.clock);
                self.answer(
                    from,
                    txn.id,
                    handled,
                    |()| Message::AcceptInvalidateOk {
                        txn_id: txn.id,
                        ballot,
                    },
                    |txn_id, promised| Message::AcceptNack { txn_id, promised },
                );
            }
            Message::Invalidate { txn } => {
                let changed = self.replica.invalidate(&txn, &mut self.clock);
                self.persist(changed);
                self.reply(from, Message::StableOk { txn_id: txn.id });
                self.execute_ready();
            }
            Message::Inquire { txn_id } => {
                if let Some(command) = self.replica.command(&txn_id) {
                    let command = command.clone();
                    self.reply(from, Message::Inform { command });
                }
            }
            Message::Inform { command } => {
                self.clock.observe(command.execute_at);
                let changed = self.replica.inform(&command, &mut self.clock);
                self.persist(changed);
                self.execute_ready();
            }
            reply => self.coordinator_reply(from, reply),
        }
    }

    /// Answers a round of a txn the local replica refuses, saying whether it can never
    /// execute (`Replica::refusal`).
    fn refuse(&mut self, to: NodeId, txn: &Txn) {
        let excluded = self.replica.refusal(txn) == Some(Refusal::Excluded);
        self.reply(
            to,
            Message::Refused {
                txn_id: txn.id,
                excluded,
            },
        );
    }

    /// Persists what a ballot-checked handler changed and answers: `ok` builds the reply,
    /// `nack` the refusal naming the higher ballot promised.
    fn answer<T>(
        &mut self,
        to: NodeId,
        txn_id: TxnId,
        handled: Handled<Result<T, Ballot>>,
        ok: impl FnOnce(T) -> Message,
        nack: fn(TxnId, Ballot) -> Message,
    ) {
        self.persist(handled.changed);
        let reply = match handled.reply {
            Ok(value) => ok(value),
            Err(promised) => nack(txn_id, promised),
        };
        self.reply(to, reply);
    }

    fn execute_ready(&mut self) {
        for command in self.replica.take_ready() {
            let id = command.txn.id;
            if !self.reads.is_empty() {
                self.reads_saw_apply(&command);
            }
            let client = self.client_answered(id);
            self.actions.push(Action::Apply { command, client });
            self.finish_if_done(id);
        }
    }

    /// The local replica learnt `id` was invalidated; answer its client if we owe one.
    fn learned_invalidated(&mut self, id: TxnId) {
        if self.client_answered(id) {
            self.actions.push(Action::Invalidated { txn_id: id });
        }
        self.finish_if_done(id);
    }

    /// Marks the client of `id` answered; true if this node owed it an answer.
    fn client_answered(&mut self, id: TxnId) -> bool {
        match self.coordinating.get_mut(&id) {
            Some(c) if c.client && !c.client_done => {
                c.client_done = true;
                true
            }
            _ => false,
        }
    }

    fn finish_if_done(&mut self, id: TxnId) {
        if self
            .coordinating
            .get(&id)
            .is_some_and(Coordination::finished)
        {
            self.coordinating.remove(&id);
        }
    }
}
