//! `POST /v1/subscriptions` and `DELETE /v1/subscriptions` (write key): a
//! browser's Web Push subscription, checked (keys on P-256, endpoint behind
//! the push guard) before it is stored, and its removal. The bodies are the
//! `subscription` and `unsubscribe` records of `json/ndjson.rs`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use nudge_engine::Record;

use super::Shared;
use crate::error::Result;
use crate::http::extract::ApiJson;
use crate::json::ndjson::{RecordJson, SubscriptionJson, UnsubscribeJson};
use crate::push::webpush::ece;

/// `POST /v1/subscriptions`: stores (or refreshes) a subscription.
pub(super) async fn post_subscription(
    State(state): Shared,
    ApiJson(body): ApiJson<SubscriptionJson>,
) -> Result<Json<Value>> {
    let record = body.into_record();
    if let Record::Subscribe { subscription, .. } = &record {
        ece::validate_subscription_keys(&subscription.p256dh, &subscription.auth)?;
        state.sender.check_push_endpoint(&subscription.endpoint)?;
    }
    let outcome = state.ingest.ingest(vec![record]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}

/// `DELETE /v1/subscriptions`: removes the subscription of an endpoint.
pub(super) async fn delete_subscription(
    State(state): Shared,
    ApiJson(body): ApiJson<UnsubscribeJson>,
) -> Result<Json<Value>> {
    let outcome = state.ingest.ingest(vec![body.into_record()]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}
