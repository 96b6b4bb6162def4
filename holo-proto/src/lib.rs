//! gRPC services and messages between HoloStore nodes and from `holoctl` (tonic + prost).
//!
//! This crate will hold generated code only: the peer transport service that carries batched
//! holo-accord messages (one RPC per peer per batch) and the admin service behind `holoctl`.
//! Conversions between holo-accord types and these messages live at the edge, in holo-node.
//! It is a leaf crate: it depends on no other HoloStore crate. The services arrive with the
//! holo-node issue.
