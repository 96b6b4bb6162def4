//! Ownership: the ranges this node replicates, and the transactions it may hold.
//!
//! A range may live on a subset of the nodes (`RangeInfo::replicas`). A node records,
//! votes on and applies only the transactions of ranges it replicates, in the epoch of the
//! transaction or a later one it keeps: a message about any other is ignored, whoever sent
//! it (a decision resent to every peer at a restart, an answer to an inquiry sent to every
//! node). Held by a node that does not replicate it, a txn would be indexed against keys
//! whose other writers the node never sees, and applied over data it does not have.
//!
//! What this does not do yet (`docs/elasticity.md`, "Order of work"): deps are a flat set,
//! so a txn whose ranges have different replica sets would make each replica wait for
//! deps of ranges it does not replicate; the coordinator must be a replica of every range
//! of its txn; and a sync point over every range gathers deps from every node, so a node
//! whose topology places some range on a subset proposes none (no GC, no read barrier)
//! until deps are kept by range.

use super::*;

impl Node {
    /// Whether this node replicates a range of `txn` in its epoch or a later one kept
    /// here. A sync point over every range is everyone's.
    pub(super) fn owns(&self, txn: &Txn) -> bool {
        self.replicates_everything
            || self
                .ranges_for(txn)
                .iter()
                .any(|range| range.replicas.contains(&self.id))
    }

    /// Every range of every epoch kept here is replicated on every node that replicates
    /// any of them (the only placement before replica sets became per range): nothing to
    /// check per message, and sync points over every range work as they always did.
    pub fn replicates_everything(&self) -> bool {
        self.replicates_everything
    }

    /// Recomputes what depends on the topologies kept: every node that replicates any
    /// range, and whether each replicates all of them.
    pub(super) fn refresh_replicas(&mut self) {
        let ranges: Vec<&RangeInfo> = self.topologies.values().flat_map(|t| &t.ranges).collect();
        self.all_replicas = Topology::replicas_of(&ranges);
        self.replicates_everything = ranges
            .iter()
            .all(|range| range.replicas.len() == self.all_replicas.len());
    }

    /// The replicas of `txn`'s ranges other than this node: the peers that must learn its
    /// decision.
    pub(super) fn peers_of(&self, txn: &Txn) -> Vec<NodeId> {
        let mut peers = if self.replicates_everything {
            self.all_replicas.clone()
        } else {
            let ranges = self.ranges_for(txn);
            Topology::replicas_of(&ranges.iter().collect::<Vec<_>>())
        };
        peers.retain(|peer| *peer != self.id);
        peers
    }
}
