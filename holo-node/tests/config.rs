//! The node's TOML file: the shipped files parse and validate, mistakes name their field.

use std::path::Path;

use holo_node::{NodeConfig, Overrides};

fn repo(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file)
}

#[test]
fn shipped_files_load() {
    for file in [
        "config/node1.toml",
        "config/node2.toml",
        "config/node3.toml",
    ] {
        let config = NodeConfig::load(&repo(file), &Overrides::default()).unwrap();
        assert_eq!(config.members.len(), 3, "{file}");
        assert_eq!(config.cluster_map().unwrap().ranges().len(), 4, "{file}");
    }
    let example =
        NodeConfig::load(&repo("config/node.example.toml"), &Overrides::default()).unwrap();
    let defaults = NodeConfig::parse(
        "node_id = 1\ndata_dir = \"data/node1\"\n[[members]]\nid = 1\nresp_addr = \"127.0.0.1:16379\"\ngrpc_addr = \"127.0.0.1:15051\"\n[[members]]\nid = 2\nresp_addr = \"127.0.0.1:16380\"\ngrpc_addr = \"127.0.0.1:15052\"\n[[members]]\nid = 3\nresp_addr = \"127.0.0.1:16381\"\ngrpc_addr = \"127.0.0.1:15053\"\n",
    )
    .unwrap();
    assert_eq!(example, defaults, "the example file shows the defaults");
}

#[test]
fn overrides_apply_to_this_node() {
    let overrides = Overrides {
        node_id: Some(2),
        data_dir: Some("/tmp/x".into()),
        resp_addr: Some("127.0.0.1:7000".into()),
        grpc_addr: None,
    };
    let config = NodeConfig::load(&repo("config/node1.toml"), &overrides).unwrap();
    assert_eq!(config.node_id, 2);
    assert_eq!(config.me().unwrap().resp_addr, "127.0.0.1:7000");
    assert_eq!(config.me().unwrap().grpc_addr, "127.0.0.1:15052");
    assert_eq!(config.data_dir, Path::new("/tmp/x"));
}

#[test]
fn mistakes_name_the_field() {
    let base = std::fs::read_to_string(repo("config/node1.toml")).unwrap();
    let cases = [
        (base.replace("[storage]", "[storage]\ncolour = 1"), "colour"),
        (
            base.replace("backend = \"redb\"", "backend = \"mysql\""),
            "mysql",
        ),
        (base.replace("node_id = 1", "node_id = 9"), "node_id = 9"),
        (
            base.replace(
                "split_points = [\"4\", \"8\", \"c\"]",
                "split_points = [\"8\", \"4\"]",
            ),
            "ranges.split_points",
        ),
        (base.replace("127.0.0.1:16380", "localhost"), "resp_addr"),
        (
            format!("{base}\n[limits]\nmax_pipeline = 0\n"),
            "limits.max_pipeline",
        ),
        (
            format!("{base}\n[wal]\nsegment_bytes_target = 1\n"),
            "wal.segment_bytes_target",
        ),
        (format!("{base}\n[accord]\ntick_ms = 0\n"), "accord.tick_ms"),
    ];
    for (text, field) in cases {
        let err = NodeConfig::parse(&text)
            .and_then(|c| c.validate().map(|()| c))
            .expect_err(field);
        assert!(format!("{err:#}").contains(field), "{field}: {err:#}");
    }
}

#[test]
fn member_addresses_may_be_host_names() {
    use holo_node::config::is_host_port;
    for good in [
        "127.0.0.1:6379",
        "[::1]:6379",
        "localhost:6379",
        "holo-n1:15051",
        "node-3.holostore.svc.cluster.local:15051",
        "proj_node_1:6379",
        "n1.example:6379",
    ] {
        assert!(is_host_port(good), "{good}");
    }
    for bad in [
        "localhost",
        ":6379",
        "host:",
        "host:99999",
        "host name:6379",
        "-bad:6379",
        "a..b:6379",
        "http://host:6379",
        "10.0.0.256:5051",
        "127.1:6379",
        "10.0.0.010:5051",
        "Node1:6379",
        "host.:6379",
        "::1:6379",
    ] {
        assert!(!is_host_port(bad), "{bad}");
    }
}
