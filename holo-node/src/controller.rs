//! The controller: one node at a time drives splits and merges.
//!
//! Every node runs this task. The lease `{holder, term, expires}` lives in the meta range:
//! taking it (the next term, once the current one expired) and renewing it (its holder,
//! after a third of it) are meta commands decided at their executeAt, so at most one node
//! holds a term at any moment of the agreed history. The lease only says who drives; safety
//! comes from every command being a compare-and-swap on the term and the generations it
//! expects, applied the same way on every replica. A holder that lost the lease without
//! knowing it (paused, partitioned) gets its commands recorded as no-ops.
//!
//! An operation has two steps. The split or merge itself is one command: the map moves to
//! a new epoch, the operation is recorded in phase `cutting`, and every node adopts the
//! epoch when it applies the command. Then the holder cuts the history of the changed span
//! with an exclusive sync point over it, proposed in the new epoch (see holo-accord): once
//! every replica applied it, no txn routed with an earlier epoch that touches the span is
//! in flight anywhere, and the holder commits `Finish`, which drops the earlier epoch's
//! descriptors; every node then retires that epoch in its core. Txns on other ranges are
//! neither refused nor waited for. Operations are in the map, so a new holder (after a
//! kill -9 of the old one mid-operation) cuts and finishes them with a sync point of its
//! own. A member that is down holds the cut back until it returns (every replica must apply
//! the sync point); clients are not held back meanwhile.
//!
//! With `controller.auto_split`, the holder measures each range's live bytes in its own
//! storage and its load (key reads and writes per second of the transactions it executed)
//! every `check_interval_ms`, splits one that is larger than `split_above_bytes` or hotter
//! than `split_above_accesses_per_sec` at its median key, and merges two neighbours smaller
//! than `merge_below_bytes` (and cooler than half the load threshold) together, one
//! operation per check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holo_accord::{NodeId, RangeId};
use holo_meta::{META_KEY, MetaCommand, MetaState, RangeDescriptor};
use holo_resp::Frame;
use holo_storage::Store;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ControllerConfig;
use crate::core::{Event, Proposal};
use crate::executor::{decode_value, scan_user_keys};
use crate::metrics::Metrics;
use holo_accord::{CutStatus, TxnId};

/// How long a meta command may take to be decided and applied here before the caller
/// hears that the outcome is unknown (a compare-and-swap: trying again is safe).
const DECISION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an operator's request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Another node holds the lease (or none does yet): ask it.
    #[error("this node does not hold the controller lease (holder: {0:?})")]
    NotController(Option<NodeId>),
    #[error("{0}")]
    Invalid(String),
    /// The meta command was decided as a no-op (a generation or the term moved on).
    #[error("refused by the cluster map: {0}")]
    Rejected(String),
    #[error("{0}")]
    Unavailable(String),
}

/// What an operator's request did.
pub struct Done {
    pub epoch: u64,
    pub detail: String,
}

/// An operation an operator asks for.
pub enum Operation {
    Split { range: RangeId, at: Option<Bytes> },
    Merge { left: RangeId, right: RangeId },
}

impl Operation {
    /// The ranges it changes.
    pub fn ranges(&self) -> Vec<RangeId> {
        match self {
            Operation::Split { range, .. } => vec![*range],
            Operation::Merge { left, right } => vec![*left, *right],
        }
    }
}

/// A request from the admin service, and where its outcome goes.
pub struct Request {
    pub operation: Operation,
    pub reply: oneshot::Sender<Result<Done, RequestError>>,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Proposes one meta command and waits until this node applied it.
///
/// # Errors
/// The command was decided as a no-op (`Rejected`), or no decision came in time or the
/// node is stopping (`Unavailable`).
pub async fn propose(
    core: &mpsc::Sender<Event>,
    command: &MetaCommand,
) -> Result<u64, RequestError> {
    let (reply, answer) = oneshot::channel();
    let proposal = Proposal {
        reads: Vec::new(),
        writes: vec![Bytes::from_static(META_KEY)],
        op: Bytes::from(command.encode()),
        reply,
        blind: false,
        txn_only: true,
    };
    let stopping = || RequestError::Unavailable("the node is stopping".into());
    core.send(Event::Propose(vec![proposal]))
        .await
        .map_err(|_| stopping())?;
    match tokio::time::timeout(DECISION_TIMEOUT, answer).await {
        Ok(Ok(Frame::Integer(epoch))) => Ok(epoch as u64),
        Ok(Ok(Frame::Error(e))) => {
            let e = String::from_utf8_lossy(&e);
            Err(match e.strip_prefix("REJECTED ") {
                Some(why) => RequestError::Rejected(why.to_owned()),
                None => RequestError::Unavailable(e.into_owned()),
            })
        }
        Ok(Ok(other)) => Err(RequestError::Unavailable(format!(
            "unexpected reply to a meta command: {other:?}"
        ))),
        Ok(Err(_)) => Err(stopping()),
        Err(_) => Err(RequestError::Unavailable(format!(
            "no decision within {DECISION_TIMEOUT:?} (is a majority of the meta range's replicas up?); \
             the outcome is unknown, and asking again is safe"
        ))),
    }
}

/// Live keys and their bytes (key and value) of each range in `ranges` (sorted, covering
/// the user key space), in this node's storage: one scan of every user key.
///
/// # Errors
/// Storage cannot be read.
pub fn range_sizes(store: &Store, ranges: &[RangeDescriptor]) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut sizes = vec![(0u64, 0u64); ranges.len()];
    scan_user_keys(store, &[], None, |key, v| {
        if let Some((_, Some(value))) = decode_value(v) {
            let i = ranges.partition_point(|r| r.start.as_ref() <= key) - 1;
            sizes[i].0 += 1;
            sizes[i].1 += (key.len() + value.encoded_len()) as u64;
        }
    })?;
    Ok(sizes)
}

/// The median live key of `range` in this node's storage: the range splits there into
/// halves of about the same number of keys. `None` with fewer than two keys.
///
/// # Errors
/// Storage cannot be read.
pub fn median_key(store: &Store, range: &RangeDescriptor) -> anyhow::Result<Option<Bytes>> {
    let live = |v: &[u8]| matches!(decode_value(v), Some((_, Some(_))));
    // Two passes over one range: count, then walk to the middle. Live keys only.
    let mut keys = 0u64;
    scan_user_keys(store, &range.start, range.end.as_deref(), |_, v| {
        keys += u64::from(live(v));
    })?;
    if keys < 2 {
        return Ok(None);
    }
    let (mut seen, mut median) = (0u64, None);
    scan_user_keys(store, &range.start, range.end.as_deref(), |k, v| {
        if live(v) {
            if seen == keys / 2 && median.is_none() {
                median = Some(Bytes::copy_from_slice(k));
            }
            seen += 1;
        }
    })?;
    // None if the keys changed between the passes so much that the middle is gone.
    Ok(median)
}

/// The controller task of one node.
pub struct Controller {
    pub me: NodeId,
    pub config: ControllerConfig,
    pub core: mpsc::Sender<Event>,
    pub meta: watch::Receiver<Arc<MetaState>>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub requests: mpsc::Receiver<Request>,
}

/// Whether `state`'s lease is held by `me` with time to spare by this node's clock.
pub fn driving(state: &MetaState, me: NodeId, tick: Duration) -> bool {
    state
        .lease()
        .is_some_and(|l| l.holder == me && now_us() + 2 * tick.as_micros() as u64 <= l.expires)
}

impl Controller {
    fn tick(&self) -> Duration {
        Duration::from_millis(self.config.tick_ms)
    }

    fn state(&self) -> Arc<MetaState> {
        Arc::clone(&self.meta.borrow())
    }

    /// Runs until the node stops.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(self.tick());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The exclusive sync point cutting each operation's history, by operation id.
        let mut cuts: std::collections::HashMap<u64, TxnId> = std::collections::HashMap::new();
        let mut last_check = Instant::now();
        let mut last_load: Option<(Instant, std::collections::BTreeMap<u64, u64>)> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                request = self.requests.recv() => match request {
                    Some(request) => {
                        self.serve(request).await;
                        continue;
                    }
                    None => {
                        // The admin service is gone: the node is stopping.
                        std::future::pending::<()>().await;
                    }
                },
            }
            if self.core.is_closed() {
                return Ok(());
            }
            self.keep_lease().await;
            let state = self.state();
            if !driving(&state, self.me, self.tick()) {
                continue;
            }
            let term = state.lease().map_or(0, |l| l.term);
            cuts.retain(|op, _| state.operations().iter().any(|o| o.id == *op));
            for op in state.operations() {
                if self.cut(&state, op, &mut cuts).await != Some(CutStatus::Done) {
                    continue;
                }
                let command = MetaCommand::Finish {
                    term,
                    operation: op.id,
                };
                if let Err(e) = propose(&self.core, &command).await {
                    tracing::warn!(operation = op.id, "finishing the operation: {e}");
                }
            }
            if self.config.auto_split
                && state.operations().is_empty()
                && last_check.elapsed() >= Duration::from_millis(self.config.check_interval_ms)
            {
                last_check = Instant::now();
                let load = self.metrics.range_load();
                let rates = last_load.as_ref().map(|(at, before)| {
                    let secs = at.elapsed().as_secs_f64().max(1e-3);
                    load.iter()
                        .filter_map(|(r, n)| {
                            let b = before.get(r)?;
                            Some((*r, n.saturating_sub(*b) as f64 / secs))
                        })
                        .collect::<std::collections::BTreeMap<u64, f64>>()
                });
                last_load = Some((Instant::now(), load));
                if let Err(e) = self.resize(&state, term, rates.unwrap_or_default()).await {
                    tracing::warn!("automatic split or merge: {e}");
                }
            }
        }
    }

    /// Drives the history cut of `op` one step: proposes an exclusive sync point over its
    /// span if none of this node's is under way (or the last one was invalidated or
    /// forgotten), and says how the one under way stands. `None`: the core is gone, or has
    /// not adopted the operation's epoch yet.
    async fn cut(
        &self,
        state: &MetaState,
        op: &holo_meta::Operation,
        cuts: &mut std::collections::HashMap<u64, TxnId>,
    ) -> Option<CutStatus> {
        if let Some(id) = cuts.get(&op.id).copied() {
            let (reply, answer) = oneshot::channel();
            self.core.send(Event::CutStatus { id, reply }).await.ok()?;
            match answer.await.ok()? {
                CutStatus::Invalidated | CutStatus::Unknown => {
                    tracing::info!(operation = op.id, "the history cut {id} was lost: another");
                }
                status => return Some(status),
            }
        }
        let (reply, answer) = oneshot::channel();
        let cut = Event::Cut {
            span: state.operation_span(op),
            epoch: op.epoch,
            reply,
        };
        self.core.send(cut).await.ok()?;
        let id = answer.await.ok()??;
        tracing::debug!(operation = op.id, "cutting the history with {id}");
        cuts.insert(op.id, id);
        Some(CutStatus::Waiting)
    }

    /// Takes the lease when none is valid, renews it when held and a third has passed.
    async fn keep_lease(&self) {
        let state = self.state();
        let lease_us = self.config.lease_ms * 1000;
        let now = now_us();
        let term = match state.lease() {
            None => 1,
            Some(l) if l.holder == self.me => {
                if now + lease_us * 2 / 3 < l.expires {
                    return;
                }
                l.term
            }
            Some(l) => {
                // Nodes wait a little longer the higher their id, so that after a holder
                // dies one of them (usually) takes over rather than all at once; the
                // compare-and-swap settles any race.
                let stagger = u64::from(self.me.0.saturating_sub(1)) * lease_us / 4;
                if now < l.expires + stagger {
                    return;
                }
                l.term + 1
            }
        };
        let command = MetaCommand::Lease {
            holder: self.me,
            term,
            duration_us: lease_us,
        };
        match propose(&self.core, &command).await {
            Ok(_) => tracing::debug!(term, "holding the controller lease"),
            Err(RequestError::Rejected(why)) => tracing::debug!("lease not taken: {why}"),
            Err(e) => tracing::warn!("taking the controller lease: {e}"),
        }
    }

    async fn serve(&self, request: Request) {
        let state = self.state();
        let result = if !driving(&state, self.me, self.tick()) {
            Err(RequestError::NotController(state.lease().map(|l| l.holder)))
        } else {
            match request.operation {
                Operation::Split { range, at } => self.split(&state, range, at).await,
                Operation::Merge { left, right } => self.merge(&state, left, right).await,
            }
        };
        let _ = request.reply.send(result);
    }

    async fn split(
        &self,
        state: &MetaState,
        range: RangeId,
        at: Option<Bytes>,
    ) -> Result<Done, RequestError> {
        let Some(descriptor) = state.map().range(range).cloned() else {
            return Err(RequestError::Invalid(format!(
                "there is no range {}",
                range.0
            )));
        };
        let at = match at {
            Some(at) => at,
            None => {
                let store = Arc::clone(&self.store);
                let d = descriptor.clone();
                tokio::task::spawn_blocking(move || median_key(&store, &d))
                    .await
                    .map_err(|e| RequestError::Unavailable(e.to_string()))?
                    .map_err(|e| RequestError::Unavailable(format!("reading the range: {e}")))?
                    .ok_or_else(|| {
                        RequestError::Invalid(format!(
                            "range {} holds fewer than two keys: give the key to split at",
                            range.0
                        ))
                    })?
            }
        };
        if !descriptor.splits_at(&at) {
            return Err(RequestError::Invalid(format!(
                "{:?} is not strictly inside range {} ({})",
                String::from_utf8_lossy(&at),
                range.0,
                describe_span(&descriptor)
            )));
        }
        let command = MetaCommand::Split {
            term: state.lease().map_or(0, |l| l.term),
            range,
            expect: descriptor.generation,
            at: at.clone(),
        };
        let epoch = propose(&self.core, &command).await?;
        Ok(Done {
            epoch,
            detail: format!(
                "split range {} at {:?} (epoch {epoch}); the history cut follows",
                range.0,
                String::from_utf8_lossy(&at)
            ),
        })
    }

    async fn merge(
        &self,
        state: &MetaState,
        left: RangeId,
        right: RangeId,
    ) -> Result<Done, RequestError> {
        let generation = |id: RangeId| {
            state
                .map()
                .range(id)
                .map(|r| r.generation)
                .ok_or_else(|| RequestError::Invalid(format!("there is no range {}", id.0)))
        };
        let command = MetaCommand::Merge {
            term: state.lease().map_or(0, |l| l.term),
            left,
            right,
            expect: (generation(left)?, generation(right)?),
        };
        let epoch = propose(&self.core, &command).await?;
        Ok(Done {
            epoch,
            detail: format!(
                "merged range {} into range {} (epoch {epoch}); the history cut follows",
                right.0, left.0
            ),
        })
    }

    /// One automatic split or merge, if the sizes or the load (key accesses per second, by
    /// range id) call for it.
    async fn resize(
        &self,
        state: &MetaState,
        term: u64,
        rates: std::collections::BTreeMap<u64, f64>,
    ) -> Result<(), RequestError> {
        let ranges = state.map().ranges().to_vec();
        let store = Arc::clone(&self.store);
        let measured = ranges.clone();
        let sizes = tokio::task::spawn_blocking(move || range_sizes(&store, &measured))
            .await
            .map_err(|e| RequestError::Unavailable(e.to_string()))?
            .map_err(|e| RequestError::Unavailable(e.to_string()))?;
        if let Some(i) = sizes
            .iter()
            .position(|(_, bytes)| *bytes > self.config.split_above_bytes)
        {
            let done = self.split(state, ranges[i].id, None).await?;
            tracing::info!(bytes = sizes[i].1, "automatic: {}", done.detail);
            return Ok(());
        }
        let hot = self.config.split_above_accesses_per_sec as f64;
        let rate = |id: RangeId| rates.get(&id.0).copied().unwrap_or(0.0);
        if hot > 0.0
            && let Some(r) = ranges.iter().zip(&sizes).find(|(r, (keys, _))| {
                // A range of one key cannot be split, however hot.
                rate(r.id) > hot && *keys >= 2
            })
        {
            let done = self.split(state, r.0.id, None).await?;
            tracing::info!(
                accesses_per_sec = rate(r.0.id),
                "automatic: {}",
                done.detail
            );
            return Ok(());
        }
        for i in 1..ranges.len() {
            let (l, r) = (&ranges[i - 1], &ranges[i]);
            let mut lr = l.replicas.clone();
            let mut rr = r.replicas.clone();
            lr.sort_unstable();
            rr.sort_unstable();
            // Neighbours split for their load stay apart while it lasts.
            let cool = hot == 0.0 || rate(l.id) + rate(r.id) < hot / 2.0;
            if lr == rr && cool && sizes[i - 1].1 + sizes[i].1 < self.config.merge_below_bytes {
                let command = MetaCommand::Merge {
                    term,
                    left: l.id,
                    right: r.id,
                    expect: (l.generation, r.generation),
                };
                let epoch = propose(&self.core, &command).await?;
                tracing::info!(
                    epoch,
                    "automatic: merged range {} into range {}",
                    r.id.0,
                    l.id.0
                );
                return Ok(());
            }
        }
        Ok(())
    }
}

/// `[start, end)` in words.
pub fn describe_span(r: &RangeDescriptor) -> String {
    let key = |k: &[u8]| {
        if k.is_empty() {
            "-inf".to_owned()
        } else {
            format!("{:?}", String::from_utf8_lossy(k))
        }
    };
    let end = r.end.as_deref().map_or_else(|| "+inf".to_owned(), key);
    format!("[{}, {end})", key(&r.start))
}
