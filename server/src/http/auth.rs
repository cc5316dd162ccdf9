//! Who may call what: the `Authorization: Bearer <key>` check of every `/v1`
//! route, and the per-key rate limits.
//!
//! [`require_write`] (the write-key routes: either key) and [`require_admin`]
//! (everything else) are route middleware. A refusal (401 no or unknown key,
//! 403 the write key on an admin route, 429 over the key's rate) is answered
//! through [`refuse`], which drains the body first. The keys
//! themselves are in `keys.rs`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock as _;

use super::AppState;
use super::admission::refuse;
use super::keys::Role;
use crate::error::{Error, Result};

/// The key of an `Authorization` value `Bearer <key>`. The scheme is
/// case-insensitive (RFC 7235 §2.1: `bearer`, `BEARER` and `Bearer` alike)
/// and may be followed by more than one space; `None` for another scheme or
/// no key.
fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The role of the request's `Authorization: Bearer` key.
fn role(state: &AppState, headers: &HeaderMap) -> Result<Role> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Error::Unauthorized("missing `Authorization: Bearer <key>` header".into()));
    };
    let key = value.to_str().ok().and_then(bearer_key).ok_or_else(|| {
        Error::Unauthorized("the Authorization header must be `Bearer <key>`".into())
    })?;
    let role = state
        .keys
        .role_of(key)
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

/// Middleware of the write-key routes: either key, within its rate.
pub async fn require_write(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match role(&state, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => refuse(request, e).await,
    }
}

/// Middleware of the admin routes: the admin key, within its rate.
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in
            ["Bearer k1", "bearer k1", "BEARER k1", "bEaReR k1", "Bearer   k1", " Bearer k1 "]
        {
            assert_eq!(bearer_key(value), Some("k1"), "{value:?}");
        }
        for value in ["Basic k1", "Bearerk1", "Bearer", "Bearer ", "k1", "", "Bearer: k1"] {
            assert_eq!(bearer_key(value), None, "{value:?}");
        }
    }
}
