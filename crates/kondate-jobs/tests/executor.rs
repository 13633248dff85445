//! Instances run for real: `execute:` steps as shell processes with their scoped
//! environments, forks and parallel forks across two workers (each step run once), logs in
//! the store, a failure that puts the instance in ERROR and a retry or skip that goes on
//! from there, retry blocks and cancelling — on SQLite here, PostgreSQL and MariaDB in CI.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::Fixture;
use kondate_core::SystemClock;
use kondate_db::Database;
use kondate_jobs::definition::from_json;
use kondate_jobs::executor::Executor;
use kondate_jobs::scheduler::{CANCEL, ERROR, SUCCESS, WORKING};
use kondate_jobs::{Loaded, Scheduler};
use kondate_store::{Store, UrlSigner};
use serde_json::json;

use common::{process as executor, worker};

async fn load(s: &Scheduler, name: &str, script: &str) {
    let def = from_json(
        &format!("jobs/{name}.jsonnet"),
        name,
        json!({ "script": script }),
    )
    .unwrap();
    s.load(&[Loaded::Ok(Box::new(def))], Utc::now())
        .await
        .unwrap();
}

/// Launch `job` by hand and record its first steps; the instance.
async fn launched(s: &Scheduler, ex: &Executor, job: &str) -> i64 {
    let id = s
        .launch(job, &[], "manual", None, None, Utc::now())
        .await
        .unwrap();
    ex.advance(id, Utc::now()).await.unwrap();
    id
}

/// Run `workers` until instance `id` is no longer WORKING (or nothing is left to run).
async fn drain(f: &Fixture, id: i64, workers: usize) -> String {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (_, ex) = executor(f).await;
        let cfg = worker(f, &format!("w{w}"));
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 40 {
                if ex.work_once(&cfg, &SystemClock).await.unwrap() {
                    idle = 0;
                } else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (s, _) = executor(f).await;
    s.instance(id).await.unwrap().status
}

fn lines(log: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(log)
        .lines()
        .filter_map(|l| kondate_apps::parse_line(l.as_bytes()).map(|l| l.text))
        .collect()
}

async fn a_script_runs_with_scoped_env_forks_and_logs(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let out = f.dir.path().join("out.txt");
    let script = format!(
        "\
env: GREETING=hello OUT={out}
execute: echo \"$GREETING from $KONDATE_JOB $KONDATE_INSTANCE_ID at $KONDATE_SCHEDULED_AT\"
fork:
  execute: echo a >> $OUT
  sequence:
    env: GREETING=branch
    execute: echo \"$GREETING\" >> $OUT
parallel_fork: 3
  execute: echo \"shard $KONDATE_PARALLEL_FORK_INDEX/$KONDATE_PARALLEL_FORK_SIZE\" >> $OUT
echo: all shards done
execute: echo \"$GREETING again $LAUNCHED\" >> $OUT
",
        out = out.display()
    );
    load(&s, "pipeline", &script).await;
    let id = s
        .launch(
            "pipeline",
            &[("LAUNCHED".into(), "by-hand".into())],
            "manual",
            None,
            Some("alice@example.com"),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(ex.advance(id, Utc::now()).await.unwrap(), WORKING);
    assert_eq!(drain(&f, id, 2).await, SUCCESS);
    // Its end is an event (what `job.succeeded` triggers read).
    let db = Database::connect(&f.url).await.unwrap();
    let events = db
        .fetch_all(
            "SELECT subject FROM kondate_events WHERE kind = 'job.succeeded'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        kondate_db::get_string(&events[0], "subject").unwrap(),
        "pipeline"
    );
    // Each step ran once (two workers), with its block's env and nothing leaking out.
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let last = got.pop().unwrap();
    assert_eq!(last, "hello again by-hand");
    got.sort();
    assert_eq!(got, ["a", "branch", "shard 0/3", "shard 1/3", "shard 2/3"]);
    let steps = ex.steps(id).await.unwrap();
    assert_eq!(steps.len(), 8, "{steps:#?}");
    assert!(steps.iter().all(|s| s.status == SUCCESS), "{steps:#?}");
    let workers: std::collections::HashSet<_> =
        steps.iter().filter_map(|s| s.worker.clone()).collect();
    assert!(!workers.is_empty());
    // The first step's log, from the store: its line with the job, instance and time.
    let first = ex.step_log(&steps[0]).await.unwrap().unwrap();
    let text = lines(&first);
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with(&format!("hello from pipeline {id} at 20")),
        "{text:?}"
    );
    assert!(steps[0].peak_memory_bytes.unwrap_or(0) > 0);
    let echo = steps
        .iter()
        .find(|s| s.task == "echo: all shards done")
        .unwrap();
    assert_eq!(
        lines(&ex.step_log(echo).await.unwrap().unwrap()),
        ["all shards done"]
    );
}

async fn a_failure_is_retried_or_skipped_from_its_step(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let marker = f.dir.path().join("marker");
    let count = f.dir.path().join("count");
    let script = format!(
        "execute: echo once >> {count}\nexecute: test -f {marker} || exit 3\nexecute: echo after >> {count}\n",
        count = count.display(),
        marker = marker.display()
    );
    load(&s, "flaky", &script).await;
    let id = launched(&s, &ex, "flaky").await;
    assert_eq!(drain(&f, id, 1).await, ERROR);
    let instance = s.instance(id).await.unwrap();
    assert!(
        instance
            .error
            .as_deref()
            .unwrap()
            .contains("step L2: `test -f"),
        "{instance:?}"
    );
    let steps = ex.steps(id).await.unwrap();
    assert_eq!(steps[1].exit_code, Some(3));
    let log = lines(&ex.step_log(&steps[1]).await.unwrap().unwrap());
    assert!(log.iter().any(|l| l.contains("exited with 3")), "{log:?}");
    // Retry: the failed step runs again (a new attempt), then the rest; the first step is
    // not run again.
    std::fs::write(&marker, "").unwrap();
    ex.retry(id, Utc::now()).await.unwrap();
    assert_eq!(drain(&f, id, 1).await, SUCCESS);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "once\nafter\n");
    assert_eq!(ex.steps(id).await.unwrap()[1].attempt, 1);
    // Only an instance in ERROR can be retried.
    let e = ex.retry(id, Utc::now()).await.unwrap_err().to_string();
    assert!(e.contains("is success"), "{e}");

    // Skip: the failed step is passed over.
    std::fs::remove_file(&marker).unwrap();
    std::fs::write(&count, "").unwrap();
    let id = launched(&s, &ex, "flaky").await;
    assert_eq!(drain(&f, id, 1).await, ERROR);
    ex.skip(id, Utc::now()).await.unwrap();
    assert_eq!(drain(&f, id, 1).await, SUCCESS);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "once\nafter\n");
    assert_eq!(ex.steps(id).await.unwrap()[1].status, "skipped");
}

async fn retries_and_cancel(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let tries = f.dir.path().join("tries");
    // Fails twice, then succeeds (a retry block with a 1 s wait between attempts).
    let script = format!(
        "retry: count=3 sleep_time=1\n  execute: echo x >> {t}; test $(wc -l < {t}) -ge 3\n",
        t = tries.display()
    );
    load(&s, "retrying", &script).await;
    let id = launched(&s, &ex, "retrying").await;
    assert_eq!(drain(&f, id, 1).await, SUCCESS);
    let keys: Vec<String> = ex
        .steps(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(
        keys,
        ["L1@0/L2", "L1@0/sleep", "L1@1/L2", "L1@1/sleep", "L1@2/L2"]
    );
    load(&s, "slow", "execute: sleep 300\n").await;
    let id = s
        .launch("slow", &[], "manual", Some("once"), None, Utc::now())
        .await
        .unwrap();
    // The same key launches once.
    assert_eq!(
        s.launch("slow", &[], "manual", Some("once"), None, Utc::now())
            .await
            .unwrap(),
        id
    );
    ex.advance(id, Utc::now()).await.unwrap();
    // Cancel before a worker takes it: the instance ends CANCEL and its step never runs.
    ex.cancel(id, Utc::now()).await.unwrap();
    assert_eq!(s.instance(id).await.unwrap().status, CANCEL);
    assert_eq!(ex.steps(id).await.unwrap()[0].status, CANCEL);
    assert!(!ex.work_once(&worker(&f, "w"), &SystemClock).await.unwrap());
    let e = ex.cancel(id, Utc::now()).await.unwrap_err().to_string();
    assert!(e.contains("is cancel"), "{e}");
    // Unknown jobs and instances are named.
    let e = s
        .launch("nope", &[], "manual", None, None, Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no job named `nope`"), "{e}");
    assert!(
        ex.retry(999_999, Utc::now())
            .await
            .unwrap_err()
            .to_string()
            .contains("no instance 999999")
    );
}

/// Force-cancel: the step running now is stopped with its whole process group (a child it
/// started too) and ends `cancel`; a plain cancel leaves a running step to finish.
async fn force_cancel_stops_the_running_step(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let (started, child_pid) = (f.dir.path().join("started"), f.dir.path().join("child.pid"));
    load(
        &s,
        "stuck",
        &format!(
            "execute: sleep 300 & echo $! > {c}; touch {s}; wait\n",
            c = child_pid.display(),
            s = started.display()
        ),
    )
    .await;
    let id = launched(&s, &ex, "stuck").await;
    let cfg = worker(&f, "w");
    let running = {
        let ex = ex.clone();
        tokio::spawn(async move { ex.work_once(&cfg, &SystemClock).await.unwrap() })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = std::time::Instant::now();
    ex.cancel_with(id, true, Utc::now()).await.unwrap();
    assert!(running.await.unwrap());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(s.instance(id).await.unwrap().status, CANCEL);
    let step = &ex.steps(id).await.unwrap()[0];
    assert_eq!(step.status, CANCEL, "{step:?}");
    assert!(
        step.error.as_deref().unwrap().contains("force-cancelled"),
        "{step:?}"
    );
    // The background child went with the group.
    let pid: i32 = std::fs::read_to_string(&child_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|st| st.split_whitespace().nth(2) == Some("Z"))
    });
    assert!(gone, "the step's child {pid} outlived the force-cancel");
}

/// `sub_process:` runs another job to its end (once, however often its step is looked at);
/// `wait:` goes on once the awaited job has succeeded in the same period, and fails past
/// its timeout naming what it waited for.
async fn sub_process_and_wait(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let out = f.dir.path().join("order.txt");
    let o = out.display();
    // All four at once: loading is what the project's folder holds now.
    let scripts = [
        ("child", format!("execute: echo child $FROM >> {o}\n")),
        (
            "parent",
            format!(
                "execute: echo before >> {o}\nsub_process: child\nexecute: echo after >> {o}\n"
            ),
        ),
        (
            "waiter",
            format!("wait: child/daily timeout=1\nexecute: echo waited >> {o}\n"),
        ),
        ("late", "wait: nobody/hourly timeout=0\n".to_string()),
        ("orphan", "sub_process: missing\n".to_string()),
    ];
    let defs: Vec<Loaded> = scripts
        .iter()
        .map(|(name, script)| {
            Loaded::Ok(Box::new(
                from_json(
                    &format!("jobs/{name}.jsonnet"),
                    name,
                    json!({ "script": script }),
                )
                .unwrap(),
            ))
        })
        .collect();
    s.load(&defs, Utc::now()).await.unwrap();
    let id = s
        .launch(
            "parent",
            &[("FROM".into(), "parent".into())],
            "manual",
            None,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    ex.advance(id, Utc::now()).await.unwrap();
    assert_eq!(drain(&f, id, 2).await, SUCCESS);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "before\nchild parent\nafter\n"
    );
    let children = s.instances("child", 10).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(
        (children[0].reason.as_str(), children[0].status.as_str()),
        ("sub_process", SUCCESS)
    );

    // wait: the awaited job has not succeeded today → the step waits (goes back to its
    // queue); once it has, the waiting instance goes on.
    let later = Utc::now() + chrono::Duration::days(3);
    let w = s
        .launch_slot("waiter", later, None, Utc::now())
        .await
        .unwrap()
        .unwrap();
    ex.advance(w, Utc::now()).await.unwrap();
    let cfg = worker(&f, "w");
    assert!(ex.work_once(&cfg, &SystemClock).await.unwrap());
    assert_eq!(s.instance(w).await.unwrap().status, "working");
    assert_eq!(ex.steps(w).await.unwrap()[0].status, "pending");
    // The child succeeds in the same day as the waiter's slot.
    let c = s
        .launch_slot("child", later, None, Utc::now())
        .await
        .unwrap()
        .unwrap();
    ex.advance(c, Utc::now()).await.unwrap();
    assert_eq!(drain(&f, c, 1).await, SUCCESS);
    assert_eq!(drain(&f, w, 1).await, SUCCESS);
    assert!(std::fs::read_to_string(&out).unwrap().ends_with("waited\n"));
    // Past its timeout: the step fails, naming what it waited for.
    let l = launched(&s, &ex, "late").await;
    assert_eq!(drain(&f, l, 1).await, ERROR);
    let e = s.instance(l).await.unwrap().error.unwrap();
    assert!(e.contains("waited 0 min") && e.contains("nobody"), "{e}");
    // A sub-process of a job the project does not have fails its step, saying so.
    let o = launched(&s, &ex, "orphan").await;
    assert_eq!(drain(&f, o, 1).await, ERROR);
    let e = s.instance(o).await.unwrap().error.unwrap();
    assert!(e.contains("no job named `missing`"), "{e}");
}

/// Forty steps ready at once, four workers claiming: each step runs exactly once.
async fn many_workers_claim_each_step_once(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let out = f.dir.path().join("claims.txt");
    load(
        &s,
        "wide",
        &format!(
            "parallel_fork: 40\n  execute: echo $KONDATE_PARALLEL_FORK_INDEX >> {}\n",
            out.display()
        ),
    )
    .await;
    let id = launched(&s, &ex, "wide").await;
    assert_eq!(drain(&f, id, 4).await, SUCCESS);
    let mut got: Vec<u32> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    let steps = ex.steps(id).await.unwrap();
    let workers: std::collections::HashSet<_> =
        steps.iter().filter_map(|s| s.worker.clone()).collect();
    assert!(workers.len() > 1, "one worker took every step: {workers:?}");
}

/// Each step's peak memory is recorded and shown beside the job's usual peak for the same
/// step: the median of its other instances where the step succeeded.
async fn a_steps_peak_is_compared_with_its_usual(f: Fixture) {
    let (s, ex) = executor(&f).await;
    load(&s, "mem", "execute: true\nexecute: exit 1\n").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = launched(&s, &ex, "mem").await;
        assert_eq!(drain(&f, id, 1).await, ERROR);
        ids.push(id);
    }
    let steps = ex.steps(ids[2]).await.unwrap();
    let (first, second) = (&steps[0], &steps[1]);
    assert!(first.peak_memory_bytes.unwrap_or(0) > 0, "{first:?}");
    let mut others: Vec<i64> = Vec::new();
    for id in &ids[..2] {
        others.push(ex.steps(*id).await.unwrap()[0].peak_memory_bytes.unwrap());
    }
    others.sort();
    // Two others: the median is the upper one.
    assert_eq!(first.usual_peak_memory_bytes, Some(others[1]));
    // A step that never succeeded has no usual peak.
    assert_eq!(second.usual_peak_memory_bytes, None, "{second:?}");
}

/// The built-in retention job: finished instances older than the retention go with their
/// steps and stored logs; one in ERROR stays, however old; it runs once an hour whichever
/// process gets there first.
async fn old_finished_instances_are_pruned_with_their_logs(f: Fixture) {
    let (s, ex) = executor(&f).await;
    let def = |name: &str, script: &str| {
        Loaded::Ok(Box::new(
            from_json(
                &format!("jobs/{name}.jsonnet"),
                name,
                json!({ "script": script }),
            )
            .unwrap(),
        ))
    };
    s.load(
        &[
            def("done", "execute: echo hello\n"),
            def("broken", "execute: exit 1\n"),
        ],
        Utc::now(),
    )
    .await
    .unwrap();
    let done = launched(&s, &ex, "done").await;
    assert_eq!(drain(&f, done, 1).await, SUCCESS);
    let broken = launched(&s, &ex, "broken").await;
    assert_eq!(drain(&f, broken, 1).await, ERROR);
    let store = Store::local(
        &f.dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://x"),
    )
    .unwrap();
    assert_eq!(store.list(&format!("jobs/{done}/")).await.unwrap().len(), 1);

    let day = Duration::from_secs(24 * 3600);
    let hour = Duration::from_secs(3600);
    // Within the retention: nothing goes (but the hourly turn is taken).
    let r = ex.prune(Utc::now(), 30 * day, hour).await.unwrap().unwrap();
    assert_eq!(r.instances, 0);
    // Not an hour later: not this pass's turn.
    let later = Utc::now() + chrono::Duration::days(31);
    assert!(ex.prune(Utc::now(), day, hour).await.unwrap().is_none());
    let r = ex.prune(later, 30 * day, hour).await.unwrap().unwrap();
    assert_eq!((r.instances, r.steps, r.logs), (1, 1, 1), "{r:?}");
    assert!(s.instance(done).await.is_err());
    assert!(
        store
            .list(&format!("jobs/{done}/"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.instance(broken).await.unwrap().status, ERROR);
    assert_eq!(ex.steps(broken).await.unwrap().len(), 1);
}

/// Following an instance's logs: a running step's lines arrive while it runs (from the
/// worker's spool), the rest once it ends, the next step's after; the stream ends with the
/// instance.
async fn logs_are_followed_live(f: Fixture) {
    use futures::StreamExt;
    let (s, ex) = executor(&f).await;
    let go = f.dir.path().join("go");
    let script = format!(
        "execute: echo first; while ! test -f {go}; do sleep 0.05; done; echo second >&2\necho: done\n",
        go = go.display()
    );
    load(&s, "live", &script).await;
    let id = launched(&s, &ex, "live").await;
    let (_, worker_ex) = executor(&f).await;
    let cfg = worker(&f, "w");
    let running =
        tokio::spawn(
            async move { while worker_ex.work_once(&cfg, &SystemClock).await.unwrap() {} },
        );
    let mut stream = std::pin::pin!(ex.log_stream(id, true));
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("a line while the step runs")
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("L1 ") && first.trim_end().ends_with(" out first"),
        "{first}"
    );
    assert_eq!(s.instance(id).await.unwrap().status, WORKING);
    std::fs::write(&go, "").unwrap();
    let mut rest = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the stream ends with the instance")
    {
        rest.push_str(&chunk.unwrap());
    }
    running.await.unwrap();
    assert!(
        rest.contains("L1 ") && rest.contains(" err second\n"),
        "{rest}"
    );
    assert!(
        rest.contains("L2 ") && rest.contains(" out done\n"),
        "{rest}"
    );
    assert!(!rest.contains("first"), "a line twice: {rest}");
    assert_eq!(s.instance(id).await.unwrap().status, SUCCESS);
    // Not following: what there is, at once.
    let all: Vec<String> = ex.log_stream(id, false).map(|c| c.unwrap()).collect().await;
    assert_eq!(all.concat().lines().count(), 3, "{all:?}");
}

on_every_state_database!(
    "jobx_",
    pipeline,
    a_script_runs_with_scoped_env_forks_and_logs
);
on_every_state_database!(
    "jobx_",
    retry_skip,
    a_failure_is_retried_or_skipped_from_its_step
);
on_every_state_database!("jobx_", retries_cancel, retries_and_cancel);
on_every_state_database!("jobx_", claims, many_workers_claim_each_step_once);
on_every_state_database!("jobx_", force_cancel, force_cancel_stops_the_running_step);
on_every_state_database!("jobx_", sub_process_wait, sub_process_and_wait);
on_every_state_database!("jobx_", usual_peak, a_steps_peak_is_compared_with_its_usual);
on_every_state_database!(
    "jobx_",
    retention,
    old_finished_instances_are_pruned_with_their_logs
);
on_every_state_database!("jobx_", follow, logs_are_followed_live);
