//! The peer transport: one long-lived gRPC stream per peer carrying batched holo-accord
//! messages, and the service that receives them.
//!
//! Each peer has its own bounded queue and sender task, so a peer that is down or slow never
//! blocks the core or the other peers: when its queue is full, new batches for it are dropped
//! (counted in `holo_peer_batches_dropped_total`) and the protocol's retries cover the loss.
//! The sender merges whatever is queued into one `Envelope` per write, reconnects with
//! exponential backoff, and sends nothing while the peer is unreachable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use holo_accord::{Envelope, NodeId};
use holo_meta::MetaState;
use holo_proto::v1 as pb;
use holo_proto::v1::peer_client::PeerClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use crate::config::TransportConfig;
use crate::convert;
use crate::core::Event;
use crate::metrics::PeerStats;
use crate::peer_auth::{ClientSecurity, ClusterToken, error_chain};

/// Most accord envelopes merged into one wire envelope.
const MERGE_MAX: usize = 256;
/// Largest message either side accepts (values may be up to 512 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The core's handle on one peer.
pub struct PeerLink {
    tx: mpsc::Sender<Envelope>,
    pub stats: Arc<PeerStats>,
}

impl PeerLink {
    /// Queues a batch; drops it when the peer's queue is full.
    pub fn send(&self, envelope: Envelope) {
        if self.tx.try_send(envelope).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts node `me`'s sender task for `peer` at `addr`, calling it as `security` says.
pub fn spawn_peer(
    me: NodeId,
    peer: NodeId,
    addr: &str,
    config: &TransportConfig,
    security: &ClientSecurity,
    send_delay: Duration,
    core: mpsc::Sender<Event>,
) -> PeerLink {
    let (tx, rx) = mpsc::channel(config.peer_queue_batches);
    let stats = Arc::new(PeerStats::default());
    let endpoint = security
        .endpoint(addr)
        .expect("validated address and TLS files")
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10));
    let backoff_max = Duration::from_millis(config.reconnect_backoff_max_ms);
    tokio::spawn(sender(
        Link {
            me,
            peer,
            endpoint,
            token: security.token.clone(),
            stats: Arc::clone(&stats),
            backoff_max,
            delay: send_delay,
            core,
        },
        rx,
    ));
    PeerLink { tx, stats }
}

/// What the sender task of one peer works with.
struct Link {
    me: NodeId,
    peer: NodeId,
    endpoint: Endpoint,
    token: ClusterToken,
    stats: Arc<PeerStats>,
    backoff_max: Duration,
    /// Fault injection (`faults.send_delay_ms`): a slow link to every peer.
    delay: Duration,
    core: mpsc::Sender<Event>,
}

type Client = PeerClient<InterceptedService<tonic::transport::Channel, ClusterToken>>;

impl Link {
    /// Connects and says hello: a client once the peer accepted this node (its token, its
    /// id), or the reason it did not.
    async fn open(&self) -> Result<Client, tonic::Status> {
        let channel = self.endpoint.connect().await.map_err(|e| {
            tonic::Status::unavailable(format!("connect failed: {}", error_chain(&e)))
        })?;
        let mut client = PeerClient::with_interceptor(channel, self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let hello = pb::HelloRequest {
            from: u32::from(self.me.0),
            to: u32::from(self.peer.0),
        };
        match client.hello(hello).await {
            Ok(_) => Ok(client),
            // A peer still on a release without Hello (a rolling upgrade): its stream
            // checks the token as before.
            Err(status) if status.code() == tonic::Code::Unimplemented => Ok(client),
            Err(status) => Err(status),
        }
    }
}

async fn sender(link: Link, mut queue: mpsc::Receiver<Envelope>) {
    let peer = link.peer;
    let mut backoff = Duration::from_millis(20);
    let mut refusal_logged = false;
    // One line per outage at info (a refused certificate shows here); the rest at debug.
    let mut failure_logged = false;
    loop {
        let mut client = match link.open().await {
            Ok(client) => client,
            Err(status) => {
                let counter = match status.code() {
                    tonic::Code::Unauthenticated => &link.stats.auth_refused,
                    _ => &link.stats.link_failures,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let refused = matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::FailedPrecondition
                );
                let wait = if refused {
                    if !refusal_logged {
                        tracing::error!(
                            "peer {}: refuses this node: {}; check the cluster secret and the members' ids and addresses",
                            peer.0,
                            status.message()
                        );
                        refusal_logged = true;
                    }
                    // Configuration does not change by itself: try again at the slowest pace.
                    link.backoff_max
                } else {
                    if failure_logged {
                        tracing::debug!(
                            "peer {}: cannot open the link: {}",
                            peer.0,
                            status.message()
                        );
                    } else {
                        tracing::info!(
                            "peer {}: cannot open the link (retrying): {}",
                            peer.0,
                            status.message()
                        );
                        failure_logged = true;
                    }
                    backoff
                };
                // Transactions stop waiting for this peer's fast-path votes. A hint only: if
                // the core's queue is full it comes again with the next attempt.
                let _ = link.core.try_send(Event::PeerDown(peer));
                // Drop what queued up while the peer is unreachable: it is stale by the time
                // the peer returns, and the protocol resends what still matters.
                if !discard_until(&mut queue, &link.stats, wait).await {
                    return;
                }
                backoff = (backoff * 2).min(link.backoff_max);
                continue;
            }
        };
        let (stream_tx, stream_rx) = mpsc::channel::<pb::Envelope>(16);
        let mut call =
            tokio::spawn(async move { client.deliver(ReceiverStream::new(stream_rx)).await });
        link.stats.connected.store(true, Ordering::Relaxed);
        tracing::info!("peer {}: connected", peer.0);
        refusal_logged = false;
        failure_logged = false;
        // The core sends the peer what it missed while it was unreachable.
        let _ = link.core.try_send(Event::PeerUp(peer));
        let opened = tokio::time::Instant::now();
        let mut batch = Vec::with_capacity(MERGE_MAX);
        let ended = loop {
            tokio::select! {
                n = queue.recv_many(&mut batch, MERGE_MAX) => {
                    if n == 0 {
                        return;
                    }
                }
                // The peer ended the stream (it stopped, or refused a message).
                result = &mut call => break Some(result),
            }
            if !link.delay.is_zero() {
                tokio::time::sleep(link.delay).await;
            }
            let mut wire = pb::Envelope {
                from: u32::from(batch[0].from.0),
                to: u32::from(batch[0].to.0),
                messages: Vec::new(),
            };
            for envelope in batch.drain(..) {
                wire.messages
                    .extend(envelope.messages.iter().map(convert::message));
            }
            tokio::select! {
                sent = stream_tx.send(wire) => {
                    if sent.is_err() {
                        break None;
                    }
                }
                result = &mut call => break Some(result),
            }
            link.stats.sent.fetch_add(1, Ordering::Relaxed);
        };
        link.stats.connected.store(false, Ordering::Relaxed);
        let _ = link.core.try_send(Event::PeerDown(peer));
        let result = match ended {
            Some(result) => result,
            None => call.await,
        };
        match result {
            Ok(Err(status)) => tracing::info!("peer {}: stream ended: {status}", peer.0),
            Ok(Ok(_)) => tracing::info!("peer {}: stream closed", peer.0),
            Err(e) => tracing::warn!("peer {}: stream task failed: {e}", peer.0),
        }
        // A stream that ends soon after it opened (a peer stopping while its port still
        // answers, or refusing what it is sent) is retried with backoff, not at once: each
        // reopening costs a handshake and makes the core resend what the peer missed.
        if opened.elapsed() >= STREAM_SETTLED {
            backoff = Duration::from_millis(20);
        } else {
            if !discard_until(&mut queue, &link.stats, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(link.backoff_max);
        }
    }
}

/// A stream that lived this long ended for a reason of its own: reconnect at once.
const STREAM_SETTLED: Duration = Duration::from_secs(1);

/// Drops queued batches for `wait`; false when the queue closed (the node is stopping).
async fn discard_until(
    queue: &mut mpsc::Receiver<Envelope>,
    stats: &PeerStats,
    wait: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            item = queue.recv() => match item {
                Some(_) => { stats.dropped.fetch_add(1, Ordering::Relaxed); }
                None => return false,
            },
            () = tokio::time::sleep_until(deadline) => return true,
        }
    }
}

/// The receiving side: decodes envelopes and hands them to the core.
pub struct PeerService {
    pub me: NodeId,
    pub core: mpsc::Sender<Event>,
    /// The cluster map as applied here: only its members may send.
    pub meta: watch::Receiver<Arc<MetaState>>,
}

impl PeerService {
    /// Refuses a sender that is not a member of the cluster as this node knows it.
    fn check_member(&self, from: u32) -> Result<(), tonic::Status> {
        let state = self.meta.borrow();
        let member = u16::try_from(from)
            .ok()
            .and_then(|id| state.map().member(NodeId(id)));
        match member {
            Some(_) => Ok(()),
            None => Err(tonic::Status::failed_precondition(format!(
                "node {from} is not a member of this cluster (node {} applied epoch {})",
                self.me.0,
                state.map().epoch()
            ))),
        }
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn hello(
        &self,
        request: tonic::Request<pb::HelloRequest>,
    ) -> Result<tonic::Response<pb::Ack>, tonic::Status> {
        let hello = request.into_inner();
        if hello.to != u32::from(self.me.0) {
            return Err(tonic::Status::failed_precondition(format!(
                "this is node {}, not node {} (node {} has a wrong address for it)",
                self.me.0, hello.to, hello.from
            )));
        }
        self.check_member(hello.from)?;
        Ok(tonic::Response::new(pb::Ack {}))
    }

    async fn deliver(
        &self,
        request: tonic::Request<tonic::Streaming<pb::Envelope>>,
    ) -> Result<tonic::Response<pb::Ack>, tonic::Status> {
        let mut stream = request.into_inner();
        while let Some(wire) = stream.message().await? {
            let envelope = convert::from_envelope(wire)
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            if envelope.to != self.me {
                return Err(tonic::Status::failed_precondition(format!(
                    "this is node {}, not node {}",
                    self.me.0, envelope.to.0
                )));
            }
            self.check_member(u32::from(envelope.from.0))?;
            if self.core.send(Event::Peer(envelope)).await.is_err() {
                return Err(tonic::Status::unavailable("node is stopping"));
            }
        }
        Ok(tonic::Response::new(pb::Ack {}))
    }
}
