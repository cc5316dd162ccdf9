//! `GET /v1/campaigns/{id}/stats`: the engine's campaign statistics as the
//! "Stats" object of `shared/spec/interfaces.md`, and one decision of the
//! decisions log (`GET /v1/decisions`, `GET /v1/users/{id}`).

use nudge_engine::campaign::{CampaignStats, DecisionEntry};
use serde_json::{Map, Value, json};

/// Drop reasons the Stats object always lists, 0 when none happened
/// (`shared/spec/interfaces.md`); any other reason the engine recorded is
/// listed beside them.
pub const STATS_DROP_REASONS: [&str; 5] = ["capped", "dnd", "expired", "unreachable", "cutoff"];

/// A campaign's statistics as the "Stats" object of `interfaces.md`, plus
/// what else the engine counts:
///
/// - `scheduled`: messages held by quiet hours, going out later;
/// - `dropped`: always the reasons of [`STATS_DROP_REASONS`], plus every
///   other reason recorded (`paused`, `audience`, `control`, `template`…);
/// - `variants`: `{name: {sent, clicked, converted}}` for the variants that
///   have any activity (the engine lists no others).
pub fn stats_to_json(stats: &CampaignStats) -> Value {
    let mut dropped: Map<String, Value> =
        STATS_DROP_REASONS.iter().map(|reason| ((*reason).to_owned(), Value::from(0))).collect();
    for (reason, count) in &stats.dropped {
        dropped.insert(reason.clone(), Value::from(*count));
    }
    let variants: Map<String, Value> = stats
        .variants
        .iter()
        .map(|(name, v)| {
            let figures = json!({"sent": v.sent, "clicked": v.clicked, "converted": v.converted});
            (name.clone(), figures)
        })
        .collect();
    json!({
        "targeted": stats.targeted,
        "sent": stats.sent,
        "scheduled": stats.scheduled,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "dropped": dropped,
        "control": {"users": stats.control_users, "converted": stats.control_converted},
        "viewed": stats.viewed,
        "clicked": stats.clicked,
        "converted": stats.converted,
        "revenue": stats.revenue,
        "variants": variants,
    })
}

/// One decision of `GET /v1/decisions` and `GET /v1/users/{id}`:
/// `{"ts", "event", "props"}`.
pub fn decision_to_json(decision: &DecisionEntry) -> Value {
    json!({
        "ts": super::timestamp_json(decision.ts_ms),
        "event": decision.name,
        "props": super::ndjson::object(&decision.props),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use nudge_engine::campaign::VariantStats;

    use super::*;

    #[test]
    fn stats_have_every_key_of_the_interface() {
        let stats = CampaignStats {
            targeted: 10,
            sent: 6,
            scheduled: 1,
            delivered: 5,
            failed: 1,
            dropped: BTreeMap::from([("capped".into(), 2), ("paused".into(), 1)]),
            control_users: 1,
            control_converted: 1,
            viewed: 4,
            clicked: 3,
            converted: 2,
            revenue: 99.5,
            variants: BTreeMap::from([(
                "A".into(),
                VariantStats { sent: 6, clicked: 3, converted: 2 },
            )]),
        };
        let json = stats_to_json(&stats);
        assert_eq!(
            json,
            json!({
                "targeted": 10, "sent": 6, "scheduled": 1, "delivered": 5, "failed": 1,
                "dropped": {"capped": 2, "dnd": 0, "expired": 0, "unreachable": 0, "cutoff": 0,
                            "paused": 1},
                "control": {"users": 1, "converted": 1},
                "viewed": 4, "clicked": 3, "converted": 2, "revenue": 99.5,
                "variants": {"A": {"sent": 6, "clicked": 3, "converted": 2}}
            })
        );
        // Empty stats keep the shape: every key of interfaces.md, revenue a float.
        let empty = stats_to_json(&CampaignStats::default());
        let spec = json!({"targeted": 0, "sent": 0, "delivered": 0, "failed": 0,
            "dropped": {"capped": 0, "dnd": 0, "expired": 0, "unreachable": 0, "cutoff": 0},
            "control": {"users": 0, "converted": 0},
            "viewed": 0, "clicked": 0, "converted": 0, "revenue": 0.0,
            "variants": {}});
        for (key, value) in spec.as_object().unwrap() {
            assert_eq!(&empty[key], value, "{key}");
        }
        assert!(empty["revenue"].is_f64());
    }
}
