//! Ordinary Redis client libraries against an in-process 3-node cluster: redis-rs here, and
//! redis-py through `examples/clients/redis_py_example.py` with the interpreter `HOLO_PYTHON`
//! names (`make test` makes a virtualenv with redis-py and sets it). Both run what a new user
//! tries first: expiry, locks, pipelines with and without MULTI/EXEC, WATCH, hashes, SCAN.

mod common;

use common::Cluster;
use redis::Commands;

fn redis_rs_program(addrs: &[String]) -> redis::RedisResult<()> {
    let open = |addr: &str| redis::Client::open(format!("redis://{addr}/"))?.get_connection();
    let mut a = open(&addrs[0])?;
    let mut b = open(&addrs[2])?;

    // Expiry.
    let _: () = a.set_ex("rs-greeting", "hello", 30)?;
    let value: String = b.get("rs-greeting")?;
    assert_eq!(value, "hello");
    let ttl: i64 = b.ttl("rs-greeting")?;
    assert!((1..=30).contains(&ttl), "TTL {ttl}");
    let _: () = a.pset_ex("rs-short", "x", 100)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.exists::<_, bool>("rs-short")? {
        assert!(
            std::time::Instant::now() < deadline,
            "PSETEX 100 never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // A lock: SET NX PX through one node, refused through another.
    let taken: Option<String> = redis::cmd("SET")
        .arg("rs-lock")
        .arg("token-1")
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query(&mut a)?;
    assert_eq!(taken.as_deref(), Some("OK"));
    let refused: Option<String> = redis::cmd("SET")
        .arg("rs-lock")
        .arg("token-2")
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query(&mut b)?;
    assert_eq!(refused, None);

    // Pipelines, plain and atomic.
    let (one, two): (i64, i64) = redis::pipe()
        .incr("rs-n", 1)
        .incr("rs-n", 1)
        .query(&mut a)?;
    assert_eq!((one, two), (1, 2));
    let (three, values): (i64, Vec<i64>) = redis::pipe()
        .atomic()
        .incr("rs-n", 1)
        .mget(&["rs-n", "rs-n"])
        .query(&mut b)?;
    assert_eq!((three, values), (3, vec![3, 3]));

    // WATCH/MULTI/EXEC through redis-rs's transaction helper (it retries on abort).
    let (tenfold,): (i64,) = redis::transaction(&mut a, &["rs-n"], |con, pipe| {
        let n: i64 = con.get("rs-n")?;
        pipe.set("rs-n", n * 10).ignore().get("rs-n").query(con)
    })?;
    assert_eq!(tenfold, 30);

    // Hashes.
    let added: i64 = a
        .hset_multiple::<_, _, _, ()>("rs-user", &[("name", "ada"), ("visits", "1")])
        .map(|()| 2)?;
    assert_eq!(added, 2);
    let visits: i64 = b.hincr("rs-user", "visits", 2)?;
    assert_eq!(visits, 3);
    let all: std::collections::HashMap<String, String> = b.hgetall("rs-user")?;
    assert_eq!(all.get("name").map(String::as_str), Some("ada"));

    // SCAN.
    let mut keys = a
        .scan_match::<_, String>("rs-*")?
        .collect::<redis::RedisResult<Vec<String>>>()?;
    keys.sort();
    assert_eq!(keys, ["rs-greeting", "rs-lock", "rs-n", "rs-user"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_runs_a_new_users_program() {
    let cluster = Cluster::start(3, "redb").await;
    let addrs: Vec<String> = cluster.addrs.iter().map(|(r, _)| r.clone()).collect();
    tokio::task::spawn_blocking(move || redis_rs_program(&addrs))
        .await
        .unwrap()
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_runs_a_new_users_program() {
    let Some(python) = std::env::var_os("HOLO_PYTHON") else {
        eprintln!(
            "SKIPPED: HOLO_PYTHON is not set (make test sets it to a virtualenv with redis-py)"
        );
        return;
    };
    let cluster = Cluster::start(3, "redb").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/clients/redis_py_example.py");
    let mut command = std::process::Command::new(python);
    command.arg(script);
    for (resp, _) in &cluster.addrs {
        command.arg(resp);
    }
    // The program bounds its own waits (10 s each).
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py program failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    cluster.shutdown().await;
}
