//! holo-wal: HoloStore's write-ahead log.
//!
//! A node's Accord state changes are appended here, and a node answers for a change only once
//! its record is durable. The log is a directory of segment files, each named by the LSN of
//! its first record (`00000000000000000001.wal`). It is a leaf crate: no async runtime, no other
//! HoloStore crate.
//!
//! # Example
//! ```
//! use holo_wal::{Wal, WalConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
//! assert_eq!(wal.append(b"first").unwrap(), 1); // durable when it returns
//! let last = wal.submit(&[b"second".as_slice(), b"third"]).unwrap(); // buffered
//! wal.wait_durable(last).unwrap(); // one sync for both
//! drop(wal);
//!
//! let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
//! let records: Vec<_> = wal.replay(2).unwrap().map(Result::unwrap).collect();
//! assert_eq!(records, vec![(2, b"second".to_vec()), (3, b"third".to_vec())]);
//! ```
//!
//! # Format
//! A segment starts with a 16-byte header: the magic `HOLOWAL1` and the segment's first LSN.
//! Records follow back to back, all integers little-endian:
//!
//! ```text
//! | payload length u32 | CRC32C u32 | LSN u64 | payload |
//! ```
//! The CRC covers the length, the LSN and the payload. LSNs start at 1 and are consecutive.
//!
//! # Group commit
//! Appenders copy their record into a shared buffer under a short lock, register to be woken
//! and park (threads) or return `Pending` (tasks awaiting [`Wal::durable`]). One writer thread
//! takes everything buffered, writes it with one `write` and makes it durable with one
//! `fdatasync` (or `fsync`, or nothing, per [`PersistMode`]), publishes the new durable LSN in
//! an atomic and wakes exactly the waiters it covered: no broadcast, so waking never convoys on
//! the lock. While one sync runs the next group collects, so syncs per second stay those of
//! one appender while records per sync grow with concurrency. The buffer is bounded
//! ([`WalConfig::pending_bytes_max`]); appenders wait while it is full. Callers that already
//! batch use [`Wal::submit`] with many records and wait once.
//!
//! The writer does not hold back a group to let more appenders join: measured on 2 cores,
//! waking 64 appenders costs about as long as one `fdatasync`, so keeping the disk busy with
//! back-to-back syncs beats gathering larger groups.
//!
//! # Recovery
//! [`Wal::open`] scans every segment. A torn or partial last record of the last segment (a
//! crash during a write) is truncated and logged. A bad record that is followed by any valid
//! record, or a bad record in any segment but the last, is corruption: opening fails with
//! [`WalError::Corruption`], which names the file and offset; nothing is skipped silently.
//!
//! # Failure
//! A failed write or sync poisons the log (after a failed `fsync` the kernel may have dropped
//! the dirty pages, so retrying would lie): every waiting and later append gets an error, and
//! the node must restart and recover from what is on disk.
//!
//! # Files
//! All file I/O goes through [`fs::WalFs`], so tests can run the log on [`sim::SimFs`], a
//! lossy file system that simulates crashes: it loses unsynced writes, keeps a random prefix,
//! tears the last write or flips a bit in what was never synced.

mod config;
mod error;
pub mod fs;
mod record;
mod recovery;
pub mod sim;
mod wal;

pub use config::{PersistMode, WalConfig};
pub use error::WalError;
pub use record::Lsn;
pub use wal::{DurableFuture, Replay, Wal, WalStats};
