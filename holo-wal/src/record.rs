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

/// The CRC32C of a record's payload, computed before taking the append lock.
pub(crate) fn payload_crc(payload: &[u8]) -> u32 {
    crc32c::crc32c(payload)
}

/// Appends one record to `out`, given the CRC of its payload.
pub(crate) fn encode_record(out: &mut Vec<u8>, lsn: Lsn, payload: &[u8], payload_crc: u32) {
    let len = u32::try_from(payload.len()).expect("record length is checked against u32 limits");
    let crc = record_crc(len, lsn, payload_crc, payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

fn record_crc(len: u32, lsn: Lsn, payload_crc: u32, payload_len: usize) -> u32 {
    let mut head = [0u8; 12];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&lsn.to_le_bytes());
    crc32c::crc32c_combine(crc32c::crc32c(&head), payload_crc, payload_len)
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
    if record_crc(len, lsn, payload_crc(payload), payload.len()) != crc {
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
        encode_record(&mut out, 7, b"hello", payload_crc(b"hello"));
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

    #[test]
    fn every_bit_flip_is_detected() {
        let mut out = Vec::new();
        encode_record(
            &mut out,
            42,
            b"payload bytes",
            payload_crc(b"payload bytes"),
        );
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
