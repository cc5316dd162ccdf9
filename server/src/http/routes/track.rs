//! `POST /v1/track` (write key): what the service worker reports about a
//! delivered notification (view, click, close), recorded by the engine as a
//! `$push_viewed`, `$push_clicked` or `$push_closed` event of its user.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Value, json};

use nudge_engine::campaign::Engagement;

use super::{Shared, blocking};
use crate::error::{Error, Result};
use crate::http::extract::ApiJson;
use crate::json::{NonEmptyText, Text};

/// `{"delivery_id": "...", "type": "view" | "click" | "close", "action": "..."?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrackBody {
    delivery_id: NonEmptyText,
    #[serde(rename = "type")]
    kind: Kind,
    /// The action button clicked; empty is none.
    action: Option<Text>,
}

/// What happened to the notification.
struct Kind(Engagement);

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let NonEmptyText(text) = NonEmptyText::deserialize(deserializer)?;
        Engagement::parse(&text).map(Kind).ok_or_else(|| {
            de::Error::custom(format_args!("{text:?} is not one of view, click, close"))
        })
    }
}

/// `POST /v1/track`: 404 when no such delivery was sent.
pub(super) async fn post_track(
    State(state): Shared,
    ApiJson(body): ApiJson<TrackBody>,
) -> Result<Json<Value>> {
    let TrackBody { delivery_id: NonEmptyText(delivery_id), kind: Kind(kind), action } = body;
    let action = action.map(|Text(a)| a).filter(|a| !a.is_empty());
    let engine = state.engine.clone();
    let id = delivery_id.clone();
    let recorded = blocking(move || Ok(engine.track(&id, kind, action.as_deref())?)).await?;
    if !recorded {
        return Err(Error::NotFound(format!("no delivery {delivery_id:?} was sent")));
    }
    Ok(Json(json!({"recorded": true})))
}
