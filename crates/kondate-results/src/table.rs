//! Result tables in the service database: creation, the bookkeeping row that notices a
//! changed declaration, and the bulk upsert.
//!
//! The upsert is one multi-row `INSERT … ON CONFLICT (key) DO UPDATE` (SQLite, PostgreSQL)
//! or `INSERT … ON DUPLICATE KEY UPDATE` (MySQL/MariaDB) per batch of rows, every batch of
//! a write in one transaction: the product sees all of a write or none of it, and writing
//! the same rows again leaves the same table (only `updated_at` moves).

use kondate_db::{ColumnType, Database, DbError, DbKind, Value, get_string};
use serde::Serialize;

use crate::ResultsError;
use crate::declaration::ResultTable;

/// Bound values per statement: well under every dialect's limit (SQLite 32766, PostgreSQL
/// and MySQL 65535).
const MAX_PARAMS: usize = 8_000;

/// The bookkeeping table, in the same database as the result tables.
const META: &str = "kondate_result_tables";

/// Which model and run produced the rows of a write.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteMeta {
    pub model_name: Option<String>,
    pub model_version: Option<i64>,
    pub run_id: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub name: String,
    pub table: String,
    /// True when this write created the table.
    pub created: bool,
    pub rows: u64,
}

/// The SQL types of the declared columns, in order.
fn types(decl: &ResultTable) -> Vec<ColumnType> {
    decl.columns
        .iter()
        .map(|c| c.ty.column_type(decl.key.contains(&c.name)))
        .collect()
}

/// `CREATE TABLE` for the declaration, with kondate's own columns.
pub fn create_table_sql(db: &Database, decl: &ResultTable) -> Result<String, DbError> {
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
        db.ident(&decl.table)?,
        cols.join(", "),
        db.table_options()
    ))
}

async fn ensure_meta(db: &Database) -> Result<(), DbError> {
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
    .await
}

/// Create the table of `decl` if it does not exist yet; true when this call created it.
/// Refuses a table of that name that kondate did not create (a product table is never
/// taken over) and a declaration that changed since the table was created.
pub async fn ensure(db: &Database, decl: &ResultTable, now_ms: i64) -> Result<bool, ResultsError> {
    ensure_meta(db).await?;
    let row = db
        .fetch_optional(
            &format!("SELECT table_name, fingerprint FROM {META} WHERE name = ?"),
            &[Value::from(decl.name.as_str())],
        )
        .await?;
    let fingerprint = decl.fingerprint();
    if let Some(r) = row {
        let (table, fp) = (
            get_string(&r, "table_name")?,
            get_string(&r, "fingerprint")?,
        );
        if fp != fingerprint || table != decl.table {
            return Err(ResultsError::Changed(format!(
                "{}: the declaration changed since table `{table}` was created from it (key, \
                 columns or types); kondate does not migrate result tables yet — restore the \
                 declaration, or drop the table and its row in {META} to start over",
                decl.path.display()
            )));
        }
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
    let sql = create_table_sql(db, decl)?;
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

/// The conflict clause that turns the INSERT into an upsert.
fn conflict_clause(db: &Database, decl: &ResultTable) -> Result<String, DbError> {
    let updated: Vec<String> = decl
        .columns
        .iter()
        .filter(|c| !decl.key.contains(&c.name))
        .map(|c| c.name.clone())
        .chain(
            ["model_name", "model_version", "run_id", "updated_at"]
                .iter()
                .map(|s| s.to_string()),
        )
        .collect();
    let quoted = updated
        .iter()
        .map(|c| db.ident(c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match db.kind() {
        DbKind::MySql => format!(
            " ON DUPLICATE KEY UPDATE {}",
            quoted
                .iter()
                .map(|c| format!("{c} = VALUES({c})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DbKind::Sqlite | DbKind::Postgres => {
            let key = db.ident_list(&decl.key)?;
            format!(
                " ON CONFLICT ({key}) DO UPDATE SET {}",
                quoted
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    })
}

/// Upsert `rows` (values in declaration order, from [`crate::input`]) into the table of
/// `decl`, creating it first if needed; all or nothing.
pub async fn write(
    db: &Database,
    decl: &ResultTable,
    rows: &[Vec<Value>],
    meta: &WriteMeta,
    now_ms: i64,
) -> Result<WriteReport, ResultsError> {
    let created = ensure(db, decl, now_ms).await?;
    let col_types = types(decl);
    let mut all_types = col_types.clone();
    all_types.extend([
        ColumnType::ShortText,
        ColumnType::Integer,
        ColumnType::ShortText,
        ColumnType::Integer,
    ]);
    let cols = decl
        .columns
        .iter()
        .map(|c| db.ident(&c.name))
        .chain(
            ["model_name", "model_version", "run_id", "updated_at"]
                .iter()
                .map(|c| db.ident(c)),
        )
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let one = format!(
        "({})",
        all_types
            .iter()
            .map(|t| db.placeholder(*t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let table = db.ident(&decl.table)?;
    let conflict = conflict_clause(db, decl)?;
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
        Value::Int(now_ms),
    ];
    let per = (MAX_PARAMS / all_types.len()).max(1);
    let mut tx = db.begin().await?;
    for chunk in rows.chunks(per) {
        let list = vec![one.as_str(); chunk.len()].join(", ");
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|r| r.iter().cloned().chain(extra.iter().cloned()))
            .collect();
        tx.execute(
            &format!("INSERT INTO {table} ({cols}) VALUES {list}{conflict}"),
            &params,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(WriteReport {
        name: decl.name.clone(),
        table: decl.table.clone(),
        created,
        rows: rows.len() as u64,
    })
}
