//! The on-disk record and segment-header formats (explicit little-endian).

/// Log sequence number: the position of a record. Starts at 1; consecutive.
pub type Lsn = u64;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"HOLOWAL1";
pub(crate) const SEGMENT_HEADER_BYTES: usize = 16;
pub(crate) const RECORD_HEADER_BYTES: usize = 16;

/// The file name of the segment whose first record has `first_lsn`.
pub(crate) fn segment_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.wal")
}

/// The first LSN of a segment, from its file name; `None` for files that are not segments.
pub(crate) fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn segment_header(first_lsn: Lsn) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&first_lsn.to_le_bytes());
    header
}

/// Appends one record to `out`, given the CRC of its payload.
pub(crate) fn encode_record(out: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("record length is checked against u32 limits");
    let crc = record_crc(len, lsn, payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The CRC32C of the length, the LSN and the payload, in that order. Hashed straight
/// through (hardware CRC32C, tens of GB/s): combining a payload CRC computed earlier with
/// `crc32c_combine` gives the same value but costs microseconds of matrix work per record,
/// which made WAL open and replay take about a second per 64 MiB segment.
fn record_crc(len: u32, lsn: Lsn, payload: &[u8]) -> u32 {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&lsn.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// A record read back from a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodedRecord<'a> {
    pub lsn: Lsn,
    pub payload: &'a [u8],
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// Fewer bytes than a header, or than the header's declared length.
    Truncated,
    TooLarge(u32),
    Checksum,
}

impl BadRecord {
    pub(crate) fn describe(&self) -> String {
        match self {
            BadRecord::Truncated => "record cut short".to_owned(),
            BadRecord::TooLarge(len) => format!("implausible length {len}"),
            BadRecord::Checksum => "checksum mismatch".to_owned(),
        }
    }
}

/// The LSN field of a record header at the start of `bytes`, without checking anything.
pub(crate) fn peek_lsn(bytes: &[u8]) -> Option<Lsn> {
    let field = bytes.get(8..16)?;
    Some(u64::from_le_bytes(field.try_into().expect("8 bytes")))
}

/// Decodes the record at the start of `bytes`; returns it and its encoded size.
pub(crate) fn decode_record(
    bytes: &[u8],
    record_bytes_max: u32,
) -> Result<(DecodedRecord<'_>, usize), BadRecord> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(BadRecord::Truncated);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if len > record_bytes_max {
        return Err(BadRecord::TooLarge(len));
    }
    let end = RECORD_HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Err(BadRecord::Truncated);
    }
    let payload = &bytes[RECORD_HEADER_BYTES..end];
    if record_crc(len, lsn, payload) != crc {
        return Err(BadRecord::Checksum);
    }
    Ok((DecodedRecord { lsn, payload }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, b"hello");
        let (rec, used) = decode_record(&out, 1024).unwrap();
        assert_eq!(
            rec,
            DecodedRecord {
                lsn: 7,
                payload: b"hello"
            }
        );
        assert_eq!(used, out.len());
    }

    /// Logs written when the payload CRC was combined with the header's stay readable.
    #[test]
    fn the_checksum_is_the_one_combined_from_header_and_payload_crcs() {
        for len in [0usize, 1, 7, 64, 1000, 4096, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let lsn = 1_234_567 + len as u64;
            let mut head = [0u8; 12];
            head[..4].copy_from_slice(&(len as u32).to_le_bytes());
            head[4..].copy_from_slice(&lsn.to_le_bytes());
            let combined =
                crc32c::crc32c_combine(crc32c::crc32c(&head), crc32c::crc32c(&payload), len);
            assert_eq!(
                record_crc(len as u32, lsn, &payload),
                combined,
                "length {len}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut out = Vec::new();
        encode_record(&mut out, 42, b"payload bytes");
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_record(&bad, 1024).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn segment_names_parse_back() {
        assert_eq!(parse_segment_name(&segment_name(123)), Some(123));
        assert_eq!(parse_segment_name("123.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000012x.wal"), None);
    }
}
