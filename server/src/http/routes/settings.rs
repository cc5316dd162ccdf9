//! `PUT /v1/settings` and `GET /v1/settings` (admin key): the global delivery
//! settings (caps, default time zone, quiet hours); the JSON shape is in
//! `json/settings.rs`.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::{Shared, blocking};
use crate::error::Result;
use crate::http::extract::ApiJson;
use crate::json::{self, SettingsJson};

/// `PUT /v1/settings`: replaces the settings; answers them.
pub(super) async fn put_settings(
    State(state): Shared,
    ApiJson(body): ApiJson<SettingsJson>,
) -> Result<Json<Value>> {
    let settings = body.into_settings()?;
    let engine = state.engine.clone();
    blocking(move || Ok(engine.save_delivery_settings(&settings)?)).await?;
    Ok(Json(json::settings_to_json(&state.engine.delivery_settings())))
}

/// `GET /v1/settings`.
pub(super) async fn get_settings(State(state): Shared) -> Json<Value> {
    Json(json::settings_to_json(&state.engine.delivery_settings()))
}
