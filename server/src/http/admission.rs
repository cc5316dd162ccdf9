//! Admission of requests: a global limit on requests in flight, so overload
//! is answered at once with `503 overloaded` and `Retry-After` instead of
//! piling up work, memory and latency.
//!
//! A request holds one permit from the moment it is routed until its answer
//! is ready (reading its body, the key check, the engine work). When every
//! permit is taken the request is refused before its body is read, so nothing
//! is written. `/healthz` and `/metrics` are exempt, so an operator can still
//! see the server while it sheds load.
//!
//! A request refused before its body is read (503 here; 401, 403 and 429 at
//! the key check) first has its body read and discarded, up to
//! [`DRAIN_LIMIT_BYTES`] for at most [`DRAIN_TIMEOUT`], without keeping it: a
//! connection closed with unread data is reset, and the reset can destroy the
//! answer before the client reads it. A larger or slower body is not waited
//! for (the connection is then closed after the answer), nor one whose client
//! waits for `100 Continue`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::AppState;
use crate::error::Error;

/// Default most requests being worked on at once (`--max-in-flight`).
pub const MAX_API_REQUESTS_IN_FLIGHT: usize = 256;
/// What a refused caller is told to wait before retrying, in seconds.
pub const OVERLOAD_RETRY_AFTER_S: u64 = 1;
/// Paths answered even when the server is at its in-flight limit.
pub const EXEMPT_PATHS: [&str; 2] = ["/healthz", "/metrics"];
/// Most body bytes read and discarded before a refusal is answered.
pub const DRAIN_LIMIT_BYTES: usize = 1024 * 1024;
/// Longest a refusal waits for the body it discards.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// The in-flight request budget.
pub struct InFlight {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InFlight {
    /// A budget of `limit` requests at once (at least 1).
    pub fn new(limit: usize) -> InFlight {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        InFlight { permits: Arc::new(Semaphore::new(limit)), limit }
    }

    /// Requests being worked on now.
    pub fn current(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

/// Middleware: admits the request within the budget, or answers 503.
pub async fn admit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if EXEMPT_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(permit) = state.in_flight.permits.clone().try_acquire_owned() else {
        state.metrics.overloaded.inc();
        let error = Error::Overloaded {
            reason: format!("{} requests in flight", state.in_flight.limit),
            retry_after_s: OVERLOAD_RETRY_AFTER_S,
        };
        return refuse(request, error).await;
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// Answers `request` with `error`, after discarding its body (see the module doc).
pub async fn refuse(request: Request, error: Error) -> Response {
    let waits_for_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain(request.into_body())).await;
    }
    error.into_response()
}

async fn drain(mut body: Body) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len());
        if read > DRAIN_LIMIT_BYTES {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_what_is_held() {
        let budget = InFlight::new(2);
        let first = budget.permits.clone().try_acquire_owned();
        assert!(first.is_ok());
        assert_eq!(budget.current(), 1);
        let second = budget.permits.clone().try_acquire_owned();
        assert!(second.is_ok());
        assert!(budget.permits.clone().try_acquire_owned().is_err(), "a third is refused");
        drop(first);
        assert_eq!(budget.current(), 1);
        assert_eq!(InFlight::new(0).limit, 1, "never zero");
    }
}
