//! HoloStore's cluster state machine: membership, range descriptors with generations,
//! split and merge, and the controller lease.
//!
//! A range descriptor is `(range_id, start_key, end_key, replicas, generation)`. Every command
//! carries the generation it was routed with, so split and merge stay safe during apply and
//! WAL replay. The meta-plane is itself replicated through holo-accord; this crate will hold
//! its deterministic state machine and depends only on holo-accord.
