//! The oracle: the invariants of ACCORD.md section 7, checked as events happen and at the
//! end, and strict serializability of the client history.

use std::collections::{BTreeMap, HashMap, HashSet};

use holo_accord::{Access, Command, Deps, Key, KeySpan, NodeId, Status, Timestamp, Txn, TxnId};

use crate::rng::Rng;

#[path = "serial.rs"]
mod serial;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    Read(Vec<Key>),
    Write(Vec<(Key, u64)>),
    /// Read-modify-write: add one, return the new value.
    Incr(Key),
}

/// What a client got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Values(Vec<Option<u64>>),
    Written,
    Counter(u64),
}

impl ClientOp {
    /// A random operation over one to three of `keys`.
    pub fn random_from(rng: &mut Rng, keys: &[Key]) -> ClientOp {
        let one = |rng: &mut Rng| keys[rng.between(0, keys.len() as u64 - 1) as usize].clone();
        let some_keys = |rng: &mut Rng| {
            let count = rng.between(1, 3);
            let mut chosen: Vec<Key> = (0..count).map(|_| one(rng)).collect();
            chosen.sort();
            chosen.dedup();
            chosen
        };
        match rng.between(0, 9) {
            0..=3 => ClientOp::Read(some_keys(rng)),
            4..=7 => {
                let keys = some_keys(rng);
                ClientOp::Write(keys.into_iter().map(|k| (k, rng.next_u64() >> 1)).collect())
            }
            _ => ClientOp::Incr(one(rng)),
        }
    }

    /// (reads, writes)
    pub fn keys(&self) -> (Vec<Key>, Vec<Key>) {
        match self {
            ClientOp::Read(keys) => (keys.clone(), Vec::new()),
            ClientOp::Write(pairs) => (Vec::new(), pairs.iter().map(|(k, _)| k.clone()).collect()),
            ClientOp::Incr(key) => (vec![key.clone()], vec![key.clone()]),
        }
    }

    /// Runs the operation against a key-value state.
    pub fn execute(&self, kv: &mut BTreeMap<Key, u64>) -> OpResult {
        match self {
            ClientOp::Read(keys) => {
                OpResult::Values(keys.iter().map(|k| kv.get(k).copied()).collect())
            }
            ClientOp::Write(pairs) => {
                for (k, v) in pairs {
                    kv.insert(k.clone(), *v);
                }
                OpResult::Written
            }
            ClientOp::Incr(key) => {
                let value = kv.get(key).copied().unwrap_or(0) + 1;
                kv.insert(key.clone(), value);
                OpResult::Counter(value)
            }
        }
    }
}

struct Decision {
    execute_at: Timestamp,
    /// Every deps set a replica was told for this txn. Coordinators may decide different
    /// deps (a recovery recomputes them); each must satisfy invariant 3.
    deps: Vec<Deps>,
    keys: Vec<(Key, Access)>,
    /// When each deps set was first decided (the checker's event count): a txn applied at
    /// every node before then may be missing from it (GC may have dropped it).
    decided_at: Vec<u64>,
}

struct Entry {
    op: ClientOp,
    invoked: u64,
    completed: Option<(u64, OpResult)>,
}

/// Per node and key: the highest executeAt applied by a writer and by a reader, and the
/// writers in apply order.
#[derive(Default)]
struct KeyApplies {
    max_write: Timestamp,
    max_read: Timestamp,
    writers: Vec<TxnId>,
}

#[derive(Default)]
pub struct Checker {
    kv: HashMap<NodeId, BTreeMap<Key, u64>>,
    applies: HashMap<(NodeId, Key), KeyApplies>,
    decided: HashMap<TxnId, Decision>,
    invalidated: HashSet<TxnId>,
    execute_ats: HashMap<Timestamp, TxnId>,
    history: BTreeMap<TxnId, Entry>,
    /// (node, txn) pairs applied: a restarted node applies again, idempotently.
    applied: HashSet<(NodeId, TxnId)>,
    failed: HashSet<TxnId>,
    /// Per node, the highest sync point over every range it applied.
    synced: HashMap<NodeId, TxnId>,
    /// Per node, the exclusive sync points it applied, with their spans.
    cuts_applied: HashMap<NodeId, Vec<(TxnId, KeySpan)>>,
    /// The history cuts done: (the epoch the change made, the span it changed).
    cuts_done: Vec<(u64, KeySpan)>,
    /// How many nodes the cluster has.
    nodes: usize,
    /// Events seen (decisions and applies), a logical clock.
    events: u64,
    /// Sync points decided to execute, with their (one) deps set and their scope.
    sync_decisions: BTreeMap<TxnId, (Deps, Option<KeySpan>)>,
    /// Per txn, how many nodes applied it, and when the last of them did.
    applied_by: HashMap<TxnId, (usize, Option<u64>)>,
    /// With partial replication, where each range lives (see `placement.rs`).
    placement: Option<holo_accord::Topology>,
    /// Ephemeral reads answered: each key, and the last writer of it the reading node had
    /// applied (`None`: none), which places the read in the key's order of writes.
    ephemeral: HashMap<TxnId, Vec<(Key, Option<TxnId>)>>,
}

impl Checker {
    pub fn new(nodes: usize) -> Checker {
        Checker {
            nodes,
            ..Checker::default()
        }
    }

    /// Ranges live on a subset of the nodes, fixed for the run: a node records and applies
    /// only txns of the ranges it replicates.
    pub fn place(&mut self, topology: holo_accord::Topology) {
        self.placement = Some(topology);
    }

    /// The replicas of `txn`'s ranges, if ranges live on a subset of the nodes.
    fn replicas_of(&self, txn: &Txn) -> Option<Vec<NodeId>> {
        let placement = self.placement.as_ref()?;
        let ranges = placement.ranges_for(txn);
        Some(holo_accord::Topology::replicas_of(&ranges))
    }

    /// `node` persists a record of `txn`: it must replicate one of its ranges.
    pub fn recorded(&self, node: NodeId, txn: &Txn) {
        if let Some(replicas) = self.replicas_of(txn) {
            assert!(
                replicas.contains(&node),
                "{node:?} records {} of ranges on {replicas:?} only",
                txn.id
            );
        }
    }

    pub fn invoked(&mut self, id: TxnId, op: ClientOp, now: u64) {
        if let Some(previous) = self.history.get(&id) {
            // A node may issue a t0 again only if the first never left it: it crashed before
            // the record holding the t0 was durable, and its clock fell back. Nothing may
            // have been decided or answered under the first.
            assert!(
                !self.decided.contains_key(&id),
                "TxnId {id} issued twice, the first decided"
            );
            assert!(
                previous.completed.is_none(),
                "TxnId {id} issued twice, the first answered"
            );
        }
        self.history.insert(
            id,
            Entry {
                op,
                invoked: now,
                completed: None,
            },
        );
    }

    /// `id` was issued again, for a txn no client invoked: the client op that had it first
    /// must never have been decided or answered, and leaves the history.
    pub fn reissued(&mut self, id: TxnId) {
        assert!(
            !self.decided.contains_key(&id),
            "TxnId {id} issued twice, the first decided"
        );
        let previous = self.history.remove(&id).expect("a client op had it");
        assert!(
            previous.completed.is_none(),
            "TxnId {id} issued twice, the first answered"
        );
    }

    /// The client was told its txn was invalidated: it must never execute.
    pub fn failed(&mut self, id: TxnId) {
        assert!(
            !self.decided.contains_key(&id),
            "{id} reported failed, yet decided to execute"
        );
        self.failed.insert(id);
    }

    /// `deps`: the deps the answering node's replica executed the txn with.
    pub fn completed(&mut self, id: TxnId, result: OpResult, now: u64, deps: &Deps) {
        let entry = self
            .history
            .get_mut(&id)
            .expect("completed txns were invoked");
        assert!(entry.completed.is_none(), "{id} completed twice");
        entry.completed = Some((now, result));
        self.deps_decided_before_answer(id, deps);
    }

    /// A client is answered only once every dep its txn executes with at the answering node
    /// is decided (executeAt fixed, or invalidated, or never to be decided: below a sync
    /// point every node applied). Strict serializability needs it: a dep still undecided may
    /// end up ordered before the answered txn and after a txn some client starts later, one
    /// that does not conflict with the answered txn but does with the dep (the history of
    /// simulator seed 23795, when writes were answered at commit). Checked at the answer, so
    /// a host that answers too early fails at once (answering at commit: seed 52) instead
    /// of in the rare history that shows it. Only the answering node's deps: another
    /// coordinator may have decided the same executeAt with other deps (a fast-path commit
    /// and a recovery's Accept), and a dep only that set lists is ordered after this txn.
    fn deps_decided_before_answer(&self, id: TxnId, deps: &Deps) {
        if !self.decided.contains_key(&id) {
            return; // "completed without a decision" is reported at the end
        }
        // Below a sync point every node applied, a txn not yet decided never will be: it
        // can no longer gather a majority (GC treats it as finished).
        let settled = (self.synced.len() == self.nodes)
            .then(|| self.synced.values().copied().min())
            .flatten()
            .unwrap_or_default();
        for dep in deps {
            assert!(
                self.decided.contains_key(dep)
                    || self.invalidated.contains(dep)
                    || *dep < settled
                    || self.excluded_dep(dep),
                "{id} answered while its dep {dep} was undecided: a txn started after the \
                 answer could be ordered below the dep, and the dep below {id}"
            );
        }
    }

    /// A sync point above `id` was decided without it: it can never execute.
    /// A sync point above the txn `id` that covers it was decided without it (its keys from
    /// the client history; a txn not there is a sync point, which only sync points over
    /// every range cover).
    fn excluded_dep(&self, id: &TxnId) -> bool {
        let txn = match self.history.get(id) {
            Some(entry) => {
                let (reads, writes) = entry.op.keys();
                Txn::new(*id, &reads, &writes, bytes::Bytes::new())
            }
            None => Txn::new(*id, &[], &[], bytes::Bytes::new()),
        };
        self.excluded_by(&txn).is_some()
    }

    /// A sync point above `txn` that covers it was decided without it.
    fn excluded_by(&self, txn: &Txn) -> Option<TxnId> {
        self.sync_decisions
            .range((
                std::ops::Bound::Excluded(txn.id),
                std::ops::Bound::Unbounded,
            ))
            .find(|(_, (deps, scope))| {
                !deps.contains(&txn.id) && scope.as_ref().is_none_or(|s| txn.touches(s))
            })
            .map(|(s, _)| *s)
    }

    /// Invariants 1 and 2: every replica decides the same executeAt; executeAts are
    /// unique and never below the TxnId.
    pub fn decided(&mut self, node: NodeId, command: &Command) {
        let id = command.txn.id;
        if let Some(entry) = self.history.get(&id) {
            let (reads, writes) = entry.op.keys();
            let expected = holo_accord::Txn::new(id, &reads, &writes, command.txn.op.clone());
            assert_eq!(
                expected.keys, command.txn.keys,
                "{id} decided for another transaction's keys"
            );
        }
        if command.status == Status::Invalidated {
            assert!(
                !self.decided.contains_key(&id),
                "{id} decided both to execute and to be invalidated"
            );
            self.invalidated.insert(id);
            return;
        }
        assert!(
            !self.invalidated.contains(&id),
            "{id} decided both to be invalidated and to execute"
        );
        assert!(
            !self.failed.contains(&id),
            "{id} executes after its client was told it failed"
        );
        assert!(
            command.execute_at >= id.timestamp(),
            "{id}: executeAt {} below t0",
            command.execute_at
        );
        // Only a first decision: once decided, a txn applied everywhere may be dropped by GC
        // and left out of later sync points, and a replica may still record it again.
        if !id.is_sync_point()
            && !self.decided.contains_key(&id)
            && let Some(sync) = self.excluded_by(&command.txn)
        {
            panic!(
                "{id} decided to execute at {node:?}, yet the sync point {sync} was decided without it"
            );
        }
        if let Some(d) = self.decided.get(&id) {
            assert_eq!(
                d.execute_at, command.execute_at,
                "{id}: replicas disagree on executeAt ({node:?})"
            );
            assert!(
                !id.is_sync_point() || d.deps.contains(&command.deps),
                "sync point {id} decided with two deps sets ({node:?}): its deps are part of \
                 its value"
            );
            if !d.deps.contains(&command.deps) {
                let at = self.events;
                self.events += 1;
                let d = self.decided.get_mut(&id).expect("checked");
                d.deps.push(command.deps.clone());
                d.decided_at.push(at);
            }
            return;
        }
        if let Some(other) = self.execute_ats.insert(command.execute_at, id) {
            panic!("{id} and {other} share executeAt {}", command.execute_at);
        }
        if id.is_sync_point() {
            self.sync_decisions
                .insert(id, (command.deps.clone(), command.txn.scope.clone()));
        }
        let decision = Decision {
            execute_at: command.execute_at,
            deps: vec![command.deps.clone()],
            keys: command.txn.keys.clone(),
            decided_at: vec![self.events],
        };
        self.events += 1;
        self.decided.insert(id, decision);
    }

    /// Invariant 4: per key, a replica applies writers in increasing executeAt, and never a
    /// reader after a later writer or a writer after a later reader. Returns the result.
    pub fn applied(&mut self, node: NodeId, command: &Command, op: &ClientOp) -> Option<OpResult> {
        let id = command.txn.id;
        let decided = self
            .decided
            .get(&id)
            .unwrap_or_else(|| panic!("{id} applied before it was decided"));
        assert_eq!(
            decided.execute_at, command.execute_at,
            "{id} applied at another executeAt"
        );
        self.recorded(node, &command.txn);
        if !self.applied.insert((node, id)) {
            return None;
        }
        self.events += 1;
        let by = self.applied_by.entry(id).or_default();
        by.0 += 1;
        if by.0 == self.nodes {
            by.1 = Some(self.events);
        }
        if let Some(sync) = self.synced.get(&node) {
            assert!(
                id > *sync,
                "{node:?} applied {id} after the sync point {sync} above it: a sync point \
                 must find every txn below it applied or never executing"
            );
        }
        for (epoch, span) in &self.cuts_done {
            assert!(
                id.timestamp().epoch >= *epoch || !command.txn.touches(span),
                "{node:?} applied {id} of epoch {} over {span:?} after the history cut of \
                 epoch {epoch} was done there: the earlier epoch may already be retired",
                id.timestamp().epoch
            );
        }
        for (cut, scope) in self.cuts_applied.get(&node).into_iter().flatten() {
            assert!(
                id > *cut || !command.txn.touches(scope),
                "{node:?} applied {id} after the exclusive sync point {cut} above it over \
                 {scope:?}: nothing below an applied exclusive sync point that touches its \
                 span executes after it"
            );
        }
        let t = command.execute_at;
        for (key, access) in &command.txn.keys {
            let state = self.applies.entry((node, key.clone())).or_default();
            if t <= state.max_write {
                let later = state.writers.last().expect("a writer was applied");
                let later_deps = &self.decided[later].deps;
                panic!(
                    "{node:?} applied {id} (at {t}) on {key:?} after the later writer {later} (at {}); \
                     {id} in the later writer's deps: {:?}",
                    state.max_write,
                    later_deps
                        .iter()
                        .map(|d| d.contains(&id))
                        .collect::<Vec<_>>()
                );
            }
            assert!(
                t > state.max_write,
                "{node:?} applied {id} on {key:?} after a later writer"
            );
            match access {
                Access::Write => {
                    assert!(
                        t > state.max_read,
                        "{node:?} applied writer {id} on {key:?} after a later reader"
                    );
                    state.max_write = t;
                    state.writers.push(id);
                }
                Access::Read => state.max_read = state.max_read.max(t),
            }
        }
        Some(op.execute(self.kv.entry(node).or_default()))
    }

    /// An ephemeral read of `keys` (invoked as that `ClientOp::Read`) runs at `node` and its
    /// client is answered: with the values the node applied, each after the last writer of
    /// its key the node applied. Checked at the end against the order of writes and real
    /// time, as one read per key in the order of its keys, and in the reverse order (see
    /// `real_time_order_is_acyclic`).
    pub fn read_ephemeral(&mut self, node: NodeId, id: TxnId, keys: &[Key], now: u64) {
        let seen: Vec<(Key, Option<TxnId>)> = keys
            .iter()
            .map(|key| {
                let last = self.applies.get(&(node, key.clone()));
                (key.clone(), last.and_then(|a| a.writers.last().copied()))
            })
            .collect();
        let kv = self.kv.get(&node);
        let values = keys
            .iter()
            .map(|key| kv.and_then(|kv| kv.get(key)).copied())
            .collect();
        let entry = self
            .history
            .get_mut(&id)
            .expect("completed reads were invoked");
        assert!(entry.completed.is_none(), "{id} completed twice");
        assert_eq!(
            entry.op,
            ClientOp::Read(keys.to_vec()),
            "{id}: the keys invoked"
        );
        entry.completed = Some((now, OpResult::Values(values)));
        self.ephemeral.insert(id, seen);
    }

    /// A node dropped the records below `floor`: every node applied a sync point there.
    pub fn truncated(&mut self, floor: TxnId) {
        let all = self.synced.values().copied().min().unwrap_or_default();
        assert!(
            self.synced.len() == self.nodes && floor <= all,
            "GC below {floor}, yet not every node applied a sync point there ({:?})",
            self.synced
        );
    }

    /// A sync point executed at `node`: from now on no txn below it may execute there.
    pub fn sync_applied(&mut self, node: NodeId, command: &Command) {
        let id = command.txn.id;
        assert!(
            self.decided.contains_key(&id),
            "sync point {id} applied before it was decided"
        );
        if let Some(scope) = &command.txn.scope {
            self.cuts_applied
                .entry(node)
                .or_default()
                .push((id, scope.clone()));
            return;
        }
        let sync = self.synced.entry(node).or_default();
        *sync = (*sync).max(id);
    }

    /// The history cut of the change that made `epoch` is done: every replica applied an
    /// exclusive sync point of that epoch or later over `span`.
    pub fn cut_done(&mut self, epoch: u64, span: KeySpan) {
        self.cuts_done.push((epoch, span));
    }

    /// GC's premise: once every node applied sync points at or above S, every txn below S
    /// that executes anywhere was applied at every node.
    fn sync_points_cover_everything_below(&self, nodes: usize) {
        let all = (0..nodes as u16)
            .map(|n| self.synced.get(&NodeId(n)).copied().unwrap_or_default())
            .min()
            .unwrap_or_default();
        for id in self.decided.keys() {
            if *id >= all || id.is_sync_point() {
                continue;
            }
            for n in 0..nodes as u16 {
                assert!(
                    self.applied.contains(&(NodeId(n), *id)),
                    "{id} is below a sync point every node applied ({all}) yet node {n} never \
                     applied it"
                );
            }
        }
    }

    /// The end-of-run checks over the live nodes (every node, unless some were lost for
    /// good). Returns (transactions decided, of which on the fast path, invalidated).
    pub fn finish(&self, nodes: &[&holo_accord::Node]) -> (u64, u64, u64) {
        self.sync_points_cover_everything_below(self.nodes);
        self.writer_orders_are_prefixes(self.nodes);
        self.deps_cover_earlier_conflicts();
        self.strictly_serializable();
        self.every_replica_agrees(nodes);
        if self.placement.is_some() {
            self.applied_by_a_majority_of_replicas();
        }
        let fast = self
            .decided
            .iter()
            .filter(|(id, d)| !id.is_sync_point() && d.execute_at == id.timestamp())
            .count();
        let ordinary = self.decided.keys().filter(|id| !id.is_sync_point()).count();
        (ordinary as u64, fast as u64, self.invalidated.len() as u64)
    }

    /// After the heal, every replica knows the decision of everything it saw, the same
    /// decision as everyone else, and applied it.
    fn every_replica_agrees(&self, nodes: &[&holo_accord::Node]) {
        for node in nodes {
            for command in node.replica().commands() {
                let id = command.txn.id;
                match command.status {
                    Status::Applied => assert_eq!(self.decided[&id].execute_at, command.execute_at),
                    Status::Invalidated => assert!(self.invalidated.contains(&id)),
                    other => panic!("{:?}: {id} still {other:?} after the heal", node.id()),
                }
            }
        }
    }

    /// With partial replication, once quiescent: every txn decided to execute was applied
    /// by a majority of the replicas of each of its ranges (its decision was acknowledged
    /// by them, durably, before its coordination ended). No other node applies it: see
    /// [`Checker::recorded`], called at every apply.
    fn applied_by_a_majority_of_replicas(&self) {
        let placement = self.placement.as_ref().expect("checked by the caller");
        for (id, decision) in self.decided.iter().filter(|(id, _)| !id.is_sync_point()) {
            let keys = decision.keys.iter().map(|(k, _)| k);
            for range in placement.ranges_of(keys) {
                let applied = range
                    .replicas
                    .iter()
                    .filter(|n| self.applied.contains(&(**n, *id)))
                    .count();
                assert!(
                    applied >= range.slow_quorum(),
                    "{id} decided to execute, applied by {applied} of the replicas {:?} of its \
                     range {:?}",
                    range.replicas,
                    range.id
                );
            }
        }
    }

    /// With nodes lost for good: every txn a live node proposed that was decided to execute
    /// was applied at every live node (the live majority leaves none of its members behind).
    /// A txn whose coordinator was lost may be missing at a live node that was down when it
    /// was decided: it arrives as a dep of a later conflicting txn or sync point.
    pub fn applied_at_every_live_node(&self, live: &[NodeId]) {
        let proposed_live = |id: &&TxnId| live.contains(&id.coordinator());
        for id in self
            .decided
            .keys()
            .filter(|id| !id.is_sync_point())
            .filter(proposed_live)
        {
            for node in live {
                assert!(
                    self.applied.contains(&(*node, *id)),
                    "{id} decided to execute, yet the live node {node:?} never applied it"
                );
            }
        }
    }

    /// Invariant 4, across replicas: per key, every replica's writer order is a prefix of one.
    fn writer_orders_are_prefixes(&self, nodes: usize) {
        let mut by_key: HashMap<&Key, Vec<&Vec<TxnId>>> = HashMap::new();
        for ((_, key), applies) in &self.applies {
            by_key.entry(key).or_default().push(&applies.writers);
        }
        for (key, orders) in by_key {
            let longest = orders.iter().max_by_key(|o| o.len()).expect("at least one");
            for order in &orders {
                assert_eq!(
                    &longest[..order.len()],
                    &order[..],
                    "writers of {key:?} applied in different orders"
                );
            }
            assert!(orders.len() <= nodes);
        }
    }

    /// Invariant 3, transitive form: for every deps set decided for a txn x, every
    /// conflicting decided txn y with a smaller executeAt is in it, or is reached through a
    /// chain of deps that each execute before the one that lists them (replicas drop from
    /// their conflict index the txns an applied later write already waits for, so deps list
    /// the frontier, not the whole history). Intermediate txns count only the deps every one
    /// of their decided deps sets agrees on.
    /// The decided txns in executeAt order.
    fn execution_order(&self) -> Vec<(&Timestamp, &TxnId)> {
        let mut order: Vec<(&Timestamp, &TxnId)> = self
            .decided
            .iter()
            .filter(|(id, _)| !id.is_sync_point())
            .map(|(id, d)| (&d.execute_at, id))
            .collect();
        order.sort();
        order
    }

    fn deps_cover_earlier_conflicts(&self) {
        let order = self.execution_order();
        // reach[x]: every txn x waits for, directly or transitively.
        let mut reach: HashMap<TxnId, HashSet<TxnId>> = HashMap::new();
        for (at, id) in &order {
            let d = &self.decided[*id];
            let mut common: Option<HashSet<TxnId>> = None;
            for deps in &d.deps {
                let set: HashSet<TxnId> = deps.iter().copied().collect();
                common = Some(match common {
                    None => set,
                    Some(c) => c.intersection(&set).copied().collect(),
                });
            }
            let mut r = HashSet::new();
            for dep in common.unwrap_or_default() {
                if let Some(dd) = self.decided.get(&dep)
                    && dd.execute_at < **at
                {
                    r.insert(dep);
                    if let Some(rr) = reach.get(&dep) {
                        r.extend(rr.iter().copied());
                    }
                }
            }
            reach.insert(**id, r);
        }
        let mut by_key: HashMap<&Key, Vec<(TxnId, Access)>> = HashMap::new();
        for (id, d) in &self.decided {
            for (key, access) in &d.keys {
                by_key.entry(key).or_default().push((*id, *access));
            }
        }
        for users in by_key.values() {
            for (x, x_access) in users {
                for (y, y_access) in users {
                    let (dx, dy) = (&self.decided[x], &self.decided[y]);
                    if x != y && x_access.conflicts_with(*y_access) && dy.execute_at < dx.execute_at
                    {
                        for (deps, decided_at) in dx.deps.iter().zip(&dx.decided_at) {
                            let applied_everywhere_before = self
                                .applied_by
                                .get(y)
                                .and_then(|(_, at)| *at)
                                .is_some_and(|at| at <= *decided_at);
                            let covered = applied_everywhere_before
                                || deps.contains(y)
                                || deps.iter().any(|d| {
                                    self.decided
                                        .get(d)
                                        .is_some_and(|dd| dd.execute_at < dx.execute_at)
                                        && reach.get(d).is_some_and(|r| r.contains(y))
                                });
                            assert!(
                                covered,
                                "{x} (at {}) neither lists nor transitively waits for conflicting {y} (at {})",
                                dx.execute_at, dy.execute_at
                            );
                        }
                    }
                }
            }
        }
    }
}
