//! Topology changes: the ranges split and merge (replicas unchanged: only neighbours with
//! the same replicas merge) at random moments under every other fault, each change a new
//! epoch. A change is a transaction of a random node on the meta key, as the controller's
//! are: planned against the latest epoch when it is proposed, and a compare-and-swap on
//! that epoch when it first applies (in executeAt order, the same on every node), so a
//! change whose node crashes before it is decided is recovered or invalidated by the
//! others, and of two racing changes the later is a no-op. The sequence of topologies it
//! creates stands for the meta range's state: every node adopts the epochs strictly in
//! order, each at its own pace (so nodes in different epochs coordinate and witness each
//! other's txns), a node that is down catches up after its restart, and a restarted node is
//! given the epochs it kept.
//!
//! Each change's history is cut as the controller does it: a node (the driver) proposes an
//! exclusive sync point over the changed span once it has adopted the new epoch, and polls
//! its core until every replica applied it ([`holo_accord::CutStatus`]); it proposes another
//! if its own was invalidated or forgotten (a restart). When the driver is down another
//! node takes over, so the crash of the node driving a change is covered. Only then may
//! the epoch before the change be retired.
//!
//! Checks: every txn a node proposes carries the epoch that node is in; no node ever
//! adopts out of order or is handed an epoch it cannot take; no txn of an epoch before a
//! change that touches its span is applied anywhere once its cut is done (the checker);
//! and, without nodes lost for good, every cut finishes (a stalled cut fails the run at
//! its deadline).

use bytes::Bytes;
use holo_accord::{CutStatus, Key, KeySpan, Node, NodeId, RangeId, RangeInfo, Topology, TxnId};

use super::{Event, Sim};
use crate::rng::Rng;

/// Keys a split may happen at: the clients' keys and a few beyond.
const SPLIT_KEYS: u64 = 10;
/// Most delay between a change and a node adopting it.
const ADOPT_DELAY_US_MAX: u64 = 150_000;
/// How often the driver of a cut looks at it.
const CUT_POLL_US: u64 = 20_000;

/// The key the topology changes write (the meta range's key).
pub const META_KEY: &[u8] = b"~meta";

/// A change a node proposed: the epoch it expects to follow, and what it makes of it.
#[derive(Debug, Clone)]
pub struct Plan {
    expect: u64,
    ranges: Vec<RangeInfo>,
    span: KeySpan,
    next_range: u64,
}

/// The history cut of one change.
struct Cut {
    /// The keys whose ranges changed.
    span: KeySpan,
    done: bool,
    /// The node driving it and the exclusive sync point it proposed.
    driver: Option<(usize, TxnId)>,
}

/// Every epoch's topology and how far each node has adopted them.
pub struct Epochs {
    /// Index `e - 1` holds epoch `e`.
    topologies: Vec<Topology>,
    /// Index `e - 2` holds the cut of the change that made epoch `e`.
    cuts: Vec<Cut>,
    adopted: Vec<u64>,
    next_range: u64,
    /// Exclusive sync points proposed for the cuts.
    pub cuts_proposed: u64,
    /// Changes proposed (some are no-ops: another came first, or they were invalidated).
    pub changes_proposed: u64,
}

impl Epochs {
    pub fn new(initial: Topology, nodes: usize) -> Epochs {
        assert_eq!(initial.epoch, 1);
        let next_range = initial.ranges.iter().map(|r| r.id.0).max().unwrap_or(0) + 1;
        Epochs {
            topologies: vec![initial],
            cuts: Vec::new(),
            adopted: vec![1; nodes],
            cuts_proposed: 0,
            changes_proposed: 0,
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

    /// The oldest epoch still needed: below it, every node moved on and every change's
    /// history is cut (a change that made epoch `e` needs `e - 1` until its cut is done).
    fn floor(&self) -> u64 {
        let adopted = *self.adopted.iter().min().expect("nodes");
        let uncut = self.cuts.iter().position(|c| !c.done);
        uncut.map_or(adopted, |i| adopted.min(i as u64 + 1))
    }

    /// How many changes' histories are cut.
    pub fn cuts_done(&self) -> u64 {
        self.cuts.iter().filter(|c| c.done).count() as u64
    }

    /// Every change's history is cut.
    pub fn all_cut(&self) -> bool {
        self.cuts.iter().all(|c| c.done)
    }

    /// The topologies a node restarts with: from the floor to the epoch it had adopted.
    pub fn for_restart(&self, node: usize) -> Vec<Topology> {
        (self.floor()..=self.adopted[node])
            .map(|e| self.get(e).clone())
            .collect()
    }

    /// A change of the latest epoch: a split of a random range at a key inside it, or a
    /// merge of two neighbours with the same replicas (`None`: neither is possible there).
    fn plan(&self, rng: &mut Rng, key: fn(u64) -> Key) -> Option<Plan> {
        let current = self.get(self.latest());
        let mut next_range = self.next_range;
        let mut ranges = current.ranges.clone();
        let i = rng.between(0, ranges.len() as u64 - 1) as usize;
        let inside: Vec<Key> = (0..SPLIT_KEYS)
            .map(key)
            .filter(|k| *k > ranges[i].start && ranges[i].end.as_ref().is_none_or(|e| k < e))
            .collect();
        let left = i.min(ranges.len().saturating_sub(2));
        let mergeable = ranges.len() > 1 && ranges[left].replicas == ranges[left + 1].replicas;
        if !mergeable && inside.is_empty() {
            return None;
        }
        let merge = mergeable && (inside.is_empty() || rng.percent(50));
        let span = if merge {
            let right = ranges.remove(left + 1);
            ranges[left].end = right.end;
            KeySpan {
                start: ranges[left].start.clone(),
                end: ranges[left].end.clone(),
            }
        } else {
            let span = KeySpan {
                start: ranges[i].start.clone(),
                end: ranges[i].end.clone(),
            };
            let at = inside[rng.between(0, inside.len() as u64 - 1) as usize].clone();
            let new = RangeInfo {
                id: RangeId(next_range),
                start: at.clone(),
                end: ranges[i].end.replace(at),
                replicas: ranges[i].replicas.clone(),
            };
            next_range += 1;
            ranges.insert(i + 1, new);
            span
        };
        Some(Plan {
            expect: self.latest(),
            ranges,
            span,
            next_range,
        })
    }

    /// The replicas of the ranges that hold `span`'s keys in `epoch`: who may propose a
    /// txn there (a coordinator replicates every range of its txn).
    fn replicas_of(&self, epoch: u64, span: &KeySpan) -> Vec<NodeId> {
        let ranges: Vec<&RangeInfo> = self
            .get(epoch)
            .ranges
            .iter()
            .filter(|r| span.overlaps(&r.start, r.end.as_deref()))
            .collect();
        Topology::replicas_of(&ranges)
    }

    /// Applies a planned change: a new epoch if the latest is still the one it expects,
    /// else nothing (another change came first). Returns the new epoch.
    fn commit(&mut self, plan: Plan) -> Option<u64> {
        if plan.expect != self.latest() {
            return None;
        }
        let epoch = self.latest() + 1;
        self.topologies.push(Topology {
            epoch,
            ranges: plan.ranges,
        });
        self.next_range = plan.next_range;
        self.cuts.push(Cut {
            span: plan.span,
            done: false,
            driver: None,
        });
        Some(epoch)
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
    /// A random node that is up proposes a change of the latest epoch (none is up: no
    /// change).
    pub(super) fn topology_change(&mut self) {
        let Some(driver) = self.pick_up_node(&self.meta_replicas()) else {
            return;
        };
        let Some(plan) = self.epochs.plan(&mut self.rng, super::key) else {
            return;
        };
        let id = self.write_meta_key(driver, 12);
        self.meta_changes.insert(id, plan);
        self.epochs.changes_proposed += 1;
    }

    /// A node that is up writes the meta key without a change (tried again later while
    /// none is up).
    pub(super) fn meta_touch(&mut self) {
        match self.pick_up_node(&self.meta_replicas()) {
            Some(node) => {
                self.write_meta_key(node, 18);
            }
            None => self.schedule(CUT_POLL_US, Event::MetaTouch),
        }
    }

    /// Whether `n` is up, not lost and not paused: it can take a step now.
    pub(crate) fn is_up(&self, n: usize) -> bool {
        self.hosts[n].node.is_some() && !self.lost.contains(&n) && self.paused_until[n] <= self.now
    }

    /// The replicas of the meta key (every node, unless ranges live on a subset; splits
    /// and merges keep replicas, so any epoch tells).
    fn meta_replicas(&self) -> Vec<NodeId> {
        let span = KeySpan {
            start: Bytes::from_static(META_KEY),
            end: None,
        };
        self.epochs.replicas_of(self.epochs.latest(), &span)
    }

    /// A random node of `among` that [`Sim::is_up`], if any.
    fn pick_up_node(&mut self, among: &[NodeId]) -> Option<usize> {
        let up: Vec<usize> = among
            .iter()
            .map(|n| n.0 as usize)
            .filter(|n| self.is_up(*n))
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.rng.between(0, up.len() as u64 - 1) as usize])
    }

    /// `node` proposes a write of the meta key; `tag` marks it in the event-log hash.
    fn write_meta_key(&mut self, node: usize, tag: u64) -> TxnId {
        let n = self.hosts[node].node.as_mut().expect("up");
        let id = n.propose(&[], &[Bytes::from_static(META_KEY)], Bytes::new());
        if self.ops.remove(&id).is_some() {
            // A client's txn got this t0 first and never left the node (it crashed before
            // the t0 was durable, and its clock fell back): the id is the meta write's now.
            self.checker.reissued(id);
            self.invoked_at.remove(&id);
        }
        self.epochs.check_proposed(node, id);
        self.hash(&[self.now, tag, node as u64, id.timestamp().hlc]);
        self.votes.proposed(id);
        self.after_step(node);
        id
    }

    /// The change `id` applied at a node: the first apply anywhere decides it (every node
    /// applies the meta key's transactions in the same order), a new epoch that every node
    /// adopts, and whose history is cut.
    pub(super) fn change_applied(&mut self, id: TxnId) {
        let Some(plan) = self.meta_changes.remove(&id) else {
            return; // applied elsewhere first
        };
        let Some(epoch) = self.epochs.commit(plan) else {
            self.hash(&[self.now, 16]);
            return;
        };
        self.hash(&[self.now, 17, epoch]);
        for node in 0..self.hosts.len() {
            let delay = self.rng.between(0, ADOPT_DELAY_US_MAX);
            self.schedule(delay, Event::Adopt { node });
        }
        self.schedule(ADOPT_DELAY_US_MAX, Event::Cut { epoch });
    }

    /// Drives the history cut of the change that made `epoch` one step (see the module
    /// docs), and looks again later until it is done.
    pub(super) fn drive_cut(&mut self, epoch: u64) {
        let i = (epoch - 2) as usize;
        if self.epochs.cuts[i].done {
            return;
        }
        // A replica of the changed ranges drives the cut (all of them share their replicas).
        let replicas = self.epochs.replicas_of(epoch, &self.epochs.cuts[i].span);
        let (driver, proposed) = match self.epochs.cuts[i].driver {
            Some((n, x)) if self.is_up(n) => (n, Some(x)),
            _ => match self.pick_up_node(&replicas) {
                Some(n) => (n, None),
                None => {
                    self.schedule(CUT_POLL_US, Event::Cut { epoch });
                    return;
                }
            },
        };
        if self.epochs.adopted(driver) < epoch {
            // The cut is routed in the new epoch: wait until the driver is there.
            self.schedule(CUT_POLL_US, Event::Cut { epoch });
            return;
        }
        let node = self.hosts[driver].node.as_mut().expect("up");
        match proposed.map(|x| node.cut_status(x)) {
            Some(CutStatus::Done) => {
                let cut = &mut self.epochs.cuts[i];
                cut.done = true;
                self.checker.cut_done(epoch, cut.span.clone());
                self.hash(&[self.now, 15, epoch]);
                self.retire_epochs();
                return;
            }
            Some(CutStatus::Waiting) => {}
            Some(CutStatus::Invalidated | CutStatus::Unknown) | None => {
                let x = node.propose_exclusive_sync_point(self.epochs.cuts[i].span.clone());
                self.epochs.cuts[i].driver = Some((driver, x));
                self.epochs.cuts_proposed += 1;
                self.hash(&[self.now, 14, driver as u64, x.timestamp().hlc]);
                self.after_step(driver);
            }
        }
        self.schedule(CUT_POLL_US, Event::Cut { epoch });
    }

    /// Every node that is up forgets the epochs below the floor.
    fn retire_epochs(&mut self) {
        let floor = self.epochs.floor();
        for host in &mut self.hosts {
            if let Some(n) = host.node.as_mut() {
                n.retire_epochs_below(floor);
            }
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
        self.retire_epochs();
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
