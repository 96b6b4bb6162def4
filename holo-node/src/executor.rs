//! The executor: applies decided transactions to the storage backend in the order the
//! Accord core released them, in batches, on its own thread so a slow disk never stalls the
//! network loop.
//!
//! # Idempotent apply
//! After a restart the core re-applies every decided transaction in its WAL, some of which
//! storage already holds. Every stored value carries the executeAt of the transaction that
//! wrote it, and a delete leaves a tombstone with its executeAt, so a transaction is skipped
//! when any key it touches has a version at or above its executeAt. That is exact: storage
//! holds a prefix of the apply order (each batch is atomic), conflicting transactions apply
//! in executeAt order, so a later write to one of its keys is present only if the
//! transaction itself was applied before it; and when no later write is present the keys
//! hold what the transaction saw the first time, so running it again gives the same result.
//! Tombstones stay (they are small; dropping them needs a version floor per key).
//!
//! # Sync points
//! A sync point has no keys and nothing to apply. Once the storage flush after it is done,
//! everything applied before it is durable in storage, and the executor tells the core
//! ([`Event::SyncDurable`]); when every member has said so, the Accord core drops the
//! records below it and the core releases WAL segments.
//!
//! Storage layout: user key `k` is stored as `u` + `k`; the value is `[tag][epoch u64]
//! [hlc u64][flags u16][node u16][bytes]` (big-endian), tag 0 a live value, 1 a tombstone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{Access, Timestamp, Txn, TxnId};
use holo_meta::ClusterMap;
use holo_resp::Frame;
use holo_storage::{AppliedMarker, RangeId as StoreRangeId, StateStore, Store, WriteBatch};
use tokio::sync::oneshot;

use crate::core::Event;
use crate::error::{Fatal, Transient};
use crate::metrics::Metrics;
use crate::ops::{self, KvView};

/// Prefix of user keys in storage.
pub const USER_PREFIX: u8 = b'u';
const HEADER: usize = 1 + 8 + 8 + 2 + 2;
/// How often applied state is made durable when the executor is busy or idle.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Failed storage flushes in a row after which the executor (and so the node) stops.
const FLUSH_FAILURES_MAX: u32 = 3;

/// One transaction to apply.
pub struct ApplyItem {
    pub txn: Txn,
    pub execute_at: Timestamp,
    /// The clients waiting on this node for the results, one per command of the op, in
    /// order; empty when no client here waits.
    pub reply: Vec<oneshot::Sender<Frame>>,
}

/// Storage key of a user key.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(USER_PREFIX);
    k.extend_from_slice(key);
    k
}

fn encode_value(version: Timestamp, value: Option<&[u8]>) -> Vec<u8> {
    let body = value.unwrap_or_default();
    let mut v = Vec::with_capacity(HEADER + body.len());
    v.push(u8::from(value.is_none()));
    v.extend_from_slice(&version.epoch.to_be_bytes());
    v.extend_from_slice(&version.hlc.to_be_bytes());
    v.extend_from_slice(&version.flags.to_be_bytes());
    v.extend_from_slice(&version.node.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// This replica's applied value of `key`, read without consensus (only for the
/// `faults.stale_local_reads` planted bug).
///
/// # Errors
/// Storage cannot be read.
pub fn read_local(store: &Store, key: &[u8]) -> anyhow::Result<Option<Bytes>> {
    let stored = store.multi_get(&[storage_key(key).as_slice()])?;
    Ok(stored
        .into_iter()
        .next()
        .flatten()
        .as_deref()
        .and_then(decode_value)
        .and_then(|(_, value)| value))
}

/// A stored value: its version, and its bytes unless it is a tombstone.
pub fn decode_value(v: &[u8]) -> Option<(Timestamp, Option<Bytes>)> {
    if v.len() < HEADER {
        return None;
    }
    let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().expect("8 bytes"));
    let u16_at = |i: usize| u16::from_be_bytes(v[i..i + 2].try_into().expect("2 bytes"));
    let version = Timestamp {
        epoch: u64_at(1),
        hlc: u64_at(9),
        flags: u16_at(17),
        node: u16_at(19),
    };
    let value = (v[0] == 0).then(|| Bytes::copy_from_slice(&v[HEADER..]));
    Some((version, value))
}

#[derive(Clone)]
struct Slot {
    version: Timestamp,
    value: Option<Bytes>,
}

/// The batch's view of storage: values loaded once, writes kept in memory until the batch
/// is written.
struct Overlay<'a> {
    slots: &'a mut HashMap<Bytes, Option<Slot>>,
    batch: &'a mut WriteBatch,
    version: Timestamp,
}

impl KvView for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Bytes> {
        self.slots
            .get(key)
            .and_then(|s| s.as_ref())
            .and_then(|s| s.value.clone())
    }

    fn put(&mut self, key: &[u8], value: Option<Bytes>) {
        self.batch.put(
            storage_key(key),
            encode_value(self.version, value.as_deref()),
        );
        self.slots.insert(
            Bytes::copy_from_slice(key),
            Some(Slot {
                version: self.version,
                value,
            }),
        );
    }
}

/// The executor thread's state.
pub struct Executor {
    store: Arc<Store>,
    map: Arc<ClusterMap>,
    metrics: Arc<Metrics>,
    applied: HashMap<u64, u64>,
    last_flush: Instant,
    dirty: bool,
    /// The highest sync point applied and not yet reported durable.
    synced: Option<TxnId>,
    /// Storage flushes that failed in a row.
    flush_failures: u32,
    /// How often applied state is made durable ([`FLUSH_EVERY`]; tests make it zero).
    flush_every: Duration,
    core: tokio::sync::mpsc::Sender<Event>,
}

impl Executor {
    /// Loads the applied markers of every range.
    ///
    /// # Errors
    /// Storage cannot be read.
    pub fn new(
        store: Arc<Store>,
        map: Arc<ClusterMap>,
        metrics: Arc<Metrics>,
        core: tokio::sync::mpsc::Sender<Event>,
    ) -> anyhow::Result<Executor> {
        let mut applied = HashMap::new();
        for r in map.ranges() {
            let marker = store.applied(StoreRangeId(r.id.0))?.unwrap_or_default();
            applied.insert(r.id.0, marker.index);
            metrics.set_applied(r.id.0, marker.index);
        }
        Ok(Executor {
            store,
            map,
            metrics,
            applied,
            last_flush: Instant::now(),
            dirty: false,
            synced: None,
            flush_failures: 0,
            flush_every: FLUSH_EVERY,
            core,
        })
    }

    /// Flushes applied state this often instead of every [`FLUSH_EVERY`].
    pub fn with_flush_every(mut self, every: Duration) -> Executor {
        self.flush_every = every;
        self
    }

    /// Runs until the sending side closes; batches whatever has queued up.
    ///
    /// # Errors
    /// Storage failed (see [`Fatal`]): the executor stops applying, and the node must stop.
    /// The WAL still holds every decision, so a restart after the disk is fixed catches up.
    pub fn run(mut self, rx: mpsc::Receiver<Vec<ApplyItem>>) -> Result<(), Fatal> {
        let outcome = self.apply_until_closed(&rx);
        if let Err(e) = &outcome {
            tracing::error!("{e}");
            self.metrics.executor_failed.store(true, Ordering::Relaxed);
        }
        outcome
    }

    fn apply_until_closed(&mut self, rx: &mpsc::Receiver<Vec<ApplyItem>>) -> Result<(), Fatal> {
        loop {
            let first = match rx.recv_timeout(self.flush_every.max(Duration::from_millis(1))) {
                Ok(items) => items,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.flush_if_due()?;
                    self.report_synced();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut items = first;
            while items.len() < 4096 {
                match rx.try_recv() {
                    Ok(more) => items.extend(more),
                    Err(_) => break,
                }
            }
            self.metrics
                .apply_queue
                .fetch_sub(items.len() as i64, Ordering::Relaxed);
            self.apply(items)?;
            self.flush_if_due()?;
            self.report_synced();
        }
        // Shutting down: nothing is reported after this, and the WAL covers what is lost.
        if let Err(e) = self.store.flush() {
            tracing::warn!("final storage flush failed: {e}");
        }
        Ok(())
    }

    /// Tells the core the highest sync point whose applied state is durable in storage.
    fn report_synced(&mut self) {
        if self.dirty {
            return;
        }
        if let Some(id) = self.synced.take() {
            // The core never waits for the executor, so this wait is short.
            let _ = self.core.blocking_send(Event::SyncDurable(id));
        }
    }

    /// Makes applied state durable when due. A failed flush keeps the state dirty, so no
    /// sync point is reported durable (peers would collect records this node may still
    /// need); it is retried, and after `FLUSH_FAILURES_MAX` failures in a row the executor
    /// stops, which stops the node.
    ///
    /// # Errors
    /// [`Fatal::Flush`]: the flush failed `FLUSH_FAILURES_MAX` times in a row.
    fn flush_if_due(&mut self) -> Result<(), Fatal> {
        if !self.dirty || self.last_flush.elapsed() < self.flush_every {
            return Ok(());
        }
        self.last_flush = Instant::now();
        match self.store.flush() {
            Ok(()) => {
                self.dirty = false;
                self.flush_failures = 0;
                Ok(())
            }
            Err(source) => {
                self.flush_failures += 1;
                let failures = self.flush_failures;
                if failures >= FLUSH_FAILURES_MAX {
                    return Err(Fatal::Flush { failures, source });
                }
                tracing::error!("{}", Transient::Flush { failures, source });
                Ok(())
            }
        }
    }

    /// Applies one batch atomically, then answers the clients.
    ///
    /// # Errors
    /// [`Fatal::Apply`]: storage could not be read or written.
    pub fn apply(&mut self, items: Vec<ApplyItem>) -> Result<(), Fatal> {
        let started = Instant::now();
        let mut wanted: Vec<Bytes> = Vec::new();
        for item in &items {
            let writes = item.txn.keys.iter().any(|(_, a)| *a == Access::Write);
            if writes || !item.reply.is_empty() {
                wanted.extend(item.txn.keys.iter().map(|(k, _)| k.clone()));
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let storage_keys: Vec<Vec<u8>> = wanted.iter().map(|k| storage_key(k)).collect();
        let refs: Vec<&[u8]> = storage_keys.iter().map(Vec::as_slice).collect();
        let loaded = self.store.multi_get(&refs).map_err(Fatal::Apply)?;
        let mut slots: HashMap<Bytes, Option<Slot>> = HashMap::with_capacity(wanted.len());
        for (key, value) in wanted.into_iter().zip(loaded) {
            let slot = value
                .as_deref()
                .and_then(decode_value)
                .map(|(version, value)| Slot { version, value });
            slots.insert(key, slot);
        }

        let mut batch = WriteBatch::new();
        let mut replies = Vec::new();
        let mut touched: HashMap<u64, u64> = HashMap::new();
        let mut skipped = 0u64;
        for item in items {
            if item.txn.id.is_sync_point() {
                self.synced = self.synced.max(Some(item.txn.id));
                continue;
            }
            let writes = item.txn.keys.iter().any(|(_, a)| *a == Access::Write);
            if writes {
                let applied_before = item.txn.keys.iter().any(|(k, _)| {
                    slots
                        .get(k)
                        .and_then(|s| s.as_ref())
                        .is_some_and(|s| s.version >= item.execute_at)
                });
                if applied_before {
                    skipped += 1;
                    continue;
                }
            } else if item.reply.is_empty() {
                continue;
            }
            let mut overlay = Overlay {
                slots: &mut slots,
                batch: &mut batch,
                version: item.execute_at,
            };
            let frames = ops::execute_all(&item.txn.op, &mut overlay);
            if writes {
                let mut ranges: Vec<u64> = item
                    .txn
                    .keys
                    .iter()
                    .map(|(k, _)| self.map.range_of(k).id.0)
                    .collect();
                ranges.dedup();
                for r in ranges {
                    *touched.entry(r).or_default() += 1;
                }
            }
            replies.extend(item.reply.into_iter().zip(frames));
        }
        for (range, count) in touched {
            let index = self.applied.entry(range).or_default();
            *index += count;
            let generation = self
                .map
                .ranges()
                .iter()
                .find(|r| r.id.0 == range)
                .map_or(0, |r| r.generation);
            batch.set_applied(
                StoreRangeId(range),
                AppliedMarker {
                    generation,
                    index: *index,
                },
            );
            self.metrics.set_applied(range, *index);
        }
        if !batch.is_empty() {
            self.store.write(&batch).map_err(Fatal::Apply)?;
            self.dirty = true;
        }
        self.metrics.observe_apply_batch(
            replies.len() as u64,
            batch.ops.len() as u64,
            skipped,
            started.elapsed(),
        );
        for (reply, frame) in replies {
            let _ = reply.send(frame);
        }
        Ok(())
    }
}

/// Counts live user keys in storage (DBSIZE, INFO keyspace): a full scan of this node's
/// copy, not a linearizable read.
///
/// # Errors
/// Storage cannot be read.
pub fn count_keys(store: &Store) -> anyhow::Result<u64> {
    let mut count = 0u64;
    let mut start = vec![USER_PREFIX];
    let end = [USER_PREFIX + 1];
    loop {
        let page = store.scan(&start, Some(&end), 4096)?;
        for (_, v) in &page {
            if decode_value(v).is_some_and(|(_, value)| value.is_some()) {
                count += 1;
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == 4096 => {
                start = k.clone();
                start.push(0);
            }
            _ => return Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holo_accord::NodeId;
    use holo_meta::Member;
    use holo_storage::MemStore;

    fn id(hlc: u64, flags: u16) -> TxnId {
        TxnId(Timestamp {
            epoch: 1,
            hlc,
            flags,
            node: 1,
        })
    }

    fn set(hlc: u64, key: &str) -> ApplyItem {
        let args: Vec<Bytes> = ["SET", key, "v"]
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let ops::Parsed::Txn(kv) = ops::parse(&args) else {
            panic!("SET parses to a txn");
        };
        let txn_id = id(hlc, 1);
        ApplyItem {
            txn: Txn::new(txn_id, &kv.reads, &kv.writes, kv.op),
            execute_at: txn_id.0,
            reply: Vec::new(),
        }
    }

    fn sync_point(hlc: u64) -> ApplyItem {
        let txn_id = id(hlc, 2);
        ApplyItem {
            txn: Txn::new(txn_id, &[], &[], Bytes::new()),
            execute_at: txn_id.0,
            reply: Vec::new(),
        }
    }

    /// An executor over a memory store, flushing on every batch, and what it tells the core.
    fn executor() -> (Executor, Arc<Store>, tokio::sync::mpsc::Receiver<Event>) {
        let member = Member {
            id: NodeId(1),
            resp_addr: "127.0.0.1:1".into(),
            grpc_addr: "127.0.0.1:2".into(),
        };
        let map = Arc::new(ClusterMap::initial(vec![member], &[]).unwrap());
        let store = Arc::new(Store::Memory(MemStore::new()));
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let executor = Executor::new(Arc::clone(&store), map, Arc::default(), tx)
            .unwrap()
            .with_flush_every(Duration::ZERO);
        (executor, store, rx)
    }

    fn fail_flushes(store: &Store, n: u32) {
        let Store::Memory(mem) = store else {
            unreachable!("a memory store")
        };
        mem.fail_flushes(n);
    }

    fn reported(rx: &mut tokio::sync::mpsc::Receiver<Event>) -> Vec<TxnId> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|e| match e {
                Event::SyncDurable(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// One pass of the executor's loop over a batch: apply, flush when due, report.
    fn step(executor: &mut Executor, items: Vec<ApplyItem>) -> Result<(), Fatal> {
        executor.apply(items)?;
        executor.flush_if_due()?;
        executor.report_synced();
        Ok(())
    }

    #[test]
    fn a_failed_flush_is_never_reported_durable_and_is_retried() {
        let (mut executor, store, mut rx) = executor();
        fail_flushes(&store, 1);
        step(&mut executor, vec![set(10, "a"), sync_point(11)]).unwrap();
        assert_eq!(
            reported(&mut rx),
            [],
            "the flush failed: nothing is durable"
        );
        // The next pass flushes again (still dirty), and only then reports the sync point.
        step(&mut executor, Vec::new()).unwrap();
        assert_eq!(reported(&mut rx), [id(11, 2)]);
    }

    #[test]
    fn flushes_failing_in_a_row_stop_the_executor_with_a_typed_error() {
        let (mut executor, store, mut rx) = executor();
        fail_flushes(&store, FLUSH_FAILURES_MAX);
        step(&mut executor, vec![set(10, "a"), sync_point(11)]).unwrap();
        for _ in 1..FLUSH_FAILURES_MAX - 1 {
            step(&mut executor, Vec::new()).unwrap();
        }
        match step(&mut executor, Vec::new()) {
            Err(Fatal::Flush { failures, .. }) => assert_eq!(failures, FLUSH_FAILURES_MAX),
            other => panic!("expected Fatal::Flush, got {other:?}"),
        }
        assert_eq!(reported(&mut rx), [], "nothing was ever reported durable");
    }

    #[test]
    fn the_executor_thread_ends_with_the_fatal_error() {
        let (executor, store, mut rx) = executor();
        fail_flushes(&store, FLUSH_FAILURES_MAX);
        let (tx, items) = mpsc::channel();
        tx.send(vec![set(10, "a"), sync_point(11)]).unwrap();
        // The sender stays open: only the failures can end the loop.
        let outcome = executor.run(items);
        assert!(matches!(outcome, Err(Fatal::Flush { .. })), "{outcome:?}");
        assert_eq!(reported(&mut rx), []);
        drop(tx);
    }

    #[test]
    fn values_round_trip_with_their_version() {
        let v = Timestamp {
            epoch: 1,
            hlc: 99,
            flags: 1,
            node: 3,
        };
        assert_eq!(
            decode_value(&encode_value(v, Some(b"abc"))),
            Some((v, Some(Bytes::from_static(b"abc"))))
        );
        assert_eq!(decode_value(&encode_value(v, None)), Some((v, None)));
        assert_eq!(decode_value(b"short"), None);
    }
}
