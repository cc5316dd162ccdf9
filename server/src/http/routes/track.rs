//! `POST /v1/track` (write key): what the service worker reports about a
//! delivered notification (view, click, close), recorded by the engine as a
//! `$push_viewed`, `$push_clicked` or `$push_closed` event of its user.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use nudge_engine::stats::Engagement;

use super::{MAX_BODY_BYTES, Shared, blocking, field, read_json, string_field};
use crate::error::{Error, Result};

/// `POST /v1/track`: 404 when no such delivery was sent.
pub(super) async fn post_track(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let delivery_id = string_field(&body, "delivery_id")?;
    let kind_text = string_field(&body, "type")?;
    let kind = Engagement::parse(&kind_text).ok_or_else(|| {
        Error::invalid("type", format!("{kind_text:?} is not one of view, click, close"))
    })?;
    let action = match field(&body, "action") {
        Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
        Some(Value::String(_)) | None => None,
        Some(_) => return Err(Error::invalid("action", "expected a string")),
    };
    let engine = state.engine.clone();
    let id = delivery_id.clone();
    let recorded = blocking(move || Ok(engine.track(&id, kind, action.as_deref())?)).await?;
    if !recorded {
        return Err(Error::NotFound(format!("no delivery {delivery_id:?} was sent")));
    }
    Ok(Json(json!({"recorded": true})))
}
