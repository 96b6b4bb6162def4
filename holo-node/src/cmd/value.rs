//! The value of a key: its data type and its expiry, and their encoding in storage.
//!
//! A stored value (after the executor's version header) is one of:
//! - tag 0: a string without expiry, the bytes as they are (the common case, and the only
//!   one before types and expiry existed, so older stores read unchanged);
//! - tag 1: a tombstone;
//! - tag 2: `[type u8][expires_at u64 big-endian, 0 = never][payload]`, type 0 a string
//!   (payload: its bytes), type 1 a hash (payload: `[count u32]` then each field and value
//!   length-prefixed with `u32`, in field order).
//!
//! A whole hash is one stored value: a write rewrites it, which suits the small and
//! medium hashes Redis users keep (sessions, objects). Lists, sets and sorted sets take the
//! next type numbers; a type that needs per-element storage keys can still use a type tag
//! here for its header.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};

/// Tag of a plain string without expiry.
pub const TAG_PLAIN: u8 = 0;
/// Tag of a tombstone.
pub const TAG_TOMBSTONE: u8 = 1;
/// Tag of a typed value, possibly with an expiry.
pub const TAG_TYPED: u8 = 2;

const TYPE_STRING: u8 = 0;
const TYPE_HASH: u8 = 1;

/// A key's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Str(Bytes),
    Hash(BTreeMap<Bytes, Bytes>),
}

/// A key's value: data and an optional expiry (Unix time in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Data,
    pub expires_at: Option<u64>,
}

impl Value {
    /// A string without expiry.
    pub fn string(bytes: Bytes) -> Value {
        Value {
            data: Data::Str(bytes),
            expires_at: None,
        }
    }

    /// Whether the value has expired at `now_ms`: expiry is inclusive, as in Redis (a key
    /// whose expiry is now is gone).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self.data {
            Data::Str(_) => "string",
            Data::Hash(_) => "hash",
        }
    }

    /// The encoding OBJECT ENCODING reports, by Redis's rules for small values.
    pub fn encoding(&self) -> &'static str {
        match &self.data {
            Data::Str(b) if crate::cmd::parse_i64(b).is_some() => "int",
            Data::Str(b) if b.len() <= 44 => "embstr",
            Data::Str(_) => "raw",
            Data::Hash(h)
                if h.len() <= 128 && h.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64) =>
            {
                "listpack"
            }
            Data::Hash(_) => "hashtable",
        }
    }

    /// The encoded length of [`Value::encode_into`].
    pub fn encoded_len(&self) -> usize {
        match (&self.data, self.expires_at) {
            (Data::Str(b), None) => b.len(),
            (Data::Str(b), Some(_)) => 9 + b.len(),
            (Data::Hash(h), _) => 13 + h.iter().map(|(f, v)| 8 + f.len() + v.len()).sum::<usize>(),
        }
    }

    /// Appends the encoding and returns its tag.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> u8 {
        match (&self.data, self.expires_at) {
            (Data::Str(b), None) => {
                out.extend_from_slice(b);
                TAG_PLAIN
            }
            (Data::Str(b), Some(at)) => {
                out.put_u8(TYPE_STRING);
                out.put_u64(at);
                out.extend_from_slice(b);
                TAG_TYPED
            }
            (Data::Hash(h), at) => {
                out.put_u8(TYPE_HASH);
                out.put_u64(at.unwrap_or(0));
                out.put_u32(h.len() as u32);
                for (f, v) in h {
                    out.put_u32(f.len() as u32);
                    out.extend_from_slice(f);
                    out.put_u32(v.len() as u32);
                    out.extend_from_slice(v);
                }
                TAG_TYPED
            }
        }
    }

    /// Decodes a value of tag `tag` (not a tombstone); `None` if it is malformed.
    pub fn decode(tag: u8, body: &[u8]) -> Option<Value> {
        match tag {
            TAG_PLAIN => Some(Value::string(Bytes::copy_from_slice(body))),
            TAG_TYPED => {
                let (&kind, rest) = body.split_first()?;
                let at = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
                let expires_at = (at != 0).then_some(at);
                let payload = &rest[8..];
                let data = match kind {
                    TYPE_STRING => Data::Str(Bytes::copy_from_slice(payload)),
                    TYPE_HASH => Data::Hash(decode_hash(payload)?),
                    _ => return None,
                };
                Some(Value { data, expires_at })
            }
            _ => None,
        }
    }
}

fn decode_hash(mut payload: &[u8]) -> Option<BTreeMap<Bytes, Bytes>> {
    let take = |payload: &mut &[u8]| -> Option<Bytes> {
        let len = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        let bytes = payload.get(4..4usize.checked_add(len)?)?;
        let out = Bytes::copy_from_slice(bytes);
        *payload = &payload[4 + len..];
        Some(out)
    };
    let count = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?);
    payload = &payload[4..];
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let field = take(&mut payload)?;
        let value = take(&mut payload)?;
        map.insert(field, value);
    }
    payload.is_empty().then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) {
        let mut out = Vec::new();
        let tag = value.encode_into(&mut out);
        assert_eq!(out.len(), value.encoded_len());
        assert_eq!(Value::decode(tag, &out).as_ref(), Some(value));
    }

    #[test]
    fn every_shape_round_trips() {
        round_trip(&Value::string(Bytes::from_static(b"plain")));
        round_trip(&Value::string(Bytes::new()));
        round_trip(&Value {
            data: Data::Str(Bytes::from_static(b"x")),
            expires_at: Some(1_700_000_000_000),
        });
        let mut h = BTreeMap::new();
        h.insert(Bytes::from_static(b"f"), Bytes::from_static(b"v"));
        h.insert(Bytes::from_static(b""), Bytes::from_static(b""));
        round_trip(&Value {
            data: Data::Hash(h.clone()),
            expires_at: None,
        });
        round_trip(&Value {
            data: Data::Hash(h),
            expires_at: Some(5),
        });
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(Value::decode(TAG_TYPED, b""), None);
        assert_eq!(Value::decode(TAG_TYPED, &[9, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            Value::decode(TAG_TYPED, &[TYPE_HASH, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            None
        );
        assert_eq!(Value::decode(7, b"x"), None);
    }
}
