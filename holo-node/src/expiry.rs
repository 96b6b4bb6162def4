//! The background removal of expired keys.
//!
//! An expired key is absent for every command from its expiry on (decided at each
//! transaction's executeAt, see `cmd::op`), but its value stays in storage until it is
//! deleted. The node holding the controller lease walks its copy of the data, a bounded
//! number of keys per round, and proposes ordinary transactions ([`purge_op`]) deleting the
//! keys it finds expired by its clock. Each deletes a key only if it has expired at the
//! transaction's own executeAt, so a stale copy or a fast clock can only make a purge do
//! nothing, never remove a live key.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use holo_accord::NodeId;
use holo_meta::MetaState;
use holo_resp::Frame;
use holo_storage::Store;
use tokio::sync::{mpsc, watch};

use crate::cmd::KvTxn;
use crate::cmd::expire::purge_op;
use crate::cmd::wall_ms;
use crate::core::Event;
use crate::executor::{decode_value, scan_user_page};
use crate::metrics::Metrics;

/// How often the lease holder looks for expired keys.
const ROUND_EVERY: Duration = Duration::from_millis(500);
/// Stored keys looked at per round.
const KEYS_PER_ROUND: usize = 8192;
/// Keys one purge transaction deletes.
const PURGE_BATCH: usize = 256;

/// Runs until the core stops.
pub async fn run(
    me: NodeId,
    core: mpsc::Sender<Event>,
    meta: watch::Receiver<Arc<MetaState>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    lease_tick: Duration,
) {
    let mut ticker = tokio::time::interval(ROUND_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut from = Bytes::new();
    loop {
        ticker.tick().await;
        if core.is_closed() {
            return;
        }
        let state = Arc::clone(&meta.borrow());
        if !crate::controller::driving(&state, me, lease_tick) {
            continue;
        }
        let found = {
            let store = Arc::clone(&store);
            let start = from.clone();
            tokio::task::spawn_blocking(move || expired_keys(&store, &start, wall_ms())).await
        };
        let Ok(Ok((keys, next))) = found else {
            continue;
        };
        from = next.unwrap_or_default();
        for chunk in keys.chunks(PURGE_BATCH) {
            let txn = KvTxn::new(Vec::new(), chunk.to_vec(), purge_op(chunk));
            let (proposal, answer) = txn.into_proposal();
            if core.send(Event::Propose(vec![proposal])).await.is_err() {
                return;
            }
            match answer.await {
                Ok(Frame::Integer(n)) => {
                    metrics
                        .expired_purged
                        .fetch_add(n.max(0) as u64, Ordering::Relaxed);
                }
                Ok(Frame::Error(e)) => {
                    tracing::debug!("purging expired keys: {}", String::from_utf8_lossy(&e));
                }
                _ => {}
            }
        }
    }
}

/// Keys of `store` from `start` on that have expired by `now_ms`, looking at no more than
/// `KEYS_PER_ROUND` keys; and where the next round goes on (`None`: from the start).
fn expired_keys(
    store: &Store,
    start: &[u8],
    now_ms: u64,
) -> anyhow::Result<(Vec<Bytes>, Option<Bytes>)> {
    let mut expired = Vec::new();
    let next = scan_user_page(store, start, None, KEYS_PER_ROUND, |key, v| {
        if let Some((_, Some(value))) = decode_value(v)
            && value.expired(now_ms)
        {
            expired.push(Bytes::copy_from_slice(key));
        }
    })?;
    Ok((expired, next))
}
