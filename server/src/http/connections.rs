//! The connection side of `nudge serve`: the accept loop, its limits, and
//! the graceful shutdown.
//!
//! - At most `--max-connections` connections are open; one more is closed as
//!   soon as it is accepted, so a flood of connections cannot exhaust memory or
//!   file descriptors (the in-flight limit then bounds the work they ask for).
//! - A connection must send a whole request head within the header-read
//!   timeout of being accepted or of its last answer, else it is closed.
//!   hyper enforces this for a partial HTTP/1 head; the idle watch here also
//!   covers a connection that sends nothing at all, or only part of the first
//!   bytes (hyper waits for them to tell HTTP/1 from HTTP/2 without a timer),
//!   and an HTTP/2 connection with no request open.
//! - A request body must keep arriving (no gap longer than the body-read
//!   timeout) and a whole request must finish within [`API_REQUEST_TIMEOUT`].
//! - An error from `accept` (out of file descriptors) pauses the loop for
//!   [`ACCEPT_ERROR_BACKOFF`] instead of spinning.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use super::metrics::Metrics;

/// Default most connections open at once (`--max-connections`).
pub const MAX_CONNECTIONS: usize = 4096;
/// Default time allowed for a client to send its request head (`--header-read-timeout-ms`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest pause while a request body arrives (`--body-read-timeout-ms`).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a whole request.
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors).
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The connection limits `nudge serve` runs with.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time to send a request head, from accept or from the last answer.
    pub header_read_timeout: Duration,
    /// Longest pause while a request body arrives.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

/// Whether a connection is working on requests, and since when it is idle.
struct Activity {
    /// Requests being answered, and when the count last changed.
    state: Mutex<(usize, Instant)>,
}

/// A request being answered on a connection; marks it idle again when dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity { state: Mutex::new((0, Instant::now())) })
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = (state.0 + 1, Instant::now());
        Busy(self.clone())
    }

    /// Resolves once no request has been open on the connection for `limit`.
    async fn idle_past(&self, limit: Duration) {
        loop {
            let (active, since) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let wake = if active == 0 {
                let deadline = since + limit;
                if now >= deadline {
                    return;
                }
                deadline
            } else {
                now + limit
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = (state.0.saturating_sub(1), Instant::now());
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Accepts connections within `limits` until a shutdown signal, then drains them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
) {
    let app = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            API_REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .service(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Over the limit: closed at once, before any byte is read.
                    metrics.connections_refused.inc();
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let activity = Activity::new();
                let watched = activity.clone();
                let app = app.clone();
                let service = hyper::service::service_fn(move |request| {
                    let busy = watched.begin();
                    let answer = app.clone().oneshot(request);
                    async move {
                        let response = answer.await;
                        drop(busy);
                        response
                    }
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                let (metrics, idle_limit) = (metrics.clone(), limits.header_read_timeout);
                metrics.connections_open.inc();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = connection => {},
                        () = activity.idle_past(idle_limit) => {
                            metrics.connections_idle_closed.inc();
                        }
                    }
                    metrics.connections_open.dec();
                    drop(slot);
                });
            }
            _ = &mut signal => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            eprintln!("nudge: connections still open after {} s; closing them", SHUTDOWN_GRACE.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_no_request_open() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let Ok(runtime) = runtime else { panic!("a runtime") };
        runtime.block_on(async {
            let activity = Activity::new();
            let limit = Duration::from_millis(100);
            let busy = activity.begin();
            let idle = activity.idle_past(limit);
            tokio::pin!(idle);
            // A request open for longer than the limit keeps the connection.
            assert!(tokio::time::timeout(limit * 3, &mut idle).await.is_err());
            drop(busy);
            let answered = Instant::now();
            idle.await;
            assert!(answered.elapsed() >= limit);
        });
    }
}
