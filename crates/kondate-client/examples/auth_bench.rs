//! Benchmark of the credential check, against any `kondate` binary (so that a build from
//! before and one from after a change are measured by the same program, over HTTP only):
//!
//! 1. Polling: `GET /v1/queries/{id}` with a valid token from CONCURRENCY clients for
//!    SECONDS — requests per second and latency (the public Queuery client polls like this).
//! 2. A flood: 200 requests with a wrong secret at once, while `/healthz` is asked every
//!    20 ms — how long the flood takes, what it was answered, and the slowest `/healthz`.
//!
//! Usage: `auth_bench KONDATE_BINARY [LABEL]`; `BENCH_SECONDS` (default 10) and
//! `BENCH_CONCURRENCY` (default 16). Prints one JSON object. `bench/auth.sh` builds the two
//! binaries and prints the table for docs/BENCHMARKS.md.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn kondate(bin: &str, root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .current_dir(root)
        .env("CI", "true")
        .env_remove("KONDATE_PROJECT")
        .env_remove("KONDATE_TOKEN")
        .output()
        .expect("run kondate")
}

/// A token that may query: with users and scopes where the binary has them, else as
/// tokens were made before (one name, full access).
fn make_token(bin: &str, root: &std::path::Path) -> (String, String) {
    let with_owner = kondate(
        bin,
        root,
        &["users", "add", "bench@example.com", "--role", "viewer"],
    );
    let out = if with_owner.status.success() {
        kondate(
            bin,
            root,
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
        )
    } else {
        kondate(
            bin,
            root,
            &["tokens", "create", "bench", "--format", "json"],
        )
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        t["name"].as_str().unwrap().to_string(),
        t["secret"].as_str().unwrap().to_string(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .expect("usage: auth_bench KONDATE_BINARY [LABEL]");
    let label = args.next().unwrap_or_else(|| bin.clone());
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);

    let dir = tempfile::tempdir().unwrap();
    assert!(kondate(&bin, dir.path(), &["init", "p"]).status.success());
    let root = dir.path().join("p");
    let (name, secret) = make_token(&bin, &root);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(&bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&root)
        .env("CI", "true")
        .env("KONDATE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "kondate serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One finished query to poll.
    let q: serde_json::Value = http
        .post(format!("{url}/v1/queries"))
        .basic_auth(&name, Some(&secret))
        .form(&[("q", "SELECT 1 AS x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = q["id"].as_i64().expect("a query id");
    let show = format!("{url}/v1/queries/{id}");
    loop {
        let s: serde_json::Value = http
            .get(&show)
            .basic_auth(&name, Some(&secret))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"] == "success" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 1. Polling with a valid token.
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, show, name, secret, done) = (
            http.clone(),
            show.clone(),
            name.clone(),
            secret.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                let r = http
                    .get(&show)
                    .basic_auth(&name, Some(&secret))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let rps = done.load(Ordering::Relaxed) as f64 / elapsed;

    // 2. 200 bad secrets at once, /healthz probed meanwhile.
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..200 {
        let show = show.clone();
        let name = name.clone();
        flood.push(tokio::spawn(async move {
            // A connection of its own for each, as 200 clients would have.
            let c = reqwest::Client::new();
            c.get(&show)
                .basic_auth(&name, Some(format!("wrong-secret-{i}")))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let probe = {
        let url = url.clone();
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut worst = Duration::ZERO;
            let mut probes = 0;
            while flood_started.elapsed() < Duration::from_secs(30) {
                let t = Instant::now();
                let ok = c
                    .get(format!("{url}/healthz"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                worst = worst.max(t.elapsed());
                probes += 1;
                if !ok {
                    worst = Duration::from_secs(10);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                if probes > 5 && FLOOD_DONE.load(Ordering::Relaxed) {
                    break;
                }
            }
            (worst, probes)
        })
    };
    let mut statuses = std::collections::BTreeMap::new();
    for f in flood {
        *statuses.entry(f.await.unwrap()).or_insert(0u32) += 1;
    }
    let flood_secs = flood_started.elapsed().as_secs_f64();
    FLOOD_DONE.store(true, Ordering::Relaxed);
    let (worst_health, probes) = probe.await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{}",
        serde_json::json!({
            "label": label,
            "polling": {
                "concurrency": concurrency,
                "seconds": elapsed,
                "requests_per_second": rps.round(),
                "p50_ms": percentile(&latencies, 0.5),
                "p99_ms": percentile(&latencies, 0.99),
            },
            "bad_secret_flood": {
                "requests": 200,
                "seconds": flood_secs,
                "statuses": statuses,
                "healthz_probes": probes,
                "healthz_worst_ms": (worst_health.as_secs_f64() * 1000.0).round(),
            }
        })
    );
}

static FLOOD_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
