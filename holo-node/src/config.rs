//! The node's TOML file: typed, every unknown field an error, validated at start with
//! messages that name the field. `config/node1.toml` is the reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use holo_accord::NodeId;
use holo_meta::{ClusterMap, Member};
use holo_storage::StorageConfig;
use holo_wal::WalConfig;
use serde::Deserialize;

/// One node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id: one of `[[members]]`.
    pub node_id: u16,
    /// Where the WAL (`wal/`) and the storage backend's files live.
    pub data_dir: PathBuf,
    /// Every node of the cluster, this one included; its own entry gives its listen addresses.
    pub members: Vec<MemberConfig>,
    #[serde(default)]
    pub ranges: RangesConfig,
    #[serde(default)]
    pub accord: AccordConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub transport: TransportConfig,
    #[serde(default)]
    pub wal: WalConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub controller: ControllerConfig,
    #[serde(default)]
    pub faults: FaultsConfig,
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    #[serde(default)]
    pub keyspace: KeyspaceConfig,
    #[serde(default)]
    pub security: crate::peer_auth::SecurityConfig,
}

/// `[keyspace]`: the commands over the whole keyspace (KEYS, SCAN, RANDOMKEY, DBSIZE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyspaceConfig {
    /// GIVES UP SEEING RECENT WRITES: while a member is down (no read barrier can be had),
    /// answer from this node's copy, which may lack writes acknowledged through other
    /// nodes, instead of `-TRYAGAIN`.
    pub stale_reads_while_degraded: bool,
}

/// `[controller]`: the controller lease, and the automatic splits and merges its holder
/// runs. Every node takes part in the lease; one holds it at a time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// How long a lease lasts from the executeAt of the command that took or renewed it.
    /// Its holder renews it once a third has passed; a holder that dies is replaced once
    /// it expires.
    pub lease_ms: u64,
    /// How often the controller looks at the lease and at operations in flight.
    pub tick_ms: u64,
    /// Split ranges that grow past `split_above_bytes` and merge adjacent ranges that
    /// together stay below `merge_below_bytes` (off by default: operators split and merge
    /// with holoctl).
    pub auto_split: bool,
    /// Live key and value bytes (in the lease holder's storage) above which a range is
    /// split at its median key.
    pub split_above_bytes: u64,
    /// Two neighbours with the same replicas and fewer bytes than this together merge
    /// (and, with `split_above_accesses_per_sec`, less than half that load together).
    pub merge_below_bytes: u64,
    /// Key reads and writes per second (executed on the lease holder) above which a range is
    /// split at its median key; 0: size alone decides.
    pub split_above_accesses_per_sec: u64,
    /// How often sizes are measured when `auto_split` is on (a scan of every key).
    pub check_interval_ms: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            lease_ms: 3_000,
            tick_ms: 100,
            auto_split: false,
            split_above_bytes: 64 << 20,
            merge_below_bytes: 8 << 20,
            split_above_accesses_per_sec: 0,
            check_interval_ms: 10_000,
        }
    }
}

/// `[faults]`: deliberate misbehaviour for testing the harness and its suites. Off by
/// default; a node with any of them on logs a warning at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// Hold every batch this node sends to a peer this long before it leaves (a slow
    /// replica).
    pub send_delay_ms: u64,
    /// BREAKS LINEARIZABILITY: answer single-key GET from this node's storage without
    /// consensus (a planted bug the linearizability suite must catch).
    pub stale_local_reads: bool,
}

/// `[[members]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: u16,
    /// Redis protocol listen address.
    pub resp_addr: String,
    /// gRPC (peers and holoctl) listen address.
    pub grpc_addr: String,
}

/// `[ranges]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RangesConfig {
    /// Keys at which the key space is cut into ranges at cluster start: `n` points give
    /// `n + 1` ranges. Every node of a cluster must list the same points.
    pub split_points: Vec<String>,
}

/// `[accord]`: protocol timers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccordConfig {
    /// How long a coordinator with a majority waits for the rest of the fast quorum.
    pub fast_path_wait_ms: u64,
    /// How long before a coordinator resends a round to replicas that have not answered.
    pub retry_ms: u64,
    /// How long a transaction may stay undecided at a replica before it recovers it.
    pub recover_after_ms: u64,
    /// How often the protocol timers run.
    pub tick_ms: u64,
    /// How often this node proposes a sync point (0: never). Once every member applied one,
    /// all drop the records of the transactions below it and release WAL segments.
    pub sync_interval_ms: u64,
    /// The most two members' clocks may differ. A reply that found a key expired waits
    /// until this node's clock is this far past the expiry, so no node can still order a
    /// later command before it (docs/redis-commands.md, "Expiry and the clock").
    pub max_clock_offset_ms: u64,
    /// Most client transactions this node has undecided (in PreAccept or Accept) at once
    /// (0: no limit). Commands that arrive meanwhile wait and go out together in the next
    /// transaction, so under load every round carries many commands instead of one; an
    /// idle node proposes at once.
    pub propose_window: usize,
    /// Serve commands that read one key (GET, STRLEN, HGET...; not TTL), when a connection
    /// sends only such commands in one go, as an ephemeral read: a majority says which
    /// writes of the keys it knows, the node waits until those are applied here and reads,
    /// with nothing recorded or made durable anywhere. Linearizable; a pipeline over several
    /// keys reads them at one point or goes as a transaction (docs/performance.md); off:
    /// every read is a transaction.
    pub ephemeral_reads: bool,
}

impl Default for AccordConfig {
    fn default() -> Self {
        AccordConfig {
            fast_path_wait_ms: 5,
            retry_ms: 200,
            recover_after_ms: 1_000,
            tick_ms: 2,
            sync_interval_ms: 1_000,
            max_clock_offset_ms: 50,
            propose_window: 2,
            ephemeral_reads: true,
        }
    }
}

/// `[limits]`: what one client may ask of the node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Client connections served at once; more are refused with an error.
    pub max_connections: usize,
    /// Longest bulk string a client may send (Redis: proto-max-bulk-len). At most half of
    /// `wal.record_bytes_max`: a command's data travels in one WAL record.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command.
    pub max_arguments: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
    /// Most commands of one connection in flight at once (a longer pipeline is read as
    /// earlier commands complete).
    pub max_pipeline: usize,
    /// Most bytes of one command as sent (all its arguments and their framing); a longer one
    /// is refused with a protocol error from the header that shows it, before its data is
    /// buffered, and the connection is closed.
    pub max_command_bytes: usize,
    /// Most bytes all connections together may hold of commands not yet complete, beyond a
    /// first 64 KiB each; a connection that would go past it is refused with an error and
    /// closed (Redis's `maxmemory-clients` does the same), and nothing it sent executes.
    pub max_input_buffer_bytes: usize,
    /// Storage scans (DBSIZE, INFO keyspace) running at once; more wait their turn on their
    /// own connection.
    pub max_concurrent_scans: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            max_bulk_bytes: 8 * 1024 * 1024,
            max_arguments: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_pipeline: 1024,
            max_command_bytes: 16 * 1024 * 1024,
            max_input_buffer_bytes: 1024 * 1024 * 1024,
            max_concurrent_scans: 1,
        }
    }
}

/// `[transport]`: the gRPC links between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Batches queued for one peer; when a slow or unreachable peer's queue is full, new
    /// batches for it are dropped (the protocol resends) and never block the others.
    pub peer_queue_batches: usize,
    /// Connection attempt timeout.
    pub connect_timeout_ms: u64,
    /// Longest wait between reconnection attempts (backoff doubles from 20 ms).
    pub reconnect_backoff_max_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            peer_queue_batches: 4096,
            connect_timeout_ms: 1_000,
            reconnect_backoff_max_ms: 1_000,
        }
    }
}

/// Command-line overrides (the few things a script needs to change).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub node_id: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub resp_addr: Option<String>,
    pub grpc_addr: Option<String>,
}

/// `addr` is an IP address and port, or a DNS name and port (a container's name on its
/// network, a pod's name under a headless service): resolved when a node binds its own and
/// when it dials a peer. Protected mode looks at the sockets bound, so a name cannot hide a
/// wide listener.
///
/// Names are lower case: the cluster map compares addresses as written, so `Node1` and
/// `node1` would be two different members. A last label of digits only is refused: it is a
/// mistyped IP (`10.0.0.256`, `127.1`), which the resolver would read in surprising ways.
pub fn is_host_port(addr: &str) -> bool {
    if addr.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    let last_is_numeric = host
        .rsplit('.')
        .next()
        .is_some_and(|label| label.bytes().all(|b| b.is_ascii_digit()));
    port.parse::<u16>().is_ok()
        && !host.is_empty()
        && host.len() <= 253
        && labels_ok
        && !last_is_numeric
}

impl NodeConfig {
    /// Reads, parses and validates a node file, then applies `overrides`.
    ///
    /// # Errors
    /// The file cannot be read, has an unknown field or a bad value (the message names the
    /// file and the field).
    pub fn load(path: &Path, overrides: &Overrides) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut config =
            NodeConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.apply(overrides);
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Parses TOML text (no validation).
    ///
    /// # Errors
    /// Syntax errors, unknown fields, wrong types; the message names the field.
    pub fn parse(text: &str) -> anyhow::Result<NodeConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(id) = overrides.node_id {
            self.node_id = id;
        }
        if let Some(dir) = &overrides.data_dir {
            self.data_dir = dir.clone();
        }
        let id = self.node_id;
        if let Some(me) = self.members.iter_mut().find(|m| m.id == id) {
            if let Some(addr) = &overrides.resp_addr {
                me.resp_addr = addr.clone();
            }
            if let Some(addr) = &overrides.grpc_addr {
                me.grpc_addr = addr.clone();
            }
        }
    }

    /// Checks values and their combinations.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        self.me()?;
        if let Ok(addr) = self.me()?.resp_addr.parse::<SocketAddr>() {
            self.auth.validate(&addr)?;
        }
        if let Ok(addr) = self.me()?.grpc_addr.parse::<SocketAddr>() {
            self.security.validate(&addr)?;
        }
        if self.members.len() != 1 && self.members.len() != 3 && self.members.len() != 5 {
            bail!(
                "members: {} nodes listed; a cluster has 1, 3 or 5",
                self.members.len()
            );
        }
        for m in &self.members {
            for (field, addr) in [("resp_addr", &m.resp_addr), ("grpc_addr", &m.grpc_addr)] {
                if !is_host_port(addr) {
                    bail!(
                        "members (id {}): {field} = {addr:?} is not a host:port address (an IP, [IPv6] or a lower-case DNS name, and a port)",
                        m.id
                    );
                }
            }
        }
        self.cluster_map()?;
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir is empty");
        }
        if self.accord.tick_ms == 0 {
            bail!("accord.tick_ms must be at least 1");
        }
        if self.accord.retry_ms == 0 || self.accord.recover_after_ms == 0 {
            bail!("accord.retry_ms and accord.recover_after_ms must be at least 1");
        }
        let c = &self.controller;
        if c.tick_ms == 0 || c.lease_ms < 3 * c.tick_ms {
            bail!(
                "controller.lease_ms ({}) must be at least three controller.tick_ms ({}), and tick_ms at least 1",
                c.lease_ms,
                c.tick_ms
            );
        }
        if c.auto_split && (c.check_interval_ms == 0 || c.merge_below_bytes >= c.split_above_bytes)
        {
            bail!(
                "controller: with auto_split, check_interval_ms must be at least 1 and merge_below_bytes ({}) below split_above_bytes ({})",
                c.merge_below_bytes,
                c.split_above_bytes
            );
        }
        if self.limits.max_connections == 0 {
            bail!("limits.max_connections must be at least 1");
        }
        if self.limits.max_pipeline == 0 {
            bail!("limits.max_pipeline must be at least 1");
        }
        if self.limits.max_concurrent_scans == 0 {
            bail!("limits.max_concurrent_scans must be at least 1");
        }
        if self.limits.max_command_bytes < self.limits.max_bulk_bytes.saturating_add(64) {
            bail!(
                "limits.max_command_bytes = {} is below limits.max_bulk_bytes + 64 ({}): a command with one argument that large could not be sent",
                self.limits.max_command_bytes,
                self.limits.max_bulk_bytes.saturating_add(64)
            );
        }
        if self.limits.max_input_buffer_bytes < self.limits.max_command_bytes {
            bail!(
                "limits.max_input_buffer_bytes = {} is below limits.max_command_bytes ({}): no command that large could ever be buffered",
                self.limits.max_input_buffer_bytes,
                self.limits.max_command_bytes
            );
        }
        if self.limits.max_bulk_bytes < 1024 {
            bail!(
                "limits.max_bulk_bytes = {} is below 1024",
                self.limits.max_bulk_bytes
            );
        }
        if self.limits.max_bulk_bytes > self.max_op_bytes() {
            bail!(
                "limits.max_bulk_bytes = {} is above half of wal.record_bytes_max ({}): a command's data travels in one WAL record",
                self.limits.max_bulk_bytes,
                self.max_op_bytes()
            );
        }
        if self.limits.max_inline_bytes < 64 {
            bail!(
                "limits.max_inline_bytes = {} is below 64",
                self.limits.max_inline_bytes
            );
        }
        if self.limits.max_arguments < 3 {
            bail!(
                "limits.max_arguments = {} is below 3",
                self.limits.max_arguments
            );
        }
        if self.transport.peer_queue_batches == 0 {
            bail!("transport.peer_queue_batches must be at least 1");
        }
        self.wal.validate()?;
        self.storage.validate()?;
        Ok(())
    }

    /// This node's own `[[members]]` entry.
    ///
    /// # Errors
    /// `node_id` is not among the members.
    pub fn me(&self) -> anyhow::Result<&MemberConfig> {
        self.members
            .iter()
            .find(|m| m.id == self.node_id)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "node_id = {} is not the id of any [[members]] entry ({:?})",
                    self.node_id,
                    self.members.iter().map(|m| m.id).collect::<Vec<_>>()
                )
            })
    }

    /// The cluster map these members and split points describe.
    ///
    /// # Errors
    /// Duplicate member ids or split points out of order.
    pub fn cluster_map(&self) -> anyhow::Result<ClusterMap> {
        let members = self
            .members
            .iter()
            .map(|m| Member {
                id: NodeId(m.id),
                resp_addr: m.resp_addr.clone(),
                grpc_addr: m.grpc_addr.clone(),
            })
            .collect();
        let points: Vec<Bytes> = self
            .ranges
            .split_points
            .iter()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect();
        ClusterMap::initial(members, &points).map_err(|e| match e {
            holo_meta::MetaError::BadSplitPoint(_) => anyhow::anyhow!("ranges.split_points: {e}"),
            other => anyhow::anyhow!("members: {other}"),
        })
    }

    /// The protocol timers in the form holo-accord takes.
    pub fn accord_config(&self) -> holo_accord::Config {
        holo_accord::Config {
            fast_path_wait_us: self.accord.fast_path_wait_ms * 1_000,
            retry_us: self.accord.retry_ms * 1_000,
            recover_after_us: self.accord.recover_after_ms * 1_000,
            sync_interval_us: self.accord.sync_interval_ms * 1_000,
        }
    }

    /// Most bytes of data one command may carry: half a WAL record, leaving room for the
    /// transaction's keys and deps in the same record.
    pub fn max_op_bytes(&self) -> usize {
        self.wal.record_bytes_max as usize / 2
    }

    /// The RESP decoder limits.
    pub fn resp_limits(&self) -> holo_resp::Limits {
        holo_resp::Limits {
            bulk_bytes_max: self.limits.max_bulk_bytes,
            aggregate_len_max: self.limits.max_arguments,
            depth_max: 8,
            inline_bytes_max: self.limits.max_inline_bytes,
            frame_bytes_max: self.limits.max_command_bytes,
        }
    }
}
