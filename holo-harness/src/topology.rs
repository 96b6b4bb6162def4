//! Topology changes on a schedule: splits and merges through the nodes' admin service while
//! a workload runs, and the lease holder for the nemesis that kills the controller.
//!
//! Every `every`, the loop asks a node (starting from a random one, skipping those that do
//! not answer) for the meta-plane's status. While an operation is still cutting its history
//! it waits; otherwise it splits a random range of two keys or more at its median key (while
//! there are fewer than eight) or merges a random pair of neighbours, through
//! that node, which passes the request on to the lease holder. Refusals are expected under
//! faults (no lease while a holder's lease runs out, a range with fewer than two keys) and
//! recorded with their reason; the suite fails a run in which nothing changed.

use std::time::{Duration, Instant};

use holo_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::workload::Rng;

type Admin = pb::admin_client::AdminClient<tonic::transport::Channel>;

/// One split or merge the loop asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopologyEvent {
    /// Seconds after the run's origin.
    pub at: f64,
    /// What was asked, e.g. `split range 4 at its median` (through node 2).
    pub action: String,
    /// `epoch N` when done, or why it was refused.
    pub outcome: String,
    pub done: bool,
}

async fn connect(grpc: &str, timeout: Duration) -> anyhow::Result<Admin> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    Ok(Admin::new(endpoint.connect().await?))
}

/// The meta-plane's status as the node at `grpc` applied it (with `sizes`, each range's
/// keys in that node's storage).
///
/// # Errors
/// The node does not answer within `timeout`.
pub async fn status_with(
    grpc: &str,
    timeout: Duration,
    sizes: bool,
) -> anyhow::Result<pb::MetaStatusReply> {
    let mut admin = connect(grpc, timeout).await?;
    Ok(admin
        .meta_status(pb::MetaStatusRequest { sizes })
        .await?
        .into_inner())
}

/// [`status_with`] without sizes.
///
/// # Errors
/// The node does not answer within `timeout`.
pub async fn status(grpc: &str, timeout: Duration) -> anyhow::Result<pb::MetaStatusReply> {
    status_with(grpc, timeout, false).await
}

/// The index (0-based) of the node holding the controller lease, as the first node of
/// `grpcs` that answers sees it.
pub async fn lease_holder(grpcs: &[String]) -> Option<usize> {
    for grpc in grpcs {
        if let Ok(s) = status(grpc, Duration::from_millis(500)).await {
            return s
                .lease
                .and_then(|l| usize::try_from(l.holder).ok())
                .and_then(|id| id.checked_sub(1));
        }
    }
    None
}

/// Splits and merges every `every` until `until` after `origin`, or until `stop` is set.
pub async fn run(
    grpcs: &[String],
    every: Duration,
    origin: Instant,
    until: Duration,
    seed: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<TopologyEvent> {
    let mut rng = Rng::new(seed);
    let mut events = Vec::new();
    let mut next = every;
    // An operation needs time to be decided and cut: none starts in the last second.
    while next + Duration::from_secs(1) < until && !stop.load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep_until((origin + next).into()).await;
        next += every;
        let first = rng.below(grpcs.len());
        let mut asked = None;
        for k in 0..grpcs.len() {
            let i = (first + k) % grpcs.len();
            if let Ok(s) = status_with(&grpcs[i], Duration::from_millis(500), true).await {
                asked = Some((i, s));
                break;
            }
        }
        let Some((i, s)) = asked else {
            continue;
        };
        if !s.operations.is_empty() || s.ranges.is_empty() {
            continue;
        }
        // Only ranges of two keys or more have a median to split at.
        let splittable: Vec<u64> = s
            .ranges
            .iter()
            .filter(|r| r.keys >= 2)
            .map(|r| r.id)
            .collect();
        let split = !splittable.is_empty()
            && (s.ranges.len() < 2 || (s.ranges.len() < 8 && rng.below(2) == 0));
        if !split && s.ranges.len() < 2 {
            continue;
        }
        let at = origin.elapsed().as_secs_f64();
        let Ok(mut admin) = connect(&grpcs[i], Duration::from_secs(15)).await else {
            continue;
        };
        let (action, reply) = if split {
            let range = splittable[rng.below(splittable.len())];
            let reply = admin
                .split(pb::SplitRequest {
                    range,
                    at: None,
                    forwarded: false,
                })
                .await;
            (format!("split range {range} at its median"), reply)
        } else {
            let l = rng.below(s.ranges.len() - 1);
            let (left, right) = (s.ranges[l].id, s.ranges[l + 1].id);
            let reply = admin
                .merge(pb::MergeRequest {
                    left,
                    right,
                    forwarded: false,
                })
                .await;
            (format!("merge range {right} into range {left}"), reply)
        };
        let (outcome, done) = match reply {
            Ok(r) => (format!("epoch {}", r.into_inner().epoch), true),
            Err(e) => (e.message().to_owned(), false),
        };
        events.push(TopologyEvent {
            at,
            action: format!("{action} (through node {})", i + 1),
            outcome,
            done,
        });
    }
    events
}

/// Waits until every node answers with the same map and nothing in flight; returns the
/// epoch, or what is still wrong at the deadline.
///
/// # Errors
/// At `within`: the nodes that do not answer or disagree, or operations still in flight.
pub async fn settled(grpcs: &[String], within: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    loop {
        let mut views = Vec::new();
        for grpc in grpcs {
            views.push(status(grpc, Duration::from_secs(2)).await);
        }
        let wrong: Vec<String> = views
            .iter()
            .zip(grpcs)
            .filter_map(|(v, grpc)| match v {
                Err(e) => Some(format!("{grpc} does not answer: {e}")),
                Ok(s) if !s.operations.is_empty() => Some(format!(
                    "{grpc}: {} operation(s) in flight, the oldest {} ms old",
                    s.operations.len(),
                    s.operations.iter().map(|o| o.age_ms).max().unwrap_or(0)
                )),
                Ok(s) if s.accord_epoch != s.epoch || s.oldest_epoch != s.epoch => Some(format!(
                    "{grpc}: map epoch {}, consensus epoch {}, oldest kept {}",
                    s.epoch, s.accord_epoch, s.oldest_epoch
                )),
                Ok(_) => None,
            })
            .collect();
        let maps: std::collections::BTreeSet<(u64, u64)> = views
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .map(|s| (s.epoch, s.map_hash))
            .collect();
        if wrong.is_empty() && maps.len() == 1 {
            return Ok(maps.first().expect("one").0);
        }
        if Instant::now() >= deadline {
            let mut all = wrong;
            if maps.len() > 1 {
                all.push(format!(
                    "the nodes hold different maps (epoch, hash): {maps:?}"
                ));
            }
            anyhow::bail!(
                "the meta-plane did not settle within {within:?}: {}",
                all.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
