//! holo-storage: where a HoloStore node keeps applied state.
//!
//! The executor applies committed transactions here, in executeAt order and in batches. Each
//! batch carries the new *applied marker* of every range it advances, written atomically with
//! the data, so replaying the WAL after a crash can start from the marker and stay idempotent.
//!
//! The data is one ordered key space of user keys; a range is an interval of it, so a split
//! or merge moves no data. Markers are kept per [`RangeId`].
//!
//! Backends: [`RedbStore`] (the default), [`RocksStore`] (behind the default `rocksdb` feature,
//! linked against the system library) and [`MemStore`] (for the simulator and unit tests),
//! behind one [`StateStore`] trait and chosen at start-up through [`Store::open`] from the
//! node's `[storage]` TOML section ([`StorageConfig`]). [`conformance`] is the one suite every
//! backend passes unchanged.
//!
//! A leaf crate: it depends on no other HoloStore crate.
//!
//! # Example
//! ```
//! use holo_storage::{AppliedMarker, RangeId, StateStore, StorageConfig, Store, WriteBatch};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&StorageConfig::default(), dir.path()).unwrap(); // redb
//! let mut batch = WriteBatch::new();
//! batch.put("k", "v").set_applied(RangeId(1), AppliedMarker { generation: 1, index: 7 });
//! store.write(&batch).unwrap(); // data and marker, atomically
//! store.flush().unwrap(); // durable
//! assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
//! assert_eq!(store.applied(RangeId(1)).unwrap().unwrap().index, 7);
//! ```

mod config;
pub mod conformance;
mod error;
mod memory;
mod redb_store;
#[cfg(feature = "rocksdb")]
mod rocks_store;
mod store;
mod types;

pub use config::{Backend, RedbOptions, RocksdbOptions, StorageConfig};
pub use error::StorageError;
pub use memory::MemStore;
pub use redb_store::RedbStore;
#[cfg(feature = "rocksdb")]
pub use rocks_store::RocksStore;
pub use store::{StateStore, Store};
pub use types::{AppliedMarker, Durability, KeyValue, Op, RangeId, WriteBatch};
