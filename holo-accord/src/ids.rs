//! Identifiers and timestamps: newtypes, so the type system carries the protocol.

use std::fmt;

/// A node of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u16);

/// A range of keys, replicated as one Accord group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RangeId(pub u64);

/// What a transaction does to the keys it names; carried in a timestamp's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnKind {
    /// Reads only: conflicts with writes only.
    Read,
    /// Writes (and maybe reads): conflicts with everything.
    Write,
    /// A sync point: no keys, no operation; it depends on every txn started before it in
    /// every range, which makes it the watermark GC needs (see `Replica::gc`). Ordinary
    /// txns never depend on it.
    SyncPoint,
}

/// An Accord timestamp: `(epoch, hlc, flags, node)`, ordered in that order. The node id
/// makes every timestamp a node issues unique in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub epoch: u64,
    pub hlc: u64,
    pub flags: u16,
    pub node: u16,
}

impl Timestamp {
    /// The smallest timestamp.
    pub const ZERO: Timestamp = Timestamp {
        epoch: 0,
        hlc: 0,
        flags: 0,
        node: 0,
    };

    pub fn node(&self) -> NodeId {
        NodeId(self.node)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.epoch, self.hlc, self.flags, self.node
        )
    }
}

const FLAG_WRITE: u16 = 1;
const FLAG_SYNC_POINT: u16 = 2;

/// A transaction id: the timestamp `t0` its coordinator took when the transaction started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxnId(pub Timestamp);

impl TxnId {
    pub fn kind(&self) -> TxnKind {
        if self.0.flags & FLAG_SYNC_POINT != 0 {
            TxnKind::SyncPoint
        } else if self.0.flags & FLAG_WRITE != 0 {
            TxnKind::Write
        } else {
            TxnKind::Read
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        self.0
    }

    pub fn is_sync_point(&self) -> bool {
        self.kind() == TxnKind::SyncPoint
    }

    pub fn coordinator(&self) -> NodeId {
        self.0.node()
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "txn {}", self.0)
    }
}

/// A ballot: a unique timestamp; the original coordinator uses [`Ballot::ZERO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot(pub Timestamp);

impl Ballot {
    pub const ZERO: Ballot = Ballot(Timestamp::ZERO);
}

/// Issues timestamps that are strictly greater than anything this node issued or saw: the
/// hybrid logical clock of ACCORD.md section 1. The wall clock only comes in through
/// [`Clock::observe_now`]; it affects speed, never safety.
#[derive(Debug, Clone)]
pub struct Clock {
    node: NodeId,
    epoch: u64,
    /// The highest hlc issued or seen.
    last: u64,
    /// The latest physical time the host reported.
    now: u64,
}

impl Clock {
    /// A clock that will never issue at or below `high_water` (the persisted mark).
    pub fn new(node: NodeId, epoch: u64, high_water: u64) -> Clock {
        Clock {
            node,
            epoch,
            last: high_water,
            now: 0,
        }
    }

    /// Timestamps issued from now on carry `epoch` (never lower than before).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    /// The host's physical time, in microseconds. It may jump backwards.
    pub fn observe_now(&mut self, now_micros: u64) {
        self.now = now_micros;
    }

    /// Notes a timestamp seen in a message.
    pub fn observe(&mut self, seen: Timestamp) {
        self.last = self.last.max(seen.hlc);
    }

    /// A fresh timestamp above everything issued or seen, and above `at_least`. Its epoch
    /// is this node's, or `at_least`'s if that is later (an executeAt witnessed above a txn
    /// of a later epoch lies in that epoch); the hlc alone keeps it above `at_least` then.
    pub fn unique_now(&mut self, kind: TxnKind, at_least: Timestamp) -> Timestamp {
        self.observe(at_least);
        self.last = (self.last + 1).max(self.now);
        let flags = match kind {
            TxnKind::Write => FLAG_WRITE,
            TxnKind::Read => 0,
            TxnKind::SyncPoint => FLAG_SYNC_POINT,
        };
        Timestamp {
            epoch: self.epoch.max(at_least.epoch),
            hlc: self.last,
            flags,
            node: self.node.0,
        }
    }

    /// The highest hlc issued or seen: persist it so a restarted node never re-issues one.
    pub fn high_water(&self) -> u64 {
        self.last
    }
}
