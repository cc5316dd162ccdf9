//! VAPID (RFC 8292): the application server's signing key, the
//! `Authorization: vapid t=<jwt>, k=<key>` header, and its verification.
//!
//! The key is an ECDSA P-256 key kept as a PKCS#8 file. Subscriptions are
//! bound to its public key (`applicationServerKey` in the browser), so
//! replacing the file orphans every subscription: [`Vapid::load_or_create`]
//! creates it once, atomically and with mode 0600, and afterwards only reads
//! it. It does not refuse a file that others can read; keeping it private is
//! the operator's job once it exists.
//!
//! Tokens are ES256 JWTs with `aud` = the push service's origin, `exp` =
//! now + 12 h and `sub` = a contact URI. One token is cached per origin and
//! re-minted when less than an hour remains, which keeps to Apple's "not more
//! than once per hour" and leaves margin for clock skew (services refuse
//! `exp` more than 24 h ahead).

use crate::error::{Error, Result};
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{b64u_decode, b64u_encode};

/// Lifetime of a minted token: `exp` = now + 12 h.
pub const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;
/// A cached token is re-minted when less than this remains before `exp`.
pub const REMINT_MARGIN_SECS: u64 = 3600;
/// Furthest `exp` a push service accepts: 24 h after the request.
pub const MAX_EXP_AHEAD_SECS: u64 = 24 * 3600;
/// Mode of a key file this module creates: owner read and write only.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Most origins with a cached token; beyond it stale tokens are dropped,
/// then all (push services are a handful of origins).
const MAX_CACHED_ORIGINS: usize = 256;
/// Longest `Authorization` value [`verify`] reads.
const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Length of a raw `r || s` P-256 signature.
const SIGNATURE_LEN: usize = 64;
/// Length of an uncompressed P-256 public key.
const PUBLIC_KEY_LEN: usize = 65;
/// The JOSE header of every token, encoded once.
const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;
/// The JWS algorithm accepted by [`verify`].
const JWT_ALG: &str = "ES256";
/// Top-level domains of placeholder addresses that push services refuse.
const PLACEHOLDER_TLDS: &[&str] = &["localhost", "local", "invalid", "test"];

/// The application server's VAPID identity and its token cache.
pub struct Vapid {
    key_pair: EcdsaKeyPair,
    public_b64u: String,
    subject: String,
    rng: SystemRandom,
    /// Per origin: the `Authorization` value and its token's `exp`.
    tokens: Mutex<HashMap<String, (String, u64)>>,
    mints: AtomicU64,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_b64u)
            .field("subject", &self.subject)
            .field("mints", &self.mints())
            .finish_non_exhaustive()
    }
}

/// The claims of a verified VAPID token, and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The audience: the push service's origin.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The contact (`mailto:` or `https:`), if given.
    pub sub: Option<String>,
    /// The `k` parameter: the signer's public key, base64url.
    pub key: String,
}

#[derive(Serialize)]
struct ClaimsOut<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

#[derive(Deserialize)]
struct ClaimsIn {
    aud: String,
    exp: u64,
    sub: Option<String>,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
}

fn push_error(what: impl Into<String>) -> Error {
    Error::Push(what.into())
}

impl Vapid {
    /// Reads the PKCS#8 key at `path`, or creates one there if there is no
    /// file: written to a temporary file in the same directory with mode
    /// 0600, synced, then renamed into place (the directory must exist).
    /// Two processes creating the same missing file at once are not
    /// supported: the last rename wins and the other holds a key nobody
    /// subscribes to.
    ///
    /// The subject is checked first (see [`validate_subject`]) so a bad
    /// configuration creates nothing.
    pub fn load_or_create(path: &Path, subject: &str) -> Result<Vapid> {
        validate_subject(subject)?;
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path)?,
            Err(source) => {
                return Err(Error::Io {
                    context: format!("reading the VAPID key {}", path.display()),
                    source,
                });
            }
        };
        Vapid::from_pkcs8(&pkcs8, subject).map_err(|e| match e {
            Error::Usage(why) => Error::Usage(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// A VAPID identity from an unencrypted PKCS#8 P-256 key and a subject.
    pub fn from_pkcs8(pkcs8: &[u8], subject: &str) -> Result<Vapid> {
        validate_subject(subject)?;
        let rng = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| Error::Usage(format!("not a PKCS#8 P-256 VAPID key ({e})")))?;
        let public_b64u = b64u_encode(key_pair.public_key().as_ref());
        Ok(Vapid {
            key_pair,
            public_b64u,
            subject: subject.to_owned(),
            rng,
            tokens: Mutex::new(HashMap::new()),
            mints: AtomicU64::new(0),
        })
    }

    /// The public key, base64url without padding: the browser's
    /// `applicationServerKey` and the `k` of every header.
    pub fn public_key(&self) -> &str {
        &self.public_b64u
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// How many tokens were signed so far (a metric: about two per origin
    /// per day in steady state).
    pub fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }

    /// The `Authorization` value for a push to `origin` (from [`origin_of`])
    /// at `now_secs`: `vapid t=<jwt>, k=<public key>`. The token is cached per
    /// origin and re-minted when less than an hour is left.
    pub fn authorization(&self, origin: &str, now_secs: u64) -> Result<String> {
        check_origin(origin)?;
        let mut tokens = self.tokens.lock();
        if let Some((header, exp)) = tokens.get(origin)
            && *exp > now_secs.saturating_add(REMINT_MARGIN_SECS)
        {
            return Ok(header.clone());
        }
        let exp = now_secs.saturating_add(TOKEN_LIFETIME_SECS);
        let token = self.mint(origin, exp)?;
        let header = format!("vapid t={token}, k={}", self.public_b64u);
        if tokens.len() >= MAX_CACHED_ORIGINS && !tokens.contains_key(origin) {
            tokens.retain(|_, (_, exp)| *exp > now_secs.saturating_add(REMINT_MARGIN_SECS));
            if tokens.len() >= MAX_CACHED_ORIGINS {
                tokens.clear();
            }
        }
        tokens.insert(origin.to_owned(), (header.clone(), exp));
        Ok(header)
    }

    /// Drops the cached token of `origin`, so the next
    /// [`authorization`](Self::authorization) mints a new one (after a 401 or
    /// 403, to retry once with a fresh token).
    pub fn forget(&self, origin: &str) {
        self.tokens.lock().remove(origin);
    }

    fn mint(&self, aud: &str, exp: u64) -> Result<String> {
        let claims = serde_json::to_vec(&ClaimsOut { aud, exp, sub: &self.subject })
            .map_err(|e| push_error(format!("VAPID claims do not serialize: {e}")))?;
        let signing_input =
            format!("{}.{}", b64u_encode(JWT_HEADER.as_bytes()), b64u_encode(&claims));
        let signature = self
            .key_pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| push_error("VAPID signing failed (no randomness)"))?;
        self.mints.fetch_add(1, Ordering::Relaxed);
        Ok(format!("{signing_input}.{}", b64u_encode(signature.as_ref())))
    }
}

/// Refuses an `aud` that is not a bare origin (a whole endpoint would be a
/// wrong audience, and puts its secret path into the token).
fn check_origin(origin: &str) -> Result<()> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@']) => Ok(()),
        _ => Err(push_error("VAPID audience must be an origin: scheme://host[:port], no path")),
    }
}

/// Writes a new PKCS#8 key to `path` atomically with mode 0600 and returns it.
fn create_key_file(path: &Path) -> Result<Vec<u8>> {
    let io = |what: &str, source: std::io::Error| Error::Io {
        context: format!("{what} the VAPID key {}", path.display()),
        source,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| push_error("no randomness to generate a VAPID key"))?;
    let temp = temp_path(path);
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing a stale temporary file for", e)),
    }
    if let Err(e) = write_private(&temp, pkcs8.as_ref()).and_then(|()| std::fs::rename(&temp, path))
    {
        let _ = std::fs::remove_file(&temp);
        return Err(io("writing", e));
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing the directory of", e))?;
    Ok(pkcs8.as_ref().to_vec())
}

/// Creates `path` (which must not exist) with mode 0600 and `bytes`, synced to disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(KEY_FILE_MODE).open(path)?;
    // The umask can only remove bits; set the mode exactly anyway.
    file.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether `domain` looks like a real, public DNS name: at least two labels
/// of letters, digits and hyphens, an alphabetic top-level domain, and not a
/// placeholder (`localhost`, `.local`, `.invalid`, `.test`).
fn check_domain(domain: &str) -> std::result::Result<(), &'static str> {
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !labels.iter().all(valid_label) {
        return Err("is not a domain name");
    }
    let Some(tld) = labels.last() else { return Err("is not a domain name") };
    if PLACEHOLDER_TLDS.contains(tld) {
        return Err(
            "is a placeholder (localhost, .local, .invalid, .test), which push services refuse",
        );
    }
    if labels.len() < 2 {
        return Err("has no top-level domain");
    }
    if !(tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")) {
        return Err("does not end with a top-level domain (an IP address is not a contact)");
    }
    Ok(())
}

/// Checks a VAPID `sub`: `mailto:<address>` at a real-looking domain, or an
/// `https://` URL with such a host. Apple refuses placeholders
/// (`mailto:x@localhost`, `.local`, `.invalid`, `.test`) with `BadJwtToken`,
/// so they are refused here, at configuration time ([`Error::Usage`]).
pub fn validate_subject(subject: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::Usage(format!(
            "VAPID subject {subject:?} {why}; use mailto:<contact address> or https://<your site>"
        )))
    };
    if let Some(address) = subject.strip_prefix("mailto:") {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return refuse("has no @domain");
        };
        let bad_local = |c: char| !c.is_ascii_graphic() || "<>()[],;:\"@?\\".contains(c);
        if local.is_empty() || local.contains(bad_local) {
            return refuse("is not a plain e-mail address");
        }
        if let Err(why) = check_domain(domain) {
            return refuse(&format!("has a domain that {why}"));
        }
        return Ok(());
    }
    if subject.starts_with("https://") {
        let Ok(url) = url::Url::parse(subject) else { return refuse("is not a URL") };
        let Some(host) = url.domain() else { return refuse("has no domain name") };
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("carries credentials");
        }
        if let Err(why) = check_domain(host) {
            return refuse(&format!("has a host that {why}"));
        }
        return Ok(());
    }
    refuse("is neither mailto: nor https://")
}

/// The origin of a push endpoint, the `aud` of its tokens:
/// `scheme://host[:port]`, lower-case, the default port (443 for https, 80
/// for http) omitted and any other kept. Only `http` and `https` endpoints
/// with a host are accepted. Errors never repeat the endpoint (its path is
/// the subscription's secret).
pub fn origin_of(endpoint: &str) -> Result<String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| Error::Subscription(format!("subscription.endpoint is not a URL ({e})")))?;
    audience(&url)
}

/// [`origin_of`] an endpoint already parsed (as the sender's guard parses it).
pub fn audience(endpoint: &url::Url) -> Result<String> {
    if !matches!(endpoint.scheme(), "https" | "http") {
        return Err(Error::Subscription(format!(
            "subscription.endpoint must be https (or http in tests), not {}",
            endpoint.scheme()
        )));
    }
    if endpoint.host_str().is_none_or(str::is_empty) {
        return Err(Error::Subscription("subscription.endpoint has no host".into()));
    }
    Ok(endpoint.origin().ascii_serialization())
}

/// Checks an `Authorization: vapid t=…, k=…` value as a push service does:
/// the ES256 signature over the token with the key `k`, then the claims.
/// With `now_secs`, `exp` must be after now and at most 24 h ahead; without
/// it (for fixed test vectors) time is not checked.
pub fn verify(header_value: &str, now_secs: Option<u64>) -> Result<Claims> {
    let value = header_value.trim();
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(push_error("VAPID authorization is too long"));
    }
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(push_error("authorization scheme is not vapid"));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        let slot = match param.trim().split_once('=') {
            Some(("t", value)) => (&mut token, value),
            Some(("k", value)) => (&mut key, value),
            _ => continue,
        };
        if slot.0.replace(slot.1).is_some() {
            return Err(push_error("VAPID authorization repeats a parameter"));
        }
    }
    let token = token.ok_or_else(|| push_error("VAPID authorization has no t="))?;
    let key = key.ok_or_else(|| push_error("VAPID authorization has no k="))?;

    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(push_error("VAPID token is not a compact JWS (three parts)"));
    };
    let jose: JoseHeader = b64u_decode(header)
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| push_error("VAPID token header is not base64url JSON"))?;
    if jose.alg != JWT_ALG {
        return Err(push_error(format!("VAPID token alg is {:?}, not ES256", jose.alg)));
    }
    let public_key = b64u_decode(key)
        .filter(|k| k.len() == PUBLIC_KEY_LEN)
        .ok_or_else(|| push_error("VAPID k is not a 65-byte base64url public key"))?;
    let signature = b64u_decode(signature)
        .filter(|s| s.len() == SIGNATURE_LEN)
        .ok_or_else(|| push_error("VAPID signature is not 64 bytes of base64url (r || s)"))?;
    let signing_input = &token[..header.len() + 1 + claims.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public_key)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| push_error("VAPID signature does not verify with k"))?;
    let claims: ClaimsIn = b64u_decode(claims)
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| push_error("VAPID claims are not base64url JSON with aud and exp"))?;
    if let Some(now) = now_secs {
        if claims.exp <= now {
            return Err(push_error(format!("VAPID token expired at {}", claims.exp)));
        }
        if claims.exp > now.saturating_add(MAX_EXP_AHEAD_SECS) {
            return Err(push_error("VAPID token exp is more than 24 hours ahead"));
        }
    }
    Ok(Claims { aud: claims.aud, exp: claims.exp, sub: claims.sub, key: key.to_owned() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SUBJECT: &str = "mailto:ops@nudge.example.com";
    const NOW: u64 = 1_700_000_000;

    // RFC 8292 §2.4, as checked in web-push.md §1.4.
    const RFC_T: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA";
    const RFC_K: &str =
        "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs";
    const RFC_EXP: u64 = 1_453_523_768;

    fn fresh() -> Vapid {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        Vapid::from_pkcs8(pkcs8.as_ref(), SUBJECT).unwrap()
    }

    #[test]
    fn rfc8292_example_verifies() {
        for header in [format!("vapid t={RFC_T}, k={RFC_K}"), format!("vapid t={RFC_T},k={RFC_K}")]
        {
            let claims = verify(&header, None).unwrap();
            assert_eq!(
                claims,
                Claims {
                    aud: "https://push.example.net".into(),
                    exp: RFC_EXP,
                    sub: Some("mailto:push@example.com".into()),
                    key: RFC_K.into(),
                }
            );
        }
        assert!(verify(&format!("vapid t={RFC_T}, k={RFC_K}"), Some(RFC_EXP - 3600)).is_ok());
    }

    #[test]
    fn rfc8292_example_fails_when_expired_or_tampered() {
        let header = format!("vapid t={RFC_T}, k={RFC_K}");
        let err = verify(&header, Some(NOW)).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        let err = verify(&header, Some(RFC_EXP - MAX_EXP_AHEAD_SECS - 1)).unwrap_err();
        assert!(err.to_string().contains("24 hours"), "{err}");

        // Another audience with the original signature.
        let (head, rest) = RFC_T.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged = b64u_encode(br#"{"aud":"https://evil.example","exp":1453523768}"#);
        let tampered = format!("vapid t={head}.{forged}.{signature}, k={RFC_K}");
        let err = verify(&tampered, None).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // Another key.
        let other = fresh();
        let err = verify(&format!("vapid t={RFC_T}, k={}", other.public_key()), None).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        // Malformed values.
        for bad in [
            format!("Bearer t={RFC_T}, k={RFC_K}"),
            format!("vapid k={RFC_K}"),
            format!("vapid t={RFC_T}"),
            format!("vapid t={head}.{rest}.x, k={RFC_K}"),
            format!("vapid t={RFC_T}, k={RFC_K}, t={RFC_T}"),
        ] {
            assert!(verify(&bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorization_verifies_with_origin_exp_and_sub() {
        let vapid = fresh();
        for (endpoint, origin) in [
            ("https://push.example.net:8443/wpush/v2/abc", "https://push.example.net:8443"),
            ("https://FCM.googleapis.com:443/fcm/send/abc", "https://fcm.googleapis.com"),
            ("http://127.0.0.1:9000/push/1", "http://127.0.0.1:9000"),
            ("http://localhost:80/push/1", "http://localhost"),
        ] {
            assert_eq!(origin_of(endpoint).unwrap(), origin);
            let header = vapid.authorization(origin, NOW).unwrap();
            assert!(header.starts_with("vapid t="));
            assert!(header.ends_with(&format!(", k={}", vapid.public_key())));
            let claims = verify(&header, Some(NOW)).unwrap();
            assert_eq!(claims.aud, origin);
            assert!(claims.exp > NOW + 11 * 3600 && claims.exp <= NOW + 24 * 3600);
            assert_eq!(claims.exp, NOW + TOKEN_LIFETIME_SECS);
            assert_eq!(claims.sub.as_deref(), Some(SUBJECT));
            assert_eq!(claims.key, vapid.public_key());
        }
        assert_eq!(vapid.mints(), 4);
        assert_eq!(b64u_decode(vapid.public_key()).unwrap().len(), 65);
        assert!(vapid.authorization("https://fcm.googleapis.com/fcm/send/abc", NOW).is_err());
    }

    #[test]
    fn tokens_are_cached_per_origin_and_reminted() {
        let vapid = fresh();
        let origin = "https://fcm.googleapis.com";
        let first = vapid.authorization(origin, NOW).unwrap();
        assert_eq!(vapid.mints(), 1);
        // Same token while more than an hour remains.
        let later = NOW + TOKEN_LIFETIME_SECS - REMINT_MARGIN_SECS - 1;
        assert_eq!(vapid.authorization(origin, later).unwrap(), first);
        assert_eq!(vapid.mints(), 1);
        // Another origin has its own token.
        let apple = vapid.authorization("https://web.push.apple.com", NOW).unwrap();
        assert_ne!(apple, first);
        assert_eq!(vapid.mints(), 2);
        // Less than an hour left: a new token with a new exp.
        let renewed = vapid.authorization(origin, later + 1).unwrap();
        assert_ne!(renewed, first);
        assert_eq!(verify(&renewed, Some(later + 1)).unwrap().exp, later + 1 + TOKEN_LIFETIME_SECS);
        assert_eq!(vapid.mints(), 3);
        // forget: the next call mints even though the token is fresh.
        vapid.forget(origin);
        let reminted = vapid.authorization(origin, later + 1).unwrap();
        assert_eq!(vapid.mints(), 4);
        assert!(verify(&reminted, Some(later + 1)).is_ok());
        assert_eq!(vapid.authorization(origin, later + 2).unwrap(), reminted);
        assert_eq!(vapid.mints(), 4);
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pk8");
        let created = Vapid::load_or_create(&path, SUBJECT).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let reloaded = Vapid::load_or_create(&path, "https://nudge.example.com/contact").unwrap();
        assert_eq!(reloaded.public_key(), created.public_key());
        assert_eq!(reloaded.subject(), "https://nudge.example.com/contact");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("vapid.pk8")], "no temporary file left");
        // A token from one verifies with the other's key.
        let header = created.authorization("https://fcm.googleapis.com", NOW).unwrap();
        assert_eq!(verify(&header, Some(NOW)).unwrap().key, reloaded.public_key());

        std::fs::write(&path, b"not a key").unwrap();
        let err = Vapid::load_or_create(&path, SUBJECT).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("vapid.pk8"), "{err}");
        // A bad subject creates nothing.
        let other = dir.path().join("other.pk8");
        assert!(Vapid::load_or_create(&other, "mailto:me@localhost").is_err());
        assert!(!other.exists());
    }

    #[test]
    fn placeholder_and_malformed_subjects_are_refused() {
        for good in [
            "mailto:push@example.com",
            "mailto:ops+push@mail.nudge.io",
            "https://nudge.example.com",
            "https://nudge.example.com/contact",
        ] {
            assert!(validate_subject(good).is_ok(), "{good}");
        }
        for bad in [
            "mailto:x@localhost",
            "mailto:x@LOCALHOST",
            "mailto:x@app.localhost",
            "mailto:admin@printer.local",
            "mailto:a@example.invalid",
            "mailto:a@push.test",
            "mailto: <a@b>",
            "mailto:<a@example.com>",
            "mailto:a@b",
            "mailto:a@10.0.0.1",
            "mailto:@example.com",
            "mailto:example.com",
            "push@example.com",
            "http://nudge.example.com",
            "https://localhost/contact",
            "https://127.0.0.1/",
            "https://site.test",
            "",
        ] {
            let err = validate_subject(bad).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
            assert!(err.to_string().contains("VAPID subject"), "{err}");
        }
    }

    #[test]
    fn origins_of_endpoints() {
        assert_eq!(
            origin_of("https://updates.push.services.mozilla.com/wpush/v2/gAAAA").unwrap(),
            "https://updates.push.services.mozilla.com"
        );
        assert_eq!(
            origin_of("HTTPS://Web.Push.Apple.COM/QGx").unwrap(),
            "https://web.push.apple.com"
        );
        assert_eq!(
            origin_of("http://push.example.net:8080/x").unwrap(),
            "http://push.example.net:8080"
        );
        assert_eq!(
            origin_of("https://push.example.net:80/x").unwrap(),
            "https://push.example.net:80"
        );
        // The sender's cases (it parses each endpoint once, for the guard, and
        // takes the audience from that parse).
        for (endpoint, origin) in [
            ("https://fcm.googleapis.com/fcm/send/a", "https://fcm.googleapis.com"),
            ("https://FCM.googleapis.com:443/b", "https://fcm.googleapis.com"),
            ("https://push.example:8443/c?x", "https://push.example:8443"),
        ] {
            let parsed = url::Url::parse(endpoint).unwrap();
            assert_eq!(audience(&parsed).unwrap(), origin, "{endpoint}");
        }
        for bad in [
            "ftp://push.example.net/x",
            "mailto:a@b.c",
            "/relative/path",
            "https://",
            "",
            "not a url",
        ] {
            let err = origin_of(bad).unwrap_err();
            assert!(matches!(err, Error::Subscription(_)), "{bad}: {err}");
        }
        let err = origin_of("wss://push.example.net/SECRET-TOKEN").unwrap_err();
        assert!(!err.to_string().contains("SECRET-TOKEN"), "{err}");
    }
}
