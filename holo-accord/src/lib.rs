//! The Accord consensus protocol for HoloStore, sans-IO and deterministic.
//!
//! This crate will own timestamps, transaction ids, ballots, the PreAccept / Accept / Commit /
//! Stable / Apply rounds, dependency tracking, recovery and execution order for every range a
//! node replicates (see `shared/ACCORD.md`). It performs no I/O: events go in (peer messages,
//! client transactions, ticks carrying the time, durability confirmations) and actions come
//! out (messages to send, records to persist, transactions to apply, replies, timers). It
//! depends on `bytes`, `thiserror` and `tracing` only; a test keeps tokio, tonic, prost and
//! RocksDB out of its dependency tree. The protocol core and its deterministic simulator arrive
//! with the holo-accord issue.
