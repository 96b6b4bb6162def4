//! Invariant 5, strict serializability: the client history replayed in executeAt order,
//! and the graph of conflicts, real time and each read's order of keys free of cycles.

use std::collections::{BTreeMap, HashMap};

use holo_accord::{Access, Key, Timestamp, TxnId};

use super::{Checker, OpResult};

/// Why one txn must precede another in a serial order.
#[derive(Clone, Copy)]
enum Edge<'a> {
    Conflict(&'a Key),
    RealTime,
    /// One ephemeral read's key to its next key (see `real_time_order_is_acyclic`).
    Program,
}

impl Checker {
    /// Invariant 5: replaying the decided transactions in executeAt order reproduces every
    /// answer a client got, and some serial order that keeps every conflicting pair in
    /// executeAt order also respects real time (a txn that completed before another was
    /// invoked comes first). Non-conflicting txns commute, so such an order gives the same
    /// answers; with skewed clocks their executeAts may well invert real time.
    pub(super) fn strictly_serializable(&self) {
        let order = self.execution_order();
        let mut model = BTreeMap::new();
        // The value of each key a client txn wrote, right after it, for ephemeral reads.
        let mut after: HashMap<(TxnId, &Key), Option<u64>> = HashMap::new();
        for (_, id) in &order {
            // Topology changes have no client (they write a key no client reads).
            let Some(entry) = self.history.get(id) else {
                continue;
            };
            let result = entry.op.execute(&mut model);
            if let Some((_, got)) = &entry.completed {
                assert_eq!(
                    got, &result,
                    "{id}: the client got {got:?}, the serial order gives {result:?}"
                );
            }
            for (key, _) in self.decided[*id]
                .keys
                .iter()
                .filter(|(_, a)| *a == Access::Write)
            {
                after.insert((**id, key), model.get(key).copied());
            }
        }
        for (id, seen) in &self.ephemeral {
            let expected: Vec<Option<u64>> = seen
                .iter()
                .map(|(key, w)| w.and_then(|w| after.get(&(w, key)).copied().flatten()))
                .collect();
            let got = &self.history[id].completed.as_ref().expect("answered").1;
            assert_eq!(
                got,
                &OpResult::Values(expected),
                "{id}: an ephemeral read after {seen:?} got other values than those writes left"
            );
        }
        for (id, entry) in &self.history {
            assert!(
                entry.completed.is_none()
                    || self.decided.contains_key(id)
                    || self.ephemeral.contains_key(id),
                "{id} completed without a decision"
            );
        }
        // A pipeline's reads may come in any order of their keys: both extremes.
        self.real_time_order_is_acyclic(false);
        self.real_time_order_is_acyclic(true);
    }

    /// The graph of conflict order (per key: writer to writer, writer to the readers up to
    /// the next writer, readers to that writer) plus real-time order (completed before
    /// invoked) has no cycle.
    ///
    /// An ephemeral read of several keys (holo-node's consistent read of one connection's
    /// pipeline) is one read per key, each after the one before it: its reads take effect in
    /// order, each linearizable, all within the read's own time. It is not one atomic
    /// snapshot: nothing is recorded for it at any replica, so a write ordered below what it
    /// saw of one key may still commit unseen on another, and two such reads of the same
    /// keys may each see a different one of two concurrent writes (a long fork). A read that
    /// must be atomic (MGET) is a transaction. `reversed`: its keys in reverse order.
    fn real_time_order_is_acyclic(&self, reversed: bool) {
        // One node per txn, and per key of an ephemeral read: (id, key's place).
        let nodes: Vec<(TxnId, usize)> = self
            .history
            .keys()
            .copied()
            .filter(|id| self.decided.contains_key(id) || self.ephemeral.contains_key(id))
            .flat_map(|id| {
                let parts = self.ephemeral.get(&id).map_or(1, |seen| seen.len().max(1));
                (0..parts).map(move |part| (id, part))
            })
            .collect();
        let ids: Vec<TxnId> = nodes.iter().map(|(id, _)| *id).collect();
        let index: HashMap<(TxnId, usize), usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (*node, i))
            .collect();
        // edges[from]: (to, why); the reason is spelt out only if a cycle is reported.
        let mut edges: Vec<Vec<(usize, Edge<'_>)>> = vec![Vec::new(); ids.len()];
        let mut by_key: HashMap<&Key, Vec<(Timestamp, usize, Access)>> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            let Some(d) = self.decided.get(id) else {
                continue; // an ephemeral read: placed below
            };
            for (key, access) in &d.keys {
                by_key
                    .entry(key)
                    .or_default()
                    .push((d.execute_at, i, *access));
            }
        }
        for (key, users) in by_key.iter_mut() {
            users.sort();
            let mut last_writer: Option<usize> = None;
            let mut readers: Vec<usize> = Vec::new();
            let why = Edge::Conflict(key);
            for (_, i, access) in users.iter() {
                match access {
                    Access::Read => {
                        if let Some(w) = last_writer {
                            edges[w].push((*i, why));
                        }
                        readers.push(*i);
                    }
                    Access::Write => {
                        if let Some(w) = last_writer {
                            edges[w].push((*i, why));
                        }
                        for r in readers.drain(..) {
                            edges[r].push((*i, why));
                        }
                        last_writer = Some(*i);
                    }
                }
            }
        }
        // An ephemeral read of a key sits right after the writer it saw and before the next
        // writer of its key in executeAt order, and after its read of the key before.
        for (id, part, (key, seen)) in self
            .ephemeral
            .iter()
            .flat_map(|(id, seen)| seen.iter().enumerate().map(move |(part, s)| (*id, part, s)))
        {
            let read = index[&(id, part)];
            if part > 0 {
                let before = index[&(id, part - 1)];
                if reversed {
                    edges[read].push((before, Edge::Program));
                } else {
                    edges[before].push((read, Edge::Program));
                }
            }
            let why = Edge::Conflict(key);
            let writers: Vec<usize> = by_key
                .get(key)
                .into_iter()
                .flatten()
                .filter(|(_, _, a)| *a == Access::Write)
                .map(|(_, i, _)| *i)
                .collect();
            let next = match seen.and_then(|w| index.get(&(w, 0))) {
                Some(&w) => {
                    edges[w].push((read, why));
                    writers.iter().skip_while(|i| **i != w).nth(1)
                }
                None => writers.first(),
            };
            if let Some(&next) = next {
                edges[read].push((next, why));
            }
        }
        let timing: Vec<(u64, Option<u64>)> = ids
            .iter()
            .map(|id| {
                let e = &self.history[id];
                (e.invoked, e.completed.as_ref().map(|(at, _)| *at))
            })
            .collect();
        for (a, (_, completed)) in timing.iter().enumerate() {
            let Some(done) = completed else { continue };
            for (b, (invoked, _)) in timing.iter().enumerate() {
                if done < invoked {
                    edges[a].push((b, Edge::RealTime));
                }
            }
        }
        // Kahn's algorithm: everything must come out.
        let mut incoming = vec![0usize; ids.len()];
        edges
            .iter()
            .flatten()
            .for_each(|(to, _)| incoming[*to] += 1);
        let mut ready: Vec<usize> = (0..ids.len()).filter(|&i| incoming[i] == 0).collect();
        let mut emitted = 0;
        while let Some(i) = ready.pop() {
            emitted += 1;
            for (to, _) in &edges[i] {
                incoming[*to] -= 1;
                if incoming[*to] == 0 {
                    ready.push(*to);
                }
            }
        }
        if emitted < ids.len() {
            panic!(
                "no serial order respects both conflicts and real time; a cycle:\n{}",
                self.describe_cycle(&ids, &edges, &incoming)
            );
        }
    }

    /// Every txn Kahn's algorithm left behind has a predecessor that was left behind too;
    /// walking those predecessors back from any of them must close a cycle.
    fn describe_cycle(
        &self,
        ids: &[TxnId],
        edges: &[Vec<(usize, Edge<'_>)>],
        incoming: &[usize],
    ) -> String {
        let mut preds: Vec<Vec<(usize, Edge<'_>)>> = vec![Vec::new(); ids.len()];
        for (from, out) in edges.iter().enumerate() {
            for (to, why) in out {
                preds[*to].push((from, *why));
            }
        }
        let stuck = |i: usize| incoming[i] > 0;
        let mut at = (0..ids.len()).find(|&i| stuck(i)).expect("a txn is left");
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let mut path: Vec<(usize, Edge<'_>)> = Vec::new();
        while !seen.contains_key(&at) {
            seen.insert(at, path.len());
            let (from, why) = *preds[at]
                .iter()
                .find(|(p, _)| stuck(*p))
                .expect("a stuck txn has a stuck predecessor");
            path.push((from, why));
            at = from;
        }
        // path[k] = (predecessor of the txn visited at step k, why); the cycle starts at `at`.
        let start = seen[&at];
        let mut lines = Vec::new();
        for (from, why) in path[start..].iter().rev() {
            let id = ids[*from];
            let e = &self.history[&id];
            let why = match why {
                Edge::Conflict(key) => format!("conflict on {key:?}"),
                Edge::RealTime => "real time: completed before the next was invoked".to_owned(),
                Edge::Program => "the same read's next key".to_owned(),
            };
            let at = self.decided.get(&id).map_or_else(
                || format!("ephemeral read after {:?}", self.ephemeral[&id]),
                |d| d.execute_at.to_string(),
            );
            lines.push(format!(
                "  {id} at {at} {:?} invoked {} completed {:?}, then ({why}) ->",
                e.op,
                e.invoked,
                e.completed.as_ref().map(|(t, r)| (t, r)),
            ));
        }
        lines.join("\n")
    }
}
