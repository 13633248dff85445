//! Benchmark of the scheduler (issue 17's targets), on a SQLite state database in a
//! temporary folder, or the one `BENCH_STATE_URL` names (an empty database):
//!
//! 1. 10,000 job definitions with minutely schedules (`BENCH_JOBS`): the time of loading
//!    them, of a scheduling pass with nothing due (the passes between fire times), of the
//!    reload with nothing changed and with one job changed (its schedule every two minutes
//!    from then on), of the pass after that change (it reads every job again), and of the
//!    pass at a minute, which launches one instance per job (but the changed one).
//! 2. The same minute's pass split between two schedulers at once (each its own
//!    connections): the time until every slot is launched, and that each was launched once.
//! 3. Instances completed per minute: `noop` instances (launched and advanced, as the
//!    scheduler does) by one scheduler and by two at once, and `echo` instances run through
//!    a worker (claimed, run, logged to the store, advanced), for `BENCH_SECONDS` (10) each.
//! 4. With `jobs_bench KONDATE_BINARY`: launch latency — `BENCH_LATENCY_JOBS` (50) minutely
//!    jobs of `execute: true` in a project served by a real `kondate serve` (its scheduler
//!    and `BENCH_WORKERS` (2) workers) across `BENCH_MINUTES` (2) fire times: from each
//!    slot's time to its step's start, p50 and p99.
//!
//! `cargo run --release -p kondate-jobs --example jobs_bench -- target/release/kondate`.
//! Prints one JSON object.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kondate_db::{Database, Value, get_i64};
use kondate_jobs::definition::from_json;
use kondate_jobs::{Executor, Loaded, Scheduler, WorkerConfig};
use kondate_store::{Store, UrlSigner};
use serde_json::json;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn definitions(n: usize, script: &str, cron: &str) -> Vec<Loaded> {
    (0..n)
        .map(|i| {
            let name = format!("job_{i:05}");
            Loaded::Ok(Box::new(
                from_json(
                    &format!("jobs/{name}.jsonnet"),
                    &name,
                    json!({ "script": script, "schedules": [cron], "prevent_multi": "allow" }),
                )
                .expect("definition"),
            ))
        })
        .collect()
}

async fn open(url: &str) -> Database {
    let db = Database::connect(url).await.expect("state database");
    kondate_db::state::migrate(&db).await.expect("migrate");
    db
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("BENCH_STATE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/state.db", dir.path().display()));
    let jobs: usize = env_or("BENCH_JOBS", 10_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let db = open(&url).await;
    let s = Scheduler::new(db.clone());

    // 1. Load, a pass with nothing due, the minute's pass.
    let t0: DateTime<Utc> = "2026-06-01T00:00:30Z".parse().unwrap();
    let defs = definitions(jobs, "noop:\n", "* * * * *");
    let started = Instant::now();
    s.load(&defs, t0).await.expect("load");
    let load = started.elapsed();
    let grace = chrono::Duration::seconds(1);
    // The first pass records each job's cursor (a job seen first starts a grace before now).
    s.pass(t0, grace).await.expect("pass");
    let mut idle = Vec::new();
    for k in 1..=10 {
        let started = Instant::now();
        let r = s
            .pass(t0 + chrono::Duration::seconds(2 * k), grace)
            .await
            .expect("pass");
        assert!(r.launched.is_empty());
        idle.push(ms(started.elapsed()));
    }
    idle.sort_by(f64::total_cmp);
    // The reload every `jobs.reload` with nothing changed, then with one job changed and
    // the pass after it (which reads every job again).
    let started = Instant::now();
    let r = s.load(&defs, t0).await.expect("load");
    let reload_unchanged = started.elapsed();
    assert!(r.revised.is_empty());
    let mut changed = definitions(jobs, "noop:\n", "* * * * *");
    changed[0] = definitions(1, "noop:\n", "*/2 * * * *").remove(0);
    let started = Instant::now();
    s.load(&changed, t0).await.expect("load");
    let reload_one_changed = started.elapsed();
    let started = Instant::now();
    s.pass(t0 + chrono::Duration::seconds(22), grace)
        .await
        .expect("pass");
    let pass_after_change = started.elapsed();
    let minute = t0 + chrono::Duration::seconds(30);
    let started = Instant::now();
    let r = s.pass(minute, grace).await.expect("pass");
    let launch_pass = started.elapsed();
    assert_eq!(r.launched.len(), jobs - 1);

    // 2. The next minute's pass by two schedulers at once.
    let two: Vec<Scheduler> = vec![
        Scheduler::new(Database::connect(&url).await.unwrap()),
        Scheduler::new(Database::connect(&url).await.unwrap()),
    ];
    let next = minute + chrono::Duration::minutes(1);
    let started = Instant::now();
    let tasks: Vec<_> = two
        .into_iter()
        .map(|s| tokio::spawn(async move { s.pass(next, grace).await.expect("pass") }))
        .collect();
    let mut launched = 0;
    let mut elsewhere = 0;
    for t in tasks {
        let r = t.await.unwrap();
        launched += r.launched.len();
        elsewhere += r.launched_elsewhere;
    }
    let two_pass = started.elapsed();
    // 00:02: the changed job's slot too.
    assert_eq!(launched, jobs, "each slot launched once");
    let rows = db
        .fetch_all(
            "SELECT COUNT(*) AS n FROM kondate_job_instances WHERE scheduled_at = ?",
            &[Value::Int(next.timestamp_millis())],
        )
        .await
        .unwrap();
    assert_eq!(get_i64(&rows[0], "n").unwrap() as usize, jobs);

    // 3. Instances completed per minute: noop (no worker needed), echo (through a worker).
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://x"),
    )
    .expect("store");
    let ex = Executor::new(db.clone(), store.clone(), s.clone(), None);
    let mut defs = definitions(jobs, "noop:\n", "* * * * *");
    for (name, script) in [("noop_job", "noop:\n"), ("echo_job", "echo: hello\n")] {
        defs.push(Loaded::Ok(Box::new(
            from_json(
                &format!("jobs/{name}.jsonnet"),
                name,
                json!({ "script": script }),
            )
            .unwrap(),
        )));
    }
    s.load(&defs, Utc::now()).await.expect("load");
    let mut per_minute = serde_json::Map::new();
    let cfg = WorkerConfig {
        worker: "bench".into(),
        queues: vec!["default".into()],
        cwd: dir.path().to_path_buf(),
        spool: dir.path().join("spool"),
        protect: None,
        base_env: std::env::vars().collect(),
        grace: Duration::from_secs(1),
        recheck: Duration::from_secs(1),
    };
    for job in ["noop_job", "echo_job"] {
        let started = Instant::now();
        let mut done = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            let id = s
                .launch(job, &[], "manual", None, None, Utc::now())
                .await
                .expect("launch");
            ex.advance(id, Utc::now()).await.expect("advance");
            while ex
                .work_once(&cfg, &kondate_core::SystemClock)
                .await
                .expect("work")
            {}
            assert_eq!(s.instance(id).await.unwrap().status, "success");
            done += 1;
        }
        per_minute.insert(
            job.trim_end_matches("_job").into(),
            json!((done as f64 * 60.0 / started.elapsed().as_secs_f64()).round()),
        );
    }

    // noop instances by two schedulers at once, each with its own connections.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let db = Database::connect(&url).await.expect("state database");
        let s = Scheduler::new(db.clone());
        let ex = Executor::new(db, store.clone(), s.clone(), None);
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                let id = s
                    .launch("noop_job", &[], "manual", None, None, Utc::now())
                    .await
                    .expect("launch");
                ex.advance(id, Utc::now()).await.expect("advance");
                assert_eq!(s.instance(id).await.unwrap().status, "success");
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    per_minute.insert(
        "noop_two_schedulers".into(),
        json!((done as f64 * 60.0 / started.elapsed().as_secs_f64()).round()),
    );

    let latency = match std::env::args().nth(1) {
        Some(bin) => latency(&bin).await,
        None => json!(null),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "state_database": kondate_core::config::redact_url(&url),
            "jobs": jobs,
            "load_ms": ms(load),
            "pass_nothing_due_ms": { "p50": percentile(&idle, 0.5), "max": idle.last() },
            "reload_unchanged_ms": ms(reload_unchanged),
            "reload_one_changed_ms": ms(reload_one_changed),
            "pass_after_a_change_ms": ms(pass_after_change),
            "pass_launching_every_job_ms": ms(launch_pass),
            "two_schedulers_launching_every_job_ms": ms(two_pass),
            "two_schedulers_launched_elsewhere": elsewhere,
            "instances_per_minute": per_minute,
            "launch_latency": latency,
        }))
        .unwrap()
    );
}

/// Launch latency through a real `kondate serve` (see the module).
async fn latency(bin: &str) -> serde_json::Value {
    let n: usize = env_or("BENCH_LATENCY_JOBS", 50);
    let workers: usize = env_or("BENCH_WORKERS", 2);
    let minutes: i64 = env_or("BENCH_MINUTES", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("p");
    let o = std::process::Command::new(bin)
        .args(["init", root.to_str().unwrap()])
        .output()
        .expect("kondate init");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..n {
        std::fs::write(
            root.join(format!("jobs/tick_{i:03}.jsonnet")),
            "{ script: 'execute: true\\n', schedules: ['* * * * *'] }\n",
        )
        .unwrap();
    }
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // Slots before the server started are launched late by design (a job seen first
    // launches a slot of the last `jobs.grace`): only later slots count.
    let since = Utc::now().timestamp_millis();
    let mut server = std::process::Command::new(bin)
        .args(["serve", "--listen", &listen])
        .current_dir(&root)
        .env("CI", "true")
        .env("KONDATE_JOBS_WORKERS", workers.to_string())
        .env_remove("KONDATE_PROJECT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kondate serve");
    // From a little after the next minute, `minutes` fire times, and their steps' end.
    let now = Utc::now();
    let wait = 60 - now.timestamp() % 60 + 60 * minutes + 5;
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let db = Database::connect(&format!(
        "sqlite://{}",
        root.join(".kondate/state.db").display()
    ))
    .await
    .unwrap();
    let rows = db
        .fetch_all(
            "SELECT s.started_at - i.scheduled_at AS late FROM kondate_job_steps s \
             JOIN kondate_job_instances i ON i.id = s.instance \
             WHERE i.reason = 'schedule' AND s.started_at IS NOT NULL AND i.scheduled_at > ?",
            &[Value::Int(since)],
        )
        .await
        .unwrap();
    let mut late: Vec<f64> = rows
        .iter()
        .map(|r| get_i64(r, "late").unwrap() as f64 / 1000.0)
        .collect();
    late.sort_by(f64::total_cmp);
    json!({
        "jobs": n, "workers": workers, "slots": late.len(),
        "p50_s": percentile(&late, 0.5), "p99_s": percentile(&late, 0.99),
        "max_s": late.last(),
    })
}
