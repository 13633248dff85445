//! A write streams its rows: the memory it needs is bounded by a few batches and the set of
//! keys already seen, not by the number of rows. `POST /v1/results` and `kondate results
//! write` both go through [`Results::write_files`], measured here with a counting global
//! allocator (this test binary's own, so nothing else shares it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kondate_core::SystemClock;
use kondate_db::Database;
use kondate_results::{Publish, Results, WriteMeta, WriteOptions};

/// Counts the bytes allocated now and the most ever allocated at once.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = NOW.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ROWS: usize = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_holds_a_few_batches_not_every_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("results")).unwrap();
    std::fs::write(
        dir.path().join("results/scores.toml"),
        "table = \"scores\"\nkey = [\"id\"]\n[columns]\nid = { type = \"integer\" }\n\
         label = { type = \"string\", nullable = false }\nscore = { type = \"float\" }\n",
    )
    .unwrap();
    let input = dir.path().join("scores.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    writeln!(f, "id,label,score").unwrap();
    for i in 0..ROWS {
        writeln!(f, "{i},category-{},{}.5", i % 97, i % 1000).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let file_size = std::fs::metadata(&input).unwrap().len() as usize;

    let db = Database::connect(&format!("sqlite://{}/service.db", dir.path().display()))
        .await
        .unwrap();
    let results = Results::new(db.clone(), dir.path(), Arc::new(SystemClock));
    let decl = results.declaration("scores").unwrap();
    let opts = WriteOptions {
        publish: Publish::Upsert,
        prune: false,
        migrate: false,
    };

    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let report = results
        .write_files(&decl, &[input], &WriteMeta::default(), opts)
        .await
        .unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(report.rows, ROWS as u64);
    let n = db
        .fetch_all("SELECT COUNT(*) AS n FROM scores", &[])
        .await
        .unwrap();
    assert_eq!(kondate_db::get_i64(&n[0], "n").unwrap(), ROWS as i64);

    // Every row in memory at once is well over 100 bytes a row (three values, a vector, a
    // string); streamed, what stays per row is its key's digest and where it was seen.
    let per_row = peak / ROWS;
    eprintln!(
        "peak {peak} bytes over the write ({per_row} bytes a row; the CSV is {file_size} bytes)"
    );
    assert!(
        per_row < 100,
        "the write held {peak} bytes at its peak, {per_row} bytes a row: it keeps every row \
         in memory instead of streaming batches"
    );
}
