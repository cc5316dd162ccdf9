//! The outbound sender: takes the engine's claimed outbox items, posts each
//! to its push service (RFC 8030, encrypted per RFC 8291, VAPID per RFC 8292)
//! or webhook, and turns every answer into a report for the engine.
//!
//! - One pooled hyper client (HTTP/1.1 and HTTP/2 by ALPN, rustls with the
//!   Mozilla roots, plus any roots of `--push-ca-file` for a private push
//!   gateway or a test receiver). It follows no redirects.
//! - The SSRF guard: `https` only; push endpoints only on the push-service
//!   allowlist (`webpush::response::host_allowed`); and every host name
//!   resolved by a resolver that refuses private, loopback and link-local
//!   addresses. `--allow-insecure-push` lifts all three (tests only).
//! - Concurrency: at most [`MAX_IN_FLIGHT`] requests, and at most
//!   [`MAX_IN_FLIGHT_PER_ORIGIN`] to one push service.
//! - Answers map as web-push.md §6.3 says (`webpush::response::classify`):
//!   404/410 remove the subscription, 429 waits for `Retry-After`, 5xx and
//!   network errors back off (the engine's jittered backoff, until the TTL
//!   runs out), 400/413 fail for good, and 401/403 re-mint the VAPID token and
//!   try once more.
//!
//! Logs name the push service, never the endpoint or a key.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use nudge_engine::clock::SharedClock;
use nudge_engine::outbox::{Attempt, OutboxItem, OutboxReports, Target};

use crate::error::{Error, Result};
use crate::http::metrics::Metrics;
use crate::push::webhook;
use crate::push::webpush::response::{self, Outcome};
use crate::push::webpush::{ece, vapid};

/// Requests in flight at once, over all push services and webhooks.
pub const MAX_IN_FLIGHT: usize = 512;
/// Requests in flight at once to one origin.
pub const MAX_IN_FLIGHT_PER_ORIGIN: usize = 128;
/// Time allowed for one request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 64;
/// Longest response body read (error texts only).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// Push-service origins whose VAPID audience is kept; the cache starts over when full.
pub const MAX_CACHED_AUDIENCES: usize = 1024;

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

/// Whether an address is one the sender must not reach without `--allow-insecure-push`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64.0.0/10
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// A DNS resolver that drops private addresses (unless allowed), so a push
/// endpoint cannot point the server at its own network by name.
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to no public address"),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
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
    allow_insecure: bool,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    in_flight: Arc<Semaphore>,
    per_origin: Mutex<HashMap<String, Arc<Semaphore>>>,
    audiences: Mutex<HashMap<String, String>>,
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
        let mut http =
            HttpConnector::new_with_resolver(GuardedResolver { allow_private: allow_insecure });
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
            allow_insecure,
            clock,
            metrics,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            per_origin: Mutex::new(HashMap::new()),
            audiences: Mutex::new(HashMap::new()),
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

    /// Checks a URL the sender may be asked to reach: no user name or
    /// password, `https` (unless insecure), a host, and no literal private
    /// address. `push` also requires a host on the push-service allowlist and
    /// the default port.
    pub fn check_url(&self, field: &str, url: &str, push: bool) -> Result<hyper::Uri> {
        let uri: hyper::Uri =
            url.parse().map_err(|e| Error::invalid(field, format!("not a URL: {e}")))?;
        let scheme = uri.scheme_str().unwrap_or_default();
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        if host.is_empty() || !matches!(scheme, "https" | "http") {
            return Err(Error::invalid(field, "expected an absolute https:// URL"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(Error::invalid(field, "a user name or password in the URL is refused"));
        }
        if self.allow_insecure {
            return Ok(uri);
        }
        if scheme != "https" {
            return Err(Error::invalid(field, "only https:// URLs are allowed"));
        }
        if host.parse::<IpAddr>().is_ok_and(is_private) {
            return Err(Error::invalid(
                field,
                "private, loopback and link-local addresses are refused",
            ));
        }
        if push && uri.port_u16().is_some_and(|port| port != 443) {
            return Err(Error::invalid(
                field,
                "push services listen on port 443; other ports are refused",
            ));
        }
        if push && !response::host_allowed(host) {
            return Err(Error::invalid(
                field,
                format!(
                    "{host} is not a known push service (see docs/http-api.md for the allowlist)"
                ),
            ));
        }
        Ok(uri)
    }

    /// Checks a push subscription's endpoint before it is stored.
    pub async fn check_push_endpoint(&self, endpoint: &str) -> Result<()> {
        self.check_url("subscription.endpoint", endpoint, true).map(|_| ())
    }

    fn origin_slot(&self, origin: &str) -> Arc<Semaphore> {
        self.per_origin
            .lock()
            .entry(origin.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_ORIGIN)))
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
                .map(|(i, (title, url))| Action { action: format!("a{i}"), title, url })
                .collect(),
            url: n.url.as_deref(),
            icon: n.icon.as_deref(),
            image: n.image.as_deref(),
            test: item.test,
        };
        serde_json::to_vec(&payload).unwrap_or_default()
    }

    /// The VAPID audience (origin) of a push endpoint, cached by the
    /// endpoint's `scheme://authority` as written.
    fn audience_of(&self, endpoint: &str) -> Result<String> {
        let prefix = endpoint
            .find("://")
            .and_then(|scheme| {
                let rest = &endpoint[scheme + 3..];
                rest.find(['/', '?', '#']).map(|end| &endpoint[..scheme + 3 + end])
            })
            .unwrap_or(endpoint);
        if let Some(audience) = self.audiences.lock().get(prefix) {
            return Ok(audience.clone());
        }
        let audience = vapid::origin_of(endpoint)?;
        let mut audiences = self.audiences.lock();
        if audiences.len() >= MAX_CACHED_AUDIENCES {
            audiences.clear();
        }
        audiences.insert(prefix.to_owned(), audience.clone());
        Ok(audience)
    }

    async fn push(&self, item: &OutboxItem, endpoint: &str, p256dh: &str, auth: &str) -> Sent {
        let checked = self.check_url("endpoint", endpoint, true);
        let host = match &checked {
            Ok(uri) => uri.host().map(str::to_owned),
            Err(_) => endpoint.parse::<hyper::Uri>().ok().and_then(|u| u.host().map(str::to_owned)),
        };
        let service = response::service_of(host.as_deref().unwrap_or_default());
        let fail = |outcome: &'static str, reason: String| Sent {
            attempt: Attempt::Failed { status: None, reason, unsubscribe: false },
            service,
            outcome,
            status: None,
        };
        let uri = match checked {
            Ok(uri) => uri,
            Err(e) => return fail("refused", e.to_string()),
        };
        let origin = match self.audience_of(endpoint) {
            Ok(origin) => origin,
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
            let answer = self.post(request).await;
            let outcome = match answer {
                Ok((status, retry_after, text)) => response::classify(
                    status,
                    host.as_deref().unwrap_or_default(),
                    retry_after.as_deref(),
                    &text,
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
        match outcome {
            Outcome::Delivered { status } => Sent {
                attempt: Attempt::Delivered { status },
                service,
                outcome: "delivered",
                status: Some(status),
            },
            Outcome::Gone { status, reason } => Sent {
                attempt: Attempt::Failed {
                    status: Some(status),
                    reason: format!("gone: {reason}"),
                    unsubscribe: true,
                },
                service,
                outcome: "gone",
                status: Some(status),
            },
            Outcome::Retry { status, after_ms, reason } => Sent {
                attempt: Attempt::Retry { status, reason, after_ms },
                service,
                outcome: "retry",
                status,
            },
            Outcome::Rejected { status, reason } => Sent {
                attempt: Attempt::Failed { status: Some(status), reason, unsubscribe: false },
                service,
                outcome: "rejected",
                status: Some(status),
            },
            Outcome::AuthFailure { status, reason } => Sent {
                attempt: Attempt::Failed {
                    status: Some(status),
                    reason: format!("authentication refused: {reason}"),
                    unsubscribe: false,
                },
                service,
                outcome: "auth_failure",
                status: Some(status),
            },
        }
    }

    /// Posts a request with the timeout; the status, `Retry-After` and the
    /// start of the body, or why it failed.
    async fn post(
        &self,
        request: Request<Full<Bytes>>,
    ) -> std::result::Result<(u16, Option<String>, Vec<u8>), PostError> {
        let started = Instant::now();
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
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
            Ok((status, retry_after, text))
        })
        .await
        .unwrap_or_else(|_| {
            Err(PostError::Network(format!("timed out after {} s", REQUEST_TIMEOUT.as_secs())))
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
        let uri = match self.check_url("webhook.url", &call.url, false) {
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
            Ok((status, _, _)) if (200..300).contains(&status) => Outcome::Delivered { status },
            Ok((status, retry_after, _)) if status == 429 || status >= 500 => Outcome::Retry {
                status: Some(status),
                after_ms: retry_after
                    .and_then(|v| response::parse_retry_after(&v, self.clock.now_ms())),
                reason: format!("webhook answered {status}"),
            },
            Ok((status, _, _)) => {
                Outcome::Rejected { status, reason: format!("webhook answered {status}") }
            }
            Err(PostError::Refused(reason)) => return fail(reason),
            Err(PostError::Network(reason)) => {
                Outcome::Retry { status: None, after_ms: None, reason }
            }
        };
        Self::report(outcome, service)
    }
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

    #[test]
    fn the_payload_has_the_service_worker_fields_and_leaves_out_what_is_unset() {
        let mut item = OutboxItem {
            id: 1,
            delivery_id: "2a.00ff".into(),
            user: 42,
            user_id: "ann".into(),
            campaign: "cart".into(),
            variant: None,
            test: false,
            target: Target::WebPush {
                endpoint: "https://fcm.googleapis.com/fcm/send/x".into(),
                p256dh: String::new(),
                auth: String::new(),
            },
            notification: nudge_engine::outbox::Notification {
                title: "Still \"there\"?".into(),
                body: "Your cart".into(),
                url: Some("https://shop.example/cart".into()),
                actions: vec![("Pay".into(), "https://shop.example/pay".into())],
                require_interaction: true,
                ..Default::default()
            },
            not_before_ms: 0,
            expires_at_ms: 0,
            attempts: 0,
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
    fn audiences_are_origins_and_cached_by_scheme_and_authority() {
        let (_dir, sender) = sender();
        let audience = |e: &str| sender.audience_of(e).unwrap();
        assert_eq!(audience("https://fcm.googleapis.com/fcm/send/a"), "https://fcm.googleapis.com");
        assert_eq!(audience("https://FCM.googleapis.com:443/b"), "https://fcm.googleapis.com");
        assert_eq!(audience("https://push.example:8443/c?x"), "https://push.example:8443");
        assert_eq!(audience("https://fcm.googleapis.com/fcm/send/z"), "https://fcm.googleapis.com");
        assert_eq!(sender.audiences.lock().len(), 3, "one entry per scheme and authority");
        assert!(sender.audience_of("not a url").is_err());
        for i in 0..=MAX_CACHED_AUDIENCES {
            audience(&format!("https://h{i}.example/p"));
        }
        assert!(sender.audiences.lock().len() <= MAX_CACHED_AUDIENCES, "bounded");
    }

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().expect("an address")), "{private}");
        }
        for public in ["142.250.74.106", "2a00:1450:4001::200e", "8.8.8.8"] {
            assert!(!is_private(public.parse().expect("an address")), "{public}");
        }
    }
}
