//! Web Push without the HTTP: message encryption, VAPID and what a push
//! service's answer means.
//!
//! The sender (elsewhere) posts one message to one subscription endpoint.
//! Everything it needs besides the HTTP client is here, as plain functions:
//!
//! - [`ece`]: RFC 8291 message encryption on the RFC 8188 `aes128gcm`
//!   content coding. [`encrypt`] draws a fresh ephemeral P-256 key and a fresh
//!   salt for every message; [`validate_subscription_keys`] checks a
//!   subscription's `p256dh` and `auth` when it is registered; [`decrypt`] is
//!   the browser's side, for tests and loopback receivers.
//! - [`vapid`]: RFC 8292 application-server identification. A [`Vapid`]
//!   holds the ES256 signing key (a PKCS#8 file created with mode 0600) and
//!   caches one token per push-service origin ([`origin_of`]); [`verify`]
//!   checks a header as a push service would.
//! - [`response`]: [`classify`] maps a push service's status, host, body and
//!   `Retry-After` to an [`Outcome`] (delivered, gone, retry, rejected,
//!   authentication failure), plus the push service of a host and the `Topic`
//!   header.
//!
//! Errors are the crate's [`Error`](crate::error::Error):
//! [`Subscription`](crate::error::Error::Subscription) when the subscription
//! itself is unusable, [`Push`](crate::error::Error::Push) when a message
//! cannot be built or read. No error text includes an endpoint URL: its path
//! is a bearer credential for the subscription.

pub mod ece;
pub mod response;
pub mod vapid;

pub use ece::{
    HEADER_LEN, MAX_PLAINTEXT_BYTES, RECORD_SIZE, decrypt, decrypt_aes128gcm, encrypt,
    validate_subscription_keys,
};
pub use response::{Outcome, classify, parse_retry_after, service_of, topic_header};
pub use vapid::{Claims, Vapid, audience, origin_of, validate_subject, verify};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// base64url without padding, as written into JWTs and headers.
const B64U_ENCODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

/// base64url read with or without `=` padding (Firefox pads its keys).
const B64U_DECODE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as base64url without padding.
pub fn b64u_encode(bytes: &[u8]) -> String {
    B64U_ENCODE.encode(bytes)
}

/// Decodes base64url, with or without `=` padding; `None` if it is not
/// base64url.
pub fn b64u_decode(text: &str) -> Option<Vec<u8>> {
    B64U_DECODE.decode(text).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base64url_round_trips_and_accepts_padding() {
        assert_eq!(b64u_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64u_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(b64u_decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(b64u_decode("+/8="), None, "standard alphabet is not base64url");
        assert_eq!(b64u_decode("not base64!"), None);
    }
}
