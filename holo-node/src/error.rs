//! Errors inside a node, typed by what the one who meets them does about it.
//!
//! - [`Fatal`]: the node stops. Its disk can no longer keep a promise it made to peers or
//!   clients (a record not durable, applied state not written), so going on would risk an
//!   acknowledged write or let peers collect what this node still needs. A restart replays
//!   the WAL and catches up once the cause is fixed.
//! - [`Transient`]: retried where it happened; logged, and escalated to [`Fatal`] when it
//!   keeps happening.
//! - [`ClientError`]: the command fails and its client is told, with a reply whose prefix
//!   says whether the command had no effect (`-TRYAGAIN`: safe to retry), an unknown one
//!   (`-UNKNOWN`: it may or may not have been applied; read before retrying a
//!   non-idempotent command) or was refused before anything happened (`-ERR`).

use holo_resp::Frame;
use holo_storage::StorageError;
use holo_wal::WalError;

/// The node must stop.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// The WAL refused a record or failed while making records durable (it is poisoned:
    /// nothing later can become durable either).
    #[error("the WAL failed, the node stops: {0}")]
    Wal(#[source] WalError),
    /// A batch of decided transactions could not be read or written in storage.
    #[error("storage failed while applying, the executor stops: {0}")]
    Apply(#[source] StorageError),
    /// Applied state could not be made durable, `failures` times in a row.
    #[error("storage flush failed {failures} times in a row, the executor stops: {source}")]
    Flush {
        failures: u32,
        #[source]
        source: StorageError,
    },
    /// The executor thread stopped (after reporting its own [`Fatal`]).
    #[error("the executor stopped")]
    ExecutorStopped,
}

/// Retried where it happened.
#[derive(Debug, thiserror::Error)]
pub enum Transient {
    /// A storage flush failed; applied state stays dirty, no sync point is reported durable,
    /// and the flush runs again.
    #[error("storage flush failed ({failures} in a row, retried): {source}")]
    Flush {
        failures: u32,
        #[source]
        source: StorageError,
    },
}

/// A command failed; the client hears [`ClientError::frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The protocol invalidated every transaction that carried the command (contention or a
    /// failure at the time): it never executed anywhere.
    #[error(
        "TRYAGAIN transaction was not applied (invalidated {attempts} times after contention or a failure); it is safe to retry"
    )]
    Invalidated { attempts: u32 },
    /// The node stopped while the command was in flight: it may still be applied by the
    /// other replicas, or may never be.
    #[error("UNKNOWN node is stopping; the outcome of the command is unknown")]
    Stopping,
    /// The command's data is larger than one WAL record can carry; refused before it was
    /// proposed.
    #[error(
        "ERR command too large: {len} bytes of data, the limit is {max} (half of wal.record_bytes_max)"
    )]
    TooLarge { len: usize, max: usize },
    /// A key in the space the cluster map lives in; refused before it was proposed.
    #[error(
        "ERR keys starting with eight 0xff bytes are reserved for the cluster map; use another key"
    )]
    ReservedKey,
}

impl ClientError {
    /// The error reply.
    pub fn frame(&self) -> Frame {
        Frame::error(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_the_prefix_of_their_outcome() {
        let prefix = |e: ClientError| match e.frame() {
            Frame::Error(b) => String::from_utf8_lossy(&b)
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(prefix(ClientError::Invalidated { attempts: 4 }), "TRYAGAIN");
        assert_eq!(prefix(ClientError::Stopping), "UNKNOWN");
        assert_eq!(prefix(ClientError::TooLarge { len: 9, max: 8 }), "ERR");
        assert_eq!(prefix(ClientError::ReservedKey), "ERR");
    }
}
