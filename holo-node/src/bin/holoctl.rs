//! `holoctl`: the admin CLI. Talks to a node's admin gRPC service.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use holo_node::peer_auth::{ClientSecurity, SecurityConfig, error_chain};
use holo_proto::v1 as pb;
use holo_proto::v1::admin_client::AdminClient;

/// Inspect a HoloStore node.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The node's gRPC address (host:port).
    #[arg(long, default_value = "127.0.0.1:15051")]
    target: String,
    /// Print JSON-like raw output instead of tables.
    #[arg(long)]
    raw: bool,
    /// The cluster secret, for a cluster whose nodes set `security.cluster_secret_file`.
    #[arg(long, env = "HOLO_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// For a cluster on mutual TLS: a client certificate signed by the cluster's CA (PEM).
    #[arg(long, env = "HOLO_TLS_CERT_FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "HOLO_TLS_KEY_FILE", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM), which the nodes' certificates are checked against.
    #[arg(long, env = "HOLO_TLS_CA_FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// The name the nodes' certificates carry (`security.tls_server_name`), if they do not
    /// name their addresses.
    #[arg(long, env = "HOLO_TLS_SERVER_NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Members, ranges and their generations.
    Topology,
    /// Applied position per range, peer links, WAL positions.
    State,
    /// The meta-plane: epoch and map hash on every member (an unreachable one is named),
    /// meta range replicas and applied positions, ranges with their sizes, operations in
    /// flight, members, the lease and the latest meta commands.
    MetaStatus,
    /// The controller lease: holder, term, time left, and the last operation.
    ControllerStatus,
    /// Split a range at KEY, or at its median key without one.
    Split {
        range: u64,
        /// The first key of the new right-hand range (bytes as given).
        key: Option<String>,
    },
    /// Merge range RIGHT into its left neighbour LEFT (same replicas).
    Merge { left: u64, right: u64 },
    /// A hash of every stored key and version on every member (replicas that applied the
    /// same history agree).
    DataHash,
    /// Exits 0 when the meta-plane is healthy; otherwise names every problem and exits 1
    /// (what scripts/check_meta_plane_health.sh runs).
    Health {
        /// How long members may disagree on the map (an epoch in flight) before it counts.
        #[arg(long, default_value_t = 10)]
        grace_secs: u64,
        /// Age after which an operation in flight is stuck.
        #[arg(long, default_value_t = 60)]
        stuck_secs: u64,
    },
}

type Client = holo_node::admin::AdminClient;

/// How every call reaches a node (set once from the arguments).
static SECURITY: std::sync::OnceLock<ClientSecurity> = std::sync::OnceLock::new();

async fn connect(addr: &str) -> anyhow::Result<Client> {
    let security = SECURITY.get().cloned().unwrap_or_default();
    let endpoint = security
        .endpoint(addr)?
        .connect_timeout(std::time::Duration::from_secs(3))
        // A split or merge may wait 15 s for an operation on its ranges to finish, at this
        // node and again at the lease holder, then up to 10 s for its decision.
        .timeout(std::time::Duration::from_secs(60));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| {
            let hint = if security.uses_tls() {
                " (with TLS: is the node's certificate signed by --tls-ca, and does it name this address or --tls-server-name?)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot connect to {addr}: {}{hint}", error_chain(&e))
        })?;
    Ok(AdminClient::with_interceptor(channel, security.token))
}

/// What one member said about the meta-plane, or why it could not be asked.
struct View {
    id: u32,
    addr: String,
    status: Result<pb::MetaStatusReply, String>,
}

/// Asks every member of the target's map for its view (without sizes).
async fn views(target: &pb::MetaStatusReply) -> Vec<View> {
    let mut out = Vec::new();
    for m in &target.members {
        let status = match connect(&m.grpc_addr).await {
            Ok(mut c) => c
                .meta_status(pb::MetaStatusRequest { sizes: false })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|e| e.message().to_owned()),
            Err(e) => Err(e.to_string()),
        };
        out.push(View {
            id: m.id,
            addr: m.grpc_addr.clone(),
            status,
        });
    }
    out
}

fn span(start: &[u8], end: Option<&[u8]>) -> String {
    format!("[{}, {})", key(start), end.map_or("+inf".into(), key))
}

fn lease_line(lease: Option<&pb::Lease>, now_us: u64) -> String {
    match lease {
        None => "no lease taken yet".into(),
        Some(l) if l.expires_us > now_us => format!(
            "held by node {} at term {}, {:.1} s left",
            l.holder,
            l.term,
            (l.expires_us - now_us) as f64 / 1e6
        ),
        Some(l) => format!(
            "EXPIRED {:.1} s ago (node {}, term {})",
            (now_us - l.expires_us) as f64 / 1e6,
            l.holder,
            l.term
        ),
    }
}

/// The problems a healthy meta-plane has none of, as seen from `target` and the members.
fn problems(
    target: &pb::MetaStatusReply,
    views: &[View],
    stuck_secs: u64,
    check_agreement: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for v in views {
        if let Err(e) = &v.status {
            out.push(format!("node {} ({}) is unreachable: {e}", v.id, v.addr));
        }
    }
    if check_agreement {
        let maps: std::collections::BTreeSet<(u64, u64)> = views
            .iter()
            .filter_map(|v| v.status.as_ref().ok())
            .map(|s| (s.epoch, s.map_hash))
            .collect();
        if maps.len() > 1 {
            let each: Vec<String> = views
                .iter()
                .filter_map(|v| {
                    let s = v.status.as_ref().ok()?;
                    Some(format!(
                        "node {}: epoch {} hash {:016x}",
                        v.id, s.epoch, s.map_hash
                    ))
                })
                .collect();
            out.push(format!(
                "members disagree on the cluster map: {}",
                each.join(", ")
            ));
        }
    }
    let members: Vec<u32> = target.members.iter().map(|m| m.id).collect();
    let mut expected_start: &[u8] = &[];
    for (i, r) in target.ranges.iter().enumerate() {
        if r.start.as_ref() != expected_start {
            out.push(format!(
                "range {} starts at {} where the previous ends at {}: a gap or an overlap",
                r.id,
                key(&r.start),
                key(expected_start)
            ));
        }
        match &r.end {
            Some(end) => expected_start = end,
            None if i + 1 == target.ranges.len() => {}
            None => out.push(format!("range {} is unbounded but not the last", r.id)),
        }
        let missing: Vec<u32> = members
            .iter()
            .copied()
            .filter(|m| !r.replicas.contains(m))
            .take(members.len().min(3).saturating_sub(r.replicas.len()))
            .collect();
        if r.replicas.len() < members.len().min(3) {
            out.push(format!(
                "range {} has {} replicas {:?}, fewer than {} (not on {missing:?})",
                r.id,
                r.replicas.len(),
                r.replicas,
                members.len().min(3)
            ));
        }
        for n in &r.replicas {
            if !members.contains(n) {
                out.push(format!(
                    "range {} is replicated on node {n}, not a member",
                    r.id
                ));
            }
        }
    }
    if target.ranges.last().is_some_and(|r| r.end.is_some()) || target.ranges.is_empty() {
        out.push("the ranges do not reach the end of the key space".into());
    }
    for op in &target.operations {
        if op.age_ms > stuck_secs * 1000 {
            out.push(format!(
                "operation {} ({}: {}) is stuck in phase {} for {} s",
                op.id,
                op.kind,
                op.detail,
                op.phase,
                op.age_ms / 1000
            ));
        }
    }
    match &target.lease {
        None => out.push("no node holds the controller lease".into()),
        Some(l) if l.expires_us <= target.now_us => out.push(format!(
            "the controller lease {}",
            lease_line(Some(l), target.now_us)
        )),
        Some(_) => {}
    }
    out
}

fn key(k: &[u8]) -> String {
    if k.is_empty() {
        "-inf".into()
    } else {
        format!("{:?}", String::from_utf8_lossy(k))
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let flags = SecurityConfig {
        cluster_secret_file: args.cluster_secret_file.clone(),
        tls_cert_file: args.tls_cert.clone(),
        tls_key_file: args.tls_key.clone(),
        tls_ca_file: args.tls_ca.clone(),
        tls_server_name: args.tls_server_name.clone(),
        ..SecurityConfig::default()
    };
    let _ = SECURITY.set(flags.client()?);
    let mut client = connect(&args.target).await?;
    match args.command {
        Command::Topology => {
            let t = client.topology(pb::TopologyRequest {}).await?.into_inner();
            if args.raw {
                println!("{t:#?}");
                return Ok(true);
            }
            println!("node {} sees {} members:", t.node_id, t.members.len());
            println!("  {:<4} {:<22} {:<22}", "id", "resp", "grpc");
            for m in &t.members {
                println!("  {:<4} {:<22} {:<22}", m.id, m.resp_addr, m.grpc_addr);
            }
            println!("{} ranges:", t.ranges.len());
            println!(
                "  {:<4} {:<12} {:<12} {:<10} replicas",
                "id", "start", "end", "generation"
            );
            for r in &t.ranges {
                let end = r.end.as_deref().map_or("+inf".into(), key);
                println!(
                    "  {:<4} {:<12} {:<12} {:<10} {:?}",
                    r.id,
                    key(&r.start),
                    end,
                    r.generation,
                    r.replicas
                );
            }
        }
        Command::State => {
            let s = client.state(pb::StateRequest {}).await?.into_inner();
            if args.raw {
                println!("{s:#?}");
                return Ok(true);
            }
            println!(
                "node {}: up {} s, coordinating {}, commands in memory {}, WAL next lsn {} (durable below {})",
                s.node_id,
                s.uptime_secs,
                s.coordinating,
                s.commands,
                s.wal_next_lsn,
                s.wal_durable_below
            );
            println!("  {:<6} {:<10} applied", "range", "generation");
            for r in &s.ranges {
                println!("  {:<6} {:<10} {}", r.id, r.generation, r.applied_index);
            }
            println!(
                "  {:<6} {:<10} {:<12} dropped",
                "peer", "connected", "batches"
            );
            for p in &s.peers {
                println!(
                    "  {:<6} {:<10} {:<12} {}",
                    p.id, p.connected, p.envelopes_sent, p.envelopes_dropped
                );
            }
        }
        Command::MetaStatus => {
            let t = client
                .meta_status(pb::MetaStatusRequest { sizes: true })
                .await?
                .into_inner();
            if args.raw {
                println!("{t:#?}");
                return Ok(true);
            }
            let views = views(&t).await;
            println!("cluster map per member:");
            println!(
                "  {:<5} {:<22} {:<7} {:<18} {:<13} {:<14} meta applied",
                "node", "grpc", "epoch", "map hash", "accord epoch", "oldest epoch"
            );
            for v in &views {
                match &v.status {
                    Ok(s) => println!(
                        "  {:<5} {:<22} {:<7} {:<18} {:<13} {:<14} {} (at {})",
                        v.id,
                        v.addr,
                        s.epoch,
                        format!("{:016x}", s.map_hash),
                        s.accord_epoch,
                        s.oldest_epoch,
                        s.meta_applied_index,
                        s.meta_applied_at
                    ),
                    Err(e) => println!("  {:<5} {:<22} UNREACHABLE: {e}", v.id, v.addr),
                }
            }
            println!("meta range replicas: {:?}", t.meta_replicas);
            println!(
                "ranges (as node {} sees them; sizes from its storage):",
                t.node_id
            );
            println!(
                "  {:<5} {:<28} {:<11} {:<10} {:<10} {:<9} {:<10} applied",
                "id", "span", "generation", "replicas", "state", "keys", "bytes"
            );
            for r in &t.ranges {
                println!(
                    "  {:<5} {:<28} {:<11} {:<10} {:<10} {:<9} {:<10} {}",
                    r.id,
                    span(&r.start, r.end.as_deref()),
                    r.generation,
                    format!("{:?}", r.replicas),
                    r.state,
                    r.keys,
                    r.bytes,
                    r.applied_index
                );
            }
            if t.operations.is_empty() {
                println!("operations in flight: none");
            } else {
                println!("operations in flight:");
                for op in &t.operations {
                    println!(
                        "  {} {} ({}): phase {}, epoch {}, age {:.1} s",
                        op.id,
                        op.kind,
                        op.detail,
                        op.phase,
                        op.epoch,
                        op.age_ms as f64 / 1000.0
                    );
                }
            }
            println!(
                "epochs kept: {}..={} (GC floor in epoch {}); {} splits and {} merges so far",
                t.oldest_epoch, t.epoch, t.gc_floor_epoch, t.splits, t.merges
            );
            println!(
                "members (the ranges each replicates, and their bytes as node {} sees them):",
                t.node_id
            );
            for m in &t.members {
                let held: Vec<&pb::RangeStatus> = t
                    .ranges
                    .iter()
                    .filter(|r| r.replicas.contains(&m.id))
                    .collect();
                println!(
                    "  {:<4} resp {:<22} grpc {:<22} ranges {:<5} bytes {}",
                    m.id,
                    m.resp_addr,
                    m.grpc_addr,
                    held.len(),
                    held.iter().map(|r| r.bytes).sum::<u64>()
                );
            }
            println!(
                "controller lease: {}",
                lease_line(t.lease.as_ref(), t.now_us)
            );
            println!("latest meta commands:");
            for r in &t.recent {
                println!("  {r}");
            }
        }
        Command::ControllerStatus => {
            let c = client
                .controller_status(pb::ControllerStatusRequest {})
                .await?
                .into_inner();
            if args.raw {
                println!("{c:#?}");
                return Ok(true);
            }
            println!("lease: {}", lease_line(c.lease.as_ref(), c.now_us));
            println!(
                "node {} {} operations; automatic splits and merges {}",
                c.node_id,
                if c.driving {
                    "drives"
                } else {
                    "does not drive"
                },
                if c.auto_split { "on" } else { "off" }
            );
            println!(
                "last operation: {}",
                if c.last_operation.is_empty() {
                    "none yet"
                } else {
                    &c.last_operation
                }
            );
        }
        Command::Split { range, key } => {
            let r = client
                .split(pb::SplitRequest {
                    range,
                    at: key.map(|k| k.into_bytes().into()),
                    forwarded: false,
                })
                .await
                .map_err(|e| anyhow::anyhow!("split refused: {}", e.message()))?
                .into_inner();
            println!("{} (controller: node {})", r.detail, r.controller);
        }
        Command::Merge { left, right } => {
            let r = client
                .merge(pb::MergeRequest {
                    left,
                    right,
                    forwarded: false,
                })
                .await
                .map_err(|e| anyhow::anyhow!("merge refused: {}", e.message()))?
                .into_inner();
            println!("{} (controller: node {})", r.detail, r.controller);
        }
        Command::DataHash => {
            let t = client
                .meta_status(pb::MetaStatusRequest { sizes: false })
                .await?
                .into_inner();
            let mut agree = std::collections::BTreeSet::new();
            let mut all = true;
            for m in &t.members {
                let reply = match connect(&m.grpc_addr).await {
                    Ok(mut c) => c
                        .data_hash(pb::DataHashRequest {})
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|e| e.message().to_owned()),
                    Err(e) => Err(e.to_string()),
                };
                match reply {
                    Ok(h) => {
                        println!(
                            "node {}: hash {:016x} over {} keys, {} applied",
                            m.id, h.hash, h.keys, h.applied_total
                        );
                        agree.insert(h.hash);
                    }
                    Err(e) => {
                        println!("node {}: UNREACHABLE: {e}", m.id);
                        all = false;
                    }
                }
            }
            return Ok(all && agree.len() == 1);
        }
        Command::Health {
            grace_secs,
            stuck_secs,
        } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(grace_secs);
            loop {
                let t = client
                    .meta_status(pb::MetaStatusRequest { sizes: false })
                    .await?
                    .into_inner();
                let views = views(&t).await;
                let all = problems(&t, &views, stuck_secs, true);
                if all.is_empty() {
                    println!(
                        "healthy: {} members agree on epoch {}, {} ranges, lease {}",
                        views.len(),
                        t.epoch,
                        t.ranges.len(),
                        lease_line(t.lease.as_ref(), t.now_us)
                    );
                    return Ok(true);
                }
                // Members disagreeing may be an epoch in flight: look again until the
                // grace period is over. Anything else is reported at once.
                let past_grace = std::time::Instant::now() >= deadline;
                if past_grace || !problems(&t, &views, stuck_secs, false).is_empty() {
                    for p in &all {
                        println!("UNHEALTHY: {p}");
                    }
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("holoctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // 2, not 1: the question could not be asked (1 is a "no" from health or
            // data-hash).
            eprintln!("holoctl: {e:#}");
            // A call in clear to a TLS port connects, then fails below gRPC (an HTTP/2 frame
            // error or a closed pipe, depending on timing): a status with a transport cause,
            // not one the node sent.
            let plain = SECURITY.get().is_none_or(|s| !s.uses_tls());
            let below_grpc = e
                .downcast_ref::<tonic::Status>()
                .is_some_and(|s| std::error::Error::source(s).is_some());
            if plain && below_grpc {
                eprintln!(
                    "holoctl: the call failed below gRPC; the node may serve gRPC over TLS: pass --tls-ca, --tls-cert and --tls-key"
                );
            }
            ExitCode::from(2)
        }
    }
}
