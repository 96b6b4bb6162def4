//! gRPC services and messages between HoloStore nodes and from `holoctl` (tonic + prost),
//! generated from `proto/holo.proto` at build time with a vendored `protoc`.
//!
//! Generated code only: the `Peer` service carries batched holo-accord messages (one
//! long-lived stream per peer, one `Envelope` per batch), the `Admin` service backs
//! `holoctl`, and `Command` doubles as the WAL record of a replica's state for one
//! transaction. Conversions between holo-accord types and these messages live at the edge,
//! in holo-node. It is a leaf crate: it depends on no other HoloStore crate.

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("holo.v1");
}
