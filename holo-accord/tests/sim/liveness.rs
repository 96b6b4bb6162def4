//! Losing nodes for good, when a run is over, and the liveness bound with nodes lost for
//! good: every operation answered in time, and the live nodes quiescent and caught up.

use holo_accord::{Node, NodeId};

use super::{Event, FAULTS_END_US, LIVENESS_BOUND_US, Sim};

impl Sim {
    /// With nodes lost for good, the live majority stalls on nothing: every operation
    /// invoked at a live node is answered within [`LIVENESS_BOUND_US`] of its invocation
    /// (or of the end of the last transient fault), and so the clients keep completing.
    pub(super) fn check_bounded_liveness(&self) {
        let due = |invoked: u64| invoked.max(self.settled_at) + LIVENESS_BOUND_US;
        for (id, invoked) in &self.invoked_at {
            assert!(
                self.now <= due(*invoked),
                "liveness with {:?} lost for good: {id}, invoked at {invoked}us, unanswered \
                 at {}us: {}",
                self.lost,
                self.now,
                self.unfinished()
            );
        }
        let quiet_by = due(self.last_invoked.max(FAULTS_END_US));
        assert!(
            self.now <= quiet_by,
            "liveness with {:?} lost for good: the live nodes are not quiescent {}s after \
             the last operation: {}",
            self.lost,
            LIVENESS_BOUND_US / 1_000_000,
            self.unfinished()
        );
    }

    pub(super) fn unfinished(&self) -> String {
        let coordinating: Vec<Option<usize>> = self
            .hosts
            .iter()
            .map(|h| h.node.as_ref().map(Node::coordinating))
            .collect();
        let quiet: Vec<Option<bool>> = self
            .hosts
            .iter()
            .map(|h| h.node.as_ref().map(Node::quiescent))
            .collect();
        for h in &self.hosts {
            if let Some(n) = &h.node {
                for line in n
                    .describe_coordinations()
                    .iter()
                    .filter(|l| std::env::var("HOLO_SIM_ALL").is_ok() || !l.contains("phase"))
                    .take(8)
                {
                    eprintln!("{:?}: {line}", n.id());
                }
            }
        }
        let waiting = self
            .clients
            .iter()
            .filter(|c| c.outstanding.is_some())
            .count();
        format!(
            "clients waiting: {waiting}, coordinations per node: {coordinating:?}, quiescent: {quiet:?}"
        )
    }

    pub(super) fn done(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.ops_left == 0 && c.outstanding.is_none())
            && self.hosts.iter().enumerate().all(|(i, h)| {
                self.lost.contains(&i)
                    || (h.node.as_ref().is_some_and(Node::quiescent) && h.applies.is_empty())
            })
            && (self.lost.is_empty() || self.live_peers_caught_up())
            // Cuts need every replica: with one lost for good they wait for ever.
            && (!self.lost.is_empty() || self.epochs.all_cut())
            && (self.in_flight == 0 || !self.lost.is_empty() && self.live_in_flight() == 0)
    }

    /// With nodes lost for good: no live node owes another live node a decision it missed.
    fn live_peers_caught_up(&self) -> bool {
        let live = || (0..self.hosts.len()).filter(|i| !self.lost.contains(i));
        live().all(|i| {
            let node = self.hosts[i].node.as_ref().expect("live nodes are up");
            live().all(|peer| node.missed_by(NodeId(peer as u16)) == 0)
        })
    }

    /// Deliveries, syncs and restarts in flight that concern a live node.
    fn live_in_flight(&self) -> usize {
        self.events
            .values()
            .filter(|e| match e {
                Event::Deliver(envelope) => !self.lost.contains(&(envelope.to.0 as usize)),
                Event::Durable { node, .. } | Event::Restart { node } => !self.lost.contains(node),
                _ => false,
            })
            .count()
    }

    /// `node` is gone for good: crashed (never restarted) or cut off from every peer (even
    /// after the heal). Its clients' outstanding operations get no answer, and new ones go
    /// to live nodes.
    pub(super) fn lose_for_good(&mut self, node: usize, crash: bool) {
        if self.lost.contains(&node) || self.lost.len() + 1 > (self.hosts.len() - 1) / 2 {
            return;
        }
        if std::env::var("HOLO_SIM_WATCH").is_ok() {
            eprintln!("{} node {node} lost for good (crash: {crash})", self.now);
        }
        self.hash(&[self.now, 10, node as u64, u64::from(crash)]);
        self.lost.insert(node);
        if crash {
            self.crash(node);
        } else {
            self.abandon_clients_of(node);
        }
    }

    /// Clients waiting on `node` get no answer: the outcome is unknown to them.
    pub(super) fn abandon_clients_of(&mut self, node: usize) {
        for client in 0..self.clients.len() {
            let Some(id) = self.clients[client].outstanding else {
                continue;
            };
            if id.coordinator().0 as usize == node {
                self.clients[client].outstanding = None;
                self.invoked_at.remove(&id);
                let think = self.rng.between(0, 3_000);
                self.schedule(think, Event::ClientNext { client });
            }
        }
    }
}
