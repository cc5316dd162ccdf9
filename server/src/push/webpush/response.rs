//! What a push service's answer means (web-push.md §6.3), as pure functions:
//! [`classify`] maps status, host, `Retry-After` and body to an [`Outcome`];
//! [`service_of`] names the service of an endpoint host; [`topic_header`]
//! makes a `Topic` header the services accept. Which hosts may be pushed to
//! at all is the guard's (`push/guard.rs`).
//!
//! | Response | Outcome |
//! |---|---|
//! | 200, 201, 202 | `Delivered` |
//! | 404, 410 | `Gone` |
//! | 400 with `VapidPkHashMismatch` (Apple), 403 "do not correspond" (FCM) | `Gone` (VAPID key mismatch) |
//! | other 400, 413 | `Rejected` |
//! | other 401, 403 | `AuthFailure` |
//! | 429; 406 from `*.notify.windows.com`; 5xx | `Retry` (with `Retry-After`) |
//! | anything else | `Rejected` |
//!
//! Reasons are a short single line from the body with URLs and long
//! token-like words replaced by `[redacted]`: push services echo the
//! request path (the subscription's secret) in some error pages.

use ring::digest;

use crate::push::guard::{normalized_host, under};
// The longest `Topic` the services accept (autopush: 32 characters of
// `[A-Za-z0-9]`) is the engine's limit, checked when a campaign is saved.
use nudge_engine::campaign::MAX_TOPIC_CHARS;

/// Host suffix to the service label used in metrics.
const SERVICES: &[(&str, &str)] = &[
    ("fcm.googleapis.com", "fcm"),
    ("push.services.mozilla.com", "mozilla"),
    ("push.apple.com", "apple"),
    ("notify.windows.com", "wns"),
];

/// Shortest delay a `Retry-After` gives: 1 s.
pub const MIN_RETRY_AFTER_MS: i64 = 1_000;
/// Longest delay a `Retry-After` gives: 1 h.
pub const MAX_RETRY_AFTER_MS: i64 = 3_600_000;
/// Longest `reason` text, in bytes.
pub const REASON_MAX_BYTES: usize = 200;
/// How much of a body is read to classify it and to find its reason.
const BODY_SCAN_MAX: usize = 16 * 1024;
/// A run of this many base64url-ish characters in a word looks like a
/// subscription token and is redacted from reasons.
const SECRET_RUN_MIN: usize = 24;
/// Apple's reason when the VAPID key is not the subscription's.
const APPLE_KEY_MISMATCH: &[u8] = b"VapidPkHashMismatch";
/// FCM's wording when the VAPID key is not the subscription's (lower case).
const FCM_KEY_MISMATCH: &[u8] = b"do not correspond";

/// What to do after a push service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (200, 201 or 202).
    Delivered {
        /// The HTTP status.
        status: u16,
    },
    /// The subscription is dead (404, 410) or bound to another VAPID key
    /// (400/403, see [`Outcome::is_key_mismatch`]): deactivate it, no retry.
    Gone {
        /// The HTTP status.
        status: u16,
        /// Why, from the body.
        reason: String,
    },
    /// Try again later (429, 5xx, WNS 406, or a transport error with no status).
    Retry {
        /// The HTTP status, `None` for a transport failure.
        status: Option<u16>,
        /// The service's `Retry-After`, in ms clamped to [1 s, 1 h], if it gave one.
        after_ms: Option<i64>,
        /// Why, from the body.
        reason: String,
    },
    /// The message itself was refused (400, 413, other 3xx/4xx): our bug, no retry.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Why, from the body.
        reason: String,
    },
    /// The VAPID token was refused (401, 403): re-mint once, then stop
    /// sending to that service and alert.
    AuthFailure {
        /// The HTTP status.
        status: u16,
        /// Why, from the body.
        reason: String,
    },
}

impl Outcome {
    /// A short label for metrics: `delivered`, `gone`, `retry`, `rejected`,
    /// `auth_failure`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Gone { .. } => "gone",
            Outcome::Retry { .. } => "retry",
            Outcome::Rejected { .. } => "rejected",
            Outcome::AuthFailure { .. } => "auth_failure",
        }
    }

    /// Whether this is a `Gone` because the subscription belongs to another
    /// VAPID key (the browser re-subscribes with the current one), rather
    /// than an expired subscription.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(self, Outcome::Gone { status: 400 | 403, .. })
    }
}

/// Classifies a push service's response. `host` is the endpoint's host (it
/// tells WNS's 406 throttling apart), `retry_after` the raw `Retry-After`
/// header, `now_ms` the current time for an HTTP-date `Retry-After`.
pub fn classify(
    status: u16,
    host: &str,
    retry_after: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Outcome {
    let scan = &body[..body.len().min(BODY_SCAN_MAX)];
    let retry = |fallback: &str| Outcome::Retry {
        status: Some(status),
        after_ms: retry_after.and_then(|value| parse_retry_after(value, now_ms)),
        reason: reason(body, fallback),
    };
    match status {
        200..=202 => Outcome::Delivered { status },
        404 | 410 => Outcome::Gone { status, reason: reason(body, "subscription expired") },
        400 if contains(scan, APPLE_KEY_MISMATCH) => {
            Outcome::Gone { status, reason: reason(body, "VAPID key mismatch") }
        }
        403 if contains(&scan.to_ascii_lowercase(), FCM_KEY_MISMATCH) => {
            Outcome::Gone { status, reason: reason(body, "VAPID key mismatch") }
        }
        400 => Outcome::Rejected { status, reason: reason(body, "bad request") },
        413 => Outcome::Rejected { status, reason: reason(body, "payload too large") },
        401 | 403 => Outcome::AuthFailure { status, reason: reason(body, "VAPID refused") },
        429 => retry("too many requests"),
        406 if service_of(host) == "wns" => retry("throttled"),
        500..=599 => retry("push service error"),
        _ => Outcome::Rejected { status, reason: reason(body, "unexpected status") },
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Whether a word of a body looks like it carries an endpoint or token.
fn looks_secret(word: &str) -> bool {
    if word.contains("://") || word.trim_start_matches(['"', '\'', '(', '[']).starts_with('/') {
        return true;
    }
    let mut run = 0;
    for c in word.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '%' | '=') {
            run += 1;
            if run >= SECRET_RUN_MIN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Drops markup from an HTML error page: tags, and the insides of `style`
/// and `script` elements.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = &rest[open..];
        let lower = tag.get(..8).unwrap_or(tag).to_ascii_lowercase();
        let close = if lower.starts_with("<style") {
            "</style"
        } else if lower.starts_with("<script") {
            "</script"
        } else {
            ""
        };
        let after_element = if close.is_empty() {
            0
        } else {
            tag.to_ascii_lowercase().find(close).unwrap_or(tag.len())
        };
        let tail = &tag[after_element..];
        match tail.find('>') {
            Some(end) => rest = &tail[end + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// A short, single-line reason from a response body: markup dropped,
/// whitespace collapsed, URLs and token-like words redacted, at most
/// [`REASON_MAX_BYTES`]; `fallback` when nothing is left.
fn reason(body: &[u8], fallback: &str) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_SCAN_MAX)]);
    let text = if text.trim_start().starts_with('<') { strip_markup(&text) } else { text.into() };
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(if looks_secret(word) { "[redacted]" } else { word });
        if out.len() >= REASON_MAX_BYTES {
            break;
        }
    }
    if out.len() > REASON_MAX_BYTES {
        let mut cut = REASON_MAX_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if out.is_empty() { fallback.to_owned() } else { out }
}

/// Reads a `Retry-After` value, delta-seconds or an HTTP-date, as a delay in
/// ms from `now_ms`, clamped to [1 s, 1 h]. `None` if it is neither.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<i64> {
    let value = value.trim();
    let delay_ms = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 is simply "very long".
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    } else {
        http_date_ms(value)?.saturating_sub(now_ms)
    };
    Some(delay_ms.clamp(MIN_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS))
}

/// An HTTP-date (RFC 9110 §5.6.7) in Unix ms: the IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, or the obsolete RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms recipients must still accept.
fn http_date_ms(value: &str) -> Option<i64> {
    if let Ok(timestamp) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value) {
        return Some(timestamp.as_millisecond());
    }
    const OBSOLETE_FORMATS: &[&str] = &["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"];
    OBSOLETE_FORMATS.iter().find_map(|format| {
        let civil = jiff::fmt::strtime::parse(format, value).ok()?.to_datetime().ok()?;
        Some(jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()?.as_millisecond())
    })
}

/// The push service of an endpoint host, for metrics and quirks: `fcm`,
/// `mozilla`, `apple`, `wns` or `other`.
pub fn service_of(host: &str) -> &'static str {
    let Some(host) = normalized_host(host) else { return "other" };
    SERVICES.iter().find(|(suffix, _)| under(&host, suffix)).map_or("other", |(_, name)| name)
}

/// The `Topic` header for a message topic: the topic itself when it is
/// `[A-Za-z0-9]{1,32}`, otherwise 32 hex characters of its SHA-256 (so
/// equal topics still collapse); `None` for an empty topic.
pub fn topic_header(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return None;
    }
    if topic.len() <= MAX_TOPIC_CHARS && topic.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(topic.to_owned());
    }
    let hash = digest::digest(&digest::SHA256, topic.as_bytes());
    Some(hash.as_ref()[..MAX_TOPIC_CHARS / 2].iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW_MS: i64 = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT

    fn gone(status: u16, reason: &str) -> Outcome {
        Outcome::Gone { status, reason: reason.into() }
    }
    fn rejected(status: u16, reason: &str) -> Outcome {
        Outcome::Rejected { status, reason: reason.into() }
    }
    fn auth(status: u16, reason: &str) -> Outcome {
        Outcome::AuthFailure { status, reason: reason.into() }
    }
    fn retry(status: u16, after_ms: Option<i64>, reason: &str) -> Outcome {
        Outcome::Retry { status: Some(status), after_ms, reason: reason.into() }
    }

    /// Status, host, `Retry-After`, body, expected outcome.
    type Row = (u16, &'static str, Option<&'static str>, &'static [u8], Outcome);

    #[test]
    fn every_row_of_the_mapping() {
        let fcm = "fcm.googleapis.com";
        let apple = "web.push.apple.com";
        let wns = "wns2-par02p.notify.windows.com";
        let mozilla = "updates.push.services.mozilla.com";
        let fcm_mismatch = "the VAPID credentials in the authorization header do not correspond to the credentials used to create the subscriptions.";
        let rows: Vec<Row> = vec![
            (200, fcm, None, b"", Outcome::Delivered { status: 200 }),
            (201, apple, None, b"", Outcome::Delivered { status: 201 }),
            (202, mozilla, None, b"", Outcome::Delivered { status: 202 }),
            (404, fcm, None, b"", gone(404, "subscription expired")),
            (
                410,
                fcm,
                None,
                b"push subscription has unsubscribed or expired.\n",
                gone(410, "push subscription has unsubscribed or expired."),
            ),
            (
                410,
                apple,
                None,
                br#"{"reason":"Unregistered"}"#,
                gone(410, r#"{"reason":"Unregistered"}"#),
            ),
            (
                400,
                apple,
                None,
                br#"{"reason":"VapidPkHashMismatch"}"#,
                gone(400, r#"{"reason":"VapidPkHashMismatch"}"#),
            ),
            (403, fcm, None, fcm_mismatch.as_bytes(), gone(403, fcm_mismatch)),
            (400, apple, None, br#"{"reason":"BadTtl"}"#, rejected(400, r#"{"reason":"BadTtl"}"#)),
            (400, fcm, None, b"", rejected(400, "bad request")),
            (413, mozilla, None, b"", rejected(413, "payload too large")),
            (
                413,
                apple,
                None,
                br#"{"reason":"PayloadTooLarge"}"#,
                rejected(413, r#"{"reason":"PayloadTooLarge"}"#),
            ),
            (
                401,
                fcm,
                None,
                b"authorization header must be specified",
                auth(401, "authorization header must be specified"),
            ),
            (403, fcm, None, b"token has expired", auth(403, "token has expired")),
            (
                403,
                apple,
                None,
                br#"{"reason":"BadJwtToken"}"#,
                auth(403, r#"{"reason":"BadJwtToken"}"#),
            ),
            (403, apple, None, b"", auth(403, "VAPID refused")),
            (429, apple, Some("30"), b"", retry(429, Some(30_000), "too many requests")),
            (429, fcm, None, b"slow down", retry(429, None, "slow down")),
            (406, wns, Some("5"), b"", retry(406, Some(5_000), "throttled")),
            (406, fcm, None, b"", rejected(406, "unexpected status")),
            (500, mozilla, None, br#"{"errno": 999}"#, retry(500, None, r#"{"errno": 999}"#)),
            (502, fcm, None, b"", retry(502, None, "push service error")),
            (503, apple, Some("120"), b"", retry(503, Some(120_000), "push service error")),
            (504, fcm, None, b"", retry(504, None, "push service error")),
            (301, fcm, None, b"", rejected(301, "unexpected status")),
            (302, fcm, None, b"moved", rejected(302, "moved")),
            (405, fcm, None, b"", rejected(405, "unexpected status")),
            (418, fcm, None, b"", rejected(418, "unexpected status")),
            (204, fcm, None, b"", rejected(204, "unexpected status")),
        ];
        for (status, host, retry_after, body, expected) in rows {
            let got = classify(status, host, retry_after, body, NOW_MS);
            assert_eq!(got, expected, "status {status} from {host}");
        }
        assert!(
            classify(400, "web.push.apple.com", None, b"VapidPkHashMismatch", 0).is_key_mismatch()
        );
        assert!(!classify(410, "fcm.googleapis.com", None, b"", 0).is_key_mismatch());
        assert_eq!(classify(503, "x", None, b"", 0).label(), "retry");
    }

    #[test]
    fn reasons_are_short_single_lines_without_endpoints() {
        let token = "dbDqU8xX10w:APA91bHgLK2hW1c4iB0BHk9ze8Oq5GZTZ2Y5fYqS3uw6ZkRhL";
        let page = format!(
            "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>\
             <style>*{{margin:0;padding:0}}html,code{{font:15px/22px arial}}</style>\
             <p><b>404.</b> <ins>That’s an error.</ins>\n<p>The requested URL <code>/fcm/send/{token}</code> \
             was not found on this server. <ins>That’s all we know.</ins>"
        );
        let Outcome::Gone { reason, .. } =
            classify(404, "fcm.googleapis.com", None, page.as_bytes(), 0)
        else {
            panic!("404 is gone");
        };
        assert_eq!(
            reason,
            "Error 404 (Not Found)!!1 404. That’s an error. The requested URL [redacted] \
             was not found on this server. That’s all we know."
        );
        let json = format!(
            r#"{{"code": 410, "errno": 106, "more_info": "http://autopush.readthedocs.io/", "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/{token}"}}"#
        );
        let Outcome::Gone { reason, .. } = classify(410, "x", None, json.as_bytes(), 0) else {
            panic!("410 is gone");
        };
        assert!(!reason.contains(token) && !reason.contains("wpush"), "{reason}");
        assert!(reason.contains("\"errno\": 106"), "{reason}");

        let long = "é".repeat(500);
        let Outcome::Rejected { reason, .. } = classify(400, "x", None, long.as_bytes(), 0) else {
            panic!("400 is rejected");
        };
        assert!(reason.len() <= REASON_MAX_BYTES && reason.len() >= REASON_MAX_BYTES - 1);
        let lines = b"line one\r\nline\ttwo\x00three\n";
        let Outcome::Rejected { reason, .. } = classify(400, "x", None, lines, 0) else {
            panic!("400 is rejected");
        };
        assert_eq!(reason, "line one line two three");
        let invalid = b"bad \xff\xfe utf8";
        let Outcome::Rejected { reason, .. } = classify(400, "x", None, invalid, 0) else {
            panic!("400 is rejected");
        };
        assert_eq!(reason, "bad \u{fffd}\u{fffd} utf8");
    }

    #[test]
    fn retry_after_seconds_dates_and_clamping() {
        assert_eq!(parse_retry_after("120", NOW_MS), Some(120_000));
        assert_eq!(parse_retry_after(" 7 ", NOW_MS), Some(7_000));
        assert_eq!(parse_retry_after("0", NOW_MS), Some(MIN_RETRY_AFTER_MS));
        assert_eq!(parse_retry_after("86400", NOW_MS), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(parse_retry_after("99999999999999999999999", NOW_MS), Some(MAX_RETRY_AFTER_MS));
        // HTTP-dates: IMF-fixdate, RFC 850 and asctime, 2 minutes after now.
        for date in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(parse_retry_after(date, NOW_MS), Some(120_000), "{date}");
        }
        // In the past: the minimum; far ahead: the maximum.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW_MS), Some(1_000));
        assert_eq!(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", NOW_MS), Some(3_600_000));
        for bad in ["", "soon", "-5", "1.5", "12s", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, NOW_MS), None, "{bad:?}");
        }
        let Outcome::Retry { after_ms, .. } =
            classify(429, "x", Some("Sun, 06 Nov 1994 08:50:07 GMT"), b"", NOW_MS)
        else {
            panic!("429 retries");
        };
        assert_eq!(after_ms, Some(30_000));
    }

    #[test]
    fn services() {
        assert_eq!(service_of("fcm.googleapis.com"), "fcm");
        assert_eq!(service_of("FCM.googleapis.com."), "fcm");
        assert_eq!(service_of("updates.push.services.mozilla.com"), "mozilla");
        assert_eq!(service_of("web.push.apple.com"), "apple");
        assert_eq!(service_of("wns2-par02p.notify.windows.com"), "wns");
        assert_eq!(service_of("push.example.net"), "other");
        assert_eq!(service_of("xfcm.googleapis.com"), "other");
        for (suffix, _) in SERVICES {
            assert!(crate::push::guard::ALLOWED_PUSH_HOSTS.contains(suffix));
        }
    }

    #[test]
    fn topics() {
        assert_eq!(topic_header(""), None);
        assert_eq!(topic_header("cart7f3a9c0d").as_deref(), Some("cart7f3a9c0d"));
        let max = "A".repeat(32);
        assert_eq!(topic_header(&max).as_deref(), Some(max.as_str()));
        for derived in ["cart-7f3a", "campaign:42/user:7", &"A".repeat(33), "é"] {
            let topic = topic_header(derived).unwrap();
            assert_eq!(topic.len(), 32, "{derived}");
            assert!(topic.bytes().all(|b| b.is_ascii_hexdigit()), "{topic}");
            assert_eq!(topic_header(derived).unwrap(), topic, "stable");
        }
        assert_ne!(topic_header("cart-1"), topic_header("cart-2"));
        // The first 16 bytes of SHA-256("campaign:42/user:7"), in hex.
        assert_eq!(topic_header("campaign:42/user:7").unwrap(), "6ddccce4d3973447a1624c7dc6893549");
    }
}
