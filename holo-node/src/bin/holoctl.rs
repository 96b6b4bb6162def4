//! `holoctl`: the admin CLI. Talks to a node's admin gRPC service.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Members, ranges and their generations.
    Topology,
    /// Applied position per range, peer links, WAL positions.
    State,
}

fn key(k: &[u8]) -> String {
    if k.is_empty() {
        "-inf".into()
    } else {
        format!("{:?}", String::from_utf8_lossy(k))
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", args.target))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", args.target))?;
    let mut client = AdminClient::new(channel);
    match args.command {
        Command::Topology => {
            let t = client.topology(pb::TopologyRequest {}).await?.into_inner();
            if args.raw {
                println!("{t:#?}");
                return Ok(());
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
                return Ok(());
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
    }
    Ok(())
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holoctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
