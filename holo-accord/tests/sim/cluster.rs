//! The simulated cluster: nodes, network, disks and clients, all driven by one seed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use holo_accord::{
    Action, Command, Config, Envelope, Key, Node, NodeId, Timestamp, Topology, TxnId,
};

use crate::checker::{Checker, ClientOp, OpResult};
use crate::faults::{Faults, Outcome};
use crate::rng::Rng;
use crate::votes::Votes;

#[path = "epochs.rs"]
mod epochs;
#[path = "liveness.rs"]
mod liveness;
#[path = "network.rs"]
mod network;
#[path = "placement.rs"]
mod placement;
use epochs::Epochs;

enum Event {
    Deliver(Envelope),
    Durable {
        node: usize,
        incarnation: u32,
        seq: u64,
    },
    Tick {
        node: usize,
        incarnation: u32,
    },
    ClientNext {
        client: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// Cut the network: isolate a node, split it in two, or cut one direction of a link.
    Partition,
    Heal,
    /// A node's physical clock jumps (possibly backwards).
    ClockJump {
        node: usize,
    },
    /// A node stops for a while (its messages, timers and disk completions wait).
    Pause {
        node: usize,
    },
    /// A node is lost for good: crashed and never restarted, or cut off from every peer.
    LoseForGood {
        node: usize,
        crash: bool,
    },
    /// A range splits or two merge: a new epoch.
    TopologyChange,
    /// A node adopts the next epoch.
    Adopt {
        node: usize,
    },
    /// The history cut of the change that made `epoch` takes its next step.
    Cut {
        epoch: u64,
    },
    /// A node writes the meta key without changing the topology, as a lease renewal does.
    MetaTouch,
}

/// A node and its disk. `node` is `None` while it is down.
struct Host {
    node: Option<Node>,
    incarnation: u32,
    /// Records that reached the disk, in order; they survive crashes.
    durable: Vec<Command>,
    /// Records written but not yet synced: a crash loses them. `Err(upto)`: a clock
    /// reservation.
    unsynced: BTreeMap<u64, Result<Command, u64>>,
    /// The highest clock reservation that reached the disk.
    clock_reserved: u64,
    persisted_seq: u64,
    durable_seq: u64,
    disk_free_at: u64,
    /// Apply actions waiting for the records before them to be durable, and ephemeral reads
    /// behind them: (seq, what).
    applies: VecDeque<(u64, Queued)>,
    /// The last `Truncate` (floor, max); durable at once, like the disk's truncation.
    truncated: (TxnId, Timestamp),
    /// Records dropped by truncation, for the summary.
    dropped_records: u64,
}

/// What a host runs against its state once the records before it are durable.
enum Queued {
    Apply(Box<Command>, bool),
    /// An ephemeral read.
    Read(TxnId, Vec<Key>),
}

struct Client {
    ops_left: u32,
    outstanding: Option<TxnId>,
}

struct Sim {
    /// Per node and txn, the highest promised ballot in a durable record (invariant 6: a
    /// promise never goes down, across restarts too).
    promises: HashMap<(usize, TxnId), holo_accord::Ballot>,
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    epochs: Epochs,
    config: Config,
    hosts: Vec<Host>,
    clients: Vec<Client>,
    ops: HashMap<TxnId, (usize, ClientOp)>,
    /// Topology changes proposed and not yet applied anywhere (see `epochs.rs`).
    meta_changes: HashMap<TxnId, epochs::Plan>,
    /// Operations outstanding, by when they were invoked.
    invoked_at: BTreeMap<TxnId, u64>,
    last_invoked: u64,
    checker: Checker,
    votes: Votes,
    drop_percent: u64,
    duplicate_percent: u64,
    delay_us_max: u64,
    healed: bool,
    /// Directed links (from, to) that drop everything while the network is not healed.
    cut: std::collections::HashSet<(usize, usize)>,
    /// Per node: until when it is paused (0: running).
    paused_until: Vec<u64>,
    /// Percent of messages that straggle.
    straggler_percent: u64,
    /// Recovery coordinators still to stall after their first phase (see
    /// [`Faults::recoverer_stalls_max`]).
    recoverer_stalls: u64,
    /// Nodes lost for good (crashed, or cut off from every peer even after the heal).
    lost: BTreeSet<usize>,
    /// When the last transient fault (a crash's restart, a partition's heal) ends: the
    /// liveness bound runs from then, or from an operation's invocation if later.
    settled_at: u64,
    /// Per node: how far its physical clock is off, in microseconds; it jumps, backwards too.
    skew: Vec<i64>,
    /// How many keys the clients use: fewer keys, more conflicts.
    keys: u64,
    /// With partial replication, where the ranges live (see `placement.rs`).
    partial: Option<Topology>,
    /// Percent of reads done as ephemeral reads (`Node::read`; consistent ones over several
    /// keys), the rest as read transactions.
    ephemeral_percent: u64,
    /// Deliveries, syncs and restarts scheduled and not yet happened.
    in_flight: u64,
    dropped: u64,
    crashes: u64,
    log_hash: u64,
}

const TICK_US: u64 = 1_000;
/// How late a straggling message may arrive.
const STRAGGLER_US_MAX: u64 = 300_000;
const FAULTS_END_US: u64 = 2_000_000;
const DEADLINE_US: u64 = 60_000_000;
/// With nodes lost for good: every operation invoked at a live node is answered, and the
/// live nodes are quiescent, within this long after the invocation or the end of the last
/// transient fault, whichever is later.
pub const LIVENESS_BOUND_US: u64 = 5_000_000;

fn key(i: u64) -> Key {
    Bytes::from(format!("k{i}"))
}

/// Runs one seed to the end and checks it; panics on any violation.
pub fn run_seed(seed: u64, faults: Faults) -> Outcome {
    let mut rng = Rng::new(seed);
    let (node_count, topology, partial) = if faults.partial_replication {
        let nodes = [4, 5, 7][rng.between(0, 2) as usize];
        let keys = rng.between(4, 9);
        let topology = placement::partial_topology(&mut rng, nodes, keys);
        (nodes, topology.clone(), Some((topology, keys)))
    } else {
        let nodes = if rng.percent(30) { 5 } else { 3 };
        (nodes, placement::full_topology(nodes), None)
    };
    // Some seeds recover eagerly: recoveries then race the original coordinator and each
    // other (several nodes recovering one txn, a recovery overtaken by another).
    let eager = rng.percent(30);
    let config = Config {
        fast_path_wait_us: rng.between(500, 5_000),
        retry_us: if eager {
            rng.between(5_000, 20_000)
        } else {
            rng.between(20_000, 80_000)
        },
        recover_after_us: if eager {
            rng.between(2_000, 20_000)
        } else {
            rng.between(100_000, 400_000)
        },
        sync_interval_us: rng.between(50_000, 400_000),
    };
    let hosts = (0..node_count)
        .map(|i| Host {
            node: Some(Node::new(NodeId(i), topology.clone(), config)),
            incarnation: 0,
            durable: Vec::new(),
            unsynced: BTreeMap::new(),
            clock_reserved: 0,
            persisted_seq: 0,
            durable_seq: 0,
            disk_free_at: 0,
            applies: VecDeque::new(),
            truncated: Default::default(),
            dropped_records: 0,
        })
        .collect();
    // Nodes lost for good: clients run on through the loss (until the faults end).
    let ops = if faults.lose_for_good {
        (20, 200)
    } else {
        (5, 30)
    };
    let clients = (0..rng.between(1, 10))
        .map(|_| Client {
            ops_left: rng.between(ops.0, ops.1) as u32,
            outstanding: None,
        })
        .collect();
    let mut sim = Sim {
        drop_percent: rng.between(0, faults.drop_percent_max),
        duplicate_percent: rng.between(0, faults.duplicate_percent_max),
        delay_us_max: rng.between(100, faults.delay_us_max),
        rng,
        now: 0,
        seq: 0,
        events: BTreeMap::new(),
        epochs: Epochs::new(topology, node_count as usize),
        config,
        hosts,
        clients,
        ops: HashMap::new(),
        meta_changes: HashMap::new(),
        invoked_at: BTreeMap::new(),
        last_invoked: 0,
        checker: Checker::new(node_count as usize),
        votes: Votes::default(),
        healed: false,
        cut: Default::default(),
        lost: BTreeSet::new(),
        paused_until: vec![0; node_count as usize],
        straggler_percent: 0,
        recoverer_stalls: 0,
        settled_at: 0,
        skew: vec![0; node_count as usize],
        promises: HashMap::new(),
        keys: 0,
        partial: None,
        ephemeral_percent: 0,
        in_flight: 0,
        dropped: 0,
        crashes: 0,
        log_hash: 0xcbf2_9ce4_8422_2325,
    };
    sim.keys = sim.rng.between(2, 9);
    if let Some((topology, keys)) = partial {
        sim.keys = keys;
        sim.checker.place(topology.clone());
        sim.partial = Some(topology);
    }
    sim.ephemeral_percent = [0, 50, 100][sim.rng.between(0, 2) as usize];
    sim.straggler_percent = sim.rng.between(0, faults.straggler_percent_max);
    sim.recoverer_stalls = sim.rng.between(0, faults.recoverer_stalls_max);
    for _ in 0..sim.rng.between(0, faults.pauses_max) {
        let node = sim.rng.between(0, node_count as u64 - 1) as usize;
        let at = sim.rng.between(0, FAULTS_END_US / 3);
        sim.schedule(at, Event::Pause { node });
    }
    for _ in 0..sim.rng.between(0, faults.partitions_max) {
        let at = sim.rng.between(0, FAULTS_END_US / 3);
        sim.schedule(at, Event::Partition);
    }
    for _ in 0..sim.rng.between(0, faults.clock_jumps_max) {
        let node = sim.rng.between(0, node_count as u64 - 1) as usize;
        let at = sim.rng.between(0, FAULTS_END_US / 3);
        sim.schedule(at, Event::ClockJump { node });
    }
    for _ in 0..sim.rng.between(0, faults.crashes_max) {
        let node = sim.rng.between(0, node_count as u64 - 1) as usize;
        // Clients usually finish within the first second: crash while they run.
        let at = sim.rng.between(0, FAULTS_END_US / 3);
        sim.schedule(at, Event::Crash { node });
    }
    for _ in 0..sim.rng.between(0, faults.topology_changes_max) {
        let at = sim.rng.between(0, FAULTS_END_US / 2);
        sim.schedule(at, Event::TopologyChange);
    }
    // The meta key is never idle for long in a real cluster (the lease is renewed every
    // second): a change decided while a replica was down, whose only node remembering the
    // miss crashed, reaches it as a dep of the next write of the key. One more write after
    // the faults plays that part here.
    if faults.topology_changes_max > 0 {
        sim.schedule(FAULTS_END_US, Event::MetaTouch);
    }
    if faults.lose_for_good {
        // A minority: one of 3, one or two of 5.
        let max_lost = (node_count as u64 - 1) / 2;
        for _ in 0..sim.rng.between(1, max_lost) {
            let node = sim.rng.between(0, node_count as u64 - 1) as usize;
            let at = sim.rng.between(0, FAULTS_END_US / 2);
            let crash = sim.rng.percent(50);
            sim.schedule(at, Event::LoseForGood { node, crash });
        }
    }
    sim.run();
    let nodes: Vec<&Node> = sim
        .hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| !sim.lost.contains(i))
        .map(|(_, h)| h.node.as_ref().expect("every live node is up at the end"))
        .collect();
    let (txns, fast, invalidated) = sim.checker.finish(&nodes);
    if !sim.lost.is_empty() {
        let live: Vec<NodeId> = nodes.iter().map(|n| n.id()).collect();
        sim.checker.applied_at_every_live_node(&live);
    }
    Outcome {
        seeds: 1,
        txns,
        fast,
        truncated: sim.hosts.iter().map(|h| h.dropped_records).sum(),
        dropped: sim.dropped,
        crashes: sim.crashes,
        invalidated,
        topology_changes: sim.epochs.latest() - 1,
        changes_proposed: sim.epochs.changes_proposed,
        cuts_done: sim.epochs.cuts_done(),
        cuts_proposed: sim.epochs.cuts_proposed,
        log_hash: sim.log_hash,
    }
}

impl Sim {
    fn schedule(&mut self, delay: u64, event: Event) {
        if matches!(
            event,
            Event::Deliver(_) | Event::Durable { .. } | Event::Restart { .. }
        ) {
            self.in_flight += 1;
        }
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), event);
    }

    fn hash(&mut self, parts: &[u64]) {
        for part in parts {
            self.log_hash = (self.log_hash ^ part).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn run(&mut self) {
        for node in 0..self.hosts.len() {
            let at = self.rng.between(0, TICK_US);
            self.schedule(
                at,
                Event::Tick {
                    node,
                    incarnation: 0,
                },
            );
        }
        for client in 0..self.clients.len() {
            let at = self.rng.between(0, 10_000);
            self.schedule(at, Event::ClientNext { client });
        }
        while let Some(((at, _), event)) = self.events.pop_first() {
            self.now = at;
            if matches!(
                event,
                Event::Deliver(_) | Event::Durable { .. } | Event::Restart { .. }
            ) {
                self.in_flight -= 1;
            }
            assert!(
                self.now < DEADLINE_US,
                "liveness: transactions unfinished {}s after the start: {}",
                DEADLINE_US / 1_000_000,
                self.unfinished()
            );
            if !self.healed && self.now >= FAULTS_END_US {
                self.healed = true;
            }
            self.step(event);
            if self.done() {
                return;
            }
            if !self.lost.is_empty() {
                self.check_bounded_liveness();
            }
        }
    }

    fn step(&mut self, event: Event) {
        // A paused node handles nothing until it resumes: its deliveries, disk completions
        // and timers wait (in order), as under SIGSTOP.
        let target = match &event {
            Event::Deliver(envelope) => Some(envelope.to.0 as usize),
            Event::Durable { node, .. } | Event::Tick { node, .. } | Event::Adopt { node } => {
                Some(*node)
            }
            _ => None,
        };
        if let Some(node) = target
            && self.paused_until[node] > self.now
        {
            let wait = self.paused_until[node] - self.now;
            self.schedule(wait, event);
            return;
        }
        self.votes.step();
        let node = match event {
            Event::Deliver(envelope) => {
                let to = envelope.to.0 as usize;
                let ids: Vec<u64> = envelope
                    .messages
                    .iter()
                    .map(|m| m.txn_id().timestamp().hlc)
                    .collect();
                self.hash(&[self.now, 1, envelope.from.0 as u64, to as u64]);
                self.hash(&ids);
                let Some(node) = self.hosts[to].node.as_mut() else {
                    return;
                };
                self.votes.delivered(&envelope);
                network::print_watched("HOLO_SIM_WATCH", self.now, "", &envelope);
                node.receive(envelope);
                to
            }
            Event::Durable {
                node,
                incarnation,
                seq,
            } => {
                if self.hosts[node].incarnation != incarnation || self.hosts[node].node.is_none() {
                    return;
                }
                self.hash(&[self.now, 2, node as u64, seq]);
                self.synced(node, seq);
                node
            }
            Event::Tick { node, incarnation } => {
                if self.hosts[node].incarnation != incarnation {
                    return;
                }
                let Some(n) = self.hosts[node].node.as_mut() else {
                    return;
                };
                let skewed = self.now.saturating_add_signed(self.skew[node]);
                n.tick(skewed);
                self.schedule(TICK_US, Event::Tick { node, incarnation });
                node
            }
            Event::ClientNext { client } => {
                self.start_op(client);
                return;
            }
            Event::Crash { node } => {
                self.crash(node);
                return;
            }
            Event::Partition => {
                self.partition();
                return;
            }
            Event::Heal => {
                self.hash(&[self.now, 6]);
                self.cut.clear();
                return;
            }
            Event::ClockJump { node } => {
                self.skew[node] = self.rng.between(0, 2_000_000) as i64 - 1_000_000;
                self.hash(&[self.now, 7, node as u64]);
                return;
            }
            Event::Restart { node } => {
                if self.lost.contains(&node) && self.hosts[node].node.is_none() {
                    return;
                }
                self.restart(node);
                node
            }
            Event::LoseForGood { node, crash } => {
                self.lose_for_good(node, crash);
                return;
            }
            Event::TopologyChange => {
                self.topology_change();
                return;
            }
            Event::Adopt { node } => {
                if !self.adopt(node) {
                    return;
                }
                node
            }
            Event::Cut { epoch } => {
                self.drive_cut(epoch);
                return;
            }
            Event::MetaTouch => {
                self.meta_touch();
                return;
            }
            Event::Pause { node } => {
                let until = self.now + self.rng.between(20_000, 300_000);
                self.paused_until[node] = self.paused_until[node].max(until);
                self.settled_at = self.settled_at.max(until);
                self.hash(&[self.now, 11, node as u64]);
                return;
            }
        };
        self.after_step(node);
    }

    /// The disk of `node` synced everything up to `seq`.
    fn synced(&mut self, node: usize, seq: u64) {
        let host = &mut self.hosts[node];
        while let Some(entry) = host.unsynced.first_entry() {
            if *entry.key() > seq {
                break;
            }
            match entry.remove() {
                Ok(command) => {
                    let promised = self
                        .promises
                        .entry((node, command.txn.id))
                        .or_insert(command.promised);
                    *promised = (*promised).max(command.promised);
                    host.durable.push(command);
                }
                Err(upto) => host.clock_reserved = host.clock_reserved.max(upto),
            }
        }
        host.durable_seq = host.durable_seq.max(seq);
        host.node.as_mut().expect("up").durable(seq);
        self.votes.synced(node, seq);
        while let Some((s, _)) = self.hosts[node].applies.front()
            && *s <= self.hosts[node].durable_seq
        {
            match self.hosts[node].applies.pop_front().expect("checked").1 {
                Queued::Apply(command, client) => self.apply(node, &command, client),
                Queued::Read(id, keys) => self.read(node, id, &keys),
            }
        }
    }

    /// Kill -9 and power loss: the node's memory and its unsynced records are gone.
    fn crash(&mut self, node: usize) {
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} crash {node}", self.now);
        }
        let host = &mut self.hosts[node];
        if host.node.is_none() {
            return;
        }
        self.crashes += 1;
        self.votes.crashed(node);
        host.node = None;
        host.unsynced.clear();
        host.applies.clear();
        host.incarnation += 1;
        self.hash(&[self.now, 4, node as u64]);
        // The peers' links to it break (a real transport notices a killed peer at once).
        self.tell_peers(node, Node::peer_down);
        self.abandon_clients_of(node);
        if self.lost.contains(&node) {
            return;
        }
        let downtime = self.rng.between(1_000, 300_000);
        self.settled_at = self.settled_at.max(self.now + downtime);
        self.schedule(downtime, Event::Restart { node });
    }

    fn restart(&mut self, node: usize) {
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} restart {node}", self.now);
        }
        let host = &self.hosts[node];
        let (records, reserved, truncated) =
            (host.durable.clone(), host.clock_reserved, host.truncated);
        let config = self.config;
        self.restart_node(node, |topologies| {
            Node::restart(
                NodeId(node as u16),
                topologies,
                config,
                records,
                reserved,
                truncated,
            )
        });
        let host = &mut self.hosts[node];
        host.persisted_seq = 0;
        host.durable_seq = 0;
        host.disk_free_at = self.now;
        let incarnation = host.incarnation;
        self.hash(&[self.now, 5, node as u64]);
        self.tell_peers(node, Node::peer_up);
        self.schedule(1, Event::Tick { node, incarnation });
    }

    fn start_op(&mut self, client: usize) {
        if self.now >= FAULTS_END_US {
            self.clients[client].ops_left = 0;
        }
        if self.clients[client].ops_left == 0 {
            return;
        }
        self.clients[client].ops_left -= 1;
        let (op, coordinator) = self.pick_op();
        let ephemeral =
            matches!(&op, ClientOp::Read(_)) && self.rng.percent(self.ephemeral_percent);
        let reachable = self.is_up(coordinator);
        let Some(node) = self.hosts[coordinator].node.as_mut().filter(|_| reachable) else {
            // The chosen node is down: the client's request fails at once; try another later.
            self.clients[client].ops_left += 1;
            let think = self.rng.between(1_000, 5_000);
            self.schedule(think, Event::ClientNext { client });
            return;
        };
        let (reads, writes) = op.keys();
        let id = if ephemeral {
            // Several keys: consistent, as holo-node reads one connection's pipeline.
            node.read(&reads, Bytes::new(), reads.len() > 1)
        } else {
            let id = node.propose(&reads, &writes, Bytes::new());
            self.epochs.check_proposed(coordinator, id);
            self.votes.proposed(id);
            id
        };
        self.hash(&[self.now, 3, coordinator as u64, id.timestamp().hlc]);
        self.checker.invoked(id, op.clone(), self.now);
        self.invoked_at.insert(id, self.now);
        self.last_invoked = self.now;
        self.ops.insert(id, (client, op));
        self.clients[client].outstanding = Some(id);
        self.after_step(coordinator);
    }

    /// Validates the node that just stepped and carries out its actions.
    fn after_step(&mut self, node: usize) {
        loop {
            let Some(n) = self.hosts[node].node.as_mut() else {
                return;
            };
            n.validate();
            let actions = n.take_actions();
            if actions.is_empty() {
                return;
            }
            self.carry_out(node, actions);
        }
    }

    fn carry_out(&mut self, node: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(envelope) => {
                    let second_phase = envelope.messages.iter().any(|m| {
                        matches!(
                            m,
                            holo_accord::Message::Accept { ballot, .. }
                                | holo_accord::Message::AcceptInvalidate { ballot, .. }
                                if *ballot > holo_accord::Ballot::ZERO
                        )
                    });
                    self.transmit(envelope);
                    if second_phase && !self.healed {
                        self.maybe_stall_recoverer(node);
                    }
                }
                Action::Persist { seq, command } => self.persist(node, seq, Ok(command)),
                Action::ReserveClock { seq, upto } => self.persist(node, seq, Err(upto)),
                Action::Apply { command, client } => {
                    if client && !Self::is_meta(&command.txn.id, &self.ops) {
                        self.answer_blind_write(&command);
                    }
                    let host = &mut self.hosts[node];
                    if host.durable_seq >= host.persisted_seq && host.applies.is_empty() {
                        self.apply(node, &command, client);
                    } else {
                        host.applies.push_back((
                            host.persisted_seq,
                            Queued::Apply(Box::new(command), client),
                        ));
                    }
                }
                Action::Read {
                    read_id,
                    as_txn: true,
                    ..
                } => {
                    // Could not be served consistently: the client hears "failed" (holo-node
                    // runs it as a transaction instead).
                    self.client_failed(read_id);
                }
                Action::Read { read_id, keys, .. } => {
                    // Behind the applies still waiting, as holo-node's executor runs it;
                    // nothing of its own to wait for.
                    let host = &mut self.hosts[node];
                    match host.applies.back().map(|(s, _)| *s) {
                        None => self.read(node, read_id, &keys),
                        Some(seq) => host.applies.push_back((seq, Queued::Read(read_id, keys))),
                    }
                }
                Action::Invalidated { txn_id } if Self::is_meta(&txn_id, &self.ops) => {
                    // A change never decided: nothing happens.
                    self.meta_changes.remove(&txn_id);
                }
                Action::Invalidated { txn_id } => self.client_failed(txn_id),
                Action::Truncate { floor, max } => self.truncate(node, floor, max),
            }
        }
    }

    /// A recovery coordinator just sent its second phase: sometimes it stalls right there,
    /// long enough for another recovery to take over.
    fn maybe_stall_recoverer(&mut self, node: usize) {
        if self.recoverer_stalls == 0 || !self.rng.percent(30) {
            return;
        }
        self.recoverer_stalls -= 1;
        let until = self.now + self.rng.between(10_000, 200_000);
        self.paused_until[node] = self.paused_until[node].max(until);
        self.settled_at = self.settled_at.max(until);
        self.hash(&[self.now, 12, node as u64]);
    }

    /// Drops from the disk every record of a txn below `floor` the node no longer holds.
    fn truncate(&mut self, node: usize, floor: TxnId, max: Timestamp) {
        let host = &mut self.hosts[node];
        let live = host.node.as_ref().expect("up").replica();
        let before = host.durable.len();
        host.durable
            .retain(|c| c.txn.id >= floor || live.command(&c.txn.id).is_some());
        host.dropped_records += (before - host.durable.len()) as u64;
        host.truncated = (floor, max);
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} node {node} truncates below {floor}", self.now);
        }
        self.checker.truncated(floor);
        self.hash(&[self.now, 9, node as u64, floor.timestamp().hlc]);
    }

    fn persist(&mut self, node: usize, seq: u64, record: Result<Command, u64>) {
        if let Ok(command) = &record {
            if let Some(durable) = self.promises.get(&(node, command.txn.id)) {
                assert!(
                    command.promised >= *durable,
                    "node {node} records {} promised {:?} after a durable promise of {durable:?}",
                    command.txn.id,
                    command.promised
                );
            }
            self.checker.recorded(NodeId(node as u16), &command.txn);
            if command.status.is_decided() {
                self.checker.decided(NodeId(node as u16), command);
            }
            self.votes.persisted(node, seq, command);
        }
        let command = record;
        let host = &mut self.hosts[node];
        host.persisted_seq = seq;
        host.unsynced.insert(seq, command);
        let free = host.disk_free_at.max(self.now) + self.rng.between(50, 3_000);
        self.hosts[node].disk_free_at = free;
        let incarnation = self.hosts[node].incarnation;
        self.schedule(
            free - self.now,
            Event::Durable {
                node,
                incarnation,
                seq,
            },
        );
    }

    /// A blind write's client is answered when its coordinator emits the Apply, before the
    /// host applied it or its records are durable here (what holo-node does for SET and
    /// MSET): real-time order from here on must still hold.
    fn answer_blind_write(&mut self, command: &holo_accord::Command) {
        let id = command.txn.id;
        let (owner, op) = self.ops[&id].clone();
        if matches!(op, ClientOp::Write(_)) && self.clients[owner].outstanding == Some(id) {
            self.checker
                .completed(id, OpResult::Written, self.now, &command.deps);
            self.next_op(owner);
        }
    }

    /// The client `owner` has its answer: it issues its next operation after a think time.
    fn next_op(&mut self, owner: usize) {
        if let Some(id) = self.clients[owner].outstanding.take() {
            self.invoked_at.remove(&id);
        }
        let think = self.rng.between(0, 3_000);
        self.schedule(think, Event::ClientNext { client: owner });
    }

    fn client_failed(&mut self, id: TxnId) {
        self.checker.failed(id);
        let (owner, _) = self.ops[&id].clone();
        if self.clients[owner].outstanding == Some(id) {
            self.next_op(owner);
        }
    }

    /// A txn that no client proposed: a topology change (sync points aside).
    fn is_meta(id: &TxnId, ops: &HashMap<TxnId, (usize, ClientOp)>) -> bool {
        !id.is_sync_point() && !ops.contains_key(id)
    }

    /// An ephemeral read runs at `node`: its client, if still waiting, has the answer.
    fn read(&mut self, node: usize, id: TxnId, keys: &[Key]) {
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} node {node} reads {id}", self.now);
        }
        let (owner, _) = self.ops[&id].clone();
        if self.clients[owner].outstanding == Some(id) {
            self.checker
                .read_ephemeral(NodeId(node as u16), id, keys, self.now);
            self.next_op(owner);
        }
    }

    fn apply(&mut self, node: usize, command: &holo_accord::Command, client: bool) {
        let id = command.txn.id;
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} node {node} applies {id}", self.now);
        }
        if id.is_sync_point() {
            // The simulated storage is durable at once.
            self.checker.sync_applied(NodeId(node as u16), command);
            let n = self.hosts[node].node.as_mut().expect("up");
            if command.txn.scope.is_some() {
                n.cut_durable(id);
            } else {
                n.sync_durable(id);
            }
            return;
        }
        if Self::is_meta(&id, &self.ops) {
            // A topology change: the checker sees a write of the meta key (no client reads
            // it), and the first apply anywhere decides the change.
            let op = ClientOp::Write(vec![(
                Bytes::from_static(epochs::META_KEY),
                id.timestamp().hlc,
            )]);
            self.checker.applied(NodeId(node as u16), command, &op);
            self.change_applied(id);
            return;
        }
        let (owner, op) = self
            .ops
            .get(&id)
            .cloned()
            .expect("every txn comes from a client");
        let Some(result) = self.checker.applied(NodeId(node as u16), command, &op) else {
            return; // applied before a restart: idempotent
        };
        if client && self.clients[owner].outstanding == Some(id) {
            self.checker.completed(id, result, self.now, &command.deps);
            self.next_op(owner);
        }
    }
}
