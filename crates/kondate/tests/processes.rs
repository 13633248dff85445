//! Several kondate processes (separate OS processes) on one state database: a process
//! starting never fails another's queries; the queries of a process that is SIGKILLed are
//! failed by another once `state.lost_after` has passed, naming it, while the others' run
//! on; a process stopped with SIGTERM drains and deregisters; label syncs and result
//! writes by several processes wait for one another, and proceed when the holder is
//! killed; an app run whose supervisor is killed is lost, the others' run on. On SQLite
//! here, on PostgreSQL and MariaDB in CI.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kondate_db::{Database, Value, get_opt_string, get_string};

/// A `kondate serve` of the project, SIGKILLed on drop if still running.
struct Server {
    child: Child,
    listen: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(root: &Path, env: &[(String, String)]) -> Server {
    let listen = common::free_listen();
    let child = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .current_dir(root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .env("KONDATE_STATE_HEARTBEAT", "200ms")
        .env("KONDATE_STATE_LOST_AFTER", "5s")
        .env("KONDATE_QUERY_ALLOW_ANONYMOUS", "true")
        .env("KONDATE_SERVER_DRAIN_TIMEOUT", "5m")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&listen);
    Server { child, listen }
}

/// `kondate processes --format json`.
fn processes(root: &Path, env: &[(String, String)]) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .current_dir(root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .env("KONDATE_STATE_LOST_AFTER", "5s")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["processes", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A query recorded as running, owned by process `owner`: what a process leaves behind
/// while it runs a long query.
async fn running_query(db: &Database, owner: &str) -> i64 {
    db.insert_returning_id(
        "INSERT INTO kondate_queries (token_name, status, select_stmt, format, \
         enable_metadata, object_prefix, created_at, started_at, expired, owner) \
         VALUES (NULL, 'running', 'SELECT 1', 'csv', 0, 'queries/x/', 0, 0, 0, ?)",
        &[owner.into()],
    )
    .await
    .unwrap()
}

async fn status(db: &Database, id: i64) -> (String, Option<String>) {
    let rows = db
        .fetch_all(
            "SELECT status, error FROM kondate_queries WHERE id = ?",
            &[Value::Int(id)],
        )
        .await
        .unwrap();
    (
        get_string(&rows[0], "status").unwrap(),
        get_opt_string(&rows[0], "error"),
    )
}

/// The id of the serve process listening on `listen`'s pid.
async fn process_of(db: &Database, server: &Server) -> String {
    let pid = i64::from(server.child.id());
    let rows = db
        .fetch_all(
            "SELECT id FROM kondate_processes WHERE pid = ? AND command = 'serve' AND stopped_at IS NULL",
            &[Value::Int(pid)],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "serve pid {pid} registered once");
    get_string(&rows[0], "id").unwrap()
}

/// A query that takes seconds.
const LONG_QUERY: &str = "SELECT count(*) FROM generate_series(1, 100000000)";

/// Submit `sql` to `server`; the query's id.
async fn submit(server: &Server, sql: &str) -> i64 {
    let submitted: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/v1/queries", server.listen))
        .form(&[("q", sql)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    submitted["id"]
        .as_i64()
        .or_else(|| submitted["id"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not submitted: {submitted}"))
}

/// Wait for query `id` (`what`) to end, which must be in success.
async fn succeeds(db: &Database, id: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match status(db, id).await {
            (s, _) if s == "success" => return,
            (s, _) if s == "running" || s == "pending" => {
                assert!(Instant::now() < deadline, "{what} never finished");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (s, error) => panic!("{what} ended {s}: {error:?}"),
        }
    }
}

async fn wait_running(db: &Database, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(db, id).await.0 != "running" {
        assert!(Instant::now() < deadline, "query {id} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn several_servers_share_one_state_database(env: Vec<(String, String)>) {
    let (_dir, root) = common::init_project();
    let state_url = state_url(&root, &env);

    let a = serve(&root, &env);
    let db = Database::connect(&state_url).await.unwrap();
    let a_id = process_of(&db, &a).await;
    let owned_by_a = running_query(&db, &a_id).await;
    // A process that stopped heartbeating long ago, on another machine, left a query.
    db.execute(
        "INSERT INTO kondate_processes (id, host, pid, version, command, started_at, heartbeat_at) \
         VALUES ('elsewhere:7:0:0', 'elsewhere', 7, '0.0.0', 'serve', 0, 0)",
        &[],
    )
    .await
    .unwrap();
    let orphaned = running_query(&db, "elsewhere:7:0:0").await;

    // A second server starts: it fails the orphan, and leaves A's query alone.
    let b = serve(&root, &env);
    let (s, error) = status(&db, orphaned).await;
    assert_eq!(s, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("elsewhere:7:0:0") && error.contains("last heard from at 1970-01-01"),
        "{error}"
    );
    assert_eq!(
        status(&db, owned_by_a).await.0,
        "running",
        "a process starting must not fail another live process's query"
    );
    // A command that ran a query in-process registered, and deregistered when it ended.
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["query", "SELECT 1 AS x"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // `kondate processes` shows both servers live, A owning its query, and the command
    // stopped.
    let listed = processes(&root, &env);
    assert!(
        listed
            .iter()
            .any(|p| p["command"] == "query" && p["state"] == "stopped"),
        "{listed:?}"
    );
    let a_view = listed.iter().find(|p| p["id"] == a_id.as_str()).unwrap();
    assert_eq!(a_view["state"], "live", "{listed:?}");
    assert_eq!(a_view["queries"], 1, "{listed:?}");
    assert_eq!(
        listed
            .iter()
            .filter(|p| p["state"] == "live" && p["command"] == "serve")
            .count(),
        2,
        "{listed:?}"
    );

    // Both stay up, heartbeating: A's query is still left alone past lost_after.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(status(&db, owned_by_a).await.0, "running");

    // A is SIGKILLed while B runs a long query: nothing deregisters A; B fails A's query
    // once lost_after has passed, and its own query runs on.
    let on_b = submit(&b, LONG_QUERY).await;
    wait_running(&db, on_b).await;
    let killed = std::time::Instant::now();
    drop(a);
    assert_eq!(
        status(&db, on_b).await.0,
        "running",
        "the query should take seconds: it must still run when A is killed"
    );
    assert_eq!(
        status(&db, owned_by_a).await.0,
        "running",
        "failed before lost_after had passed"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        let (s, error) = status(&db, owned_by_a).await;
        if s == "failed" {
            break error.unwrap();
        }
        assert!(Instant::now() < deadline, "A's query was never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        killed.elapsed() >= Duration::from_millis(4500),
        "failed {:?} after the kill, before lost_after (5s) could have passed",
        killed.elapsed()
    );
    assert!(
        error.contains(&a_id)
            && error.contains("last heard from")
            && error.contains("submit it again"),
        "{error}"
    );

    let listed = processes(&root, &env);
    let a_view = listed.iter().find(|p| p["id"] == a_id.as_str()).unwrap();
    assert_eq!(
        (a_view["state"].as_str(), a_view["queries"].as_i64()),
        (Some("lost"), Some(0)),
        "{listed:?}"
    );
    succeeds(&db, on_b, "B's query, while A was killed").await;

    // B is stopped with SIGTERM while it runs a query: it stops listening, lets the query
    // finish, and only then deregisters; C's long query, running meanwhile, is left alone.
    let c = serve(&root, &env);
    let on_c = submit(&c, LONG_QUERY).await;
    wait_running(&db, on_c).await;
    let b_id = process_of(&db, &b).await;
    let long = submit(&b, LONG_QUERY).await;
    wait_running(&db, long).await;
    let b_pid = b.child.id();
    assert!(
        Command::new("kill")
            .args(["-TERM", &b_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        status(&db, long).await.0,
        "running",
        "the query should take seconds: it must still run when SIGTERM arrives"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&b.listen).is_ok() {
        assert!(
            Instant::now() < deadline,
            "kondate serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let stopped = loop {
        let rows = db
            .fetch_all(
                "SELECT stopped_at FROM kondate_processes WHERE id = ?",
                &[b_id.as_str().into()],
            )
            .await
            .unwrap();
        if let Some(stopped) = kondate_db::get_opt_i64(&rows[0], "stopped_at") {
            break stopped;
        }
        assert!(
            Instant::now() < deadline,
            "B never recorded that it stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (s, error) = status(&db, long).await;
    assert_eq!(
        s, "success",
        "a query running at SIGTERM was not drained: {error:?}"
    );
    let rows = db
        .fetch_all(
            "SELECT finished_at FROM kondate_queries WHERE id = ?",
            &[Value::Int(long)],
        )
        .await
        .unwrap();
    let finished = kondate_db::get_opt_i64(&rows[0], "finished_at").unwrap();
    assert!(
        stopped >= finished,
        "B deregistered ({stopped}) before its query finished ({finished})"
    );
    succeeds(&db, on_c, "C's query, while B stopped").await;
    drop(c);
}

/// Three servers restarted one after another (SIGTERM, wait, start again) while a client
/// keeps submitting queries to whichever are up, moving on when one refuses (connection
/// refused, or 503 while it shuts down): every query a server accepted ends `success`.
async fn a_rolling_restart_fails_no_query(env: Vec<(String, String)>) {
    let (_dir, root) = common::init_project();
    let state_url = state_url(&root, &env);
    let mut servers: Vec<Server> = (0..3).map(|_| serve(&root, &env)).collect();
    let up = std::sync::Arc::new(std::sync::Mutex::new(
        servers.iter().map(|s| s.listen.clone()).collect::<Vec<_>>(),
    ));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (up, stop) = (up.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = Vec::new();
            let mut turn = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                turn += 1;
                let target = {
                    let up = up.lock().unwrap();
                    up[turn % up.len()].clone()
                };
                let r = http
                    .post(format!("http://{target}/v1/queries"))
                    .form(&[("q", "SELECT 1 AS x")])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let q: serde_json::Value = r.json().await.unwrap();
                        accepted.push(q["id"].as_i64().unwrap());
                    }
                    // Shutting down, or already gone: try the next server.
                    Ok(r) => assert_eq!(r.status(), 503, "{target}"),
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            accepted
        })
    };
    for (i, server) in servers.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let old = server.listen.clone();
        up.lock().unwrap().retain(|l| *l != old);
        let pid = server.child.id();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = server.child.wait().unwrap();
        assert!(status.success(), "server {i} exited with {status}");
        *server = serve(&root, &env);
        up.lock().unwrap().push(server.listen.clone());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let accepted = client.await.unwrap();
    assert!(
        accepted.len() >= 20,
        "only {} queries went through",
        accepted.len()
    );
    let db = Database::connect(&state_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in accepted {
        loop {
            let (s, error) = status(&db, id).await;
            match s.as_str() {
                "success" => break,
                "pending" | "running" => {
                    assert!(Instant::now() < deadline, "query {id} never finished");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("query {id} ended {other}: {error:?}"),
            }
        }
    }
}

/// `kondate ARGS` in the project, on the databases `env` names.
fn kondate(root: &Path, env: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kondate"));
    c.current_dir(root)
        .env_remove("KONDATE_PROJECT")
        .env_remove("KONDATE_FAILPOINT")
        .env_remove("KONDATE_RUN_ID")
        .env("CI", "true")
        .env("KONDATE_STATE_HEARTBEAT", "200ms")
        .env("KONDATE_STATE_LOST_AFTER", "5s")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args);
    c
}

/// Run `kondate ARGS`, which must succeed; its standard output.
fn ok(root: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let o = kondate(root, env, args).output().unwrap();
    assert!(
        o.status.success(),
        "kondate {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `kondate ARGS` started, its standard error kept for [`finished`].
fn start(root: &Path, env: &[(String, String)], args: &[&str]) -> common::Killed {
    common::Killed(
        kondate(root, env, args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Wait for `child`, which must succeed.
fn finished(mut child: common::Killed, what: &str) {
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{what}: {status} {err}");
}

/// The process `pid` as `kondate processes` lists it.
fn listed_process(root: &Path, env: &[(String, String)], pid: u32) -> serde_json::Value {
    processes(root, env)
        .into_iter()
        .find(|p| p["pid"] == i64::from(pid))
        .unwrap_or_else(|| panic!("process {pid} is not listed"))
}

/// Give a second writer time to reach the lock the first holds; it must still be waiting.
async fn still_waiting(child: &mut common::Killed, what: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(status) = child.try_wait().unwrap() {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("{what} did not wait for the lock the other process holds: {status} {err}");
    }
}

/// Label syncs and result writes by separate processes on one label set / result table:
/// a second one waits while the first holds the lock, and completes once the first is
/// SIGKILLed there (its lock went with its database session), with the first's work
/// shown by `kondate processes` while it held it and released once it was lost; two at
/// once both complete.
async fn syncs_and_writes_across_processes(mut env: Vec<(String, String)>) {
    let (_dir, root) = common::init_project();
    // The service database on the same server as the state database.
    if let Some((_, url)) = env.iter().find(|(k, _)| k == "KONDATE_STATE_URL").cloned() {
        env.push(("KONDATE_SERVICE_URL".into(), url));
    }
    let env = &env;
    std::fs::write(
        root.join("labels/dishes.toml"),
        "table = \"dish_labels\"\nkey = [\"id\"]\n[source]\ntype = \"csv\"\npath = \"dishes.csv\"\n\
         [columns]\nid = { type = \"integer\" }\ncategory = { type = \"string\", required = true }\n",
    )
    .unwrap();
    let labels = |version: &str| {
        let mut s = String::from("id,category\n");
        for i in 0..2000 {
            s.push_str(&format!("{i},{version}\n"));
        }
        std::fs::write(root.join("dishes.csv"), s).unwrap();
    };
    let revisions = || {
        serde_json::from_str::<serde_json::Value>(&ok(
            &root,
            env,
            &["labels", "history", "dishes", "--format", "json"],
        ))
        .unwrap()
        .as_array()
        .unwrap()
        .len()
    };
    labels("v1");
    ok(&root, env, &["labels", "sync", "dishes"]);

    // A stops holding the set's lock, just before its commit.
    labels("v2");
    let mut a = common::stop_at(
        kondate(&root, env, &["labels", "sync", "dishes"]),
        "labels.before_commit",
    );
    let a_view = listed_process(&root, env, a.id());
    assert_eq!(a_view["state"], "live", "{a_view}");
    assert_eq!(a_view["command"], "labels sync", "{a_view}");
    assert_eq!(a_view["work"][0]["kind"], "labels sync", "{a_view}");
    assert_eq!(a_view["work"][0]["target"], "dishes", "{a_view}");
    // B waits for it, and completes once A is killed.
    labels("v3");
    let mut b = start(&root, env, &["labels", "sync", "dishes"]);
    still_waiting(&mut b, "a second label sync").await;
    assert_eq!(revisions(), 1, "A's sync was not committed");
    a.kill().unwrap();
    a.wait().unwrap();
    finished(b, "the label sync that waited for a killed one");
    assert_eq!(revisions(), 2);
    // Two at once: both complete, and the second finds nothing left to change.
    labels("v4");
    let (c, d) = (
        start(&root, env, &["labels", "sync", "dishes"]),
        start(&root, env, &["labels", "sync", "dishes"]),
    );
    finished(c, "one of two label syncs at once");
    finished(d, "the other of two label syncs at once");
    assert_eq!(revisions(), 3);

    // Result tables: a swap stopped just before its rename holds the table; an upsert of
    // other keys waits for it (were it to commit into the old table meanwhile, the swap
    // would lose it), and completes once the swap is killed.
    std::fs::write(
        root.join("results/scores.toml"),
        "key = [\"id\"]\n[columns]\nid = { type = \"integer\" }\nversion = { type = \"string\" }\n",
    )
    .unwrap();
    let rows = |file: &str, version: &str, keys: std::ops::Range<usize>| {
        let mut s = String::from("id,version\n");
        for i in keys {
            s.push_str(&format!("{i},{version}\n"));
        }
        std::fs::write(root.join(file), s).unwrap();
    };
    rows("v1.csv", "v1", 0..1000);
    rows("v2.csv", "v2", 0..1000);
    rows("new.csv", "new", 1000..1100);
    rows("v3.csv", "v3", 0..500);
    ok(&root, env, &["results", "write", "scores", "v1.csv"]);
    let mut a = common::stop_at(
        kondate(
            &root,
            env,
            &["results", "write", "scores", "v2.csv", "--publish", "swap"],
        ),
        "results.before_swap",
    );
    let a_view = listed_process(&root, env, a.id());
    assert_eq!(
        (
            a_view["command"].as_str(),
            a_view["work"][0]["kind"].as_str(),
            a_view["work"][0]["target"].as_str()
        ),
        (Some("results write"), Some("results write"), Some("scores")),
        "{a_view}"
    );
    let mut b = start(&root, env, &["results", "write", "scores", "new.csv"]);
    still_waiting(&mut b, "an upsert while a swap holds the table").await;
    a.kill().unwrap();
    a.wait().unwrap();
    finished(b, "the upsert that waited for a killed swap");
    let counts = result_versions(env, &root).await;
    assert_eq!(counts, [("new".to_string(), 100), ("v1".to_string(), 1000)]);

    // An upsert stopped after its first rows holds the table; a pruning swap waits, and
    // completes once the upsert is killed.
    let mut a = common::stop_at(
        kondate(&root, env, &["results", "write", "scores", "v2.csv"]),
        "results.mid_write",
    );
    let mut b = start(
        &root,
        env,
        &[
            "results",
            "write",
            "scores",
            "v3.csv",
            "--publish",
            "swap",
            "--prune",
        ],
    );
    still_waiting(&mut b, "a swap while an upsert holds the table").await;
    a.kill().unwrap();
    a.wait().unwrap();
    finished(b, "the swap that waited for a killed upsert");
    assert_eq!(result_versions(env, &root).await, [("v3".to_string(), 500)]);

    // What the killed processes had recorded as in progress stays, shown under the lost
    // process, until a sweep finds them gone: a server starting sweeps at once.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let lost: Vec<_> = processes(&root, env)
        .into_iter()
        .filter(|p| p["state"] == "lost")
        .collect();
    assert!(
        lost.iter().any(|p| p["work"][0]["kind"] == "results write"),
        "{lost:?}"
    );
    let server = serve(&root, env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<_> = processes(&root, env)
            .into_iter()
            .filter(|p| p["work"].as_array().is_some_and(|w| !w.is_empty()))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost work never released: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
}

/// Two `kondate apps run`s supervise a run each; one is SIGKILLed: its run is `lost` at
/// once (its process is provably gone from this host), with the log written so far stored
/// where every process can read it, and the other run is left alone.
async fn runs_whose_supervisor_is_killed(env: Vec<(String, String)>) {
    let (_dir, root) = common::init_project();
    let env = &env;
    // In a folder of the project: an isolated run may write below it (docs/apps.md).
    std::fs::create_dir_all(root.join("out")).unwrap();
    let pidfile = |name: &str| root.join("out").join(format!("{name}.pid"));
    for name in ["a", "b"] {
        std::fs::write(
            root.join("apps").join(format!("{name}.jsonnet")),
            format!(
                "{{ app: {{ command: ['sh', '-c', 'echo started {name}; echo $$ > {}; sleep 300'] }} }}",
                pidfile(name).display()
            ),
        )
        .unwrap();
    }
    let mut supervisors: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| start(&root, env, &["apps", "run", name]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut app_pids = Vec::new();
    for name in ["a", "b"] {
        loop {
            let pid = std::fs::read_to_string(pidfile(name)).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse::<i32>() {
                app_pids.push(pid);
                break;
            }
            assert!(Instant::now() < deadline, "run {name} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The pid file is written after the line, but the supervisor reads the line from a pipe
    // on its own time: wait until its log holds it, since only what the supervisor has read
    // before it dies can be in "the log written so far".
    let runs: serde_json::Value =
        serde_json::from_str(&ok(&root, env, &["apps", "runs", "--format", "json"])).unwrap();
    let a_id = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["app"] == "a")
        .unwrap_or_else(|| panic!("no run of a: {runs}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    while !ok(&root, env, &["apps", "logs", &a_id]).contains(" out started a") {
        assert!(
            Instant::now() < deadline,
            "run a's log never got its first line"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its process is recorded (host, boot, pid and start time) once it started.
    loop {
        let runs: serde_json::Value =
            serde_json::from_str(&ok(&root, env, &["apps", "runs", "--format", "json"])).unwrap();
        let a = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == a_id.as_str())
            .cloned();
        if let Some(p) = a.as_ref().and_then(|a| a["process"].as_str()) {
            assert!(p.contains(&format!("/{}/", app_pids[0])), "{p}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run a's process never recorded: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A's supervisor is killed; what it ran is no longer supervised, and the first look at
    // the runs on this host stops it.
    supervisors[0].kill().unwrap();
    supervisors[0].wait().unwrap();
    assert!(Path::new(&format!("/proc/{}", app_pids[0])).exists());

    let runs: serde_json::Value =
        serde_json::from_str(&ok(&root, env, &["apps", "runs", "--format", "json"])).unwrap();
    let run_of = |app: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["app"] == app)
            .unwrap_or_else(|| panic!("no run of {app}: {runs}"))
            .clone()
    };
    let (a, b) = (run_of("a"), run_of("b"));
    assert_eq!(a["status"], "lost", "{a}");
    assert_eq!(b["status"], "running", "{b}");
    let log = ok(&root, env, &["apps", "logs", a["id"].as_str().unwrap()]);
    assert!(log.contains(" out started a"), "{log}");
    let error = a["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("its process group was still running and has been killed"),
        "{a}"
    );
    assert!(
        common::gone_within_5s(app_pids[0].into()),
        "run a's process {} outlived its lost run",
        app_pids[0]
    );

    // B's supervisor stops cleanly (SIGTERM): its run ends with a final status, not lost.
    let b_pid = supervisors[1].id() as i32;
    unsafe { libc::kill(b_pid, libc::SIGTERM) };
    supervisors[1].wait().unwrap();
    let b: serde_json::Value = serde_json::from_str(&ok(
        &root,
        env,
        &[
            "apps",
            "show-run",
            b["id"].as_str().unwrap(),
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert!(b["status"] != "running" && b["status"] != "lost", "{b}");
}

/// Two `kondate serve` processes on one state database, each a scheduler with a worker,
/// their scheduler clocks running 36,000 times fast: thousands of minutely slots pass, and
/// each is launched exactly once; the steps of a half-hourly job run once each across the
/// two workers.
async fn two_schedulers_launch_each_slot_once(env: Vec<(String, String)>) {
    let (_dir, root) = common::init_project();
    let ran = root.join("out").join("ran.txt");
    std::fs::create_dir_all(root.join("out")).unwrap();
    let every = |cron: &str, script: &str| {
        format!(
            "{{ script: {script:?}, schedules: [{cron:?}], catchup: 'all', catchup_max: 10000, \
             prevent_multi: 'allow' }}"
        )
    };
    std::fs::write(
        root.join("jobs/tick.jsonnet"),
        every("* * * * *", "noop:\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("jobs/work.jsonnet"),
        every(
            "*/30 * * * *",
            &format!("execute: echo $KONDATE_INSTANCE_ID >> {}\n", ran.display()),
        ),
    )
    .unwrap();
    let mut env = env;
    env.extend(
        [
            (
                kondate_core::clock::SCHEDULER_CLOCK_VAR,
                "2026-06-01T00:00:00Z@36000",
            ),
            ("KONDATE_JOBS_POLL", "200ms"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let servers = [serve(&root, &env), serve(&root, &env)];
    let db = Database::connect(&state_url(&root, &env)).await.unwrap();
    let count = |job: &'static str| {
        let db = db.clone();
        async move {
            let r = db
                .fetch_all(
                    "SELECT COUNT(*) AS n FROM kondate_job_instances WHERE job = ?",
                    &[Value::from(job)],
                )
                .await
                .unwrap();
            kondate_db::get_i64(&r[0], "n").unwrap()
        }
    };
    let succeeded_steps = || {
        let db = db.clone();
        async move {
            db.fetch_all(
                "SELECT s.instance FROM kondate_job_steps s JOIN kondate_job_instances i \
                 ON i.id = s.instance WHERE i.job = 'work' AND s.status = 'success'",
                &[],
            )
            .await
            .unwrap()
            .len()
        }
    };
    // Both conditions are waited for, not assumed from elapsed time: on a loaded machine
    // the workers may run fewer `work` steps while the 2000 minutely slots pass.
    let deadline = Instant::now() + Duration::from_secs(120);
    while count("tick").await < 2000 || succeeded_steps().await <= 10 {
        assert!(
            Instant::now() < deadline,
            "within 120 s: {} tick slots launched, {} work steps succeeded",
            count("tick").await,
            succeeded_steps().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SIGTERM: each stops scheduling, lets its running step end, and deregisters.
    for s in &servers {
        unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    }
    for mut s in servers {
        s.child.wait().unwrap();
    }
    for (job, minutes) in [("tick", 1), ("work", 30)] {
        let rows = db
            .fetch_all(
                "SELECT scheduled_at FROM kondate_job_instances WHERE job = ? ORDER BY scheduled_at",
                &[Value::from(job)],
            )
            .await
            .unwrap();
        let at: Vec<i64> = rows
            .iter()
            .map(|r| kondate_db::get_i64(r, "scheduled_at").unwrap())
            .collect();
        assert!(at.len() > 50, "{job}: {} instances", at.len());
        // Every slot from the first on, once: no gap, no repeat.
        for w in at.windows(2) {
            assert_eq!(
                w[1] - w[0],
                minutes * 60_000,
                "{job}: slots {} and {}",
                w[0],
                w[1]
            );
        }
    }
    // Each step of `work` that ran, ran once.
    let succeeded = succeeded_steps().await;
    let text = std::fs::read_to_string(&ran).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().collect();
    let all = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), all, "a step ran twice");
    assert!(succeeded > 10, "only {succeeded} steps ran");
    assert_eq!(all, succeeded);
}

/// (version, rows) in result table `scores`, on the service database `env` names.
async fn result_versions(env: &[(String, String)], root: &Path) -> Vec<(String, i64)> {
    let url = env
        .iter()
        .find(|(k, _)| k == "KONDATE_SERVICE_URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("sqlite://{}", root.join(".kondate/service.db").display()));
    let db = Database::connect(&url).await.unwrap();
    db.fetch_all(
        "SELECT version, COUNT(*) AS n FROM scores GROUP BY version ORDER BY version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            get_string(r, "version").unwrap(),
            kondate_db::get_i64(r, "n").unwrap(),
        )
    })
    .collect()
}

/// The state database's URL: the one `env` names, else the project's SQLite file.
fn state_url(root: &Path, env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "KONDATE_STATE_URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("sqlite://{}", root.join(".kondate/state.db").display()))
}

/// A database of its own on the server `var` names, as the state database.
async fn state_env(var: &'static str, tag: &'static str) -> Vec<(String, String)> {
    tokio::task::spawn_blocking(move || common::service_env(var, tag))
        .await
        .unwrap()
}

/// The scenario on SQLite, and on PostgreSQL and MariaDB where CI provides them.
macro_rules! on_every_state_database {
    ($scenario:ident, $tag:literal, $sqlite:ident, $postgres:ident, $mariadb:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $sqlite() {
            $scenario(Vec::new()).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        #[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
        async fn $postgres() {
            $scenario(state_env("KONDATE_TEST_POSTGRES_URL", $tag).await).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        #[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
        async fn $mariadb() {
            $scenario(state_env("KONDATE_TEST_MYSQL_URL", $tag).await).await;
        }
    };
}

on_every_state_database!(
    several_servers_share_one_state_database,
    "processes",
    sqlite_several_servers_share_one_state_database,
    postgres_several_servers_share_one_state_database,
    mariadb_several_servers_share_one_state_database
);

on_every_state_database!(
    a_rolling_restart_fails_no_query,
    "rolling",
    sqlite_a_rolling_restart_fails_no_query,
    postgres_a_rolling_restart_fails_no_query,
    mariadb_a_rolling_restart_fails_no_query
);

on_every_state_database!(
    syncs_and_writes_across_processes,
    "crossproc",
    sqlite_syncs_and_writes_across_processes,
    postgres_syncs_and_writes_across_processes,
    mariadb_syncs_and_writes_across_processes
);

on_every_state_database!(
    runs_whose_supervisor_is_killed,
    "lostruns",
    sqlite_runs_whose_supervisor_is_killed,
    postgres_runs_whose_supervisor_is_killed,
    mariadb_runs_whose_supervisor_is_killed
);

on_every_state_database!(
    two_schedulers_launch_each_slot_once,
    "twosched",
    sqlite_two_schedulers_launch_each_slot_once,
    postgres_two_schedulers_launch_each_slot_once,
    mariadb_two_schedulers_launch_each_slot_once
);

/// On PostgreSQL an idle `kondate worker` — another process, polling only every ten
/// minutes — is woken by the launch of a step elsewhere (LISTEN/NOTIFY) and starts it at
/// once.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_an_idle_worker_is_woken_by_a_launch() {
    use std::io::BufRead;
    let env = state_env("KONDATE_TEST_POSTGRES_URL", "wakeworker").await;
    let (_dir, root) = common::init_project();
    let started = root.join("started");
    std::fs::write(
        root.join("jobs/now.jsonnet"),
        format!("{{ script: 'execute: touch {}\\n' }}", started.display()),
    )
    .unwrap();
    // Killed when the test ends, also by a failed assertion: a worker left running would
    // take the steps of a later run of the test.
    let mut worker = common::Killed(
        Command::new(env!("CARGO_BIN_EXE_kondate"))
            .current_dir(&root)
            .env_remove("KONDATE_PROJECT")
            .env("CI", "true")
            .env("KONDATE_JOBS_POLL", "10m")
            .env("KONDATE_LOG", "kondate=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("worker")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Its log says when it has found nothing to do and waits, listening: a step launched
    // after that can only be found by being woken (or at the poll ten minutes later). The
    // rest of the log is drained so that the worker never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = worker.0.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("idle: waiting for a step") && line.contains("listening=true") {
                let _ = tx.send(());
            }
            if !line.contains("sqlx") {
                kept.lock().unwrap().push(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the worker never waited, listening");
    let launched = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["jobs", "launch", "now"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    while !started.exists() {
        assert!(
            launched.elapsed() < Duration::from_secs(30),
            "the worker was not woken (it polls every 10 minutes); its log:\n{}",
            log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(worker.0.id() as i32, libc::SIGTERM) };
    worker.0.wait().unwrap();
}
