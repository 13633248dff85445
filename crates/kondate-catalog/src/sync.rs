//! Keeping the catalog: each sync of a source compares what the source holds now with what
//! the catalog holds, in one transaction writes the difference and records each change
//! (`appeared`, `unlinked`, `relinked`, `type`, `nullable`, `default`, `comment`,
//! `definition`) with the sync that saw it. A failed import records the failed sync and
//! changes nothing else.

use std::collections::BTreeMap;
use std::future::Future;

use kondate_db::{Database, Session, Value, opt_i64_at, opt_string_at};
use serde::Serialize;

use crate::docs::Target;
use crate::{CatalogError, ImportedTable};

/// The catalog in the state database.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) db: Database,
}

/// What one sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub sync_id: i64,
    pub source: String,
    pub tables: usize,
    pub changes: Vec<Change>,
}

/// One change a sync saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub sync_id: i64,
    /// `schema.table`, `schema.table.column`, or `schema`.
    pub object: String,
    pub change: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub at_ms: i64,
}

/// A sync as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRecord {
    pub id: i64,
    pub source: String,
    /// `running`, `ok` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub tables: i64,
    pub changes: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// A table or view as the catalog knows it, with its columns (those gone included, marked)
/// and its history.
#[derive(Debug, Clone, Serialize)]
pub struct TablePage {
    pub source: String,
    pub schema: String,
    pub name: String,
    pub kind: String,
    /// False once a sync no longer found it.
    pub linked: bool,
    pub comment: Option<String>,
    pub row_count: Option<i64>,
    pub definition: Option<String>,
    /// A view's plan as the engine explains it, from the last sync.
    pub plan: Option<String>,
    /// The Markdown description (None: never described).
    pub description: Option<crate::Doc>,
    pub columns: Vec<ColumnPage>,
    pub history: Vec<Change>,
    /// What kondate knows of it when kondate writes it ([`crate::written`]): filled by
    /// [`crate::written::Context::about`], None otherwise.
    pub kondate: Option<crate::Written>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnPage {
    pub name: String,
    pub data_type: Option<String>,
    pub nullable: Option<bool>,
    pub default: Option<String>,
    pub position: Option<i64>,
    pub comment: Option<String>,
    pub linked: bool,
    pub description: Option<crate::Doc>,
}

/// A schema of a source, or a table or view of a schema, as their pages list them.
#[derive(Debug, Clone, Serialize)]
pub struct Child {
    pub target: Target,
    pub name: String,
    pub kind: String,
    pub linked: bool,
    pub row_count: Option<i64>,
    pub comment: Option<String>,
}

/// An object's key: (schema, table, column), "" for the levels above.
type Key = (String, String, String);

/// An object's attributes, as imported or as stored.
#[derive(Debug, Clone, PartialEq, Default)]
struct Attrs {
    kind: String,
    data_type: Option<String>,
    nullable: Option<bool>,
    default: Option<String>,
    position: Option<i64>,
    comment: Option<String>,
    row_count: Option<i64>,
    definition: Option<String>,
    /// Kept current, never history: a plan follows the statistics.
    plan: Option<String>,
}

#[derive(Debug)]
struct Stored {
    attrs: Attrs,
    linked: bool,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn display(key: &Key) -> String {
    [&key.0, &key.1, &key.2]
        .into_iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(".")
}

/// The objects `tables` make: each schema, table or view, and column.
fn flatten(tables: &[ImportedTable]) -> BTreeMap<Key, Attrs> {
    let mut out = BTreeMap::new();
    for t in tables {
        out.entry((t.schema.clone(), String::new(), String::new()))
            .or_insert_with(|| Attrs {
                kind: "schema".into(),
                ..Attrs::default()
            });
        out.insert(
            (t.schema.clone(), t.name.clone(), String::new()),
            Attrs {
                kind: t.kind.as_str().into(),
                comment: t.comment.clone(),
                row_count: t.row_count,
                definition: t.definition.clone(),
                plan: t.plan.clone(),
                ..Attrs::default()
            },
        );
        for c in &t.columns {
            out.insert(
                (t.schema.clone(), t.name.clone(), c.name.clone()),
                Attrs {
                    kind: "column".into(),
                    data_type: Some(c.data_type.clone()),
                    nullable: Some(c.nullable),
                    default: c.default.clone(),
                    position: Some(c.position),
                    comment: c.comment.clone(),
                    ..Attrs::default()
                },
            );
        }
    }
    out
}

/// The changes between `before` and `after` of one object that are history (a row count
/// or a column's position moving is not).
fn differences(
    before: &Attrs,
    after: &Attrs,
) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut field = |name, b: &Option<String>, a: &Option<String>| {
        if b != a {
            out.push((name, b.clone(), a.clone()));
        }
    };
    field(
        "kind",
        &Some(before.kind.clone()),
        &Some(after.kind.clone()),
    );
    field("type", &before.data_type, &after.data_type);
    let flag = |v: Option<bool>| v.map(|n| if n { "NULL" } else { "NOT NULL" }.to_string());
    field("nullable", &flag(before.nullable), &flag(after.nullable));
    field("default", &before.default, &after.default);
    field("comment", &before.comment, &after.comment);
    field("definition", &before.definition, &after.definition);
    out
}

const OBJECT_COLUMNS: &str = "schema_name, table_name, column_name, kind, data_type, nullable, \
     default_value, position, db_comment, row_count, definition, linked, plan";

fn read_object(row: &kondate_db::AnyRow) -> Result<(Key, Stored), CatalogError> {
    let text = |i| opt_string_at(row, i);
    let int = |i| opt_i64_at(row, i);
    let key = (
        text(0)?.unwrap_or_default(),
        text(1)?.unwrap_or_default(),
        text(2)?.unwrap_or_default(),
    );
    let attrs = Attrs {
        kind: text(3)?.unwrap_or_default(),
        data_type: text(4)?,
        nullable: int(5)?.map(|n| n != 0),
        default: text(6)?,
        position: int(7)?,
        comment: text(8)?,
        row_count: int(9)?,
        definition: text(10)?,
        plan: text(12)?,
    };
    Ok((
        key,
        Stored {
            attrs,
            linked: int(11)? == Some(1),
        },
    ))
}

/// Rows a multi-row INSERT carries: 500 rows of up to 16 values stay far under every
/// dialect's limit of bound values (SQLite 32,766; PostgreSQL and MySQL 65,535), and a
/// first sync of 150,000 columns is 300 statements, not 150,000.
const ROWS_PER_INSERT: usize = 500;

/// `head` (`INSERT INTO t (…) VALUES `) once per [`ROWS_PER_INSERT`] of `rows`, each row's
/// values bound as parameters.
async fn insert_rows(
    tx: &mut kondate_db::Tx,
    head: &str,
    rows: Vec<Vec<Value>>,
) -> Result<(), CatalogError> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    let one = format!("({})", vec!["?"; width].join(", "));
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!("{head}{}", vec![one.as_str(); chunk.len()].join(", "));
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        tx.execute(&sql, &params).await?;
    }
    Ok(())
}

fn opt_text(v: &Option<String>) -> Value {
    v.clone()
        .map_or(Value::NullOf(kondate_db::ColumnType::Text), Value::Text)
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::NullOf(kondate_db::ColumnType::Integer), Value::Int)
}

fn attr_params(a: &Attrs) -> Vec<Value> {
    vec![
        Value::Text(a.kind.clone()),
        opt_text(&a.data_type),
        opt_int(a.nullable.map(i64::from)),
        opt_text(&a.default),
        opt_int(a.position),
        opt_text(&a.comment),
        opt_int(a.row_count),
        opt_text(&a.definition),
        opt_text(&a.plan),
    ]
}

impl Catalog {
    pub fn new(db: Database) -> Catalog {
        Catalog { db }
    }

    /// Sync `source` from what `import` reads. The sync is recorded as running while it
    /// reads; a failed import is recorded with its error and leaves the catalog as it was.
    pub async fn sync<F>(&self, source: &str, import: F) -> Result<SyncReport, CatalogError>
    where
        F: Future<Output = Result<Vec<ImportedTable>, CatalogError>>,
    {
        self.sync_scoped(source, None, import).await
    }

    /// Sync only the tables `only` names (schema, table; an empty schema: that table in
    /// any schema) of `source`: what kondate does right after it writes a table. A table of
    /// them that is gone is unlinked; nothing else of the source is touched.
    pub async fn sync_tables<F>(
        &self,
        source: &str,
        only: &[(String, String)],
        import: F,
    ) -> Result<SyncReport, CatalogError>
    where
        F: Future<Output = Result<Vec<ImportedTable>, CatalogError>>,
    {
        let only: std::collections::BTreeSet<(String, String)> = only.iter().cloned().collect();
        self.sync_scoped(source, Some(&only), import).await
    }

    async fn sync_scoped<F>(
        &self,
        source: &str,
        only: Option<&std::collections::BTreeSet<(String, String)>>,
        import: F,
    ) -> Result<SyncReport, CatalogError>
    where
        F: Future<Output = Result<Vec<ImportedTable>, CatalogError>>,
    {
        let sync_id = self
            .db
            .insert_returning_id(
                "INSERT INTO kondate_catalog_syncs (source, status, started_at) VALUES (?, 'running', ?)",
                &[Value::Text(source.into()), Value::Int(now_ms())],
            )
            .await?;
        let result = match import.await {
            Ok(mut tables) => {
                if let Some(only) = only {
                    tables.retain(|t| {
                        only.iter()
                            .any(|(s, n)| (s.is_empty() || *s == t.schema) && *n == t.name)
                    });
                }
                self.apply(sync_id, source, &tables, only).await
            }
            Err(e) => Err(e),
        };
        let (status, error, tables, changes) = match &result {
            Ok(r) => ("ok", None, r.tables as i64, r.changes.len() as i64),
            Err(e) => ("failed", Some(e.to_string()), 0, 0),
        };
        self.db
            .execute(
                "UPDATE kondate_catalog_syncs SET status = ?, error = ?, tables_seen = ?, \
                 changes = ?, finished_at = ? WHERE id = ?",
                &[
                    Value::Text(status.into()),
                    opt_text(&error),
                    Value::Int(tables),
                    Value::Int(changes),
                    Value::Int(now_ms()),
                    Value::Int(sync_id),
                ],
            )
            .await?;
        result
    }

    async fn apply(
        &self,
        sync_id: i64,
        source: &str,
        tables: &[ImportedTable],
        only: Option<&std::collections::BTreeSet<(String, String)>>,
    ) -> Result<SyncReport, CatalogError> {
        // In a scoped sync: the objects of the tables named, and their schemas (never
        // unlinked by it: they hold other tables).
        let in_scope = |k: &Key| match only {
            None => true,
            Some(only) => only
                .iter()
                .any(|(s, t)| (s.is_empty() || *s == k.0) && (k.1.is_empty() || *t == k.1)),
        };
        let now = now_ms();
        let seen = flatten(tables);
        let mut tx = self.db.begin().await?;
        let mut stored: BTreeMap<Key, Stored> = BTreeMap::new();
        for row in tx
            .fetch_all(
                &format!("SELECT {OBJECT_COLUMNS} FROM kondate_catalog_objects WHERE source = ?"),
                &[Value::Text(source.into())],
            )
            .await?
        {
            let (key, s) = read_object(&row)?;
            if in_scope(&key) {
                stored.insert(key, s);
            }
        }
        let mut changes: Vec<(Key, &'static str, Option<String>, Option<String>)> = Vec::new();
        let mut new_rows: Vec<Vec<Value>> = Vec::new();
        for (key, attrs) in &seen {
            let mut params = attr_params(attrs);
            match stored.get(key) {
                None => {
                    let mut p = vec![
                        Value::Text(source.into()),
                        Value::Text(key.0.clone()),
                        Value::Text(key.1.clone()),
                        Value::Text(key.2.clone()),
                    ];
                    p.append(&mut params);
                    p.extend([Value::Int(1), Value::Int(sync_id), Value::Int(sync_id)]);
                    new_rows.push(p);
                    // A column of a table that appears with it is not a change of its own:
                    // the table's `appeared` says it (a first sync of 150,000 columns
                    // records 5,000 changes, not 155,000).
                    let table_is_new = !key.2.is_empty()
                        && !stored.contains_key(&(key.0.clone(), key.1.clone(), String::new()));
                    if !table_is_new {
                        changes.push((key.clone(), "appeared", None, attrs.data_type.clone()));
                    }
                }
                Some(old) => {
                    // Unchanged (row count and position too): only its last_sync moves,
                    // with every other's, below.
                    if old.linked && old.attrs == *attrs {
                        continue;
                    }
                    let differs = differences(&old.attrs, attrs);
                    if !old.linked {
                        changes.push((key.clone(), "relinked", None, None));
                    }
                    for (what, before, after) in differs {
                        changes.push((key.clone(), what, before, after));
                    }
                    params.extend([
                        Value::Int(sync_id),
                        Value::Text(source.into()),
                        Value::Text(key.0.clone()),
                        Value::Text(key.1.clone()),
                        Value::Text(key.2.clone()),
                    ]);
                    tx.execute(
                        "UPDATE kondate_catalog_objects SET kind = ?, data_type = ?, nullable = ?, \
                         default_value = ?, position = ?, db_comment = ?, row_count = ?, \
                         definition = ?, plan = ?, linked = 1, last_sync = ? \
                         WHERE source = ? AND schema_name = ? AND table_name = ? AND column_name = ?",
                        &params,
                    )
                    .await?;
                }
            }
        }
        insert_rows(
            &mut tx,
            "INSERT INTO kondate_catalog_objects (source, schema_name, table_name, column_name, \
             kind, data_type, nullable, default_value, position, db_comment, row_count, \
             definition, plan, linked, first_sync, last_sync) VALUES ",
            new_rows,
        )
        .await?;
        for (key, old) in &stored {
            let schema_row = key.1.is_empty();
            if old.linked && !seen.contains_key(key) && !(only.is_some() && schema_row) {
                tx.execute(
                    "UPDATE kondate_catalog_objects SET linked = 0 \
                     WHERE source = ? AND schema_name = ? AND table_name = ? AND column_name = ?",
                    &[
                        Value::Text(source.into()),
                        Value::Text(key.0.clone()),
                        Value::Text(key.1.clone()),
                        Value::Text(key.2.clone()),
                    ],
                )
                .await?;
                changes.push((key.clone(), "unlinked", old.attrs.data_type.clone(), None));
            }
        }
        // Everything still there was seen by this sync (by a scoped one, only what it read).
        if only.is_none() {
            tx.execute(
                "UPDATE kondate_catalog_objects SET last_sync = ? WHERE source = ? AND linked = 1",
                &[Value::Int(sync_id), Value::Text(source.into())],
            )
            .await?;
        }
        if !changes.is_empty() {
            let mut ids: BTreeMap<Key, i64> = BTreeMap::new();
            for row in tx
                .fetch_all(
                    "SELECT schema_name, table_name, column_name, id FROM kondate_catalog_objects \
                     WHERE source = ?",
                    &[Value::Text(source.into())],
                )
                .await?
            {
                let text = |i| opt_string_at(&row, i).map(Option::unwrap_or_default);
                ids.insert(
                    (text(0)?, text(1)?, text(2)?),
                    opt_i64_at(&row, 3)?.unwrap_or(0),
                );
            }
            let rows = changes
                .iter()
                .map(|(key, what, before, after)| {
                    vec![
                        Value::Int(sync_id),
                        Value::Int(ids.get(key).copied().unwrap_or(0)),
                        Value::Text((*what).into()),
                        opt_text(before),
                        opt_text(after),
                        Value::Int(now),
                    ]
                })
                .collect();
            insert_rows(
                &mut tx,
                "INSERT INTO kondate_catalog_changes (sync_id, object_id, what, before_value, \
                 after_value, created_at) VALUES ",
                rows,
            )
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            source,
            tables = tables.len(),
            changes = changes.len(),
            "catalog sync"
        );
        Ok(SyncReport {
            sync_id,
            source: source.to_string(),
            tables: tables.len(),
            changes: changes
                .into_iter()
                .map(|(key, what, before, after)| Change {
                    sync_id,
                    object: display(&key),
                    change: what.to_string(),
                    before,
                    after,
                    at_ms: now,
                })
                .collect(),
        })
    }

    /// The syncs recorded, newest first (of one source, or all).
    pub async fn syncs(&self, source: Option<&str>) -> Result<Vec<SyncRecord>, CatalogError> {
        let (filter, params) = match source {
            Some(s) => ("WHERE source = ?", vec![Value::Text(s.into())]),
            None => ("", vec![]),
        };
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT id, source, status, error, tables_seen, changes, started_at, \
                     finished_at FROM kondate_catalog_syncs {filter} ORDER BY id DESC"
                ),
                &params,
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SyncRecord {
                    id: opt_i64_at(r, 0)?.unwrap_or(0),
                    source: opt_string_at(r, 1)?.unwrap_or_default(),
                    status: opt_string_at(r, 2)?.unwrap_or_default(),
                    error: opt_string_at(r, 3)?,
                    tables: opt_i64_at(r, 4)?.unwrap_or(0),
                    changes: opt_i64_at(r, 5)?.unwrap_or(0),
                    started_at_ms: opt_i64_at(r, 6)?.unwrap_or(0),
                    finished_at_ms: opt_i64_at(r, 7)?,
                })
            })
            .collect()
    }

    /// The tables and views `name` fits: `table`, `schema.table` or `source.schema.table`
    /// (linked ones first).
    async fn find_tables(&self, name: &str) -> Result<Vec<(String, String, String)>, CatalogError> {
        let parts: Vec<&str> = name.split('.').collect();
        let (cond, params): (&str, Vec<Value>) = match parts.as_slice() {
            [t] => ("table_name = ?", vec![Value::Text((*t).into())]),
            [s, t] => (
                "schema_name = ? AND table_name = ?",
                vec![Value::Text((*s).into()), Value::Text((*t).into())],
            ),
            [src, s, t] => (
                "source = ? AND schema_name = ? AND table_name = ?",
                vec![
                    Value::Text((*src).into()),
                    Value::Text((*s).into()),
                    Value::Text((*t).into()),
                ],
            ),
            _ => return Ok(Vec::new()),
        };
        let found = self
            .db
            .fetch_all(
                &format!(
                    "SELECT source, schema_name, table_name FROM kondate_catalog_objects \
                     WHERE {cond} AND column_name = '' AND kind IN ('table', 'view') \
                     ORDER BY linked DESC, source, schema_name"
                ),
                &params,
            )
            .await?;
        found
            .iter()
            .map(|r| {
                Ok((
                    opt_string_at(r, 0)?.unwrap_or_default(),
                    opt_string_at(r, 1)?.unwrap_or_default(),
                    opt_string_at(r, 2)?.unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The schemas of `source` (with `schema` None) or the tables and views of one of its
    /// schemas, linked ones first, by name: what a source's or a schema's page lists.
    pub async fn children(
        &self,
        source: &str,
        schema: Option<&str>,
    ) -> Result<Vec<Child>, CatalogError> {
        let (cond, mut params) = match schema {
            Some(s) => (
                "schema_name = ? AND table_name <> '' AND column_name = ''",
                vec![Value::Text(s.into())],
            ),
            None => ("table_name = '' AND column_name = ''", vec![]),
        };
        params.insert(0, Value::Text(source.into()));
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT schema_name, table_name, kind, linked, row_count, db_comment \
                     FROM kondate_catalog_objects WHERE source = ? AND {cond} \
                     ORDER BY linked DESC, schema_name, table_name"
                ),
                &params,
            )
            .await?;
        rows.iter()
            .map(|r| {
                let schema_name = opt_string_at(r, 0)?.unwrap_or_default();
                let table = opt_string_at(r, 1)?.unwrap_or_default();
                Ok(Child {
                    name: if table.is_empty() {
                        schema_name.clone()
                    } else {
                        table.clone()
                    },
                    target: if table.is_empty() {
                        Target::Schema {
                            source: source.to_string(),
                            schema: schema_name,
                        }
                    } else {
                        Target::Table {
                            source: source.to_string(),
                            schema: schema_name,
                            table,
                        }
                    },
                    kind: opt_string_at(r, 2)?.unwrap_or_default(),
                    linked: opt_i64_at(r, 3)?.unwrap_or(0) == 1,
                    row_count: opt_i64_at(r, 4)?,
                    comment: opt_string_at(r, 5)?,
                })
            })
            .collect()
    }

    /// The page of the table a table or column target is or belongs to (None: another kind
    /// of target, or nothing at it in the catalog).
    pub async fn page_of(&self, target: &Target) -> Result<Option<TablePage>, CatalogError> {
        match target {
            Target::Table {
                source,
                schema,
                table,
            }
            | Target::Column {
                source,
                schema,
                table,
                ..
            } => {
                self.table_page(source.clone(), schema.clone(), table.clone())
                    .await
            }
            _ => Ok(None),
        }
    }

    /// Delete `target` — a table or view with its columns, or a column — from the catalog
    /// with its history, descriptions and favourites: only once a sync found it gone from
    /// its source (unlinked), since what the source still has comes back at the next sync.
    /// The number of objects deleted.
    pub async fn delete_unlinked(&self, target: &Target) -> Result<u64, CatalogError> {
        let (source, schema, table, column) = match target {
            Target::Table {
                source,
                schema,
                table,
            } => (source, schema, table, None),
            Target::Column {
                source,
                schema,
                table,
                column,
            } => (source, schema, table, Some(column)),
            _ => {
                return Err(CatalogError::Invalid(format!(
                    "{target} is not a table, a view or a column: only those are deleted (a \
                     schema or a source goes with its last table; a keyword's description can \
                     be emptied)"
                )));
            }
        };
        let not_found = || CatalogError::NotFound(target.to_string());
        let page = self.page_of(target).await?.ok_or_else(not_found)?;
        let (linked, keys) = match column {
            None => (
                page.linked,
                std::iter::once(target.key())
                    .chain(page.columns.iter().map(|c| {
                        Target::Column {
                            source: source.clone(),
                            schema: schema.clone(),
                            table: table.clone(),
                            column: c.name.clone(),
                        }
                        .key()
                    }))
                    .collect::<Vec<_>>(),
            ),
            Some(c) => (
                page.columns
                    .iter()
                    .find(|x| &x.name == c)
                    .ok_or_else(not_found)?
                    .linked,
                vec![target.key()],
            ),
        };
        if linked {
            return Err(CatalogError::Invalid(format!(
                "{target} is still in its source (the last sync found it): deleted here, it \
                 would come back at the next sync. Drop it in the source, run `kondate catalog \
                 sync`, then delete it"
            )));
        }
        let mut cond = "source = ? AND schema_name = ? AND table_name = ?".to_string();
        let mut params = vec![
            Value::Text(source.clone()),
            Value::Text(schema.clone()),
            Value::Text(table.clone()),
        ];
        if let Some(c) = column {
            cond.push_str(" AND column_name = ?");
            params.push(Value::Text(c.clone()));
        }
        let mut tx = self.db.begin().await?;
        tx.execute(
            &format!(
                "DELETE FROM kondate_catalog_changes WHERE object_id IN \
                 (SELECT id FROM kondate_catalog_objects WHERE {cond})"
            ),
            &params,
        )
        .await?;
        let deleted = tx
            .execute(
                &format!("DELETE FROM kondate_catalog_objects WHERE {cond}"),
                &params,
            )
            .await?;
        for key in &keys {
            for t in [
                "kondate_catalog_docs",
                "kondate_catalog_doc_revisions",
                "kondate_catalog_favourites",
            ] {
                tx.execute(
                    &format!("DELETE FROM {t} WHERE target = ?"),
                    &[Value::Text(key.clone())],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// Whether the catalog holds `target` (a keyword always: describing one makes it).
    pub async fn exists(&self, target: &Target) -> Result<bool, CatalogError> {
        Ok(match target {
            Target::Table { .. } => self.page_of(target).await?.is_some(),
            Target::Column { column, .. } => self
                .page_of(target)
                .await?
                .is_some_and(|p| p.columns.iter().any(|c| &c.name == column)),
            Target::Source { source } => self.has_object(source, None).await?,
            Target::Schema { source, schema } => self.has_object(source, Some(schema)).await?,
            Target::Keyword { .. } => true,
        })
    }

    /// Whether `source` has been synced at least once (the catalog is in use for it).
    pub async fn has_synced(&self, source: &str) -> Result<bool, CatalogError> {
        Ok(self
            .db
            .fetch_optional(
                "SELECT id FROM kondate_catalog_syncs WHERE source = ? LIMIT 1",
                &[Value::Text(source.into())],
            )
            .await?
            .is_some())
    }

    /// Whether the catalog has an object at `key` (of a source: any).
    async fn has_object(&self, source: &str, schema: Option<&str>) -> Result<bool, CatalogError> {
        let (cond, mut params) = match schema {
            Some(s) => ("AND schema_name = ?", vec![Value::Text(s.into())]),
            None => ("", vec![]),
        };
        params.insert(0, Value::Text(source.into()));
        Ok(self
            .db
            .fetch_optional(
                &format!("SELECT id FROM kondate_catalog_objects WHERE source = ? {cond} LIMIT 1"),
                &params,
            )
            .await?
            .is_some())
    }

    /// Every object `name` names: `source:SOURCE`, `schema:SOURCE.SCHEMA`, `keyword:NAME`,
    /// or a table (`table`, `schema.table`, `source.schema.table`) or a column (any of
    /// those followed by `.column`). Empty when it names nothing.
    pub async fn resolve_all(&self, name: &str) -> Result<Vec<Target>, CatalogError> {
        if let Some(k) = name.strip_prefix("keyword:") {
            crate::docs::check_keyword(k)?;
            return Ok(vec![Target::Keyword { name: k.into() }]);
        }
        if let Some(s) = name.strip_prefix("source:") {
            return Ok(if self.has_object(s, None).await? {
                vec![Target::Source { source: s.into() }]
            } else {
                vec![]
            });
        }
        if let Some(rest) = name.strip_prefix("schema:") {
            let Some((source, schema)) = rest.split_once('.') else {
                return Err(CatalogError::Invalid(format!(
                    "{name:?}: a schema is named `schema:SOURCE.SCHEMA`, e.g. `schema:warehouse.public`"
                )));
            };
            return Ok(if self.has_object(source, Some(schema)).await? {
                vec![Target::Schema {
                    source: source.into(),
                    schema: schema.into(),
                }]
            } else {
                vec![]
            });
        }
        let mut out: Vec<Target> = self
            .find_tables(name)
            .await?
            .into_iter()
            .map(|(source, schema, table)| Target::Table {
                source,
                schema,
                table,
            })
            .collect();
        if let Some((table, column)) = name.rsplit_once('.') {
            for (source, schema, table) in self.find_tables(table).await? {
                let found = self
                    .db
                    .fetch_optional(
                        "SELECT id FROM kondate_catalog_objects WHERE source = ? AND \
                         schema_name = ? AND table_name = ? AND column_name = ?",
                        &[
                            Value::Text(source.clone()),
                            Value::Text(schema.clone()),
                            Value::Text(table.clone()),
                            Value::Text(column.into()),
                        ],
                    )
                    .await?;
                if found.is_some() {
                    out.push(Target::Column {
                        source,
                        schema,
                        table,
                        column: column.into(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The one object `name` names (see [`Catalog::resolve_all`]); a name that fits several
    /// lists them.
    pub async fn resolve(&self, name: &str) -> Result<Target, CatalogError> {
        let mut all = self.resolve_all(name).await?;
        match all.len() {
            0 => Err(CatalogError::NotFound(name.to_string())),
            1 => Ok(all.remove(0)),
            _ => Err(CatalogError::Ambiguous {
                name: name.to_string(),
                candidates: all.iter().map(Target::to_string).collect(),
            }),
        }
    }

    /// A table or view by name: `table`, `schema.table` or `source.schema.table`; a bare
    /// name must be unambiguous (the candidates are listed when it is not).
    pub async fn table(&self, name: &str) -> Result<TablePage, CatalogError> {
        let names = self.find_tables(name).await?;
        let (source, schema, table) = match names.as_slice() {
            [] => return Err(CatalogError::NotFound(name.to_string())),
            [one] => one.clone(),
            many => {
                return Err(CatalogError::Ambiguous {
                    name: name.to_string(),
                    candidates: many
                        .iter()
                        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                        .collect(),
                });
            }
        };
        self.table_page(source, schema, table)
            .await?
            .ok_or_else(|| CatalogError::NotFound(name.to_string()))
    }

    /// The page of the table or view `source.schema.table` exactly (None: not in the
    /// catalog), for names with dots in them too.
    pub async fn table_page(
        &self,
        source: String,
        schema: String,
        table: String,
    ) -> Result<Option<TablePage>, CatalogError> {
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT {OBJECT_COLUMNS}, id FROM kondate_catalog_objects \
                     WHERE source = ? AND schema_name = ? AND table_name = ?"
                ),
                &[
                    Value::Text(source.clone()),
                    Value::Text(schema.clone()),
                    Value::Text(table.clone()),
                ],
            )
            .await?;
        let mut page: Option<TablePage> = None;
        let mut columns = Vec::new();
        let mut ids = Vec::new();
        for row in &rows {
            let ((_, _, column), s) = read_object(row)?;
            ids.push(opt_i64_at(row, 13)?.unwrap_or(0));
            if column.is_empty() {
                page = Some(TablePage {
                    source: source.clone(),
                    schema: schema.clone(),
                    name: table.clone(),
                    kind: s.attrs.kind,
                    linked: s.linked,
                    comment: s.attrs.comment,
                    row_count: s.attrs.row_count,
                    definition: s.attrs.definition,
                    plan: s.attrs.plan,
                    description: None,
                    columns: Vec::new(),
                    history: Vec::new(),
                    kondate: None,
                });
            } else {
                columns.push(ColumnPage {
                    name: column,
                    data_type: s.attrs.data_type,
                    nullable: s.attrs.nullable,
                    default: s.attrs.default,
                    position: s.attrs.position,
                    comment: s.attrs.comment,
                    linked: s.linked,
                    description: None,
                });
            }
        }
        let Some(mut page) = page else {
            return Ok(None);
        };
        // Columns in the table's order; those gone after them.
        columns.sort_by_key(|c| (!c.linked, c.position.unwrap_or(i64::MAX)));
        let table_target = Target::Table {
            source: source.clone(),
            schema: schema.clone(),
            table: table.clone(),
        };
        let mut targets = vec![table_target.clone()];
        targets.extend(columns.iter().map(|c| Target::Column {
            source: source.clone(),
            schema: schema.clone(),
            table: table.clone(),
            column: c.name.clone(),
        }));
        let mut docs = self.docs_of(&targets).await?;
        page.description = docs.remove(&table_target.key());
        for (c, t) in columns.iter_mut().zip(&targets[1..]) {
            c.description = docs.remove(&t.key());
        }
        page.columns = columns;
        page.history = self.history(&schema, &table, &ids).await?;
        Ok(Some(page))
    }

    async fn history(
        &self,
        schema: &str,
        table: &str,
        ids: &[i64],
    ) -> Result<Vec<Change>, CatalogError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids are the catalog's own integers; listed inline.
        let list = ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT c.sync_id, o.column_name, c.what, c.before_value, c.after_value, \
                     c.created_at FROM kondate_catalog_changes c \
                     JOIN kondate_catalog_objects o ON o.id = c.object_id \
                     WHERE c.object_id IN ({list}) ORDER BY c.id"
                ),
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let column = opt_string_at(r, 1)?.unwrap_or_default();
                Ok(Change {
                    sync_id: opt_i64_at(r, 0)?.unwrap_or(0),
                    object: display(&(schema.to_string(), table.to_string(), column)),
                    change: opt_string_at(r, 2)?.unwrap_or_default(),
                    before: opt_string_at(r, 3)?,
                    after: opt_string_at(r, 4)?,
                    at_ms: opt_i64_at(r, 5)?.unwrap_or(0),
                })
            })
            .collect()
    }
}
