//! Campaign webhooks: the signed request for one outbox item.
//!
//! The engine queues a webhook item beside a campaign's push messages and
//! retries it with backoff (`nudge_engine::outbox`). This module turns an
//! item into the request the sender posts:
//!
//! - the body is JSON: `type` (`campaign.message`), `delivery_id`,
//!   `campaign`, `variant`, `user_id`, `test`, `sent_at` (RFC 3339) and the
//!   rendered `message`;
//! - `Idempotency-Key` is the delivery id, the same on every retry;
//! - `Nudge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` signs
//!   `"<t>.<body>"` with the campaign's webhook secret, so a receiver can check
//!   both who sent it and when (and refuse replays outside its tolerance).
//!
//! [`classify`] says what the receiver's answer means, as a pure function
//! (as `webpush::response::classify` does for push services). The HTTP call
//! itself goes through the server's outbound client, shared with the Web Push
//! sender.

use nudge_engine::campaign::{OutboxItem, Target};
use ring::hmac;
use serde_json::json;

use super::webpush::response::{Outcome, parse_retry_after};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Nudge-Signature";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A webhook request, ready to post.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRequest {
    /// Where to post.
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// Headers: content type, idempotency key, signature.
    pub headers: Vec<(&'static str, String)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `v1` signature of `body` sent at `unix_seconds`.
pub fn sign(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{unix_seconds}.").into_bytes();
    signed.extend_from_slice(body);
    hex(hmac::sign(&key, &signed).as_ref())
}

/// Checks a `Nudge-Signature` header against a body, as a receiver would:
/// the time must be within `tolerance_s` of `now_s` and the HMAC must match
/// (compared in constant time).
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let Some(tag) = (0..v1.len())
        .step_by(2)
        .map(|i| v1.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).is_ok()
}

/// The request for a webhook item at `now_ms`; `None` for a push item.
pub fn request(item: &OutboxItem, now_ms: i64) -> Option<WebhookRequest> {
    let Target::Webhook { url, secret } = &item.target else { return None };
    let message = &item.notification;
    let sent_at =
        jiff::Timestamp::from_millisecond(now_ms).map(|t| t.to_string()).unwrap_or_default();
    let body = json!({
        "type": "campaign.message",
        "delivery_id": item.delivery_id,
        "campaign": item.campaign,
        "variant": item.variant,
        "user_id": item.user_id,
        "test": item.test,
        "sent_at": sent_at,
        "message": {
            "title": message.title,
            "body": message.body,
            "url": message.url,
            "icon": message.icon,
            "image": message.image,
            "actions": message.actions.iter().map(|a| json!({"title": a.title, "url": a.url})).collect::<Vec<_>>(),
        },
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let unix_seconds = now_ms.div_euclid(1000);
    let signature = format!("t={unix_seconds},v1={}", sign(secret, unix_seconds, &body));
    Some(WebhookRequest {
        url: url.clone(),
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            (IDEMPOTENCY_HEADER, item.delivery_id.clone()),
            (SIGNATURE_HEADER, signature),
        ],
        body,
    })
}

/// What a webhook's answer means: 2xx delivered; 429 and 5xx retried (after
/// its `Retry-After`, delta-seconds or an HTTP-date read at `now_ms`, when it
/// gives one); anything else (redirects included: none is followed) refused
/// for good. The reason names the status only: a receiver's body is its own.
pub fn classify(status: u16, retry_after: Option<&str>, now_ms: i64) -> Outcome {
    let reason = || format!("webhook answered {status}");
    match status {
        200..=299 => Outcome::Delivered { status },
        429 | 500..=599 => Outcome::Retry {
            status: Some(status),
            after_ms: retry_after.and_then(|value| parse_retry_after(value, now_ms)),
            reason: reason(),
        },
        _ => Outcome::Rejected { status, reason: reason() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_engine::campaign::Notification;

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn item(target: Target) -> OutboxItem {
        OutboxItem {
            id: 1,
            delivery_id: "2a.00ff".into(),
            user: 42,
            user_id: "ann".into(),
            campaign: "cart".into(),
            variant: Some("B".into()),
            test: false,
            target,
            notification: Notification {
                title: "Still there?".into(),
                url: Some("https://shop.example/cart".into()),
                actions: vec![nudge_engine::campaign::Action {
                    title: "Pay".into(),
                    url: "https://shop.example/pay".into(),
                }],
                ..Default::default()
            },
            not_before_ms: 0,
            expires_at_ms: 0,
            attempts: 2,
        }
    }

    #[test]
    fn a_webhook_request_is_signed_and_keyed_by_its_delivery() {
        let hook =
            Target::Webhook { url: "https://hooks.example/n".into(), secret: "s3cret".into() };
        let now_ms = 1_793_491_200_123;
        let request = request(&item(hook), now_ms).expect("a webhook item");
        assert_eq!(request.url, "https://hooks.example/n");
        let header = |name: &str| {
            request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).expect(name)
        };
        assert_eq!(header(IDEMPOTENCY_HEADER), "2a.00ff");
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["user_id"], "ann");
        assert_eq!(body["variant"], "B");
        assert_eq!(body["message"]["actions"][0]["title"], "Pay");
        assert_eq!(body["sent_at"], "2026-11-01T00:00:00.123Z");
        let signature = header(SIGNATURE_HEADER);
        let now_s = now_ms / 1000;
        assert!(signature.starts_with(&format!("t={now_s},v1=")));
        assert!(verify("s3cret", &signature, &request.body, now_s + 10, 300));
        // Wrong secret, changed body, stale time, garbage: all refused.
        assert!(!verify("other", &signature, &request.body, now_s, 300));
        let mut changed = request.body.clone();
        changed[5] ^= 1;
        assert!(!verify("s3cret", &signature, &changed, now_s, 300));
        assert!(!verify("s3cret", &signature, &request.body, now_s + 301, 300));
        assert!(!verify("s3cret", "t=x,v1=zz", &request.body, now_s, 300));
        // Retries carry the same key, and a push item is not a webhook.
        assert_eq!(
            request.headers[1],
            super::request(
                &item(Target::Webhook {
                    url: "https://hooks.example/n".into(),
                    secret: "s3cret".into()
                }),
                now_ms + 5000
            )
            .expect("again")
            .headers[1]
        );
        let push = Target::WebPush {
            endpoint: "https://p.example/x".into(),
            p256dh: "k".into(),
            auth: "a".into(),
        };
        assert_eq!(super::request(&item(push), now_ms), None);
    }

    #[test]
    fn webhook_answers_are_delivered_retried_or_rejected() {
        let now_ms = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(classify(status, None, now_ms), Outcome::Delivered { status });
        }
        let retry = |status: u16, after_ms: Option<i64>| Outcome::Retry {
            status: Some(status),
            after_ms,
            reason: format!("webhook answered {status}"),
        };
        assert_eq!(classify(429, Some("30"), now_ms), retry(429, Some(30_000)));
        assert_eq!(classify(429, None, now_ms), retry(429, None));
        assert_eq!(classify(500, Some("soon"), now_ms), retry(500, None));
        assert_eq!(
            classify(503, Some("Sun, 06 Nov 1994 08:51:37 GMT"), now_ms),
            retry(503, Some(120_000))
        );
        assert_eq!(classify(599, Some("86400"), now_ms), retry(599, Some(3_600_000)), "clamped");
        for status in [100, 301, 302, 400, 401, 403, 404, 410, 413, 418, 600] {
            assert_eq!(
                classify(status, Some("5"), now_ms),
                Outcome::Rejected { status, reason: format!("webhook answered {status}") },
                "{status}"
            );
        }
    }
}
