//! The scheduler's state on a real state database — SQLite here, PostgreSQL and MariaDB in
//! CI's service step: revisions and load errors, passes on a clock the test moves, exactly
//! one launch per slot when several schedulers pass at once, `prevent_multi` and catch-up.

mod common;

use chrono::Duration;
use common::Fixture;
use kondate_db::Database;
use kondate_jobs::scheduler::{ERROR, SUCCESS};
use kondate_jobs::{Loaded, Scheduler};
use serde_json::json;

async fn scheduler(f: &Fixture) -> Scheduler {
    Scheduler::new(Database::connect(&f.url).await.unwrap())
}

use common::t;

fn def(name: &str, fields: serde_json::Value) -> Loaded {
    common::def_with(name, "noop:\n", fields)
}

const GRACE: Duration = Duration::minutes(1);

async fn revisions_and_load_errors(f: Fixture) {
    let s = scheduler(&f).await;
    let now = t("2026-06-01T00:00:00Z");
    let a1 = def("a", json!({ "schedules": ["0 3 * * *"] }));
    let r = s.load(&[a1], now).await.unwrap();
    assert_eq!(r.revised.len(), 1);
    let first = r.revised[0].1;
    // The same definition again: no new revision.
    let r = s
        .load(&[def("a", json!({ "schedules": ["0 3 * * *"] }))], now)
        .await
        .unwrap();
    assert!(r.revised.is_empty(), "{r:?}");
    // A change is a new revision, kept with its digest.
    let r = s
        .load(&[def("a", json!({ "schedules": ["0 4 * * *"] }))], now)
        .await
        .unwrap();
    let second = r.revised[0].1;
    assert_ne!(first, second);
    // A definition that fails keeps the last good revision, with the error recorded.
    let error = "jobs/a.jsonnet: field `schedules[0]`: minute 61 is out of range".to_string();
    let r = s
        .load(
            &[Loaded::Failed {
                name: "a".into(),
                error: error.clone(),
            }],
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        r.failed,
        vec![("a".to_string(), Some(second), error.clone())]
    );
    let row = s.job_row("a").await.unwrap().unwrap();
    assert_eq!(
        (row.revision, row.load_error.as_deref()),
        (Some(second), Some(error.as_str()))
    );
    // It is still scheduled on that revision (04:00).
    let p = s.pass(t("2026-06-01T04:00:10Z"), GRACE).await.unwrap();
    assert_eq!(p.launched.len(), 1, "{p:?}");
    assert_eq!(p.launched[0].1, t("2026-06-01T04:00:00Z"));
    // Fixed: the error is gone. The file removed: no longer scheduled; back: scheduled.
    s.load(&[def("a", json!({ "schedules": ["0 4 * * *"] }))], now)
        .await
        .unwrap();
    assert_eq!(s.job_row("a").await.unwrap().unwrap().load_error, None);
    let r = s.load(&[], now).await.unwrap();
    assert_eq!(r.removed, ["a"]);
    let p = s.pass(t("2026-06-02T04:00:10Z"), GRACE).await.unwrap();
    assert!(p.launched.is_empty(), "{p:?}");
    s.load(&[def("a", json!({ "schedules": ["0 4 * * *"] }))], now)
        .await
        .unwrap();
    assert!(!s.job_row("a").await.unwrap().unwrap().removed);
    // A job that never loaded has no revision and is not scheduled, but is listed.
    s.load(
        &[Loaded::Failed {
            name: "b".into(),
            error: "bad".into(),
        }],
        now,
    )
    .await
    .unwrap();
    let b = s.job_row("b").await.unwrap().unwrap();
    assert_eq!((b.revision, b.load_error.as_deref()), (None, Some("bad")));
}

async fn passes_launch_due_slots_and_respect_prevent_multi(f: Fixture) {
    let s = scheduler(&f).await;
    let now = t("2026-06-01T00:00:00Z");
    s.load(
        &[
            def("daily", json!({ "schedules": ["0 3 * * *"] })),
            def(
                "hourly_all",
                json!({ "schedules": ["0 * * * *"], "catchup": "all" }),
            ),
            def(
                "overlap",
                json!({ "schedules": ["*/10 * * * *"], "prevent_multi": "allow" }),
            ),
        ],
        now,
    )
    .await
    .unwrap();
    // First sight at 00:00:30: the hourly slot at 00:00 and the 10-minute one are just due.
    let p = s.pass(t("2026-06-01T00:00:30Z"), GRACE).await.unwrap();
    let mut launched: Vec<_> = p
        .launched
        .iter()
        .map(|(j, at, _)| (j.as_str(), *at))
        .collect();
    launched.sort();
    assert_eq!(
        launched,
        [
            ("hourly_all", t("2026-06-01T00:00:00Z")),
            ("overlap", t("2026-06-01T00:00:00Z")),
        ]
    );
    // The same moment again launches nothing.
    let p = s.pass(t("2026-06-01T00:00:30Z"), GRACE).await.unwrap();
    assert!(p.launched.is_empty(), "{p:?}");
    // Down until 03:00:05. daily: its 03:00 slot. overlap (allow): the newest slot, though
    // its first instance still works. hourly_all: 01:00 waits behind the working 00:00.
    let p = s.pass(t("2026-06-01T03:00:05Z"), GRACE).await.unwrap();
    let mut launched: Vec<_> = p
        .launched
        .iter()
        .map(|(j, at, _)| (j.as_str(), *at))
        .collect();
    launched.sort();
    assert_eq!(
        launched,
        [
            ("daily", t("2026-06-01T03:00:00Z")),
            ("overlap", t("2026-06-01T03:00:00Z")),
        ]
    );
    assert_eq!(
        p.prevented,
        [("hourly_all".to_string(), t("2026-06-01T01:00:00Z"))]
    );
    // The backlog drains one by one as each instance ends (also through ERROR → SUCCESS:
    // an instance in ERROR blocks by default).
    let mut drained = Vec::new();
    for _ in 0..3 {
        let working = s.instances("hourly_all", 1).await.unwrap();
        s.set_status(working[0].id, ERROR, t("2026-06-01T03:00:06Z"))
            .await
            .unwrap();
        let p = s.pass(t("2026-06-01T03:00:07Z"), GRACE).await.unwrap();
        assert!(p.launched.is_empty(), "an instance in ERROR blocks: {p:?}");
        s.set_status(working[0].id, SUCCESS, t("2026-06-01T03:00:08Z"))
            .await
            .unwrap();
        let p = s.pass(t("2026-06-01T03:00:09Z"), GRACE).await.unwrap();
        drained.extend(p.launched.iter().map(|l| l.1));
    }
    assert_eq!(
        drained,
        [
            t("2026-06-01T01:00:00Z"),
            t("2026-06-01T02:00:00Z"),
            t("2026-06-01T03:00:00Z"),
        ]
    );
    // daily (latest, working_or_error): the next day's slot is skipped while 03:00 works.
    let p = s.pass(t("2026-06-02T03:00:01Z"), GRACE).await.unwrap();
    assert!(
        p.prevented
            .contains(&("daily".to_string(), t("2026-06-02T03:00:00Z"))),
        "{p:?}"
    );
    let daily = s.instances("daily", 10).await.unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!(
        daily[0].scheduled_at,
        t("2026-06-01T03:00:00Z").timestamp_millis()
    );
    assert_eq!(daily[0].reason, "schedule");
}

/// Several schedulers, each with its own connections, pass over the same jobs at once while
/// the clock runs through `slots` minutes: each slot is launched exactly once.
async fn concurrent_passes_launch_each_slot_once(f: Fixture, slots: i64) {
    let start = t("2026-06-01T00:00:00Z");
    let setup = scheduler(&f).await;
    setup
        .load(
            &[
                def(
                    "every_minute",
                    json!({ "schedules": ["* * * * *"], "catchup": "all",
                            "catchup_max": 10000, "prevent_multi": "allow" }),
                ),
                def(
                    "every_2",
                    json!({ "schedules": ["*/2 * * * *"], "catchup": "all",
                            "catchup_max": 10000, "prevent_multi": 0 }),
                ),
            ],
            start,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for k in 0..3i64 {
        let s = scheduler(&f).await;
        tasks.push(tokio::spawn(async move {
            let mut launched = 0usize;
            // Each scheduler's clock runs on its own steps (7, 11 and 13 s), so their passes
            // interleave at every offset.
            let step = [7, 11, 13][k as usize];
            let mut now = start;
            while now <= start + Duration::minutes(slots) + Duration::seconds(30) {
                launched += s.pass(now, GRACE).await.unwrap().launched.len();
                now += Duration::seconds(step);
            }
            launched
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let minute = setup.instances("every_minute", 100_000).await.unwrap();
    let two = setup.instances("every_2", 100_000).await.unwrap();
    assert_eq!(total, minute.len() + two.len());
    // Slots 00:00 (just due when first seen) to 00:SLOTS, each once.
    let mut at: Vec<i64> = minute.iter().map(|i| i.scheduled_at).collect();
    at.sort();
    let want: Vec<i64> = (0..=slots)
        .map(|m| (start + Duration::minutes(m)).timestamp_millis())
        .collect();
    assert_eq!(at, want);
    let mut at: Vec<i64> = two.iter().map(|i| i.scheduled_at).collect();
    at.sort();
    let want: Vec<i64> = (0..=slots)
        .step_by(2)
        .map(|m| (start + Duration::minutes(m)).timestamp_millis())
        .collect();
    assert_eq!(at, want);
}

/// Events launch the jobs they trigger, once per event, from the first pass on (the past
/// triggers nothing), also when two schedulers pass at once.
async fn triggers_launch_once_per_event(f: Fixture) {
    let s = scheduler(&f).await;
    let now = t("2026-06-01T00:00:00Z");
    s.load(
        &[
            def("train", json!({ "triggers": ["labels.changed: tags"] })),
            def(
                "infer",
                json!({ "triggers": ["job.succeeded: train", "model.alias_moved: clf@production"],
                        "prevent_multi": "allow" }),
            ),
            def(
                "quiet",
                json!({ "triggers": ["labels.changed: tags"], "suspended": true }),
            ),
        ],
        now,
    )
    .await
    .unwrap();
    let db = Database::connect(&f.url).await.unwrap();
    let event = |kind: &'static str, subject: &'static str, payload: serde_json::Value| {
        let db = db.clone();
        async move {
            kondate_db::state::record_event(&db, kind, subject, &payload.to_string(), 1)
                .await
                .unwrap()
        }
    };
    event(
        "labels.changed",
        "tags@1",
        json!({ "label_set": "tags", "revision": 1 }),
    )
    .await;
    let p = s.pass(now, GRACE).await.unwrap();
    assert!(p.triggered.is_empty(), "the past triggers nothing: {p:?}");

    event(
        "labels.changed",
        "tags@2",
        json!({ "label_set": "tags", "revision": 2 }),
    )
    .await;
    event(
        "labels.changed",
        "other@1",
        json!({ "label_set": "other", "revision": 1 }),
    )
    .await;
    event("model.pushed", "clf@3", json!({})).await;
    let (a, b) = (scheduler(&f).await, scheduler(&f).await);
    let (pa, pb) = tokio::join!(a.pass(now, GRACE), b.pass(now, GRACE));
    let triggered: Vec<_> = pa
        .unwrap()
        .triggered
        .into_iter()
        .chain(pb.unwrap().triggered)
        .map(|(job, _, _)| job)
        .collect();
    assert_eq!(triggered, ["train"]);
    let train = s.instances("train", 10).await.unwrap();
    assert_eq!((train.len(), train[0].reason.as_str()), (1, "trigger"));
    assert!(s.instances("quiet", 10).await.unwrap().is_empty());

    event("model.alias_moved", "clf@production", json!({ "to": 3 })).await;
    event("model.alias_moved", "clf@staging", json!({ "to": 4 })).await;
    event("job.succeeded", "train", json!({ "instance": train[0].id })).await;
    let p = s.pass(now, GRACE).await.unwrap();
    let jobs: Vec<_> = p.triggered.iter().map(|(j, _, _)| j.as_str()).collect();
    assert_eq!(jobs, ["infer", "infer"]);
    assert!(s.pass(now, GRACE).await.unwrap().triggered.is_empty());
}

async fn concurrent_passes_over_two_hours(f: Fixture) {
    concurrent_passes_launch_each_slot_once(f, 120).await
}

/// Schedulers whose clocks disagree (each started at its own time, or skewed) first see a
/// set of new jobs at once: whichever records a job's start first, the others plan from it,
/// so every job's slots run from there to the end without a gap. (Each planning from its
/// own first `now` left the minutes between two schedulers' first passes unlaunched.)
async fn schedulers_first_seeing_jobs_at_different_times_leave_no_gap(f: Fixture) {
    let start = t("2026-06-01T00:00:00Z");
    let setup = scheduler(&f).await;
    let names: Vec<String> = (0..20).map(|i| format!("job_{i:02}")).collect();
    let defs: Vec<Loaded> = names
        .iter()
        .map(|n| {
            def(
                n,
                json!({ "schedules": ["* * * * *"], "catchup": "all",
                        "catchup_max": 10000, "prevent_multi": "allow" }),
            )
        })
        .collect();
    setup.load(&defs, start).await.unwrap();
    let end = start + Duration::minutes(30);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let mut tasks = Vec::new();
    for k in 0..3i64 {
        let s = scheduler(&f).await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            // Clocks 0, 5 and 10 minutes apart; the first passes start together.
            let mut now = start + Duration::minutes(5 * k);
            barrier.wait().await;
            while now <= end {
                s.pass(now, GRACE).await.unwrap();
                now += Duration::seconds(20);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for name in &names {
        let mut at: Vec<i64> = setup
            .instances(name, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|i| i.scheduled_at)
            .collect();
        at.sort();
        let first = *at.first().expect("some slot launched");
        assert!(
            first <= (start + Duration::minutes(10)).timestamp_millis(),
            "{name}: first slot {first}"
        );
        let want: Vec<i64> = (first..=end.timestamp_millis()).step_by(60_000).collect();
        assert_eq!(at, want, "{name}: each minute from the first, once");
    }
}

on_every_state_database!("jobs_", revisions, revisions_and_load_errors);
on_every_state_database!(
    "jobs_",
    first_seen,
    schedulers_first_seeing_jobs_at_different_times_leave_no_gap
);
on_every_state_database!(
    "jobs_",
    passes,
    passes_launch_due_slots_and_respect_prevent_multi
);
on_every_state_database!("jobs_", exactly_once, concurrent_passes_over_two_hours);
on_every_state_database!("jobs_", triggers, triggers_launch_once_per_event);

/// A job suspended at run time launches nothing — no slot, no trigger — and, resumed,
/// launches from then on, not the slots that passed meanwhile.
async fn suspended_jobs_launch_nothing_and_resume_from_now(f: Fixture) {
    let s = scheduler(&f).await;
    let start = t("2026-06-01T00:00:00Z");
    s.load(
        &[def(
            "hourly",
            json!({ "schedules": ["0 * * * *"], "catchup": "all", "catchup_max": 100, "prevent_multi": "allow",
                    "triggers": ["job.succeeded: other"] }),
        )],
        start,
    )
    .await
    .unwrap();
    assert_eq!(s.pass(start, GRACE).await.unwrap().launched.len(), 1);
    s.suspend("hourly", "user:ana@example.com", start)
        .await
        .unwrap();
    assert_eq!(
        s.job_row("hourly")
            .await
            .unwrap()
            .unwrap()
            .suspended_by
            .as_deref(),
        Some("user:ana@example.com")
    );
    let db = Database::connect(&f.url).await.unwrap();
    kondate_db::state::record_event(&db, "job.succeeded", "other", "{}", 1)
        .await
        .unwrap();
    let r = s.pass(start + Duration::hours(3), GRACE).await.unwrap();
    assert!(r.launched.is_empty() && r.triggered.is_empty(), "{r:?}");
    // Resumed at 03:30: the 01:00–03:00 slots stay passed; 04:00 launches.
    s.resume("hourly", start + Duration::minutes(210))
        .await
        .unwrap();
    assert!(
        s.job_row("hourly")
            .await
            .unwrap()
            .unwrap()
            .suspended_by
            .is_none()
    );
    let r = s.pass(start + Duration::minutes(210), GRACE).await.unwrap();
    assert!(r.launched.is_empty(), "{r:?}");
    let r = s.pass(start + Duration::hours(4), GRACE).await.unwrap();
    assert_eq!(r.launched.len(), 1);
    assert_eq!(r.launched[0].1, start + Duration::hours(4));
    assert!(matches!(
        s.suspend("nope", "x", start).await,
        Err(kondate_jobs::JobsError::NoSuchJob(_))
    ));
}
on_every_state_database!(
    "jobs_",
    suspend,
    suspended_jobs_launch_nothing_and_resume_from_now
);

/// A scheduler keeps the jobs in memory between passes: what another process changes —
/// a new revision, a suspension, a resume, a definition that stops saying `suspended` — is
/// what its next pass schedules; and a slot another scheduler launched first is counted as
/// launched elsewhere, not as refused by `prevent_multi`.
async fn passes_see_what_other_processes_change(f: Fixture) {
    let (a, b) = (scheduler(&f).await, scheduler(&f).await);
    let start = t("2026-06-01T00:00:00Z");
    let hourly = |fields: serde_json::Value| {
        let mut j = json!({ "schedules": ["0 * * * *"] });
        for (k, v) in fields.as_object().unwrap() {
            j[k] = v.clone();
        }
        def("hourly", j)
    };
    // Instances end between slots (`prevent_multi` would refuse a slot while one works).
    let db = Database::connect(&f.url).await.unwrap();
    let finish = || db.execute("UPDATE kondate_job_instances SET status = 'success'", &[]);
    b.load(&[hourly(json!({}))], start).await.unwrap();
    assert_eq!(a.pass(start, GRACE).await.unwrap().launched.len(), 1);
    finish().await.unwrap();
    // 01:00: B launches first; A, from the cursor it last saw, finds it launched.
    let one = start + Duration::hours(1);
    assert_eq!(b.pass(one, GRACE).await.unwrap().launched.len(), 1);
    let r = a.pass(one + Duration::seconds(1), GRACE).await.unwrap();
    assert_eq!((r.launched.len(), r.prevented.len()), (0, 0), "{r:?}");
    finish().await.unwrap();
    // A new revision through B: half past, from A's next pass on.
    b.load(&[hourly(json!({ "schedules": ["30 * * * *"] }))], one)
        .await
        .unwrap();
    let r = a.pass(one + Duration::minutes(30), GRACE).await.unwrap();
    assert_eq!(r.launched.len(), 1, "{r:?}");
    assert_eq!(r.launched[0].1, one + Duration::minutes(30));
    // Suspended through B: A launches nothing; resumed: nothing that passed meanwhile.
    finish().await.unwrap();
    b.suspend(
        "hourly",
        "user:ana@example.com",
        one + Duration::minutes(40),
    )
    .await
    .unwrap();
    let r = a.pass(start + Duration::minutes(150), GRACE).await.unwrap();
    assert!(r.launched.is_empty(), "{r:?}");
    b.resume("hourly", start + Duration::minutes(200))
        .await
        .unwrap();
    let r = a.pass(start + Duration::minutes(201), GRACE).await.unwrap();
    assert!(r.launched.is_empty() && r.missed == 0, "{r:?}");
    let r = a.pass(start + Duration::minutes(210), GRACE).await.unwrap();
    assert_eq!(r.launched.len(), 1, "{r:?}");
    assert_eq!(r.launched[0].1, start + Duration::minutes(210));
    finish().await.unwrap();
    // A definition saying `suspended`, then a revision that does not: the same.
    let at = |m: i64| start + Duration::minutes(m);
    b.load(
        &[hourly(
            json!({ "schedules": ["30 * * * *"], "suspended": true }),
        )],
        at(215),
    )
    .await
    .unwrap();
    assert!(a.pass(at(270), GRACE).await.unwrap().launched.is_empty());
    b.load(&[hourly(json!({ "schedules": ["30 * * * *"] }))], at(300))
        .await
        .unwrap();
    let r = a.pass(at(301), GRACE).await.unwrap();
    assert!(r.launched.is_empty() && r.missed == 0, "{r:?}");
    assert_eq!(a.pass(at(330), GRACE).await.unwrap().launched.len(), 1);
    finish().await.unwrap();
    // Removed through B: no longer scheduled by A.
    b.load(&[], at(331)).await.unwrap();
    assert!(a.pass(at(390), GRACE).await.unwrap().launched.is_empty());
    assert_eq!(b.instances("hourly", 100).await.unwrap().len(), 5);
}
on_every_state_database!(
    "jobs_",
    other_processes,
    passes_see_what_other_processes_change
);
