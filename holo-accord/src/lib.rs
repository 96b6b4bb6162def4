//! The Accord consensus protocol for HoloStore, sans-IO and deterministic.
//!
//! This crate owns timestamps, transaction ids, ballots, the PreAccept / Accept / Stable
//! rounds, dependency tracking and execution order for every range a node replicates (see
//! `shared/ACCORD.md`). It performs no I/O: events go in ([`Node::propose`],
//! [`Node::receive`], [`Node::tick`] carrying the host's time, [`Node::durable`]) and
//! [`Action`]s come out (batched messages per peer, command states to persist, transactions
//! to apply in order). A reply that reports persisted state leaves only after the host
//! confirmed that state durable. It depends on `bytes`, `thiserror` and `tracing` only; a
//! test keeps tokio, tonic, prost and RocksDB out of its dependency tree and clocks and
//! randomness out of its source.
//!
//! # What is here
//! - The hybrid logical clock: timestamps unique per node and above everything seen. Every
//!   timestamp a node issues is durable before a message carrying it leaves: a bumped
//!   witness in the replica's record (replies wait for it), a t0 or ballot under a durable
//!   clock reservation (`Action::ReserveClock`, one per second of hlc), so a new
//!   transaction's PreAccept leaves at once rather than after its coordinator's fsync, and a
//!   restarted node's clock starts above every reservation and record.
//! - PreAccept with the fast path (all 3 of 3, 4 of 5; the coordinator's own vote counts),
//!   the slow path with Accept recomputing deps up to executeAt, Stable, and execution in
//!   executeAt order once deps are applied (a dep decided to run later is not waited for).
//! - Multi-range transactions with a quorum per range; per-peer batching (one envelope per
//!   peer per step); replies held until the state they report is durable.
//! - Recovery (the rules of ACCORD.md section 4): ballots, BeginRecovery
//!   (an unknown txn is witnessed without a fast-path vote), re-proposing the highest
//!   accepted value, invalidation when the fast path provably failed or a conflicting txn was
//!   decided after t0 without it, and waiting while a conflicting txn is only Accepted.
//!   Replies carry their ballot so a coordinator never counts a late reply to an older round.
//! - Progress: a replica recovers any txn left undecided past a backoff (with deterministic
//!   jitter), also one whose own coordinator stood aside for a recovery that went quiet, and
//!   asks its peers about dependencies it never saw.
//! - Restart from the persisted command records.
//! - Ephemeral reads ([`Node::read`], `node/reads.rs`): a majority says which writes of the
//!   keys it knows; once those are done locally the host reads. Nothing is recorded;
//!   linearizable per key, or at one point of this node's state for all keys
//!   (`consistent`: a pipeline's reads in order, not an atomic snapshot) unless a write
//!   that started after the read was applied meanwhile (`as_txn`).
//! - A blind write's client may be answered when its `Action::Apply` is emitted, before the
//!   host applies it; not at commit, where a dep may still be undecided and real time can
//!   break through it (see `Action::Apply`). The simulator answers its write clients there.
//! - Conflict-index compaction: an applied write drops from its keys' index the finished
//!   txns it waited for (see `Replica::compact_after`), so deps list what is in flight, not a
//!   key's whole history; readiness checks track only each waiting txn's unresolved deps.
//! - GC through sync points (below).
//! - Epochs and exclusive sync points, the history cuts of splits and merges (below).
//!
//! # GC: sync points and the truncation floor
//! Every `Config::sync_interval_us` a node proposes a *sync point*: a txn of kind
//! `TxnKind::SyncPoint` with no keys over every range. Its deps are every txn with a lower
//! id the replicas know (sync points included); it always takes the slow path (so its Accept
//! fixes the deps at a majority and its recovery needs no fast-path evidence: a recovery
//! that finds it only PreAccepted accepts the union of its witnesses' deps, as its
//! coordinator would, rather than invalidating it, so recoveries racing a slow coordinator
//! cannot invalidate every sync point proposed) and executes
//! only once every dep is applied or invalidated, whatever their executeAt. Ordinary txns
//! never depend on it. A replica that has seen a sync point *refuses* an unknown txn with a
//! lower id while a sync point above it is undecided there (`Replica::refusal`): no vote, no
//! acceptance, and a recovery counts its evidence but not its reply towards the majority.
//! A sync point's deps are part of its Accept value (the union of a PreAccept majority's
//! answers), so it has one decision; once decided with the txn in its deps the refusal is
//! void (the replica takes part, PreAccept excepted), and decided without it the txn can
//! never execute (`Refused { excluded }`: whoever holds it commits the invalidation, and
//! waiters treat it as done, known or not). So refusals never need a lost replica to end:
//! with a minority lost for good the live majority decides every txn (the simulator's
//! lost-for-good scenario). An unknown dep nobody answers for makes a node propose a sync
//! point, which the live majority decides without it. Applying a sync point at a replica
//! means every txn below it
//! that will ever execute has been applied there. The host reports a sync point's apply
//! durable in storage with `Node::sync_durable`; nodes tell each other
//! (`Message::SyncApplied`), and once every replica durably applied one, each drops the
//! records of finished txns below it (`Replica::gc`) and emits
//! `Action::Truncate { floor, max }`: the host persists the floor and may drop those
//! records from its log. Below the floor an unknown txn is finished: a
//! late Stable or Invalidate is ignored, an unknown dep no longer blocks, and `max` keeps
//! new txns ordered above every dropped one. A recovery that finds the txn decided locally
//! finishes with that decision, so answers from replicas that dropped it cannot mislead it.
//! A node that is down stops GC for everyone until it returns (its peers keep their records
//! for it). A node proposes no sync point while an earlier one waits (not yet applied here,
//! or applied but not yet by every replica): the new one could not be collected sooner, and
//! since each depends on every earlier one, sync points piling up behind a stuck txn or a
//! down peer grew the state quadratically (the simulator spent 90% of its time validating
//! their deps; some seeds took a minute). The simulator checks that no txn below an applied
//! sync point is applied after it, that everything below a sync point every node applied is
//! applied everywhere, and that GC happens only then.
//!
//! A host may also ask for a sync point as a *read barrier* ([`Node::propose_barrier`]):
//! once it is applied locally, so is every txn below it that ever executes, which is what a
//! scan of the host's own storage needs to include every write acknowledged before it. One
//! is refused while another is on its way here, or once GC has been behind for a few
//! seconds (a peer is down): barriers then stop piling up behind it, as GC's own do.
//!
//! # Epochs
//! A [`Topology`] belongs to an epoch. A node starts in one and adopts the next ones
//! strictly in order ([`Node::adopt`]; out of order is an error and changes nothing); its
//! clock then issues timestamps of the new epoch, so every TxnId carries the epoch its
//! coordinator routed with. Timestamps order by epoch first: a txn proposed by a node still
//! in epoch `e` is below every txn of `e + 1` whatever its hlc, and a replica witnessing it
//! above a conflict of `e + 1` gives it an executeAt in `e + 1` (the clock takes the later
//! epoch of the bound it must exceed). A coordination needs quorums of the txn's ranges in
//! its own epoch and in every later one the node still keeps ("until a range is synced in
//! `e + 1`, quorums in both"); the host retires old epochs ([`Node::retire_epochs_below`])
//! once nothing of them is in flight. Such a lagging txn is also below every sync point of
//! the new epoch, so replicas refuse it once one is decided without it; its coordinator
//! (whose own replica refused it too, and so holds nothing to invalidate) then ends the
//! round and answers its client "invalidated" instead of recovering it for ever; the host
//! proposes again, in the epoch it has adopted by then. Today topology changes move range
//! boundaries only (split, merge): replicas are the same in every epoch, so the quorums of
//! both epochs are the same nodes. Replicas that change between epochs (a replica move)
//! need replicas to refuse txns routed with a topology they know is stale, and bootstrap.
//!
//! # Exclusive sync points: the history cut of a split or merge
//! A split or merge changes the ranges of one span of keys. Its history is cut by an
//! *exclusive sync point* ([`Node::propose_exclusive_sync_point`]): a sync point whose
//! [`Txn::scope`] is that span, proposed in the new epoch. It follows the rules of the sync
//! points above restricted to the txns that touch its span: its deps are the txns below it
//! that touch the span (no sync points: it waits for nothing else), and a replica that
//! witnessed it refuses an unknown txn below it only if the txn touches the span (one key
//! is enough), until it is decided; decided without such a txn, it proves the txn can never
//! execute. Once it is applied at a replica, every txn below it that touches the span and
//! ever executes was applied there; so once every replica of its ranges applied it (its
//! coordinator learns so through `Message::CutApplied`, and the host asks
//! [`Node::cut_status`]), nothing routed with an epoch before the change is in flight on
//! those ranges anywhere, and the host may drop the earlier epoch's descriptors of them.
//! Txns elsewhere are neither refused nor waited for, so a split costs the rest of the key
//! space nothing. A replica knows whether an exclusive sync point covers a txn only if it
//! knows the txn's keys: an unknown dep (only its id is known) is settled by sync points
//! over every range only, which keep being proposed for GC and on demand, so a dep that
//! only an exclusive one excluded still stops blocking its waiters. An exclusive sync point
//! never drives GC. In the simulator every topology change is a transaction of a random node
//! on a meta key (a compare-and-swap on the epoch it was planned against), and its cut is
//! driven this way from a node that may crash (another takes over); it checks that nothing
//! below an applied exclusive sync point that touches its span executes after it, and that
//! nothing of an epoch before a change touching its span is applied anywhere once its cut
//! is done. Planted bugs it
//! catches within the first ten seeds: a change whose epoch is retired without a cut, and
//! replicas that do not refuse txns in an exclusive sync point's span.
//!
//! # Ranges on a subset of the nodes
//! A range's replicas may be a subset of the nodes (`node/ownership.rs`). A node records,
//! votes on and applies only the txns of ranges it replicates, ignores any message about
//! another, and resends its decisions after a restart to each txn's replicas only. Until
//! deps are kept by key (`docs/elasticity.md`, "Order of work"), a txn's ranges must share
//! one replica set and its coordinator must be one of them, and a node whose topology
//! places some range on a subset proposes no sync point over every range (no GC, no read
//! barrier). The simulator runs such clusters (4, 5 or 7 nodes, each range on 3 or 5) under
//! every fault but losses for good, splits and merges included (a merge only of neighbours
//! with the same replicas), and checks that no node records or applies a txn of a range it
//! does not replicate and that every txn decided to execute is applied by a majority of its
//! replicas. A restart that resends decisions to every peer, with no ownership check, is
//! caught at once; a replica that answers an ephemeral read before the records of the
//! writes it names are durable, within 3,000 seeds (the read stalls on a write lost in a
//! crash, which only a sync point ends).
//!
//! # Not yet
//! - Deps by key, coordinators that are not replicas, and sync points under partial
//!   replication (above).
//! - Sending Apply results to lagging replicas: every replica executes every transaction
//!   itself.
//! - Replica changes between epochs (see above).
//!
//! # Simulator
//! `tests/sim` runs whole clusters (see its module docs and the README). Planted bugs it
//! catches within 3,000 seeds: replies sent before their record is durable; a majority fast
//! quorum; ignoring a decided conflict in recovery; ignoring an accepted one; Accept
//! keeping PreAccept's deps; executing without regard to deps' executeAt; restarting the
//! clock from zero; restarting it below the durable clock reservation; a witness that keeps
//! its own epoch when the conflict it must exceed is of a later one (the executeAt lands
//! below a dep); PreAccept ignoring a promised ballot; recovery ignoring an invalidation;
//! refusals that never lift (the reported stall, in the lost-for-good scenario); a lagging
//! coordinator that keeps recovering a txn every replica refuses as excluded, its own
//! included (a liveness failure within the first 50 seeds, once topology changes run). Two
//! recovery bugs need recoveries that race: an invalidation committed on one
//! acknowledgement, and recovery re-proposing the value of the lowest accepted ballot
//! rather than the highest. Both survived thousands of seeds until the simulator stalled
//! recovery coordinators the moment they send their second phase
//! (`Faults::recoverer_stalls_max`): the replicas accept the stalled one's value, another
//! recovery takes over and meets accepted values of two ballots, and the stalled one comes
//! back and commits. With that (and eager recovery timers, pauses and straggling messages)
//! each is caught within the first few hundred seeds of `make sim`. Pitfalls 1 and 5 do not
//! break safety here (a coordinator ignoring its own vote finishes on the slow path after
//! the fast-path wait; a recovery that counts a vote cast in recovery proposes t0 where it
//! could invalidate, which the superseding checks keep safe), so `tests/sim/votes.rs`
//! watches votes directly: a coordinator that received t0 votes from a fast quorum must not
//! take the slow path (a coordinator ignoring its own vote is caught), and a fast-path vote
//! is cast only on the original PreAccept (a recovery pre-accept casting one is caught).
//! Also caught: answering a write's client when it is proposed rather than committed, and
//! answering it at commit rather than once ordered (the simulator checks at every answer
//! that each dep of the txn is decided; the history that shows the damage came up once in
//! 40,000 seeds), and a restart that forgets a promise not followed by an acceptance (the
//! simulator checks that no record a node persists promises less than a durable record
//! before it). Not caught, because it changes nothing: an inquiry's answer
//! (`Replica::inform`) witnessing an unknown txn with a vote. A replica inquires only about
//! a dep of a txn it holds, which conflicts with the dep and executes above the dep's t0,
//! so the witness is never at t0 and casts no vote (instrumented: 599 such witnesses in 300
//! seeds, none at t0).

mod coordinator;
mod ids;
mod messages;
mod node;
mod replica;
mod topology;
mod txn;

pub use ids::{Ballot, Clock, NodeId, RangeId, Timestamp, TxnId, TxnKind};
pub use messages::{Envelope, Message};
pub use node::{Action, Config, CutStatus, EpochError, Node, Stats};
pub use replica::{Command, RecoverInfo, Status};
pub use topology::{RangeInfo, Topology};
pub use txn::{Access, Deps, Key, KeySpan, Txn};
