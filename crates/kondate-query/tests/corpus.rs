//! The fidelity corpus (`tests/corpus/*.slt`): the same queries through the query API on the
//! embedded warehouse and on PostgreSQL, each compared with the expected output written in
//! the corpus — column names, the manifest's types, the Parquet parts' Arrow types, and the
//! CSV parts byte for byte. The expected outputs are PostgreSQL's: run the PostgreSQL test
//! with `KONDATE_CORPUS_BLESS=1` to (re)write them from a real server after adding queries.
//!
//! File format (sqllogictest-like):
//!
//! ```text
//! # a comment
//! query [rowsort|error]
//! SELECT …                   (the statement, one or more lines)
//! postgres:                  (optional: what PostgreSQL runs instead — for a Redshift-only
//! SELECT …                    function, a PostgreSQL expression of the same meaning)
//! refused: TEXT              (optional: the embedded warehouse refuses the statement with a
//!                             message containing TEXT; never a different answer)
//! ----
//! : name | manifest type | Parquet (Arrow) type     (one line per column)
//! "…","…"                    (the CSV rows as UNLOAD writes them; an escaped line feed
//!                             inside a field is shown as `\n`)
//! ```
//!
//! Queries the embedded warehouse still answers differently are listed, with a reason, in
//! `known-differences.txt`; after a fix, `KONDATE_CORPUS_PRUNE=1` takes off those that agree, and
//! `KONDATE_CORPUS_SHOW=1` prints how each listed one differs.
//!
//! A record ends at a blank line. `rowsort` sorts the rows before comparing (a query without
//! ORDER BY has no defined order, on any engine). `error` says the statement must fail on
//! every engine (an integer overflow, say) and has no expected block.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use kondate_core::{Config, WarehouseKind};
use kondate_query::{Opened, QueryRecord, Status, SubmitRequest};
use kondate_warehouse::{LoadOptions, ResultFormat, TableName};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// One query of the corpus.
#[derive(Debug, Clone)]
struct Case {
    file: PathBuf,
    /// 1-based line of its `query` line.
    line: usize,
    rowsort: bool,
    /// Must fail on every engine.
    error: bool,
    sql: String,
    postgres: Option<String>,
    refused: Option<String>,
    /// The expected block, as written (empty when not yet blessed).
    expected: String,
    /// Lines of the file the record spans (its `query` line to its last line), for blessing.
    span: (usize, usize),
}

fn parse_file(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut i = 0;
    let at = |i: usize| format!("{}:{}", path.display(), i + 1);
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let head: Vec<&str> = line.split_whitespace().collect();
        assert!(
            head[0] == "query" && head[1..].iter().all(|w| ["rowsort", "error"].contains(w)),
            "{}: expected `query [rowsort|error]`, found `{line}`",
            at(i)
        );
        let start = i;
        i += 1;
        let (mut sql, mut postgres, mut refused) = (Vec::new(), None::<Vec<&str>>, None);
        while i < lines.len() && lines[i].trim_end() != "----" {
            let l = lines[i];
            assert!(
                !l.trim().is_empty(),
                "{}: a blank line inside a query",
                at(i)
            );
            if l.trim_end() == "postgres:" {
                postgres = Some(Vec::new());
            } else if let Some(r) = l.strip_prefix("refused:") {
                refused = Some(r.trim().to_string());
            } else if let Some(p) = postgres.as_mut() {
                p.push(l);
            } else {
                sql.push(l);
            }
            i += 1;
        }
        assert!(
            i < lines.len(),
            "{}: the query has no `----` line",
            at(start)
        );
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim_end().is_empty() {
            expected.push(lines[i]);
            i += 1;
        }
        assert!(!sql.is_empty(), "{}: the query is empty", at(start));
        cases.push(Case {
            file: path.to_path_buf(),
            line: start + 1,
            rowsort: head.contains(&"rowsort"),
            error: head.contains(&"error"),
            sql: sql.join("\n"),
            postgres: postgres.map(|p| p.join("\n")),
            refused,
            expected: expected.join("\n"),
            span: (start, i),
        });
    }
    cases
}

fn corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| parse_file(f)).collect()
}

/// The fixed data set: `data/tables.txt` lists `schema.table spec` (the load schema of
/// `kondate warehouse load --schema`), and `data/TABLE.jsonl` holds the rows.
fn tables() -> Vec<(TableName, String, PathBuf)> {
    let dir = corpus_dir().join("data");
    std::fs::read_to_string(dir.join("tables.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, spec) = l.split_once(' ').unwrap();
            let table = TableName::parse(name).unwrap();
            let file = dir.join(format!("{}.jsonl", table.table));
            (table, spec.trim().to_string(), file)
        })
        .collect()
}

/// The PostgreSQL type of a column the load schema gives (`kondate_warehouse::parse_schema`,
/// as the embedded warehouse reads it).
fn pg_type(t: &DataType) -> String {
    match t {
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Utf8 => "text".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        other => panic!("tables.txt: no PostgreSQL type for {other}"),
    }
}

async fn open(dir: &Path, postgres: Option<&str>) -> Opened {
    let mut config = Config::default();
    config.resolve_paths(dir);
    if let Some(url) = postgres {
        config.warehouse.kind = WarehouseKind::Postgres;
        config.warehouse.url = Some(url.to_string());
        // CI's server is reached as its superuser (the role checks have tests of their own).
        config.warehouse.allow_privileged_role = true;
    }
    kondate_query::open(&config).await.unwrap()
}

async fn load_embedded(opened: &Opened) {
    for (table, spec, file) in tables() {
        let opts = LoadOptions {
            schema: Some(spec),
            ..LoadOptions::default()
        };
        opened.warehouse.load(&table, &[file], &opts).await.unwrap();
    }
}

async fn load_postgres(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut schemas: Vec<String> = tables().iter().map(|(t, _, _)| t.schema.clone()).collect();
    schemas.dedup();
    for s in schemas {
        for stmt in [
            format!("DROP SCHEMA IF EXISTS {s} CASCADE"),
            format!("CREATE SCHEMA {s}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    for (table, spec, file) in tables() {
        let defs: Vec<String> = kondate_warehouse::parse_schema(&spec)
            .unwrap()
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), pg_type(f.data_type())))
            .collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} ({})",
            defs.join(", ")
        )))
        .execute(&pool)
        .await
        .unwrap();
        let rows: Vec<String> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)"
        )))
        .bind(format!("[{}]", rows.join(",")))
        .execute(&pool)
        .await
        .unwrap();
    }
}

/// Run `sql` through the query API in `format`; the failed query's message on failure.
async fn run(opened: &Opened, sql: &str, format: ResultFormat) -> Result<QueryRecord, String> {
    let r = opened
        .service
        .execute(SubmitRequest {
            q: sql.to_string(),
            values: vec![],
            enable_metadata: true,
            format,
        })
        .await
        .map_err(|e| e.to_string())?;
    match r.status {
        Status::Success => Ok(r),
        _ => Err(r.error.unwrap_or_else(|| format!("{:?}", r.status))),
    }
}

/// The CSV records of UNLOAD text: split at line feeds that no backslash escapes, with an
/// escaped line feed (or carriage return) shown as `\n` (`\r`).
fn records(csv: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = csv.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') => cur.push_str("\\n"),
                Some('\r') => cur.push_str("\\r"),
                Some(o) => {
                    cur.push('\\');
                    cur.push(o);
                }
                None => cur.push('\\'),
            },
            '\n' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Run one statement in both formats and render what the corpus compares.
async fn render(opened: &Opened, sql: &str, rowsort: bool) -> Result<String, String> {
    let csv = run(opened, sql, ResultFormat::Csv).await?;
    let manifest: serde_json::Value = serde_json::from_slice(
        &opened
            .store
            .get(csv.manifest_key.as_deref().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let mut text = String::new();
    for key in &csv.data_files {
        let bytes = opened.store.get(key).await.unwrap();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
    }
    let parquet = run(opened, sql, ResultFormat::Parquet).await?;
    let arrow_types: Vec<String> = match parquet.data_files.first() {
        Some(key) => {
            let bytes = opened.store.get(key).await.unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap();
            reader
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect()
        }
        None => vec![],
    };
    let mut out = Vec::new();
    for (i, e) in manifest["schema"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        out.push(format!(
            ": {} | {} | {}",
            e["name"].as_str().unwrap(),
            e["type"]["base"].as_str().unwrap(),
            arrow_types.get(i).map(String::as_str).unwrap_or("-")
        ));
    }
    let mut rows = records(&text);
    if rowsort {
        rows.sort();
    }
    out.extend(rows);
    Ok(out.join("\n"))
}

fn location(c: &Case) -> String {
    let file = c.file.file_name().unwrap().to_string_lossy().to_string();
    format!("{file}:{}", c.line)
}

/// The queries the embedded warehouse still answers differently, with the reason
/// (`corpus/known-differences.txt`).
fn known_differences() -> BTreeMap<String, String> {
    std::fs::read_to_string(corpus_dir().join("known-differences.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (reason, sql) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("known-differences.txt: no tab in `{l}`"));
            (sql.to_string(), reason.to_string())
        })
        .collect()
}

/// Run the corpus on one engine; every difference is collected and reported together.
/// On the embedded warehouse a query listed in `known-differences.txt` must still differ.
async fn check(opened: &Opened, engine: WarehouseKind) -> Vec<String> {
    let mut failures = Vec::new();
    let mut known = match engine {
        WarehouseKind::Embedded => known_differences(),
        _ => BTreeMap::new(),
    };
    let cases = corpus();
    for sql in known.keys() {
        if !cases.iter().any(|c| &c.sql == sql) {
            failures.push(format!(
                "known-differences.txt lists a query the corpus does not have: {sql}"
            ));
        }
    }
    for c in cases {
        if let Some(reason) = known.remove(&c.sql) {
            let mut one = check_cases(opened, engine, std::slice::from_ref(&c)).await;
            if std::env::var_os("KONDATE_CORPUS_SHOW").is_some() {
                for d in &one {
                    eprintln!("[known: {reason}] {d}\n");
                }
            }
            if one.is_empty() && std::env::var_os("KONDATE_CORPUS_PRUNE").is_some() {
                prune_known_difference(&c.sql);
            } else if one.is_empty() {
                failures.push(format!(
                    "{}: now agrees with PostgreSQL ({reason} is fixed for it): take it off \
                     known-differences.txt\n  {}",
                    location(&c),
                    c.sql
                ));
            }
            one.clear();
            continue;
        }
        failures.extend(check_cases(opened, engine, std::slice::from_ref(&c)).await);
    }
    failures
}

/// Take `sql` off `known-differences.txt` (with `KONDATE_CORPUS_PRUNE=1`: a fix makes
/// queries agree, and this lists them off; nothing is ever added to the list this way).
fn prune_known_difference(sql: &str) {
    let path = corpus_dir().join("known-differences.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| l.split_once('\t').is_none_or(|(_, q)| q != sql))
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
}

async fn check_cases(opened: &Opened, engine: WarehouseKind, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases.iter().cloned() {
        let sql = match (&c.postgres, engine) {
            (Some(pg), WarehouseKind::Postgres) => pg.as_str(),
            _ => c.sql.as_str(),
        };
        let got = render(opened, sql, c.rowsort).await;
        if c.error {
            if let Ok(got) = got {
                failures.push(format!(
                    "{}: {sql}\n  must fail, but gave\n{got}",
                    location(&c)
                ));
            }
            continue;
        }
        match (&c.refused, engine, got) {
            (Some(want), WarehouseKind::Embedded, Err(e)) if e.contains(want.as_str()) => {}
            (Some(want), WarehouseKind::Embedded, got) => failures.push(format!(
                "{}: expected a refusal containing `{want}`, got {got:?}\n  {}",
                location(&c),
                c.sql
            )),
            (_, _, Ok(got)) if got == c.expected => {}
            (_, _, got) => failures.push(format!(
                "{}: {sql}\n--- expected\n{}\n--- got\n{}",
                location(&c),
                c.expected,
                match got {
                    Ok(g) => g,
                    Err(e) => format!("error: {e}"),
                }
            )),
        }
    }
    failures
}

fn report(engine: &str, failures: &[String]) {
    let total = corpus().len();
    assert!(
        failures.is_empty(),
        "{} of {total} corpus queries differ on {engine}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_passes_on_the_embedded_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), None).await;
    load_embedded(&opened).await;
    let failures = check(&opened, WarehouseKind::Embedded).await;
    report("the embedded warehouse", &failures);
}

/// With `KONDATE_CORPUS_BLESS=1`, writes PostgreSQL's outputs into the corpus as the
/// expected ones instead of comparing (review the diff before committing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn the_corpus_passes_on_postgres() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    load_postgres(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), Some(&url)).await;
    if std::env::var_os("KONDATE_CORPUS_BLESS").is_some() {
        bless(&opened).await;
        return;
    }
    let failures = check(&opened, WarehouseKind::Postgres).await;
    report("PostgreSQL", &failures);
}

async fn bless(opened: &Opened) {
    let mut refused = Vec::new();
    let mut by_file: BTreeMap<PathBuf, Vec<Case>> = BTreeMap::new();
    for c in corpus() {
        by_file.entry(c.file.clone()).or_default().push(c);
    }
    for (file, cases) in by_file {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut out: Vec<String> = Vec::new();
        let mut next = 0;
        for c in cases {
            out.extend(lines[next..c.span.0].iter().map(|l| l.to_string()));
            let mut head = vec![
                match (c.rowsort, c.error) {
                    (_, true) => "query error",
                    (true, _) => "query rowsort",
                    _ => "query",
                }
                .to_string(),
            ];
            head.push(c.sql.clone());
            if let Some(pg) = &c.postgres {
                head.push("postgres:".into());
                head.push(pg.clone());
            }
            if let Some(r) = &c.refused {
                head.push(format!("refused: {r}"));
            }
            head.push("----".into());
            let sql = c.postgres.as_deref().unwrap_or(&c.sql);
            match (render(opened, sql, c.rowsort).await, c.error) {
                (Ok(block), false) => head.push(block),
                (Err(_), true) => {}
                (Ok(_), true) => refused.push(format!("{}: {sql}\n  did not fail", location(&c))),
                (Err(e), false) => refused.push(format!("{}: {sql}\n  {e}", location(&c))),
            }
            out.extend(head);
            next = c.span.1;
        }
        out.extend(lines[next..].iter().map(|l| l.to_string()));
        std::fs::write(&file, out.join("\n") + "\n").unwrap();
    }
    assert!(
        refused.is_empty(),
        "{} corpus queries do not do on PostgreSQL what they say (the rest are blessed):\n{}",
        refused.len(),
        refused.join("\n")
    );
}

/// The corpus is as large and as broad as the fidelity issue asks: at least 300 queries,
/// in files by area.
#[test]
fn the_corpus_has_three_hundred_queries_across_areas() {
    let cases = corpus();
    assert!(cases.len() >= 300, "only {} queries", cases.len());
    let files: std::collections::BTreeSet<_> = cases.iter().map(|c| c.file.clone()).collect();
    assert!(files.len() >= 12, "only {} areas", files.len());
}
