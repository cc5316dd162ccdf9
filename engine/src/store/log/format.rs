//! Byte layout of chunks and frames (see `docs/design/event-log-format.md`).
//!
//! ```text
//! chunk  := header frame*
//! header := magic "NUDGELOG" (8) | chunk format version u32le (4) | reserved u32le = 0 (4)
//! frame  := body_len u32le | crc32c u32le | version u8 | kind u8 | flags u8 | reserved u8 | body
//! body   := rkyv bytes                         when flags & COMPRESSED == 0
//!         | raw_len u32le | zstd(rkyv bytes)   when flags & COMPRESSED != 0
//! crc    := crc32c(body_len bytes ++ version ++ kind ++ flags ++ reserved ++ body)
//! ```

use rkyv::util::AlignedVec;

use crate::limits::MAX_RECORD_BYTES;

/// Magic bytes opening every chunk file.
pub const CHUNK_MAGIC: &[u8; 8] = b"NUDGELOG";
/// Version of the chunk header layout.
pub const CHUNK_FORMAT_VERSION: u32 = 1;
/// Bytes of the chunk header.
pub const CHUNK_HEADER_BYTES: usize = 16;
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 12;
/// Offset of `body_len` inside a frame header.
const LEN_AT: usize = 0;
/// Offset of the CRC inside a frame header.
const CRC_AT: usize = LEN_AT + 4;
/// Offset of the version byte; the CRC covers the length and everything from here on.
const VERSION_AT: usize = CRC_AT + 4;
const KIND_AT: usize = VERSION_AT + 1;
const FLAGS_AT: usize = KIND_AT + 1;
const RESERVED_AT: usize = FLAGS_AT + 1;
const _: () = assert!(RESERVED_AT + 1 == FRAME_HEADER_BYTES);
const _: () = assert!(CHUNK_MAGIC.len() + 8 == CHUNK_HEADER_BYTES);

/// Version of the frame layout and record encoding written today.
pub const FRAME_VERSION: u8 = 1;
/// Flag: the body is zstd-compressed, prefixed by its raw length.
pub const FLAG_COMPRESSED: u8 = 0b0000_0001;
/// Bodies at least this large are compressed.
pub const COMPRESS_MIN_BYTES: usize = 512;
/// zstd level: the fastest, which still roughly halves event batches.
pub const ZSTD_LEVEL: i32 = 1;

/// What a frame holds. Kinds not listed here are refused by this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A `wire::LogBatch` of events, profile updates and subscription changes.
    Batch = 1,
}

impl RecordKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Batch),
            _ => None,
        }
    }
}

/// The chunk header bytes.
pub fn chunk_header() -> [u8; CHUNK_HEADER_BYTES] {
    let mut header = [0u8; CHUNK_HEADER_BYTES];
    header[..8].copy_from_slice(CHUNK_MAGIC);
    header[8..12].copy_from_slice(&CHUNK_FORMAT_VERSION.to_le_bytes());
    header
}

/// Checks a chunk header.
pub fn check_chunk_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < CHUNK_HEADER_BYTES {
        return Err(format!(
            "chunk header is {} bytes, expected {CHUNK_HEADER_BYTES}",
            bytes.len()
        ));
    }
    if &bytes[..8] != CHUNK_MAGIC {
        return Err("chunk does not start with the NUDGELOG magic".into());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != CHUNK_FORMAT_VERSION {
        return Err(format!(
            "chunk format version {version} is not supported (this build reads {CHUNK_FORMAT_VERSION})"
        ));
    }
    Ok(())
}

thread_local! {
    /// A zstd context per thread, so a frame does not allocate one.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Appends one frame holding `body` (rkyv bytes) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, kind: RecordKind, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    let mut flags = 0;
    if body.len() >= COMPRESS_MIN_BYTES {
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        let before = out.len();
        let compressed = COMPRESSOR.with(|compressor| {
            let mut compressor = compressor.borrow_mut();
            if compressor.is_none() {
                *compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            compressor.as_mut().and_then(|c| c.compress(body).ok())
        });
        match compressed {
            Some(c) if c.len() + 4 < body.len() => {
                out.extend_from_slice(&c);
                flags |= FLAG_COMPRESSED;
            }
            _ => {
                out.truncate(before - 4);
                out.extend_from_slice(body);
            }
        }
    } else {
        out.extend_from_slice(body);
    }
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    debug_assert!(body_len <= MAX_RECORD_BYTES);
    let header = &mut out[start..start + FRAME_HEADER_BYTES];
    header[LEN_AT..CRC_AT]
        .copy_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    header[VERSION_AT] = FRAME_VERSION;
    header[KIND_AT] = kind as u8;
    header[FLAGS_AT] = flags;
    header[RESERVED_AT] = 0;
    let crc = frame_crc(&out[start..]);
    out[start + CRC_AT..start + VERSION_AT].copy_from_slice(&crc.to_le_bytes());
}

/// The checksum of a whole frame (header and body) as stored in its header: CRC32C of
/// the length bytes and of everything from the version byte on. Public for the fuzz
/// targets, which build frames with valid checksums around arbitrary bodies. Bytes a
/// frame shorter than its header lacks count as absent.
pub fn frame_crc(frame: &[u8]) -> u32 {
    let crc = crc32c::crc32c(frame.get(LEN_AT..CRC_AT).unwrap_or_default());
    crc32c::crc32c_append(crc, frame.get(VERSION_AT..).unwrap_or_default())
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes remain than the frame needs: an incomplete write.
    Incomplete,
    /// The checksum holds but the version or kind is unknown: written by a newer
    /// build. Never a torn write, so recovery refuses rather than truncates.
    Unsupported(String),
    /// The bytes are there but wrong (CRC, lengths, decompression).
    Damaged(String),
}

/// A decoded frame.
#[derive(Debug)]
pub struct Frame {
    /// What the body holds.
    pub kind: RecordKind,
    /// The rkyv bytes, decompressed and 16-byte aligned.
    pub body: AlignedVec,
    /// Bytes the frame occupies in the chunk.
    pub len: usize,
}

/// Reads the frame at the start of `bytes`.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, FrameError> {
    FrameDecoder::default().decode(bytes)
}

/// The length of the frame starting at `bytes`, from its header alone (no
/// checksum, no decompression): for skipping frames a snapshot already covers.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    (body_len <= MAX_RECORD_BYTES).then_some(FRAME_HEADER_BYTES + body_len)
}

/// Decodes frames, reusing one zstd context across them.
#[derive(Default)]
pub struct FrameDecoder {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl FrameDecoder {
    /// Reads the frame at the start of `bytes`.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() < FRAME_HEADER_BYTES {
            return Err(FrameError::Incomplete);
        }
        let body_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if body_len > MAX_RECORD_BYTES {
            return Err(FrameError::Damaged(format!(
                "frame length {body_len} exceeds the maximum {MAX_RECORD_BYTES}"
            )));
        }
        let len = FRAME_HEADER_BYTES + body_len;
        if bytes.len() < len {
            return Err(FrameError::Incomplete);
        }
        let frame = &bytes[..len];
        let stored_crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if frame_crc(frame) != stored_crc {
            return Err(FrameError::Damaged("checksum mismatch".into()));
        }
        if frame[VERSION_AT] != FRAME_VERSION {
            return Err(FrameError::Unsupported(format!(
                "record version {} is not supported (this build reads {FRAME_VERSION}); it was written by a newer version of Nudge",
                frame[VERSION_AT]
            )));
        }
        let kind = RecordKind::from_byte(frame[KIND_AT]).ok_or_else(|| {
            FrameError::Unsupported(format!(
                "record kind {} is unknown to this build; it was written by a newer version of Nudge",
                frame[KIND_AT]
            ))
        })?;
        let flags = frame[FLAGS_AT];
        let raw = &frame[FRAME_HEADER_BYTES..];
        let mut body = AlignedVec::new();
        if flags & FLAG_COMPRESSED != 0 {
            let (size, compressed) = raw
                .split_at_checked(4)
                .ok_or_else(|| FrameError::Damaged("compressed body too short".into()))?;
            let raw_len = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
            if raw_len > MAX_RECORD_BYTES {
                return Err(FrameError::Damaged(format!(
                    "decompressed length {raw_len} exceeds the maximum"
                )));
            }
            body.resize(raw_len, 0);
            if self.zstd.is_none() {
                self.zstd = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| FrameError::Damaged(format!("zstd context: {e}")))?,
                );
            }
            let Some(zstd) = self.zstd.as_mut() else {
                return Err(FrameError::Damaged("zstd context unavailable".into()));
            };
            let written = zstd
                .decompress_to_buffer(compressed, &mut body[..])
                .map_err(|e| FrameError::Damaged(format!("zstd: {e}")))?;
            if written != raw_len {
                return Err(FrameError::Damaged(format!(
                    "decompressed {written} bytes, header said {raw_len}"
                )));
            }
        } else {
            body.extend_from_slice(raw);
        }
        Ok(Frame { kind, body, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a version-1 frame. A change here is a format change:
    /// bump the version and add a line to the version history of
    /// docs/design/event-log-format.md.
    #[test]
    fn a_batch_frame_matches_its_golden_bytes() {
        use crate::store::log::entry::{
            LogBatch, LogEntry, LogEvent, LogUnsubscribe, encode_batch,
        };
        let mut blob = Vec::new();
        crate::store::props::encode(
            &mut blob,
            &[(0, &crate::store::props::Value::Number(49.5)), (1, &"c9".into())],
        );
        let batch = LogBatch {
            received_ms: 1_793_491_200_000,
            new_users: vec!["u1".into()],
            new_event_names: vec!["Added To Cart".into()],
            new_keys: vec!["price".into(), "cart_id".into()],
            entries: vec![
                LogEntry::Event(LogEvent {
                    user: 0,
                    event: 0,
                    ts_ms: 1_793_491_100_000,
                    id: Some("evt-1".into()),
                    props: blob,
                }),
                LogEntry::Unsubscribe(LogUnsubscribe { endpoint: "https://push.example/x".into() }),
            ],
        };
        let mut frame = Vec::new();
        encode_frame(&mut frame, RecordKind::Batch, &encode_batch(&batch));
        let hex: Vec<String> = frame
            .chunks(16)
            .map(|row| row.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
            .collect();
        crate::golden::check("src/store/log/testdata/batch_frame_v1.hex", &(hex.join("\n") + "\n"));
        let decoded = decode_frame(&frame).expect("decodes");
        assert_eq!(
            crate::store::log::entry::access_batch(&decoded.body).map(|b| b.entries.len()),
            Ok(2)
        );
    }

    #[test]
    fn frames_round_trip_compressed_and_plain() {
        for size in [0usize, 10, COMPRESS_MIN_BYTES, 100_000] {
            let body: Vec<u8> = (0..size).map(|i| (i % 7) as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, RecordKind::Batch, &body);
            let frame = decode_frame(&out).expect("decodes");
            assert_eq!(frame.len, out.len());
            assert_eq!(&frame.body[..], &body[..]);
            if size >= COMPRESS_MIN_BYTES {
                assert!(out.len() < size, "repetitive body of {size} bytes was compressed");
            }
        }
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_caught() {
        let body: Vec<u8> = (0..700u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = Vec::new();
        encode_frame(&mut out, RecordKind::Batch, &body);
        for cut in 0..out.len() {
            assert_eq!(
                decode_frame(&out[..cut]).expect_err("a cut frame is incomplete"),
                FrameError::Incomplete,
                "cut {cut}"
            );
        }
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut damaged = out.clone();
                damaged[byte] ^= 1 << bit;
                match decode_frame(&damaged) {
                    Err(_) => {}
                    Ok(f) => {
                        panic!("flip of bit {bit} in byte {byte} went unnoticed ({} bytes)", f.len)
                    }
                }
            }
        }
    }
}
