//! The replica side: the state of every transaction this node has witnessed, the per-key
//! conflict index, the PreAccept / Accept / Stable handlers and execution order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ids::{Ballot, Clock, Timestamp, TxnId};
use crate::txn::{Access, Deps, Key, Txn};

/// How far a transaction has progressed at this replica. Ordered: a status never goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    PreAccepted,
    Accepted,
    /// Committed with final executeAt and deps (Accord's Stable).
    Stable,
    Applied,
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

    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// PreAccept: witness `txn` at t0 if nothing conflicting has a timestamp at or above it,
    /// else at a fresh timestamp above every conflict. Deps: conflicting txns below t0.
    pub fn pre_accept(
        &mut self,
        txn: &Txn,
        clock: &mut Clock,
    ) -> Handled<Option<(Timestamp, Deps)>> {
        if let Some(existing) = self.commands.get(&txn.id) {
            // A duplicate: answer as before while still PreAccepted; later, stay silent.
            let reply = (existing.status == Status::PreAccepted
                && existing.promised == Ballot::ZERO)
                .then(|| (existing.execute_at, existing.deps.clone()));
            return Handled {
                changed: None,
                reply,
            };
        }
        let t0 = txn.id.timestamp();
        let max_conflict = self.max_conflict(txn);
        let witnessed = if t0 > max_conflict {
            t0
        } else {
            clock.unique_now(txn.id.kind(), max_conflict)
        };
        let deps = self.conflicts_below(txn, t0);
        let command = Command {
            txn: txn.clone(),
            status: Status::PreAccepted,
            execute_at: witnessed,
            deps: deps.clone(),
            promised: Ballot::ZERO,
            accepted: Ballot::ZERO,
        };
        self.insert(command.clone());
        Handled {
            changed: Some(command),
            reply: Some((witnessed, deps)),
        }
    }

    /// Accept: record the proposed executeAt under `ballot`; deps are recomputed as every
    /// conflicting txn below executeAt (PreAccept's deps miss those started between t0 and t).
    pub fn accept(
        &mut self,
        txn: &Txn,
        ballot: Ballot,
        execute_at: Timestamp,
    ) -> Handled<Result<Deps, Ballot>> {
        if let Some(existing) = self.commands.get(&txn.id) {
            if existing.promised > ballot {
                return Handled {
                    changed: None,
                    reply: Err(existing.promised),
                };
            }
            if existing.status >= Status::Stable {
                return Handled {
                    changed: None,
                    reply: Ok(existing.deps.clone()),
                };
            }
        }
        let deps = self.conflicts_below(txn, execute_at);
        let command = Command {
            txn: txn.clone(),
            status: Status::Accepted,
            execute_at,
            deps: deps.clone(),
            promised: ballot,
            accepted: ballot,
        };
        self.insert(command.clone());
        Handled {
            changed: Some(command),
            reply: Ok(deps),
        }
    }

    /// Stable: the decision. Returns the new state if it changed.
    pub fn stable(&mut self, txn: &Txn, execute_at: Timestamp, deps: &Deps) -> Option<Command> {
        let previous = self.commands.get(&txn.id);
        if previous.is_some_and(|c| c.status >= Status::Stable) {
            return None;
        }
        let (promised, accepted) =
            previous.map_or((Ballot::ZERO, Ballot::ZERO), |c| (c.promised, c.accepted));
        let command = Command {
            txn: txn.clone(),
            status: Status::Stable,
            execute_at,
            deps: deps.clone(),
            promised,
            accepted,
        };
        self.insert(command.clone());
        self.waiting.insert(txn.id);
        Some(command)
    }

    /// Stable transactions whose deps allow execution now, in executeAt order, marked
    /// Applied. The host must apply them in the returned order.
    pub fn take_ready(&mut self) -> Vec<Command> {
        let mut applied = Vec::new();
        loop {
            let mut ready: Vec<(Timestamp, TxnId)> = self
                .waiting
                .iter()
                .filter(|id| self.is_ready(id))
                .map(|id| (self.commands[id].execute_at, *id))
                .collect();
            if ready.is_empty() {
                return applied;
            }
            ready.sort();
            for (_, id) in ready {
                self.waiting.remove(&id);
                let command = self.commands.get_mut(&id).expect("waiting txns exist");
                command.status = Status::Applied;
                applied.push(command.clone());
            }
        }
    }

    /// A Stable txn may execute once every dep is Applied, or is Stable with a later
    /// executeAt (it will execute after this one). An unknown or undecided dep blocks.
    fn is_ready(&self, id: &TxnId) -> bool {
        let command = &self.commands[id];
        command.deps.iter().all(|dep| match self.commands.get(dep) {
            Some(d) if d.status == Status::Applied => true,
            Some(d) if d.status == Status::Stable => d.execute_at > command.execute_at,
            _ => false,
        })
    }

    fn insert(&mut self, command: Command) {
        let id = command.txn.id;
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

    /// The highest timestamp of anything that conflicts with `txn` on any of its keys.
    fn max_conflict(&self, txn: &Txn) -> Timestamp {
        txn.keys
            .iter()
            .filter_map(|(key, access)| {
                let state = self.keys.get(key)?;
                Some(match access {
                    Access::Write => state.max_write.max(state.max_read),
                    Access::Read => state.max_write,
                })
            })
            .max()
            .unwrap_or(Timestamp::ZERO)
    }

    /// Conflicting transactions with a TxnId below `bound`, other than `txn` itself.
    fn conflicts_below(&self, txn: &Txn, bound: Timestamp) -> Deps {
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

    /// Checks the replica's internal invariants; tests call it after every step.
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn validate(&self) {
        for (id, command) in &self.commands {
            assert_eq!(*id, command.txn.id, "commands are keyed by their id");
            assert!(
                command.execute_at >= id.timestamp(),
                "{id}: executeAt below t0"
            );
            assert!(!command.deps.contains(id), "{id} depends on itself");
            assert_eq!(
                self.waiting.contains(id),
                command.status == Status::Stable,
                "{id}: waiting set out of date"
            );
            for (key, access) in &command.txn.keys {
                assert_eq!(
                    self.keys[key].txns.get(id),
                    Some(access),
                    "{id}: missing from the index of its key"
                );
            }
        }
    }
}
