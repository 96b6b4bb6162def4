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
use holo_proto::v1 as pb;
use holo_proto::v1::peer_client::PeerClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::config::TransportConfig;
use crate::convert;
use crate::core::Event;
use crate::metrics::PeerStats;

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

/// Starts the sender task for `peer` at `addr`.
pub fn spawn_peer(
    peer: NodeId,
    addr: &str,
    config: &TransportConfig,
    send_delay: Duration,
    core: mpsc::Sender<Event>,
) -> PeerLink {
    let (tx, rx) = mpsc::channel(config.peer_queue_batches);
    let stats = Arc::new(PeerStats::default());
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .expect("validated address")
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10));
    let backoff_max = Duration::from_millis(config.reconnect_backoff_max_ms);
    tokio::spawn(sender(
        peer,
        endpoint,
        rx,
        Arc::clone(&stats),
        (backoff_max, send_delay),
        core,
    ));
    PeerLink { tx, stats }
}

async fn sender(
    peer: NodeId,
    endpoint: Endpoint,
    mut queue: mpsc::Receiver<Envelope>,
    stats: Arc<PeerStats>,
    (backoff_max, delay): (Duration, Duration),
    core: mpsc::Sender<Event>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => {
                tracing::debug!("peer {}: connect failed: {e}", peer.0);
                // Transactions stop waiting for this peer's fast-path votes. A hint only: if
                // the core's queue is full it comes again with the next attempt.
                let _ = core.try_send(Event::PeerDown(peer));
                // Drop what queued up while the peer is unreachable: it is stale by the time
                // the peer returns, and the protocol resends what still matters.
                if !discard_until(&mut queue, &stats, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(backoff_max);
                continue;
            }
        };
        let mut client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (stream_tx, stream_rx) = mpsc::channel::<pb::Envelope>(16);
        let call =
            tokio::spawn(async move { client.deliver(ReceiverStream::new(stream_rx)).await });
        stats.connected.store(true, Ordering::Relaxed);
        tracing::info!("peer {}: connected", peer.0);
        // The core sends the peer what it missed while it was unreachable.
        let _ = core.try_send(Event::PeerUp(peer));
        backoff = Duration::from_millis(20);
        let mut batch = Vec::with_capacity(MERGE_MAX);
        loop {
            if queue.recv_many(&mut batch, MERGE_MAX).await == 0 {
                return;
            }
            if !delay.is_zero() {
                // Fault injection (`faults.send_delay_ms`): a slow link to every peer.
                tokio::time::sleep(delay).await;
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
            if stream_tx.send(wire).await.is_err() {
                break;
            }
            stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        stats.connected.store(false, Ordering::Relaxed);
        let _ = core.try_send(Event::PeerDown(peer));
        match call.await {
            Ok(Err(status)) => tracing::info!("peer {}: stream ended: {status}", peer.0),
            Ok(Ok(_)) => tracing::info!("peer {}: stream closed", peer.0),
            Err(e) => tracing::warn!("peer {}: stream task failed: {e}", peer.0),
        }
    }
}

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
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
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
            if self.core.send(Event::Peer(envelope)).await.is_err() {
                return Err(tonic::Status::unavailable("node is stopping"));
            }
        }
        Ok(tonic::Response::new(pb::Ack {}))
    }
}
