//! The HoloStore server: wires holo-resp, holo-accord, holo-wal, holo-storage and holo-meta
//! together with tokio and tonic.
//!
//! `main.rs` stays thin: it parses the command line, loads the node's TOML file and calls
//! [`run`] with bound listeners and a shutdown future, so tests start real nodes in-process
//! on port 0.
//!
//! # Tasks and threads
//! ```text
//! client conns (server.rs) --Propose--> core task (core.rs) <--Peer-- gRPC Peer service
//!                                          |  owns holo_accord::Node
//!        +---------------------------------+-------------------+-----------------+
//!        v                                 v                   v                 v
//!  peer links (one bounded queue   WAL submit (group    its durable future   executor thread
//!  + stream per peer)              commit thread)       polled by the core   (replies) --> storage
//!                                                                                 writer thread
//! ```
//! One core step handles every queued event, then proposes the client commands that arrived
//! as one Accord transaction (up to 1,024 commands or 1 MiB; the op is a batch the executor
//! runs in order, one reply per command), issues one WAL submit for every record the step
//! produced, one envelope per peer, and one batch to the executor: batching at every layer
//! comes from the queues filling while the previous step runs. While `accord.propose_window`
//! transactions of the node are undecided, commands wait for the next step that has room, so
//! under load each transaction carries many (docs/performance.md). The executor holds applied
//! writes up to 250 ms and a writer thread commits them to storage together
//! ([`executor`]'s docs).
//!
//! # Durability and restart
//! A reply that depends on a persisted record leaves only after the WAL reports it durable
//! (the core holds it); a decided transaction is applied only after every record before it
//! is durable. Clients of blind writes (plain SET, MSET: the reply is `+OK` whatever the
//! state) are answered when the coordinator's Accord core emits the Apply, before the WAL
//! and storage catch up: the transaction and everything ordered before it are then decided
//! and durable at a quorum. (Answering at commit would be too early: a later transaction could
//! still be ordered before an undecided dep of the answered one; see
//! `holo_accord::Action::Apply`.) All others are answered after apply. On start the node replays its WAL into the Accord core and re-applies every
//! decided transaction; the executor skips what storage already holds (see
//! [`executor`]'s docs), so a kill -9 at any moment loses nothing acknowledged.
//!
//! # WAL release
//! Every `accord.sync_interval_ms` a node proposes an Accord sync point; the executor reports
//! each one applied once the storage flush after it is done (`Event::SyncDurable`).
//! When every member has, the Accord core drops the finished transactions below it
//! (`Action::Truncate`) and the core: forgets their WAL positions, writes the GC floor and
//! the clock reservation again, rewrites the few live records older than the previous cut
//! (so one long-lived transaction never pins the log), and once those are durable deletes
//! every segment below the oldest record still needed (`holo_wal::Wal::truncate_below`).
//! A restart replays only what is left, plus the floor. A member that is down holds GC back
//! for everyone until it returns.
//!
//! # The meta range
//! The cluster map is the state of one more Accord range, over the reserved key space
//! (`holo_meta::RESERVED_PREFIX`; clients are refused such keys). A meta command is a
//! transaction of its own on `holo_meta::META_KEY`; the executor applies it at its
//! executeAt, writes the new state in the same batch as the data, publishes it to the rest
//! of the node and tells the core, which adopts each new epoch in order and retires epochs
//! whose history is cut ([`core::Event::Meta`]). Data transactions resolve ranges by their
//! own epoch's map ([`executor::Executor::apply`]). The [`controller`] holds the lease and
//! drives splits and merges; [`admin`] serves `holoctl`.
//!
//! # Commands
//! [`cmd`] holds the command table and each family's parsing and execution; [`server`] runs
//! connections (MULTI queues, WATCH, authentication), [`keys`] the whole-keyspace commands,
//! [`expiry`] the background purge of expired keys.
//!
//! # Not yet
//! - Ephemeral reads of commands over several keys (MGET is a read transaction; one-key
//!   commands, alone or pipelined, are ephemeral reads, `accord.ephemeral_reads`).
//! - Lists, sets, sorted sets, scripting, pub/sub; a read barrier for keyspace scans while
//!   a member is down (see `docs/redis-commands.md`).
//! - Membership changes and replica moves (every range lives on every member).
//! - Peer authentication: the gRPC port trusts its peers (a protocol-violating peer can stop
//!   a node; malformed messages and ops are refused). Keep it on a private network.
//! - Backpressure from the executor: its queue is unbounded, and a full WAL buffer
//!   (`wal.pending_bytes_max`) blocks the core task until the writer catches up.

pub mod admin;
pub mod auth;
pub mod checkpoint;
pub mod clients;
pub mod cmd;
pub mod config;
pub mod controller;
pub mod convert;
pub mod core;
pub mod error;
pub mod executor;
pub mod expiry;
pub mod keys;
pub mod meta;
pub mod metrics;
pub mod peer_auth;
pub mod server;
pub mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use holo_accord::{Node, NodeId};
use holo_proto::v1 as pb;
use holo_storage::Store;
use holo_wal::Wal;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use config::{NodeConfig, Overrides};

/// The allocator this build uses, for start-up logs and `INFO server`.
pub fn allocator_name() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system"
    }
}

/// The sockets a node serves on, bound by the caller (tests bind port 0).
pub struct Listeners {
    pub resp: TcpListener,
    pub grpc: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the node's own `[[members]]` entry.
    ///
    /// # Errors
    /// An address is in use or not local.
    pub async fn bind(config: &NodeConfig) -> anyhow::Result<Listeners> {
        let me = config.me()?;
        let resp = TcpListener::bind(&me.resp_addr)
            .await
            .with_context(|| format!("cannot listen on resp_addr {}", me.resp_addr))?;
        let grpc = TcpListener::bind(&me.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on grpc_addr {}", me.grpc_addr))?;
        Ok(Listeners { resp, grpc })
    }
}

/// What the WAL holds for a restarting node.
struct Replayed {
    /// Command records in log order (the last one of a txn wins).
    commands: Vec<holo_accord::Command>,
    /// The highest clock reservation.
    clock: u64,
    /// The last GC floor written.
    truncated: (holo_accord::TxnId, holo_accord::Timestamp),
    /// The LSN of each txn's latest record.
    latest_lsn: HashMap<holo_accord::TxnId, holo_wal::Lsn>,
}

/// Reads the WAL from `from` (see [`checkpoint`]) into what a restarted Accord node is
/// built from.
fn replay(wal: &Wal, from: holo_wal::Lsn) -> anyhow::Result<Replayed> {
    let mut out = Replayed {
        commands: Vec::new(),
        clock: 0,
        truncated: Default::default(),
        latest_lsn: HashMap::new(),
    };
    for record in wal.replay(from.max(wal.first_lsn()))? {
        let (lsn, payload) = record?;
        match convert::decode_record(&payload).map_err(|e| {
            anyhow::anyhow!(
                "WAL record {lsn} in {} is not a HoloStore record ({e})",
                wal.dir().display()
            )
        })? {
            convert::Record::Command(command) => {
                out.latest_lsn.insert(command.txn.id, lsn);
                out.commands.push(command);
            }
            convert::Record::Clock(upto) => out.clock = out.clock.max(upto),
            convert::Record::Truncated(floor, max) => {
                out.truncated = (out.truncated.0.max(floor), out.truncated.1.max(max));
            }
        }
    }
    Ok(out)
}

/// Runs a node until `shutdown` completes or a fatal error (WAL or storage failure).
///
/// # Errors
/// The data directory, WAL or storage cannot be opened (the message names the file), or
/// the node had to stop because its disk failed.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config.validate()?;
    // Sockets passed down (--resp-fd, --grpc-fd) may be bound elsewhere than the file
    // says: protected mode looks at what is actually served.
    config.auth.validate(&listeners.resp.local_addr()?)?;
    config.security.validate(&listeners.grpc.local_addr()?)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let security = config
        .security
        .load(Arc::clone(&metrics.grpc_auth_refused))?;
    if security.client.token.is_set() {
        tracing::info!("gRPC calls (peers and holoctl) need the cluster secret");
    }
    if security.client.uses_tls() {
        tracing::info!("gRPC is served and dialled over mutual TLS");
    }
    let started = Instant::now();
    let me = NodeId(config.node_id);
    let map = Arc::new(config.cluster_map()?);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    if config.wal.persist == holo_wal::PersistMode::Buffer {
        tracing::warn!(
            "wal.persist = \"buffer\": acknowledged writes can be lost on power failure (benchmarks only)"
        );
    }
    // Each step of a restart is timed in the log: restart time is what a node down costs.
    let step = Instant::now();
    let wal = Arc::new(
        Wal::open(config.data_dir.join("wal"), config.wal.clone()).context("opening the WAL")?,
    );
    let wal_open_ms = step.elapsed().as_millis() as u64;
    let step = Instant::now();
    let store = Arc::new(
        Store::open(&config.storage, &config.data_dir).context("opening the storage backend")?,
    );
    let store_open_ms = step.elapsed().as_millis() as u64;
    let meta = meta::load_or_init(&store, &map, &config.data_dir)?;
    let map = Arc::new(meta.map().clone());
    let topologies = meta.topologies();
    let (meta_tx, meta_rx) = tokio::sync::watch::channel(Arc::new(meta.clone()));
    if config.faults != config::FaultsConfig::default() {
        tracing::warn!(
            faults = ?config.faults,
            "[faults] is set: this node misbehaves on purpose (for testing the harness)"
        );
    }
    let checkpoint = checkpoint::path(wal.dir());
    let from = match checkpoint::read(&checkpoint) {
        Ok(Some(cut)) if cut <= wal.next_lsn() => cut,
        Ok(Some(cut)) => {
            tracing::warn!(
                "{} points past the end of the WAL (LSN {cut}, next {}); replaying the whole WAL",
                checkpoint.display(),
                wal.next_lsn()
            );
            0
        }
        Ok(None) => 0,
        Err(e) => {
            tracing::warn!("{e}; replaying the whole WAL");
            0
        }
    };
    let step = Instant::now();
    let replayed = replay(&wal, from)?;
    tracing::info!(
        node = me.0,
        from = from.max(wal.first_lsn()),
        records = replayed.commands.len(),
        gc_floor = %replayed.truncated.0,
        backend = store.backend_name(),
        wal_open_ms,
        store_open_ms,
        replay_ms = step.elapsed().as_millis() as u64,
        "replayed the WAL"
    );
    let node = Node::restart(
        me,
        topologies,
        config.accord_config(),
        replayed.commands,
        replayed.clock,
        replayed.truncated,
    );
    let mut latest_lsn = replayed.latest_lsn;
    latest_lsn.retain(|id, _| node.replica().command(id).is_some());

    metrics
        .accord_epoch
        .store(node.epoch(), std::sync::atomic::Ordering::Relaxed);
    let (core_tx, core_rx) = mpsc::channel(8192);
    let executor = executor::Executor::new(
        Arc::clone(&store),
        meta,
        meta_tx,
        Arc::clone(&metrics),
        core_tx.clone(),
    )?
    .with_max_clock_offset(config.accord.max_clock_offset_ms);
    let sync_applied = executor.sync_applied();
    let (exec_tx, exec_rx) = std::sync::mpsc::channel();
    let (exec_done_tx, exec_done_rx) = tokio::sync::oneshot::channel();
    let executor_thread = std::thread::Builder::new()
        .name(format!("holo-executor-{}", me.0))
        .spawn(move || {
            let _ = exec_done_tx.send(executor.run(exec_rx));
        })?;

    let mut tasks: tokio::task::JoinSet<anyhow::Result<()>> = tokio::task::JoinSet::new();
    // The executor's end reaches the node at once (a failed disk stops the node), not only
    // when the core next hands it work.
    tasks.spawn(async move {
        match exec_done_rx.await {
            Ok(outcome) => outcome.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("the executor thread panicked")),
        }
    });

    let mut peers = HashMap::new();
    for member in map.members() {
        if member.id != me {
            let link = transport::spawn_peer(
                me,
                member.id,
                &member.grpc_addr,
                &config.transport,
                &security.client,
                std::time::Duration::from_millis(config.faults.send_delay_ms),
                core_tx.clone(),
            );
            metrics
                .peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((member.id.0, Arc::clone(&link.stats)));
            peers.insert(member.id, link);
        }
    }

    let core = core::Core::new(
        node,
        Arc::clone(&wal),
        peers,
        exec_tx,
        Arc::clone(&metrics),
        Duration::from_millis(config.accord.tick_ms),
    )
    .with_batching(config.accord.propose_window, config.accord.ephemeral_reads)
    .with_wal_positions(latest_lsn)
    .with_checkpoint(checkpoint);
    tasks.spawn(async move { core.run(core_rx).await.map_err(anyhow::Error::from) });

    let peer_service = pb::peer_server::PeerServer::new(transport::PeerService {
        me,
        core: core_tx.clone(),
        meta: meta_rx.clone(),
    })
    .max_decoding_message_size(transport::MAX_MESSAGE_BYTES)
    .max_encoding_message_size(transport::MAX_MESSAGE_BYTES);
    let (controller_tx, controller_rx) = mpsc::channel(64);
    let controller = controller::Controller {
        me,
        config: config.controller.clone(),
        core: core_tx.clone(),
        meta: meta_rx.clone(),
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        requests: controller_rx,
    };
    tasks.spawn(controller.run());
    tasks.spawn({
        let expiry = expiry::run(
            me,
            core_tx.clone(),
            meta_rx.clone(),
            Arc::clone(&store),
            Arc::clone(&metrics),
            std::time::Duration::from_millis(config.controller.tick_ms),
        );
        async move {
            expiry.await;
            Ok(())
        }
    });
    let admin_service = pb::admin_server::AdminServer::new(admin::AdminService {
        node_id: me.0,
        meta: meta_rx.clone(),
        metrics: Arc::clone(&metrics),
        wal: Arc::downgrade(&wal),
        store: Arc::downgrade(&store),
        controller: controller_tx,
        controller_config: config.controller.clone(),
        started,
        client: security.client.clone(),
    });
    let grpc_addr = listeners.grpc.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listeners.grpc);
    let mut server = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = security.server_tls() {
        server = server.tls_config(tls).context("gRPC TLS")?;
    }
    let require = security.require;
    tasks.spawn(async move {
        server
            .layer(tonic::service::InterceptorLayer::new(require))
            .add_service(peer_service)
            .add_service(admin_service)
            .serve_with_incoming(incoming)
            .await
            .context("gRPC server")
    });

    let resp_addr = listeners.resp.local_addr()?;
    let max_concurrent_scans = config.limits.max_concurrent_scans;
    let shared = Arc::new(server::Shared {
        limits: config.resp_limits(),
        config,
        core: core_tx,
        metrics: Arc::clone(&metrics),
        store: Arc::clone(&store),
        wal: Arc::clone(&wal),
        started,
        resp_port: resp_addr.port(),
        next_client_id: AtomicU64::new(0),
        scans: tokio::sync::Semaphore::new(max_concurrent_scans),
        clients: clients::Clients::default(),
        cursors: keys::Cursors::default(),
        meta: meta_rx.clone(),
        sync_applied,
        barriers: keys::Barriers::default(),
    });
    tasks.spawn(async move {
        server::accept_loop(listeners.resp, shared).await;
        Ok(())
    });
    tracing::info!(node = me.0, %resp_addr, %grpc_addr, "serving");

    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(Ok(())) => Err(anyhow::anyhow!("a node task ended unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("a node task panicked: {e}")),
        },
    };
    // Stop everything: connections, peers, the core (which owns the executor's sender).
    tasks.shutdown().await;
    tokio::task::spawn_blocking(move || executor_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the executor thread panicked"))?;
    // Aborted tasks (a client's INFO scan, a gRPC connection) may still hold the WAL or the
    // store for a moment: wait for them, so the directory lock is free when `run` returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (Arc::strong_count(&wal) > 1 || Arc::strong_count(&store) > 1)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if Arc::strong_count(&wal) > 1 {
        tracing::warn!("the WAL is still referenced at shutdown");
    }
    drop(store);
    drop(wal);
    tracing::info!(node = me.0, "stopped");
    outcome
}
