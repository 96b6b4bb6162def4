//! Client batching and retries: the commands clients hand the core, grouped into
//! transactions, the transactions in flight with the clients they answer, and the units an
//! invalidation sends round again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{Key, Node, TxnId};
use holo_resp::Frame;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// How many times a transaction the protocol invalidated (it never executed) is proposed
/// again before the client gets an error.
const INVALIDATED_RETRIES: u32 = 6;

/// How long an invalidated unit waits before it is proposed again, by attempt: the first
/// retry at once (contention), later ones backing off (about 1.7 s in all). A txn is also
/// invalidated when its node routed it with an epoch the others have left (it has not
/// applied the split or merge yet, or restarted behind): it must wait until this node
/// adopted the new epoch, which ends the wait early ([`Batcher::retry_all`]).
fn retry_delay(retries: u32) -> Duration {
    match retries {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(5 << (2 * (n - 2)).min(16)),
    }
}

/// Most client commands proposed as one transaction.
const BATCH_COMMANDS_MAX: usize = 1024;
/// Most bytes of operations in one transaction.
const BATCH_BYTES_MAX: usize = 1 << 20;

/// The next units to go together, within the batch limits (a unit larger than the limits
/// goes alone); `None` when none are left.
fn next_batch(rest: &mut std::iter::Peekable<std::vec::IntoIter<Unit>>) -> Option<Vec<Unit>> {
    let mut units: Vec<Unit> = Vec::new();
    let (mut commands, mut bytes) = (0, 0);
    while let Some(unit) = rest.peek() {
        if !units.is_empty()
            && (commands + unit.proposals.len() > BATCH_COMMANDS_MAX
                || bytes + unit.bytes() > BATCH_BYTES_MAX)
        {
            break;
        }
        let unit = rest.next().expect("peeked");
        commands += unit.proposals.len();
        bytes += unit.bytes();
        units.push(unit);
    }
    (!units.is_empty()).then_some(units)
}

/// The operation of `units`' commands in order: the one command's own, or a batch.
fn batch_op(units: &[Unit]) -> Bytes {
    let mut proposals = units.iter().flat_map(|u| u.proposals.iter());
    match (proposals.next(), proposals.next()) {
        (Some(single), None) => single.op.clone(),
        _ => {
            let ops: Vec<&[u8]> = units
                .iter()
                .flat_map(|u| u.proposals.iter().map(|p| &p.op[..]))
                .collect();
            crate::cmd::encode_batch(ops.into_iter())
        }
    }
}

/// The keys the commands of `units` read, each once.
fn read_keys(units: &[Unit]) -> Vec<Key> {
    let mut keys: Vec<Key> = units
        .iter()
        .flat_map(|u| u.proposals.iter().flat_map(|p| p.reads.iter().cloned()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A client's key/value command.
pub struct Proposal {
    pub reads: Vec<Key>,
    pub writes: Vec<Key>,
    pub op: Bytes,
    pub reply: oneshot::Sender<Frame>,
    /// The reply is `+OK` whatever the state (plain SET, MSET): sent once the txn is
    /// ordered (its Apply is emitted), without waiting for storage.
    pub blind: bool,
    /// Goes as a transaction even if it reads one key (an ephemeral read of it found the
    /// key expired, see [`crate::executor`]).
    pub txn_only: bool,
}

impl Proposal {
    /// A one-key read to go again as a transaction (see [`Proposal::txn_only`]).
    pub fn read_as_txn(reply: oneshot::Sender<Frame>, key: Key, op: Bytes) -> Proposal {
        Proposal {
            reads: vec![key],
            writes: Vec::new(),
            op,
            reply,
            blind: false,
            txn_only: true,
        }
    }
}

/// The commands one connection sent in one go: proposed together, in order, never split
/// across transactions (so a pipeline keeps its order, also when a transaction is
/// invalidated and proposed again), with the times it was proposed again.
struct Unit {
    proposals: Vec<Proposal>,
    retries: u32,
    /// The epoch its latest transaction was routed with.
    epoch: u64,
}

impl Unit {
    fn bytes(&self) -> usize {
        self.proposals.iter().map(|p| p.op.len()).sum()
    }

    /// A unit that [`Unit::reads_keys`] whose commands all read the same key: it may go as
    /// an ephemeral read linearizable per key ([`Node::read`]), merged with other such
    /// units. A pipeline over several keys needs its keys read at one point (the reading
    /// node may have applied a later write of one key before an earlier one of another,
    /// where one connection's reads in order must see them in order): a consistent read.
    fn reads_one_key(&self) -> bool {
        let key = self.proposals.first().and_then(|p| p.reads.first());
        self.proposals.iter().all(|p| p.reads.first() == key)
    }

    /// Only commands that read one key each (GET, HGET, ...; not a reserved key, not TTL and
    /// its kin, whose answer is time, not sent back to be a transaction): the unit may go as
    /// an ephemeral read.
    fn reads_keys(&self) -> bool {
        self.proposals.iter().all(|p| {
            !p.txn_only
                && p.writes.is_empty()
                && p.reads.len() == 1
                && !holo_meta::is_reserved(&p.reads[0])
                && !crate::cmd::op::answers_with_time(&p.op)
        })
    }

    /// A meta command: always a transaction of its own (the executor recognises it by its
    /// one key). The controller sends each alone, and clients cannot use reserved keys, so
    /// the first key tells.
    fn is_meta(&self) -> bool {
        self.proposals
            .first()
            .and_then(|p| p.writes.first())
            .is_some_and(|k| holo_meta::is_reserved(k))
    }
}

/// The units one transaction carries, in the order of its batch op.
struct InFlight {
    units: Vec<Unit>,
}

/// Client commands on their way through the protocol.
pub struct Batcher {
    in_flight: HashMap<TxnId, InFlight>,
    /// Units not proposed yet.
    queued: Vec<Unit>,
    /// Invalidated units waiting to be proposed again, with when.
    deferred: Vec<(Instant, Unit)>,
    /// Most client transactions undecided at once (0: no limit); see [`Batcher::propose`].
    /// Also the most ephemeral reads waiting for their majority at once.
    window: usize,
    /// Units of one-key reads go as ephemeral reads.
    ephemeral_reads: bool,
}

impl Batcher {
    pub fn new(window: usize) -> Batcher {
        Batcher {
            in_flight: HashMap::new(),
            queued: Vec::new(),
            deferred: Vec::new(),
            window,
            ephemeral_reads: false,
        }
    }

    /// Serves units of one-key reads as ephemeral reads (see [`Unit::reads_one_key`]).
    pub fn with_ephemeral_reads(mut self, on: bool) -> Batcher {
        self.ephemeral_reads = on;
        self
    }

    /// Takes the commands a connection sent in one go.
    pub fn push(&mut self, proposals: Vec<Proposal>) {
        if !proposals.is_empty() {
            self.queued.push(Unit {
                proposals,
                retries: 0,
                epoch: 0,
            });
        }
    }

    /// Queues the invalidated units whose wait is over.
    pub fn retry_due(&mut self, now: Instant) {
        if self.deferred.is_empty() {
            return;
        }
        let (due, wait): (Vec<_>, Vec<_>) = self.deferred.drain(..).partition(|(at, _)| *at <= now);
        self.deferred = wait;
        self.queued.extend(due.into_iter().map(|(_, unit)| unit));
    }

    /// Queues every invalidated unit at once: this node adopted a new epoch, and what was
    /// refused for being routed in the old one can go now.
    pub fn retry_all(&mut self) {
        self.queued
            .extend(self.deferred.drain(..).map(|(_, unit)| unit));
    }

    /// Transactions proposed whose clients are still owed an answer here.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Proposes the queued units, as few transactions as the batch limits allow (a unit
    /// larger than the limits goes alone).
    ///
    /// While `window` transactions of this node are undecided, a batch that is not full
    /// waits: every transaction costs each replica a fixed amount of CPU (messages, records,
    /// the conflict index) whatever it carries, so commands arriving while earlier rounds
    /// are out are worth more together. A decision, or any event, runs this again. Only
    /// undecided transactions count, so one waiting to execute behind a slow dependency
    /// never holds up new ones.
    pub fn propose(&mut self, node: &mut Node) {
        let mut queued = std::mem::take(&mut self.queued);
        // A client that went away before its commands started needs nothing done.
        queued.retain(|u| u.retries > 0 || u.proposals.iter().any(|p| !p.reply.is_closed()));
        // Meta commands (the controller's) go alone and never wait for the window.
        let (meta, data): (Vec<Unit>, Vec<Unit>) = queued.into_iter().partition(Unit::is_meta);
        for unit in meta {
            self.propose_units(node, vec![unit]);
        }
        let (reads, data): (Vec<Unit>, Vec<Unit>) = if self.ephemeral_reads {
            data.into_iter().partition(Unit::reads_keys)
        } else {
            (Vec::new(), data)
        };
        // Units of one key each need no common point across their keys (they come from
        // different connections); a unit of several keys does.
        let (one_key, several): (Vec<Unit>, Vec<Unit>) =
            reads.into_iter().partition(Unit::reads_one_key);
        self.in_batches(node, one_key, Node::reads_collecting, |b, n, units| {
            b.read_units(n, units, false);
        });
        self.in_batches(node, several, Node::reads_collecting, |b, n, units| {
            b.read_units(n, units, true);
        });
        self.in_batches(
            node,
            data,
            Node::undecided_proposals,
            Batcher::propose_units,
        );
    }

    /// Hands `units` to `go` a batch at a time; once `out(node)` reaches the window, a
    /// batch that is not full waits in the queue instead.
    fn in_batches(
        &mut self,
        node: &mut Node,
        units: Vec<Unit>,
        out: fn(&Node) -> usize,
        go: impl Fn(&mut Batcher, &mut Node, Vec<Unit>),
    ) {
        let mut rest = units.into_iter().peekable();
        while let Some(units) = next_batch(&mut rest) {
            let full = rest.peek().is_some();
            if !full && self.window > 0 && out(node) >= self.window {
                self.queued.extend(units);
                break;
            }
            go(self, node, units);
        }
    }

    /// Starts `units` as one ephemeral read.
    fn read_units(&mut self, node: &mut Node, units: Vec<Unit>, consistent: bool) {
        let id = node.read(&read_keys(&units), batch_op(&units), consistent);
        self.in_flight.insert(id, InFlight { units });
    }

    /// Proposes `units` as one transaction.
    fn propose_units(&mut self, node: &mut Node, mut units: Vec<Unit>) {
        let proposals = || units.iter().flat_map(|u| u.proposals.iter());
        let reads: Vec<Key> = proposals().flat_map(|p| p.reads.iter().cloned()).collect();
        let writes: Vec<Key> = proposals().flat_map(|p| p.writes.iter().cloned()).collect();
        let id = node.propose(&reads, &writes, batch_op(&units));
        let epoch = node.epoch();
        for unit in &mut units {
            unit.epoch = epoch;
        }
        self.in_flight.insert(id, InFlight { units });
    }

    /// Transaction `id` is ordered and about to execute here: the replies its execution
    /// must send, in the order of its batch op. Blind writes need nothing from execution
    /// and hear now: the txn and everything ordered before it are decided and durable at a
    /// quorum (`holo_accord::Action::Apply` says why commit alone is too early).
    pub fn applied(&mut self, id: &TxnId) -> Vec<oneshot::Sender<Frame>> {
        let Some(txn) = self.in_flight.remove(id) else {
            return Vec::new();
        };
        let blind = txn
            .units
            .iter()
            .all(|u| u.proposals.iter().all(|p| p.blind));
        let mut replies = Vec::new();
        for proposal in txn.units.into_iter().flat_map(|u| u.proposals) {
            if blind {
                let _ = proposal.reply.send(Frame::ok());
            } else {
                replies.push(proposal.reply);
            }
        }
        replies
    }

    /// Ephemeral read `id` is about to run here: each command's reply, key and operation,
    /// in the order of its batch op (a command may have to go again as a transaction).
    pub fn read_done(&mut self, id: &TxnId) -> Vec<(oneshot::Sender<Frame>, Key, Bytes)> {
        let Some(read) = self.in_flight.remove(id) else {
            return Vec::new();
        };
        read.units
            .into_iter()
            .flat_map(|u| u.proposals)
            .map(|p| (p.reply, p.reads[0].clone(), p.op))
            .collect()
    }

    /// Transaction `id` was invalidated (it never executes): its units are queued again,
    /// deferred, or, out of attempts, answered with an error. `epoch`: the node's epoch now.
    /// True if some are queued to go at once.
    pub fn invalidated(&mut self, id: &TxnId, epoch: u64) -> bool {
        let Some(txn) = self.in_flight.remove(id) else {
            return false;
        };
        let mut again = false;
        for mut unit in txn.units {
            // Routed with an epoch this node has left since: refused for that, not for
            // contention, so it costs no attempt (a node catching up several epochs goes
            // through one each time).
            if unit.epoch < epoch {
                self.queued.push(unit);
                again = true;
            } else if unit.retries < INVALIDATED_RETRIES {
                unit.retries += 1;
                let delay = retry_delay(unit.retries);
                if delay.is_zero() {
                    self.queued.push(unit);
                    again = true;
                } else {
                    self.deferred.push((Instant::now() + delay, unit));
                }
            } else {
                let error = ClientError::Invalidated {
                    attempts: unit.retries + 1,
                };
                for proposal in unit.proposals {
                    let _ = proposal.reply.send(error.frame());
                }
            }
        }
        again
    }
}

#[cfg(test)]
mod tests {
    use holo_accord::{Action, Config, NodeId, Topology};

    use super::*;

    /// The proposals of `commands`, and the receivers of their replies (a proposal whose
    /// client went away is dropped).
    fn unit(commands: &[&[&str]]) -> (Vec<Proposal>, Vec<oneshot::Receiver<Frame>>) {
        commands
            .iter()
            .map(|args| {
                let args: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
                let Some(crate::cmd::Parsed::Txn(txn)) = crate::cmd::parse(&args) else {
                    panic!("{args:?} parses to a txn");
                };
                txn.into_proposal()
            })
            .unzip()
    }

    /// Whether `commands`, sent by one connection in one go, went as an ephemeral read.
    fn ephemeral(commands: &[&[&str]]) -> bool {
        let mut node = Node::new(
            NodeId(1),
            Topology::whole(vec![NodeId(1)]),
            Config::default(),
        );
        let mut batcher = Batcher::new(2).with_ephemeral_reads(true);
        let (proposals, _replies) = unit(commands);
        batcher.push(proposals);
        batcher.propose(&mut node);
        let actions = node.take_actions();
        let read = actions.iter().any(|a| matches!(a, Action::Read { .. }));
        assert_eq!(
            read,
            node.coordinating() == 0,
            "{commands:?}: one or the other"
        );
        read
    }

    #[test]
    fn only_reads_of_one_key_go_as_ephemeral_reads() {
        assert!(ephemeral(&[&["GET", "a"]]));
        assert!(ephemeral(&[
            &["GET", "a"],
            &["STRLEN", "a"],
            &["HGET", "a", "f"]
        ]));
        // Reads of two keys in one pipeline: a consistent read (every key at one point).
        assert!(ephemeral(&[&["GET", "a"], &["GET", "b"]]));
        // A command of two keys stays a transaction.
        assert!(!ephemeral(&[&["MGET", "a", "b"]]));
        assert!(!ephemeral(&[&["GET", "a"], &["SET", "a", "1"]]));
        // An answer that is time itself.
        assert!(!ephemeral(&[&["TTL", "a"]]));
        assert!(!ephemeral(&[&["PTTL", "a"]]));
    }
}
