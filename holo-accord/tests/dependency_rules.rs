//! The workspace's dependency rules (`shared/ARCHITECTURE.md`), checked on every test run:
//! the Accord core stays free of I/O crates, clocks and randomness of its own, and the leaf
//! crates depend on no other HoloStore crate.

use std::path::Path;
use std::process::Command;

/// The crates in `package`'s normal (non-dev, non-build) dependency tree.
fn normal_dependencies(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != package)
        .collect()
}

#[test]
fn the_accord_core_has_no_io_crates() {
    let deps = normal_dependencies("holo-accord");
    for forbidden in [
        "tokio",
        "tonic",
        "prost",
        "rocksdb",
        "redb",
        "rand",
        "mio",
        "holo-wal",
        "holo-storage",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "holo-accord depends on {forbidden}: {deps:?}"
        );
    }
}

#[test]
fn the_accord_core_reads_no_clock_and_draws_no_randomness() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for forbidden in [
            "std::time",
            "SystemTime",
            "Instant::now",
            "thread_rng",
            "std::thread",
            "std::fs",
            "std::net",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                path.display()
            );
        }
    }
}

#[test]
fn the_tree_is_read_correctly() {
    // Guards the checks above against a parser that silently finds nothing.
    let deps = normal_dependencies("holo-storage");
    assert!(deps.iter().any(|d| d == "redb"), "{deps:?}");
}

#[test]
fn leaf_crates_depend_on_no_other_holostore_crate() {
    for leaf in ["holo-wal", "holo-storage", "holo-resp", "holo-proto"] {
        let deps = normal_dependencies(leaf);
        let inner: Vec<&String> = deps.iter().filter(|d| d.starts_with("holo-")).collect();
        assert!(inner.is_empty(), "{leaf} depends on {inner:?}");
    }
}

#[test]
fn nothing_depends_on_the_node() {
    for package in ["holo-harness", "holo-meta", "holo-accord"] {
        let deps = normal_dependencies(package);
        assert!(
            !deps.iter().any(|d| d == "holo-node"),
            "{package} depends on holo-node"
        );
    }
}
