use std::collections::{BTreeMap, BTreeSet};

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

fn at(hlc: u64) -> holo_accord::Timestamp {
    holo_accord::Timestamp {
        epoch: 1,
        hlc,
        flags: 1,
        node: 1,
    }
}

fn key(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// A state with node 1 holding the lease of term 1 until hlc 1,000,000.
fn leased(split_points: &[&'static str]) -> MetaState {
    let map = ClusterMap::initial(members(&[1, 2, 3]), &points(split_points)).unwrap();
    let mut state = MetaState::new(map);
    let lease = MetaCommand::Lease {
        holder: NodeId(1),
        term: 1,
        duration_us: 1_000_000,
    };
    assert_eq!(state.apply(&lease, at(0)), Outcome::Applied { epoch: 1 });
    state
}

fn split(range: u64, expect: u64, at: &'static str) -> MetaCommand {
    MetaCommand::Split {
        term: 1,
        range: RangeId(range),
        expect,
        at: key(at),
    }
}

fn merge(left: u64, right: u64, expect: (u64, u64)) -> MetaCommand {
    MetaCommand::Merge {
        term: 1,
        left: RangeId(left),
        right: RangeId(right),
        expect,
    }
}

fn finish(operation: u64) -> MetaCommand {
    MetaCommand::Finish { term: 1, operation }
}

fn spans(state: &MetaState) -> Vec<(u64, String, u64)> {
    state
        .map()
        .ranges()
        .iter()
        .map(|r| {
            (
                r.id.0,
                String::from_utf8_lossy(&r.start).into_owned(),
                r.generation,
            )
        })
        .collect()
}

#[test]
fn split_points_partition_the_key_space() {
    let map = ClusterMap::initial(members(&[3, 1, 2]), &points(&["g", "n", "t"])).unwrap();
    map.validate();
    assert_eq!(map.ranges().len(), 4);
    assert_eq!(map.epoch(), 1);
    assert_eq!(map.members()[0].id, NodeId(1));
    for (key, range) in [("", 1), ("a", 1), ("g", 2), ("m", 2), ("n", 3), ("zz", 4)] {
        let r = map.range_of(key.as_bytes());
        assert_eq!(r.id, RangeId(range), "key {key:?}");
        assert!(r.contains(key.as_bytes()));
        assert_eq!(r.generation, 1);
        assert_eq!(r.replicas, vec![NodeId(1), NodeId(2), NodeId(3)]);
    }
    // The topology adds the meta range over the reserved space, after the user ranges.
    let topology = map.topology();
    assert_eq!(topology.ranges.len(), 5);
    assert_eq!(
        topology.ranges[3].end.as_deref(),
        Some(&RESERVED_PREFIX[..])
    );
    assert_eq!(topology.ranges[4].id, META_RANGE);
    assert_eq!(topology.ranges[4].end, None);
    assert!(topology.ranges[4].contains(META_KEY));
    assert_eq!(map.meta_replicas(), &[NodeId(1), NodeId(2), NodeId(3)]);
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
    let reserved = Bytes::from_static(META_KEY);
    assert!(matches!(
        ClusterMap::initial(members(&[1]), &[reserved]),
        Err(MetaError::BadSplitPoint(_))
    ));
}

#[test]
fn a_split_bumps_the_epoch_and_the_generation_and_keeps_the_old_map() {
    let mut state = leased(&["m"]);
    assert_eq!(
        state.apply(&split(1, 1, "f"), at(10)),
        Outcome::Applied { epoch: 2 }
    );
    state.validate();
    assert_eq!(
        spans(&state),
        vec![
            (1, String::new(), 2),
            (3, "f".into(), 1),
            (2, "m".into(), 1)
        ]
    );
    let new = state.map().range(RangeId(3)).unwrap();
    assert_eq!(new.parent, Some((RangeId(1), 1)));
    assert_eq!(new.end, Some(key("m")));
    // Records of epoch 1 resolve by epoch 1's map, of epoch 2 by the new one.
    assert_eq!(state.range_at(1, b"g"), RangeId(1));
    assert_eq!(state.range_at(2, b"g"), RangeId(3));
    let op = state.operations()[0].clone();
    assert_eq!((op.id, op.epoch, op.phase), (1, 2, Phase::Cutting));
    // Another operation on a range being cut waits for the cut.
    assert_eq!(
        state.apply(&split(3, 1, "h"), at(11)),
        Outcome::Rejected(Rejection::Busy {
            range: RangeId(3),
            operation: 1
        })
    );
    assert_eq!(
        state.apply(&finish(1), at(20)),
        Outcome::Applied { epoch: 2 }
    );
    assert!(state.operations().is_empty());
    assert_eq!(state.history().count(), 0, "nothing needs epoch 1 any more");
    assert_eq!(state.recent().last().unwrap().finished, Some(("split", 10)));
    // Without the history, an old record resolves by the current map: the same place.
    assert_eq!(state.range_at(1, b"g"), RangeId(3));
    assert_eq!(state.counts(), (1, 0));
}

#[test]
fn split_keys_must_lie_strictly_inside() {
    let mut state = leased(&["m"]);
    let reserved = MetaCommand::Split {
        term: 1,
        range: RangeId(2),
        expect: 1,
        at: Bytes::from_static(META_KEY),
    };
    assert_eq!(
        state.apply(&reserved, at(10)),
        Outcome::Rejected(Rejection::SplitKeyOutside(RangeId(2)))
    );
    for bad in ["", "m", "z"] {
        let range = if bad == "z" { 1 } else { 2 };
        let outcome = state.apply(&split(range, 1, bad), at(10));
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::SplitKeyOutside(_))),
            "{bad:?}: {outcome:?}"
        );
    }
    assert_eq!(state.epoch(), 1);
}

#[test]
fn merge_then_split_at_the_same_key_defeats_the_aba_case() {
    let mut state = leased(&["m"]);
    assert_eq!(
        state.apply(&merge(1, 2, (1, 1)), at(10)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!(spans(&state), vec![(1, String::new(), 2)]);
    assert_eq!(state.successor(RangeId(2)), Some(RangeId(1)));
    assert_eq!(
        state.apply(&finish(1), at(11)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!(
        state.apply(&split(1, 2, "m"), at(12)),
        Outcome::Applied { epoch: 3 }
    );
    state.validate();
    // The same boundary as at the start, but a new id and generations that differ: a
    // command prepared against the first pair lands on nothing.
    assert_eq!(
        spans(&state),
        vec![(1, String::new(), 3), (3, "m".into(), 1)]
    );
    assert_eq!(
        state.apply(&merge(1, 2, (1, 1)), at(13)),
        Outcome::Rejected(Rejection::Generation {
            range: RangeId(1),
            expected: 1,
            current: 3
        })
    );
    assert_eq!(
        state.apply(&merge(1, 3, (3, 1)), at(14)),
        Outcome::Rejected(Rejection::Busy {
            range: RangeId(1),
            operation: 2
        })
    );
    assert_eq!(state.epoch(), 3);
}

#[test]
fn merge_needs_adjacent_ranges_with_the_same_replicas() {
    let mut state = leased(&["g", "m"]);
    assert_eq!(
        state.apply(&merge(1, 3, (1, 1)), at(10)),
        Outcome::Rejected(Rejection::NotAdjacent {
            left: RangeId(1),
            right: RangeId(3)
        })
    );
    state.map.ranges[1].replicas = vec![NodeId(1), NodeId(2)];
    assert_eq!(
        state.apply(&merge(1, 2, (1, 1)), at(11)),
        Outcome::Rejected(Rejection::ReplicasDiffer {
            left: RangeId(1),
            right: RangeId(2)
        })
    );
    assert_eq!(state.epoch(), 1);
    // Generations after a merge: above both.
    let mut state = leased(&["g"]);
    assert_eq!(
        state.apply(&split(2, 1, "p"), at(10)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!(
        state.apply(&finish(1), at(11)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!(
        state.apply(&merge(1, 2, (1, 2)), at(12)),
        Outcome::Applied { epoch: 3 }
    );
    assert_eq!(state.map().range(RangeId(1)).unwrap().generation, 3);
}

#[test]
fn the_lease_has_one_holder_and_a_stale_holders_commands_are_no_ops() {
    let mut state = leased(&["m"]);
    let take = |holder: u16, term: u64| MetaCommand::Lease {
        holder: NodeId(holder),
        term,
        duration_us: 1_000_000,
    };
    // Node 2 cannot take it while node 1's is live.
    assert_eq!(
        state.apply(&take(2, 2), at(500_000)),
        Outcome::Rejected(Rejection::LeaseHeld {
            holder: NodeId(1),
            expires: 1_000_000
        })
    );
    // Node 1 renews.
    assert_eq!(
        state.apply(&take(1, 1), at(900_000)),
        Outcome::Applied { epoch: 1 }
    );
    assert_eq!(state.lease().unwrap().expires, 1_900_000);
    // Expired: node 2 takes term 2; node 1's commands of term 1 change nothing.
    assert_eq!(
        state.apply(&take(2, 2), at(1_900_000)),
        Outcome::Applied { epoch: 1 }
    );
    assert_eq!(
        state.apply(&split(1, 1, "f"), at(1_900_001)),
        Outcome::Rejected(Rejection::StaleTerm {
            given: 1,
            current: 2
        })
    );
    assert_eq!(
        state.apply(&take(1, 1), at(1_900_002)),
        Outcome::Rejected(Rejection::StaleTerm {
            given: 1,
            current: 2
        })
    );
    // A holder whose lease ran out cannot act on it either, even unchallenged.
    let late = MetaCommand::Split {
        term: 2,
        range: RangeId(1),
        expect: 1,
        at: key("f"),
    };
    assert_eq!(
        state.apply(&late, at(2_900_000)),
        Outcome::Rejected(Rejection::LeaseExpired { term: 2 })
    );
    assert_eq!(state.epoch(), 1);
    assert_eq!(
        state.recent().count(),
        6,
        "every command is recorded but the renewal"
    );
    // A node racing for a term another took first hears who holds it.
    assert_eq!(
        state.apply(&take(1, 2), at(2_000_000)),
        Outcome::Rejected(Rejection::LeaseHeld {
            holder: NodeId(2),
            expires: 2_900_000
        })
    );
}

#[test]
fn the_encoding_round_trips_and_refuses_damage() {
    let mut state = leased(&["m"]);
    state.apply(&split(1, 1, "f"), at(10));
    state.apply(&merge(3, 2, (1, 1)), at(11));
    let bytes = state.encode();
    let back = MetaState::decode(&bytes).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.hash(), state.hash());
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(MetaState::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(MetaState::decode(&longer).is_err());
    let mut other_version = bytes;
    other_version[0] = 9;
    let err = MetaState::decode(&other_version).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    for command in [split(1, 1, "f"), merge(1, 2, (3, 4)), finish(7)] {
        assert_eq!(MetaCommand::decode(&command.encode()).unwrap(), command);
    }
    // A length far beyond the input is refused before anything is allocated for it.
    let mut huge = vec![1, 1];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(MetaCommand::decode(&huge).is_err());
}

#[test]
fn a_node_file_that_disagrees_with_the_persisted_map_is_named() {
    let mut state = leased(&["m"]);
    state.apply(&split(1, 1, "f"), at(10));
    let same = ClusterMap::initial(members(&[1, 2, 3]), &points(&["m"])).unwrap();
    assert_eq!(state.check_config(&same), Ok(()));
    let moved = ClusterMap::initial(members(&[1, 2, 4]), &points(&["m"])).unwrap();
    let err = state.check_config(&moved).unwrap_err();
    assert!(matches!(err, ConfigMismatch::Members { .. }), "{err}");
    let resplit = ClusterMap::initial(members(&[1, 2, 3]), &points(&["f", "m"])).unwrap();
    let err = state.check_config(&resplit).unwrap_err();
    assert!(err.to_string().contains("split_points"), "{err}");
}

/// splitmix64: the tests' own deterministic randomness (placement's tests too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A command that is often valid and sometimes stale in each way a controller can be.
fn random_command(rng: &mut Rng, state: &MetaState) -> MetaCommand {
    let ranges = state.map().ranges();
    let term = state.lease().map_or(1, |l| l.term);
    let term = if rng.below(10) == 0 {
        term.saturating_sub(1)
    } else {
        term
    };
    let r = &ranges[rng.below(ranges.len() as u64) as usize];
    let skew = u64::from(rng.below(8) == 0);
    match rng.below(10) {
        0 => MetaCommand::Lease {
            holder: NodeId(1 + rng.below(3) as u16),
            term: term + rng.below(2),
            duration_us: 1 + rng.below(3_000),
        },
        1..=4 => {
            let at: Vec<u8> = (0..1 + rng.below(3))
                .map(|_| b'a' + rng.below(26) as u8)
                .collect();
            MetaCommand::Split {
                term,
                range: r.id,
                expect: r.generation + skew,
                at: Bytes::from(at),
            }
        }
        5..=7 => {
            let i = rng.below(ranges.len() as u64) as usize;
            let (l, r) = (&ranges[i], &ranges[(i + 1) % ranges.len()]);
            MetaCommand::Merge {
                term,
                left: l.id,
                right: r.id,
                expect: (l.generation, r.generation + skew),
            }
        }
        8 if rng.below(3) == 0 => MetaCommand::Flush,
        _ => MetaCommand::Finish {
            term,
            operation: state
                .operations()
                .first()
                .map_or(rng.below(5), |op| op.id + skew),
        },
    }
}

/// Random command sequences, applied by two replicas: after every command the state is
/// valid, both replicas agree byte for byte, the encoding round-trips, the epoch moves by
/// one exactly when descriptors change, generations only grow, ids are never reused, and a
/// rejected command changes nothing but the record of recent outcomes.
#[test]
fn random_commands_keep_every_invariant() {
    let mut applied = BTreeMap::<&'static str, u64>::new();
    for seed in 0..100u64 {
        let mut rng = Rng(seed);
        let map = ClusterMap::initial(members(&[1, 2, 3]), &points(&["m"])).unwrap();
        let (mut a, mut b) = (MetaState::new(map.clone()), MetaState::new(map));
        let mut ids_seen: BTreeSet<RangeId> = a.map().ranges().iter().map(|r| r.id).collect();
        let mut generations: BTreeMap<RangeId, u64> = BTreeMap::new();
        let mut hlc = 0;
        for step in 0..200 {
            hlc += rng.below(400);
            let command = random_command(&mut rng, &a);
            let before = a.clone();
            let outcome = a.apply(&command, at(hlc));
            assert_eq!(
                b.apply(&command, at(hlc)),
                outcome,
                "seed {seed} step {step}"
            );
            let ctx = format!("seed {seed} step {step}: {command:?} -> {outcome:?}");
            a.validate();
            assert_eq!(a.hash(), b.hash(), "{ctx}");
            assert_eq!(MetaState::decode(&a.encode()).as_ref(), Ok(&a), "{ctx}");
            let changes_map = matches!(
                command,
                MetaCommand::Split { .. } | MetaCommand::Merge { .. } | MetaCommand::Flush
            );
            if matches!(outcome, Outcome::Applied { .. }) {
                let name = match command {
                    MetaCommand::Lease { .. } => "lease",
                    MetaCommand::Split { .. } => "split",
                    MetaCommand::Merge { .. } => "merge",
                    MetaCommand::Finish { .. } => "finish",
                    MetaCommand::Flush => "flush",
                };
                *applied.entry(name).or_default() += 1;
            }
            match &outcome {
                Outcome::Applied { epoch } => {
                    let expected = before.epoch() + u64::from(changes_map);
                    assert_eq!(*epoch, expected, "{ctx}");
                    if matches!(command, MetaCommand::Flush) {
                        assert_eq!(a.flush_floor(*epoch), *epoch, "{ctx}");
                        assert_eq!(a.map().ranges(), before.map().ranges(), "{ctx}");
                    }
                }
                Outcome::Rejected(_) => {
                    let mut unchanged = a.clone();
                    unchanged.recent = before.recent.clone();
                    unchanged.applied_at = before.applied_at;
                    assert_eq!(unchanged, before, "{ctx}");
                }
            }
            for r in a.map().ranges() {
                let previous = generations.insert(r.id, r.generation);
                assert!(previous.is_none_or(|g| g <= r.generation), "{ctx}");
                let is_new = ids_seen.insert(r.id);
                assert!(!is_new || r.generation == 1, "a new id starts at 1: {ctx}");
            }
            for gone in before
                .map()
                .ranges()
                .iter()
                .filter(|r| a.map().range(r.id).is_none())
            {
                assert_eq!(
                    a.successor(gone.id)
                        .map(|s| a.map().range(s).unwrap().contains(&gone.start)),
                    Some(true),
                    "a retired range's successor holds its keys: {ctx}"
                );
            }
            // Every kept epoch resolves each key as that epoch's map did.
            for (epoch, ranges) in a.history() {
                let key = &ranges[rng.below(ranges.len() as u64) as usize].start;
                let owner = ranges.iter().rev().find(|r| r.start <= *key).unwrap().id;
                assert_eq!(a.range_at(epoch, key), owner, "{ctx}");
            }
        }
    }
    // The sequences exercise every command, not only its rejections.
    for name in ["lease", "split", "merge", "finish", "flush"] {
        assert!(applied.get(name).is_some_and(|&n| n >= 50), "{applied:?}");
    }
}

#[test]
fn a_flush_is_an_operation_over_every_range_with_a_floor_per_epoch() {
    let mut state = leased(&["m"]);
    assert_eq!(state.flush_floor(1), 0);
    assert_eq!(
        state.apply(&MetaCommand::Flush, at(10)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!((state.flush_floor(1), state.flush_floor(2)), (0, 2));
    let op = state.operations()[0].clone();
    assert_eq!(op.kind.ranges(), vec![RangeId(1), RangeId(2)]);
    let span = state.operation_span(&op);
    assert_eq!(span.start, Bytes::new(), "from the first user key");
    assert_eq!(span.end, Some(Bytes::from_static(&crate::RESERVED_PREFIX)));
    // Nothing else while it is in flight, not even another flush.
    assert!(matches!(
        state.apply(&split(1, 1, "f"), at(11)),
        Outcome::Rejected(Rejection::Busy { .. })
    ));
    assert!(matches!(
        state.apply(&MetaCommand::Flush, at(12)),
        Outcome::Rejected(Rejection::Busy { .. })
    ));
    assert_eq!(
        state.apply(&finish(op.id), at(13)),
        Outcome::Applied { epoch: 2 }
    );
    state.apply(&split(1, 1, "f"), at(14));
    assert_eq!(state.flush_floor(3), 2, "a later epoch keeps the floor");
    let back = MetaState::decode(&state.encode()).unwrap();
    assert_eq!(back, state);
    assert_eq!(
        MetaCommand::decode(&MetaCommand::Flush.encode()).unwrap(),
        MetaCommand::Flush
    );
}

#[test]
fn a_state_persisted_before_flushes_existed_still_loads() {
    let mut state = leased(&["m"]);
    state.apply(&split(1, 1, "f"), at(10));
    // Version 1 is version 2 without the flush epochs at the end.
    let mut v1 = state.encode();
    v1.truncate(v1.len() - 8);
    v1[0] = 1;
    assert_eq!(MetaState::decode(&v1).unwrap(), state);
}

#[test]
fn an_operations_span_is_what_its_ranges_covered_before_it() {
    // Ranges 1 [-inf, f), 2 [f, m), 3 [m, +inf).
    let mut state = leased(&["f", "m"]);
    let span = |state: &MetaState| {
        let s = state.operation_span(&state.operations()[0]);
        (s.start, s.end)
    };
    assert_eq!(
        state.apply(&split(2, 1, "h"), at(10)),
        Outcome::Applied { epoch: 2 }
    );
    assert_eq!(span(&state), (key("f"), Some(key("m"))));
    assert_eq!(
        state.apply(&finish(1), at(11)),
        Outcome::Applied { epoch: 2 }
    );
    // Range 4 is [h, m): merged with 3, the span ends where the user key space does.
    assert_eq!(
        state.apply(&merge(4, 3, (1, 1)), at(20)),
        Outcome::Applied { epoch: 3 }
    );
    let reserved = Bytes::from_static(&RESERVED_PREFIX);
    assert_eq!(span(&state), (key("h"), Some(reserved)));
}
