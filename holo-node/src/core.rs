//! The Accord driver: one task owns the sans-IO [`holo_accord::Node`] and feeds it events
//! (client proposals, peer envelopes, WAL durability, timer ticks) in batches, then carries
//! out its actions: envelopes to the peer links, command records to the WAL with one submit
//! per step (group commit does the rest), decided transactions to the executor once every
//! record before them is durable, and definite failures to clients.
//!
//! Nothing here blocks on the disk or the network: the WAL's durability is awaited by a
//! separate task that reports back with [`Event::Durable`], and applying runs on the
//! executor thread.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{Action, Envelope, Key, Node, NodeId, TxnId};
use holo_resp::Frame;
use holo_wal::{Lsn, Wal};
use tokio::sync::{mpsc, oneshot};

use crate::convert;
use crate::executor::ApplyItem;
use crate::metrics::Metrics;
use crate::transport::PeerLink;

/// How many times a transaction the protocol invalidated (it never executed) is proposed
/// again before the client gets an error.
const INVALIDATED_RETRIES: u32 = 3;

/// A client's key/value command.
pub struct Proposal {
    pub reads: Vec<Key>,
    pub writes: Vec<Key>,
    pub op: Bytes,
    pub reply: oneshot::Sender<Frame>,
    /// The reply is `+OK` whatever the state (plain SET, MSET): sent at commit.
    pub blind: bool,
}

/// Input to the core.
pub enum Event {
    Propose(Vec<Proposal>),
    Peer(Envelope),
    /// Every record up to this persist sequence number is durable.
    Durable(u64),
    /// Diagnostics: a line per coordination, blocked txn and progress entry.
    Describe(oneshot::Sender<Vec<String>>),
    /// The transport (re)connected to this peer.
    PeerUp(NodeId),
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
}

impl Unit {
    fn bytes(&self) -> usize {
        self.proposals.iter().map(|p| p.op.len()).sum()
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
    durability: mpsc::UnboundedSender<(Lsn, u64, Instant)>,
    metrics: Arc<Metrics>,
    tick: Duration,
    pending: HashMap<TxnId, Pending>,
    /// Units received this step, proposed together at its end.
    queued: Vec<Unit>,
    last_tick: Instant,
    issued_seq: u64,
    durable_seq: u64,
    /// Apply actions waiting for the records before them to be durable: (seq, item).
    held: VecDeque<(u64, ApplyItem)>,
    records: Vec<Vec<u8>>,
    ready: Vec<ApplyItem>,
}

impl Core {
    pub fn new(
        node: Node,
        wal: Arc<Wal>,
        peers: HashMap<NodeId, PeerLink>,
        executor: std::sync::mpsc::Sender<Vec<ApplyItem>>,
        durability: mpsc::UnboundedSender<(Lsn, u64, Instant)>,
        metrics: Arc<Metrics>,
        tick: Duration,
    ) -> Core {
        Core {
            node,
            wal,
            peers,
            executor,
            durability,
            metrics,
            tick,
            pending: HashMap::new(),
            queued: Vec::new(),
            last_tick: Instant::now(),
            issued_seq: 0,
            durable_seq: 0,
            held: VecDeque::new(),
            records: Vec::new(),
            ready: Vec::new(),
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
    /// The WAL failed: the node cannot promise durability any more and must stop.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whatever a restart re-applies.
        self.flush()?;
        let mut buf = Vec::with_capacity(256);
        loop {
            tokio::select! {
                biased;
                n = events.recv_many(&mut buf, 512) => {
                    if n == 0 {
                        return Ok(());
                    }
                    let now = self.now_micros();
                    self.node.observe_time(now);
                    for event in buf.drain(..) {
                        self.handle(event);
                    }
                    // Under steady load the biased select never polls the ticker: run the
                    // timers here when they are due.
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
        m.commands_known
            .store(self.node.replica().len() as u64, Ordering::Relaxed);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Propose(proposals) => {
                if !proposals.is_empty() {
                    self.queued.push(Unit {
                        proposals,
                        retries: 0,
                    });
                }
            }
            Event::Peer(envelope) => self.node.receive(envelope),
            Event::PeerUp(peer) => self.node.peer_up(peer),
            Event::Describe(reply) => {
                let mut lines = self.node.describe_coordinations();
                lines.push(format!(
                    "host: pending clients {}, held applies {}, issued seq {}, durable seq {}",
                    self.pending.len(),
                    self.held.len(),
                    self.issued_seq,
                    self.durable_seq
                ));
                let _ = reply.send(lines);
            }
            Event::Durable(seq) => {
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
        }
    }

    /// Proposes the queued units, as few transactions as the batch limits allow (a unit
    /// larger than the limits goes alone).
    fn propose_queued(&mut self) {
        let mut queued = std::mem::take(&mut self.queued);
        // A client that went away before its commands started needs nothing done.
        queued.retain(|u| u.retries > 0 || u.proposals.iter().any(|p| !p.reply.is_closed()));
        let mut rest = queued.into_iter().peekable();
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
            let proposals = || units.iter().flat_map(|u| u.proposals.iter());
            let id = if commands == 1 {
                let single = proposals().next().expect("one command");
                self.node
                    .propose(&single.reads, &single.writes, single.op.clone())
            } else {
                let reads: Vec<Key> = proposals().flat_map(|p| p.reads.iter().cloned()).collect();
                let writes: Vec<Key> = proposals().flat_map(|p| p.writes.iter().cloned()).collect();
                let ops: Vec<&[u8]> = proposals().map(|p| &p.op[..]).collect();
                let op = crate::ops::encode_batch(ops.into_iter());
                self.node.propose(&reads, &writes, op)
            };
            self.pending.insert(id, Pending { units });
        }
    }

    /// Carries out the node's actions until it has none left.
    fn flush(&mut self) -> anyhow::Result<()> {
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
                        self.issued_seq = seq;
                    }
                    Action::ReserveClock { seq, upto } => {
                        self.records.push(convert::encode_clock_record(upto));
                        self.issued_seq = seq;
                    }
                    Action::Apply { command, .. } => {
                        // Whatever the client flag says: clients this node still holds for the
                        // txn are answered when it executes here.
                        let reply =
                            self.pending
                                .remove(&command.txn.id)
                                .map_or_else(Vec::new, |p| {
                                    p.units
                                        .into_iter()
                                        .flat_map(|u| u.proposals)
                                        .map(|p| p.reply)
                                        .collect()
                                });
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
                    Action::Committed { txn_id } => {
                        // Decided and durable at a quorum: blind writes need nothing from
                        // execution, so their clients hear now (Accord orders every later
                        // transaction after this one); the Apply follows without replies.
                        let blind = self.pending.get(&txn_id).is_some_and(|p| {
                            p.units.iter().all(|u| u.proposals.iter().all(|p| p.blind))
                        });
                        if blind && let Some(p) = self.pending.remove(&txn_id) {
                            for proposal in p.units.into_iter().flat_map(|u| u.proposals) {
                                let _ = proposal.reply.send(Frame::ok());
                            }
                        }
                    }
                    Action::Invalidated { txn_id } => {
                        if let Some(p) = self.pending.remove(&txn_id) {
                            for mut unit in p.units {
                                if unit.retries < INVALIDATED_RETRIES {
                                    unit.retries += 1;
                                    again.push(unit);
                                } else {
                                    for proposal in unit.proposals {
                                        let _ = proposal.reply.send(Frame::error(
                                            "ERR transaction was not applied (invalidated after contention or a failure); it is safe to retry",
                                        ));
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
                let lsn = self
                    .wal
                    .submit(&refs)
                    .map_err(|e| anyhow::anyhow!("WAL append failed: {e}"))?;
                self.metrics.wal_batch_records.observe(refs.len() as u64);
                self.records.clear();
                let _ = self.durability.send((lsn, self.issued_seq, Instant::now()));
            }
        }
        if !self.ready.is_empty() {
            let items = std::mem::take(&mut self.ready);
            self.metrics
                .apply_queue
                .fetch_add(items.len() as i64, Ordering::Relaxed);
            if self.executor.send(items).is_err() {
                anyhow::bail!("the executor stopped");
            }
        }
        self.metrics
            .apply_held
            .store(self.held.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Awaits WAL durability in order and reports it to the core; one wait covers every
/// submit queued behind it.
///
/// # Errors
/// The WAL failed: the node must stop (the caller ends `run`).
pub async fn durability_watcher(
    wal: Arc<Wal>,
    mut rx: mpsc::UnboundedReceiver<(Lsn, u64, Instant)>,
    core: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let (lsn, seq, _) = *batch.last().expect("non-empty");
        wal.durable(lsn)
            .await
            .map_err(|e| anyhow::anyhow!("the WAL failed, the node stops: {e}"))?;
        for (_, _, at) in batch.drain(..) {
            metrics
                .wal_commit_latency
                .observe(at.elapsed().as_micros() as u64);
        }
        if core.send(Event::Durable(seq)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
