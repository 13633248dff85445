//! kondate-db: one `Database` handle over SQLite, MySQL/MariaDB and PostgreSQL, and the
//! state database's schema.
//!
//! Dialect differences live here, in a few named functions ([`Database::sql`] for
//! placeholders, [`Database::insert_returning_id`] for generated keys, the DDL tokens in
//! [`state`]), never as `if mysql {…}` in the crates above.

pub mod state;

use std::time::Duration;

use kondate_core::config::redact_url;
use sqlx::any::{AnyPoolOptions, AnyRow};
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
    #[error("cannot create the folder for the SQLite file {path}: {source}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
    MySql,
}

/// A parameter value; the subset of types that behaves the same on all three databases.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
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
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A pooled connection to one database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    kind: DbKind,
    display_url: String,
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
        let pool = AnyPoolOptions::new()
            .max_connections(if kind == DbKind::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
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
        };
        if kind == DbKind::Sqlite {
            // WAL lets the CLI read while `kondate serve` writes; the mode is stored in the file.
            db.execute("PRAGMA journal_mode=WAL", &[]).await?;
        }
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
                Value::Int(v) => args.add(*v),
                Value::Float(v) => args.add(*v),
                Value::Text(v) => args.add(v.clone()),
            };
            r.expect("binding plain values cannot fail");
        }
        args
    }

    /// Run a statement; returns the rows affected.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let sql = self.sql(sql);
        let r = sqlx::query_with(AssertSqlSafe(sql.clone()), Self::args(params))
            .execute(&self.pool)
            .await
            .map_err(|source| query_error(&sql, source))?;
        Ok(r.rows_affected())
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
        let sql = self.sql(sql);
        sqlx::query_with(AssertSqlSafe(sql.clone()), Self::args(params))
            .fetch_all(&self.pool)
            .await
            .map_err(|source| query_error(&sql, source))
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
