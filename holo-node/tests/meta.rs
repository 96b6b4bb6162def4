//! The persisted cluster map: a node file that disagrees with it is refused, naming why.

mod common;

use common::{Cluster, node_toml_with};
use holo_node::Listeners;
use holo_node::config::NodeConfig;
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
