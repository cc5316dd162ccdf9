//! `POST /v1/subscriptions` and `DELETE /v1/subscriptions` (write key): a
//! browser's Web Push subscription, checked (keys on P-256, endpoint behind
//! the push guard) before it is stored, and its removal.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use nudge_engine::Record;

use super::{MAX_BODY_BYTES, Shared, decode_as, read_json, string_field};
use crate::error::Result;

/// `POST /v1/subscriptions`: stores (or refreshes) a subscription.
pub(super) async fn post_subscription(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let record = decode_as(read_json(body, MAX_BODY_BYTES).await?, "subscription", None)?;
    if let Record::Subscribe { subscription, .. } = &record {
        crate::push::webpush::ece::validate_subscription_keys(
            &subscription.p256dh,
            &subscription.auth,
        )?;
        state.sender.check_push_endpoint(&subscription.endpoint)?;
    }
    let outcome = state.ingest.ingest(vec![record]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}

/// `DELETE /v1/subscriptions`: removes the subscription of an endpoint.
pub(super) async fn delete_subscription(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let endpoint = string_field(&body, "endpoint")?;
    let outcome = state.ingest.ingest(vec![Record::Unsubscribe { endpoint }]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}
