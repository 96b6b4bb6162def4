//! Commands over the whole keyspace: KEYS, SCAN, RANDOMKEY, FLUSHALL and FLUSHDB, and
//! HOLODEBUG.
//!
//! FLUSHALL is a meta-plane operation, atomic over every range (see [`flush`]). KEYS, SCAN,
//! RANDOMKEY and DBSIZE read this node's applied copy of the data after a read barrier (see
//! [`barrier`]): a sync point proposed once every clock is past the command's arrival, and
//! applied here, so the copy holds every write acknowledged before the command came. While
//! GC waits for a member no sync point is proposed, and they answer `-TRYAGAIN`, or read
//! the copy as it is with `keyspace.stale_reads_while_degraded` (docs/redis-commands.md,
//! "Keyspace commands"). A SCAN cursor is a number this node hands
//! out for the key the scan goes on from, so a scan survives splits and merges of ranges
//! between calls; it is good on the node that issued it, for the latest `CURSORS_MAX`
//! cursors. Only a scan's first call (cursor 0) waits for a barrier.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use holo_resp::Frame;
use tokio::sync::oneshot;

use crate::cmd::node::{Filter, scan_keys};
use crate::cmd::{Spec, not_integer, parse_i64, syntax_error, wall_ms};
use crate::controller::{self, RequestError};
use crate::core::Event;
use crate::error::ClientError;
use crate::server::Shared;
use holo_accord::TxnId;
use holo_meta::MetaCommand;

/// SCAN cursors a node remembers; older ones are answered with an error.
const CURSORS_MAX: usize = 65_536;
/// How long FLUSHALL waits for an operation in flight, and then for its own history cut.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// The SCAN cursors this node handed out.
#[derive(Default)]
pub struct Cursors {
    inner: Mutex<CursorTable>,
}

#[derive(Default)]
struct CursorTable {
    next: u64,
    by_id: BTreeMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl Cursors {
    fn issue(&self, node: u16, from: Bytes) -> u64 {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.next += 1;
        // The node id in the high bits keeps cursors of different nodes apart.
        let id = (u64::from(node) << 48) | (t.next & ((1 << 48) - 1));
        t.by_id.insert(id, from);
        t.order.push_back(id);
        while t.order.len() > CURSORS_MAX {
            if let Some(old) = t.order.pop_front() {
                t.by_id.remove(&old);
            }
        }
        id
    }

    fn resolve(&self, id: u64) -> Option<Bytes> {
        let t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.by_id.get(&id).cloned()
    }
}

/// Runs a keyspace command.
pub async fn run(spec: &'static Spec, args: Vec<Bytes>, shared: &Arc<Shared>) -> Frame {
    match spec.name {
        "holodebug" => holodebug(shared).await,
        "flushall" | "flushdb" => flush(&args[1..], shared).await,
        _ => {
            let first_call = spec.name != "scan" || args.get(1).is_some_and(|c| &c[..] == b"0");
            if first_call && !barrier(shared).await {
                if !shared.config.keyspace.stale_reads_while_degraded {
                    return Frame::error(format!(
                        "TRYAGAIN {} needs a read barrier (a sync point) to see every acknowledged write, and none could be had within {BARRIER_WAIT:?}: GC waits for a member that is down or behind (`holoctl state` shows which). Retry, read single keys (always linearizable), or set keyspace.stale_reads_while_degraded = true to read this node's copy meanwhile",
                        spec.name.to_ascii_uppercase()
                    ));
                }
                shared
                    .metrics
                    .keyspace_unbarriered
                    .fetch_add(1, Ordering::Relaxed);
            }
            let Ok(_slot) = shared.scans.acquire().await else {
                return ClientError::Stopping.frame();
            };
            let shared = Arc::clone(shared);
            tokio::task::spawn_blocking(move || match spec.name {
                "keys" => keys(&args[1], &shared),
                "scan" => scan(&args[1..], &shared),
                "dbsize" => crate::cmd::node::dbsize(&shared),
                _ => randomkey(&shared),
            })
            .await
            .unwrap_or_else(|_| Frame::error("ERR the storage scan failed"))
        }
    }
}

/// How long a read barrier may take before the command reads the copy as it is.
const BARRIER_WAIT: Duration = Duration::from_secs(2);

/// Waits until this node's copy holds every write acknowledged before the call: true if it
/// does, false if no barrier could be had in time (GC waits for a member, see
/// [`holo_accord::Node::propose_barrier`]).
///
/// First this node's clock is let pass every member's at the call
/// (`accord.max_clock_offset_ms`), so the sync point it proposes has an id above every
/// transaction acknowledged before; once the sync point is applied here, so is every
/// transaction below it that ever executes.
async fn barrier(shared: &Shared) -> bool {
    let deadline = tokio::time::Instant::now() + BARRIER_WAIT;
    tokio::time::sleep(Duration::from_millis(
        shared.config.accord.max_clock_offset_ms,
    ))
    .await;
    let arrived = std::time::Instant::now();
    let id = loop {
        // Any barrier proposed since this one arrived will do: commands arriving together
        // share one sync point.
        if let Some(id) = shared.barriers.since(arrived) {
            break id;
        }
        let (tx, rx) = oneshot::channel();
        if shared.core.send(Event::Barrier(tx)).await.is_err() {
            return false;
        }
        match rx.await {
            Ok(Some(id)) => {
                shared.barriers.proposed(id);
                break id;
            }
            Ok(None) if tokio::time::Instant::now() < deadline => {
                // Another sync point is on its way; it finishes within milliseconds while
                // every member keeps up.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            _ => return false,
        }
    };
    let mut applied = shared.sync_applied.clone();
    tokio::time::timeout_at(deadline, applied.wait_for(|at| *at >= id))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The latest read barrier this node proposed, and when.
#[derive(Default)]
pub struct Barriers {
    latest: Mutex<Option<(std::time::Instant, TxnId)>>,
}

impl Barriers {
    fn proposed(&self, id: TxnId) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if latest.is_none_or(|(_, l)| l < id) {
            *latest = Some((std::time::Instant::now(), id));
        }
    }

    /// A barrier proposed at or after `arrived`.
    fn since(&self, arrived: std::time::Instant) -> Option<TxnId> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.filter(|(at, _)| *at >= arrived).map(|(_, id)| id)
    }
}

fn storage_error(e: &anyhow::Error) -> Frame {
    Frame::error(format!("ERR storage: {e}"))
}

fn keys(pattern: &Bytes, shared: &Shared) -> Frame {
    let filter = Filter {
        pattern: pattern.clone(),
        type_name: None,
    };
    let now = wall_ms();
    let mut out = Vec::new();
    let mut from = Bytes::new();
    loop {
        match scan_keys(shared, &from, &filter, 4096, now) {
            Ok((found, next)) => {
                out.extend(found.into_iter().map(Frame::Bulk));
                match next {
                    Some(n) => from = n,
                    None => return Frame::Array(out),
                }
            }
            Err(e) => return storage_error(&e),
        }
    }
}

fn scan(rest: &[Bytes], shared: &Shared) -> Frame {
    let Some(cursor) = std::str::from_utf8(&rest[0])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return Frame::error("ERR invalid cursor");
    };
    let mut filter = Filter {
        pattern: Bytes::from_static(b"*"),
        type_name: None,
    };
    let mut count = 10usize;
    let mut i = 1;
    while i < rest.len() {
        let Some(value) = rest.get(i + 1) else {
            return syntax_error();
        };
        match rest[i].to_ascii_uppercase().as_slice() {
            b"MATCH" => filter.pattern = value.clone(),
            b"COUNT" => match parse_i64(value) {
                Some(c) if c >= 1 => count = c as usize,
                Some(_) => return syntax_error(),
                None => return not_integer(),
            },
            b"TYPE" => filter.type_name = Some(String::from_utf8_lossy(value).into_owned()),
            _ => return syntax_error(),
        }
        i += 2;
    }
    let from = if cursor == 0 {
        Bytes::new()
    } else {
        match shared.cursors.resolve(cursor) {
            Some(from) => from,
            None => {
                return Frame::error(
                    "ERR unknown SCAN cursor: it was issued by another node or has been forgotten; start again from 0",
                );
            }
        }
    };
    match scan_keys(shared, &from, &filter, count, wall_ms()) {
        Ok((found, next)) => {
            let cursor = next.map_or(0, |n| shared.cursors.issue(shared.config.node_id, n));
            Frame::Array(vec![
                Frame::Bulk(Bytes::from(cursor.to_string())),
                Frame::Array(found.into_iter().map(Frame::Bulk).collect()),
            ])
        }
        Err(e) => storage_error(&e),
    }
}

fn randomkey(shared: &Shared) -> Frame {
    let filter = Filter {
        pattern: Bytes::from_static(b"*"),
        type_name: None,
    };
    let now = wall_ms();
    let random =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), now);
    let start = Bytes::copy_from_slice(&random.to_be_bytes()[..4]);
    for from in [start, Bytes::new()] {
        match scan_keys(shared, &from, &filter, 64, now) {
            Ok((found, _)) if !found.is_empty() => return Frame::Bulk(found[0].clone()),
            Ok(_) => {}
            Err(e) => return storage_error(&e),
        }
    }
    Frame::Null
}

/// FLUSHALL [ASYNC | SYNC] (and FLUSHDB): a meta-plane operation ([`MetaCommand::Flush`]).
/// Committing it starts an epoch in which no key written before exists, at one point of the
/// history over every range; its history cut then ends every transaction of the epoch
/// before it, as a split's does, and only then is the reply sent: every command sent after
/// the reply, through any node, sees the empty keyspace. A split or merge in flight is
/// waited out first. SYNC and ASYNC are the same: the old values are deleted from storage in
/// the background either way, and are invisible at once.
async fn flush(rest: &[Bytes], shared: &Arc<Shared>) -> Frame {
    match rest.first().map(|a| a.to_ascii_uppercase()).as_deref() {
        None | Some(b"SYNC" | b"ASYNC") if rest.len() <= 1 => {}
        _ => return syntax_error(),
    }
    let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
    let epoch = loop {
        match controller::propose(&shared.core, &MetaCommand::Flush).await {
            Ok(epoch) => break epoch,
            // Another operation is in flight: nothing happened; wait for it to finish.
            Err(RequestError::Rejected(why)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("FLUSHALL waits: {why}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(RequestError::Rejected(why)) => {
                return Frame::error(format!(
                    "TRYAGAIN FLUSHALL was not committed within {FLUSH_WAIT:?}: {why}"
                ));
            }
            Err(e) => return Frame::error(format!("UNKNOWN FLUSHALL: {e}")),
        }
    };
    let mut meta = shared.meta.clone();
    loop {
        let finished = !meta
            .borrow_and_update()
            .operations()
            .iter()
            .any(|op| op.epoch == epoch);
        if finished {
            return Frame::ok();
        }
        tokio::select! {
            changed = meta.changed() => {
                if changed.is_err() {
                    return ClientError::Stopping.frame();
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Frame::error(format!(
                    "UNKNOWN FLUSHALL is committed (epoch {epoch}: no key written before it exists for transactions of that epoch on), but its history cut did not finish within {FLUSH_WAIT:?} (a node is down or slow: `holoctl meta-status` shows it); a node that has not applied it yet may still serve keys from before it"
                ));
            }
        }
    }
}

/// Diagnostics of the Accord core: what is in flight and what blocks it.
async fn holodebug(shared: &Shared) -> Frame {
    let (tx, rx) = oneshot::channel();
    if shared.core.send(Event::Describe(tx)).await.is_err() {
        return ClientError::Stopping.frame();
    }
    match rx.await {
        Ok(lines) => Frame::Bulk(Bytes::from(lines.join("\n"))),
        Err(_) => ClientError::Stopping.frame(),
    }
}
