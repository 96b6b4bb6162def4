//! Transactions: the keys they touch and the deterministic operation they run.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::ids::{TxnId, TxnKind};

/// A key of the store.
pub type Key = Bytes;

/// Transactions a transaction must wait for (or be ordered after).
pub type Deps = BTreeSet<TxnId>;

/// How a transaction uses one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// Writes conflict with reads and writes; reads conflict only with writes.
    pub fn conflicts_with(self, other: Access) -> bool {
        self == Access::Write || other == Access::Write
    }
}

/// A contiguous part of the key space: `start..end` (`end: None`: to the end of the key
/// space). The scope of an exclusive sync point.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySpan {
    pub start: Key,
    pub end: Option<Key>,
}

impl KeySpan {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|end| key < &end[..])
    }

    /// Whether `start..end` shares a key with this span.
    pub fn overlaps(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        let starts_before_other_ends = end.is_none_or(|end| &self.start[..] < end);
        let other_starts_before_end = self.end.as_ref().is_none_or(|e| start < &e[..]);
        starts_before_other_ends && other_starts_before_end
    }
}

/// A transaction: its id (`t0`), the keys it reads and writes, and an operation the host
/// runs deterministically against those keys at every replica, in executeAt order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub id: TxnId,
    /// Sorted by key, each key once; a key both read and written is a `Write`.
    pub keys: Vec<(Key, Access)>,
    /// Opaque to the protocol; the host interprets it.
    pub op: Bytes,
    /// A sync point's scope: `None` for a sync point over every range (GC), a span for an
    /// exclusive sync point that cuts the history of the ranges in it only (a split's or
    /// merge's; see the crate docs). Always `None` for other txns.
    pub scope: Option<KeySpan>,
}

impl Txn {
    /// Builds a transaction; the keys are sorted and deduplicated.
    pub fn new(id: TxnId, reads: &[Key], writes: &[Key], op: Bytes) -> Txn {
        let mut keys: Vec<(Key, Access)> = writes
            .iter()
            .map(|k| (k.clone(), Access::Write))
            .chain(reads.iter().map(|k| (k.clone(), Access::Read)))
            .collect();
        // Writes sort before reads of the same key, so dedup keeps the write.
        keys.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        keys.dedup_by(|later, earlier| later.0 == earlier.0);
        Txn {
            id,
            keys,
            op,
            scope: None,
        }
    }

    /// Whether this txn (not a sync point) touches a key of `span`.
    pub fn touches(&self, span: &KeySpan) -> bool {
        self.keys.iter().any(|(key, _)| span.contains(key))
    }

    /// An exclusive sync point: a sync point scoped to a span of keys.
    pub fn is_exclusive_sync_point(&self) -> bool {
        self.scope.is_some()
    }

    /// The kind its keys imply: `Write` if it writes any key.
    pub fn kind_of(writes: &[Key]) -> TxnKind {
        if writes.is_empty() {
            TxnKind::Read
        } else {
            TxnKind::Write
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: &str, end: Option<&str>) -> KeySpan {
        KeySpan {
            start: Key::copy_from_slice(start.as_bytes()),
            end: end.map(|e| Key::copy_from_slice(e.as_bytes())),
        }
    }

    #[test]
    fn spans_contain_and_overlap() {
        let s = span("b", Some("d"));
        assert!(s.contains(b"b") && s.contains(b"c") && !s.contains(b"d") && !s.contains(b"a"));
        // (other start, other end, overlaps)
        let cases: [(&str, Option<&str>, bool); 6] = [
            ("", Some("b"), false),
            ("", Some("c"), true),
            ("c", Some("e"), true),
            ("d", None, false),
            ("", None, true),
            ("b", Some("d"), true),
        ];
        for (start, end, overlaps) in cases {
            assert_eq!(
                s.overlaps(start.as_bytes(), end.map(str::as_bytes)),
                overlaps,
                "{start:?}..{end:?}"
            );
        }
        assert!(span("c", None).overlaps(b"x", None));
    }
}
