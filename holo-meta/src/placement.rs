//! Placement: which members replicate each range, and the next replica change the
//! controller makes to keep them spread (`docs/elasticity.md`, section 4).
//!
//! Pure and deterministic, like the rest of this crate: the same members, ranges and sizes
//! give the same answer on every node and in every replay, with ties broken by node and
//! range id. A plan is one change at a time ([`Change`]): add a replica, drop one, or swap
//! one for another. Swapping one replica at a time does not by itself make the quorums of
//! the old and the new set intersect (with 3 replicas, {a, b, c} to {a, b, d}: {a, c} and
//! {b, d} do not meet); coordinators need quorums of both sets until the range is synced
//! in the new epoch, as META.md requires. What one at a time buys is that a range never
//! has more than one replica bootstrapping: the others, a majority of the new set, hold
//! the data and serve while it streams.
//!
//! The order of concerns, each only once the ones before it are met:
//! 1. no replica on a member that is not active (draining, removed, or dead and being
//!    replaced);
//! 2. every range has `factor` replicas (fewer only while there are not enough members);
//! 3. no range has more than `factor`;
//! 4. replica counts per member differ by at most one. Bytes choose among the moves that
//!    even the counts (the range that leaves the two members' bytes closest) and among
//!    the targets of equal count; they never cause a move of their own.

use std::collections::BTreeMap;

use holo_accord::{NodeId, RangeId};

/// One range's replicas and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub range: RangeId,
    pub replicas: Vec<NodeId>,
    /// Bytes of the range's data (an estimate is enough: it only breaks ties).
    pub bytes: u64,
}

/// One change of one range's replica set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub range: RangeId,
    /// The replica that goes, if any.
    pub from: Option<NodeId>,
    /// The replica that comes (and bootstraps), if any.
    pub to: Option<NodeId>,
}

/// What a member holds: replicas, then bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Load {
    replicas: usize,
    bytes: u64,
}

/// The replicas of ranges created from nothing (a new cluster's ranges): for each, in
/// order, the `factor` members holding the fewest replicas so far (fewer if there are not
/// that many members).
pub fn initial(members: &[NodeId], factor: usize, ranges: &[RangeId]) -> Vec<Placed> {
    let mut placed: Vec<Placed> = Vec::new();
    for range in ranges {
        let load = loads(members, &placed);
        let mut replicas = least_loaded(&load, |_| true, factor);
        replicas.sort();
        placed.push(Placed {
            range: *range,
            replicas,
            bytes: 0,
        });
    }
    placed
}

/// The next change that brings `ranges` closer to `factor` replicas each, spread over the
/// `active` members, with nothing left on any other member (draining, removed, dead);
/// `None` once there is none to make.
pub fn next_change(ranges: &[Placed], active: &[NodeId], factor: usize) -> Option<Change> {
    let load = loads(active, ranges);
    // Ties between ranges go to the lowest id, whatever order the caller keeps them in.
    let mut by_id: Vec<&Placed> = ranges.iter().collect();
    by_id.sort_by_key(|r| r.range);
    let ranges = by_id;
    let target = |range: &Placed| {
        least_loaded(&load, |n| !range.replicas.contains(&n), 1)
            .first()
            .copied()
    };
    // 1. Off the members that are not active: to the least loaded member not holding the
    //    range, or simply away if the range keeps enough replicas without it.
    for range in &ranges {
        if let Some(from) = range.replicas.iter().find(|n| !active.contains(n)) {
            let staying = range.replicas.iter().filter(|n| active.contains(n)).count();
            // With enough replicas staying, none comes in its place (it would only be
            // dropped again, after a whole bootstrap).
            let to = if staying >= factor {
                None
            } else {
                target(range)
            };
            if to.is_some() || staying >= factor {
                return Some(Change {
                    range: range.range,
                    from: Some(*from),
                    to,
                });
            }
        }
    }
    // 2. Too few replicas: add one where there is room.
    for range in ranges.iter().filter(|r| r.replicas.len() < factor) {
        if let Some(to) = target(range) {
            return Some(Change {
                range: range.range,
                from: None,
                to: Some(to),
            });
        }
    }
    // 3. Too many: drop one on a member that is not active (kept so far only because the
    //    range had no other), else the one on the most loaded member.
    if let Some(range) = ranges.iter().find(|r| r.replicas.len() > factor) {
        let from = range
            .replicas
            .iter()
            .max_by_key(|n| {
                (
                    !active.contains(n),
                    load.get(n).copied().unwrap_or_default(),
                    **n,
                )
            })
            .copied();
        return Some(Change {
            range: range.range,
            from,
            to: None,
        });
    }
    rebalance(&ranges, &load)
}

/// 4. While the most loaded member holds two replicas or more than the least loaded, one
///    moves between them: of the ranges only the first holds, the one that leaves their
///    bytes closest. Each move lowers the sum of the squared counts, so moves end.
fn rebalance(ranges: &[&Placed], load: &BTreeMap<NodeId, Load>) -> Option<Change> {
    let most = load.iter().max_by_key(|(n, l)| (**l, **n))?;
    let least = load.iter().min_by_key(|(n, l)| (**l, **n))?;
    let ((most, high), (least, low)) = (most, least);
    if high.replicas < low.replicas + 2 {
        return None;
    }
    // The first holds at least two ranges the second does not.
    let best = ranges
        .iter()
        .filter(|r| r.replicas.contains(most) && !r.replicas.contains(least))
        .min_by_key(|r| {
            (
                (high.bytes - r.bytes).abs_diff(low.bytes + r.bytes),
                r.range,
            )
        })?;
    Some(Change {
        range: best.range,
        from: Some(*most),
        to: Some(*least),
    })
}

/// Each of `members` with what it holds of `ranges` (members outside the list are not
/// counted).
fn loads(members: &[NodeId], ranges: &[Placed]) -> BTreeMap<NodeId, Load> {
    let mut load: BTreeMap<NodeId, Load> = members.iter().map(|n| (*n, Load::default())).collect();
    for range in ranges {
        for replica in &range.replicas {
            if let Some(l) = load.get_mut(replica) {
                l.replicas += 1;
                l.bytes += range.bytes;
            }
        }
    }
    load
}

/// Up to `count` members that `eligible` accepts, least loaded first (ties: lowest id).
fn least_loaded(
    load: &BTreeMap<NodeId, Load>,
    eligible: impl Fn(NodeId) -> bool,
    count: usize,
) -> Vec<NodeId> {
    let mut members: Vec<(Load, NodeId)> = load
        .iter()
        .filter(|(n, _)| eligible(**n))
        .map(|(n, l)| (*l, *n))
        .collect();
    members.sort();
    members.into_iter().take(count).map(|(_, n)| n).collect()
}

/// Applies `change` to `ranges` (the tests' and the planner's own model of a committed
/// change).
pub fn apply(ranges: &mut [Placed], change: Change) {
    let range = ranges
        .iter_mut()
        .find(|r| r.range == change.range)
        .expect("a change names a placed range");
    if let Some(from) = change.from {
        range.replicas.retain(|n| *n != from);
    }
    if let Some(to) = change.to {
        range.replicas.push(to);
        range.replicas.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Rng;

    fn nodes(ids: &[u16]) -> Vec<NodeId> {
        ids.iter().map(|i| NodeId(*i)).collect()
    }

    fn ranges(count: u64) -> Vec<RangeId> {
        (1..=count).map(RangeId).collect()
    }

    fn counts(placed: &[Placed], active: &[NodeId]) -> Vec<usize> {
        let load = loads(active, placed);
        active.iter().map(|n| load[n].replicas).collect()
    }

    /// Applies changes until there is none; returns them. Checks each as it goes: one
    /// replica comes or goes (or one of each), to a member without one, from one with one.
    fn settle(placed: &mut [Placed], active: &[NodeId], factor: usize) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(change) = next_change(placed, active, factor) {
            let range = placed.iter().find(|r| r.range == change.range).unwrap();
            assert!(change.from.is_some() || change.to.is_some(), "{change:?}");
            assert!(change.from.is_none_or(|n| range.replicas.contains(&n)));
            assert!(change.to.is_none_or(|n| !range.replicas.contains(&n)));
            assert!(change.to.is_none_or(|n| active.contains(&n)));
            // A replica on an active member is never dropped while the range keeps one on a
            // member that is not: that would only have to be put back.
            let drops_active =
                change.to.is_none() && change.from.is_some_and(|n| active.contains(&n));
            assert!(
                !drops_active || range.replicas.iter().all(|n| active.contains(n)),
                "{change:?} of {range:?}"
            );
            apply(placed, change);
            changes.push(change);
            assert!(
                changes.len() <= 10_000,
                "no end to the changes: {changes:?}"
            );
        }
        changes
    }

    /// What every settled placement looks like: `factor` replicas per range on active
    /// members, or with fewer active members than that, every one of them plus what the
    /// range had elsewhere (a replica is never dropped while it cannot be replaced).
    fn check_settled(placed: &[Placed], active: &[NodeId], factor: usize) {
        for range in placed {
            let mut distinct = range.replicas.clone();
            distinct.dedup();
            assert_eq!(distinct, range.replicas, "sorted and distinct");
            let on_active = range.replicas.iter().filter(|n| active.contains(n)).count();
            assert_eq!(on_active, factor.min(active.len()), "{range:?}");
            assert!(range.replicas.len() <= factor, "{range:?}");
            if active.len() >= factor {
                assert_eq!(range.replicas.len(), factor, "{range:?}");
            }
        }
        let counts = counts(placed, active);
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(max.unwrap_or(&0) - min.unwrap_or(&0) <= 1, "{counts:?}");
    }

    #[test]
    fn a_new_cluster_spreads_its_ranges_evenly() {
        let members = nodes(&[1, 2, 3, 4, 5]);
        let placed = initial(&members, 3, &ranges(10));
        check_settled(&placed, &members, 3);
        assert_eq!(counts(&placed, &members), vec![6; 5]);
        assert_eq!(next_change(&placed, &members, 3), None);
    }

    #[test]
    fn added_members_take_their_share_one_replica_at_a_time() {
        let mut placed = initial(&nodes(&[1, 2, 3]), 3, &ranges(6));
        let members = nodes(&[1, 2, 3, 4, 5]);
        let changes = settle(&mut placed, &members, 3);
        // 18 replicas over 5 members: 4 or 3 each, so the two new ones take 3 or 4.
        assert!(changes.iter().all(|c| c.from.is_some() && c.to.is_some()));
        assert!((6..=8).contains(&changes.len()), "{changes:?}");
        check_settled(&placed, &members, 3);
    }

    #[test]
    fn a_member_that_is_no_longer_active_is_emptied() {
        let mut placed = initial(&nodes(&[1, 2, 3, 4]), 3, &ranges(8));
        let active = nodes(&[1, 2, 4]);
        let changes = settle(&mut placed, &active, 3);
        assert!(changes.iter().all(|c| c.from == Some(NodeId(3))));
        check_settled(&placed, &active, 3);
        // With too few members left, ranges keep what they can and nothing is dropped.
        let active = nodes(&[1, 2]);
        settle(&mut placed, &active, 3);
        assert!(placed.iter().all(|r| r.replicas.contains(&NodeId(4))));
        // Back to three members: they fill up again.
        let active = nodes(&[1, 2, 4]);
        settle(&mut placed, &active, 3);
        check_settled(&placed, &active, 3);
    }

    #[test]
    fn bytes_choose_which_range_moves() {
        let mut placed = vec![
            Placed {
                range: RangeId(1),
                replicas: nodes(&[1]),
                bytes: 100,
            },
            Placed {
                range: RangeId(2),
                replicas: nodes(&[1]),
                bytes: 10,
            },
            Placed {
                range: RangeId(3),
                replicas: nodes(&[1]),
                bytes: 40,
            },
        ];
        let members = nodes(&[1, 2]);
        // Node 1 holds 150 bytes: moving the 100 leaves 50 / 100, the 40 leaves 110 / 40.
        let change = next_change(&placed, &members, 1).unwrap();
        assert_eq!(change.range, RangeId(1));
        settle(&mut placed, &members, 1);
        check_settled(&placed, &members, 1);
    }

    #[test]
    fn any_placement_settles_and_the_same_input_gives_the_same_changes() {
        for seed in 0..500u64 {
            let mut rng = Rng(seed);
            let factor = [1, 3, 3, 5][rng.below(4) as usize];
            let active: Vec<NodeId> = (0..10).filter(|_| rng.below(2) == 0).map(NodeId).collect();
            let mut placed: Vec<Placed> = (1..=1 + rng.below(12))
                .map(|r| {
                    let mut replicas: Vec<NodeId> =
                        (0..10).filter(|_| rng.below(3) == 0).map(NodeId).collect();
                    replicas.sort();
                    Placed {
                        range: RangeId(r),
                        replicas,
                        bytes: rng.below(1 << 20),
                    }
                })
                .collect();
            let mut again = placed.clone();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let changes = settle(&mut placed, &active, factor);
                check_settled(&placed, &active, factor);
                assert_eq!(settle(&mut again, &active, factor), changes);
            }));
            assert!(result.is_ok(), "placement seed {seed} failed");
        }
    }
}
