//! The state database's schema: kondate's own tables (tokens, queries, …), created and
//! migrated in order. Each migration is written once with dialect tokens:
//! `{id}` (auto-increment primary key), `{text}` (long text).

use crate::{Database, DbError, DbKind, Value};

/// Ordered migrations; a version is applied once and never edited after release.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS kondate_tokens (
        id {id},
        name VARCHAR(64) NOT NULL UNIQUE,
        secret_hash VARCHAR(255) NOT NULL,
        enabled BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        disabled_at BIGINT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_queries (
        id {id},
        token_name VARCHAR(64) NULL,
        status VARCHAR(16) NOT NULL,
        select_stmt {text} NOT NULL,
        format VARCHAR(16) NOT NULL,
        enable_metadata BIGINT NOT NULL,
        object_prefix VARCHAR(255) NOT NULL,
        data_files {text} NULL,
        manifest_key VARCHAR(512) NULL,
        record_count BIGINT NULL,
        error {text} NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT NULL,
        finished_at BIGINT NULL,
        expires_at BIGINT NULL,
        expired BIGINT NOT NULL DEFAULT 0
    )",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS kondate_events (
        id {id},
        kind VARCHAR(64) NOT NULL,
        subject VARCHAR(255) NOT NULL,
        payload {text} NOT NULL,
        created_at BIGINT NOT NULL
    )",
    ),
    (
        3,
        "CREATE TABLE IF NOT EXISTS kondate_models (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        last_version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_model_versions (
        id {id},
        model VARCHAR(64) NOT NULL,
        version BIGINT NOT NULL,
        layout VARCHAR(16) NOT NULL,
        content_digest VARCHAR(71) NOT NULL,
        size BIGINT NOT NULL,
        file_count BIGINT NOT NULL,
        files {text} NOT NULL,
        metrics {text} NOT NULL,
        params {text} NOT NULL,
        lineage {text} NOT NULL,
        note {text} NULL,
        created_by VARCHAR(255) NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (model, version)
    );
    CREATE TABLE IF NOT EXISTS kondate_model_version_blobs (
        digest VARCHAR(71) NOT NULL,
        version_id BIGINT NOT NULL,
        PRIMARY KEY (digest, version_id)
    );
    CREATE TABLE IF NOT EXISTS kondate_model_blobs (
        digest VARCHAR(71) NOT NULL PRIMARY KEY,
        size BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        touched_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_model_aliases (
        model VARCHAR(64) NOT NULL,
        alias VARCHAR(64) NOT NULL,
        version BIGINT NOT NULL,
        moved_by VARCHAR(255) NOT NULL,
        moved_at BIGINT NOT NULL,
        PRIMARY KEY (model, alias)
    );
    CREATE TABLE IF NOT EXISTS kondate_model_alias_moves (
        id {id},
        model VARCHAR(64) NOT NULL,
        alias VARCHAR(64) NOT NULL,
        from_version BIGINT NULL,
        to_version BIGINT NULL,
        moved_by VARCHAR(255) NOT NULL,
        moved_at BIGINT NOT NULL
    )",
    ),
];

fn render(kind: DbKind, sql: &str) -> String {
    let (id, text) = match kind {
        DbKind::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
        DbKind::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT"),
        DbKind::MySql => ("BIGINT AUTO_INCREMENT PRIMARY KEY", "LONGTEXT"),
    };
    sql.replace("{id}", id).replace("{text}", text)
}

/// Bring the state schema up to date; safe to run from several processes at once.
pub async fn migrate(db: &Database) -> Result<(), DbError> {
    db.execute(
        "CREATE TABLE IF NOT EXISTS kondate_schema_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
        &[],
    )
    .await?;
    let applied: Vec<i64> = db
        .fetch_all("SELECT version FROM kondate_schema_migrations", &[])
        .await?
        .iter()
        .map(|r| crate::get_i64(r, "version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // Two processes creating the same table at once can fail one of them on
        // PostgreSQL's catalog. Its DDL is transactional: the migration runs in one
        // transaction under an advisory lock, so the second waits and then finds it done.
        // (MySQL commits each DDL statement by itself; SQLite locks the whole file.)
        let mut tx = db.begin().await?;
        if db.kind() == DbKind::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(7355608)", &[])
                .await?;
        }
        for stmt in render(db.kind(), sql)
            .split(';')
            .filter(|s| !s.trim().is_empty())
        {
            tx.execute(stmt, &[]).await?;
        }
        tx.commit().await?;
        let now = chrono_now_ms();
        // Another process may have recorded it meanwhile: every statement above is
        // idempotent, so a duplicate here is harmless.
        let _ = db
            .execute(
                "INSERT INTO kondate_schema_migrations (version, applied_at) VALUES (?, ?)",
                &[Value::Int(*version), Value::Int(now)],
            )
            .await;
        tracing::info!(version, "applied state-database migration");
    }
    Ok(())
}

const INSERT_EVENT: &str =
    "INSERT INTO kondate_events (kind, subject, payload, created_at) VALUES (?, ?, ?, ?)";

fn event_params(kind: &str, subject: &str, payload_json: &str, now_ms: i64) -> [Value; 4] {
    [
        Value::from(kind),
        Value::from(subject),
        Value::from(payload_json),
        Value::Int(now_ms),
    ]
}

/// Record an event (`labels.changed`, `model.pushed`, …) for the scheduler and notifiers.
pub async fn record_event(
    db: &Database,
    kind: &str,
    subject: &str,
    payload_json: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    db.execute(
        INSERT_EVENT,
        &event_params(kind, subject, payload_json, now_ms),
    )
    .await?;
    Ok(())
}

/// [`record_event`] inside a transaction, so the event exists exactly when the change does.
pub async fn record_event_tx(
    tx: &mut crate::Tx,
    kind: &str,
    subject: &str,
    payload_json: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    tx.execute(
        INSERT_EVENT,
        &event_params(kind, subject, payload_json, now_ms),
    )
    .await?;
    Ok(())
}

/// The status of query `id` (`success`, `failed`, …), or `None` if there is no such query;
/// for lineage checks.
pub async fn query_status(db: &Database, id: i64) -> Result<Option<String>, DbError> {
    let row = db
        .fetch_optional(
            "SELECT status FROM kondate_queries WHERE id = ?",
            &[Value::Int(id)],
        )
        .await?;
    row.map(|r| crate::get_string(&r, "status")).transpose()
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
