//! The HTTP API of `nudge serve` (`docs/http-api.md`): the router, the key
//! check, and one handler per endpoint of `shared/spec/interfaces.md`.
//!
//! Write-key routes (events, profiles, subscriptions, track) answer CORS
//! preflights and accept either key; every other `/v1` route needs the admin
//! key. Bodies are read with a size limit and parsed here, so every refusal is
//! a JSON error that names the field. Engine calls block (an ingest waits for
//! its fsync), so they run on the blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use governor::clock::Clock as _;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use nudge_engine::stats::Engagement;
use nudge_engine::{Engine, QueryOptions, Record};

use super::AppState;
use super::admission::refuse;
use super::keys::Role;
use crate::error::{Error, Result};
use crate::json;
use crate::json::ndjson;

/// Largest body of `POST /v1/events`.
pub const MAX_EVENTS_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest body of every other request.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most users a query answer lists.
pub const MAX_QUERY_LIMIT: usize = 100_000;
/// Longest deadline a query may ask for (`deadline_ms`), in ms: the request timeout.
pub const MAX_QUERY_DEADLINE_MS: u64 = 60_000;
/// Largest memory limit a query may ask for (`memory_limit_bytes`): 1 GiB.
pub const MAX_QUERY_MEMORY_LIMIT_BYTES: u64 = 1024 * 1024 * 1024;
/// How long browsers may cache a CORS preflight answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

type Shared = State<Arc<AppState>>;

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let write = Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/profiles", post(post_profile))
        .route("/v1/subscriptions", post(post_subscription).delete(delete_subscription))
        .route("/v1/track", post(post_track))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(CORS_MAX_AGE),
        );
    let admin = Router::new()
        .route("/v1/query", post(post_query))
        .route("/v1/segments", get(list_segments))
        .route("/v1/segments/{name}", put(put_segment).get(get_segment).delete(delete_segment))
        .route("/v1/campaigns", get(list_campaigns))
        .route("/v1/campaigns/{id}", put(put_campaign).get(get_campaign).delete(delete_campaign))
        .route("/v1/campaigns/{id}/pause", post(pause_campaign))
        .route("/v1/campaigns/{id}/resume", post(resume_campaign))
        .route("/v1/campaigns/{id}/test", post(test_campaign))
        .route("/v1/campaigns/{id}/stats", get(campaign_stats))
        .route("/v1/decisions", get(get_decisions))
        .route("/v1/settings", put(put_settings).get(get_settings))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let public = Router::new()
        .route("/", get(index_page))
        .route("/sdk.js", get(sdk_js))
        .route("/sw.js", get(sw_js))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(
            // Pages on other origins subscribe with it, so it answers CORS too.
            Router::new().route("/v1/webpush/vapid-public-key", get(vapid_key)).layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_methods([Method::GET])
                    .max_age(CORS_MAX_AGE),
            ),
        );
    write
        .merge(admin)
        .merge(public)
        .fallback(not_found)
        .layer(middleware::from_fn(super::reply::json_rejections))
        .layer(middleware::from_fn_with_state(state.clone(), super::admission::admit))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Error {
    Error::NotFound(format!("no endpoint {method} {}", uri.path()))
}

async fn count_requests(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    state.metrics.count_request(&route, response.status().as_u16());
    response
}

/// The role of the request's `Authorization: Bearer` key.
fn role(state: &AppState, headers: &HeaderMap) -> Result<Role> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Error::Unauthorized("missing `Authorization: Bearer <key>` header".into()));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| {
            Error::Unauthorized("the Authorization header must be `Bearer <key>`".into())
        })?;
    let role = state
        .keys
        .role_of(key.trim())
        .ok_or_else(|| Error::Unauthorized("the key is not valid for this server".into()))?;
    let limiter = match role {
        Role::Write => &state.write_limiter,
        Role::Admin => &state.admin_limiter,
    };
    if let Err(not_until) = limiter.check() {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(Error::RateLimited { retry_after_s: wait.as_secs().max(1) });
    }
    Ok(role)
}

async fn require_write(State(state): Shared, request: Request, next: Next) -> Response {
    match role(&state, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => refuse(request, e).await,
    }
}

async fn require_admin(State(state): Shared, request: Request, next: Next) -> Response {
    match role(&state, request.headers()) {
        Ok(Role::Admin) => next.run(request).await,
        Ok(Role::Write) => {
            let error = Error::Forbidden(
                "the write key may only send events, profiles, subscriptions and engagement; this needs the admin key"
                    .into(),
            );
            refuse(request, error).await
        }
        Err(e) => refuse(request, e).await,
    }
}

/// Whether `error` or one of its causes is a `T`.
fn caused_by<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<T>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Reads a JSON body of at most `limit` bytes.
async fn read_json(body: Body, limit: usize) -> Result<Value> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            Error::TooLarge(format!("the body is larger than {limit} bytes"))
        } else if caused_by::<tower_http::timeout::TimeoutError>(&e) {
            Error::TimedOut("the request body stopped arriving; send it without pauses".into())
        } else {
            Error::Usage(format!("the request body could not be read: {e}"))
        }
    })?;
    if bytes.is_empty() {
        return Err(Error::Usage("the request body is empty; expected JSON".into()));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Usage(format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Runs blocking engine work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Usage(format!("the request was cancelled: {e}")))?
}

/// Splits ndjson's "invalid `field`: reason" into its parts.
fn record_error(index: Option<usize>, message: String) -> Error {
    if let Some(rest) = message.strip_prefix("invalid `")
        && let Some((field, reason)) = rest.split_once("`: ")
    {
        return Error::Invalid { field: field.to_owned(), reason: reason.to_owned(), index };
    }
    Error::Invalid { field: String::new(), reason: message, index }
}

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn string_field(body: &Value, name: &str) -> Result<String> {
    match field(body, name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(Error::invalid(name, "expected a non-empty string")),
        None => Err(Error::invalid(name, "missing")),
    }
}

/// Decodes one record of a body, forcing its `type`.
fn decode_as(mut value: Value, kind: &str, index: Option<usize>) -> Result<Record> {
    let Some(object) = value.as_object_mut() else {
        return Err(record_error(index, "expected a JSON object".into()));
    };
    match object.get("type") {
        None | Some(Value::Null) => {
            object.insert("type".into(), Value::String(kind.into()));
        }
        Some(Value::String(t)) if t == kind => {}
        Some(other) => {
            return Err(Error::Invalid {
                field: "type".into(),
                reason: format!("this endpoint takes `{kind}` records, not {other}"),
                index,
            });
        }
    }
    ndjson::decode(&value).map_err(|e| record_error(index, e))
}

async fn ingest(state: &AppState, records: Vec<Record>) -> Result<super::ingest::Acked> {
    state.ingest.ingest(records).await
}

async fn post_events(State(state): Shared, body: Body) -> Result<Json<Value>> {
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
    let outcome = ingest(&state, records).await?;
    state.metrics.ingest_batches.inc();
    state.metrics.ingest_events.inc_by(outcome.accepted as u64);
    state.metrics.ingest_duplicates.inc_by(outcome.duplicates as u64);
    Ok(Json(json!({"accepted": outcome.accepted, "duplicates": outcome.duplicates})))
}

async fn post_profile(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let record = decode_as(read_json(body, MAX_BODY_BYTES).await?, "profile", None)?;
    let outcome = ingest(&state, vec![record]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}

async fn post_subscription(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let record = decode_as(read_json(body, MAX_BODY_BYTES).await?, "subscription", None)?;
    if let Record::Subscribe { subscription, .. } = &record {
        crate::push::webpush::ece::validate_subscription_keys(
            &subscription.p256dh,
            &subscription.auth,
        )?;
        state.sender.check_push_endpoint(&subscription.endpoint).await?;
    }
    let outcome = ingest(&state, vec![record]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}

async fn delete_subscription(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let endpoint = string_field(&body, "endpoint")?;
    let outcome = ingest(&state, vec![Record::Unsubscribe { endpoint }]).await?;
    Ok(Json(json!({"accepted": outcome.accepted})))
}

async fn post_track(State(state): Shared, body: Body) -> Result<Json<Value>> {
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

async fn post_query(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let q = string_field(&body, "q")?;
    let options = query_options(&body)?;
    let answer = run_query(&state, q, options).await?;
    Ok(Json(crate::cli::query::answer_json(&answer)))
}

async fn list_segments(State(state): Shared) -> Json<Value> {
    let segments: Vec<Value> = state
        .engine
        .segments()
        .into_iter()
        .map(|(name, q)| json!({"name": name, "q": q}))
        .collect();
    Json(json!({ "segments": segments }))
}

async fn put_segment(
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

async fn get_segment(State(state): Shared, Path(name): Path<String>) -> Result<Json<Value>> {
    let q = state
        .engine
        .segments()
        .remove(&name)
        .ok_or_else(|| Error::NotFound(format!("no segment {name:?}")))?;
    let options = QueryOptions { limit: Some(0), ..Default::default() };
    let answer = run_query(&state, q.clone(), options).await?;
    Ok(Json(json!({"name": name, "q": q, "count": answer.count, "took_us": answer.took_us})))
}

async fn delete_segment(State(state): Shared, Path(name): Path<String>) -> Result<StatusCode> {
    let engine = state.engine.clone();
    let n = name.clone();
    match blocking(move || Ok(engine.remove_segment(&n)?)).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(Error::NotFound(format!("no segment {name:?}"))),
    }
}

fn no_campaign(id: &str) -> Error {
    Error::NotFound(format!("no campaign {id:?}"))
}

async fn list_campaigns(State(state): Shared) -> Json<Value> {
    let campaigns: Vec<Value> =
        state.engine.campaigns().iter().map(json::campaign_to_json).collect();
    Json(json!({ "campaigns": campaigns }))
}

async fn put_campaign(
    State(state): Shared,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let default_zone = state.engine.delivery_settings().default_timezone;
    let campaign = json::campaign_from_json(&id, &body, &default_zone)?;
    // The sender checks again before every call (and resolves the host then).
    if let Some((url, _)) = &campaign.webhook {
        state.sender.check_url("webhook.url", url, false)?;
    }
    let engine = state.engine.clone();
    blocking(move || Ok(engine.save_campaign(campaign)?)).await?;
    get_campaign(State(state), Path(id)).await
}

async fn get_campaign(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>> {
    let stored = state.engine.campaign(&id).ok_or_else(|| no_campaign(&id))?;
    Ok(Json(json::campaign_to_json(&stored)))
}

async fn delete_campaign(State(state): Shared, Path(id): Path<String>) -> Result<StatusCode> {
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

async fn pause_campaign(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>> {
    set_paused(state, id, true).await
}

async fn resume_campaign(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>> {
    set_paused(state, id, false).await
}

async fn test_campaign(
    State(state): Shared,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let user_id = string_field(&body, "user_id")?;
    let engine = state.engine.clone();
    let (campaign, user) = (id.clone(), user_id.clone());
    let delivery = blocking(move || Ok(engine.test_send(&campaign, &user)?))
        .await?
        .ok_or_else(|| no_campaign(&id))?;
    Ok(Json(match delivery {
        nudge_engine::delivery::Delivery::Send {
            delivery_id, variant, send_at_ms, items, ..
        } => json!({
            "user_id": user_id, "outcome": "sent", "delivery_id": delivery_id, "variant": variant,
            "send_at": send_at_ms, "targets": items, "test": true,
        }),
        nudge_engine::delivery::Delivery::Dropped { reason, .. } => {
            json!({"user_id": user_id, "outcome": "dropped", "reason": reason, "test": true})
        }
    }))
}

async fn campaign_stats(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>> {
    let engine = state.engine.clone();
    let key = id.clone();
    let stats =
        blocking(move || Ok(engine.campaign_stats(&key))).await?.ok_or_else(|| no_campaign(&id))?;
    Ok(Json(json::stats_to_json(&stats)))
}

#[derive(serde::Deserialize)]
struct DecisionsQuery {
    user_id: Option<String>,
    campaign: Option<String>,
}

async fn get_decisions(
    State(state): Shared,
    Query(q): Query<DecisionsQuery>,
) -> Result<Json<Value>> {
    let user_id = q
        .user_id
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::invalid("user_id", "missing query parameter ?user_id=…"))?;
    let engine = state.engine.clone();
    let (user, campaign) = (user_id.clone(), q.campaign.clone());
    let entries = blocking(move || Ok(engine.decisions(&user, campaign.as_deref()))).await?;
    let decisions: Vec<Value> = entries
        .iter()
        .map(|e| {
            let ts = jiff::Timestamp::from_millisecond(e.ts_ms)
                .map(|t| t.to_string())
                .unwrap_or_default();
            json!({"ts": ts, "event": e.name, "props": ndjson::object(&e.props)})
        })
        .collect();
    Ok(Json(json!({"user_id": user_id, "campaign": q.campaign, "decisions": decisions})))
}

async fn put_settings(State(state): Shared, body: Body) -> Result<Json<Value>> {
    let body = read_json(body, MAX_BODY_BYTES).await?;
    let settings = json::settings_from_json(&body)?;
    let engine = state.engine.clone();
    blocking(move || Ok(engine.save_delivery_settings(settings)?)).await?;
    Ok(Json(json::settings_to_json(&state.engine.delivery_settings())))
}

async fn get_settings(State(state): Shared) -> Json<Value> {
    Json(json::settings_to_json(&state.engine.delivery_settings()))
}

async fn vapid_key(State(state): Shared) -> Json<Value> {
    Json(json!({"key": state.vapid_public_key}))
}

fn asset(
    content_type: &'static str,
    text: String,
    extra: &[(&'static str, &'static str)],
) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in extra {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

async fn sdk_js() -> Response {
    asset("text/javascript; charset=utf-8", super::assets::SDK_JS.to_owned(), &[])
}

async fn sw_js() -> Response {
    // Allowed to control the whole origin.
    asset(
        "text/javascript; charset=utf-8",
        super::assets::SW_JS.to_owned(),
        &[("service-worker-allowed", "/")],
    )
}

async fn index_page(State(state): Shared) -> Response {
    let page = super::assets::INDEX_HTML.replace("{{WRITE_KEY}}", &state.keys.write);
    asset("text/html; charset=utf-8", page, &[])
}

async fn healthz(State(state): Shared) -> Json<Value> {
    Json(
        json!({"status": "ok", "outbox": state.engine.outbox_len(), "pending_fires": state.engine.pending_fires()}),
    )
}

async fn metrics(State(state): Shared) -> Response {
    let engine: &Engine = &state.engine;
    state.metrics.outbox_depth.set(engine.outbox_len() as i64);
    state.metrics.pending_fires.set(engine.pending_fires() as i64);
    state.metrics.vapid_mints.set(state.sender.vapid_mints() as i64);
    asset("application/openmetrics-text; version=1.0.0; charset=utf-8", state.metrics.render(), &[])
}
