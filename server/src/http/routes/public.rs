//! The routes that need no key: the demo page `/`, the browser files
//! `/sdk.js` and `/sw.js`, `/healthz`, `/metrics`, and the VAPID public key
//! that pages subscribe with.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use nudge_engine::Engine;

use super::Shared;
use crate::http::assets;

/// `GET /v1/webpush/vapid-public-key`.
pub(super) async fn vapid_key(State(state): Shared) -> Json<Value> {
    Json(json!({"key": state.vapid_public_key}))
}

fn asset(
    content_type: &'static str,
    text: String,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /sdk.js`.
pub(super) async fn sdk_js() -> Response {
    asset("text/javascript; charset=utf-8", assets::SDK_JS.to_owned(), &[])
}

/// `GET /sw.js`.
pub(super) async fn sw_js() -> Response {
    // Allowed to control the whole origin.
    asset(
        "text/javascript; charset=utf-8",
        assets::SW_JS.to_owned(),
        &[("service-worker-allowed", "/")],
    )
}

/// `GET /`: the demo page, with the write key filled in.
pub(super) async fn index_page(State(state): Shared) -> Response {
    let page = assets::INDEX_HTML.replace("{{WRITE_KEY}}", &state.keys.write);
    asset("text/html; charset=utf-8", page, &[])
}

/// `GET /healthz`.
pub(super) async fn healthz(State(state): Shared) -> Json<Value> {
    Json(
        json!({"status": "ok", "outbox": state.engine.outbox_len(), "pending_fires": state.engine.pending_fires()}),
    )
}

/// `GET /metrics`: the gauges read from the engine now, then the text exposition.
pub(super) async fn metrics(State(state): Shared) -> Response {
    let engine: &Engine = &state.engine;
    state.metrics.outbox_depth.set(engine.outbox_len() as i64);
    state.metrics.pending_fires.set(engine.pending_fires() as i64);
    state.metrics.vapid_mints.set(state.sender.vapid_mints() as i64);
    state.metrics.requests_in_flight.set(state.in_flight.current() as i64);
    asset("application/openmetrics-text; version=1.0.0; charset=utf-8", state.metrics.render(), &[])
}
