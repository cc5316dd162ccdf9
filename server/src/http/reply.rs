//! How errors become HTTP answers: `{"error": {"code", "message", ...}}` with
//! a status that tells the client what to do (400 fix the request, 401/403
//! use the right key, 404, 408 send faster, 413 send less, 429 slow down,
//! 503 retry later (with `Retry-After` when the server is overloaded), 507
//! the server's disk is full, 500 tell the operator). Extra members say
//! where: `index` and `field` for a bad record, `line`, `column` and
//! `rendered` for a bad query. Refusals that axum answers by itself get the
//! same shape ([`json_rejections`]).
//!
//! A server-side failure (5xx) answers with a message that names no file or
//! path (the write key is public: browsers see these answers); the details go
//! to standard error for the operator.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::Error;

fn body(status: StatusCode, code: &str, message: String, mut extra: Value) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let (Some(error), Some(extra)) = (error.as_object_mut(), extra.as_object_mut()) {
        error.append(extra);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// The status and code an error answers with.
pub fn status_of(error: &Error) -> (StatusCode, &'static str) {
    use nudge_engine::Error as E;
    match error {
        Error::Usage(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        Error::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_field"),
        Error::Subscription(_) => (StatusCode::BAD_REQUEST, "invalid_subscription"),
        Error::Push(_) => (StatusCode::INTERNAL_SERVER_ERROR, "push"),
        Error::Engine(E::Query { .. }) => (StatusCode::BAD_REQUEST, "invalid_query"),
        Error::Engine(E::InvalidInput { .. }) => (StatusCode::BAD_REQUEST, "invalid_record"),
        // The query is valid but too costly as written: 422, not a server fault.
        Error::Engine(E::QueryStopped { .. } | E::QueryOverMemory { .. }) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "query_stopped")
        }
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        Error::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
        Error::Engine(E::Poisoned { .. } | E::Closed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        Error::Engine(E::DiskFull { .. }) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
        Error::Engine(_) | Error::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self);
        let message = match public_message(&self) {
            Some(public) => {
                eprintln!("nudge: answering {}: {self}", status.as_u16());
                public
            }
            None => self.to_string(),
        };
        match self {
            Error::Invalid(error) => {
                body(status, code, message, json!({"field": error.field, "index": error.index}))
            }
            Error::Engine(nudge_engine::Error::InvalidInput { index, field, .. }) => {
                body(status, code, message, json!({"field": field, "index": index}))
            }
            Error::Engine(nudge_engine::Error::QueryStopped { deadline_ms }) => {
                body(status, code, message, json!({"deadline_ms": deadline_ms}))
            }
            Error::Engine(nudge_engine::Error::QueryOverMemory { limit_bytes }) => {
                body(status, code, message, json!({"memory_limit_bytes": limit_bytes}))
            }
            Error::Engine(nudge_engine::Error::Query {
                field,
                line,
                column,
                message,
                rendered,
            }) => body(
                status,
                code,
                message,
                json!({"field": field, "line": line, "column": column, "rendered": rendered}),
            ),
            Error::RateLimited { retry_after_s } | Error::Overloaded { retry_after_s, .. } => {
                let mut response = body(status, code, message, json!({}));
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                response
            }
            Error::Unauthorized(_) => {
                let mut response = body(status, code, message, json!({}));
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            _ => body(status, code, message, json!({})),
        }
    }
}

/// What a client is told about a failure of the server's storage: what
/// happened and what to do, without paths or the operating system's words;
/// `None` for every other error, whose own text is the message.
fn public_message(error: &Error) -> Option<String> {
    use nudge_engine::Error as E;
    let text = match error {
        Error::Engine(E::DiskFull { .. }) => {
            "the server's disk is full: this request was not acknowledged; retry it with the \
             same event ids once the operator has freed space"
                .into()
        }
        Error::Engine(E::Poisoned { .. }) => "the server stopped accepting writes after a \
             storage failure: this request was not acknowledged; retry it with the same event \
             ids after the server restarts"
            .into(),
        Error::Engine(E::Closed) => "the server is shutting down; retry shortly".into(),
        Error::Engine(E::Io { .. }) | Error::Io { .. } => {
            "the server could not store or read its data: this request was not acknowledged; \
             the operator has the details"
                .into()
        }
        _ => return None,
    };
    Some(text)
}

/// Longest text of an axum rejection kept as the message of its JSON error.
pub const MAX_REJECTION_BYTES: usize = 4096;

/// Middleware: gives a 4xx that is not JSON (axum's own refusals: a path segment
/// that is not UTF-8, a bad query string, a method the route lacks) the API's
/// `{"error": {"code", "message"}}` shape, keeping its status and headers
/// (`Allow` on a 405).
pub async fn json_rejections(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, text) = response.into_parts();
    let text = axum::body::to_bytes(text, MAX_REJECTION_BYTES).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("refused").to_owned();
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        _ => "bad_request",
    };
    let answer = body(status, code, message, json!({}));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(answer.headers().clone());
    let (_, json) = answer.into_parts();
    Response::from_parts(parts, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `http_api` fuzz target: a segment name that is not UTF-8 got axum's
    /// plain-text 400, and a missing method an empty 405, not the API's JSON error.
    #[tokio::test]
    async fn axum_rejections_answer_json_errors() {
        use axum::routing::put;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/v1/segments/{name}", put(|_: axum::extract::Path<String>| async { "ok" }))
            .layer(axum::middleware::from_fn(json_rejections));
        for (method, uri, status, code) in [
            ("PUT", "/v1/segments/%BA", StatusCode::BAD_REQUEST, "bad_request"),
            ("GET", "/v1/segments/s", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), status, "{method} {uri}");
            let allow = response.headers().get(header::ALLOW).cloned();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            let json: Value = serde_json::from_slice(&bytes).expect("a JSON body");
            assert_eq!(json["error"]["code"], code, "{json}");
            assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
            if status == StatusCode::METHOD_NOT_ALLOWED {
                assert!(allow.is_some(), "the Allow header is kept");
            }
        }
    }

    #[test]
    fn a_stopped_query_answers_422_with_its_deadline() {
        let error = Error::Engine(nudge_engine::Error::QueryStopped { deadline_ms: 2000 });
        assert_eq!(status_of(&error), (StatusCode::UNPROCESSABLE_ENTITY, "query_stopped"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn server_failures_name_no_path_and_a_full_disk_answers_507() {
        let full = Error::Engine(nudge_engine::Error::DiskFull {
            context: "writing /srv/nudge/log/00000001.chunk".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(status_of(&full), (StatusCode::INSUFFICIENT_STORAGE, "disk_full"));
        let text = public_message(&full).expect("a public message");
        assert!(text.contains("disk is full") && !text.contains("/srv"), "{text}");
        let io = Error::Engine(nudge_engine::Error::Io {
            context: "reading /srv/nudge/log".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert!(!public_message(&io).expect("a public message").contains("/srv"));
        assert_eq!(full.into_response().status(), StatusCode::INSUFFICIENT_STORAGE);
    }

    #[test]
    fn a_query_over_its_memory_limit_answers_422_with_the_limit() {
        let error = Error::Engine(nudge_engine::Error::QueryOverMemory { limit_bytes: 4096 });
        assert_eq!(status_of(&error), (StatusCode::UNPROCESSABLE_ENTITY, "query_stopped"));
        assert!(error.to_string().contains("memory limit of 4096 bytes"), "{error}");
    }

    #[test]
    fn overload_answers_503_with_retry_after() {
        let error = Error::Overloaded { reason: "test".into(), retry_after_s: 2 };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER), Some(&HeaderValue::from(2u64)));
    }
}
