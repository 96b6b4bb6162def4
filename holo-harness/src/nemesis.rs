//! Faults on a schedule: kill -9 and restart, SIGSTOP and SIGCONT, each recorded with its time
//! so results can be cut into phases (healthy, fault, recovery).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterControl, Partition};

/// What the nemesis does to a local cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL one node, restart it after the hold time.
    Kill,
    /// SIGKILL the node holding the controller lease (usually in the middle of a split or
    /// merge when the topology loop runs), restart it after the hold time.
    KillController,
    /// SIGKILL a node that does not hold the controller lease, restart it after the hold.
    KillReplica,
    /// SIGKILL one node and keep it down for a long hold (a phase of 10 s or more), at a
    /// jittered moment, never the previous victim; then restart it.
    NodeDown,
    /// SIGKILL every node at once, restart them all after the hold time.
    KillAll,
    /// SIGSTOP one node, SIGCONT after the hold time.
    Pause,
    /// A network partition around one node (Docker clusters), healed after the hold time.
    Partition(Partition),
}

/// One thing the nemesis did, `at` seconds after the run's origin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultEvent {
    pub at: f64,
    /// `kill`, `restart`, `pause`, `resume`.
    pub action: String,
    /// 1-based node ids.
    pub nodes: Vec<u16>,
    /// For restarts: how long the node took to answer PING, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<f64>,
}

/// A window of a run: healthy, or while a fault lasted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Phase {
    pub label: String,
    pub start: f64,
    pub end: f64,
}

/// The schedule: starting `first` into the run, every `every`, a fault held for `hold`.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub fault: Fault,
    pub first: Duration,
    pub every: Duration,
    pub hold: Duration,
    pub seed: u64,
}

/// Runs `schedule` against `cluster` until `until` (relative to `origin`), then heals: every
/// paused node resumed, every killed node restarted. Returns what it did.
pub async fn run<C: ClusterControl>(
    cluster: &mut C,
    schedule: &Schedule,
    origin: Instant,
    until: Duration,
) -> anyhow::Result<Vec<FaultEvent>> {
    let at = |origin: Instant| origin.elapsed().as_secs_f64();
    let mut events = Vec::new();
    let mut rng = crate::workload::Rng::new(schedule.seed);
    let mut next = schedule.first;
    let mut last_victim: Option<usize> = None;
    // Faults take time to inject (a Docker partition is several iptables calls): a fault
    // starts only if it can also end before the workload does.
    while next + schedule.hold < until {
        tokio::time::sleep_until((origin + next).into()).await;
        if origin.elapsed() + schedule.hold + Duration::from_millis(500) >= until {
            break;
        }
        let mut victim = rng.below(cluster.len());
        if schedule.fault == Fault::NodeDown {
            // Another node each time, at a moment that moves within a second.
            if last_victim == Some(victim) {
                victim = (victim + 1) % cluster.len();
            }
            let jitter = Duration::from_millis(rng.below(1_000) as u64);
            tokio::time::sleep(jitter).await;
        }
        let holder = match schedule.fault {
            Fault::KillController | Fault::KillReplica => {
                crate::topology::lease_holder(&cluster.grpc_addrs()).await
            }
            _ => None,
        };
        match (schedule.fault, holder) {
            (Fault::KillController, Some(h)) => victim = h,
            (Fault::KillReplica, Some(h)) if victim == h => victim = (h + 1) % cluster.len(),
            _ => {}
        }
        last_victim = Some(victim);
        let victims: Vec<usize> = match schedule.fault {
            Fault::KillAll => (0..cluster.len()).collect(),
            Fault::Kill
            | Fault::KillController
            | Fault::KillReplica
            | Fault::NodeDown
            | Fault::Pause
            | Fault::Partition(_) => vec![victim],
        };
        let ids: Vec<u16> = victims.iter().map(|i| *i as u16 + 1).collect();
        match schedule.fault {
            Fault::Kill
            | Fault::KillController
            | Fault::KillReplica
            | Fault::KillAll
            | Fault::NodeDown => {
                cluster.kill9_all(&victims).await?;
                events.push(FaultEvent {
                    at: at(origin),
                    action: "kill".into(),
                    nodes: ids.clone(),
                    took_ms: None,
                });
            }
            Fault::Pause => {
                cluster.pause(victim)?;
                events.push(FaultEvent {
                    at: at(origin),
                    action: "pause".into(),
                    nodes: ids.clone(),
                    took_ms: None,
                });
            }
            Fault::Partition(kind) => {
                let what = cluster.partition(kind, victim).await?;
                events.push(FaultEvent {
                    at: at(origin),
                    action: format!("partition: {what}"),
                    nodes: ids.clone(),
                    took_ms: None,
                });
            }
        }
        tokio::time::sleep(schedule.hold).await;
        let killed: &[usize] = match schedule.fault {
            Fault::Kill
            | Fault::KillController
            | Fault::KillReplica
            | Fault::KillAll
            | Fault::NodeDown => &victims,
            Fault::Pause | Fault::Partition(_) => &[],
        };
        events.extend(heal(cluster, origin, killed).await?);
        next += schedule.every;
    }
    Ok(events)
}

/// Heals the network, resumes paused nodes and restarts the nodes in `killed` (only those: a
/// node that died on its own is the suite's finding, not something to paper over), recording
/// each.
pub async fn heal<C: ClusterControl>(
    cluster: &mut C,
    origin: Instant,
    killed: &[usize],
) -> anyhow::Result<Vec<FaultEvent>> {
    let mut events = Vec::new();
    if cluster.heal_network().await? {
        events.push(FaultEvent {
            at: origin.elapsed().as_secs_f64(),
            action: "heal".into(),
            nodes: (1..=cluster.len() as u16).collect(),
            took_ms: None,
        });
    }
    let mut resumed = Vec::new();
    for i in 0..cluster.len() {
        if cluster.is_paused(i) {
            cluster.resume(i)?;
            resumed.push(i as u16 + 1);
        }
    }
    if !resumed.is_empty() {
        events.push(FaultEvent {
            at: origin.elapsed().as_secs_f64(),
            action: "resume".into(),
            nodes: resumed,
            took_ms: None,
        });
    }
    let stopped: Vec<usize> = killed
        .iter()
        .copied()
        .filter(|&i| !cluster.is_running(i))
        .collect();
    if !stopped.is_empty() {
        let started = Instant::now();
        let at = origin.elapsed().as_secs_f64();
        cluster.restart_all(&stopped).await?;
        events.push(FaultEvent {
            at,
            action: "restart".into(),
            nodes: stopped.iter().map(|i| *i as u16 + 1).collect(),
            took_ms: Some(started.elapsed().as_secs_f64() * 1e3),
        });
    }
    Ok(events)
}

/// Cuts `[0, end]` into phases: `healthy` between faults, `<action> node N` while one lasts.
pub fn phases(events: &[FaultEvent], end: f64) -> Vec<Phase> {
    let mut out = Vec::new();
    let mut cursor = 0.0;
    let mut open: Option<(f64, String)> = None;
    for e in events {
        let opens = e.action == "kill" || e.action == "pause" || e.action.starts_with("partition");
        if opens {
            if e.at > cursor {
                out.push(Phase {
                    label: "healthy".into(),
                    start: cursor,
                    end: e.at,
                });
            }
            let who = if e.nodes.len() > 1 {
                "all nodes".to_string()
            } else {
                format!("node {}", e.nodes[0])
            };
            let label = match e.action.strip_prefix("partition: ") {
                Some(what) => what.to_string(),
                None if e.action == "kill" => format!("{who} killed"),
                None => format!("{who} paused"),
            };
            open = Some((e.at, label));
        } else if let Some((start, label)) = open.take() {
            // heal, resume or restart: the fault ends once the node serves again.
            let end_at = e.at + e.took_ms.unwrap_or(0.0) / 1e3;
            out.push(Phase {
                label,
                start,
                end: end_at,
            });
            cursor = end_at;
        }
    }
    if let Some((start, label)) = open {
        out.push(Phase { label, start, end });
    } else if end > cursor {
        out.push(Phase {
            label: "healthy".into(),
            start: cursor,
            end,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: f64, action: &str, node: u16, took_ms: Option<f64>) -> FaultEvent {
        FaultEvent {
            at,
            action: action.into(),
            nodes: vec![node],
            took_ms,
        }
    }

    #[test]
    fn phases_alternate_between_healthy_and_faults() {
        let events = [
            event(2.0, "kill", 2, None),
            event(4.0, "restart", 2, Some(500.0)),
            event(6.0, "pause", 3, None),
            event(7.0, "resume", 3, None),
        ];
        let p = phases(&events, 10.0);
        let labels: Vec<(&str, f64, f64)> = p
            .iter()
            .map(|p| (p.label.as_str(), p.start, p.end))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("healthy", 0.0, 2.0),
                ("node 2 killed", 2.0, 4.5),
                ("healthy", 4.5, 6.0),
                ("node 3 paused", 6.0, 7.0),
                ("healthy", 7.0, 10.0),
            ]
        );
    }
}
