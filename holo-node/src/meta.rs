//! The cluster map this node persisted, and the check of its node file against it.
//!
//! The first start of a node writes the map its node file describes ([`MetaState::new`] of
//! the configured members and split points) to storage under [`STATE_KEY`], synced before the
//! node serves. Every later start reads it back and refuses to run if the node file now
//! lists other members or other initial split points: silently using either the file or the
//! stored map would route keys differently from the rest of the cluster.
//!
//! After that the map changes only through meta-range transactions (splits, merges, the
//! controller lease): the executor applies each at its executeAt and writes the new state
//! under the same key in the same storage batch as the rest of the apply.

use std::path::Path;

use anyhow::Context;
use holo_meta::{ClusterMap, MetaState};
use holo_storage::{Durability, StateStore, Store, WriteBatch};

/// Storage key of the persisted meta state (outside the user keys, stored under `u`).
pub const STATE_KEY: &[u8] = b"m/state";

/// The persisted meta state, or the configured map's if this is the node's first start.
///
/// # Errors
/// Storage cannot be read or written; the stored state cannot be decoded (the message names
/// the data directory); or the node file disagrees with it (the message says how).
pub fn load_or_init(
    store: &Store,
    configured: &ClusterMap,
    data_dir: &Path,
) -> anyhow::Result<MetaState> {
    let stored = store
        .get(STATE_KEY)
        .context("reading the persisted cluster map")?;
    let Some(bytes) = stored else {
        let state = MetaState::new(configured.clone());
        let mut batch = WriteBatch::new();
        batch
            .put(STATE_KEY, state.encode())
            .with_durability(Durability::Sync);
        store
            .write(&batch)
            .context("persisting the initial cluster map")?;
        return Ok(state);
    };
    let state = MetaState::decode(&bytes).with_context(|| {
        format!(
            "the cluster map stored in {} is unreadable",
            data_dir.display()
        )
    })?;
    state.check_config(configured).with_context(|| {
        format!(
            "refusing to start: the node file disagrees with the cluster map persisted in {} \
             (start it with the node file the cluster was created with)",
            data_dir.display()
        )
    })?;
    Ok(state)
}
