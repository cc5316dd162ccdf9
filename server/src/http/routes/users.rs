//! Users (issue 17, `docs/design/users-data.md`): `GET /v1/users/{id}`
//! (admin) shows what the engine holds about one user, and
//! `GET /v1/users/{id}/segments` (write key, CORS) names the public saved
//! segments a user is in, for on-site personalization. A segment not marked
//! public is never named to the write key.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{Shared, blocking};
use crate::error::{Error, Result};
use crate::json::{self, ndjson};

/// `GET /v1/users/{id}`: profile, aliases, subscriptions (push service host
/// and creation time, never the endpoint path or keys), the latest events,
/// the saved segments the user is in, and the latest decisions. 404 for a
/// user id never seen.
pub(super) async fn get_user(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>> {
    let engine = state.engine.clone();
    let user = id.clone();
    let view = blocking(move || Ok(engine.user(&user, None)?))
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user {id:?}")))?;
    let subscriptions: Vec<Value> = view
        .subscriptions
        .iter()
        .map(|s| {
            let host = url::Url::parse(&s.endpoint)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            json!({"host": host, "created": json::timestamp_json(s.created_ms)})
        })
        .collect();
    let events: Vec<Value> = view
        .events
        .iter()
        .map(|e| json!({"name": e.name, "ts": json::timestamp_json(e.ts_ms), "props": ndjson::object(&e.props)}))
        .collect();
    let decisions: Vec<Value> = view.decisions.iter().map(json::decision_to_json).collect();
    Ok(Json(json!({
        "user_id": view.user_id,
        "profile": ndjson::object(&view.profile),
        "aliases": [],
        "subscriptions": subscriptions,
        "events": events,
        "event_count": view.event_count,
        "segments": view.segments.segments,
        "warnings": view.segments.warnings,
        "decisions": decisions,
    })))
}

/// `GET /v1/users/{id}/segments`: `{"user_id", "segments": [names, sorted]}`.
/// A user id never seen is in no segment (`[]`): a new visitor, not an error.
/// It runs on the async worker: each public segment is evaluated for one
/// user, reading that user's rows only (microseconds).
pub(super) async fn user_segments(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let found = state.engine.user_segments(&id, true, None)?;
    let segments = found.map(|found| found.segments).unwrap_or_default();
    Ok(Json(json!({"user_id": id, "segments": segments})))
}
