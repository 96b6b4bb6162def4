//! The Accord consensus protocol for HoloStore, sans-IO and deterministic.
//!
//! This crate owns timestamps, transaction ids, ballots, the PreAccept / Accept / Stable
//! rounds, dependency tracking and execution order for every range a node replicates (see
//! `shared/ACCORD.md`). It performs no I/O: events go in ([`Node::propose`],
//! [`Node::receive`], [`Node::tick`] carrying the host's time, [`Node::durable`]) and
//! [`Action`]s come out (batched messages per peer, command states to persist, transactions
//! to apply in order). A reply that reports persisted state leaves only after the host
//! confirmed that state durable. It depends on `bytes`, `thiserror` and `tracing` only; a
//! test keeps tokio, tonic, prost and RocksDB out of its dependency tree and clocks and
//! randomness out of its source.
//!
//! # What is here, and what is not yet
//! - Here: the hybrid logical clock; PreAccept with the fast path (all 3 of 3, 4 of 5, the
//!   coordinator's own vote counted); the slow path with Accept recomputing deps up to
//!   executeAt; Stable; execution in executeAt order once deps are applied; multi-range
//!   transactions with a quorum per range; per-peer batching; durability-gated replies;
//!   resending rounds that got no answer. `tests/sim` runs whole clusters under message
//!   delay, duplication, reordering and loss, and checks executeAt agreement, uniqueness,
//!   per-key apply order and strict serializability of the client history.
//! - Not yet (the rest of the holo-accord issue): ballots beyond the original coordinator,
//!   BeginRecovery and invalidation when a coordinator dies, the progress mechanism, GC,
//!   restart from persisted records, the persisted clock high-water mark, and crash,
//!   partition and clock faults in the simulator.

mod coordinator;
mod ids;
mod messages;
mod node;
mod replica;
mod topology;
mod txn;

pub use ids::{Ballot, Clock, NodeId, RangeId, Timestamp, TxnId, TxnKind};
pub use messages::{Envelope, Message};
pub use node::{Action, Config, Node};
pub use replica::{Command, RecoverInfo, Status};
pub use topology::{RangeInfo, Topology};
pub use txn::{Access, Deps, Key, Txn};
