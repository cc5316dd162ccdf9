//! `PUT /v1/settings` and `GET /v1/settings` (admin key): the global delivery
//! settings (caps, default time zone, quiet hours); the JSON shape is in
//! `json/settings.rs`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::Value;

use super::{MAX_BODY_BYTES, Shared, blocking, read_json};
use crate::error::Result;
use crate::json;

/// `PUT /v1/settings`: replaces the settings; answers them.
pub(super) async fn put_settings(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let settings = json::settings_from_json(&body)?;
    let engine = state.engine.clone();
    blocking(move || Ok(engine.save_delivery_settings(settings)?)).await?;
    Ok(Json(json::settings_to_json(&state.engine.delivery_settings())))
}

/// `GET /v1/settings`.
pub(super) async fn get_settings(State(state): Shared) -> Json<Value> {
    Json(json::settings_to_json(&state.engine.delivery_settings()))
}
