//! Web Push message encryption: RFC 8291 on the RFC 8188 `aes128gcm` content
//! coding, on `aws-lc-rs` (its P-256 ECDH, the per-message cost RFC 8291
//! cannot avoid, measured 49.8 µs against ring's 59.6 µs here).
//!
//! A body is `salt(16) || rs(4, big-endian) || idlen(1) || keyid(idlen) ||
//! records`. Each record is AES-128-GCM of `data || delimiter || 0x00*`, with
//! delimiter 0x01 before the last record and 0x02 on it. Keys come from HKDF
//! with SHA-256:
//!
//! ```text
//! IKM   = HKDF(salt = auth, ikm = ECDH(as, ua), info = "WebPush: info\0" || ua_public || as_public, 32)
//! CEK   = HKDF(salt, IKM, "Content-Encoding: aes128gcm\0", 16)
//! NONCE = HKDF(salt, IKM, "Content-Encoding: nonce\0", 12) XOR record sequence number
//! ```
//!
//! A Web Push message is a single record whose `keyid` is the sender's
//! ephemeral public key (65 bytes), so its header is always [`HEADER_LEN`]
//! bytes; with `rs` = [`RECORD_SIZE`] at most [`MAX_PLAINTEXT_BYTES`] bytes fit.
//! [`encrypt`] uses a fresh ephemeral key and a fresh salt for every message
//! (reusing either would repeat an AES-GCM key and nonce) and no padding.

use crate::error::{Error, Result};
use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{aead, hkdf};

/// Largest plaintext one Web Push message carries (RFC 8291 §4): 4096 minus
/// the 86-byte header, one delimiter byte and the 16-byte tag.
pub const MAX_PLAINTEXT_BYTES: usize = 3993;
/// The record size written into every message (as the RFC example and the
/// common implementations do).
pub const RECORD_SIZE: u32 = 4096;
/// Length of a Web Push `aes128gcm` header: salt, rs, idlen and a 65-byte keyid.
pub const HEADER_LEN: usize = SALT_LEN + 4 + 1 + PUBLIC_KEY_LEN;
/// Length of the salt at the start of the header.
pub const SALT_LEN: usize = 16;
/// Length of a subscription's `auth` secret.
pub const AUTH_LEN: usize = 16;
/// Length of an uncompressed P-256 point (`0x04 || X || Y`).
pub const PUBLIC_KEY_LEN: usize = 65;

/// First byte of an uncompressed SEC1 point.
const UNCOMPRESSED_POINT: u8 = 0x04;
/// Length of the AES-GCM tag on every record.
const TAG_LEN: usize = 16;
/// Length of the AES-128 content-encryption key.
const CEK_LEN: usize = 16;
/// Length of the AES-GCM nonce.
const NONCE_LEN: usize = 12;
/// Length of the Web Push input keying material.
const IKM_LEN: usize = 32;
/// Smallest valid record size: a tag and a delimiter, plus one byte (RFC 8188 §2).
const MIN_RECORD_SIZE: u32 = 18;
/// Length of the fixed part of an `aes128gcm` header (salt, rs, idlen).
const FIXED_HEADER_LEN: usize = SALT_LEN + 4 + 1;
/// Delimiter closing every record but the last.
const DELIMITER_MORE: u8 = 0x01;
/// Delimiter closing the last record.
const DELIMITER_LAST: u8 = 0x02;
/// HKDF info prefix for the Web Push IKM (RFC 8291 §3.4).
const KEY_INFO: &[u8] = b"WebPush: info\0";
/// HKDF info for the content-encryption key (RFC 8188 §2.2).
const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0";
/// HKDF info for the nonce base (RFC 8188 §2.3).
const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0";

// The header length and plaintext limit must agree with one record of
// RECORD_SIZE bytes, header included.
const _: () = assert!(HEADER_LEN == 86);
const _: () = assert!(HEADER_LEN + MAX_PLAINTEXT_BYTES + 1 + TAG_LEN == RECORD_SIZE as usize);

fn push_error(what: impl Into<String>) -> Error {
    Error::Push(what.into())
}

fn subscription_error(what: impl Into<String>) -> Error {
    Error::Subscription(what.into())
}

/// An output length for the HKDF of `aws-lc-rs`.
struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA-256: extract with `salt`, expand with the concatenation of
/// `info` into `out`.
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<()> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    prk.expand(info, OutLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| push_error("HKDF output length out of range"))
}

/// The Web Push input keying material (RFC 8291 §3.4) from the ECDH secret,
/// the subscription's auth secret and both public keys.
pub(crate) fn webpush_ikm(
    ecdh_secret: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
) -> Result<[u8; IKM_LEN]> {
    let mut ikm = [0u8; IKM_LEN];
    hkdf_sha256(auth, ecdh_secret, &[KEY_INFO, ua_public, as_public], &mut ikm)?;
    Ok(ikm)
}

/// The content-encryption key and nonce base of one `aes128gcm` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentKeys {
    /// AES-128-GCM key.
    pub(crate) cek: [u8; CEK_LEN],
    /// Nonce of record 0; record `i` XORs `i` into the low bytes.
    pub(crate) nonce: [u8; NONCE_LEN],
}

impl ContentKeys {
    /// Derives the keys of a body from its salt and the input keying material.
    pub(crate) fn derive(salt: &[u8], ikm: &[u8]) -> Result<ContentKeys> {
        let mut keys = ContentKeys { cek: [0; CEK_LEN], nonce: [0; NONCE_LEN] };
        hkdf_sha256(salt, ikm, &[CEK_INFO], &mut keys.cek)?;
        hkdf_sha256(salt, ikm, &[NONCE_INFO], &mut keys.nonce)?;
        Ok(keys)
    }

    fn aead_key(&self) -> Result<aead::LessSafeKey> {
        let key = aead::UnboundKey::new(&aead::AES_128_GCM, &self.cek)
            .map_err(|_| push_error("AES-128-GCM key rejected"))?;
        Ok(aead::LessSafeKey::new(key))
    }

    /// The nonce of record `seq`: the base XOR the 96-bit big-endian sequence number.
    fn record_nonce(&self, seq: u64) -> aead::Nonce {
        let mut nonce = self.nonce;
        for (byte, seq_byte) in nonce[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *byte ^= seq_byte;
        }
        aead::Nonce::assume_unique_for_key(nonce)
    }
}

fn check_plaintext(plaintext: &[u8]) -> Result<()> {
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(push_error(format!(
            "payload is {} bytes, more than the {MAX_PLAINTEXT_BYTES} a push message carries",
            plaintext.len()
        )));
    }
    Ok(())
}

/// Checks the shape of a subscription's public key (not that it is on the curve).
fn check_ua_public(ua_public: &[u8]) -> Result<()> {
    if ua_public.len() != PUBLIC_KEY_LEN {
        return Err(subscription_error(format!(
            "subscription.keys.p256dh must be a {PUBLIC_KEY_LEN}-byte uncompressed P-256 point, got {} bytes",
            ua_public.len()
        )));
    }
    if ua_public[0] != UNCOMPRESSED_POINT {
        return Err(subscription_error(format!(
            "subscription.keys.p256dh must be an uncompressed point starting with 0x04, starts with {:#04x}",
            ua_public[0]
        )));
    }
    Ok(())
}

fn check_auth(auth: &[u8]) -> Result<()> {
    if auth.len() != AUTH_LEN {
        return Err(subscription_error(format!(
            "subscription.keys.auth must be {AUTH_LEN} bytes, got {}",
            auth.len()
        )));
    }
    Ok(())
}

fn not_on_curve() -> Error {
    subscription_error("subscription.keys.p256dh is not a point on the P-256 curve")
}

/// Encrypts one Web Push message for a subscription (RFC 8291).
///
/// `ua_public` is the subscription's `p256dh` (65-byte uncompressed point)
/// and `auth` its 16-byte secret. A fresh ephemeral P-256 key and a fresh
/// 16-byte salt come from the OS random source for every call; `rs` is
/// [`RECORD_SIZE`], one record, no padding. The body is
/// `HEADER_LEN + plaintext.len() + 17` bytes.
///
/// Fails with [`Error::Push`] if the plaintext is over [`MAX_PLAINTEXT_BYTES`]
/// bytes or the OS gives no randomness, and with [`Error::Subscription`] if
/// the keys are malformed or the point is not on the curve.
pub fn encrypt(plaintext: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>> {
    check_plaintext(plaintext)?;
    check_ua_public(ua_public)?;
    check_auth(auth)?;
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| push_error("no randomness for an ephemeral key"))?;
    let as_public = private
        .compute_public_key()
        .map_err(|_| push_error("could not compute the ephemeral public key"))?;
    let mut salt = [0u8; SALT_LEN];
    rng.fill(&mut salt).map_err(|_| push_error("no randomness for a salt"))?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    let ecdh_secret =
        agreement::agree_ephemeral(private, peer, Unspecified, |secret| Ok(secret.to_vec()))
            .map_err(|_| not_on_curve())?;
    encrypt_with(plaintext, &ecdh_secret, as_public.as_ref(), ua_public, auth, &salt)
}

/// The deterministic core of [`encrypt`]: the ECDH secret, the sender's
/// public key and the salt are given. Production goes through [`encrypt`];
/// tests use this to reproduce RFC 8291 Appendix A byte for byte.
pub(crate) fn encrypt_with(
    plaintext: &[u8],
    ecdh_secret: &[u8],
    as_public: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>> {
    check_plaintext(plaintext)?;
    check_ua_public(ua_public)?;
    check_auth(auth)?;
    if as_public.len() != PUBLIC_KEY_LEN || as_public[0] != UNCOMPRESSED_POINT {
        return Err(push_error("the sender's public key is not a 65-byte uncompressed point"));
    }
    let ikm = webpush_ikm(ecdh_secret, auth, ua_public, as_public)?;
    let keys = ContentKeys::derive(salt, &ikm)?;

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(PUBLIC_KEY_LEN as u8);
    body.extend_from_slice(as_public);

    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(DELIMITER_LAST);
    keys.aead_key()?
        .seal_in_place_append_tag(keys.record_nonce(0), aead::Aad::empty(), &mut record)
        .map_err(|_| push_error("AES-128-GCM encryption failed"))?;
    body.extend_from_slice(&record);
    Ok(body)
}

/// An `aes128gcm` header split from its records.
struct Header<'a> {
    salt: &'a [u8],
    rs: u32,
    keyid: &'a [u8],
    records: &'a [u8],
}

fn parse_header(body: &[u8]) -> Result<Header<'_>> {
    if body.len() < FIXED_HEADER_LEN {
        return Err(push_error(format!(
            "body is {} bytes, shorter than an aes128gcm header",
            body.len()
        )));
    }
    let (salt, rest) = body.split_at(SALT_LEN);
    let (rs_bytes, rest) = rest.split_at(4);
    let rs = u32::from_be_bytes([rs_bytes[0], rs_bytes[1], rs_bytes[2], rs_bytes[3]]);
    if rs < MIN_RECORD_SIZE {
        return Err(push_error(format!("record size {rs} is below the minimum {MIN_RECORD_SIZE}")));
    }
    let idlen = usize::from(rest[0]);
    let rest = &rest[1..];
    if rest.len() < idlen {
        return Err(push_error("body ends inside the aes128gcm key id"));
    }
    let (keyid, records) = rest.split_at(idlen);
    Ok(Header { salt, rs, keyid, records })
}

/// Decrypts the records of a body and removes delimiters and padding.
fn decrypt_records(keys: &ContentKeys, rs: u32, records: &[u8]) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Err(push_error("body has no records (truncated)"));
    }
    let key = keys.aead_key()?;
    // rs >= MIN_RECORD_SIZE, so chunks never gets a zero size.
    let record_len = usize::try_from(rs).unwrap_or(usize::MAX);
    let count = records.len().div_ceil(record_len);
    let mut plaintext = Vec::with_capacity(records.len());
    let mut buffer = Vec::with_capacity(record_len.min(records.len()));
    for (seq, record) in records.chunks(record_len).enumerate() {
        if record.len() <= TAG_LEN {
            return Err(push_error(format!("record {seq} is too short to hold a delimiter")));
        }
        buffer.clear();
        buffer.extend_from_slice(record);
        let opened = key
            .open_in_place(keys.record_nonce(seq as u64), aead::Aad::empty(), &mut buffer)
            .map_err(|_| {
                push_error(format!("record {seq} does not decrypt (wrong key or altered)"))
            })?;
        let Some(end) = opened.iter().rposition(|&b| b != 0) else {
            return Err(push_error(format!("record {seq} has no delimiter")));
        };
        let last = seq + 1 == count;
        let expected = if last { DELIMITER_LAST } else { DELIMITER_MORE };
        if opened[end] != expected {
            return Err(push_error(format!(
                "record {seq} ends with delimiter {:#04x}, expected {expected:#04x}{}",
                opened[end],
                if last { " (truncated body)" } else { "" }
            )));
        }
        plaintext.extend_from_slice(&opened[..end]);
    }
    Ok(plaintext)
}

/// Decrypts a plain RFC 8188 `aes128gcm` body with its input keying
/// material: any key id, any number of records (delimiter 0x01 on all but
/// the last, 0x02 on the last), padding removed.
pub fn decrypt_aes128gcm(body: &[u8], ikm: &[u8]) -> Result<Vec<u8>> {
    let header = parse_header(body)?;
    let keys = ContentKeys::derive(header.salt, ikm)?;
    decrypt_records(&keys, header.rs, header.records)
}

/// Decrypts a Web Push message as the browser does (RFC 8291): the receiver
/// side, for tests and loopback push receivers.
///
/// `auth` and `ua_public` are the subscription's own secret and public key.
/// `ecdh` gets the sender's public key from the header (the key id) and
/// returns the ECDH shared secret (the x coordinate, 32 bytes) made with the
/// subscription's private key, or `None` if that key is not a valid point.
/// The message must be a single record ending with the 0x02 delimiter;
/// padding is removed.
pub fn decrypt(
    body: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    ecdh: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Result<Vec<u8>> {
    check_ua_public(ua_public)?;
    check_auth(auth)?;
    let header = parse_header(body)?;
    if header.keyid.len() != PUBLIC_KEY_LEN || header.keyid[0] != UNCOMPRESSED_POINT {
        return Err(push_error(format!(
            "key id is {} bytes, not the sender's 65-byte uncompressed public key",
            header.keyid.len()
        )));
    }
    if header.records.len() > usize::try_from(header.rs).unwrap_or(usize::MAX) {
        return Err(push_error("a push message must be a single record"));
    }
    let ecdh_secret = ecdh(header.keyid)
        .ok_or_else(|| push_error("the sender's public key is not a point on the P-256 curve"))?;
    let ikm = webpush_ikm(&ecdh_secret, auth, ua_public, header.keyid)?;
    let keys = ContentKeys::derive(header.salt, &ikm)?;
    decrypt_records(&keys, header.rs, header.records)
}

/// Whether `point` is a valid P-256 public key: an agreement with a point
/// that is not on the curve is refused.
fn is_on_curve(point: &[u8]) -> Result<bool> {
    let rng = SystemRandom::new();
    let probe = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| push_error("no randomness for an ephemeral key"))?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, point);
    Ok(agreement::agree_ephemeral(probe, peer, Unspecified, |_| Ok(())).is_ok())
}

/// Checks a subscription's keys as registered by the browser and returns
/// them decoded: `(p256dh, auth)`.
///
/// Both are base64url, with or without `=` padding. `p256dh` must be a
/// 65-byte uncompressed point (0x04 first) on the P-256 curve, `auth`
/// exactly 16 bytes. Errors ([`Error::Subscription`]) name the field
/// (`subscription.keys.p256dh`, `subscription.keys.auth`) and what is wrong.
pub fn validate_subscription_keys(
    p256dh_b64u: &str,
    auth_b64u: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let p256dh = super::b64u_decode(p256dh_b64u)
        .ok_or_else(|| subscription_error("subscription.keys.p256dh is not base64url"))?;
    check_ua_public(&p256dh)?;
    if !is_on_curve(&p256dh)? {
        return Err(not_on_curve());
    }
    let auth = super::b64u_decode(auth_b64u)
        .ok_or_else(|| subscription_error("subscription.keys.auth is not base64url"))?;
    check_auth(&auth)?;
    Ok((p256dh, auth))
}

/// Decodes a stored subscription's keys for sending: base64url, a 65-byte
/// uncompressed point and a 16-byte secret, without the curve check
/// [`validate_subscription_keys`] did at registration. (That check costs an
/// ECDH; at send time [`encrypt`]'s own agreement refuses an off-curve point.)
pub fn decode_subscription_keys(p256dh_b64u: &str, auth_b64u: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let p256dh = super::b64u_decode(p256dh_b64u)
        .ok_or_else(|| subscription_error("subscription.keys.p256dh is not base64url"))?;
    check_ua_public(&p256dh)?;
    let auth = super::b64u_decode(auth_b64u)
        .ok_or_else(|| subscription_error("subscription.keys.auth is not base64url"))?;
    check_auth(&auth)?;
    Ok((p256dh, auth))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::push::webpush::{b64u_decode, b64u_encode};

    #[test]
    fn sending_refuses_an_off_curve_key_without_the_registration_check() {
        let mut off_curve = vec![0x04];
        off_curve.extend([0x01; 64]);
        let (key, auth) = decode_subscription_keys(&b64u_encode(&off_curve), AUTH).unwrap();
        assert!(matches!(encrypt(b"hi", &key, &auth), Err(Error::Subscription(_))));
        assert!(decode_subscription_keys("BAAA", AUTH).is_err());
    }

    fn b64(text: &str) -> Vec<u8> {
        b64u_decode(text).unwrap()
    }

    // RFC 8291 Appendix A, as recomputed in web-push.md §1.3.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
    const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const NONCE: &str = "4h_95klXJ5E_qnoN";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn salt() -> [u8; SALT_LEN] {
        b64(SALT).try_into().unwrap()
    }

    #[test]
    fn rfc8291_appendix_a_intermediate_keys() {
        let ikm =
            webpush_ikm(&b64(ECDH_SECRET), &b64(AUTH), &b64(UA_PUBLIC), &b64(AS_PUBLIC)).unwrap();
        assert_eq!(b64u_encode(&ikm), IKM);
        let keys = ContentKeys::derive(&salt(), &ikm).unwrap();
        assert_eq!(b64u_encode(&keys.cek), CEK);
        assert_eq!(b64u_encode(&keys.nonce), NONCE);
    }

    #[test]
    fn rfc8291_appendix_a_body_byte_for_byte() {
        let body = encrypt_with(
            PLAINTEXT,
            &b64(ECDH_SECRET),
            &b64(AS_PUBLIC),
            &b64(UA_PUBLIC),
            &b64(AUTH),
            &salt(),
        )
        .unwrap();
        assert_eq!(body.len(), 144, "86 + 41 + 1 + 16 (the RFC's Content-Length: 145 is wrong)");
        assert_eq!(body, b64(BODY));
        assert_eq!(&body[16..20], &RECORD_SIZE.to_be_bytes());
    }

    #[test]
    fn rfc8291_appendix_a_decrypts() {
        let mut seen = None;
        let plaintext = decrypt(&b64(BODY), &b64(AUTH), &b64(UA_PUBLIC), |as_public| {
            seen = Some(as_public.to_vec());
            Some(b64(ECDH_SECRET))
        })
        .unwrap();
        assert_eq!(plaintext, PLAINTEXT);
        assert_eq!(seen.unwrap(), b64(AS_PUBLIC), "the key id is the sender's public key");
    }

    #[test]
    fn rfc8291_appendix_a_ecdh_secret_matches_the_receiver_private_key() {
        let ua_private = p256::SecretKey::from_slice(&b64(UA_PRIVATE)).unwrap();
        let plaintext = decrypt(&b64(BODY), &b64(AUTH), &b64(UA_PUBLIC), |as_public| {
            p256_ecdh(&ua_private, as_public)
        })
        .unwrap();
        assert_eq!(plaintext, PLAINTEXT);
    }

    #[test]
    fn altered_or_unkeyed_bodies_are_refused() {
        let body = b64(BODY);
        let secret = || Some(b64(ECDH_SECRET));
        let mut altered = body.clone();
        *altered.last_mut().unwrap() ^= 1;
        let err = decrypt(&altered, &b64(AUTH), &b64(UA_PUBLIC), |_| secret()).unwrap_err();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        let err = decrypt(&body, &[7; 16], &b64(UA_PUBLIC), |_| secret()).unwrap_err();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        let err = decrypt(&body, &b64(AUTH), &b64(UA_PUBLIC), |_| None).unwrap_err();
        assert!(err.to_string().contains("not a point"), "{err}");
        let err = decrypt(&body[..HEADER_LEN], &b64(AUTH), &b64(UA_PUBLIC), |_| secret());
        assert!(err.unwrap_err().to_string().contains("no records"));
    }

    #[test]
    fn receiver_checks_the_last_record_delimiter() {
        // A record sealed with delimiter 0x01 claims more records follow.
        let ikm =
            webpush_ikm(&b64(ECDH_SECRET), &b64(AUTH), &b64(UA_PUBLIC), &b64(AS_PUBLIC)).unwrap();
        let keys = ContentKeys::derive(&salt(), &ikm).unwrap();
        let mut record = b"truncated?".to_vec();
        record.push(DELIMITER_MORE);
        keys.aead_key()
            .unwrap()
            .seal_in_place_append_tag(keys.record_nonce(0), aead::Aad::empty(), &mut record)
            .unwrap();
        let mut body = b64(BODY)[..HEADER_LEN].to_vec();
        body.extend_from_slice(&record);
        let err =
            decrypt(&body, &b64(AUTH), &b64(UA_PUBLIC), |_| Some(b64(ECDH_SECRET))).unwrap_err();
        assert!(err.to_string().contains("expected 0x02"), "{err}");
    }

    #[test]
    fn rfc8188_section_3_1_walrus() {
        let ikm = b64("yqdlZ-tYemfogSmv7Ws5PQ");
        let body = b64("I1BsxtFttlv3u_Oo94xnmwAAEAAA-NAVub2qFgBEuQKRapoZu-IxkIva3MEB1PD-ly8Thjg");
        assert_eq!(body.len(), 53);
        let keys = ContentKeys::derive(&body[..SALT_LEN], &ikm).unwrap();
        assert_eq!(b64u_encode(&keys.cek), "_wniytB-ofscZDh4tbSjHw");
        assert_eq!(b64u_encode(&keys.nonce), "Bcs8gkIRKLI8GeI8");
        assert_eq!(decrypt_aes128gcm(&body, &ikm).unwrap(), b"I am the walrus");
        assert!(decrypt_aes128gcm(&body, &[0; 16]).is_err());
    }

    /// Builds a multi-record RFC 8188 body the way a sender would, to check
    /// the record walk, nonce sequence, delimiters and padding removal.
    fn seal_records(ikm: &[u8], rs: u32, chunks: &[(&[u8], u8, usize)]) -> Vec<u8> {
        let salt = [9u8; SALT_LEN];
        let keys = ContentKeys::derive(&salt, ikm).unwrap();
        let mut body = salt.to_vec();
        body.extend_from_slice(&rs.to_be_bytes());
        body.push(2);
        body.extend_from_slice(b"id");
        for (seq, (data, delimiter, padding)) in chunks.iter().enumerate() {
            let mut record = data.to_vec();
            record.push(*delimiter);
            record.resize(record.len() + padding, 0);
            keys.aead_key()
                .unwrap()
                .seal_in_place_append_tag(
                    keys.record_nonce(seq as u64),
                    aead::Aad::empty(),
                    &mut record,
                )
                .unwrap();
            body.extend_from_slice(&record);
        }
        body
    }

    #[test]
    fn multi_record_bodies_decrypt_and_truncation_is_detected() {
        let ikm = [3u8; 16];
        // rs = 26: 10 bytes of data, delimiter and padding + a 16-byte tag per full record.
        let full =
            seal_records(&ikm, 26, &[(b"abcdefghi", 1, 0), (b"jklmnop", 1, 2), (b"qr", 2, 3)]);
        assert_eq!(decrypt_aes128gcm(&full, &ikm).unwrap(), b"abcdefghijklmnopqr");
        let cut = full.len() - (2 + 1 + 3 + TAG_LEN);
        let err = decrypt_aes128gcm(&full[..cut], &ikm).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let early_end = seal_records(&ikm, 26, &[(b"abcdefghi", 2, 0), (b"jk", 2, 0)]);
        assert!(decrypt_aes128gcm(&early_end, &ikm).is_err());
    }

    fn random_receiver() -> (p256::SecretKey, Vec<u8>) {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let rng = SystemRandom::new();
        loop {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes).unwrap();
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                let public = secret.public_key().to_encoded_point(false).as_bytes().to_vec();
                return (secret, public);
            }
        }
    }

    fn p256_ecdh(secret: &p256::SecretKey, peer: &[u8]) -> Option<Vec<u8>> {
        let peer = p256::PublicKey::from_sec1_bytes(peer).ok()?;
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
        Some(shared.raw_secret_bytes().to_vec())
    }

    #[test]
    fn round_trip_with_fresh_key_and_salt_every_time() {
        let (secret, ua_public) = random_receiver();
        let auth = [0x42u8; AUTH_LEN];
        let message = br#"{"title":"Hi","body":"Your cart misses you"}"#;
        let first = encrypt(message, &ua_public, &auth).unwrap();
        let second = encrypt(message, &ua_public, &auth).unwrap();
        assert_eq!(first.len(), HEADER_LEN + message.len() + 1 + TAG_LEN);
        assert_ne!(first[..SALT_LEN], second[..SALT_LEN], "fresh salt");
        assert_ne!(first[21..HEADER_LEN], second[21..HEADER_LEN], "fresh ephemeral key");
        assert_ne!(first[HEADER_LEN..], second[HEADER_LEN..]);
        for body in [&first, &second] {
            let plaintext = decrypt(body, &auth, &ua_public, |k| p256_ecdh(&secret, k)).unwrap();
            assert_eq!(plaintext, message);
        }
        let (other, _) = random_receiver();
        assert!(decrypt(&first, &auth, &ua_public, |k| p256_ecdh(&other, k)).is_err());
    }

    #[test]
    fn size_budget_is_3993_bytes() {
        let (secret, ua_public) = random_receiver();
        let auth = [1u8; AUTH_LEN];
        let largest = vec![b'x'; MAX_PLAINTEXT_BYTES];
        let body = encrypt(&largest, &ua_public, &auth).unwrap();
        assert_eq!(body.len(), RECORD_SIZE as usize);
        assert_eq!(decrypt(&body, &auth, &ua_public, |k| p256_ecdh(&secret, k)).unwrap(), largest);
        let err = encrypt(&[b'x'; MAX_PLAINTEXT_BYTES + 1], &ua_public, &auth).unwrap_err();
        assert!(matches!(err, Error::Push(_)), "{err}");
        assert!(err.to_string().contains("3994 bytes"), "{err}");
    }

    #[test]
    fn encrypt_refuses_bad_subscription_keys() {
        let (_, ua_public) = random_receiver();
        let off_curve = [[UNCOMPRESSED_POINT].as_slice(), &[1u8; 64]].concat();
        let err = encrypt(b"hi", &off_curve, &[0; 16]).unwrap_err();
        assert!(matches!(err, Error::Subscription(_)), "{err}");
        assert!(err.to_string().contains("not a point on the P-256 curve"), "{err}");
        let err = encrypt(b"hi", &ua_public[..64], &[0; 16]).unwrap_err();
        assert!(err.to_string().contains("got 64 bytes"), "{err}");
        let err = encrypt(b"hi", &ua_public, &[0; 12]).unwrap_err();
        assert!(err.to_string().contains("subscription.keys.auth"), "{err}");
    }

    #[test]
    fn subscription_keys_are_validated_with_the_field_named() {
        let (_, ua_public) = random_receiver();
        let p256dh = b64u_encode(&ua_public);
        let auth = b64u_encode(&[5; 16]);
        let (key, secret) = validate_subscription_keys(&p256dh, &auth).unwrap();
        assert_eq!((key, secret), (ua_public.clone(), vec![5; 16]));
        // Padded base64url (Firefox) is accepted too.
        assert!(validate_subscription_keys(&format!("{p256dh}="), &format!("{auth}==")).is_ok());
        assert!(validate_subscription_keys(UA_PUBLIC, AUTH).is_ok());

        let refused = |p256dh: &str, auth: &str, field: &str, what: &str| {
            let err = validate_subscription_keys(p256dh, auth).unwrap_err();
            assert!(matches!(err, Error::Subscription(_)), "{err}");
            let text = err.to_string();
            assert!(text.contains(field) && text.contains(what), "{text}");
        };
        let p256dh_field = "subscription.keys.p256dh";
        let auth_field = "subscription.keys.auth";
        refused("not base64!", &auth, p256dh_field, "not base64url");
        refused(&b64u_encode(&ua_public[..33]), &auth, p256dh_field, "got 33 bytes");
        let mut compressed_tag = ua_public.clone();
        compressed_tag[0] = 0x02;
        refused(&b64u_encode(&compressed_tag), &auth, p256dh_field, "0x04");
        let off_curve = [[UNCOMPRESSED_POINT].as_slice(), &[1u8; 64]].concat();
        refused(&b64u_encode(&off_curve), &auth, p256dh_field, "not a point on the P-256 curve");
        refused(&p256dh, "***", auth_field, "not base64url");
        refused(&p256dh, &b64u_encode(&[5; 15]), auth_field, "got 15");
        refused(&p256dh, &b64u_encode(&[5; 17]), auth_field, "got 17");
    }
}
