//! What's measured: how fast a scheduled campaign decides its audience, with
//! durable records. 100,000 users with a push subscription and a `timezone`
//! in one of four zones; a one-off send at 09:00 local with a template,
//! quiet hours, caps and a 10 % control group. The clock is stepped through
//! the four zones' 09:00s and `fire_due` runs each zone's occurrence: every
//! user is decided, their events and outbox items written in batches of
//! 1000 users with one fdatasync each. Reported: decisions per second, and
//! the outbox size it leaves.
//!
//! Run with: `cargo bench -p nudge-benches --bench campaign_fanout`

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use mimalloc::MiMalloc;
use nudge_engine::campaign::{
    Campaign, Caps, DeliverySettings, IfPassed, Message, QuietHours, QuietMode, Schedule,
    ScheduleZone,
};
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, EngineOptions, ProfileUpdate, Record, Subscription};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// 2026-11-01T00:00:00Z.
const NOW: i64 = 1_793_491_200_000;
const USERS: usize = 100_000;
const ZONES: [&str; 4] = ["Asia/Kolkata", "Europe/Berlin", "UTC", "America/New_York"];

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let options = EngineOptions {
        clock: Arc::new(clock.clone()),
        snapshot_on_close: false,
        ..Default::default()
    };
    let engine = Engine::open(dir.path(), options).expect("open");
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(2500) {
        let records: Vec<Record> = chunk
            .iter()
            .flat_map(|&i| {
                let user = format!("u{i}");
                [
                    Record::Profile(ProfileUpdate {
                        user_id: user.clone(),
                        set: vec![
                            ("timezone".into(), ZONES[i % ZONES.len()].into()),
                            ("first_name".into(), format!("Name{i}").into()),
                        ],
                        ..Default::default()
                    }),
                    Record::Subscribe {
                        user_id: user.clone(),
                        subscription: Subscription {
                            endpoint: format!("https://push.example/{user}"),
                            p256dh: "k".into(),
                            auth: "a".into(),
                        },
                    },
                ]
            })
            .collect();
        engine.ingest(records).expect("setup");
    }
    engine
        .save_delivery_settings(&DeliverySettings {
            caps: Caps { per_day: Some(3), per_week: Some(10) },
            dnd: Some(QuietHours {
                from: jiff::civil::time(22, 0, 0, 0),
                to: jiff::civil::time(7, 0, 0, 0),
                mode: QuietMode::Delay,
            }),
            ..Default::default()
        })
        .expect("settings");
    let campaign = Campaign {
        id: "digest".into(),
        name: "Digest".into(),
        audience: Some(r#"reachable via webpush"#.into()),
        schedule: Some(Schedule {
            at: vec![jiff::civil::date(2026, 11, 1).at(9, 0, 0, 0)],
            timezone: ScheduleZone::User,
            if_passed: IfPassed::Drop,
            ..Default::default()
        }),
        message: Message {
            title: "Hi {{ user.first_name | default('there') }}".into(),
            body: "Your weekly digest".into(),
            url: Some("https://shop.example/digest".into()),
            ..Default::default()
        },
        control_group_percent: 10.0,
        ..Default::default()
    };
    engine.save_campaign(campaign).expect("campaign");
    let mut busy = std::time::Duration::ZERO;
    // Kolkata 03:30Z, Berlin 08:00Z, UTC 09:00Z, New York 14:00Z.
    for step in 0..(15 * 60 / 5) {
        clock.set(NOW + step * 5 * 60_000);
        let started = Instant::now();
        engine.fire_due().expect("fire");
        busy += started.elapsed();
    }
    let stats = engine.campaign_stats("digest").expect("stats").expect("campaign");
    let decided = stats.targeted;
    assert_eq!(decided as usize, USERS);
    println!(
        "scheduled fan-out: {decided} users decided in {:.2} s of fire_due: {:.0} decisions/s \
         ({} sent, {} control, {} queued in the outbox)",
        busy.as_secs_f64(),
        decided as f64 / busy.as_secs_f64(),
        stats.sent,
        stats.control_users,
        engine.outbox_len()
    );
}
