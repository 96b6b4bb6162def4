//! HoloStore's cluster state: membership and range descriptors with generations.
//!
//! A range descriptor is `(range_id, start_key, end_key, replicas, generation)`. Today the
//! map is static: it is built at start from the node files' members and pre-split points
//! ([`ClusterMap::initial`]), every range is replicated on every member, and every
//! descriptor is at generation 1. The generation is carried from the start so that split
//! and merge (which will bump it, fence the ranges involved and make replicas refuse
//! commands routed with an older one) need no format change. The replicated meta-plane
//! (the map itself as an Accord group, the controller lease) is not built yet.

use bytes::Bytes;
use holo_accord::{NodeId, RangeId, RangeInfo, Topology};

/// A node of the cluster and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub resp_addr: String,
    pub grpc_addr: String,
}

/// Keys `start..end` (`end: None`: to the end of the key space), replicated on `replicas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDescriptor {
    pub id: RangeId,
    pub start: Bytes,
    pub end: Option<Bytes>,
    pub replicas: Vec<NodeId>,
    pub generation: u64,
}

impl RangeDescriptor {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= &self.start[..] && self.end.as_ref().is_none_or(|end| key < &end[..])
    }
}

/// Why a cluster map cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    #[error("the cluster has no members")]
    NoMembers,
    #[error("member id {0} appears twice")]
    DuplicateMember(u16),
    #[error("split points must be strictly increasing and non-empty: {0:?} is not")]
    BadSplitPoint(String),
}

/// Members and the ranges that partition the key space, sorted by start key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    members: Vec<Member>,
    ranges: Vec<RangeDescriptor>,
}

impl ClusterMap {
    /// The map a new cluster starts with: ranges cut at `split_points` (so `n` points give
    /// `n + 1` ranges, ids 1, 2, ...), each replicated on every member, generation 1.
    ///
    /// # Errors
    /// No members, a member id twice, or split points not strictly increasing.
    pub fn initial(mut members: Vec<Member>, split_points: &[Bytes]) -> Result<Self, MetaError> {
        if members.is_empty() {
            return Err(MetaError::NoMembers);
        }
        members.sort_by_key(|m| m.id);
        if let Some(w) = members.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(MetaError::DuplicateMember(w[0].id.0));
        }
        let mut previous: Option<&Bytes> = None;
        for point in split_points {
            if point.is_empty() || previous.is_some_and(|p| p >= point) {
                return Err(MetaError::BadSplitPoint(
                    String::from_utf8_lossy(point).into_owned(),
                ));
            }
            previous = Some(point);
        }
        let replicas: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        let starts = std::iter::once(Bytes::new()).chain(split_points.iter().cloned());
        let ends = split_points.iter().cloned().map(Some).chain([None]);
        let ranges = starts
            .zip(ends)
            .enumerate()
            .map(|(i, (start, end))| RangeDescriptor {
                id: RangeId(i as u64 + 1),
                start,
                end,
                replicas: replicas.clone(),
                generation: 1,
            })
            .collect();
        Ok(ClusterMap { members, ranges })
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn ranges(&self) -> &[RangeDescriptor] {
        &self.ranges
    }

    /// The range holding `key`.
    pub fn range_of(&self, key: &[u8]) -> &RangeDescriptor {
        let i = self.ranges.partition_point(|r| r.start.as_ref() <= key);
        &self.ranges[i - 1]
    }

    /// The topology holo-accord runs on.
    pub fn topology(&self) -> Topology {
        Topology {
            ranges: self
                .ranges
                .iter()
                .map(|r| RangeInfo {
                    id: r.id,
                    start: r.start.clone(),
                    end: r.end.clone(),
                    replicas: r.replicas.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u16]) -> Vec<Member> {
        ids.iter()
            .map(|&id| Member {
                id: NodeId(id),
                resp_addr: format!("127.0.0.1:{}", 16378 + id),
                grpc_addr: format!("127.0.0.1:{}", 15050 + id),
            })
            .collect()
    }

    fn points(p: &[&'static str]) -> Vec<Bytes> {
        p.iter().map(|s| Bytes::from_static(s.as_bytes())).collect()
    }

    #[test]
    fn split_points_partition_the_key_space() {
        let map = ClusterMap::initial(members(&[3, 1, 2]), &points(&["g", "n", "t"])).unwrap();
        assert_eq!(map.ranges().len(), 4);
        assert_eq!(map.members()[0].id, NodeId(1));
        for (key, range) in [("", 1), ("a", 1), ("g", 2), ("m", 2), ("n", 3), ("zz", 4)] {
            let r = map.range_of(key.as_bytes());
            assert_eq!(r.id, RangeId(range), "key {key:?}");
            assert!(r.contains(key.as_bytes()));
            assert_eq!(r.generation, 1);
            assert_eq!(r.replicas, vec![NodeId(1), NodeId(2), NodeId(3)]);
        }
        let topology = map.topology();
        assert_eq!(topology.ranges.len(), 4);
        assert_eq!(topology.ranges[3].end, None);
    }

    #[test]
    fn bad_maps_are_refused() {
        assert_eq!(ClusterMap::initial(vec![], &[]), Err(MetaError::NoMembers));
        assert_eq!(
            ClusterMap::initial(members(&[1, 1]), &[]),
            Err(MetaError::DuplicateMember(1))
        );
        assert_eq!(
            ClusterMap::initial(members(&[1]), &points(&["b", "a"])),
            Err(MetaError::BadSplitPoint("a".into()))
        );
        assert_eq!(
            ClusterMap::initial(members(&[1]), &points(&[""])),
            Err(MetaError::BadSplitPoint(String::new()))
        );
    }
}
