//! A lossy, in-memory file system that simulates crashes, for tests of the WAL.
//!
//! Each file keeps a durable image (what survives a crash: the content as of its last sync),
//! the current content the process sees and the writes made since the last sync, in order.
//! Directory entries are durable only after `sync_dir`. [`SimFs::crash`] picks, per file and
//! from a seed, what a real disk might hold after power loss: nothing of the unsynced writes,
//! all of them, a prefix of whole writes, a prefix and a torn part of the next write cut at
//! any byte, such a prefix with the file's size grown by zeros (size updated, data not), or a
//! prefix whose last bytes have one bit flipped. Writes land where they were made, appended
//! or over bytes the file already had. The model assumes that a crash keeps a prefix of the
//! unsynced writes: it never persists a later page while losing an earlier one. A real disk
//! may reorder the pages of one unsynced write; the log's recovery then finds valid records
//! after a bad one and refuses to open, naming the file, which is safe but not modelled here.
//! Entries never synced may vanish; removals never synced may be undone. Synced data is never
//! altered.
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
    /// The writes since the last sync, in order: offset and bytes.
    writes: Vec<(usize, Vec<u8>)>,
    /// The file was truncated since the last sync.
    truncated: bool,
    entry_durable: bool,
}

/// Writes `data` into `content` at `offset`, growing it (with zeros before `offset`) if needed.
fn write_into(content: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[offset..end].copy_from_slice(data);
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
        writes: Vec::new(),
        truncated: false,
        entry_durable: true,
    }
}

/// What one file holds after a crash, and a word on how that was chosen.
fn crash_content(file: &SimFile, rng: &mut SimRng) -> (Vec<u8>, &'static str) {
    if file.truncated {
        // Truncated since the last sync: either the old or the new content took.
        return if rng.chance(2) {
            (file.durable.clone(), "truncation lost")
        } else {
            (file.current.clone(), "truncation kept")
        };
    }
    let writes = &file.writes;
    if writes.is_empty() {
        return (file.durable.clone(), "synced");
    }
    // The durable image with the first `k` writes applied, and `cut` bytes of the next.
    let prefix = |k: usize, cut: usize| {
        let mut content = file.durable.clone();
        for (offset, data) in &writes[..k] {
            write_into(&mut content, *offset, data);
        }
        if cut > 0 {
            let (offset, data) = &writes[k];
            write_into(&mut content, *offset, &data[..cut]);
        }
        content
    };
    // A torn prefix: whole writes, then part of the next (a write of no bytes is whole).
    let torn = |rng: &mut SimRng| {
        let k = rng.upto(writes.len() - 1);
        (k, rng.upto(writes[k].1.len()))
    };
    match rng.upto(5) {
        0 => (file.durable.clone(), "unsynced writes lost"),
        1 => (file.current.clone(), "unsynced writes kept"),
        2 => (
            prefix(rng.upto(writes.len()), 0),
            "whole unsynced writes kept",
        ),
        3 => {
            let (k, cut) = torn(rng);
            (prefix(k, cut), "torn write")
        }
        4 => {
            let (k, cut) = torn(rng);
            let mut content = prefix(k, cut);
            let grown = file.current.len().saturating_sub(content.len());
            content.resize(content.len() + rng.upto(grown), 0);
            (content, "torn write, zero-filled")
        }
        _ => {
            let (k, cut) = torn(rng);
            let mut content = prefix(k, cut);
            if cut > 0 {
                // The flip lands in the last 16 bytes kept of the torn write (16 bytes is the
                // smallest record), so it garbles what was being written, not a record synced
                // before (that is mid-log corruption, tested apart).
                let end = writes[k].0 + cut;
                let byte = end - 1 - rng.upto(cut.min(16) - 1);
                content[byte] ^= 1 << rng.upto(7);
            }
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
        file.writes.clear();
        file.truncated = false;
        Ok(())
    }
}

impl WalFile for SimHandle {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.with(|f| f.current.clone())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(|f| {
            write_into(&mut f.current, offset as usize, data);
            f.writes.push((offset as usize, data.to_vec()));
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|f| {
            f.current.resize(len as usize, 0);
            f.truncated = true;
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }
}
