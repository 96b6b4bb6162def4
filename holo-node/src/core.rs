//! The Accord driver: one task owns the sans-IO [`holo_accord::Node`] and feeds it events
//! (client proposals, peer envelopes, WAL durability, timer ticks) in batches, then carries
//! out its actions: envelopes to the peer links, command records to the WAL with one submit
//! per step (group commit does the rest), decided transactions to the executor once every
//! record before them is durable, and definite failures to clients.
//!
//! Nothing here blocks on the disk or the network: the WAL's durability is a future this
//! task polls beside its events (one wait at a time, covering every submit before it), and
//! applying runs on the executor thread.
//!
//! Client commands, how they are grouped into transactions, the clients each transaction
//! answers and the retries of invalidated ones live in [`batching`]; the WAL's books
//! (records, their positions, GC cuts, segment release, submits not yet durable) in
//! [`wal_log`]; this file drives the Accord node and holds applies until the records before
//! them are durable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use holo_accord::{Action, Envelope, Node, NodeId, Txn, TxnId};
use holo_wal::{Lsn, Wal};
use tokio::sync::{mpsc, oneshot};

mod batching;
mod wal_log;

use batching::Batcher;
pub use batching::Proposal;
use wal_log::WalLog;

use crate::error::Fatal;
use crate::executor::ApplyItem;
use crate::metrics::Metrics;
use crate::transport::PeerLink;

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

/// The core's state.
pub struct Core {
    node: Node,
    wal_log: WalLog,
    peers: HashMap<NodeId, PeerLink>,
    executor: std::sync::mpsc::Sender<Vec<ApplyItem>>,
    metrics: Arc<Metrics>,
    tick: Duration,
    batcher: Batcher,
    last_tick: Instant,
    issued_seq: u64,
    durable_seq: u64,
    /// Apply actions waiting for the records before them to be durable: (seq, item).
    held: VecDeque<(u64, ApplyItem)>,
    ready: Vec<ApplyItem>,
    /// Transactions restored from the WAL at start and not applied since: storage may hold
    /// their writes already (the executor checks those).
    restored: HashSet<TxnId>,
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
            wal_log: WalLog::new(wal, Arc::clone(&metrics)),
            peers,
            executor,
            metrics,
            tick,
            batcher: Batcher::new(0),
            last_tick: Instant::now(),
            issued_seq: 0,
            durable_seq: 0,
            held: VecDeque::new(),
            ready: Vec::new(),
            restored: HashSet::new(),
        }
    }

    /// Limits the client transactions undecided at once to `window` (0: no limit), and as
    /// many ephemeral reads waiting for their majority, if `ephemeral_reads`.
    pub fn with_batching(mut self, window: usize, ephemeral_reads: bool) -> Core {
        self.batcher = Batcher::new(window).with_ephemeral_reads(ephemeral_reads);
        self
    }

    /// Saves each released cut to `path`, where a restart starts reading the WAL.
    pub fn with_checkpoint(mut self, path: std::path::PathBuf) -> Core {
        self.wal_log.set_checkpoint(path);
        self
    }

    /// Where the WAL holds each live txn's latest record (from the replay at start): these
    /// are the txns restored from it.
    pub fn with_wal_positions(mut self, latest_lsn: HashMap<TxnId, Lsn>) -> Core {
        self.restored = latest_lsn.keys().copied().collect();
        self.wal_log.set_positions(latest_lsn);
        self
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
                && let Some(lsn) = self.wal_log.awaited()
            {
                waiting = Some(Box::pin(self.wal_log.wal().durable(lsn)));
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
                    self.wal_log.release_segments();
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
        self.batcher.retry_due(self.last_tick);
        self.wal_log.release_segments();
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

    /// Takes in one event; the caller has just brought the node's clock up to now.
    fn handle(&mut self, event: Event) {
        match event {
            Event::Propose(proposals) => self.batcher.push(proposals),
            Event::Peer(envelope) => self.node.receive(envelope),
            Event::PeerUp(peer) => self.node.peer_up(peer),
            Event::PeerDown(peer) => self.node.peer_down(peer),
            Event::SyncDurable(id) => self.node.sync_durable(id),
            Event::CutDurable(id) => self.node.cut_durable(id),
            Event::Cut { span, epoch, reply } => {
                let id = (self.node.epoch() >= epoch)
                    .then(|| self.node.propose_exclusive_sync_point(span));
                let _ = reply.send(id);
            }
            Event::CutStatus { id, reply } => {
                let _ = reply.send(self.node.cut_status(id));
            }
            Event::Barrier(reply) => {
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
                self.batcher.retry_all();
                self.metrics
                    .accord_epoch
                    .store(self.node.epoch(), Ordering::Relaxed);
            }
            Event::Describe(reply) => {
                let mut lines = self.node.describe_coordinations();
                lines.push(format!(
                    "host: pending clients {}, held applies {}, issued seq {}, durable seq {}, wal durable below {}, wal next {}",
                    self.batcher.in_flight(),
                    self.held.len(),
                    self.issued_seq,
                    self.durable_seq,
                    self.wal_log.wal().durable_below(),
                    self.wal_log.wal().next_lsn()
                ));
                let _ = reply.send(lines);
            }
        }
    }

    /// Takes in what the WAL made durable since the last look: the Accord node may send
    /// the replies it held, and applies held behind those records may go.
    fn on_durable(&mut self) {
        let Some(seq) = self.wal_log.newly_durable() else {
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

    /// Carries out the node's actions until it has none left.
    fn flush(&mut self) -> Result<(), Fatal> {
        self.batcher.propose(&mut self.node);
        loop {
            let actions = self.node.take_actions();
            if actions.is_empty() {
                break;
            }
            let mut again = false;
            for action in actions {
                match action {
                    Action::Send(envelope) => match self.peers.get(&envelope.to) {
                        Some(link) => link.send(envelope),
                        None => tracing::warn!("no link to node {}", envelope.to.0),
                    },
                    Action::Persist { seq, command } => {
                        self.wal_log.record(&command);
                        self.issued_seq = seq;
                    }
                    Action::ReserveClock { seq, upto } => {
                        self.wal_log.reserve_clock(upto);
                        self.issued_seq = seq;
                    }
                    Action::Truncate { floor, max } => {
                        let replica = self.node.replica();
                        self.wal_log.truncate(
                            |id| replica.command(id),
                            floor,
                            max,
                            self.node.clock_reserved(),
                        );
                    }
                    Action::Apply { command, .. } => {
                        // Whatever the client flag says: clients this node still holds for the
                        // txn are answered when it executes here (blind writes at once).
                        let reply = self.batcher.applied(&command.txn.id);
                        let restored = self.restored.remove(&command.txn.id);
                        let item = ApplyItem {
                            txn: command.txn,
                            execute_at: command.execute_at,
                            reply,
                            restored,
                            ephemeral: Vec::new(),
                        };
                        if self.issued_seq > self.durable_seq || !self.held.is_empty() {
                            self.held.push_back((self.issued_seq, item));
                        } else {
                            self.ready.push(item);
                        }
                    }
                    Action::Read {
                        read_id,
                        keys,
                        op,
                        at,
                        as_txn,
                    } => {
                        let done = self.batcher.read_done(&read_id);
                        if as_txn {
                            self.metrics
                                .ephemeral_reads_as_txn
                                .fetch_add(done.len() as u64, Ordering::Relaxed);
                            // One unit, one transaction: the connections' commands keep
                            // their order.
                            self.batcher.push(
                                done.into_iter()
                                    .map(|(reply, key, op)| Proposal::read_as_txn(reply, key, op))
                                    .collect(),
                            );
                            again = true;
                            continue;
                        }
                        let (reply, ephemeral): (Vec<_>, Vec<_>) = done
                            .into_iter()
                            .map(|(reply, key, op)| (reply, (key, op)))
                            .unzip();
                        self.metrics
                            .ephemeral_reads
                            .fetch_add(reply.len() as u64, Ordering::Relaxed);
                        let item = ApplyItem {
                            txn: Txn::new(read_id, &keys, &[], op),
                            execute_at: at,
                            reply,
                            restored: false,
                            ephemeral,
                        };
                        // After the applies still held (it must see them), and held for
                        // nothing of its own: it recorded nothing.
                        match self.held.back().map(|(seq, _)| *seq) {
                            Some(seq) => self.held.push_back((seq, item)),
                            None => self.ready.push(item),
                        }
                    }
                    Action::Invalidated { txn_id } => {
                        self.restored.remove(&txn_id);
                        again |= self.batcher.invalidated(&txn_id, self.node.epoch());
                    }
                }
            }
            if again {
                self.batcher.propose(&mut self.node);
            }
            self.wal_log.submit(self.issued_seq)?;
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
