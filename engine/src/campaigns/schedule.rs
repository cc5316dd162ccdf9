//! Scheduled campaigns: one-off local times (`at`) and recurring ones
//! (every day, week or month at a local time), delivered in each user's time
//! zone.
//!
//! Users are grouped by zone: with `"timezone": "user"`, by their `timezone`
//! profile property (read from its value index), and everyone without a valid
//! one in the default zone; with an IANA name, everyone in that zone. Each
//! (campaign, zone) walks its occurrences in order. When an occurrence's
//! instant in that zone arrives, the campaign's audience is evaluated among
//! the zone's users and each one is decided by `delivery::Planner`, in
//! ascending user order, in batches that end with a `ScheduleMark` record
//! saying how far the run got. A crash mid-run resumes after the last
//! durable mark, so no user is decided twice for one occurrence.
//!
//! An occurrence whose instant came before the campaign was saved has
//! "passed": with `if_passed: "drop"` it is skipped, with `"next_day"` a
//! one-off time goes out at the same local time the next day. An occurrence
//! missed by more than the grace period (the engine was down) is skipped as
//! `late`. Skips are marks with the reason. `start` and `end` bound the
//! occurrences; `cutoff` drops deliveries after it (`delivery.rs`).
//! Local times that do not exist or repeat (DST) resolve as jiff's
//! "compatible" rule: the later instant for a gap, the earlier for a fold.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use roaring::RoaringBitmap;

use crate::campaigns::CampaignState;
use crate::campaigns::campaign::{Every, IfPassed, Schedule, ScheduleZone, StoredCampaign};
use crate::campaigns::delivery::{Cause, Planner};
use crate::campaigns::outbox::{self, DeliveryRecord, ScheduleMark};
use crate::error::Result;
use crate::query::Source;
use crate::store::dict::Dictionaries;
use crate::store::props::ValueRef;
use crate::store::sequencer::Input;
use crate::store::state::index::IndexedValue;

/// How progress marks and delivery ids name the group of users without a
/// valid `timezone` property (no IANA zone has this name).
const DEFAULT_ZONE_MARK: &str = "(default)";
/// Users decided per batch of a scheduled run.
pub const USERS_PER_BATCH: usize = 1000;
/// How far ahead occurrences are searched (a monthly schedule on the 31st
/// skips months without one).
const SEARCH_DAYS: i32 = 400;

/// Local civil time as a number (seconds, as if the zone were UTC).
fn civil_seconds(dt: DateTime) -> i64 {
    dt.to_zoned(TimeZone::UTC).map(|z| z.timestamp().as_second()).unwrap_or(i64::MIN)
}

fn from_civil_seconds(seconds: i64) -> Option<DateTime> {
    jiff::Timestamp::from_second(seconds).ok().map(|t| t.to_zoned(TimeZone::UTC).datetime())
}

/// The first occurrence of `schedule` strictly after `after` (local civil
/// time), searching recurring dates from `from`. Monthly schedules fall on
/// `anchor_day` (clamped to the month's last day).
pub fn next_occurrence(
    schedule: &Schedule,
    after: DateTime,
    from: Date,
    anchor_day: i8,
) -> Option<DateTime> {
    let one_off = schedule.at.iter().copied().filter(|at| *at > after).min();
    let recurring = schedule.recurring.as_ref().and_then(|recurring| {
        let days = &recurring.days;
        let mut date = from.max(after.date());
        for _ in 0..SEARCH_DAYS {
            let fits = match recurring.every {
                Every::Day => true,
                Every::Week if days.is_empty() => date.weekday() == Weekday::Monday,
                Every::Week => days.contains(&date.weekday()),
                Every::Month => date.day() == anchor_day.min(date.days_in_month()),
            };
            let at = date.to_datetime(recurring.time);
            if fits && at > after {
                return Some(at);
            }
            date = date.tomorrow().ok()?;
        }
        None
    });
    match (one_off, recurring) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Which clock a group of users is on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ZoneKey {
    /// An IANA zone.
    Named(String),
    /// The settings' default zone (users without a valid `timezone`).
    Default,
}

impl ZoneKey {
    /// How progress marks and delivery ids name it.
    fn mark_name(&self) -> &str {
        match self {
            ZoneKey::Named(name) => name,
            ZoneKey::Default => DEFAULT_ZONE_MARK,
        }
    }
}

/// A zone's users for one scheduled campaign.
struct ZoneGroup {
    key: ZoneKey,
    tz: TimeZone,
    users: RoaringBitmap,
}

/// Users grouped by zone (see the module docs).
fn zone_groups(
    planner: &Planner<'_>,
    schedule: &Schedule,
    state: &crate::store::state::StoreState,
    timezone_key: Option<u16>,
) -> Vec<ZoneGroup> {
    let all = &state.indexes.all_user_ids;
    if let ScheduleZone::Named(name) = &schedule.timezone {
        let tz = crate::campaigns::policy::parse_timezone(name).unwrap_or(TimeZone::UTC);
        return vec![ZoneGroup { key: ZoneKey::Named(name.clone()), tz, users: all.clone() }];
    }
    let mut groups = Vec::new();
    let mut placed = RoaringBitmap::new();
    let index = timezone_key.and_then(|k| state.indexes.profile_property_value_user_ids.get(&k));
    match index {
        Some(values) if values.is_complete() => {
            for (value, users) in values.entries() {
                let IndexedValue::Str(name) = value else { continue };
                let Ok(tz) = crate::campaigns::policy::parse_timezone(&name) else { continue };
                placed |= users.get();
                groups.push(ZoneGroup {
                    key: ZoneKey::Named(name),
                    tz,
                    users: users.get().clone(),
                });
            }
        }
        // More distinct values than the index keeps: read each profile.
        Some(_) => {
            let mut by_name: std::collections::BTreeMap<String, RoaringBitmap> = Default::default();
            for user in all {
                let name = timezone_key.and_then(|k| state.profiles.value(user, k));
                if let Some(ValueRef::Str(name)) = name
                    && crate::campaigns::policy::parse_timezone(name).is_ok()
                {
                    by_name.entry(name.to_owned()).or_default().insert(user);
                }
            }
            for (name, users) in by_name {
                placed |= &users;
                let tz = crate::campaigns::policy::parse_timezone(&name).unwrap_or(TimeZone::UTC);
                groups.push(ZoneGroup { key: ZoneKey::Named(name), tz, users });
            }
        }
        None => {}
    }
    let rest = all - &placed;
    if !rest.is_empty() {
        groups.push(ZoneGroup {
            key: ZoneKey::Default,
            tz: planner.default_timezone().clone(),
            users: rest,
        });
    }
    groups
}

/// What a (campaign, zone) should do now.
enum Step {
    /// Nothing before this instant (or never).
    Wait(Option<i64>),
    /// Skip this occurrence, for this reason.
    Skip(i64, &'static str),
    /// Run this occurrence from this user on.
    Run(i64, u32),
}

fn step(
    stored: &StoredCampaign,
    schedule: &Schedule,
    group: &ZoneGroup,
    mark: Option<(i64, Option<u32>)>,
    now: i64,
    grace: i64,
) -> Step {
    if let Some((occurrence, Some(next_user))) = mark {
        return Step::Run(occurrence, next_user);
    }
    let instant = |dt: DateTime| crate::campaigns::policy::at(dt.date(), dt.time(), &group.tz).ok();
    let saved_ms = stored.saved_ms;
    let begin_ms = schedule.start_ms.map_or(saved_ms, |s| s.max(saved_ms));
    let Ok(begin) = jiff::Timestamp::from_millisecond(begin_ms) else { return Step::Wait(None) };
    let begin_local = begin.to_zoned(group.tz.clone()).datetime();
    let from = begin_local.date().yesterday().unwrap_or(begin_local.date());
    let anchor_day = schedule
        .start_ms
        .and_then(|s| jiff::Timestamp::from_millisecond(s).ok())
        .map_or(1, |s| s.to_zoned(group.tz.clone()).day());
    let after = match mark.and_then(|(o, _)| from_civil_seconds(o)) {
        Some(done) => done,
        None => from.to_datetime(Time::midnight()),
    };
    let Some(occurrence) = next_occurrence(schedule, after, from, anchor_day) else {
        return Step::Wait(None);
    };
    let Some(mut due) = instant(occurrence) else {
        return Step::Skip(civil_seconds(occurrence), "passed");
    };
    let key = civil_seconds(occurrence);
    if due < begin_ms {
        let one_off = schedule.at.contains(&occurrence);
        let tomorrow = occurrence.date().tomorrow().ok().map(|d| d.to_datetime(occurrence.time()));
        match tomorrow.and_then(instant) {
            Some(next)
                if schedule.if_passed == IfPassed::NextDay && one_off && next >= begin_ms =>
            {
                due = next
            }
            _ => return Step::Skip(key, "passed"),
        }
    }
    if schedule.end_ms.is_some_and(|end| due > end) {
        return Step::Wait(None);
    }
    if due > now {
        return Step::Wait(Some(due));
    }
    if now - due > grace {
        return Step::Skip(key, "late");
    }
    Step::Run(key, 0)
}

/// Decides the next batch of the scheduled campaigns' due occurrences at
/// `now`: the records (ending with the progress mark), and whether there may
/// be more. An occurrence not yet due lowers `next_due` to its time.
pub fn next_batch(
    dicts: &Dictionaries,
    state: Source<'_>,
    campaigns: &CampaignState,
    (now, grace): (i64, i64),
    next_due: &mut Option<i64>,
) -> Result<(Vec<Input>, bool)> {
    let mut planner = Planner::new(dicts, state, campaigns, now);
    let timezone_key = dicts.keys.get("timezone").and_then(|k| u16::try_from(k).ok());
    for (id, stored) in &campaigns.campaigns {
        let Some(schedule) = &stored.campaign.schedule else { continue };
        if stored.paused || stored.campaign.trigger.is_some() {
            continue;
        }
        for group in zone_groups(&planner, schedule, &state, timezone_key) {
            let mark = campaigns.outbox.mark(id, group.key.mark_name());
            match step(stored, schedule, &group, mark, now, grace) {
                Step::Wait(due) => {
                    *next_due = match (*next_due, due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Step::Skip(occurrence, reason) => {
                    let mark = mark_record(id, &group.key, occurrence, None, Some(reason));
                    return Ok((vec![mark], true));
                }
                Step::Run(occurrence, from_user) => {
                    return run_batch(&mut planner, stored, &group, occurrence, from_user, now);
                }
            }
        }
    }
    Ok((Vec::new(), false))
}

/// Decides up to [`USERS_PER_BATCH`] users of one occurrence in one zone;
/// the records end with the mark of how far it got.
fn run_batch(
    planner: &mut Planner<'_>,
    stored: &StoredCampaign,
    group: &ZoneGroup,
    occurrence: i64,
    from_user: u32,
    now: i64,
) -> Result<(Vec<Input>, bool)> {
    let reader_state = planner.state;
    let campaign = &stored.campaign;
    let mut users: RoaringBitmap = group.users.clone();
    users.remove_range(..from_user);
    if let Some(audience) = &campaign.audience {
        let expr = crate::query::parse(audience)?;
        users = crate::query::select_by(
            planner.dicts,
            &reader_state,
            &expr,
            now,
            &users,
            None,
            crate::query::Strategy::Auto,
        )?;
    }
    let mut records = Vec::new();
    let mut last = None;
    let room =
        crate::limits::MAX_BATCH_RECORDS - crate::campaigns::delivery::MAX_RECORDS_PER_DECISION - 1;
    for user in users.iter().take(USERS_PER_BATCH) {
        if records.len() > room {
            break;
        }
        let cause = Cause {
            key: format!("{}\u{0}{occurrence}", group.key.mark_name()),
            event: None,
            due_ms: now,
            check_audience: false,
            test: false,
        };
        planner.plan(stored, user, &cause, &mut records)?;
        last = Some(user);
    }
    let remaining = last.map_or(0, |l| users.rank(l));
    let done = users.len() <= remaining;
    let next_user = if done { None } else { last.map(|l| l + 1) };
    records.push(mark_record(&campaign.id, &group.key, occurrence, next_user, None));
    Ok((records, true))
}

/// How often schedules are looked at when nothing is due sooner.
pub const SCHEDULE_RECHECK_MS: i64 = 1_000;

fn mark_record(
    campaign: &str,
    zone: &ZoneKey,
    occurrence: i64,
    next_user: Option<u32>,
    dropped: Option<&str>,
) -> Input {
    outbox::record(DeliveryRecord::Schedule(ScheduleMark {
        campaign: campaign.to_owned(),
        zone: zone.mark_name().to_owned(),
        occurrence_local_s: occurrence,
        next_user,
        dropped: dropped.map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaigns::campaign::Recurring;

    fn schedule(every: Every, days: &[Weekday]) -> Schedule {
        Schedule {
            recurring: Some(Recurring {
                every,
                time: Time::constant(9, 30, 0, 0),
                days: days.to_vec(),
            }),
            ..Default::default()
        }
    }

    fn dt(text: &str) -> DateTime {
        text.parse().expect("date-time")
    }

    #[test]
    fn weekly_and_monthly_occurrences() {
        let from = dt("2026-11-02T00:00").date(); // a Monday
        let weekly = schedule(Every::Week, &[Weekday::Thursday, Weekday::Monday]);
        let mut at = dt("2026-11-01T00:00");
        let mut seen = Vec::new();
        for _ in 0..3 {
            at = next_occurrence(&weekly, at, from, 1).expect("next");
            seen.push(at.to_string());
        }
        assert_eq!(seen, ["2026-11-02T09:30:00", "2026-11-05T09:30:00", "2026-11-09T09:30:00"]);
        // Monthly on the 31st: the last day of shorter months.
        let monthly = schedule(Every::Month, &[]);
        let mut at = dt("2026-11-01T00:00");
        let mut seen = Vec::new();
        for _ in 0..4 {
            at = next_occurrence(&monthly, at, from, 31).expect("next");
            seen.push(at.date().to_string());
        }
        assert_eq!(seen, ["2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28"]);
        // One-off times and a recurring time together: the earliest first.
        let both = Schedule { at: vec![dt("2026-11-02T08:00")], ..schedule(Every::Day, &[]) };
        let first = next_occurrence(&both, dt("2026-11-01T12:00"), from, 1).expect("next");
        assert_eq!(first, dt("2026-11-02T08:00"));
        let second = next_occurrence(&both, first, from, 1).expect("next");
        assert_eq!(second, dt("2026-11-02T09:30"));
        assert_eq!(civil_seconds(second), civil_seconds(dt("2026-11-02T09:30")));
        assert_eq!(from_civil_seconds(civil_seconds(second)), Some(second));
    }
}
