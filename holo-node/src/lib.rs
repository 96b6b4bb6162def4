//! The HoloStore server: wires holo-resp, holo-accord, holo-wal, holo-storage and holo-meta
//! together with tokio and tonic.
//!
//! `main.rs` stays thin: it parses the command line, loads the node's TOML file and calls
//! `run(listeners, shutdown)` here, so tests start real nodes in-process on port 0. The server
//! (connections, router, Accord driver, WAL, executor, admin service) arrives with the
//! holo-node issue; for now this crate only proves that its dependencies link, including the
//! optional mimalloc allocator.

/// The allocator this build uses, for start-up logs and `INFO server`.
pub fn allocator_name() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system"
    }
}
