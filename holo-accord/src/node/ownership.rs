//! Ownership: the ranges this node replicates, and the transactions it may hold.
//!
//! A range may live on a subset of the nodes (`RangeInfo::replicas`). A node records,
//! votes on and applies only the transactions of ranges it replicates, in the epoch of the
//! transaction or a later one it keeps: a message about any other is ignored, whoever sent
//! it (a decision resent to every peer at a restart, an answer to an inquiry sent to every
//! node), and it answers ephemeral reads only of keys it replicates. Held by a node that
//! does not replicate it, a txn would be indexed against keys whose other writers the node
//! never sees, and applied over data it does not have.
//!
//! What this does not do yet (`docs/elasticity.md`, "Order of work"): deps are a flat set,
//! so a txn whose ranges have different replica sets would make each replica wait for
//! deps of ranges it does not replicate; the coordinator must be a replica of every range
//! of its txn; and a sync point over every range gathers deps from every node, so a node
//! whose topology places some range on a subset proposes none (no GC, no read barrier)
//! until deps are kept by key.

use super::*;

impl Node {
    /// Whether this node replicates a range of `txn` in its epoch or a later one kept
    /// here. A sync point over every range is everyone's.
    pub(super) fn owns(&self, txn: &Txn) -> bool {
        if self.replicates_everything {
            return true;
        }
        self.topologies
            .range(self.txn_epoch(txn)..)
            .any(|(_, topology)| {
                topology
                    .ranges_for(txn)
                    .iter()
                    .any(|range| range.replicas.contains(&self.id))
            })
    }

    /// Whether this node replicates a range holding one of `keys` in an epoch kept here:
    /// only then may it answer a read of them (a non-replica would say "no writes").
    pub(super) fn owns_keys(&self, keys: &[Key]) -> bool {
        self.replicates_everything
            || self.topologies.values().any(|topology| {
                topology
                    .ranges_of(keys)
                    .iter()
                    .any(|range| range.replicas.contains(&self.id))
            })
    }

    /// This node replicates every range of every epoch kept here, as does every other
    /// node that replicates any: nothing to check per message, and sync points over every
    /// range work (each replica waits only for txns it holds).
    pub fn replicates_everything(&self) -> bool {
        self.replicates_everything
    }

    /// Recomputes what depends on the topologies kept: every node that replicates any
    /// range, and whether each (this one included) replicates all of them.
    pub(super) fn refresh_replicas(&mut self) {
        let ranges: Vec<&RangeInfo> = self.topologies.values().flat_map(|t| &t.ranges).collect();
        self.all_replicas = Topology::replicas_of(&ranges);
        self.replicates_everything = self.all_replicas.contains(&self.id)
            && ranges
                .iter()
                .all(|range| self.all_replicas.iter().all(|n| range.replicas.contains(n)));
    }

    /// Every replica of `txn`'s ranges (see [`Node::ranges_for`]), this node included.
    pub(super) fn replicas_for(&self, txn: &Txn) -> Vec<NodeId> {
        if self.replicates_everything {
            return self.all_replicas.clone();
        }
        Topology::replicas_of(&self.ranges_for(txn).iter().collect::<Vec<_>>())
    }

    /// The replicas of `txn`'s ranges other than this node: the peers that must learn its
    /// decision.
    pub(super) fn peers_of(&self, txn: &Txn) -> Vec<NodeId> {
        let mut peers = self.replicas_for(txn);
        peers.retain(|peer| *peer != self.id);
        peers
    }
}
