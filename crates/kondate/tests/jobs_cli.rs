//! `kondate jobs` as a user runs it: definitions checked with file and field, listed with
//! their next fire times in their zones, a bad one exiting 2 and naming where it is wrong.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn kondate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .output()
        .expect("kondate runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn jobs_are_checked_listed_and_their_next_times_shown_in_their_zones() {
    let (_dir, root) = common::init_project();
    std::fs::write(
        root.join("jobs/train.jsonnet"),
        "{\n  description: 'Weekly training',\n  script: |||\n    retry: count=2 sleep_time=60\n      \
         app: train\n  |||,\n  schedules: [{ cron: '0 9 * * 1', time_zone: 'Asia/Tokyo' }],\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("jobs/export.json"),
        r#"{ "script": "results_export: recipe_categories\n", "schedules": ["30 2 * * *"] }"#,
    )
    .unwrap();

    // All good: check passes; list shows both with their next fire time.
    let o = kondate(&root, &["jobs", "check"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["name"], "export");
    assert_eq!(jobs[1]["name"], "train");
    assert_eq!(jobs[1]["schedules"][0]["time_zone"], "Asia/Tokyo");
    let next = jobs[1]["next"].as_str().unwrap();
    assert!(next.ends_with("T09:00:00+09:00"), "{next}");
    let o = kondate(&root, &["jobs", "list"]);
    assert!(
        text(&o.stdout).contains("0 9 * * 1 (Asia/Tokyo)"),
        "{}",
        text(&o.stdout)
    );

    // next: Mondays at 09:00 in Tokyo, a week apart, in the future.
    let o = kondate(
        &root,
        &["jobs", "next", "train", "-n", "3", "--format", "json"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let times: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(times.len(), 3);
    let parsed: Vec<_> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    assert!(parsed[0] > chrono::Utc::now());
    for (t, p) in times.iter().zip(&parsed) {
        assert!(t.ends_with("T09:00:00+09:00"), "{t}");
        assert_eq!(chrono::Datelike::weekday(p), chrono::Weekday::Mon, "{t}");
    }
    assert_eq!(parsed[1] - parsed[0], chrono::Duration::days(7));

    // A mistake: check exits 2 naming the file, the field and the script's line and task;
    // list shows the others and the error.
    std::fs::write(
        root.join("jobs/broken.jsonnet"),
        "{ script: 'noop:\\ntimeout: 5s\\n', schedules: ['0 3 * * *'] }",
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    assert!(
        out.contains("broken.jsonnet: field `script`, line 2: `timeout`: "),
        "{out}"
    );
    assert!(text(&o.stderr).contains("1 of 4 job definitions have errors"));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(jobs[0]["error"].as_str().unwrap().contains("line 2"));
    assert!(jobs[2]["next"].is_string());

    // Unknown job, and a bad name.
    let o = kondate(&root, &["jobs", "next", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no job named `nope`"),
        "{}",
        text(&o.stderr)
    );
    let o = kondate(&root, &["jobs", "next", "../x"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A job launched by hand, run by `kondate worker` processes: its output in `jobs logs`, a
/// failure shown with its step and retried, `--wait` returning with the instance's end.
#[test]
fn jobs_launch_run_by_workers_fail_retry_and_wait() {
    let (_dir, root) = common::init_project();
    let marker = root.join("marker");
    std::fs::write(
        root.join("jobs/pipe.jsonnet"),
        format!(
            "{{ script: |||\n  env: WHO=world\n  execute: echo \"hello $WHO $X from $KONDATE_JOB\"\n  \
             execute: test -f {} || (echo 'no marker' >&2; exit 4)\n  echo: finished\n||| }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let o = kondate(
        &root,
        &["jobs", "launch", "pipe", "-e", "X=1", "--format", "json"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let launched: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = launched["id"].as_i64().unwrap();
    assert_eq!(launched["status"], "working");
    let id_text = id.to_string();

    // A worker runs what waits, then exits: the second step fails.
    let o = kondate(&root, &["worker", "--until-idle"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "instance", &id_text, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "error", "{i}");
    assert!(i["error"].as_str().unwrap().contains("step L3"), "{i}");
    assert_eq!(i["steps"][1]["exit_code"], 4);
    let o = kondate(&root, &["jobs", "logs", &id_text]);
    let logs = text(&o.stdout);
    assert!(logs.contains("[L2] hello world 1 from pipe"), "{logs}");
    assert!(logs.contains("[L3] no marker"), "{logs}");

    // Retried once the cause is fixed: the failed step and the rest run; the first not again.
    std::fs::write(&marker, "").unwrap();
    let o = kondate(&root, &["jobs", "retry", &id_text]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["worker", "--until-idle"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "instances", "pipe", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["status"], "success", "{list}");
    let o = kondate(&root, &["jobs", "logs", &id_text, "--format", "json"]);
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["step"] == "L2" && l["stream"] == "stdout")
            .count(),
        1,
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["step"] == "L4" && l["text"] == "finished")
    );

    // --wait with a worker running beside: returns when the instance ends; the worker
    // stops on SIGTERM.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["worker"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .env("KONDATE_JOBS_POLL", "100ms")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = kondate(&root, &["jobs", "launch", "pipe", "--wait"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains(": success"), "{}", text(&o.stdout));
    std::fs::remove_file(&marker).unwrap();
    let o = kondate(&root, &["jobs", "launch", "pipe", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("ended error: step L3"),
        "{}",
        text(&o.stderr)
    );
    // SAFETY: signals a child of this test.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = worker.wait().unwrap();
    assert!(status.success(), "{status:?}");

    // Operating on what is not there, or not in ERROR, says so (exit 2).
    let o = kondate(&root, &["jobs", "retry", "999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no instance 999"),
        "{}",
        text(&o.stderr)
    );
    let o = kondate(&root, &["jobs", "skip", &id_text]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("is success"),
        "{}",
        text(&o.stderr)
    );
    let o = kondate(&root, &["jobs", "launch", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A worker SIGKILLed mid-step: once it has been silent past `state.lost_after`, another
/// worker fails the step, naming the lost worker, and the instance is in ERROR — then
/// succeeds on retry. Nothing stays WORKING.
#[test]
fn a_step_whose_worker_is_killed_fails_and_succeeds_on_retry() {
    let (_dir, root) = common::init_project();
    let (started, marker, pid_file) = (
        root.join("started"),
        root.join("marker"),
        root.join("step.pid"),
    );
    std::fs::write(
        root.join("jobs/long.jsonnet"),
        format!(
            "{{ script: 'execute: echo $$ > {p}; touch {s}; test -f {m} || sleep 60\\n' }}",
            p = pid_file.display(),
            s = started.display(),
            m = marker.display()
        ),
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "launch", "long", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let fast = [
        ("KONDATE_STATE_HEARTBEAT", "200ms"),
        ("KONDATE_STATE_LOST_AFTER", "1s"),
        ("KONDATE_JOBS_POLL", "100ms"),
    ];
    let mut victim = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .arg("worker")
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .envs(fast)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Killed once the step's process is recorded (the step's `process`).
    let step_pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    loop {
        let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
        let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if let Some(p) = i["steps"][0]["process"].as_str() {
            assert!(p.contains(&format!("/{step_pid}/")), "{p}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the step's process was never recorded: {i}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "working", "{i}");
    assert_eq!(i["steps"][0]["status"], "working", "{i}");
    // What the killed worker started runs on (its own process group) until the sweep.
    assert!(Path::new(&format!("/proc/{step_pid}")).exists());

    // Past lost_after, another worker (finding nothing to run) fails the step.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["worker", "--until-idle"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .envs(fast)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "error", "{i}");
    let error = i["error"].as_str().unwrap();
    assert!(
        error.contains("its worker is gone") && error.contains("was last heard from"),
        "{error}"
    );
    // The sweep on this host stopped the step's leftover process group.
    assert!(
        error.contains("was still running and has been killed"),
        "{error}"
    );
    assert!(
        common::gone_within_5s(step_pid),
        "the step's process {step_pid} outlived the sweep"
    );

    // Retried: runs again and succeeds.
    std::fs::write(&marker, "").unwrap();
    assert!(kondate(&root, &["jobs", "retry", &id]).status.success());
    let o = kondate(&root, &["worker", "--until-idle"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "success", "{i}");
    assert_eq!(i["steps"][0]["attempt"], 1, "{i}");
}

/// kondate's own tasks in a script, run by a worker: a label set synced, an app run
/// (recorded, with the step's arguments added to its command and the step's variables), a
/// result table exported to the warehouse.
#[test]
fn a_script_syncs_labels_runs_an_app_and_exports_results() {
    let (_dir, root) = common::init_project();
    std::fs::write(
        root.join("labels/recipe_category.toml"),
        "table = \"recipe_category_labels\"\nkey = [\"recipe_id\"]\n[source]\ntype = \"csv\"\n\
         path = \"recipe_category.csv\"\n[columns]\nrecipe_id = { type = \"integer\", required = true }\n\
         category = { type = \"string\", required = true }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("recipe_category.csv"),
        "recipe_id,category\n1,主菜\n2,副菜\n",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/hello.jsonnet"),
        "{ app: { command: ['sh', '-c', 'echo \"hello $0 $MODEL\"'] } }",
    )
    .unwrap();
    std::fs::write(
        root.join("results/recipe_categories.toml"),
        "key = [\"recipe_id\"]\nwarehouse_table = \"ml.recipe_categories\"\n[columns]\n\
         recipe_id = { type = \"integer\" }\ncategory = { type = \"string\" }\n",
    )
    .unwrap();
    std::fs::write(root.join("r.csv"), "recipe_id,category\n1,主菜\n2,副菜\n").unwrap();
    let o = kondate(&root, &["results", "write", "recipe_categories", "r.csv"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::write(
        root.join("jobs/daily.jsonnet"),
        "{ script: |||\n  labels_sync: recipe_category\n  env: MODEL=v1\n  app: hello from-job\n  \
         results_export: recipe_categories\n  catalog_sync: all\n||| }\n",
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "launch", "daily", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let o = kondate(&root, &["worker", "--until-idle"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "success", "{i}");

    // The label set has its first revision; the app's run is recorded with its output.
    let o = kondate(
        &root,
        &["labels", "history", "recipe_category", "--format", "json"],
    );
    let history: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    let o = kondate(&root, &["apps", "runs", "hello", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    let run_id = runs[0]["id"].as_str().unwrap();
    let o = kondate(&root, &["apps", "logs", run_id]);
    assert!(
        text(&o.stdout).contains("hello from-job v1"),
        "{}",
        text(&o.stdout)
    );
    let o = kondate(&root, &["jobs", "logs", &id]);
    let logs = text(&o.stdout);
    assert!(logs.contains(&format!("run {run_id} succeeded")), "{logs}");
    assert!(
        logs.contains("exported 2 row(s) of recipe_categories"),
        "{logs}"
    );
    // The catalog synced both sources, the export's copy among what it found.
    assert!(logs.contains("catalog warehouse: "), "{logs}");
    assert!(logs.contains("catalog service: "), "{logs}");
    let o = kondate(
        &root,
        &[
            "catalog",
            "show",
            "ml.recipe_categories",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The exported rows are in the warehouse.
    let o = kondate(
        &root,
        &["query", "SELECT count(*) AS n FROM ml.recipe_categories"],
    );
    assert_eq!(text(&o.stdout).trim(), "n\n2", "{}", text(&o.stderr));
}

/// A backfill launches one instance per past slot, oldest first, bounded, each knowing its
/// slot; a second backfill of the same span launches nothing again.
#[test]
fn a_backfill_launches_each_past_slot_once_with_its_time() {
    let (_dir, root) = common::init_project();
    let out = root.join("slots.txt");
    std::fs::write(
        root.join("jobs/hourly.jsonnet"),
        format!(
            "{{ script: 'execute: echo $KONDATE_SCHEDULED_AT >> {}\\n', schedules: ['0 * * * *'] }}",
            out.display()
        ),
    )
    .unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["worker"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("KONDATE_JOBS_POLL", "100ms")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let span = [
        "jobs",
        "backfill",
        "hourly",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-01T05:00:00Z",
        "--concurrency",
        "2",
    ];
    let o = kondate(&root, &span);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).contains("6 launched, 0 launched before, 0 did not succeed"),
        "{}",
        text(&o.stdout)
    );
    let mut slots: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    slots.sort();
    let want: Vec<String> = (0..6)
        .map(|h| format!("2026-01-01T{h:02}:00:00.000Z"))
        .collect();
    assert_eq!(slots, want);
    let o = kondate(&root, &span);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("0 launched, 6 launched before"),
        "{}",
        text(&o.stdout)
    );
    // SAFETY: signals a child of this test.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert!(worker.wait().unwrap().success());
    let o = kondate(
        &root,
        &[
            "jobs",
            "backfill",
            "hourly",
            "--from",
            "yesterday",
            "--to",
            "2026-01-01T05:00:00Z",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--from `yesterday`"),
        "{}",
        text(&o.stderr)
    );
}

/// One HTTP request read off `listener` (headers lower-cased, the body by its length),
/// answered with `status`.
fn one_request(
    listener: std::net::TcpListener,
    status: &'static str,
) -> std::thread::JoinHandle<(std::collections::BTreeMap<String, String>, Vec<u8>)> {
    use std::io::{BufRead, Read, Write};
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut r = std::io::BufReader::new(sock.try_clone().unwrap());
        let mut headers = std::collections::BTreeMap::new();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
        let mut body = vec![0; headers["content-length"].parse().unwrap()];
        r.read_exact(&mut body).unwrap();
        let mut w = sock;
        write!(
            w,
            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        )
        .unwrap();
        (headers, body)
    })
}

/// `kondate jobs notify-test` sends a signed test notice to a destination of kondate.toml
/// (its key from the environment), and says what is wrong when it cannot: a variable not
/// set, a destination not named, an endpoint that refuses. `jobs notifications` lists.
#[test]
fn notify_test_sends_a_signed_notice_and_says_why_it_cannot() {
    let (_dir, root) = common::init_project();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut toml = std::fs::read_to_string(root.join("kondate.toml")).unwrap();
    toml.push_str(&format!(
        "\n[notifications]\ndefault = ['hook']\n[notifications.destinations.hook]\ntype = 'webhook'\n\
         url = 'http://127.0.0.1:{port}/hook'\nsecret_env = 'KONDATE_TEST_HOOK_KEY'\n"
    ));
    std::fs::write(root.join("kondate.toml"), toml).unwrap();

    let got = one_request(listener.try_clone().unwrap(), "200 OK");
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["jobs", "notify-test", "hook"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("KONDATE_TEST_HOOK_KEY", "s3cret-key")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("sent a test notification to `hook`"));
    let (headers, body) = got.join().unwrap();
    assert_eq!(
        headers["x-kondate-signature"],
        kondate_jobs::deliver::sign(b"s3cret-key", &body)
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["event"], "test");
    assert_eq!(body["id"].as_str().unwrap(), headers["x-kondate-id"]);

    // The key's variable is not set: exit 1, naming it and the field; the secret is not
    // needed to say so.
    let o = kondate(&root, &["jobs", "notify-test", "hook"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let e = text(&o.stderr);
    assert!(
        e.contains("KONDATE_TEST_HOOK_KEY")
            && e.contains("notifications.destinations.hook.secret_env"),
        "{e}"
    );
    // The endpoint refuses: its answer is shown.
    let got = one_request(listener, "403 Forbidden");
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["jobs", "notify-test", "hook"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("KONDATE_TEST_HOOK_KEY", "s3cret-key")
        .output()
        .unwrap();
    got.join().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("403"), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("s3cret-key"));
    // A destination kondate.toml does not name.
    let o = kondate(&root, &["jobs", "notify-test", "pager"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no destination named `pager`")
            && text(&o.stderr).contains("hook"),
        "{}",
        text(&o.stderr)
    );
    // Nothing recorded yet: notify-test sends directly.
    let o = kondate(&root, &["jobs", "notifications", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );
}

/// `kondate jobs suspend` and `resume`: the list says who suspended the job; an unknown job
/// is refused naming it.
#[test]
fn jobs_are_suspended_and_resumed_from_the_cli() {
    let (_dir, root) = common::init_project();
    std::fs::write(
        root.join("jobs/train.jsonnet"),
        "{ script: 'noop:\\n', schedules: ['0 9 * * 1'] }\n",
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "suspend", "train"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["suspended"], true, "{jobs}");
    assert!(jobs[0]["suspended_by"].as_str().is_some(), "{jobs}");
    let o = kondate(&root, &["jobs", "list"]);
    assert!(
        text(&o.stdout).contains("suspended by "),
        "{}",
        text(&o.stdout)
    );
    let o = kondate(&root, &["jobs", "resume", "train"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kondate(&root, &["jobs", "list", "--format", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["suspended"], false, "{jobs}");

    // `jobs show`: the job as the scheduler holds it, with its script and revisions.
    let o = kondate(&root, &["jobs", "show", "train", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let job: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(job["script"], "noop:\n", "{job}");
    assert_eq!(job["revisions"].as_array().unwrap().len(), 1, "{job}");
    assert_eq!(job["next"].as_array().unwrap().len(), 5, "{job}");
    assert_eq!(job["schedules"][0]["cron"], "0 9 * * 1", "{job}");
    assert!(job["instances"].as_array().unwrap().is_empty(), "{job}");
    let o = kondate(&root, &["jobs", "show", "train"]);
    let shown = text(&o.stdout);
    assert!(
        shown.contains("schedules: 0 9 * * 1 (UTC)") && shown.contains("script:\n  noop:"),
        "{shown}"
    );
    let o = kondate(&root, &["jobs", "show", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("jobs list"), "{}", text(&o.stderr));
    // A file no scheduler has loaded yet: said so, not "no such job".
    std::fs::write(root.join("jobs/later.jsonnet"), "{ script: 'noop:\\n' }\n").unwrap();
    let o = kondate(&root, &["jobs", "show", "later"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no scheduler has loaded it yet"),
        "{}",
        text(&o.stderr)
    );
    let o = kondate(&root, &["jobs", "suspend", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no job named `nope`"),
        "{}",
        text(&o.stderr)
    );
}

/// Force-cancel reaches kondate's own tasks too: an `app:` step's run is stopped with its
/// process group, recorded as cancelled, and the step ends `cancel` saying so.
#[test]
fn force_cancel_stops_an_app_step_and_its_run() {
    let (_dir, root) = common::init_project();
    // Below the project folder: an app run may not create files straight in it (Landlock).
    std::fs::create_dir_all(root.join("out")).unwrap();
    let pid_file = root.join("out").join("app.pid");
    std::fs::write(
        root.join("apps/slow.jsonnet"),
        format!(
            "{{ app: {{ command: ['sh', '-c', 'sleep 300 & echo $! > {}; wait'] }} }}",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("jobs/stuck.jsonnet"),
        "{ script: 'app: slow\\n' }\n",
    )
    .unwrap();
    let o = kondate(&root, &["jobs", "launch", "stuck", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["worker", "--until-idle"])
        .current_dir(&root)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let o = kondate(&root, &["jobs", "cancel", &id, "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The worker finishes the step (and, with nothing left, exits) well before the sleep.
    let started = std::time::Instant::now();
    let status = worker.wait().unwrap();
    assert!(status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let o = kondate(&root, &["jobs", "instance", &id, "--format", "json"]);
    let i: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(i["status"], "cancel", "{i}");
    assert_eq!(i["steps"][0]["status"], "cancel", "{i}");
    let error = i["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("`app: slow` was stopped"), "{i}");
    let o = kondate(&root, &["apps", "runs", "slow", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs[0]["status"], "cancelled", "{runs}");
    assert!(
        common::gone_within_5s(pid.into()),
        "the app's child {pid} outlived the force-cancel"
    );
}

#[test]
fn the_catalog_nightly_job_is_built_in_configurable_and_replaceable() {
    let (_dir, root) = common::init_project();
    let names = |root: &Path| -> Vec<serde_json::Value> {
        let o = kondate(root, &["jobs", "list", "--format", "json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // By default: catalog_sync: all at 03:00 UTC, tagged built-in, with its next fire time.
    let jobs = names(&root);
    let nightly = jobs
        .iter()
        .find(|j| j["name"] == "catalog_nightly")
        .unwrap_or_else(|| panic!("no catalog_nightly in {jobs:?}"));
    assert_eq!(nightly["schedules"][0]["cron"], "0 3 * * *", "{nightly}");
    assert_eq!(nightly["schedules"][0]["time_zone"], "UTC", "{nightly}");
    assert!(
        nightly["next"]
            .as_str()
            .unwrap()
            .ends_with("T03:00:00+00:00"),
        "{nightly}"
    );
    let o = kondate(&root, &["jobs", "check"]);
    assert!(o.status.success(), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("ok     catalog_nightly"));

    // Its schedule and zone come from kondate.toml.
    let config = std::fs::read_to_string(root.join("kondate.toml")).unwrap();
    let with = |extra: &str| {
        std::fs::write(root.join("kondate.toml"), format!("{config}\n{extra}\n")).unwrap();
    };
    with("[catalog]\nnightly = '30 4 * * *'\nnightly_time_zone = 'Asia/Tokyo'");
    let jobs = names(&root);
    let nightly = jobs
        .iter()
        .find(|j| j["name"] == "catalog_nightly")
        .unwrap();
    assert!(
        nightly["next"]
            .as_str()
            .unwrap()
            .ends_with("T04:30:00+09:00"),
        "{nightly}"
    );

    // A bad cron: check fails and says where to mend it.
    with("[catalog]\nnightly = '0 25 * * *'");
    let o = kondate(&root, &["jobs", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("kondate.toml [catalog] nightly"),
        "{}",
        text(&o.stdout)
    );

    // "" turns it off.
    with("[catalog]\nnightly = ''");
    assert!(!names(&root).iter().any(|j| j["name"] == "catalog_nightly"));

    // A project's own file of that name takes its place.
    with("");
    std::fs::write(
        root.join("jobs/catalog_nightly.jsonnet"),
        "{ script: 'catalog_sync: warehouse\\n', schedules: ['0 1 * * *'] }\n",
    )
    .unwrap();
    let jobs = names(&root);
    let mine: Vec<_> = jobs
        .iter()
        .filter(|j| j["name"] == "catalog_nightly")
        .collect();
    assert_eq!(mine.len(), 1, "{jobs:?}");
    assert_eq!(mine[0]["schedules"][0]["cron"], "0 1 * * *", "{jobs:?}");
}
