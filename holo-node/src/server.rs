//! The Redis protocol surface: one task per client connection, pipelined.
//!
//! A connection reads what the client sent, decodes every complete command in it (up to
//! `limits.max_pipeline`), hands all key/value commands to the core in one event, and writes
//! the replies back in order with one write. Commands that need no consensus (PING, HELLO,
//! CONFIG GET, INFO ...) are answered in place. Malformed input gets `-ERR Protocol error:
//! ...` after the replies to the commands before it, and the connection is closed (as Redis
//! does); the node keeps serving everyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use holo_resp::{Frame, Limits, Version, blank_prefix_len, decode, encode};
use holo_storage::Store;
use holo_wal::Wal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clients::Clients;
use crate::cmd::{self, Kind, Parsed, Spec, TABLE};
use crate::config::NodeConfig;
use crate::core::{Event, Proposal};
use crate::error::ClientError;
use crate::metrics::Metrics;

/// The version HoloStore reports where clients expect a Redis version (`HELLO`, `INFO`):
/// the Redis command set it follows.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

/// What every connection shares.
pub struct Shared {
    pub config: NodeConfig,
    pub limits: Limits,
    pub core: mpsc::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<Store>,
    pub wal: Arc<Wal>,
    pub started: Instant,
    pub resp_port: u16,
    pub next_client_id: AtomicU64,
    /// Storage scans allowed to run at once (`limits.max_concurrent_scans`).
    pub scans: Semaphore,
    pub clients: Clients,
    /// SCAN cursors handed out: where each goes on.
    pub cursors: crate::keys::Cursors,
    /// The meta state as applied on this node.
    pub meta: tokio::sync::watch::Receiver<Arc<holo_meta::MetaState>>,
    /// The highest sync point over every range applied to this node's storage.
    pub sync_applied: tokio::sync::watch::Receiver<holo_accord::TxnId>,
    /// Read barriers proposed, shared by the keyspace commands waiting for one.
    pub barriers: crate::keys::Barriers,
}

impl Shared {
    /// Values written in an epoch below this one were flushed (FLUSHALL): this node's
    /// scans do not show them.
    pub fn flush_floor(&self) -> u64 {
        let meta = self.meta.borrow();
        meta.flush_floor(meta.epoch())
    }
}

/// Bytes of an incomplete command a connection holds without drawing on the node-wide
/// input budget (`limits.max_input_buffer_bytes`, in use: `Metrics::input_buffered`).
const INPUT_BYTES_FREE: usize = 64 * 1024;

/// Replies are written out once this many bytes are encoded, so one pipeline's replies are
/// not all copied into one buffer first.
const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;

/// One connection's share of the node-wide input budget; returned when dropped.
struct InputBudget<'a> {
    total: &'a AtomicUsize,
    max: usize,
    held: usize,
}

impl InputBudget<'_> {
    /// Gives back everything held beyond the free allowance.
    fn release(&mut self) {
        self.hold(0);
    }

    /// Holds what a buffer of `len` bytes needs beyond the free allowance; false (holding
    /// nothing more) when that would take every connection together past the limit.
    fn hold(&mut self, len: usize) -> bool {
        let want = len.saturating_sub(INPUT_BYTES_FREE);
        if want > self.held {
            let extra = want - self.held;
            if self.total.fetch_add(extra, Ordering::AcqRel) + extra > self.max {
                self.total.fetch_sub(extra, Ordering::AcqRel);
                return false;
            }
        } else {
            self.total.fetch_sub(self.held - want, Ordering::AcqRel);
        }
        self.held = want;
        true
    }
}

impl Drop for InputBudget<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// Accepts clients until the task is dropped.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.config.limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and similar: give the system a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            shared
                .metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            connections.spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .connections_total
                .fetch_add(1, Ordering::Relaxed);
            let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
            let local = stream.local_addr().unwrap_or(peer);
            let registration = shared.clients.register(id, peer, local);
            if let Err(e) = serve(stream, id, &registration, &shared).await {
                tracing::debug!("client {peer}: {e}");
            }
            shared.clients.remove(id);
            shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// One client's state.
#[derive(Default)]
pub struct Client {
    pub id: u64,
    pub version: Version,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// The user signed in as; `None` until AUTH when the node requires a password.
    pub user: Option<String>,
    /// Commands queued since MULTI.
    pub multi: Option<Queue>,
    /// WATCHed keys and their tokens (see `cmd::multi`).
    pub watched: Vec<(Bytes, Bytes)>,
}

/// What MULTI queued.
#[derive(Default)]
pub struct Queue {
    parts: Vec<Part>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    aborted: bool,
}

/// One queued command.
enum Part {
    /// Runs in EXEC's transaction.
    Txn(cmd::KvTxn),
    /// Its reply is known (an argument error, shown in EXEC's reply as Redis does).
    Ready(Frame),
    /// Answered by the node when EXEC runs (PING, ECHO ...).
    Local(usize, Vec<Bytes>),
}

/// What a command run by this node sees.
pub struct Session<'a> {
    pub client: &'a mut Client,
    pub shared: &'a Shared,
    pub quit: &'a mut bool,
}

enum Reply {
    Ready(Frame),
    Pending(oneshot::Receiver<Frame>),
    /// A command that scans this node's storage (DBSIZE, INFO): run when its turn comes,
    /// off the async workers, at most `limits.max_concurrent_scans` at once.
    Scan(Vec<Bytes>),
    /// KEYS, SCAN, RANDOMKEY, FLUSHALL, HOLODEBUG: run when their turn comes.
    Node(Vec<Bytes>),
    /// WATCH: runs before any later command of the connection is proposed.
    Watch(Vec<Bytes>),
    /// EXEC: the transaction's replies, merged with the parts answered at once.
    Exec(oneshot::Receiver<Frame>, Vec<Option<Frame>>),
}

async fn serve(
    stream: TcpStream,
    id: u64,
    registration: &crate::clients::Registration,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let mut client = Client {
        id,
        user: shared.config.auth.default_user(),
        ..Client::default()
    };
    shared.clients.update(&client);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let max_pipeline = shared.config.limits.max_pipeline;
    let mut budget = InputBudget {
        total: &shared.metrics.input_buffered,
        max: shared.config.limits.max_input_buffer_bytes,
        held: 0,
    };
    loop {
        let mut commands = Vec::new();
        let mut protocol_error = None;
        loop {
            rbuf.advance(blank_prefix_len(&rbuf));
            match decode(&rbuf, &shared.limits) {
                Ok(Some((frame, used))) => {
                    rbuf.advance(used);
                    commands.push(frame);
                    if commands.len() >= max_pipeline {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        // What is left is at most the start of one command.
        budget.hold(rbuf.len());
        if commands.is_empty() && protocol_error.is_none() {
            let read = tokio::select! {
                read = rd.read_buf(&mut rbuf) => read?,
                () = registration.kill.notified() => return Ok(()),
            };
            if read == 0 {
                return Ok(());
            }
            if !budget.hold(rbuf.len()) {
                // The incomplete command is dropped: its share goes back before the client
                // can see the connection close, so others that go on then find it free.
                budget.release();
                shared.metrics.input_refused.fetch_add(1, Ordering::Relaxed);
                encode(
                    &Frame::error(format!(
                        "ERR the node's input buffers are full (limits.max_input_buffer_bytes = {}); this connection's incomplete command is refused",
                        shared.config.limits.max_input_buffer_bytes
                    )),
                    client.version,
                    &mut wbuf,
                );
                wr.write_all(&wbuf).await?;
                let _ = wr.shutdown().await;
                return Ok(());
            }
            continue;
        }
        registration.active_ms.store(
            registration.connected.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
        let started = Instant::now();
        let mut replies = Vec::with_capacity(commands.len());
        let mut proposals = Vec::new();
        let mut quit = false;
        for frame in commands {
            let (index, reply) = dispatch(frame, &mut client, shared, &mut proposals, &mut quit);
            let reply = match reply {
                Reply::Watch(keys) => {
                    // The commands before it are done before the tokens are read, and later
                    // ones proposed only after: WATCH sits between them in the history, as
                    // in Redis (a write before it would otherwise abort the EXEC after it).
                    propose(shared, &mut proposals).await?;
                    for (_, earlier, _) in &mut replies {
                        let stopping = || ClientError::Stopping.frame();
                        let frame = match std::mem::replace(earlier, Reply::Ready(Frame::Null)) {
                            Reply::Pending(rx) => rx.await.unwrap_or_else(|_| stopping()),
                            Reply::Exec(rx, parts) => {
                                exec_reply(rx.await.unwrap_or_else(|_| stopping()), parts)
                            }
                            other => {
                                *earlier = other;
                                continue;
                            }
                        };
                        *earlier = Reply::Ready(frame);
                    }
                    Reply::Ready(watch(keys, &mut client, shared).await)
                }
                other => other,
            };
            // HELLO switches the protocol for the replies after its own, not before.
            replies.push((index, reply, client.version));
            if quit {
                break;
            }
        }
        propose(shared, &mut proposals).await?;
        for (index, reply, version) in replies {
            let waiting = async {
                match reply {
                    Reply::Ready(frame) => frame,
                    Reply::Pending(rx) => {
                        rx.await.unwrap_or_else(|_| ClientError::Stopping.frame())
                    }
                    Reply::Scan(args) => scan(index, args, shared).await,
                    Reply::Node(args) => crate::keys::run(&TABLE[index], args, shared).await,
                    Reply::Exec(rx, parts) => exec_reply(
                        rx.await.unwrap_or_else(|_| ClientError::Stopping.frame()),
                        parts,
                    ),
                    Reply::Watch(_) => unreachable!("WATCH is answered when dispatched"),
                }
            };
            // CLIENT KILL also closes a connection waiting for a reply.
            let frame = tokio::select! {
                frame = waiting => frame,
                () = registration.kill.notified() => return Ok(()),
            };
            shared
                .metrics
                .observe_command(index, frame.is_error(), started.elapsed());
            encode(&frame, version, &mut wbuf);
            if wbuf.len() >= OUTPUT_FLUSH_BYTES {
                wr.write_all(&wbuf).await?;
                wbuf.clear();
            }
        }
        if let Some(e) = &protocol_error {
            shared
                .metrics
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            encode(
                &Frame::error(format!("ERR Protocol error: {e}")),
                client.version,
                &mut wbuf,
            );
        }
        wr.write_all(&wbuf).await?;
        wbuf.clear();
        if quit || protocol_error.is_some() {
            let _ = wr.shutdown().await;
            return Ok(());
        }
    }
}

/// Hands the proposals collected so far to the core.
async fn propose(shared: &Shared, proposals: &mut Vec<Proposal>) -> std::io::Result<()> {
    if proposals.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(proposals);
    shared
        .core
        .send(Event::Propose(batch))
        .await
        .map_err(|_| std::io::Error::other("node is stopping"))
}

/// Proposes `txn` on its own and waits for its reply.
pub async fn run_txn(shared: &Shared, txn: cmd::KvTxn) -> Frame {
    let (proposal, rx) = txn.into_proposal();
    if shared
        .core
        .send(Event::Propose(vec![proposal]))
        .await
        .is_err()
    {
        return ClientError::Stopping.frame();
    }
    rx.await.unwrap_or_else(|_| ClientError::Stopping.frame())
}

/// Reads the WATCH tokens of `keys` and remembers them.
async fn watch(keys: Vec<Bytes>, client: &mut Client, shared: &Shared) -> Frame {
    if let Some(e) = refused_keys(keys.iter()) {
        return e;
    }
    let txn = cmd::KvTxn::reading(keys.clone(), cmd::multi::watch_op(&keys));
    match run_txn(shared, txn).await {
        Frame::Array(tokens) if tokens.len() == keys.len() => {
            for (key, token) in keys.into_iter().zip(tokens) {
                if let Frame::Bulk(token) = token
                    && !client.watched.iter().any(|(k, _)| *k == key)
                {
                    client.watched.push((key, token));
                }
            }
            Frame::ok()
        }
        other if other.is_error() => other,
        _ => Frame::error("ERR internal: unexpected WATCH reply"),
    }
}

/// EXEC's reply: the transaction's replies in the places of the queued commands.
fn exec_reply(result: Frame, parts: Vec<Option<Frame>>) -> Frame {
    let Frame::Array(results) = result else {
        // Null: a watched key changed. An error: the transaction's.
        return result;
    };
    let mut results = results.into_iter();
    Frame::Array(
        parts
            .into_iter()
            .map(|p| {
                p.unwrap_or_else(|| {
                    results
                        .next()
                        .unwrap_or_else(|| Frame::error("ERR internal: missing reply"))
                })
            })
            .collect(),
    )
}

/// Runs a storage-scanning command once a scan slot is free. Each connection waits for its
/// own, in order, so however many a client pipelines, at most one task per connection waits.
async fn scan(index: usize, args: Vec<Bytes>, shared: &Arc<Shared>) -> Frame {
    let Ok(_slot) = shared.scans.acquire().await else {
        return ClientError::Stopping.frame();
    };
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let spec = &TABLE[index];
        match spec.kind {
            Kind::Scan(run) => run(spec, &shared, &args[1..]),
            _ => Frame::error("ERR internal: not a scan"),
        }
    })
    .await
    .unwrap_or_else(|_| Frame::error("ERR the storage scan failed"))
}

fn args_of(frame: Frame) -> Option<Vec<Bytes>> {
    let Frame::Array(items) = frame else {
        return None;
    };
    items
        .into_iter()
        .map(|f| match f {
            Frame::Bulk(b) | Frame::Simple(b) => Some(b),
            Frame::Integer(i) => Some(Bytes::from(i.to_string())),
            _ => None,
        })
        .collect()
}

/// The error for keys clients may not use, if any is among `keys`.
fn refused_keys<'a>(mut keys: impl Iterator<Item = &'a Bytes>) -> Option<Frame> {
    keys.any(|k| holo_meta::is_reserved(k))
        .then(|| ClientError::ReservedKey.frame())
}

/// Checks a parsed transaction against the node's limits.
fn admit(txn: &cmd::KvTxn, shared: &Shared) -> Option<Frame> {
    if txn.op.len() > shared.config.max_op_bytes() {
        return Some(
            ClientError::TooLarge {
                len: txn.op.len(),
                max: shared.config.max_op_bytes(),
            }
            .frame(),
        );
    }
    refused_keys(txn.reads.iter().chain(&txn.writes))
}

fn unknown_command(args: &[Bytes]) -> Frame {
    let mut message = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&args[0])
    );
    for a in args[1..].iter().take(8) {
        message.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    Frame::error(message)
}

fn dispatch(
    frame: Frame,
    client: &mut Client,
    shared: &Arc<Shared>,
    proposals: &mut Vec<Proposal>,
    quit: &mut bool,
) -> (usize, Reply) {
    let other = TABLE.len();
    let Some(args) = args_of(frame) else {
        return (
            other,
            Reply::Ready(Frame::error(
                "ERR Protocol error: expected an array of bulk strings",
            )),
        );
    };
    if args.is_empty() {
        return (other, Reply::Ready(Frame::error("ERR empty command")));
    }
    let Some(index) = cmd::lookup(&args[0]) else {
        if let Some(queue) = &mut client.multi {
            queue.aborted = true;
        }
        return (other, Reply::Ready(unknown_command(&args)));
    };
    let spec = &TABLE[index];
    if client.user.is_none() && !spec.no_auth() {
        return (
            index,
            Reply::Ready(Frame::error("NOAUTH Authentication required.")),
        );
    }
    if !spec.arity_ok(args.len()) {
        if let Some(queue) = &mut client.multi {
            queue.aborted = true;
        }
        return (index, Reply::Ready(cmd::wrong_args_frame(spec.name)));
    }
    let immediate = matches!(spec.kind, Kind::Multi) && spec.name != "unwatch"
        || matches!(spec.name, "quit" | "reset");
    if client.multi.is_some() && !immediate {
        return (
            index,
            Reply::Ready(queue(spec, index, args, client, shared)),
        );
    }
    let reply = match spec.kind {
        Kind::Txn(parse) => {
            if shared.config.faults.stale_local_reads && spec.name == "get" {
                // The planted bug (`faults.stale_local_reads`): no consensus, whatever this
                // replica has applied so far.
                return (index, Reply::Ready(stale_get(&args[1], shared)));
            }
            match parse(spec, &args[1..]) {
                Parsed::Txn(txn) => match admit(&txn, shared) {
                    Some(e) => Reply::Ready(e),
                    None => {
                        let (proposal, rx) = txn.into_proposal();
                        proposals.push(proposal);
                        Reply::Pending(rx)
                    }
                },
                Parsed::Reply(frame) => Reply::Ready(frame),
            }
        }
        Kind::Local(run) => {
            let mut session = Session {
                client,
                shared,
                quit,
            };
            Reply::Ready(run(spec, &mut session, &args[1..]))
        }
        Kind::Scan(_) => Reply::Scan(args),
        Kind::Node => Reply::Node(args),
        Kind::Multi => multi(spec, args, client, shared, proposals),
    };
    (index, reply)
}

fn stale_get(key: &[u8], shared: &Shared) -> Frame {
    match crate::executor::read_local(&shared.store, key) {
        Ok(Some(value)) => Frame::Bulk(value),
        Ok(None) => Frame::Null,
        Err(e) => Frame::error(format!("ERR storage: {e}")),
    }
}

/// Queues a command after MULTI.
fn queue(
    spec: &Spec,
    index: usize,
    args: Vec<Bytes>,
    client: &mut Client,
    shared: &Shared,
) -> Frame {
    let queue = client.multi.as_mut().expect("in MULTI");
    let part = match spec.kind {
        Kind::Txn(parse) => match parse(spec, &args[1..]) {
            Parsed::Txn(txn) => match admit(&txn, shared) {
                Some(e) => {
                    queue.aborted = true;
                    return e;
                }
                None => Part::Txn(txn),
            },
            Parsed::Reply(frame) => Part::Ready(frame),
        },
        Kind::Local(_) => Part::Local(index, args),
        // UNWATCH queued: EXEC still checks the watched keys, then forgets them anyway.
        Kind::Multi if spec.name == "unwatch" => Part::Ready(Frame::ok()),
        Kind::Scan(_) | Kind::Node | Kind::Multi => {
            queue.aborted = true;
            return Frame::error(format!(
                "ERR '{}' is not supported inside MULTI by HoloStore",
                spec.name
            ));
        }
    };
    queue.parts.push(part);
    Frame::simple("QUEUED")
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
fn multi(
    spec: &Spec,
    args: Vec<Bytes>,
    client: &mut Client,
    shared: &Arc<Shared>,
    proposals: &mut Vec<Proposal>,
) -> Reply {
    let in_multi = client.multi.is_some();
    let frame = match (spec.name, in_multi) {
        ("multi", true) => Frame::error("ERR MULTI calls can not be nested"),
        ("multi", false) => {
            client.multi = Some(Queue::default());
            Frame::ok()
        }
        ("watch", true) => Frame::error("ERR WATCH inside MULTI is not allowed"),
        ("watch", false) => return Reply::Watch(args[1..].to_vec()),
        ("unwatch", _) => {
            client.watched.clear();
            Frame::ok()
        }
        ("discard", false) => Frame::error("ERR DISCARD without MULTI"),
        ("discard", true) => {
            client.multi = None;
            client.watched.clear();
            Frame::ok()
        }
        ("exec", false) => Frame::error("ERR EXEC without MULTI"),
        _ => return exec(client, shared, proposals),
    };
    Reply::Ready(frame)
}

fn exec(client: &mut Client, shared: &Arc<Shared>, proposals: &mut Vec<Proposal>) -> Reply {
    let queue = client.multi.take().expect("in MULTI");
    let watched = std::mem::take(&mut client.watched);
    if queue.aborted {
        return Reply::Ready(Frame::error(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let mut reads: Vec<Bytes> = watched.iter().map(|(k, _)| k.clone()).collect();
    let mut writes = Vec::new();
    let mut ops = Vec::new();
    let mut parts = Vec::new();
    let mut quit = false;
    for part in queue.parts {
        parts.push(match part {
            Part::Txn(txn) => {
                reads.extend(txn.reads);
                writes.extend(txn.writes);
                ops.push(txn.op);
                None
            }
            Part::Ready(frame) => Some(frame),
            Part::Local(index, args) => {
                let spec = &TABLE[index];
                let Kind::Local(run) = spec.kind else {
                    unreachable!("queued as local")
                };
                let mut session = Session {
                    client,
                    shared,
                    quit: &mut quit,
                };
                Some(run(spec, &mut session, &args[1..]))
            }
        });
    }
    if ops.is_empty() && watched.is_empty() {
        return Reply::Ready(Frame::Array(parts.into_iter().flatten().collect()));
    }
    writes.sort();
    writes.dedup();
    reads.sort();
    reads.dedup();
    reads.retain(|k| writes.binary_search(k).is_err());
    let txn = cmd::KvTxn::new(reads, writes, cmd::multi::exec_op(&watched, &ops));
    if let Some(e) = admit(&txn, shared) {
        return Reply::Ready(e);
    }
    let (proposal, rx) = txn.into_proposal();
    proposals.push(proposal);
    Reply::Exec(rx, parts)
}
