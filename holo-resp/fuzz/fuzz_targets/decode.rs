//! Feeds arbitrary bytes to the decoder under default and tight limits. The decoder must never
//! panic, must never claim more bytes than it was given, and a decoded frame must decode the
//! same after re-encoding.
#![no_main]

use bytes::BytesMut;
use holo_resp::{Limits, Version, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tight = Limits { bulk_bytes_max: 64, aggregate_len_max: 8, depth_max: 4, inline_bytes_max: 64 };
    for limits in [Limits::default(), tight] {
        if let Ok(Some((frame, used))) = decode(data, &limits) {
            assert!(used <= data.len());
            let mut wire = BytesMut::new();
            encode(&frame, Version::Resp3, &mut wire);
            let again = decode(&wire, &Limits::default()).expect("re-encoded frame decodes");
            if let Some((second, _)) = again {
                // NaN doubles never compare equal; everything else must.
                if !format!("{frame:?}").contains("NaN") {
                    assert_eq!(second, frame);
                }
            }
        }
    }
});
