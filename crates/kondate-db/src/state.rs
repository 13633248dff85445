//! The state database's schema: kondate's own tables (tokens, queries, …), created and
//! migrated in order. Each migration is written once with dialect tokens:
//! `{id}` (auto-increment primary key), `{text}` (long text).

use crate::{Database, DbError, DbKind, Session, Value};

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
    (
        4,
        "CREATE TABLE IF NOT EXISTS kondate_runs (
        id VARCHAR(64) NOT NULL PRIMARY KEY,
        app VARCHAR(64) NOT NULL,
        attempt BIGINT NOT NULL,
        status VARCHAR(16) NOT NULL,
        runner VARCHAR(16) NOT NULL,
        command {text} NOT NULL,
        params {text} NOT NULL,
        actor VARCHAR(255) NOT NULL,
        host VARCHAR(255) NOT NULL,
        supervisor_pid BIGINT NOT NULL,
        pid BIGINT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT NULL,
        exit_code BIGINT NULL,
        term_signal BIGINT NULL,
        peak_memory_bytes BIGINT NULL,
        log_key VARCHAR(512) NULL,
        log_bytes BIGINT NULL,
        error {text} NULL
    );
    CREATE INDEX kondate_runs_app ON kondate_runs (app, started_at);
    ALTER TABLE kondate_tokens ADD COLUMN expires_at BIGINT NULL",
    ),
    (
        5,
        "CREATE TABLE IF NOT EXISTS kondate_users (
        email VARCHAR(255) NOT NULL PRIMARY KEY,
        roles VARCHAR(255) NOT NULL,
        scopes {text} NOT NULL,
        enabled BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by VARCHAR(255) NOT NULL,
        updated_at BIGINT NOT NULL,
        disabled_at BIGINT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_audit (
        id {id},
        at BIGINT NOT NULL,
        actor VARCHAR(255) NOT NULL,
        action VARCHAR(64) NOT NULL,
        target VARCHAR(255) NULL,
        params {text} NOT NULL,
        outcome VARCHAR(16) NOT NULL,
        status BIGINT NULL,
        source VARCHAR(8) NOT NULL,
        client VARCHAR(64) NULL,
        detail {text} NULL
    );
    CREATE INDEX kondate_audit_at ON kondate_audit (at);
    CREATE INDEX kondate_audit_actor ON kondate_audit (actor, at);
    CREATE INDEX kondate_audit_target ON kondate_audit (target, at);
    ALTER TABLE kondate_tokens ADD COLUMN kind VARCHAR(16) NULL;
    ALTER TABLE kondate_tokens ADD COLUMN scopes {text} NULL;
    ALTER TABLE kondate_tokens ADD COLUMN owner VARCHAR(255) NULL;
    ALTER TABLE kondate_tokens ADD COLUMN created_by VARCHAR(255) NULL;
    ALTER TABLE kondate_tokens ADD COLUMN run_id VARCHAR(64) NULL;
    ALTER TABLE kondate_tokens ADD COLUMN last_used_at BIGINT NULL;
    ALTER TABLE kondate_tokens ADD COLUMN rotated_at BIGINT NULL;
    UPDATE kondate_tokens SET kind = 'legacy', scopes = '{legacy_scopes}' WHERE kind IS NULL",
    ),
    (
        6,
        "CREATE TABLE IF NOT EXISTS kondate_processes (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        host VARCHAR(255) NOT NULL,
        pid BIGINT NOT NULL,
        version VARCHAR(64) NOT NULL,
        command VARCHAR(64) NOT NULL,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        stopped_at BIGINT NULL
    );
    CREATE INDEX kondate_processes_heartbeat ON kondate_processes (heartbeat_at);
    ALTER TABLE kondate_queries ADD COLUMN owner VARCHAR(255) NULL",
    ),
    (
        7,
        "ALTER TABLE kondate_runs ADD COLUMN owner VARCHAR(255) NULL",
    ),
    (
        8,
        "CREATE TABLE IF NOT EXISTS kondate_work (
        id {id},
        process VARCHAR(255) NOT NULL,
        kind VARCHAR(64) NOT NULL,
        target VARCHAR(255) NOT NULL,
        started_at BIGINT NOT NULL
    );
    CREATE INDEX kondate_work_process ON kondate_work (process)",
    ),
    (
        9,
        "CREATE TABLE IF NOT EXISTS kondate_jobs (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        revision BIGINT NULL,
        cursor_at BIGINT NULL,
        load_error {text} NULL,
        load_error_at BIGINT NULL,
        removed_at BIGINT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_job_revisions (
        id {id},
        job VARCHAR(64) NOT NULL,
        digest VARCHAR(64) NOT NULL,
        definition {text} NOT NULL,
        loaded_at BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX kondate_job_revisions_digest ON kondate_job_revisions (job, digest);
    CREATE TABLE IF NOT EXISTS kondate_job_instances (
        id {id},
        job VARCHAR(64) NOT NULL,
        revision BIGINT NOT NULL,
        launch_key VARCHAR(255) NOT NULL,
        reason VARCHAR(16) NOT NULL,
        scheduled_at BIGINT NOT NULL,
        status VARCHAR(16) NOT NULL,
        env {text} NULL,
        launched_by VARCHAR(255) NULL,
        created_at BIGINT NOT NULL,
        finished_at BIGINT NULL,
        error {text} NULL
    );
    CREATE UNIQUE INDEX kondate_job_instances_key ON kondate_job_instances (launch_key);
    CREATE INDEX kondate_job_instances_job ON kondate_job_instances (job, status);
    CREATE TABLE IF NOT EXISTS kondate_job_steps (
        id {id},
        instance BIGINT NOT NULL,
        step_key VARCHAR(255) NOT NULL,
        line BIGINT NOT NULL,
        task {text} NOT NULL,
        spec {text} NOT NULL,
        queue VARCHAR(190) NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempt BIGINT NOT NULL,
        not_before BIGINT NULL,
        worker VARCHAR(255) NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT NULL,
        finished_at BIGINT NULL,
        exit_code BIGINT NULL,
        peak_memory_bytes BIGINT NULL,
        log_key VARCHAR(512) NULL,
        error {text} NULL
    );
    CREATE UNIQUE INDEX kondate_job_steps_key ON kondate_job_steps (instance, step_key);
    CREATE TABLE IF NOT EXISTS kondate_job_cursors (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        position BIGINT NOT NULL
    );
    CREATE INDEX kondate_job_steps_queue ON kondate_job_steps (status, queue)",
    ),
    (
        10,
        "ALTER TABLE kondate_job_instances ADD COLUMN error_at BIGINT NULL;
    ALTER TABLE kondate_job_instances ADD COLUMN noticed_at BIGINT NULL;
    ALTER TABLE kondate_job_steps ADD COLUMN log_spool VARCHAR(1024) NULL;
    ALTER TABLE kondate_jobs ADD COLUMN suspended_at BIGINT NULL;
    ALTER TABLE kondate_jobs ADD COLUMN suspended_by VARCHAR(255) NULL;
    CREATE TABLE IF NOT EXISTS kondate_notifications (
        id {id},
        event_id BIGINT NOT NULL,
        destination VARCHAR(64) NOT NULL,
        kind VARCHAR(32) NOT NULL,
        job VARCHAR(64) NULL,
        instance BIGINT NULL,
        notice {text} NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempts BIGINT NOT NULL,
        next_at BIGINT NOT NULL,
        claimed_until BIGINT NULL,
        created_at BIGINT NOT NULL,
        sent_at BIGINT NULL,
        error {text} NULL
    );
    CREATE UNIQUE INDEX kondate_notifications_key ON kondate_notifications (event_id, destination);
    CREATE INDEX kondate_notifications_due ON kondate_notifications (status, next_at);
    CREATE INDEX kondate_events_subject ON kondate_events (subject, kind)",
    ),
    (
        11,
        "ALTER TABLE kondate_job_steps ADD COLUMN process VARCHAR(255) NULL;
    ALTER TABLE kondate_runs ADD COLUMN process VARCHAR(255) NULL",
    ),
    (
        12,
        "CREATE TABLE IF NOT EXISTS kondate_catalog_syncs (
        id {id},
        source VARCHAR(64) NOT NULL,
        status VARCHAR(16) NOT NULL,
        error {text} NULL,
        tables_seen BIGINT NOT NULL DEFAULT 0,
        changes BIGINT NOT NULL DEFAULT 0,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_catalog_objects (
        id {id},
        source VARCHAR(64){bin} NOT NULL,
        kind VARCHAR(16) NOT NULL,
        schema_name VARCHAR(128){bin} NOT NULL,
        table_name VARCHAR(128){bin} NOT NULL,
        column_name VARCHAR(128){bin} NOT NULL,
        data_type VARCHAR(255) NULL,
        nullable BIGINT NULL,
        default_value {text} NULL,
        position BIGINT NULL,
        db_comment {text} NULL,
        row_count BIGINT NULL,
        definition {text} NULL,
        linked BIGINT NOT NULL,
        first_sync BIGINT NOT NULL,
        last_sync BIGINT NOT NULL,
        UNIQUE (source, schema_name, table_name, column_name)
    );
    CREATE TABLE IF NOT EXISTS kondate_catalog_changes (
        id {id},
        sync_id BIGINT NOT NULL,
        object_id BIGINT NOT NULL,
        what VARCHAR(32) NOT NULL,
        before_value {text} NULL,
        after_value {text} NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX kondate_catalog_changes_object ON kondate_catalog_changes (object_id, id);
    CREATE INDEX kondate_catalog_syncs_source ON kondate_catalog_syncs (source, id)",
    ),
    (
        13,
        "CREATE TABLE IF NOT EXISTS kondate_catalog_docs (
        id {id},
        target VARCHAR(512){bin} NOT NULL UNIQUE,
        body {text} NOT NULL,
        version BIGINT NOT NULL,
        updated_by VARCHAR(255) NOT NULL,
        updated_at BIGINT NOT NULL,
        from_file VARCHAR(512) NULL
    );
    CREATE TABLE IF NOT EXISTS kondate_catalog_doc_revisions (
        id {id},
        target VARCHAR(512){bin} NOT NULL,
        version BIGINT NOT NULL,
        body {text} NOT NULL,
        diff {text} NOT NULL,
        principal VARCHAR(255) NOT NULL,
        from_file VARCHAR(512) NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (target, version)
    );
    CREATE TABLE IF NOT EXISTS kondate_catalog_favourites (
        id {id},
        principal VARCHAR(255) NOT NULL,
        target VARCHAR(512){bin} NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (principal, target)
    )",
    ),
    (
        14,
        "ALTER TABLE kondate_catalog_objects ADD COLUMN plan {text} NULL",
    ),
    (
        15,
        "CREATE TABLE IF NOT EXISTS kondate_sessions (
        id_hash VARCHAR(64) NOT NULL PRIMARY KEY,
        kind VARCHAR(16) NOT NULL,
        principal VARCHAR(255) NOT NULL,
        csrf VARCHAR(64) NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX kondate_sessions_expiry ON kondate_sessions (expires_at)",
    ),
];

/// What tokens made before scopes existed keep: what any token could do then — every
/// scope but `admin`, which did not exist. No silent widening (nothing they could not do
/// before) and no silent breakage; `kondate tokens list` marks them `legacy` so that they
/// get replaced by tokens with the scopes they need.
pub const LEGACY_TOKEN_SCOPES: &str = "query labels:read labels:sync models:read models:write \
                                       models:alias models:delete results:write results:prune runs:read";

fn render(kind: DbKind, sql: &str) -> String {
    let (id, text, bin) = match kind {
        DbKind::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", ""),
        DbKind::Postgres => ("BIGSERIAL PRIMARY KEY", "TEXT", ""),
        // Names compared byte for byte, as the databases they come from do (`T` and `t`
        // are two tables on PostgreSQL), not by MySQL's case-insensitive default.
        DbKind::MySql => (
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "LONGTEXT",
            " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ),
    };
    sql.replace("{id}", id)
        .replace("{text}", text)
        .replace("{bin}", bin)
        .replace("{legacy_scopes}", LEGACY_TOKEN_SCOPES)
}

fn statements(kind: DbKind, sql: &str) -> Vec<String> {
    render(kind, sql)
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// One migration on MySQL, where every DDL statement commits by itself: under a named lock
/// (a session's, so on one connection), and re-runnable after a crash half-way — an index
/// or column that already exists is what the statement wanted.
async fn migrate_mysql(db: &Database, version: i64, sql: &str) -> Result<bool, DbError> {
    let mut conn = db.acquire().await?;
    let got = conn
        .fetch_all("SELECT GET_LOCK('kondate_migrate', 120) AS got", &[])
        .await?;
    if got.first().and_then(|r| crate::get_opt_i64(r, "got")) != Some(1) {
        return Err(DbError::Busy(
            "another process has held the migration lock for 2 minutes; is a kondate \
             process stuck migrating this database?"
                .into(),
        ));
    }
    let outcome = async {
        let done = !conn
            .fetch_all(
                "SELECT version FROM kondate_schema_migrations WHERE version = ?",
                &[Value::Int(version)],
            )
            .await?
            .is_empty();
        if !done {
            for stmt in statements(DbKind::MySql, sql) {
                if let Err(e) = conn.execute(&stmt, &[]).await {
                    let msg = e.to_string();
                    if !(msg.contains("Duplicate key name")
                        || msg.contains("Duplicate column name"))
                    {
                        return Err(e);
                    }
                }
            }
            conn.execute(
                "INSERT INTO kondate_schema_migrations (version, applied_at) VALUES (?, ?)",
                &[Value::Int(version), Value::Int(chrono_now_ms())],
            )
            .await?;
        }
        Ok(done)
    }
    .await;
    // Released whatever happened, or other processes would wait for it.
    let _ = conn
        .execute("SELECT RELEASE_LOCK('kondate_migrate')", &[])
        .await;
    outcome
}

/// Bring the state schema up to date; safe to run from several processes at once.
pub async fn migrate(db: &Database) -> Result<(), DbError> {
    migrate_up_to(db, i64::MAX).await
}

/// Apply the migrations up to `version` only: for tests of a later migration on the data an
/// earlier schema held.
pub async fn migrate_up_to(db: &Database, version: i64) -> Result<(), DbError> {
    let max_version = version;
    // Several processes start at once on a new database: on PostgreSQL two concurrent
    // CREATE TABLE IF NOT EXISTS can both find no table and one fail on the catalog's
    // unique index, which create_table_if_missing tolerates.
    db.create_table_if_missing(
        "kondate_schema_migrations",
        "CREATE TABLE IF NOT EXISTS kondate_schema_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )
    .await?;
    let applied: Vec<i64> = db
        .fetch_all("SELECT version FROM kondate_schema_migrations", &[])
        .await?
        .iter()
        .map(|r| crate::get_i64(r, "version"))
        .collect::<Result<_, _>>()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) || *version > max_version {
            continue;
        }
        // Several processes may start at once on a new database. Each migration runs under
        // a lock every other migrating process waits for, checks again whether it is
        // recorded, and records itself — so it runs once, and statements that are not
        // idempotent (CREATE INDEX, ALTER TABLE) are safe.
        let done = if db.kind() == DbKind::MySql {
            migrate_mysql(db, *version, sql).await?
        } else {
            // PostgreSQL and SQLite: DDL is transactional, so the migration and its record
            // commit together. The lock: an advisory lock, or SQLite's write lock (taken by
            // a no-op UPDATE).
            let mut tx = db.begin().await?;
            let lock = match db.kind() {
                DbKind::Postgres => "SELECT pg_advisory_xact_lock(7355608)",
                _ => "UPDATE kondate_schema_migrations SET applied_at = applied_at WHERE 1 = 0",
            };
            tx.execute(lock, &[]).await?;
            let done = !tx
                .fetch_all(
                    "SELECT version FROM kondate_schema_migrations WHERE version = ?",
                    &[Value::Int(*version)],
                )
                .await?
                .is_empty();
            if !done {
                for stmt in statements(db.kind(), sql) {
                    tx.execute(&stmt, &[]).await?;
                }
                tx.execute(
                    "INSERT INTO kondate_schema_migrations (version, applied_at) VALUES (?, ?)",
                    &[Value::Int(*version), Value::Int(chrono_now_ms())],
                )
                .await?;
            }
            tx.commit().await?;
            done
        };
        if done {
            continue;
        }
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
