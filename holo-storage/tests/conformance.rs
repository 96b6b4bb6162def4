//! The conformance suite against every backend, on real files for the durable ones.

use holo_storage::conformance::{CASES, reopen_keeps_state, run_all};
use holo_storage::{Backend, MemStore, RedbStore, StateStore, StorageConfig, Store};

fn open(dir: &std::path::Path, backend: Backend) -> Box<dyn StateStore> {
    let config = StorageConfig {
        backend,
        ..StorageConfig::default()
    };
    Box::new(Store::open(&config, dir).expect("open store"))
}

/// A fresh store in its own temporary directory, kept alive as long as the store.
struct Fresh {
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
    backend: Backend,
}

impl Fresh {
    fn new(backend: Backend) -> Self {
        Fresh {
            dirs: Default::default(),
            backend,
        }
    }

    fn store(&self) -> Box<dyn StateStore> {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), self.backend);
        self.dirs.lock().unwrap().push(dir);
        store
    }
}

#[test]
fn redb_passes_the_suite() {
    let fresh = Fresh::new(Backend::Redb);
    run_all(&|| fresh.store());
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_passes_the_suite() {
    let fresh = Fresh::new(Backend::Rocksdb);
    run_all(&|| fresh.store());
}

#[test]
fn memory_passes_the_suite() {
    run_all(&|| Box::new(MemStore::new()));
}

#[test]
fn redb_keeps_state_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    reopen_keeps_state(&|| open(dir.path(), Backend::Redb));
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_keeps_state_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    reopen_keeps_state(&|| open(dir.path(), Backend::Rocksdb));
}

#[test]
fn the_suite_has_cases() {
    assert!(CASES.len() >= 10);
}

#[test]
fn backends_open_where_documented() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), Backend::Redb));
    assert!(dir.path().join("state.redb").is_file());
    #[cfg(feature = "rocksdb")]
    {
        drop(open(dir.path(), Backend::Rocksdb));
        assert!(dir.path().join("rocksdb").join("CURRENT").is_file());
        let _direct =
            holo_storage::RocksStore::open(&dir.path().join("direct"), &Default::default())
                .unwrap();
    }
    let _direct = RedbStore::open(&dir.path().join("direct.redb"), &Default::default()).unwrap();
}

#[test]
fn config_is_typed_and_strict() {
    let config: StorageConfig =
        toml::from_str("backend = \"rocksdb\"\n[rocksdb]\nblock_cache_bytes = 8388608\n").unwrap();
    assert_eq!(config.backend, Backend::Rocksdb);
    assert_eq!(config.rocksdb.block_cache_bytes, 8 << 20);
    assert_eq!(
        toml::from_str::<StorageConfig>("").unwrap(),
        StorageConfig::default()
    );
    assert_eq!(StorageConfig::default().backend, Backend::Redb);
    let unknown = toml::from_str::<StorageConfig>("backend = \"redb\"\ncache = 1\n").unwrap_err();
    assert!(unknown.to_string().contains("cache"), "{unknown}");
    let bad = toml::from_str::<StorageConfig>("backend = \"leveldb\"\n").unwrap_err();
    assert!(bad.to_string().contains("leveldb"), "{bad}");
    let small = StorageConfig {
        redb: holo_storage::RedbOptions { cache_bytes: 10 },
        ..Default::default()
    };
    let err = Store::open(&small, std::path::Path::new("/nonexistent"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("storage.redb.cache_bytes"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.redb"), b"definitely not redb").unwrap();
    let config = StorageConfig::default();
    let err = Store::open(&config, dir.path())
        .err()
        .expect("garbage must not open");
    assert!(
        err.to_string()
            .starts_with("redb failed to open the database file"),
        "{err}"
    );
}

#[test]
fn the_example_config_parses_to_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/node.example.toml");
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let storage: StorageConfig = file["storage"].clone().try_into().unwrap();
    assert_eq!(storage, StorageConfig::default());
}
