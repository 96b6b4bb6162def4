//! holo-harness: how users and CI exercise HoloStore.
//!
//! It brings clusters up and down (local processes), runs register workloads over RESP,
//! checks histories for linearizability, injects faults (kill -9, pause) and topology changes
//! (splits and merges through the admin service), runs the
//! linearizability and crash-recovery suites, benchmarks HoloStore's storage backends against
//! a plain `redis-server` and renders reports. It talks to nodes only over the network.

pub mod bench;
pub mod check;
pub mod cluster;
pub mod docker;
pub mod history;
pub mod nemesis;
pub mod progress;
pub mod report;
pub mod resp;
pub mod suite;
pub mod topology;
pub mod workload;
