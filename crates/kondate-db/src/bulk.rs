//! The dialect pieces of bulk writes — upsert clauses, PostgreSQL's `COPY` stage, whether
//! DDL is transactional, index names after a rename, named locks — so that the crates above
//! ask for a capability and never branch on the dialect themselves.

use sqlx::AssertSqlSafe;

use crate::{Database, DbError, DbKind, Session, Value, get_opt_i64, get_string, query_error};

impl Database {
    /// The clause that turns `INSERT … VALUES …` into an upsert on the unique `key`,
    /// replacing the `update` columns with the incoming row's (`ON CONFLICT (key) DO UPDATE`
    /// on SQLite and PostgreSQL, `ON DUPLICATE KEY UPDATE` on MySQL, which needs no key).
    /// Every name is quoted by [`Database::ident`].
    pub fn upsert_clause<K: AsRef<str>, U: AsRef<str>>(
        &self,
        key: &[K],
        update: &[U],
    ) -> Result<String, DbError> {
        let quoted = update
            .iter()
            .map(|c| self.ident(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self.kind {
            DbKind::MySql => format!(
                " ON DUPLICATE KEY UPDATE {}",
                quoted
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DbKind::Sqlite | DbKind::Postgres => format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                self.ident_list(key)?,
                quoted
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Whether `CREATE`, `ALTER` and `DROP TABLE` take part in a transaction (false on
    /// MySQL, where each commits by itself: a swap there must be made atomic another way).
    pub fn transactional_ddl(&self) -> bool {
        self.kind != DbKind::MySql
    }

    /// The clause that makes a `SELECT … FOR UPDATE` pass over rows other transactions have
    /// locked — ` FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL/MariaDB (10.6+) — so
    /// that workers claiming rows from one queue each take a different row without waiting
    /// for one another; None on SQLite, whose one writer at a time makes a conditional
    /// `UPDATE` the claim.
    pub fn skip_locked(&self) -> Option<&'static str> {
        match self.kind {
            DbKind::Sqlite => None,
            DbKind::Postgres | DbKind::MySql => Some(" FOR UPDATE SKIP LOCKED"),
        }
    }

    /// Whether [`Database::copy_stage`] is available (PostgreSQL).
    pub fn has_copy_stage(&self) -> bool {
        self.kind == DbKind::Postgres
    }

    /// Statements that rename tables (`from`, `to`, unquoted), in order: on MySQL one
    /// `RENAME TABLE`, which renames them all in one atomic step (its only way, as its DDL
    /// is not transactional); elsewhere an `ALTER TABLE … RENAME TO` each, atomic within
    /// the caller's transaction.
    pub fn rename_tables(&self, renames: &[(&str, &str)]) -> Result<Vec<String>, DbError> {
        let pairs = renames
            .iter()
            .map(|(from, to)| Ok((self.ident(from)?, self.ident(to)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(match self.kind {
            DbKind::MySql => vec![format!(
                "RENAME TABLE {}",
                pairs
                    .iter()
                    .map(|(f, t)| format!("{f} TO {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            DbKind::Sqlite | DbKind::Postgres => pairs
                .iter()
                .map(|(f, t)| format!("ALTER TABLE {f} RENAME TO {t}"))
                .collect(),
        })
    }

    /// Statements to run after table `from` was renamed to `to`, giving its indexes the
    /// names a table called `to` has by default. PostgreSQL names a primary key's index
    /// after its table and index names are unique per schema, so without this the next
    /// table created as `from` could not have its own.
    pub fn after_rename_table(&self, from: &str, to: &str) -> Result<Vec<String>, DbError> {
        Ok(match self.kind {
            DbKind::Postgres => vec![format!(
                "ALTER INDEX {} RENAME TO {}",
                self.ident(&format!("{from}_pkey"))?,
                self.ident(&format!("{to}_pkey"))?
            )],
            DbKind::Sqlite | DbKind::MySql => Vec::new(),
        })
    }

    /// The tables (of the current schema or database) whose names start with `prefix`,
    /// read through `x` (inside its transaction).
    pub async fn tables_with_prefix(
        &self,
        x: &mut impl Session,
        prefix: &str,
    ) -> Result<Vec<String>, DbError> {
        let sql = match self.kind {
            DbKind::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
            DbKind::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS t FROM information_schema.tables \
                 WHERE table_schema = current_schema()"
            }
            DbKind::MySql => {
                "SELECT CAST(table_name AS CHAR) AS t FROM information_schema.tables \
                 WHERE table_schema = DATABASE()"
            }
        };
        // Filtered here rather than with LIKE, where `_` in a prefix would match any
        // character.
        let mut names = Vec::new();
        for r in x.fetch_all(sql, &[]).await? {
            let t = get_string(&r, "t")?;
            if t.starts_with(prefix) {
                names.push(t);
            }
        }
        Ok(names)
    }

    /// Take the named lock `name` for session `x`, waiting at most `secs` seconds; false if
    /// it was not granted in time. A lock held by a session that ends is released. MySQL's
    /// `GET_LOCK`, whose names are the server's: the lock taken is a hash of the current
    /// database's name and `name`, so that deployments sharing a server do not wait for
    /// each other; on the other dialects, whose DDL is transactional, a table's writers
    /// serialise on a row instead, and this is refused.
    pub async fn named_lock(
        &self,
        x: &mut impl Session,
        name: &str,
        secs: u32,
    ) -> Result<bool, DbError> {
        if self.kind != DbKind::MySql {
            return Err(DbError::Scheme(
                "named session locks are MySQL's; lock a row in a transaction instead".into(),
            ));
        }
        let got = x
            .fetch_all(
                &format!("SELECT GET_LOCK({NAMED_LOCK}, ?) AS got"),
                &[Value::from(name), Value::Int(secs.into())],
            )
            .await?;
        Ok(got.first().and_then(|r| get_opt_i64(r, "got")) == Some(1))
    }

    /// Release the named lock taken by [`Database::named_lock`].
    pub async fn release_named_lock(
        &self,
        x: &mut impl Session,
        name: &str,
    ) -> Result<(), DbError> {
        x.execute(
            &format!("SELECT RELEASE_LOCK({NAMED_LOCK})"),
            &[Value::from(name)],
        )
        .await?;
        Ok(())
    }

    /// PostgreSQL's bulk path: create the unlogged table `table` (quoted by
    /// [`Database::ident`]) with the column definitions `columns_sql` on a connection of its
    /// own, committed, into which [`CopyStage::copy`] loads rows with `COPY … FROM STDIN`
    /// (the server's own bulk load). For a staging table that a statement of the caller's
    /// transaction then reads and drops.
    pub async fn copy_stage(&self, table: &str, columns_sql: &str) -> Result<CopyStage, DbError> {
        use sqlx::Connection;
        if !self.has_copy_stage() {
            return Err(DbError::Scheme(
                "COPY staging is PostgreSQL's bulk path only".into(),
            ));
        }
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .map_err(|source| DbError::Connect {
                url: self.display_url.clone(),
                source,
            })?;
        let create = format!("CREATE UNLOGGED TABLE {table} ({columns_sql})");
        sqlx::Executor::execute(&mut conn, AssertSqlSafe(create.clone()))
            .await
            .map_err(|source| query_error(&create, source))?;
        Ok(CopyStage {
            conn,
            table: table.to_string(),
        })
    }
}

/// A staging table being loaded with `COPY` (see [`Database::copy_stage`]).
pub struct CopyStage {
    conn: sqlx::PgConnection,
    table: String,
}

impl CopyStage {
    /// `COPY` `rows` (values in column order) into the stage; returns the rows copied.
    pub async fn copy(&mut self, rows: &[Vec<Value>]) -> Result<u64, DbError> {
        let copy = format!("COPY {} FROM STDIN", self.table);
        let mut sink = self
            .conn
            .copy_in_raw(&copy)
            .await
            .map_err(|source| query_error(&copy, source))?;
        const CHUNK: usize = 1 << 20;
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        for row in rows {
            crate::encode_copy_row(row, &mut buf);
            if buf.len() >= CHUNK {
                sink.send(buf.as_slice())
                    .await
                    .map_err(|source| query_error(&copy, source))?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            sink.send(buf.as_slice())
                .await
                .map_err(|source| query_error(&copy, source))?;
        }
        sink.finish()
            .await
            .map_err(|source| query_error(&copy, source))
    }

    /// Close the stage's connection (the table stays until the caller drops it).
    pub async fn close(self) {
        use sqlx::Connection;
        let _ = self.conn.close().await;
    }
}

/// The server-wide lock name for the `?` bound to a named lock's name: the current database
/// and the name, hashed to the 64 characters `GET_LOCK` allows.
const NAMED_LOCK: &str = "SHA2(CONCAT(COALESCE(DATABASE(), ''), CHAR(0), ?), 256)";
