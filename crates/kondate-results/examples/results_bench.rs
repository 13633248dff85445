//! Benchmark: prediction rows into a result table on MariaDB and PostgreSQL — kondate's
//! writer against, in the same run, row-by-row inserts and the server's own bulk load into
//! an empty table.
//!
//! ```text
//! KONDATE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! KONDATE_BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306/test \
//! cargo run --release -p kondate-results --example results_bench -- [ROWS] [ROW_BY_ROW_ROWS]
//! ```
//!
//! ROWS (default 1,000,000) rows of `id, label, score` plus three more columns (`rank`,
//! `flagged`, `scored_on`): the shape of a classifier's output. The contenders, each
//! timed from rows in memory to rows committed:
//!
//! - **row-by-row**: one prepared `INSERT` per row, all in one transaction (an ORM's loop,
//!   on its best day: no commit per row). Timed over ROW_BY_ROW_ROWS rows (default 50,000)
//!   and reported as rows per second, because a million would take minutes.
//! - **bulk load**: PostgreSQL's `COPY … FROM STDIN` and MariaDB's `LOAD DATA LOCAL
//!   INFILE` (through the `mariadb` command-line client) of a tab-separated file already
//!   written, into an empty table with the same primary key.
//! - **kondate, first write**: `kondate_results::write` into an empty result table
//!   (the upsert statement, every row new).
//! - **kondate, rewrite**: the same rows again (every row a conflict, updated in place): the
//!   nightly rerun.
//! - **kondate, swap**: the same rows published with `--publish swap` (the new table is
//!   built beside the old one and renamed into place), and with `--prune` too (a full
//!   refresh: exactly these rows).
//!
//! Each database is skipped when its URL is not set.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use kondate_db::{Database, Session, Value};
use kondate_results::{Publish, ResultTable, WriteMeta, WriteOptions};

const LABELS: &[&str] = &[
    "主菜",
    "副菜",
    "汁物",
    "主食",
    "デザート",
    "おやつ",
    "飲み物",
];

fn rows(n: usize) -> Vec<Vec<Value>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let day = 1 + (x % 28);
            vec![
                Value::Int(i as i64 + 1),
                Value::Text(LABELS[(x % LABELS.len() as u64) as usize].to_string()),
                Value::Float((x % 1_000_000) as f64 / 1_000_000.0),
                Value::Int((x >> 20) as i64 % 5 + 1),
                Value::Bool(x & 1 == 1),
                Value::Text(format!("2026-11-{day:02}")),
            ]
        })
        .collect()
}

fn declaration() -> ResultTable {
    ResultTable::parse(
        "bench_predictions",
        Path::new("results/bench_predictions.toml"),
        "key = [\"id\"]\n[columns]\nid = { type = \"integer\" }\nlabel = { type = \"string\" }\n\
         score = { type = \"float\" }\nrank = { type = \"integer\" }\n\
         flagged = { type = \"boolean\" }\nscored_on = { type = \"date\" }\n",
    )
    .expect("valid declaration")
}

/// The plain table the baselines load, shaped like the result table.
fn plain_table_sql(db: &Database, name: &str) -> String {
    let text = match db.kind() {
        kondate_db::DbKind::MySql => "LONGTEXT",
        _ => "TEXT",
    };
    format!(
        "CREATE TABLE {name} (id BIGINT NOT NULL PRIMARY KEY, label {text}, score DOUBLE \
         PRECISION, {} BIGINT, flagged BOOLEAN, scored_on DATE){}",
        db.ident("rank").unwrap(),
        db.table_options()
    )
}

fn write_tsv(path: &Path, rows: &[Vec<Value>]) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|v| match v {
                Value::Int(i) => i.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Bool(b) => (*b as u8).to_string(),
                Value::Text(s) => s.clone(),
                _ => "\\N".into(),
            })
            .collect();
        writeln!(f, "{}", cells.join("\t")).unwrap();
    }
    f.flush().unwrap();
}

struct Timing {
    what: &'static str,
    rows: usize,
    secs: f64,
}

impl Timing {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.secs
    }
}

async fn row_by_row(db: &Database, rows: &[Vec<Value>], one_tx: bool) -> Timing {
    db.execute("DROP TABLE IF EXISTS bench_rowbyrow", &[])
        .await
        .unwrap();
    db.execute(&plain_table_sql(db, "bench_rowbyrow"), &[])
        .await
        .unwrap();
    let rank = db.ident("rank").unwrap();
    let sql = db.sql(&format!(
        "INSERT INTO bench_rowbyrow (id, label, score, {rank}, flagged, scored_on) VALUES \
         (?, ?, ?, ?, ?, {})",
        db.placeholder(kondate_db::ColumnType::Date)
    ));
    let t = Instant::now();
    if one_tx {
        let mut tx = db.begin().await.unwrap();
        for r in rows {
            tx.execute(&sql, r).await.unwrap();
        }
        tx.commit().await.unwrap();
    } else {
        for r in rows {
            db.execute(&sql, r).await.unwrap();
        }
    }
    Timing {
        what: if one_tx {
            "row-by-row INSERT, one transaction"
        } else {
            "row-by-row INSERT, autocommit (ORM default)"
        },
        rows: rows.len(),
        secs: t.elapsed().as_secs_f64(),
    }
}

async fn bulk_load(db: &Database, url: &str, tsv: &Path, n: usize) -> Timing {
    db.execute("DROP TABLE IF EXISTS bench_bulk", &[])
        .await
        .unwrap();
    db.execute(&plain_table_sql(db, "bench_bulk"), &[])
        .await
        .unwrap();
    let t = Instant::now();
    let what = match db.kind() {
        kondate_db::DbKind::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let mut copy = conn
                .copy_in_raw("COPY bench_bulk FROM STDIN")
                .await
                .unwrap();
            let file = tokio::fs::File::open(tsv).await.unwrap();
            copy.read_from(file).await.unwrap();
            copy.finish().await.unwrap();
            "COPY FROM STDIN into an empty table"
        }
        _ => {
            let u = url::Url::parse(url).unwrap();
            let status = std::process::Command::new("mariadb")
                .arg("--local-infile=1")
                .arg(format!("--host={}", u.host_str().unwrap_or("127.0.0.1")))
                .arg(format!("--port={}", u.port().unwrap_or(3306)))
                .arg(format!("--user={}", u.username()))
                .arg(u.path().trim_start_matches('/'))
                .arg("-e")
                .arg(format!(
                    "LOAD DATA LOCAL INFILE '{}' INTO TABLE bench_bulk",
                    tsv.display()
                ))
                .status()
                .expect("the mariadb client runs");
            assert!(status.success(), "LOAD DATA LOCAL INFILE failed");
            "LOAD DATA LOCAL INFILE into an empty table"
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let rows = db
        .fetch_all("SELECT COUNT(*) AS n FROM bench_bulk", &[])
        .await
        .unwrap();
    assert_eq!(kondate_db::get_i64(&rows[0], "n").unwrap() as usize, n);
    Timing {
        what,
        rows: n,
        secs,
    }
}

async fn kondate_write(
    db: &Database,
    decl: &ResultTable,
    rows: &[Vec<Value>],
    publish: Publish,
    prune: bool,
    what: &'static str,
) -> Timing {
    let meta = WriteMeta {
        model_name: Some("recipe-category".into()),
        model_version: Some(3),
        run_id: Some("bench".into()),
    };
    let opts = WriteOptions {
        publish,
        prune,
        migrate: false,
    };
    // Copied before the clock starts: the write takes its rows by value.
    let batches = kondate_results::RowBatches::from(rows.to_vec());
    let t = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    let report = kondate_results::write(db, decl, batches, &meta, opts, now)
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(report.rows as usize, rows.len());
    Timing {
        what,
        rows: rows.len(),
        secs,
    }
}

async fn bench(label: &str, url: &str, rows: &[Vec<Value>], rbr: usize, dir: &Path) {
    let db = Database::connect(url).await.expect("connect");
    let decl = declaration();
    for t in [
        "bench_predictions",
        "bench_predictions__new",
        "bench_predictions__old",
    ] {
        db.execute(&format!("DROP TABLE IF EXISTS {t}"), &[])
            .await
            .unwrap();
    }
    if db.table_exists("kondate_result_tables").await.unwrap() {
        db.execute(
            "DELETE FROM kondate_result_tables WHERE name = ?",
            &[Value::from("bench_predictions")],
        )
        .await
        .unwrap();
    }
    let tsv = dir.join("bench.tsv");
    write_tsv(&tsv, rows);

    let mut out = Vec::new();
    // Autocommit waits for a flush per row: a tenth of the rows tells its rate.
    out.push(row_by_row(&db, &rows[..(rbr / 10).min(rows.len())], false).await);
    out.push(row_by_row(&db, &rows[..rbr.min(rows.len())], true).await);
    let bulk = bulk_load(&db, url, &tsv, rows.len()).await;
    out.push(bulk);
    for (publish, prune, what) in [
        (
            Publish::Upsert,
            false,
            "kondate write, first (all rows new)",
        ),
        (
            Publish::Upsert,
            false,
            "kondate write, rerun (all rows updated)",
        ),
        (Publish::Swap, false, "kondate write --publish swap (rerun)"),
        (
            Publish::Swap,
            true,
            "kondate write --publish swap --prune (rerun)",
        ),
    ] {
        out.push(kondate_write(&db, &decl, rows, publish, prune, what).await);
    }
    let bulk_rate = out[2].rate();
    let (auto_rate, tx_rate) = (out[0].rate(), out[1].rate());
    println!("\n{label} ({} rows)", rows.len());
    println!(
        "| {:<44} | {:>9} | {:>8} | {:>9} | {:>7} | {:>14} | {:>15} |",
        "contender", "rows", "seconds", "rows/s", "vs bulk", "vs by-row auto", "vs by-row one tx"
    );
    println!(
        "|{:-<46}|{:->11}|{:->10}|{:->11}|{:->9}|{:->16}|{:->17}|",
        "", "", "", "", "", "", ""
    );
    for t in &out {
        println!(
            "| {:<44} | {:>9} | {:>8.2} | {:>9.0} | {:>6.0}% | {:>13.1}× | {:>14.1}× |",
            t.what,
            t.rows,
            t.secs,
            t.rate(),
            100.0 * t.rate() / bulk_rate,
            t.rate() / auto_rate,
            t.rate() / tx_rate
        );
    }
    for t in [
        "bench_rowbyrow",
        "bench_bulk",
        "bench_predictions",
        "bench_predictions__new",
    ] {
        db.execute(&format!("DROP TABLE IF EXISTS {t}"), &[])
            .await
            .unwrap();
    }
    db.execute(
        "DELETE FROM kondate_result_tables WHERE name = ?",
        &[Value::from("bench_predictions")],
    )
    .await
    .unwrap();
    db.close().await;
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1_000_000, |a| a.parse().expect("ROWS"));
    let rbr: usize = args
        .next()
        .map_or(50_000, |a| a.parse().expect("ROW_BY_ROW_ROWS"));
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let data = rows(n);
    println!("{n} rows made in {:.2} s", t.elapsed().as_secs_f64());
    let mut any = false;
    for (label, var) in [
        ("MariaDB", "KONDATE_BENCH_MYSQL_URL"),
        ("PostgreSQL", "KONDATE_BENCH_POSTGRES_URL"),
    ] {
        if let Ok(url) = std::env::var(var) {
            any = true;
            bench(label, &url, &data, rbr, dir.path()).await;
        }
    }
    if !any {
        eprintln!(
            "set KONDATE_BENCH_MYSQL_URL and/or KONDATE_BENCH_POSTGRES_URL to the databases to measure"
        );
        std::process::exit(2);
    }
}
