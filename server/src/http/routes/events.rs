//! The ingest routes of the write key: `POST /v1/events` (a batch of
//! events), `POST /v1/batch` (a batch of any caller record, NDJSON or a JSON
//! array), `POST /v1/integrations/segment` (Segment Spec calls) and
//! `POST /v1/profiles` (one profile update). They hand their
//! records to the coalescing ingest queue (`http/ingest.rs`) and answer after
//! the fsync.
//!
//! The events body is decoded event by event straight into engine records
//! (`json::ndjson::decode_events`), with no JSON tree in between; a bad event
//! refuses the whole batch, naming its `index` and field.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::Shared;
use crate::error::{Error, Result};
use crate::http::extract::{ApiJson, MAX_EVENTS_BODY_BYTES, body_error, read_body};
use crate::json::ndjson::{self, ProfileJson, RecordJson};
use crate::json::segment;

/// `POST /v1/events`: an array of events, or `{"events": [...]}`, stored atomically.
pub(super) async fn post_events(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let bytes = read_body(body, MAX_EVENTS_BODY_BYTES).await?;
    let limit = nudge_engine::limits::MAX_BATCH_RECORDS;
    let batch = ndjson::decode_events(&bytes, limit).map_err(body_error)?;
    if batch.count > limit {
        return Err(Error::TooLarge(format!(
            "{} events in one request; at most {limit}",
            batch.count
        )));
    }
    let outcome = state.ingest.ingest(batch.records).await?;
    state.metrics.ingest_batches.inc();
    state.metrics.ingest_events.inc_by(outcome.accepted as u64);
    state.metrics.ingest_duplicates.inc_by(outcome.duplicates as u64);
    Ok(Json(json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates})))
}

/// `POST /v1/batch`: NDJSON (`Content-Type: application/x-ndjson`) or a
/// JSON array of caller records of any type, stored atomically like
/// `POST /v1/events`.
pub(super) async fn post_batch(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("ndjson"));
    let bytes = read_body(body, MAX_EVENTS_BODY_BYTES).await?;
    let limit = nudge_engine::limits::MAX_BATCH_RECORDS;
    let (records, count) = ndjson::decode_batch(&bytes, ndjson, limit).map_err(body_error)?;
    if count > limit {
        return Err(Error::TooLarge(format!("{count} records in one request; at most {limit}")));
    }
    ingest_records(&state, records).await
}

/// `POST /v1/integrations/segment`: a Segment Spec call or `{"batch":
/// [...]}` (`json/segment.rs`), stored atomically like `POST /v1/batch`.
pub(super) async fn post_segment(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let bytes = read_body(body, MAX_EVENTS_BODY_BYTES).await?;
    let limit = nudge_engine::limits::MAX_BATCH_RECORDS;
    let (records, count) = segment::decode(&bytes, limit).map_err(body_error)?;
    if count > limit {
        return Err(Error::TooLarge(format!("{count} calls in one request; at most {limit}")));
    }
    ingest_records(&state, records).await
}

/// Ingests a decoded batch and answers `{"accepted", "duplicates"}`.
async fn ingest_records(
    state: &crate::http::AppState,
    records: Vec<nudge_engine::Record>,
) -> Result<Json<Value>> {
    let events = records.iter().filter(|r| matches!(r, nudge_engine::Record::Event(_))).count();
    let outcome = state.ingest.ingest(records).await?;
    state.metrics.ingest_batches.inc();
    state.metrics.ingest_events.inc_by(events.saturating_sub(outcome.duplicates) as u64);
    state.metrics.ingest_duplicates.inc_by(outcome.duplicates as u64);
    Ok(Json(json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates})))
}

/// `POST /v1/profiles`: one profile record (`type` may be left out).
pub(super) async fn post_profile(
    State(state): Shared,
    ApiJson(profile): ApiJson<ProfileJson>,
) -> Result<Json<Value>> {
    let outcome = state.ingest.ingest(vec![profile.into_record()]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}
