//! The RocksDB backend, linked against the system librocksdb.
//!
//! Data lives in the default column family, markers in the `applied` column family, both
//! written by one RocksDB `WriteBatch`, which RocksDB applies atomically. RocksDB's own WAL
//! stays on: a [`crate::Durability::Deferred`] batch is written without sync (it survives a
//! process crash, not a power loss) and [`flush`](StateStore::flush) syncs that WAL.

use std::path::Path;
use std::sync::Mutex;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode,
    Options, ReadOptions, WriteOptions,
};

use crate::config::RocksdbOptions;
use crate::error::StorageError;
use crate::store::{StateStore, decode_marker, encode_marker};
use crate::types::{AppliedMarker, Durability, KeyValue, Op, RangeId, WriteBatch, span_is_empty};

const APPLIED_CF: &str = "applied";
const NAME: &str = "rocksdb";

/// Applied state in a RocksDB directory.
pub struct RocksStore {
    db: DB,
    /// Serialises writers: an unbounded delete-range reads the last key before writing.
    write_lock: Mutex<()>,
}

fn err(action: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
    StorageError::backend(NAME, action)
}

impl RocksStore {
    /// Opens or creates the database in directory `path`.
    ///
    /// # Errors
    /// [`StorageError::Backend`] if RocksDB cannot open it.
    pub fn open(path: &Path, options: &RocksdbOptions) -> Result<RocksStore, StorageError> {
        let mut table = BlockBasedOptions::default();
        let cache = Cache::new_lru_cache(options.block_cache_bytes)
            .map_err(err("create the block cache"))?;
        table.set_block_cache(&cache);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_write_buffer_size(options.write_buffer_bytes);
        db_options.set_max_background_jobs(options.background_jobs as i32);
        db_options.set_block_based_table_factory(&table);
        let applied = ColumnFamilyDescriptor::new(APPLIED_CF, Options::default());
        let db = DB::open_cf_descriptors(&db_options, path, vec![applied])
            .map_err(err("open the database"))?;
        Ok(RocksStore {
            db,
            write_lock: Mutex::new(()),
        })
    }

    fn applied_cf(&self) -> &ColumnFamily {
        self.db
            .cf_handle(APPLIED_CF)
            .expect("the applied column family is created at open")
    }

    /// Adds a delete of `start..end` to `out`. RocksDB needs a finite end, so an open end
    /// becomes the last key, which is the larger of the last key in the database and the
    /// largest key `earlier` ops of this batch put.
    fn delete_range(
        &self,
        out: &mut rocksdb::WriteBatch,
        start: &[u8],
        end: Option<&[u8]>,
        earlier: &[Op],
    ) -> Result<(), StorageError> {
        if span_is_empty(start, end) {
            return Ok(());
        }
        if let Some(end) = end {
            out.delete_range(start, end);
            return Ok(());
        }
        let stored = match self.db.iterator(IteratorMode::End).next() {
            Some(entry) => Some(entry.map_err(err("find the last key"))?.0.into_vec()),
            None => None,
        };
        let put = earlier.iter().filter_map(|op| match op {
            Op::Put { key, .. } => Some(key.clone()),
            _ => None,
        });
        let Some(last) = stored.into_iter().chain(put).max() else {
            return Ok(());
        };
        if last.as_slice() >= start {
            out.delete_range(start, &last);
            out.delete(&last);
        }
        Ok(())
    }
}

impl StateStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get(key).map_err(err("read a key"))
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let snapshot = self.db.snapshot();
        let mut read = ReadOptions::default();
        read.set_snapshot(&snapshot);
        self.db
            .multi_get_opt(keys.iter(), &read)
            .into_iter()
            .map(|r| r.map_err(err("read keys")))
            .collect()
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = rocksdb::WriteBatch::default();
        for (i, op) in batch.ops.iter().enumerate() {
            match op {
                Op::Put { key, value } => out.put(key, value),
                Op::Delete { key } => out.delete(key),
                Op::DeleteRange { start, end } => {
                    self.delete_range(&mut out, start, end.as_deref(), &batch.ops[..i])?
                }
            }
        }
        let applied = self.applied_cf();
        for (range, marker) in &batch.markers {
            out.put_cf(applied, range.0.to_be_bytes(), encode_marker(marker));
        }
        let mut options = WriteOptions::default();
        options.set_sync(batch.durability == Durability::Sync);
        self.db
            .write_opt(out, &options)
            .map_err(err("write a batch"))
    }

    fn applied(&self, range: RangeId) -> Result<Option<AppliedMarker>, StorageError> {
        let bytes = self
            .db
            .get_cf(self.applied_cf(), range.0.to_be_bytes())
            .map_err(err("read an applied marker"))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        decode_marker(&bytes)
            .map(Some)
            .ok_or_else(|| StorageError::Backend {
                backend: NAME,
                action: "decode an applied marker",
                source: format!(
                    "range {}: marker of {} bytes, expected 16",
                    range.0,
                    bytes.len()
                )
                .into(),
            })
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if span_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let mut read = ReadOptions::default();
        if let Some(end) = end {
            read.set_iterate_upper_bound(end.to_vec());
        }
        let mode = IteratorMode::From(start, Direction::Forward);
        let mut out = Vec::new();
        for entry in self.db.iterator_opt(mode, read).take(limit) {
            let (key, value) = entry.map_err(err("scan"))?;
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(err("sync its WAL"))
    }
}
