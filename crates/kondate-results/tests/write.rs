//! Result tables on SQLite, and on MariaDB and PostgreSQL when CI provides them: the upsert
//! is idempotent and keyed, a failed write leaves the table as it was, and changed
//! declarations or foreign tables are refused.

use std::path::{Path, PathBuf};

use kondate_db::{Database, Value, get_i64};
use kondate_results::read_csv;
use kondate_results::write;
use kondate_results::{Publish, ResultTable, Results, ResultsError, WriteMeta, WriteOptions};

const DECL: &str = "table = \"recipe_categories\"\nkey = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory = { type = \"string\", nullable = false }\nscore = { type = \"float\" }\n";

fn decl(text: &str) -> ResultTable {
    ResultTable::parse(
        "recipe_categories",
        Path::new("results/recipe_categories.toml"),
        text,
    )
    .unwrap()
}

async fn db(var: Option<(&str, &str)>) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = match var {
        None => format!("sqlite://{}/service.db", dir.path().display()),
        Some((v, tag)) => {
            let base = std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set"));
            kondate_db::isolated_test_database(&base, tag)
                .await
                .unwrap()
        }
    };
    (dir, Database::connect(&url).await.unwrap())
}

async fn table(db: &Database) -> Vec<(i64, String, Option<f64>, Option<String>, Option<i64>, i64)> {
    use kondate_db::get_opt_string;
    let rows = db
        .fetch_all(
            "SELECT recipe_id, category, score, model_name, model_version, updated_at \
             FROM recipe_categories ORDER BY recipe_id",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            use sqlx_row::get_f64;
            (
                get_i64(r, "recipe_id").unwrap(),
                kondate_db::get_string(r, "category").unwrap(),
                get_f64(r, "score"),
                get_opt_string(r, "model_name"),
                kondate_db::get_opt_i64(r, "model_version"),
                get_i64(r, "updated_at").unwrap(),
            )
        })
        .collect()
}

mod sqlx_row {
    pub fn get_f64(r: &kondate_db::AnyRow, col: &str) -> Option<f64> {
        use sqlx::Row;
        r.try_get::<Option<f64>, _>(col).ok().flatten()
    }
}

async fn upserts_are_keyed_and_idempotent(db: Database) {
    let d = decl(DECL);
    let meta = |v| WriteMeta {
        model_name: Some("recipe-clf".into()),
        model_version: Some(v),
        run_id: Some("run-1".into()),
    };
    let first = read_csv(
        &d,
        "recipe_id,category,score\n1,主菜,0.9\n2,副菜,\n".as_bytes(),
        "a.csv",
    )
    .unwrap();
    let r = write(&db, &d, &first, &meta(1), WriteOptions::default(), 1000)
        .await
        .unwrap();
    assert!(r.created);
    assert_eq!(r.rows, 2);
    let t = table(&db).await;
    assert_eq!(t.len(), 2);
    assert_eq!(
        t[0],
        (
            1,
            "主菜".into(),
            Some(0.9),
            Some("recipe-clf".into()),
            Some(1),
            1000
        )
    );
    assert_eq!(t[1].2, None);

    // A second model rewrites key 2 and adds key 3; key 1 is left as it was.
    let second = read_csv(
        &d,
        "recipe_id,category,score\n2,汁物,0.4\n3,主食,0.7\n".as_bytes(),
        "b.csv",
    )
    .unwrap();
    let r = write(&db, &d, &second, &meta(2), WriteOptions::default(), 2000)
        .await
        .unwrap();
    assert!(!r.created);
    let t = table(&db).await;
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].4, Some(1));
    assert_eq!(
        t[1],
        (
            2,
            "汁物".into(),
            Some(0.4),
            Some("recipe-clf".into()),
            Some(2),
            2000
        )
    );
    // The same write again: the same table (only updated_at moves).
    write(&db, &d, &second, &meta(2), WriteOptions::default(), 3000)
        .await
        .unwrap();
    let again = table(&db).await;
    assert_eq!(again.len(), 3);
    assert_eq!(
        again
            .iter()
            .map(|r| (r.0, r.1.clone(), r.2, r.4))
            .collect::<Vec<_>>(),
        t.iter()
            .map(|r| (r.0, r.1.clone(), r.2, r.4))
            .collect::<Vec<_>>()
    );

    // A write that fails in its last batch leaves nothing of itself.
    let mut many: Vec<Vec<Value>> = (100..2600)
        .map(|i| {
            vec![
                Value::Int(i),
                Value::Text(format!("c{i}")),
                Value::Float(0.5),
            ]
        })
        .collect();
    many.last_mut().unwrap()[1] = Value::NullOf(kondate_db::ColumnType::Text);
    assert!(
        write(&db, &d, &many, &meta(3), WriteOptions::default(), 4000)
            .await
            .is_err()
    );
    assert_eq!(table(&db).await.len(), 3, "a failed write left rows behind");

    // A changed declaration is refused before anything is written.
    let changed = decl(&DECL.replace(
        "score = { type = \"float\" }",
        "score = { type = \"integer\" }",
    ));
    let e = write(
        &db,
        &changed,
        &first,
        &meta(4),
        WriteOptions::default(),
        5000,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ResultsError::Changed(_)), "{e}");
    assert!(e.to_string().contains("the declaration changed"), "{e}");

    // A table kondate did not create is never written into.
    db.execute("CREATE TABLE product_owned (id BIGINT PRIMARY KEY)", &[])
        .await
        .unwrap();
    let foreign = ResultTable::parse(
        "foreign",
        Path::new("results/foreign.toml"),
        "table = \"product_owned\"\nkey = [\"id\"]\n[columns]\nid = { type = \"integer\" }\n",
    )
    .unwrap();
    let e = write(
        &db,
        &foreign,
        vec![vec![Value::Int(1)]],
        &meta(1),
        WriteOptions::default(),
        1,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("was not created by kondate"), "{e}");
}

fn rows(keys: &[i64], label: &str) -> Vec<Vec<Value>> {
    keys.iter()
        .map(|&k| vec![Value::Int(k), Value::Text(label.into()), Value::Float(0.5)])
        .collect()
}

async fn keys_and_labels(db: &Database) -> Vec<(i64, String)> {
    table(db).await.into_iter().map(|r| (r.0, r.1)).collect()
}

/// Prune and swap: the table ends as the write says, and two swaps at once never mix.
async fn prune_and_swap(db: Database) {
    let d = decl(DECL);
    let m = WriteMeta::default();
    let upsert = WriteOptions::default();
    let prune = WriteOptions {
        publish: Publish::Upsert,
        prune: true,
        ..WriteOptions::default()
    };
    let swap = WriteOptions {
        publish: Publish::Swap,
        prune: false,
        ..WriteOptions::default()
    };
    let swap_prune = WriteOptions {
        publish: Publish::Swap,
        prune: true,
        ..WriteOptions::default()
    };
    write(&db, &d, &rows(&[1, 2, 3], "a"), &m, upsert, 1000)
        .await
        .unwrap();
    // Upsert with prune: keys 1 and 3 go, 4 arrives.
    let r = write(&db, &d, &rows(&[2, 4], "b"), &m, prune, 1000)
        .await
        .unwrap();
    assert_eq!(r.pruned, 2);
    assert_eq!(
        keys_and_labels(&db).await,
        [(2, "b".into()), (4, "b".into())]
    );
    // A swap keeps what it does not mention…
    let r = write(&db, &d, &rows(&[5], "c"), &m, swap, 2000)
        .await
        .unwrap();
    assert_eq!((r.publish, r.pruned), (Publish::Swap, 0));
    assert_eq!(
        keys_and_labels(&db).await,
        [(2, "b".into()), (4, "b".into()), (5, "c".into())]
    );
    // …unless it prunes: then the table is exactly the write. Twice, so that the staging
    // table's names (PostgreSQL's primary-key index) are free again after a swap.
    for round in 0..2 {
        let r = write(&db, &d, &rows(&[4, 6], "d"), &m, swap_prune, 3000 + round)
            .await
            .unwrap();
        assert_eq!(r.pruned, if round == 0 { 2 } else { 0 });
        assert_eq!(
            keys_and_labels(&db).await,
            [(4, "d".into()), (6, "d".into())]
        );
    }
    // Two swaps at once: one wins whole, never a mix.
    let a: Vec<i64> = (100..1100).collect();
    let b: Vec<i64> = (100..1100).chain([5000]).collect();
    let (rows_a, rows_b) = (rows(&a, "A"), rows(&b, "B"));
    let (ra, rb) = tokio::join!(
        write(&db, &d, &rows_a, &m, swap_prune, 4000),
        write(&db, &d, &rows_b, &m, swap_prune, 4000),
    );
    ra.unwrap();
    rb.unwrap();
    let t = keys_and_labels(&db).await;
    let labels: std::collections::BTreeSet<&str> = t.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(labels.len(), 1, "rows of both writes: {labels:?}");
    let expected = if labels.contains("A") {
        a.len()
    } else {
        b.len()
    };
    assert_eq!(t.len(), expected);
}

/// A declaration that adds a nullable column is applied with `migrate` (and only then);
/// anything else stays refused. Swaps keep working on the migrated table.
async fn migrations_add_nullable_columns(db: Database) {
    let m = WriteMeta::default();
    let d1 = decl(DECL);
    write(
        &db,
        &d1,
        &rows(&[1, 2], "a"),
        &m,
        WriteOptions::default(),
        1000,
    )
    .await
    .unwrap();
    let with_note = DECL.replace(
        "score = { type = \"float\" }",
        "note = { type = \"string\" }\nscore = { type = \"float\" }",
    );
    let d2 = decl(&with_note);
    let row3 = vec![vec![
        Value::Int(3),
        Value::Text("b".into()),
        Value::Text("new".into()),
        Value::Float(0.1),
    ]];
    let e = write(&db, &d2, &row3, &m, WriteOptions::default(), 2000)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("adds column(s) note"), "{e}");
    assert!(e.to_string().contains("--migrate"), "{e}");
    let migrate = WriteOptions {
        migrate: true,
        ..WriteOptions::default()
    };
    write(&db, &d2, &row3, &m, migrate, 2000).await.unwrap();
    let notes = db
        .fetch_all(
            "SELECT recipe_id, note FROM recipe_categories ORDER BY recipe_id",
            &[],
        )
        .await
        .unwrap();
    let notes: Vec<(i64, Option<String>)> = notes
        .iter()
        .map(|r| {
            (
                get_i64(r, "recipe_id").unwrap(),
                kondate_db::get_opt_string(r, "note"),
            )
        })
        .collect();
    assert_eq!(notes, [(1, None), (2, None), (3, Some("new".into()))]);
    // A swap copies the migrated table by column name (its new column is last there).
    let swap = WriteOptions {
        publish: Publish::Swap,
        ..WriteOptions::default()
    };
    let row4 = vec![vec![
        Value::Int(4),
        Value::Text("c".into()),
        Value::Text("four".into()),
        Value::Float(0.4),
    ]];
    write(&db, &d2, &row4, &m, swap, 3000).await.unwrap();
    assert_eq!(keys_and_labels(&db).await.len(), 4);
    // Removing a column is refused, even with migrate.
    let e = write(&db, &d1, &rows(&[5], "d"), &m, migrate, 4000)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("column `note` was removed"), "{e}");
}

#[tokio::test]
async fn sqlite_migrations() {
    let (_d, db) = db(None).await;
    migrations_add_nullable_columns(db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_migrations() {
    let (_d, db) = db(Some(("KONDATE_TEST_POSTGRES_URL", "results_mig"))).await;
    migrations_add_nullable_columns(db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_migrations() {
    let (_d, db) = db(Some(("KONDATE_TEST_MYSQL_URL", "results_mig"))).await;
    migrations_add_nullable_columns(db).await;
}

#[tokio::test]
async fn sqlite_prune_and_swap() {
    let (_d, db) = db(None).await;
    prune_and_swap(db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_prune_and_swap() {
    let (_d, db) = db(Some(("KONDATE_TEST_POSTGRES_URL", "results_swap"))).await;
    prune_and_swap(db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_prune_and_swap() {
    let (_d, db) = db(Some(("KONDATE_TEST_MYSQL_URL", "results_swap"))).await;
    prune_and_swap(db).await;
}

#[tokio::test]
async fn sqlite_upserts() {
    let (_d, db) = db(None).await;
    upserts_are_keyed_and_idempotent(db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_upserts() {
    let (_d, db) = db(Some(("KONDATE_TEST_POSTGRES_URL", "results_up"))).await;
    upserts_are_keyed_and_idempotent(db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_upserts() {
    let (_d, db) = db(Some(("KONDATE_TEST_MYSQL_URL", "results_up"))).await;
    upserts_are_keyed_and_idempotent(db).await;
}

/// Writes big enough for PostgreSQL's `COPY` stage (and long `VALUES` lists elsewhere):
/// every type, NULLs, and text that the `COPY` format must escape come back exactly, over
/// new rows, updated rows and a pruning swap; a stage left by a killed write is swept.
async fn bulk_writes_keep_every_value(db: Database) {
    const N: i64 = 5_000;
    let d = ResultTable::parse(
        "bulk_values",
        Path::new("results/bulk_values.toml"),
        "key = [\"id\", \"code\"]\n[columns]\nid = { type = \"integer\" }\ncode = { type = \"string\" }\n\
         note = { type = \"string\" }\nscore = { type = \"float\" }\nok = { type = \"boolean\" }\n\
         day = { type = \"date\" }\n",
    )
    .unwrap();
    for t in ["bulk_values", "bulk_values__new"] {
        db.execute(
            &format!("DROP TABLE IF EXISTS {}", db.ident(t).unwrap()),
            &[],
        )
        .await
        .unwrap();
    }
    let make = |round: i64| -> Vec<Vec<Value>> {
        (0..N)
            .map(|i| {
                let null = (i + round) % 7 == 0;
                vec![
                    Value::Int(i),
                    Value::Text(format!("c{}", i % 3)),
                    if null {
                        Value::NullOf(kondate_db::ColumnType::Text)
                    } else {
                        Value::Text(format!("r{round}\ttab\\back\nline\r醤油 {i}"))
                    },
                    if null {
                        Value::NullOf(kondate_db::ColumnType::Float)
                    } else {
                        Value::Float(i as f64 / 3.0 + round as f64)
                    },
                    if null {
                        Value::NullOf(kondate_db::ColumnType::Boolean)
                    } else {
                        Value::Bool((i + round) % 2 == 0)
                    },
                    if null {
                        Value::NullOf(kondate_db::ColumnType::Date)
                    } else {
                        Value::Text(format!(
                            "2026-{:02}-{:02}",
                            1 + i % 12,
                            1 + (i + round) % 28
                        ))
                    },
                ]
            })
            .collect()
    };
    let read = |db: Database| async move {
        let sql = format!(
            "SELECT id, code, note, score, {}, {} FROM bulk_values ORDER BY id, code",
            db.read_expr("ok", kondate_db::ColumnType::Boolean),
            db.read_expr("day", kondate_db::ColumnType::Date)
        );
        db.fetch_all(&sql, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let at = |i| kondate_db::opt_string_at(r, i).unwrap();
                let f = kondate_db::opt_f64_at(r, 3).unwrap();
                let b = kondate_db::opt_i64_at(r, 4).unwrap();
                let day = kondate_db::opt_string_at(r, 5).unwrap();
                vec![
                    Value::Int(kondate_db::opt_i64_at(r, 0).unwrap().unwrap()),
                    Value::Text(at(1).unwrap()),
                    at(2).map_or(Value::NullOf(kondate_db::ColumnType::Text), Value::Text),
                    f.map_or(Value::NullOf(kondate_db::ColumnType::Float), Value::Float),
                    b.map_or(Value::NullOf(kondate_db::ColumnType::Boolean), |b| {
                        Value::Bool(b != 0)
                    }),
                    day.map_or(Value::NullOf(kondate_db::ColumnType::Date), Value::Text),
                ]
            })
            .collect::<Vec<_>>()
    };
    let opts = |publish, prune| WriteOptions {
        publish,
        prune,
        migrate: false,
    };
    let meta = WriteMeta::default();
    let r = write(
        &db,
        &d,
        &make(0),
        &meta,
        opts(Publish::Upsert, false),
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(r.rows, N as u64);
    assert_eq!(read(db.clone()).await, make(0));
    if db.kind() == kondate_db::DbKind::Postgres {
        // What a write killed after staging its rows leaves behind.
        let prefix = {
            use sha2::Digest;
            format!(
                "kondate_stage_{}_",
                &hex::encode(sha2::Sha256::digest(b"bulk_values"))[..12]
            )
        };
        db.execute(
            &format!("CREATE UNLOGGED TABLE {prefix}dead (x BIGINT)"),
            &[],
        )
        .await
        .unwrap();
    }
    // Every row again, changed: updated in place.
    write(
        &db,
        &d,
        &make(1),
        &meta,
        opts(Publish::Upsert, false),
        2_000,
    )
    .await
    .unwrap();
    assert_eq!(read(db.clone()).await, make(1));
    if db.kind() == kondate_db::DbKind::Postgres {
        let left = db
            .fetch_all(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name LIKE 'kondate_stage_%'",
                &[],
            )
            .await
            .unwrap();
        assert!(left.is_empty(), "stages left behind: {}", left.len());
    }
    // A swap of half the rows keeps the other half as they were; with prune, drops it.
    let half: Vec<Vec<Value>> = make(2).into_iter().step_by(2).collect();
    write(&db, &d, &half, &meta, opts(Publish::Swap, false), 3_000)
        .await
        .unwrap();
    let want: Vec<Vec<Value>> = make(1)
        .into_iter()
        .zip(make(2))
        .enumerate()
        .map(|(i, (old, new))| if i % 2 == 0 { new } else { old })
        .collect();
    assert_eq!(read(db.clone()).await, want);
    let r = write(&db, &d, &half, &meta, opts(Publish::Swap, true), 4_000)
        .await
        .unwrap();
    assert_eq!(r.pruned, (N / 2) as u64);
    assert_eq!(read(db.clone()).await, half);
}

#[tokio::test]
async fn sqlite_bulk_writes() {
    let (_d, db) = db(None).await;
    bulk_writes_keep_every_value(db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_bulk_writes() {
    let (_d, db) = db(Some(("KONDATE_TEST_POSTGRES_URL", "results_bulk"))).await;
    bulk_writes_keep_every_value(db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_bulk_writes() {
    let (_d, db) = db(Some(("KONDATE_TEST_MYSQL_URL", "results_bulk"))).await;
    bulk_writes_keep_every_value(db).await;
}

/// A CSV of `n` rows with keys from `from`, each labelled `label`, then `tail` lines as
/// they are.
fn csv_file(dir: &Path, name: &str, from: i64, n: i64, label: &str, tail: &str) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "recipe_id,category,score").unwrap();
    for k in from..from + n {
        writeln!(f, "{k},{label},0.25").unwrap();
    }
    f.write_all(tail.as_bytes()).unwrap();
    f.flush().unwrap();
    path
}

/// A write streams its rows in batches, and the first batches are already sent when a bad
/// row further on is read: the whole write still rolls back, in either publish mode, and
/// leaves no staging table behind.
async fn a_bad_row_late_in_a_streamed_write_leaves_the_table_as_it_was(db: Database) {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("results")).unwrap();
    std::fs::write(project.path().join("results/recipe_categories.toml"), DECL).unwrap();
    let results = Results::new(
        db.clone(),
        project.path(),
        std::sync::Arc::new(kondate_core::SystemClock),
    );
    let d = results.declaration("recipe_categories").unwrap();
    let m = WriteMeta::default();
    let upsert = WriteOptions::default();
    let first = csv_file(project.path(), "first.csv", 0, 30_000, "first", "");
    let r = results.write_files(&d, &[first], &m, upsert).await.unwrap();
    assert_eq!(r.rows, 30_000);
    let before = keys_and_labels(&db).await;
    assert_eq!(before.len(), 30_000);

    // 25,000 good rows (more than two batches), then a bad cell.
    let bad_cell = csv_file(
        project.path(),
        "bad.csv",
        10_000,
        25_000,
        "second",
        "99999,x,oops\n",
    );
    // The key of line 2 again, two batches later.
    let repeated = csv_file(
        project.path(),
        "dup.csv",
        10_000,
        25_000,
        "second",
        "10000,x,1\n",
    );
    for publish in [Publish::Upsert, Publish::Swap] {
        for prune in [false, true] {
            let opts = WriteOptions {
                publish,
                prune,
                migrate: false,
            };
            let e = results
                .write_files(&d, std::slice::from_ref(&bad_cell), &m, opts)
                .await
                .unwrap_err();
            assert!(matches!(e, ResultsError::Input(_)), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("line 25002") && msg.contains("column `score`"),
                "{publish:?}: {msg}"
            );
            let e = results
                .write_files(&d, std::slice::from_ref(&repeated), &m, opts)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("line 25002 repeats the key (recipe_id=10000) of line 2"),
                "{publish:?}: {e}"
            );
            assert_eq!(
                keys_and_labels(&db).await,
                before,
                "{publish:?}, prune {prune}"
            );
        }
    }
    let mut conn = db.acquire().await.unwrap();
    let strays = db
        .tables_with_prefix(&mut conn, "kondate_stage_")
        .await
        .unwrap();
    assert!(strays.is_empty(), "staging tables left behind: {strays:?}");
    assert!(!db.table_exists("recipe_categories__new").await.unwrap());
}

#[tokio::test]
async fn sqlite_a_bad_row_late_rolls_back() {
    let (_d, db) = db(None).await;
    a_bad_row_late_in_a_streamed_write_leaves_the_table_as_it_was(db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_a_bad_row_late_rolls_back() {
    let (_d, db) = db(Some(("KONDATE_TEST_POSTGRES_URL", "results_late"))).await;
    a_bad_row_late_in_a_streamed_write_leaves_the_table_as_it_was(db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_a_bad_row_late_rolls_back() {
    let (_d, db) = db(Some(("KONDATE_TEST_MYSQL_URL", "results_late"))).await;
    a_bad_row_late_in_a_streamed_write_leaves_the_table_as_it_was(db).await;
}
