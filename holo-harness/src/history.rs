//! Operation histories: what a workload records and what the checker reads.
//!
//! A history is a JSON Lines file, one [`Entry`] per line, in any order (the checker sorts by
//! time). Every entry is one client operation with the monotonic times of its invocation and
//! completion, in nanoseconds from the start of the run (one clock for every client of a run),
//! and its outcome:
//!
//! - `ok`: the reply arrived and the operation took effect exactly as `result` says;
//! - `fail`: the reply proves the operation had no effect (an error reply the node returns
//!   before proposing anything); the checker drops it;
//! - `unknown`: no reply (timeout, disconnect): the operation may or may not have taken effect,
//!   at any moment after its invocation. `complete_ns` is when the client gave up, but the
//!   checker treats the operation as still open at the end of time.
//!
//! ```json
//! {"id":7,"client":2,"node":"127.0.0.1:16380","op":{"f":"set","key":"k3","value":"2-7"},"outcome":"ok","result":{"t":"done"},"invoke_ns":1200,"complete_ns":3400}
//! {"id":8,"client":2,"op":{"f":"get","key":"k3"},"outcome":"ok","result":{"t":"value","v":"2-7"},"invoke_ns":3500,"complete_ns":4100}
//! ```

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One operation a client invoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Op {
    /// `GET key`: returns the register's value or nil.
    Get { key: String },
    /// `SET key value`: writes a value (workloads make every written value unique).
    Set { key: String, value: String },
    /// `INCR key`: adds one to an integer register (absent counts as 0), returns the new value.
    Incr { key: String },
    /// `MSET k1 v1 k2 v2 ...`: writes every pair atomically.
    Mset { pairs: Vec<(String, String)> },
    /// `MGET k1 k2 ...`: reads every key atomically.
    Mget { keys: Vec<String> },
    /// `MULTI; DECRBY from amount; INCRBY to amount; EXEC`: moves `amount` between two
    /// integer registers (absent counts as 0) in one transaction; returns both new values.
    Transfer {
        from: String,
        to: String,
        amount: i64,
    },
    /// `MULTI; SET key token NX PX ttl_ms; PEXPIRETIME key; EXEC`: takes the lock `key` if
    /// it is free (absent or expired), for `ttl_ms`; returns when it expires if taken.
    /// Checked for mutual exclusion, not by the register model (see `check::locks`).
    Acquire {
        key: String,
        token: String,
        ttl_ms: i64,
    },
    /// `WATCH key; GET key`, and if it holds `token`: `MULTI; PEXPIRE key 1; PEXPIRETIME
    /// key; DEL key; EXEC`: releases the lock only if it is still the caller's; returns when
    /// the hold ended (PEXPIRETIME's answer) if it did.
    Release { key: String, token: String },
}

impl Op {
    /// Every key the operation touches.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Op::Get { key } | Op::Set { key, .. } | Op::Incr { key } => vec![key.as_str()],
            Op::Mset { pairs } => pairs.iter().map(|(k, _)| k.as_str()).collect(),
            Op::Mget { keys } => keys.iter().map(String::as_str).collect(),
            Op::Transfer { from, to, .. } => vec![from.as_str(), to.as_str()],
            Op::Acquire { key, .. } | Op::Release { key, .. } => vec![key.as_str()],
        }
    }

    /// True when the operation changes state (an unknown read can be dropped; an unknown
    /// write cannot).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Set { .. }
                | Op::Incr { .. }
                | Op::Mset { .. }
                | Op::Transfer { .. }
                | Op::Acquire { .. }
                | Op::Release { .. }
        )
    }
}

/// What a completed operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum OpResult {
    /// SET, MSET: no value.
    Done,
    /// GET: the value, or `None` for nil.
    Value { v: Option<String> },
    /// INCR: the new value.
    Int { v: i64 },
    /// MGET: one value per key, in the order of the keys.
    Values { v: Vec<Option<String>> },
    /// Transfer: the new values of `from` and `to`.
    Ints { v: Vec<i64> },
    /// Acquire: when the lock taken expires (Unix milliseconds, at the transaction's
    /// executeAt plus the TTL), or `None` if it was held by someone else.
    Lease { expires_ms: Option<i64> },
    /// Release: when the hold ended (Unix ms), or `None` if the lock was no longer the
    /// caller's (it had expired, or the EXEC was aborted).
    Released { ended_ms: Option<i64> },
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

/// One line of a history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique within the history.
    pub id: u64,
    /// The client (one connection at a time) that issued it.
    pub client: u32,
    /// The node the client sent it to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub op: Op,
    pub outcome: Outcome,
    /// Present when `outcome` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OpResult>,
    /// Error text for `fail` and `unknown` outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// Reads a JSON Lines history; a malformed line is an error that names the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a history entry", path.display(), n + 1))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Writes a history as JSON Lines.
pub fn write(path: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for entry in entries {
        serde_json::to_writer(&mut out, entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_json_lines() {
        let entries = vec![
            Entry {
                id: 1,
                client: 0,
                node: Some("127.0.0.1:16379".into()),
                op: Op::Set {
                    key: "k".into(),
                    value: "0-1".into(),
                },
                outcome: Outcome::Ok,
                result: Some(OpResult::Done),
                error: None,
                invoke_ns: 10,
                complete_ns: 20,
            },
            Entry {
                id: 2,
                client: 1,
                node: None,
                op: Op::Mget {
                    keys: vec!["a".into(), "b".into()],
                },
                outcome: Outcome::Unknown,
                result: None,
                error: Some("timeout".into()),
                invoke_ns: 15,
                complete_ns: 1_000,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        write(&path, &entries).unwrap();
        assert_eq!(read(&path).unwrap(), entries);
        std::fs::write(&path, "{\"id\":1}\n").unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("h.jsonl:1"), "{err}");
    }
}
