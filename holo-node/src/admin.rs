//! The admin gRPC service behind `holoctl`: topology (members, ranges, generations) and
//! state (applied positions, peer links, WAL, coordinations).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use holo_meta::ClusterMap;
use holo_proto::v1 as pb;
use holo_wal::Wal;

use crate::metrics::Metrics;

pub struct AdminService {
    pub node_id: u16,
    pub map: Arc<ClusterMap>,
    pub metrics: Arc<Metrics>,
    /// Weak: a gRPC connection task outliving the node must not keep the WAL open.
    pub wal: Weak<Wal>,
    pub started: Instant,
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn topology(
        &self,
        _: tonic::Request<pb::TopologyRequest>,
    ) -> Result<tonic::Response<pb::TopologyReply>, tonic::Status> {
        Ok(tonic::Response::new(pb::TopologyReply {
            node_id: u32::from(self.node_id),
            members: self
                .map
                .members()
                .iter()
                .map(|m| pb::Member {
                    id: u32::from(m.id.0),
                    resp_addr: m.resp_addr.clone(),
                    grpc_addr: m.grpc_addr.clone(),
                })
                .collect(),
            ranges: self
                .map
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
        Ok(tonic::Response::new(pb::StateReply {
            node_id: u32::from(self.node_id),
            ranges: self
                .map
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
}
