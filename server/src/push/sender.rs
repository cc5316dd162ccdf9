//! The outbound sender: takes the engine's claimed outbox items, posts each
//! to its push service (RFC 8030, encrypted per RFC 8291, VAPID per RFC 8292)
//! or webhook, and turns every answer into a report for the engine.
//!
//! - One pooled hyper client (HTTP/1.1 and HTTP/2 by ALPN, rustls with the
//!   Mozilla roots, plus any roots of `--push-ca-file` for a private push
//!   gateway or a test receiver). It follows no redirects.
//! - The SSRF guard (`guard.rs`): every URL is parsed once and checked
//!   (`https` only, push endpoints only on the push-service allowlist) before
//!   it is posted to, and every host name is resolved by a resolver that
//!   refuses private, loopback and link-local addresses.
//!   `--allow-insecure-push` lifts all three (tests only).
//! - Concurrency: at most [`MAX_PUSH_REQUESTS_IN_FLIGHT`] requests, and at most
//!   [`MAX_PUSH_REQUESTS_IN_FLIGHT_PER_ORIGIN`] to one push service.
//! - Answers map as web-push.md §6.3 says (`webpush::response::classify`):
//!   404/410 remove the subscription, 429 waits for `Retry-After`, 5xx and
//!   network errors back off (the engine's jittered backoff, until the TTL
//!   runs out), 400/413 fail for good, and 401/403 re-mint the VAPID token and
//!   try once more. Webhook answers map by `webhook::classify`.
//!
//! Logs name the push service, never the endpoint or a key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use nudge_engine::OutboxReports;
use nudge_engine::campaign::{Attempt, OutboxItem, Target};
use nudge_engine::clock::SharedClock;

use super::guard::{self, Guard, GuardedResolver, Target as UrlTarget};
use super::webhook;
use super::webpush::response::{self, Outcome};
use super::webpush::{ece, vapid};
use crate::error::{Error, Result};
use crate::http::metrics::Metrics;

/// Requests in flight at once, over all push services and webhooks.
pub const MAX_PUSH_REQUESTS_IN_FLIGHT: usize = 512;
/// Requests in flight at once to one origin.
pub const MAX_PUSH_REQUESTS_IN_FLIGHT_PER_ORIGIN: usize = 128;
/// Time allowed for one request, connection included.
pub const PUSH_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 64;
/// Longest response body read (error texts only).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Most certificates read from a `--push-ca-file`.
pub const MAX_EXTRA_ROOTS: usize = 64;

/// Reads the extra trusted root certificates of `--push-ca-file`: a PEM file
/// of one or more `CERTIFICATE` blocks (other blocks, such as keys, are
/// skipped). Fails if the file cannot be read, a block is malformed, or it
/// holds no certificate or more than [`MAX_EXTRA_ROOTS`].
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Io { context: format!("reading {}", path.display()), source: e })?;
    let roots =
        CertificateDer::pem_slice_iter(&pem).collect::<std::result::Result<Vec<_>, _>>().map_err(
            |e| Error::Usage(format!("{} is not a PEM certificate file: {e}", path.display())),
        )?;
    if roots.is_empty() || roots.len() > MAX_EXTRA_ROOTS {
        return Err(Error::Usage(format!(
            "{} holds {} certificates; expected 1 to {MAX_EXTRA_ROOTS}",
            path.display(),
            roots.len()
        )));
    }
    Ok(roots)
}

/// What a push service or webhook answered.
struct Answer {
    /// The HTTP status.
    status: u16,
    /// The raw `Retry-After` header, if any.
    retry_after: Option<String>,
    /// The start of the body (at most [`MAX_RESPONSE_BYTES`]), for reasons.
    body: Vec<u8>,
}

/// Why a request got no answer.
enum PostError {
    /// The target is not allowed (its name resolves to private addresses
    /// only): never retried.
    Refused(String),
    /// A transport failure or a timeout: retried with backoff.
    Network(String),
}

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// The sender shared by the outbox loop and the HTTP handlers.
pub struct Sender {
    client: HttpsClient,
    vapid: vapid::Vapid,
    guard: Guard,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    in_flight: Arc<Semaphore>,
    per_origin: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The JSON a push carries to the service worker (`sw.js`).
#[derive(serde::Serialize)]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    delivery_id: &'a str,
    campaign: &'a str,
    /// The notification tag: the delivery id, so the browser collapses a repeat.
    tag: &'a str,
    require_interaction: bool,
    actions: Vec<Action<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    /// Present (true) on test sends only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    test: bool,
}

/// One notification action button.
#[derive(serde::Serialize)]
struct Action<'a> {
    action: String,
    title: &'a str,
    url: &'a str,
}

/// What one attempt came to, for the report and the metrics.
struct Sent {
    attempt: Attempt,
    service: &'static str,
    outcome: &'static str,
    status: Option<u16>,
}

impl Sender {
    /// A sender signing with `vapid`; `allow_insecure` permits `http://`,
    /// any host and private addresses (tests only).
    pub fn new(
        vapid: vapid::Vapid,
        allow_insecure: bool,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Sender> {
        Self::with_roots(vapid, allow_insecure, Vec::new(), clock, metrics)
    }

    /// [`Sender::new`], trusting `extra_roots` besides the Mozilla roots
    /// (`--push-ca-file`: a private push gateway, or a test receiver with its
    /// own CA). The SSRF rules are unchanged: a root does not make a private
    /// address reachable.
    pub fn with_roots(
        vapid: vapid::Vapid,
        allow_insecure: bool,
        extra_roots: Vec<CertificateDer<'static>>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Sender> {
        let guard = Guard::new(allow_insecure);
        let mut http: HttpConnector<GuardedResolver> =
            HttpConnector::new_with_resolver(guard.resolver());
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for (i, root) in extra_roots.into_iter().enumerate() {
            roots
                .add(root)
                .map_err(|e| Error::Usage(format!("extra root certificate {i} is refused: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let builder = if allow_insecure { builder.https_or_http() } else { builder.https_only() };
        let https = builder.enable_http1().enable_http2().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(https);
        Ok(Sender {
            client,
            vapid,
            guard,
            clock,
            metrics,
            in_flight: Arc::new(Semaphore::new(MAX_PUSH_REQUESTS_IN_FLIGHT)),
            per_origin: Mutex::new(HashMap::new()),
        })
    }

    /// The VAPID public key browsers subscribe with.
    pub fn vapid_public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// VAPID tokens minted since start.
    pub fn vapid_mints(&self) -> u64 {
        self.vapid.mints()
    }

    /// Checks a webhook URL before a campaign that posts to it is stored (the
    /// sender checks again, and resolves the host, before every call).
    pub fn check_webhook_url(&self, field: &str, url: &str) -> Result<()> {
        self.guard.checked(field, url, UrlTarget::Webhook).map(|_| ())
    }

    /// Checks a push subscription's endpoint before it is stored.
    pub fn check_push_endpoint(&self, endpoint: &str) -> Result<()> {
        self.guard.checked("subscription.endpoint", endpoint, UrlTarget::Push).map(|_| ())
    }

    fn origin_slot(&self, origin: &str) -> Arc<Semaphore> {
        self.per_origin
            .lock()
            .entry(origin.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_PUSH_REQUESTS_IN_FLIGHT_PER_ORIGIN)))
            .clone()
    }

    /// Starts sending claimed items on the runtime `handle`, each as its own
    /// task that hands its answer to `reports`. Returns at once: the outbox
    /// thread goes on claiming while these are in flight.
    pub fn dispatch(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        items: Vec<OutboxItem>,
        reports: &OutboxReports,
    ) {
        for item in items {
            let sender = self.clone();
            let reports = reports.clone();
            handle.spawn(async move {
                let id = item.id;
                reports.report(id, sender.send_one(item).await);
            });
        }
    }

    /// Sends one item (waiting for a concurrency slot) and reports it.
    pub async fn send_one(&self, item: OutboxItem) -> Attempt {
        let sent = match &item.target {
            Target::WebPush { endpoint, p256dh, auth } => {
                self.push(&item, endpoint, p256dh, auth).await
            }
            Target::Webhook { .. } => self.webhook(&item).await,
        };
        self.metrics.count_push(sent.service, sent.outcome, sent.status);
        sent.attempt
    }

    /// The JSON the service worker receives.
    pub fn payload(item: &OutboxItem) -> Vec<u8> {
        let n = &item.notification;
        let payload = Payload {
            title: &n.title,
            body: &n.body,
            delivery_id: &item.delivery_id,
            campaign: &item.campaign,
            tag: &item.delivery_id,
            require_interaction: n.require_interaction,
            actions: n
                .actions
                .iter()
                .enumerate()
                .map(|(i, a)| Action { action: format!("a{i}"), title: &a.title, url: &a.url })
                .collect(),
            url: n.url.as_deref(),
            icon: n.icon.as_deref(),
            image: n.image.as_deref(),
            test: item.test,
        };
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    async fn push(&self, item: &OutboxItem, endpoint: &str, p256dh: &str, auth: &str) -> Sent {
        let parsed = guard::parse("endpoint", endpoint);
        let host = parsed.as_ref().ok().and_then(url::Url::host_str).unwrap_or_default().to_owned();
        let service = response::service_of(&host);
        let fail = |outcome: &'static str, reason: String| Sent {
            attempt: Attempt::Failed { status: None, reason, unsubscribe: false },
            service,
            outcome,
            status: None,
        };
        let checked = parsed
            .and_then(|url| self.guard.check("endpoint", &url, UrlTarget::Push).map(|()| url));
        let (origin, uri) =
            match checked.and_then(|url| Ok((vapid::audience(&url)?, uri_of(&url)?))) {
                Ok(target) => target,
                Err(e) => return fail("refused", e.to_string()),
            };
        let keys = ece::decode_subscription_keys(p256dh, auth);
        let body = match keys
            .and_then(|(key, secret)| ece::encrypt(&Self::payload(item), &key, &secret))
        {
            Ok(body) => Bytes::from(body),
            Err(e) => return fail("rejected", e.to_string()),
        };
        let now_ms = self.clock.now_ms();
        let ttl = item.ttl_seconds(now_ms);
        let slot = self.origin_slot(&origin);
        let _origin_permit = slot.acquire().await;
        let _permit = self.in_flight.acquire().await;
        let mut reminted = false;
        loop {
            let authorization = match self.vapid.authorization(&origin, (now_ms / 1000) as u64) {
                Ok(value) => value,
                Err(e) => return fail("rejected", e.to_string()),
            };
            let mut request = Request::post(uri.clone())
                .header("ttl", ttl.to_string())
                .header("content-encoding", "aes128gcm")
                .header("content-type", "application/octet-stream")
                .header("authorization", authorization);
            if let Some(urgency) = &item.notification.urgency {
                request = request.header("urgency", urgency.as_str());
            }
            if let Some(topic) = item.notification.topic.as_deref().and_then(response::topic_header)
            {
                request = request.header("topic", topic);
            }
            let request = match request.body(Full::new(body.clone())) {
                Ok(request) => request,
                Err(e) => return fail("rejected", format!("bad request: {e}")),
            };
            let outcome = match self.post(request).await {
                Ok(answer) => response::classify(
                    answer.status,
                    &host,
                    answer.retry_after.as_deref(),
                    &answer.body,
                    self.clock.now_ms(),
                ),
                Err(PostError::Refused(reason)) => return fail("refused", reason),
                Err(PostError::Network(reason)) => {
                    Outcome::Retry { status: None, after_ms: None, reason }
                }
            };
            if let (Outcome::AuthFailure { .. }, false) = (&outcome, reminted) {
                // A stale or rejected token: mint a new one and try once more.
                self.vapid.forget(&origin);
                reminted = true;
                continue;
            }
            return Self::report(outcome, service);
        }
    }

    fn report(outcome: Outcome, service: &'static str) -> Sent {
        let label = outcome.label();
        let (attempt, status) = match outcome {
            Outcome::Delivered { status } => (Attempt::Delivered { status }, Some(status)),
            Outcome::Gone { status, reason } => (
                Attempt::Failed {
                    status: Some(status),
                    reason: format!("gone: {reason}"),
                    unsubscribe: true,
                },
                Some(status),
            ),
            Outcome::Retry { status, after_ms, reason } => {
                (Attempt::Retry { status, reason, after_ms }, status)
            }
            Outcome::Rejected { status, reason } => {
                (Attempt::Failed { status: Some(status), reason, unsubscribe: false }, Some(status))
            }
            Outcome::AuthFailure { status, reason } => (
                Attempt::Failed {
                    status: Some(status),
                    reason: format!("authentication refused: {reason}"),
                    unsubscribe: false,
                },
                Some(status),
            ),
        };
        Sent { attempt, service, outcome: label, status }
    }

    /// Posts a request with the timeout; what came back, or why nothing did.
    async fn post(&self, request: Request<Full<Bytes>>) -> std::result::Result<Answer, PostError> {
        let started = Instant::now();
        let sent = tokio::time::timeout(PUSH_REQUEST_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut text = e.to_string();
                let mut refused = false;
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    // The guarded resolver refuses with PermissionDenied.
                    refused |= cause
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
                    source = cause.source();
                }
                if refused {
                    PostError::Refused(format!("refused: {text}"))
                } else {
                    PostError::Network(format!("network error: {text}"))
                }
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = response.into_body();
            let mut text = Vec::new();
            while text.len() < MAX_RESPONSE_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            text.extend_from_slice(data);
                        }
                    }
                    _ => break,
                }
            }
            text.truncate(MAX_RESPONSE_BYTES);
            Ok(Answer { status, retry_after, body: text })
        })
        .await
        .unwrap_or_else(|_| {
            Err(PostError::Network(format!("timed out after {} s", PUSH_REQUEST_TIMEOUT.as_secs())))
        });
        self.metrics.push_seconds.observe(started.elapsed().as_secs_f64());
        sent
    }

    async fn webhook(&self, item: &OutboxItem) -> Sent {
        let service = "webhook";
        let fail = |reason: String| Sent {
            attempt: Attempt::Failed { status: None, reason, unsubscribe: false },
            service,
            outcome: "refused",
            status: None,
        };
        let Some(call) = webhook::request(item, self.clock.now_ms()) else {
            return fail("not a webhook item".into());
        };
        let checked = self.guard.checked("webhook.url", &call.url, UrlTarget::Webhook);
        let uri = match checked.and_then(|url| uri_of(&url)) {
            Ok(uri) => uri,
            Err(e) => return fail(e.to_string()),
        };
        let mut request = Request::post(uri);
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        let request = match request.body(Full::new(Bytes::from(call.body))) {
            Ok(request) => request,
            Err(e) => return fail(format!("bad request: {e}")),
        };
        let _permit = self.in_flight.acquire().await;
        let outcome = match self.post(request).await {
            Ok(answer) => {
                webhook::classify(answer.status, answer.retry_after.as_deref(), self.clock.now_ms())
            }
            Err(PostError::Refused(reason)) => return fail(reason),
            Err(PostError::Network(reason)) => {
                Outcome::Retry { status: None, after_ms: None, reason }
            }
        };
        Self::report(outcome, service)
    }
}

/// The request target hyper takes for a URL the guard passed.
fn uri_of(url: &url::Url) -> Result<hyper::Uri> {
    hyper::Uri::try_from(url.as_str())
        .map_err(|e| Error::Push(format!("the URL is not one the HTTP client can request: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A self-signed P-256 CA certificate (`openssl req -x509`, valid to 2126).
    const TEST_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----
MIIBkTCCATegAwIBAgIUSEcBQP/0O3teVw9qkxKRHy6GvmUwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSbnVkZ2UgdGVzdCBwdXNoIENBMCAXDTI2MTEyMzAxMjAxM1oY
DzIxMjYxMDMwMDEyMDEzWjAdMRswGQYDVQQDDBJudWRnZSB0ZXN0IHB1c2ggQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAStQGQLzW8hSGZjY8xPoDLo84lK72DA
gck7A8jI0e/HcqpfG7+tdVvbfCaoBxn3bWNM1TOVpX0yKEkyM+t7E+Dlo1MwUTAd
BgNVHQ4EFgQUZOuU3hlz0HKEAhW4PCF/v3tR1DEwHwYDVR0jBBgwFoAUZOuU3hlz
0HKEAhW4PCF/v3tR1DEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF
AiAa3m8jzMfDHZ5IbAQc1h1EUMFi4HLIquNBHaXd2+XTcQIhANyzDjnwVCQtnTrF
Ymzprw0T0CsD3uR4uuKJFZfQ9DC1
-----END CERTIFICATE-----
";

    #[test]
    fn a_ca_file_adds_its_roots_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, format!("{TEST_CA_PEM}{TEST_CA_PEM}")).unwrap();
        let roots = read_ca_file(&path).unwrap();
        assert_eq!(roots.len(), 2);
        let mut store = rustls::RootCertStore::empty();
        store.add(roots[0].clone()).unwrap();
        assert_eq!(store.len(), 1);

        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = read_ca_file(&path).unwrap_err().to_string();
        assert!(error.contains("holds 0 certificates"), "{error}");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap();
        let error = read_ca_file(&path).unwrap_err().to_string();
        assert!(error.contains("not a PEM certificate file"), "{error}");
        assert!(read_ca_file(&dir.path().join("missing.pem")).is_err());
    }

    fn sender() -> (tempfile::TempDir, Sender) {
        let dir = tempfile::tempdir().unwrap();
        let vapid = vapid::Vapid::load_or_create(&dir.path().join("vapid"), "mailto:t@x.dev");
        let clock: SharedClock = Arc::new(nudge_engine::clock::ManualClock::new(0));
        let sender = Sender::new(vapid.unwrap(), false, clock, Arc::new(Metrics::new()));
        (dir, sender.unwrap())
    }

    /// A push item to `endpoint` with an empty notification.
    fn push_item(endpoint: &str) -> OutboxItem {
        OutboxItem {
            id: 1,
            delivery_id: "2a.00ff".into(),
            user: 42,
            user_id: "ann".into(),
            campaign: "cart".into(),
            variant: None,
            test: false,
            target: Target::WebPush {
                endpoint: endpoint.into(),
                p256dh: String::new(),
                auth: String::new(),
            },
            notification: nudge_engine::campaign::Notification::default(),
            not_before_ms: 0,
            expires_at_ms: 0,
            attempts: 0,
        }
    }

    #[test]
    fn the_payload_has_the_service_worker_fields_and_leaves_out_what_is_unset() {
        let mut item = push_item("https://fcm.googleapis.com/fcm/send/x");
        item.notification = nudge_engine::campaign::Notification {
            title: "Still \"there\"?".into(),
            body: "Your cart".into(),
            url: Some("https://shop.example/cart".into()),
            actions: vec![nudge_engine::campaign::Action {
                title: "Pay".into(),
                url: "https://shop.example/pay".into(),
            }],
            require_interaction: true,
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_slice(&Sender::payload(&item)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "title": "Still \"there\"?", "body": "Your cart", "delivery_id": "2a.00ff",
                "campaign": "cart", "tag": "2a.00ff", "require_interaction": true,
                "actions": [{"action": "a0", "title": "Pay", "url": "https://shop.example/pay"}],
                "url": "https://shop.example/cart",
            })
        );
        item.test = true;
        let json: serde_json::Value = serde_json::from_slice(&Sender::payload(&item)).unwrap();
        assert_eq!(json["test"], true, "test sends say so");
    }

    #[test]
    fn urls_go_through_the_guard_before_they_are_stored_or_sent() {
        let (_dir, sender) = sender();
        assert!(sender.check_push_endpoint("https://fcm.googleapis.com/fcm/send/x").is_ok());
        assert!(sender.check_push_endpoint("https://evil.example/push").is_err());
        assert!(sender.check_webhook_url("webhook.url", "https://hooks.example:8443/in").is_ok());
        let refused = sender.check_webhook_url("webhook.url", "https://127.0.0.1/in");
        assert!(
            matches!(&refused, Err(Error::Invalid(e)) if e.field == "webhook.url"),
            "{refused:?}"
        );
        // At send time a refused endpoint fails at once, never connected to.
        let item = push_item("https://10.0.0.5/push/SECRET");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match runtime.block_on(sender.send_one(item)) {
            Attempt::Failed { status: None, reason, unsubscribe: false } => {
                assert!(reason.contains("private"), "{reason}");
                assert!(!reason.contains("SECRET"), "no endpoint in reasons: {reason}");
            }
            other => panic!("{other:?}"),
        }
        let metrics = sender.metrics.render();
        assert!(metrics.contains(r#"outcome="refused""#), "{metrics}");
    }
}
