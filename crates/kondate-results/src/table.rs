//! Result tables in the service database: creation, the bookkeeping row that notices a
//! changed declaration, and the bulk upsert.
//!
//! The upsert is one multi-row `INSERT … ON CONFLICT (key) DO UPDATE` (SQLite, PostgreSQL)
//! or `INSERT … ON DUPLICATE KEY UPDATE` (MySQL/MariaDB) per batch of rows, every batch of
//! a write in one transaction: the product sees all of a write or none of it, and writing
//! the same rows again leaves the same table (only `updated_at` moves).
//!
//! Rows arrive as [`RowBatches`] while the input is still being read, so a write of any
//! size holds a few batches in memory; a bad row further on (or a reader that fails) rolls
//! the transaction back, and nothing is written. The SQL that differs between dialects
//! comes from `kondate-db` ([`Database::upsert_clause`], [`Database::copy_stage`], …).

use kondate_db::{ColumnType, Database, DbError, Session, Tx, Value, get_opt_i64, get_string};
use serde::{Deserialize, Serialize};

use crate::ResultsError;
use crate::declaration::ResultTable;

/// Bound values per statement: well under every dialect's limit (SQLite 32766, PostgreSQL
/// and MySQL 65535). Measured on MariaDB with 1M rows (docs/BENCHMARKS.md, one run each):
/// 8,000 was fastest, 2,000 and 4,000 close behind, 20,000 and 60,000 clearly slower.
const MAX_PARAMS: usize = 8_000;

/// The bookkeeping table, in the same database as the result tables.
pub(crate) const META: &str = "kondate_result_tables";

/// Where exports to the warehouse record how far they copied (see [`crate::export`]);
/// `prunes` counts the writes that removed rows, which an incremental copy cannot see.
pub(crate) const EXPORTS: &str = "kondate_result_exports";

/// The log of writes: one row a write (name, time, model, run, rows).
pub(crate) const WRITES: &str = "kondate_result_writes";

/// Which model and run produced the rows of a write.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteMeta {
    pub model_name: Option<String>,
    pub model_version: Option<i64>,
    pub run_id: Option<String>,
}

/// How a write becomes visible to the product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    /// Upsert into the table in one transaction: the write appears at its commit.
    #[default]
    Upsert,
    /// Build the new table beside the old one and swap them: readers see the old table
    /// until the new one replaces it whole.
    Swap,
}

/// How to write.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriteOptions {
    pub publish: Publish,
    /// Remove the rows whose keys this write does not contain.
    pub prune: bool,
    /// Add the columns a changed declaration adds (nothing else can change).
    pub migrate: bool,
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub name: String,
    pub table: String,
    /// True when this write created the table.
    pub created: bool,
    pub publish: Publish,
    pub rows: u64,
    /// Rows removed because the write did not contain their keys (`prune`).
    pub pruned: u64,
}

/// The rows of a write, in batches, as a reader produces them (see
/// [`crate::input::read_files_batched`]); an `Err` from the reader ends the write, which
/// then leaves nothing behind.
pub struct RowBatches {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<Vec<Value>>, ResultsError>>,
}

/// Where a reader sends the batches of [`RowBatches::channel`].
pub type BatchSender = tokio::sync::mpsc::Sender<Result<Vec<Vec<Value>>, ResultsError>>;

impl RowBatches {
    /// A channel holding at most `depth` batches that the writer has not taken yet: the
    /// reader waits for the writer beyond that.
    pub fn channel(depth: usize) -> (BatchSender, RowBatches) {
        let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
        (tx, RowBatches { rx })
    }

    /// The next batch; `None` when the reader is done.
    pub async fn next(&mut self) -> Result<Option<Vec<Vec<Value>>>, ResultsError> {
        self.rx.recv().await.transpose()
    }
}

impl From<Vec<Vec<Value>>> for RowBatches {
    /// All the rows, as one batch.
    fn from(rows: Vec<Vec<Value>>) -> RowBatches {
        let (tx, batches) = RowBatches::channel(1);
        tx.try_send(Ok(rows)).expect("a new channel has room");
        batches
    }
}

impl From<&Vec<Vec<Value>>> for RowBatches {
    /// A copy of the rows, as one batch.
    fn from(rows: &Vec<Vec<Value>>) -> RowBatches {
        rows.clone().into()
    }
}

/// The SQL types of the declared columns, in order.
fn types(decl: &ResultTable) -> Vec<ColumnType> {
    decl.columns
        .iter()
        .map(|c| c.ty.column_type(decl.key.contains(&c.name)))
        .collect()
}

/// `CREATE TABLE` for the declaration (named `table`), with kondate's own columns.
pub fn create_table_sql(db: &Database, decl: &ResultTable, table: &str) -> Result<String, DbError> {
    let mut cols = Vec::new();
    for (c, t) in decl.columns.iter().zip(types(decl)) {
        let null = if c.nullable { "" } else { " NOT NULL" };
        cols.push(format!(
            "{} {}{null}",
            db.ident(&c.name)?,
            db.column_sql_type(t)
        ));
    }
    cols.push(format!(
        "model_name {} NULL",
        db.column_sql_type(ColumnType::ShortText)
    ));
    cols.push("model_version BIGINT NULL".into());
    cols.push(format!(
        "run_id {} NULL",
        db.column_sql_type(ColumnType::ShortText)
    ));
    cols.push("updated_at BIGINT NOT NULL".into());
    let key = db.ident_list(&decl.key)?;
    Ok(format!(
        "CREATE TABLE {} ({}, PRIMARY KEY ({key})){}",
        db.ident(table)?,
        cols.join(", "),
        db.table_options()
    ))
}

/// Create the bookkeeping tables if they are missing.
pub(crate) async fn ensure_meta(db: &Database) -> Result<(), DbError> {
    let text = db.column_sql_type(ColumnType::Text);
    db.create_table_if_missing(
        META,
        &format!(
            "CREATE TABLE IF NOT EXISTS {META} (name VARCHAR(64) NOT NULL PRIMARY KEY, \
             table_name VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) NOT NULL, \
             declaration {text} NOT NULL, created_at BIGINT NOT NULL){}",
            db.table_options()
        ),
    )
    .await?;
    db.create_table_if_missing(
        EXPORTS,
        &format!(
            "CREATE TABLE IF NOT EXISTS {EXPORTS} (name VARCHAR(64) NOT NULL PRIMARY KEY, \
             target VARCHAR(255) NOT NULL, fingerprint VARCHAR(64) NOT NULL, \
             through_ms BIGINT NULL, prunes BIGINT NOT NULL, prunes_seen BIGINT NOT NULL, \
             exported_at BIGINT NOT NULL, rows_exported BIGINT NOT NULL){}",
            db.table_options()
        ),
    )
    .await?;
    db.create_table_if_missing(
        WRITES,
        &format!(
            "CREATE TABLE IF NOT EXISTS {WRITES} (name VARCHAR(64) NOT NULL, \
             written_at BIGINT NOT NULL, model_name VARCHAR(255) NULL, model_version BIGINT NULL, \
             run_id VARCHAR(255) NULL, rows_written BIGINT NOT NULL, rows_pruned BIGINT NOT NULL){}",
            db.table_options()
        ),
    )
    .await
}

/// Record a write in the log (what the catalog shows: when, from which model version and
/// run, how many rows) and count one that removed rows for the next export — in the
/// write's transaction.
async fn record_write(
    x: &mut impl Session,
    decl: &ResultTable,
    (written, pruned): (u64, u64),
    meta: &WriteMeta,
    now_ms: i64,
) -> Result<(), DbError> {
    x.execute(
        &format!(
            "INSERT INTO {WRITES} (name, written_at, model_name, model_version, run_id, \
             rows_written, rows_pruned) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        &[
            Value::from(decl.name.as_str()),
            Value::Int(now_ms),
            meta.model_name
                .clone()
                .map_or(Value::NullOf(ColumnType::Text), Value::Text),
            meta.model_version
                .map_or(Value::NullOf(ColumnType::Integer), Value::Int),
            meta.run_id
                .clone()
                .map_or(Value::NullOf(ColumnType::Text), Value::Text),
            Value::Int(written as i64),
            Value::Int(pruned as i64),
        ],
    )
    .await?;
    if pruned > 0 {
        x.execute(
            &format!("UPDATE {EXPORTS} SET prunes = prunes + 1 WHERE name = ?"),
            &[Value::from(decl.name.as_str())],
        )
        .await?;
    }
    Ok(())
}

/// Create the table of `decl` if it does not exist yet; true when this call created it.
/// Refuses a table of that name that kondate did not create (a product table is never
/// taken over) and a declaration that changed since the table was created.
pub async fn ensure(
    db: &Database,
    decl: &ResultTable,
    migrate: bool,
    now_ms: i64,
) -> Result<bool, ResultsError> {
    ensure_meta(db).await?;
    let row = db
        .fetch_optional(
            &format!("SELECT table_name, fingerprint, declaration FROM {META} WHERE name = ?"),
            &[Value::from(decl.name.as_str())],
        )
        .await?;
    let fingerprint = decl.fingerprint();
    if let Some(r) = row {
        let (table, fp) = (
            get_string(&r, "table_name")?,
            get_string(&r, "fingerprint")?,
        );
        if fp == fingerprint && table == decl.table {
            return Ok(false);
        }
        let recorded: serde_json::Value =
            serde_json::from_str(&get_string(&r, "declaration")?).unwrap_or_default();
        let added = added_columns(decl, &table, &recorded).map_err(|why| {
            ResultsError::Changed(format!(
                "{}: the declaration changed since table `{table}` was created from it: {why}; \
                 kondate can only add nullable columns — restore the declaration, or drop the \
                 table and its row in {META} to start over",
                decl.path.display()
            ))
        })?;
        if !migrate {
            return Err(ResultsError::Changed(format!(
                "{}: the declaration adds column(s) {} to table `{table}`; write with --migrate \
                 (over HTTP: migrate=true) to add them (existing rows get NULL)",
                decl.path.display(),
                added.join(", ")
            )));
        }
        let mut tx = db.begin().await?;
        lock_row(&mut tx, decl).await?;
        for name in &added {
            let c = decl
                .columns
                .iter()
                .find(|c| &c.name == name)
                .expect("added");
            tx.execute(
                &format!(
                    "ALTER TABLE {} ADD COLUMN {} {} NULL",
                    db.ident(&decl.table)?,
                    db.ident(name)?,
                    db.column_sql_type(c.ty.column_type(false))
                ),
                &[],
            )
            .await?;
        }
        tx.execute(
            &format!("UPDATE {META} SET fingerprint = ?, declaration = ? WHERE name = ?"),
            &[
                Value::from(fingerprint),
                Value::from(serde_json::to_string(decl).unwrap_or_default()),
                Value::from(decl.name.as_str()),
            ],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(table = %decl.table, columns = ?added, "result table migrated");
        return Ok(false);
    }
    if db.table_exists(&decl.table).await? {
        return Err(ResultsError::Changed(format!(
            "{}: table `{}` already exists in the service database and was not created by \
             kondate; choose another `table` (kondate never writes into a table it does not own)",
            decl.path.display(),
            decl.table
        )));
    }
    let sql = create_table_sql(db, decl, &decl.table)?;
    db.create_table_if_missing(&decl.table, &sql).await?;
    let declared = serde_json::to_string(decl).unwrap_or_default();
    let inserted = db
        .execute(
            &format!(
                "INSERT INTO {META} (name, table_name, fingerprint, declaration, created_at) \
                 VALUES (?, ?, ?, ?, ?)"
            ),
            &[
                Value::from(decl.name.as_str()),
                Value::from(decl.table.as_str()),
                Value::from(fingerprint),
                Value::from(declared),
                Value::Int(now_ms),
            ],
        )
        .await;
    // Another writer may have created it at the same moment: same declaration, same table.
    if let Err(e) = inserted {
        tracing::debug!(error = %e, name = %decl.name, "result table registered concurrently");
    }
    Ok(true)
}

/// The columns `decl` adds to the recorded declaration, or why the change is more than
/// that (a new key, a removed column, a changed type, a renamed table, a new column that
/// may not be NULL).
fn added_columns(
    decl: &ResultTable,
    table: &str,
    recorded: &serde_json::Value,
) -> Result<Vec<String>, String> {
    if table != decl.table {
        return Err(format!(
            "`table` changed from `{table}` to `{}`",
            decl.table
        ));
    }
    let old_key: Vec<String> = recorded["key"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if old_key != decl.key {
        return Err(format!(
            "the key changed from {old_key:?} to {:?}",
            decl.key
        ));
    }
    let old: Vec<(String, String, bool)> = recorded["columns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["type"].as_str().unwrap_or_default().to_string(),
                        c["nullable"].as_bool().unwrap_or(true),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, ty, nullable) in &old {
        match decl.columns.iter().find(|c| &c.name == name) {
            None => return Err(format!("column `{name}` was removed")),
            Some(c) if c.ty.as_str() != ty => {
                return Err(format!(
                    "column `{name}` changed type from {ty} to {}",
                    c.ty.as_str()
                ));
            }
            Some(c) if c.nullable != *nullable => {
                return Err(format!("column `{name}` changed `nullable`"));
            }
            Some(_) => {}
        }
    }
    let mut added = Vec::new();
    for c in &decl.columns {
        if !old.iter().any(|(n, _, _)| n == &c.name) {
            if !c.nullable {
                return Err(format!(
                    "new column `{}` is nullable = false, but the rows already there have no \
                     value for it",
                    c.name
                ));
            }
            added.push(c.name.clone());
        }
    }
    Ok(added)
}

/// The conflict clause that turns the INSERT into an upsert: every column but the key
/// takes the incoming row's value.
fn conflict_clause(db: &Database, decl: &ResultTable) -> Result<String, DbError> {
    let updated: Vec<&str> = decl
        .columns
        .iter()
        .filter(|c| !decl.key.contains(&c.name))
        .map(|c| c.name.as_str())
        .chain(["model_name", "model_version", "run_id", "updated_at"])
        .collect();
    db.upsert_clause(&decl.key, &updated)
}

/// The pieces of the upsert statement for a declaration.
struct Upsert {
    cols: String,
    one: String,
    conflict: String,
    per: usize,
    /// PostgreSQL: writes of many rows `COPY` them into a staging table first.
    stage: Option<Stage>,
}

/// Below this many rows a write sends them in `VALUES` lists even on PostgreSQL: a `COPY`
/// stage costs a connection and two statements more.
const STAGE_MIN_ROWS: usize = 2_000;

/// PostgreSQL's bulk path: the rows are copied (`COPY … FROM STDIN`, the server's own bulk
/// load) into an unlogged staging table on a connection of their own, and one
/// `INSERT … SELECT … ON CONFLICT` in the write's transaction moves them into the table and
/// drops the stage. A crash can leave a stage behind; the next write of the table, holding
/// its lock, drops it.
struct Stage {
    db: Database,
    /// Staging tables of this result table start with it.
    prefix: String,
    /// The declared columns' definitions, for the stage.
    defs: String,
    /// The declared columns, quoted.
    declared: String,
}

impl Upsert {
    fn new(db: &Database, decl: &ResultTable) -> Result<Upsert, DbError> {
        let mut all_types = types(decl);
        all_types.extend([
            ColumnType::ShortText,
            ColumnType::Integer,
            ColumnType::ShortText,
            ColumnType::Integer,
        ]);
        let names: Vec<&str> = decl
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(["model_name", "model_version", "run_id", "updated_at"])
            .collect();
        let one = format!(
            "({})",
            all_types
                .iter()
                .map(|t| db.placeholder(*t))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let stage = if db.has_copy_stage() {
            use sha2::{Digest, Sha256};
            let mut defs = Vec::new();
            for (c, t) in decl.columns.iter().zip(types(decl)) {
                defs.push(format!("{} {}", db.ident(&c.name)?, db.column_sql_type(t)));
            }
            let declared: Vec<&str> = decl.columns.iter().map(|c| c.name.as_str()).collect();
            Some(Stage {
                db: db.clone(),
                prefix: format!(
                    "kondate_stage_{}_",
                    &hex::encode(Sha256::digest(decl.name.as_bytes()))[..12]
                ),
                defs: defs.join(", "),
                declared: db.ident_list(&declared)?,
            })
        } else {
            None
        };
        Ok(Upsert {
            cols: db.ident_list(&names)?,
            one,
            conflict: conflict_clause(db, decl)?,
            per: (MAX_PARAMS / all_types.len()).max(1),
            stage,
        })
    }

    /// PostgreSQL: upsert `first` and the rest of `rows` into `table` through a `COPY`
    /// stage (see [`Stage`]). Returns the rows written.
    async fn run_staged(
        &self,
        stage: &Stage,
        x: &mut impl Session,
        table: &str,
        first: Vec<Vec<Value>>,
        rows: &mut RowBatches,
        extra: &[Value],
    ) -> Result<u64, ResultsError> {
        let db = &stage.db;
        // Left by a killed write: no other write of this table runs (we hold its lock).
        for t in db.tables_with_prefix(x, &stage.prefix).await? {
            x.execute(&format!("DROP TABLE IF EXISTS {}", db.ident(&t)?), &[])
                .await?;
        }
        let name = db.ident(&format!("{}{:016x}", stage.prefix, rand::random::<u64>()))?;
        let mut copy = db.copy_stage(&name, &stage.defs).await?;
        let loaded = async {
            let mut n = first.len() as u64;
            copy.copy(&first).await?;
            drop(first);
            while let Some(batch) = rows.next().await? {
                n += batch.len() as u64;
                copy.copy(&batch).await?;
            }
            Ok::<u64, ResultsError>(n)
        }
        .await;
        copy.close().await;
        let n = match loaded {
            Ok(n) => n,
            Err(e) => {
                // A bad row further on, or the copy failed: the stage is of no use.
                let _ = db
                    .execute(&format!("DROP TABLE IF EXISTS {name}"), &[])
                    .await;
                return Err(e);
            }
        };
        // Crash tests stop the process here, with the rows staged and the table unchanged.
        kondate_core::failpoint("results.mid_write");
        // Into an empty table (a first write, a pruning swap's new table) no key can
        // conflict: the input's keys are unique, and we hold the table. A plain insert
        // skips the speculative insertion that makes `ON CONFLICT` twice as slow.
        let empty = is_empty(x, table).await?;
        let moved = x
            .execute(
                &format!(
                    "INSERT INTO {table} ({}) SELECT {}, CAST(? AS TEXT), CAST(? AS BIGINT), \
                     CAST(? AS TEXT), CAST(? AS BIGINT) FROM {name}{}",
                    self.cols,
                    stage.declared,
                    if empty { "" } else { self.conflict.as_str() }
                ),
                extra,
            )
            .await;
        let dropped = x.execute(&format!("DROP TABLE {name}"), &[]).await;
        if moved.is_err() {
            // The transaction is aborted: the stage goes with the next write's sweep.
            let _ = db
                .execute(&format!("DROP TABLE IF EXISTS {name}"), &[])
                .await;
        }
        moved?;
        dropped?;
        Ok(n)
    }

    /// Upsert every batch of `rows` into `table` (quoted), stamped with `meta` and
    /// `stamp`. Returns the rows written.
    async fn run(
        &self,
        x: &mut impl Session,
        table: &str,
        rows: &mut RowBatches,
        meta: &WriteMeta,
        stamp: i64,
    ) -> Result<u64, ResultsError> {
        let extra = [
            match &meta.model_name {
                Some(n) => Value::from(n.as_str()),
                None => Value::NullOf(ColumnType::ShortText),
            },
            Value::from(meta.model_version),
            match &meta.run_id {
                Some(r) => Value::from(r.as_str()),
                None => Value::NullOf(ColumnType::ShortText),
            },
            Value::Int(stamp),
        ];
        let Some(first) = rows.next().await? else {
            return Ok(0);
        };
        if let Some(stage) = &self.stage
            && first.len() >= STAGE_MIN_ROWS
        {
            return self.run_staged(stage, x, table, first, rows, &extra).await;
        }
        let mut n = 0;
        let mut batch = Some(first);
        while let Some(b) = batch {
            n += b.len() as u64;
            self.insert_values(x, table, &b, &extra).await?;
            drop(b);
            batch = rows.next().await?;
        }
        Ok(n)
    }

    /// One batch as multi-row `INSERT … VALUES` statements.
    async fn insert_values(
        &self,
        x: &mut impl Session,
        table: &str,
        rows: &[Vec<Value>],
        extra: &[Value],
    ) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        // As in `run_staged`: into an empty table no key can conflict.
        let conflict = if is_empty(x, table).await? {
            ""
        } else {
            self.conflict.as_str()
        };
        for chunk in rows.chunks(self.per) {
            let list = vec![self.one.as_str(); chunk.len()].join(", ");
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|r| r.iter().cloned().chain(extra.iter().cloned()))
                .collect();
            x.execute(
                &format!(
                    "INSERT INTO {table} ({}) VALUES {list}{conflict}",
                    self.cols
                ),
                &params,
            )
            .await?;
            // Crash tests stop the process here, with part of the write sent.
            kondate_core::failpoint("results.mid_write");
        }
        Ok(())
    }
}

/// Whether `table` (quoted) has no rows.
async fn is_empty(x: &mut impl Session, table: &str) -> Result<bool, DbError> {
    Ok(
        x.fetch_all(&format!("SELECT 1 AS one FROM {table} LIMIT 1"), &[])
            .await?
            .is_empty(),
    )
}

/// This write's `updated_at`: now, or later than every row already there, so that
/// `prune` (rows older than the write) can never remove a row the write just wrote.
async fn stamp(x: &mut impl Session, table: &str, now_ms: i64) -> Result<i64, DbError> {
    let rows = x
        .fetch_all(&format!("SELECT MAX(updated_at) AS m FROM {table}"), &[])
        .await?;
    let max = rows.first().and_then(|r| get_opt_i64(r, "m"));
    Ok(max.map_or(now_ms, |m| now_ms.max(m + 1)))
}

/// Upsert `rows` (values in declaration order, from [`crate::input`]) into the table of
/// `decl`, creating it first if needed; all or nothing, as `opts.publish` says. Writers of
/// one table are serialised (the upsert and the swap where DDL is transactional hold its
/// bookkeeping row; a swap on MySQL holds a named lock).
pub async fn write(
    db: &Database,
    decl: &ResultTable,
    rows: impl Into<RowBatches>,
    meta: &WriteMeta,
    opts: WriteOptions,
    now_ms: i64,
) -> Result<WriteReport, ResultsError> {
    let mut rows = rows.into();
    let created = ensure(db, decl, opts.migrate, now_ms).await?;
    let upsert = Upsert::new(db, decl)?;
    let table = db.ident(&decl.table)?;
    let (written, pruned) = match opts.publish {
        Publish::Swap if !db.transactional_ddl() => {
            swap_locked(db, decl, &upsert, &mut rows, meta, opts, now_ms).await?
        }
        Publish::Swap => {
            let mut tx = db.begin().await?;
            lock_row(&mut tx, decl).await?;
            let staging = staging_name(decl);
            let (written, pruned) =
                build_staging(&mut tx, db, decl, &upsert, &mut rows, meta, opts, now_ms).await?;
            let old = format!("{}__old", decl.table);
            record_write(&mut tx, decl, (written, pruned), meta, now_ms).await?;
            kondate_core::failpoint("results.before_swap");
            for sql in db.rename_tables(&[(&decl.table, &old), (&staging, &decl.table)])? {
                tx.execute(&sql, &[]).await?;
            }
            tx.execute(&format!("DROP TABLE {}", db.ident(&old)?), &[])
                .await?;
            for sql in db.after_rename_table(&staging, &decl.table)? {
                tx.execute(&sql, &[]).await?;
            }
            tx.commit().await?;
            (written, pruned)
        }
        Publish::Upsert => {
            // Where DDL commits by itself (MySQL), a swap holds the table's named lock, not
            // its row: an upsert committing between the swap's copy and its rename would be
            // lost with the old table. So an upsert holds the named lock too, on a session of
            // its own, until it has committed.
            let named = if db.transactional_ddl() {
                None
            } else {
                Some(NamedTableLock::take(db, decl).await?)
            };
            let outcome = async {
                let mut tx = db.begin().await?;
                lock_row(&mut tx, decl).await?;
                let stamp = stamp(&mut tx, &table, now_ms).await?;
                let written = upsert.run(&mut tx, &table, &mut rows, meta, stamp).await?;
                let pruned = if opts.prune {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE updated_at < ?"),
                        &[Value::Int(stamp)],
                    )
                    .await?
                } else {
                    0
                };
                record_write(&mut tx, decl, (written, pruned), meta, now_ms).await?;
                tx.commit().await?;
                Ok::<_, ResultsError>((written, pruned))
            }
            .await;
            // Released whatever happened: the session goes back to the pool.
            if let Some(named) = named {
                named.release(db).await;
            }
            outcome?
        }
    };
    Ok(WriteReport {
        name: decl.name.clone(),
        table: decl.table.clone(),
        created,
        publish: opts.publish,
        rows: written,
        pruned,
    })
}

/// Build a swap's staging table: a fresh copy of the table (none with `prune`) with the
/// write upserted into it. Returns the rows written and the rows the swap will drop
/// (`prune`).
#[allow(clippy::too_many_arguments)]
async fn build_staging(
    x: &mut impl Session,
    db: &Database,
    decl: &ResultTable,
    upsert: &Upsert,
    rows: &mut RowBatches,
    meta: &WriteMeta,
    opts: WriteOptions,
    now_ms: i64,
) -> Result<(u64, u64), ResultsError> {
    let table = db.ident(&decl.table)?;
    let staging = staging_name(decl);
    let staging_q = db.ident(&staging)?;
    let stamp = stamp(x, &table, now_ms).await?;
    x.execute(&format!("DROP TABLE IF EXISTS {staging_q}"), &[])
        .await?;
    x.execute(&create_table_sql(db, decl, &staging)?, &[])
        .await?;
    // The write's rows first, into the empty table (plain inserts, no conflicts to check).
    let written = upsert.run(x, &staging_q, rows, meta, stamp).await?;
    if opts.prune {
        return Ok((written, dropped(x, db, decl, &table, &staging_q).await?));
    }
    // Then the old rows the write does not replace, as they were. By name: a migrated table
    // has its added columns last, the new one in declared order.
    let cols = &upsert.cols;
    let on = key_match(db, decl)?;
    x.execute(
        &format!(
            "INSERT INTO {staging_q} ({cols}) SELECT {cols} FROM {table} o WHERE NOT EXISTS \
             (SELECT 1 FROM {staging_q} s WHERE {on})"
        ),
        &[],
    )
    .await?;
    Ok((written, 0))
}

/// `s.k = o.k AND …` over the key columns.
fn key_match(db: &Database, decl: &ResultTable) -> Result<String, DbError> {
    Ok(decl
        .key
        .iter()
        .map(|k| db.ident(k).map(|q| format!("s.{q} = o.{q}")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" AND "))
}

/// The staging table of a swap.
fn staging_name(decl: &ResultTable) -> String {
    format!("{}__new", decl.table)
}

/// Rows of `table` whose key is not in `staging` (what a pruning swap drops).
async fn dropped(
    x: &mut impl Session,
    db: &Database,
    decl: &ResultTable,
    table: &str,
    staging: &str,
) -> Result<u64, DbError> {
    let on = key_match(db, decl)?;
    let rows = x
        .fetch_all(
            &format!(
                "SELECT COUNT(*) AS n FROM {table} o WHERE NOT EXISTS \
                 (SELECT 1 FROM {staging} s WHERE {on})"
            ),
            &[],
        )
        .await?;
    Ok(rows.first().and_then(|r| get_opt_i64(r, "n")).unwrap_or(0) as u64)
}

/// Hold the table's bookkeeping row for the transaction: other writers of the same table
/// wait (PostgreSQL and MySQL lock the row; SQLite takes its write lock).
async fn lock_row(tx: &mut Tx, decl: &ResultTable) -> Result<(), DbError> {
    tx.execute(
        &format!("UPDATE {META} SET created_at = created_at WHERE name = ?"),
        &[Value::from(decl.name.as_str())],
    )
    .await?;
    Ok(())
}

/// A swap where DDL commits by itself (MySQL): on one session, under a named lock, the
/// staging table is built where no reader looks, then one rename statement swaps both
/// names in one atomic step. A crash leaves at most the staging table, which the next swap drops.
async fn swap_locked(
    db: &Database,
    decl: &ResultTable,
    upsert: &Upsert,
    rows: &mut RowBatches,
    meta: &WriteMeta,
    opts: WriteOptions,
    now_ms: i64,
) -> Result<(u64, u64), ResultsError> {
    let NamedTableLock {
        mut conn,
        name: lock,
    } = NamedTableLock::take(db, decl).await?;
    let staging = staging_name(decl);
    let staging_q = db.ident(&staging)?;
    let old = format!("{}__old", decl.table);
    let old_q = db.ident(&old)?;
    let outcome = async {
        conn.execute(&format!("DROP TABLE IF EXISTS {old_q}"), &[])
            .await?;
        let (written, pruned) =
            build_staging(&mut conn, db, decl, upsert, rows, meta, opts, now_ms).await?;
        // Counted before the swap: a crash after it would otherwise leave it uncounted (an
        // extra full export is harmless; a missed one keeps removed rows in the warehouse).
        record_write(&mut conn, decl, (written, pruned), meta, now_ms).await?;
        kondate_core::failpoint("results.before_swap");
        for sql in db.rename_tables(&[(&decl.table, &old), (&staging, &decl.table)])? {
            conn.execute(&sql, &[]).await?;
        }
        conn.execute(&format!("DROP TABLE {old_q}"), &[]).await?;
        Ok::<(u64, u64), ResultsError>((written, pruned))
    }
    .await;
    if outcome.is_err() {
        let _ = conn
            .execute(&format!("DROP TABLE IF EXISTS {staging_q}"), &[])
            .await;
    }
    NamedTableLock { conn, name: lock }.release(db).await;
    outcome
}

/// A result table's named lock (MySQL's `GET_LOCK`), held by a session of its own: writers
/// of the table take it where DDL commits by itself. The server releases it when the
/// session ends, so a killed writer's lock goes with its connection.
struct NamedTableLock {
    conn: kondate_db::Conn,
    name: String,
}

impl NamedTableLock {
    async fn take(db: &Database, decl: &ResultTable) -> Result<NamedTableLock, ResultsError> {
        use sha2::{Digest, Sha256};
        let mut conn = db.acquire().await?;
        // Lock names are at most 64 characters.
        let name = format!(
            "kondate_result_{}",
            &hex::encode(Sha256::digest(decl.name.as_bytes()))[..40]
        );
        if !db.named_lock(&mut conn, &name, 60).await? {
            return Err(ResultsError::Changed(format!(
                "another write to result table `{}` has been running for a minute; try again when it is done",
                decl.name
            )));
        }
        Ok(NamedTableLock { conn, name })
    }

    async fn release(mut self, db: &Database) {
        let _ = db.release_named_lock(&mut self.conn, &self.name).await;
    }
}
