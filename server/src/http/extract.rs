//! Request bodies. [`ApiJson<T>`] is the extractor of every JSON body but
//! `POST /v1/events`: the body is read with a size limit ([`read_body`]; a
//! body that stops arriving answers 408), then decoded into `T`, a derived
//! `#[serde(deny_unknown_fields)]` struct, by `json::from_slice`. A wrong or
//! unknown field answers `400 invalid_field` naming its JSON path (`json`'s
//! one `FieldError`), text that is not JSON `400 bad_request`
//! ([`body_error`]). `POST /v1/events` reads its larger body with
//! [`read_body`] and decodes it event by event (`json::ndjson::decode_events`).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::json::{self, JsonError};

/// Largest body of `POST /v1/events`.
pub const MAX_EVENTS_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest body of every other request.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON object body decoded as `T` (at most [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self> {
        let bytes = read_body(request.into_body(), MAX_BODY_BYTES).await?;
        json::from_slice(&bytes).map(ApiJson).map_err(body_error)
    }
}

/// Whether `error` or one of its causes is a `T`.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<T>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Reads a body of at most `limit` bytes that is not empty.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            Error::TooLarge(format!("the body is larger than {limit} bytes"))
        } else if caused_by::<tower_http::timeout::TimeoutError>(&e) {
            Error::TimedOut("the request body stopped arriving; send it without pauses".into())
        } else {
            Error::Usage(format!("the request body could not be read: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(Error::Usage("the request body is empty; expected JSON".into()));
    }
    Ok(bytes)
}

/// The answer to a body that does not decode.
pub fn body_error(error: JsonError) -> Error {
    match error {
        JsonError::NotJson(e) => Error::Usage(format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )),
        JsonError::Field(e) => Error::Invalid(e),
    }
}
