//! Opening the log: scanning segments, truncating a torn tail, refusing corruption.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::WalConfig;
use crate::error::WalError;
use crate::fs::{WalFile, WalFs};
use crate::record::{
    Lsn, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, decode_record,
    parse_segment_name, peek_lsn, segment_header, segment_name,
};

/// A segment file and the LSN of its first record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub first_lsn: Lsn,
    pub path: PathBuf,
}

/// The state of the log after a successful scan.
pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    pub next_lsn: Lsn,
    pub active: Box<dyn WalFile>,
    /// Where the active segment's records end.
    pub active_len: u64,
    /// The active segment's size; the bytes between `active_len` and it are zeros.
    pub active_size: u64,
}

/// Scans `dir`, repairs a torn tail and returns the log's state.
pub(crate) fn recover(
    fs: &dyn WalFs,
    dir: &Path,
    config: &WalConfig,
) -> Result<Recovered, WalError> {
    let mut segments = list_segments(fs, dir)?;
    if segments.is_empty() {
        return start_segment(fs, dir, 1, Vec::new());
    }
    let mut next_lsn = segments[0].first_lsn;
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.first_lsn != next_lsn {
            return Err(WalError::Corruption {
                file: segment.path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at LSN {} where {next_lsn} was expected",
                    segment.first_lsn
                ),
                detail: "a segment is missing",
            });
        }
        let mut file = open(fs, &segment.path)?;
        let bytes = file
            .read_all()
            .map_err(|e| WalError::io(read_context(&segment.path), e))?;
        let is_last = i == last;
        if !header_ok(&bytes, segment.first_lsn) {
            if is_last && first_valid_record(&bytes, 0, segment.first_lsn, config).is_none() {
                // Created, then the crash came before its header was durable.
                warn!(file = %segment.path.display(), "WAL segment header incomplete after a crash; recreating the empty segment");
                fs.remove(&segment.path)
                    .map_err(|e| WalError::io(format!("remove {}", segment.path.display()), e))?;
                segments.pop();
                return start_segment(fs, dir, next_lsn, segments);
            }
            return Err(WalError::Corruption {
                file: segment.path.clone(),
                offset: 0,
                reason: "bad segment header".into(),
                detail: "refusing to open the log",
            });
        }
        let scan = scan_records(&bytes, segment.first_lsn, config);
        next_lsn = scan.next_lsn;
        let mut active_size = bytes.len() as u64;
        if let Some(bad) = scan.bad {
            active_size = bad.offset as u64;
            repair_tail(
                &segment.path,
                &mut *file,
                &bytes,
                bad,
                is_last,
                next_lsn,
                config,
            )?;
        }
        if is_last {
            // Records the previous process wrote but never synced are still in the page
            // cache after a process crash: make them durable before anyone treats them so.
            file.sync_data()
                .map_err(|e| WalError::io(format!("sync {}", segment.path.display()), e))?;
            fs.sync_dir(dir)
                .map_err(|e| WalError::io(format!("sync directory {}", dir.display()), e))?;
            return Ok(Recovered {
                segments,
                next_lsn,
                active: file,
                active_len: scan.valid_end as u64,
                active_size,
            });
        }
    }
    unreachable!("the loop returns at the last segment")
}

fn read_context(path: &Path) -> String {
    format!("read {}", path.display())
}

fn open(fs: &dyn WalFs, path: &Path) -> Result<Box<dyn WalFile>, WalError> {
    fs.open(path)
        .map_err(|e| WalError::io(format!("open {}", path.display()), e))
}

fn list_segments(fs: &dyn WalFs, dir: &Path) -> Result<Vec<Segment>, WalError> {
    let names = fs
        .list(dir)
        .map_err(|e| WalError::io(format!("list {}", dir.display()), e))?;
    let mut segments: Vec<Segment> = names
        .iter()
        .filter_map(|name| {
            let first_lsn = parse_segment_name(name)?;
            Some(Segment {
                first_lsn,
                path: dir.join(name),
            })
        })
        .collect();
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

fn header_ok(bytes: &[u8], first_lsn: Lsn) -> bool {
    bytes.len() >= SEGMENT_HEADER_BYTES
        && &bytes[..8] == SEGMENT_MAGIC
        && bytes[8..16] == first_lsn.to_le_bytes()
}

/// Creates the segment that starts at `first_lsn` and makes it and its entry durable.
pub(crate) fn create_segment(
    fs: &dyn WalFs,
    dir: &Path,
    first_lsn: Lsn,
) -> Result<(Box<dyn WalFile>, Segment), WalError> {
    let path = dir.join(segment_name(first_lsn));
    let context = |verb: &str| format!("{verb} {}", path.display());
    let mut file = fs
        .create(&path)
        .map_err(|e| WalError::io(context("create"), e))?;
    file.write_at(0, &segment_header(first_lsn))
        .map_err(|e| WalError::io(context("write"), e))?;
    file.sync_data()
        .map_err(|e| WalError::io(context("sync"), e))?;
    fs.sync_dir(dir)
        .map_err(|e| WalError::io(format!("sync directory {}", dir.display()), e))?;
    Ok((file, Segment { first_lsn, path }))
}

fn start_segment(
    fs: &dyn WalFs,
    dir: &Path,
    first_lsn: Lsn,
    mut segments: Vec<Segment>,
) -> Result<Recovered, WalError> {
    let (active, segment) = create_segment(fs, dir, first_lsn)?;
    info!(file = %segment.path.display(), "started WAL segment");
    segments.push(segment);
    Ok(Recovered {
        segments,
        next_lsn: first_lsn,
        active,
        active_len: SEGMENT_HEADER_BYTES as u64,
        active_size: SEGMENT_HEADER_BYTES as u64,
    })
}

/// Where the valid records of a segment end, and the first bad one if any.
pub(crate) struct Scan {
    pub next_lsn: Lsn,
    pub valid_end: usize,
    pub bad: Option<BadAt>,
}

/// The first record of a segment that is not the expected one.
pub(crate) struct BadAt {
    pub offset: usize,
    pub reason: String,
    /// The record is intact (its checksum holds) but carries the wrong LSN: never a torn
    /// write, always corruption or a bug.
    pub intact: bool,
}

/// Walks the records of a segment from its header on, in LSN order. The records end at the
/// end of the bytes or where only zeros follow (written ahead by the writer, see
/// [`WalConfig::preallocate_bytes`]; no record is all zeros, as LSNs start at 1).
pub(crate) fn scan_records(bytes: &[u8], first_lsn: Lsn, config: &WalConfig) -> Scan {
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut next_lsn = first_lsn;
    while offset < bytes.len() {
        match decode_record(&bytes[offset..], config.record_bytes_max) {
            Ok((record, _)) if record.lsn != next_lsn => {
                let reason = format!("LSN {} where {next_lsn} was expected", record.lsn);
                let bad = BadAt {
                    offset,
                    reason,
                    intact: true,
                };
                return Scan {
                    next_lsn,
                    valid_end: offset,
                    bad: Some(bad),
                };
            }
            Ok((_, used)) => {
                offset += used;
                next_lsn += 1;
            }
            Err(_) if bytes[offset..].iter().all(|&b| b == 0) => break,
            Err(bad) => {
                let bad = BadAt {
                    offset,
                    reason: bad.describe(),
                    intact: false,
                };
                return Scan {
                    next_lsn,
                    valid_end: offset,
                    bad: Some(bad),
                };
            }
        }
    }
    Scan {
        next_lsn,
        valid_end: offset,
        bad: None,
    }
}

/// The offset of the first well-formed record at or after `from` whose LSN could follow
/// `min_lsn` in these bytes, found by trying every byte offset. Headers outside that LSN
/// window are skipped before any checksum is computed, so the search stays cheap.
fn first_valid_record(
    bytes: &[u8],
    from: usize,
    min_lsn: Lsn,
    config: &WalConfig,
) -> Option<usize> {
    let max_lsn = min_lsn + (bytes.len() / RECORD_HEADER_BYTES) as u64;
    (from..bytes.len()).find(|&offset| {
        let plausible =
            peek_lsn(&bytes[offset..]).is_some_and(|lsn| (min_lsn..=max_lsn).contains(&lsn));
        plausible && decode_record(&bytes[offset..], config.record_bytes_max).is_ok()
    })
}

/// Truncates a torn tail of the last segment; anything else is corruption.
fn repair_tail(
    path: &Path,
    file: &mut dyn WalFile,
    bytes: &[u8],
    BadAt {
        offset,
        reason,
        intact,
    }: BadAt,
    is_last: bool,
    next_lsn: Lsn,
    config: &WalConfig,
) -> Result<(), WalError> {
    let corruption = |detail| WalError::Corruption {
        file: path.to_owned(),
        offset: offset as u64,
        reason: reason.clone(),
        detail,
    };
    if !is_last {
        return Err(corruption(
            "in a segment that later segments follow; refusing to open the log",
        ));
    }
    if intact {
        return Err(corruption(
            "an intact record out of sequence; refusing to open the log",
        ));
    }
    if let Some(valid) = first_valid_record(bytes, offset + 1, next_lsn, config) {
        warn!(file = %path.display(), offset, valid, "valid WAL record after a bad one");
        return Err(corruption(
            "and valid records follow it; refusing to open the log",
        ));
    }
    warn!(
        file = %path.display(),
        offset,
        dropped_bytes = bytes.len() - offset,
        %reason,
        "truncating the torn tail of the WAL (a write cut short by a crash)"
    );
    let context = |verb: &str| format!("{verb} {}", path.display());
    file.truncate(offset as u64)
        .map_err(|e| WalError::io(context("truncate"), e))?;
    file.sync_all()
        .map_err(|e| WalError::io(context("sync"), e))
}
