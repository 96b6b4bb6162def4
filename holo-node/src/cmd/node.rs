//! Commands answered from the node's own state: COMMAND, CONFIG, HOLOMETRICS, INFO, DBSIZE,
//! and the storage scans behind KEYS, SCAN and RANDOMKEY.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use holo_resp::Frame;

use super::value::Value;
use super::{Kind, Spec, TABLE, glob, lookup, wall_ms};

use crate::executor::{decode_value, scan_user_keys, scan_user_page};
use crate::server::{REDIS_COMPAT_VERSION, Session, Shared};

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn command_info(spec: &Spec) -> Frame {
    let (first, last, step) = spec.keys;
    Frame::Array(vec![
        Frame::Bulk(Bytes::from_static(spec.name.as_bytes())),
        Frame::Integer(spec.arity),
        Frame::Set(
            spec.flags
                .iter()
                .map(|f| Frame::Simple(Bytes::from_static(f.as_bytes())))
                .collect(),
        ),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Array(vec![]),
    ])
}

fn command_docs(spec: &Spec) -> (Frame, Frame) {
    let t = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
    let group = match spec.kind {
        Kind::Txn(_) if spec.name.starts_with('h') && spec.name != "hello" => "hash",
        Kind::Txn(_) => "string",
        Kind::Multi => "transactions",
        Kind::Local(_) => "connection",
        Kind::Scan(_) | Kind::Node => "server",
    };
    (
        t(spec.name),
        Frame::Map(vec![
            (t("summary"), t("")),
            (t("since"), t("1.0.0")),
            (t("group"), t(group)),
        ]),
    )
}

pub fn command(_: &Spec, _: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    let Some(sub) = rest.first() else {
        return Frame::Array(TABLE.iter().map(command_info).collect());
    };
    match upper(sub).as_str() {
        "COUNT" => Frame::Integer(TABLE.len() as i64),
        "INFO" if rest.len() == 1 => Frame::Array(TABLE.iter().map(command_info).collect()),
        "INFO" => Frame::Array(
            rest[1..]
                .iter()
                .map(|n| lookup(n).map_or(Frame::Null, |i| command_info(&TABLE[i])))
                .collect(),
        ),
        "DOCS" if rest.len() == 1 => Frame::Map(TABLE.iter().map(command_docs).collect()),
        "DOCS" => Frame::Map(
            rest[1..]
                .iter()
                .filter_map(|n| lookup(n))
                .map(|i| command_docs(&TABLE[i]))
                .collect(),
        ),
        "LIST" => Frame::Array(
            TABLE
                .iter()
                .map(|s| Frame::Bulk(Bytes::from_static(s.name.as_bytes())))
                .collect(),
        ),
        "GETKEYS" if rest.len() >= 2 => {
            let Some(spec) = lookup(&rest[1]).map(|i| &TABLE[i]) else {
                return Frame::error("ERR Invalid command specified");
            };
            if !spec.arity_ok(rest.len() - 1) {
                return Frame::error("ERR Invalid number of arguments specified for command");
            }
            let keys = spec.key_args(&rest[1..]);
            if keys.is_empty() {
                return Frame::error("ERR The command has no key arguments");
            }
            Frame::Array(keys.into_iter().cloned().map(Frame::Bulk).collect())
        }
        other => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            other.to_ascii_lowercase()
        )),
    }
}

pub fn config(_: &Spec, s: &mut Session<'_>, rest: &[Bytes]) -> Frame {
    let shared = s.shared;
    match upper(&rest[0]).as_str() {
        "GET" if rest.len() >= 2 => {
            let limits = &shared.config.limits;
            let values: Vec<(&str, String)> = vec![
                ("save", String::new()),
                ("appendonly", "no".into()),
                ("appendfsync", "always".into()),
                ("databases", "1".into()),
                ("maxmemory", "0".into()),
                ("maxmemory-policy", "noeviction".into()),
                ("maxclients", limits.max_connections.to_string()),
                ("timeout", "0".into()),
                ("proto-max-bulk-len", limits.max_bulk_bytes.to_string()),
                ("port", shared.resp_port.to_string()),
                ("cluster-enabled", "no".into()),
                (
                    "protected-mode",
                    if shared.config.auth.protected_mode {
                        "yes"
                    } else {
                        "no"
                    }
                    .into(),
                ),
            ];
            let mut pairs = Vec::new();
            for (key, value) in values {
                if rest[1..].iter().any(|p| glob(p, key.as_bytes(), true)) {
                    pairs.push((
                        Frame::Bulk(Bytes::from_static(key.as_bytes())),
                        Frame::Bulk(Bytes::from(value)),
                    ));
                }
            }
            Frame::Map(pairs)
        }
        "RESETSTAT" => Frame::ok(),
        "SET" => {
            Frame::error("ERR CONFIG SET is not supported: settings come from the node's TOML file")
        }
        sub => Frame::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            sub.to_ascii_lowercase()
        )),
    }
}

pub fn holometrics(_: &Spec, s: &mut Session<'_>, _: &[Bytes]) -> Frame {
    Frame::Bulk(Bytes::from(
        s.shared.metrics.render(Some(&s.shared.wal.stats())),
    ))
}

/// Live keys and keys with an expiry in this node's copy, at this node's wall clock.
fn count(shared: &Shared) -> anyhow::Result<(u64, u64)> {
    let now = wall_ms();
    let floor = shared.flush_floor();
    let (mut keys, mut expires) = (0, 0);
    scan_user_keys(&shared.store, &[], None, |_, v| {
        if let Some(value) = visible(v, floor, now) {
            keys += 1;
            expires += u64::from(value.expires_at.is_some());
        }
    })?;
    Ok((keys, expires))
}

/// The value of a stored entry if it is live at `now_ms` and not flushed below `floor`.
fn visible(stored: &[u8], floor: u64, now_ms: u64) -> Option<Value> {
    let (version, value) = decode_value(stored)?;
    value.filter(|v| version.epoch >= floor && !v.expired(now_ms))
}

/// DBSIZE: the live keys of this node's copy.
pub fn dbsize(shared: &Shared) -> Frame {
    match count(shared) {
        Ok((n, _)) => Frame::Integer(n as i64),
        Err(e) => Frame::error(format!("ERR storage: {e}")),
    }
}

pub fn info(_: &Spec, shared: &Shared, rest: &[Bytes]) -> Frame {
    let wanted = |section: &str| {
        rest.is_empty()
            || rest.iter().any(|r| {
                let r = upper(r);
                r == "ALL" || r == "EVERYTHING" || r == "DEFAULT" || r == section.to_uppercase()
            })
    };
    let m = &shared.metrics;
    let mut out = String::new();
    if wanted("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nholostore_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nholo_node_id:{}\r\nholo_allocator:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shared.resp_port,
            shared.started.elapsed().as_secs(),
            shared.config.node_id,
            crate::allocator_name(),
        ));
    }
    if wanted("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            m.connections.load(Ordering::Relaxed),
            shared.config.limits.max_connections
        ));
    }
    if wanted("persistence") {
        let wal = shared.wal.stats();
        out.push_str(&format!(
            "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_changes_since_last_save:0\r\nholo_storage_backend:{}\r\nholo_wal_persist:{:?}\r\nholo_wal_group_writes:{}\r\nholo_wal_records:{}\r\nholo_wal_segments:{}\r\n\r\n",
            shared.store.backend_name(),
            shared.config.wal.persist,
            wal.group_writes,
            wal.records_written,
            wal.segments
        ));
    }
    if wanted("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nholo_accord_fast_path:{}\r\nholo_accord_slow_path:{}\r\nholo_accord_recoveries:{}\r\n\r\n",
            m.connections_total.load(Ordering::Relaxed),
            m.total_commands(),
            m.connections_rejected.load(Ordering::Relaxed),
            m.fast_path.load(Ordering::Relaxed),
            m.slow_path.load(Ordering::Relaxed),
            m.recoveries.load(Ordering::Relaxed),
        ));
    }
    if wanted("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if wanted("keyspace") {
        out.push_str("# Keyspace\r\n");
        if let Ok((n, expires)) = count(shared)
            && n > 0
        {
            out.push_str(&format!("db0:keys={n},expires={expires},avg_ttl=0\r\n"));
        }
    }
    Frame::Bulk(Bytes::from(out))
}

/// What a key scan of this node's copy looks for.
pub struct Filter {
    pub pattern: Bytes,
    pub type_name: Option<String>,
}

impl Filter {
    fn matches(&self, key: &[u8], value: &Value) -> bool {
        glob(&self.pattern, key, false)
            && self
                .type_name
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(value.type_name()))
    }
}

/// Live keys of this node's copy from `start` on that pass `filter`, in key order, looking
/// at no more than `limit` stored keys; and the key to go on from, if any is left.
///
/// # Errors
/// Storage cannot be read.
pub fn scan_keys(
    shared: &Shared,
    start: &[u8],
    filter: &Filter,
    limit: usize,
    now_ms: u64,
) -> anyhow::Result<(Vec<Bytes>, Option<Bytes>)> {
    let mut found = Vec::new();
    let floor = shared.flush_floor();
    let next = scan_user_page(&shared.store, start, None, limit.min(4096), |key, v| {
        if let Some(value) = visible(v, floor, now_ms)
            && filter.matches(key, &value)
        {
            found.push(Bytes::copy_from_slice(key));
        }
    })?;
    Ok((found, next))
}
