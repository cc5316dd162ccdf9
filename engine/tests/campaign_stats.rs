//! Campaign statistics from the decision events: a live campaign with two
//! variants, a control group and a conversion window fires for 400 users; the
//! sender's reports, the service worker's views and clicks, and purchases in
//! and out of the window are recorded; every figure is checked against a
//! count made here from what the test itself did.

mod common;

use std::collections::BTreeMap;

use common::NOW;
use nudge_engine::campaign::Attempt;
use nudge_engine::campaign::Delivery;
use nudge_engine::campaign::Engagement;
use nudge_engine::campaign::{Campaign, Conversion, Message, Variant};
use nudge_engine::clock::ManualClock;
use nudge_engine::{Event, Record, Subscription};

const HOUR: i64 = 3_600_000;

#[test]
fn stats_count_what_happened_per_variant_and_for_the_control_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    let users: Vec<String> = (0..400).map(|i| format!("u{i:03}")).collect();
    let subscribe = |u: &String| Record::Subscribe {
        user_id: u.clone(),
        subscription: Subscription {
            endpoint: format!("https://push.example/{u}"),
            p256dh: "k".into(),
            auth: "a".into(),
        },
    };
    engine.ingest(users.iter().map(subscribe).collect()).expect("setup");
    let message = |title: &str| Message { title: title.into(), ..Default::default() };
    let campaign = Campaign {
        id: "ab".into(),
        name: "A/B".into(),
        trigger: Some(r#"on "A""#.into()),
        message: message("default"),
        variants: vec![
            Variant { name: "A".into(), weight: 50, message: message("a") },
            Variant { name: "B".into(), weight: 50, message: message("b") },
        ],
        control_group_percent: 20.0,
        conversion: Some(Conversion {
            event: "Charged".into(),
            within_ms: 24 * HOUR,
            revenue_property: Some("amount".into()),
        }),
        ..Default::default()
    };
    engine.save_campaign(campaign).expect("save");
    engine
        .ingest(users.iter().map(|u| Event::new(u.clone(), "A").at(NOW).into()).collect())
        .expect("fire events");
    let fires = engine.fire_due().expect("fire");
    let mut variant_of: BTreeMap<String, String> = BTreeMap::new();
    let mut delivery_of: BTreeMap<String, String> = BTreeMap::new();
    let mut control: Vec<String> = Vec::new();
    for fire in fires {
        match fire.delivery.expect("a campaign fire has a delivery") {
            Delivery::Send { user_id, variant, delivery_id, .. } => {
                variant_of.insert(user_id.clone(), variant.expect("variants"));
                delivery_of.insert(user_id, delivery_id);
            }
            Delivery::Dropped { user_id, reason: "control" } => control.push(user_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(variant_of.len() + control.len(), 400);
    let index = |u: &str| u[1..].parse::<usize>().expect("number");
    // The sender: every third user's push fails for good, the rest are delivered.
    let items = engine.claim_outbox(1000).expect("claim");
    let reports = items
        .iter()
        .map(|item| {
            let attempt = if index(&item.user_id) % 3 == 0 {
                Attempt::Failed { status: Some(400), reason: "bad".into(), unsubscribe: false }
            } else {
                Attempt::Delivered { status: 201 }
            };
            (item.id, attempt)
        })
        .collect();
    engine.report_outbox(reports).expect("report");
    // The service worker: even users saw it, every fourth clicked (twice: counted once).
    clock.advance(HOUR / 2);
    for (user, delivery) in &delivery_of {
        if index(user) % 2 == 0 {
            assert!(engine.track(delivery, Engagement::View, None).expect("track"));
        }
        if index(user) % 4 == 0 {
            for _ in 0..2 {
                engine.track(delivery, Engagement::Click, Some("checkout")).expect("track");
            }
        }
    }
    assert!(!engine.track("7.ffff", Engagement::Click, None).expect("unknown delivery"));
    assert!(!engine.track("garbage", Engagement::View, None).expect("unknown delivery"));
    // Purchases: every fifth user within the window (twice), every seventh after it.
    let mut charges = Vec::new();
    for user in &users {
        let i = index(user);
        if i % 5 == 0 {
            for hour in [1, 3] {
                let at = NOW + hour * HOUR;
                charges.push(
                    Event::new(user.clone(), "Charged").at(at).prop("amount", i as f64).into(),
                );
            }
        }
        if i % 7 == 0 {
            let late =
                Event::new(user.clone(), "Charged").at(NOW + 48 * HOUR).prop("amount", 1000.0);
            charges.push(late.into());
        }
    }
    engine.ingest(charges).expect("charges");
    clock.set(NOW + 72 * HOUR);
    let stats = engine.campaign_stats("ab").expect("stats").expect("campaign");
    // The expected figures, counted from what was done above.
    let sent: Vec<&String> = variant_of.keys().collect();
    let count = |f: &dyn Fn(usize) -> bool| sent.iter().filter(|u| f(index(u))).count() as u64;
    assert_eq!(stats.targeted, 400);
    assert_eq!(stats.sent, sent.len() as u64);
    assert_eq!(stats.failed, count(&|i| i % 3 == 0));
    assert_eq!(stats.delivered, count(&|i| i % 3 != 0));
    assert_eq!(stats.viewed, count(&|i| i % 2 == 0));
    assert_eq!(stats.clicked, count(&|i| i % 4 == 0));
    assert_eq!(stats.converted, count(&|i| i % 5 == 0));
    let revenue: f64 =
        sent.iter().map(|u| index(u)).filter(|i| i % 5 == 0).map(|i| 2.0 * i as f64).sum();
    assert_eq!(stats.revenue, revenue);
    assert_eq!(stats.control_users, control.len() as u64);
    assert_eq!(stats.dropped.get("control"), Some(&(control.len() as u64)));
    let control_converted = control.iter().filter(|u| index(u) % 5 == 0).count() as u64;
    assert_eq!(stats.control_converted, control_converted);
    for name in ["A", "B"] {
        let of: Vec<usize> =
            variant_of.iter().filter(|(_, v)| *v == name).map(|(u, _)| index(u)).collect();
        let figures = &stats.variants[name];
        assert_eq!(figures.sent, of.len() as u64, "{name}");
        assert_eq!(figures.clicked, of.iter().filter(|i| *i % 4 == 0).count() as u64, "{name}");
        assert_eq!(figures.converted, of.iter().filter(|i| *i % 5 == 0).count() as u64, "{name}");
        assert!(figures.sent > 100, "about half of 320 each: {}", figures.sent);
    }
    assert!(engine.campaign_stats("nope").expect("stats").is_none());
}
