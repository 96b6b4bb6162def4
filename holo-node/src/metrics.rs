//! Counters, gauges and histograms, rendered as Prometheus text by `HOLOMETRICS`.
//!
//! Everything is a relaxed atomic: recording costs a few uncontended increments, never a lock
//! on the hot path. Histograms have fixed buckets in microseconds (or counts).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The label of command `index` (a `crate::cmd::TABLE` index; past the end: `other`).
fn command_name(index: usize) -> &'static str {
    crate::cmd::TABLE
        .get(index)
        .map_or(crate::cmd::OTHER, |s| s.name)
}

/// Series per command: one per table entry and `other`.
fn command_series() -> usize {
    crate::cmd::TABLE.len() + 1
}

/// Upper bounds of the latency buckets, microseconds.
const LATENCY_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
/// Upper bounds of the batch-size buckets.
const SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
const COMMIT_BOUNDS: &[u64] = &[1, 4, 16, 64, 256, 1024, 4096, 16384, 65536];
/// Split and merge durations (commit to history cut), in microseconds: 10 ms to 10 min.
const OPERATION_BOUNDS_US: &[u64] = &[
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    60_000_000,
    600_000_000,
];

/// The HELP and TYPE lines of a histogram family.
fn histogram_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
}

/// A histogram with fixed bucket bounds.
pub struct Histogram {
    bounds: &'static [u64],
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the series; `scale` divides bounds and sum (1e6 turns microseconds to seconds).
    fn render(&self, out: &mut String, name: &str, labels: &str, scale: f64) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = *bound as f64 / scale;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum.load(Ordering::Relaxed) as f64 / scale;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{braces} {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// Per-command series.
pub struct CommandMetrics {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub latency: Histogram,
}

/// The link to one peer.
#[derive(Default)]
pub struct PeerStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub connected: AtomicBool,
    /// Links the peer refused for a missing or wrong cluster token.
    pub auth_refused: AtomicU64,
    /// Attempts to open the link that failed otherwise (unreachable, TLS refused, not a
    /// member there).
    pub link_failures: AtomicU64,
}

/// Every metric of one node.
pub struct Metrics {
    pub commands: Vec<CommandMetrics>,
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    /// gRPC calls refused for a missing or wrong cluster token.
    pub grpc_auth_refused: std::sync::Arc<AtomicU64>,
    /// Bytes of incomplete commands held beyond each connection's free allowance (the
    /// node-wide input budget in use).
    pub input_buffered: std::sync::atomic::AtomicUsize,
    /// Connections refused because the input budget was used up.
    pub input_refused: AtomicU64,
    /// AUTH and HELLO AUTH attempts with a wrong user or password.
    pub auth_failures: AtomicU64,
    /// Expired keys deleted by purge transactions this node proposed.
    pub expired_purged: AtomicU64,
    /// Stored values a finished FLUSHALL left behind, deleted by this node's executor.
    pub flushed_purged: AtomicU64,
    /// KEYS, SCAN, RANDOMKEY and DBSIZE answered from this node's copy without a read
    /// barrier (none was available: GC waits for a member).
    pub keyspace_unbarriered: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub fast_path: AtomicU64,
    /// Client commands served as ephemeral reads.
    pub ephemeral_reads: AtomicU64,
    /// Client commands of consistent ephemeral reads that went as transactions instead.
    pub ephemeral_reads_as_txn: AtomicU64,
    pub slow_path: AtomicU64,
    pub recoveries: AtomicU64,
    pub invalidations: AtomicU64,
    pub coordinating: AtomicU64,
    pub peers_unreachable: AtomicU64,
    pub commands_known: AtomicU64,
    pub wal_segments_released: AtomicU64,
    pub wal_commit_latency: Histogram,
    pub wal_batch_records: Histogram,
    pub storage_commit_ops: Histogram,
    pub apply_queue: AtomicI64,
    pub apply_held: AtomicU64,
    pub apply_batch_replies: Histogram,
    pub apply_latency: Histogram,
    pub apply_writes: AtomicU64,
    pub apply_skipped: AtomicU64,
    pub executor_failed: AtomicBool,
    pub peers: Mutex<Vec<(u16, std::sync::Arc<PeerStats>)>>,
    applied: Mutex<BTreeMap<u64, u64>>,
    /// Key accesses (reads and writes) per range of the transactions executed here.
    range_load: Mutex<BTreeMap<u64, u64>>,
    /// The epoch the Accord core adopted last (it follows the applied map's).
    pub accord_epoch: AtomicU64,
    /// Decided transactions waiting in the executor for the meta command of their epoch.
    pub apply_waiting_epoch: AtomicU64,
    /// The epoch of the GC floor: every txn of an earlier epoch is finished everywhere.
    pub gc_floor_epoch: AtomicU64,
    meta: Mutex<MetaFigures>,
    split_duration: Histogram,
    merge_duration: Histogram,
}

/// The meta range's figures as last applied here.
#[derive(Default)]
struct MetaFigures {
    epoch: u64,
    hash: u64,
    operations: BTreeMap<&'static str, u64>,
    lease: Option<holo_meta::Lease>,
    splits: u64,
    merges: u64,
    /// The executeAt of the newest record already counted in the durations.
    counted: holo_accord::Timestamp,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            commands: (0..command_series())
                .map(|_| CommandMetrics {
                    calls: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    latency: Histogram::new(LATENCY_BOUNDS_US),
                })
                .collect(),
            connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_rejected: AtomicU64::new(0),
            grpc_auth_refused: std::sync::Arc::new(AtomicU64::new(0)),
            input_buffered: std::sync::atomic::AtomicUsize::new(0),
            input_refused: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            expired_purged: AtomicU64::new(0),
            flushed_purged: AtomicU64::new(0),
            keyspace_unbarriered: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            fast_path: AtomicU64::new(0),
            ephemeral_reads: AtomicU64::new(0),
            ephemeral_reads_as_txn: AtomicU64::new(0),
            slow_path: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            coordinating: AtomicU64::new(0),
            peers_unreachable: AtomicU64::new(0),
            commands_known: AtomicU64::new(0),
            wal_segments_released: AtomicU64::new(0),
            wal_commit_latency: Histogram::new(LATENCY_BOUNDS_US),
            wal_batch_records: Histogram::new(SIZE_BOUNDS),
            storage_commit_ops: Histogram::new(COMMIT_BOUNDS),
            apply_queue: AtomicI64::new(0),
            apply_held: AtomicU64::new(0),
            apply_batch_replies: Histogram::new(SIZE_BOUNDS),
            apply_latency: Histogram::new(LATENCY_BOUNDS_US),
            apply_writes: AtomicU64::new(0),
            apply_skipped: AtomicU64::new(0),
            executor_failed: AtomicBool::new(false),
            peers: Mutex::new(Vec::new()),
            applied: Mutex::new(BTreeMap::new()),
            range_load: Mutex::new(BTreeMap::new()),
            accord_epoch: AtomicU64::new(0),
            apply_waiting_epoch: AtomicU64::new(0),
            gc_floor_epoch: AtomicU64::new(0),
            meta: Mutex::new(MetaFigures::default()),
            split_duration: Histogram::new(OPERATION_BOUNDS_US),
            merge_duration: Histogram::new(OPERATION_BOUNDS_US),
        }
    }
}

impl Metrics {
    pub fn observe_command(&self, index: usize, error: bool, latency: Duration) {
        let c = &self.commands[index];
        c.calls.fetch_add(1, Ordering::Relaxed);
        if error {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        c.latency.observe(latency.as_micros() as u64);
    }

    pub fn observe_apply_batch(&self, replies: u64, writes: u64, skipped: u64, took: Duration) {
        self.apply_batch_replies.observe(replies.max(1));
        self.apply_latency.observe(took.as_micros() as u64);
        self.apply_writes.fetch_add(writes, Ordering::Relaxed);
        self.apply_skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    pub fn set_applied(&self, range: u64, index: u64) {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(range, index);
    }

    /// Takes the figures of the meta state just applied (or loaded at start).
    pub fn observe_meta(&self, state: &holo_meta::MetaState) {
        let mut m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        m.epoch = state.epoch();
        m.hash = state.map().hash();
        m.operations.clear();
        for op in state.operations() {
            *m.operations.entry(op.phase.name()).or_default() += 1;
        }
        m.lease = state.lease();
        (m.splits, m.merges) = state.counts();
        let first = m.counted == holo_accord::Timestamp::ZERO;
        for record in state.recent() {
            if record.at <= m.counted {
                continue;
            }
            m.counted = record.at;
            // At start the recent records are history, not new observations.
            if first {
                continue;
            }
            match record.finished {
                Some(("split", us)) => self.split_duration.observe(us),
                Some(("merge", us)) => self.merge_duration.observe(us),
                _ => {}
            }
        }
    }

    /// Counts key accesses per range (`load`: range id to accesses in one batch).
    pub fn add_range_load(&self, load: &std::collections::HashMap<u64, u64>) {
        if load.is_empty() {
            return;
        }
        let mut all = self.range_load.lock().unwrap_or_else(|e| e.into_inner());
        for (range, n) in load {
            *all.entry(*range).or_default() += n;
        }
    }

    /// Key accesses per range since start.
    pub fn range_load(&self) -> BTreeMap<u64, u64> {
        self.range_load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applied index per range.
    pub fn applied(&self) -> BTreeMap<u64, u64> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls served per command name (for INFO commandstats-like output).
    pub fn total_commands(&self) -> u64 {
        self.commands
            .iter()
            .map(|c| c.calls.load(Ordering::Relaxed))
            .sum()
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, wal: Option<&holo_wal::WalStats>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP holo_commands_total Commands served, by command.\n# TYPE holo_commands_total counter"
        );
        for (name, c) in (0..).map(command_name).zip(&self.commands) {
            let _ = writeln!(
                out,
                "holo_commands_total{{cmd=\"{name}\"}} {}",
                c.calls.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP holo_command_errors_total Commands answered with an error, by command.\n# TYPE holo_command_errors_total counter"
        );
        for (name, c) in (0..).map(command_name).zip(&self.commands) {
            let _ = writeln!(
                out,
                "holo_command_errors_total{{cmd=\"{name}\"}} {}",
                c.errors.load(Ordering::Relaxed)
            );
        }
        histogram_header(
            &mut out,
            "holo_command_duration_seconds",
            "Time from reading a command to its reply being ready.",
        );
        for (name, c) in (0..).map(command_name).zip(&self.commands) {
            if c.calls.load(Ordering::Relaxed) > 0 {
                c.latency.render(
                    &mut out,
                    "holo_command_duration_seconds",
                    &format!("cmd=\"{name}\""),
                    1e6,
                );
            }
        }
        gauge(
            &mut out,
            "holo_connections",
            "Client connections open now.",
            self.connections.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_connections_total",
            "Client connections accepted.",
            self.connections_total.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_connections_rejected_total",
            "Client connections refused at the limit.",
            self.connections_rejected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_grpc_auth_refused_total",
            "gRPC calls (peers, holoctl) refused for a missing or wrong cluster token.",
            self.grpc_auth_refused.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "holo_input_buffered_bytes",
            "Bytes of incomplete client commands held beyond 64 KiB per connection (limits.max_input_buffer_bytes bounds it).",
            self.input_buffered.load(Ordering::Relaxed) as i64,
        );
        counter(
            &mut out,
            "holo_input_refused_total",
            "Connections closed because the node-wide input budget was used up.",
            self.input_refused.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_expired_keys_purged_total",
            "Expired keys deleted from storage by the purge transactions this node proposed (it held the controller lease).",
            self.expired_purged.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_flushed_values_purged_total",
            "Stored values a finished FLUSHALL left behind, deleted from this node's storage.",
            self.flushed_purged.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_keyspace_reads_without_barrier_total",
            "KEYS, SCAN, RANDOMKEY and DBSIZE answered from this node's copy without a read barrier (GC was waiting for a member; keyspace.stale_reads_while_degraded).",
            self.keyspace_unbarriered.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_auth_failures_total",
            "AUTH and HELLO AUTH attempts with a wrong user or password.",
            self.auth_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_protocol_errors_total",
            "Connections closed for malformed RESP.",
            self.protocol_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_fast_path_total",
            "Transactions this node coordinated that were decided on the fast path.",
            self.fast_path.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_ephemeral_reads_total",
            "Client commands this node served as ephemeral reads (a majority round, no log record).",
            self.ephemeral_reads.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_ephemeral_reads_as_txn_total",
            "Client commands of a pipeline over several keys whose ephemeral read found a write it had not waited for applied, and went as a transaction instead.",
            self.ephemeral_reads_as_txn.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_slow_path_total",
            "Transactions this node coordinated that were decided after an Accept round.",
            self.slow_path.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_recoveries_total",
            "Recoveries this node started.",
            self.recoveries.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_accord_invalidations_total",
            "Transactions a coordination of this node decided never to execute.",
            self.invalidations.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "holo_accord_coordinating",
            "Transactions this node coordinates now.",
            self.coordinating.load(Ordering::Relaxed) as i64,
        );
        gauge(
            &mut out,
            "holo_accord_peers_unreachable",
            "Peers this node's links report down: its transactions do not wait for their fast-path votes.",
            self.peers_unreachable.load(Ordering::Relaxed) as i64,
        );
        gauge(
            &mut out,
            "holo_accord_commands",
            "Transactions in this replica's memory (GC drops those every member applied).",
            self.commands_known.load(Ordering::Relaxed) as i64,
        );
        counter(
            &mut out,
            "holo_wal_segments_released_total",
            "WAL segments deleted after GC.",
            self.wal_segments_released.load(Ordering::Relaxed),
        );
        histogram_header(
            &mut out,
            "holo_wal_commit_seconds",
            "Time from handing records to the WAL to their being durable.",
        );
        self.wal_commit_latency
            .render(&mut out, "holo_wal_commit_seconds", "", 1e6);
        histogram_header(
            &mut out,
            "holo_wal_submit_records",
            "Records handed to the WAL per core step.",
        );
        self.wal_batch_records
            .render(&mut out, "holo_wal_submit_records", "", 1.0);
        histogram_header(
            &mut out,
            "holo_storage_commit_ops",
            "Keys written per storage commit (applied writes are held up to 250 ms and written together).",
        );
        self.storage_commit_ops
            .render(&mut out, "holo_storage_commit_ops", "", 1.0);
        if let Some(wal) = wal {
            counter(
                &mut out,
                "holo_wal_group_writes_total",
                "WAL group writes, each followed by one sync.",
                wal.group_writes,
            );
            counter(
                &mut out,
                "holo_wal_records_total",
                "WAL records written (records / group writes = mean group size).",
                wal.records_written,
            );
            gauge(
                &mut out,
                "holo_wal_segments",
                "WAL segment files on disk.",
                wal.segments as i64,
            );
        }
        gauge(
            &mut out,
            "holo_apply_lag",
            "Decided transactions not yet applied (held for durability or queued).",
            self.apply_queue.load(Ordering::Relaxed)
                + self.apply_held.load(Ordering::Relaxed) as i64
                + self.apply_waiting_epoch.load(Ordering::Relaxed) as i64,
        );
        histogram_header(
            &mut out,
            "holo_apply_batch_seconds",
            "Time to apply one batch to storage.",
        );
        self.apply_latency
            .render(&mut out, "holo_apply_batch_seconds", "", 1e6);
        histogram_header(
            &mut out,
            "holo_apply_batch_replies",
            "Client replies per applied batch.",
        );
        self.apply_batch_replies
            .render(&mut out, "holo_apply_batch_replies", "", 1.0);
        counter(
            &mut out,
            "holo_apply_storage_writes_total",
            "Key writes sent to the storage backend.",
            self.apply_writes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "holo_apply_skipped_total",
            "Transactions found already applied (WAL replay after a restart).",
            self.apply_skipped.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP holo_applied_index Transactions applied per range on this node.\n# TYPE holo_applied_index gauge"
        );
        for (range, index) in self.applied() {
            let _ = writeln!(out, "holo_applied_index{{range=\"{range}\"}} {index}");
        }
        let _ = writeln!(
            out,
            "# HELP holo_range_key_accesses_total Keys read or written by the transactions executed on this node, per range (the load automatic splits look at).\n# TYPE holo_range_key_accesses_total counter"
        );
        for (range, n) in self.range_load() {
            let _ = writeln!(
                out,
                "holo_range_key_accesses_total{{range=\"{range}\"}} {n}"
            );
        }
        self.render_meta(&mut out, counter, gauge);
        let peers: Vec<(u16, std::sync::Arc<PeerStats>)> =
            self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        type Family = (
            &'static str,
            &'static str,
            &'static str,
            fn(&PeerStats) -> u64,
        );
        let families: [Family; 5] = [
            (
                "holo_peer_batches_sent_total",
                "counter",
                "Message batches sent to a peer.",
                |p| p.sent.load(Ordering::Relaxed),
            ),
            (
                "holo_peer_batches_dropped_total",
                "counter",
                "Batches dropped because the peer's queue was full or it was unreachable.",
                |p| p.dropped.load(Ordering::Relaxed),
            ),
            (
                "holo_peer_connected",
                "gauge",
                "1 while the stream to the peer is open.",
                |p| u64::from(p.connected.load(Ordering::Relaxed)),
            ),
            (
                "holo_peer_link_failures_total",
                "counter",
                "Attempts to open the link to the peer that failed (unreachable, TLS handshake refused, this node not a member there).",
                |p| p.link_failures.load(Ordering::Relaxed),
            ),
            (
                "holo_peer_auth_refused_total",
                "counter",
                "Links the peer refused for a missing or wrong cluster token.",
                |p| p.auth_refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (peer, stats) in &peers {
                let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {}", value(stats));
            }
        }
        out
    }

    fn render_meta(
        &self,
        out: &mut String,
        counter: impl Fn(&mut String, &str, &str, u64),
        gauge: impl Fn(&mut String, &str, &str, i64),
    ) {
        let m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        gauge(
            out,
            "holo_meta_epoch",
            "Epoch of the cluster map applied on this node.",
            m.epoch as i64,
        );
        gauge(
            out,
            "holo_meta_accord_epoch",
            "Epoch the consensus core routes new transactions with.",
            self.accord_epoch.load(Ordering::Relaxed) as i64,
        );
        let _ = writeln!(
            out,
            "# HELP holo_meta_map_info The applied cluster map's hash (nodes that agree show the same).\n# TYPE holo_meta_map_info gauge\nholo_meta_map_info{{hash=\"{:016x}\",epoch=\"{}\"}} 1",
            m.hash, m.epoch
        );
        let _ = writeln!(
            out,
            "# HELP holo_meta_operations Splits and merges in flight, by phase.\n# TYPE holo_meta_operations gauge"
        );
        for phase in holo_meta::Phase::ALL {
            let n = m.operations.get(phase.name()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "holo_meta_operations{{phase=\"{}\"}} {n}",
                phase.name()
            );
        }
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let (holder, term, remaining) = m.lease.map_or((0, 0, 0.0), |l| {
            (
                i64::from(l.holder.0),
                l.term as i64,
                l.expires.saturating_sub(now_us) as f64 / 1e6,
            )
        });
        gauge(
            out,
            "holo_meta_lease_holder",
            "Node holding the controller lease (0: none yet).",
            holder,
        );
        gauge(
            out,
            "holo_meta_lease_term",
            "Term of the controller lease.",
            term,
        );
        let _ = writeln!(
            out,
            "# HELP holo_meta_lease_remaining_seconds Time left on the controller lease by this node's clock (0: expired).\n# TYPE holo_meta_lease_remaining_seconds gauge\nholo_meta_lease_remaining_seconds {remaining:.3}"
        );
        counter(
            out,
            "holo_meta_splits_total",
            "Splits committed in the cluster map.",
            m.splits,
        );
        counter(
            out,
            "holo_meta_merges_total",
            "Merges committed in the cluster map.",
            m.merges,
        );
        histogram_header(
            out,
            "holo_meta_operation_seconds",
            "Time from a split or merge committing to its history cut, seen on this node.",
        );
        self.split_duration
            .render(out, "holo_meta_operation_seconds", "kind=\"split\"", 1e6);
        self.merge_duration
            .render(out, "holo_meta_operation_seconds", "kind=\"merge\"", 1e6);
    }
}
