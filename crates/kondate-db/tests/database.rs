//! The Database handle and state migrations against real SQLite, PostgreSQL and MariaDB.
//! The server-backed tests are `#[ignore]`d by default; `.ci/run` runs them with the URLs set.

use kondate_db::{
    ColumnType, Database, DbKind, Session, Value, get_i64, get_opt_string, get_string, state,
};

async fn exercise(db: &Database) {
    state::migrate(db).await.unwrap();
    // Idempotent: a second run (another process starting) changes nothing.
    state::migrate(db).await.unwrap();
    let name = format!("t{}", std::process::id());
    db.execute(
        "DELETE FROM kondate_tokens WHERE name = ?",
        &[name.as_str().into()],
    )
    .await
    .unwrap();
    let id = db
        .insert_returning_id(
            "INSERT INTO kondate_tokens (name, secret_hash, enabled, created_at) VALUES (?, ?, ?, ?)",
            &[name.as_str().into(), "h".into(), true.into(), Value::Int(5)],
        )
        .await
        .unwrap();
    assert!(id > 0);
    let row = db
        .fetch_optional(
            "SELECT id, name, secret_hash FROM kondate_tokens WHERE id = ?",
            &[id.into()],
        )
        .await
        .unwrap()
        .expect("row");
    assert_eq!(get_i64(&row, "id").unwrap(), id);
    assert_eq!(get_string(&row, "name").unwrap(), name);
    let dup = db
        .insert_returning_id(
            "INSERT INTO kondate_tokens (name, secret_hash, enabled, created_at) VALUES (?, ?, ?, ?)",
            &[name.as_str().into(), "h".into(), true.into(), Value::Int(5)],
        )
        .await;
    assert!(dup.is_err(), "unique name must be enforced");
    let q = db
        .insert_returning_id(
            "INSERT INTO kondate_queries (token_name, status, select_stmt, format, enable_metadata, object_prefix, created_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[Value::Null, "pending".into(), "select '日本語'".into(), "csv".into(), false.into(), "q/1".into(), Value::Int(1), Value::Null],
        )
        .await
        .unwrap();
    let row = db
        .fetch_optional(
            "SELECT select_stmt, error FROM kondate_queries WHERE id = ?",
            &[q.into()],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get_string(&row, "select_stmt").unwrap(), "select '日本語'");
    assert_eq!(get_opt_string(&row, "error"), None);
}

#[tokio::test]
async fn sqlite_state_database_migrates_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/state.db", tmp.path().display());
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.kind(), DbKind::Sqlite);
    exercise(&db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_state_database_migrates_and_round_trips() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.kind(), DbKind::Postgres);
    exercise(&db).await;
}

#[tokio::test]
#[ignore = "needs MariaDB/MySQL: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_state_database_migrates_and_round_trips() {
    let url = std::env::var("KONDATE_TEST_MYSQL_URL").expect("KONDATE_TEST_MYSQL_URL");
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.kind(), DbKind::MySql);
    exercise(&db).await;
}

#[tokio::test]
async fn unreachable_server_error_names_the_url_without_password() {
    let err = Database::connect("postgres://u:topsecret@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("topsecret"), "{msg}");
    let err = Database::connect("oracle://x").await.unwrap_err();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}

/// A NULL and then a value bound into the same typed slot of the same statement on one
/// connection: PostgreSQL prepares the statement once with the first call's parameter
/// types, so a NULL must carry its column's type or the next number is read as text.
async fn typed_nulls_then_values(db: &Database) {
    let table = db
        .ident(&format!("kdb_nulls_{}", std::process::id()))
        .unwrap();
    db.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])
        .await
        .unwrap();
    db.execute(
        &format!("CREATE TABLE {table} (i BIGINT NULL, f DOUBLE PRECISION NULL, b BOOLEAN NULL)"),
        &[],
    )
    .await
    .unwrap();
    let sql = format!(
        "INSERT INTO {table} (i, f, b) VALUES ({}, {}, {})",
        db.placeholder(ColumnType::Integer),
        db.placeholder(ColumnType::Float),
        db.placeholder(ColumnType::Boolean)
    );
    let mut tx = db.begin().await.unwrap();
    let nulls = [
        Value::NullOf(ColumnType::Integer),
        Value::NullOf(ColumnType::Float),
        Value::NullOf(ColumnType::Boolean),
    ];
    tx.execute(&sql, &nulls).await.unwrap();
    tx.execute(&sql, &[Value::Int(7), Value::Float(0.5), Value::Bool(true)])
        .await
        .unwrap();
    tx.execute(
        &sql,
        &[
            Value::from(None::<i64>),
            Value::Float(1.5),
            Value::Bool(false),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = db
        .fetch_all(&format!("SELECT i FROM {table} WHERE i IS NOT NULL"), &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(get_i64(&rows[0], "i").unwrap(), 7);
    db.execute(&format!("DROP TABLE {table}"), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_typed_nulls_then_values() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!("sqlite://{}/n.db", tmp.path().display()))
        .await
        .unwrap();
    typed_nulls_then_values(&db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_typed_nulls_then_values() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    typed_nulls_then_values(&Database::connect(&url).await.unwrap()).await;
}

#[tokio::test]
#[ignore = "needs MariaDB/MySQL: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_typed_nulls_then_values() {
    let url = std::env::var("KONDATE_TEST_MYSQL_URL").expect("KONDATE_TEST_MYSQL_URL");
    typed_nulls_then_values(&Database::connect(&url).await.unwrap()).await;
}

/// A handle printed with `{:?}` (as logs and error reports do) shows the URL without its
/// password. PostgreSQL here trusts local connections, so any password connects.
#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn debug_output_never_shows_the_password() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    let mut u = url::Url::parse(&url).unwrap();
    u.set_password(Some("hunter2secret")).unwrap();
    let db = Database::connect(u.as_str()).await.unwrap();
    let shown = format!("{db:?}");
    assert!(!shown.contains("hunter2secret"), "{shown}");
    assert!(shown.contains("127.0.0.1"), "{shown}");
}

/// Several processes start at once on a new PostgreSQL database: every one's migration
/// must succeed (two concurrent CREATE TABLE IF NOT EXISTS of the migrations' own table used
/// to fail one of them on PostgreSQL's catalog).
#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_concurrent_first_migrations_all_succeed() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    for round in 0..10 {
        let fresh = kondate_db::isolated_test_database(&url, "concurrent_migrate")
            .await
            .unwrap();
        // Connected first, released together.
        let mut dbs = Vec::new();
        for _ in 0..8 {
            dbs.push(Database::connect(&fresh).await.unwrap());
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(dbs.len()));
        let tasks: Vec<_> = dbs
            .into_iter()
            .map(|db| {
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let r = state::migrate(&db).await;
                    db.close().await;
                    r
                })
            })
            .collect();
        for t in tasks {
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: a first migration failed: {e}"));
        }
    }
}
