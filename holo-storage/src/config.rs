//! The `[storage]` section of a node's TOML file.

use serde::Deserialize;

/// Which backend holds applied state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// redb: embedded, pure Rust, one file. The default.
    #[default]
    Redb,
    /// RocksDB, linked against the system library.
    Rocksdb,
    /// In memory, lost at exit: for tests and the simulator only.
    Memory,
}

/// `[storage]`: `backend = "redb" | "rocksdb"` plus per-backend options.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: Backend,
    pub redb: RedbOptions,
    pub rocksdb: RocksdbOptions,
}

/// `[storage.redb]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedbOptions {
    /// redb's page cache.
    pub cache_bytes: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[storage.rocksdb]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RocksdbOptions {
    /// The LRU block cache.
    pub block_cache_bytes: usize,
    /// Size of one memtable.
    pub write_buffer_bytes: usize,
    /// Background flush and compaction threads.
    pub background_jobs: u32,
}

impl Default for RocksdbOptions {
    fn default() -> Self {
        RocksdbOptions {
            block_cache_bytes: 256 * 1024 * 1024,
            write_buffer_bytes: 64 * 1024 * 1024,
            background_jobs: 2,
        }
    }
}

impl StorageConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`crate::StorageError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), crate::StorageError> {
        let bad = |msg: String| Err(crate::StorageError::Config(msg));
        if self.redb.cache_bytes < 1024 * 1024 {
            return bad(format!(
                "storage.redb.cache_bytes = {} is below 1 MiB",
                self.redb.cache_bytes
            ));
        }
        if self.rocksdb.write_buffer_bytes < 1024 * 1024 {
            return bad(format!(
                "storage.rocksdb.write_buffer_bytes = {} is below 1 MiB",
                self.rocksdb.write_buffer_bytes
            ));
        }
        if self.rocksdb.background_jobs == 0 {
            return bad("storage.rocksdb.background_jobs must be at least 1".into());
        }
        Ok(())
    }
}
