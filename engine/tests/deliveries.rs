//! Campaign fires to queued messages, on a manual clock: the order of the
//! delivery rules, quiet hours that hold a message in the outbox, templates
//! and Safari's rules, the outbox's leases, retries, failures and restarts,
//! test sends, webhooks, and the events every decision records.

mod common;

use common::NOW;
use nudge_engine::campaign::{Action, Attempt, OutboxItem, Target};
use nudge_engine::campaign::{
    Campaign, Caps, DeliverySettings, Message, QuietHours, QuietMode, Variant, Webhook,
};
use nudge_engine::campaign::{Delivery, PUSH_SENT_EVENT};
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, Event, ProfileUpdate, QueryOptions, Record, Subscription};

const MIN: i64 = 60_000;

/// Quiet hours from `from_h:from_m` to `to_h:to_m`.
fn quiet(from_h: i8, from_m: i8, to_h: i8, to_m: i8, mode: QuietMode) -> QuietHours {
    QuietHours {
        from: jiff::civil::time(from_h, from_m, 0, 0),
        to: jiff::civil::time(to_h, to_m, 0, 0),
        mode,
    }
}
const HOUR: i64 = 60 * MIN;

fn campaign(id: &str) -> Campaign {
    Campaign {
        id: id.into(),
        name: id.into(),
        trigger: Some(r#"on "A""#.into()),
        message: Message { title: "hi".into(), body: "there".into(), ..Default::default() },
        ..Default::default()
    }
}

fn subscribe_at(user: &str, endpoint: &str) -> Record {
    Record::Subscribe {
        user_id: user.into(),
        subscription: Subscription {
            endpoint: endpoint.into(),
            p256dh: "k".into(),
            auth: "a".into(),
        },
    }
}

fn subscribe(user: &str) -> Record {
    subscribe_at(user, &format!("https://push.example/{user}"))
}

fn profile(user: &str, key: &str, value: &str) -> Record {
    Record::Profile(ProfileUpdate {
        user_id: user.into(),
        set: vec![(key.into(), value.into())],
        ..Default::default()
    })
}

/// Ingests one "A" per user and returns each fire's delivery decision.
fn deliver(engine: &Engine, users: &[&str]) -> Vec<Delivery> {
    let now = engine.clock().now_ms();
    engine
        .ingest(users.iter().map(|u| Event::new(*u, "A").at(now).into()).collect())
        .expect("ingest");
    engine.fire_due().expect("fire").into_iter().filter_map(|f| f.delivery).collect()
}

fn reasons(engine: &Engine, deliveries: &[Delivery]) -> Vec<(String, String)> {
    let now = engine.clock().now_ms();
    let mut out: Vec<_> = deliveries
        .iter()
        .map(|d| match d {
            Delivery::Send { user_id, variant, send_at_ms, .. } if *send_at_ms > now => {
                (user_id.clone(), format!("delay {send_at_ms}"))
            }
            Delivery::Send { user_id, variant, .. } => {
                (user_id.clone(), format!("send {}", variant.clone().unwrap_or_default()))
            }
            Delivery::Dropped { user_id, reason } => (user_id.clone(), (*reason).to_owned()),
        })
        .collect();
    out.sort();
    out
}

fn users_of(engine: &Engine, query: &str, now: i64) -> Vec<String> {
    let options = QueryOptions { now_ms: Some(now), limit: Some(100), ..Default::default() };
    engine.query(query, &options).expect("query").users
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
            profile("bob", "timezone", "America/New_York"),
            // cat already had a push today.
            Event::new("cat", PUSH_SENT_EVENT).at(NOW).into(),
        ])
        .expect("setup");
    engine
        .save_delivery_settings(&DeliverySettings {
            caps: Caps { per_day: Some(1), per_week: None },
            ..Default::default()
        })
        .expect("settings");
    let mut night = campaign("night");
    night.dnd = Some(quiet(19, 0, 7, 0, QuietMode::Delay));
    night.variants = vec![
        Variant { name: "A".into(), weight: 1, message: Message::default() },
        Variant { name: "B".into(), weight: 0, message: Message::default() },
    ];
    engine.save_campaign(night).expect("save");
    let deliveries = deliver(&engine, &["ann", "bob", "cat", "dan"]);
    // ann: UTC 00:00 is quiet (19:00-07:00), held to 07:00 UTC; bob: 20:00 in New York,
    // held to 07:00 there (12:00 UTC); cat: already capped for the day it would go out;
    // dan: no subscription.
    assert_eq!(
        reasons(&engine, &deliveries),
        [
            ("ann".into(), format!("delay {}", NOW + 7 * HOUR)),
            ("bob".into(), format!("delay {}", NOW + 12 * HOUR)),
            ("cat".into(), "capped".into()),
            ("dan".into(), "unreachable".into()),
        ]
    );
    // A held message counts toward the caps of the day it goes out: ann is capped now.
    engine.save_campaign(campaign("day")).expect("save");
    engine.remove_campaign("night").expect("remove");
    assert_eq!(reasons(&engine, &deliver(&engine, &["ann"])), [("ann".into(), "capped".into())]);
    engine
        .save_delivery_settings(&DeliverySettings {
            caps: Caps { per_day: Some(5), per_week: None },
            ..Default::default()
        })
        .expect("settings");
    assert_eq!(reasons(&engine, &deliver(&engine, &["ann"])), [("ann".into(), "send ".into())]);
    // A campaign's own caps override the global ones.
    engine
        .save_campaign(Campaign {
            caps: Some(Caps { per_day: Some(1), per_week: None }),
            ..campaign("day")
        })
        .expect("save");
    assert_eq!(reasons(&engine, &deliver(&engine, &["ann"])), [("ann".into(), "capped".into())]);
    engine.save_campaign(campaign("day")).expect("save");
    // Paused, out of the audience, or in the control group: dropped with that reason.
    engine.set_campaign_paused("day", true).expect("pause");
    assert_eq!(reasons(&engine, &deliver(&engine, &["ann"])), [("ann".into(), "paused".into())]);
    engine.set_campaign_paused("day", false).expect("resume");
    let mut picky = campaign("day");
    picky.audience = Some(r#"user.timezone == "America/New_York""#.into());
    engine.save_campaign(picky).expect("save");
    assert_eq!(
        reasons(&engine, &deliver(&engine, &["ann", "bob"])),
        [("ann".into(), "audience".into()), ("bob".into(), "send ".into())]
    );
    engine
        .save_campaign(Campaign { control_group_percent: 100.0, ..campaign("day") })
        .expect("save");
    assert_eq!(reasons(&engine, &deliver(&engine, &["bob"])), [("bob".into(), "control".into())]);
    // Quiet hours that discard.
    let discard = Campaign { dnd: Some(quiet(19, 0, 7, 0, QuietMode::Discard)), ..campaign("day") };
    engine.save_campaign(discard).expect("save");
    assert_eq!(reasons(&engine, &deliver(&engine, &["bob"])), [("bob".into(), "dnd".into())]);
    // Every decision is a queryable event of the user.
    let dropped = users_of(
        &engine,
        r#"did "$push_dropped" where (campaign == "day" and reason == "control")"#,
        NOW,
    );
    assert_eq!(dropped, ["bob"]);
    assert_eq!(
        users_of(
            &engine,
            r#"did "$push_delayed" where (campaign == "night" and reason == "dnd")"#,
            NOW
        ),
        ["ann", "bob"]
    );
    // Targeted: past the pause and audience checks.
    assert_eq!(
        users_of(&engine, r#"did "$campaign_fired" where campaign == "night""#, NOW),
        ["ann", "bob", "cat", "dan"]
    );
}

#[test]
fn quiet_hours_hold_a_message_in_the_outbox_until_they_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    engine.ingest(vec![subscribe("ann")]).expect("setup");
    engine
        .save_delivery_settings(&DeliverySettings {
            dnd: Some(quiet(22, 0, 6, 30, QuietMode::Delay)),
            ..Default::default()
        })
        .expect("global quiet hours");
    engine.save_campaign(campaign("c")).expect("save");
    let deliveries = deliver(&engine, &["ann"]);
    assert_eq!(
        reasons(&engine, &deliveries),
        [("ann".into(), format!("delay {}", NOW + 390 * MIN))]
    );
    assert_eq!(engine.outbox_len(), 1);
    assert!(engine.claim_outbox(10).expect("claim").is_empty(), "held until 06:30");
    clock.set(NOW + 390 * MIN - 1);
    assert!(engine.claim_outbox(10).expect("claim").is_empty(), "still held a millisecond before");
    clock.set(NOW + 390 * MIN);
    let items = engine.claim_outbox(10).expect("claim");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].not_before_ms, NOW + 390 * MIN);
    // The send is recorded at the time it goes out.
    assert!(users_of(&engine, r#"did "$push_sent" in last 1h"#, NOW).is_empty());
    assert_eq!(users_of(&engine, r#"did "$push_sent" in last 1h"#, NOW + 7 * HOUR), ["ann"]);
}

#[test]
fn messages_are_personalized_and_safari_gets_its_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    engine
        .ingest(vec![
            subscribe_at("ann", "https://fcm.googleapis.com/fcm/send/ann"),
            subscribe_at("ann", "https://web.push.apple.com/ann"),
            profile("ann", "first_name", "Ann"),
        ])
        .expect("setup");
    let personal = Campaign {
        trigger: Some(r#"on "Added To Cart""#.into()),
        message: Message {
            title: "Still thinking about {{ event.product_name }}?".into(),
            body:
                "Hi {{ user.first_name | default('there') }}, {{ user.last | default('friend') }}"
                    .into(),
            url: Some("https://shop.example/cart/{{ event.cart_id }}".into()),
            icon: Some("https://shop.example/i.png".into()),
            actions: vec![Action {
                title: "Checkout".into(),
                url: "https://shop.example/pay".into(),
            }],
            ttl_ms: Some(HOUR),
            urgency: Some("high".into()),
            topic: Some("cart".into()),
            ..Default::default()
        },
        ..campaign("cart")
    };
    engine.save_campaign(personal).expect("save");
    let cart = Event::new("ann", "Added To Cart")
        .at(NOW)
        .prop("product_name", "Red Shoes")
        .prop("cart_id", "c9");
    engine.ingest(vec![cart.into()]).expect("cart");
    engine.fire_due().expect("fire");
    let mut items = engine.claim_outbox(10).expect("claim");
    items.sort_by_key(
        |i| matches!(&i.target, Target::WebPush { endpoint, .. } if endpoint.contains("apple")),
    );
    assert_eq!(items.len(), 2);
    let (chrome, safari) = (&items[0].notification, &items[1].notification);
    assert_eq!(chrome.title, "Still thinking about Red Shoes?");
    assert_eq!(chrome.body, "Hi Ann, friend");
    assert_eq!(chrome.url.as_deref(), Some("https://shop.example/cart/c9"));
    assert_eq!(chrome.icon.as_deref(), Some("https://shop.example/i.png"));
    assert_eq!((chrome.urgency.as_deref(), chrome.topic.as_deref()), (Some("high"), Some("cart")));
    assert_eq!(chrome.actions.len(), 1);
    assert_eq!(
        (safari.icon.as_ref(), safari.actions.len()),
        (None, 0),
        "Safari: no icon, no actions"
    );
    assert_eq!(safari.url, chrome.url);
    assert_eq!(items[0].delivery_id, items[1].delivery_id, "one delivery, two devices");
    assert_eq!(items[0].expires_at_ms, NOW + HOUR, "TTL");
    assert_eq!(items[0].ttl_seconds(NOW + 30 * MIN), 1800);
    // Without a deeplink Safari gets nothing, and that is recorded.
    let no_link = Campaign {
        message: Message { title: "t".into(), body: "b".into(), ..Default::default() },
        ..campaign("nolink")
    };
    engine.save_campaign(no_link).expect("save");
    deliver(&engine, &["ann"]);
    let nolink: Vec<OutboxItem> = engine
        .claim_outbox(10)
        .expect("claim")
        .into_iter()
        .filter(|i| i.campaign == "nolink")
        .collect();
    assert_eq!(nolink.len(), 1);
    assert!(
        matches!(&nolink[0].target, Target::WebPush { endpoint, .. } if endpoint.contains("fcm"))
    );
    assert_eq!(
        users_of(&engine, r#"did "$push_failed" where reason == "safari_needs_url""#, NOW),
        ["ann"]
    );
    // A template that fails at render time drops the message with the reason.
    let broken = Campaign {
        message: Message { title: "{{ \"a\" - 1 }}".into(), ..Default::default() },
        ..campaign("broken")
    };
    engine.save_campaign(broken).expect("saves: the syntax is fine");
    let decided = reasons(&engine, &deliver(&engine, &["ann"]));
    assert!(decided.contains(&("ann".into(), "template".into())), "{decided:?}");
    // A template with bad syntax is refused when saved, naming the field.
    let bad = Campaign {
        message: Message { body: "Hi {{ user.name".into(), ..Default::default() },
        ..campaign("bad")
    };
    let err = engine.save_campaign(bad).expect_err("refused");
    assert!(err.to_string().contains("message.body"), "{err}");
    assert!(engine.campaign("bad").is_none(), "nothing stored");
}

#[test]
fn the_outbox_leases_retries_fails_and_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let (first, second) = {
        let engine = common::open(dir.path(), &clock);
        engine.ingest(vec![subscribe("ann"), subscribe("bob")]).expect("setup");
        let hooked = Campaign {
            webhook: Some(Webhook {
                url: "https://hooks.example/nudge".into(),
                secret: "s3cret".into(),
            }),
            message: Message { ttl_ms: Some(10 * MIN), ..campaign("c").message },
            ..campaign("c")
        };
        engine.save_campaign(hooked).expect("save");
        deliver(&engine, &["ann", "bob"]);
        let items = engine.claim_outbox(100).expect("claim");
        assert_eq!(items.len(), 4, "a push and a webhook per user");
        let webhook = items.iter().find(|i| matches!(i.target, Target::Webhook { .. }));
        assert!(
            matches!(&webhook.expect("webhook").target, Target::Webhook { secret, .. } if secret == "s3cret")
        );
        assert!(engine.claim_outbox(100).expect("claim").is_empty(), "leased");
        // Every item fails for now; ann's push asks for 2 minutes.
        let reports = items
            .iter()
            .map(|i| {
                let after = (i.user_id == "ann" && matches!(i.target, Target::WebPush { .. }))
                    .then_some(2 * MIN);
                (i.id, Attempt::Retry { status: Some(503), reason: "busy".into(), after_ms: after })
            })
            .collect();
        engine.report_outbox(reports).expect("report");
        assert!(engine.claim_outbox(100).expect("claim").is_empty(), "waiting for the retry");
        clock.advance(2 * MIN);
        let again = engine.claim_outbox(100).expect("claim");
        assert_eq!(again.len(), 4, "Retry-After of 2 minutes and backoff of about 1 s");
        assert!(again.iter().all(|i| i.attempts == 1));
        engine.snapshot().expect("snapshot");
        (again[0].id, again[1].id)
    };
    // Reopened: the items are still queued, leases are gone, nothing is decided again.
    let engine = common::open(dir.path(), &clock);
    assert_eq!(engine.outbox_len(), 4);
    assert!(engine.fire_due().expect("fire").is_empty());
    let items = engine.claim_outbox(100).expect("claim");
    assert_eq!(items.len(), 4);
    let by_id = |id| items.iter().find(|i| i.id == id).expect("item").clone();
    let (delivered, gone) = (by_id(first), by_id(second));
    let rest: Vec<&OutboxItem> = items.iter().filter(|i| i.id != first && i.id != second).collect();
    let mut reports = vec![
        (delivered.id, Attempt::Delivered { status: 201 }),
        (gone.id, Attempt::Failed { status: Some(410), reason: "gone".into(), unsubscribe: true }),
    ];
    // The others retry past their TTL (10 minutes from the fire): failed as expired.
    for item in &rest {
        reports.push((
            item.id,
            Attempt::Retry { status: Some(500), reason: "down".into(), after_ms: Some(HOUR) },
        ));
    }
    engine.report_outbox(reports).expect("report");
    assert_eq!(engine.outbox_len(), 0);
    let now = engine.clock().now_ms();
    assert_eq!(
        users_of(&engine, r#"did "$push_delivered" or did "$webhook_delivered""#, now),
        std::slice::from_ref(&delivered.user_id)
    );
    let expired = users_of(
        &engine,
        r#"did "$push_failed" where reason starts with "expired" or did "$webhook_failed" where reason starts with "expired""#,
        now,
    );
    assert!(!expired.is_empty());
    if let Target::WebPush { endpoint, .. } = &gone.target {
        assert!(
            engine.read().state.store.subscriptions.by_endpoint(endpoint).is_none(),
            "410 unsubscribes"
        );
    }
    // Reports about settled or unknown items change nothing.
    engine
        .report_outbox(vec![
            (delivered.id, Attempt::Delivered { status: 201 }),
            (42, Attempt::Delivered { status: 201 }),
        ])
        .expect("report");
    assert_eq!(
        users_of(&engine, r#"did "$push_delivered" at least 2 times"#, now),
        Vec::<String>::new()
    );
}

#[test]
fn test_sends_skip_the_rules_and_stay_out_of_caps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    engine.ingest(vec![subscribe("ann"), profile("ann", "first_name", "Ann")]).expect("setup");
    engine
        .save_delivery_settings(&DeliverySettings {
            caps: Caps { per_day: Some(1), per_week: None },
            ..Default::default()
        })
        .expect("settings");
    let held_out = Campaign {
        control_group_percent: 100.0,
        audience: Some(r#"user.first_name == "Zed""#.into()),
        message: Message { title: "Hi {{ user.first_name }}".into(), ..Default::default() },
        ..campaign("c")
    };
    engine.save_campaign(held_out).expect("save");
    let sent = engine.test_send("c", "ann").expect("test send").expect("campaign exists");
    assert!(matches!(sent, Delivery::Send { .. }), "{sent:?}");
    let sent_again = engine.test_send("c", "ann").expect("test send").expect("campaign exists");
    assert!(matches!(sent_again, Delivery::Send { .. }), "caps do not apply to tests");
    let items = engine.claim_outbox(10).expect("claim");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.test && i.notification.title == "Hi Ann"));
    assert_eq!(engine.test_send("nope", "ann").expect("no campaign"), None);
    let err = engine.test_send("c", "nobody").expect_err("no such user");
    assert!(err.to_string().contains("user_id"), "{err}");
    // Test sends are not counted: the real campaign still has its one send for today.
    engine.save_campaign(campaign("real")).expect("save");
    assert_eq!(
        reasons(&engine, &deliver(&engine, &["ann"])).last().cloned(),
        Some(("ann".into(), "send ".into()))
    );
    let stats = engine.campaign_stats("c").expect("stats").expect("campaign");
    assert_eq!((stats.sent, stats.targeted), (0, 0), "tests stay out of the stats");
}

#[test]
fn an_abandoned_cart_sends_once_even_when_the_process_dies_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let rescue = Campaign {
        trigger: Some(
            r#"on "Added To Cart" unless "Charged" where cart_id == event.cart_id within 10m"#
                .into(),
        ),
        message: Message {
            title: "Cart {{ event.cart_id }}".into(),
            url: Some("https://shop.example/cart/{{ event.cart_id }}".into()),
            ..Default::default()
        },
        ..campaign("rescue")
    };
    let delivery_id = {
        let engine = common::open(dir.path(), &clock);
        engine.ingest(vec![subscribe("ann"), subscribe("bob")]).expect("setup");
        engine.save_campaign(rescue).expect("save");
        let cart = |u: &str, id: &str| Event::new(u, "Added To Cart").at(NOW).prop("cart_id", id);
        engine.ingest(vec![cart("ann", "c1").into(), cart("bob", "c2").into()]).expect("carts");
        clock.advance(5 * MIN);
        // bob pays for his cart; ann pays for a different one, which does not count.
        let paid =
            |u: &str, id: &str| Event::new(u, "Charged").at(NOW + 5 * MIN).prop("cart_id", id);
        engine.ingest(vec![paid("bob", "c2").into(), paid("ann", "other").into()]).expect("paid");
        assert!(engine.fire_due().expect("fire").is_empty(), "not due before t+10m");
        clock.set(NOW + 10 * MIN);
        let fires = engine.fire_due().expect("fire");
        assert_eq!(fires.len(), 1);
        let Some(Delivery::Send { user_id, delivery_id, .. }) = &fires[0].delivery else {
            panic!("{fires:?}")
        };
        assert_eq!(user_id, "ann");
        delivery_id.clone()
        // The process dies here: decided and queued, never sent.
    };
    let engine = common::open(dir.path(), &clock);
    clock.advance(MIN);
    assert!(engine.fire_due().expect("fire").is_empty(), "never decided twice");
    let items = engine.claim_outbox(10).expect("claim");
    assert_eq!(items.len(), 1, "the queued message survived");
    assert_eq!(items[0].delivery_id, delivery_id);
    assert_eq!(items[0].notification.title, "Cart c1");
    let sent = users_of(&engine, r#"did "$push_sent" where campaign == "rescue""#, NOW + HOUR);
    assert_eq!(sent, ["ann"]);
}
