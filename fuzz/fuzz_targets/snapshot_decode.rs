//! Fuzz target `snapshot_decode`: the snapshot decoder open runs on the newest snapshot
//! file (`snapshot::decode`), on arbitrary bytes.
//!
//! The first byte picks whether the rest is decoded as it is (bit 0 clear) or with its
//! last four bytes replaced by the right checksum (bit 0 set), so that decoding can
//! succeed and the contents be checked. The decoder checks the checksum first, so only
//! the second kind reaches the sections.
//!
//! Failure means a panic, or a decoded snapshot whose encoding does not decode again to
//! the same encoding (`encode` ∘ `decode` must be idempotent).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_engine::DEFAULT_DEDUPE_WINDOW_MS;
use nudge_engine::internals::snapshot;

/// Bytes of the checksum trailer.
const TRAILER_BYTES: usize = 4;

fn decode(bytes: &[u8]) -> Result<snapshot::Contents, String> {
    snapshot::decode_bytes(bytes, DEFAULT_DEDUPE_WINDOW_MS)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= TRAILER_BYTES {
        let body = bytes.len() - TRAILER_BYTES;
        let crc = crc32c::crc32c(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(contents) = decode(&bytes) else {
        return;
    };
    let encoded = snapshot::encode(&contents.dicts, &contents.dedupe, &contents.state);
    let again = decode(&encoded)
        .unwrap_or_else(|e| panic!("the encoding of a decoded snapshot does not decode: {e}"));
    let twice = snapshot::encode(&again.dicts, &again.dedupe, &again.state);
    assert!(twice == encoded, "encode(decode(encode(decode(x)))) differs from encode(decode(x))");
});
