//! WAL errors, grouped by what the caller can do.

use std::path::PathBuf;

/// Why a WAL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The caller's record is too large; nothing was appended. Fix the caller.
    #[error("WAL record of {len} bytes exceeds wal.record_bytes_max = {max}")]
    RecordTooLarge { len: usize, max: u32 },
    /// The log on disk is damaged in a way that recovery must not paper over. Fatal: an
    /// operator must look at the named file.
    #[error("corrupt WAL segment {}: bad record at byte offset {offset} ({reason}), {detail}", file.display())]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
        detail: &'static str,
    },
    /// An I/O call failed. Fatal for this process: the log is poisoned and the node must
    /// restart and recover.
    #[error("WAL i/o failed: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or sync failed; this log accepts nothing more.
    #[error("WAL stopped after an earlier failure: {0}")]
    Poisoned(String),
    /// Another process (or another `Wal` in this one) has the directory open.
    #[error("WAL directory {} is in use by another process (its LOCK file is held)", dir.display())]
    Locked { dir: PathBuf },
    /// The caller asked for records that were truncated away. Replay from a snapshot instead.
    #[error("WAL records from LSN {requested} were truncated; the log starts at LSN {first}")]
    Compacted { requested: u64, first: u64 },
    /// The caller waited for an LSN that no record has yet. Fix the caller.
    #[error("no WAL record has LSN {lsn} yet (the next record gets {next})")]
    NotAppended { lsn: u64, next: u64 },
    /// The log was closed.
    #[error("WAL is closed")]
    Closed,
    /// A configuration value is out of range.
    #[error("invalid WAL configuration: {0}")]
    Config(String),
}

impl WalError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> WalError {
        WalError::Io {
            context: context.into(),
            source,
        }
    }
}
