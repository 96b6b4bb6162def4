//! The values that cross the [`crate::StateStore`] interface.

/// Identifies a range (an Accord group). Stable across splits of other ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RangeId(pub u64);

/// How far a range's state has been applied: written atomically with the data it covers.
///
/// The store does not interpret it beyond storing it; the node uses `index` for the position
/// of the last applied record (so replay resumes after it) and `generation` for the range
/// descriptor generation it was applied under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AppliedMarker {
    pub generation: u64,
    pub index: u64,
}

/// One change in a [`WriteBatch`], applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Deletes every key in `start..end` (`end: None`: to the end of the key space).
    DeleteRange {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Durable when [`crate::StateStore::write`] returns.
    Sync,
    /// Durable after the next successful [`crate::StateStore::flush`]; a crash before then
    /// may lose it (atomically, never half of a batch). The node's default: the WAL already
    /// holds what the batch applies, so storage syncs only before WAL segments are released.
    #[default]
    Deferred,
}

/// An atomic group of changes and the applied markers they advance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteBatch {
    pub ops: Vec<Op>,
    pub markers: Vec<(RangeId, AppliedMarker)>,
    pub durability: Durability,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }

    pub fn delete_range(&mut self, start: impl Into<Vec<u8>>, end: Option<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::DeleteRange {
            start: start.into(),
            end,
        });
        self
    }

    pub fn set_applied(&mut self, range: RangeId, marker: AppliedMarker) -> &mut Self {
        self.markers.push((range, marker));
        self
    }

    pub fn with_durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = durability;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.markers.is_empty()
    }
}

/// A key and its value, from a scan.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// True when `start..end` holds no key (including an inverted span).
pub(crate) fn span_is_empty(start: &[u8], end: Option<&[u8]>) -> bool {
    end.is_some_and(|end| end <= start)
}
