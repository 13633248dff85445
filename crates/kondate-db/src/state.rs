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
        for stmt in render(db.kind(), sql)
            .split(';')
            .filter(|s| !s.trim().is_empty())
        {
            db.execute(stmt, &[]).await?;
        }
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

/// Record an event (`labels.changed`, `model.pushed`, …) for the scheduler and notifiers.
pub async fn record_event(
    db: &Database,
    kind: &str,
    subject: &str,
    payload_json: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO kondate_events (kind, subject, payload, created_at) VALUES (?, ?, ?, ?)",
        &[
            Value::from(kind),
            Value::from(subject),
            Value::from(payload_json),
            Value::Int(now_ms),
        ],
    )
    .await?;
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
