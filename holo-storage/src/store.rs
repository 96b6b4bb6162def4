//! The `StateStore` contract and the backend enum built from configuration.

use std::path::Path;

use crate::config::{Backend, StorageConfig};
use crate::error::StorageError;
use crate::memory::MemStore;
use crate::redb_store::RedbStore;
#[cfg(feature = "rocksdb")]
use crate::rocks_store::RocksStore;
use crate::types::{AppliedMarker, KeyValue, RangeId, WriteBatch};

/// Applied state of the ranges a node replicates: user keys and values in one ordered key
/// space, plus an applied marker per range.
///
/// # Correctness
/// - [`write`](Self::write) is atomic: after a crash either every op and marker of a batch is
///   present or none is, and batches become visible and durable in the order they were
///   written (a later batch is never durable without every earlier one).
/// - A batch with [`crate::Durability::Sync`] is durable when `write` returns; one with
///   `Deferred` is durable once a later [`flush`](Self::flush) returns.
/// - Reads see every batch whose `write` returned (read-your-writes), never part of one.
/// - Ops apply in batch order; markers are stored as given (the caller keeps them
///   increasing).
/// - Keys are ordered bytewise; scans return keys in that order.
///
/// Writes come from one writer at a time (the node's executor); reads may run concurrently
/// with it.
///
/// # Errors
/// Every method returns [`StorageError::Backend`] when the backend fails; the caller treats
/// that as fatal for the process.
pub trait StateStore: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The values of `keys`, in the same order, from one consistent view.
    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError>;

    /// Applies a batch atomically; see the contract above.
    fn write(&self, batch: &WriteBatch) -> Result<(), StorageError>;

    /// The applied marker of `range`, `None` if never written.
    fn applied(&self, range: RangeId) -> Result<Option<AppliedMarker>, StorageError>;

    /// Up to `limit` keys in `start..end` (`end: None`: to the end), in key order, from one
    /// consistent view.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError>;

    /// Makes every batch written so far durable.
    fn flush(&self) -> Result<(), StorageError>;
}

/// A store chosen by configuration. The node holds this, not a generic parameter.
pub enum Store {
    Redb(RedbStore),
    #[cfg(feature = "rocksdb")]
    Rocksdb(RocksStore),
    Memory(MemStore),
}

impl Store {
    /// Opens (creating if needed) the configured backend under `dir`: redb uses
    /// `dir/state.redb`, RocksDB the directory `dir/rocksdb`.
    ///
    /// # Errors
    /// [`StorageError::Config`] for bad options or a backend this build lacks;
    /// [`StorageError::Backend`] if the backend cannot open its files.
    pub fn open(config: &StorageConfig, dir: &Path) -> Result<Store, StorageError> {
        config.validate()?;
        match config.backend {
            Backend::Redb => Ok(Store::Redb(RedbStore::open(
                &dir.join("state.redb"),
                &config.redb,
            )?)),
            #[cfg(feature = "rocksdb")]
            Backend::Rocksdb => Ok(Store::Rocksdb(RocksStore::open(
                &dir.join("rocksdb"),
                &config.rocksdb,
            )?)),
            #[cfg(not(feature = "rocksdb"))]
            Backend::Rocksdb => Err(StorageError::Config(
                "storage.backend = \"rocksdb\", but this build has no RocksDB support \
                 (built without the `rocksdb` feature of holo-storage)"
                    .into(),
            )),
            Backend::Memory => Ok(Store::Memory(MemStore::new())),
        }
    }

    /// The backend's name, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Redb(_) => "redb",
            #[cfg(feature = "rocksdb")]
            Store::Rocksdb(_) => "rocksdb",
            Store::Memory(_) => "memory",
        }
    }

    fn inner(&self) -> &dyn StateStore {
        match self {
            Store::Redb(s) => s,
            #[cfg(feature = "rocksdb")]
            Store::Rocksdb(s) => s,
            Store::Memory(s) => s,
        }
    }
}

impl StateStore for Store {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner().get(key)
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.inner().multi_get(keys)
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        self.inner().write(batch)
    }

    fn applied(&self, range: RangeId) -> Result<Option<AppliedMarker>, StorageError> {
        self.inner().applied(range)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.inner().scan(start, end, limit)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner().flush()
    }
}

/// Encodes a marker as 16 little-endian bytes (generation, index).
pub(crate) fn encode_marker(marker: &AppliedMarker) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&marker.generation.to_le_bytes());
    out[8..].copy_from_slice(&marker.index.to_le_bytes());
    out
}

/// Decodes [`encode_marker`]'s bytes; `None` if they are not 16 bytes long.
pub(crate) fn decode_marker(bytes: &[u8]) -> Option<AppliedMarker> {
    let bytes: &[u8; 16] = bytes.try_into().ok()?;
    Some(AppliedMarker {
        generation: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
        index: u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
    })
}
