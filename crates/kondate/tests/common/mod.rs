//! Helpers shared by the CLI's integration tests; each test binary uses some of them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run `command` with `KONDATE_FAILPOINT=failpoint`, wait until it says it is there, and
/// kill it with SIGKILL.
pub fn kill_at(command: Command, failpoint: &str) {
    let mut child = stop_at(command, failpoint);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A child process, SIGKILLed when dropped if still running: a failing test leaves none
/// behind holding locks.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Killed {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

/// Whether process `pid` is gone (or a zombie) within five seconds.
pub fn gone_within_5s(pid: i64) -> bool {
    (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|st| st.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
    })
}

/// Run `command` with `KONDATE_FAILPOINT=failpoint` and return it, stopped there (holding
/// whatever it holds at that point), for the caller to kill.
pub fn stop_at(mut command: Command, failpoint: &str) -> Killed {
    let mut child = command
        .env("KONDATE_FAILPOINT", failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if line.unwrap_or_default().contains("reached") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!("the process never reached {failpoint} ({status})");
    }
    Killed(child)
}

/// Run `command` (output discarded) and kill it with SIGKILL after `delay`, wherever it is
/// by then; returns when it is gone.
pub fn kill_after(mut command: Command, delay: Duration) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

/// `kondate init p` in a new temporary folder: the folder (keep it alive) and the project.
pub fn init_project() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(["init", "p"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = dir.path().join("p");
    (dir, root)
}

/// `KONDATE_STATE_URL` for a database of its own (tagged `tag`) on the server that the
/// environment variable `var` names (`KONDATE_TEST_POSTGRES_URL`, `KONDATE_TEST_MYSQL_URL`).
/// Blocking: call it outside an async runtime, or through `spawn_blocking`.
pub fn service_env(var: &str, tag: &str) -> Vec<(String, String)> {
    let base = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(kondate_db::isolated_test_database(&base, tag))
        .unwrap();
    vec![("KONDATE_STATE_URL".into(), url)]
}

/// A loopback address with a free port, for a `kondate serve --listen`.
pub fn free_listen() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Wait (at most a minute) until a server accepts connections on `listen`.
pub fn wait_listening(listen: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "kondate serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run the kondate binary in `dir` as a user would (no KONDATE_PROJECT, CI output).
pub fn run_kondate(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .output()
        .expect("kondate runs")
}
