//! The node's timing knobs.

/// Timing knobs, in microseconds of host time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How long a coordinator with a majority but not a fast quorum waits for the rest
    /// before it takes the slow path.
    pub fast_path_wait_us: u64,
    /// How long before a coordinator resends the current round to replicas that have not
    /// answered (messages may be lost).
    pub retry_us: u64,
    /// How long a transaction may stay undecided at a replica before the replica recovers
    /// it (with up to as much again of deterministic jitter, so replicas rarely collide).
    pub recover_after_us: u64,
    /// How often this node proposes a sync point while it holds records GC could drop
    /// (0: never). Every replica durably applying one lets all of them drop the records of
    /// the txns below it.
    pub sync_interval_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fast_path_wait_us: 2_000,
            retry_us: 50_000,
            recover_after_us: 200_000,
            sync_interval_us: 0,
        }
    }
}
