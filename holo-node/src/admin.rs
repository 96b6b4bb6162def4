//! The admin gRPC service behind `holoctl`: topology (members, ranges, generations),
//! state (applied positions, peer links, WAL, coordinations), the meta-plane's status, the
//! controller's, splits and merges (passed on to the lease holder), and a hash of the
//! stored data for comparing replicas.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use holo_accord::{NodeId, RangeId};
use holo_meta::{MetaCommand, MetaState, OpKind, Outcome, Record};
use holo_proto::v1 as pb;
use holo_storage::Store;
use holo_wal::Wal;
use tokio::sync::{mpsc, oneshot, watch};

use crate::controller::{self, Operation, Request, RequestError};
use crate::metrics::Metrics;
use crate::peer_auth::{ClientSecurity, ClusterToken};

pub struct AdminService {
    pub node_id: u16,
    /// The meta state as applied on this node.
    pub meta: watch::Receiver<Arc<MetaState>>,
    pub metrics: Arc<Metrics>,
    /// Weak: a gRPC connection task outliving the node must not keep the WAL or the
    /// storage open.
    pub wal: Weak<Wal>,
    pub store: Weak<Store>,
    pub controller: mpsc::Sender<Request>,
    pub controller_config: crate::config::ControllerConfig,
    pub started: Instant,
    /// How a request is passed on to the lease holder.
    pub client: ClientSecurity,
}

/// An admin client whose calls carry the cluster token.
pub type AdminClient = pb::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ClusterToken>,
>;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn lease(state: &MetaState) -> Option<pb::Lease> {
    state.lease().map(|l| pb::Lease {
        holder: u32::from(l.holder.0),
        term: l.term,
        expires_us: l.expires,
    })
}

fn members(map: &holo_meta::ClusterMap) -> Vec<pb::Member> {
    map.members()
        .iter()
        .map(|m| pb::Member {
            id: u32::from(m.id.0),
            resp_addr: m.resp_addr.clone(),
            grpc_addr: m.grpc_addr.clone(),
        })
        .collect()
}

/// One applied meta command and its outcome, in words.
pub fn describe_record(r: &Record) -> String {
    let command = match &r.command {
        MetaCommand::Lease { holder, term, .. } => {
            format!("lease for node {} at term {term}", holder.0)
        }
        MetaCommand::Split {
            range, expect, at, ..
        } => format!(
            "split range {} (generation {expect}) at {:?}",
            range.0,
            String::from_utf8_lossy(at)
        ),
        MetaCommand::Merge {
            left,
            right,
            expect,
            ..
        } => format!(
            "merge range {} into range {} (generations {} and {})",
            right.0, left.0, expect.1, expect.0
        ),
        MetaCommand::Finish { operation, .. } => format!("finish operation {operation}"),
        MetaCommand::Flush => "flush every key (FLUSHALL)".to_string(),
    };
    let outcome = match (&r.outcome, r.finished) {
        (Outcome::Applied { .. }, Some((kind, us))) => {
            format!("done: the {kind} took {:.3} s", us as f64 / 1e6)
        }
        (Outcome::Applied { epoch }, None) => format!("applied (epoch {epoch})"),
        (Outcome::Rejected(why), _) => format!("no-op: {why}"),
    };
    format!("{} {command}: {outcome}", r.at)
}

fn status(e: RequestError) -> tonic::Status {
    match e {
        RequestError::NotController(_) => tonic::Status::failed_precondition(e.to_string()),
        RequestError::Invalid(_) => tonic::Status::invalid_argument(e.to_string()),
        RequestError::Rejected(_) => tonic::Status::aborted(e.to_string()),
        RequestError::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
    }
}

impl AdminService {
    fn state(&self) -> Arc<MetaState> {
        Arc::clone(&self.meta.borrow())
    }

    fn store(&self) -> Result<Arc<Store>, tonic::Status> {
        self.store
            .upgrade()
            .ok_or_else(|| tonic::Status::unavailable("the node is stopping"))
    }

    /// Waits (up to 15 s) until no operation in flight involves `ranges`: one finishing its
    /// history cut would refuse the next, and an operator who splits a range and then its
    /// new half expects both to happen.
    async fn wait_idle(&self, ranges: &[RangeId]) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut meta = self.meta.clone();
        loop {
            let busy = meta
                .borrow_and_update()
                .operations()
                .iter()
                .any(|op| op.kind.ranges().iter().any(|r| ranges.contains(r)));
            // Done, out of time, or the node is stopping (no more changes).
            if !busy
                || !matches!(
                    tokio::time::timeout_at(deadline, meta.changed()).await,
                    Ok(Ok(()))
                )
            {
                return;
            }
        }
    }

    /// Waits until no operation in flight involves the ranges of `operation`, then hands it
    /// to this node's controller; if another node holds the lease, passes
    /// it on to that node once (a request passed on is never passed on again).
    async fn run_operation(
        &self,
        operation: Operation,
        forwarded: bool,
        forward: impl AsyncFnOnce(
            AdminClient,
        ) -> Result<tonic::Response<pb::OperationReply>, tonic::Status>,
    ) -> Result<tonic::Response<pb::OperationReply>, tonic::Status> {
        self.wait_idle(&operation.ranges()).await;
        let (tx, rx) = oneshot::channel();
        self.controller
            .send(Request {
                operation,
                reply: tx,
            })
            .await
            .map_err(|_| tonic::Status::unavailable("the node is stopping"))?;
        let outcome = rx
            .await
            .map_err(|_| tonic::Status::unavailable("the node is stopping"))?;
        match outcome {
            Ok(done) => Ok(tonic::Response::new(pb::OperationReply {
                epoch: done.epoch,
                detail: done.detail,
                controller: u32::from(self.node_id),
            })),
            Err(RequestError::NotController(Some(holder)))
                if !forwarded && holder != NodeId(self.node_id) =>
            {
                let state = self.state();
                let member = state.map().member(holder).ok_or_else(|| {
                    tonic::Status::internal(format!("the lease holder {} is no member", holder.0))
                })?;
                let endpoint = self
                    .client
                    .endpoint(&member.grpc_addr)
                    .map_err(|e| tonic::Status::internal(e.to_string()))?
                    .connect_timeout(std::time::Duration::from_secs(3))
                    .timeout(std::time::Duration::from_secs(45));
                let channel = endpoint.connect().await.map_err(|e| {
                    tonic::Status::unavailable(format!(
                        "node {} holds the controller lease but cannot be reached at {}: {e}",
                        holder.0, member.grpc_addr
                    ))
                })?;
                forward(pb::admin_client::AdminClient::with_interceptor(
                    channel,
                    self.client.token.clone(),
                ))
                .await
            }
            Err(RequestError::NotController(None)) => Err(tonic::Status::unavailable(
                "no node holds the controller lease yet (is a majority up?); try again shortly",
            )),
            Err(e) => Err(status(e)),
        }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn topology(
        &self,
        _: tonic::Request<pb::TopologyRequest>,
    ) -> Result<tonic::Response<pb::TopologyReply>, tonic::Status> {
        let state = self.state();
        let map = state.map();
        Ok(tonic::Response::new(pb::TopologyReply {
            node_id: u32::from(self.node_id),
            members: members(map),
            ranges: map
                .ranges()
                .iter()
                .map(|r| pb::RangeDescriptor {
                    id: r.id.0,
                    start: r.start.clone(),
                    end: r.end.clone(),
                    replicas: r.replicas.iter().map(|n| u32::from(n.0)).collect(),
                    generation: r.generation,
                })
                .collect(),
        }))
    }

    async fn state(
        &self,
        _: tonic::Request<pb::StateRequest>,
    ) -> Result<tonic::Response<pb::StateReply>, tonic::Status> {
        let wal = self
            .wal
            .upgrade()
            .ok_or_else(|| tonic::Status::unavailable("the node is stopping"))?;
        let applied = self.metrics.applied();
        let peers = self
            .metrics
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, p)| pb::PeerState {
                id: u32::from(*id),
                connected: p.connected.load(Ordering::Relaxed),
                envelopes_sent: p.sent.load(Ordering::Relaxed),
                envelopes_dropped: p.dropped.load(Ordering::Relaxed),
            })
            .collect();
        let state = self.state();
        Ok(tonic::Response::new(pb::StateReply {
            node_id: u32::from(self.node_id),
            ranges: state
                .map()
                .ranges()
                .iter()
                .map(|r| pb::RangeState {
                    id: r.id.0,
                    generation: r.generation,
                    applied_index: applied.get(&r.id.0).copied().unwrap_or(0),
                })
                .collect(),
            peers,
            wal_next_lsn: wal.next_lsn(),
            wal_durable_below: wal.durable_below(),
            coordinating: self.metrics.coordinating.load(Ordering::Relaxed),
            commands: self.metrics.commands_known.load(Ordering::Relaxed),
            uptime_secs: self.started.elapsed().as_secs(),
        }))
    }

    async fn meta_status(
        &self,
        request: tonic::Request<pb::MetaStatusRequest>,
    ) -> Result<tonic::Response<pb::MetaStatusReply>, tonic::Status> {
        let state = self.state();
        let map = state.map();
        let sizes = if request.into_inner().sizes {
            let store = self.store()?;
            let ranges = map.ranges().to_vec();
            tokio::task::spawn_blocking(move || controller::range_sizes(&store, &ranges))
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .map_err(|e| tonic::Status::internal(format!("reading storage: {e}")))?
        } else {
            vec![(0, 0); map.ranges().len()]
        };
        let applied = self.metrics.applied();
        let now = now_us();
        let busy = |id: RangeId| {
            state
                .operations()
                .iter()
                .find(|op| op.kind.ranges().contains(&id))
                .map(|op| op.kind.name())
        };
        let ranges = map
            .ranges()
            .iter()
            .zip(sizes)
            .map(|(r, (keys, bytes))| pb::RangeStatus {
                id: r.id.0,
                start: r.start.clone(),
                end: r.end.clone(),
                generation: r.generation,
                replicas: r.replicas.iter().map(|n| u32::from(n.0)).collect(),
                state: match busy(r.id) {
                    Some("split") => "splitting".into(),
                    Some(_) => "merging".into(),
                    None => "serving".into(),
                },
                keys,
                bytes,
                applied_index: applied.get(&r.id.0).copied().unwrap_or(0),
            })
            .collect();
        let operations = state
            .operations()
            .iter()
            .map(|op| pb::MetaOperation {
                id: op.id,
                kind: op.kind.name().into(),
                phase: op.phase.name().into(),
                epoch: op.epoch,
                age_ms: now.saturating_sub(op.started_us) / 1000,
                detail: match &op.kind {
                    OpKind::Split { left, right, at } => format!(
                        "range {} split at {:?} into {} and {}",
                        left.0,
                        String::from_utf8_lossy(at),
                        left.0,
                        right.0
                    ),
                    OpKind::Merge { into, retired } => {
                        format!("range {} merged into {}", retired.0, into.0)
                    }
                    OpKind::Flush { ranges } => {
                        format!("every key flushed, over {} ranges", ranges.len())
                    }
                },
            })
            .collect();
        let (splits, merges) = state.counts();
        Ok(tonic::Response::new(pb::MetaStatusReply {
            node_id: u32::from(self.node_id),
            epoch: state.epoch(),
            map_hash: map.hash(),
            accord_epoch: self.metrics.accord_epoch.load(Ordering::Relaxed),
            oldest_epoch: state.oldest_epoch(),
            meta_replicas: map.meta_replicas().iter().map(|n| u32::from(n.0)).collect(),
            meta_applied_index: applied.get(&holo_meta::META_RANGE.0).copied().unwrap_or(0),
            meta_applied_at: state.applied_at().to_string(),
            ranges,
            operations,
            members: members(map),
            lease: lease(&state),
            now_us: now,
            splits,
            merges,
            recent: state.recent().map(describe_record).collect(),
            gc_floor_epoch: self.metrics.gc_floor_epoch.load(Ordering::Relaxed),
        }))
    }

    async fn controller_status(
        &self,
        _: tonic::Request<pb::ControllerStatusRequest>,
    ) -> Result<tonic::Response<pb::ControllerStatusReply>, tonic::Status> {
        let state = self.state();
        let last_operation = state
            .recent()
            .filter(|r| !matches!(r.command, MetaCommand::Lease { .. }))
            .last()
            .map(describe_record)
            .unwrap_or_default();
        Ok(tonic::Response::new(pb::ControllerStatusReply {
            node_id: u32::from(self.node_id),
            lease: lease(&state),
            now_us: now_us(),
            last_operation,
            driving: controller::driving(
                &state,
                NodeId(self.node_id),
                std::time::Duration::from_millis(self.controller_config.tick_ms),
            ),
            auto_split: self.controller_config.auto_split,
        }))
    }

    async fn split(
        &self,
        request: tonic::Request<pb::SplitRequest>,
    ) -> Result<tonic::Response<pb::OperationReply>, tonic::Status> {
        let request = request.into_inner();
        let operation = Operation::Split {
            range: RangeId(request.range),
            at: request.at.clone(),
        };
        let passed_on = pb::SplitRequest {
            forwarded: true,
            ..request.clone()
        };
        self.run_operation(operation, request.forwarded, async move |mut client| {
            client.split(passed_on).await
        })
        .await
    }

    async fn merge(
        &self,
        request: tonic::Request<pb::MergeRequest>,
    ) -> Result<tonic::Response<pb::OperationReply>, tonic::Status> {
        let request = request.into_inner();
        let operation = Operation::Merge {
            left: RangeId(request.left),
            right: RangeId(request.right),
        };
        let passed_on = pb::MergeRequest {
            forwarded: true,
            ..request
        };
        self.run_operation(operation, request.forwarded, async move |mut client| {
            client.merge(passed_on).await
        })
        .await
    }

    async fn data_hash(
        &self,
        _: tonic::Request<pb::DataHashRequest>,
    ) -> Result<tonic::Response<pb::DataHashReply>, tonic::Status> {
        let store = self.store()?;
        let (hash, keys) = tokio::task::spawn_blocking(move || crate::executor::data_hash(&store))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .map_err(|e| tonic::Status::internal(format!("reading storage: {e}")))?;
        Ok(tonic::Response::new(pb::DataHashReply {
            node_id: u32::from(self.node_id),
            hash,
            keys,
            applied_total: self.metrics.applied().values().sum(),
        }))
    }
}
