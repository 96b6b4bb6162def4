//! Applied writes the executor holds in memory before it writes them to storage.
//!
//! Writing every apply batch to storage as its own transaction costs the backend a commit per
//! batch, and redb's copy-on-write B-tree copies and checksums a leaf page for every key in
//! it: at a few thousand commands a second that page work was most of a replica's executor
//! time. Held here for up to [`COMMIT_EVERY`], writes to the same pages share one copy, and a
//! key written again is written once.
//!
//! Nothing is lost by holding them: storage holds a prefix of the apply order either way (a
//! commit writes everything held, atomically, with the applied markers), the executor reads
//! its own held writes before storage, and nothing counts as durable before the storage flush,
//! which writes what is held first. What reads storage directly without a read barrier (the
//! expiry sweep, INFO's key counts, range sizes) may see the copy up to [`COMMIT_EVERY`]
//! older; a read barrier writes what is held before it lets its reader in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use holo_storage::{AppliedMarker, Op, RangeId, WriteBatch};

/// The longest applied writes are held before they are written to storage.
pub const COMMIT_EVERY: Duration = Duration::from_millis(50);
/// The most bytes of keys and values held before they are written whatever their age.
const HELD_BYTES_MAX: usize = 32 << 20;

/// Writes applied and not yet written to storage: the latest value of each storage key
/// (`None`: deleted) and the latest applied marker of each range.
#[derive(Default)]
pub struct Pending {
    values: HashMap<Vec<u8>, Option<Vec<u8>>>,
    markers: HashMap<RangeId, AppliedMarker>,
    bytes: usize,
    since: Option<Instant>,
}

impl Pending {
    /// Takes in an apply batch (puts, deletes and markers; a later write of a key replaces
    /// an earlier one).
    ///
    /// # Panics
    /// The batch holds a range delete: apply batches never do (the FLUSHALL purge writes
    /// its own batches, after writing what is held).
    pub fn add(&mut self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        for op in batch.ops {
            match op {
                Op::Put { key, value } => {
                    self.bytes += key.len() + value.len();
                    self.values.insert(key, Some(value));
                }
                Op::Delete { key } => {
                    self.bytes += key.len();
                    self.values.insert(key, None);
                }
                Op::DeleteRange { .. } => panic!("an apply batch holds no range delete"),
            }
        }
        self.markers.extend(batch.markers);
    }

    /// The held value of a storage key: `None` if none is held, `Some(None)` if it is
    /// held deleted.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.values.get(key).map(Option::as_deref)
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    /// How long until what is held must be written (zero: now), or `None` if nothing is.
    pub fn due_in(&self) -> Option<Duration> {
        let since = self.since?;
        if self.bytes >= HELD_BYTES_MAX {
            return Some(Duration::ZERO);
        }
        Some(COMMIT_EVERY.saturating_sub(since.elapsed()))
    }

    /// Everything held, as one batch for storage; nothing is held after.
    pub fn take(&mut self) -> WriteBatch {
        let mut batch = WriteBatch::new();
        let mut values: Vec<_> = self.values.drain().collect();
        // Key order: the backends insert sorted keys with fewer page visits.
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in values {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            };
        }
        for (range, marker) in self.markers.drain() {
            batch.set_applied(range, marker);
        }
        self.bytes = 0;
        self.since = None;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_write_of_a_key_and_marker_wins_and_take_empties() {
        let mut p = Pending::default();
        assert!(p.is_empty() && p.due_in().is_none());
        let mut b = WriteBatch::new();
        b.put(b"b".to_vec(), b"1".to_vec())
            .put(b"a".to_vec(), b"1".to_vec())
            .set_applied(
                RangeId(1),
                AppliedMarker {
                    generation: 0,
                    index: 1,
                },
            );
        p.add(b);
        let mut b = WriteBatch::new();
        b.delete(b"b".to_vec()).set_applied(
            RangeId(1),
            AppliedMarker {
                generation: 0,
                index: 2,
            },
        );
        p.add(b);
        assert_eq!(p.get(b"a"), Some(Some(&b"1"[..])));
        assert_eq!(p.get(b"b"), Some(None));
        assert_eq!(p.get(b"c"), None);
        assert!(p.due_in().is_some_and(|d| d <= COMMIT_EVERY));
        let batch = p.take();
        assert_eq!(
            batch.ops,
            vec![
                Op::Put {
                    key: b"a".to_vec(),
                    value: b"1".to_vec()
                },
                Op::Delete { key: b"b".to_vec() },
            ]
        );
        assert_eq!(
            batch.markers,
            vec![(
                RangeId(1),
                AppliedMarker {
                    generation: 0,
                    index: 2
                }
            )]
        );
        assert!(p.is_empty() && p.get(b"a").is_none());
    }
}
