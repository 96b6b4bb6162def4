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

use crate::config::NodeConfig;
use crate::core::{Event, Proposal};
use crate::error::ClientError;
use crate::metrics::{Metrics, command_index};
use crate::ops::{self, Parsed};

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
            if let Err(e) = serve(stream, &shared).await {
                tracing::debug!("client {peer}: {e}");
            }
            shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// One client's state.
#[derive(Default)]
struct Client {
    id: u64,
    version: Version,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
}

enum Reply {
    Ready(Frame),
    Pending(oneshot::Receiver<Frame>),
    /// A command that scans this node's storage (DBSIZE, INFO): run when its turn comes,
    /// off the async workers, at most `limits.max_concurrent_scans` at once.
    Scan(Vec<Bytes>),
}

async fn serve(stream: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let mut client = Client {
        id: shared.next_client_id.fetch_add(1, Ordering::Relaxed) + 1,
        ..Client::default()
    };
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
            if rd.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
            if !budget.hold(rbuf.len()) {
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
        let started = Instant::now();
        let mut replies = Vec::with_capacity(commands.len());
        let mut proposals = Vec::new();
        let mut quit = false;
        for frame in commands {
            let (index, reply) = dispatch(frame, &mut client, shared, &mut proposals, &mut quit);
            // HELLO switches the protocol for the replies after its own, not before.
            replies.push((index, reply, client.version));
            if quit {
                break;
            }
        }
        if !proposals.is_empty() && shared.core.send(Event::Propose(proposals)).await.is_err() {
            return Err(std::io::Error::other("node is stopping"));
        }
        for (index, reply, version) in replies {
            let frame = match reply {
                Reply::Ready(frame) => frame,
                Reply::Pending(rx) => rx.await.unwrap_or_else(|_| ClientError::Stopping.frame()),
                Reply::Scan(args) => scan(args, shared).await,
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

/// Runs a storage-scanning command once a scan slot is free. Each connection waits for its
/// own, in order, so however many a client pipelines, at most one task per connection waits.
async fn scan(args: Vec<Bytes>, shared: &Arc<Shared>) -> Frame {
    let Ok(_slot) = shared.scans.acquire().await else {
        return ClientError::Stopping.frame();
    };
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let mut quit = false;
        local_command(&args, &mut Client::default(), &shared, &mut quit)
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

fn dispatch(
    frame: Frame,
    client: &mut Client,
    shared: &Arc<Shared>,
    proposals: &mut Vec<Proposal>,
    quit: &mut bool,
) -> (usize, Reply) {
    let Some(args) = args_of(frame) else {
        return (
            command_index(b"other"),
            Reply::Ready(Frame::error(
                "ERR Protocol error: expected an array of bulk strings",
            )),
        );
    };
    if args.is_empty() {
        return (
            command_index(b"other"),
            Reply::Ready(Frame::error("ERR empty command")),
        );
    }
    let index = command_index(&args[0]);
    if args[0].eq_ignore_ascii_case(b"DBSIZE") || args[0].eq_ignore_ascii_case(b"INFO") {
        return (index, Reply::Scan(args));
    }
    if args[0].eq_ignore_ascii_case(b"HOLODEBUG") {
        // Diagnostics of the Accord core: what is in flight and what blocks it.
        let (tx, rx) = oneshot::channel();
        let core = shared.core.clone();
        let (reply_tx, reply_rx) = oneshot::channel();
        tokio::spawn(async move {
            if core.send(Event::Describe(tx)).await.is_ok()
                && let Ok(lines) = rx.await
            {
                let text = lines.join("\n");
                let _ = reply_tx.send(Frame::Bulk(Bytes::from(text)));
            }
        });
        return (index, Reply::Pending(reply_rx));
    }
    if shared.config.faults.stale_local_reads
        && args.len() == 2
        && args[0].eq_ignore_ascii_case(b"GET")
    {
        // The planted bug (`faults.stale_local_reads`): no consensus, whatever this replica
        // has applied so far.
        let frame = match crate::executor::read_local(&shared.store, &args[1]) {
            Ok(Some(value)) => Frame::Bulk(value),
            Ok(None) => Frame::Null,
            Err(e) => Frame::error(format!("ERR storage: {e}")),
        };
        return (index, Reply::Ready(frame));
    }
    match ops::parse(&args) {
        Parsed::Txn(txn) if txn.op.len() > shared.config.max_op_bytes() => (
            index,
            Reply::Ready(
                ClientError::TooLarge {
                    len: txn.op.len(),
                    max: shared.config.max_op_bytes(),
                }
                .frame(),
            ),
        ),
        Parsed::Txn(txn)
            if txn
                .reads
                .iter()
                .chain(&txn.writes)
                .any(|k| holo_meta::is_reserved(k)) =>
        {
            (index, Reply::Ready(ClientError::ReservedKey.frame()))
        }
        Parsed::Txn(txn) => {
            let (tx, rx) = oneshot::channel();
            proposals.push(Proposal {
                blind: txn.is_blind(),
                reads: txn.reads,
                writes: txn.writes,
                op: txn.op,
                reply: tx,
            });
            (index, Reply::Pending(rx))
        }
        Parsed::Reply(frame) => (index, Reply::Ready(frame)),
        Parsed::NotKv => (
            index,
            Reply::Ready(local_command(&args, client, shared, quit)),
        ),
    }
}

fn wrong_args(name: &[u8]) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_ascii_lowercase()
    ))
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// Commands answered by this node without consensus.
fn local_command(args: &[Bytes], client: &mut Client, shared: &Shared, quit: &mut bool) -> Frame {
    let name = upper(&args[0]);
    let rest = &args[1..];
    match name.as_str() {
        "PING" => match rest {
            [] => Frame::simple("PONG"),
            [msg] => Frame::Bulk(msg.clone()),
            _ => wrong_args(&args[0]),
        },
        "ECHO" => match rest {
            [msg] => Frame::Bulk(msg.clone()),
            _ => wrong_args(&args[0]),
        },
        "QUIT" => {
            *quit = true;
            Frame::ok()
        }
        "SELECT" => match rest {
            [db] if &db[..] == b"0" => Frame::ok(),
            [db] if ops::parse_i64(db).is_some() => Frame::error("ERR DB index is out of range"),
            [_] => Frame::error("ERR value is not an integer or out of range"),
            _ => wrong_args(&args[0]),
        },
        "HELLO" => hello(rest, client),
        "CLIENT" => client_command(rest, client),
        "COMMAND" => command_command(rest),
        "CONFIG" => config_command(rest, shared),
        "INFO" => Frame::Bulk(Bytes::from(info(rest, shared))),
        "DBSIZE" => match crate::executor::count_keys(&shared.store) {
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => Frame::error(format!("ERR storage: {e}")),
        },
        "HOLOMETRICS" => Frame::Bulk(Bytes::from(
            shared.metrics.render(Some(&shared.wal.stats())),
        )),
        _ => {
            let mut message = format!(
                "ERR unknown command '{}', with args beginning with: ",
                String::from_utf8_lossy(&args[0])
            );
            for a in rest.iter().take(8) {
                message.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
            }
            Frame::error(message)
        }
    }
}

fn hello(rest: &[Bytes], client: &mut Client) -> Frame {
    let mut i = 0;
    if let Some(v) = rest.first() {
        match ops::parse_i64(v) {
            Some(2) => client.version = Version::Resp2,
            Some(3) => client.version = Version::Resp3,
            Some(_) => return Frame::error("NOPROTO unsupported protocol version"),
            None => {
                return Frame::error("ERR Protocol version is not an integer or out of range");
            }
        }
        i = 1;
    }
    while i < rest.len() {
        match upper(&rest[i]).as_str() {
            "AUTH" if i + 2 < rest.len() => i += 3,
            "SETNAME" if i + 1 < rest.len() => {
                client.name = Some(rest[i + 1].clone());
                i += 2;
            }
            _ => return Frame::error("ERR syntax error in HELLO option"),
        }
    }
    let s = |t: &'static str| Frame::Bulk(Bytes::from_static(t.as_bytes()));
    Frame::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_COMPAT_VERSION)),
        (
            s("proto"),
            Frame::Integer(if client.version == Version::Resp3 {
                3
            } else {
                2
            }),
        ),
        (s("id"), Frame::Integer(client.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Frame::Array(vec![])),
    ])
}

fn client_command(rest: &[Bytes], client: &mut Client) -> Frame {
    let Some(sub) = rest.first() else {
        return wrong_args(b"client");
    };
    match (upper(sub).as_str(), &rest[1..]) {
        ("SETNAME", [name]) => {
            if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            client.name = (!name.is_empty()).then(|| name.clone());
            Frame::ok()
        }
        ("GETNAME", []) => client.name.clone().map_or(Frame::Null, Frame::Bulk),
        ("ID", []) => Frame::Integer(client.id as i64),
        ("SETINFO", [attr, value]) => match upper(attr).as_str() {
            "LIB-NAME" => {
                client.lib_name = Some(value.clone());
                Frame::ok()
            }
            "LIB-VER" => {
                client.lib_ver = Some(value.clone());
                Frame::ok()
            }
            _ => Frame::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(attr)
            )),
        },
        ("INFO", []) => {
            let lossy = |b: &Option<Bytes>| {
                b.as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            };
            Frame::Bulk(Bytes::from(format!(
                "id={} name={} db=0 resp={} lib-name={} lib-ver={}\n",
                client.id,
                lossy(&client.name),
                if client.version == Version::Resp3 {
                    3
                } else {
                    2
                },
                lossy(&client.lib_name),
                lossy(&client.lib_ver),
            )))
        }
        (s, _) => Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            s.to_ascii_lowercase()
        )),
    }
}

/// (name, arity, flags, first key, last key, step) as Redis's COMMAND reports them.
const COMMAND_TABLE: &[CommandEntry] = &[
    ("get", 2, &["readonly", "fast"], 1, 1, 1),
    ("set", -3, &["write", "denyoom"], 1, 1, 1),
    ("setnx", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("getset", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("getdel", 2, &["write", "fast"], 1, 1, 1),
    ("del", -2, &["write"], 1, -1, 1),
    ("unlink", -2, &["write", "fast"], 1, -1, 1),
    ("exists", -2, &["readonly", "fast"], 1, -1, 1),
    ("mget", -2, &["readonly", "fast"], 1, -1, 1),
    ("mset", -3, &["write", "denyoom"], 1, -1, 2),
    ("msetnx", -3, &["write", "denyoom"], 1, -1, 2),
    ("incr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("incrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("append", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("strlen", 2, &["readonly", "fast"], 1, 1, 1),
    ("getrange", 4, &["readonly"], 1, 1, 1),
    ("substr", 4, &["readonly"], 1, 1, 1),
    ("setrange", 4, &["write", "denyoom"], 1, 1, 1),
    ("ping", -1, &["fast"], 0, 0, 0),
    ("echo", 2, &["fast"], 0, 0, 0),
    ("quit", -1, &["fast"], 0, 0, 0),
    ("hello", -1, &["fast"], 0, 0, 0),
    ("select", 2, &["fast"], 0, 0, 0),
    ("client", -2, &[], 0, 0, 0),
    ("command", -1, &[], 0, 0, 0),
    ("config", -2, &[], 0, 0, 0),
    ("info", -1, &[], 0, 0, 0),
    ("dbsize", 1, &["readonly", "fast"], 0, 0, 0),
    ("holometrics", 1, &[], 0, 0, 0),
];

type CommandEntry = (&'static str, i64, &'static [&'static str], i64, i64, i64);

fn command_info(entry: &CommandEntry) -> Frame {
    let (name, arity, flags, first, last, step) = *entry;
    Frame::Array(vec![
        Frame::Bulk(Bytes::from_static(name.as_bytes())),
        Frame::Integer(arity),
        Frame::Set(
            flags
                .iter()
                .map(|f| Frame::Simple(Bytes::from_static(f.as_bytes())))
                .collect(),
        ),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Array(vec![]),
    ])
}

fn command_command(rest: &[Bytes]) -> Frame {
    let Some(sub) = rest.first() else {
        return Frame::Array(COMMAND_TABLE.iter().map(command_info).collect());
    };
    match upper(sub).as_str() {
        "COUNT" => Frame::Integer(COMMAND_TABLE.len() as i64),
        "INFO" => Frame::Array(
            rest[1..]
                .iter()
                .map(|name| {
                    COMMAND_TABLE
                        .iter()
                        .find(|e| e.0.as_bytes().eq_ignore_ascii_case(name))
                        .map_or(Frame::Null, command_info)
                })
                .collect(),
        ),
        // Documentation is optional for clients (redis-cli asks for hints); none is served.
        "DOCS" => Frame::Map(vec![]),
        "LIST" => Frame::Array(
            COMMAND_TABLE
                .iter()
                .map(|e| Frame::Bulk(Bytes::from_static(e.0.as_bytes())))
                .collect(),
        ),
        other => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            other.to_ascii_lowercase()
        )),
    }
}

/// Glob match with `*` and `?` (case-insensitive), enough for CONFIG GET patterns. Iterative
/// with one backtrack point, so time is at most pattern length times text length; patterns
/// longer than 256 bytes match nothing.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    if pattern.len() > 256 {
        return false;
    }
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn config_command(rest: &[Bytes], shared: &Shared) -> Frame {
    let Some(sub) = rest.first() else {
        return wrong_args(b"config");
    };
    match upper(sub).as_str() {
        "GET" if rest.len() >= 2 => {
            let limits = &shared.config.limits;
            let values: Vec<(&str, String)> = vec![
                ("save", String::new()),
                ("appendonly", "no".into()),
                ("appendfsync", "always".into()),
                ("databases", "1".into()),
                ("maxmemory", "0".into()),
                ("maxmemory-policy", "noeviction".into()),
                ("maxclients", limits.max_connections.to_string()),
                ("timeout", "0".into()),
                ("proto-max-bulk-len", limits.max_bulk_bytes.to_string()),
                ("port", shared.resp_port.to_string()),
                ("cluster-enabled", "no".into()),
            ];
            let mut pairs = Vec::new();
            for (key, value) in values {
                if rest[1..].iter().any(|p| glob(p, key.as_bytes())) {
                    pairs.push((
                        Frame::Bulk(Bytes::from_static(key.as_bytes())),
                        Frame::Bulk(Bytes::from(value)),
                    ));
                }
            }
            Frame::Map(pairs)
        }
        "RESETSTAT" => Frame::ok(),
        "SET" => {
            Frame::error("ERR CONFIG SET is not supported: settings come from the node's TOML file")
        }
        _ => Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        )),
    }
}

fn info(rest: &[Bytes], shared: &Shared) -> String {
    let wanted = |section: &str| {
        rest.is_empty()
            || rest.iter().any(|r| {
                let r = upper(r);
                r == "ALL" || r == "EVERYTHING" || r == "DEFAULT" || r == section.to_uppercase()
            })
    };
    let m = &shared.metrics;
    let mut out = String::new();
    if wanted("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nholostore_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nholo_node_id:{}\r\nholo_allocator:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shared.resp_port,
            shared.started.elapsed().as_secs(),
            shared.config.node_id,
            crate::allocator_name(),
        ));
    }
    if wanted("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            m.connections.load(Ordering::Relaxed),
            shared.config.limits.max_connections
        ));
    }
    if wanted("persistence") {
        let wal = shared.wal.stats();
        out.push_str(&format!(
            "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\nholo_storage_backend:{}\r\nholo_wal_persist:{:?}\r\nholo_wal_group_writes:{}\r\nholo_wal_records:{}\r\nholo_wal_segments:{}\r\n\r\n",
            shared.store.backend_name(),
            shared.config.wal.persist,
            wal.group_writes,
            wal.records_written,
            wal.segments
        ));
    }
    if wanted("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nholo_accord_fast_path:{}\r\nholo_accord_slow_path:{}\r\nholo_accord_recoveries:{}\r\n\r\n",
            m.connections_total.load(Ordering::Relaxed),
            m.total_commands(),
            m.connections_rejected.load(Ordering::Relaxed),
            m.fast_path.load(Ordering::Relaxed),
            m.slow_path.load(Ordering::Relaxed),
            m.recoveries.load(Ordering::Relaxed),
        ));
    }
    if wanted("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if wanted("keyspace") {
        out.push_str("# Keyspace\r\n");
        if let Ok(n) = crate::executor::count_keys(&shared.store)
            && n > 0
        {
            out.push_str(&format!("db0:keys={n},expires=0,avg_ttl=0\r\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn config_patterns() {
        assert!(glob(b"*", b"save"));
        assert!(glob(b"SAVE", b"save"));
        assert!(glob(b"max*", b"maxmemory"));
        assert!(glob(b"s?ve", b"save"));
        assert!(!glob(b"max", b"maxmemory"));
        assert!(glob(b"*a*b", b"xxaxxb"));
        assert!(!glob(b"*a*b", b"xxaxxbc"));
        let stars = [b'*'; 40];
        let mut hostile = stars.to_vec();
        hostile.push(b'z');
        assert!(!glob(&hostile, b"maxmemory-policy-and-more"));
        assert!(
            !glob(&vec![b'*'; 100_000], b"save"),
            "long patterns match nothing"
        );
    }
}
