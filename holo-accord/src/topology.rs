//! Which nodes replicate which keys, and the quorum sizes that follow.

use crate::ids::{NodeId, RangeId};
use crate::txn::{Key, Txn};

/// One range: keys in `start..end` (`end: None`: to the end of the key space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeInfo {
    pub id: RangeId,
    pub start: Key,
    pub end: Option<Key>,
    pub replicas: Vec<NodeId>,
}

impl RangeInfo {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|end| key < &end[..])
    }

    /// A simple majority of the replicas.
    pub fn slow_quorum(&self) -> usize {
        self.replicas.len() / 2 + 1
    }

    /// The fast-path quorum with every replica in the electorate: floor((f + n) / 2) + 1
    /// where f = (n - 1) / 2; all 3 of 3, 4 of 5.
    pub fn fast_quorum(&self) -> usize {
        let n = self.replicas.len();
        let f = (n - 1) / 2;
        (f + n) / 2 + 1
    }
}

/// The ranges of the key space in one epoch, sorted and covering it without gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Epochs start at 1 and each topology change adds one.
    pub epoch: u64,
    pub ranges: Vec<RangeInfo>,
}

impl Topology {
    /// Epoch 1 with one range over the whole key space, replicated on `replicas` (tests,
    /// benchmarks and single-group clusters).
    pub fn whole(replicas: Vec<NodeId>) -> Topology {
        Topology {
            epoch: 1,
            ranges: vec![RangeInfo {
                id: RangeId(1),
                start: Key::new(),
                end: None,
                replicas,
            }],
        }
    }

    /// The ranges `txn` involves: those holding its keys; for a sync point, every range, or
    /// those its scope overlaps.
    pub fn ranges_for<'a>(&'a self, txn: &'a Txn) -> Vec<&'a RangeInfo> {
        if !txn.id.is_sync_point() {
            return self.ranges_of(txn.keys.iter().map(|(k, _)| k));
        }
        match &txn.scope {
            None => self.ranges.iter().collect(),
            Some(scope) => self
                .ranges
                .iter()
                .filter(|r| scope.overlaps(&r.start, r.end.as_deref()))
                .collect(),
        }
    }

    /// The ranges that hold any of `keys`, each once, in range order.
    pub fn ranges_of<'a>(&'a self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<&'a RangeInfo> {
        let mut indexes: Vec<usize> = keys
            .into_iter()
            .map(|key| {
                self.ranges
                    .iter()
                    .position(|r| r.contains(key))
                    .expect("the ranges cover the key space")
            })
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes.into_iter().map(|i| &self.ranges[i]).collect()
    }

    /// Every node that replicates any of the given ranges, each once.
    pub fn replicas_of(ranges: &[&RangeInfo]) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = ranges
            .iter()
            .flat_map(|r| r.replicas.iter().copied())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(n: u16) -> RangeInfo {
        RangeInfo {
            id: RangeId(1),
            start: Key::new(),
            end: None,
            replicas: (0..n).map(NodeId).collect(),
        }
    }

    #[test]
    fn quorum_table() {
        // (replicas, slow quorum, fast quorum): ACCORD.md section 2.
        for (n, slow, fast) in [(1, 1, 1), (3, 2, 3), (5, 3, 4), (7, 4, 6)] {
            assert_eq!(
                (range(n).slow_quorum(), range(n).fast_quorum()),
                (slow, fast),
                "n = {n}"
            );
        }
    }
}
