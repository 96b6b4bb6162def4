//! The `[wal]` section of a node's TOML file.

use serde::Deserialize;

use crate::error::WalError;

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistMode {
    /// `fdatasync` after each group write (the default): data and the file size are on disk.
    #[default]
    SyncData,
    /// `fsync` after each group write: also every other file attribute.
    SyncAll,
    /// No sync at all: an append returns once the kernel has the bytes. A power loss or kernel
    /// crash loses recent appends. For benchmarks only; opening the log warns.
    Buffer,
}

/// WAL settings. Every field has a default; unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Durability of an append.
    pub persist: PersistMode,
    /// A segment is closed and a new one started once it holds this many bytes. Records never
    /// straddle segments, so a segment may exceed this by up to one group write.
    pub segment_bytes_target: u64,
    /// Largest payload of one record.
    pub record_bytes_max: u32,
    /// Most bytes buffered for the writer; appenders wait while the buffer is this full.
    pub pending_bytes_max: usize,
    /// Zeros written (and synced) ahead of the records in the active segment, this many bytes
    /// at a time, so that a group write overwrites blocks the file already has: its
    /// `fdatasync` then has no file size or block map to commit, only the data, which takes
    /// about half as long as an append's. 0 appends instead.
    pub preallocate_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            persist: PersistMode::SyncData,
            segment_bytes_target: 64 * 1024 * 1024,
            record_bytes_max: 16 * 1024 * 1024,
            pending_bytes_max: 64 * 1024 * 1024,
            preallocate_bytes: 4 * 1024 * 1024,
        }
    }
}

impl WalConfig {
    /// Checks that the values make sense together.
    ///
    /// # Errors
    /// [`WalError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<(), WalError> {
        if self.segment_bytes_target < 4096 {
            return Err(WalError::Config(format!(
                "wal.segment_bytes_target = {} is below the minimum of 4096",
                self.segment_bytes_target
            )));
        }
        if self.record_bytes_max == 0 {
            return Err(WalError::Config(
                "wal.record_bytes_max must be at least 1".into(),
            ));
        }
        let record_bytes = self.record_bytes_max as usize + crate::record::RECORD_HEADER_BYTES;
        if self.pending_bytes_max < record_bytes {
            return Err(WalError::Config(format!(
                "wal.pending_bytes_max = {} must hold one record of wal.record_bytes_max = {} \
                 plus its {}-byte header",
                self.pending_bytes_max,
                self.record_bytes_max,
                crate::record::RECORD_HEADER_BYTES
            )));
        }
        Ok(())
    }
}
