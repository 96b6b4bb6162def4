//! The `holo-node` binary: parse flags, load the TOML file, bind, run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use holo_node::{Listeners, NodeConfig, Overrides};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A HoloStore node: a Redis-protocol server backed by Accord consensus, a WAL and redb or
/// RocksDB. Everything else is in the TOML file (see config/node1.toml).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The node's TOML file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override `node_id`.
    #[arg(long)]
    node_id: Option<u16>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override this node's `resp_addr` in `[[members]]`.
    #[arg(long)]
    resp_addr: Option<String>,
    /// Override this node's `grpc_addr` in `[[members]]`.
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Serve RESP on this inherited, already listening socket instead of binding `resp_addr`
    /// (socket activation: a supervisor or test binds port 0 and passes the descriptor).
    #[arg(long, requires = "grpc_fd")]
    resp_fd: Option<i32>,
    /// Serve gRPC on this inherited, already listening socket instead of binding `grpc_addr`.
    #[arg(long, requires = "resp_fd")]
    grpc_fd: Option<i32>,
}

/// Takes ownership of a listening socket the parent process passed down.
#[allow(unsafe_code)]
fn inherited_listener(fd: i32) -> anyhow::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    anyhow::ensure!(
        fd > 2,
        "--resp-fd/--grpc-fd {fd}: not an inherited descriptor"
    );
    // SAFETY: the parent passed `fd` open for this process to own; it is adopted exactly
    // once, here at start-up, and nothing else in this process refers to it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .map_err(|e| anyhow::anyhow!("descriptor {fd} is not a TCP socket: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let overrides = Overrides {
        node_id: args.node_id,
        data_dir: args.data_dir,
        resp_addr: args.resp_addr,
        grpc_addr: args.grpc_addr,
    };
    let config = match NodeConfig::load(&args.config, &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("holo-node: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("holo-node")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("holo-node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let inherited = args.resp_fd.zip(args.grpc_fd);
    let outcome = runtime.block_on(async move {
        let listeners = match inherited {
            Some((resp, grpc)) => Listeners {
                resp: tokio::net::TcpListener::from_std(inherited_listener(resp)?)?,
                grpc: tokio::net::TcpListener::from_std(inherited_listener(grpc)?)?,
            },
            None => Listeners::bind(&config).await?,
        };
        tracing::info!(
            allocator = holo_node::allocator_name(),
            "starting node {}",
            config.node_id
        );
        holo_node::run(config, listeners, shutdown_signal()).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holo-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
