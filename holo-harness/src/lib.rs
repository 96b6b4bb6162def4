//! holo-harness: how users and CI exercise HoloStore.
//!
//! It will bring clusters up and down (local processes or Docker containers), run register
//! workloads over RESP, check histories for linearizability, inject faults (kill -9, pause,
//! partitions), run the linearizability and crash-recovery suites, benchmark HoloStore's
//! storage backends against a plain `redis-server` and render reports. It talks to nodes only
//! over the network: holo-resp for the Redis protocol, holo-proto for the admin service.
