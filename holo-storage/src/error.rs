//! Storage errors, grouped by what the caller can do.

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The configuration cannot work (a backend this build lacks, a bad option). Fatal at
    /// start-up; the message names the field.
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// The backend failed: disk full, I/O error, corruption it detected. Fatal for this
    /// process; the node stops applying and must restart.
    #[error("{backend} failed to {action}: {source}")]
    Backend {
        backend: &'static str,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    pub(crate) fn backend<E>(
        backend: &'static str,
        action: &'static str,
    ) -> impl FnOnce(E) -> StorageError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| StorageError::Backend {
            backend,
            action,
            source: Box::new(e),
        }
    }
}
