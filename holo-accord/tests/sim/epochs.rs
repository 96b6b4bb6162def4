//! Topology changes: the ranges split and merge (replicas unchanged) at random moments
//! under every other fault, each change a new epoch. The sequence of topologies plays the
//! meta range's part (an oracle here): every node adopts the epochs strictly in order, each
//! at its own pace (so nodes in different epochs coordinate and witness each other's
//! txns), a node that is down catches up after its restart, and a restarted node is given
//! the epochs it kept. Checks: every txn a node proposes carries the epoch that node is in,
//! and no node ever adopts out of order or is handed an epoch it cannot take.

use holo_accord::{Key, Node, RangeId, RangeInfo, Topology, TxnId};

use super::{Event, Sim};
use crate::rng::Rng;

/// Keys a split may happen at: the clients' keys and a few beyond.
const SPLIT_KEYS: u64 = 10;
/// Most delay between a change and a node adopting it.
const ADOPT_DELAY_US_MAX: u64 = 150_000;

/// Every epoch's topology and how far each node has adopted them.
pub struct Epochs {
    /// Index `e - 1` holds epoch `e`.
    topologies: Vec<Topology>,
    adopted: Vec<u64>,
    next_range: u64,
}

impl Epochs {
    pub fn new(initial: Topology, nodes: usize) -> Epochs {
        assert_eq!(initial.epoch, 1);
        let next_range = initial.ranges.iter().map(|r| r.id.0).max().unwrap_or(0) + 1;
        Epochs {
            topologies: vec![initial],
            adopted: vec![1; nodes],
            next_range,
        }
    }

    pub fn all(&self) -> &[Topology] {
        &self.topologies
    }

    pub fn latest(&self) -> u64 {
        self.topologies.len() as u64
    }

    fn get(&self, epoch: u64) -> &Topology {
        &self.topologies[epoch as usize - 1]
    }

    pub fn adopted(&self, node: usize) -> u64 {
        self.adopted[node]
    }

    /// The oldest epoch some node may still hold txns of: below it, every node moved on.
    fn floor(&self) -> u64 {
        *self.adopted.iter().min().expect("nodes")
    }

    /// The topologies a node restarts with: from the floor to the epoch it had adopted.
    pub fn for_restart(&self, node: usize) -> Vec<Topology> {
        (self.floor()..=self.adopted[node])
            .map(|e| self.get(e).clone())
            .collect()
    }

    /// A new epoch: a split of a random range at a key inside it, or a merge of two
    /// neighbours.
    fn change(&mut self, rng: &mut Rng, key: fn(u64) -> Key) {
        let current = self.get(self.latest());
        let mut ranges = current.ranges.clone();
        let i = rng.between(0, ranges.len() as u64 - 1) as usize;
        let inside: Vec<Key> = (0..SPLIT_KEYS)
            .map(key)
            .filter(|k| *k > ranges[i].start && ranges[i].end.as_ref().is_none_or(|e| k < e))
            .collect();
        let merge = ranges.len() > 1 && (inside.is_empty() || rng.percent(50));
        if merge {
            let left = i.min(ranges.len() - 2);
            let right = ranges.remove(left + 1);
            ranges[left].end = right.end;
        } else {
            let at = inside[rng.between(0, inside.len() as u64 - 1) as usize].clone();
            let new = RangeInfo {
                id: RangeId(self.next_range),
                start: at.clone(),
                end: ranges[i].end.replace(at),
                replicas: ranges[i].replicas.clone(),
            };
            self.next_range += 1;
            ranges.insert(i + 1, new);
        }
        let epoch = self.latest() + 1;
        self.topologies.push(Topology { epoch, ranges });
    }

    /// Checks that a txn just proposed at `node` carries the node's epoch.
    pub fn check_proposed(&self, node: usize, id: TxnId) {
        assert_eq!(
            id.timestamp().epoch,
            self.adopted[node],
            "{id} was proposed at node {node} in epoch {}, not in the node's",
            id.timestamp().epoch
        );
    }
}

impl Sim {
    pub(super) fn topology_change(&mut self) {
        let key = super::key;
        self.epochs.change(&mut self.rng, key);
        self.hash(&[self.now, 12, self.epochs.latest()]);
        for node in 0..self.hosts.len() {
            let delay = self.rng.between(0, ADOPT_DELAY_US_MAX);
            self.schedule(delay, Event::Adopt { node });
        }
    }

    /// `node` adopts the next epoch it has not (if it is up), and is scheduled again while
    /// it is behind. A node that is down catches up after its restart.
    pub(super) fn adopt(&mut self, node: usize) -> bool {
        let next = self.epochs.adopted(node) + 1;
        let Some(n) = self.hosts[node].node.as_mut() else {
            return false;
        };
        if next > self.epochs.latest() {
            return false;
        }
        let topology = self.epochs.get(next).clone();
        n.adopt(topology).expect("epochs are handed out in order");
        self.epochs.adopted[node] = next;
        let floor = self.epochs.floor();
        for host in &mut self.hosts {
            if let Some(n) = host.node.as_mut() {
                n.retire_epochs_below(floor);
            }
        }
        self.hash(&[self.now, 13, node as u64, next]);
        if next < self.epochs.latest() {
            self.schedule(1_000, Event::Adopt { node });
        }
        true
    }

    /// The epochs a restarting node is given, and its catching up on the rest.
    pub(super) fn restart_node(&mut self, node: usize, make: impl FnOnce(Vec<Topology>) -> Node) {
        let node_box = make(self.epochs.for_restart(node));
        self.hosts[node].node = Some(node_box);
        if self.epochs.adopted(node) < self.epochs.latest() {
            let delay = self.rng.between(1, ADOPT_DELAY_US_MAX);
            self.schedule(delay, Event::Adopt { node });
        }
    }
}
