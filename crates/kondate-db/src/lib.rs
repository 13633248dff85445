//! kondate-db: one `Database` handle over SQLite, MySQL/MariaDB and PostgreSQL, and the
//! state database's schema.
//!
//! Dialect differences live here, in a few named functions ([`Database::sql`] for
//! placeholders, [`Database::insert_returning_id`] for generated keys, the DDL tokens in
//! [`state`], the bulk-write pieces in `bulk`: upsert clauses, PostgreSQL's `COPY` stage,
//! transactional DDL, named locks), never as `if mysql {…}` in the crates above.

mod bulk;
pub mod processes;
mod sqlite;
pub mod state;
pub mod wake;

pub use bulk::CopyStage;

use std::time::Duration;

use kondate_core::config::redact_url;
use sqlx::any::AnyPoolOptions;
pub use sqlx::any::AnyRow;
use sqlx::{AnyPool, Arguments, AssertSqlSafe};

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to {url}: {source}; check that the server runs and the URL is right")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("unsupported database URL `{0}`: use sqlite://PATH, postgres://… or mysql://…")]
    Scheme(String),
    #[error("database error while {context}: {source}")]
    Query {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "`{0}` cannot be a table or column name: use letters, digits and `_`, starting with a \
         letter or `_`, at most 63 characters"
    )]
    Identifier(String),
    /// The migration lock could not be had in time.
    #[error("{0}")]
    Busy(String),
    #[error("cannot create the folder for the SQLite file {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DbError {
    /// A row the statement needed was not there (while `context`).
    pub fn missing_row(context: &str) -> DbError {
        DbError::Query {
            context: context.to_string(),
            source: sqlx::Error::RowNotFound,
        }
    }

    /// True when the statement was refused because a row with the same unique key exists
    /// (PostgreSQL 23505, MySQL 1062, SQLite's UNIQUE and PRIMARY KEY constraints): the
    /// way to do something exactly once across processes is to insert its key.
    pub fn is_unique_violation(&self) -> bool {
        let DbError::Query { source, .. } = self else {
            return false;
        };
        source
            .as_database_error()
            .is_some_and(|db| db.is_unique_violation())
    }

    /// True when the statement gave up waiting for a lock another transaction holds:
    /// SQLite's `SQLITE_BUSY` (after its busy timeout), MySQL's lock wait timeout (1205),
    /// PostgreSQL's `lock_not_available` (55P03).
    pub fn is_lock_timeout(&self) -> bool {
        let DbError::Query { source, .. } = self else {
            return false;
        };
        let Some(db) = source.as_database_error() else {
            return false;
        };
        // MySQL's SQLSTATE for it is the generic HY000: the error number tells.
        if let Some(m) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return m.number() == 1205;
        }
        // SQLite reports extended codes: 5 BUSY, 261 BUSY_RECOVERY, 517 BUSY_SNAPSHOT.
        matches!(db.code().as_deref(), Some("5" | "261" | "517" | "55P03"))
    }
}

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
    MySql,
}

/// A parameter value; the subset of types that behaves the same on all three databases.
/// A NULL for a number or boolean column must be [`Value::NullOf`] its type: PostgreSQL
/// caches a statement with its first call's parameter types, and an untyped NULL (bound as
/// text) would make the next call's number unreadable.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A NULL for a column of this type, bound with the type's own wire type (PostgreSQL
    /// caches a statement with its first call's parameter types).
    NullOf(ColumnType),
    Int(i64),
    Float(f64),
    /// For [`ColumnType::Boolean`] columns (state tables store flags as integers).
    Bool(bool),
    Text(String),
}

/// Column types kondate writes into tables of the service database, each mapped to one SQL
/// type per dialect by [`Database::column_sql_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Float,
    Boolean,
    Date,
    /// Long text.
    Text,
    /// Text that is part of a key or an index (MySQL cannot index `TEXT` whole).
    ShortText,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::Null, Value::from)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::NullOf(ColumnType::Integer), Value::Int)
    }
}

/// A pooled connection to one database.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    kind: DbKind,
    display_url: String,
    /// The URL connected to (with its password), for the PostgreSQL bulk path, which needs
    /// a connection of the PostgreSQL driver's own. Never shown: `display_url` is.
    url: String,
}

/// By hand, so that the URL with its password never reaches a log: only the masked one.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind)
            .field("url", &self.display_url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connect to `url` (`sqlite://PATH` creates the file and its folder).
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        sqlx::any::install_default_drivers();
        let (kind, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if file != ":memory:"
                && let Some(dir) = std::path::Path::new(file).parent()
            {
                std::fs::create_dir_all(dir).map_err(|source| DbError::Folder {
                    path: file.to_string(),
                    source,
                })?;
            }
            let sep = if url.contains('?') { '&' } else { '?' };
            (DbKind::Sqlite, format!("{url}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (DbKind::Postgres, url.to_string())
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            (DbKind::MySql, url.replacen("mariadb://", "mysql://", 1))
        } else {
            return Err(DbError::Scheme(redact_url(url)));
        };
        let display_url = redact_url(&url);
        let in_memory = kind == DbKind::Sqlite && url.starts_with("sqlite://:memory:");
        if kind == DbKind::Sqlite && !in_memory {
            // WAL lets the CLI read while `kondate serve` writes; the mode is stored in the
            // file. Set up before the pool opens a connection (see `sqlite`'s docs for why
            // this is safe when several processes open the file at once).
            sqlite::prepare(&url, &display_url).await?;
        }
        let mut options = AnyPoolOptions::new()
            .max_connections(if kind == DbKind::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10));
        if kind == DbKind::Sqlite {
            // sqlx already sets its own default while establishing each connection, before
            // any statement; this makes kondate's one value the one in force.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    let ms = sqlite::BUSY_TIMEOUT.as_millis();
                    sqlx::Executor::execute(
                        conn,
                        AssertSqlSafe(format!("PRAGMA busy_timeout = {ms}")),
                    )
                    .await
                    .map(|_| ())
                })
            });
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect {
                url: display_url.clone(),
                source,
            })?;
        let db = Database {
            pool,
            kind,
            display_url,
            url,
        };
        Ok(db)
    }

    /// The dialect.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The URL with any password masked.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The pool, for code that needs a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Rewrite `?` placeholders for the dialect (`$1, $2…` on PostgreSQL). Statements passed
    /// here are kondate's own, with no `?` inside literals.
    pub fn sql(&self, sql: &str) -> String {
        if self.kind != DbKind::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    fn args(params: &[Value]) -> sqlx::any::AnyArguments {
        let mut args = sqlx::any::AnyArguments::default();
        for p in params {
            let r = match p {
                Value::Null => args.add(Option::<String>::None),
                Value::NullOf(ColumnType::Integer) => args.add(Option::<i64>::None),
                // sqlx 0.9's Any driver swaps the two float NULLs when it hands them to the
                // PostgreSQL driver (sqlx-core any/arguments.rs: `Null(Real)` → `f64`,
                // `Null(Double)` → `f32`): an f32 NULL arrives as a DOUBLE PRECISION NULL,
                // which is what a later f64 value must find (tested in tests/database.rs).
                Value::NullOf(ColumnType::Float) => args.add(Option::<f32>::None),
                Value::NullOf(ColumnType::Boolean) => args.add(Option::<bool>::None),
                Value::NullOf(_) => args.add(Option::<String>::None),
                Value::Int(v) => args.add(*v),
                Value::Float(v) => args.add(*v),
                Value::Bool(v) => args.add(*v),
                Value::Text(v) => args.add(v.clone()),
            };
            r.expect("binding plain values cannot fail");
        }
        args
    }

    /// Run a statement; returns the rows affected.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        run_execute(&self.pool, self.sql(sql), params).await
    }

    /// One connection of the pool for a session's worth of statements (MySQL named locks
    /// belong to a session), each committed by itself.
    pub async fn acquire(&self) -> Result<Conn, DbError> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|source| query_error("connect", source))?;
        Ok(Conn {
            conn,
            db: self.clone(),
        })
    }

    /// Start a transaction.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(|source| query_error("BEGIN", source))?;
        Ok(Tx {
            tx,
            db: self.clone(),
        })
    }

    /// Quote `name` as an identifier (table or column) for this dialect. The one place a
    /// name is put into SQL: it must be `[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters, so
    /// no quoting character can occur in it.
    pub fn ident(&self, name: &str) -> Result<String, DbError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(DbError::Identifier(name.to_string()));
        }
        Ok(match self.kind {
            DbKind::MySql => format!("`{name}`"),
            DbKind::Sqlite | DbKind::Postgres => format!("\"{name}\""),
        })
    }

    /// Identifiers quoted by [`Database::ident`] and joined with `, ` (a column list).
    pub fn ident_list<S: AsRef<str>>(&self, names: &[S]) -> Result<String, DbError> {
        Ok(names
            .iter()
            .map(|n| self.ident(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "))
    }

    /// The SQL type of a column of type `t`.
    pub fn column_sql_type(&self, t: ColumnType) -> &'static str {
        match (self.kind, t) {
            (_, ColumnType::Integer) => "BIGINT",
            (DbKind::Sqlite, ColumnType::Float) => "REAL",
            (_, ColumnType::Float) => "DOUBLE PRECISION",
            (DbKind::Sqlite, ColumnType::Boolean) => "INTEGER",
            (_, ColumnType::Boolean) => "BOOLEAN",
            // SQLite has no date type: ISO text sorts and compares correctly.
            (DbKind::Sqlite, ColumnType::Date) => "TEXT",
            (_, ColumnType::Date) => "DATE",
            (DbKind::MySql, ColumnType::Text) => "LONGTEXT",
            (DbKind::MySql, ColumnType::ShortText) => "VARCHAR(255)",
            (_, ColumnType::Text | ColumnType::ShortText) => "TEXT",
        }
    }

    /// What follows `CREATE TABLE name (…)`: on MySQL, a character set that holds every
    /// Unicode character and a binary collation, so keys compare exactly as elsewhere.
    pub fn table_options(&self) -> &'static str {
        match self.kind {
            DbKind::MySql => " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            DbKind::Sqlite | DbKind::Postgres => "",
        }
    }

    /// The placeholder for a value bound into a column of type `t`. PostgreSQL types every
    /// parameter, and a NULL or a date is bound as text, so it gets a cast there.
    pub fn placeholder(&self, t: ColumnType) -> &'static str {
        match (self.kind, t) {
            (DbKind::Postgres, ColumnType::Integer) => "CAST(? AS BIGINT)",
            (DbKind::Postgres, ColumnType::Float) => "CAST(? AS DOUBLE PRECISION)",
            (DbKind::Postgres, ColumnType::Boolean) => "CAST(? AS BOOLEAN)",
            (DbKind::Postgres, ColumnType::Date) => "CAST(? AS DATE)",
            _ => "?",
        }
    }

    /// Run `CREATE TABLE IF NOT EXISTS table …`. Two processes doing so at once can make
    /// PostgreSQL fail one of them on its catalog's unique index; if the table exists
    /// afterwards, that is success.
    pub async fn create_table_if_missing(&self, table: &str, sql: &str) -> Result<(), DbError> {
        match self.execute(sql, &[]).await {
            Ok(_) => Ok(()),
            Err(e) if self.table_exists(table).await? => {
                tracing::debug!(error = %e, table, "table created concurrently");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// An expression reading column `quoted` (from [`Database::ident`]) of type `t` as a
    /// value the driver decodes the same way everywhere: dates as ISO text, booleans as
    /// 0/1 integers.
    pub fn read_expr(&self, quoted: &str, t: ColumnType) -> String {
        match (self.kind, t) {
            (DbKind::Postgres, ColumnType::Date) => format!("CAST({quoted} AS TEXT)"),
            (DbKind::MySql, ColumnType::Date) => format!("CAST({quoted} AS CHAR)"),
            (DbKind::Postgres, ColumnType::Boolean) => {
                // PostgreSQL casts boolean to integer, not to bigint.
                format!("CAST(CAST({quoted} AS INTEGER) AS BIGINT)")
            }
            (DbKind::MySql, ColumnType::Boolean) => format!("CAST({quoted} AS SIGNED)"),
            _ => quoted.to_string(),
        }
    }

    /// Whether `table` exists (in the current schema or database).
    pub async fn table_exists(&self, table: &str) -> Result<bool, DbError> {
        let sql = match self.kind {
            DbKind::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
            DbKind::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = ?"
            }
            DbKind::MySql => {
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        let row = self
            .fetch_optional(sql, &[Value::Text(table.to_string())])
            .await?;
        Ok(row.map(|r| get_i64(&r, "n")).transpose()?.unwrap_or(0) > 0)
    }

    /// Run an `INSERT` into a table whose key column is `id`; returns the new id
    /// (`RETURNING` on SQLite and PostgreSQL, the connection's last insert id on MySQL,
    /// which has no `RETURNING`).
    pub async fn insert_returning_id(&self, sql: &str, params: &[Value]) -> Result<i64, DbError> {
        if self.kind != DbKind::MySql {
            let sql = format!("{} RETURNING id", self.sql(sql));
            let row = sqlx::query_with(AssertSqlSafe(sql.clone()), Self::args(params))
                .fetch_one(&self.pool)
                .await
                .map_err(|source| query_error(&sql, source))?;
            return sqlx::Row::try_get::<i64, _>(&row, 0)
                .map_err(|source| query_error(&sql, source));
        }
        let r = sqlx::query_with(AssertSqlSafe(sql.to_string()), Self::args(params))
            .execute(&self.pool)
            .await
            .map_err(|source| query_error(sql, source))?;
        r.last_insert_id()
            .ok_or_else(|| query_error(sql, sqlx::Error::RowNotFound))
    }

    /// Fetch every row.
    pub async fn fetch_all(&self, sql: &str, params: &[Value]) -> Result<Vec<AnyRow>, DbError> {
        run_fetch_all(&self.pool, self.sql(sql), params).await
    }

    /// Stream the rows of a query through `each`, one at a time (for results too large to
    /// hold); stops at the first error `each` returns.
    pub async fn for_each_row<E: From<DbError>>(
        &self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(AnyRow) -> Result<(), E>,
    ) -> Result<(), E> {
        use futures::TryStreamExt;
        let sql = self.sql(sql);
        let mut rows =
            sqlx::query_with(AssertSqlSafe(sql.clone()), Self::args(params)).fetch(&self.pool);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|source| E::from(query_error(&sql, source)))?
        {
            each(row)?;
        }
        Ok(())
    }

    /// Fetch at most one row.
    pub async fn fetch_optional(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<AnyRow>, DbError> {
        let sql = self.sql(sql);
        sqlx::query_with(AssertSqlSafe(sql.clone()), Self::args(params))
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| query_error(&sql, source))
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run_execute<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    sql: String,
    params: &[Value],
) -> Result<u64, DbError> {
    match sqlx::query_with(AssertSqlSafe(sql.clone()), Database::args(params))
        .execute(e)
        .await
    {
        Ok(r) => Ok(r.rows_affected()),
        Err(source) => Err(query_error(&sql, source)),
    }
}

async fn run_fetch_all<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    sql: String,
    params: &[Value],
) -> Result<Vec<AnyRow>, DbError> {
    match sqlx::query_with(AssertSqlSafe(sql.clone()), Database::args(params))
        .fetch_all(e)
        .await
    {
        Ok(rows) => Ok(rows),
        Err(source) => Err(query_error(&sql, source)),
    }
}

/// One row in PostgreSQL's `COPY` text format ([`kondate_core::pgcopy`]).
fn encode_copy_row(row: &[Value], out: &mut Vec<u8>) {
    use kondate_core::pgcopy;
    use std::io::Write;
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            Value::Null | Value::NullOf(_) => out.extend_from_slice(pgcopy::NULL),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Float(f) => pgcopy::push_float(out, *f),
            Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Value::Text(t) => pgcopy::push_text(out, t),
        }
    }
    out.push(b'\n');
}

/// Statements on one session — a transaction ([`Tx`]) or a single connection ([`Conn`]) —
/// for code that runs the same statements in either (MySQL, whose DDL commits by itself,
/// builds some things on one connection under a named lock where the other dialects use a
/// transaction).
pub trait Session: Send {
    /// The database, for its dialect functions.
    fn db(&self) -> &Database;
    /// Run a statement; returns the rows affected.
    fn execute(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> impl std::future::Future<Output = Result<u64, DbError>> + Send;
    /// Fetch every row.
    fn fetch_all(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> impl std::future::Future<Output = Result<Vec<AnyRow>, DbError>> + Send;
}

impl Session for Conn {
    fn db(&self) -> &Database {
        &self.db
    }
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        run_execute(&mut *self.conn, self.db.sql(sql), params).await
    }
    async fn fetch_all(&mut self, sql: &str, params: &[Value]) -> Result<Vec<AnyRow>, DbError> {
        run_fetch_all(&mut *self.conn, self.db.sql(sql), params).await
    }
}

impl Session for Tx {
    fn db(&self) -> &Database {
        &self.db
    }
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        run_execute(&mut *self.tx, self.db.sql(sql), params).await
    }
    async fn fetch_all(&mut self, sql: &str, params: &[Value]) -> Result<Vec<AnyRow>, DbError> {
        run_fetch_all(&mut *self.tx, self.db.sql(sql), params).await
    }
}

/// One pooled connection (a session), statements autocommitted.
pub struct Conn {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    db: Database,
}

/// A transaction; rolled back when dropped without [`Tx::commit`].
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    db: Database,
}

impl Tx {
    /// Make the transaction's changes permanent.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx
            .commit()
            .await
            .map_err(|source| query_error("COMMIT", source))
    }
}

fn query_error(sql: &str, source: sqlx::Error) -> DbError {
    let head: String = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    DbError::Query {
        context: format!("running `{head} …`"),
        source,
    }
}

/// Read a column that may be NULL, as the Any driver reports it on every database.
pub fn get_opt_i64(row: &AnyRow, col: &str) -> Option<i64> {
    sqlx::Row::try_get::<Option<i64>, _>(row, col)
        .ok()
        .flatten()
}

/// Read a text column that may be NULL.
pub fn get_opt_string(row: &AnyRow, col: &str) -> Option<String> {
    sqlx::Row::try_get::<Option<String>, _>(row, col)
        .ok()
        .flatten()
}

/// Read column `i` (by position) as a nullable integer.
pub fn opt_i64_at(row: &AnyRow, i: usize) -> Result<Option<i64>, DbError> {
    sqlx::Row::try_get::<Option<i64>, _>(row, i).map_err(|source| at_error(i, source))
}

/// Read column `i` (by position) as a nullable float.
pub fn opt_f64_at(row: &AnyRow, i: usize) -> Result<Option<f64>, DbError> {
    sqlx::Row::try_get::<Option<f64>, _>(row, i).map_err(|source| at_error(i, source))
}

/// Read column `i` (by position) as nullable text.
pub fn opt_string_at(row: &AnyRow, i: usize) -> Result<Option<String>, DbError> {
    sqlx::Row::try_get::<Option<String>, _>(row, i).map_err(|source| at_error(i, source))
}

fn at_error(i: usize, source: sqlx::Error) -> DbError {
    DbError::Query {
        context: format!("reading column {}", i + 1),
        source,
    }
}

/// Read a required integer column.
pub fn get_i64(row: &AnyRow, col: &str) -> Result<i64, DbError> {
    sqlx::Row::try_get::<i64, _>(row, col).map_err(|source| DbError::Query {
        context: format!("reading column `{col}`"),
        source,
    })
}

/// Read a required text column.
pub fn get_string(row: &AnyRow, col: &str) -> Result<String, DbError> {
    sqlx::Row::try_get::<String, _>(row, col).map_err(|source| DbError::Query {
        context: format!("reading column `{col}`"),
        source,
    })
}

/// A fresh, empty database (MySQL/MariaDB) or schema (PostgreSQL) named `kondate_t_TAG` on
/// the server `url` points at, for tests that need a state database of their own (gc sees
/// every blob in it). Returns the URL to connect to. SQLite URLs are returned unchanged.
pub async fn isolated_test_database(url: &str, tag: &str) -> Result<String, DbError> {
    let name = format!("kondate_t_{tag}");
    let db = Database::connect(url).await?;
    let quoted = db.ident(&name)?;
    let out = match db.kind() {
        DbKind::Sqlite => url.to_string(),
        DbKind::MySql => {
            db.execute(&format!("DROP DATABASE IF EXISTS {quoted}"), &[])
                .await?;
            db.execute(&format!("CREATE DATABASE {quoted}"), &[])
                .await?;
            let mut u = url::Url::parse(url).map_err(|_| DbError::Scheme(redact_url(url)))?;
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        DbKind::Postgres => {
            db.execute(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"), &[])
                .await?;
            db.execute(&format!("CREATE SCHEMA {quoted}"), &[]).await?;
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-c%20search_path%3D{name}")
        }
    };
    db.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_and_spell_values_as_postgres_reads_them() {
        let mut out = Vec::new();
        encode_copy_row(
            &[
                Value::Int(-3),
                Value::Text("a\tb\\c\nd\re 醤油".into()),
                Value::Float(0.1),
                Value::Float(f64::NEG_INFINITY),
                Value::Bool(true),
                Value::NullOf(ColumnType::Float),
                Value::Null,
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "-3\ta\\tb\\\\c\\nd\\re 醤油\t0.1\t-Infinity\tt\t\\N\t\\N\n"
        );
    }
}
