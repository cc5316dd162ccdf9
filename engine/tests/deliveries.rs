//! Campaign fires to delivery decisions: paused, audience, reachability,
//! control group, quiet hours in the user's time zone, caps counted from
//! `$push_sent` events, variants, and the events every decision records.

mod common;

use common::NOW;
use nudge_engine::campaign::{Campaign, Message, Variant};
use nudge_engine::clock::ManualClock;
use nudge_engine::delivery::{Delivery, DeliverySettings, PUSH_SENT_EVENT};
use nudge_engine::policy::Caps;
use nudge_engine::{Engine, Event, ProfileUpdate, QueryOptions, Record, Subscription};

const MIN: i64 = 60_000;

fn campaign(id: &str) -> Campaign {
    Campaign {
        id: id.into(),
        name: id.into(),
        trigger: Some(r#"on "A""#.into()),
        message: Message { title: "hi".into(), body: "there".into(), ..Default::default() },
        ..Default::default()
    }
}

fn subscribe(user: &str) -> Record {
    Record::Subscribe {
        user_id: user.into(),
        subscription: Subscription {
            endpoint: format!("https://push.example/{user}"),
            p256dh: "k".into(),
            auth: "a".into(),
        },
    }
}

fn timezone(user: &str, zone: &str) -> Record {
    Record::Profile(ProfileUpdate {
        user_id: user.into(),
        set: vec![("timezone".into(), zone.into())],
        ..Default::default()
    })
}

/// Ingests one "A" per user and decides the fires and their deliveries.
fn deliver(engine: &Engine, users: &[&str], settings: &DeliverySettings) -> Vec<Delivery> {
    let now = engine.clock().now_ms();
    engine
        .ingest(users.iter().map(|u| Event::new(*u, "A").at(now).into()).collect())
        .expect("ingest");
    let fires = engine.fire_due().expect("fire");
    engine.decide_deliveries(&fires, settings).expect("decide")
}

fn reasons(deliveries: &[Delivery]) -> Vec<(String, String)> {
    let mut out: Vec<_> = deliveries
        .iter()
        .map(|d| match d {
            Delivery::Send { user_id, variant, .. } => {
                (user_id.clone(), format!("send {}", variant.clone().unwrap_or_default()))
            }
            Delivery::Delay { user_id, until_ms, .. } => {
                (user_id.clone(), format!("delay {until_ms}"))
            }
            Delivery::Dropped { user_id, reason, .. } => (user_id.clone(), (*reason).to_owned()),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_rule_decides_in_order_and_every_decision_is_an_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW); // 2026-11-01T00:00Z: 05:30 in Kolkata, 20:00 in New York
    let engine = common::open(dir.path(), &clock);
    engine
        .ingest(vec![
            subscribe("ann"),
            subscribe("bob"),
            subscribe("cat"),
            timezone("bob", "America/New_York"),
            // cat already had a push today.
            Event::new("cat", PUSH_SENT_EVENT).at(NOW).into(),
        ])
        .expect("setup");
    let mut night = campaign("night");
    night.dnd = Some(("19:00".into(), "07:00".into(), "delay".into()));
    night.variants = vec![
        Variant { name: "A".into(), weight: 1, message: Message::default() },
        Variant { name: "B".into(), weight: 0, message: Message::default() },
    ];
    engine.save_campaign(night).expect("save");
    let settings =
        DeliverySettings { caps: Caps { per_day: Some(1), per_week: None }, ..Default::default() };
    let deliveries = deliver(&engine, &["ann", "bob", "cat", "dan"], &settings);
    // ann: UTC 00:00 is quiet (19:00-07:00), held to 07:00 UTC; bob: 20:00 in New York,
    // held to 07:00 there (12:00 UTC); cat: the same hours; dan: no subscription.
    assert_eq!(
        reasons(&deliveries),
        [
            ("ann".into(), format!("delay {}", NOW + 7 * 60 * MIN)),
            ("bob".into(), format!("delay {}", NOW + 12 * 60 * MIN)),
            ("cat".into(), format!("delay {}", NOW + 7 * 60 * MIN)),
            ("dan".into(), "unreachable".into()),
        ]
    );
    // Without quiet hours: ann sends variant A (B has no weight), cat is capped.
    engine.save_campaign(Campaign { id: "day".into(), ..campaign("day") }).expect("save");
    engine.remove_campaign("night").expect("remove");
    let deliveries = deliver(&engine, &["ann", "cat"], &settings);
    assert_eq!(
        reasons(&deliveries),
        [("ann".into(), "send ".into()), ("cat".into(), "capped".into())]
    );
    // Paused, out of the audience, or in the control group: dropped with that reason.
    engine.set_campaign_paused("day", true).expect("pause");
    assert_eq!(reasons(&deliver(&engine, &["ann"], &settings)), [("ann".into(), "paused".into())]);
    engine.set_campaign_paused("day", false).expect("resume");
    let mut picky = campaign("day");
    picky.audience = Some(r#"user.timezone == "America/New_York""#.into());
    engine.save_campaign(picky).expect("save");
    assert_eq!(
        reasons(&deliver(&engine, &["ann", "bob"], &DeliverySettings::default())),
        [("ann".into(), "audience".into()), ("bob".into(), "send ".into())]
    );
    engine
        .save_campaign(Campaign { control_group_percent: 100.0, ..campaign("day") })
        .expect("save");
    assert_eq!(
        reasons(&deliver(&engine, &["bob"], &DeliverySettings::default())),
        [("bob".into(), "control".into())]
    );
    // Every decision is a queryable event of the user.
    let options = QueryOptions { now_ms: Some(NOW), limit: Some(10), ..Default::default() };
    let dropped = engine
        .query(r#"did "$push_dropped" where (campaign == "day" and reason == "control")"#, &options)
        .expect("query");
    assert_eq!(dropped.users, ["bob"]);
    let fired =
        engine.query(r#"did "$campaign_fired" where campaign == "day""#, &options).expect("query");
    assert_eq!(fired.users, ["ann", "bob"]);
}
