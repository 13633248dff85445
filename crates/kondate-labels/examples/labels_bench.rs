//! Benchmark: a label set of N rows (default 1,000,000) with 1% of its rows changed between
//! two syncs. Measures kondate's sync (validate, fingerprint, read the table, diff,
//! snapshot, apply the difference, commit) against the two naive approaches peers use —
//! delete everything and re-insert, and `REPLACE`/upsert every row — in the same run, on
//! SQLite and, when given, MariaDB and PostgreSQL. Prints a Markdown table.
//!
//! ```sh
//! cargo run --release -p kondate-labels --example labels_bench -- 1000000 \
//!     mysql://root@127.0.0.1:3306/test postgres://postgres@127.0.0.1:5432/test
//! ```

use std::time::Instant;

use kondate_db::{ColumnType, Database, DbKind, Session, Value};
use kondate_labels::Grid;
use kondate_labels::Labels;
use kondate_labels::{Cell, LabelValue};
use kondate_labels::{LabelSet, Outcome, SyncOptions, table, validate};
use kondate_store::{Store, UrlSigner};

const CATEGORIES: [&str; 5] = ["主菜", "副菜", "汁物", "主食", "デザート"];

fn definition(dir: &std::path::Path) -> LabelSet {
    LabelSet::from_toml("bench", r#"
        table = "bench_labels"
        key = ["recipe_id"]
        [source]
        type = "csv"
        path = "unused.csv"
        [columns]
        recipe_id = { type = "integer" }
        category  = { type = "enum", values = ["主菜", "副菜", "汁物", "主食", "デザート"], required = true }
        score     = { type = "float" }
        note      = { type = "string", role = "comment" }
        "#, "bench", dir).unwrap()
}

/// The sheet: `version` 2 changes the category of every 100th row (1%).
fn grid(rows: usize, version: u32) -> Grid {
    let mut out = Vec::with_capacity(rows + 1);
    out.push(
        ["recipe_id", "category", "score", "note"]
            .iter()
            .map(|h| Cell::Text(h.to_string()))
            .collect(),
    );
    for i in 0..rows {
        let mut c = i % CATEGORIES.len();
        if version == 2 && i % 100 == 0 {
            c = (c + 1) % CATEGORIES.len();
        }
        out.push(vec![
            Cell::Number(i as f64),
            Cell::Text(CATEGORIES[c].to_string()),
            Cell::Number((i % 1000) as f64 / 1000.0),
            if i % 10 == 0 {
                Cell::Text(format!("レシピ{i}の確認メモ"))
            } else {
                Cell::Empty
            },
        ]);
    }
    Grid {
        rows: out,
        first_row: 1,
        first_col: 0,
        origin: "generated".into(),
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Naive 1: delete every row and insert the whole sheet again, in one transaction.
async fn delete_and_reinsert(db: &Database, set: &LabelSet, rows: &[&[LabelValue]]) -> u64 {
    let mut tx = db.begin().await.unwrap();
    let deleted = tx
        .execute(
            &format!("DELETE FROM {}", db.ident(&set.table).unwrap()),
            &[],
        )
        .await
        .unwrap();
    let inserted = table::insert_rows(&mut tx, set, &set.table, rows.iter().copied())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    deleted + inserted
}

/// Naive 2: write every row with the dialect's replace/upsert, in one transaction.
async fn replace_every_row(db: &Database, set: &LabelSet, rows: &[&[LabelValue]]) -> u64 {
    let t = db.ident(&set.table).unwrap();
    let cols = "recipe_id, category, score, note";
    let one = match db.kind() {
        DbKind::Postgres => "(CAST(? AS BIGINT), ?, CAST(? AS DOUBLE PRECISION), ?)",
        _ => "(?, ?, ?, ?)",
    };
    let mut tx = db.begin().await.unwrap();
    let mut written = 0;
    for chunk in rows.chunks(2000) {
        let list = vec![one; chunk.len()].join(", ");
        let sql = match db.kind() {
            DbKind::Sqlite => format!("INSERT OR REPLACE INTO {t} ({cols}) VALUES {list}"),
            DbKind::MySql => format!("REPLACE INTO {t} ({cols}) VALUES {list}"),
            DbKind::Postgres => format!(
                "INSERT INTO {t} ({cols}) VALUES {list} ON CONFLICT (recipe_id) DO UPDATE SET \
                 category = EXCLUDED.category, score = EXCLUDED.score, note = EXCLUDED.note"
            ),
        };
        let types = [
            ColumnType::Integer,
            ColumnType::ShortText,
            ColumnType::Float,
            ColumnType::Text,
        ];
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|r| r.iter().zip(&types).map(|(v, t)| table::to_param(v, *t)))
            .collect();
        tx.execute(&sql, &params).await.unwrap();
        written += chunk.len() as u64;
    }
    tx.commit().await.unwrap();
    written
}

async fn reset(db: &Database) {
    table::ensure_meta(db).await.unwrap();
    for sql in [
        "DELETE FROM kondate_label_sets WHERE name = 'bench'",
        "DELETE FROM kondate_label_revisions WHERE label_set = 'bench'",
        "DROP TABLE IF EXISTS bench_labels",
    ] {
        db.execute(sql, &[]).await.unwrap();
    }
}

async fn bench(url: &str, rows: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(url).await.unwrap();
    reset(&db).await;
    let set = definition(dir.path());
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://x"),
    )
    .unwrap();
    let labels = Labels::new(db.clone(), store);
    let opts = SyncOptions {
        actor: "bench".into(),
        ..Default::default()
    };
    let v1 = grid(rows, 1);
    let t = Instant::now();
    let r = labels.sync(&set, &v1, &opts).await.unwrap();
    let first = secs(t);
    assert_eq!(r.outcome, Outcome::Applied);

    let v2 = grid(rows, 2);
    let valid = validate(&set, &v2).unwrap();
    // What diffing against the table itself would cost: reading every row out of it.
    let t = Instant::now();
    let current = table::read_rows(&db, &set).await.unwrap();
    let read_s = secs(t);
    assert_eq!(current.len(), rows);
    drop(current);

    let t = Instant::now();
    let r = labels.sync(&set, &v2, &opts).await.unwrap();
    let sync_s = secs(t);
    assert_eq!(
        (r.outcome, r.diff.changed.len()),
        (Outcome::Applied, rows / 100)
    );
    let written = r.rows_written;
    let phase = |name: &str| {
        r.timings_ms
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, ms)| *ms as f64 / 1000.0)
    };
    let validate_s = phase("validate");
    let diff_apply = sync_s - validate_s;
    eprintln!("sync phases (ms): {:?}", r.timings_ms);

    // The naive approaches, from the same starting table (revision 1's rows).
    let rows1: Vec<Vec<LabelValue>> = validate(&set, &v1)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.values)
        .collect();
    let rows2: Vec<Vec<LabelValue>> = valid.rows.into_iter().map(|r| r.values).collect();
    let refs1: Vec<&[LabelValue]> = rows1.iter().map(Vec::as_slice).collect();
    let refs2: Vec<&[LabelValue]> = rows2.iter().map(Vec::as_slice).collect();
    delete_and_reinsert(&db, &set, &refs1).await;
    let t = Instant::now();
    let naive1_written = delete_and_reinsert(&db, &set, &refs2).await;
    let naive1 = secs(t);
    delete_and_reinsert(&db, &set, &refs1).await;
    let t = Instant::now();
    let naive2_written = replace_every_row(&db, &set, &refs2).await;
    let naive2 = secs(t);
    reset(&db).await;

    let kind = match db.kind() {
        DbKind::Sqlite => "SQLite",
        DbKind::MySql => "MariaDB",
        DbKind::Postgres => "PostgreSQL",
    };
    format!(
        "| {kind} | {rows} | {first:.2} | {sync_s:.2} | {validate_s:.2} | {diff_apply:.2} | {written} | {naive1:.2} ({naive1_written}) | {naive2:.2} ({naive2_written}) | {:.1}× / {:.1}× | {:.1}× / {:.1}× | {read_s:.2} |",
        naive1 / diff_apply,
        naive2 / diff_apply,
        naive1 / sync_s,
        naive2 / sync_s
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse().expect("the first argument is the number of rows"))
        .unwrap_or(1_000_000);
    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        sqlite_dir.path().join("service.db").display()
    )];
    urls.extend(args);
    println!(
        "| database | rows | first sync (s) | sync of a 1% change (s) | of which validate + fingerprint (s) | of which diff + apply (s) | rows written | naive: delete all + insert (s, rows written) | naive: replace every row (s, rows written) | diff + apply vs naive | whole sync vs naive | reading the table instead of the snapshot (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for url in urls {
        println!("{}", bench(&url, rows).await);
    }
}
