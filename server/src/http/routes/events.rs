//! The ingest routes of the write key: `POST /v1/events` (a batch) and
//! `POST /v1/profiles` (one profile update). Both hand their records to the
//! coalescing ingest queue (`http/ingest.rs`) and answer after the fsync.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};

use super::{MAX_BODY_BYTES, MAX_EVENTS_BODY_BYTES, Shared, decode_as, read_json};
use crate::error::{Error, Result};

/// `POST /v1/events`: an array of events, or `{"events": [...]}`, stored atomically.
pub(super) async fn post_events(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_EVENTS_BODY_BYTES).await?;
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("events") {
            Some(Value::Array(items)) => items,
            _ => return Err(Error::invalid("events", "expected an array of events")),
        },
        _ => return Err(Error::Usage("expected an array of events or {\"events\": [...]}".into())),
    };
    let limit = nudge_engine::limits::MAX_BATCH_RECORDS;
    if items.len() > limit {
        return Err(Error::TooLarge(format!(
            "{} events in one request; at most {limit}",
            items.len()
        )));
    }
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| decode_as(item, "event", Some(i)))
        .collect::<Result<Vec<_>>>()?;
    let outcome = state.ingest.ingest(records).await?;
    state.metrics.ingest_batches.inc();
    state.metrics.ingest_events.inc_by(outcome.accepted as u64);
    state.metrics.ingest_duplicates.inc_by(outcome.duplicates as u64);
    Ok(Json(json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates})))
}

/// `POST /v1/profiles`: one profile record.
pub(super) async fn post_profile(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let record = decode_as(read_json(body, MAX_BODY_BYTES).await?, "profile", None)?;
    let outcome = state.ingest.ingest(vec![record]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}
