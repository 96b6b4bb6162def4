//! The simulated cluster: nodes, network, disks and clients, all driven by one seed.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use holo_accord::{
    Action, Config, Envelope, Key, Node, NodeId, RangeId, RangeInfo, Status, Topology, TxnId,
};

use crate::checker::{Checker, ClientOp, OpResult};
use crate::rng::Rng;

/// Which faults the network injects while the run is not healed.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop_percent_max: u64,
    pub duplicate_percent_max: u64,
    pub delay_us_max: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_percent_max: 10,
            duplicate_percent_max: 10,
            delay_us_max: 5_000,
        }
    }
}

/// What one seed did, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub seeds: u64,
    pub txns: u64,
    pub fast: u64,
    pub dropped: u64,
    pub log_hash: u64,
}

impl Outcome {
    pub fn add(&mut self, other: &Outcome) {
        self.seeds += other.seeds;
        self.txns += other.txns;
        self.fast += other.fast;
        self.dropped += other.dropped;
    }
}

enum Event {
    Deliver(Envelope),
    Durable { node: usize, seq: u64 },
    Tick { node: usize },
    ClientNext { client: usize },
}

struct Client {
    ops_left: u32,
    outstanding: Option<TxnId>,
}

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    /// Per node: when its disk last completed a sync (syncs complete in order).
    disk_free_at: Vec<u64>,
    clients: Vec<Client>,
    ops: HashMap<TxnId, (usize, ClientOp)>,
    checker: Checker,
    drop_percent: u64,
    duplicate_percent: u64,
    delay_us_max: u64,
    healed: bool,
    dropped: u64,
    log_hash: u64,
}

const KEYS: u64 = 8;
const TICK_US: u64 = 1_000;
const FAULTS_END_US: u64 = 2_000_000;
const DEADLINE_US: u64 = 30_000_000;

fn key(i: u64) -> Key {
    Bytes::from(format!("k{i}"))
}

fn topology(nodes: u16) -> Topology {
    let replicas: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let bounds = [None, Some(key(3)), Some(key(6)), None];
    let ranges = (0..3)
        .map(|i| RangeInfo {
            id: RangeId(i as u64),
            start: bounds[i].clone().unwrap_or_default(),
            end: bounds[i + 1].clone(),
            replicas: replicas.clone(),
        })
        .collect();
    Topology { ranges }
}

/// Runs one seed to the end and checks it; panics on any violation.
pub fn run_seed(seed: u64, faults: Faults) -> Outcome {
    let mut rng = Rng::new(seed);
    let node_count = if rng.percent(30) { 5 } else { 3 };
    let topology = topology(node_count);
    let config = Config {
        fast_path_wait_us: rng.between(500, 5_000),
        retry_us: rng.between(20_000, 80_000),
    };
    let nodes: Vec<Node> = (0..node_count)
        .map(|i| Node::new(NodeId(i), topology.clone(), config, 0))
        .collect();
    let clients = (0..rng.between(1, 6))
        .map(|_| Client {
            ops_left: rng.between(5, 30) as u32,
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
        disk_free_at: vec![0; nodes.len()],
        nodes,
        clients,
        ops: HashMap::new(),
        checker: Checker::default(),
        healed: false,
        dropped: 0,
        log_hash: 0xcbf2_9ce4_8422_2325,
    };
    sim.run();
    let (txns, fast) = sim.checker.finish(&sim.nodes);
    Outcome {
        seeds: 1,
        txns,
        fast,
        dropped: sim.dropped,
        log_hash: sim.log_hash,
    }
}

impl Sim {
    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), event);
    }

    fn hash(&mut self, parts: &[u64]) {
        for part in parts {
            self.log_hash = (self.log_hash ^ part).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn run(&mut self) {
        for node in 0..self.nodes.len() {
            let at = self.rng.between(0, TICK_US);
            self.schedule(at, Event::Tick { node });
        }
        for client in 0..self.clients.len() {
            let at = self.rng.between(0, 10_000);
            self.schedule(at, Event::ClientNext { client });
        }
        while let Some(((at, _), event)) = self.events.pop_first() {
            self.now = at;
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
        }
    }

    fn unfinished(&self) -> String {
        let coordinating: Vec<usize> = self.nodes.iter().map(Node::coordinating).collect();
        let waiting = self
            .clients
            .iter()
            .filter(|c| c.outstanding.is_some())
            .count();
        format!("clients waiting: {waiting}, coordinations per node: {coordinating:?}")
    }

    fn done(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.ops_left == 0 && c.outstanding.is_none())
            && self.nodes.iter().all(|n| n.coordinating() == 0)
            && !self
                .events
                .values()
                .any(|e| matches!(e, Event::Deliver(_) | Event::Durable { .. }))
    }

    fn step(&mut self, event: Event) {
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
                self.nodes[to].receive(envelope);
                to
            }
            Event::Durable { node, seq } => {
                self.hash(&[self.now, 2, node as u64, seq]);
                self.nodes[node].durable(seq);
                node
            }
            Event::Tick { node } => {
                self.nodes[node].tick(self.now);
                self.schedule(TICK_US, Event::Tick { node });
                node
            }
            Event::ClientNext { client } => {
                self.start_op(client);
                return;
            }
        };
        self.after_step(node);
    }

    fn start_op(&mut self, client: usize) {
        if self.now >= FAULTS_END_US {
            self.clients[client].ops_left = 0;
        }
        if self.clients[client].ops_left == 0 {
            return;
        }
        self.clients[client].ops_left -= 1;
        let op = ClientOp::random(&mut self.rng, KEYS, key);
        let coordinator = self.rng.between(0, self.nodes.len() as u64 - 1) as usize;
        let (reads, writes) = op.keys();
        let id = self.nodes[coordinator].propose(&reads, &writes, Bytes::new());
        self.hash(&[self.now, 3, coordinator as u64, id.timestamp().hlc]);
        self.checker.invoked(id, op.clone(), self.now);
        self.ops.insert(id, (client, op));
        self.clients[client].outstanding = Some(id);
        self.after_step(coordinator);
    }

    /// Validates the node that just stepped and carries out its actions.
    fn after_step(&mut self, node: usize) {
        self.nodes[node].validate();
        for action in self.nodes[node].take_actions() {
            match action {
                Action::Send(envelope) => self.transmit(envelope),
                Action::Persist { seq, command } => {
                    if command.status >= Status::Stable {
                        self.checker.decided(NodeId(node as u16), &command);
                    }
                    let free = self.disk_free_at[node].max(self.now) + self.rng.between(50, 1_000);
                    self.disk_free_at[node] = free;
                    self.seq += 1;
                    self.events
                        .insert((free, self.seq), Event::Durable { node, seq });
                }
                Action::Apply { command, client } => self.apply(node, &command, client),
            }
        }
    }

    fn transmit(&mut self, envelope: Envelope) {
        let faulty = !self.healed;
        if faulty && self.rng.percent(self.drop_percent) {
            self.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.percent(self.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.between(20, self.delay_us_max);
            self.schedule(delay, Event::Deliver(envelope.clone()));
        }
    }

    fn apply(&mut self, node: usize, command: &holo_accord::Command, client: bool) {
        let id = command.txn.id;
        let (owner, op) = self
            .ops
            .get(&id)
            .cloned()
            .expect("every txn comes from a client");
        let result: OpResult = self.checker.applied(NodeId(node as u16), command, &op);
        if client {
            self.checker.completed(id, result, self.now);
            self.clients[owner].outstanding = None;
            let think = self.rng.between(0, 3_000);
            self.schedule(think, Event::ClientNext { client: owner });
        }
    }
}
