//! The connected clients of a node: CLIENT LIST, CLIENT INFO and CLIENT KILL.
//!
//! Each connection registers on accept and leaves on close. The registry is touched when a
//! client connects, names itself or is listed or killed, never per command: a connection
//! keeps its last-command time in an atomic of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use holo_resp::{Frame, Version};
use tokio::sync::Notify;

use crate::server::Client;

struct Entry {
    addr: SocketAddr,
    laddr: SocketAddr,
    connected: Instant,
    /// Milliseconds since `connected` of the last command.
    active_ms: Arc<AtomicU64>,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    user: Option<String>,
    resp: u8,
    kill: Arc<Notify>,
}

/// What a connection keeps of its registration.
pub struct Registration {
    pub kill: Arc<Notify>,
    pub active_ms: Arc<AtomicU64>,
    pub connected: Instant,
}

/// Every connected client of this node.
#[derive(Default)]
pub struct Clients {
    entries: Mutex<BTreeMap<u64, Entry>>,
}

fn lossy(b: &Option<Bytes>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

impl Clients {
    pub fn register(&self, id: u64, addr: SocketAddr, laddr: SocketAddr) -> Registration {
        let reg = Registration {
            kill: Arc::new(Notify::new()),
            active_ms: Arc::new(AtomicU64::new(0)),
            connected: Instant::now(),
        };
        self.lock().insert(
            id,
            Entry {
                addr,
                laddr,
                connected: reg.connected,
                active_ms: Arc::clone(&reg.active_ms),
                name: None,
                lib_name: None,
                lib_ver: None,
                user: None,
                resp: 2,
                kill: Arc::clone(&reg.kill),
            },
        );
        reg
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies what CLIENT LIST shows of `client`.
    pub fn update(&self, client: &Client) {
        if let Some(e) = self.lock().get_mut(&client.id) {
            e.name = client.name.clone();
            e.lib_name = client.lib_name.clone();
            e.lib_ver = client.lib_ver.clone();
            e.user = client.user.clone();
            e.resp = if client.version == Version::Resp3 {
                3
            } else {
                2
            };
        }
    }

    fn format(id: u64, e: &Entry) -> String {
        let age = e.connected.elapsed();
        let idle = age
            .as_millis()
            .saturating_sub(u128::from(e.active_ms.load(Ordering::Relaxed)));
        format!(
            "id={id} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 user={} resp={} lib-name={} lib-ver={}\n",
            e.addr,
            e.laddr,
            lossy(&e.name),
            age.as_secs(),
            idle / 1000,
            e.user.as_deref().unwrap_or("default"),
            e.resp,
            lossy(&e.lib_name),
            lossy(&e.lib_ver),
        )
    }

    /// CLIENT INFO of client `id`.
    pub fn line(&self, id: u64) -> String {
        self.lock()
            .get(&id)
            .map(|e| Clients::format(id, e))
            .unwrap_or_default()
    }

    /// CLIENT LIST.
    pub fn list(&self) -> String {
        self.lock()
            .iter()
            .map(|(id, e)| Clients::format(*id, e))
            .collect()
    }

    /// CLIENT KILL: `addr` alone (the old form), or filters `ID`, `ADDR`, `LADDR`, `USER`,
    /// `SKIPME`. Returns how many were told to close.
    pub fn kill(&self, args: &[Bytes], me: u64) -> Result<usize, Frame> {
        let syntax = || Frame::error("ERR syntax error");
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let (mut id, mut addr, mut laddr, mut user) = (None, None, None, None);
        let mut skip_me = true;
        if let [only] = args {
            addr = Some(text(only));
            skip_me = false;
        } else {
            if args.is_empty() || !args.len().is_multiple_of(2) {
                return Err(syntax());
            }
            for pair in args.chunks(2) {
                let value = text(&pair[1]);
                match text(&pair[0]).to_ascii_uppercase().as_str() {
                    "ID" => {
                        id =
                            Some(value.parse::<u64>().map_err(|_| {
                                Frame::error("ERR client-id should be greater than 0")
                            })?);
                    }
                    "ADDR" => addr = Some(value),
                    "LADDR" => laddr = Some(value),
                    "USER" => user = Some(value),
                    "SKIPME" => match value.to_ascii_lowercase().as_str() {
                        "yes" => skip_me = true,
                        "no" => skip_me = false,
                        _ => return Err(syntax()),
                    },
                    _ => return Err(syntax()),
                }
            }
        }
        let mut killed = 0;
        for (cid, e) in self.lock().iter() {
            let matches = id.is_none_or(|i| i == *cid)
                && addr.as_ref().is_none_or(|a| *a == e.addr.to_string())
                && laddr.as_ref().is_none_or(|a| *a == e.laddr.to_string())
                && user
                    .as_ref()
                    .is_none_or(|u| Some(u.as_str()) == e.user.as_deref());
            if matches && !(skip_me && *cid == me) {
                e.kill.notify_one();
                killed += 1;
            }
        }
        Ok(killed)
    }
}
