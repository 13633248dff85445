//! A job's schedule: a 5-field cron expression read in an IANA time zone, and when it fires
//! next. Hand-written rather than taken from the `cron` crate: that one reads
//! seconds-first expressions and fires twice in an hour a clock change repeats, where
//! kuroko2's users (and every Unix crontab) expect Vixie cron's rule — a time the clock
//! skips fires at once after the change (once, however many slots it skipped), and a time
//! it repeats fires the first time only.
//!
//! Fields: minute (0–59), hour (0–23), day of month (1–31), month (1–12 or JAN–DEC), day of
//! week (0–7 or SUN–SAT, 0 and 7 both Sunday); each `*`, a number, a range `a-b`, a step
//! `*/n` or `a-b/n`, or a list of those. When both day fields are restricted, a day matches
//! either (cron's rule). Also `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Whether the day-of-month / day-of-week field was `*` (cron's OR rule needs to know).
    any_day: bool,
    any_weekday: bool,
}

/// The years ahead searched for a match; an expression that matches no day in them (30
/// February) never fires.
const SEARCH_DAYS: i64 = 366 * 8;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The bits `lo..=hi` of a field, read from `text` (names allowed where `names` are given,
/// numbered from `lo`).
fn field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(lo + i as u32);
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(|| format!("{what} `{s}` is not a number from {lo} to {hi}"))
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what} step `{s}` is not a whole number above 0"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15`: from 5 to the end, every 15.
                None if step > 1 => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("{what} range `{range}` runs backwards"));
        }
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Read a 5-field expression (or an `@` alias).
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expr = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "`{expr}` has {} fields; a schedule has 5: minute hour day-of-month month \
                 day-of-week (e.g. `30 2 * * 1`)",
                fields.len()
            ));
        };
        let weekdays = field(weekday, "day of week", 0, 7, &WEEKDAYS)?;
        Ok(Cron {
            minutes: field(minute, "minute", 0, 59, &[])?,
            hours: field(hour, "hour", 0, 23, &[])? as u32,
            days: field(day, "day of month", 1, 31, &[])? as u32,
            months: field(month, "month", 1, 12, &MONTHS)? as u16,
            // 7 is Sunday too.
            weekdays: ((weekdays | (weekdays >> 7)) & 0x7f) as u8,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        use chrono::Datelike;
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << d.day()) != 0;
        let weekday = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => day || weekday,
            _ => day && weekday,
        }
    }

    /// When the schedule fires next after `after`, read in `tz` (Vixie cron's rule at clock
    /// changes); None if it never does.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_in_steady_day(tz, after)
            .or_else(|| self.next_after_slow(tz, after))
    }

    /// The next fire time when it falls within a day after `after` and the zone's offset
    /// does not change from three hours before `after` to a day after (no clock change:
    /// local and UTC time differ by one fixed offset, so no minute needs resolving). A
    /// scheduling pass asks this of every job, every pass: a minutely job costs a few
    /// comparisons here rather than a day of minutes resolved in the zone.
    fn next_in_steady_day(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::{Offset, Timelike};
        let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let fixed = offset(after);
        // A zone's clock changes are months apart, so within these 28 hours there is at
        // most one, and the offsets at the window's ends differ if there is (UTC has none).
        if tz != Tz::UTC
            && (offset(after - Duration::hours(3)) != fixed
                || offset(after + Duration::hours(25)) != fixed)
        {
            return None;
        }
        let local = after.naive_utc() + Duration::seconds(i64::from(fixed.local_minus_utc()));
        let end = local + Duration::days(1);
        for date in [local.date(), local.date() + Duration::days(1)] {
            if !self.day_matches(date) {
                continue;
            }
            for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                if date == local.date() && hour < local.hour() {
                    continue;
                }
                for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                    let at = date.and_hms_opt(hour, minute, 0)?;
                    if at > end {
                        return None;
                    }
                    if at > local {
                        let utc = at - Duration::seconds(i64::from(fixed.local_minus_utc()));
                        return Some(DateTime::from_naive_utc_and_offset(utc, Utc));
                    }
                }
            }
        }
        None
    }

    fn next_after_slow(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).date_naive() - Duration::days(1);
        for offset in 0..SEARCH_DAYS {
            let date = start + Duration::days(offset);
            if !self.day_matches(date) {
                continue;
            }
            for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                    let local = date.and_hms_opt(hour, minute, 0)?;
                    let at = resolve(tz, local)?;
                    if at > after {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

/// The instant of wall-clock time `local` in `tz`: the first of two when the clock repeats
/// it, the end of the change when the clock skips it.
fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // Skipped: the first minute after the change (changes are at most a few hours).
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            match tz.from_local_datetime(&(local + Duration::minutes(m))) {
                // The first wall-clock minute that exists again is the change itself.
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    Some(t.with_timezone(&Utc))
                }
                LocalResult::None => None,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        Cron::parse(expr)
            .unwrap()
            .next_after(tz.parse().unwrap(), utc(after))
            .unwrap()
            .to_rfc3339()
    }

    /// (expression, zone, after, the next fire time), each checked.
    fn fires(cases: &[(&str, &str, &str, &str)]) {
        for (expr, tz, after, want) in cases {
            assert_eq!(next(expr, tz, after), *want, "{expr} in {tz} after {after}");
        }
    }

    #[test]
    fn fields_read_as_crontab_reads_them() {
        fires(&[
            (
                "30 2 * * *",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:30:00+00:00",
            ),
            (
                "*/20 * * * *",
                "UTC",
                "2026-01-01T00:45:00Z",
                "2026-01-01T01:00:00+00:00",
            ),
            (
                "5-10/5 * * * *",
                "UTC",
                "2026-01-01T00:05:00Z",
                "2026-01-01T00:10:00+00:00",
            ),
            (
                "0 9 * * MON-FRI",
                "UTC",
                "2026-01-02T10:00:00Z",
                "2026-01-05T09:00:00+00:00",
            ),
            // 7 is Sunday; 2026-01-04 is a Sunday.
            (
                "0 0 * * 7",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-01-04T00:00:00+00:00",
            ),
            (
                "@monthly",
                "UTC",
                "2026-01-15T00:00:00Z",
                "2026-02-01T00:00:00+00:00",
            ),
            (
                "0 0 29 FEB *",
                "UTC",
                "2026-03-01T00:00:00Z",
                "2028-02-29T00:00:00+00:00",
            ),
            // Both day fields restricted: either matches (the 13th, or a Friday).
            (
                "0 0 13 * FRI",
                "UTC",
                "2026-01-03T00:00:00Z",
                "2026-01-09T00:00:00+00:00",
            ),
            (
                "0 0 13 * FRI",
                "UTC",
                "2026-01-10T00:00:00Z",
                "2026-01-13T00:00:00+00:00",
            ),
            // In a zone: 09:00 in Tokyo is 00:00 UTC.
            (
                "0 9 * * *",
                "Asia/Tokyo",
                "2026-01-01T01:00:00Z",
                "2026-01-02T00:00:00+00:00",
            ),
        ]);
        assert!(
            Cron::parse("0 0 30 2 *")
                .unwrap()
                .next_after(Tz::UTC, utc("2026-01-01T00:00:00Z"))
                .is_none()
        );
    }

    #[test]
    fn a_time_the_clock_skips_fires_once_at_the_change() {
        // Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC); four skipped
        // slots fire once.
        let b = "Europe/Berlin";
        fires(&[
            (
                "30 2 * * *",
                b,
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00+00:00",
            ),
            (
                "30 2 * * *",
                b,
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00+00:00",
            ),
            (
                "*/15 2 * * *",
                b,
                "2026-03-28T12:00:00Z",
                "2026-03-29T01:00:00+00:00",
            ),
            (
                "*/15 2 * * *",
                b,
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:00:00+00:00",
            ),
        ]);
    }

    #[test]
    fn a_time_the_clock_repeats_fires_the_first_time_only() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at 00:30
        // and at 01:30 UTC.
        let b = "Europe/Berlin";
        fires(&[
            (
                "30 2 * * *",
                b,
                "2026-10-24T12:00:00Z",
                "2026-10-25T00:30:00+00:00",
            ),
            (
                "30 2 * * *",
                b,
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00+00:00",
            ),
        ]);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, says) in [
            ("61 * * * *", "minute `61` is not a number from 0 to 59"),
            ("* * * *", "has 4 fields; a schedule has 5"),
            ("* 5-1 * * *", "runs backwards"),
            ("*/0 * * * *", "step `0`"),
            ("* * * FOO *", "month `FOO`"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.contains(says), "{expr}: {e}");
        }
    }

    #[test]
    fn the_steady_day_shortcut_agrees_with_resolving_every_minute() {
        let exprs = [
            "* * * * *",
            "*/7 * * * *",
            "30 2 * * *",
            "0 9 * * 1",
            "15 1,3 * * *",
            "0 0 1 * *",
        ];
        let zones: [Tz; 5] = [
            "UTC".parse().unwrap(),
            "Europe/Berlin".parse().unwrap(),
            "America/New_York".parse().unwrap(),
            "Asia/Tokyo".parse().unwrap(),
            "Australia/Lord_Howe".parse().unwrap(),
        ];
        // Every 37 minutes across 2026 (both clock changes of each zone), at odd seconds.
        let mut at = utc("2026-01-01T00:00:13Z");
        let mut checked = 0;
        while at < utc("2027-01-01T00:00:00Z") {
            for e in exprs {
                let c = Cron::parse(e).unwrap();
                for z in zones {
                    assert_eq!(
                        c.next_after(z, at),
                        c.next_after_slow(z, at),
                        "{e} in {z} after {at}"
                    );
                    checked += 1;
                }
            }
            at += Duration::minutes(37 * 13);
        }
        assert!(checked > 10_000, "{checked}");
    }
}
