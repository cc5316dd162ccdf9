//! Scheduled campaigns on a manual clock: a daily local time in each user's
//! zone across the end of daylight saving time in New York, one-off times that
//! have passed (drop, next day), occurrences missed while down, `end` and
//! `cutoff`, resuming a run from its last mark, and restarts that send nothing
//! twice.

mod common;

use common::NOW;
use nudge_engine::campaign::PUSH_SENT_EVENT;
use nudge_engine::campaign::{
    Campaign, Every, IfPassed, Message, QuietHours, QuietMode, Recurring, Schedule, ScheduleZone,
};
use nudge_engine::clock::ManualClock;
use nudge_engine::internals::{DeliveryRecord, ScheduleMark};
use nudge_engine::{Engine, ProfileUpdate, Record, Subscription};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn user(id: &str, timezone: Option<&str>, plan: &str) -> Vec<Record> {
    let mut set = vec![("plan".into(), plan.into())];
    if let Some(zone) = timezone {
        set.push(("timezone".into(), zone.into()));
    }
    vec![
        Record::Profile(ProfileUpdate { user_id: id.into(), set, ..Default::default() }),
        Record::Subscribe {
            user_id: id.into(),
            subscription: Subscription {
                endpoint: format!("https://push.example/{id}"),
                p256dh: "k".into(),
                auth: "a".into(),
            },
        },
    ]
}

fn scheduled(schedule: Schedule) -> Campaign {
    Campaign {
        id: "digest".into(),
        name: "Daily digest".into(),
        audience: Some(r#"user.plan == "pro""#.into()),
        schedule: Some(Schedule {
            timezone: ScheduleZone::User,
            if_passed: IfPassed::Drop,
            ..schedule
        }),
        message: Message { title: "Your digest".into(), body: "…".into(), ..Default::default() },
        ..Default::default()
    }
}

fn daily(time: &str) -> Schedule {
    let time = time.parse().expect("a local time");
    Schedule {
        recurring: Some(Recurring { every: Every::Day, time, days: Vec::new() }),
        ..Default::default()
    }
}

/// Every `$push_sent` time of a user.
fn sends(engine: &Engine, user: &str) -> Vec<i64> {
    let reader = engine.read();
    let (Some(user), Some(sent)) =
        (reader.dicts.users.get(user), reader.dicts.events.get(PUSH_SENT_EVENT))
    else {
        return Vec::new();
    };
    reader
        .state
        .store
        .timelines
        .of(user)
        .iter()
        .filter(|e| e.event() == sent)
        .map(|e| e.ts_ms)
        .collect()
}

/// Steps the clock to `until` in `step` increments, deciding at each step.
fn run_until(engine: &Engine, clock: &ManualClock, until: i64, step: i64) {
    while engine.clock().now_ms() < until {
        clock.advance(step);
        engine.fire_due().expect("fire");
    }
}

#[test]
fn a_daily_local_time_follows_each_zone_across_the_dst_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = NOW - 2 * DAY; // 2026-10-30T00:00Z
    let clock = ManualClock::new(start);
    {
        let engine = common::open(dir.path(), &clock);
        let mut setup = user("ny", Some("America/New_York"), "pro");
        setup.extend(user("kol", Some("Asia/Kolkata"), "pro"));
        setup.extend(user("utc", None, "pro"));
        setup.extend(user("bad", Some("Mars/Olympus"), "pro"));
        setup.extend(user("free", Some("Asia/Kolkata"), "free"));
        engine.ingest(setup).expect("setup");
        engine.save_campaign(scheduled(daily("09:00"))).expect("save");
        run_until(&engine, &clock, NOW + 2 * DAY, 5 * MIN);
        // New York left daylight saving time at 02:00 on 2026-11-01: 09:00 is
        // 13:00Z before and 14:00Z after.
        assert_eq!(
            sends(&engine, "ny"),
            [start + 13 * HOUR, start + DAY + 13 * HOUR, NOW + 14 * HOUR, NOW + DAY + 14 * HOUR]
        );
        let kolkata: Vec<i64> = (0..4).map(|d| start + d * DAY + 3 * HOUR + 30 * MIN).collect();
        assert_eq!(sends(&engine, "kol"), kolkata);
        let utc: Vec<i64> = (0..4).map(|d| start + d * DAY + 9 * HOUR).collect();
        assert_eq!(sends(&engine, "utc"), utc);
        assert_eq!(sends(&engine, "bad"), utc, "an unknown zone falls back to the default");
        assert!(sends(&engine, "free").is_empty(), "not in the audience");
        let stats = engine.campaign_stats("digest").expect("stats").expect("campaign");
        assert_eq!((stats.targeted, stats.sent), (16, 16));
    }
    // Reopened at the same time, and stepped on: nothing is sent twice.
    let engine = common::open(dir.path(), &clock);
    engine.fire_due().expect("fire");
    assert_eq!(sends(&engine, "ny").len(), 4);
    run_until(&engine, &clock, NOW + 2 * DAY + 12 * HOUR, 5 * MIN);
    assert_eq!(sends(&engine, "ny").len(), 4, "the next one is at 14:00Z");
    assert_eq!(sends(&engine, "utc").len(), 5);
}

#[test]
fn passed_times_are_dropped_or_moved_and_missed_ones_are_recorded() {
    for if_passed in [IfPassed::Drop, IfPassed::NextDay] {
        let dir = tempfile::tempdir().expect("tempdir");
        // Saved at 05:00Z: 09:00 in Kolkata (03:30Z) has passed; New York's
        // (14:00Z) and UTC's have not.
        let clock = ManualClock::new(NOW + 5 * HOUR);
        let engine = common::open(dir.path(), &clock);
        let mut setup = user("ny", Some("America/New_York"), "pro");
        setup.extend(user("kol", Some("Asia/Kolkata"), "pro"));
        setup.extend(user("utc", None, "pro"));
        engine.ingest(setup).expect("setup");
        let once = Schedule {
            at: vec![jiff::civil::date(2026, 11, 1).at(9, 0, 0, 0)],
            if_passed,
            ..Default::default()
        };
        let mut campaign = scheduled(once.clone());
        campaign.schedule.as_mut().expect("schedule").if_passed = if_passed;
        engine.save_campaign(campaign).expect("save");
        run_until(&engine, &clock, NOW + 2 * DAY, 5 * MIN);
        assert_eq!(sends(&engine, "ny"), [NOW + 14 * HOUR]);
        assert_eq!(sends(&engine, "utc"), [NOW + 9 * HOUR]);
        let occurrence = (NOW + 9 * HOUR) / 1000; // 09:00 local, as civil seconds
        let kolkata = engine.read().state.campaigns.outbox.mark("digest", "Asia/Kolkata");
        if if_passed == IfPassed::Drop {
            assert!(sends(&engine, "kol").is_empty());
            assert_eq!(kolkata, Some((occurrence, None)));
        } else {
            assert_eq!(sends(&engine, "kol"), [NOW + DAY + 3 * HOUR + 30 * MIN]);
        }
    }
}

#[test]
fn occurrences_missed_while_down_are_dropped_as_late_and_end_and_cutoff_bound_sends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    engine.ingest(user("utc", None, "pro")).expect("setup");
    let bounded = Schedule {
        timezone: ScheduleZone::Named("UTC".into()),
        end_ms: Some(NOW + 2 * DAY + 12 * HOUR),
        ..daily("09:00")
    };
    let mut campaign = scheduled(bounded);
    campaign.schedule.as_mut().expect("schedule").timezone = ScheduleZone::Named("UTC".into());
    engine.save_campaign(campaign).expect("save");
    // Down from 08:00 to 10:00 on the first day: that occurrence is late.
    clock.set(NOW + 8 * HOUR);
    engine.fire_due().expect("fire");
    clock.set(NOW + 10 * HOUR);
    engine.fire_due().expect("fire");
    assert!(sends(&engine, "utc").is_empty());
    let late = engine.read().state.campaigns.outbox.mark("digest", "UTC");
    assert_eq!(late, Some(((NOW + 9 * HOUR) / 1000, None)));
    run_until(&engine, &clock, NOW + 5 * DAY, 5 * MIN);
    assert_eq!(
        sends(&engine, "utc"),
        [NOW + DAY + 9 * HOUR, NOW + 2 * DAY + 9 * HOUR],
        "until end"
    );
    // A cut-off drops what would go out after it.
    let cut = Schedule {
        timezone: ScheduleZone::Named("UTC".into()),
        cutoff_ms: Some(NOW + 5 * DAY + 8 * HOUR),
        ..daily("07:00")
    };
    let mut campaign = scheduled(cut);
    campaign.id = "cut".into();
    campaign.schedule.as_mut().expect("schedule").timezone = ScheduleZone::Named("UTC".into());
    campaign.dnd = Some(QuietHours {
        from: jiff::civil::time(6, 0, 0, 0),
        to: jiff::civil::time(9, 0, 0, 0),
        mode: QuietMode::Delay,
    });
    engine.save_campaign(campaign).expect("save");
    run_until(&engine, &clock, NOW + 6 * DAY, 5 * MIN);
    let stats = engine.campaign_stats("cut").expect("stats").expect("campaign");
    assert_eq!(stats.dropped.get("cutoff"), Some(&1), "{stats:?}");
    assert_eq!(stats.sent, 0);
}

#[test]
fn a_run_resumes_after_its_last_mark_and_decides_each_user_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = common::open(dir.path(), &clock);
    let users: Vec<String> = (0..2500).map(|i| format!("u{i:04}")).collect();
    let setup: Vec<Record> = users.iter().flat_map(|u| user(u, None, "pro")).collect();
    engine.ingest(setup).expect("setup");
    let once =
        Schedule { at: vec![jiff::civil::date(2026, 11, 1).at(1, 0, 0, 0)], ..Default::default() };
    engine.save_campaign(scheduled(once)).expect("save");
    // As if a run had stopped after deciding the users below dense id 1200.
    let occurrence = (NOW + HOUR) / 1000;
    let mark = ScheduleMark {
        campaign: "digest".into(),
        zone: "(default)".into(),
        occurrence_local_s: occurrence,
        next_user: Some(1200),
        dropped: None,
    };
    engine.ingest_entries(vec![DeliveryRecord::Schedule(mark).into_entry()]).expect("mark");
    clock.set(NOW + HOUR);
    engine.fire_due().expect("fire");
    let counts: Vec<usize> = users.iter().map(|u| sends(&engine, u).len()).collect();
    assert!(counts[..1200].iter().all(|&c| c == 0), "decided before the mark");
    assert!(counts[1200..].iter().all(|&c| c == 1), "each remaining user once");
    assert_eq!(
        engine.read().state.campaigns.outbox.mark("digest", "(default)"),
        Some((occurrence, None))
    );
    assert_eq!(engine.outbox_len(), 1300);
    run_until(&engine, &clock, NOW + 3 * DAY, 30 * MIN);
    assert_eq!(engine.outbox_len(), 1300, "a one-off runs once");
}
