//! The local runner with real processes: exit codes, clean environments, secrets masked,
//! timeouts that kill grandchildren, forwarded signals, memory limits, recorded runs and
//! logs in the object store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kondate_apps::{Apps, RunInfo, RunRequest, Runs};
use kondate_apps::{Credentials, RunStatus};
use kondate_apps::{LiveSink, Stream};
use kondate_core::SystemClock;
use kondate_db::Database;
use kondate_store::{Store, UrlSigner};

struct TestCredentials {
    revoked: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Credentials for TestCredentials {
    fn url(&self) -> String {
        "http://127.0.0.1:7878".into()
    }
    async fn issue(
        &self,
        run_id: &str,
        _scopes: &[String],
        _ttl: Duration,
    ) -> Result<(String, String), String> {
        Ok((
            format!("run-{run_id}"),
            "token-secret-value-0123456789".into(),
        ))
    }
    async fn revoke(&self, run_id: &str) {
        self.revoked.lock().unwrap().push(run_id.to_string());
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    runs: Runs,
    creds: Arc<TestCredentials>,
}

async fn fixture() -> Fixture {
    fixture_on(None, false).await
}

/// A project on SQLite and a local store, or on the database named by env var `db.0`
/// (an isolated database `db.1`) and/or the S3-compatible server of .ci/run.
async fn fixture_on(db: Option<(&str, &str)>, s3: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("apps")).unwrap();
    let url = match db {
        None => format!("sqlite://{}/state.db", root.display()),
        Some((var, tag)) => {
            let base = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
            kondate_db::isolated_test_database(&base, tag)
                .await
                .unwrap()
        }
    };
    let db = Database::connect(&url).await.unwrap();
    kondate_db::state::migrate(&db).await.unwrap();
    let store = if s3 {
        let endpoint =
            std::env::var("KONDATE_TEST_S3_ENDPOINT").expect("KONDATE_TEST_S3_ENDPOINT is not set");
        let cfg = kondate_core::config::StoreSection {
            url: format!(
                "s3://kondate-test/apps-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            allow_http: true,
            ..Default::default()
        };
        Store::open(&cfg, "http://unused").unwrap()
    } else {
        Store::local(&root.join("store"), UrlSigner::new(vec![1; 32], "http://x")).unwrap()
    };
    let creds = Arc::new(TestCredentials {
        revoked: Mutex::default(),
    });
    let runs = Runs {
        db,
        store,
        apps: Apps::new(root.join("apps")),
        root: root.clone(),
        spool: root.join(".kondate/runs"),
        clock: Arc::new(SystemClock),
        credentials: Some(creds.clone()),
        grace: Duration::from_millis(500),
        use_cgroups: true,
        owner: None,
        lost_after: Duration::from_secs(60),
        lookup: Arc::new(|k| match k {
            "KONDATE_TEST_SECRET" => Some("s3cret-value-42".into()),
            "KONDATE_SERVER_ONLY" => Some("must-not-leak".into()),
            other => std::env::var(other).ok(),
        }),
    };
    Fixture {
        _dir: dir,
        root,
        runs,
        creds,
    }
}

impl Fixture {
    /// A file in the project's `out/` folder: a local run is isolated from `.kondate/` and
    /// may write below the project folder, not straight into it.
    fn out(&self, name: &str) -> std::path::PathBuf {
        let dir = self.root.join("out");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn app(&self, name: &str, jsonnet: &str) {
        std::fs::write(
            self.root.join("apps").join(format!("{name}.jsonnet")),
            jsonnet,
        )
        .unwrap();
    }

    async fn run(&self, name: &str) -> (RunInfo, String) {
        self.run_with(name, RunRequest::default(), None).await
    }

    async fn run_with(
        &self,
        name: &str,
        mut req: RunRequest,
        cancel_after: Option<(Duration, i32)>,
    ) -> (RunInfo, String) {
        req.app = name.to_string();
        req.actor = "test".into();
        let live_out = Arc::new(Mutex::new(Vec::new()));
        let sink = live_out.clone();
        let live: Arc<LiveSink> =
            Arc::new(move |_s: Stream, d: &[u8]| sink.lock().unwrap().extend_from_slice(d));
        let (tx, rx) = tokio::sync::watch::channel(None);
        if let Some((after, sig)) = cancel_after {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(Some(sig));
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
        let info = self.runs.run(&req, Some(live), rx).await.unwrap();
        let live = String::from_utf8(live_out.lock().unwrap().clone()).unwrap();
        (info, live)
    }

    async fn log(&self, id: &str) -> String {
        let mut s = self.runs.log_stream(id, 0, false);
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        String::from_utf8(out).unwrap()
    }
}

fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn exit_status_output_and_log_are_recorded() {
    let f = fixture().await;
    f.app(
        "hello",
        "{ app: { command: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'] } }",
    );
    let (info, live) = f.run("hello").await;
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.exit_code, Some(3));
    assert_eq!(info.error.as_deref(), Some("exited with status 3"));
    assert!(
        live.contains("hello\n") && live.contains("oops\n"),
        "{live}"
    );
    let key = info.log_key.clone().expect("log stored");
    assert_eq!(key, format!("runs/{}.log", info.id));
    assert!(f.runs.store.head(&key).await.is_ok());
    assert!(
        !f.root
            .join(format!(".kondate/runs/{}.log", info.id))
            .exists(),
        "spool removed"
    );
    let log = f.log(&info.id).await;
    let lines: Vec<_> = log
        .lines()
        .map(|l| kondate_apps::parse_line(l.as_bytes()).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.stream == Stream::Stdout && l.text == "hello")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.stream == Stream::Stderr && l.text == "oops")
    );
    assert_eq!(*f.creds.revoked.lock().unwrap(), vec![info.id.clone()]);
    let listed = f.runs.list(Some("hello"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, info.id);

    f.app("ok", "{ app: { command: 'true' } }");
    let (ok, _) = f.run("ok").await;
    assert_eq!((ok.status, ok.exit_code), (RunStatus::Succeeded, Some(0)));
}

#[tokio::test]
async fn the_environment_is_clean_with_the_contract_and_secrets_masked() {
    let f = fixture().await;
    f.app(
        "env",
        r#"{
  app: {
    command: ['sh', '-c', 'env | sort; echo "secret is $DB_PASSWORD"; echo "token $KONDATE_TOKEN_SECRET"'],
    env: { FROM_DEFINITION: 'yes', OVERRIDDEN: 'definition' },
    cpu: 512,
    secrets: [{ name: 'DB_PASSWORD', value_from: 'env:KONDATE_TEST_SECRET' }],
  },
}"#,
    );
    let req = RunRequest {
        env: vec![("OVERRIDDEN".into(), "cli".into())],
        ..RunRequest::default()
    };
    let (info, live) = f.run_with("env", req, None).await;
    assert_eq!(info.status, RunStatus::Succeeded, "{live}");
    for expected in [
        "FROM_DEFINITION=yes",
        "OVERRIDDEN=cli",
        &format!("KONDATE_RUN_ID={}", info.id),
        "KONDATE_APP=env",
        "KONDATE_CPUS=0.5",
        "KONDATE_URL=http://127.0.0.1:7878",
        &format!("KONDATE_TOKEN=run-{}", info.id),
        "QUEUERY_ENDPOINT=http://127.0.0.1:7878",
        "PATH=",
    ] {
        assert!(live.contains(expected), "missing {expected} in:\n{live}");
    }
    // Nothing of the server's own environment beyond PATH/HOME/…
    assert!(!live.contains("KONDATE_SERVER_ONLY"), "{live}");
    assert!(!live.contains("CARGO_MANIFEST_DIR"), "{live}");
    // Secrets are in the process's environment but masked in what it prints…
    assert!(live.contains("secret is ********"), "{live}");
    assert!(live.contains("token ********"), "{live}");
    assert!(!live.contains("s3cret-value-42"), "{live}");
    assert!(!live.contains("token-secret-value"), "{live}");
    // …and in the stored log and the run record.
    let log = f.log(&info.id).await;
    assert!(!log.contains("s3cret-value-42") && log.contains("secret is ********"));
    let record = serde_json::to_string(&f.runs.get(&info.id).await.unwrap()).unwrap();
    assert!(!record.contains("s3cret-value-42"), "{record}");
}

#[tokio::test]
async fn a_timeout_stops_the_whole_group_including_grandchildren() {
    let f = fixture().await;
    let pidfile = f.out("grandchild.pid");
    f.app(
        "slow",
        &format!(
            "{{ app: {{ command: ['sh', '-c', 'sleep 300 & echo $! > {}; wait'] }}, timeout: '1s' }}",
            pidfile.display()
        ),
    );
    let t = Instant::now();
    let (info, _) = f.run("slow").await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(info.status, RunStatus::TimedOut);
    assert_eq!(info.exit_code, Some(124));
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The sleep was killed, not left behind.
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(grandchild) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} survived the timeout"
    );
    let log = f.log(&info.id).await;
    assert!(log.contains("timeout of 1s reached"), "{log}");
}

#[tokio::test]
async fn forwarded_signals_stop_the_run_and_sigkill_follows_when_ignored() {
    let f = fixture().await;
    f.app("wait", "{ app: { command: ['sleep', '300'] } }");
    let t = Instant::now();
    let (info, _) = f
        .run_with(
            "wait",
            RunRequest::default(),
            Some((Duration::from_millis(300), libc::SIGTERM)),
        )
        .await;
    assert_eq!(info.status, RunStatus::Cancelled);
    assert_eq!(info.exit_code, Some(128 + libc::SIGTERM as i64));
    assert!(t.elapsed() < Duration::from_secs(5));

    // A process that ignores SIGTERM is killed after the grace period.
    f.app(
        "stubborn",
        "{ app: { command: ['sh', '-c', 'trap \"\" TERM INT; while true; do sleep 0.1; done'] } }",
    );
    let t = Instant::now();
    let (info, _) = f
        .run_with(
            "stubborn",
            RunRequest::default(),
            Some((Duration::from_millis(300), libc::SIGINT)),
        )
        .await;
    assert_eq!(info.status, RunStatus::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let log = f.log(&info.id).await;
    assert!(log.contains("sending SIGKILL"), "{log}");
}

#[tokio::test]
async fn the_memory_limit_is_enforced_and_peak_memory_recorded() {
    let f = fixture().await;
    // 300 MiB touched, without a limit: the peak is recorded.
    f.app(
        "big",
        "{ app: { command: ['python3', '-c', 'b = bytearray(300 * 1024 * 1024); import time; time.sleep(0.3)'] } }",
    );
    let (info, live) = f.run("big").await;
    assert_eq!(info.status, RunStatus::Succeeded, "{live}");
    let peak = info.peak_memory_bytes.unwrap();
    assert!(peak >= 300 << 20, "peak {peak}");
    // The same under a 150 MiB limit fails, and the error says what to raise: with the
    // run's memory cgroup where this machine allows one, and with RLIMIT_AS always.
    f.app(
        "limited",
        "{ app: { command: ['python3', '-c', 'b = bytearray(300 * 1024 * 1024)'], memory: 150 } }",
    );
    if kondate_apps::cgroups_available() {
        let (info, live) = f.run("limited").await;
        assert_eq!(info.status, RunStatus::Failed, "{live}");
        let e = info.error.unwrap();
        let log = f.log(&info.id).await;
        // The kernel kills the process at the group's limit.
        assert!(
            log.contains("memory limit 150 MiB, enforced by cgroup"),
            "{log}"
        );
        assert!(e.contains("needed more than app.memory (150 MiB)"), "{e}");
        assert_eq!(info.signal, Some(libc::SIGKILL as i64));
    } else {
        eprintln!("no memory cgroup on this machine: only RLIMIT_AS is tested");
    }
    let mut f = f;
    f.runs.use_cgroups = false;
    let (info, live) = f.run("limited").await;
    assert_eq!(info.status, RunStatus::Failed, "{live}");
    let e = info.error.unwrap();
    let log = f.log(&info.id).await;
    // RLIMIT_AS: the allocation fails inside the process.
    assert!(log.contains("enforced by RLIMIT_AS"), "{log}");
    assert!(live.contains("MemoryError"), "{live}");
    assert!(
        e.contains("raise app.memory (now 150 MiB, enforced by RLIMIT_AS)"),
        "{e}"
    );
}

#[tokio::test]
async fn with_a_cgroup_processes_that_left_the_group_are_killed_too() {
    if !kondate_apps::cgroups_available() {
        eprintln!("skipped: this machine gives kondate no memory cgroup (RLIMIT_AS is used)");
        return;
    }
    let f = fixture().await;
    let pidfile = f.out("escaped.pid");
    f.app(
        "escape",
        &format!(
            "{{ app: {{ command: ['sh', '-c', 'setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo $! > {}'], memory: 256 }} }}",
            pidfile.display()
        ),
    );
    let (info, _) = f.run("escape").await;
    assert_eq!(info.status, RunStatus::Succeeded);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive(pid),
        "the process that left the group ({pid}) survived"
    );
}

#[tokio::test]
async fn bad_input_gives_a_clear_error_and_a_recorded_failed_run() {
    let f = fixture().await;
    f.app("nocmd", "{ app: { command: ['no-such-command-kondate'] } }");
    let (info, live) = f.run("nocmd").await;
    assert_eq!(
        (info.status, info.exit_code),
        (RunStatus::Failed, Some(127))
    );
    assert!(
        info.error
            .as_deref()
            .unwrap()
            .contains("`no-such-command-kondate` was not found in the run's PATH"),
        "{:?}",
        info.error
    );
    assert!(live.contains("not found"), "{live}");

    f.app("broken", "{ app: { command: ['true'] ");
    let (info, _) = f.run("broken").await;
    assert_eq!(info.status, RunStatus::Failed);
    let e = info.error.unwrap();
    assert!(
        e.starts_with("definition: ") && e.contains("broken.jsonnet:1:"),
        "{e}"
    );

    f.app(
        "nosecret",
        "{ app: { command: ['true'], secrets: [{ name: 'X', value_from: 'env:KONDATE_NOT_SET_ANYWHERE' }] } }",
    );
    let (info, _) = f.run("nosecret").await;
    assert_eq!(info.status, RunStatus::Failed);
    assert!(
        info.error
            .unwrap()
            .contains("KONDATE_NOT_SET_ANYWHERE is not set")
    );

    f.app(
        "docker",
        "{ scheduler: { type: 'docker', docker: 'kondate-no-docker-here' }, app: { image: 'busybox', command: ['true'] } }",
    );
    let (info, _) = f.run("docker").await;
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.runner, "docker");
    assert!(
        info.error
            .as_deref()
            .unwrap()
            .contains("needs the `kondate-no-docker-here` command"),
        "{:?}",
        info.error
    );
    // Every one of them is recorded.
    assert_eq!(f.runs.list(None, 100).await.unwrap().len(), 4);
}

#[tokio::test]
async fn retries_run_again_after_a_failure() {
    let f = fixture().await;
    let counter = f.out("count");
    f.app(
        "flaky",
        &format!(
            "{{ app: {{ command: ['sh', '-c', 'echo x >> {0}; test $(wc -l < {0}) -ge 3'] }}, retries: 5 }}",
            counter.display()
        ),
    );
    let (info, _) = f.run("flaky").await;
    assert_eq!(info.status, RunStatus::Succeeded);
    assert_eq!(info.attempt, 3);
    let all = f.runs.list(Some("flaky"), 10).await.unwrap();
    let statuses: Vec<_> = all.iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (3, RunStatus::Succeeded),
            (2, RunStatus::Failed),
            (1, RunStatus::Failed)
        ]
    );
}

#[tokio::test]
async fn logs_can_be_followed_while_the_run_writes_them() {
    let f = fixture().await;
    f.app(
        "ticker",
        "{ app: { command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done'] } }",
    );
    let runs = f.runs.clone();
    let follower = tokio::spawn(async move {
        // Wait for the run to appear, then follow it.
        let id = loop {
            if let Some(r) = runs.list(Some("ticker"), 1).await.unwrap().first() {
                break r.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut s = runs.log_stream(&id, 0, true);
        let mut out = Vec::new();
        let mut chunks = 0;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
            chunks += 1;
        }
        (String::from_utf8(out).unwrap(), chunks)
    });
    let (info, _) = f.run("ticker").await;
    let (followed, chunks) = follower.await.unwrap();
    assert_eq!(info.status, RunStatus::Succeeded);
    for i in 1..=5 {
        assert!(followed.contains(&format!("out tick {i}\n")), "{followed}");
    }
    assert_eq!(
        followed,
        f.log(&info.id).await,
        "followed log equals the stored one"
    );
    assert!(chunks >= 2, "followed in {chunks} chunk(s)");
}

#[tokio::test]
async fn runs_whose_supervisor_died_are_marked_lost() {
    let f = fixture().await;
    // A kondate process that recorded a start and was then killed: its pid is gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id() as i64;
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    f.runs
        .db
        .execute(
            "INSERT INTO kondate_runs (id, app, attempt, status, runner, command, params, actor, \
             host, supervisor_pid, started_at) VALUES ('r1', 'x', 1, 'running', 'local', '[]', \
             '{}', 'test', ?, ?, 0)",
            &[host.trim().into(), kondate_db::Value::Int(dead_pid)],
        )
        .await
        .unwrap();
    let run = f.runs.get("r1").await.unwrap();
    assert_eq!(run.status, RunStatus::Lost);
    assert!(run.error.unwrap().contains(&format!("pid {dead_pid}")));
    assert!(run.ended_at.is_some());
}

#[tokio::test]
async fn runs_are_lost_only_when_their_registered_process_is() {
    use kondate_db::Value;
    let f = fixture().await;
    let db = &f.runs.db;
    let now = chrono::Utc::now().timestamp_millis();
    let process = |id: &str, host: &str, pid: i64, heartbeat: i64| {
        let (id, host) = (id.to_string(), host.to_string());
        async move {
            db.execute(
                "INSERT INTO kondate_processes (id, host, pid, version, command, started_at, \
                 heartbeat_at) VALUES (?, ?, ?, '0', 'apps', 0, ?)",
                &[
                    id.as_str().into(),
                    host.as_str().into(),
                    Value::Int(pid),
                    Value::Int(heartbeat),
                ],
            )
            .await
            .unwrap();
        }
    };
    let run = |id: &str, owner: &str| {
        let (id, owner) = (id.to_string(), owner.to_string());
        async move {
            db.execute(
                "INSERT INTO kondate_runs (id, app, attempt, status, runner, command, params, \
                 actor, host, supervisor_pid, started_at, owner) VALUES (?, 'x', 1, 'running', \
                 'local', '[]', '{}', 'test', 'elsewhere', 1, 0, ?)",
                &[id.as_str().into(), owner.as_str().into()],
            )
            .await
            .unwrap();
        }
    };
    // Supervised from another machine by a process that heartbeats: left alone (a host and
    // pid check could not tell).
    process("far:1:0:0", "far", 1, now).await;
    run("alive", "far:1:0:0").await;
    // Supervised from another machine by a process silent past lost_after (60 s): lost,
    // naming it.
    process("far:2:0:0", "far", 2, now - 120_000).await;
    run("silent", "far:2:0:0").await;
    // Supervised here by a process whose pid has ended: lost at once, its spooled log stored.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = i64::from(gone.id());
    gone.wait().unwrap();
    let here = kondate_db::processes::hostname();
    process("here:0:0:0", &here, dead_pid, now).await;
    run("killed", "here:0:0:0").await;
    std::fs::create_dir_all(&f.runs.spool).unwrap();
    std::fs::write(f.runs.spool.join("killed.log"), "2024 out step 1 of 3\n").unwrap();

    assert_eq!(
        f.runs.get("alive").await.unwrap().status,
        RunStatus::Running
    );
    let silent = f.runs.get("silent").await.unwrap();
    assert_eq!(silent.status, RunStatus::Lost);
    let error = silent.error.unwrap();
    assert!(
        error.contains("far:2:0:0") && error.contains("last heard from"),
        "{error}"
    );
    let killed = f.runs.get("killed").await.unwrap();
    assert_eq!(killed.status, RunStatus::Lost);
    assert!(
        killed
            .error
            .as_deref()
            .unwrap()
            .contains("stored with the run"),
        "{:?}",
        killed.error
    );
    // Stored in the object store, where any machine can read it.
    let key = killed.log_key.expect("the spooled log is stored");
    let stored = f.runs.store.get(&key).await.unwrap();
    assert!(String::from_utf8_lossy(&stored).contains("step 1 of 3"));
}

/// The same on a shared database and S3: runs recorded, the log uploaded and read back.
async fn recorded_and_stored(f: Fixture) {
    f.app(
        "hello",
        "{ app: { command: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'] } }",
    );
    let (info, _) = f.run("hello").await;
    assert_eq!((info.status, info.exit_code), (RunStatus::Failed, Some(3)));
    assert!(info.log_key.is_some(), "{:?}", info.error);
    let log = f.log(&info.id).await;
    assert!(
        log.contains(" out hello\n") && log.contains(" err oops\n"),
        "{log}"
    );
    let listed = f.runs.list(Some("hello"), 10).await.unwrap();
    assert_eq!(listed[0].id, info.id);
    assert_eq!(listed[0].exit_code, Some(3));
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: set KONDATE_TEST_POSTGRES_URL and KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn postgres_s3_runs_are_recorded_and_logs_stored() {
    recorded_and_stored(fixture_on(Some(("KONDATE_TEST_POSTGRES_URL", "apps_runs")), true).await)
        .await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_runs_are_recorded_and_logs_stored() {
    recorded_and_stored(fixture_on(Some(("KONDATE_TEST_MYSQL_URL", "apps_runs")), false).await)
        .await;
}
