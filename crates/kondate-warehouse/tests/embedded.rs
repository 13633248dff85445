//! The embedded warehouse: loading CSV, JSON lines and Parquet; append and replace; a failed
//! load leaves the table as it was; drop.

use std::path::PathBuf;
use std::time::Duration;

use kondate_store::{Store, UrlSigner};
use kondate_warehouse::EmbeddedWarehouse;
use kondate_warehouse::{LoadOptions, ResultFormat, TableName, UnloadRequest, Warehouse};

fn setup() -> (EmbeddedWarehouse, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://h"),
    )
    .unwrap();
    (EmbeddedWarehouse::new(store.clone()), store, dir)
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Run `sql` into one ordered part of `format`.
async fn unload(
    wh: &EmbeddedWarehouse,
    sql: &str,
    format: ResultFormat,
) -> Result<kondate_warehouse::UnloadOutput, kondate_warehouse::WarehouseError> {
    wh.unload(&UnloadRequest {
        select: sql.into(),
        prefix: format!("q/{}/", rand_suffix()),
        format,
        parts: 1,
        gzip_level: 0,
        ordered: true,
        statement_timeout: Duration::from_secs(30),
    })
    .await
}

async fn count(wh: &EmbeddedWarehouse, store: &Store, sql: &str) -> String {
    let out = unload(wh, sql, ResultFormat::Csv).await.unwrap();
    let bytes = store.get(&out.data_files[0]).await.unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut s)
        .unwrap();
    s
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn loads_csv_jsonl_and_parquet_and_lists_tables() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("recipes.items").unwrap();
    let csv = file(&dir, "a.csv", "id,title\n1,肉じゃが\n2,豚汁\n");
    let r = wh.load(&t, &[csv], &LoadOptions::default()).await.unwrap();
    assert_eq!((r.rows, r.replaced), (2, false));
    let jl = file(
        &dir,
        "b.jsonl",
        "{\"id\": 3, \"title\": \"親子丼\"}\n{\"id\": 4, \"title\": \"プリン\"}\n",
    );
    let t2 = TableName::parse("recipes.more").unwrap();
    wh.load(&t2, &[jl], &LoadOptions::default()).await.unwrap();
    // Parquet produced by our own unload of the first table.
    let tables = wh.tables().await.unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["recipes.items", "recipes.more"]);
    assert_eq!(tables[0].rows, Some(2));
    assert_eq!(tables[0].columns[0].redshift_type, "bigint");
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT count(*) FROM recipes.items a JOIN recipes.more b ON a.id < b.id"
        )
        .await,
        "\"4\"\n"
    );
}

#[tokio::test]
async fn append_adds_rows_and_refuses_a_different_schema() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.t").unwrap();
    wh.load(
        &t,
        &[file(&dir, "a.csv", "id,v\n1,x\n")],
        &LoadOptions::default(),
    )
    .await
    .unwrap();
    let append = LoadOptions {
        append: true,
        ..Default::default()
    };
    wh.load(&t, &[file(&dir, "b.csv", "id,v\n2,y\n")], &append)
        .await
        .unwrap();
    assert_eq!(
        count(&wh, &store, "SELECT count(*) FROM s.t").await,
        "\"2\"\n"
    );
    let err = wh
        .load(
            &t,
            &[file(&dir, "c.csv", "id,other,extra\n3,z,1\n")],
            &append,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("differ") && err.contains("c.csv"), "{err}");
    assert_eq!(
        count(&wh, &store, "SELECT count(*) FROM s.t").await,
        "\"2\"\n",
        "unchanged"
    );
    // Replace (the default) swaps the whole table.
    let r = wh
        .load(
            &t,
            &[file(&dir, "d.csv", "id,v\n9,q\n")],
            &LoadOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.replaced);
    assert_eq!(
        count(&wh, &store, "SELECT string_agg(v, ',') FROM s.t").await,
        "\"q\"\n"
    );
}

#[tokio::test]
async fn a_failed_load_leaves_the_previous_table_intact() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.t").unwrap();
    wh.load(
        &t,
        &[file(&dir, "a.csv", "id,v\n1,x\n2,y\n")],
        &LoadOptions::default(),
    )
    .await
    .unwrap();
    let before = store.list("warehouse").await.unwrap().len();
    let schema = LoadOptions {
        schema: Some("id:bigint,v:text".into()),
        ..Default::default()
    };
    let err = wh
        .load(
            &t,
            &[file(&dir, "bad.csv", "id,v\n1,x\nnot-a-number,y\n")],
            &schema,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.csv"), "{err}");
    assert_eq!(
        count(&wh, &store, "SELECT count(*) FROM s.t").await,
        "\"2\"\n"
    );
    assert_eq!(
        store.list("warehouse").await.unwrap().len(),
        before,
        "no stray files"
    );
    let err = wh
        .load(
            &t,
            &[dir.path().join("missing.csv")],
            &LoadOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing.csv"), "{err}");
    let err = wh
        .load(&t, &[file(&dir, "x.txt", "a")], &LoadOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown format"), "{err}");
    let err = wh
        .load(
            &t,
            &[file(&dir, "y.csv", "a\n1\n")],
            &LoadOptions {
                schema: Some("a:decimal".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown type `decimal`"), "{err}");
}

#[tokio::test]
async fn drop_removes_the_table_and_its_files() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.gone").unwrap();
    wh.load(
        &t,
        &[file(&dir, "a.csv", "id\n1\n")],
        &LoadOptions::default(),
    )
    .await
    .unwrap();
    assert!(wh.drop_table(&t).await.unwrap());
    assert!(
        !wh.drop_table(&t).await.unwrap(),
        "second drop finds nothing"
    );
    assert!(wh.tables().await.unwrap().is_empty());
    assert!(store.list("warehouse").await.unwrap().is_empty());
}

#[test]
fn table_names_are_validated() {
    for bad in ["a.b.c", "../x", "s.", ".t", "s.t;drop", "s t"] {
        assert!(TableName::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        TableName::parse("Recipes").unwrap().to_string(),
        "public.recipes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_all_land() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.many").unwrap();
    wh.load(
        &t,
        &[file(&dir, "first.csv", "id\n0\n")],
        &LoadOptions::default(),
    )
    .await
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..=8 {
        let wh = wh.clone();
        let t = t.clone();
        let f = file(&dir, &format!("a{i}.csv"), &format!("id\n{i}\n"));
        tasks.spawn(async move {
            let append = LoadOptions {
                append: true,
                ..Default::default()
            };
            wh.load(&t, &[f], &append).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Every append re-read the manifest under the table lock: none was lost.
    assert_eq!(
        count(&wh, &store, "SELECT count(*), sum(id) FROM s.many").await,
        "\"9\",\"36\"\n"
    );
    assert!(
        !dir.path()
            .join("store/warehouse/s/many/_table.lock")
            .exists(),
        "the lock is released"
    );
}

#[tokio::test]
async fn a_lock_left_by_a_killed_load_is_broken_after_it_goes_stale() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.stale").unwrap();
    let lock = dir.path().join("store/warehouse/s/stale/_table.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "{\"pid\":1}").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    loads_past_the_lock(&wh, &store, &dir, &t, &lock).await;
}

/// A load of one row into `t` succeeds, and leaves no lock object at `lock`.
async fn loads_past_the_lock(
    wh: &EmbeddedWarehouse,
    store: &Store,
    dir: &tempfile::TempDir,
    t: &TableName,
    lock: &std::path::Path,
) {
    wh.load(t, &[file(dir, "x.csv", "id\n1\n")], &LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(
        count(wh, store, &format!("SELECT count(*) FROM {t}")).await,
        "\"1\"\n"
    );
    assert!(!lock.exists());
}

fn here() -> String {
    kondate_core::host::hostname()
}

/// A table lock object as a load writes it.
fn holder(host: &str, pid: i64) -> String {
    format!("{{\"host\":\"{host}\",\"pid\":{pid},\"taken_at\":\"2026-01-01T00:00:00.000Z\"}}")
}

/// The pid of a process that has exited.
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id().into();
    child.wait().unwrap();
    pid
}

#[tokio::test]
async fn a_fresh_lock_whose_process_is_gone_from_this_host_is_broken_at_once() {
    let (wh, store, dir) = setup();
    // Waiting would fail: the lock must be broken, not waited out.
    let wh = wh.with_lock_wait(Duration::from_millis(100));
    let t = TableName::parse("s.orphan").unwrap();
    let lock = dir.path().join("store/warehouse/s/orphan/_table.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, holder(&here(), dead_pid())).unwrap();
    loads_past_the_lock(&wh, &store, &dir, &t, &lock).await;

    // The same pid on another host proves nothing: that lock is waited for.
    std::fs::write(&lock, holder("elsewhere", dead_pid())).unwrap();
    let err = wh
        .load(
            &t,
            &[file(&dir, "y.csv", "id\n2\n")],
            &LoadOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("on host elsewhere"), "{err}");
}

#[tokio::test]
async fn a_load_that_cannot_get_the_lock_fails_clearly_and_leaves_no_files() {
    let (wh, _store, dir) = setup();
    let wh = wh.with_lock_wait(Duration::from_millis(100));
    let t = TableName::parse("s.busy").unwrap();
    let table_dir = dir.path().join("store/warehouse/s/busy");
    std::fs::create_dir_all(&table_dir).unwrap();
    // A fresh lock: another load (a live process: this one) is switching the manifest.
    std::fs::write(
        table_dir.join("_table.lock"),
        holder(&here(), std::process::id().into()),
    )
    .unwrap();
    let err = wh
        .load(
            &t,
            &[file(&dir, "x.csv", "id\n1\n")],
            &LoadOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s.busy")
            && err.contains("try again")
            && err.contains("_table.lock")
            && err.contains(&format!(
                "process {} on host {}",
                std::process::id(),
                here()
            )),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&table_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["_table.lock"], "the load's data files were removed");
    assert!(wh.tables().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_query_past_the_memory_limit_fails_with_a_message_not_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://h"),
    )
    .unwrap();
    let wh = EmbeddedWarehouse::new(store.clone()).with_memory_limit(4 << 20);
    let t = TableName::parse("big.words").unwrap();
    let mut csv = String::from("id,word\n");
    for i in 0..300_000 {
        csv.push_str(&format!("{i},word-{i}-{}\n", "x".repeat(20)));
    }
    let f = file(&dir, "words.csv", &csv);
    wh.load(&t, &[f], &LoadOptions::default()).await.unwrap();
    // Collecting every word into one array cannot spill: past 4 MiB it must fail cleanly.
    let e = wh
        .unload(&UnloadRequest {
            select: "SELECT array_agg(word) AS words FROM big.words".into(),
            prefix: "q/mem/".into(),
            format: ResultFormat::Csv,
            parts: 1,
            gzip_level: 0,
            ordered: true,
            statement_timeout: Duration::from_secs(60),
        })
        .await
        .expect_err("the query must not fit in 4 MiB");
    let msg = e.to_string();
    assert!(msg.contains("warehouse.memory_limit"), "{msg}");
    // The warehouse still answers, and a query within the budget runs.
    assert_eq!(
        count(&wh, &store, "SELECT count(*) AS n FROM big.words").await,
        "\"300000\"\n"
    );
}

/// JSON lines keep the order of the file's keys (the first line's, then any key a later
/// line adds), as CSV and Parquet keep theirs — not an alphabetical one.
#[tokio::test]
async fn a_table_loaded_from_json_lines_keeps_the_files_column_order() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("recipes.ordered").unwrap();
    let jl = file(
        &dir,
        "o.jsonl",
        "{\"zeta\": 1, \"alpha\": \"a\", \"Mid\": true}\n\
         {\"zeta\": 2, \"alpha\": \"b\", \"Mid\": false, \"added\": 1.5}\n",
    );
    wh.load(&t, &[jl], &LoadOptions::default()).await.unwrap();
    let tables = wh.tables().await.unwrap();
    let cols: Vec<&str> = tables[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["zeta", "alpha", "Mid", "added"]);
    assert_eq!(
        count(&wh, &store, "SELECT * FROM recipes.ordered ORDER BY zeta").await,
        "\"1\",\"a\",\"t\",\"\"\n\"2\",\"b\",\"f\",\"1.5\"\n"
    );
}

/// Appending JSON lines whose keys come in another order adds rows to the same columns.
#[tokio::test]
async fn json_lines_appended_in_another_key_order_land_in_the_tables_columns() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("recipes.appended").unwrap();
    let a = file(&dir, "a.jsonl", "{\"id\": 1, \"title\": \"豚汁\"}\n");
    let b = file(&dir, "b.jsonl", "{\"title\": \"親子丼\", \"id\": 2}\n");
    wh.load(&t, &[a], &LoadOptions::default()).await.unwrap();
    let append = LoadOptions {
        append: true,
        ..LoadOptions::default()
    };
    wh.load(&t, &[b], &append).await.unwrap();
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT id, title FROM recipes.appended ORDER BY id"
        )
        .await,
        "\"1\",\"豚汁\"\n\"2\",\"親子丼\"\n"
    );
}

/// Result columns are named as PostgreSQL and Redshift name them — not after the engine's
/// expression — and a name may repeat, in the columns reported and in Parquet parts.
#[tokio::test]
async fn result_columns_are_named_as_postgresql_names_them() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.t").unwrap();
    let csv = file(
        &dir,
        "t.csv",
        "id,name,at\n1,醤油,2024-01-02T03:04:05\n2,,2024-02-03T00:00:00\n",
    );
    wh.load(&t, &[csv], &LoadOptions::default()).await.unwrap();
    let sql = "SELECT id::text, nvl(name, 'x'), date_trunc('month', at), \
               row_number() OVER (ORDER BY id), 1, 1, CAST(id AS varchar), s.t.name, \
               id + 1 AS id, (SELECT max(id) FROM s.t) FROM s.t ORDER BY id";
    let expected = [
        "id",
        "nvl",
        "date_trunc",
        "row_number",
        "?column?",
        "?column?",
        "id",
        "name",
        "id",
        "max",
    ];
    let out = unload(&wh, sql, ResultFormat::Parquet).await.unwrap();
    let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, expected);
    let bytes = store.get(&out.data_files[0]).await.unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let parquet_names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(parquet_names, expected);
    // Beside `*`, a column may be named again.
    let out = unload(&wh, "SELECT *, id FROM s.t", ResultFormat::Csv)
        .await
        .unwrap();
    let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "at", "id"]);
    // A subquery's columns are referred to by those names, as on PostgreSQL.
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT id, upper FROM (SELECT id::text, upper(name) FROM s.t) q ORDER BY id"
        )
        .await,
        "\"1\",\"醤油\"\n\"2\",\"\"\n"
    );
}

/// `to_char` reads PostgreSQL's patterns (it used to return the pattern itself for every
/// row), and refuses what it cannot format the way PostgreSQL does.
#[tokio::test]
async fn to_char_formats_postgresql_patterns_and_refuses_numbers() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.events").unwrap();
    let csv = file(
        &dir,
        "e.csv",
        "id,at,day\n1,2024-03-09T15:04:05.123,2024-03-09\n2,,\n",
    );
    wh.load(&t, &[csv], &LoadOptions::default()).await.unwrap();
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS'), to_char(day, 'FMMonth FMDDth, YYYY'), \
             to_char(at, 'Dy HH12:MI AM') FROM s.events ORDER BY id"
        )
        .await,
        "\"2024-03-09 15:04:05\",\"March 9th\\, 2024\",\"Sat 03:04 PM\"\n\"\",\"\",\"\"\n"
    );
    let e = unload(
        &wh,
        "SELECT to_char(id, '999') FROM s.events",
        ResultFormat::Csv,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("to_char of a number is not supported"), "{e}");
}

/// Redshift's LEN, DECODE, DATEADD, DATEDIFF and GETDATE answer as Redshift documents them
/// (they used to be refused as unknown functions).
#[tokio::test]
async fn redshift_functions_answer_as_redshift_does() {
    let (wh, store, dir) = setup();
    let t = TableName::parse("s.r").unwrap();
    let csv = file(&dir, "r.csv", "id,x\n1,1\n2,\n3,2\n");
    wh.load(&t, &[csv], &LoadOptions::default()).await.unwrap();
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT LEN('日本語'), DECODE(x, 1, 'one', NULL, 'null', 'other'), \
             DECODE(x, 1, 'one') FROM s.r ORDER BY id"
        )
        .await,
        "\"3\",\"one\",\"one\"\n\"3\",\"null\",\"\"\n\"3\",\"other\",\"\"\n"
    );
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT DATEADD(month, 1, '2024-01-31'), DATEADD(day, -1, DATE '2024-03-01'), \
             DATEADD(h, 30, '2024-01-01 00:00:00'), DATEADD(quarter, 1, '2024-11-30')"
        )
        .await,
        "\"2024-02-29 00:00:00\",\"2024-02-29 00:00:00\",\"2024-01-02 06:00:00\",\
         \"2025-02-28 00:00:00\"\n"
    );
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT DATEDIFF(day, '2024-02-28 23:00:00', '2024-03-01 01:00:00'), \
             DATEDIFF(month, '2024-01-31', '2024-02-01'), DATEDIFF(year, '2023-12-31', \
             '2024-01-01'), DATEDIFF(hour, '2024-01-01 10:59:00', '2024-01-01 11:01:00'), \
             DATEDIFF(qtr, '2024-03-31', '2024-04-01'), DATEDIFF(day, DATE '2024-03-10', \
             DATE '2024-03-01'), date_part('year', GETDATE()) >= 2026 AND SYSDATE >= GETDATE()"
        )
        .await,
        "\"2\",\"1\",\"1\",\"1\",\"1\",\"-9\",\"t\"\n"
    );
    // TOP n is LIMIT n.
    assert_eq!(
        count(&wh, &store, "SELECT TOP 2 id FROM s.r ORDER BY id DESC").await,
        "\"3\"\n\"2\"\n"
    );
    // A computed count of a fixed-length part.
    assert_eq!(
        count(
            &wh,
            &store,
            "SELECT DATEADD(day, x, '2024-02-28') FROM s.r WHERE x IS NOT NULL ORDER BY id"
        )
        .await,
        "\"2024-02-29 00:00:00\"\n\"2024-03-01 00:00:00\"\n"
    );
}

/// Where the embedded warehouse cannot give PostgreSQL's (or Redshift's) answer, the query
/// fails with a message naming the construct and what to write instead — never a
/// different answer.
#[tokio::test]
async fn postgresql_semantics_fail_with_what_to_do_where_they_cannot_answer() {
    let (wh, _store, _dir) = setup();
    for (sql, says) in [
        ("SELECT 2147483647 + 1", "integer out of range"),
        ("SELECT 2147483647 + 1", "cast to a wider type"),
        ("SELECT 1.5 / 0.0", "division by zero"),
        ("SELECT 1.5::float8 / 0.0", "division by zero"),
        (
            "SELECT 1.5e300 * 2",
            "write it as a float, e.g. 1.5e300::float8",
        ),
        (
            "SELECT avg(x) FROM (VALUES (99999999999999999999999999999999999999::numeric(38,0)), \
             (99999999999999999999999999999999999999::numeric(38,0))) t(x)",
            "the sum has more than 38 digits; cast the argument to double precision",
        ),
        (
            "SELECT TIMESTAMP '2024-01-01 00:00:00' AT TIME ZONE 'Mars/Olympus'",
            "`Mars/Olympus` is not a time zone",
        ),
        (
            "SELECT convert_timezone('Nowhere', TIMESTAMP '2024-01-01 00:00:00')",
            "`Nowhere` is not a time zone",
        ),
        (
            "SELECT convert_timezone(TIMESTAMP '2024-01-01 00:00:00')",
            "CONVERT_TIMEZONE takes ([source zone,] target zone, timestamp), not 1",
        ),
        (
            "SELECT extract(hour FROM TIMESTAMP '2024-01-02 00:00:00' - TIMESTAMP '2024-01-01 00:00:00')",
            "extract the epoch and divide",
        ),
        (
            "SELECT extract(julian FROM DATE '2024-01-01')",
            "EXTRACT(julian …) is not supported",
        ),
        (
            "SELECT json_array_length(CAST('{\"a\": 1}' AS json))",
            "cannot get the array length of a non-array",
        ),
        (
            "SELECT make_timestamp(2024, 2, 30, 0, 0, 0)",
            "date field value out of range: 2024-02-30",
        ),
        (
            "SELECT make_timestamp(2024, 1, 1, 25, 0, 0)",
            "time field value out of range",
        ),
        (
            "SELECT width_bucket(1, 1, 1, 3)",
            "lower bound cannot equal upper bound",
        ),
        (
            "SELECT width_bucket(1, 0, 10, 0)",
            "count must be greater than zero",
        ),
        ("SELECT div(1, 0)", "division by zero"),
        ("SELECT strtol('12z', 10)", "is not a number in base 10"),
        ("SELECT gcd(1.5, 2)", "not an integer"),
        (
            "SELECT trunc(TIMESTAMP '2024-01-01 10:00:00', 2)",
            "use date_trunc('unit', x)",
        ),
        (
            "SELECT percentile_disc(1.5) WITHIN GROUP (ORDER BY v) FROM (VALUES (1), (2)) t(v)",
            "not between 0 and 1",
        ),
        (
            "SELECT v FROM (VALUES ('a'), ('b')) t(v) ORDER BY v COLLATE \"de_DE\"",
            "compares text by code point",
        ),
        (
            "SELECT to_date('2024 1', 'YYYY Q')",
            "is not read by the embedded warehouse",
        ),
    ] {
        let e = unload(&wh, sql, ResultFormat::Csv)
            .await
            .expect_err(sql)
            .to_string();
        assert!(e.contains(says), "{sql}: {e}");
    }
}

/// `avg` of integers is PostgreSQL's `numeric` over many groups too: the engine then keeps
/// one state per group and, with nearly as many groups as rows, passes rows on as states of
/// their own; every group's average must still be exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avg_of_integers_is_exact_over_many_groups() {
    let (wh, store, _dir) = setup();
    // Of bigints: PostgreSQL's 16 places (the column keeps 18: a bigint's 19 digits and the
    // places fit in a decimal).
    assert_eq!(
        count(&wh, &store, "SELECT avg(i) FROM generate_series(1, 4) t(i)").await,
        "\"2.5000000000000000\"\n"
    );
    // Groups of one (i) or two (i and i + 180000) rows, whose averages are whole: the
    // mean of the least and the greatest.
    let sql = "SELECT count(*) AS groups, count(*) FILTER (WHERE a <> (mx + mn) / 2) AS wrong \
               FROM (SELECT i % 180000 AS g, avg(i) AS a, max(i) AS mx, min(i) AS mn \
               FROM generate_series(1, 200000) t(i) GROUP BY i % 180000) s";
    assert_eq!(count(&wh, &store, sql).await, "\"180000\",\"0\"\n");
}
