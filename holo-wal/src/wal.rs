//! The log: appenders, the group-commit writer thread, replay and truncation.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{JoinHandle, Thread};

use tracing::{error, warn};

use crate::config::{PersistMode, WalConfig};
use crate::error::WalError;
use crate::fs::{WalFile, WalFs};
use crate::record::{Lsn, decode_record, encode_record};
use crate::recovery::{Segment, create_segment, recover, scan_records};

/// A segmented write-ahead log with group commit. See the crate docs.
///
/// `Wal` is `Sync`: share it by reference or in an `Arc` among appending threads and tasks.
/// Dropping it writes and syncs what is buffered, then stops the writer thread.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// Held for the life of the log so no second process opens the same directory.
    _lock: Option<std::fs::File>,
}

struct Shared {
    dir: PathBuf,
    config: WalConfig,
    fs: Arc<dyn WalFs>,
    state: Mutex<State>,
    /// Signalled when records are buffered while the writer is idle, or the log closes.
    work: Condvar,
    /// Signalled when the buffer drains, for appenders waiting for room.
    room: Condvar,
    /// Every record below this LSN is durable. Written only by the writer, under the state
    /// lock (so checks made under the lock see a settled value); read without it too.
    durable_below: AtomicU64,
    /// Set once the log has failed.
    failed: AtomicBool,
    /// The segments on disk, oldest first; the last is the one being written.
    segments: Mutex<Vec<Segment>>,
    next_waiter_id: AtomicU64,
}

struct State {
    /// Encoded records waiting for the writer.
    pending: Vec<u8>,
    /// The LSN the next appended record gets.
    next_lsn: Lsn,
    /// Callers waiting for durability. Each is woken individually (no broadcast, so no
    /// thundering herd on the lock) once the LSN it waits for is durable.
    waiters: Vec<Waiter>,
    /// Appenders waiting for room in `pending`.
    room_waiters: usize,
    /// The writer is waiting for work (so appenders know to signal it).
    writer_idle: bool,
    failure: Option<String>,
    closing: bool,
    // Statistics.
    group_writes: u64,
    records_written: u64,
}

/// A caller waiting until `lsn` is durable.
struct Waiter {
    lsn: Lsn,
    wake: Wake,
}

enum Wake {
    Thread(Thread),
    Task { id: u64, waker: Waker },
}

impl State {
    fn check_open(&self) -> Result<(), WalError> {
        if let Some(failure) = &self.failure {
            return Err(WalError::Poisoned(failure.clone()));
        }
        if self.closing {
            return Err(WalError::Closed);
        }
        Ok(())
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    /// Group writes (each followed by one sync, per the persist mode).
    pub group_writes: u64,
    /// Records written.
    pub records_written: u64,
    /// Every record below this LSN is durable.
    pub durable_below: Lsn,
    /// Segments on disk.
    pub segments: usize,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` on the operating system's file system.
    ///
    /// # Errors
    /// [`WalError::Config`] for bad settings, [`WalError::Corruption`] for a damaged log (the
    /// message names the file and offset), [`WalError::Io`] when the disk fails.
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal, WalError> {
        Self::open_with_fs(crate::fs::StdFs::shared(), dir, config)
    }

    /// Opens the log on a given file system (tests use [`crate::sim::SimFs`]).
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with_fs(
        fs: Arc<dyn WalFs>,
        dir: impl AsRef<Path>,
        config: WalConfig,
    ) -> Result<Wal, WalError> {
        config.validate()?;
        let dir = dir.as_ref().to_owned();
        if config.persist == PersistMode::Buffer {
            warn!(dir = %dir.display(), "WAL persist mode is `buffer`: appends are not synced to disk and a power loss loses them; use it for benchmarks only");
        }
        fs.create_dir_all(&dir)
            .map_err(|e| WalError::io(format!("create {}", dir.display()), e))?;
        let lock = fs.lock_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => WalError::Locked { dir: dir.clone() },
            _ => WalError::io(format!("lock {}", dir.display()), e),
        })?;
        let recovered = recover(&*fs, &dir, &config)?;
        let state = State {
            pending: Vec::new(),
            next_lsn: recovered.next_lsn,
            waiters: Vec::new(),
            room_waiters: 0,
            writer_idle: false,
            failure: None,
            closing: false,
            group_writes: 0,
            records_written: 0,
        };
        let shared = Arc::new(Shared {
            dir,
            config,
            fs,
            state: Mutex::new(state),
            work: Condvar::new(),
            room: Condvar::new(),
            durable_below: AtomicU64::new(recovered.next_lsn),
            failed: AtomicBool::new(false),
            segments: Mutex::new(recovered.segments),
            next_waiter_id: AtomicU64::new(0),
        });
        let writer = Writer {
            shared: shared.clone(),
            file: recovered.active,
            file_len: recovered.active_len,
            zeroed_end: recovered.active_size,
            spare: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("holo-wal-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| WalError::io("spawn the WAL writer thread", e))?;
        Ok(Wal {
            shared,
            writer: Some(handle),
            _lock: lock,
        })
    }

    /// Appends one record and waits until it is durable. Returns its LSN.
    ///
    /// # Errors
    /// [`WalError::RecordTooLarge`] (nothing appended), [`WalError::Poisoned`] or
    /// [`WalError::Closed`].
    pub fn append(&self, payload: &[u8]) -> Result<Lsn, WalError> {
        let lsn = self.enqueue(&[payload], Some(std::thread::current()))?;
        self.park_until_durable(lsn)?;
        Ok(lsn)
    }

    /// Buffers records for the writer without waiting; they get consecutive LSNs, are written
    /// in that order and, being in one group write or consecutive ones, a crash keeps a prefix
    /// of them. Returns the LSN of the last one (or the last LSN assigned so far when
    /// `payloads` is empty). Waits only while the buffer is full.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn submit(&self, payloads: &[&[u8]]) -> Result<Lsn, WalError> {
        self.enqueue(payloads, None)
    }

    /// Blocks until every record up to and including `lsn` is durable.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] if the log failed before that point; [`WalError::NotAppended`]
    /// if no record has that LSN yet (waiting for it could never end).
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        if self.shared.durable_below.load(Ordering::Acquire) > lsn {
            return Ok(());
        }
        {
            let mut state = self.shared.lock();
            if self.shared.durable_below.load(Ordering::Acquire) > lsn {
                return Ok(());
            }
            if lsn >= state.next_lsn {
                return Err(WalError::NotAppended {
                    lsn,
                    next: state.next_lsn,
                });
            }
            if let Some(failure) = &state.failure {
                return Err(WalError::Poisoned(failure.clone()));
            }
            state.waiters.push(Waiter {
                lsn,
                wake: Wake::Thread(std::thread::current()),
            });
        }
        self.park_until_durable(lsn)
    }

    /// Encodes records into the pending buffer and, given a thread, registers it to be woken
    /// when the last one is durable, all under one lock acquisition.
    fn enqueue(&self, payloads: &[&[u8]], waiter: Option<Thread>) -> Result<Lsn, WalError> {
        let max = self.shared.config.record_bytes_max;
        if let Some(p) = payloads
            .iter()
            .find(|p| !u32::try_from(p.len()).is_ok_and(|len| len <= max))
        {
            return Err(WalError::RecordTooLarge { len: p.len(), max });
        }
        let bytes: usize = payloads
            .iter()
            .map(|p| p.len() + crate::record::RECORD_HEADER_BYTES)
            .sum();
        let mut state = self.shared.lock();
        loop {
            state.check_open()?;
            let room = self
                .shared
                .config
                .pending_bytes_max
                .saturating_sub(state.pending.len());
            if bytes <= room || state.pending.is_empty() {
                break;
            }
            state.room_waiters += 1;
            state = self.shared.wait(&self.shared.room, state);
            state.room_waiters -= 1;
        }
        for payload in payloads {
            let lsn = state.next_lsn;
            encode_record(&mut state.pending, lsn, payload);
            state.next_lsn += 1;
        }
        let last = state.next_lsn - 1;
        if let Some(thread) = waiter {
            state.waiters.push(Waiter {
                lsn: last,
                wake: Wake::Thread(thread),
            });
        }
        let wake_writer = state.writer_idle && !payloads.is_empty();
        drop(state);
        if wake_writer {
            self.shared.work.notify_one();
        }
        Ok(last)
    }

    /// Parks the calling thread (registered as a waiter for `lsn`) until `lsn` is durable.
    fn park_until_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        loop {
            if self.shared.durable_below.load(Ordering::Acquire) > lsn {
                return Ok(());
            }
            if self.shared.failed.load(Ordering::Acquire) {
                let failure = self.shared.lock().failure.clone().unwrap_or_default();
                return Err(WalError::Poisoned(failure));
            }
            std::thread::park();
        }
    }

    /// A future that resolves when every record up to and including `lsn` is durable, for
    /// async callers; it needs no particular runtime.
    pub fn durable(&self, lsn: Lsn) -> DurableFuture {
        let id = self.shared.next_waiter_id.fetch_add(1, Ordering::Relaxed);
        DurableFuture {
            shared: self.shared.clone(),
            lsn,
            id,
        }
    }

    /// Every record below this LSN is durable.
    pub fn durable_below(&self) -> Lsn {
        self.shared.durable_below.load(Ordering::Acquire)
    }

    /// The lowest LSN still in the log (records below it were truncated).
    pub fn first_lsn(&self) -> Lsn {
        self.shared.segments().first().map_or(1, |s| s.first_lsn)
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.shared.lock().next_lsn
    }

    /// Counters for metrics.
    pub fn stats(&self) -> WalStats {
        let segments = self.shared.segments().len();
        let state = self.shared.lock();
        WalStats {
            group_writes: state.group_writes,
            records_written: state.records_written,
            durable_below: self.shared.durable_below.load(Ordering::Acquire),
            segments,
        }
    }

    /// Reads back the durable records with LSN `from` and above, in order.
    ///
    /// # Errors
    /// [`WalError::Compacted`] if records at `from` were already truncated away (see
    /// [`Wal::first_lsn`]).
    /// [`WalError::Io`] if a segment cannot be read. Records that fail their checksum now
    /// (after [`Wal::open`] validated them) are reported as [`WalError::Corruption`].
    pub fn replay(&self, from: Lsn) -> Result<Replay, WalError> {
        let until = self.durable_below();
        let segments = self.shared.segments().clone();
        let first = segments.first().map_or(1, |s| s.first_lsn);
        let from = from.max(1);
        if from < first {
            return Err(WalError::Compacted {
                requested: from,
                first,
            });
        }
        let start = segments
            .partition_point(|s| s.first_lsn <= from)
            .saturating_sub(1);
        Ok(Replay {
            shared: self.shared.clone(),
            segments: segments[start..].to_vec(),
            from,
            until,
            current: Vec::new().into_iter(),
        })
    }

    /// Deletes every segment whose records all have LSNs below `lsn`. The segment being
    /// written is never deleted. Returns how many segments were deleted.
    ///
    /// # Errors
    /// [`WalError::Io`] if a removal or the directory sync fails.
    pub fn truncate_below(&self, lsn: Lsn) -> Result<usize, WalError> {
        let mut segments = self.shared.segments();
        let mut removed = 0;
        while segments.len() > 1 && segments[1].first_lsn <= lsn {
            let path = segments[0].path.clone();
            self.shared
                .fs
                .remove(&path)
                .map_err(|e| WalError::io(format!("remove {}", path.display()), e))?;
            segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            let dir = &self.shared.dir;
            self.shared
                .fs
                .sync_dir(dir)
                .map_err(|e| WalError::io(format!("sync directory {}", dir.display()), e))?;
        }
        Ok(removed)
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, cv: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        cv.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    fn segments(&self) -> MutexGuard<'_, Vec<Segment>> {
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The group-commit writer, on its own thread.
struct Writer {
    shared: Arc<Shared>,
    file: Box<dyn WalFile>,
    file_len: u64,
    /// The active segment's size: the bytes from `file_len` up to here are zeros, durable.
    zeroed_end: u64,
    /// The buffer swapped in for `pending`, kept to reuse its allocation.
    spare: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let mut state = self.shared.lock();
            while state.pending.is_empty() && !state.closing {
                state.writer_idle = true;
                state = self.shared.wait(&self.shared.work, state);
                state.writer_idle = false;
            }
            if state.pending.is_empty() {
                return;
            }
            let mut batch = std::mem::replace(&mut state.pending, std::mem::take(&mut self.spare));
            let durable_below = state.next_lsn;
            let records = durable_below - self.shared.durable_below.load(Ordering::Acquire);
            let room_waiters = state.room_waiters;
            drop(state);
            if room_waiters > 0 {
                // The buffer has room again: let blocked appenders fill the next batch.
                self.shared.room.notify_all();
            }
            let outcome = self.write_batch(&batch, durable_below);
            batch.clear();
            self.spare = batch;
            if let Err(e) = outcome {
                error!(error = %e, "WAL write failed; the log stops accepting appends");
                self.finish(Err(e.to_string()), durable_below, records);
                return;
            }
            self.finish(Ok(()), durable_below, records);
        }
    }

    fn write_batch(&mut self, batch: &[u8], next_lsn: Lsn) -> Result<(), WalError> {
        let path = self
            .shared
            .segments()
            .last()
            .expect("an active segment")
            .path
            .clone();
        let context = |verb: &str| format!("{verb} {}", path.display());
        self.file
            .write_at(self.file_len, batch)
            .map_err(|e| WalError::io(context("write"), e))?;
        self.file_len += batch.len() as u64;
        self.zero_ahead()
            .map_err(|e| WalError::io(context("write zeros ahead in"), e))?;
        let synced = match self.shared.config.persist {
            PersistMode::SyncData => self.file.sync_data(),
            PersistMode::SyncAll => self.file.sync_all(),
            PersistMode::Buffer => Ok(()),
        };
        synced.map_err(|e| WalError::io(context("sync"), e))?;
        if self.file_len >= self.shared.config.segment_bytes_target {
            self.rotate(next_lsn)?;
        }
        Ok(())
    }

    /// Once fewer than half of [`WalConfig::preallocate_bytes`] zeros are left after the
    /// records, writes that many more (up to the segment's target size), to be synced with
    /// the group write just made: later group writes then overwrite blocks the file has, and
    /// their sync commits data only. Run after the group write, so a crash that keeps a
    /// prefix of the writes never keeps zeros where records were meant to be.
    fn zero_ahead(&mut self) -> std::io::Result<()> {
        let config = &self.shared.config;
        let ahead = self.zeroed_end.saturating_sub(self.file_len);
        if config.preallocate_bytes == 0 || ahead >= config.preallocate_bytes / 2 {
            return Ok(());
        }
        let from = self.zeroed_end.max(self.file_len);
        let to = (self.file_len + config.preallocate_bytes).min(config.segment_bytes_target);
        if to > from {
            let zeros = vec![0u8; (to - from) as usize];
            self.file.write_at(from, &zeros)?;
        }
        self.zeroed_end = to.max(self.file_len);
        Ok(())
    }

    /// Closes the full segment (synced even in `buffer` mode, so only the last segment can
    /// ever have a torn tail) and starts the next one at `first_lsn`.
    fn rotate(&mut self, first_lsn: Lsn) -> Result<(), WalError> {
        if self.shared.config.persist == PersistMode::Buffer {
            self.file
                .sync_data()
                .map_err(|e| WalError::io("sync the full WAL segment", e))?;
        }
        let (file, segment) = create_segment(&*self.shared.fs, &self.shared.dir, first_lsn)?;
        self.file = file;
        self.file_len = crate::record::SEGMENT_HEADER_BYTES as u64;
        self.zeroed_end = self.file_len;
        self.shared.segments().push(segment);
        Ok(())
    }

    /// Publishes the outcome of a group write and wakes its waiters.
    fn finish(&self, outcome: Result<(), String>, durable_below: Lsn, records: u64) {
        let mut state = self.shared.lock();
        match outcome {
            Ok(()) => {
                state.group_writes += 1;
                state.records_written += records;
                self.shared
                    .durable_below
                    .store(durable_below, Ordering::Release);
            }
            Err(message) => {
                state.failure = Some(message);
                self.shared.failed.store(true, Ordering::Release);
            }
        }
        let failed = state.failure.is_some();
        let ready: Vec<Wake> = state
            .waiters
            .extract_if(.., |w| failed || w.lsn < durable_below)
            .map(|w| w.wake)
            .collect();
        let room_waiters = state.room_waiters;
        drop(state);
        if failed && room_waiters > 0 {
            self.shared.room.notify_all();
        }
        for wake in ready {
            match wake {
                Wake::Thread(thread) => thread.unpark(),
                Wake::Task { waker, .. } => waker.wake(),
            }
        }
    }
}

/// Resolves when a record is durable; see [`Wal::durable`].
pub struct DurableFuture {
    shared: Arc<Shared>,
    lsn: Lsn,
    id: u64,
}

impl Future for DurableFuture {
    type Output = Result<(), WalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.shared.durable_below.load(Ordering::Acquire) > self.lsn {
            return Poll::Ready(Ok(()));
        }
        let mut state = self.shared.lock();
        if self.shared.durable_below.load(Ordering::Acquire) > self.lsn {
            return Poll::Ready(Ok(()));
        }
        if let Some(failure) = &state.failure {
            return Poll::Ready(Err(WalError::Poisoned(failure.clone())));
        }
        if self.lsn >= state.next_lsn {
            return Poll::Ready(Err(WalError::NotAppended {
                lsn: self.lsn,
                next: state.next_lsn,
            }));
        }
        let id = self.id;
        let mine = state
            .waiters
            .iter_mut()
            .find(|w| matches!(w.wake, Wake::Task { id: i, .. } if i == id));
        match mine {
            Some(waiter) => {
                waiter.wake = Wake::Task {
                    id,
                    waker: cx.waker().clone(),
                }
            }
            None => state.waiters.push(Waiter {
                lsn: self.lsn,
                wake: Wake::Task {
                    id,
                    waker: cx.waker().clone(),
                },
            }),
        }
        Poll::Pending
    }
}

impl Drop for DurableFuture {
    fn drop(&mut self) {
        if self.shared.durable_below.load(Ordering::Acquire) > self.lsn {
            return;
        }
        let id = self.id;
        self.shared
            .lock()
            .waiters
            .retain(|w| !matches!(w.wake, Wake::Task { id: i, .. } if i == id));
    }
}

/// An iterator over durable records, from [`Wal::replay`].
pub struct Replay {
    shared: Arc<Shared>,
    segments: Vec<Segment>,
    from: Lsn,
    until: Lsn,
    current: std::vec::IntoIter<(Lsn, Vec<u8>)>,
}

impl Replay {
    /// Loads the next segment's records in range into `current`.
    fn load_next_segment(&mut self) -> Result<bool, WalError> {
        if self.segments.is_empty() {
            return Ok(false);
        }
        let segment = self.segments.remove(0);
        let path = &segment.path;
        let mut file = self
            .shared
            .fs
            .open(path)
            .map_err(|e| WalError::io(format!("open {}", path.display()), e))?;
        let bytes = file
            .read_all()
            .map_err(|e| WalError::io(format!("read {}", path.display()), e))?;
        let expected_end = self
            .segments
            .first()
            .map_or(self.until, |next| next.first_lsn);
        let expected_end = expected_end.min(self.until);
        let scan = scan_records(&bytes, segment.first_lsn, &self.shared.config);
        if scan.next_lsn < expected_end {
            let (offset, reason) = scan.bad.map_or_else(
                || (scan.valid_end, "segment ends early".to_owned()),
                |bad| (bad.offset, bad.reason),
            );
            return Err(WalError::Corruption {
                file: path.clone(),
                offset: offset as u64,
                reason,
                detail: "found during replay, after the log was opened",
            });
        }
        let mut records = Vec::new();
        let mut offset = crate::record::SEGMENT_HEADER_BYTES;
        for lsn in segment.first_lsn..expected_end {
            let (record, used) =
                decode_record(&bytes[offset..], self.shared.config.record_bytes_max)
                    .expect("scan_records validated these records");
            offset += used;
            if lsn >= self.from {
                records.push((lsn, record.payload.to_vec()));
            }
        }
        self.current = records.into_iter();
        Ok(true)
    }
}

impl Iterator for Replay {
    type Item = Result<(Lsn, Vec<u8>), WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.current.next() {
                return Some(Ok(record));
            }
            match self.load_next_segment() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.segments.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}
