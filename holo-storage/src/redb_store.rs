//! The redb backend (the default): one file, copy-on-write B-trees, pure Rust.
//!
//! Data lives in the table `data` (key -> value); markers in `applied` (range id -> 16
//! bytes). A [`crate::Durability::Deferred`] batch commits with redb's `Durability::None`,
//! which redb persists with the next `Immediate` commit; [`flush`](StateStore::flush) makes
//! one (an empty transaction), so durability follows the `StateStore` contract.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::config::RedbOptions;
use crate::error::StorageError;
use crate::store::{StateStore, decode_marker, encode_marker};
use crate::types::{AppliedMarker, Durability, KeyValue, Op, RangeId, WriteBatch, span_is_empty};

const DATA: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("data");
const APPLIED: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("applied");
const NAME: &str = "redb";

/// Applied state in a redb file.
pub struct RedbStore {
    db: Database,
}

fn err<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
) -> impl FnOnce(E) -> StorageError {
    StorageError::backend(NAME, action)
}

fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        Bound::Included(start),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

impl RedbStore {
    /// Opens or creates the database file at `path` (its parent directory is created).
    ///
    /// # Errors
    /// [`StorageError::Backend`] if the file cannot be opened or is not a redb database.
    pub fn open(path: &Path, options: &RedbOptions) -> Result<RedbStore, StorageError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err("create the data directory"))?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(err("open the database file"))?;
        // Create both tables up front so readers never see them missing.
        let txn = db.begin_write().map_err(err("begin a write transaction"))?;
        txn.open_table(DATA).map_err(err("open the data table"))?;
        txn.open_table(APPLIED)
            .map_err(err("open the applied table"))?;
        txn.commit().map_err(err("commit"))?;
        Ok(RedbStore { db })
    }
}

impl StateStore for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.multi_get(&[key])?.pop().flatten())
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(err("begin a read transaction"))?;
        let table = txn.open_table(DATA).map_err(err("open the data table"))?;
        keys.iter()
            .map(|key| {
                let value = table.get(*key).map_err(err("read a key"))?;
                Ok(value.map(|v| v.value().to_vec()))
            })
            .collect()
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(err("begin a write transaction"))?;
        let durability = match batch.durability {
            Durability::Sync => redb::Durability::Immediate,
            Durability::Deferred => redb::Durability::None,
        };
        txn.set_durability(durability)
            .map_err(err("set durability"))?;
        {
            let mut data = txn.open_table(DATA).map_err(err("open the data table"))?;
            for op in &batch.ops {
                match op {
                    Op::Put { key, value } => {
                        data.insert(key.as_slice(), value.as_slice())
                            .map_err(err("put"))?;
                    }
                    Op::Delete { key } => {
                        data.remove(key.as_slice()).map_err(err("delete"))?;
                    }
                    Op::DeleteRange { start, end } => {
                        if !span_is_empty(start, end.as_deref()) {
                            let span = bounds(start, end.as_deref());
                            data.retain_in::<&[u8], _>(span, |_, _| false)
                                .map_err(err("delete a range"))?;
                        }
                    }
                }
            }
            let mut applied = txn
                .open_table(APPLIED)
                .map_err(err("open the applied table"))?;
            for (range, marker) in &batch.markers {
                applied
                    .insert(range.0, encode_marker(marker).as_slice())
                    .map_err(err("write an applied marker"))?;
            }
        }
        txn.commit().map_err(err("commit"))
    }

    fn applied(&self, range: RangeId) -> Result<Option<AppliedMarker>, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(err("begin a read transaction"))?;
        let table = txn
            .open_table(APPLIED)
            .map_err(err("open the applied table"))?;
        let Some(bytes) = table.get(range.0).map_err(err("read an applied marker"))? else {
            return Ok(None);
        };
        decode_marker(bytes.value())
            .map(Some)
            .ok_or_else(|| StorageError::Backend {
                backend: NAME,
                action: "decode an applied marker",
                source: format!(
                    "range {}: marker of {} bytes, expected 16",
                    range.0,
                    bytes.value().len()
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
        let txn = self
            .db
            .begin_read()
            .map_err(err("begin a read transaction"))?;
        let table = txn.open_table(DATA).map_err(err("open the data table"))?;
        let mut out = Vec::new();
        for entry in table
            .range::<&[u8]>(bounds(start, end))
            .map_err(err("scan"))?
            .take(limit)
        {
            let (key, value) = entry.map_err(err("scan"))?;
            out.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(err("begin a write transaction"))?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(err("set durability"))?;
        txn.commit().map_err(err("commit"))
    }
}
