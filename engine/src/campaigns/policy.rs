//! Delivery policy as pure functions of a user's local time and send history:
//! time zones, quiet hours (DND), frequency caps in the user's calendar,
//! delivery at a local time of day, control groups and A/B variants.
//!
//! Nothing here reads a clock or stores anything: the caller passes `now` (the
//! engine clock) and the user's past sends (from the log), so decisions are
//! deterministic and replayable. Local times use jiff with the IANA database
//! bundled, so a daylight-saving change is handled by the library, never by
//! hand-written offsets:
//!
//! - a local time that does not exist (skipped by a spring-forward change)
//!   resolves to the instant just after the gap;
//! - a local time that happens twice (fall back) resolves to the first one.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// The time zone used when a user has none, or an unknown one.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// Basis points in 100 %: control groups and variant weights hash users into this range.
const BASIS_POINTS: u64 = 10_000;

/// A policy input that makes no sense: an unknown time zone, a time out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The user's time zone: `name` when it is a valid IANA name, else `fallback`.
pub fn timezone(name: Option<&str>, fallback: &TimeZone) -> TimeZone {
    name.and_then(|n| TimeZone::get(n).ok()).unwrap_or_else(|| fallback.clone())
}

/// Parses a time zone name (for settings: an error names what was wrong).
pub fn parse_timezone(name: &str) -> Result<TimeZone, PolicyError> {
    TimeZone::get(name).map_err(|e| PolicyError(format!("unknown time zone {name:?}: {e}")))
}

fn zoned(ms: i64, tz: &TimeZone) -> Result<Zoned, PolicyError> {
    Timestamp::from_millisecond(ms)
        .map(|ts| ts.to_zoned(tz.clone()))
        .map_err(|e| PolicyError(format!("time {ms} out of range: {e}")))
}

/// Epoch ms of `time` on `date` in `tz`.
pub(crate) fn at(date: Date, time: Time, tz: &TimeZone) -> Result<i64, PolicyError> {
    date.to_datetime(time).to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).map_err(
        |e| PolicyError(format!("{date} {time} in {}: {e}", tz.iana_name().unwrap_or("?"))),
    )
}

/// What quiet hours do with a message that falls inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuietMode {
    /// Hold it until the quiet hours end.
    Delay,
    /// Drop it.
    Discard,
}

impl QuietMode {
    /// Its name in the HTTP API and the stored form: `delay`, `discard`.
    pub fn name(self) -> &'static str {
        match self {
            QuietMode::Delay => "delay",
            QuietMode::Discard => "discard",
        }
    }

    /// The inverse of [`QuietMode::name`].
    pub fn of_name(name: &str) -> Option<QuietMode> {
        [QuietMode::Delay, QuietMode::Discard].into_iter().find(|m| m.name() == name)
    }
}

/// Quiet hours in the user's local time, `from` inclusive to `to` exclusive;
/// `from > to` spans midnight (21:00 → 09:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, local time.
    pub from: Time,
    /// End, local time.
    pub to: Time,
    /// Delay or discard.
    pub mode: QuietMode,
}

/// When a message may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Now.
    Now,
    /// Not before this instant, epoch ms.
    At(i64),
    /// Never: dropped.
    Drop,
}

impl QuietHours {
    fn contains(&self, t: Time) -> bool {
        if self.from <= self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }

    /// Whether a message at `now_ms` may go out now, later (when the quiet
    /// hours end, in the user's time zone), or not at all.
    pub fn timing(&self, now_ms: i64, tz: &TimeZone) -> Result<Timing, PolicyError> {
        let local = zoned(now_ms, tz)?;
        if !self.contains(local.time()) {
            return Ok(Timing::Now);
        }
        if self.mode == QuietMode::Discard {
            return Ok(Timing::Drop);
        }
        let today = local.date();
        let end_date = if local.time() < self.to {
            today
        } else {
            today.tomorrow().map_err(|e| PolicyError(e.to_string()))?
        };
        at(end_date, self.to, tz).map(Timing::At)
    }
}

/// Frequency caps per user, in the user's calendar (a local day; an ISO
/// week, Monday to Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// Most messages per local day.
    pub per_day: Option<u32>,
    /// Most messages per local ISO week.
    pub per_week: Option<u32>,
}

impl Caps {
    /// Whether one more message at `now_ms` stays within the caps, given the
    /// times of the user's other sends (any order; sends held for later count
    /// on the day they go out).
    pub fn allow(&self, sent_ms: &[i64], now_ms: i64, tz: &TimeZone) -> Result<bool, PolicyError> {
        let now = zoned(now_ms, tz)?;
        let (day, week) = (now.date(), now.date().iso_week_date());
        let (mut today, mut this_week) = (0u32, 0u32);
        for &ms in sent_ms {
            let date = zoned(ms, tz)?.date();
            let iso = date.iso_week_date();
            if iso.year() == week.year() && iso.week() == week.week() {
                this_week += 1;
                if date == day {
                    today += 1;
                }
            }
        }
        Ok(self.per_day.is_none_or(|cap| today < cap)
            && self.per_week.is_none_or(|cap| this_week < cap))
    }
}

/// What a scheduled occurrence does for users whose local time had already
/// passed when the campaign was saved (`local_delivery` is its tested
/// building block; `schedule.rs` applies it per occurrence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfPassed {
    /// Skip them this time.
    #[default]
    Drop,
    /// Send at that local time the next day (one-off `at` times only).
    NextDay,
}

impl IfPassed {
    /// Its name in the HTTP API and the stored form: `drop`, `next_day`.
    pub fn name(self) -> &'static str {
        match self {
            IfPassed::Drop => "drop",
            IfPassed::NextDay => "next_day",
        }
    }

    /// The inverse of [`IfPassed::name`].
    pub fn of_name(name: &str) -> Option<IfPassed> {
        [IfPassed::Drop, IfPassed::NextDay].into_iter().find(|e| e.name() == name)
    }
}

/// When to deliver "at `time`, local" on `date` to a user in `tz`, seen at `now_ms`.
#[cfg(test)]
pub fn local_delivery(
    date: Date,
    time: Time,
    tz: &TimeZone,
    now_ms: i64,
    if_passed: IfPassed,
) -> Result<Timing, PolicyError> {
    let due = at(date, time, tz)?;
    if due >= now_ms {
        return Ok(Timing::At(due));
    }
    match if_passed {
        IfPassed::Drop => Ok(Timing::Drop),
        IfPassed::NextDay => {
            let tomorrow = date.tomorrow().map_err(|e| PolicyError(e.to_string()))?;
            at(tomorrow, time, tz).map(Timing::At)
        }
    }
}

/// A user's place in `0..BASIS_POINTS` for a campaign: stable, and
/// independent between campaigns.
fn bucket(campaign: &str, user_id: &str, salt: &str) -> u64 {
    let key = format!("{campaign}\u{0}{salt}\u{0}{user_id}");
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes())) % BASIS_POINTS
}

/// Whether the user is in the campaign's control group of `percent` % (they
/// get nothing; their sends are recorded as "would have sent").
pub fn in_control_group(campaign: &str, user_id: &str, percent: f64) -> bool {
    let threshold = (percent.clamp(0.0, 100.0) * 100.0).round() as u64;
    bucket(campaign, user_id, "control") < threshold
}

/// The index of the variant the user gets, by weight (a user always gets the
/// same one); `None` when no weight is positive.
pub fn pick_variant(campaign: &str, user_id: &str, weights: &[u32]) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let point = bucket(campaign, user_id, "variant") * total / BASIS_POINTS;
    let mut upto = 0;
    weights.iter().position(|&w| {
        upto += u64::from(w);
        point < upto
    })
}

/// Why a message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Past its cut-off or time to live.
    Expired,
    /// The user is in the control group ("would have sent").
    Control,
    /// Inside quiet hours that discard.
    Dnd,
    /// Over a frequency cap.
    Capped,
}

impl DropReason {
    /// The name decisions and stats use (`expired`, `control`, `dnd`, `capped`).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::Control => "control",
            DropReason::Dnd => "dnd",
            DropReason::Capped => "capped",
        }
    }
}

/// What to do with one message for one user, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it, with this variant (when the campaign has variants).
    Send {
        /// Index of the variant.
        variant: Option<usize>,
    },
    /// Decide again at this time (quiet hours that delay).
    Delay {
        /// Epoch ms.
        until_ms: i64,
    },
    /// Do not send.
    Drop(DropReason),
}

/// A campaign's delivery rules, with the global settings folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRules {
    /// The campaign's id: it seeds the control group and variant hashes.
    pub campaign: String,
    /// Caps (global, or the campaign's override).
    pub caps: Caps,
    /// Whether the caps do not apply to this campaign.
    pub ignore_caps: bool,
    /// Quiet hours, if any.
    pub quiet: Option<QuietHours>,
    /// Share of users held out, in percent.
    pub control_percent: f64,
    /// Variant weights (empty: no variants).
    pub variant_weights: Vec<u32>,
    /// After this time nothing is sent (cut-off, or fire time + TTL), epoch ms.
    pub expires_at_ms: Option<i64>,
}

/// Applies every delivery rule, in one place and in one order: expiry,
/// control group, quiet hours, caps, then the variant. `sent_ms` are the
/// user's earlier sends that count toward the caps.
pub fn decide(
    rules: &DeliveryRules,
    user_id: &str,
    tz: &TimeZone,
    sent_ms: &[i64],
    now_ms: i64,
) -> Result<Decision, PolicyError> {
    if rules.expires_at_ms.is_some_and(|at| now_ms > at) {
        return Ok(Decision::Drop(DropReason::Expired));
    }
    if in_control_group(&rules.campaign, user_id, rules.control_percent) {
        return Ok(Decision::Drop(DropReason::Control));
    }
    if let Some(quiet) = &rules.quiet {
        match quiet.timing(now_ms, tz)? {
            Timing::Now => {}
            Timing::At(until_ms) => return Ok(Decision::Delay { until_ms }),
            Timing::Drop => return Ok(Decision::Drop(DropReason::Dnd)),
        }
    }
    if !rules.ignore_caps && !rules.caps.allow(sent_ms, now_ms, tz)? {
        return Ok(Decision::Drop(DropReason::Capped));
    }
    let variant = if rules.variant_weights.is_empty() {
        None
    } else {
        pick_variant(&rules.campaign, user_id, &rules.variant_weights)
    };
    Ok(Decision::Send { variant })
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().expect("timestamp").as_millisecond()
    }

    fn tz(name: &str) -> TimeZone {
        parse_timezone(name).expect("zone")
    }

    #[test]
    fn quiet_hours_across_midnight_delay_to_their_end_or_discard() {
        let delhi = tz("Asia/Kolkata");
        let night =
            QuietHours { from: time(21, 0, 0, 0), to: time(9, 0, 0, 0), mode: QuietMode::Delay };
        // 22:30 IST = 17:00 UTC: held until 09:00 IST the next morning (03:30 UTC).
        assert_eq!(
            night.timing(ms("2026-11-01T17:00:00Z"), &delhi),
            Ok(Timing::At(ms("2026-11-02T03:30:00Z")))
        );
        // 06:00 IST (00:30 UTC): until 09:00 the same day.
        assert_eq!(
            night.timing(ms("2026-11-02T00:30:00Z"), &delhi),
            Ok(Timing::At(ms("2026-11-02T03:30:00Z")))
        );
        // 12:00 IST: outside.
        assert_eq!(night.timing(ms("2026-11-02T06:30:00Z"), &delhi), Ok(Timing::Now));
        let discard = QuietHours { mode: QuietMode::Discard, ..night };
        assert_eq!(discard.timing(ms("2026-11-01T17:00:00Z"), &delhi), Ok(Timing::Drop));
        // The boundaries: `from` is inside, `to` is outside.
        assert_eq!(discard.timing(ms("2026-11-01T15:30:00Z"), &delhi), Ok(Timing::Drop));
        assert_eq!(discard.timing(ms("2026-11-02T03:30:00Z"), &delhi), Ok(Timing::Now));
    }

    #[test]
    fn local_delivery_is_right_across_daylight_saving_changes() {
        let new_york = tz("America/New_York");
        // 09:00 local is 14:00 UTC before the change (EST) and 13:00 UTC after it (EDT).
        let seen = ms("2026-03-07T00:00:00Z");
        assert_eq!(
            local_delivery(date(2026, 3, 7), time(9, 0, 0, 0), &new_york, seen, IfPassed::Drop),
            Ok(Timing::At(ms("2026-03-07T14:00:00Z")))
        );
        assert_eq!(
            local_delivery(date(2026, 3, 8), time(9, 0, 0, 0), &new_york, seen, IfPassed::Drop),
            Ok(Timing::At(ms("2026-03-08T13:00:00Z")))
        );
        // 02:30 does not exist on 2026-03-08 there: it resolves past the gap, to 03:30 EDT.
        assert_eq!(
            local_delivery(date(2026, 3, 8), time(2, 30, 0, 0), &new_york, seen, IfPassed::Drop),
            Ok(Timing::At(ms("2026-03-08T07:30:00Z")))
        );
        // Passed already: dropped, or the same local time tomorrow (now EDT).
        let late = ms("2026-03-07T20:00:00Z");
        assert_eq!(
            local_delivery(date(2026, 3, 7), time(9, 0, 0, 0), &new_york, late, IfPassed::Drop),
            Ok(Timing::Drop)
        );
        assert_eq!(
            local_delivery(date(2026, 3, 7), time(9, 0, 0, 0), &new_york, late, IfPassed::NextDay),
            Ok(Timing::At(ms("2026-03-08T13:00:00Z")))
        );
    }

    #[test]
    fn caps_count_sends_in_the_users_local_day_and_iso_week() {
        let delhi = tz("Asia/Kolkata");
        let caps = Caps { per_day: Some(2), per_week: Some(3) };
        // Sunday 2026-11-01 23:00 IST is still Sunday there, though Monday never began in UTC.
        let sunday_night = ms("2026-11-01T17:30:00Z");
        // Two sends on Monday 2026-11-02 IST (one of them 00:30 IST = Sunday 19:00 UTC).
        let monday = [ms("2026-11-01T19:00:00Z"), ms("2026-11-02T05:00:00Z")];
        assert_eq!(caps.allow(&monday, ms("2026-11-02T10:00:00Z"), &delhi), Ok(false), "2 today");
        assert_eq!(caps.allow(&monday, ms("2026-11-03T10:00:00Z"), &delhi), Ok(true), "new day");
        let three = [monday[0], monday[1], ms("2026-11-03T05:00:00Z")];
        assert_eq!(
            caps.allow(&three, ms("2026-11-04T10:00:00Z"), &delhi),
            Ok(false),
            "3 this week"
        );
        // Next ISO week (Monday 2026-11-09): free again. The previous Sunday belongs to last week.
        assert_eq!(caps.allow(&three, ms("2026-11-09T10:00:00Z"), &delhi), Ok(true));
        assert_eq!(caps.allow(&[sunday_night], ms("2026-11-02T10:00:00Z"), &delhi), Ok(true));
        // Sends in the future (clock skew) do not count; no caps allow anything.
        assert_eq!(Caps::default().allow(&three, ms("2026-11-03T06:00:00Z"), &delhi), Ok(true));
    }

    #[test]
    fn control_group_and_variants_follow_their_shares_and_are_stable() {
        let users: Vec<String> = (0..100_000).map(|i| format!("u{i}")).collect();
        let control = users.iter().filter(|u| in_control_group("spring", u, 10.0)).count();
        let share = control as f64 / users.len() as f64;
        assert!((share - 0.10).abs() <= 0.02, "control share {share}");
        assert_eq!(
            in_control_group("spring", "u1", 10.0),
            in_control_group("spring", "u1", 10.0),
            "stable"
        );
        assert!(!in_control_group("spring", "u1", 0.0));
        assert!(in_control_group("spring", "u1", 100.0));
        let mut counts = [0usize; 3];
        for u in &users {
            counts[pick_variant("spring", u, &[50, 30, 20]).expect("a variant")] += 1;
        }
        for (count, expected) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let share = *count as f64 / users.len() as f64;
            assert!((share - expected).abs() <= 0.02, "variant shares {counts:?}");
        }
        assert_eq!(pick_variant("spring", "u1", &[0, 0]), None);
        assert_eq!(pick_variant("spring", "u1", &[0, 5]), Some(1));
        // Control and variants are independent draws.
        let both = users
            .iter()
            .filter(|u| in_control_group("spring", u, 50.0))
            .filter(|u| pick_variant("spring", u, &[50, 50]) == Some(0))
            .count() as f64
            / users.len() as f64;
        assert!((both - 0.25).abs() <= 0.02, "{both}");
    }

    #[test]
    fn decide_applies_expiry_control_quiet_hours_caps_and_variants_in_that_order() {
        let utc = tz("UTC");
        let rules = DeliveryRules {
            campaign: "cart".into(),
            caps: Caps { per_day: Some(1), per_week: None },
            ignore_caps: false,
            quiet: Some(QuietHours {
                from: time(22, 0, 0, 0),
                to: time(8, 0, 0, 0),
                mode: QuietMode::Delay,
            }),
            control_percent: 0.0,
            variant_weights: vec![1, 1],
            expires_at_ms: Some(ms("2026-11-02T00:00:00Z")),
        };
        let noon = ms("2026-11-01T12:00:00Z");
        let send = decide(&rules, "u1", &utc, &[], noon).expect("decide");
        assert!(matches!(send, Decision::Send { variant: Some(_) }), "{send:?}");
        assert_eq!(
            decide(&rules, "u1", &utc, &[ms("2026-11-01T09:00:00Z")], noon),
            Ok(Decision::Drop(DropReason::Capped))
        );
        let ignoring = DeliveryRules { ignore_caps: true, ..rules.clone() };
        assert!(matches!(
            decide(&ignoring, "u1", &utc, &[ms("2026-11-01T09:00:00Z")], noon),
            Ok(Decision::Send { .. })
        ));
        // 23:00: quiet hours come before caps; the message waits for 08:00.
        assert_eq!(
            decide(&rules, "u1", &utc, &[ms("2026-11-01T09:00:00Z")], ms("2026-11-01T23:00:00Z")),
            Ok(Decision::Delay { until_ms: ms("2026-11-02T08:00:00Z") })
        );
        // Past the cut-off, nothing else matters.
        assert_eq!(
            decide(&rules, "u1", &utc, &[], ms("2026-11-02T09:00:00Z")),
            Ok(Decision::Drop(DropReason::Expired))
        );
        let everyone = DeliveryRules { control_percent: 100.0, ..rules };
        assert_eq!(
            decide(&everyone, "u1", &utc, &[], noon),
            Ok(Decision::Drop(DropReason::Control))
        );
        assert_eq!(DropReason::Capped.name(), "capped");
    }

    #[test]
    fn unknown_time_zones_fall_back_or_are_reported() {
        let utc = tz(DEFAULT_TIMEZONE);
        assert_eq!(timezone(Some("Mars/Olympus"), &utc), utc);
        assert_eq!(timezone(None, &utc), utc);
        assert_eq!(timezone(Some("Asia/Kolkata"), &utc), tz("Asia/Kolkata"));
        let error = parse_timezone("Mars/Olympus").expect_err("unknown");
        assert!(error.0.contains("Mars/Olympus"), "{error}");
    }
}
