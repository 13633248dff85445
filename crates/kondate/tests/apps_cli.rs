//! `kondate apps` as a user runs it: exit status passed through, signals forwarded, a bad
//! definition named by file and line, secrets never shown, renderings printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kondate(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kondate"));
    c.current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true");
    c
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The id of the project's most recent run.
fn latest_run(root: &Path) -> String {
    let o = kondate(root)
        .args(["apps", "runs", "--format", "json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    runs[0]["id"].as_str().unwrap().to_string()
}

fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let o = kondate(dir.path()).args(["init", "p"]).output().unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    let root = dir.path().join("p");
    (dir, root)
}

fn app(root: &Path, name: &str, text: &str) {
    std::fs::write(root.join("apps").join(name), text).unwrap();
}

#[test]
fn run_passes_the_exit_status_through_and_records_the_run() {
    let (_d, root) = project();
    app(
        &root,
        "seven.jsonnet",
        "{ app: { command: ['sh', '-c', 'echo working; exit 7'] } }",
    );
    let o = kondate(&root)
        .args(["apps", "run", "seven"])
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(7), "{stdout}\n{stderr}");
    assert!(stdout.contains("working"), "{stdout}");
    assert!(!stderr.contains("error:"), "{stderr}");

    // -- CMD replaces the command; -e adds to the environment.
    let o = kondate(&root)
        .args([
            "apps",
            "run",
            "seven",
            "-e",
            "GREETING=hi",
            "--",
            "sh",
            "-c",
            "echo $GREETING",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(out(&o).0.contains("hi\n"));

    let o = kondate(&root)
        .args(["apps", "runs", "--format", "json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[1]["exit_code"], 7);
    let id = runs[1]["id"].as_str().unwrap();
    let o = kondate(&root).args(["apps", "logs", id]).output().unwrap();
    assert!(out(&o).0.contains(" out working\n"), "{:?}", out(&o));
}

#[test]
fn sigterm_to_kondate_stops_the_run_and_its_children() {
    let (_d, root) = project();
    // In a folder of the project: an isolated run may write below the project folder, not
    // straight into it (docs/apps.md).
    std::fs::create_dir_all(root.join("out")).unwrap();
    let pidfile = root.join("out").join("child.pid");
    app(
        &root,
        "long.jsonnet",
        &format!(
            "{{ app: {{ command: ['sh', '-c', 'echo $$ > {}; echo started; sleep 300'] }} }}",
            pidfile.display()
        ),
    );
    let mut child = kondate(&root)
        .args(["apps", "run", "long"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let run_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(
        unsafe { libc::kill(run_pid, 0) } != 0,
        "the run's shell survived"
    );
}

#[test]
fn check_and_run_report_bad_definitions_with_file_and_line() {
    let (_d, root) = project();
    app(&root, "good.jsonnet", "{ app: { command: ['true'] } }");
    app(
        &root,
        "bad.jsonnet",
        "{\n  app: {\n    command: ['true'],\n    cpu: 'lots',\n  },\n}\n",
    );
    let o = kondate(&root).args(["apps", "check"]).output().unwrap();
    let (stdout, _) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("bad.jsonnet:4: app.cpu: must be a whole number"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: good"), "{stdout}");

    let o = kondate(&root)
        .args(["apps", "run", "bad"])
        .output()
        .unwrap();
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonnet:4: app.cpu"), "{stderr}");

    let o = kondate(&root)
        .args(["apps", "run", "absent"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("no app named `absent`"));
}

#[test]
fn show_never_prints_secret_values_and_render_prints_each_target() {
    let (_d, root) = project();
    std::fs::write(root.join("apps/db_password"), "very-secret-password\n").unwrap();
    app(
        &root,
        "train.jsonnet",
        "{ app: { image: 'example/train', command: ['python', 'train.py'], memory: 512, \
         secrets: [{ name: 'DB_PASSWORD', value_from: 'file:db_password' }], links: ['x'] } }",
    );
    let o = kondate(&root)
        .args(["apps", "show", "train", "--expand"])
        .output()
        .unwrap();
    let (stdout, _) = out(&o);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("file:db_password"), "{stdout}");
    assert!(!stdout.contains("very-secret-password"), "{stdout}");
    assert!(stdout.contains("Not used by the local runner"), "{stdout}");
    assert!(stdout.contains("app.links"), "{stdout}");

    let o = kondate(&root)
        .args([
            "apps",
            "run",
            "train",
            "--",
            "sh",
            "-c",
            "echo pw=$DB_PASSWORD",
        ])
        .output()
        .unwrap();
    let (stdout, _) = out(&o);
    assert!(stdout.contains("pw=********"), "{stdout}");
    assert!(!stdout.contains("very-secret-password"));

    let o = kondate(&root)
        .args(["apps", "render", "train", "--target", "docker"])
        .output()
        .unwrap();
    let (stdout, _) = out(&o);
    assert!(stdout.starts_with("docker run --rm"), "{stdout}");
    assert!(stdout.contains("--env DB_PASSWORD "), "{stdout}");
    assert!(!stdout.contains("very-secret-password"));
    let o = kondate(&root)
        .args(["apps", "render", "train", "--target", "kubernetes"])
        .output()
        .unwrap();
    assert!(out(&o).0.contains("kind: Job"), "{:?}", out(&o));
    let o = kondate(&root)
        .args(["apps", "render", "train", "--target", "ecs"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).1.contains("scheduler.region must be set"),
        "{:?}",
        out(&o)
    );
}

/// A server of the project on a free loopback port, stopped on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(root: &Path) -> (Server, String) {
    let listen = common::free_listen();
    let child = kondate(root)
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&listen);
    (Server(child), listen)
}

#[test]
fn a_run_token_holds_only_what_its_definition_declares() {
    let (_d, root) = project();
    std::fs::write(root.join("model.bin"), b"weights").unwrap();
    let o = kondate(&root)
        .args(["models", "push", "m", "model.bin"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    let (_server, listen) = serve(&root);
    // The job moves the alias through the API with the token made for its run (inside an
    // isolated run, the API is the only way to kondate).
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(
        root.join("jobs/move_alias.py"),
        r#"import base64, os, urllib.error, urllib.request
auth = base64.b64encode(f"{os.environ['KONDATE_TOKEN']}:{os.environ['KONDATE_TOKEN_SECRET']}".encode()).decode()
req = urllib.request.Request(
    os.environ["KONDATE_URL"] + "/v1/models/m/aliases/production",
    data=b'{"version": 1}', method="PUT",
    headers={"content-type": "application/json", "authorization": "Basic " + auth})
try:
    print("status", urllib.request.urlopen(req).status)
except urllib.error.HTTPError as e:
    print("status", e.code, e.read().decode())
    raise SystemExit(4)
"#,
    )
    .unwrap();
    let mover = |extra: &str| {
        format!(
            "{{ app: {{ command: ['python3', '{}'] }}, {extra} }}",
            root.join("jobs/move_alias.py").display()
        )
    };
    app(&root, "undeclared.jsonnet", &mover(""));
    app(
        &root,
        "declared.jsonnet",
        &mover("kondate: { scopes: ['models:alias=m@production'] }"),
    );
    let run = |name: &str| {
        kondate(&root)
            .args(["apps", "run", name])
            .env("KONDATE_SERVER_LISTEN", &listen)
            .output()
            .unwrap()
    };
    let o = run("undeclared");
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stdout.contains("status 403"), "{stdout}");
    assert!(
        stdout.contains("models:alias=m@production"),
        "the refusal names the scope: {stdout}"
    );
    let o = run("declared");
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    assert!(out(&o).0.contains("status 200"));
    // `apps show` says what the run's token may do.
    let o = kondate(&root)
        .args(["apps", "show", "declared"])
        .output()
        .unwrap();
    assert!(
        out(&o)
            .0
            .contains("query labels:read models:read models:alias=m@production"),
        "{:?}",
        out(&o)
    );
    // The move is in the trail, by the run's token; the refusal too.
    let o = kondate(&root)
        .args(["audit", "--action", "models.alias.set", "--format", "json"])
        .output()
        .unwrap();
    let trail: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outcomes: Vec<(String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|(a, _)| a.starts_with("token:run-")));
    assert_eq!(outcomes[0].1, "ok");
    assert_eq!(outcomes[1].1, "denied");
}

#[test]
fn run_scopes_in_a_definition_are_checked_with_file_and_line() {
    let (_d, root) = project();
    app(
        &root,
        "bad.jsonnet",
        "{\n  app: { command: ['true'] },\n  kondate: { scopes: ['models:push'] },\n}\n",
    );
    let o = kondate(&root).args(["apps", "check"]).output().unwrap();
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("bad.jsonnet:3"), "{all}");
    assert!(all.contains("unknown scope `models:push`"), "{all}");
    app(
        &root,
        "bad.jsonnet",
        "{ app: { command: ['true'] }, kondate: { scopes: ['admin'] } }",
    );
    let o = kondate(&root).args(["apps", "check"]).output().unwrap();
    let all = format!("{}{}", out(&o).0, out(&o).1);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(all.contains("cannot be admin"), "{all}");
}

#[test]
fn env_values_given_to_a_run_are_masked_unless_declared_plain() {
    let (_d, root) = project();
    app(
        &root,
        "echoer.jsonnet",
        "{ app: { command: ['sh', '-c', 'echo key=$API_KEY greeting=$GREETING'] }, kondate: { plain_env: ['GREETING'] } }",
    );
    let o = kondate(&root)
        .args([
            "apps",
            "run",
            "echoer",
            "-e",
            "API_KEY=abcd-secret-1234",
            "-e",
            "GREETING=hello-world",
        ])
        .output()
        .unwrap();
    let (stdout, _) = out(&o);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(!stdout.contains("abcd-secret-1234"), "{stdout}");
    assert!(
        stdout.contains("key=******** greeting=hello-world"),
        "{stdout}"
    );
    let id = latest_run(&root);
    let o = kondate(&root)
        .args(["apps", "show-run", &id, "--format", "json"])
        .output()
        .unwrap();
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run["params"]["env"]["API_KEY"], "********");
    assert_eq!(run["params"]["env"]["GREETING"], "hello-world");
    let o = kondate(&root).args(["apps", "logs", &id]).output().unwrap();
    assert!(!out(&o).0.contains("abcd-secret-1234"));
    // Nor in the audit trail.
    let o = kondate(&root)
        .args(["audit", "--action", "apps.run", "--format", "json"])
        .output()
        .unwrap();
    assert!(!out(&o).0.contains("abcd-secret-1234"), "{}", out(&o).0);
    assert!(out(&o).0.contains("API_KEY=***"), "{}", out(&o).0);
}

#[test]
fn a_local_run_cannot_read_the_projects_kondate_folder() {
    let (_d, root) = project();
    // The run tries the state database and the signing key, and a file it may read.
    app(
        &root,
        "snoop.jsonnet",
        "{ app: { command: ['sh', '-c', 'cat \"$P/kondate.toml\" >/dev/null && echo project-ok; \
         for f in \"$P\"/.kondate/*; do cat \"$f\" >/dev/null 2>&1 && echo \"LEAK $f\"; done; \
         echo tmp-$(mktemp >/dev/null && echo ok); pwd'] } }",
    );
    // Make sure there is something to steal.
    let o = kondate(&root).args(["tokens", "list"]).output().unwrap();
    assert!(o.status.success());
    let o = kondate(&root)
        .args([
            "apps",
            "run",
            "snoop",
            "-e",
            &format!("P={}", root.display()),
        ])
        .output()
        .unwrap();
    let (stdout, _) = out(&o);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(stdout.contains("project-ok"), "{stdout}");
    assert!(
        !stdout.contains("LEAK"),
        "the run read kondate's own files: {stdout}"
    );
    assert!(
        stdout.contains("tmp-ok"),
        "its TMPDIR is writable: {stdout}"
    );
    assert!(
        !stdout.contains(&root.display().to_string()),
        "the run works in a folder of its own: {stdout}"
    );
    // The log and `apps show` say how it was isolated.
    let id = latest_run(&root);
    let o = kondate(&root).args(["apps", "logs", &id]).output().unwrap();
    assert!(
        out(&o).0.contains("isolated with Landlock"),
        "{}",
        out(&o).0
    );
    let o = kondate(&root)
        .args(["apps", "show", "snoop"])
        .output()
        .unwrap();
    assert!(
        out(&o).0.contains("isolation of local runs: Landlock"),
        "{}",
        out(&o).0
    );
}
