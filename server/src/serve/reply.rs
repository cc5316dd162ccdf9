//! How errors become HTTP answers: `{"error": {"code", "message", ...}}` with
//! a status that tells the client what to do (400 fix the request, 401/403
//! use the right key, 404, 408 send faster, 413 send less, 429 slow down,
//! 503 retry later (with `Retry-After` when the server is overloaded),
//! 500 tell the operator). Extra members say where: `index` and `field` for
//! a bad record, `line`, `column` and `rendered` for a bad query.

use axum::http::{HeaderValue, StatusCode, header};
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
        Error::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
        Error::Subscription(_) => (StatusCode::BAD_REQUEST, "invalid_subscription"),
        Error::Push(_) => (StatusCode::INTERNAL_SERVER_ERROR, "push"),
        Error::Query(_) | Error::Engine(E::Query { .. }) => {
            (StatusCode::BAD_REQUEST, "invalid_query")
        }
        Error::Engine(E::InvalidInput { .. }) => (StatusCode::BAD_REQUEST, "invalid_record"),
        // The query is valid but too costly as written: 422, not a server fault.
        Error::Engine(E::QueryStopped { .. }) => {
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
        Error::Engine(_) | Error::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self);
        let message = self.to_string();
        match self {
            Error::Invalid { field, index, .. } => {
                body(status, code, message, json!({"field": field, "index": index}))
            }
            Error::Engine(nudge_engine::Error::InvalidInput { index, field, .. }) => {
                body(status, code, message, json!({"field": field, "index": index}))
            }
            Error::Engine(nudge_engine::Error::QueryStopped { deadline_ms }) => {
                body(status, code, message, json!({"deadline_ms": deadline_ms}))
            }
            Error::Engine(nudge_engine::Error::Query { line, column, message, rendered }) => body(
                status,
                code,
                message,
                json!({"line": line, "column": column, "rendered": rendered}),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_query_answers_422_with_its_deadline() {
        let error = Error::Engine(nudge_engine::Error::QueryStopped { deadline_ms: 2000 });
        assert_eq!(status_of(&error), (StatusCode::UNPROCESSABLE_ENTITY, "query_stopped"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn overload_answers_503_with_retry_after() {
        let error = Error::Overloaded { reason: "test".into(), retry_after_s: 2 };
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER), Some(&HeaderValue::from(2u64)));
    }
}
