//! Benchmark: push and pull of one large file on the local store, against `cp` of the same
//! file in the same run, with peak memory.
//!
//! ```text
//! cargo run --release -p kondate-models --example models_bench -- [SIZE_MB] [DIR]
//! ```
//!
//! SIZE_MB defaults to 1024; DIR (default: the system temp folder) holds the source file,
//! the store and the copies, so all three run on one file system. The file is read once
//! before timing so every contender starts from the page cache, and `sync` runs before each
//! timed phase so none pays for the previous one's dirty pages. Push and pull include
//! digest verification (push: SHA-256 of the bytes written; pull: of the bytes read back).
//! Peak memory is the process's peak resident set (VmHWM), reset before each phase.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kondate_core::artifact::ModelRef;
use kondate_db::Database;
use kondate_models::{Models, PushMeta};
use kondate_store::{Store, UrlSigner};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Reset the peak-RSS counter (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn write_source(path: &Path, mb: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    // xorshift: incompressible bytes, fast to make.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

/// Write back dirty pages, so that no phase pays for the previous one's writes.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn drop_file(p: &Path) {
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_dir_all(p);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).map_or(1024, |s| s.parse().expect("SIZE_MB"));
    let base = args
        .get(2)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let src = dir.path().join("model.bin");
    write_source(&src, mb);
    let bytes = (mb as f64) * 1024.0 * 1024.0;
    // Warm the page cache.
    std::io::copy(
        &mut std::fs::File::open(&src).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();

    let db = Database::connect(&format!("sqlite://{}/state.db", dir.path().display()))
        .await
        .unwrap();
    kondate_db::state::migrate(&db).await.unwrap();
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://127.0.0.1:1"),
    )
    .unwrap();
    let models = Models::new(db, store);
    let quiet: kondate_store::Progress = Arc::new(|_| {});

    println!("file: {mb} MiB in {}", dir.path().display());
    println!(
        "{:<28} {:>9} {:>10} {:>12}",
        "run", "seconds", "MiB/s", "peak RSS MiB"
    );
    let report = |name: &str, secs: f64, rss: f64| {
        println!(
            "{name:<28} {secs:>9.3} {:>10.0} {rss:>12.1}",
            bytes / secs / 1024.0 / 1024.0
        );
        bytes / secs
    };
    let rounds = 5;
    let mut sha_best = f64::MAX;
    let (mut cp_best, mut push_best, mut pull_best) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut push_rss, mut pull_rss) = (0f64, 0f64);
    for round in 0..rounds {
        let cp_dst = dir.path().join("cp.bin");
        settle();
        let t = Instant::now();
        let st = std::process::Command::new("cp")
            .arg(&src)
            .arg(&cp_dst)
            .status()
            .unwrap();
        assert!(st.success());
        let cp = t.elapsed().as_secs_f64();
        drop_file(&cp_dst);

        // The ceiling for anything that checks SHA-256: hashing the cached file, nothing else.
        settle();
        let t = Instant::now();
        kondate_core::digest::hash_reader(&mut std::fs::File::open(&src).unwrap(), &mut |_| {})
            .unwrap();
        let sha = t.elapsed().as_secs_f64();
        report(&format!("round {round}: sha256 alone"), sha, f64::NAN);
        sha_best = sha_best.min(sha);

        // A fresh store each round, so the push really writes the blob.
        let _ = std::fs::remove_dir_all(dir.path().join("store/models"));
        models
            .db
            .execute("DELETE FROM kondate_model_blobs", &[])
            .await
            .unwrap();
        settle();
        reset_peak();
        let t = Instant::now();
        let v = models
            .push_path(
                &format!("bench{round}"),
                &src,
                PushMeta::default(),
                quiet.clone(),
            )
            .await
            .unwrap();
        let push = t.elapsed().as_secs_f64();
        push_rss = push_rss.max(peak_rss_mb());

        // cp of the stored blob too: the pull's own peer, under the same conditions.
        let blob = dir
            .path()
            .join("store")
            .join(kondate_models::blob_key(&v.files[0].digest));
        let cp_blob_dst = dir.path().join("cp-blob.bin");
        settle();
        let t = Instant::now();
        let st = std::process::Command::new("cp")
            .arg(&blob)
            .arg(&cp_blob_dst)
            .status()
            .unwrap();
        assert!(st.success());
        let cp_blob = t.elapsed().as_secs_f64();
        drop_file(&cp_blob_dst);

        let out = dir.path().join("pulled.bin");
        settle();
        reset_peak();
        let t = Instant::now();
        models
            .pull(
                &ModelRef::parse(&format!("bench{round}@{}", v.version)).unwrap(),
                &out,
                true,
                quiet.clone(),
            )
            .await
            .unwrap();
        let pull = t.elapsed().as_secs_f64();
        pull_rss = pull_rss.max(peak_rss_mb());
        drop_file(&out);
        report(&format!("round {round}: cp"), cp, f64::NAN);
        report(&format!("round {round}: kondate push"), push, push_rss);
        report(&format!("round {round}: cp of the blob"), cp_blob, f64::NAN);
        report(&format!("round {round}: kondate pull"), pull, pull_rss);
        cp_best = cp_best.min(cp).min(cp_blob);
        push_best = push_best.min(push);
        pull_best = pull_best.min(pull);
    }
    println!();
    println!("best of {rounds}:");
    let cp = report("cp", cp_best, f64::NAN);
    let sha = report("sha256 alone (ceiling)", sha_best, f64::NAN);
    let push = report("kondate models push", push_best, push_rss);
    let pull = report("kondate models pull", pull_best, pull_rss);
    println!(
        "push at {:.0}% of cp, pull at {:.0}% of cp (target ≥ 70%); SHA-256 alone runs at {:.0}% of cp, push at {:.0}% and pull at {:.0}% of that; peak RSS push {push_rss:.1} MiB, pull {pull_rss:.1} MiB (target < 100)",
        100.0 * push / cp,
        100.0 * pull / cp,
        100.0 * sha / cp,
        100.0 * push / sha,
        100.0 * pull / sha
    );
}
