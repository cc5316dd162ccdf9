//! Campaign definitions: validation names the field at fault and stores
//! nothing; saved campaigns, their pause state and a live campaign's trigger
//! survive replay and snapshots; removing a campaign removes its trigger.

mod common;

use std::sync::Arc;

use common::NOW;
use jiff::civil::{Weekday, date, time};
use nudge_engine::campaign::{
    Campaign, Conversion, Every, IfPassed, Message, QuietHours, QuietMode, Recurring, Schedule,
    ScheduleZone, Variant, Webhook,
};
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, EngineOptions, Error};

fn live() -> Campaign {
    Campaign {
        id: "cart".into(),
        name: "Cart rescue".into(),
        trigger: Some(r#"on "Added To Cart" unless "Charged" within 10m"#.into()),
        audience: Some(r#"did "Charged" in last 90d"#.into()),
        message: Message {
            title: "Still thinking about {{ event.product_name }}?".into(),
            body: "Hi {{ user.first_name | default('there') }}".into(),
            url: Some("https://shop.example/cart".into()),
            ttl_ms: Some(86_400_000),
            urgency: Some("normal".into()),
            topic: Some("cart".into()),
            ..Default::default()
        },
        variants: vec![
            Variant { name: "A".into(), weight: 50, message: Message::default() },
            Variant { name: "B".into(), weight: 50, message: Message::default() },
        ],
        control_group_percent: 10.0,
        dnd: Some(QuietHours {
            from: time(21, 0, 0, 0),
            to: time(9, 0, 0, 0),
            mode: QuietMode::Delay,
        }),
        conversion: Some(Conversion {
            event: "Charged".into(),
            within_ms: 86_400_000,
            revenue_property: Some("amount".into()),
        }),
        ..Default::default()
    }
}

fn scheduled() -> Campaign {
    Campaign {
        id: "digest".into(),
        name: "Weekly digest".into(),
        audience: Some(r#"did "App Launched" in last 30d"#.into()),
        schedule: Some(Schedule {
            at: vec![date(2026, 12, 1).at(9, 0, 0, 0)],
            recurring: Some(Recurring {
                every: Every::Week,
                time: time(9, 0, 0, 0),
                days: vec![Weekday::Monday],
            }),
            timezone: ScheduleZone::User,
            if_passed: IfPassed::NextDay,
            ..Default::default()
        }),
        message: Message { title: "This week".into(), body: "…".into(), ..Default::default() },
        ..Default::default()
    }
}

fn field_of(error: Error) -> String {
    match error {
        Error::InvalidInput { field, .. } | Error::Query { field, .. } => field,
        other => panic!("not an input error: {other}"),
    }
}

#[test]
fn bad_campaigns_are_refused_with_the_field_at_fault_and_nothing_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = common::open(dir.path(), &ManualClock::new(NOW));
    let cases: Vec<(Campaign, &str)> = vec![
        (Campaign { trigger: None, audience: None, ..live() }, "trigger"),
        (Campaign { schedule: scheduled().schedule, ..live() }, "schedule"),
        (Campaign { trigger: Some(r#"on "A" unless "B""#.into()), ..live() }, "trigger"),
        (Campaign { audience: Some("did".into()), ..live() }, "audience"),
        (Campaign { control_group_percent: 101.0, ..live() }, "control_group_percent"),
        (Campaign { id: String::new(), ..live() }, "id"),
        (
            Campaign {
                conversion: Some(Conversion {
                    event: String::new(),
                    within_ms: 1,
                    revenue_property: None,
                }),
                ..live()
            },
            "conversion.event",
        ),
        (
            Campaign {
                webhook: Some(Webhook { url: "ftp://x.example/".into(), secret: "s".into() }),
                ..live()
            },
            "webhook.url",
        ),
        (
            Campaign {
                message: Message { urgency: Some("asap".into()), ..live().message },
                ..live()
            },
            "message.urgency",
        ),
        (
            Campaign {
                message: Message { topic: Some("no spaces allowed".into()), ..live().message },
                ..live()
            },
            "message.topic",
        ),
        (
            Campaign {
                variants: vec![Variant {
                    name: "A".into(),
                    weight: 0,
                    message: Message::default(),
                }],
                ..live()
            },
            "variants",
        ),
    ];
    for (campaign, field) in cases {
        let error = engine.save_campaign(campaign).expect_err(field);
        assert_eq!(field_of(error), field);
    }
    let mut bad_zone = scheduled();
    if let Some(schedule) = bad_zone.schedule.as_mut() {
        schedule.timezone = ScheduleZone::Named("Mars/Olympus".into());
    }
    assert_eq!(field_of(engine.save_campaign(bad_zone).expect_err("zone")), "schedule.timezone");
    let mut daily_on_days = scheduled();
    if let Some(recurring) = daily_on_days.schedule.as_mut().and_then(|s| s.recurring.as_mut()) {
        recurring.every = Every::Day;
    }
    let error = engine.save_campaign(daily_on_days).expect_err("days");
    assert_eq!(field_of(error), "schedule.recurring.days");
    let mut ends_first = scheduled();
    if let Some(schedule) = ends_first.schedule.as_mut() {
        (schedule.start_ms, schedule.end_ms) = (Some(NOW), Some(NOW - 1));
    }
    assert_eq!(field_of(engine.save_campaign(ends_first).expect_err("end")), "schedule.end");
    assert!(engine.campaigns().is_empty());
    assert!(engine.triggers().is_empty());
}

#[test]
fn campaigns_pause_state_and_triggers_survive_replay_and_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    for snapshot_on_close in [false, true] {
        let dir = dir.path().join(format!("snapshot-{snapshot_on_close}"));
        let options = || EngineOptions {
            clock: Arc::new(clock.clone()),
            snapshot_on_close,
            ..Default::default()
        };
        {
            let engine = Engine::open(&dir, options()).expect("open");
            engine.save_campaign(live()).expect("live");
            engine.save_campaign(scheduled()).expect("scheduled");
            assert!(engine.set_campaign_paused("digest", true).expect("pause").is_some());
            assert!(engine.set_campaign_paused("nope", true).expect("pause").is_none());
        }
        let engine = Engine::open(&dir, options()).expect("reopen");
        let campaigns = engine.campaigns();
        assert_eq!(campaigns.len(), 2);
        let cart = engine.campaign("cart").expect("cart");
        assert_eq!(cart.campaign, live(), "stored field for field");
        assert!(!cart.paused);
        assert!(engine.campaign("digest").expect("digest").paused);
        assert_eq!(
            engine.triggers(),
            [("campaign:cart".to_string(), live().trigger.unwrap_or_default())]
        );
        // Saving again keeps the pause state; removing drops the trigger too.
        engine.save_campaign(scheduled()).expect("again");
        assert!(engine.campaign("digest").expect("digest").paused);
        assert!(engine.remove_campaign("cart").expect("remove").is_some());
        assert!(engine.campaign("cart").is_none());
        assert!(engine.triggers().is_empty());
        assert!(engine.remove_campaign("cart").expect("remove").is_none());
    }
}
