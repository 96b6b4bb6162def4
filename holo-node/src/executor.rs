//! The executor: applies decided transactions in the order the Accord core released them, in
//! batches, on its own thread so a slow disk never stalls the network loop. Applied writes
//! are held in memory and committed to the storage backend by a writer thread, up to 250 ms
//! of them in one atomic commit ([`pending`] says why and what that changes for readers).
//!
//! # Idempotent apply
//! After a restart the core re-applies every decided transaction in its WAL, some of which
//! storage already holds. Every stored value carries the executeAt of the transaction that
//! wrote it, and a delete leaves a tombstone with its executeAt, so a transaction is skipped
//! when any key it touches has a version at or above its executeAt. That is exact: storage
//! holds a prefix of the apply order (each commit is atomic and takes everything applied
//! before it), conflicting transactions apply in executeAt order, so a later write to one of
//! its keys is present only if the transaction itself was applied before it; and when no
//! later write is present the keys hold what the transaction saw the first time, so running
//! it again gives the same result.
//! Tombstones stay (they are small; dropping them needs a version floor per key).
//!
//! Only a transaction restored from the WAL can have been applied before: anything else was
//! decided after the restart, and storage only holds what was applied before it. So a write
//! that reads nothing (a plain SET or MSET, [`cmd::op::reads_nothing`]) is checked only when
//! it was restored; otherwise its keys are not even loaded, which spares a storage read per
//! key on the hot path.
//!
//! # Sync points
//! A sync point has no keys and nothing to apply. Once the storage flush after it is done,
//! everything applied before it is durable in storage, and the executor tells the core
//! ([`Event::SyncDurable`]); when every member has said so, the Accord core drops the
//! records below it and the core releases WAL segments. An exclusive sync point (a split's
//! or merge's history cut) is reported the same way ([`Event::CutDurable`]); it drives no
//! GC, and moves the generation markers of the ranges in its span only.
//!
//! Storage layout: user key `k` is stored as `u` + `k`; the value is `[tag][epoch u64]
//! [hlc u64][flags u16][node u16][body]` (big-endian): the version, then the value as
//! [`crate::cmd::value`] encodes it (tag 1 a tombstone).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{Access, Timestamp, Topology, Txn, TxnId};
use holo_meta::{META_RANGE, MetaCommand, MetaState, Outcome};
use holo_resp::Frame;
use holo_storage::{AppliedMarker, RangeId as StoreRangeId, StateStore, Store, WriteBatch};
use tokio::sync::oneshot;

use crate::cmd::value::{TAG_TOMBSTONE, Value};
use crate::cmd::{self, KvView, wall_ms};
use crate::core::Event;
use crate::error::{Fatal, Transient};
use crate::metrics::Metrics;

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
    /// The transaction was restored from the WAL at start, so storage may hold its writes
    /// already (see "Idempotent apply").
    pub restored: bool,
    /// An ephemeral read (`holo_accord::Node::read`): each reply's key and operation. Its
    /// time is not ordered against writes (a write ordered below it may still apply here
    /// after it), so a read that finds a key expired goes again as a transaction instead
    /// of answering. Empty for a transaction.
    pub ephemeral: Vec<(Bytes, Bytes)>,
}

/// Storage key of a user key.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(USER_PREFIX);
    k.extend_from_slice(key);
    k
}

fn encode_value(version: Timestamp, value: Option<&Value>) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + value.map_or(0, Value::encoded_len));
    v.push(TAG_TOMBSTONE);
    v.extend_from_slice(&version.epoch.to_be_bytes());
    v.extend_from_slice(&version.hlc.to_be_bytes());
    v.extend_from_slice(&version.flags.to_be_bytes());
    v.extend_from_slice(&version.node.to_be_bytes());
    if let Some(value) = value {
        v[0] = value.encode_into(&mut v);
    }
    v
}

/// This replica's applied string value of `key`, read without consensus (only for the
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
        .and_then(|(_, value)| match value?.data {
            cmd::value::Data::Str(b) => Some(b),
            cmd::value::Data::Hash(_) => None,
        }))
}

/// A stored value: its version, and its value unless it is a tombstone. `None` if it does
/// not decode.
pub fn decode_value(v: &[u8]) -> Option<(Timestamp, Option<Value>)> {
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
    if v[0] == TAG_TOMBSTONE {
        return Some((version, None));
    }
    match Value::decode(v[0], &v[HEADER..]) {
        Some(value) => Some((version, Some(value))),
        None => {
            // Keep the version (idempotent replay and WATCH depend on it); the value is
            // unreadable, which storage's own checksums should have caught.
            tracing::warn!("a stored value of tag {} does not decode", v[0]);
            Some((version, None))
        }
    }
}

#[derive(Clone)]
struct Slot {
    version: Timestamp,
    value: Option<Value>,
}

/// The batch's view of storage: values loaded once, writes kept in memory until the batch
/// is written.
struct Overlay<'a> {
    slots: &'a mut HashMap<Bytes, Option<Slot>>,
    batch: &'a mut WriteBatch,
    version: Timestamp,
    /// Values written in an epoch below this one were flushed (FLUSHALL) before the
    /// transaction's executeAt: it does not see them.
    floor: u64,
}

impl Overlay<'_> {
    /// The slot of `key` unless its value was flushed before this transaction.
    fn visible(&self, key: &[u8]) -> Option<&Slot> {
        debug_assert!(
            self.slots.contains_key(key),
            "an operation read a key the executor did not load"
        );
        self.slots
            .get(key)
            .and_then(|s| s.as_ref())
            .filter(|s| s.version.epoch >= self.floor)
    }
}

impl KvView for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Value> {
        self.visible(key).and_then(|s| s.value.clone())
    }

    fn put(&mut self, key: &[u8], value: Option<Value>) {
        self.batch
            .put(storage_key(key), encode_value(self.version, value.as_ref()));
        self.slots.insert(
            Bytes::copy_from_slice(key),
            Some(Slot {
                version: self.version,
                value,
            }),
        );
    }

    fn version(&mut self, key: &[u8]) -> Timestamp {
        // A flushed value counts as never written, whether or not this replica has purged
        // it yet (replicas purge on their own schedule, and must agree on WATCH tokens).
        self.visible(key).map_or(Timestamp::ZERO, |s| s.version)
    }
}

/// Whether `txn` is a meta-range transaction (its one key is the cluster map's: clients
/// cannot use the reserved key space, so nothing else touches it).
pub fn is_meta(txn: &Txn) -> bool {
    txn.keys.len() == 1 && txn.keys[0].0 == holo_meta::META_KEY
}

/// The reply a meta command's proposer gets: the epoch it applied in, or why it was a
/// no-op.
fn outcome_frame(outcome: &Outcome) -> Frame {
    match outcome {
        Outcome::Applied { epoch } => Frame::Integer(*epoch as i64),
        Outcome::Rejected(why) => Frame::Error(format!("REJECTED {why}").into()),
    }
}

/// The executor thread's state.
pub struct Executor {
    store: Arc<Store>,
    /// The meta range's state as applied here; published to the rest of the node after
    /// every batch that changed it.
    meta: MetaState,
    published: tokio::sync::watch::Sender<Arc<MetaState>>,
    /// Decided transactions of an epoch the map here has not reached yet, and everything
    /// after them, in order (see [`Executor::apply`]).
    waiting: std::collections::VecDeque<ApplyItem>,
    metrics: Arc<Metrics>,
    applied: HashMap<u64, u64>,
    last_flush: Instant,
    dirty: bool,
    /// The highest sync point over every range applied and not yet reported durable.
    synced: Option<TxnId>,
    /// Exclusive sync points (history cuts) applied and not yet reported durable.
    cuts: Vec<TxnId>,
    /// Storage flushes that failed in a row.
    flush_failures: u32,
    /// How often applied state is made durable ([`FLUSH_EVERY`]; tests make it zero).
    flush_every: Duration,
    core: tokio::sync::mpsc::Sender<Event>,
    /// The FLUSHALL floor whose leftovers are deleted from storage, and where the deletion
    /// goes on (see [`Executor::purge_flushed`]).
    purged_floor: u64,
    /// Where the purge of the floor goes on (a user key), and that floor.
    purge_from: Option<(u64, Bytes)>,
    /// Replies that found a key expired, held until this node's clock is
    /// `max_clock_offset_ms` past the expiry (see [`Executor::send_reply`]), by due time.
    held: std::collections::BTreeMap<(u64, u64), (oneshot::Sender<Frame>, Frame)>,
    held_seq: u64,
    max_clock_offset_ms: u64,
    /// The highest sync point over every range applied to storage here (read barriers
    /// wait on it).
    sync_applied: tokio::sync::watch::Sender<TxnId>,
    /// Applied writes not yet written to storage (see [`pending`]).
    pending: pending::Pending,
}

impl Executor {
    /// Loads the applied markers of every range. `meta` is the persisted meta state
    /// ([`crate::meta::load_or_init`]), which this executor then owns and publishes.
    ///
    /// # Errors
    /// Storage cannot be read.
    pub fn new(
        store: Arc<Store>,
        meta: MetaState,
        published: tokio::sync::watch::Sender<Arc<MetaState>>,
        metrics: Arc<Metrics>,
        core: tokio::sync::mpsc::Sender<Event>,
    ) -> anyhow::Result<Executor> {
        let mut applied = HashMap::new();
        // Ranges of the kept history too: a txn of an earlier epoch replayed after a restart
        // counts in its own epoch's range, merged away or not.
        let mut ids: Vec<holo_accord::RangeId> = meta
            .history()
            .flat_map(|(_, ranges)| ranges.iter().map(|r| r.id))
            .chain(meta.map().ranges().iter().map(|r| r.id))
            .chain([META_RANGE])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let marker = store.applied(StoreRangeId(id.0))?.unwrap_or_default();
            applied.insert(id.0, marker.index);
            metrics.set_applied(id.0, marker.index);
        }
        metrics.observe_meta(&meta);
        let pending = pending::Pending::new(
            Arc::clone(&store),
            "holo-writer".into(),
            Arc::clone(&metrics),
        )?;
        Ok(Executor {
            store,
            meta,
            published,
            waiting: std::collections::VecDeque::new(),
            metrics,
            applied,
            last_flush: Instant::now(),
            dirty: false,
            synced: None,
            cuts: Vec::new(),
            flush_failures: 0,
            flush_every: FLUSH_EVERY,
            core,
            purged_floor: 0,
            purge_from: None,
            held: std::collections::BTreeMap::new(),
            held_seq: 0,
            max_clock_offset_ms: 0,
            sync_applied: tokio::sync::watch::Sender::new(TxnId(Timestamp::ZERO)),
            pending,
        })
    }

    /// Holds replies that found a key expired until this node's clock is `ms` past the
    /// expiry (`accord.max_clock_offset_ms`; 0 by default here, for tests).
    pub fn with_max_clock_offset(mut self, ms: u64) -> Executor {
        self.max_clock_offset_ms = ms;
        self
    }

    /// Sends a reply, or holds it if it found a key expired less than
    /// `max_clock_offset_ms` ago by this node's clock. Expiry is decided at executeAt; a
    /// command a client sends after this reply may be coordinated by a node whose clock is
    /// behind, with an executeAt before the expiry, and see the key alive again. Once this
    /// node's clock is the largest offset past the expiry, every node's is past it.
    fn send_reply(&mut self, reply: oneshot::Sender<Frame>, executed: cmd::op::Executed) {
        let due = executed
            .expired_seen
            .saturating_add(self.max_clock_offset_ms);
        if executed.expired_seen == 0 || wall_ms() >= due {
            let _ = reply.send(executed.frame);
            return;
        }
        self.held_seq += 1;
        self.held
            .insert((due, self.held_seq), (reply, executed.frame));
    }

    /// Sends the held replies that are due; returns how long until the next one is.
    fn release_held(&mut self) -> Option<Duration> {
        let now = wall_ms();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > now {
                return Some(Duration::from_millis(entry.key().0 - now));
            }
            let (reply, frame) = entry.remove();
            let _ = reply.send(frame);
        }
        None
    }

    /// The highest sync point over every range applied to storage here, as it moves.
    pub fn sync_applied(&self) -> tokio::sync::watch::Receiver<TxnId> {
        self.sync_applied.subscribe()
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
            let held = self.release_held();
            let wait = if self.purge_target().is_some() {
                Duration::from_millis(1)
            } else {
                self.flush_every
                    .min(held.unwrap_or(Duration::MAX))
                    .min(self.pending.due_in().unwrap_or(Duration::MAX))
                    // A finished commit frees its copy, and a failed one stops the node.
                    .min(if self.pending.committing() {
                        Duration::from_millis(5)
                    } else {
                        Duration::MAX
                    })
                    .max(Duration::from_millis(1))
            };
            let first = match rx.recv_timeout(wait) {
                Ok(items) => items,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.commit_if_due()?;
                    self.purge_flushed()?;
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
            self.commit_if_due()?;
            self.purge_flushed()?;
            self.flush_if_due()?;
            self.report_synced();
        }
        // Shutting down: nothing is reported after this, and the WAL covers what is lost.
        self.commit()?;
        if let Err(e) = self.store.flush() {
            tracing::warn!("final storage flush failed: {e}");
        }
        Ok(())
    }

    /// The floor of a finished FLUSHALL whose leftovers storage may still hold.
    fn purge_target(&self) -> Option<u64> {
        let floor = self.meta.flush_floor(self.meta.epoch());
        let flushing = self
            .meta
            .operations()
            .iter()
            .any(|op| matches!(op.kind, holo_meta::OpKind::Flush { .. }));
        (floor > self.purged_floor && !flushing).then_some(floor)
    }

    /// Deletes a page of what a finished FLUSHALL left in storage: values written in an
    /// epoch below the current floor, which no transaction sees. Only once the flush is
    /// finished: until its history cut is done, transactions of the epoch before it may
    /// still read them. Each replica deletes the same keys on its own (they are invisible
    /// everywhere); a record replayed after a restart may write one again below the floor,
    /// and the purge after the restart deletes it again.
    ///
    /// # Errors
    /// [`Fatal::Apply`]: storage could not be read or written.
    fn purge_flushed(&mut self) -> Result<(), Fatal> {
        const PAGE: usize = 4096;
        let Some(floor) = self.purge_target() else {
            return Ok(());
        };
        // The scan below reads storage, and its deletes must not be overwritten by older
        // held writes.
        self.commit()?;
        // A newer flush while one purge is under way starts over: keys before the position
        // may hold values of the epochs between the two.
        let from = match self.purge_from.take() {
            Some((f, from)) if f == floor => from,
            _ => Bytes::new(),
        };
        let mut batch = WriteBatch::new();
        let next = scan_user_page(&self.store, &from, None, PAGE, |key, v| {
            if decode_value(v).is_some_and(|(version, _)| version.epoch < floor) {
                batch.delete(storage_key(key));
            }
        })
        .map_err(Fatal::Apply)?;
        match next {
            Some(next) => self.purge_from = Some((floor, next)),
            None => self.purged_floor = floor,
        }
        if !batch.is_empty() {
            self.metrics
                .flushed_purged
                .fetch_add(batch.ops.len() as u64, Ordering::Relaxed);
            self.store.write(&batch).map_err(Fatal::Apply)?;
            self.dirty = true;
        }
        Ok(())
    }

    /// Tells the core the highest sync point whose applied state is durable in storage.
    fn report_synced(&mut self) {
        if self.dirty {
            return;
        }
        // The core never waits for the executor, so these waits are short.
        for id in std::mem::take(&mut self.cuts) {
            let _ = self.core.blocking_send(Event::CutDurable(id));
        }
        if let Some(id) = self.synced.take() {
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
        // A history cut applied here is flushed at once: a split or merge waits for it,
        // and they are rare.
        let due = self.last_flush.elapsed() >= self.flush_every || !self.cuts.is_empty();
        if !self.dirty || !due {
            return Ok(());
        }
        self.last_flush = Instant::now();
        self.commit()?;
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

    /// The stored values of `keys`, held writes first.
    ///
    /// # Errors
    /// [`Fatal::Apply`]: storage could not be read.
    fn load(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Fatal> {
        let mut values = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.pending.get(key) {
                Some(held) => values[i] = held.map(<[u8]>::to_vec),
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            let refs: Vec<&[u8]> = missing.iter().map(|&i| keys[i]).collect();
            let stored = self.store.multi_get(&refs).map_err(Fatal::Apply)?;
            for (i, value) in missing.into_iter().zip(stored) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// Waits until every applied write is in storage.
    ///
    /// # Errors
    /// [`Fatal::Apply`]: storage could not be written. The writes were applied and their
    /// replies sent, so the node must stop; the WAL holds every decision for the restart.
    fn commit(&mut self) -> Result<(), Fatal> {
        self.pending.commit_all().map_err(Fatal::Apply)
    }

    /// Starts writing the held writes to storage if they are due; never waits.
    ///
    /// # Errors
    /// As [`Executor::commit`].
    fn commit_if_due(&mut self) -> Result<(), Fatal> {
        self.pending.commit_if_due().map_err(Fatal::Apply)
    }

    /// Applies one batch (its writes are held until the next commit takes them, with those
    /// of the batches before it), then answers the clients.
    ///
    /// Meta commands go first, in their order: they conflict with no data transaction, so
    /// each replica may execute them anywhere among those, and nothing a data transaction
    /// does depends on them except through the map of its own epoch. A data transaction or
    /// sync point of an epoch this node's map has not reached yet (its coordinator applied
    /// the split or merge first) waits here, with everything after it, until the meta
    /// command that creates the epoch is applied: then every replica resolves it by the
    /// same descriptors.
    ///
    /// # Errors
    /// [`Fatal::Apply`]: storage could not be read or written.
    pub fn apply(&mut self, items: Vec<ApplyItem>) -> Result<(), Fatal> {
        let started = Instant::now();
        let mut batch = WriteBatch::new();
        let mut replies = Vec::new();
        // Ephemeral reads to go again as transactions.
        let mut again = Vec::new();
        let mut skipped = 0u64;
        let mut meta_applied = 0u64;
        // Topologies of the epochs this batch's meta commands created, in order.
        let mut adopted: Vec<Topology> = Vec::new();
        let oldest_before = self.meta.oldest_epoch();
        for item in items {
            if !is_meta(&item.txn) {
                self.waiting.push_back(item);
                continue;
            }
            // Versioned by executeAt like any key: a replayed command storage already
            // reflects is skipped.
            if item.execute_at <= self.meta.applied_at() {
                skipped += 1;
                continue;
            }
            let frame = match MetaCommand::decode(&item.txn.op) {
                Ok(command) => {
                    let epoch = self.meta.epoch();
                    let outcome = self.meta.apply(&command, item.execute_at);
                    if self.meta.epoch() != epoch {
                        adopted.push(self.meta.map().topology());
                    }
                    outcome_frame(&outcome)
                }
                // Every replica holds the same bytes and refuses them alike.
                Err(e) => Frame::Error(format!("ERR malformed meta command: {e}").into()),
            };
            meta_applied += 1;
            replies.extend(item.reply.into_iter().zip([cmd::op::Executed {
                frame,
                expired_seen: 0,
            }]));
        }
        let ready_len = self
            .waiting
            .iter()
            .position(|item| item.txn.id.0.epoch.max(item.execute_at.epoch) > self.meta.epoch())
            .unwrap_or(self.waiting.len());
        let items: Vec<ApplyItem> = self.waiting.drain(..ready_len).collect();
        self.metrics
            .apply_waiting_epoch
            .store(self.waiting.len() as u64, Ordering::Relaxed);

        // Whether each item reads its keys: for the idempotence check, or for its op.
        let reads: Vec<bool> = items
            .iter()
            .map(|item| {
                let writes = item.txn.keys.iter().any(|(_, a)| *a == Access::Write);
                let blind = writes && !item.restored && cmd::op::reads_nothing(&item.txn.op);
                (writes || !item.reply.is_empty()) && !blind
            })
            .collect();
        let mut wanted: Vec<Bytes> = Vec::new();
        for (item, _) in items.iter().zip(&reads).filter(|(_, reads)| **reads) {
            wanted.extend(item.txn.keys.iter().map(|(k, _)| k.clone()));
        }
        wanted.sort_unstable();
        wanted.dedup();
        let storage_keys: Vec<Vec<u8>> = wanted.iter().map(|k| storage_key(k)).collect();
        let refs: Vec<&[u8]> = storage_keys.iter().map(Vec::as_slice).collect();
        let loaded = self.load(&refs)?;
        let mut slots: HashMap<Bytes, Option<Slot>> = HashMap::with_capacity(wanted.len());
        for (key, value) in wanted.into_iter().zip(loaded) {
            let slot = value
                .as_deref()
                .and_then(decode_value)
                .map(|(version, value)| Slot { version, value });
            slots.insert(key, slot);
        }

        // The highest sync point over every range in this batch.
        let mut barrier: Option<TxnId> = None;
        // Applied counts per range, with the range's generation in the counting epoch.
        let mut touched: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut load: HashMap<u64, u64> = HashMap::new();
        if meta_applied > 0 {
            touched.insert(META_RANGE.0, (0, meta_applied));
        }
        for (item, reads) in items.into_iter().zip(reads) {
            let epoch = item.txn.id.0.epoch;
            if item.txn.id.is_sync_point() {
                let scope = item.txn.scope.as_ref();
                match scope {
                    None => {
                        self.synced = self.synced.max(Some(item.txn.id));
                        barrier = barrier.max(Some(item.txn.id));
                    }
                    Some(_) => self.cuts.push(item.txn.id),
                }
                // Nothing below it (in its span) executes after it: from here on the
                // markers of its ranges carry the generations of its epoch (or a later one).
                for r in self.meta.ranges_resolving(epoch) {
                    if scope.is_none_or(|s| s.overlaps(&r.start, r.end.as_deref())) {
                        touched.entry(r.id.0).or_insert((r.generation, 0)).0 = r.generation;
                    }
                }
                continue;
            }
            // By the map of the txn's own epoch, so every replica and every replay counts
            // it alike (the epoch's descriptors stay in the history until every txn of it
            // applied everywhere).
            let mut counted: Vec<&holo_meta::RangeDescriptor> = item
                .txn
                .keys
                .iter()
                .map(|(k, _)| self.meta.descriptor_at(epoch, k))
                .collect();
            // The load of each range: key accesses (the controller splits hot ranges).
            for r in &counted {
                *load.entry(r.id.0).or_default() += 1;
            }
            let writes = item.txn.keys.iter().any(|(_, a)| *a == Access::Write);
            if writes {
                let applied_before = reads
                    && item.txn.keys.iter().any(|(k, _)| {
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
                floor: self.meta.flush_floor(item.execute_at.epoch),
            };
            let frames = cmd::execute_all(&item.txn.op, &mut overlay, item.execute_at.hlc / 1000);
            if !item.ephemeral.is_empty() && frames.iter().any(|f| f.expired_seen != 0) {
                let proposals = item.reply.into_iter().zip(item.ephemeral);
                again.extend(
                    proposals.map(|(reply, (key, op))| {
                        crate::core::Proposal::read_as_txn(reply, key, op)
                    }),
                );
                continue;
            }
            if writes {
                counted.sort_unstable_by_key(|r| r.id);
                counted.dedup_by_key(|r| r.id);
                for r in counted {
                    let entry = touched.entry(r.id.0).or_insert((r.generation, 0));
                    entry.0 = r.generation;
                    entry.1 += 1;
                }
            }
            replies.extend(item.reply.into_iter().zip(frames));
        }
        self.metrics.add_range_load(&load);
        for (range, (generation, count)) in touched {
            let index = self.applied.entry(range).or_default();
            *index += count;
            batch.set_applied(
                StoreRangeId(range),
                AppliedMarker {
                    generation,
                    index: *index,
                },
            );
            self.metrics.set_applied(range, *index);
        }
        if meta_applied > 0 {
            // The map and the data it describes change in one atomic batch, so a restart
            // finds them consistent and replays the rest of both from the WAL.
            batch.put(crate::meta::STATE_KEY, self.meta.encode());
        }
        let written = batch.ops.len() as u64;
        if !batch.is_empty() {
            self.pending.add(batch);
            self.dirty = true;
        }
        if meta_applied > 0 {
            // Rare, and the rest of the node acts on the new map at once: in storage now,
            // as the data before it.
            self.commit()?;
        }
        if let Some(id) = barrier {
            // Read barriers read storage once this is published.
            self.commit()?;
            self.sync_applied.send_if_modified(|at| {
                let newer = id > *at;
                *at = (*at).max(id);
                newer
            });
        }
        if meta_applied > 0 {
            self.metrics.observe_meta(&self.meta);
            self.published.send_replace(Arc::new(self.meta.clone()));
            let oldest = self.meta.oldest_epoch();
            let retire_below = (oldest != oldest_before).then_some(oldest);
            if !adopted.is_empty() || retire_below.is_some() {
                // The core never waits for the executor, so this wait is short.
                let _ = self.core.blocking_send(Event::Meta {
                    topologies: adopted,
                    retire_below,
                });
            }
        }
        if !again.is_empty() {
            // The core never waits for the executor, so this wait is short.
            let _ = self.core.blocking_send(Event::Propose(again));
        }
        self.metrics
            .observe_apply_batch(replies.len() as u64, written, skipped, started.elapsed());
        for (reply, executed) in replies {
            self.send_reply(reply, executed);
        }
        Ok(())
    }
}

/// Calls `each` with every stored user key (without its prefix) in `[start, end)` (`end`
/// `None`: to the last user key) and its stored value, in key order, a page at a time.
///
/// # Errors
/// Storage cannot be read.
pub fn scan_user_keys(
    store: &Store,
    start: &[u8],
    end: Option<&[u8]>,
    mut each: impl FnMut(&[u8], &[u8]),
) -> anyhow::Result<()> {
    let mut from = Bytes::copy_from_slice(start);
    while let Some(next) = scan_user_page(store, &from, end, 4096, &mut each)? {
        from = next;
    }
    Ok(())
}

/// Calls `each` with up to `limit` (at least one) stored user keys (without their prefix)
/// from `start` on, before `end` if given, and their stored values, in key order; returns
/// the key the next page starts at, if any is left.
///
/// # Errors
/// Storage cannot be read.
pub fn scan_user_page(
    store: &Store,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<Option<Bytes>, holo_storage::StorageError> {
    let limit = limit.max(1);
    let to = end.map_or_else(|| vec![USER_PREFIX + 1], storage_key);
    let page = store.scan(&storage_key(start), Some(&to), limit + 1)?;
    for (i, (k, v)) in page.iter().enumerate() {
        if i == limit {
            return Ok(Some(Bytes::copy_from_slice(&k[1..])));
        }
        each(&k[1..], v);
    }
    Ok(None)
}

/// FNV-1a over every stored user key and its stored value (version and bytes, tombstones
/// included), in key order, and how many there are: two replicas that applied the same
/// history hold the same. A full scan of this node's copy.
///
/// # Errors
/// Storage cannot be read.
pub fn data_hash(store: &Store) -> anyhow::Result<(u64, u64)> {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut mix = |bytes: &[u8]| {
        // Length first, so that key and value boundaries count.
        for b in (bytes.len() as u64).to_be_bytes().iter().chain(bytes) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut keys = 0u64;
    scan_user_keys(store, &[], None, |k, v| {
        mix(&storage_key(k));
        mix(v);
        keys += 1;
    })?;
    Ok((hash, keys))
}

mod pending;
#[cfg(test)]
mod tests;
