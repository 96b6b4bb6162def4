//! Test helper for `tests/crash.rs`: writes numbered batches to a store and prints `ack N`
//! once batch N is durable, forever, until the test kills it with SIGKILL.
//!
//! `holo-storage-crash-writer <redb|rocksdb> <dir> <sync|deferred> <first batch>`
//!
//! Batch N puts `k{N:08}-{j}` for `j` in `0..=N % 7`, puts `last = N`, deletes `k{N-3:08}-0`
//! and sets range 1's applied marker to N. In `sync` mode each batch is written durably and
//! acknowledged; in `deferred` mode batches are written without sync and acknowledged after
//! every eighth, once `flush` returned.

use std::io::Write;
use std::path::PathBuf;

use holo_storage::{
    AppliedMarker, Backend, Durability, RangeId, StateStore, StorageConfig, Store, WriteBatch,
};

fn key(batch: u64, j: u64) -> String {
    format!("k{batch:08}-{j}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, backend, dir, mode, first] = &args[..] else {
        eprintln!(
            "usage: holo-storage-crash-writer <redb|rocksdb> <dir> <sync|deferred> <first batch>"
        );
        std::process::exit(2);
    };
    let backend = match backend.as_str() {
        "redb" => Backend::Redb,
        "rocksdb" => Backend::Rocksdb,
        other => panic!("unknown backend {other}"),
    };
    let durability = match mode.as_str() {
        "sync" => Durability::Sync,
        "deferred" => Durability::Deferred,
        other => panic!("unknown mode {other}"),
    };
    let config = StorageConfig {
        backend,
        ..StorageConfig::default()
    };
    let store = Store::open(&config, &PathBuf::from(dir)).expect("open store");
    let mut stdout = std::io::stdout().lock();
    for n in first.parse::<u64>().expect("first batch number").. {
        let mut batch = WriteBatch::new();
        for j in 0..=n % 7 {
            batch.put(key(n, j), format!("value {n} {j}").repeat(8));
        }
        batch
            .put("last", n.to_le_bytes())
            .delete(key(n.saturating_sub(3), 0));
        batch.set_applied(
            RangeId(1),
            AppliedMarker {
                generation: 1,
                index: n,
            },
        );
        batch.with_durability(durability);
        store.write(&batch).expect("write");
        let acked = match durability {
            Durability::Sync => true,
            Durability::Deferred if n % 8 == 0 => {
                store.flush().expect("flush");
                true
            }
            Durability::Deferred => false,
        };
        if acked {
            writeln!(stdout, "ack {n}")
                .and_then(|()| stdout.flush())
                .expect("stdout");
        }
    }
}
