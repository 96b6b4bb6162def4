//! Where ranges live, and which node a client's operation goes to.
//!
//! Most runs replicate every range on every node (3 or 5). Runs with partial replication
//! (`Faults::partial_replication`) have 4, 5 or 7 nodes and a few ranges, each on 3 (with 5
//! nodes or more, sometimes 5) nodes chosen per seed, so replica sets overlap in every way.
//! There, an operation stays inside one range and goes to one of that range's replicas,
//! splits keep a range's replicas and only neighbours with the same replicas merge (the
//! meta key's writes and each history cut go to a replica of their ranges too), and no node
//! proposes sync points (`holo_accord::Node::replicates_everything`): both wait for deps
//! kept by key. Ephemeral reads run too: they depend on replicas naming only writes they
//! hold durably (a write lost in a crash would otherwise keep the read waiting until a sync
//! point decided without it, and there is none here). The checker then also checks that no
//! node records or applies a txn of a range it does not replicate, and that every txn
//! decided to execute is applied by a majority of its range's replicas.

use holo_accord::{Key, NodeId, RangeId, RangeInfo, Topology};

use super::{Sim, key};
use crate::checker::ClientOp;
use crate::rng::Rng;

/// Three ranges over the clients' keys, each on every node.
pub fn full_topology(nodes: u16) -> Topology {
    let replicas: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    let bounds = [None, Some(key(3)), Some(key(6)), None];
    let ranges = (0..3)
        .map(|i| RangeInfo {
            id: RangeId(i as u64),
            start: bounds[i].clone().unwrap_or_default(),
            end: bounds[i + 1].clone(),
            replicas: replicas.clone(),
        })
        .collect();
    Topology { epoch: 1, ranges }
}

/// Two to four ranges over `keys` client keys (at least two keys each), each on 3 nodes of
/// `nodes` (sometimes 5), chosen at random.
pub fn partial_topology(rng: &mut Rng, nodes: u16, keys: u64) -> Topology {
    let mut sorted: Vec<Key> = (0..keys).map(key).collect();
    sorted.sort();
    let count = rng.between(2, (keys / 2).clamp(2, 4)) as usize;
    let mut sets: Vec<Vec<NodeId>> = (0..count).map(|_| replica_set(rng, nodes)).collect();
    // Some node must lack some range, or this is full replication on fewer nodes.
    while sets.iter().all(|set| *set == sets[0]) {
        sets[count - 1] = replica_set(rng, nodes);
    }
    let ranges = sets
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| RangeInfo {
            id: RangeId(i as u64),
            start: if i == 0 {
                Key::new()
            } else {
                sorted[i * sorted.len() / count].clone()
            },
            end: (i + 1 < count).then(|| sorted[(i + 1) * sorted.len() / count].clone()),
            replicas,
        })
        .collect();
    Topology { epoch: 1, ranges }
}

/// 3 of `nodes` (with 5 or more, sometimes 5), at random, sorted.
fn replica_set(rng: &mut Rng, nodes: u16) -> Vec<NodeId> {
    let factor = if nodes >= 5 && rng.percent(30) { 5 } else { 3 };
    let mut all: Vec<NodeId> = (0..nodes).map(NodeId).collect();
    for j in (1..all.len()).rev() {
        all.swap(j, rng.between(0, j as u64) as usize);
    }
    let mut replicas = all[..factor].to_vec();
    replicas.sort();
    replicas
}

impl Sim {
    /// A client's next operation and the node it goes to: any key and any node, or with
    /// partial replication, keys of one range and one of its replicas.
    pub(super) fn pick_op(&mut self) -> (ClientOp, usize) {
        let all: Vec<Key> = (0..self.keys).map(key).collect();
        let Some(placement) = &self.partial else {
            let op = ClientOp::random_from(&mut self.rng, &all);
            let coordinator = self.rng.between(0, self.hosts.len() as u64 - 1) as usize;
            return (op, coordinator);
        };
        let range =
            &placement.ranges[self.rng.between(0, placement.ranges.len() as u64 - 1) as usize];
        let keys: Vec<Key> = all.into_iter().filter(|k| range.contains(k)).collect();
        let replicas = range.replicas.clone();
        let op = ClientOp::random_from(&mut self.rng, &keys);
        let coordinator = replicas[self.rng.between(0, replicas.len() as u64 - 1) as usize];
        (op, coordinator.0 as usize)
    }
}
