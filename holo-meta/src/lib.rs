//! HoloStore's cluster state machine: members, range descriptors with generations, the
//! operations that change them (split, merge), the controller lease and the history that
//! lets every node resolve a transaction's ranges by the map of its own epoch.
//!
//! The state is [`MetaState`]; it changes only through [`MetaState::apply`], which takes
//! one [`MetaCommand`] and the executeAt its transaction was given and is a pure function
//! of the two: no clock, no randomness, no I/O. Every replica of the meta range applies the
//! same commands in the same (executeAt) order, so every replica — and every WAL replay —
//! reaches the same state, byte for byte ([`MetaState::encode`], [`MetaState::hash`]).
//!
//! # Compare-and-swap
//! A command names what it expects: the controller's lease term, and the generation of
//! every range it changes. A command whose expectations do not hold is a *recorded no-op*
//! ([`Outcome::Rejected`]): nothing changes but the last outcome, identically everywhere.
//! This is what makes a stale controller harmless and defeats the ABA case (merge two
//! ranges, then split the result at the same key: the generations differ, so a command
//! prepared against the first pair cannot land on the second).
//!
//! # Epochs and generations
//! Every change to the descriptors increments `epoch` by one and the generation of every
//! descriptor it touches; a new range starts at generation 1 with its parent recorded, and
//! range ids are never reused. Lease changes do not change the map, so they leave the
//! epoch alone. The descriptors of earlier epochs stay in [`MetaState::history`] while an
//! operation that left them is still cutting their history (see below), so a replica can
//! resolve a record of epoch `e` by the map of epoch `e`; a retired range's successor is in
//! [`MetaState::successor`].
//!
//! # Operations
//! A split or merge commits its new descriptors in one command and records an
//! [`Operation`] in phase [`Phase::Cutting`]: the controller then proposes an exclusive sync
//! point of the new epoch over the operation's span ([`MetaState::operation_span`]), waits
//! until it is applied on every replica, and commits
//! [`MetaCommand::Finish`], which drops the operation and the history entries no operation
//! needs any more. A controller that dies in between leaves the operation in the map, and
//! the next lease holder resumes it. No other operation may start on a range with one in
//! flight.
//!
//! # The lease
//! `{holder, term, expires}`, with time taken from executeAt's hybrid logical clock
//! (microseconds). A node acquires the lease with the next term once it has expired (or
//! re-acquires its own), and renews it with the same term before it expires. Operations
//! carry the term they were issued under and are rejected unless it is the current term and
//! the lease is live at their executeAt. The lease only keeps one driver at a time; safety
//! comes from the compare-and-swap.
//!
//! # Tests
//! Unit tests for each command and rejection, and a randomized run of commands checking
//! [`MetaState::validate`] and the encoding after every one. Planted bugs they catch: a
//! split or merge that skips the generation check (the ABA test), and commands accepted
//! under any lease term or after the lease expired (the lease test). That a replica
//! resolves each transaction by its own epoch's map is checked on real clusters in
//! holo-node's tests (the replicas' applied counts per range must agree).

use bytes::Bytes;
use holo_accord::{NodeId, RangeId, RangeInfo, Topology};

mod codec;
pub mod placement;
mod state;

pub use codec::DecodeError;
pub use state::{
    ConfigMismatch, LAST_OUTCOMES_MAX, Lease, MetaCommand, MetaState, OpKind, Operation, Outcome,
    Phase, Record, Rejection,
};

/// User keys may not start with this: keys from here to the end of the key space belong to
/// the meta range (as FoundationDB keeps `\xff` for its system keys, but eight bytes, so
/// no ordinary binary key is refused in practice).
pub const RESERVED_PREFIX: [u8; 8] = [0xff; 8];

/// The key of the meta range's one record: the cluster map (inside the reserved space).
pub const META_KEY: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xffmeta";

/// The id of the meta range (user ranges count from 1).
pub const META_RANGE: RangeId = RangeId(0);

/// Whether `key` lies in the reserved space (clients may not use it).
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(&RESERVED_PREFIX)
}

/// A node of the cluster and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub resp_addr: String,
    pub grpc_addr: String,
}

/// Keys `start..end` (`end: None`: to the end of the key space), replicated on `replicas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDescriptor {
    pub id: RangeId,
    pub start: Bytes,
    pub end: Option<Bytes>,
    pub replicas: Vec<NodeId>,
    /// Bumped by every change to this descriptor; a new range starts at 1.
    pub generation: u64,
    /// The range (and its generation) this one was split from, if any.
    pub parent: Option<(RangeId, u64)>,
}

impl RangeDescriptor {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|end| key < &end[..])
    }

    /// Whether `key` lies strictly inside (and below the reserved space), so a split there
    /// leaves both halves non-empty.
    pub fn splits_at(&self, key: &[u8]) -> bool {
        key > &self.start[..]
            && self.end.as_ref().is_none_or(|end| key < &end[..])
            && !is_reserved(key)
    }
}

/// Why a cluster map cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    #[error("the cluster has no members")]
    NoMembers,
    #[error("member id {0} appears twice")]
    DuplicateMember(u16),
    #[error(
        "split points must be strictly increasing, non-empty and below the reserved prefix (eight 0xff bytes): {0:?} is not"
    )]
    BadSplitPoint(String),
}

/// The map of one epoch: members and the ranges that partition the key space, sorted by
/// start key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    epoch: u64,
    members: Vec<Member>,
    /// The nodes that replicate the meta range.
    meta_replicas: Vec<NodeId>,
    ranges: Vec<RangeDescriptor>,
}

impl ClusterMap {
    /// The map a new cluster starts with, at epoch 1: ranges cut at `split_points` (so `n`
    /// points give `n + 1` ranges, ids 1, 2, ...), each replicated on every member,
    /// generation 1; the meta range on every member too.
    ///
    /// # Errors
    /// No members, a member id twice, or split points not strictly increasing.
    pub fn initial(mut members: Vec<Member>, split_points: &[Bytes]) -> Result<Self, MetaError> {
        if members.is_empty() {
            return Err(MetaError::NoMembers);
        }
        members.sort_by_key(|m| m.id);
        if let Some(w) = members.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(MetaError::DuplicateMember(w[0].id.0));
        }
        let mut previous: Option<&Bytes> = None;
        for point in split_points {
            if point.is_empty() || is_reserved(point) || previous.is_some_and(|p| p >= point) {
                return Err(MetaError::BadSplitPoint(
                    String::from_utf8_lossy(point).into_owned(),
                ));
            }
            previous = Some(point);
        }
        let replicas: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        let ranges = Self::initial_ranges(split_points, &replicas);
        Ok(ClusterMap {
            epoch: 1,
            meta_replicas: replicas,
            members,
            ranges,
        })
    }

    fn initial_ranges(split_points: &[Bytes], replicas: &[NodeId]) -> Vec<RangeDescriptor> {
        let starts = std::iter::once(Bytes::new()).chain(split_points.iter().cloned());
        let ends = split_points.iter().cloned().map(Some).chain([None]);
        starts
            .zip(ends)
            .enumerate()
            .map(|(i, (start, end))| RangeDescriptor {
                id: RangeId(i as u64 + 1),
                start,
                end,
                replicas: replicas.to_vec(),
                generation: 1,
                parent: None,
            })
            .collect()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn ranges(&self) -> &[RangeDescriptor] {
        &self.ranges
    }

    /// The nodes that replicate the meta range.
    pub fn meta_replicas(&self) -> &[NodeId] {
        &self.meta_replicas
    }

    pub fn range(&self, id: RangeId) -> Option<&RangeDescriptor> {
        self.ranges.iter().find(|r| r.id == id)
    }

    /// The range holding `key`.
    pub fn range_of(&self, key: &[u8]) -> &RangeDescriptor {
        let i = self.ranges.partition_point(|r| r.start.as_ref() <= key);
        &self.ranges[i - 1]
    }

    /// The split points: every range's start but the first.
    pub fn split_points(&self) -> Vec<Bytes> {
        self.ranges
            .iter()
            .skip(1)
            .map(|r| r.start.clone())
            .collect()
    }

    /// The topology holo-accord runs on: the user ranges, the last one ending where the
    /// reserved space starts, and the meta range over the reserved space.
    pub fn topology(&self) -> Topology {
        self.topology_of(self.epoch, &self.ranges)
    }

    /// The topology of `epoch` whose user ranges were `ranges` (members and meta replicas
    /// as in this map: splits and merges change neither).
    pub(crate) fn topology_of(&self, epoch: u64, ranges: &[RangeDescriptor]) -> Topology {
        let reserved = Bytes::from_static(&RESERVED_PREFIX);
        let mut ranges: Vec<RangeInfo> = ranges
            .iter()
            .map(|r| RangeInfo {
                id: r.id,
                start: r.start.clone(),
                end: Some(r.end.clone().unwrap_or_else(|| reserved.clone())),
                replicas: r.replicas.clone(),
            })
            .collect();
        ranges.push(RangeInfo {
            id: META_RANGE,
            start: reserved,
            end: None,
            replicas: self.meta_replicas.clone(),
        });
        Topology { epoch, ranges }
    }

    /// Checks the map's invariants: members sorted and unique, ranges sorted, starting at
    /// the empty key, each ending where the next starts, the last unbounded, every range
    /// non-empty, replicated on members only, at a generation of at least 1.
    ///
    /// # Panics
    /// When an invariant does not hold (a bug in whatever built the map).
    pub fn validate(&self) {
        assert!(self.epoch >= 1, "epochs start at 1");
        assert!(
            self.members.windows(2).all(|w| w[0].id < w[1].id),
            "members sorted and unique: {:?}",
            self.members
        );
        assert!(!self.ranges.is_empty(), "the ranges cover the key space");
        assert!(
            self.ranges[0].start.is_empty(),
            "the first range starts at the empty key"
        );
        assert_eq!(
            self.ranges.last().expect("non-empty").end,
            None,
            "the last is unbounded"
        );
        for w in self.ranges.windows(2) {
            assert_eq!(
                w[0].end.as_ref(),
                Some(&w[1].start),
                "no gap or overlap: {w:?}"
            );
        }
        let mut ids: Vec<RangeId> = self.ranges.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), self.ranges.len(), "range ids unique");
        for r in &self.ranges {
            assert!(
                r.end.as_ref().is_none_or(|end| r.start < *end),
                "non-empty: {r:?}"
            );
            assert!(r.generation >= 1, "generations start at 1: {r:?}");
            assert!(!r.replicas.is_empty(), "replicated: {r:?}");
            for n in &r.replicas {
                assert!(
                    self.member(*n).is_some(),
                    "replica {n:?} is a member: {r:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
