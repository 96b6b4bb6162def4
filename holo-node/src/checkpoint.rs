//! Where a restart starts reading the WAL.
//!
//! Each garbage collection cuts the WAL at the oldest record a live transaction still needs
//! (`Core::truncate`): every transaction the node holds has its latest record at or after the
//! cut, and the GC floor and the clock reservation are written again after it. Once the
//! records written with the cut are durable, segments below it are deleted and the cut is
//! saved here, so a restart decodes and restores only the records from the cut on instead of
//! the whole current segment (up to 64 MiB, seconds of work).
//!
//! The file lives in the WAL directory (the WAL ignores it), so it goes with the log it
//! points into. The file is replaced atomically (written beside, synced, renamed, directory synced). It
//! only ever moves forward to a cut whose records are durable, so reading from it never
//! misses a needed record; a missing or unreadable file means a full replay, which is always
//! correct, only slower.

use std::io::Write;
use std::path::{Path, PathBuf};

use holo_wal::Lsn;

/// The checkpoint file of a WAL directory.
pub fn path(wal_dir: &Path) -> PathBuf {
    wal_dir.join("replay-from")
}

const MAGIC: &str = "holostore replay-from v1";

/// The saved cut, or None (no file yet, or one this version cannot read: the caller replays
/// everything and says so).
pub fn read(path: &Path) -> Result<Option<Lsn>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let lsn = text
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.trim().parse::<Lsn>().ok())
        .ok_or_else(|| format!("{} is not a replay checkpoint: {text:?}", path.display()))?;
    Ok(Some(lsn))
}

/// Saves `cut` durably.
///
/// # Errors
/// The file or its directory could not be written or synced.
pub fn write(path: &Path, cut: Lsn) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{MAGIC} {cut}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_round_trips_and_a_bad_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        assert_eq!(read(&p), Ok(None));
        write(&p, 42).unwrap();
        assert_eq!(read(&p), Ok(Some(42)));
        write(&p, 7_000).unwrap();
        assert_eq!(read(&p), Ok(Some(7_000)));
        std::fs::write(&p, "garbage").unwrap();
        assert!(read(&p).unwrap_err().contains("replay-from"));
    }
}
