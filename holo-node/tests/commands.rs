//! The Redis surface beyond strings on in-process 3-node clusters: expiry, locks,
//! MULTI/EXEC and WATCH across ranges, authentication, clients, keyspace scans.

mod common;

use std::time::Duration;

use common::{Client, Cluster, bulk, counter, eventually, metrics};
use holo_resp::Frame;

fn int(frame: &Frame) -> i64 {
    match frame {
        Frame::Integer(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// Runs MULTI, `commands`, EXEC on `c` and returns EXEC's reply.
async fn transaction(c: &mut Client, commands: &[Vec<&str>]) -> Frame {
    let mut all = vec![vec!["MULTI"]];
    all.extend(commands.iter().cloned());
    all.push(vec!["EXEC"]);
    let mut replies = c.pipeline(&all).await.unwrap();
    assert_eq!(replies[0], Frame::ok());
    for queued in &replies[1..replies.len() - 1] {
        assert_eq!(queued, &Frame::simple("QUEUED"));
    }
    replies.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expires_at_one_point_of_the_history_on_every_node() {
    let cluster = Cluster::start(3, "redb").await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await);
    }
    assert_eq!(
        clients[0]
            .cmd(&["SET", "5k", "v", "PX", "300"])
            .await
            .unwrap(),
        Frame::ok()
    );
    // Each transaction reads the key and takes the next number of a counter, through every
    // node in turn: ordered by the counter, the key is there, then gone for good.
    let mut seen = Vec::new();
    let mut after_gone = 0;
    let mut round = 0usize;
    while after_gone < 30 {
        let c = &mut clients[round % 3];
        round += 1;
        let reply = transaction(c, &[vec!["EXISTS", "5k"], vec!["INCR", "1seq"]]).await;
        let Frame::Array(items) = reply else {
            panic!("EXEC answered {reply:?}");
        };
        let (exists, seq) = (int(&items[0]), int(&items[1]));
        seen.push((seq, exists));
        if exists == 0 {
            after_gone += 1;
        }
        assert!(round < 100_000, "the key never expired");
    }
    seen.sort_unstable();
    let first_gone = seen.iter().position(|(_, e)| *e == 0).unwrap();
    assert!(first_gone > 0, "the key was never seen before it expired");
    assert!(
        seen[first_gone..].iter().all(|(_, e)| *e == 0),
        "the key came back after it expired: {seen:?}"
    );
    for c in &mut clients {
        assert_eq!(c.cmd(&["GET", "5k"]).await.unwrap(), Frame::Null);
        assert_eq!(c.cmd(&["TTL", "5k"]).await.unwrap(), Frame::Integer(-2));
    }
    // Writes that depend on expiry, racing it: every replica decides them alike, so the
    // replicas' data stays the same.
    let keys: Vec<String> = (0..40).map(|j| format!("{:x}exp{j}", j % 16)).collect();
    for (j, key) in keys.iter().enumerate() {
        let px = (20 + j).to_string();
        clients[j % 3]
            .cmd(&["SET", key, "v", "PX", &px])
            .await
            .unwrap();
    }
    for round in 0..60 {
        let batch: Vec<Vec<&str>> = keys
            .iter()
            .map(|k| vec!["SET", k.as_str(), "w", "NX"])
            .collect();
        clients[round % 3].pipeline(&batch).await.unwrap();
    }
    common::data_agrees(&cluster.grpcs()).await;
    // The lease holder deletes it from storage in the background.
    eventually(
        "the expired key purged",
        Duration::from_secs(30),
        || async {
            let mut purged = 0;
            for i in 0..3 {
                let text = metrics(&mut cluster.client(i).await).await?;
                purged += counter(&text, "holo_expired_keys_purged_total").unwrap_or(0);
            }
            (purged >= 1).then_some(())
        },
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_refused_to_others_until_it_expires_through_any_node() {
    let cluster = Cluster::start(3, "redb").await;
    let mut a = cluster.client(0).await;
    let mut b = cluster.client(1).await;
    let mut c = cluster.client(2).await;
    assert_eq!(
        a.cmd(&["SET", "lock", "token-a", "NX", "PX", "500"])
            .await
            .unwrap(),
        Frame::ok()
    );
    // Until it expires, every other attempt is refused, through any node, and the holder's
    // token stays.
    let mut refused = 0;
    let taken_by = loop {
        let (who, client) = if refused % 2 == 0 {
            ("b", &mut b)
        } else {
            ("c", &mut c)
        };
        let token = format!("token-{who}");
        match client
            .cmd(&["SET", "lock", &token, "NX", "PX", "5000"])
            .await
            .unwrap()
        {
            Frame::Null => {
                refused += 1;
                let holder = a.cmd(&["GET", "lock"]).await.unwrap();
                assert!(
                    holder == bulk("token-a") || holder == Frame::Null,
                    "the lock is held by {holder:?} though nobody else took it"
                );
            }
            ok if ok == Frame::ok() => break token,
            other => panic!("SET NX answered {other:?}"),
        }
        assert!(refused < 100_000, "the lock never expired");
    };
    assert!(refused > 0, "the lock was given away at once");
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.cmd(&["GET", "lock"]).await.unwrap(), bulk(&taken_by));
        let pttl = int(&client.cmd(&["PTTL", "lock"]).await.unwrap());
        assert!((0..=5000).contains(&pttl), "PTTL {pttl}");
    }
    // Released by its holder only: a compare-and-delete in a transaction.
    let reply = transaction(&mut a, &[vec!["GET", "lock"], vec!["DEL", "lock"]]).await;
    assert_eq!(
        reply,
        Frame::Array(vec![bulk(&taken_by), Frame::Integer(1)])
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_exec_is_one_transaction_across_ranges_and_watch_aborts_it() {
    let cluster = Cluster::start(3, "redb").await;
    let mut c = cluster.client(0).await;
    let mut other = cluster.client(1).await;
    // "1x", "5x" and "9x" live in three ranges.
    let reply = transaction(
        &mut c,
        &[
            vec!["SET", "1x", "a"],
            vec!["INCR", "5x"],
            vec!["HSET", "9x", "f", "v"],
            vec!["INCR", "9x"],
            vec!["GET", "1x"],
        ],
    )
    .await;
    let Frame::Array(items) = reply else {
        panic!("EXEC answered {reply:?}")
    };
    assert_eq!(
        items[..3],
        [Frame::ok(), Frame::Integer(1), Frame::Integer(1)]
    );
    assert!(
        items[3].is_error(),
        "INCR on a hash fails inside EXEC: {:?}",
        items[3]
    );
    assert_eq!(items[4], bulk("a"));

    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Frame::error("ERR EXEC without MULTI")
    );
    assert_eq!(
        c.cmd(&["DISCARD"]).await.unwrap(),
        Frame::error("ERR DISCARD without MULTI")
    );
    let replies = c
        .pipeline(&[
            vec!["MULTI"],
            vec!["MULTI"],
            vec!["SET", "1x", "b"],
            vec!["NOSUCHCOMMAND"],
            vec!["EXEC"],
            vec!["GET", "1x"],
        ])
        .await
        .unwrap();
    assert_eq!(
        replies[1],
        Frame::error("ERR MULTI calls can not be nested")
    );
    assert!(replies[3].is_error());
    assert_eq!(
        replies[4],
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(
        replies[5],
        bulk("a"),
        "an aborted transaction changes nothing"
    );
    let replies = c
        .pipeline(&[
            vec!["MULTI"],
            vec!["SET", "1x", "b"],
            vec!["DISCARD"],
            vec!["GET", "1x"],
        ])
        .await
        .unwrap();
    assert_eq!(replies[2..], [Frame::ok(), bulk("a")]);

    // WATCH: a change through another node between WATCH and EXEC aborts the EXEC.
    assert_eq!(c.cmd(&["WATCH", "5x", "1x"]).await.unwrap(), Frame::ok());
    assert_eq!(other.cmd(&["INCR", "5x"]).await.unwrap(), Frame::Integer(2));
    let reply = transaction(&mut c, &[vec!["SET", "1x", "watched"]]).await;
    assert_eq!(reply, Frame::Null);
    assert_eq!(c.cmd(&["GET", "1x"]).await.unwrap(), bulk("a"));
    // Without a change it runs; EXEC forgets the watched keys either way.
    assert_eq!(c.cmd(&["WATCH", "5x"]).await.unwrap(), Frame::ok());
    let reply = transaction(&mut c, &[vec!["SET", "1x", "watched"]]).await;
    assert_eq!(reply, Frame::Array(vec![Frame::ok()]));
    assert_eq!(other.cmd(&["INCR", "5x"]).await.unwrap(), Frame::Integer(3));
    let reply = transaction(&mut c, &[vec!["GET", "1x"]]).await;
    assert_eq!(reply, Frame::Array(vec![bulk("watched")]));
    assert_eq!(
        c.pipeline(&[vec!["MULTI"], vec!["WATCH", "1x"], vec!["DISCARD"]])
            .await
            .unwrap()[1],
        Frame::error("ERR WATCH inside MULTI is not allowed")
    );
    // A write pipelined before WATCH is done before it: the EXEC after it runs.
    for i in 0..20 {
        let value = i.to_string();
        let replies = c
            .pipeline(&[
                vec!["SET", "9w", value.as_str()],
                vec!["WATCH", "9w"],
                vec!["MULTI"],
                vec!["INCR", "9w"],
                vec!["EXEC"],
            ])
            .await
            .unwrap();
        assert_eq!(
            replies[4],
            Frame::Array(vec![Frame::Integer(i + 1)]),
            "{replies:?}"
        );
    }

    // Transfers between counters in three ranges, through every node at once: the total
    // never changes, in any transaction's view.
    let accounts = ["1acct", "5acct", "9acct"];
    let mut setup = vec!["MSET"];
    for a in &accounts {
        setup.extend([*a, "100"]);
    }
    assert_eq!(c.cmd(&setup).await.unwrap(), Frame::ok());
    let mut tasks = Vec::new();
    for w in 0..6usize {
        let addr = cluster.resp(w % 3).to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await.unwrap();
            for i in 0..40usize {
                let (from, to) = (accounts[(w + i) % 3], accounts[(w + i + 1) % 3]);
                let amount = ((w * 7 + i) % 5 + 1).to_string();
                let reply = transaction(
                    &mut c,
                    &[vec!["DECRBY", from, &amount], vec!["INCRBY", to, &amount]],
                )
                .await;
                assert!(
                    matches!(&reply, Frame::Array(r) if r.len() == 2),
                    "{reply:?}"
                );
                let Frame::Array(balances) =
                    c.cmd(&["MGET", "1acct", "5acct", "9acct"]).await.unwrap()
                else {
                    panic!("MGET")
                };
                let total: i64 = balances
                    .iter()
                    .map(|b| match b {
                        Frame::Bulk(b) => String::from_utf8_lossy(b).parse::<i64>().unwrap(),
                        other => panic!("{other:?}"),
                    })
                    .sum();
                assert_eq!(total, 300, "balances {balances:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sign_in_before_anything_else() {
    let extra = "\n[auth]\nrequirepass = \"sesame\"\n\n[[auth.users]]\nname = \"app\"\npassword = \"app-secret\"\n";
    let cluster = Cluster::start_with(3, "redb", extra).await;
    let mut c = cluster.client(0).await;
    let noauth = Frame::error("NOAUTH Authentication required.");
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), noauth);
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), noauth);
    assert!(matches!(
        c.cmd(&["HELLO", "3"]).await.unwrap(),
        Frame::Error(e) if e.starts_with(b"NOAUTH")
    ));
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]).await.unwrap(),
        Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.cmd(&["AUTH", "sesame"]).await.unwrap(), Frame::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]).await.unwrap(), Frame::ok());
    assert_eq!(c.cmd(&["ACL", "WHOAMI"]).await.unwrap(), bulk("default"));

    let mut app = cluster.client(1).await;
    let hello = app
        .cmd(&[
            "HELLO",
            "3",
            "AUTH",
            "app",
            "app-secret",
            "SETNAME",
            "worker",
        ])
        .await
        .unwrap();
    assert!(matches!(hello, Frame::Map(_)), "{hello:?}");
    assert_eq!(app.cmd(&["ACL", "WHOAMI"]).await.unwrap(), bulk("app"));
    assert_eq!(app.cmd(&["GET", "k"]).await.unwrap(), bulk("v"));
    let Frame::Array(lines) = app.cmd(&["ACL", "LIST"]).await.unwrap() else {
        panic!("ACL LIST")
    };
    let text = format!("{lines:?}");
    assert!(text.contains("user app on"), "{text}");
    assert!(
        !text.contains("sesame") && !text.contains("app-secret"),
        "{text}"
    );

    // CLIENT LIST shows both on their node; CLIENT KILL closes a connection.
    let Frame::Bulk(list) = app.cmd(&["CLIENT", "LIST"]).await.unwrap() else {
        panic!("CLIENT LIST")
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(
        list.contains("name=worker") && list.contains("user=app"),
        "{list}"
    );
    let mut victim = cluster.client(1).await;
    assert_eq!(victim.cmd(&["AUTH", "sesame"]).await.unwrap(), Frame::ok());
    let Frame::Integer(id) = victim.cmd(&["CLIENT", "ID"]).await.unwrap() else {
        panic!("CLIENT ID")
    };
    assert_eq!(
        app.cmd(&["CLIENT", "KILL", "ID", &id.to_string()])
            .await
            .unwrap(),
        Frame::Integer(1)
    );
    assert!(
        victim.cmd(&["PING"]).await.is_err(),
        "a killed client's connection is closed"
    );
    cluster.shutdown().await;
}

#[test]
fn a_node_beyond_loopback_without_a_password_refuses_to_start() {
    let text = |auth: &str| {
        format!(
            "node_id = 1\ndata_dir = \"d\"\n{auth}\n[[members]]\nid = 1\nresp_addr = \"0.0.0.0:6379\"\ngrpc_addr = \"127.0.0.1:15051\"\n"
        )
    };
    let config = holo_node::NodeConfig::parse(&text("")).unwrap();
    let e = config.validate().unwrap_err().to_string();
    assert!(
        e.contains("protected mode") && e.contains("auth.requirepass"),
        "{e}"
    );
    for allowed in [
        "[auth]\nrequirepass = \"x\"\n",
        "[auth]\nprotected_mode = false\n",
    ] {
        let config = holo_node::NodeConfig::parse(&text(allowed)).unwrap();
        config.validate().unwrap();
    }
}

/// Waits until every node's copy holds `n` live keys.
async fn wait_dbsize(cluster: &Cluster, n: i64, what: &str) {
    for i in 0..3 {
        eventually(what, Duration::from_secs(10), || async move {
            let reply = cluster.client(i).await.cmd(&["DBSIZE"]).await.ok()?;
            (reply == Frame::Integer(n)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_commands_cover_every_range() {
    let cluster = Cluster::start(3, "redb").await;
    let mut c = cluster.client(0).await;
    let mut mset = vec!["MSET".to_string()];
    for i in 0..60 {
        mset.push(format!("{:x}key{i}", i % 16));
        mset.push(i.to_string());
    }
    let refs: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(c.cmd(&refs).await.unwrap(), Frame::ok());
    assert_eq!(
        c.cmd(&["HSET", "0hash", "f", "v"]).await.unwrap(),
        Frame::Integer(1)
    );
    // The writes are applied at every replica before the reads below see them there.
    wait_dbsize(&cluster, 61, "every key applied").await;
    let Frame::Array(keys) = c.cmd(&["KEYS", "*key1*"]).await.unwrap() else {
        panic!("KEYS")
    };
    // key1, key10..key19 (in ranges of their first digit).
    assert_eq!(keys.len(), 11, "{keys:?}");

    // A full SCAN returns each key once, whatever COUNT.
    let mut found = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let Frame::Array(reply) = c.cmd(&["SCAN", &cursor, "COUNT", "7"]).await.unwrap() else {
            panic!("SCAN")
        };
        let (Frame::Bulk(next), Frame::Array(batch)) = (&reply[0], &reply[1]) else {
            panic!("SCAN reply {reply:?}")
        };
        for k in batch {
            assert!(found.insert(format!("{k:?}")), "{k:?} twice");
        }
        calls += 1;
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(found.len(), 61);
    assert!(calls >= 61 / 7, "COUNT bounds each call");
    let Frame::Array(reply) = c
        .cmd(&["SCAN", "0", "TYPE", "hash", "COUNT", "1000"])
        .await
        .unwrap()
    else {
        panic!("SCAN TYPE")
    };
    assert_eq!(reply[1], Frame::Array(vec![bulk("0hash")]));
    assert!(matches!(
        c.cmd(&["RANDOMKEY"]).await.unwrap(),
        Frame::Bulk(_)
    ));
    assert!(c.cmd(&["SCAN", "12345"]).await.unwrap().is_error());
    // COMMAND GETKEYS from the table.
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"])
            .await
            .unwrap(),
        Frame::Array(vec![bulk("a"), bulk("b")])
    );

    assert_eq!(c.cmd(&["FLUSHALL"]).await.unwrap(), Frame::ok());
    wait_dbsize(&cluster, 0, "every key deleted").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_empties_every_range_at_one_point_of_the_history() {
    let cluster = Cluster::start(3, "redb").await;
    // Writers set four keys in four ranges to one value per MSET; readers read them in one
    // MGET. Whatever FLUSHALL does in between, a read sees all four equal (or all absent):
    // a flush that emptied some ranges before others would show a mix.
    let keys = ["1f", "5f", "9f", "df"];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..3usize {
        let addr = cluster.resp(w).to_owned();
        let stop = std::sync::Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr).await.unwrap();
            let mut reads = 0;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let value = format!("{w}-{n}");
                let mut mset = vec!["MSET"];
                for k in keys {
                    mset.extend([k, value.as_str()]);
                }
                assert_eq!(c.cmd(&mset).await.unwrap(), Frame::ok());
                let mut mget = vec!["MGET"];
                mget.extend(keys);
                let Frame::Array(values) = c.cmd(&mget).await.unwrap() else {
                    panic!("MGET")
                };
                assert!(
                    values.iter().all(|v| *v == values[0]),
                    "a read saw a partial flush: {values:?}"
                );
                reads += 1;
            }
            reads
        }));
    }
    let mut admin = cluster.client(1).await;
    for _ in 0..3 {
        assert_eq!(admin.cmd(&["FLUSHALL"]).await.unwrap(), Frame::ok());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        assert!(t.await.unwrap() > 0);
    }

    // Once FLUSHALL answered, no node shows anything written before it.
    let mut c = cluster.client(0).await;
    assert_eq!(
        c.cmd(&["MSET", "1g", "a", "9g", "b"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(
        c.cmd(&["HSET", "5g", "f", "v"]).await.unwrap(),
        Frame::Integer(1)
    );
    assert_eq!(
        c.cmd(&["SET", "dg", "v", "PX", "60000"]).await.unwrap(),
        Frame::ok()
    );
    assert_eq!(c.cmd(&["FLUSHALL", "ASYNC"]).await.unwrap(), Frame::ok());
    for i in 0..3 {
        let mut n = cluster.client(i).await;
        for key in ["1g", "9g", "5g", "dg", "1f", "df"] {
            assert_eq!(
                n.cmd(&["EXISTS", key]).await.unwrap(),
                Frame::Integer(0),
                "{key}"
            );
        }
        assert_eq!(n.cmd(&["DBSIZE"]).await.unwrap(), Frame::Integer(0));
        assert_eq!(n.cmd(&["KEYS", "*"]).await.unwrap(), Frame::Array(vec![]));
    }
    // Keys written after it live on.
    assert_eq!(c.cmd(&["SET", "1g", "after"]).await.unwrap(), Frame::ok());
    assert_eq!(
        cluster.client(2).await.cmd(&["GET", "1g"]).await.unwrap(),
        bulk("after")
    );
    assert!(c.cmd(&["FLUSHALL", "NOW"]).await.unwrap().is_error());

    // The old values leave storage in the background, the same on every replica.
    common::data_agrees(&cluster.grpcs()).await;
    eventually("flushed values purged", Duration::from_secs(30), || async {
        let mut purged = 0;
        for i in 0..3 {
            let text = metrics(&mut cluster.client(i).await).await?;
            purged += counter(&text, "holo_flushed_values_purged_total").unwrap_or(0);
        }
        (purged > 0).then_some(())
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_member_down_keyspace_reads_may_read_the_copy_when_told_to() {
    let cluster = Cluster::start_with(
        3,
        "redb",
        "\n[keyspace]\nstale_reads_while_degraded = true\n",
    )
    .await;
    let mut c = cluster.client(0).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await.unwrap(), Frame::ok());
    let mut cluster = cluster;
    cluster.stop(2).await;
    let cluster = &cluster;
    eventually(
        "a keyspace read without a barrier",
        Duration::from_secs(60),
        || async move {
            let mut c = cluster.client(0).await;
            assert_eq!(c.cmd(&["DBSIZE"]).await.ok()?, Frame::Integer(1));
            let text = metrics(&mut c).await?;
            (counter(&text, "holo_keyspace_reads_without_barrier_total") != Some(0)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_reads_see_every_write_acknowledged_through_another_node() {
    let cluster = Cluster::start(3, "redb").await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await);
    }
    for i in 0..6usize {
        let key = format!("{:x}seen{i}", i * 3 % 16);
        assert_eq!(
            clients[i % 3].cmd(&["SET", &key, "v"]).await.unwrap(),
            Frame::ok()
        );
        // At once, through the other nodes: their copies hold it by the time they answer.
        let reader = &mut clients[(i + 1) % 3];
        assert_eq!(
            reader.cmd(&["DBSIZE"]).await.unwrap(),
            Frame::Integer(i as i64 + 1)
        );
        let reader = &mut clients[(i + 2) % 3];
        let Frame::Array(reply) = reader.cmd(&["SCAN", "0", "MATCH", &key]).await.unwrap() else {
            panic!("SCAN")
        };
        let found = format!("{reply:?}");
        assert!(
            found.contains(&format!("{key:?}")[1..key.len() + 1]),
            "{key} not in {found}"
        );
    }
    let text = metrics(&mut clients[0]).await.expect("HOLOMETRICS");
    assert_eq!(
        counter(&text, "holo_keyspace_reads_without_barrier_total"),
        Some(0),
        "every read had its barrier"
    );
    // With a member down GC waits for it and no barrier is proposed: the commands answer
    // -TRYAGAIN rather than a copy that may be stale (or wait for the member).
    let mut cluster = cluster;
    drop(clients);
    cluster.stop(2).await;
    let cluster = &cluster;
    eventually(
        "a keyspace read refused without a barrier",
        Duration::from_secs(60),
        || async move {
            let mut c = cluster.client(0).await;
            match c.cmd(&["DBSIZE"]).await.ok()? {
                Frame::Error(e) if e.starts_with(b"TRYAGAIN DBSIZE needs a read barrier") => {
                    Some(())
                }
                Frame::Integer(6) => None,
                other => panic!("DBSIZE answered {other:?}"),
            }
        },
    )
    .await;
    // CLIENT KILL closes a connection waiting for such a reply at once: no reply comes.
    let mut waiting = cluster.client(0).await;
    let Frame::Integer(id) = waiting.cmd(&["CLIENT", "ID"]).await.unwrap() else {
        panic!("CLIENT ID")
    };
    let keys = tokio::spawn(async move { waiting.cmd(&["KEYS", "*"]).await });
    let mut killer = cluster.client(0).await;
    assert_eq!(
        killer
            .cmd(&["CLIENT", "KILL", "ID", &id.to_string()])
            .await
            .unwrap(),
        Frame::Integer(1)
    );
    let reply = keys.await.unwrap();
    assert!(reply.is_err(), "a killed connection got a reply: {reply:?}");
}
