//! Fuzz target `api_json`: the JSON bodies of `PUT /v1/campaigns/{id}` and
//! `PUT /v1/settings`, through the decoders and validation the handlers call
//! (`json::campaign_from_json`, `json::settings_from_json`), without HTTP.
//! `http_api` sends the same bodies through the router; this target is faster and so
//! reaches deeper into the campaign and settings rules.
//!
//! Failure means a panic, or a broken round trip: an accepted campaign written back as
//! JSON (`campaign_to_json`) must read back to the same campaign under another default
//! zone, and its log encoding (`Campaign::encode`) must decode to it; accepted settings
//! written back must read back to the same JSON.

#![no_main]

use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use nudge_engine::campaign::{Campaign, StoredCampaign};
use nudge_server::json;

/// The campaign id of the path.
const ID: &str = "c";
/// When the campaign was saved, epoch ms (2026-10-27).
const SAVED_MS: i64 = 1_793_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let kolkata = TimeZone::get("Asia/Kolkata").expect("a bundled zone");
    if let Ok(campaign) = json::campaign_from_json(ID, &body, &TimeZone::UTC) {
        let stored =
            StoredCampaign { campaign: campaign.clone(), paused: false, saved_ms: SAVED_MS };
        let written = json::campaign_to_json(&stored);
        let back = json::campaign_from_json(ID, &written, &kolkata).unwrap_or_else(|e| {
            panic!("{written} (written from a valid campaign) is refused: {e}")
        });
        assert_eq!(back, campaign, "JSON round trip through {written}");
        assert_eq!(Campaign::decode(&campaign.encode()).as_ref(), Some(&campaign), "log encoding");
    }
    if let Ok(settings) = json::settings_from_json(&body) {
        let written = json::settings_to_json(&settings);
        let back = json::settings_from_json(&written)
            .unwrap_or_else(|e| panic!("{written} (written from valid settings) is refused: {e}"));
        assert_eq!(json::settings_to_json(&back), written, "settings round trip");
    }
});
