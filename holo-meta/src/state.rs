//! The replicated state machine: commands, their compare-and-swap, and what they leave.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use holo_accord::{NodeId, RangeId, Timestamp};

use crate::{ClusterMap, RangeDescriptor};

/// How many recent commands (and their outcomes) the state keeps for operators.
pub const LAST_OUTCOMES_MAX: usize = 16;

/// How many successor links [`MetaState::successor`] follows at most (a chain of merges).
const SUCCESSOR_CHAIN_MAX: usize = 1 << 16;

/// A change to the cluster map, proposed as the operation of one meta-range transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// Acquire the controller lease with the next term (once the current one has expired,
    /// or when `holder` holds it), or renew it with the current term (by its holder), for
    /// `duration_us` from the command's executeAt.
    Lease {
        holder: NodeId,
        term: u64,
        duration_us: u64,
    },
    /// Split `range` (expected at generation `expect`) at key `at`: the range keeps
    /// `[start, at)` and a new range takes `[at, end)`.
    Split {
        term: u64,
        range: RangeId,
        expect: u64,
        at: Bytes,
    },
    /// Merge `right` into its left neighbour `left` (expected at generations `expect`);
    /// both must have the same replicas.
    Merge {
        term: u64,
        left: RangeId,
        right: RangeId,
        expect: (u64, u64),
    },
    /// The history of operation `operation` is cut (its exclusive sync point applied): drop
    /// it, and the history entries nothing needs any more.
    Finish { term: u64, operation: u64 },
    /// FLUSHALL: a new epoch in which every key written in an earlier one is gone (see
    /// [`MetaState::flush_floor`]). Any node may propose it (no lease term): it is an
    /// operation like a split over every range, cut and finished by the lease holder, and
    /// refused while another operation is in flight.
    Flush,
}

impl MetaCommand {
    /// The lease term it was issued under.
    pub fn term(&self) -> u64 {
        match self {
            MetaCommand::Lease { term, .. }
            | MetaCommand::Split { term, .. }
            | MetaCommand::Merge { term, .. }
            | MetaCommand::Finish { term, .. } => *term,
            MetaCommand::Flush => 0,
        }
    }
}

/// What applying one command did; the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command took effect; the map is now at `epoch`.
    Applied { epoch: u64 },
    /// Its expectations did not hold: nothing changed.
    Rejected(Rejection),
}

/// Why a command was a no-op.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("lease term {given} does not fit: the lease is at term {current}")]
    StaleTerm { given: u64, current: u64 },
    #[error("the lease of term {term} expired")]
    LeaseExpired { term: u64 },
    #[error("the lease is held by node {} until {expires}", holder.0)]
    LeaseHeld { holder: NodeId, expires: u64 },
    #[error("range {} does not exist", .0.0)]
    NoSuchRange(RangeId),
    #[error("range {} is at generation {current}, not {expected}", range.0)]
    Generation {
        range: RangeId,
        expected: u64,
        current: u64,
    },
    #[error("the split key is not strictly inside range {}", .0.0)]
    SplitKeyOutside(RangeId),
    #[error("range {} does not end where range {} starts", left.0, right.0)]
    NotAdjacent { left: RangeId, right: RangeId },
    #[error("ranges {} and {} have different replicas", left.0, right.0)]
    ReplicasDiffer { left: RangeId, right: RangeId },
    #[error("range {} has operation {operation} in flight", range.0)]
    Busy { range: RangeId, operation: u64 },
    #[error("operation {0} is not in flight")]
    NoSuchOperation(u64),
}

/// The controller lease: one driver of operations at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub holder: NodeId,
    pub term: u64,
    /// In hybrid-logical-clock microseconds (executeAt's `hlc`).
    pub expires: u64,
}

/// What an operation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Split {
        left: RangeId,
        right: RangeId,
        at: Bytes,
    },
    Merge {
        into: RangeId,
        retired: RangeId,
    },
    /// Every range of the epoch it left.
    Flush {
        ranges: Vec<RangeId>,
    },
}

impl OpKind {
    /// The ranges of the current map it involves.
    pub fn ranges(&self) -> Vec<RangeId> {
        match self {
            OpKind::Split { left, right, .. } => vec![*left, *right],
            OpKind::Merge { into, .. } => vec![*into],
            OpKind::Flush { ranges } => ranges.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Split { .. } => "split",
            OpKind::Merge { .. } => "merge",
            OpKind::Flush { .. } => "flush",
        }
    }
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The new descriptors are committed; an exclusive sync point over its ranges must
    /// apply before the history of the epoch it left can go.
    Cutting,
}

impl Phase {
    /// Every phase, for reports that list each one.
    pub const ALL: &'static [Phase] = &[Phase::Cutting];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Cutting => "cutting",
        }
    }
}

/// A split or merge in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub id: u64,
    pub kind: OpKind,
    /// The epoch it created (its ranges changed between `epoch - 1` and `epoch`).
    pub epoch: u64,
    /// executeAt's hlc when it was committed.
    pub started_us: u64,
    pub phase: Phase,
}

/// One applied command, kept for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: Timestamp,
    pub command: MetaCommand,
    pub outcome: Outcome,
    /// For a `Finish`: what finished and how long it took from commit, in microseconds.
    pub finished: Option<(&'static str, u64)>,
}

/// The whole replicated state of the meta range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaState {
    pub(crate) map: ClusterMap,
    pub(crate) next_range_id: u64,
    pub(crate) next_operation_id: u64,
    pub(crate) operations: Vec<Operation>,
    pub(crate) lease: Option<Lease>,
    /// Descriptors of earlier epochs still needed, by epoch.
    pub(crate) history: BTreeMap<u64, Vec<RangeDescriptor>>,
    /// Retired (merged-away) ranges and the range that took their keys.
    pub(crate) retired: BTreeMap<RangeId, RangeId>,
    pub(crate) recent: VecDeque<Record>,
    pub(crate) splits: u64,
    pub(crate) merges: u64,
    /// The executeAt of the last command applied.
    pub(crate) applied_at: Timestamp,
    /// The split points the cluster was created with (checked against node files).
    pub(crate) initial_split_points: Vec<Bytes>,
    /// Epochs created by FLUSHALL, ascending, as far back as a kept epoch needs.
    pub(crate) flushes: Vec<u64>,
}

/// How a node's configuration disagrees with the map the cluster persisted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMismatch {
    #[error(
        "the node file lists members {configured:?} but the persisted cluster map has {persisted:?}"
    )]
    Members {
        configured: Vec<String>,
        persisted: Vec<String>,
    },
    #[error(
        "the node file's ranges.split_points {configured:?} differ from the {persisted:?} the cluster was created with (splits and merges since then change the ranges, not this list)"
    )]
    SplitPoints {
        configured: Vec<String>,
        persisted: Vec<String>,
    },
}

impl MetaState {
    /// The state a new cluster starts with.
    pub fn new(map: ClusterMap) -> MetaState {
        let initial_split_points = map.split_points();
        let next_range_id = map.ranges.iter().map(|r| r.id.0).max().unwrap_or(0) + 1;
        MetaState {
            map,
            next_range_id,
            next_operation_id: 1,
            operations: Vec::new(),
            lease: None,
            history: BTreeMap::new(),
            retired: BTreeMap::new(),
            recent: VecDeque::new(),
            splits: 0,
            merges: 0,
            applied_at: Timestamp::ZERO,
            initial_split_points,
            flushes: Vec::new(),
        }
    }

    /// Whether a node file's members and split points are the ones this cluster was
    /// created with (members compared by id and both addresses).
    ///
    /// # Errors
    /// The first disagreement, naming both sides.
    pub fn check_config(&self, configured: &ClusterMap) -> Result<(), ConfigMismatch> {
        let show_members = |m: &[crate::Member]| -> Vec<String> {
            m.iter()
                .map(|m| format!("{} resp {} grpc {}", m.id.0, m.resp_addr, m.grpc_addr))
                .collect()
        };
        if configured.members != self.map.members {
            return Err(ConfigMismatch::Members {
                configured: show_members(&configured.members),
                persisted: show_members(&self.map.members),
            });
        }
        let configured_points = configured.split_points();
        if configured_points != self.initial_split_points {
            let show = |p: &[Bytes]| -> Vec<String> {
                p.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            };
            return Err(ConfigMismatch::SplitPoints {
                configured: show(&configured_points),
                persisted: show(&self.initial_split_points),
            });
        }
        Ok(())
    }

    /// The current map.
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }

    pub fn epoch(&self) -> u64 {
        self.map.epoch
    }

    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The keys whose ranges `op` changed: its ranges' span in the epoch before it (kept in
    /// the history while it is in flight), ending at the reserved key space where the last
    /// user range ends (the meta range is never part of an operation). Its history cut is
    /// an exclusive sync point over them.
    ///
    /// # Panics
    /// If `op` is not in flight here (its epoch's predecessor is no longer kept).
    pub fn operation_span(&self, op: &Operation) -> holo_accord::KeySpan {
        let before = self
            .ranges_at(op.epoch - 1)
            .expect("an operation in flight keeps the epoch before it");
        let ids = match &op.kind {
            OpKind::Split { left, .. } => vec![*left],
            OpKind::Merge { into, retired } => vec![*into, *retired],
            OpKind::Flush { ranges } => ranges.clone(),
        };
        let changed: Vec<&RangeDescriptor> =
            before.iter().filter(|r| ids.contains(&r.id)).collect();
        let first = changed.first().expect("its ranges existed before it");
        let last = changed.last().expect("its ranges existed before it");
        let reserved = || Bytes::from_static(&crate::RESERVED_PREFIX);
        holo_accord::KeySpan {
            start: first.start.clone(),
            end: Some(last.end.clone().unwrap_or_else(reserved)),
        }
    }

    /// Recent commands and their outcomes, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Record> {
        self.recent.iter()
    }

    /// Splits and merges committed since the cluster started.
    pub fn counts(&self) -> (u64, u64) {
        (self.splits, self.merges)
    }

    /// The executeAt of the last command applied ([`Timestamp::ZERO`] before any).
    pub fn applied_at(&self) -> Timestamp {
        self.applied_at
    }

    /// The epochs whose descriptors are still kept, oldest first.
    pub fn history(&self) -> impl Iterator<Item = (u64, &[RangeDescriptor])> {
        self.history.iter().map(|(e, r)| (*e, r.as_slice()))
    }

    /// The topologies a node keeps: every epoch in the history, then the current one,
    /// oldest first (what a restarting Accord node is built with).
    pub fn topologies(&self) -> Vec<holo_accord::Topology> {
        self.history
            .iter()
            .map(|(epoch, ranges)| self.map.topology_of(*epoch, ranges))
            .chain([self.map.topology()])
            .collect()
    }

    /// The oldest epoch whose descriptors are kept: earlier epochs can be retired.
    pub fn oldest_epoch(&self) -> u64 {
        self.history
            .keys()
            .next()
            .copied()
            .unwrap_or(self.map.epoch)
    }

    /// The descriptors of `epoch`: the current ones, or a kept history entry. `None` for
    /// an epoch dropped from the history or not reached yet.
    pub fn ranges_at(&self, epoch: u64) -> Option<&[RangeDescriptor]> {
        if epoch == self.map.epoch {
            return Some(&self.map.ranges);
        }
        self.history.get(&epoch).map(Vec::as_slice)
    }

    /// The range that holds `key` in `epoch`, by that epoch's map when it is kept;
    /// otherwise (a record older than every kept epoch) by the oldest kept map. Every
    /// operation between the record's epoch and that one has finished: its history cut
    /// applied everywhere, so a txn of the record's epoch that touches a range it changed
    /// has applied everywhere (a replayed one is skipped by version), and one still in
    /// flight touches only ranges that no finished operation changed, which the oldest
    /// kept map holds as they were in its own epoch. Not the current map: an operation
    /// still in flight may have changed them since, and replicas that apply the txn before
    /// and after the older epoch is dropped must count it in the same range.
    pub fn range_at(&self, epoch: u64, key: &[u8]) -> RangeId {
        self.descriptor_at(epoch, key).id
    }

    /// The descriptor [`MetaState::range_at`] names.
    pub fn descriptor_at(&self, epoch: u64, key: &[u8]) -> &RangeDescriptor {
        let ranges = self.ranges_resolving(epoch);
        let i = ranges.partition_point(|r| r.start.as_ref() <= key);
        &ranges[i - 1]
    }

    /// The descriptors a record of `epoch` resolves by: that epoch's when kept, else the
    /// oldest kept ones (see [`MetaState::range_at`]).
    pub fn ranges_resolving(&self, epoch: u64) -> &[RangeDescriptor] {
        if epoch >= self.map.epoch {
            return &self.map.ranges;
        }
        self.ranges_at(epoch)
            .or_else(|| self.history.values().next().map(Vec::as_slice))
            .unwrap_or(&self.map.ranges)
    }

    /// The live range that took over `range`'s keys: itself if live, its successor if it
    /// was merged away (following merges of merges). `None` if it never existed, or was
    /// merged away in an epoch no longer kept.
    pub fn successor(&self, range: RangeId) -> Option<RangeId> {
        let mut at = range;
        for _ in 0..SUCCESSOR_CHAIN_MAX {
            if self.map.range(at).is_some() {
                return Some(at);
            }
            at = *self.retired.get(&at)?;
        }
        None
    }

    /// Applies one command at its transaction's executeAt `at` (the only time it sees).
    /// Deterministic: the same state, command and `at` give the same result everywhere.
    pub fn apply(&mut self, command: &MetaCommand, at: Timestamp) -> Outcome {
        self.applied_at = self.applied_at.max(at);
        let now = at.hlc;
        let lease_before = self.lease;
        let (outcome, finished) = match self.check_and_apply(command, now) {
            Ok(finished) => (
                Outcome::Applied {
                    epoch: self.map.epoch,
                },
                finished,
            ),
            Err(rejection) => (Outcome::Rejected(rejection), None),
        };
        // A renewal (the same holder keeping its term) is routine: recorded, it would push
        // the operations out of the few records kept within seconds.
        let renewal = matches!(outcome, Outcome::Applied { .. })
            && matches!(command, MetaCommand::Lease { .. })
            && lease_before.is_some_and(|l| self.lease.is_some_and(|n| n.term == l.term));
        if renewal {
            return outcome;
        }
        if self.recent.len() == LAST_OUTCOMES_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(Record {
            at,
            command: command.clone(),
            outcome: outcome.clone(),
            finished,
        });
        outcome
    }

    fn check_and_apply(
        &mut self,
        command: &MetaCommand,
        now: u64,
    ) -> Result<Option<(&'static str, u64)>, Rejection> {
        match command {
            MetaCommand::Lease {
                holder,
                term,
                duration_us,
            } => self.take_lease(*holder, *term, now, *duration_us),
            MetaCommand::Split {
                term,
                range,
                expect,
                at,
            } => {
                self.check_lease(*term, now)?;
                self.split(*range, *expect, at, now)
            }
            MetaCommand::Merge {
                term,
                left,
                right,
                expect,
            } => {
                self.check_lease(*term, now)?;
                self.merge(*left, *right, *expect, now)
            }
            MetaCommand::Finish { term, operation } => {
                self.check_lease(*term, now)?;
                return self.finish(*operation, now).map(Some);
            }
            MetaCommand::Flush => self.flush(now),
        }
        .map(|()| None)
    }

    fn take_lease(
        &mut self,
        holder: NodeId,
        term: u64,
        now: u64,
        duration_us: u64,
    ) -> Result<(), Rejection> {
        let current = self.lease.map_or(0, |l| l.term);
        match self.lease {
            None if term == 1 => {}
            // Renewal: the holder keeps its term.
            Some(l) if term == l.term && holder == l.holder => {}
            // A new term: from the holder itself, or by anyone once the lease expired.
            Some(l) if term == l.term + 1 && (holder == l.holder || now >= l.expires) => {}
            // Another node took this term first (nodes race for a lease that ran out).
            Some(l) if term == l.term && now < l.expires => {
                return Err(Rejection::LeaseHeld {
                    holder: l.holder,
                    expires: l.expires,
                });
            }
            Some(l) if term == l.term + 1 => {
                return Err(Rejection::LeaseHeld {
                    holder: l.holder,
                    expires: l.expires,
                });
            }
            _ => {
                return Err(Rejection::StaleTerm {
                    given: term,
                    current,
                });
            }
        }
        self.lease = Some(Lease {
            holder,
            term,
            expires: now.saturating_add(duration_us),
        });
        Ok(())
    }

    fn check_lease(&self, term: u64, now: u64) -> Result<(), Rejection> {
        let current = self.lease.map_or(0, |l| l.term);
        match self.lease {
            Some(l) if l.term == term && now < l.expires => Ok(()),
            Some(l) if l.term == term => Err(Rejection::LeaseExpired { term }),
            _ => Err(Rejection::StaleTerm {
                given: term,
                current,
            }),
        }
    }

    fn busy(&self, range: RangeId) -> Result<(), Rejection> {
        match self
            .operations
            .iter()
            .find(|op| op.kind.ranges().contains(&range))
        {
            Some(op) => Err(Rejection::Busy {
                range,
                operation: op.id,
            }),
            None => Ok(()),
        }
    }

    fn current(&self, range: RangeId, expected: u64) -> Result<usize, Rejection> {
        let i = self
            .map
            .ranges
            .iter()
            .position(|r| r.id == range)
            .ok_or(Rejection::NoSuchRange(range))?;
        let current = self.map.ranges[i].generation;
        if current != expected {
            return Err(Rejection::Generation {
                range,
                expected,
                current,
            });
        }
        self.busy(range)?;
        Ok(i)
    }

    /// Starts a new epoch: the current descriptors go to the history.
    fn next_epoch(&mut self) {
        self.history.insert(self.map.epoch, self.map.ranges.clone());
        self.map.epoch += 1;
    }

    fn record_operation(&mut self, kind: OpKind, now: u64) {
        self.operations.push(Operation {
            id: self.next_operation_id,
            kind,
            epoch: self.map.epoch,
            started_us: now,
            phase: Phase::Cutting,
        });
        self.next_operation_id += 1;
    }

    fn split(
        &mut self,
        range: RangeId,
        expect: u64,
        at: &Bytes,
        now: u64,
    ) -> Result<(), Rejection> {
        let i = self.current(range, expect)?;
        if !self.map.ranges[i].splits_at(at) {
            return Err(Rejection::SplitKeyOutside(range));
        }
        self.next_epoch();
        let right = RangeId(self.next_range_id);
        self.next_range_id += 1;
        let left = &mut self.map.ranges[i];
        let new = RangeDescriptor {
            id: right,
            start: at.clone(),
            end: left.end.replace(at.clone()),
            replicas: left.replicas.clone(),
            generation: 1,
            parent: Some((range, expect)),
        };
        left.generation += 1;
        self.map.ranges.insert(i + 1, new);
        self.splits += 1;
        self.record_operation(
            OpKind::Split {
                left: range,
                right,
                at: at.clone(),
            },
            now,
        );
        Ok(())
    }

    fn merge(
        &mut self,
        left: RangeId,
        right: RangeId,
        (expect_left, expect_right): (u64, u64),
        now: u64,
    ) -> Result<(), Rejection> {
        let l = self.current(left, expect_left)?;
        let r = self.current(right, expect_right)?;
        if r != l + 1 {
            return Err(Rejection::NotAdjacent { left, right });
        }
        let mut left_replicas = self.map.ranges[l].replicas.clone();
        let mut right_replicas = self.map.ranges[r].replicas.clone();
        left_replicas.sort_unstable();
        right_replicas.sort_unstable();
        if left_replicas != right_replicas {
            return Err(Rejection::ReplicasDiffer { left, right });
        }
        self.next_epoch();
        let gone = self.map.ranges.remove(r);
        let into = &mut self.map.ranges[l];
        into.end = gone.end;
        into.generation = expect_left.max(expect_right) + 1;
        self.retired.insert(right, left);
        self.merges += 1;
        self.record_operation(
            OpKind::Merge {
                into: left,
                retired: right,
            },
            now,
        );
        Ok(())
    }

    fn flush(&mut self, now: u64) -> Result<(), Rejection> {
        if let Some(op) = self.operations.first() {
            let range = op.kind.ranges().first().copied().unwrap_or(RangeId(0));
            return Err(Rejection::Busy {
                range,
                operation: op.id,
            });
        }
        let ranges = self.map.ranges.iter().map(|r| r.id).collect();
        self.next_epoch();
        self.flushes.push(self.map.epoch);
        self.record_operation(OpKind::Flush { ranges }, now);
        Ok(())
    }

    /// The epoch of the last FLUSHALL at or before `epoch` (0 if none): a transaction of
    /// `epoch` sees no value written in an epoch below it. Transactions of earlier epochs
    /// are ordered before the flush and still see those values; the flush's history cut
    /// (like a split's) ends them before its operation finishes.
    pub fn flush_floor(&self, epoch: u64) -> u64 {
        self.flushes
            .iter()
            .rev()
            .find(|f| **f <= epoch)
            .copied()
            .unwrap_or(0)
    }

    fn finish(&mut self, operation: u64, now: u64) -> Result<(&'static str, u64), Rejection> {
        let i = self
            .operations
            .iter()
            .position(|op| op.id == operation)
            .ok_or(Rejection::NoSuchOperation(operation))?;
        let op = self.operations.remove(i);
        // An operation that created epoch e needs the descriptors of e - 1 onwards: keep
        // every entry from the oldest such epoch of the operations still in flight.
        let keep_from = self
            .operations
            .iter()
            .map(|op| op.epoch - 1)
            .min()
            .unwrap_or(self.map.epoch);
        self.history = self.history.split_off(&keep_from);
        // A retired range's successor is needed while a kept epoch still names it; after
        // that no record resolves to it, and the state must not grow with every merge.
        let named: std::collections::BTreeSet<RangeId> =
            self.history.values().flatten().map(|r| r.id).collect();
        self.retired.retain(|id, _| named.contains(id));
        // A flush below the oldest kept epoch matters only as the floor of that epoch.
        let oldest = self.oldest_epoch();
        let floor = self.flush_floor(oldest);
        self.flushes.retain(|f| *f > oldest || *f == floor);
        Ok((op.kind.name(), now.saturating_sub(op.started_us)))
    }

    /// Checks the state's invariants (the map's, and that operations, the history and the
    /// retired ranges agree with it).
    ///
    /// # Panics
    /// When one does not hold.
    pub fn validate(&self) {
        self.map.validate();
        for r in &self.map.ranges {
            assert!(
                r.id.0 < self.next_range_id,
                "range ids are issued in order: {r:?}"
            );
            assert!(
                !self.retired.contains_key(&r.id),
                "a live range is not retired: {r:?}"
            );
        }
        for op in &self.operations {
            assert!(op.epoch >= 2 && op.epoch <= self.map.epoch, "{op:?}");
            assert!(op.id < self.next_operation_id, "{op:?}");
            for range in op.kind.ranges() {
                assert!(self.map.range(range).is_some(), "{op:?} names a live range");
            }
            assert!(
                self.history.contains_key(&(op.epoch - 1)),
                "the epoch {op:?} left is kept"
            );
        }
        assert!(
            self.flushes.windows(2).all(|w| w[0] < w[1])
                && self.flushes.iter().all(|f| *f <= self.map.epoch),
            "flush epochs ascend and are not ahead: {:?}",
            self.flushes
        );
        for (epoch, ranges) in &self.history {
            assert!(*epoch < self.map.epoch, "history is of earlier epochs");
            assert!(!ranges.is_empty());
        }
        for (gone, successor) in &self.retired {
            assert!(
                self.successor(*successor).is_some(),
                "a retired range's successor exists: {successor:?}"
            );
            assert!(
                self.history.values().flatten().any(|r| r.id == *gone),
                "a retired range is kept only while a kept epoch names it: {gone:?}"
            );
        }
    }
}
