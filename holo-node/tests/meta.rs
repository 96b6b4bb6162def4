//! The meta-plane on a real cluster: the persisted cluster map (a node file that disagrees
//! with it is refused, naming why), splits and merges under load through any node, and
//! the checks on operator requests.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Admin, Client, Cluster, bulk, eventually, node_toml_with};
use holo_node::Listeners;
use holo_node::config::NodeConfig;
use holo_proto::v1 as pb;
use holo_resp::Frame;
use tokio::net::TcpListener;

/// Runs node 1 of `cluster` (stopped) with its node file edited by `edit`; returns the
/// error it stops with.
async fn start_edited(cluster: &Cluster, edit: impl Fn(String) -> String) -> String {
    let data = cluster.dir.path().join("node1");
    let text = node_toml_with(1, &data, &cluster.addrs, "redb", "");
    let config = NodeConfig::parse(&edit(text)).unwrap();
    let listeners = Listeners {
        resp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let outcome = holo_node::run(config, listeners, std::future::pending()).await;
    format!("{:#}", outcome.expect_err("the node refuses to start"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_file_that_disagrees_with_the_persisted_map_is_refused() {
    let mut cluster = Cluster::start(1, "redb").await;
    cluster.stop(0).await;
    let data = cluster.dir.path().join("node1").display().to_string();

    let err = start_edited(&cluster, |t| {
        t.replace(
            r#"split_points = ["4", "8", "c"]"#,
            r#"split_points = ["4", "c"]"#,
        )
    })
    .await;
    assert!(err.contains("split_points"), "{err}");
    assert!(err.contains(&data), "names the data directory: {err}");

    let err = start_edited(&cluster, |t| {
        t.replace("grpc_addr = \"127.0.0.1:", "grpc_addr = \"127.0.0.2:")
    })
    .await;
    assert!(err.contains("members"), "{err}");

    // The file it was created with still starts it.
    cluster.restart(0).await;
    let mut c = cluster.client(0).await;
    assert_eq!(
        c.cmd(&["PING"]).await.unwrap(),
        holo_resp::Frame::Simple("PONG".into())
    );
    cluster.shutdown().await;
}

async fn admin(cluster: &Cluster, i: usize) -> Admin {
    common::admin(&cluster.addrs[i].1).await
}

async fn meta_status(cluster: &Cluster, i: usize) -> pb::MetaStatusReply {
    common::meta_status(&cluster.addrs[i].1).await
}

async fn settled(cluster: &Cluster) -> pb::MetaStatusReply {
    common::settled(&cluster.grpcs()).await
}

/// A split of `range` at `at` (its median without one), as an operator asks for it.
fn split_at(range: u64, at: Option<&'static str>) -> pb::SplitRequest {
    pb::SplitRequest {
        range,
        at: at.map(|k| bytes::Bytes::from_static(k.as_bytes())),
        forwarded: false,
    }
}

fn range_of<'a>(status: &'a pb::MetaStatusReply, key: &[u8]) -> &'a pb::RangeStatus {
    status
        .ranges
        .iter()
        .rfind(|r| r.start.as_ref() <= key)
        .expect("the ranges cover the key space")
}

/// Clients keep writing INCR counters and MSET pairs across the boundary being changed;
/// every reply is checked.
async fn load(addr: String, task: usize, stop: Arc<AtomicBool>) -> (HashMap<String, i64>, u64) {
    let mut c = Client::connect(&addr).await.unwrap();
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut rounds = 0u64;
    let keys = ["1a", "3z", "4a", "5q", "7z", "8a", "bz", "ca"];
    while !stop.load(Ordering::Relaxed) {
        let key = keys[(rounds as usize + task) % keys.len()];
        let counter = format!("{key}-n{task}");
        match c.cmd(&["INCR", &counter]).await.unwrap() {
            Frame::Integer(n) => {
                let seen = acked.entry(counter.clone()).or_default();
                assert_eq!(n, *seen + 1, "INCR {counter} after {} acknowledged", *seen);
                *seen = n;
            }
            other => panic!("INCR {counter}: {other:?}"),
        }
        // One pair across the initial boundary "4", another across "8": written together,
        // read together, always equal.
        let v = format!("{task}-{rounds}");
        let (a, b) = if rounds.is_multiple_of(2) {
            ("3m", "4m")
        } else {
            ("7m", "8m")
        };
        let (a, b) = (format!("{a}-{task}"), format!("{b}-{task}"));
        assert_eq!(c.cmd(&["MSET", &a, &v, &b, &v]).await.unwrap(), Frame::ok());
        assert_eq!(
            c.pipeline(&[vec!["MGET", &a, &b]]).await.unwrap(),
            vec![Frame::Array(vec![bulk(&v), bulk(&v)])],
            "MSET then MGET of {a} and {b}"
        );
        rounds += 1;
    }
    (acked, rounds)
}

/// Also compares what each replica counted applied per range. A planted bug makes the
/// replicas disagree and fails this test or the WAL replay test in crash.rs on every run:
/// resolving a transaction by the map current when it applies rather than by its own
/// epoch's. Finishing an operation without waiting for its history cut (its exclusive sync
/// point applied everywhere) drops the old epoch's map while transactions of it may still
/// apply; these tests see that only when such a transaction is still in flight at the
/// moment (one run in three), while the simulator's cut check in holo-accord catches it on
/// its first seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_and_merges_under_load_lose_and_repeat_nothing() {
    let cluster = Cluster::start_with(3, "redb", "sync_interval_ms = 200").await;
    let initial = settled(&cluster).await;
    assert_eq!(initial.ranges.len(), 4);
    common::wait_lease(&cluster.addrs[0].1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..3 {
        let addr = cluster.resp(task).to_owned();
        tasks.push(tokio::spawn(load(addr, task, Arc::clone(&stop))));
    }

    // Split and merge around the boundaries the clients write across, through every node
    // in turn (two of three pass the request on to the lease holder).
    let mut epoch = initial.epoch;
    let (mut splits, mut merges) = (0, 0);
    for round in 0..8usize {
        let status = settled(&cluster).await;
        assert_eq!(status.epoch, epoch, "one epoch per operation");
        let boundary: &[u8] = if round % 4 < 2 { b"4" } else { b"8" };
        let below = range_of(&status, &[boundary[0] - 1, b'z']);
        let mut client = admin(&cluster, round % 3).await;
        if below.end.as_deref() == Some(boundary) {
            let right = range_of(&status, boundary);
            let reply = client
                .merge(pb::MergeRequest {
                    left: below.id,
                    right: right.id,
                    forwarded: false,
                })
                .await
                .unwrap()
                .into_inner();
            merges += 1;
            epoch = reply.epoch;
        } else {
            // Split at the boundary itself or, every other time, at the median key.
            let at = (round % 2 == 0).then(|| bytes::Bytes::copy_from_slice(boundary));
            let target = range_of(&status, boundary).id;
            let reply = client
                .split(pb::SplitRequest {
                    range: target,
                    at,
                    forwarded: false,
                })
                .await
                .unwrap()
                .into_inner();
            splits += 1;
            epoch = reply.epoch;
        }
    }
    let last = settled(&cluster).await;
    assert_eq!(last.epoch, epoch);
    assert_eq!((last.splits, last.merges), (splits, merges));

    stop.store(true, Ordering::Relaxed);
    let mut c = cluster.client(1).await;
    for t in tasks {
        let (acked, rounds) = t.await.unwrap();
        assert!(
            rounds > 0,
            "the clients made progress during the operations"
        );
        for (counter, n) in acked {
            assert_eq!(
                c.cmd(&["GET", &counter]).await.unwrap(),
                bulk(&n.to_string()),
                "{counter}: every acknowledged INCR applied exactly once"
            );
        }
    }

    // Every replica holds the same keys and versions.
    common::data_agrees(&cluster.grpcs()).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_checked_and_refusals_explained() {
    let cluster = Cluster::start(3, "redb").await;
    common::wait_lease(&cluster.addrs[0].1).await;
    let mut client = admin(&cluster, 0).await;
    let err = client.split(split_at(99, None)).await.unwrap_err();
    assert!(err.message().contains("no range 99"), "{}", err.message());
    // Range 2 is ["4", "8"): "9" is outside it, and an empty range has no median.
    let err = client.split(split_at(2, Some("9"))).await.unwrap_err();
    assert!(
        err.message().contains("not strictly inside"),
        "{}",
        err.message()
    );
    let err = client.split(split_at(2, None)).await.unwrap_err();
    assert!(
        err.message().contains("fewer than two keys"),
        "{}",
        err.message()
    );
    let err = client
        .merge(pb::MergeRequest {
            left: 1,
            right: 3,
            forwarded: false,
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("does not end where range 3 starts"),
        "{}",
        err.message()
    );
    // A split bumps the left half's generation; the right half starts at 1.
    let first = client
        .split(split_at(1, Some("2")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.epoch, 2);
    // The new half at once: the request waits for the first split's history cut.
    let second = client
        .split(split_at(5, Some("3")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.epoch, 3);
    let status = settled(&cluster).await;
    assert_eq!(status.ranges.len(), 6);
    let generations: Vec<u64> = status.ranges.iter().map(|r| r.generation).collect();
    assert_eq!(generations, [2, 2, 1, 1, 1, 1]);
    let c = admin(&cluster, 2)
        .await
        .controller_status(pb::ControllerStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(c.lease.is_some());
    assert!(c.last_operation.contains("finish"), "{}", c.last_operation);
    cluster.shutdown().await;
}

/// Runs scripts/check_meta_plane_health.sh against node 1: (exit code, output).
fn health(cluster: &Cluster) -> (i32, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/check_meta_plane_health.sh"
    );
    let out = std::process::Command::new(script)
        .env("TARGET", &cluster.addrs[0].1)
        .env("HOLOCTL", env!("CARGO_BIN_EXE_holoctl"))
        .env("GRACE_SECS", "2")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_passes_a_healthy_cluster_and_names_an_unreachable_node() {
    let mut cluster = Cluster::start(3, "redb").await;
    common::wait_lease(&cluster.addrs[0].1).await;
    let (code, text) = tokio::task::block_in_place(|| health(&cluster));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("healthy: 3 members agree on epoch 1"),
        "{text}"
    );
    cluster.stop(2).await;
    let (code, text) = tokio::task::block_in_place(|| health(&cluster));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "UNHEALTHY: node 3 ({}) is unreachable",
            cluster.addrs[2].1
        )),
        "{text}"
    );
    cluster.shutdown().await;
}

/// With `controller.auto_split`, a range that grows past `split_above_bytes` splits at its
/// median and empty neighbours merge, with nobody asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_splits_big_ranges_and_merges_small_ones_by_itself() {
    let cluster = Cluster::start_with(
        3,
        "redb",
        "sync_interval_ms = 200\n[controller]\nauto_split = true\nsplit_above_bytes = 4000\n\
         merge_below_bytes = 100\ncheck_interval_ms = 200",
    )
    .await;
    let mut c = cluster.client(0).await;
    // About 6 KB in range 4, ["c", +inf).
    for i in 0..200 {
        let key = format!("x{i:03}");
        assert_eq!(
            c.cmd(&["SET", &key, "0123456789abcdefghij"]).await.unwrap(),
            Frame::ok()
        );
    }
    let status = eventually(
        "an automatic split and merge",
        Duration::from_secs(60),
        || async {
            let s = meta_status(&cluster, 0).await;
            (s.splits >= 1 && s.merges >= 1).then_some(s)
        },
    )
    .await;
    let done: Vec<&String> = status
        .recent
        .iter()
        .filter(|r| r.contains("split range") || r.contains("merge range"))
        .collect();
    assert!(!done.is_empty(), "{:?}", status.recent);
    let settled = settled(&cluster).await;
    // The split keys lie inside the written range.
    assert!(
        settled.ranges.iter().any(|r| r.start.starts_with(b"x")),
        "a range starts at a median key: {:?}",
        settled.ranges
    );
    cluster.shutdown().await;
}

/// With `controller.split_above_accesses_per_sec`, a range under load splits though small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_splits_a_hot_range() {
    let cluster = Cluster::start_with(
        3,
        "redb",
        "[controller]\nauto_split = true\nsplit_above_bytes = 1000000000\nmerge_below_bytes = 0\n\
         split_above_accesses_per_sec = 30\ncheck_interval_ms = 300",
    )
    .await;
    let mut c = cluster.client(0).await;
    let keys: Vec<String> = (0..10).map(|i| format!("0{i}")).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        for key in &keys {
            assert!(matches!(
                c.cmd(&["INCR", key]).await.unwrap(),
                Frame::Integer(_)
            ));
        }
        let s = meta_status(&cluster, 0).await;
        if s.splits >= 1 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no split of the hot range within 60 s: {:?}",
            s.recent
        );
    };
    assert_eq!(status.merges, 0);
    // Range 1, ["", "4"), holds the keys: it is the one split, at a key between them.
    let split = status
        .ranges
        .iter()
        .find(|r| r.start.starts_with(b"0"))
        .expect("a range starting at one of the hot keys");
    assert!(split.start.as_ref() > b"00".as_slice(), "{split:?}");
    cluster.shutdown().await;
}

/// `holoctl meta-status` lists, for each member, how many ranges it replicates and their
/// bytes (every member holds every range until ranges live on a subset of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_status_shows_what_each_member_replicates() {
    let cluster = Cluster::start(3, "redb").await;
    let mut c = cluster.client(0).await;
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(
            c.cmd(&["SET", &key, "some value"]).await.unwrap(),
            Frame::Simple("OK".into())
        );
    }
    let target = cluster.addrs[0].1.clone();
    let members = common::eventually(
        "members' bytes in meta-status",
        Duration::from_secs(20),
        || {
            let target = target.clone();
            async move {
                let out = tokio::task::spawn_blocking(move || {
                    std::process::Command::new(env!("CARGO_BIN_EXE_holoctl"))
                        .args(["--target", &target, "meta-status"])
                        .output()
                        .unwrap()
                })
                .await
                .unwrap();
                assert!(out.status.success(), "{out:?}");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let lines: Vec<String> = text
                    .lines()
                    .skip_while(|l| !l.starts_with("members ("))
                    .skip(1)
                    .take_while(|l| l.starts_with("  "))
                    .map(str::to_owned)
                    .collect();
                // Applied writes reach storage in batches: poll until they are counted.
                let counted = lines.len() == 3 && lines.iter().all(|l| !l.ends_with("bytes 0"));
                counted.then_some(lines)
            }
        },
    )
    .await;
    let ranges = meta_status(&cluster, 0).await.ranges.len();
    for (line, id) in members.iter().zip(1..) {
        assert!(
            line.trim_start().starts_with(&format!("{id} "))
                && line.contains(&format!("ranges {ranges} ")),
            "{ranges} ranges: {line}"
        );
    }
    cluster.shutdown().await;
}
