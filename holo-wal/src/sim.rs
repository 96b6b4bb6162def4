//! A lossy, in-memory file system that simulates crashes, for tests of the WAL.
//!
//! Each file keeps a durable image (what survives a crash: the content as of its last sync)
//! and the current content the process sees. Directory entries are durable only after
//! `sync_dir`. [`SimFs::crash`] picks, per file and from a seed, what a real disk might hold
//! after power loss: nothing of the unsynced writes, all of them, a prefix of whole writes, a
//! torn prefix cut at any byte, a prefix followed by zeros (size updated, data not), or a
//! prefix whose last bytes have one bit flipped. The model assumes, as ext4 and xfs give for
//! appends, that a crash keeps a prefix of unsynced appends: it never persists a later page of
//! a write while losing an earlier one. Entries never synced may vanish; removals never synced may be
//! undone. Synced data is never altered.
//!
//! [`SimFs::crash_at_sync`] makes the N-th sync fail and freezes the file system (every later
//! call fails too), which lets a test crash the log at every fsync boundary of a workload.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{WalFile, WalFs};

/// A small deterministic generator (SplitMix64) for crash choices and test workloads.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next_u64().is_multiple_of(one_in)
    }
}

#[derive(Debug, Default, Clone)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// End offsets (in `current`) of the writes since the last sync, when the file has only
    /// grown since then.
    write_ends: Vec<usize>,
    entry_durable: bool,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<PathBuf, SimFile>,
    /// Durable entries removed since the last `sync_dir`, in order, with their durable
    /// content. A crash keeps a prefix of these removals (a journaling file system commits
    /// directory operations in order) and undoes the rest.
    removed: Vec<(PathBuf, Vec<u8>)>,
    syncs: u64,
    crash_at_sync: Option<u64>,
    frozen: bool,
}

impl SimState {
    fn check_live(&self) -> io::Result<()> {
        if self.frozen { Err(crashed()) } else { Ok(()) }
    }

    /// Counts a sync; fails (and freezes) if it is the one chosen to crash.
    fn count_sync(&mut self) -> io::Result<()> {
        self.check_live()?;
        self.syncs += 1;
        if self.crash_at_sync == Some(self.syncs) {
            self.frozen = true;
            return Err(crashed());
        }
        Ok(())
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut SimFile> {
        self.files
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the file system is frozen")
}

/// The lossy file system. Clones share the same files.
#[derive(Debug, Default, Clone)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Syncs (file and directory) made so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Makes the `n`-th sync from the start (1-based, as counted by [`Self::sync_count`]) fail
    /// and freeze the file system.
    pub fn crash_at_sync(&self, n: u64) {
        self.lock().crash_at_sync = Some(n);
    }

    /// Freezes the file system now: every later call fails, as if the machine had stopped.
    pub fn freeze(&self) {
        self.lock().frozen = true;
    }

    /// Simulates the crash: replaces every file by what a disk might hold afterwards (chosen
    /// from `seed`) and unfreezes. Returns a line per file saying what was chosen.
    pub fn crash(&self, seed: u64) -> Vec<String> {
        let mut rng = SimRng::new(seed);
        let mut state = self.lock();
        let mut report = Vec::new();
        let files = std::mem::take(&mut state.files);
        for (path, file) in files {
            if !file.entry_durable && rng.chance(2) {
                report.push(format!("{}: entry lost", path.display()));
                continue;
            }
            let (content, what) = crash_content(&file, &mut rng);
            report.push(format!(
                "{}: {what}, {} bytes",
                path.display(),
                content.len()
            ));
            state.files.insert(path, settled(content));
        }
        let removed = std::mem::take(&mut state.removed);
        let kept = rng.upto(removed.len());
        for (path, durable) in removed.into_iter().skip(kept) {
            report.push(format!("{}: removal undone", path.display()));
            state.files.insert(path, settled(durable));
        }
        state.frozen = false;
        state.crash_at_sync = None;
        report
    }

    /// Flips one bit of a file's durable content and current content alike (disk rot).
    ///
    /// # Panics
    /// If the file does not exist or is shorter than `bit / 8`.
    pub fn flip_bit(&self, path: &Path, bit: u64) {
        let mut state = self.lock();
        let file = state.files.get_mut(path).expect("flip_bit: no such file");
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        file.durable[byte] ^= mask;
        file.current[byte] ^= mask;
    }

    /// Paths of the files that exist now.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().files.keys().cloned().collect()
    }

    /// Bytes written but not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> usize {
        let state = self.lock();
        state
            .files
            .values()
            .map(|f| {
                if f.current == f.durable {
                    0
                } else {
                    f.current.len().abs_diff(f.durable.len()).max(1)
                }
            })
            .sum()
    }

    /// The current length of a file.
    pub fn len_of(&self, path: &Path) -> Option<u64> {
        self.lock().files.get(path).map(|f| f.current.len() as u64)
    }
}

fn settled(content: Vec<u8>) -> SimFile {
    SimFile {
        durable: content.clone(),
        current: content,
        write_ends: Vec::new(),
        entry_durable: true,
    }
}

/// What one file holds after a crash, and a word on how that was chosen.
fn crash_content(file: &SimFile, rng: &mut SimRng) -> (Vec<u8>, &'static str) {
    let grown = file.current.len() >= file.durable.len()
        && file.current[..file.durable.len()] == file.durable[..];
    if !grown {
        // Truncated since the last sync: either the old or the new size took.
        return if rng.chance(2) {
            (file.durable.clone(), "truncation lost")
        } else {
            (file.current.clone(), "truncation kept")
        };
    }
    let base = file.durable.len();
    let overlay = &file.current[base..];
    if overlay.is_empty() {
        return (file.durable.clone(), "synced");
    }
    let keep = |n: usize| file.current[..base + n].to_vec();
    match rng.upto(5) {
        0 => (file.durable.clone(), "unsynced writes lost"),
        1 => (file.current.clone(), "unsynced writes kept"),
        2 => {
            let k = rng.upto(file.write_ends.len());
            let end = if k == 0 { base } else { file.write_ends[k - 1] };
            (file.current[..end].to_vec(), "whole unsynced writes kept")
        }
        3 => (keep(rng.upto(overlay.len())), "torn write"),
        4 => {
            let kept = rng.upto(overlay.len());
            let mut content = keep(kept);
            content.resize(base + kept + rng.upto(overlay.len() - kept), 0);
            (content, "torn write, zero-filled")
        }
        _ => {
            // The flip lands in the last 16 bytes kept (16 bytes is the smallest record), so it
            // hits the last, possibly torn, record: a crash garbles the tail, it does not rot
            // a record and leave later ones intact (that is mid-log corruption, tested apart).
            let kept = 1 + rng.upto(overlay.len() - 1);
            let mut content = keep(kept);
            let window = kept.min(16);
            let byte = content.len() - 1 - rng.upto(window - 1);
            content[byte] ^= 1 << rng.upto(7);
            (content, "unsynced bit flipped")
        }
    }
}

struct SimHandle {
    fs: SimFs,
    path: PathBuf,
}

impl WalFs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.lock().check_live()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        state.check_live()?;
        let names = state.files.keys().filter(|p| p.parent() == Some(dir));
        Ok(names
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut state = self.lock();
        state.check_live()?;
        if state.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}", path.display()),
            ));
        }
        state.files.insert(path.to_owned(), SimFile::default());
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            path: path.to_owned(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut state = self.lock();
        state.check_live()?;
        state.file(path)?;
        Ok(Box::new(SimHandle {
            fs: self.clone(),
            path: path.to_owned(),
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.check_live()?;
        let file = state.files.remove(path).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display()))
        })?;
        if file.entry_durable {
            state.removed.push((path.to_owned(), file.durable));
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.count_sync()?;
        for (path, file) in state.files.iter_mut() {
            if path.parent() == Some(dir) {
                file.entry_durable = true;
            }
        }
        state.removed.retain(|(path, _)| path.parent() != Some(dir));
        Ok(())
    }

    fn lock_dir(&self, _dir: &Path) -> io::Result<Option<std::fs::File>> {
        self.lock().check_live()?;
        Ok(None)
    }
}

impl SimHandle {
    fn with<T>(&self, f: impl FnOnce(&mut SimFile) -> T) -> io::Result<T> {
        let mut state = self.fs.lock();
        state.check_live()?;
        Ok(f(state.file(&self.path)?))
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.count_sync()?;
        let file = state.file(&self.path)?;
        file.durable = file.current.clone();
        file.write_ends.clear();
        Ok(())
    }
}

impl WalFile for SimHandle {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.with(|f| f.current.clone())
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.with(|f| {
            f.current.extend_from_slice(data);
            f.write_ends.push(f.current.len());
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|f| {
            f.current.resize(len as usize, 0);
            f.write_ends.retain(|&end| end <= len as usize);
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }
}
