//! The deterministic simulator: whole clusters of holo-accord nodes on a simulated network
//! and disk, driven by one seeded generator. Every event is checked against the invariants
//! of ACCORD.md section 7; at the end the network heals, every transaction must finish
//! (liveness) and the client history must be strictly serializable.
//!
//! Another runs ranges on a subset of 4, 5 or 7 nodes (`placement.rs`).
//!
//! A second scenario loses a minority for good (one node of 3, one or two of 5; crashed, or
//! cut off from every peer) at a random moment under load, on top of every other fault. No
//! heal brings it back: the live majority must answer every operation invoked at a live
//! node within `LIVENESS_BOUND_US` (5 s of simulated time) of its invocation or of the end of
//! the last transient fault, reach quiescence, and apply every decided txn at every live
//! node. A check that ran only after every fault healed could not see a stall that lasts as
//! long as the fault does.
//!
//! `cargo test -p holo-accord --test sim` runs a few hundred seeds; `make sim SEEDS=N` runs
//! more (`HOLO_SIM_SEEDS=N`); `HOLO_SIM_SEED=S` replays one seed. A failure prints its seed
//! and the command that replays it; `HOLO_SIM_WATCH=<hlc>,<hlc>` with it prints every
//! message about the transactions whose t0 has those hlc values when delivered, and every
//! crash and restart; `HOLO_SIM_WATCH_SEND=<hlc>,..` prints them when sent (lost ones too).

mod checker;
mod cluster;
mod faults;
mod rng;
mod votes;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use cluster::run_seed;
use faults::{Faults, Outcome};

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("HOLO_SIM_SEED") {
        return vec![seed.parse().expect("HOLO_SIM_SEED is a number")];
    }
    let count = std::env::var("HOLO_SIM_SEEDS")
        .map_or(300, |n| n.parse().expect("HOLO_SIM_SEEDS is a number"));
    (0..count).collect()
}

fn run_all(faults: Faults) {
    let started = Instant::now();
    let mut total = Outcome::default();
    for seed in seeds() {
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, faults))) {
            Ok(outcome) => total.add(&outcome),
            Err(_) => panic!(
                "simulation seed {seed} failed ({faults:?}); replay it with:\n  \
                 HOLO_SIM_SEED={seed} cargo test --release -p holo-accord --test sim -- --nocapture {}",
                if faults.lose_for_good {
                    "lost_for_good"
                } else if faults.partial_replication {
                    "subset"
                } else if faults.straggler_percent_max > Faults::default().straggler_percent_max {
                    "stragglers"
                } else {
                    "crashes"
                }
            ),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {secs:.1}s ({:.0} seeds/s), {} transactions checked, {:.1}% executed at their t0, \
         {} invalidated, {} messages dropped, {} crash-restarts, {} records truncated by GC, \
         {} topology changes of {} proposed ({} history cuts done, {} exclusive sync points \
         proposed)",
        total.seeds,
        total.seeds as f64 / secs,
        total.txns,
        100.0 * total.fast as f64 / total.txns.max(1) as f64,
        total.invalidated,
        total.dropped,
        total.crashes,
        total.truncated,
        total.topology_changes,
        total.changes_proposed,
        total.cuts_done,
        total.cuts_proposed
    );
}

#[test]
fn clusters_under_delay_duplication_reordering_loss_and_crashes() {
    run_all(Faults::default());
}

/// One node of 3 (one or two of 5) crashes or is cut off for good at a random moment under
/// load; the live majority must decide and apply everything within a bound and go on.
#[test]
fn clusters_with_a_minority_lost_for_good() {
    run_all(Faults {
        lose_for_good: true,
        ..Faults::default()
    });
}

/// Up to a third of the messages straggle (up to 300 ms late) while faults last: far more
/// answers and decisions overtake one another than in the default run (ephemeral reads
/// whose majority answers late, decisions reaching a reading node after later writes).
#[test]
fn clusters_with_many_stragglers() {
    run_all(Faults {
        straggler_percent_max: 30,
        ..Faults::default()
    });
}

/// Ranges on a subset of the nodes: 4, 5 or 7 nodes, each range on 3 or 5 of them, under
/// every fault but losses for good (see `placement.rs`).
#[test]
fn clusters_with_ranges_on_a_subset_of_nodes() {
    run_all(Faults {
        partial_replication: true,
        ..Faults::default()
    });
}

#[test]
fn a_seed_replays_to_the_same_event_log() {
    for seed in [1, 7, 42] {
        let first = run_seed(seed, Faults::default());
        let second = run_seed(seed, Faults::default());
        assert_eq!(
            first.log_hash, second.log_hash,
            "seed {seed} is not deterministic"
        );
    }
}
