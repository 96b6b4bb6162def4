//! In-process 3-node clusters on port 0: real sockets, real WAL and storage files.

mod common;

use std::time::Duration;

use common::{Client, Cluster, bulk, counter, eventually, metrics};
use holo_resp::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_acknowledged_writes_from_any_node() {
    let cluster = Cluster::start(3, "redb").await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await);
    }
    // Keys in every range ("4", "8", "c" cut the key space).
    let keys = ["0k", "5k", "9k", "zk"];
    for round in 0..6 {
        for (k, key) in keys.iter().enumerate() {
            let writer = (round + k) % 3;
            let value = format!("v{round}");
            assert_eq!(
                clients[writer].cmd(&["SET", key, &value]).await.unwrap(),
                Frame::ok()
            );
            for (reader, client) in clients.iter_mut().enumerate() {
                assert_eq!(
                    client.cmd(&["GET", key]).await.unwrap(),
                    bulk(&value),
                    "node {} reads {key} after node {} wrote it",
                    reader + 1,
                    writer + 1
                );
            }
        }
    }
    // A multi-key write across ranges is atomic and visible everywhere.
    let reply = clients[0]
        .cmd(&["MSET", "0k", "a", "5k", "b", "9k", "c", "zk", "d"])
        .await
        .unwrap();
    assert_eq!(reply, Frame::ok());
    for client in &mut clients {
        assert_eq!(
            client
                .cmd(&["MGET", "0k", "5k", "9k", "zk", "none"])
                .await
                .unwrap(),
            Frame::Array(vec![
                bulk("a"),
                bulk("b"),
                bulk("c"),
                bulk("d"),
                Frame::Null
            ])
        );
    }
    assert_eq!(
        clients[2]
            .cmd(&["MSETNX", "zk", "x", "new", "y"])
            .await
            .unwrap(),
        Frame::Integer(0)
    );
    assert_eq!(
        clients[1].cmd(&["EXISTS", "new", "zk"]).await.unwrap(),
        Frame::Integer(1)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_concurrent_clients_lose_no_increment() {
    let cluster = Cluster::start(3, "redb").await;
    let clients_n = 6;
    let per_client = 300;
    let mut tasks = Vec::new();
    for c in 0..clients_n {
        let addr = cluster.resp(c % 3).to_owned();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await.unwrap();
            for _ in 0..per_client / 50 {
                let batch: Vec<Vec<&str>> = (0..50)
                    .map(|i| {
                        if i % 2 == 0 {
                            vec!["INCR", "counter"]
                        } else {
                            vec!["INCR", "x-other"]
                        }
                    })
                    .collect();
                for reply in client.pipeline(&batch).await.unwrap() {
                    assert!(matches!(reply, Frame::Integer(_)), "{reply:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected = (clients_n * per_client / 2) as i64;
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        assert_eq!(
            c.cmd(&["GET", "counter"]).await.unwrap(),
            bulk(&expected.to_string())
        );
        assert_eq!(
            c.cmd(&["GET", "x-other"]).await.unwrap(),
            bulk(&expected.to_string())
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_restarts_and_catches_up() {
    let mut cluster = Cluster::start(3, "redb").await;
    let mut c1 = cluster.client(0).await;
    assert_eq!(c1.cmd(&["SET", "before", "1"]).await.unwrap(), Frame::ok());
    cluster.stop(2).await;
    // Two of three replicas keep serving (the slow path needs a majority only).
    for i in 0..40 {
        let key = format!("k{i}");
        assert_eq!(
            c1.cmd(&["SET", &key, &i.to_string()]).await.unwrap(),
            Frame::ok()
        );
    }
    // Node 1's link to node 3 reports it down, so its transactions stop waiting out the
    // fast-path wait for a vote that cannot come.
    let node1 = cluster.resp(0).to_owned();
    let unreachable = move |want: u64| {
        let addr = node1.clone();
        async move {
            let mut c = Client::connect(&addr).await.ok()?;
            let text = metrics(&mut c).await?;
            (counter(&text, "holo_accord_peers_unreachable") == Some(want)).then_some(())
        }
    };
    eventually("node 1 to see node 3 down", Duration::from_secs(10), || {
        unreachable(1)
    })
    .await;
    let mut c2 = cluster.client(1).await;
    assert_eq!(c2.cmd(&["GET", "k39"]).await.unwrap(), bulk("39"));
    cluster.restart(2).await;
    eventually("node 1 to see node 3 back", Duration::from_secs(10), || {
        unreachable(0)
    })
    .await;
    let mut c3 = cluster.client(2).await;
    // Its reads run through its own replica, which must learn what it missed.
    for i in 0..40 {
        let key = format!("k{i}");
        assert_eq!(
            c3.cmd(&["GET", &key]).await.unwrap(),
            bulk(&i.to_string()),
            "{key}"
        );
    }
    assert_eq!(c3.cmd(&["GET", "before"]).await.unwrap(), bulk("1"));
    // Its storage catches up too (DBSIZE counts the node's own copy).
    eventually(
        "node 3 to hold all 41 keys",
        Duration::from_secs(20),
        || {
            let addr = cluster.resp(2).to_owned();
            async move {
                let mut c = Client::connect(&addr).await.ok()?;
                (c.cmd(&["DBSIZE"]).await.ok()? == Frame::Integer(41)).then_some(())
            }
        },
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_named_by_host_name_serve() {
    // Every address in the files is localhost:PORT: nodes bind their own and dial their
    // peers by name.
    let mut cluster = Cluster::start_named("redb", vec![String::new(); 3], Some("localhost")).await;
    assert!(cluster.resp(0).starts_with("localhost:"));
    let mut c = cluster.client(0).await;
    assert_eq!(c.cmd(&["SET", "named", "1"]).await.unwrap(), Frame::ok());
    let mut c3 = cluster.client(2).await;
    assert_eq!(c3.cmd(&["GET", "named"]).await.unwrap(), bulk("1"));
    cluster.stop(0).await;
    cluster.restart(0).await;
    let mut c1 = cluster.client(0).await;
    assert_eq!(c1.cmd(&["GET", "named"]).await.unwrap(), bulk("1"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_restarts_in_process_on_its_data() {
    let mut cluster = Cluster::start(3, "rocksdb").await;
    let mut c = cluster.client(0).await;
    assert_eq!(c.cmd(&["SET", "idle", "1"]).await.unwrap(), Frame::ok());
    // No traffic between stop and restart: the WAL and storage locks must be free anyway.
    for _ in 0..3 {
        cluster.stop(1).await;
        cluster.restart(1).await;
    }
    let mut c2 = cluster.client(1).await;
    assert_eq!(c2.cmd(&["GET", "idle"]).await.unwrap(), bulk("1"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_a_protocol_error_and_others_are_served() {
    let cluster = Cluster::start(3, "redb").await;
    let mut good = cluster.client(0).await;
    assert_eq!(good.cmd(&["SET", "k", "v"]).await.unwrap(), Frame::ok());
    for garbage in [
        &b"*1\r\n$abc\r\n"[..],
        b"$-5\r\n",
        b"*2\r\n$3\r\nGET\r\n:x\r\n",
    ] {
        let mut raw = tokio::net::TcpStream::connect(cluster.resp(0))
            .await
            .unwrap();
        raw.write_all(b"PING\r\n").await.unwrap();
        raw.write_all(garbage).await.unwrap();
        let mut reply = Vec::new();
        // The node answers the PING, then the error, then closes the connection.
        tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut reply))
            .await
            .expect("the node closes the connection")
            .unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("+PONG\r\n-ERR Protocol error"),
            "{garbage:?} got {text:?}"
        );
    }
    // An oversize bulk is refused from its header, before any of it is buffered.
    let mut raw = tokio::net::TcpStream::connect(cluster.resp(0))
        .await
        .unwrap();
    raw.write_all(b"*2\r\n$3\r\nGET\r\n$999999999999\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error"));
    // Data too large for one WAL record is refused with an error; the node keeps serving.
    let big = "x".repeat(5 * 1024 * 1024);
    let reply = good.cmd(&["MSET", "b1", &big, "b2", &big]).await.unwrap();
    assert!(
        reply
            .as_bytes()
            .is_some_and(|b| b.starts_with(b"ERR command too large")),
        "{:?}",
        reply
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    );
    // Keys in the cluster map's reserved space are refused; the connection goes on.
    let mut raw = tokio::net::TcpStream::connect(cluster.resp(0))
        .await
        .unwrap();
    let mut reserved = b"*3\r\n$3\r\nSET\r\n$10\r\n".to_vec();
    reserved.extend_from_slice(&[0xff; 8]);
    reserved.extend_from_slice(b"ab\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n");
    raw.write_all(&reserved).await.unwrap();
    let mut reply = vec![0; 256];
    let mut got = 0;
    while !String::from_utf8_lossy(&reply[..got]).contains("+PONG") {
        let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut reply[got..]))
            .await
            .expect("the node answers both")
            .unwrap();
        assert!(n > 0, "the node keeps the connection");
        got += n;
    }
    let text = String::from_utf8_lossy(&reply[..got]);
    assert!(
        text.starts_with("-ERR keys starting with eight 0xff bytes are reserved"),
        "{text:?}"
    );
    // HELLO in a pipeline changes the protocol of the replies after it only.
    let mut hello = cluster.client(2).await;
    let replies = hello
        .pipeline(&[vec!["GET", "nothing"], vec!["HELLO", "3"]])
        .await
        .unwrap();
    assert_eq!(replies[0], Frame::Null);
    assert_eq!(good.cmd(&["GET", "k"]).await.unwrap(), bulk("v"));
    // A client that disconnects with commands in flight does not disturb the node.
    let mut quitter = cluster.client(1).await;
    let _ = quitter.pipeline(&[vec!["SET", "q", "1"]]).await;
    drop(quitter);
    assert_eq!(good.cmd(&["GET", "q"]).await.unwrap(), bulk("1"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_commands_and_metrics() {
    let cluster = Cluster::start(3, "redb").await;
    let mut c = cluster.client(0).await;
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Frame::simple("PONG"));
    assert_eq!(c.cmd(&["ECHO", "hi"]).await.unwrap(), bulk("hi"));
    assert_eq!(c.cmd(&["SELECT", "0"]).await.unwrap(), Frame::ok());
    assert!(c.cmd(&["SELECT", "1"]).await.unwrap().is_error());
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME", "t1"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await.unwrap(), bulk("t1"));
    let Frame::Array(config) = c.cmd(&["CONFIG", "GET", "save"]).await.unwrap() else {
        panic!("CONFIG GET answers a flat array in RESP2")
    };
    assert_eq!(config, vec![bulk("save"), bulk("")]);
    let Frame::Map(hello) = c.cmd(&["HELLO", "3"]).await.unwrap() else {
        panic!("HELLO 3 answers a RESP3 map")
    };
    assert!(hello.contains(&(bulk("proto"), Frame::Integer(3))));
    let unknown = c.cmd(&["NOSUCH", "a"]).await.unwrap();
    assert_eq!(
        unknown,
        Frame::error("ERR unknown command 'NOSUCH', with args beginning with: 'a' ")
    );
    assert_eq!(c.cmd(&["SET", "m", "1"]).await.unwrap(), Frame::ok());
    let Frame::Bulk(metrics) = c.cmd(&["HOLOMETRICS"]).await.unwrap() else {
        panic!("HOLOMETRICS answers a bulk string")
    };
    let text = String::from_utf8_lossy(&metrics);
    for series in [
        "holo_commands_total{cmd=\"set\"} 1",
        "holo_command_duration_seconds_bucket{cmd=\"set\",le=\"+Inf\"} 1",
        "holo_accord_fast_path_total",
        "holo_wal_commit_seconds_count",
        "holo_connections 1",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    // A SET needs a majority, not every link: the one to node 2 may still be opening.
    eventually("the link to node 2", Duration::from_secs(10), || {
        let addr = cluster.resp(0).to_owned();
        async move {
            let mut c = Client::connect(&addr).await.ok()?;
            let text = common::metrics(&mut c).await?;
            text.contains("holo_peer_connected{peer=\"2\"} 1")
                .then_some(())
        }
    })
    .await;
    // INFO keyspace counts this node's copy, which applies the SET shortly after it was
    // acknowledged (a blind write is answered before storage applies it).
    let addr = cluster.resp(0).to_owned();
    eventually(
        "INFO keyspace to count the key",
        Duration::from_secs(10),
        || {
            let addr = addr.clone();
            async move {
                let mut c = Client::connect(&addr).await.ok()?;
                let Frame::Bulk(info) = c.cmd(&["INFO", "keyspace"]).await.ok()? else {
                    panic!("INFO answers a bulk string")
                };
                String::from_utf8_lossy(&info)
                    .contains("db0:keys=1")
                    .then_some(())
            }
        },
    )
    .await;
    cluster.shutdown().await;
}

/// Segment files in a node's WAL directory.
fn wal_segments(cluster: &Cluster, i: usize) -> usize {
    let dir = cluster
        .dir
        .path()
        .join(format!("node{}", i + 1))
        .join("wal");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_segments_are_released_once_every_node_applied_them() {
    // Small segments and frequent sync points, so a few megabytes span many segments.
    let extra = "sync_interval_ms = 100\n\n[wal]\nsegment_bytes_target = 65536\n";
    let mut cluster = Cluster::start_with(3, "redb", extra).await;
    let mut c = cluster.client(0).await;
    let value = "v".repeat(1000);
    for round in 0..20 {
        let commands: Vec<Vec<String>> = (0..100)
            .map(|i| vec!["SET".into(), format!("key{round}-{i}"), value.clone()])
            .collect();
        let commands: Vec<Vec<&str>> = commands
            .iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect();
        for reply in c.pipeline(&commands).await.unwrap() {
            assert_eq!(reply, Frame::ok());
        }
    }
    for i in 0..3 {
        eventually(
            &format!("node {} to release its old WAL segments", i + 1),
            Duration::from_secs(30),
            || {
                let segments = wal_segments(&cluster, i);
                let addr = cluster.resp(i).to_owned();
                async move {
                    let mut c = Client::connect(&addr).await.ok()?;
                    let Frame::Bulk(text) = c.cmd(&["HOLOMETRICS"]).await.ok()? else {
                        return None;
                    };
                    let text = String::from_utf8_lossy(&text).to_string();
                    let released = text
                        .lines()
                        .find_map(|l| l.strip_prefix("holo_wal_segments_released_total "))?
                        .trim()
                        .parse::<u64>()
                        .ok()?;
                    (released > 0 && segments <= 4).then_some(())
                }
            },
        )
        .await;
    }
    // The cut of the last released GC is saved beside the segments: a restart reads the WAL
    // from there, not from the start of the oldest segment kept.
    let wal_dir = cluster.dir.path().join("node3").join("wal");
    let cut = holo_node::checkpoint::read(&holo_node::checkpoint::path(&wal_dir))
        .unwrap()
        .expect("a replay checkpoint after segments were released");
    let first_kept = std::fs::read_dir(&wal_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".wal")?.parse::<u64>().ok()
        })
        .min()
        .unwrap();
    assert!(
        cut >= first_kept,
        "the cut {cut} is in the WAL kept (from {first_kept})"
    );
    // A node restarted on its truncated WAL still holds every key and serves them.
    cluster.stop(2).await;
    cluster.restart(2).await;
    eventually(
        "node 3 to hold all 2,000 keys",
        Duration::from_secs(20),
        || {
            let addr = cluster.resp(2).to_owned();
            async move {
                let mut c = Client::connect(&addr).await.ok()?;
                (c.cmd(&["DBSIZE"]).await.ok()? == Frame::Integer(2000)).then_some(())
            }
        },
    )
    .await;
    let mut c3 = cluster.client(2).await;
    assert_eq!(c3.cmd(&["GET", "key0-0"]).await.unwrap(), bulk(&value));
    assert_eq!(c3.cmd(&["GET", "key19-99"]).await.unwrap(), bulk(&value));
    assert_eq!(c3.cmd(&["SET", "after", "1"]).await.unwrap(), Frame::ok());
    assert_eq!(c.cmd(&["GET", "after"]).await.unwrap(), bulk("1"));
    cluster.shutdown().await;
}

/// Reads everything the node sends until it closes the connection.
async fn read_until_closed(raw: &mut tokio::net::TcpStream) -> String {
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), raw.read_to_end(&mut reply))
        .await
        .expect("the node closes the connection")
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

async fn input_buffered(c: &mut Client) -> u64 {
    let Frame::Bulk(text) = c.cmd(&["HOLOMETRICS"]).await.unwrap() else {
        panic!("HOLOMETRICS is a bulk string");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("holo_input_buffered_bytes "))
        .expect("the input budget gauge")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_input_is_bounded_per_command_and_per_node() {
    const MIB: usize = 1024 * 1024;
    let cluster = Cluster::start_with(
        3,
        "redb",
        "[limits]\nmax_bulk_bytes = 1048576\nmax_command_bytes = 3145728\nmax_input_buffer_bytes = 4194304\n",
    )
    .await;
    let mut good = cluster.client(0).await;
    // A command whose headers add up to more than max_command_bytes is refused from the
    // header that shows it: its data is never sent, let alone buffered.
    let mut raw = tokio::net::TcpStream::connect(cluster.resp(0))
        .await
        .unwrap();
    let mut header = b"*7\r\n$4\r\nMSET\r\n$1\r\na\r\n".to_vec();
    header.extend_from_slice(format!("${MIB}\r\n").as_bytes());
    header.extend(std::iter::repeat_n(b'x', MIB));
    header.extend_from_slice(format!("\r\n$1\r\nb\r\n${MIB}\r\n").as_bytes());
    header.extend(std::iter::repeat_n(b'y', MIB));
    header.extend_from_slice(format!("\r\n$1\r\nc\r\n${MIB}\r\n").as_bytes());
    raw.write_all(&header).await.unwrap();
    let text = read_until_closed(&mut raw).await;
    assert!(
        text.starts_with("-ERR Protocol error: request larger than the limit of 3145728 bytes"),
        "{text:?}"
    );
    // Two connections each hold 1.9 MiB of a command not yet complete: together they use
    // nearly all of the 4 MiB node-wide budget, and a third that needs more is refused.
    let partial = |fill: u8| {
        let mut p = b"*5\r\n$4\r\nMSET\r\n$2\r\nk1\r\n".to_vec();
        p.extend_from_slice(format!("${MIB}\r\n").as_bytes());
        p.extend(std::iter::repeat_n(fill, MIB));
        p.extend_from_slice(format!("\r\n$2\r\nk2\r\n${MIB}\r\n").as_bytes());
        p.extend(std::iter::repeat_n(fill, MIB - 100 * 1024));
        p
    };
    let mut holders = Vec::new();
    for fill in [b'1', b'2'] {
        let mut raw = tokio::net::TcpStream::connect(cluster.resp(0))
            .await
            .unwrap();
        raw.write_all(&partial(fill)).await.unwrap();
        holders.push(raw);
    }
    let held = 2 * (2 * MIB as u64 - 100 * 1024 - 64 * 1024);
    let addr = cluster.resp(0).to_owned();
    eventually(
        "both partial commands buffered",
        Duration::from_secs(30),
        || {
            let addr = addr.clone();
            async move {
                let mut c = Client::connect(&addr).await.ok()?;
                (input_buffered(&mut c).await >= held).then_some(())
            }
        },
    )
    .await;
    let mut third = tokio::net::TcpStream::connect(cluster.resp(0))
        .await
        .unwrap();
    let _ = third.write_all(&partial(b'3')).await;
    let text = read_until_closed(&mut third).await;
    assert!(
        text.starts_with("-ERR the node's input buffers are full"),
        "{text:?}"
    );
    // The holders finish their commands; the node applies them and frees the budget.
    for (raw, fill) in holders.iter_mut().zip(['1', '2']) {
        raw.write_all(&vec![fill as u8; 100 * 1024]).await.unwrap();
        raw.write_all(b"\r\n").await.unwrap();
        let mut ok = [0u8; 5];
        raw.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"+OK\r\n");
    }
    assert_eq!(input_buffered(&mut good).await, 0);
    let Frame::Bulk(v) = good.cmd(&["GET", "k2"]).await.unwrap() else {
        panic!("k2 was set");
    };
    assert_eq!(v.len(), MIB);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_storage_scans_at_once_are_all_answered_in_turn() {
    let cluster = Cluster::start(3, "redb").await;
    let mut c = cluster.client(0).await;
    for i in 0..50 {
        let key = format!("scan-{i}");
        assert_eq!(c.cmd(&["SET", &key, "v"]).await.unwrap(), Frame::ok());
    }
    // DBSIZE counts this node's applied copy, and a blind SET is answered before its apply
    // here: wait until all 50 have landed, so every count below must see them.
    eventually(
        "node 1 to apply the 50 SETs",
        Duration::from_secs(30),
        || async {
            let mut probe = cluster.client(0).await;
            matches!(probe.cmd(&["DBSIZE"]).await.ok()?, Frame::Integer(n) if n >= 50).then_some(())
        },
    )
    .await;
    // 20 connections, each pipelining 200 DBSIZE and INFO: a scan slot at a time, every
    // one answered, and the node serves other commands all along.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut client = cluster.client(0).await;
        tasks.push(tokio::spawn(async move {
            let commands: Vec<Vec<&str>> = (0..200)
                .map(|i| {
                    if i % 2 == 0 {
                        vec!["DBSIZE"]
                    } else {
                        vec!["INFO", "keyspace"]
                    }
                })
                .collect();
            client.pipeline(&commands).await.unwrap()
        }));
    }
    assert_eq!(
        c.cmd(&["SET", "during", "scans"]).await.unwrap(),
        Frame::ok()
    );
    for t in tasks {
        let replies = t.await.unwrap();
        assert_eq!(replies.len(), 200);
        for (i, reply) in replies.iter().enumerate() {
            match reply {
                Frame::Integer(n) if i % 2 == 0 => assert!(*n >= 50, "DBSIZE {n}"),
                Frame::Bulk(text) if i % 2 == 1 => {
                    assert!(String::from_utf8_lossy(text).contains("db0:keys="))
                }
                other => panic!("reply {i}: {other:?}"),
            }
        }
    }
    assert_eq!(c.cmd(&["GET", "during"]).await.unwrap(), bulk("scans"));
    cluster.shutdown().await;
}
