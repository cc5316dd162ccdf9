//! Calendar arithmetic for time points: civil date ↔ days since the Unix epoch, RFC 3339
//! parsing to epoch milliseconds (UTC), and the canonical printing of an instant.
//!
//! Dependency-free on purpose (the crate stays light): the two conversions are Howard
//! Hinnant's `days_from_civil` / `civil_from_days`, exact for the proleptic Gregorian
//! calendar. Only years 0000–9999 are accepted, so that every accepted instant prints back
//! as four-digit `YYYY-MM-DD…` and `now ± duration` never overflows an `i64`.
//!
//! The parser (`parser.rs`) calls [`parse_date_time`] on text that the grammar has already
//! shaped as `DDDD-DD-DD[T…]`; everything else (field ranges, the time and offset syntax)
//! is checked here and reported as a human sentence.

use std::fmt;

/// Milliseconds in a second.
pub const MS_PER_SECOND: i64 = 1_000;
/// Milliseconds in a minute.
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
/// Milliseconds in an hour.
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// Milliseconds in a week.
pub const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;

/// Milliseconds in one duration unit as the language spells it (`ms`, `s`,
/// `sec`, `m`, `min`, `h`, `hr`, `d`, `day`, `w`, `week`, …, in any case,
/// singular or plural); `None` for anything else.
pub fn duration_unit_ms(unit: &str) -> Option<u64> {
    let ms = match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => MS_PER_SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => MS_PER_MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => MS_PER_HOUR,
        "d" | "day" | "days" => MS_PER_DAY,
        "w" | "week" | "weeks" => MS_PER_WEEK,
        _ => return None,
    };
    Some(ms as u64)
}

/// Reads a duration literal as the language writes it (`10m`, `2h`, `7 days`,
/// `500ms`): digits, optional whitespace, a unit. `None` when malformed or
/// longer than [`crate::MAX_DURATION_MS`].
pub fn parse_duration(text: &str) -> Option<u64> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let unit = duration_unit_ms(text[digits_end..].trim_start_matches([' ', '\t', '\r', '\n']))?;
    text[..digits_end]
        .parse::<u64>()
        .ok()?
        .checked_mul(unit)
        .filter(|ms| *ms <= crate::MAX_DURATION_MS)
}

/// The earliest accepted instant, `0000-01-01T00:00:00Z`, in epoch milliseconds.
pub const MIN_TIME_MS: i64 = days_from_civil(0, 1, 1) * MS_PER_DAY;
/// The latest accepted instant, `9999-12-31T23:59:59.999Z`, in epoch milliseconds.
pub const MAX_TIME_MS: i64 = days_from_civil(10_000, 1, 1) * MS_PER_DAY - 1;

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`.
/// `month` is 1–12 and `day` 1–31; the result is meaningless otherwise.
pub const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = (if year >= 0 { year } else { year - 399 }) / 400;
    let year_of_era = year - era * 400; // [0, 399]
    let month_from_march = (if month > 2 { month - 3 } else { month + 9 }) as i64; // [0, 11]
    let day_of_year = (153 * month_from_march + 2) / 5 + day as i64 - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of `days` since 1970-01-01.
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = (if days >= 0 { days } else { days - 146_096 }) / 146_097;
    let day_of_era = days - era * 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month as u32, day)
}

/// Whether `year` is a Gregorian leap year.
pub const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days of `month` (1–12) in `year`.
pub const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const SHAPE: &str = "expected YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS with optional fractional seconds \
                     and then Z or an offset such as +05:30";

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time (`T` or `t` separator,
/// seconds required, optional fraction truncated to milliseconds, `Z`/`z` or `±HH:MM`) into
/// epoch milliseconds. The error is a sentence fragment explaining what is wrong.
pub fn parse_date_time(text: &str) -> Result<i64, String> {
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(SHAPE.to_string());
    }
    let year = digits(&bytes[0..4]).ok_or_else(|| SHAPE.to_string())? as i64;
    let month = digits(&bytes[5..7]).ok_or_else(|| SHAPE.to_string())?;
    let day = digits(&bytes[8..10]).ok_or_else(|| SHAPE.to_string())?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} does not exist (months are 01 to 12)"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("day {day:02} does not exist in {year:04}-{month:02}"));
    }
    let midnight_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if bytes.len() == 10 {
        return Ok(midnight_ms);
    }
    let time_of_day_ms = parse_time_and_offset(&bytes[10..])?;
    let ms = midnight_ms + time_of_day_ms;
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        return Err("it is outside the supported range 0000-01-01 to 9999-12-31 (UTC)".into());
    }
    Ok(ms)
}

/// Parses `THH:MM:SS[.fff…](Z|±HH:MM)` into milliseconds after midnight UTC of the date
/// (negative or beyond one day when the offset crosses midnight).
fn parse_time_and_offset(bytes: &[u8]) -> Result<i64, String> {
    let shape = || SHAPE.to_string();
    // `T` + `HH:MM:SS` is 9 bytes, and at least `Z` follows.
    if bytes.len() < 10 || !matches!(bytes[0], b'T' | b't') || bytes[3] != b':' || bytes[6] != b':'
    {
        return Err(shape());
    }
    let hour = digits(&bytes[1..3]).ok_or_else(shape)?;
    let minute = digits(&bytes[4..6]).ok_or_else(shape)?;
    let second = digits(&bytes[7..9]).ok_or_else(shape)?;
    if hour > 23 {
        return Err(format!("hour {hour:02} does not exist (hours are 00 to 23)"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} does not exist (minutes are 00 to 59)"));
    }
    if second == 60 {
        return Err("leap seconds (second 60) are not supported".into());
    }
    if second > 59 {
        return Err(format!("second {second:02} does not exist (seconds are 00 to 59)"));
    }
    let mut rest = &bytes[9..];
    let mut fraction_ms = 0;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let fraction_len = after_dot.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if fraction_len == 0 {
            return Err(shape());
        }
        // Milliseconds are the first three digits, padded with zeros; finer digits are
        // truncated (the engine's clock has millisecond resolution).
        for position in 0..3 {
            let digit = after_dot.get(position).filter(|byte| byte.is_ascii_digit());
            fraction_ms = fraction_ms * 10 + digit.map_or(0, |byte| i64::from(byte - b'0'));
        }
        rest = &after_dot[fraction_len..];
    }
    let offset_ms = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let offset_hour = digits(&[*h1, *h2]).ok_or_else(shape)?;
            let offset_minute = digits(&[*m1, *m2]).ok_or_else(shape)?;
            if offset_hour > 23 || offset_minute > 59 {
                return Err(format!(
                    "offset {}{offset_hour:02}:{offset_minute:02} does not exist \
                     (offsets are -23:59 to +23:59)",
                    *sign as char
                ));
            }
            let magnitude =
                i64::from(offset_hour) * MS_PER_HOUR + i64::from(offset_minute) * MS_PER_MINUTE;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return Err(shape()),
    };
    Ok(i64::from(hour) * MS_PER_HOUR
        + i64::from(minute) * MS_PER_MINUTE
        + i64::from(second) * MS_PER_SECOND
        + fraction_ms
        - offset_ms)
}

/// The value of a run of ASCII digits, or `None` if one byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |value, byte| {
        byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0'))
    })
}

/// Prints an instant canonically: `YYYY-MM-DD` at midnight UTC, otherwise
/// `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` before the `Z` when the milliseconds are not zero.
pub fn fmt_epoch_ms(ms: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    write!(f, "{year:04}-{month:02}-{day:02}")?;
    let time_of_day = ms.rem_euclid(MS_PER_DAY);
    if time_of_day == 0 {
        return Ok(());
    }
    let hour = time_of_day / MS_PER_HOUR;
    let minute = time_of_day % MS_PER_HOUR / MS_PER_MINUTE;
    let second = time_of_day % MS_PER_MINUTE / MS_PER_SECOND;
    let millis = time_of_day % MS_PER_SECOND;
    write!(f, "T{hour:02}:{minute:02}:{second:02}")?;
    if millis != 0 {
        write!(f, ".{millis:03}")?;
    }
    f.write_str("Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Instant(i64);
    impl fmt::Display for Instant {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt_epoch_ms(self.0, f)
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(parse_date_time("2026-11-01"), Ok(1_793_491_200_000));
        assert_eq!(parse_date_time("2026-11-01T09:30:00Z"), Ok(1_793_525_400_000));
        assert_eq!(parse_date_time("2026-11-01T15:00:00+05:30"), Ok(1_793_525_400_000));
        assert_eq!(parse_date_time("2026-11-01t09:30:00.1239z"), Ok(1_793_525_400_123));
        assert_eq!(parse_date_time("1969-12-31T23:59:59.999-00:00"), Ok(-1));
        assert_eq!(parse_date_time("2024-02-29"), Ok(days_from_civil(2024, 2, 29) * MS_PER_DAY));
    }

    #[test]
    fn civil_round_trip_over_the_whole_range() {
        let first = days_from_civil(0, 1, 1);
        let last = days_from_civil(9999, 12, 31);
        let mut expected = (0i64, 1u32, 1u32);
        for days in first..=last {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            assert_eq!(days_from_civil(expected.0, expected.1, expected.2), days);
            let (year, month, day) = expected;
            expected = if day < days_in_month(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
        }
    }

    #[test]
    fn bad_dates_say_why() {
        for (text, reason) in [
            ("2026-13-01", "month 13 does not exist"),
            ("2026-02-29", "day 29 does not exist in 2026-02"),
            ("2026-11-01T24:00:00Z", "hour 24"),
            ("2026-11-01T09:60:00Z", "minute 60"),
            ("2026-11-01T09:30:60Z", "leap seconds"),
            ("2026-11-01T09:30Z", "expected YYYY-MM-DD"),
            ("2026-11-01T09:30:00", "expected YYYY-MM-DD"),
            ("2026-11-01T09:30:00+5:30", "expected YYYY-MM-DD"),
            ("2026-11-01T09:30:00+24:00", "offset +24:00"),
            ("2026-11-01T09:30:00.Z", "expected YYYY-MM-DD"),
            ("0000-01-01T00:00:00+00:01", "outside the supported range"),
            ("9999-12-31T23:59:59-00:01", "outside the supported range"),
        ] {
            let error = parse_date_time(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn canonical_printing() {
        assert_eq!(Instant(0).to_string(), "1970-01-01");
        assert_eq!(Instant(1_793_525_400_000).to_string(), "2026-11-01T09:30:00Z");
        assert_eq!(Instant(1_793_525_400_123).to_string(), "2026-11-01T09:30:00.123Z");
        assert_eq!(Instant(-1).to_string(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Instant(MIN_TIME_MS).to_string(), "0000-01-01");
        assert_eq!(Instant(MAX_TIME_MS).to_string(), "9999-12-31T23:59:59.999Z");
    }
}
