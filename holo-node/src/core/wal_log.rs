//! The core's books of the WAL: the records a step produced, one submit for all of them,
//! where each live transaction's latest record sits, the garbage-collection cuts and the
//! release of the segments below them, and which submits are not durable yet.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use holo_accord::{Command, Timestamp, TxnId};
use holo_wal::{Lsn, Wal};

use crate::convert;
use crate::error::Fatal;
use crate::metrics::Metrics;

pub struct WalLog {
    wal: Arc<Wal>,
    metrics: Arc<Metrics>,
    /// Records of this step, not submitted yet.
    records: Vec<Vec<u8>>,
    /// The txn each record of `records` holds the state of (None: a clock or GC record).
    record_txns: Vec<Option<TxnId>>,
    /// Submits not yet known durable, in order: (last LSN, persist seq, when submitted).
    unsynced: VecDeque<(Lsn, u64, Instant)>,
    /// The LSN of the latest WAL record of every txn the Accord node holds: the oldest of
    /// them bounds what the WAL must keep.
    latest_lsn: HashMap<TxnId, Lsn>,
    /// Where the WAL was cut at the last GC: live records older than this are written
    /// again at the next one, so one long-lived txn never pins the whole log.
    last_cut_mark: Lsn,
    /// A release waiting for the records written with it to be durable: (cut, last LSN).
    release: Option<(Lsn, Lsn)>,
    /// Set while this step wrote a GC record: the cut to release once it is durable.
    cut_pending: Option<Lsn>,
    /// Where each released cut is saved for the next restart (see [`crate::checkpoint`]).
    checkpoint: Option<PathBuf>,
}

impl WalLog {
    pub fn new(wal: Arc<Wal>, metrics: Arc<Metrics>) -> WalLog {
        WalLog {
            wal,
            metrics,
            records: Vec::new(),
            record_txns: Vec::new(),
            unsynced: VecDeque::new(),
            latest_lsn: HashMap::new(),
            last_cut_mark: 0,
            release: None,
            cut_pending: None,
            checkpoint: None,
        }
    }

    /// Saves each released cut to `path`, where a restart starts reading the WAL.
    pub fn set_checkpoint(&mut self, path: PathBuf) {
        self.checkpoint = Some(path);
    }

    /// Where the WAL holds each live txn's latest record (from the replay at start).
    pub fn set_positions(&mut self, latest_lsn: HashMap<TxnId, Lsn>) {
        self.latest_lsn = latest_lsn;
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// A transaction's state, to be written.
    pub fn record(&mut self, command: &Command) {
        self.records.push(convert::encode_record(command));
        self.record_txns.push(Some(command.txn.id));
    }

    /// A clock reservation, to be written.
    pub fn reserve_clock(&mut self, upto: u64) {
        self.records.push(convert::encode_clock_record(upto));
        self.record_txns.push(None);
    }

    /// Every replica durably applied the sync point `floor`: records of txns the Accord node
    /// no longer holds (`held` finds the ones it does) are garbage. Writes the GC floor and the clock reservation (`clock`)
    /// again (so the old copies can go), rewrites live records older than the previous cut,
    /// and releases every segment below the oldest record still needed once these are
    /// durable.
    pub fn truncate<'a>(
        &mut self,
        held: impl Fn(&TxnId) -> Option<&'a Command>,
        floor: TxnId,
        max: Timestamp,
        clock: u64,
    ) {
        self.latest_lsn.retain(|id, _| held(id).is_some());
        let mark = self.wal.next_lsn();
        let stale: Vec<TxnId> = self
            .latest_lsn
            .iter()
            .filter(|(_, lsn)| **lsn < self.last_cut_mark)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let command = held(&id).expect("retained above");
            self.records.push(convert::encode_record(command));
            self.record_txns.push(Some(id));
            self.latest_lsn.remove(&id);
        }
        self.reserve_clock(clock);
        self.records
            .push(convert::encode_truncated_record(floor, max));
        self.record_txns.push(None);
        let oldest = self.latest_lsn.values().copied().min().unwrap_or(mark);
        self.cut_pending = Some(oldest.min(mark));
        self.last_cut_mark = mark;
    }

    /// Hands this step's records to the WAL in one submit (group commit does the rest);
    /// `seq` is the persist sequence number of the last of them.
    ///
    /// # Errors
    /// The WAL failed: the node must stop.
    pub fn submit(&mut self, seq: u64) -> Result<(), Fatal> {
        if self.records.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[u8]> = self.records.iter().map(Vec::as_slice).collect();
        let lsn = self.wal.submit(&refs).map_err(Fatal::Wal)?;
        self.metrics.wal_batch_records.observe(refs.len() as u64);
        let first = lsn + 1 - refs.len() as Lsn;
        for (i, id) in self.record_txns.drain(..).enumerate() {
            if let Some(id) = id {
                self.latest_lsn.insert(id, first + i as Lsn);
            }
        }
        if let Some(cut) = self.cut_pending.take() {
            self.release = Some((cut, lsn));
        }
        self.records.clear();
        self.unsynced.push_back((lsn, seq, Instant::now()));
        Ok(())
    }

    /// The last LSN submitted and not known durable: what to wait for next.
    pub fn awaited(&self) -> Option<Lsn> {
        self.unsynced.back().map(|&(lsn, _, _)| lsn)
    }

    /// The persist sequence number of the latest submit that became durable since the last
    /// call, if any (an atomic load when nothing did).
    pub fn newly_durable(&mut self) -> Option<u64> {
        let below = self.wal.durable_below();
        let mut seq = None;
        while let Some(&(lsn, s, at)) = self.unsynced.front() {
            if lsn >= below {
                break;
            }
            self.unsynced.pop_front();
            self.metrics
                .wal_commit_latency
                .observe(at.elapsed().as_micros() as u64);
            seq = Some(s);
        }
        seq
    }

    /// Deletes the WAL segments below a cut once the records written with it are durable.
    pub fn release_segments(&mut self) {
        let Some((cut, last)) = self.release else {
            return;
        };
        if self.wal.durable_below() <= last {
            return;
        }
        self.release = None;
        if let Some(path) = &self.checkpoint
            && let Err(e) = crate::checkpoint::write(path, cut)
        {
            // A stale checkpoint only makes the next restart replay more.
            tracing::warn!(
                "saving the WAL replay checkpoint {} failed: {e}",
                path.display()
            );
        }
        match self.wal.truncate_below(cut) {
            Ok(removed) => {
                self.metrics
                    .wal_segments_released
                    .fetch_add(removed as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("releasing WAL segments failed: {e}"),
        }
    }
}
