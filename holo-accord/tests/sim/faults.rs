//! What a seed may inject, and what one seed did (for the summary line).

/// Which faults the network injects while the run is not healed.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop_percent_max: u64,
    pub duplicate_percent_max: u64,
    pub delay_us_max: u64,
    /// Most node crashes (each followed by a restart that loses the unsynced tail).
    pub crashes_max: u64,
    /// Most network partitions (isolation, split, one-way), each healed after a while.
    pub partitions_max: u64,
    /// Most jumps of a node's physical clock (up to a second either way).
    pub clock_jumps_max: u64,
    /// Most pauses of a node (SIGSTOP: it keeps its memory and comes back with a stale view,
    /// its rounds and recoveries resuming where they stood).
    pub pauses_max: u64,
    /// Most percent of messages that straggle (delivered up to `cluster::STRAGGLER_US_MAX` late,
    /// past ballot changes and recoveries).
    pub straggler_percent_max: u64,
    /// Most times a recovery coordinator stalls (a pause, as SIGSTOP) the moment it sends its
    /// second phase (Accept or AcceptInvalidate under its ballot): the replicas accept its
    /// value, another recovery takes over and meets accepted values of several ballots, and
    /// the stalled one comes back late with its replies and commits.
    pub recoverer_stalls_max: u64,
    /// Most topology changes (a range split or two merged, replicas unchanged), each a new
    /// epoch that every node adopts in order at its own pace.
    pub topology_changes_max: u64,
    /// Lose nodes for good (crashed, or cut off from every peer) at a random moment under
    /// load: one of 3, one or two of 5. The live majority must then decide and apply
    /// everything within [`crate::cluster::LIVENESS_BOUND_US`] and go on serving.
    pub lose_for_good: bool,
    /// 4, 5 or 7 nodes, each range on 3 or 5 of them (see `placement.rs`).
    pub partial_replication: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_percent_max: 10,
            duplicate_percent_max: 10,
            delay_us_max: 5_000,
            crashes_max: 6,
            partitions_max: 3,
            clock_jumps_max: 4,
            pauses_max: 3,
            straggler_percent_max: 3,
            recoverer_stalls_max: 4,
            topology_changes_max: 6,
            lose_for_good: false,
            partial_replication: false,
        }
    }
}

/// What one seed did, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub seeds: u64,
    pub txns: u64,
    pub fast: u64,
    pub dropped: u64,
    pub crashes: u64,
    pub invalidated: u64,
    /// Records dropped from the simulated disks by GC.
    pub truncated: u64,
    /// Topology changes (splits and merges), each a new epoch, and those proposed (the
    /// others were no-ops or never decided).
    pub topology_changes: u64,
    pub changes_proposed: u64,
    /// Their history cuts done (every replica applied an exclusive sync point over the
    /// changed span), and the exclusive sync points proposed for them.
    pub cuts_done: u64,
    pub cuts_proposed: u64,
    pub log_hash: u64,
}

impl Outcome {
    pub fn add(&mut self, other: &Outcome) {
        self.seeds += other.seeds;
        self.txns += other.txns;
        self.fast += other.fast;
        self.dropped += other.dropped;
        self.crashes += other.crashes;
        self.invalidated += other.invalidated;
        self.truncated += other.truncated;
        self.topology_changes += other.topology_changes;
        self.changes_proposed += other.changes_proposed;
        self.cuts_done += other.cuts_done;
        self.cuts_proposed += other.cuts_proposed;
    }
}
