//! kill -9 of node processes under write load loses no acknowledged write.
//!
//! Three `holo-node` processes run on listeners this test binds on port 0 and passes down
//! (`--resp-fd`/`--grpc-fd`). Writers set unique keys through every node; a nemesis kills
//! one node at a time with SIGKILL and restarts it, and finally kills all three at once.
//! Afterwards every acknowledged write is read back from every node.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use common::{Client, bulk, node_binary, node_toml, wait_pong};
use holo_resp::Frame;

struct ProcessCluster {
    dir: PathBuf,
    backend: String,
    addrs: Vec<(String, String)>,
    children: Vec<Option<Child>>,
    starts: usize,
}

impl ProcessCluster {
    /// [`ProcessCluster::start`], waiting until every node serves.
    async fn start_serving(dir: &Path, backend: &str) -> ProcessCluster {
        let cluster = ProcessCluster::start(dir, backend);
        for i in 0..3 {
            cluster.wait_serving(i).await;
        }
        cluster
    }

    fn start(dir: &Path, backend: &str) -> ProcessCluster {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let resp = TcpListener::bind("127.0.0.1:0").unwrap();
            let grpc = TcpListener::bind("127.0.0.1:0").unwrap();
            addrs.push((
                resp.local_addr().unwrap().to_string(),
                grpc.local_addr().unwrap().to_string(),
            ));
            listeners.push((resp, grpc));
        }
        let mut cluster = ProcessCluster {
            dir: dir.to_owned(),
            backend: backend.to_owned(),
            addrs,
            children: vec![None, None, None],
            starts: 0,
        };
        for (i, (resp, grpc)) in listeners.into_iter().enumerate() {
            cluster.spawn(i, resp, grpc);
        }
        cluster
    }

    fn spawn(&mut self, i: usize, resp: TcpListener, grpc: TcpListener) {
        let config = self.dir.join(format!("node{}.toml", i + 1));
        let data = self.dir.join(format!("node{}", i + 1));
        std::fs::write(
            &config,
            node_toml(i as u16 + 1, &data, &self.addrs, &self.backend),
        )
        .unwrap();
        self.starts += 1;
        let log =
            File::create(self.dir.join(format!("node{}.{}.log", i + 1, self.starts))).unwrap();
        let mut command = Command::new(node_binary());
        command
            .args([
                "--config",
                config.to_str().unwrap(),
                "--resp-fd",
                "3",
                "--grpc-fd",
                "4",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "warn");
        command
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: resp.into(),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: grpc.into(),
                    child_fd: 4,
                },
            ])
            .unwrap();
        let child = command.spawn().unwrap();
        // `command` owns the parent's copies of the listeners: drop them now, so a killed
        // child's ports really close.
        drop(command);
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn restart(&mut self, i: usize) {
        let resp = TcpListener::bind(&self.addrs[i].0).unwrap();
        let grpc = TcpListener::bind(&self.addrs[i].1).unwrap();
        self.spawn(i, resp, grpc);
    }

    /// The nemesis of the load tests: each of `victims` in turn killed with -9 after
    /// `every_ms` of load, restarted 300 ms later and waited for; then every node at once,
    /// with `settle_ms` of load before and after. The pauses pace the faults; nothing waits
    /// on them for a result.
    async fn kill_each_then_all(&mut self, victims: &[usize], every_ms: u64, settle_ms: u64) {
        for &victim in victims {
            tokio::time::sleep(Duration::from_millis(every_ms)).await;
            self.kill(victim);
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.restart(victim);
            self.wait_serving(victim).await;
        }
        tokio::time::sleep(Duration::from_millis(settle_ms)).await;
        self.kill_all_and_restart().await;
        tokio::time::sleep(Duration::from_millis(settle_ms)).await;
    }

    /// kill -9 of every node at once, then all restarted and serving.
    async fn kill_all_and_restart(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        for i in 0..3 {
            self.restart(i);
        }
        for i in 0..3 {
            self.wait_serving(i).await;
        }
    }

    async fn wait_serving(&self, i: usize) {
        wait_pong(&self.addrs[i].0).await;
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one writer knows at the end.
struct Written {
    /// Keys set and acknowledged, with their values.
    acked: Vec<(String, String)>,
    /// Its counter `c{id}`: INCRs acknowledged, and INCRs whose outcome is unknown.
    incr_acked: i64,
    incr_unknown: i64,
}

/// Connects to the node after `node` (and makes it `node`); `None` after a short pause if
/// it does not answer (it is down: the caller tries the next).
async fn next_node(addrs: &[String], node: &mut usize) -> Option<Client> {
    *node = (*node + 1) % addrs.len();
    match tokio::time::timeout(Duration::from_secs(1), Client::connect(&addrs[*node])).await {
        Ok(Ok(c)) => Some(c),
        _ => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            None
        }
    }
}

/// One writer: unique keys `w{id}-{n}` = `n`, and INCR of its own counter, alternately,
/// through the nodes in turn. A write whose reply never came is unknown: its key is not
/// checked, and the counter may or may not include it, but never twice.
async fn writer(id: usize, addrs: Vec<String>, stop: Arc<AtomicBool>) -> Written {
    let mut out = Written {
        acked: Vec::new(),
        incr_acked: 0,
        incr_unknown: 0,
    };
    let counter = format!("c{id}");
    let mut node = id % addrs.len();
    let mut client: Option<Client> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = next_node(&addrs, &mut node).await;
            continue;
        }
        n += 1;
        let c = client.as_mut().expect("connected");
        if n.is_multiple_of(2) {
            let reply =
                tokio::time::timeout(Duration::from_secs(5), c.cmd(&["INCR", &counter])).await;
            match reply {
                Ok(Ok(Frame::Integer(_))) => out.incr_acked += 1,
                Ok(Ok(reply)) if reply.is_error() => {
                    // `-TRYAGAIN` (never applied) keeps the count exact; anything else may
                    // have been applied.
                    if !reply
                        .as_bytes()
                        .expect("error text")
                        .starts_with(b"TRYAGAIN ")
                    {
                        out.incr_unknown += 1;
                    }
                    client = None;
                }
                Ok(Ok(reply)) => panic!("INCR answered {reply:?}"),
                _ => {
                    out.incr_unknown += 1;
                    client = None;
                }
            }
            continue;
        }
        let key = format!("w{id}-{n}");
        let value = n.to_string();
        match tokio::time::timeout(Duration::from_secs(5), c.cmd(&["SET", &key, &value])).await {
            Ok(Ok(reply)) if reply == Frame::ok() => out.acked.push((key, value)),
            Ok(Ok(reply)) => {
                assert!(reply.is_error(), "SET answered {reply:?}");
                client = None;
            }
            _ => client = None,
        }
    }
    out
}

async fn kill_nine_loses_no_acknowledged_write(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = ProcessCluster::start_serving(dir.path(), backend).await;
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = cluster.addrs.iter().map(|a| a.0.clone()).collect();
    let writers: Vec<_> = (0..4)
        .map(|id| tokio::spawn(writer(id, addrs.clone(), Arc::clone(&stop))))
        .collect();
    // One node at a time, then all three at once.
    cluster.kill_each_then_all(&[0, 1, 2, 0], 700, 500).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut counters = Vec::new();
    for (id, w) in writers.into_iter().enumerate() {
        let written = w.await.unwrap();
        acked.extend(written.acked);
        counters.push((format!("c{id}"), written.incr_acked, written.incr_unknown));
    }
    assert!(
        acked.len() > 100,
        "only {} writes were acknowledged",
        acked.len()
    );
    for i in 0..3 {
        let mut c = Client::connect(&cluster.addrs[i].0).await.unwrap();
        for chunk in acked.chunks(200) {
            let mut args = vec!["MGET"];
            args.extend(chunk.iter().map(|(k, _)| k.as_str()));
            let reply = c.cmd(&args).await.unwrap();
            let expected = Frame::Array(chunk.iter().map(|(_, v)| bulk(v)).collect());
            assert_eq!(reply, expected, "node {} lost an acknowledged write", i + 1);
        }
        for (counter, acked, unknown) in &counters {
            let value = match c.cmd(&["GET", counter]).await.unwrap() {
                Frame::Bulk(b) => String::from_utf8_lossy(&b).parse::<i64>().unwrap(),
                Frame::Null => 0,
                other => panic!("GET {counter}: {other:?}"),
            };
            assert!(
                (*acked..=acked + unknown).contains(&value),
                "node {}: {counter} = {value}, but {acked} INCRs were acknowledged and {unknown} unknown (lost or applied twice)",
                i + 1
            );
        }
    }
    eprintln!(
        "{backend}: {} acknowledged SETs and {} acknowledged INCRs read back from 3 nodes after 4 single kills and one of all nodes",
        acked.len(),
        counters.iter().map(|c| c.1).sum::<i64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_redb() {
    kill_nine_loses_no_acknowledged_write("redb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_rocksdb() {
    kill_nine_loses_no_acknowledged_write("rocksdb").await;
}

/// Sets `k{from}..k{to}` and bumps four counters through the running nodes in turn.
async fn write_keys(cluster: &ProcessCluster, from: usize, to: usize) {
    let live: Vec<&str> = (0..3)
        .filter(|i| cluster.children[*i].is_some())
        .map(|i| cluster.addrs[i].0.as_str())
        .collect();
    for i in from..to {
        let mut c = Client::connect(live[i % live.len()]).await.unwrap();
        let key = format!("k{i:04}");
        assert_eq!(c.cmd(&["SET", &key, &key]).await.unwrap(), Frame::ok());
        let counter = format!("n{}", i % 4);
        assert!(matches!(
            c.cmd(&["INCR", &counter]).await.unwrap(),
            Frame::Integer(_)
        ));
    }
}

/// WAL replay resolves each record with the map of its own epoch: records written before a
/// split, between it and a merge, and after the merge, replayed by nodes killed with -9,
/// give exactly the keys and versions the other replicas hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_replay_across_a_split_and_a_merge_matches_the_other_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = ProcessCluster::start_serving(dir.path(), "redb").await;
    let grpcs: Vec<String> = cluster.addrs.iter().map(|a| a.1.clone()).collect();
    common::wait_lease(&grpcs[0]).await;
    let admin = common::admin(&grpcs[1]).await;
    // Keys "k…" live in range 4, ["c", +inf).
    write_keys(&cluster, 0, 100).await;
    let split = admin
        .clone()
        .split(holo_proto::v1::SplitRequest {
            range: 4,
            at: Some(bytes::Bytes::from_static(b"k0050")),
            forwarded: false,
        })
        .await
        .unwrap()
        .into_inner();
    write_keys(&cluster, 100, 200).await;
    let status = common::settled(&grpcs).await;
    let right = status.ranges.last().unwrap().id;
    // Node 3 dies with the split applied and records after it in its WAL.
    cluster.kill(2);
    write_keys(&cluster, 200, 300).await;
    // If node 3 held the controller lease, the merge waits until another node takes it.
    let merged = common::eventually("the merge to run", Duration::from_secs(30), || {
        let mut admin = admin.clone();
        async move {
            let request = holo_proto::v1::MergeRequest {
                left: 4,
                right,
                forwarded: false,
            };
            match admin.merge(request).await {
                Ok(reply) => Some(reply.into_inner()),
                Err(e) if e.code() == tonic::Code::Unavailable => None,
                Err(e) => panic!("merge: {e}"),
            }
        }
    })
    .await;
    assert_eq!(merged.epoch, split.epoch + 1);
    cluster.restart(2);
    cluster.wait_serving(2).await;
    write_keys(&cluster, 300, 400).await;
    // Then all three at once, storage unflushed: every node replays its WAL.
    cluster.kill_all_and_restart().await;
    let after = common::settled(&grpcs).await;
    assert_eq!(after.epoch, merged.epoch);
    assert_eq!(after.ranges.len(), 4, "split then merged back");
    let hash = common::data_agrees(&grpcs).await;
    let mut c = Client::connect(&cluster.addrs[2].0).await.unwrap();
    for n in 0..4 {
        assert_eq!(
            c.cmd(&["GET", &format!("n{n}")]).await.unwrap(),
            bulk("100"),
            "every INCR applied once"
        );
    }
    eprintln!(
        "400 keys and 400 INCRs across a split and a merge replay alike on 3 nodes (data hash {hash:016x})"
    );
}

/// The accounts of the transfer test: one in each of three ranges.
const ACCOUNTS: [&str; 3] = ["1acct", "5acct", "9acct"];

/// Reads the three balances in one transaction and returns their total.
async fn total(c: &mut Client) -> std::io::Result<i64> {
    let mut args = vec!["MGET"];
    args.extend(ACCOUNTS);
    match c.cmd(&args).await? {
        Frame::Array(balances) => Ok(balances
            .iter()
            .map(|b| match b {
                Frame::Bulk(b) => String::from_utf8_lossy(b).parse::<i64>().unwrap(),
                other => panic!("balance {other:?}"),
            })
            .sum()),
        other if other.is_error() => Err(std::io::Error::other(format!("{other:?}"))),
        other => panic!("MGET answered {other:?}"),
    }
}

/// MULTI/EXEC transfers between accounts in three ranges, through every node in turn,
/// while nodes are killed with -9 one at a time and then all at once: each EXEC applies
/// whole or not at all, so the total never changes, in any read and on any node after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_exec_transfers_across_ranges_survive_kill_nine_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = ProcessCluster::start_serving(dir.path(), "redb").await;
    let addrs: Vec<String> = cluster.addrs.iter().map(|a| a.0.clone()).collect();
    let mut c = Client::connect(&addrs[0]).await.unwrap();
    let mut mset = vec!["MSET"];
    for a in ACCOUNTS {
        mset.extend([a, "1000"]);
    }
    assert_eq!(c.cmd(&mset).await.unwrap(), Frame::ok());
    let stop = Arc::new(AtomicBool::new(false));
    let transferers: Vec<_> = (0..4usize)
        .map(|id| {
            let addrs = addrs.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut done = 0u64;
                let mut node = id;
                let mut client: Option<Client> = None;
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if client.is_none() {
                        client = next_node(&addrs, &mut node).await;
                        continue;
                    }
                    n += 1;
                    let c = client.as_mut().expect("connected");
                    let (from, to) = (ACCOUNTS[(id + n) % 3], ACCOUNTS[(id + n + 1) % 3]);
                    let amount = (n % 7 + 1).to_string();
                    let commands = [
                        vec!["MULTI"],
                        vec!["DECRBY", from, &amount],
                        vec!["INCRBY", to, &amount],
                        vec!["EXEC"],
                    ];
                    match tokio::time::timeout(Duration::from_secs(5), c.pipeline(&commands)).await
                    {
                        Ok(Ok(replies)) if matches!(&replies[3], Frame::Array(r) if r.len() == 2) =>
                        {
                            done += 1;
                        }
                        // An error or a lost connection: applied whole or not at all.
                        _ => {
                            client = None;
                            continue;
                        }
                    }
                    match tokio::time::timeout(Duration::from_secs(5), total(c)).await {
                        Ok(Ok(sum)) => assert_eq!(sum, 3000, "a read saw a partial transfer"),
                        _ => client = None,
                    }
                }
                done
            })
        })
        .collect();
    cluster.kill_each_then_all(&[0, 1, 2], 600, 400).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = 0;
    for t in transferers {
        done += t.await.unwrap();
    }
    assert!(done > 50, "only {done} transfers were acknowledged");
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = Client::connect(addr).await.unwrap();
        assert_eq!(total(&mut c).await.unwrap(), 3000, "node {}", i + 1);
    }
    eprintln!("{done} acknowledged transfers across three ranges, total intact on 3 nodes");
}
