//! Campaigns (admin key): `PUT`, `GET`, `DELETE /v1/campaigns/{id}` and the
//! list, `pause`, `resume`, `test` (send now to one user) and `stats`, and
//! `GET /v1/decisions` (why each message to a user was sent, dropped or
//! delayed). The JSON shapes are in `json/campaign.rs` and `json/mod.rs`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::{Shared, blocking};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::ApiJson;
use crate::json::{self, CampaignJson, NonEmptyText, Object};

fn no_campaign(id: &str) -> Error {
    Error::NotFound(format!("no campaign {id:?}"))
}

/// `GET /v1/campaigns`: every campaign.
pub(super) async fn list_campaigns(State(state): Shared) -> Json<Value> {
    let campaigns: Vec<Value> =
        state.engine.campaigns().iter().map(json::campaign_to_json).collect();
    Json(json!({ "campaigns": campaigns }))
}

/// `PUT /v1/campaigns/{id}`: creates or replaces a campaign; answers the stored one.
pub(super) async fn put_campaign(
    State(state): Shared,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CampaignJson>,
) -> Result<Json<Value>> {
    let default_zone = state.engine.delivery_settings().default_timezone;
    let campaign = body.into_campaign(&id, &default_zone)?;
    // The sender checks again before every call (and resolves the host then).
    if let Some(webhook) = &campaign.webhook {
        state.sender.check_webhook_url("webhook.url", &webhook.url)?;
    }
    let engine = state.engine.clone();
    blocking(move || Ok(engine.save_campaign(campaign)?)).await?;
    get_campaign(State(state), Path(id)).await
}

/// `GET /v1/campaigns/{id}`.
pub(super) async fn get_campaign(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let stored = state.engine.campaign(&id).ok_or_else(|| no_campaign(&id))?;
    Ok(Json(json::campaign_to_json(&stored)))
}

/// `DELETE /v1/campaigns/{id}`: 204, or 404.
pub(super) async fn delete_campaign(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let engine = state.engine.clone();
    let key = id.clone();
    match blocking(move || Ok(engine.remove_campaign(&key)?)).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(no_campaign(&id)),
    }
}

async fn set_paused(state: Arc<AppState>, id: String, paused: bool) -> Result<Json<Value>> {
    let engine = state.engine.clone();
    let key = id.clone();
    match blocking(move || Ok(engine.set_campaign_paused(&key, paused)?)).await? {
        Some(_) => get_campaign(State(state), Path(id)).await,
        None => Err(no_campaign(&id)),
    }
}

/// `POST /v1/campaigns/{id}/pause`.
pub(super) async fn pause_campaign(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    set_paused(state, id, true).await
}

/// `POST /v1/campaigns/{id}/resume`.
pub(super) async fn resume_campaign(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    set_paused(state, id, false).await
}

/// The body of `POST /v1/campaigns/{id}/test`: `{"user_id": "u1", "event": {...}?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestBody {
    user_id: NonEmptyText,
    /// Part of the interface (the event a test renders with); accepted, and
    /// not used until the engine's test send takes an event.
    #[serde(rename = "event")]
    _event: Option<Object<IgnoredAny>>,
}

/// `POST /v1/campaigns/{id}/test`: sends the message to one user now, marked as a test.
pub(super) async fn test_campaign(
    State(state): Shared,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<Value>> {
    let NonEmptyText(user_id) = body.user_id;
    let engine = state.engine.clone();
    let (campaign, user) = (id.clone(), user_id.clone());
    let delivery = blocking(move || Ok(engine.test_send(&campaign, &user)?))
        .await?
        .ok_or_else(|| no_campaign(&id))?;
    Ok(Json(match delivery {
        nudge_engine::campaign::Delivery::Send {
            delivery_id, variant, send_at_ms, items, ..
        } => json!({
            "user_id": user_id, "outcome": "sent", "delivery_id": delivery_id, "variant": variant,
            "send_at": send_at_ms, "targets": items, "test": true,
        }),
        nudge_engine::campaign::Delivery::Dropped { reason, .. } => {
            json!({"user_id": user_id, "outcome": "dropped", "reason": reason, "test": true})
        }
    }))
}

/// `GET /v1/campaigns/{id}/stats`.
pub(super) async fn campaign_stats(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let engine = state.engine.clone();
    let key = id.clone();
    let stats = blocking(move || Ok(engine.campaign_stats(&key)?))
        .await?
        .ok_or_else(|| no_campaign(&id))?;
    Ok(Json(json::stats_to_json(&stats)))
}

/// The query string of `GET /v1/decisions`.
#[derive(Deserialize)]
pub(super) struct DecisionsQuery {
    user_id: Option<String>,
    campaign: Option<String>,
}

/// `GET /v1/decisions?user_id=…&campaign=…`: the decision events of one user, oldest first.
pub(super) async fn get_decisions(
    State(state): Shared,
    Query(q): Query<DecisionsQuery>,
) -> Result<Json<Value>> {
    let user_id = q
        .user_id
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::invalid("user_id", "missing query parameter ?user_id=…"))?;
    let engine = state.engine.clone();
    let (user, campaign) = (user_id.clone(), q.campaign.clone());
    let entries = blocking(move || Ok(engine.decisions(&user, campaign.as_deref())?)).await?;
    let decisions: Vec<Value> = entries.iter().map(json::decision_to_json).collect();
    Ok(Json(json!({"user_id": user_id, "campaign": q.campaign, "decisions": decisions})))
}
