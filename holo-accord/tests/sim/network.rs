//! The simulated network: partitions, and every envelope's fate (lost, cut, duplicated,
//! delayed, straggling) while the faults last.

use holo_accord::{Envelope, Node, NodeId};

use super::{Event, STRAGGLER_US_MAX, Sim};

impl Sim {
    /// Cuts links for a while: one node isolated, a majority/minority split, or one
    /// direction of one link.
    pub(super) fn partition(&mut self) {
        let n = self.hosts.len();
        let node = self.rng.between(0, n as u64 - 1) as usize;
        self.cut.clear();
        match self.rng.between(0, 2) {
            0 => {
                for other in (0..n).filter(|o| *o != node) {
                    self.cut.insert((node, other));
                    self.cut.insert((other, node));
                }
            }
            1 => {
                let minority: Vec<usize> = (0..n).filter(|_| self.rng.percent(40)).collect();
                for a in &minority {
                    for b in (0..n).filter(|b| !minority.contains(b)) {
                        self.cut.insert((*a, b));
                        self.cut.insert((b, *a));
                    }
                }
            }
            _ => {
                let to = (node + 1 + self.rng.between(0, n as u64 - 2) as usize) % n;
                self.cut.insert((node, to));
            }
        }
        self.hash(&[self.now, 8, self.cut.len() as u64]);
        let duration = self.rng.between(10_000, 400_000);
        self.settled_at = self.settled_at.max(self.now + duration);
        self.schedule(duration, Event::Heal);
    }

    /// Tells every other node that is up about its link to `node`.
    pub(super) fn tell_peers(&mut self, node: usize, tell: fn(&mut Node, NodeId)) {
        for (i, host) in self.hosts.iter_mut().enumerate() {
            if let Some(peer) = host.node.as_mut().filter(|_| i != node) {
                tell(peer, NodeId(node as u16));
            }
        }
    }

    /// Sends `envelope` through the simulated network: lost, cut, duplicated, delayed or
    /// straggling while the faults last.
    pub(super) fn transmit(&mut self, envelope: Envelope) {
        print_watched("HOLO_SIM_WATCH_SEND", self.now, "send ", &envelope);
        self.votes.sent(&envelope, self.epochs.all());
        let faulty = !self.healed;
        let (from, to) = (envelope.from.0 as usize, envelope.to.0 as usize);
        let cut = self.cut.contains(&(from, to));
        if self.lost.contains(&from) || self.lost.contains(&to) {
            self.dropped += 1;
            return;
        }
        if faulty && (cut || self.rng.percent(self.drop_percent)) {
            self.dropped += 1;
            return;
        }
        let copies = if faulty && self.rng.percent(self.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if faulty && self.rng.percent(self.straggler_percent) {
                self.rng.between(self.delay_us_max, STRAGGLER_US_MAX)
            } else {
                self.rng.between(20, self.delay_us_max)
            };
            self.schedule(delay, Event::Deliver(envelope.clone()));
        }
    }
}

/// Prints each message of `envelope` about a txn whose t0's hlc is listed in the variable
/// `var` (comma-separated), marked `what`.
pub(super) fn print_watched(var: &str, now: u64, what: &str, envelope: &Envelope) {
    let Ok(watch) = std::env::var(var) else {
        return;
    };
    for m in &envelope.messages {
        let hlc = m.txn_id().timestamp().hlc.to_string();
        if watch.split(',').any(|w| w == hlc) {
            eprintln!("{now} {what}{:?}->{:?}: {m:?}", envelope.from, envelope.to);
        }
    }
}
