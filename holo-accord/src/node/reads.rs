//! Ephemeral reads (ACCORD.md section 3): reads of keys that are linearizable per key and
//! record nothing anywhere.
//!
//! The coordinator asks the replicas of the keys' ranges which writes of those keys they
//! hold in their conflict index ([`Message::ReadDeps`]; the replicas answer from memory,
//! recording nothing, once the records they hold are durable), and once a majority of every
//! range (in every epoch still kept) answered, waits
//! until each write named is done here ([`Replica::finished`]: applied, invalidated, or
//! proven never to execute). Then it emits [`Action::Read`], after the Apply actions of
//! those writes, and the host reads its own applied state.
//!
//! Why that is linearizable per key: a write whose client was answered before the read
//! started was witnessed (PreAccepted or Accepted) by a majority of its ranges, which
//! meets the read's majority in a replica that names it, or a later write of the same key
//! that waited for it (the conflict index drops only writes a later applied one waited
//! for), or it was collected by GC, which happens only once every replica applied it. So
//! the read waits for it here and sees it or something later. And a write the read sees
//! was applied here, so it is decided and witnessed by a majority: every read that starts
//! after this one answers waits for it too. Across keys nothing is promised (two keys may
//! be read at different points of the order), unless the read is `consistent`.
//!
//! A consistent read also watches what this node applies while it waits. A txn applied
//! then is *late* unless this node's own answer, given when the read started, named it (so
//! it began before the read did), or if it depends on a late one. Other replicas answer
//! later, so what they name may have begun after the read: a write answered to its client
//! after the read started and then followed (in real time, on another key, with no dep
//! between them) by a write another replica names would otherwise be seen without the
//! first. If a late txn writes one of the read's keys, the read emits `as_txn` and the host
//! runs it as a transaction instead. Otherwise every write of its keys applied since it
//! started began before it: following a chain of conflicts back from one of them stays
//! among txns that began before the read (lateness follows deps), and the first real-time
//! edge on it leaves a txn that finished before the read started, which with everything
//! ordered before it a majority witnessed then, so the read waited for it. What it sees is,
//! for every key at once, the state after writes that all began before it, every write
//! answered before it started among them (above): all its keys are read at one point of
//! this node's state, which keeps one connection's reads of several keys in order (each
//! linearizable, taking effect in the order sent). The price: a write of its keys this node
//! had not witnessed when the read started sends it to a transaction.
//!
//! That point is not one of a global order, so a consistent read is not an atomic snapshot.
//! Nothing is recorded for it, so a write on one of its keys that no replica had witnessed
//! yet may still commit below a write it saw on another key. Two consistent reads of the
//! same two keys at two nodes can then each see a different one of two concurrent writes
//! (a long fork): fine for reads in order, each of one key, which is what a pipeline is; a
//! read that must be atomic (MGET) goes as a transaction. The simulator checks a consistent
//! read as one read per key, in order.
//!
//! The read's time ([`Action::Read`]'s `at`) is not ordered against writes: the read is
//! registered nowhere, so a write ordered below `at` may still apply here after it. A host
//! must not answer from time alone (holo-node runs a read that found a key expired again as
//! a transaction, and TTL always as one).
//!
//! Nothing is persisted: a read's id is issued like a txn's t0 (under a durable clock
//! reservation, so a restarted node never reuses one a stale answer could match), and a
//! restart forgets the reads in progress (their clients lose the connection).

use super::*;

/// An ephemeral read this node coordinates.
#[derive(Debug)]
pub(super) struct Read {
    keys: Vec<Key>,
    op: Bytes,
    /// Read every key at one point (see the module docs).
    consistent: bool,
    /// The writes of the keys this node held when the read started (its own answer).
    named: Deps,
    /// Txns applied here since the read started that are late (see the module docs).
    late: BTreeSet<TxnId>,
    /// A late txn wrote one of the keys.
    tainted: bool,
    /// The ranges of the keys in every epoch kept: a majority of each must answer.
    ranges: Vec<RangeInfo>,
    replicas: Vec<NodeId>,
    answered: BTreeSet<NodeId>,
    /// The writes named by the replicas that answered, not yet done here.
    deps: Vec<TxnId>,
    /// The highest epoch and hlc the replicas that answered had reached.
    seen: Timestamp,
    last_sent: u64,
    /// When a majority of every range had answered (`None`: not yet).
    quorum_at: Option<u64>,
}

impl Read {
    /// A majority of every range answered (computed as answers come; see `quorum_at`).
    fn majority_answered(&self) -> bool {
        self.ranges.iter().all(|r| {
            r.replicas
                .iter()
                .filter(|n| self.answered.contains(n))
                .count()
                >= r.slow_quorum()
        })
    }
}

impl Node {
    /// Starts an ephemeral read of `keys`; returns its id. Once a majority of every range of
    /// the keys said which writes of them they know, and each is done here, the node emits
    /// [`Action::Read`] with `op`, and the host runs it against its applied state. Per key
    /// linearizable; `consistent`: all keys read at one point, or `as_txn` (see the module
    /// docs).
    pub fn read(&mut self, keys: &[Key], op: Bytes, consistent: bool) -> TxnId {
        let id = TxnId(self.clock.unique_now(TxnKind::Read, Timestamp::ZERO));
        let ranges = self.ranges_from(self.oldest_epoch(), |topology| topology.ranges_of(keys));
        let replicas = Topology::replicas_of(&ranges.iter().collect::<Vec<_>>());
        assert!(
            replicas.contains(&self.id),
            "a node reads only keys it replicates"
        );
        self.reads.insert(
            id,
            Read {
                keys: keys.to_vec(),
                op,
                consistent,
                named: Deps::new(),
                late: BTreeSet::new(),
                tainted: false,
                ranges,
                replicas: replicas.clone(),
                answered: BTreeSet::new(),
                deps: Vec::new(),
                seen: id.timestamp(),
                last_sent: self.now,
                quorum_at: None,
            },
        );
        let message = Message::ReadDeps {
            read_id: id,
            keys: keys.to_vec(),
        };
        self.handle(self.id, message.clone());
        self.send_issued(id.timestamp().hlc, &message, replicas);
        self.drain_local();
        id
    }

    /// Ephemeral reads still waiting for answers from a majority (a host that limits how
    /// many it has out batches the commands that arrive meanwhile).
    pub fn reads_collecting(&self) -> usize {
        self.reads
            .values()
            .filter(|r| r.quorum_at.is_none())
            .count()
    }

    /// Ephemeral reads started and not yet emitted.
    pub fn reads_in_progress(&self) -> usize {
        self.reads.len()
    }

    /// A replica's answer: the writes of `keys` it knows, and how far it has seen. To a
    /// peer, it leaves once every record persisted so far is durable, as every other reply
    /// does: a write named from memory alone could be lost in a crash here together with
    /// its coordinator, and the reader would wait for a write nobody holds until a sync
    /// point decided without it. Every write the read must see was durable at a majority
    /// before its client was answered, so this holds back nothing it needs.
    pub(super) fn answer_read(&mut self, from: NodeId, read_id: TxnId, keys: &[Key]) {
        if !self.owns_keys(keys) {
            return;
        }
        let deps = self.replica.writes_on(keys);
        let seen = Timestamp {
            epoch: self.epoch(),
            hlc: self.clock.high_water(),
            flags: 0,
            node: self.id.0,
        };
        let answer = Message::ReadDepsOk {
            read_id,
            deps,
            seen,
        };
        if from == self.id {
            // Lost with this node only, and the read with it.
            self.send(from, answer);
        } else {
            self.reply(from, answer);
        }
    }

    pub(super) fn read_answered(
        &mut self,
        from: NodeId,
        read_id: TxnId,
        deps: Deps,
        seen: Timestamp,
    ) {
        // What this node issues next (a command of the same client, say) orders after
        // what the read saw.
        self.clock.observe(seen);
        let (replica, now, self_id) = (&self.replica, self.now, self.id);
        let Some(read) = self.reads.get_mut(&read_id) else {
            return;
        };
        if read.quorum_at.is_some() || !read.replicas.contains(&from) || !read.answered.insert(from)
        {
            return;
        }
        if read.majority_answered() {
            read.quorum_at = Some(now);
        }
        read.deps
            .extend(deps.iter().filter(|d| !replica.finished(d)).copied());
        if read.consistent && from == self_id {
            read.named.extend(deps);
        }
        read.seen = Timestamp {
            epoch: read.seen.epoch.max(seen.epoch),
            hlc: read.seen.hlc.max(seen.hlc),
            ..read.seen
        };
    }

    /// Emits every read that has its majority and whose writes are all done here, after the
    /// Apply actions already emitted.
    pub(super) fn reads_ready(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let replica = &self.replica;
        let mut ready = Vec::new();
        for (id, read) in &mut self.reads {
            if read.quorum_at.is_none() {
                continue;
            }
            read.deps.retain(|d| !replica.finished(d));
            if read.deps.is_empty() {
                ready.push(*id);
            }
        }
        for id in ready {
            let read = self.reads.remove(&id).expect("found above");
            let as_txn = read.consistent && read.tainted;
            self.actions.push(Action::Read {
                read_id: id,
                keys: read.keys,
                op: read.op,
                at: read.seen,
                as_txn,
            });
        }
    }

    /// `command` was just applied here: consistent reads in progress note whether it is late
    /// and whether it wrote one of their keys.
    pub(super) fn reads_saw_apply(&mut self, command: &Command) {
        let id = command.txn.id;
        for read in self.reads.values_mut().filter(|r| r.consistent) {
            let late =
                !read.named.contains(&id) || command.deps.iter().any(|d| read.late.contains(d));
            if !late {
                continue;
            }
            read.late.insert(id);
            read.tainted |= command
                .txn
                .keys
                .iter()
                .any(|(k, access)| *access == Access::Write && read.keys.contains(k));
        }
    }

    /// On a tick: asks again the replicas that have not answered a read for a retry
    /// period, and has the progress mechanism look into the writes a read has waited for
    /// for a retry period that this replica never saw (a peer knows them; their coordinator
    /// may be gone). Not sooner: most are on their way here, and a write learnt by inquiry
    /// is recorded without a fast-path vote, which would cost it the fast path.
    pub(super) fn reads_tick(&mut self) {
        let now = self.now;
        let mut resend = Vec::new();
        let mut unknown = Vec::new();
        for (id, read) in &mut self.reads {
            if let Some(at) = read.quorum_at {
                if now.saturating_sub(at) < self.config.retry_us {
                    continue;
                }
                unknown.extend(
                    read.deps
                        .iter()
                        .filter(|d| self.replica.command(d).is_none())
                        .copied(),
                );
            } else if now.saturating_sub(read.last_sent) >= self.config.retry_us
                && id.timestamp().hlc < self.clock_reserved
            {
                // (Below the durable reservation: the first ask may still be held for it.)
                read.last_sent = now;
                for to in &read.replicas {
                    if !read.answered.contains(to) {
                        resend.push((
                            *to,
                            Message::ReadDeps {
                                read_id: *id,
                                keys: read.keys.clone(),
                            },
                        ));
                    }
                }
            }
        }
        for (to, message) in resend {
            self.send(to, message);
        }
        for dep in unknown {
            self.progress.entry(dep).or_insert((now, 0));
        }
    }
}
