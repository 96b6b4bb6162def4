//! Epochs: the topologies a node keeps, adopting the next one in order, retiring old ones,
//! and the ranges a coordination needs quorums of (see the crate docs, "Epochs").

use super::*;

impl Node {
    /// The current epoch: new transactions carry it in their ids.
    pub fn epoch(&self) -> u64 {
        *self.topologies.keys().next_back().expect("a topology")
    }

    /// The oldest epoch still kept.
    pub fn oldest_epoch(&self) -> u64 {
        *self.topologies.keys().next().expect("a topology")
    }

    /// The current topology.
    pub fn topology(&self) -> &Topology {
        self.topologies.values().next_back().expect("a topology")
    }

    /// Moves to the next epoch. Transactions proposed from now on carry it; those of
    /// earlier kept epochs are still coordinated with quorums in their own epoch and every
    /// later one (see [`Node::coordinate`]).
    ///
    /// # Errors
    /// `topology` is not of the epoch after the current one (epochs are adopted strictly
    /// in order; nothing changes).
    pub fn adopt(&mut self, topology: Topology) -> Result<(), EpochError> {
        let current = self.epoch();
        if topology.epoch != current + 1 {
            return Err(EpochError::OutOfOrder {
                current,
                got: topology.epoch,
            });
        }
        self.clock.set_epoch(topology.epoch);
        self.topologies.insert(topology.epoch, topology);
        self.refresh_replicas();
        Ok(())
    }

    /// Forgets the topologies of epochs below `epoch` (the current one always stays): the
    /// host calls it once nothing of those epochs is in flight on the ranges that changed
    /// since (the exclusive sync points that cut their history applied at every replica).
    /// Txns of those epochs on other ranges may still be in flight: they are routed by the
    /// oldest topology kept, which holds their ranges unchanged. With the same replicas in
    /// every epoch that is all they need; replica moves will need their own cut.
    pub fn retire_epochs_below(&mut self, epoch: u64) {
        let keep = epoch.min(self.epoch());
        self.topologies = self.topologies.split_off(&keep);
        self.refresh_replicas();
    }

    /// The ranges a coordination of `txn` needs quorums of: those of its keys in the epoch
    /// of its id and in every later epoch this node knows. While an epoch is not yet
    /// retired, a txn of that epoch needs the replicas of both the old and the new
    /// topology. A txn of an epoch older than every kept one uses the oldest kept; one of
    /// an epoch not adopted yet here, the current one.
    pub(super) fn ranges_for(&self, txn: &Txn) -> Vec<RangeInfo> {
        self.ranges_from(self.txn_epoch(txn), |topology| topology.ranges_for(txn))
    }

    /// The first kept epoch that routes `txn`: its own, clamped to the epochs kept.
    pub(super) fn txn_epoch(&self, txn: &Txn) -> u64 {
        txn.id.0.epoch.clamp(self.oldest_epoch(), self.epoch())
    }

    /// The ranges `pick` takes from the topology of each epoch kept from `from` on, each
    /// once.
    pub(super) fn ranges_from<'a>(
        &'a self,
        from: u64,
        pick: impl Fn(&'a Topology) -> Vec<&'a RangeInfo>,
    ) -> Vec<RangeInfo> {
        let mut ranges: Vec<RangeInfo> = Vec::new();
        for topology in self.topologies.range(from..).map(|(_, t)| t) {
            for range in pick(topology) {
                if !ranges.contains(range) {
                    ranges.push(range.clone());
                }
            }
        }
        ranges
    }
}
