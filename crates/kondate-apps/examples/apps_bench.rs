//! Benchmark: what the local runner costs.
//!
//! ```text
//! cargo run --release -p kondate-apps --example apps_bench -- [RUNS] [LOG_MB] [KONDATE_BIN]
//! ```
//!
//! 1. **Overhead**: RUNS (default 50) runs of `true` through `Runs::run` (record the run,
//!    issue nothing, start, capture, store the log, record the end) against RUNS direct
//!    starts of `true` (`std::process::Command`), interleaved, in one run; medians. With
//!    KONDATE_BIN (a built `kondate` binary), also `kondate apps run noop` end to end as a
//!    user types it, against `/bin/true` started the same way.
//! 2. **Log capture**: a process writing LOG_MB (default 1024) MiB of 100-byte lines
//!    (`yes | head -c`), captured, stamped and stored, against the same pipeline writing to
//!    /dev/null and to a file; MB/s and the process's peak RSS (VmHWM).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kondate_apps::{Apps, RunRequest, Runs};
use kondate_core::SystemClock;
use kondate_db::Database;
use kondate_store::{Store, UrlSigner};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn runs_in(root: &Path) -> Runs {
    std::fs::create_dir_all(root.join("apps")).unwrap();
    let db = Database::connect(&format!("sqlite://{}/state.db", root.display()))
        .await
        .unwrap();
    kondate_db::state::migrate(&db).await.unwrap();
    let store = Store::local(&root.join("store"), UrlSigner::new(vec![1; 32], "http://x")).unwrap();
    Runs {
        db,
        store,
        apps: Apps::new(root.join("apps")),
        root: root.to_path_buf(),
        spool: root.join(".kondate/runs"),
        clock: Arc::new(SystemClock),
        credentials: None,
        grace: Duration::from_secs(10),
        lookup: Arc::new(|k| std::env::var(k).ok()),
        use_cgroups: true,
        owner: None,
        lost_after: Duration::from_secs(60),
    }
}

async fn run(runs: &Runs, app: &str) -> kondate_apps::RunInfo {
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let req = RunRequest {
        app: app.into(),
        actor: "bench".into(),
        ..RunRequest::default()
    };
    runs.run(&req, None, rx).await.unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(50, |s| s.parse().expect("RUNS"));
    let log_mb: u64 = args.get(2).map_or(1024, |s| s.parse().expect("LOG_MB"));
    let bin = args.get(3).cloned();
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_in(dir.path()).await;
    // A project for the CLI (its own state database under .kondate/, as `kondate init` makes).
    std::fs::write(
        dir.path().join("kondate.toml"),
        "[project]\nname = \"bench\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apps/noop.jsonnet"),
        "{ app: { command: ['true'] } }",
    )
    .unwrap();

    // 1. Overhead.
    let (mut direct, mut lib, mut cli, mut cli_true) = (vec![], vec![], vec![], vec![]);
    run(&runs, "noop").await; // warm-up
    if let Some(bin) = &bin {
        let o = Command::new(bin)
            .args(["apps", "run", "noop"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for _ in 0..n {
        let t = Instant::now();
        let st = Command::new("true").status().unwrap();
        assert!(st.success());
        direct.push(ms(t.elapsed()));
        let t = Instant::now();
        let info = run(&runs, "noop").await;
        assert_eq!(info.exit_code, Some(0));
        lib.push(ms(t.elapsed()));
        if let Some(bin) = &bin {
            let t = Instant::now();
            let st = Command::new(bin)
                .args(["apps", "run", "noop"])
                .current_dir(dir.path())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            cli.push(ms(t.elapsed()));
            let t = Instant::now();
            Command::new("/bin/true").status().unwrap();
            cli_true.push(ms(t.elapsed()));
        }
    }
    println!("overhead, median of {n} (ms):");
    println!(
        "  `true` started directly        {:>8.2}",
        median(direct.clone())
    );
    println!(
        "  Runs::run of `true`            {:>8.2}",
        median(lib.clone())
    );
    println!(
        "  overhead (library)             {:>8.2}",
        median(lib) - median(direct)
    );
    if bin.is_some() {
        println!(
            "  `kondate apps run noop`        {:>8.2}",
            median(cli.clone())
        );
        println!(
            "  `/bin/true` the same way       {:>8.2}",
            median(cli_true.clone())
        );
        println!(
            "  overhead (CLI, end to end)     {:>8.2}",
            median(cli) - median(cli_true)
        );
    }

    // 2. Log capture.
    let bytes = log_mb * 1024 * 1024;
    let line = "x".repeat(99);
    let producer = format!("yes {line} | head -c {bytes}");
    std::fs::write(
        dir.path().join("apps/chatty.jsonnet"),
        format!("{{ app: {{ command: ['sh', '-c', '{producer}'] }} }}"),
    )
    .unwrap();
    let t = Instant::now();
    let st = Command::new("sh")
        .args(["-c", &format!("{producer} > /dev/null")])
        .status()
        .unwrap();
    assert!(st.success());
    let baseline = t.elapsed().as_secs_f64();
    // Writing it to a file is the fair peer: the log is a file too.
    let to_file = dir.path().join("direct.log");
    std::process::Command::new("sync").status().unwrap();
    let t = Instant::now();
    let st = Command::new("sh")
        .args(["-c", &format!("{producer} > {}", to_file.display())])
        .status()
        .unwrap();
    assert!(st.success());
    let file_baseline = t.elapsed().as_secs_f64();
    std::fs::remove_file(&to_file).unwrap();
    std::process::Command::new("sync").status().unwrap();
    reset_peak();
    let t = Instant::now();
    let info = run(&runs, "chatty").await;
    let captured = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    assert_eq!(info.exit_code, Some(0));
    let mb = bytes as f64 / 1e6;
    println!("log capture of {log_mb} MiB of 100-byte lines:");
    println!(
        "  producer to /dev/null          {baseline:>8.2} s {:>8.0} MB/s",
        mb / baseline
    );
    println!(
        "  producer to a file             {file_baseline:>8.2} s {:>8.0} MB/s",
        mb / file_baseline
    );
    println!(
        "  captured, stamped, stored      {captured:>8.2} s {:>8.0} MB/s  (log {} bytes, peak RSS {rss:.1} MiB)",
        mb / captured,
        info.log_bytes.unwrap_or(0)
    );
}
