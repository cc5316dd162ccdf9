//! Fuzz target `log_frame`: the log's record decoder, as replay runs it on every frame
//! of a chunk: `format::FrameDecoder::decode` (length, checksum, version, kind, zstd),
//! then `entry::ValidatedBatch::new` (rkyv validation of the body), then the property
//! codec (`props::validate`, `props::iter`) on every blob the batch carries.
//!
//! The first byte picks how the rest is used:
//! - bit 0 clear: the rest is the bytes of a chunk after its header, decoded as-is;
//! - bit 0 set: the rest is a frame's version, kind and flags bytes followed by a body,
//!   wrapped in a header with the right length and checksum, so that the fuzzer reaches
//!   decompression and rkyv validation instead of stopping at the checksum.
//!
//! Either way the rest is also used as a plain rkyv body (`encode_frame`, then decode).
//! Failure means a panic, a frame that does not decode back to what was encoded, or a
//! batch that does not survive deserialize, encode and validate again unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_engine::internals::entry::{
    self, ArchivedLogBatch, ArchivedLogEntry, LogBatch, ValidatedBatch,
};
use nudge_engine::internals::log::format::{self, FRAME_HEADER_BYTES, FrameDecoder, RecordKind};
use nudge_engine::internals::props;

/// Key count given to `props::validate`: blobs naming a higher key id are refused.
const KEY_COUNT: u32 = 64;

/// Checks every property blob of a validated batch the way replay reads them.
fn walk_props(batch: &ArchivedLogBatch) {
    let mut blobs: Vec<&[u8]> = Vec::new();
    for entry in batch.entries.iter() {
        match entry {
            ArchivedLogEntry::Event(e) => blobs.push(&e.props),
            ArchivedLogEntry::Profile(p) => {
                blobs.extend([&p.set[..], &p.set_once[..], &p.increment[..], &p.append[..]]);
            }
            _ => {}
        }
    }
    for blob in blobs {
        if props::validate(blob, KEY_COUNT).is_ok() {
            for (_, value) in props::iter(blob) {
                let _ = value.to_owned_value();
            }
        }
    }
}

/// A decoded body: validated, walked, and round-tripped through `LogBatch`.
fn check_body(body: rkyv::util::AlignedVec) {
    let Ok(validated) = ValidatedBatch::new(body) else {
        return;
    };
    let archived = validated.get();
    walk_props(archived);
    let batch: LogBatch = rkyv::deserialize::<LogBatch, rkyv::rancor::Error>(archived)
        .unwrap_or_else(|e| panic!("a validated batch does not deserialize: {e}"));
    let encoded = entry::encode_batch(&batch);
    let again = entry::access_batch(&encoded)
        .unwrap_or_else(|e| panic!("a re-encoded batch does not validate: {e}"));
    let again: LogBatch = rkyv::deserialize::<LogBatch, rkyv::rancor::Error>(again)
        .unwrap_or_else(|e| panic!("a re-encoded batch does not deserialize: {e}"));
    assert_eq!(again, batch, "batch round trip");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::default();
    if mode & 1 == 0 {
        // Every frame of the bytes, as recovery walks a chunk.
        let mut at = 0;
        while at < rest.len() {
            match decoder.decode(&rest[at..]) {
                Ok(frame) => {
                    assert!(frame.len >= FRAME_HEADER_BYTES && frame.len <= rest.len() - at);
                    at += frame.len;
                    check_body(frame.body);
                }
                Err(_) => break,
            }
        }
    } else if let Some((head, body)) = rest.split_first_chunk::<3>() {
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
        frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(head);
        frame.push(0);
        frame.extend_from_slice(body);
        let crc = format::frame_crc(&frame);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        if let Ok(decoded) = decoder.decode(&frame) {
            assert_eq!(decoded.len, frame.len());
            check_body(decoded.body);
        }
    }

    // The rest as an rkyv body: a frame holds exactly what was encoded in it.
    let mut frame = Vec::new();
    format::encode_frame(&mut frame, RecordKind::Batch, rest);
    let decoded = decoder.decode(&frame).expect("an encoded frame decodes");
    assert_eq!(decoded.len, frame.len());
    assert_eq!(&decoded.body[..], rest);
    check_body(decoded.body);
});
