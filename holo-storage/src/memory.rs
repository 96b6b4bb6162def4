//! An in-memory store for unit tests of the layers above and for the simulator.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use crate::error::StorageError;
use crate::store::StateStore;
use crate::types::{AppliedMarker, KeyValue, Op, RangeId, WriteBatch, span_is_empty};

#[derive(Debug, Default)]
struct Inner {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    markers: HashMap<RangeId, AppliedMarker>,
}

/// Keeps everything in a `BTreeMap`; every write is "durable" for the life of the process.
#[derive(Debug, Default)]
pub struct MemStore {
    inner: RwLock<Inner>,
    /// Flushes still to fail (see [`MemStore::fail_flushes`]).
    failing_flushes: AtomicU32,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` flushes fail with a backend error, as a failing disk would, for
    /// tests of the layers above (what they report durable, when they stop).
    pub fn fail_flushes(&self, n: u32) {
        self.failing_flushes.store(n, Ordering::SeqCst);
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn upper(end: Option<&[u8]>) -> Bound<&[u8]> {
    end.map_or(Bound::Unbounded, Bound::Excluded)
}

impl StateStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read().data.get(key).cloned())
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let inner = self.read();
        Ok(keys.iter().map(|k| inner.data.get(*k).cloned()).collect())
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for op in &batch.ops {
            match op {
                Op::Put { key, value } => {
                    inner.data.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    inner.data.remove(key);
                }
                Op::DeleteRange { start, end } => {
                    if span_is_empty(start, end.as_deref()) {
                        continue;
                    }
                    let span = (Bound::Included(start.as_slice()), upper(end.as_deref()));
                    let doomed: Vec<Vec<u8>> = inner
                        .data
                        .range::<[u8], _>(span)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in doomed {
                        inner.data.remove(&key);
                    }
                }
            }
        }
        for (range, marker) in &batch.markers {
            inner.markers.insert(*range, *marker);
        }
        Ok(())
    }

    fn applied(&self, range: RangeId) -> Result<Option<AppliedMarker>, StorageError> {
        Ok(self.read().markers.get(&range).copied())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if span_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let inner = self.read();
        let span = (Bound::Included(start), upper(end));
        Ok(inner
            .data
            .range::<[u8], _>(span)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<(), StorageError> {
        let failing = self
            .failing_flushes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StorageError::Backend {
                backend: "memory",
                action: "flush",
                source: "injected flush failure".into(),
            });
        }
        Ok(())
    }
}
