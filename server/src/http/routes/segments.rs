//! Segments (admin key): `POST /v1/query` evaluates an expression, and
//! `/v1/segments` saves, lists, counts and removes named ones. Queries run on
//! the blocking pool and their latency goes to `/metrics`.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use nudge_engine::QueryOptions;

use super::{Shared, blocking};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::ApiJson;
use crate::json::{self, NonEmptyText, TimestampMs, WholeNumber};

/// Most users a query answer lists.
pub const MAX_QUERY_LIMIT: usize = 100_000;
/// Longest deadline a query may ask for (`deadline_ms`), in ms: the request timeout.
pub const MAX_QUERY_DEADLINE_MS: u64 = 60_000;
/// Largest memory limit a query may ask for (`memory_limit_bytes`): 1 GiB.
pub const MAX_QUERY_MEMORY_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;

/// The body of `POST /v1/query`: `{"q": EXPR, "now": TS?, "limit": N?,
/// "deadline_ms": N?, "memory_limit_bytes": N?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryBody {
    q: NonEmptyText,
    now: Option<TimestampMs>,
    limit: Option<WholeNumber>,
    deadline_ms: Option<WholeNumber>,
    memory_limit_bytes: Option<WholeNumber>,
}

impl QueryBody {
    /// The expression and its options, each within its limit.
    fn into_query(self) -> Result<(String, QueryOptions)> {
        let limit = match self.limit {
            Some(WholeNumber(n)) if n > MAX_QUERY_LIMIT as u64 => {
                return Err(Error::invalid(
                    "limit",
                    format!("expected a whole number from 0 to {MAX_QUERY_LIMIT}"),
                ));
            }
            limit => limit.map(|WholeNumber(n)| n as usize),
        };
        let options = QueryOptions {
            now_ms: self.now.map(|TimestampMs(ms)| ms),
            limit,
            deadline_ms: within("deadline_ms", self.deadline_ms, MAX_QUERY_DEADLINE_MS, "ms")?,
            memory_limit_bytes: within(
                "memory_limit_bytes",
                self.memory_limit_bytes,
                MAX_QUERY_MEMORY_LIMIT_BYTES,
                "bytes",
            )?,
            ..Default::default()
        };
        Ok((self.q.0, options))
    }
}

/// An optional whole number of field `name`, from 1 to `max`.
fn within(name: &str, value: Option<WholeNumber>, max: u64, unit: &str) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(WholeNumber(n)) if (1..=max).contains(&n) => Ok(Some(n)),
        Some(_) => {
            Err(Error::invalid(name, format!("expected a whole number of {unit} from 1 to {max}")))
        }
    }
}

/// The body of `PUT /v1/segments/{name}`: `{"q": EXPR, "public": bool?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SegmentBody {
    q: NonEmptyText,
    /// Whether `GET /v1/users/{id}/segments` (the write key) may name it;
    /// `false` when left out, also for a segment that was public before.
    #[serde(default)]
    public: bool,
}

async fn run_query(
    state: &AppState,
    q: String,
    options: QueryOptions,
) -> Result<nudge_engine::Answer> {
    let engine = state.engine.clone();
    let started = Instant::now();
    let answer = blocking(move || Ok(engine.query(&q, &options)?)).await?;
    state.metrics.query_seconds.observe(started.elapsed().as_secs_f64());
    Ok(answer)
}

/// `POST /v1/query`.
pub(super) async fn post_query(
    State(state): Shared,
    ApiJson(body): ApiJson<QueryBody>,
) -> Result<Json<Value>> {
    let (q, options) = body.into_query()?;
    let answer = run_query(&state, q, options).await?;
    Ok(Json(json::answer_to_json(&answer)))
}

/// `GET /v1/segments`.
pub(super) async fn list_segments(State(state): Shared) -> Json<Value> {
    let public = state.engine.public_segments();
    let segments: Vec<Value> = state
        .engine
        .segments()
        .into_iter()
        .map(|(name, q)| {
            let public = public.contains(&name);
            json!({"name": name, "q": q, "public": public})
        })
        .collect();
    Json(json!({ "segments": segments }))
}

/// `PUT /v1/segments/{name}`.
pub(super) async fn put_segment(
    State(state): Shared,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SegmentBody>,
) -> Result<Json<Value>> {
    let NonEmptyText(q) = body.q;
    let public = body.public;
    let engine = state.engine.clone();
    let (n, text) = (name.clone(), q.clone());
    blocking(move || Ok(engine.save_segment_as(&n, &text, public)?)).await?;
    Ok(Json(json!({"name": name, "q": q, "public": public})))
}

/// `GET /v1/segments/{name}`: the expression and how many users it selects now.
pub(super) async fn get_segment(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let q = state
        .engine
        .segments()
        .remove(&name)
        .ok_or_else(|| Error::NotFound(format!("no segment {name:?}")))?;
    let options = QueryOptions { limit: Some(0), ..Default::default() };
    let answer = run_query(&state, q.clone(), options).await?;
    let public = state.engine.public_segments().contains(&name);
    Ok(Json(json!({
        "name": name,
        "q": q,
        "public": public,
        "count": answer.count,
        "took_us": answer.took_us,
    })))
}

/// `DELETE /v1/segments/{name}`: 204, or 404.
pub(super) async fn delete_segment(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let engine = state.engine.clone();
    let n = name.clone();
    match blocking(move || Ok(engine.remove_segment(&n)?)).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(Error::NotFound(format!("no segment {name:?}"))),
    }
}
