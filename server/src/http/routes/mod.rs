//! The HTTP API of `nudge serve` (`docs/http-api.md`): the router, and the
//! helpers its handlers share. One file per resource holds the handlers of
//! `shared/spec/interfaces.md`: `events.rs` (events, batches of any record, and profiles),
//! `subscriptions.rs`, `track.rs`, `segments.rs` (queries and saved
//! segments), `campaigns.rs` (with stats and decisions), `settings.rs`,
//! `users.rs` (one user, and a user's public segments), and `public.rs` (what needs no key).
//!
//! Write-key routes (events, batches, profiles, subscriptions, track, a user's public
//! segments) answer CORS
//! preflights and accept either key; every other `/v1` route needs the admin
//! key (`http/auth.rs`). Bodies are read with a size limit and decoded into
//! derived structs (`http/extract.rs`), so every refusal is a JSON error that
//! names the field, unknown fields included. Engine calls block (an ingest
//! waits for its fsync), so they run on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tower_http::cors::{Any, CorsLayer};

use super::AppState;
use super::auth::{require_admin, require_write};
use crate::error::{Error, Result};

mod campaigns;
mod events;
mod public;
mod segments;
mod settings;
mod subscriptions;
mod track;
mod users;

pub use segments::{MAX_QUERY_DEADLINE_MS, MAX_QUERY_LIMIT, MAX_QUERY_MEMORY_LIMIT_BYTES};

/// How long browsers may cache a CORS preflight answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// The state every handler extracts.
type Shared = State<Arc<AppState>>;

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let write = Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/v1/batch", post(events::post_batch))
        .route("/v1/integrations/segment", post(events::post_segment))
        .route("/v1/profiles", post(events::post_profile))
        .route(
            "/v1/subscriptions",
            post(subscriptions::post_subscription).delete(subscriptions::delete_subscription),
        )
        .route("/v1/track", post(track::post_track))
        .route("/v1/users/{id}/segments", get(users::user_segments))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_write))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(CORS_MAX_AGE),
        );
    let admin = Router::new()
        .route("/v1/query", post(segments::post_query))
        .route("/v1/segments", get(segments::list_segments))
        .route(
            "/v1/segments/{name}",
            put(segments::put_segment).get(segments::get_segment).delete(segments::delete_segment),
        )
        .route("/v1/campaigns", get(campaigns::list_campaigns))
        .route(
            "/v1/campaigns/{id}",
            put(campaigns::put_campaign)
                .get(campaigns::get_campaign)
                .delete(campaigns::delete_campaign),
        )
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause_campaign))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume_campaign))
        .route("/v1/campaigns/{id}/test", post(campaigns::test_campaign))
        .route("/v1/campaigns/{id}/stats", get(campaigns::campaign_stats))
        .route("/v1/decisions", get(campaigns::get_decisions))
        .route("/v1/settings", put(settings::put_settings).get(settings::get_settings))
        .route("/v1/users/{id}", get(users::get_user))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let public = Router::new()
        .route("/", get(public::index_page))
        .route("/sdk.js", get(public::sdk_js))
        .route("/sw.js", get(public::sw_js))
        .route("/healthz", get(public::healthz))
        .route("/metrics", get(public::metrics))
        .merge(
            // Pages on other origins subscribe with it, so it answers CORS too.
            Router::new().route("/v1/webpush/vapid-public-key", get(public::vapid_key)).layer(
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

/// Runs blocking engine work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Usage(format!("the request was cancelled: {e}")))?
}
