//! Benchmark of several kondate processes on one PostgreSQL state database, over HTTP only:
//!
//! 1. Queries per second through one `kondate serve`, then through two (a client submits
//!    to one server and polls the other, so every poll crosses processes through the state
//!    database): CONCURRENCY clients each submit `SELECT 1 AS x` and poll it to `success`,
//!    for SECONDS.
//! 2. What heartbeats cost the state database: statements per second on it (committed
//!    transactions, from `pg_stat_database`) with no kondate process, then with IDLE_PROCESSES
//!    idle `kondate serve` processes at the default `state.heartbeat`, over IDLE_SECONDS.
//!
//! Usage: `processes_bench KONDATE_BINARY [POSTGRES_URL]` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; a database `kondate_bench_processes` is
//! made afresh on it, with `psql`). `BENCH_SECONDS` (10), `BENCH_CONCURRENCY` (8),
//! `BENCH_IDLE_SECONDS` (60), `BENCH_IDLE_PROCESSES` (10). Prints one JSON object.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DB: &str = "kondate_bench_processes";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn psql(url: &str, sql: &str) -> String {
    let o = Command::new("psql")
        .args([url, "-Atqc", sql])
        .output()
        .expect("psql");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn kondate(bin: &str, root: &Path, state: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .current_dir(root)
        .env("CI", "true")
        .env("KONDATE_STATE_URL", state)
        .env_remove("KONDATE_PROJECT")
        .env_remove("KONDATE_TOKEN")
        .output()
        .expect("run kondate")
}

/// A server on a free port, SIGTERMed (and waited for) on drop.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn serve(bin: &str, root: &Path, state: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(root)
        .env("CI", "true")
        .env("KONDATE_LOG", "error")
        .env("KONDATE_STATE_URL", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "kondate serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server(child, url)
}

/// Queries per second: each client submits to `urls[i % n]` and polls `urls[(i + 1) % n]`.
async fn throughput(
    urls: &[String],
    token: &(String, String),
    seconds: u64,
    clients: usize,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let submit = format!("{}/v1/queries", urls[i % urls.len()]);
        let poll = urls[(i + 1) % urls.len()].clone();
        let (http, done, token) = (http.clone(), done.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let q: serde_json::Value = http
                    .post(&submit)
                    .basic_auth(&token.0, Some(&token.1))
                    .form(&[("q", "SELECT 1 AS x")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = q["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("not submitted: {q}"));
                loop {
                    let s: serde_json::Value = http
                        .get(format!("{poll}/v1/queries/{id}"))
                        .basic_auth(&token.0, Some(&token.1))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match s["status"].as_str() {
                        Some("success") => break,
                        Some("failed") => panic!("query failed: {s}"),
                        _ => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Committed transactions per second on the bench database over `seconds`.
async fn statements_per_second(admin: &str, seconds: u64) -> f64 {
    let read = || {
        psql(
            admin,
            &format!("SELECT pg_stat_force_next_flush(); SELECT xact_commit FROM pg_stat_database WHERE datname = '{DB}'"),
        )
        .lines()
        .last()
        .unwrap_or("0")
        .parse::<f64>()
        .unwrap_or(0.0)
    };
    // The statistics are flushed about once a second: let the last ones land first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = read();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = read();
    (after - before) / (started.elapsed().as_secs_f64() - 2.0)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .expect("usage: processes_bench KONDATE_BINARY [POSTGRES_URL]");
    let admin = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let clients: usize = env_or("BENCH_CONCURRENCY", 8);
    let idle_seconds: u64 = env_or("BENCH_IDLE_SECONDS", 60);
    let idle_processes: usize = env_or("BENCH_IDLE_PROCESSES", 10);

    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
    );
    psql(&admin, &format!("CREATE DATABASE {DB}"));
    let state = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{DB}"),
        None => panic!("POSTGRES_URL must end in /DATABASE"),
    };

    let dir = tempfile::tempdir().unwrap();
    assert!(
        kondate(&bin, dir.path(), &state, &["init", "p"])
            .status
            .success()
    );
    let root = dir.path().join("p");
    let out = kondate(
        &bin,
        &root,
        &state,
        &["users", "add", "bench@example.com", "--role", "viewer"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kondate(
        &bin,
        &root,
        &state,
        &[
            "tokens",
            "create",
            "bench",
            "--owner",
            "bench@example.com",
            "--scope",
            "query",
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = (
        t["name"].as_str().unwrap().to_string(),
        t["secret"].as_str().unwrap().to_string(),
    );

    // 1. One server, then two.
    let one = serve(&bin, &root, &state).await;
    // Warm up (the first query plans the engine's session).
    throughput(std::slice::from_ref(&one.1), &token, 1, 2).await;
    let qps_one = throughput(std::slice::from_ref(&one.1), &token, seconds, clients).await;
    let two = serve(&bin, &root, &state).await;
    throughput(std::slice::from_ref(&two.1), &token, 1, 2).await;
    let qps_two = throughput(&[one.1.clone(), two.1.clone()], &token, seconds, clients).await;
    drop(one);
    drop(two);

    // 2. Heartbeats: none, then IDLE_PROCESSES idle servers.
    let baseline = statements_per_second(&admin, idle_seconds).await;
    let mut servers = Vec::new();
    for _ in 0..idle_processes {
        servers.push(serve(&bin, &root, &state).await);
    }
    let with_idle = statements_per_second(&admin, idle_seconds).await;
    drop(servers);
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
    );

    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "seconds": seconds,
            "queries_per_second_one_server": (qps_one * 10.0).round() / 10.0,
            "queries_per_second_two_servers": (qps_two * 10.0).round() / 10.0,
            "idle_processes": idle_processes,
            "idle_seconds": idle_seconds,
            "state_db_statements_per_second_no_process": (baseline * 100.0).round() / 100.0,
            "state_db_statements_per_second_idle_processes": (with_idle * 100.0).round() / 100.0,
        })
    );
}
