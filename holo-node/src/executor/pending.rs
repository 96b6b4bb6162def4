//! Applied writes the executor holds in memory before they reach storage, and the thread
//! that writes them.
//!
//! Writing every apply batch to storage as its own transaction costs the backend a commit per
//! batch, and redb's copy-on-write B-tree copies and checksums a leaf page for every key in
//! it: at a few thousand commands a second that page work was most of a replica's executor
//! time. Held here for up to [`COMMIT_EVERY`], writes to the same pages share one copy, and a
//! key written again is written once. A thread of its own writes them, so the executor goes on
//! applying (and answering) while storage commits; one commit is in flight at a time, and
//! what is applied meanwhile is held for the next.
//!
//! Nothing is lost by holding them: storage holds a prefix of the apply order either way (a
//! commit writes everything held when it started, atomically, with the applied markers), the
//! executor reads held and in-flight writes before storage, and nothing counts as durable
//! before the storage flush, which waits for every held write first. A read barrier (KEYS,
//! SCAN, RANDOMKEY, DBSIZE) waits for what is held before it lets its reader in. What reads
//! storage directly without one sees the copy as of the last finished commit: up to
//! [`COMMIT_EVERY`] plus a commit's duration older. Those readers are the expiry sweep (it
//! only proposes deletes that are checked again at their executeAt), INFO's key counts, the
//! controller's range sizes and median keys, SCAN's later pages, the keyspace commands when
//! `[keyspace] stale_reads_while_degraded` lets them skip the barrier, the planted
//! stale-read fault, and the data hash (`holoctl data-hash`) with its applied count, which
//! comes from the executor's counters and so may run ahead of the hashed copy for as long.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use holo_storage::{AppliedMarker, Op, RangeId, StateStore, StorageError, Store, WriteBatch};

use crate::metrics::Metrics;

/// The longest applied writes are held before a commit of them starts. The longer, the more
/// keys share each leaf page a commit copies, so the less copying per key (docs/performance.md
/// has the figures); holding longer than this gains little, as the
/// storage flush ([`crate::executor::FLUSH_EVERY`]) and every sync point's read barrier
/// commit whatever is held anyway.
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// The most bytes of keys and values held before a commit starts whatever their age.
const HELD_BYTES_MAX: usize = 32 << 20;

/// The latest value of each storage key (`None`: deleted) and the latest applied marker of
/// each range.
#[derive(Default)]
struct Writes {
    values: HashMap<Vec<u8>, Option<Vec<u8>>>,
    markers: HashMap<RangeId, AppliedMarker>,
}

impl Writes {
    /// One storage batch, keys in order (the backends insert sorted keys with fewer page
    /// visits).
    fn batch(&self) -> WriteBatch {
        let mut keys: Vec<&Vec<u8>> = self.values.keys().collect();
        keys.sort_unstable();
        let mut batch = WriteBatch::new();
        for key in keys {
            match &self.values[key] {
                Some(value) => batch.put(key.clone(), value.clone()),
                None => batch.delete(key.clone()),
            };
        }
        for (range, marker) in &self.markers {
            batch.set_applied(*range, *marker);
        }
        batch
    }
}

/// Applied writes not yet in storage: those held, and those of the commit in flight.
pub struct Pending {
    held: Writes,
    bytes: usize,
    since: Option<Instant>,
    in_flight: Option<Arc<Writes>>,
    to_writer: Option<mpsc::SyncSender<Arc<Writes>>>,
    from_writer: mpsc::Receiver<Result<(), StorageError>>,
    writer: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Pending {
    /// Starts the thread that writes to `store`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn new(store: Arc<Store>, name: String, metrics: Arc<Metrics>) -> std::io::Result<Pending> {
        let (to_writer, rx) = mpsc::sync_channel::<Arc<Writes>>(1);
        let (tx, from_writer) = mpsc::sync_channel(1);
        let writer = std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(writes) = rx.recv() {
                let outcome = store.write(&writes.batch());
                drop(writes);
                if tx.send(outcome).is_err() {
                    return;
                }
            }
        })?;
        Ok(Pending {
            held: Writes::default(),
            bytes: 0,
            since: None,
            in_flight: None,
            to_writer: Some(to_writer),
            from_writer,
            writer: Some(writer),
            metrics,
        })
    }

    /// Takes in an apply batch (puts, deletes and markers; a later write of a key replaces
    /// an earlier one).
    ///
    /// # Panics
    /// The batch holds a range delete: apply batches never do (the FLUSHALL purge writes
    /// its own batches, after every held write is in storage).
    pub fn add(&mut self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        self.since.get_or_insert_with(Instant::now);
        for op in batch.ops {
            match op {
                Op::Put { key, value } => {
                    self.bytes += key.len() + value.len();
                    self.held.values.insert(key, Some(value));
                }
                Op::Delete { key } => {
                    self.bytes += key.len();
                    self.held.values.insert(key, None);
                }
                Op::DeleteRange { .. } => panic!("an apply batch holds no range delete"),
            }
        }
        self.held.markers.extend(batch.markers);
    }

    /// The value of a storage key not yet in storage: `None` if there is none, `Some(None)`
    /// if it is deleted.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.held
            .values
            .get(key)
            .or_else(|| self.in_flight.as_ref()?.values.get(key))
            .map(Option::as_deref)
    }

    /// How long until the held writes are due to be committed (zero: now), or `None` if
    /// none are held.
    pub fn due_in(&self) -> Option<Duration> {
        let since = self.since?;
        if self.bytes >= HELD_BYTES_MAX {
            return Some(Duration::ZERO);
        }
        Some(COMMIT_EVERY.saturating_sub(since.elapsed()))
    }

    /// Takes note of a finished commit, and starts one of the held writes if they are due
    /// and none is in flight. Waits only when storage fell behind: a commit in flight and
    /// more than `HELD_BYTES_MAX` held behind it.
    ///
    /// # Errors
    /// A commit failed.
    pub fn commit_if_due(&mut self) -> Result<(), StorageError> {
        if self.in_flight.is_some() {
            match self.from_writer.try_recv() {
                Ok(outcome) => {
                    self.in_flight = None;
                    outcome?;
                }
                Err(mpsc::TryRecvError::Empty) if self.bytes >= HELD_BYTES_MAX => self.wait()?,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => return Err(writer_gone()),
            }
        }
        if self.due_in() == Some(Duration::ZERO) {
            self.start()?;
        }
        Ok(())
    }

    /// A commit is in flight.
    pub fn committing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Waits until every write taken in so far is in storage.
    ///
    /// # Errors
    /// A commit failed.
    pub fn commit_all(&mut self) -> Result<(), StorageError> {
        self.wait()?;
        if self.since.is_some() {
            self.start()?;
            self.wait()?;
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), StorageError> {
        debug_assert!(self.in_flight.is_none());
        let writes = Arc::new(std::mem::take(&mut self.held));
        self.metrics
            .storage_commit_ops
            .observe(writes.values.len() as u64);
        self.bytes = 0;
        self.since = None;
        self.in_flight = Some(Arc::clone(&writes));
        let to_writer = self.to_writer.as_ref().ok_or_else(writer_gone)?;
        to_writer.send(writes).map_err(|_| writer_gone())
    }

    fn wait(&mut self) -> Result<(), StorageError> {
        if self.in_flight.is_none() {
            return Ok(());
        }
        let outcome = self.from_writer.recv().map_err(|_| writer_gone())?;
        self.in_flight = None;
        outcome
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer_gone() -> StorageError {
    StorageError::Backend {
        backend: "storage writer",
        action: "commit",
        source: Box::new(std::io::Error::other("the storage writer thread stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, index: u64) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(key.as_bytes().to_vec(), value.as_bytes().to_vec())
            .set_applied(
                RangeId(1),
                AppliedMarker {
                    generation: 0,
                    index,
                },
            );
        b
    }

    #[test]
    fn held_writes_read_back_and_reach_storage_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let config = holo_storage::StorageConfig::default();
        let store = Arc::new(Store::open(&config, dir.path()).unwrap());
        let mut p = Pending::new(Arc::clone(&store), "test-writer".into(), Arc::default()).unwrap();
        assert!(p.due_in().is_none());
        p.add(put("b", "1", 1));
        p.add(put("a", "1", 2));
        let mut del = WriteBatch::new();
        del.delete(b"b".to_vec());
        p.add(del);
        assert_eq!(p.get(b"a"), Some(Some(&b"1"[..])));
        assert_eq!(p.get(b"b"), Some(None));
        assert_eq!(p.get(b"c"), None);
        assert!(p.due_in().is_some_and(|d| d <= COMMIT_EVERY));
        assert_eq!(store.multi_get(&[b"a"]).unwrap(), vec![None]);
        p.commit_all().unwrap();
        assert!(p.due_in().is_none() && p.get(b"a").is_none());
        assert_eq!(
            store.multi_get(&[b"a", b"b"]).unwrap(),
            vec![Some(b"1".to_vec()), None]
        );
        assert_eq!(store.applied(RangeId(1)).unwrap().map(|m| m.index), Some(2));
    }
}
