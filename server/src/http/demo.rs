//! `nudge serve --demo`: on first start (an empty data directory) loads a
//! generated dataset, a few saved segments and sample campaigns, so a newcomer
//! can query and watch campaigns decide at once.
//!
//! The dataset is `nudge gen`'s (`engine/src/dataset.rs`) for
//! [`DEMO_USERS`] users over the 30 days before now. Its subscriptions are
//! synthetic (they point at FCM with keys that are not real), so pushes to
//! them fail as `rejected`; a browser subscribed on the demo page (`/`)
//! receives real ones. Loading fires no triggers (it is history).

use nudge_engine::Engine;
use nudge_engine::dataset::{self, DatasetSpec};
use serde_json::json;

use crate::error::Result;
use crate::json;

/// Users in the demo dataset.
pub const DEMO_USERS: u64 = 20_000;
/// Records per ingest while loading.
const LOAD_BATCH: usize = 5_000;

/// The demo's saved segments: (name, expression).
pub const DEMO_SEGMENTS: [(&str, &str); 3] = [
    ("buyers-7d", r#"did "Charged" in last 7d"#),
    (
        "browsers-not-buyers",
        r#"did "Product Viewed" at least 3 times in last 7d and not did "Charged" in last 7d"#,
    ),
    ("reachable-delhi", r#"user.city == "Delhi" and reachable via webpush"#),
];

/// The demo's campaigns, in the HTTP API's JSON: (id, definition).
pub fn demo_campaigns() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "cart-rescue",
            json!({
                "name": "Cart rescue",
                "trigger": "on \"Added To Cart\" unless \"Charged\" within 1m",
                "message": {
                    "title": "Still thinking about {{ event.product_name | default('your cart') }}?",
                    "body": "Hi {{ user.first_name | default('there') }}, your cart is waiting.",
                    "url": "/?cart={{ event.cart_id | default('') }}",
                    "actions": [{"title": "Checkout", "url": "/?checkout=1"}],
                    "ttl": "1d", "urgency": "high", "topic": "cart"
                },
                "conversion": {"event": "Charged", "within": "1d", "revenue_prop": "amount"}
            }),
        ),
        (
            "welcome-back",
            json!({
                "name": "Welcome back",
                "trigger": "on \"Session Started\"",
                "audience": "not did \"Charged\" in last 30d",
                "message": {"title": "Welcome back!", "body": "New arrivals since your last visit.", "url": "/", "ttl": "1h"},
                "control_group_percent": 10
            }),
        ),
        (
            "daily-digest",
            json!({
                "name": "Daily digest (paused)",
                "audience": "did \"Product Viewed\" in last 7d",
                "schedule": {"recurring": {"every": "day", "time": "09:00"}, "timezone": "user", "if_passed": "next_day"},
                "message": {"title": "Today's picks", "body": "Picked for you, {{ user.first_name | default('friend') }}.", "url": "/", "ttl": "12h"}
            }),
        ),
    ]
}

/// Loads the demo into `engine` when it holds no users yet; says what it loaded.
pub fn load_if_empty(engine: &Engine) -> Result<Option<String>> {
    if !engine.user_count() == 0 {
        return Ok(None);
    }
    let now_ms = engine.clock().now_ms();
    let spec = DatasetSpec { users: DEMO_USERS, days: 30, seed: 42, now_ms };
    let mut batch = Vec::with_capacity(LOAD_BATCH);
    let mut records = 0usize;
    for record in dataset::records(spec) {
        batch.push(record);
        if batch.len() == LOAD_BATCH {
            records += batch.len();
            engine.ingest_history(std::mem::take(&mut batch))?;
        }
    }
    records += batch.len();
    if !batch.is_empty() {
        engine.ingest_history(batch)?;
    }
    for (name, q) in DEMO_SEGMENTS {
        engine.save_segment(name, q)?;
    }
    let zone = engine.delivery_settings().default_timezone;
    let campaigns = demo_campaigns();
    for (id, body) in &campaigns {
        engine.save_campaign(json::campaign_from_json(id, body, &zone)?)?;
    }
    engine.set_campaign_paused("daily-digest", true)?;
    engine.flush()?;
    Ok(Some(format!(
        "{DEMO_USERS} users, {records} records, {} segments, {} campaigns",
        DEMO_SEGMENTS.len(),
        campaigns.len()
    )))
}
