//! One user through the engine API (`Engine::user`, behind `GET /v1/users/{id}`):
//! profile, subscriptions with the time they were stored, the latest events
//! newest first, the saved segments the user is in, and none of it lost
//! across a snapshot and a replay.

mod common;

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::{Event, ProfileUpdate, Record, Subscription, Value};

fn subscribe(user: &str, endpoint: &str) -> Record {
    Record::Subscribe {
        user_id: user.into(),
        subscription: Subscription {
            endpoint: endpoint.into(),
            p256dh: "key".into(),
            auth: "secret".into(),
        },
    }
}

#[test]
fn a_user_view_holds_profile_subscriptions_latest_events_and_segments_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine
        .ingest(vec![
            Record::Profile(ProfileUpdate {
                user_id: "ann".into(),
                set: vec![("city".into(), "Delhi".into())],
                ..Default::default()
            }),
            subscribe("ann", "https://push.example/a1"),
            Event::new("ann", "Product Viewed").at(NOW - 3000).prop("sku", "s1").into(),
            Event::new("bob", "Product Viewed").at(NOW - 2500).into(),
        ])
        .expect("ingest");
    clock.advance(60_000);
    engine
        .ingest(vec![
            subscribe("ann", "https://push.example/a2"),
            Event::new("ann", "Added To Cart").at(NOW - 1000).prop("cart_id", "c1").into(),
        ])
        .expect("ingest");
    engine.save_segment("delhi", r#"user.city == "Delhi""#).expect("save");
    engine.save_segment("carters", r#"did "Added To Cart""#).expect("save");
    engine
        .save_segment("bobs", r#"did "Product Viewed" and not did "Added To Cart""#)
        .expect("save");

    let check = |engine: &nudge_engine::Engine| {
        let view = engine.user("ann", None).expect("read").expect("known");
        assert_eq!(view.profile, [("city".to_owned(), Value::from("Delhi"))]);
        let subs: Vec<(&str, i64)> =
            view.subscriptions.iter().map(|s| (s.endpoint.as_str(), s.created_ms)).collect();
        assert_eq!(
            subs,
            [("https://push.example/a1", NOW), ("https://push.example/a2", NOW + 60_000)]
        );
        let events: Vec<(&str, i64)> =
            view.events.iter().map(|e| (e.name.as_str(), e.ts_ms)).collect();
        assert_eq!(events, [("Added To Cart", NOW - 1000), ("Product Viewed", NOW - 3000)]);
        assert_eq!(view.events[0].props, [("cart_id".to_owned(), Value::from("c1"))]);
        assert_eq!(view.event_count, 2);
        assert_eq!(view.segments.segments, ["carters", "delhi"]);
        assert!(engine.user("nobody", None).expect("read").is_none());
        let bob = engine.user("bob", None).expect("read").expect("known");
        assert!(bob.profile.is_empty() && bob.subscriptions.is_empty());
        assert_eq!(bob.segments.segments, ["bobs"]);
    };
    check(&engine);
    // From a snapshot (subscriptions read in place) and from a replay of the log.
    engine.snapshot().expect("snapshot");
    drop(engine);
    let engine = open(dir.path(), &clock);
    assert!(engine.open_report().snapshot_position.is_some());
    check(&engine);
    drop(engine);
    let replayed = nudge_engine::Engine::open(
        dir.path(),
        nudge_engine::EngineOptions { load_snapshot: false, ..options(&clock) },
    )
    .expect("open");
    check(&replayed);
}
