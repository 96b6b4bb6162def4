//! Test helpers: a small RESP client, in-process clusters on port 0 and process clusters
//! whose listeners the test binds and passes down (no port is picked by bind-and-release).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use holo_node::{Listeners, NodeConfig};
use holo_resp::{Frame, RespCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// A plain RESP client over one connection.
pub struct Client {
    framed: Framed<TcpStream, RespCodec>,
}

impl Client {
    pub async fn connect(addr: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            framed: Framed::new(stream, RespCodec::default()),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn cmd(&mut self, args: &[&str]) -> std::io::Result<Frame> {
        Ok(self.pipeline(&[args.to_vec()]).await?.remove(0))
    }

    /// Sends every command, then reads every reply.
    pub async fn pipeline(&mut self, commands: &[Vec<&str>]) -> std::io::Result<Vec<Frame>> {
        for args in commands {
            let frame = Frame::command(args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())));
            self.framed
                .feed(frame)
                .await
                .map_err(std::io::Error::other)?;
        }
        SinkExt::<Frame>::flush(&mut self.framed)
            .await
            .map_err(std::io::Error::other)?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            match self.framed.next().await {
                Some(Ok(frame)) => replies.push(frame),
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(replies)
    }
}

/// The HOLOMETRICS text of the node `c` is connected to; `None` if it does not answer.
pub async fn metrics(c: &mut Client) -> Option<String> {
    match c.cmd(&["HOLOMETRICS"]).await.ok()? {
        Frame::Bulk(text) => Some(String::from_utf8_lossy(&text).into_owned()),
        _ => None,
    }
}

/// Counter `name` in a HOLOMETRICS text.
pub fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Polls `check` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the node at `addr` answers PING (with PONG, or NOAUTH when it requires a
/// password).
pub async fn wait_pong(addr: &str) {
    let addr = addr.to_owned();
    eventually("the node to answer PING", Duration::from_secs(60), || {
        let addr = addr.clone();
        async move {
            let mut c = Client::connect(&addr).await.ok()?;
            match c.cmd(&["PING"]).await.ok()? {
                Frame::Simple(s) if &s[..] == b"PONG" => Some(()),
                Frame::Error(e) if e.starts_with(b"NOAUTH") => Some(()),
                _ => None,
            }
        }
    })
    .await;
}

/// TOML text of one node's file.
pub fn node_toml(id: u16, data_dir: &Path, addrs: &[(String, String)], backend: &str) -> String {
    node_toml_with(id, data_dir, addrs, backend, "")
}

/// As [`node_toml`], with `extra` appended inside `[accord]` (more tables may follow it).
pub fn node_toml_with(
    id: u16,
    data_dir: &Path,
    addrs: &[(String, String)],
    backend: &str,
    extra: &str,
) -> String {
    let mut text = format!(
        "node_id = {id}\ndata_dir = {:?}\n\n[ranges]\nsplit_points = [\"4\", \"8\", \"c\"]\n\n[storage]\nbackend = \"{backend}\"\n\n[accord]\nrecover_after_ms = 300\nretry_ms = 100\n{extra}\n",
        data_dir.display().to_string()
    );
    for (i, (resp, grpc)) in addrs.iter().enumerate() {
        text.push_str(&format!(
            "[[members]]\nid = {}\nresp_addr = \"{resp}\"\ngrpc_addr = \"{grpc}\"\n\n",
            i + 1
        ));
    }
    text
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Nodes running as tasks of the test's runtime, each on its own port-0 listeners.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<(String, String)>,
    backend: String,
    /// Each node's `extra` (see [`node_toml_with`]); a restart reads it again.
    pub extras: Vec<String>,
    /// The addresses each node's listeners were bound to (the same as `addrs` unless the
    /// files name a host): a restart binds exactly these again.
    bound: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
    nodes: Vec<Option<Running>>,
}

impl Cluster {
    pub async fn start(n: usize, backend: &str) -> Cluster {
        Cluster::start_with(n, backend, "").await
    }

    /// A cluster whose node files get `extra` (see [`node_toml_with`]).
    pub async fn start_with(n: usize, backend: &str, extra: &str) -> Cluster {
        Cluster::start_each(backend, vec![extra.to_owned(); n]).await
    }

    /// A cluster of one node per entry of `extras`, each file getting its own.
    pub async fn start_each(backend: &str, extras: Vec<String>) -> Cluster {
        Cluster::start_named(backend, extras, None).await
    }

    /// As [`Cluster::start_each`], with every member's addresses written with the host name
    /// `host` (which must resolve to 127.0.0.1) instead of the IP, if one is given.
    pub async fn start_named(backend: &str, extras: Vec<String>, host: Option<&str>) -> Cluster {
        let n = extras.len();
        let dir = tempfile::tempdir().unwrap();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let mut bound = Vec::new();
        for _ in 0..n {
            let resp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let named = |a: std::net::SocketAddr| match host {
                Some(host) => format!("{host}:{}", a.port()),
                None => a.to_string(),
            };
            let (resp_at, grpc_at) = (resp.local_addr().unwrap(), grpc.local_addr().unwrap());
            addrs.push((named(resp_at), named(grpc_at)));
            bound.push((resp_at, grpc_at));
            listeners.push(Listeners { resp, grpc });
        }
        let mut cluster = Cluster {
            dir,
            addrs,
            backend: backend.to_owned(),
            extras,
            bound,
            nodes: (0..n).map(|_| None).collect(),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            cluster.launch(i, l);
        }
        for i in 0..n {
            cluster.wait_serving(i).await;
        }
        cluster
    }

    pub fn config(&self, i: usize) -> NodeConfig {
        let data = self.dir.path().join(format!("node{}", i + 1));
        let text = node_toml_with(
            i as u16 + 1,
            &data,
            &self.addrs,
            &self.backend,
            &self.extras[i],
        );
        NodeConfig::parse(&text).unwrap()
    }

    fn launch(&mut self, i: usize, listeners: Listeners) {
        let config = self.config(i);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(holo_node::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        self.nodes[i] = Some(Running { stop, task });
    }

    pub fn resp(&self, i: usize) -> &str {
        &self.addrs[i].0
    }

    /// Every node's gRPC address.
    pub fn grpcs(&self) -> Vec<String> {
        self.addrs.iter().map(|a| a.1.clone()).collect()
    }

    pub async fn client(&self, i: usize) -> Client {
        Client::connect(self.resp(i)).await.unwrap()
    }

    pub async fn wait_serving(&self, i: usize) {
        wait_pong(self.resp(i)).await;
    }

    /// Stops node `i` (a clean shutdown of its tasks; its files stay).
    pub async fn stop(&mut self, i: usize) {
        let running = self.nodes[i].take().expect("node is running");
        let _ = running.stop.send(());
        running.task.await.unwrap().unwrap();
    }

    /// Starts node `i` again on the ports it had.
    pub async fn restart(&mut self, i: usize) {
        let resp = TcpListener::bind(self.bound[i].0).await.unwrap();
        let grpc = TcpListener::bind(self.bound[i].1).await.unwrap();
        self.launch(i, Listeners { resp, grpc });
        self.wait_serving(i).await;
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// The holo-node binary cargo built for these tests.
pub fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_holo-node"))
}

pub type Admin = holo_proto::v1::admin_client::AdminClient<tonic::transport::Channel>;

/// The admin service of the node whose gRPC address is `grpc`.
pub async fn admin(grpc: &str) -> Admin {
    Admin::connect(format!("http://{grpc}")).await.unwrap()
}

/// The meta-plane as the node at `grpc` applied it.
pub async fn meta_status(grpc: &str) -> holo_proto::v1::MetaStatusReply {
    admin(grpc)
        .await
        .meta_status(holo_proto::v1::MetaStatusRequest { sizes: false })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until the node at `grpc` sees a controller lease holder.
pub async fn wait_lease(grpc: &str) {
    eventually("a controller lease", Duration::from_secs(30), || async {
        meta_status(grpc).await.lease.map(|_| ())
    })
    .await;
}

/// Waits until every node at `grpcs` applied the same map with no operation in flight
/// and every earlier epoch retired, and returns it.
pub async fn settled(grpcs: &[String]) -> holo_proto::v1::MetaStatusReply {
    eventually(
        "every node to agree on a map with nothing in flight",
        Duration::from_secs(60),
        || async {
            let mut all = Vec::new();
            for grpc in grpcs {
                all.push(meta_status(grpc).await);
            }
            let first = &all[0];
            all.iter()
                .all(|s| {
                    s.epoch == first.epoch
                        && s.map_hash == first.map_hash
                        && s.operations.is_empty()
                        && s.oldest_epoch == s.epoch
                        && s.accord_epoch == s.epoch
                })
                .then(|| first.clone())
        },
    )
    .await
}

/// Waits until every node at `grpcs` holds the same keys and versions and counted the same
/// transactions applied in each range (each counted in the range of its own epoch's map,
/// also when replayed); returns the data hash.
pub async fn data_agrees(grpcs: &[String]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut seen = Vec::new();
        for grpc in grpcs {
            let mut admin = admin(grpc).await;
            let h = admin
                .data_hash(holo_proto::v1::DataHashRequest {})
                .await
                .map(tonic::Response::into_inner);
            let applied = admin.state(holo_proto::v1::StateRequest {}).await.map(|s| {
                s.into_inner()
                    .ranges
                    .iter()
                    .map(|r| (r.id, r.applied_index))
                    .collect::<Vec<_>>()
            });
            match (h, applied) {
                (Ok(h), Ok(applied)) => seen.push(((h.hash, applied), h.keys)),
                (h, a) => seen.push(((0, vec![]), u64::from(h.is_err() || a.is_err()))),
            }
        }
        if seen.iter().all(|s| s.0 == seen[0].0) && seen[0].0.0 != 0 {
            return seen[0].0.0;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas' data still differ after 60 s: (hash, applied per range), keys: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
