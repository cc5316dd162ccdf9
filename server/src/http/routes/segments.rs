//! Segments (admin key): `POST /v1/query` evaluates an expression, and
//! `/v1/segments` saves, lists, counts and removes named ones. Queries run on
//! the blocking pool and their latency goes to `/metrics`.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use nudge_engine::QueryOptions;

use super::{MAX_BODY_BYTES, Shared, blocking, field, read_json, record_error, string_field};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::json::ndjson;

/// Most users a query answer lists.
pub const MAX_QUERY_LIMIT: usize = 100_000;
/// Longest deadline a query may ask for (`deadline_ms`), in ms: the request timeout.
pub const MAX_QUERY_DEADLINE_MS: u64 = 60_000;
/// Largest memory limit a query may ask for (`memory_limit_bytes`): 1 GiB.
pub const MAX_QUERY_MEMORY_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;

fn query_options(body: &Value) -> Result<QueryOptions> {
    let now_ms = field(body, "now")
        .map(|v| ndjson::parse_timestamp("now", v).map_err(|e| record_error(None, e)))
        .transpose()?;
    let limit = match field(body, "limit") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= MAX_QUERY_LIMIT => Some(n as usize),
            _ => {
                return Err(Error::invalid(
                    "limit",
                    format!("expected a whole number from 0 to {MAX_QUERY_LIMIT}"),
                ));
            }
        },
    };
    let deadline_ms = whole_number(body, "deadline_ms", MAX_QUERY_DEADLINE_MS, "ms")?;
    let memory_limit_bytes =
        whole_number(body, "memory_limit_bytes", MAX_QUERY_MEMORY_LIMIT_BYTES, "bytes")?;
    Ok(QueryOptions { now_ms, limit, deadline_ms, memory_limit_bytes, ..Default::default() })
}

/// An optional whole number from 1 to `max` in field `name`.
fn whole_number(body: &Value, name: &str, max: u64, unit: &str) -> Result<Option<u64>> {
    match field(body, name) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid(
                name,
                format!("expected a whole number of {unit} from 1 to {max}"),
            )),
        },
    }
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
pub(super) async fn post_query(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let q = string_field(&body, "q")?;
    let options = query_options(&body)?;
    let answer = run_query(&state, q, options).await?;
    Ok(Json(crate::cli::query::answer_json(&answer)))
}

/// `GET /v1/segments`.
pub(super) async fn list_segments(State(state): Shared) -> Json<Value> {
    let segments: Vec<Value> = state
        .engine
        .segments()
        .into_iter()
        .map(|(name, q)| json!({"name": name, "q": q}))
        .collect();
    Json(json!({ "segments": segments }))
}

/// `PUT /v1/segments/{name}`.
pub(super) async fn put_segment(
    State(state): Shared,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let q = string_field(&body, "q")?;
    let engine = state.engine.clone();
    let (n, text) = (name.clone(), q.clone());
    blocking(move || Ok(engine.save_segment(&n, &text)?)).await?;
    Ok(Json(json!({"name": name, "q": q})))
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
    Ok(Json(json!({"name": name, "q": q, "count": answer.count, "took_us": answer.took_us})))
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
