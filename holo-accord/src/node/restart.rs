//! Restart: a node rebuilt from its durable records, clock reservation and GC floor.

use super::*;

impl Node {
    /// A node rebuilt from its durable records, in the order they were persisted, the
    /// topologies of the epochs it still needs (consecutive, oldest first; see
    /// [`Node::adopt`] and [`Node::retire_epochs_below`]), the
    /// highest durable clock reservation (`ReserveClock::upto`, 0 if none) and the last
    /// durable `Truncate { floor, max }` (defaults if none). Every timestamp it ever let out
    /// is in a durable record or below a durable reservation, so its clock restarts above
    /// all of them and never re-issues one. Persist sequence numbers start again at 1.
    ///
    /// # Panics
    /// `topologies` is empty or its epochs are not consecutive.
    pub fn restart(
        id: NodeId,
        topologies: Vec<Topology>,
        config: Config,
        records: impl IntoIterator<Item = Command>,
        clock_reserved: u64,
        truncated: (TxnId, Timestamp),
    ) -> Node {
        let mut topologies = topologies.into_iter();
        let mut node = Node::new(id, topologies.next().expect("a topology"), config);
        for topology in topologies {
            node.adopt(topology).expect("consecutive topologies");
        }
        for command in records {
            node.replica.restore(command);
        }
        let (gc_floor, gc_max) = truncated;
        node.replica.gc(gc_floor, gc_max);
        node.sync_applied = gc_floor;
        let floor = node
            .replica
            .max_timestamp()
            .hlc
            .max(clock_reserved)
            .max(gc_max.hlc);
        node.clock = Clock::new(id, node.epoch(), floor);
        let undecided: Vec<TxnId> = node
            .replica
            .commands()
            .filter(|c| !c.status.is_decided())
            .map(|c| c.txn.id)
            .collect();
        for id in undecided {
            node.watch(id);
        }
        // Which replicas missed this node's decisions was in memory only: tell every other
        // replica of each txn again what it decided (a replica that was down when they were
        // decided, with this node's tracking lost in the crash, would otherwise learn them
        // only through the deps of later txns). Bounded by what GC left in the log; sent in
        // batches.
        let own_decided: Vec<(TxnId, Vec<NodeId>)> = node
            .replica
            .commands()
            .filter(|c| c.status.is_decided() && c.txn.id.coordinator() == id)
            .map(|c| (c.txn.id, node.peers_of(&c.txn)))
            .take(MISSED_MAX)
            .collect();
        for (txn_id, peers) in own_decided {
            for peer in peers {
                node.missed.entry(peer).or_default().insert(txn_id);
            }
        }
        node.execute_ready();
        node
    }
}
