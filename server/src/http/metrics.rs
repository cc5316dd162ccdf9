//! `/metrics`: the server's counters in the Prometheus text format, through
//! the `prometheus-client` crate (the Prometheus project's own Rust client).
//!
//! Ingest rates are counters (`rate()` them), query latency is a histogram,
//! push outcomes are counted by push service (`fcm`, `mozilla`, `apple`,
//! `wns`, `other`, never the endpoint), outcome and status, and queue depths
//! are read from the engine at scrape time. Load shedding is counted too:
//! requests refused at the in-flight limit, requests in flight, connections
//! open, refused at the connection limit, and closed for idling.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs of a metric.
pub type Labels = Vec<(String, String)>;

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered, by route and status.
    pub http_requests: Family<Labels, Counter>,
    /// Events stored through the HTTP API.
    pub ingest_events: Counter,
    /// Events acknowledged as repeats (idempotency ids) and not stored again.
    pub ingest_duplicates: Counter,
    /// Ingest requests acknowledged.
    pub ingest_batches: Counter,
    /// Segment query latency, seconds.
    pub query_seconds: Histogram,
    /// Push and webhook attempts, by service, outcome and status.
    pub push_sends: Family<Labels, Counter>,
    /// Push request latency, seconds.
    pub push_seconds: Histogram,
    /// Messages queued in the outbox, read at scrape time.
    pub outbox_depth: Gauge,
    /// Pending trigger fires, read at scrape time.
    pub pending_fires: Gauge,
    /// VAPID tokens minted.
    pub vapid_mints: Gauge,
    /// Requests refused at the in-flight limit (503).
    pub overloaded: Counter,
    /// Requests holding an in-flight slot, read at scrape time.
    pub requests_in_flight: Gauge,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections closed at once because the connection limit was reached.
    pub connections_refused: Counter,
    /// Connections closed because no request arrived in time (idle or slow headers).
    pub connections_idle_closed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, registered.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("nudge"),
            http_requests: Family::default(),
            ingest_events: Counter::default(),
            ingest_duplicates: Counter::default(),
            ingest_batches: Counter::default(),
            query_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 12)),
            push_sends: Family::default(),
            push_seconds: Histogram::new(exponential_buckets(0.000_1, 4.0, 10)),
            outbox_depth: Gauge::default(),
            pending_fires: Gauge::default(),
            vapid_mints: Gauge::default(),
            overloaded: Counter::default(),
            requests_in_flight: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            connections_idle_closed: Counter::default(),
        };
        let registry = &mut metrics.registry;
        registry.register("http_requests", "HTTP requests answered", metrics.http_requests.clone());
        registry.register("ingest_events", "Events stored", metrics.ingest_events.clone());
        registry.register(
            "ingest_duplicate_events",
            "Events acknowledged as repeats of an idempotency id",
            metrics.ingest_duplicates.clone(),
        );
        registry.register(
            "ingest_requests",
            "Ingest requests acknowledged",
            metrics.ingest_batches.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Segment query latency",
            metrics.query_seconds.clone(),
        );
        registry.register(
            "push_sends",
            "Push and webhook attempts by service, outcome and status",
            metrics.push_sends.clone(),
        );
        registry.register(
            "push_send_duration_seconds",
            "Push request latency",
            metrics.push_seconds.clone(),
        );
        registry.register(
            "outbox_depth",
            "Messages queued in the outbox",
            metrics.outbox_depth.clone(),
        );
        registry.register(
            "pending_fires",
            "Trigger fires waiting for their time",
            metrics.pending_fires.clone(),
        );
        registry.register(
            "vapid_tokens_minted",
            "VAPID tokens minted since start",
            metrics.vapid_mints.clone(),
        );
        registry.register(
            "overloaded_requests",
            "Requests refused at the in-flight limit",
            metrics.overloaded.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests holding an in-flight slot (the /metrics request itself is exempt)",
            metrics.requests_in_flight.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once at the connection limit",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "connections_idle_closed",
            "Connections closed because no request arrived in time",
            metrics.connections_idle_closed.clone(),
        );
        metrics
    }

    /// Counts one HTTP answer.
    pub fn count_request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&vec![
                ("route".into(), route.into()),
                ("status".into(), status.to_string()),
            ])
            .inc();
    }

    /// Counts one push or webhook attempt.
    pub fn count_push(&self, service: &str, outcome: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.push_sends
            .get_or_create(&vec![
                ("service".into(), service.into()),
                ("outcome".into(), outcome.into()),
                ("status".into(), status),
            ])
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let metrics = Metrics::new();
        metrics.ingest_events.inc_by(5);
        metrics.count_push("fcm", "delivered", Some(201));
        metrics.count_request("/v1/events", 200);
        metrics.query_seconds.observe(0.001);
        let text = metrics.render();
        assert!(text.contains("nudge_ingest_events_total 5"), "{text}");
        assert!(
            text.contains(
                r#"nudge_push_sends_total{service="fcm",outcome="delivered",status="201"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"nudge_http_requests_total{route="/v1/events",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("nudge_query_duration_seconds_count 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
