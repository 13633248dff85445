//! Label tables in the service database, and kondate's two bookkeeping tables beside them:
//! `kondate_label_sets` (one row per set: current revision, fingerprint, definition; its
//! row is the sync lock) and `kondate_label_revisions` (the history). They live in the
//! service database so that a revision commits in the same transaction as its rows.

use chrono::NaiveDate;
use kondate_db::{ColumnType, Database, DbError, Session, Tx, Value};
use sqlx::any::AnyRow;

use crate::LabelsError;
use crate::cells::LabelValue;
use crate::definition::{ColumnDef, LabelSet, LabelType};

/// Bound values per statement: well under every dialect's limit (SQLite 32766, PostgreSQL
/// and MySQL 65535).
const MAX_PARAMS: usize = 8_000;

/// The SQL column type of a label column.
pub fn column_type(col: &ColumnDef, is_key: bool) -> ColumnType {
    match col.ty {
        LabelType::Integer => ColumnType::Integer,
        LabelType::Float => ColumnType::Float,
        LabelType::Boolean => ColumnType::Boolean,
        LabelType::Date => ColumnType::Date,
        LabelType::Enum => ColumnType::ShortText,
        LabelType::String if is_key => ColumnType::ShortText,
        LabelType::String => ColumnType::Text,
    }
}

fn types(set: &LabelSet) -> Vec<ColumnType> {
    set.columns
        .iter()
        .map(|c| column_type(c, set.key.contains(&c.name)))
        .collect()
}

/// Create the bookkeeping tables if they are missing.
pub async fn ensure_meta(db: &Database) -> Result<(), DbError> {
    let text = db.column_sql_type(ColumnType::Text);
    let opts = db.table_options();
    db.create_table_if_missing(
        "kondate_label_sets",
        &format!(
            "CREATE TABLE IF NOT EXISTS kondate_label_sets (
                name VARCHAR(64) NOT NULL PRIMARY KEY,
                table_name VARCHAR(64) NOT NULL,
                revision BIGINT NOT NULL,
                fingerprint VARCHAR(64) NOT NULL,
                definition {text} NOT NULL,
                updated_at BIGINT NOT NULL
            ){opts}"
        ),
    )
    .await?;
    db.create_table_if_missing(
        "kondate_label_revisions",
        &format!(
            "CREATE TABLE IF NOT EXISTS kondate_label_revisions (
                label_set VARCHAR(64) NOT NULL,
                revision BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                actor VARCHAR(255) NOT NULL,
                fingerprint VARCHAR(64) NOT NULL,
                rows_total BIGINT NOT NULL,
                added BIGINT NOT NULL,
                changed BIGINT NOT NULL,
                removed BIGINT NOT NULL,
                skipped_invalid BIGINT NOT NULL,
                snapshot_key VARCHAR(512) NOT NULL,
                definition {text} NOT NULL,
                migration {text} NULL,
                PRIMARY KEY (label_set, revision)
            ){opts}"
        ),
    )
    .await?;
    Ok(())
}

/// The bookkeeping row of a label set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetState {
    pub revision: i64,
    pub fingerprint: String,
    pub definition: String,
    pub table_name: String,
}

const STATE_SQL: &str =
    "SELECT revision, fingerprint, definition, table_name FROM kondate_label_sets WHERE name = ?";

fn state_of(row: &AnyRow) -> Result<SetState, DbError> {
    Ok(SetState {
        revision: kondate_db::get_i64(row, "revision")?,
        fingerprint: kondate_db::get_string(row, "fingerprint")?,
        definition: kondate_db::get_string(row, "definition")?,
        table_name: kondate_db::get_string(row, "table_name")?,
    })
}

/// The state of `name`, without locking (`None` before its first sync).
pub async fn read_state(db: &Database, name: &str) -> Result<Option<SetState>, DbError> {
    if !db.table_exists("kondate_label_sets").await? {
        return Ok(None);
    }
    db.fetch_optional(STATE_SQL, &[Value::from(name)])
        .await?
        .map(|r| state_of(&r))
        .transpose()
}

/// Make sure the bookkeeping row of `set` exists (revision 0), outside any transaction, so
/// that two first syncs both find a row to lock. Returns the state it found, if any.
pub async fn ensure_set_row(
    db: &Database,
    set: &LabelSet,
    now: i64,
) -> Result<Option<SetState>, DbError> {
    if let Some(state) = read_state(db, &set.name).await? {
        return Ok(Some(state));
    }
    let inserted = db
        .execute(
            "INSERT INTO kondate_label_sets (name, table_name, revision, fingerprint, definition, \
             updated_at) VALUES (?, ?, 0, '', '', ?)",
            &[
                Value::from(set.name.as_str()),
                Value::from(set.table.as_str()),
                Value::Int(now),
            ],
        )
        .await;
    match inserted {
        Ok(_) => Ok(None),
        // Another sync inserted it first: the row exists, which is all we need.
        Err(e) => match read_state(db, &set.name).await? {
            Some(state) => {
                tracing::debug!(error = %e, "label set row created concurrently");
                Ok(Some(state))
            }
            None => Err(e),
        },
    }
}

/// Lock the bookkeeping row of `name` for the transaction (the second sync waits here) and
/// read it.
pub async fn lock_state(tx: &mut Tx, name: &str, now: i64) -> Result<SetState, LabelsError> {
    let busy = |e: DbError| {
        if e.is_lock_timeout() {
            LabelsError::Busy {
                name: name.to_string(),
            }
        } else {
            LabelsError::Db(e)
        }
    };
    tx.execute(
        "UPDATE kondate_label_sets SET updated_at = ? WHERE name = ?",
        &[Value::Int(now), Value::from(name)],
    )
    .await
    .map_err(busy)?;
    let rows = tx.fetch_all(STATE_SQL, &[Value::from(name)]).await?;
    let row = rows.first().ok_or_else(|| {
        LabelsError::Db(DbError::Query {
            context: format!("reading the state of label set `{name}`"),
            source: sqlx::Error::RowNotFound,
        })
    })?;
    Ok(state_of(row)?)
}

/// Create the label table of `set` unless it exists.
pub async fn ensure_table(db: &Database, set: &LabelSet) -> Result<(), DbError> {
    let sql = create_table_sql(db, set, &set.table)?.replacen(
        "CREATE TABLE ",
        "CREATE TABLE IF NOT EXISTS ",
        1,
    );
    db.create_table_if_missing(&set.table, &sql).await
}

/// `CREATE TABLE` for the label table of `set` (named `table`).
pub fn create_table_sql(db: &Database, set: &LabelSet, table: &str) -> Result<String, DbError> {
    let mut cols = Vec::new();
    for (c, t) in set.columns.iter().zip(types(set)) {
        let null = if set.key.contains(&c.name) {
            " NOT NULL"
        } else {
            ""
        };
        cols.push(format!(
            "{} {}{null}",
            db.ident(&c.name)?,
            db.column_sql_type(t)
        ));
    }
    let key = db.ident_list(&set.key)?;
    Ok(format!(
        "CREATE TABLE {} ({}, PRIMARY KEY ({key})){}",
        db.ident(table)?,
        cols.join(", "),
        db.table_options()
    ))
}

fn select_sql(db: &Database, set: &LabelSet) -> Result<String, DbError> {
    let mut exprs = Vec::new();
    for (i, (c, t)) in set.columns.iter().zip(types(set)).enumerate() {
        exprs.push(format!("{} AS c{i}", db.read_expr(&db.ident(&c.name)?, t)));
    }
    Ok(format!(
        "SELECT {} FROM {}",
        exprs.join(", "),
        db.ident(&set.table)?
    ))
}

fn decode(row: &AnyRow, set: &LabelSet) -> Result<Vec<LabelValue>, DbError> {
    use sqlx::Row;
    let err = |i: usize, source| DbError::Query {
        context: format!(
            "reading column `{}` of `{}`",
            set.columns[i].name, set.table
        ),
        source,
    };
    let mut out = Vec::with_capacity(set.columns.len());
    for (i, c) in set.columns.iter().enumerate() {
        let v = match c.ty {
            LabelType::Integer => row
                .try_get::<Option<i64>, _>(i)
                .map_err(|e| err(i, e))?
                .map_or(LabelValue::Null, LabelValue::Int),
            LabelType::Float => row
                .try_get::<Option<f64>, _>(i)
                .map_err(|e| err(i, e))?
                .map_or(LabelValue::Null, LabelValue::Float),
            LabelType::Boolean => row
                .try_get::<Option<i64>, _>(i)
                .map_err(|e| err(i, e))?
                .map_or(LabelValue::Null, |v| LabelValue::Bool(v != 0)),
            LabelType::Date => match row.try_get::<Option<String>, _>(i).map_err(|e| err(i, e))? {
                None => LabelValue::Null,
                Some(s) => LabelValue::Date(
                    NaiveDate::parse_from_str(s.get(..10).unwrap_or(&s), "%Y-%m-%d").map_err(
                        |e| err(i, sqlx::Error::Decode(format!("date `{s}`: {e}").into())),
                    )?,
                ),
            },
            LabelType::String | LabelType::Enum => row
                .try_get::<Option<String>, _>(i)
                .map_err(|e| err(i, e))?
                .map_or(LabelValue::Null, LabelValue::Text),
        };
        out.push(v);
    }
    Ok(out)
}

/// Every row of the label table, in the transaction.
pub async fn read_rows_tx(tx: &mut Tx, set: &LabelSet) -> Result<Vec<Vec<LabelValue>>, DbError> {
    let sql = select_sql(tx.db(), set)?;
    let rows = tx.fetch_all(&sql, &[]).await?;
    rows.iter().map(|r| decode(r, set)).collect()
}

/// The number of rows in the label table, in the transaction.
pub async fn count_tx(tx: &mut Tx, set: &LabelSet) -> Result<i64, DbError> {
    let sql = format!("SELECT COUNT(*) AS n FROM {}", tx.db().ident(&set.table)?);
    let rows = tx.fetch_all(&sql, &[]).await?;
    rows.first()
        .map(|r| kondate_db::get_i64(r, "n"))
        .transpose()
        .map(|n| n.unwrap_or(0))
}

/// Every row of the label table (empty when the table does not exist yet).
pub async fn read_rows(db: &Database, set: &LabelSet) -> Result<Vec<Vec<LabelValue>>, DbError> {
    if !db.table_exists(&set.table).await? {
        return Ok(Vec::new());
    }
    let rows = db.fetch_all(&select_sql(db, set)?, &[]).await?;
    rows.iter().map(|r| decode(r, set)).collect()
}

/// A label value as a bound parameter into a column of type `t` (which types its NULL).
pub fn to_param(v: &LabelValue, t: ColumnType) -> Value {
    match v {
        LabelValue::Null => Value::NullOf(t),
        LabelValue::Int(i) => Value::Int(*i),
        LabelValue::Float(f) => Value::Float(*f),
        LabelValue::Bool(b) => Value::Bool(*b),
        LabelValue::Date(d) => Value::Text(d.format("%Y-%m-%d").to_string()),
        LabelValue::Text(t) => Value::Text(t.clone()),
    }
}

/// Delete the rows whose keys are `keys` (each in key-column order); returns rows deleted.
pub async fn delete_keys(
    tx: &mut Tx,
    set: &LabelSet,
    keys: &[Vec<LabelValue>],
) -> Result<u64, DbError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let db = tx.db().clone();
    let all = types(set);
    let key_types: Vec<ColumnType> = set.key_indices().iter().map(|&i| all[i]).collect();
    let key_cols = set
        .key
        .iter()
        .map(|k| db.ident(k))
        .collect::<Result<Vec<_>, _>>()?;
    let tuple = key_types
        .iter()
        .map(|t| db.placeholder(*t))
        .collect::<Vec<_>>()
        .join(", ");
    let (lhs, one) = if key_cols.len() == 1 {
        (key_cols[0].clone(), tuple)
    } else {
        (format!("({})", key_cols.join(", ")), format!("({tuple})"))
    };
    let table = db.ident(&set.table)?;
    let mut deleted = 0;
    for chunk in keys.chunks((MAX_PARAMS / key_cols.len()).max(1)) {
        let list = vec![one.as_str(); chunk.len()].join(", ");
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|k| k.iter().zip(&key_types).map(|(v, t)| to_param(v, *t)))
            .collect();
        deleted += tx
            .execute(
                &format!("DELETE FROM {table} WHERE {lhs} IN ({list})"),
                &params,
            )
            .await?;
    }
    Ok(deleted)
}

/// Insert `rows` (values in definition order) into `table`; returns rows inserted.
pub async fn insert_rows<'a>(
    tx: &mut Tx,
    set: &LabelSet,
    table: &str,
    rows: impl ExactSizeIterator<Item = &'a [LabelValue]>,
) -> Result<u64, DbError> {
    let db = tx.db().clone();
    let cols = set
        .columns
        .iter()
        .map(|c| db.ident(&c.name))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let col_types = types(set);
    let one = format!(
        "({})",
        col_types
            .iter()
            .map(|t| db.placeholder(*t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let table = db.ident(table)?;
    let per = (MAX_PARAMS / set.columns.len()).max(1);
    let rows: Vec<&[LabelValue]> = rows.collect();
    let mut inserted = 0;
    for chunk in rows.chunks(per) {
        let list = vec![one.as_str(); chunk.len()].join(", ");
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|r| r.iter().zip(&col_types).map(|(v, t)| to_param(v, *t)))
            .collect();
        inserted += tx
            .execute(
                &format!("INSERT INTO {table} ({cols}) VALUES {list}"),
                &params,
            )
            .await?;
    }
    Ok(inserted)
}

/// The snapshot of revision `revision` of `name`, read in the transaction.
pub async fn snapshot_key_tx(
    tx: &mut Tx,
    name: &str,
    revision: i64,
) -> Result<Option<String>, DbError> {
    let rows = tx
        .fetch_all(
            "SELECT snapshot_key FROM kondate_label_revisions WHERE label_set = ? AND revision = ?",
            &[Value::from(name), Value::Int(revision)],
        )
        .await?;
    rows.first()
        .map(|r| kondate_db::get_string(r, "snapshot_key"))
        .transpose()
}

/// One revision in the history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Revision {
    pub revision: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub actor: String,
    pub fingerprint: String,
    pub rows_total: i64,
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
    pub skipped_invalid: i64,
    pub snapshot_key: String,
    /// What `--migrate` changed in the table, if anything.
    pub migration: Option<String>,
}

/// Record a revision (inside the sync's transaction).
pub async fn insert_revision(
    tx: &mut Tx,
    name: &str,
    r: &Revision,
    definition: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO kondate_label_revisions (label_set, revision, created_at, actor, \
         fingerprint, rows_total, added, changed, removed, skipped_invalid, snapshot_key, \
         definition, migration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Value::from(name),
            Value::Int(r.revision),
            Value::Int(r.created_at),
            Value::from(r.actor.as_str()),
            Value::from(r.fingerprint.as_str()),
            Value::Int(r.rows_total),
            Value::Int(r.added),
            Value::Int(r.changed),
            Value::Int(r.removed),
            Value::Int(r.skipped_invalid),
            Value::from(r.snapshot_key.as_str()),
            Value::from(definition),
            Value::from(r.migration.clone()),
        ],
    )
    .await?;
    Ok(())
}

/// The history of `name`, oldest first.
pub async fn revisions(db: &Database, name: &str) -> Result<Vec<Revision>, DbError> {
    if !db.table_exists("kondate_label_revisions").await? {
        return Ok(Vec::new());
    }
    let rows = db
        .fetch_all(
            "SELECT revision, created_at, actor, fingerprint, rows_total, added, changed, \
             removed, skipped_invalid, snapshot_key, migration FROM kondate_label_revisions \
             WHERE label_set = ? ORDER BY revision",
            &[Value::from(name)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Revision {
                revision: kondate_db::get_i64(r, "revision")?,
                created_at: kondate_db::get_i64(r, "created_at")?,
                actor: kondate_db::get_string(r, "actor")?,
                fingerprint: kondate_db::get_string(r, "fingerprint")?,
                rows_total: kondate_db::get_i64(r, "rows_total")?,
                added: kondate_db::get_i64(r, "added")?,
                changed: kondate_db::get_i64(r, "changed")?,
                removed: kondate_db::get_i64(r, "removed")?,
                skipped_invalid: kondate_db::get_i64(r, "skipped_invalid")?,
                snapshot_key: kondate_db::get_string(r, "snapshot_key")?,
                migration: kondate_db::get_opt_string(r, "migration"),
            })
        })
        .collect()
}
