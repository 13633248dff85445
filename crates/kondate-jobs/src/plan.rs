//! The scheduling pass's arithmetic for one job: given when the job's slots were last looked
//! at and the time now (the caller's clock — tests pass any), which slots are launched, how
//! many passed unlaunched, and where the next pass starts. Pure: the scheduler records the
//! cursor and launches the slots under unique launch keys, so two schedulers computing the
//! same plan launch each slot once.
//!
//! - The slots are those of every schedule after the cursor up to now, each instant once
//!   (two schedules firing at the same moment make one slot), minus those a
//!   `suspend_schedules` expression fires at (in its own zone).
//! - A job seen for the first time starts `grace` before now: a slot just due is launched,
//!   the past before the job existed is not.
//! - Catch-up: `none` launches only slots at most `grace` old; `latest` the newest slot;
//!   `all` each, oldest first, at most `max` — the newest `max`. The rest are counted as
//!   missed (the scheduler logs and reports them).
//! - A suspended job launches nothing and its cursor moves on, so resuming it does not
//!   launch what passed while it was suspended.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use crate::definition::{Catchup, JobDefinition, Schedule};

/// What one pass does for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The slots to launch, oldest first.
    pub launch: Vec<DateTime<Utc>>,
    /// Slots that passed and are not launched (catch-up).
    pub missed: u64,
    /// Slots skipped by `suspend_schedules`.
    pub suspended: u64,
    /// Where the next pass starts (exclusive): now.
    pub cursor: DateTime<Utc>,
    /// The first slot after now, when the pass looked that far (the next pass with work).
    pub next: Option<DateTime<Utc>>,
}

/// The slots one pass looks through at most; a job whose cursor is further behind (a
/// minutely job stopped for two years) has the older ones counted as missed.
const MAX_SLOTS: u64 = 1_100_000;

/// The first slot of any of `schedules` after `after`.
fn next_slot(schedules: &[Schedule], after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedules
        .iter()
        .filter_map(|s| s.cron.next_after(s.zone, after))
        .min()
}

/// Whether one of `suspend` fires at `slot` (in its own zone).
fn suspended_at(suspend: &[Schedule], slot: DateTime<Utc>) -> bool {
    suspend.iter().any(|s| s.fires_at(slot))
}

/// `slot` on the clock of the schedule of `job` that fires at it (UTC when none does), for
/// showing a fire time as the job's author wrote it.
pub fn local_time(job: &JobDefinition, slot: DateTime<Utc>) -> DateTime<chrono_tz::Tz> {
    let zone = job
        .schedules
        .iter()
        .find(|s| s.fires_at(slot))
        .map_or(chrono_tz::Tz::UTC, |s| s.zone);
    slot.with_timezone(&zone)
}

/// The pass for `job`, last looked at up to `cursor` (None: never), at `now`.
pub fn due(
    job: &JobDefinition,
    cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Plan {
    let mut plan = Plan {
        launch: Vec::new(),
        missed: 0,
        suspended: 0,
        cursor: now,
        next: None,
    };
    if job.suspended || job.schedules.is_empty() {
        return plan;
    }
    let start = cursor.unwrap_or(now - grace);
    if start >= now {
        plan.cursor = start;
        return plan;
    }
    // The newest slots that may be launched; older ones are counted as they fall out.
    let keep = match job.catchup {
        Catchup::None | Catchup::Latest => 1,
        Catchup::All { max } => max as usize,
    };
    let mut kept: VecDeque<DateTime<Utc>> = VecDeque::with_capacity(keep.min(1024));
    let mut at = start;
    let mut seen = 0u64;
    while let Some(slot) = next_slot(&job.schedules, at) {
        if slot > now {
            plan.next = Some(slot);
            break;
        }
        at = slot;
        seen += 1;
        if seen > MAX_SLOTS {
            plan.missed += 1;
            continue;
        }
        if suspended_at(&job.suspend_schedules, slot) {
            plan.suspended += 1;
            continue;
        }
        if kept.len() == keep {
            kept.pop_front();
            plan.missed += 1;
        }
        kept.push_back(slot);
    }
    for slot in kept {
        if job.catchup == Catchup::None && now - slot > grace {
            plan.missed += 1;
        } else {
            plan.launch.push(slot);
        }
    }
    plan
}

/// The next `n` slots of `job` after `after`, suspended ones left out (for `jobs next` and
/// listings). Empty for a job without schedules.
pub fn next_slots(job: &JobDefinition, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut at = after;
    // Suspended slots are skipped, but not forever (a suspend schedule covering every slot).
    let mut budget = 100_000;
    while out.len() < n && budget > 0 {
        let Some(slot) = next_slot(&job.schedules, at) else {
            break;
        };
        at = slot;
        budget -= 1;
        if !suspended_at(&job.suspend_schedules, slot) {
            out.push(slot);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::from_json;

    fn job(fields: serde_json::Value) -> JobDefinition {
        let mut json = serde_json::json!({ "script": "noop:\n" });
        for (k, v) in fields.as_object().unwrap() {
            json[k] = v.clone();
        }
        from_json("jobs/j.jsonnet", "j", json).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ts(v: &[&str]) -> Vec<DateTime<Utc>> {
        v.iter().map(|s| t(s)).collect()
    }

    const GRACE: Duration = Duration::minutes(1);

    /// (catchup fields, now, launched, missed) for a daily 03:00 UTC job last looked at
    /// on the 1st at 03:00.
    #[test]
    fn catch_up_after_downtime() {
        let cases = [
            (
                "latest",
                "2026-06-04T03:00:05Z",
                &["2026-06-04T03:00:00Z"][..],
                2,
            ),
            (
                "latest",
                "2026-06-04T09:00:00Z",
                &["2026-06-04T03:00:00Z"],
                2,
            ),
            (
                "all",
                "2026-06-04T03:00:05Z",
                &[
                    "2026-06-02T03:00:00Z",
                    "2026-06-03T03:00:00Z",
                    "2026-06-04T03:00:00Z",
                ],
                0,
            ),
            ("none", "2026-06-04T03:00:30Z", &["2026-06-04T03:00:00Z"], 2),
            ("none", "2026-06-04T03:10:00Z", &[], 3),
        ];
        for (catchup, now, launched, missed) in cases {
            let j = job(serde_json::json!({ "schedules": ["0 3 * * *"], "catchup": catchup }));
            let plan = due(&j, Some(t("2026-06-01T03:00:00Z")), t(now), GRACE);
            assert_eq!(plan.launch, ts(launched), "{catchup} at {now}");
            assert_eq!(plan.missed, missed, "{catchup} at {now}");
            assert_eq!(plan.cursor, t(now));
        }
    }

    #[test]
    fn catch_up_all_launches_the_newest_up_to_its_max() {
        let j = job(serde_json::json!({
            "schedules": ["0 * * * *"], "catchup": "all", "catchup_max": 2,
        }));
        let plan = due(
            &j,
            Some(t("2026-06-01T00:00:00Z")),
            t("2026-06-01T05:30:00Z"),
            GRACE,
        );
        assert_eq!(
            plan.launch,
            ts(&["2026-06-01T04:00:00Z", "2026-06-01T05:00:00Z"])
        );
        assert_eq!(plan.missed, 3);
    }

    #[test]
    fn a_job_seen_first_launches_only_a_slot_just_due() {
        let j = job(serde_json::json!({ "schedules": ["0 3 * * *"] }));
        let plan = due(&j, None, t("2026-06-04T03:00:20Z"), GRACE);
        assert_eq!(plan.launch, ts(&["2026-06-04T03:00:00Z"]));
        let plan = due(&j, None, t("2026-06-04T03:05:00Z"), GRACE);
        assert_eq!(plan.launch, Vec::<DateTime<Utc>>::new());
        assert_eq!(plan.missed, 0);
    }

    #[test]
    fn a_suspended_job_launches_nothing_and_moves_on() {
        let j = job(serde_json::json!({ "schedules": ["* * * * *"], "suspended": true }));
        let now = t("2026-06-04T03:00:00Z");
        let plan = due(&j, Some(t("2026-06-01T00:00:00Z")), now, GRACE);
        assert_eq!((plan.launch.len(), plan.missed, plan.cursor), (0, 0, now));
    }

    #[test]
    fn suspend_schedules_skip_their_slots_in_their_zone() {
        // Daily at 09:00 Tokyo, except on New Year's Day (in Tokyo) and on Sundays (UTC).
        let j = job(serde_json::json!({
            "schedules": [{ "cron": "0 9 * * *", "time_zone": "Asia/Tokyo" }],
            "suspend_schedules": [
                { "cron": "* * 1 1 *", "time_zone": "Asia/Tokyo" },
                "* * * * 0",
            ],
            "catchup": "all",
            "catchup_max": 100,
        }));
        let plan = due(
            &j,
            Some(t("2026-12-30T12:00:00Z")),
            t("2027-01-04T12:00:00Z"),
            GRACE,
        );
        // 2026-12-31 00:00Z (Thu), 2027-01-01 (skipped: New Year), 01-02 (Sat),
        // 01-03 (Sun, skipped), 01-04 (Mon).
        assert_eq!(
            plan.launch,
            ts(&[
                "2026-12-31T00:00:00Z",
                "2027-01-02T00:00:00Z",
                "2027-01-04T00:00:00Z"
            ])
        );
        assert_eq!(plan.suspended, 2);
    }

    #[test]
    fn next_slots_leave_out_suspended_ones() {
        let j = job(serde_json::json!({
            "schedules": [{ "cron": "0 9 * * *", "time_zone": "Asia/Tokyo" }],
            "suspend_schedules": ["* * * * 0"],
        }));
        // 2027-01-02 is a Saturday: its slot (00:00Z), Sunday's is skipped, then Monday's.
        assert_eq!(
            next_slots(&j, t("2027-01-01T12:00:00Z"), 2),
            ts(&["2027-01-02T00:00:00Z", "2027-01-04T00:00:00Z"])
        );
        let none = job(serde_json::json!({}));
        assert!(next_slots(&none, t("2027-01-01T12:00:00Z"), 3).is_empty());
    }

    #[test]
    fn two_schedules_at_one_instant_make_one_slot() {
        let j = job(serde_json::json!({
            "schedules": ["0 3 * * *", { "cron": "0 12 * * *", "time_zone": "Asia/Tokyo" }],
            "catchup": "all",
        }));
        let plan = due(
            &j,
            Some(t("2026-06-01T04:00:00Z")),
            t("2026-06-03T04:00:00Z"),
            GRACE,
        );
        assert_eq!(
            plan.launch,
            ts(&["2026-06-02T03:00:00Z", "2026-06-03T03:00:00Z"])
        );
    }

    /// A 02:30 job in Europe/Berlin: on the day the clock skips 02:00–03:00 it runs once, at
    /// 03:00 CEST; on the day 02:00–03:00 repeats, once, the first time.
    #[test]
    fn a_0230_berlin_job_across_both_clock_changes() {
        let j = job(serde_json::json!({
            "schedules": [{ "cron": "30 2 * * *", "time_zone": "Europe/Berlin" }],
            "catchup": "all",
        }));
        for (after, now, launched) in [
            (
                "2026-03-28T12:00:00Z",
                "2026-03-30T12:00:00Z",
                ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            (
                "2026-10-24T12:00:00Z",
                "2026-10-26T12:00:00Z",
                ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ),
        ] {
            let plan = due(&j, Some(t(after)), t(now), GRACE);
            assert_eq!(plan.launch, ts(&launched), "{after} → {now}");
            // Passes every few seconds across the change launch the same slots, once.
            let mut cursor = t(after);
            let mut launched_by_passes = Vec::new();
            while cursor < t(now) {
                let next = cursor + Duration::seconds(7);
                let p = due(&j, Some(cursor), next, GRACE);
                launched_by_passes.extend(p.launch);
                cursor = p.cursor;
            }
            assert_eq!(launched_by_passes, ts(&launched), "passes {after} → {now}");
        }
    }
}
