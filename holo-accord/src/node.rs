//! The sans-IO node: events in (`propose`, `receive`, `tick`, `durable`), actions out.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::coordinator::{Coordination, Decision, Phase};
use crate::ids::{Ballot, Clock, NodeId, TxnId};
use crate::messages::{Envelope, Message};
use crate::replica::{Command, Replica};
use crate::topology::Topology;
use crate::txn::{Key, Txn};

/// Timing knobs, in microseconds of host time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How long a coordinator with a majority but not a fast quorum waits for the rest
    /// before it takes the slow path.
    pub fast_path_wait_us: u64,
    /// How long before a coordinator resends the current round to replicas that have not
    /// answered (messages may be lost).
    pub retry_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fast_path_wait_us: 2_000,
            retry_us: 50_000,
        }
    }
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a batch of messages to one peer.
    Send(Envelope),
    /// Make this command state durable (the WAL), then call [`Node::durable`] with `seq`.
    /// Replies that depend on it are held until then.
    Persist { seq: u64, command: Command },
    /// Execute the transaction's operation against storage at `command.execute_at`. Apply
    /// actions come in a valid execution order; the host applies them in the order given,
    /// each after the Persist actions before it are durable. `client`: this node coordinates
    /// the transaction and answers its client with the result.
    Apply { command: Command, client: bool },
}

/// One node of the cluster: a replica of its ranges and the coordinator of the
/// transactions its clients propose.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    topology: Topology,
    config: Config,
    clock: Clock,
    now: u64,
    replica: Replica,
    coordinating: BTreeMap<TxnId, Coordination>,
    persist_seq: u64,
    durable_seq: u64,
    /// Replies held until the state they report is durable: (persist seq, to, message).
    held: VecDeque<(u64, NodeId, Message)>,
    /// Messages to this node itself, handled within the current step.
    local: VecDeque<Message>,
    outbox: BTreeMap<NodeId, Vec<Message>>,
    actions: Vec<Action>,
}

impl Node {
    pub fn new(id: NodeId, topology: Topology, config: Config, clock_high_water: u64) -> Node {
        Node {
            id,
            topology,
            config,
            clock: Clock::new(id, 1, clock_high_water),
            now: 0,
            replica: Replica::default(),
            coordinating: BTreeMap::new(),
            persist_seq: 0,
            durable_seq: 0,
            held: VecDeque::new(),
            local: VecDeque::new(),
            outbox: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Transactions this node still coordinates.
    pub fn coordinating(&self) -> usize {
        self.coordinating.len()
    }

    /// Starts coordinating a transaction over `reads` and `writes`; returns its id.
    pub fn propose(&mut self, reads: &[Key], writes: &[Key], op: Bytes) -> TxnId {
        let kind = Txn::kind_of(writes);
        let id = TxnId(self.clock.unique_now(kind, crate::ids::Timestamp::ZERO));
        let txn = Txn::new(id, reads, writes, op);
        let ranges: Vec<_> = self
            .topology
            .ranges_of(txn.keys.iter().map(|(k, _)| k))
            .into_iter()
            .cloned()
            .collect();
        let replicas = Topology::replicas_of(&ranges.iter().collect::<Vec<_>>());
        assert!(
            replicas.contains(&self.id),
            "a coordinator replicates every range of its transactions"
        );
        let coordination = Coordination {
            txn: txn.clone(),
            ranges,
            replicas: replicas.clone(),
            phase: Phase::PreAccepting {
                replies: BTreeMap::new(),
            },
            phase_started: self.now,
            last_sent: self.now,
            client_done: false,
        };
        self.coordinating.insert(id, coordination);
        for to in replicas {
            self.send(to, Message::PreAccept { txn: txn.clone() });
        }
        self.drain_local();
        id
    }

    /// Handles a batch of messages from a peer.
    pub fn receive(&mut self, envelope: Envelope) {
        for message in envelope.messages {
            self.handle(envelope.from, message);
        }
        self.drain_local();
    }

    /// Advances host time: resends unanswered rounds and takes the slow path where the
    /// fast-path wait is over.
    pub fn tick(&mut self, now_micros: u64) {
        self.now = self.now.max(now_micros);
        self.clock.observe_now(now_micros);
        let ids: Vec<TxnId> = self.coordinating.keys().copied().collect();
        for id in ids {
            self.advance(id);
            self.retry(id);
        }
        self.drain_local();
    }

    /// Every Persist action up to `seq` is durable: release the replies that waited for it.
    pub fn durable(&mut self, seq: u64) {
        self.durable_seq = self.durable_seq.max(seq);
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

    /// Sends a reply once everything persisted so far is durable.
    fn reply(&mut self, to: NodeId, message: Message) {
        if self.persist_seq <= self.durable_seq {
            self.send(to, message);
        } else {
            self.held.push_back((self.persist_seq, to, message));
        }
    }

    fn persist(&mut self, command: Command) {
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
    }

    fn handle(&mut self, from: NodeId, message: Message) {
        self.clock.observe(message.txn_id().timestamp());
        match message {
            Message::PreAccept { txn } => {
                let handled = self.replica.pre_accept(&txn, &mut self.clock);
                if let Some(command) = handled.changed {
                    self.persist(command);
                }
                if let Some((witnessed, deps)) = handled.reply {
                    self.reply(
                        from,
                        Message::PreAcceptOk {
                            txn_id: txn.id,
                            witnessed,
                            deps,
                        },
                    );
                }
            }
            Message::Accept {
                txn,
                ballot,
                execute_at,
            } => {
                self.clock.observe(execute_at);
                let handled = self.replica.accept(&txn, ballot, execute_at);
                if let Some(command) = handled.changed {
                    self.persist(command);
                }
                let reply = match handled.reply {
                    Ok(deps) => Message::AcceptOk {
                        txn_id: txn.id,
                        deps,
                    },
                    Err(promised) => Message::AcceptNack {
                        txn_id: txn.id,
                        promised,
                    },
                };
                self.reply(from, reply);
            }
            Message::Stable {
                txn,
                execute_at,
                deps,
            } => {
                self.clock.observe(execute_at);
                if let Some(command) = self.replica.stable(&txn, execute_at, &deps) {
                    self.persist(command);
                }
                self.reply(from, Message::StableOk { txn_id: txn.id });
                self.execute_ready();
            }
            Message::PreAcceptOk {
                txn_id,
                witnessed,
                deps,
            } => {
                self.clock.observe(witnessed);
                if let Some(c) = self.coordinating.get_mut(&txn_id)
                    && let Phase::PreAccepting { replies } = &mut c.phase
                {
                    replies.insert(from, (witnessed, deps));
                }
                self.advance(txn_id);
            }
            Message::AcceptOk { txn_id, deps } => {
                if let Some(c) = self.coordinating.get_mut(&txn_id)
                    && let Phase::Accepting { replies, .. } = &mut c.phase
                {
                    replies.insert(from, deps);
                }
                self.advance(txn_id);
            }
            Message::AcceptNack { txn_id, promised } => {
                // Another coordinator (recovery) took over; it will finish the transaction.
                tracing::debug!(%txn_id, ?promised, "accept refused");
            }
            Message::StableOk { txn_id } => {
                if let Some(c) = self.coordinating.get_mut(&txn_id)
                    && let Phase::Committing { acked, .. } = &mut c.phase
                {
                    acked.insert(from);
                }
                self.finish_if_done(txn_id);
            }
        }
    }

    /// Moves a coordination to its next phase when its replies allow.
    fn advance(&mut self, id: TxnId) {
        let Some(c) = self.coordinating.get(&id) else {
            return;
        };
        let decision = match &c.phase {
            Phase::PreAccepting { .. } => {
                let waited =
                    self.now.saturating_sub(c.phase_started) >= self.config.fast_path_wait_us;
                c.decide_pre_accept(waited)
            }
            Phase::Accepting { .. } => match c.decide_accept() {
                Some((execute_at, deps)) => Decision::Stable { execute_at, deps },
                None => Decision::Wait,
            },
            Phase::Committing { .. } => Decision::Wait,
        };
        let now = self.now;
        let c = self.coordinating.get_mut(&id).expect("checked above");
        let (message, phase) = match decision {
            Decision::Wait => return,
            Decision::Accept { execute_at } => (
                Message::Accept {
                    txn: c.txn.clone(),
                    ballot: Ballot::ZERO,
                    execute_at,
                },
                Phase::Accepting {
                    execute_at,
                    replies: BTreeMap::new(),
                },
            ),
            Decision::Stable { execute_at, deps } => (
                Message::Stable {
                    txn: c.txn.clone(),
                    execute_at,
                    deps: deps.clone(),
                },
                Phase::Committing {
                    execute_at,
                    deps,
                    acked: Default::default(),
                },
            ),
        };
        c.phase = phase;
        c.phase_started = now;
        c.last_sent = now;
        for to in c.replicas.clone() {
            self.send(to, message.clone());
        }
    }

    /// Resends the current round to replicas that have not answered it.
    fn retry(&mut self, id: TxnId) {
        let now = self.now;
        let Some(c) = self.coordinating.get_mut(&id) else {
            return;
        };
        if now.saturating_sub(c.last_sent) < self.config.retry_us {
            return;
        }
        c.last_sent = now;
        let message = match &c.phase {
            Phase::PreAccepting { .. } => Message::PreAccept { txn: c.txn.clone() },
            Phase::Accepting { execute_at, .. } => Message::Accept {
                txn: c.txn.clone(),
                ballot: Ballot::ZERO,
                execute_at: *execute_at,
            },
            Phase::Committing {
                execute_at, deps, ..
            } => Message::Stable {
                txn: c.txn.clone(),
                execute_at: *execute_at,
                deps: deps.clone(),
            },
        };
        for to in c.unanswered() {
            self.send(to, message.clone());
        }
    }

    fn execute_ready(&mut self) {
        for command in self.replica.take_ready() {
            let id = command.txn.id;
            let client = match self.coordinating.get_mut(&id) {
                Some(c) => {
                    c.client_done = true;
                    true
                }
                None => false,
            };
            self.actions.push(Action::Apply { command, client });
            self.finish_if_done(id);
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

    /// Checks internal invariants; tests call it after every step.
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn validate(&self) {
        self.replica.validate();
        assert!(
            self.durable_seq <= self.persist_seq,
            "durable beyond what was persisted"
        );
        assert!(
            self.held.iter().all(|(s, _, _)| *s > self.durable_seq),
            "a releasable reply is held"
        );
        for (id, c) in &self.coordinating {
            assert_eq!(*id, c.txn.id);
            assert_eq!(id.coordinator(), self.id, "coordinating another node's txn");
        }
    }
}
