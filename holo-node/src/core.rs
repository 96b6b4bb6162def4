//! The Accord driver: one task owns the sans-IO [`holo_accord::Node`] and feeds it events
//! (client proposals, peer envelopes, WAL durability, timer ticks) in batches, then carries
//! out its actions: envelopes to the peer links, command records to the WAL with one submit
//! per step (group commit does the rest), decided transactions to the executor once every
//! record before them is durable, and definite failures to clients.
//!
//! Nothing here blocks on the disk or the network: the WAL's durability is a future this
//! task polls beside its events (one wait at a time, covering every submit before it), and
//! applying runs on the executor thread.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{Action, Envelope, Key, Node, NodeId, Timestamp, TxnId};
use holo_resp::Frame;
use holo_wal::{Lsn, Wal};
use tokio::sync::{mpsc, oneshot};

use crate::convert;
use crate::error::{ClientError, Fatal};
use crate::executor::ApplyItem;
use crate::metrics::Metrics;
use crate::transport::PeerLink;

/// How many times a transaction the protocol invalidated (it never executed) is proposed
/// again before the client gets an error.
const INVALIDATED_RETRIES: u32 = 6;

/// How long an invalidated unit waits before it is proposed again, by attempt: the first
/// retry at once (contention), later ones backing off (about 1.7 s in all). A txn is also
/// invalidated when its node routed it with an epoch the others have left (it has not
/// applied the split or merge yet, or restarted behind): it must wait until this node
/// adopted the new epoch, which ends the wait early (see [`Event::Meta`]).
fn retry_delay(retries: u32) -> Duration {
    match retries {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(5 << (2 * (n - 2)).min(16)),
    }
}

/// A client's key/value command.
pub struct Proposal {
    pub reads: Vec<Key>,
    pub writes: Vec<Key>,
    pub op: Bytes,
    pub reply: oneshot::Sender<Frame>,
    /// The reply is `+OK` whatever the state (plain SET, MSET): sent once the txn is
    /// ordered (its Apply is emitted), without waiting for storage.
    pub blind: bool,
}

/// Input to the core.
pub enum Event {
    Propose(Vec<Proposal>),
    Peer(Envelope),
    /// Diagnostics: a line per coordination, blocked txn and progress entry.
    Describe(oneshot::Sender<Vec<String>>),
    /// The transport (re)connected to this peer.
    PeerUp(NodeId),
    /// The transport's link to this peer is down: connecting failed or its stream broke.
    PeerDown(NodeId),
    /// Storage holds everything applied up to this sync point durably.
    SyncDurable(TxnId),
    /// Storage holds everything applied up to this exclusive sync point durably.
    CutDurable(TxnId),
    /// The executor applied meta commands: adopt the topologies of the epochs they
    /// created (in order), and retire the epochs below `retire_below` (their history is
    /// cut everywhere).
    Meta {
        topologies: Vec<holo_accord::Topology>,
        retire_below: Option<u64>,
    },
    /// Propose an exclusive sync point over the span (the controller cutting a split's or
    /// merge's history) in `epoch` or later; its id goes to `reply`, or `None` if the core
    /// has not adopted `epoch` yet.
    Cut {
        span: holo_accord::KeySpan,
        epoch: u64,
        reply: oneshot::Sender<Option<TxnId>>,
    },
    /// How an exclusive sync point this node proposed stands.
    CutStatus {
        id: TxnId,
        reply: oneshot::Sender<holo_accord::CutStatus>,
    },
    /// Propose a sync point as a read barrier; its id, or `None` while an earlier sync
    /// point waits ([`holo_accord::Node::propose_barrier`]).
    Barrier(oneshot::Sender<Option<TxnId>>),
}

/// Most client commands proposed as one transaction.
const BATCH_COMMANDS_MAX: usize = 1024;
/// Most bytes of operations in one transaction.
const BATCH_BYTES_MAX: usize = 1 << 20;

/// The commands one connection sent in one go: proposed together, in order, never split
/// across transactions (so a pipeline keeps its order, also when a transaction is
/// invalidated and proposed again), with the times it was proposed again.
struct Unit {
    proposals: Vec<Proposal>,
    retries: u32,
    /// The epoch its latest transaction was routed with.
    epoch: u64,
}

impl Unit {
    fn bytes(&self) -> usize {
        self.proposals.iter().map(|p| p.op.len()).sum()
    }

    /// A meta command: always a transaction of its own (the executor recognises it by its
    /// one key). The controller sends each alone, and clients cannot use reserved keys, so
    /// the first key tells.
    fn is_meta(&self) -> bool {
        self.proposals
            .first()
            .and_then(|p| p.writes.first())
            .is_some_and(|k| holo_meta::is_reserved(k))
    }
}

/// The units one transaction carries, in the order of its batch op.
struct Pending {
    units: Vec<Unit>,
}

/// The core's state.
pub struct Core {
    node: Node,
    wal: Arc<Wal>,
    peers: HashMap<NodeId, PeerLink>,
    executor: std::sync::mpsc::Sender<Vec<ApplyItem>>,
    /// Submits not yet known durable, in order: (last LSN, persist seq, when submitted).
    unsynced: VecDeque<(Lsn, u64, Instant)>,
    metrics: Arc<Metrics>,
    tick: Duration,
    pending: HashMap<TxnId, Pending>,
    /// Units received this step, proposed together at its end.
    queued: Vec<Unit>,
    /// Invalidated units waiting to be proposed again, with when.
    deferred: Vec<(Instant, Unit)>,
    last_tick: Instant,
    issued_seq: u64,
    durable_seq: u64,
    /// Apply actions waiting for the records before them to be durable: (seq, item).
    held: VecDeque<(u64, ApplyItem)>,
    records: Vec<Vec<u8>>,
    /// The txn each record of `records` holds the state of (None: a clock or GC record).
    record_txns: Vec<Option<TxnId>>,
    ready: Vec<ApplyItem>,
    /// The LSN of the latest WAL record of every txn the Accord node holds: the oldest of
    /// them bounds what the WAL must keep.
    latest_lsn: HashMap<TxnId, Lsn>,
    /// Where the WAL was cut at the last GC: live records older than this are written
    /// again at the next one, so one long-lived txn never pins the whole log.
    last_cut_mark: Lsn,
    /// A release waiting for the records written with it to be durable: (cut, last LSN).
    release: Option<(Lsn, Lsn)>,
    /// Set while this step wrote a GC record: the cut to release once it is durable.
    cut_pending: Option<Lsn>,
    /// Where each released cut is saved for the next restart (see [`crate::checkpoint`]).
    checkpoint: Option<std::path::PathBuf>,
    /// Most client transactions undecided at once (0: no limit); see
    /// [`Core::propose_queued`].
    window: usize,
}

impl Core {
    pub fn new(
        node: Node,
        wal: Arc<Wal>,
        peers: HashMap<NodeId, PeerLink>,
        executor: std::sync::mpsc::Sender<Vec<ApplyItem>>,
        metrics: Arc<Metrics>,
        tick: Duration,
    ) -> Core {
        Core {
            node,
            wal,
            peers,
            executor,
            unsynced: VecDeque::new(),
            metrics,
            tick,
            pending: HashMap::new(),
            queued: Vec::new(),
            deferred: Vec::new(),
            last_tick: Instant::now(),
            issued_seq: 0,
            durable_seq: 0,
            held: VecDeque::new(),
            records: Vec::new(),
            record_txns: Vec::new(),
            ready: Vec::new(),
            latest_lsn: HashMap::new(),
            last_cut_mark: 0,
            release: None,
            cut_pending: None,
            checkpoint: None,
            window: 0,
        }
    }

    /// Limits the client transactions undecided at once to `window` (0: no limit).
    pub fn with_propose_window(mut self, window: usize) -> Core {
        self.window = window;
        self
    }

    /// Saves each released cut to `path`, where a restart starts reading the WAL.
    pub fn with_checkpoint(mut self, path: std::path::PathBuf) -> Core {
        self.checkpoint = Some(path);
        self
    }

    /// Where the WAL holds each live txn's latest record (from the replay at start).
    pub fn with_wal_positions(mut self, latest_lsn: HashMap<TxnId, Lsn>) -> Core {
        self.latest_lsn = latest_lsn;
        self
    }

    /// Every replica durably applied the sync point `floor`: records of txns the node no
    /// longer holds are garbage. Writes the GC floor and the clock reservation again (so the
    /// old copies can go), rewrites live records older than the previous cut, and releases
    /// every segment below the oldest record still needed once these are durable.
    fn truncate(&mut self, floor: TxnId, max: Timestamp) {
        let replica = self.node.replica();
        self.latest_lsn
            .retain(|id, _| replica.command(id).is_some());
        let mark = self.wal.next_lsn();
        let stale: Vec<TxnId> = self
            .latest_lsn
            .iter()
            .filter(|(_, lsn)| **lsn < self.last_cut_mark)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let command = replica.command(&id).expect("retained above");
            self.records.push(convert::encode_record(command));
            self.record_txns.push(Some(id));
            self.latest_lsn.remove(&id);
        }
        self.records
            .push(convert::encode_clock_record(self.node.clock_reserved()));
        self.record_txns.push(None);
        self.records
            .push(convert::encode_truncated_record(floor, max));
        self.record_txns.push(None);
        let oldest = self.latest_lsn.values().copied().min().unwrap_or(mark);
        self.cut_pending = Some(oldest.min(mark));
        self.last_cut_mark = mark;
    }

    /// Deletes the WAL segments below a cut once the records written with it are durable.
    fn release_segments(&mut self) {
        let Some((cut, last)) = self.release else {
            return;
        };
        if self.wal.durable_below() <= last {
            return;
        }
        self.release = None;
        if let Some(path) = &self.checkpoint
            && let Err(e) = crate::checkpoint::write(path, cut)
        {
            // A stale checkpoint only makes the next restart replay more.
            tracing::warn!(
                "saving the WAL replay checkpoint {} failed: {e}",
                path.display()
            );
        }
        match self.wal.truncate_below(cut) {
            Ok(removed) => {
                self.metrics
                    .wal_segments_released
                    .fetch_add(removed as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("releasing WAL segments failed: {e}"),
        }
    }

    /// Host time for the protocol, in microseconds. Wall-clock based so that ids issued after
    /// a restart follow the ones before it (the protocol also restarts its clock above every
    /// persisted timestamp).
    fn now_micros(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }

    /// Runs until every event sender is gone.
    ///
    /// # Errors
    /// The WAL failed (the node cannot promise durability any more) or the executor stopped:
    /// the node must stop.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> Result<(), Fatal> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whatever a restart re-applies.
        self.flush()?;
        let mut buf = Vec::with_capacity(256);
        // The one durability wait in flight: it covers the latest submit when it started.
        let mut waiting: Option<Pin<Box<holo_wal::DurableFuture>>> = None;
        loop {
            if waiting.is_none()
                && let Some(&(lsn, _, _)) = self.unsynced.back()
            {
                waiting = Some(Box::pin(self.wal.durable(lsn)));
            }
            tokio::select! {
                // First: a durable WAL releases replies and applies, and under steady load
                // the events below are always ready.
                biased;
                outcome = async { waiting.as_mut().expect("checked").as_mut().await }, if waiting.is_some() => {
                    outcome.map_err(Fatal::Wal)?;
                    waiting = None;
                    self.on_durable();
                }
                n = events.recv_many(&mut buf, 512) => {
                    if n == 0 {
                        return Ok(());
                    }
                    let now = self.now_micros();
                    self.node.observe_time(now);
                    for event in buf.drain(..) {
                        self.handle(event);
                    }
                    // An atomic load: durability that came while the events did needs no
                    // wake-up of its own.
                    self.on_durable();
                    // Under steady load the biased select never polls the ticker: run the
                    // timers here when they are due.
                    self.release_segments();
                    if self.last_tick.elapsed() >= self.tick {
                        self.on_tick();
                    }
                }
                _ = ticker.tick() => self.on_tick(),
            }
            self.flush()?;
        }
    }

    fn on_tick(&mut self) {
        self.last_tick = Instant::now();
        if !self.deferred.is_empty() {
            let now = self.last_tick;
            let (due, wait): (Vec<_>, Vec<_>) =
                self.deferred.drain(..).partition(|(at, _)| *at <= now);
            self.deferred = wait;
            self.queued.extend(due.into_iter().map(|(_, unit)| unit));
        }
        self.release_segments();
        let now = self.now_micros();
        self.node.tick(now);
        let stats = self.node.stats();
        let m = &self.metrics;
        m.fast_path.store(stats.fast_path, Ordering::Relaxed);
        m.slow_path.store(stats.slow_path, Ordering::Relaxed);
        m.recoveries.store(stats.recoveries, Ordering::Relaxed);
        m.invalidations
            .store(stats.invalidations, Ordering::Relaxed);
        m.coordinating
            .store(self.node.coordinating() as u64, Ordering::Relaxed);
        m.peers_unreachable
            .store(self.node.unreachable_peers() as u64, Ordering::Relaxed);
        m.commands_known
            .store(self.node.replica().len() as u64, Ordering::Relaxed);
        let (_, floor) = self.node.sync_state();
        m.gc_floor_epoch.store(floor.0.epoch, Ordering::Relaxed);
        m.accord_epoch.store(self.node.epoch(), Ordering::Relaxed);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Propose(proposals) => {
                if !proposals.is_empty() {
                    self.queued.push(Unit {
                        proposals,
                        retries: 0,
                        epoch: 0,
                    });
                }
            }
            Event::Peer(envelope) => self.node.receive(envelope),
            Event::PeerUp(peer) => self.node.peer_up(peer),
            Event::PeerDown(peer) => self.node.peer_down(peer),
            Event::SyncDurable(id) => self.node.sync_durable(id),
            Event::CutDurable(id) => self.node.cut_durable(id),
            Event::Cut { span, epoch, reply } => {
                let id = (self.node.epoch() >= epoch).then(|| {
                    let now = self.now_micros();
                    self.node.observe_time(now);
                    self.node.propose_exclusive_sync_point(span)
                });
                let _ = reply.send(id);
            }
            Event::CutStatus { id, reply } => {
                let _ = reply.send(self.node.cut_status(id));
            }
            Event::Barrier(reply) => {
                let now = self.now_micros();
                self.node.observe_time(now);
                let _ = reply.send(self.node.propose_barrier());
            }
            Event::Meta {
                topologies,
                retire_below,
            } => {
                for topology in topologies {
                    // A restart starts in the persisted epoch; the WAL may re-apply the
                    // commands that led there without changing anything.
                    if topology.epoch <= self.node.epoch() {
                        continue;
                    }
                    let epoch = topology.epoch;
                    match self.node.adopt(topology) {
                        Ok(()) => tracing::info!(epoch, "adopted a new epoch"),
                        Err(e) => tracing::error!("cannot adopt epoch {epoch}: {e}"),
                    }
                }
                if let Some(epoch) = retire_below {
                    self.node.retire_epochs_below(epoch);
                }
                // What was invalidated for being routed in the old epoch can go now.
                self.queued
                    .extend(self.deferred.drain(..).map(|(_, unit)| unit));
                self.metrics
                    .accord_epoch
                    .store(self.node.epoch(), Ordering::Relaxed);
            }
            Event::Describe(reply) => {
                let mut lines = self.node.describe_coordinations();
                lines.push(format!(
                    "host: pending clients {}, held applies {}, issued seq {}, durable seq {}, wal durable below {}, wal next {}",
                    self.pending.len(),
                    self.held.len(),
                    self.issued_seq,
                    self.durable_seq,
                    self.wal.durable_below(),
                    self.wal.next_lsn()
                ));
                let _ = reply.send(lines);
            }
        }
    }

    /// Takes in what the WAL made durable since the last look: the Accord node may send
    /// the replies it held, and applies held behind those records may go.
    fn on_durable(&mut self) {
        let below = self.wal.durable_below();
        let mut seq = None;
        while let Some(&(lsn, s, at)) = self.unsynced.front() {
            if lsn >= below {
                break;
            }
            self.unsynced.pop_front();
            self.metrics
                .wal_commit_latency
                .observe(at.elapsed().as_micros() as u64);
            seq = Some(s);
        }
        let Some(seq) = seq else {
            return;
        };
        self.durable_seq = self.durable_seq.max(seq);
        self.node.durable(seq);
        while self
            .held
            .front()
            .is_some_and(|(s, _)| *s <= self.durable_seq)
        {
            let (_, item) = self.held.pop_front().expect("checked");
            self.ready.push(item);
        }
    }

    /// Proposes the queued units, as few transactions as the batch limits allow (a unit
    /// larger than the limits goes alone).
    ///
    /// While `window` transactions of this node are undecided, a batch that is not full
    /// waits: every transaction costs each replica a fixed amount of CPU (messages, records,
    /// the conflict index) whatever it carries, so commands arriving while earlier rounds
    /// are out are worth more together. A decision, or any event, runs this again. Only
    /// undecided transactions count, so one waiting to execute behind a slow dependency
    /// never holds up new ones.
    fn propose_queued(&mut self) {
        let mut queued = std::mem::take(&mut self.queued);
        // A client that went away before its commands started needs nothing done.
        queued.retain(|u| u.retries > 0 || u.proposals.iter().any(|p| !p.reply.is_closed()));
        // Meta commands (the controller's) go alone and never wait for the window.
        let (meta, data): (Vec<Unit>, Vec<Unit>) = queued.into_iter().partition(Unit::is_meta);
        for unit in meta {
            self.propose_units(vec![unit]);
        }
        let mut rest = data.into_iter().peekable();
        while rest.peek().is_some() {
            let mut units: Vec<Unit> = Vec::new();
            let (mut commands, mut bytes) = (0, 0);
            while let Some(unit) = rest.peek() {
                if !units.is_empty()
                    && (commands + unit.proposals.len() > BATCH_COMMANDS_MAX
                        || bytes + unit.bytes() > BATCH_BYTES_MAX)
                {
                    break;
                }
                let unit = rest.next().expect("peeked");
                commands += unit.proposals.len();
                bytes += unit.bytes();
                units.push(unit);
            }
            let full = rest.peek().is_some();
            if !full && self.window > 0 && self.node.undecided_proposals() >= self.window {
                self.queued = units;
                return;
            }
            self.propose_units(units);
        }
    }

    /// Proposes `units` as one transaction.
    fn propose_units(&mut self, mut units: Vec<Unit>) {
        let proposals = || units.iter().flat_map(|u| u.proposals.iter());
        let id = if proposals().nth(1).is_none() {
            let single = proposals().next().expect("a unit holds a command");
            self.node
                .propose(&single.reads, &single.writes, single.op.clone())
        } else {
            let reads: Vec<Key> = proposals().flat_map(|p| p.reads.iter().cloned()).collect();
            let writes: Vec<Key> = proposals().flat_map(|p| p.writes.iter().cloned()).collect();
            let ops: Vec<&[u8]> = proposals().map(|p| &p.op[..]).collect();
            let op = crate::cmd::encode_batch(ops.into_iter());
            self.node.propose(&reads, &writes, op)
        };
        let epoch = self.node.epoch();
        for unit in &mut units {
            unit.epoch = epoch;
        }
        self.pending.insert(id, Pending { units });
    }

    /// Carries out the node's actions until it has none left.
    fn flush(&mut self) -> Result<(), Fatal> {
        self.propose_queued();
        loop {
            let actions = self.node.take_actions();
            if actions.is_empty() {
                break;
            }
            let mut again = Vec::new();
            for action in actions {
                match action {
                    Action::Send(envelope) => match self.peers.get(&envelope.to) {
                        Some(link) => link.send(envelope),
                        None => tracing::warn!("no link to node {}", envelope.to.0),
                    },
                    Action::Persist { seq, command } => {
                        self.records.push(convert::encode_record(&command));
                        self.record_txns.push(Some(command.txn.id));
                        self.issued_seq = seq;
                    }
                    Action::ReserveClock { seq, upto } => {
                        self.records.push(convert::encode_clock_record(upto));
                        self.record_txns.push(None);
                        self.issued_seq = seq;
                    }
                    Action::Truncate { floor, max } => self.truncate(floor, max),
                    Action::Apply { command, .. } => {
                        // Whatever the client flag says: clients this node still holds for the
                        // txn are answered when it executes here, except blind writes: they
                        // need nothing from execution and hear now, before the WAL and storage
                        // catch up. The txn and everything ordered before it are decided and
                        // durable at a quorum (`holo_accord::Action::Apply` says why commit
                        // alone is too early).
                        let mut reply = Vec::new();
                        if let Some(p) = self.pending.remove(&command.txn.id) {
                            let blind = p.units.iter().all(|u| u.proposals.iter().all(|p| p.blind));
                            for proposal in p.units.into_iter().flat_map(|u| u.proposals) {
                                if blind {
                                    let _ = proposal.reply.send(Frame::ok());
                                } else {
                                    reply.push(proposal.reply);
                                }
                            }
                        }
                        let item = ApplyItem {
                            txn: command.txn,
                            execute_at: command.execute_at,
                            reply,
                        };
                        if self.issued_seq > self.durable_seq || !self.held.is_empty() {
                            self.held.push_back((self.issued_seq, item));
                        } else {
                            self.ready.push(item);
                        }
                    }
                    Action::Invalidated { txn_id } => {
                        if let Some(p) = self.pending.remove(&txn_id) {
                            for mut unit in p.units {
                                // Routed with an epoch this node has left since: refused for
                                // that, not for contention, so it costs no attempt (a node
                                // catching up several epochs goes through one each time).
                                if unit.epoch < self.node.epoch() {
                                    again.push(unit);
                                } else if unit.retries < INVALIDATED_RETRIES {
                                    unit.retries += 1;
                                    let delay = retry_delay(unit.retries);
                                    if delay.is_zero() {
                                        again.push(unit);
                                    } else {
                                        self.deferred.push((Instant::now() + delay, unit));
                                    }
                                } else {
                                    let error = ClientError::Invalidated {
                                        attempts: unit.retries + 1,
                                    };
                                    for proposal in unit.proposals {
                                        let _ = proposal.reply.send(error.frame());
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if !again.is_empty() {
                self.queued.extend(again);
                self.propose_queued();
            }
            if !self.records.is_empty() {
                let refs: Vec<&[u8]> = self.records.iter().map(Vec::as_slice).collect();
                let lsn = self.wal.submit(&refs).map_err(Fatal::Wal)?;
                self.metrics.wal_batch_records.observe(refs.len() as u64);
                let first = lsn + 1 - refs.len() as Lsn;
                for (i, id) in self.record_txns.drain(..).enumerate() {
                    if let Some(id) = id {
                        self.latest_lsn.insert(id, first + i as Lsn);
                    }
                }
                if let Some(cut) = self.cut_pending.take() {
                    self.release = Some((cut, lsn));
                }
                self.records.clear();
                self.unsynced
                    .push_back((lsn, self.issued_seq, Instant::now()));
            }
        }
        if !self.ready.is_empty() {
            let items = std::mem::take(&mut self.ready);
            self.metrics
                .apply_queue
                .fetch_add(items.len() as i64, Ordering::Relaxed);
            if self.executor.send(items).is_err() {
                return Err(Fatal::ExecutorStopped);
            }
        }
        self.metrics
            .apply_held
            .store(self.held.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
