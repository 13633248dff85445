//! Reading a source's metadata: its tables and views with their columns, comments, view
//! definitions and row counts from the engine's statistics (never a `COUNT(*)`).
//!
//! - PostgreSQL: `pg_class`, `pg_attribute`, `pg_attrdef`, `pg_description` (every schema
//!   but the system's), `reltuples` for the row count (absent until the table is analysed).
//! - MySQL/MariaDB: `information_schema` of the connected database; `TABLE_ROWS` (InnoDB's
//!   estimate).
//! - SQLite: `sqlite_schema` and `pragma_table_info`; no row counts (SQLite keeps none).
//! - A warehouse as it lists its tables: the embedded warehouse's manifests (columns, row
//!   count).

use std::collections::BTreeMap;

use kondate_db::{Database, DbKind, opt_i64_at, opt_string_at};
use regex::Regex;

use crate::{CatalogError, ImportedColumn, ImportedTable, TableKind};

/// Which tables of a source the catalog keeps: regular expressions matched against
/// `schema.table`; a table is kept when it matches `include` (if given) and no `ignore`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Regex>,
    ignore: Vec<Regex>,
}

impl Filter {
    pub fn new(
        source: &str,
        include: Option<&str>,
        ignore: &[String],
    ) -> Result<Filter, CatalogError> {
        let compile = |p: &str| {
            Regex::new(p).map_err(|e| CatalogError::Pattern {
                source_name: source.to_string(),
                pattern: p.to_string(),
                message: e.to_string(),
            })
        };
        Ok(Filter {
            include: include.map(compile).transpose()?,
            ignore: ignore
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn keeps(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        self.include.as_ref().is_none_or(|r| r.is_match(&name))
            && !self.ignore.iter().any(|r| r.is_match(&name))
    }
}

fn failed(source: &str) -> impl Fn(kondate_db::DbError) -> CatalogError + '_ {
    move |e| CatalogError::Source {
        source_name: source.to_string(),
        message: e.to_string(),
    }
}

/// The tables and views of the database behind `db`, as `source` (the name the catalog
/// knows it by), those `filter` keeps, sorted by schema and name.
pub async fn import_database(
    source: &str,
    db: &Database,
    filter: &Filter,
) -> Result<Vec<ImportedTable>, CatalogError> {
    let (tables_sql, columns_sql) = match db.kind() {
        DbKind::Postgres => (POSTGRES_TABLES, POSTGRES_COLUMNS),
        DbKind::MySql => (MYSQL_TABLES, MYSQL_COLUMNS),
        DbKind::Sqlite => return import_sqlite(source, db, filter).await,
    };
    let mut tables: BTreeMap<(String, String), ImportedTable> = BTreeMap::new();
    let mut oids: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in db
        .fetch_all(tables_sql, &[])
        .await
        .map_err(failed(source))?
    {
        let text = |i| opt_string_at(&row, i).map_err(failed(source));
        let (schema, name) = (text(0)?.unwrap_or_default(), text(1)?.unwrap_or_default());
        if !filter.keeps(&schema, &name) {
            continue;
        }
        let kind = if text(2)?.as_deref() == Some("view") {
            TableKind::View
        } else {
            TableKind::Table
        };
        let table = ImportedTable {
            schema: schema.clone(),
            name: name.clone(),
            kind,
            comment: text(3)?.filter(|c| !c.is_empty()),
            row_count: opt_i64_at(&row, 4)
                .map_err(failed(source))?
                .filter(|n| *n >= 0),
            // PostgreSQL's column 5 is the relation's oid: its SQL is read apart.
            definition: match db.kind() {
                DbKind::Postgres => None,
                _ => text(5)?.map(|d| d.trim().to_string()),
            },
            plan: None,
            columns: Vec::new(),
        };
        if db.kind() == DbKind::Postgres {
            let oid = opt_i64_at(&row, 5).map_err(failed(source))?.unwrap_or(0);
            oids.insert((schema.clone(), name.clone()), oid);
        }
        tables.insert((schema, name), table);
    }
    for row in db
        .fetch_all(columns_sql, &[])
        .await
        .map_err(failed(source))?
    {
        let text = |i| opt_string_at(&row, i).map_err(failed(source));
        let key = (text(0)?.unwrap_or_default(), text(1)?.unwrap_or_default());
        let Some(table) = tables.get_mut(&key) else {
            continue;
        };
        table.columns.push(ImportedColumn {
            name: text(2)?.unwrap_or_default(),
            data_type: text(3)?.unwrap_or_default(),
            nullable: opt_i64_at(&row, 4).map_err(failed(source))? == Some(1),
            default: text(5)?,
            position: opt_i64_at(&row, 6).map_err(failed(source))?.unwrap_or(0),
            comment: text(7)?.filter(|c| !c.is_empty()),
        });
    }
    if db.kind() == DbKind::Postgres {
        postgres_details(source, db, &mut tables, &oids).await?;
    }
    let mut out: Vec<ImportedTable> = tables.into_values().collect();
    for t in &mut out {
        t.columns.sort_by_key(|c| c.position);
    }
    explain_views(db, &mut out).await;
    Ok(out)
}

/// The plans of `tables`' views, as the engine explains `SELECT * FROM` each (planning
/// only: nothing is read). A view the engine cannot explain — it reads a table dropped
/// since, or its name is not a plain identifier, which [`Database::ident`] refuses to put
/// into SQL — gets none, and the sync goes on.
async fn explain_views(db: &Database, tables: &mut [ImportedTable]) {
    for t in tables.iter_mut().filter(|t| t.kind == TableKind::View) {
        t.plan = explain(db, &t.schema, &t.name).await;
    }
}

async fn explain(db: &Database, schema: &str, name: &str) -> Option<String> {
    let view = db.ident(name).ok()?;
    let (sql, column) = match db.kind() {
        DbKind::Postgres => (
            format!("EXPLAIN SELECT * FROM {}.{view}", db.ident(schema).ok()?),
            0,
        ),
        DbKind::MySql => (
            format!(
                "EXPLAIN FORMAT=JSON SELECT * FROM {}.{view}",
                db.ident(schema).ok()?
            ),
            0,
        ),
        // id, parent, notused, detail
        DbKind::Sqlite => (format!("EXPLAIN QUERY PLAN SELECT * FROM {view}"), 3),
    };
    let rows = match db.fetch_all(&sql, &[]).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(schema, view = name, error = %e, "no plan for a view");
            return None;
        }
    };
    let lines: Vec<String> = rows
        .iter()
        .filter_map(|r| opt_string_at(r, column).ok().flatten())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// PostgreSQL: the kept views' SQL and the kept tables' column defaults. The functions that
/// print them open the relation, and fail on one another session drops meanwhile ("could
/// not open relation with OID"), so they run only for the objects the sync keeps — DDL in
/// other schemas never fails a sync — and a kept object dropped while the sync reads is
/// left without its details (the next sync unlinks it).
async fn postgres_details(
    source: &str,
    db: &Database,
    tables: &mut BTreeMap<(String, String), ImportedTable>,
    oids: &BTreeMap<(String, String), i64>,
) -> Result<(), CatalogError> {
    let by_oid: BTreeMap<i64, (String, String)> =
        oids.iter().map(|(k, v)| (*v, k.clone())).collect();
    let views: Vec<i64> = oids
        .iter()
        .filter(|(k, _)| tables.get(*k).is_some_and(|t| t.kind == TableKind::View))
        .map(|(_, v)| *v)
        .collect();
    for (oid, _, sql) in gone_tolerant(
        source,
        db,
        "SELECT c.oid::bigint, 0::bigint, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.oid IN",
        &views,
    )
    .await?
    {
        if let Some(t) = by_oid.get(&oid).and_then(|k| tables.get_mut(k)) {
            t.definition = Some(sql.trim().to_string());
        }
    }
    let all: Vec<i64> = by_oid.keys().copied().collect();
    for (oid, attnum, default) in gone_tolerant(
        source,
        db,
        "SELECT d.adrelid::bigint, d.adnum::bigint, pg_get_expr(d.adbin, d.adrelid) \
         FROM pg_attrdef d WHERE d.adrelid IN",
        &all,
    )
    .await?
    {
        if let Some(t) = by_oid.get(&oid).and_then(|k| tables.get_mut(k))
            && let Some(c) = t.columns.iter_mut().find(|c| c.position == attnum)
        {
            c.default = Some(default);
        }
    }
    Ok(())
}

/// `select` (ending in `IN`) over `oids`, 1,000 at a time: (oid, number, text) rows. A batch
/// that fails because one of its relations was dropped meanwhile is read one oid at a time,
/// the dropped ones left out.
async fn gone_tolerant(
    source: &str,
    db: &Database,
    select: &str,
    oids: &[i64],
) -> Result<Vec<(i64, i64, String)>, CatalogError> {
    let read = |rows: Vec<kondate_db::AnyRow>| -> Result<Vec<(i64, i64, String)>, CatalogError> {
        rows.iter()
            .map(|r| {
                Ok((
                    opt_i64_at(r, 0).map_err(failed(source))?.unwrap_or(0),
                    opt_i64_at(r, 1).map_err(failed(source))?.unwrap_or(0),
                    opt_string_at(r, 2)
                        .map_err(failed(source))?
                        .unwrap_or_default(),
                ))
            })
            .collect()
    };
    let gone = |e: &kondate_db::DbError| {
        let m = e.to_string();
        m.contains("could not open relation") || m.contains("does not exist")
    };
    let mut out = Vec::new();
    for chunk in oids.chunks(1000) {
        // The oids are integers read from pg_class, listed inline.
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match db.fetch_all(&format!("{select} ({list})"), &[]).await {
            Ok(rows) => out.extend(read(rows)?),
            Err(e) if gone(&e) => {
                for oid in chunk {
                    match db.fetch_all(&format!("{select} ({oid})"), &[]).await {
                        Ok(rows) => out.extend(read(rows)?),
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(failed(source)(e)),
                    }
                }
            }
            Err(e) => return Err(failed(source)(e)),
        }
    }
    Ok(out)
}

/// Every table, partitioned table, view, materialised view and foreign table outside the
/// system's schemas: schema, name, kind, comment, row count, view SQL.
const POSTGRES_TABLES: &str = "SELECT n.nspname::text, c.relname::text,
    CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END,
    obj_description(c.oid, 'pg_class'),
    CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END,
    c.oid::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// Their columns: schema, table, name, type, nullable (1/0), (default: read apart), position,
/// comment. Nothing here opens a relation (see [`postgres_details`]).
const POSTGRES_COLUMNS: &str = "SELECT n.nspname::text, c.relname::text, a.attname::text,
    format_type(a.atttypid, a.atttypmod),
    CASE WHEN a.attnotnull THEN 0 ELSE 1 END::bigint,
    NULL::text,
    a.attnum::bigint,
    col_description(c.oid, a.attnum)
  FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE a.attnum > 0 AND NOT a.attisdropped
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

const MYSQL_TABLES: &str = "SELECT CAST(t.TABLE_SCHEMA AS CHAR), CAST(t.TABLE_NAME AS CHAR),
    CASE WHEN t.TABLE_TYPE = 'VIEW' THEN 'view' ELSE 'table' END,
    CAST(CASE WHEN t.TABLE_TYPE = 'VIEW' THEN '' ELSE t.TABLE_COMMENT END AS CHAR),
    CAST(t.TABLE_ROWS AS SIGNED),
    CAST(v.VIEW_DEFINITION AS CHAR)
  FROM information_schema.TABLES t
    LEFT JOIN information_schema.VIEWS v
      ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME
  WHERE t.TABLE_SCHEMA = DATABASE()";

const MYSQL_COLUMNS: &str = "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR),
    CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR),
    CAST(CASE WHEN IS_NULLABLE = 'YES' THEN 1 ELSE 0 END AS SIGNED),
    CAST(COLUMN_DEFAULT AS CHAR), CAST(ORDINAL_POSITION AS SIGNED),
    CAST(COLUMN_COMMENT AS CHAR)
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()";

async fn import_sqlite(
    source: &str,
    db: &Database,
    filter: &Filter,
) -> Result<Vec<ImportedTable>, CatalogError> {
    let rows = db
        .fetch_all(
            "SELECT type, name, sql FROM sqlite_master
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
            &[],
        )
        .await
        .map_err(failed(source))?;
    let mut out = Vec::new();
    for row in rows {
        let text = |i| opt_string_at(&row, i).map_err(failed(source));
        let (kind, name) = (text(0)?.unwrap_or_default(), text(1)?.unwrap_or_default());
        if !filter.keeps("main", &name) {
            continue;
        }
        let view = kind == "view";
        let columns = db
            .fetch_all(
                "SELECT name, type, \"notnull\", dflt_value, cid, pk FROM pragma_table_info(?)",
                &[kondate_db::Value::Text(name.clone())],
            )
            .await
            .map_err(failed(source))?
            .iter()
            .map(|c| {
                let text = |i| opt_string_at(c, i).map_err(failed(source));
                let int = |i| opt_i64_at(c, i).map_err(failed(source));
                Ok(ImportedColumn {
                    name: text(0)?.unwrap_or_default(),
                    data_type: text(1)?.unwrap_or_default(),
                    // A primary key is never NULL, whatever the declaration says (SQLite's
                    // INTEGER PRIMARY KEY is the rowid).
                    nullable: int(2)? == Some(0) && int(5)?.unwrap_or(0) == 0,
                    default: text(3)?,
                    position: int(4)?.unwrap_or(0) + 1,
                    comment: None,
                })
            })
            .collect::<Result<Vec<_>, CatalogError>>()?;
        out.push(ImportedTable {
            schema: "main".into(),
            name,
            kind: if view {
                TableKind::View
            } else {
                TableKind::Table
            },
            comment: None,
            row_count: None,
            definition: if view { text(2)? } else { None },
            plan: None,
            columns,
        });
    }
    explain_views(db, &mut out).await;
    Ok(out)
}

/// A warehouse's tables as the warehouse lists them (`schema.table`, columns and their
/// types in order, the row count where it keeps one): the embedded warehouse's from its
/// manifests, in the order of the files they were loaded from. (A PostgreSQL warehouse is
/// read in full by [`import_database`].)
pub async fn import_warehouse(
    source: &str,
    warehouse: &dyn kondate_warehouse::Warehouse,
    filter: &Filter,
) -> Result<Vec<ImportedTable>, CatalogError> {
    let tables = warehouse.tables().await.map_err(|e| CatalogError::Source {
        source_name: source.to_string(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for t in tables {
        let (schema, name) = t
            .name
            .split_once('.')
            .unwrap_or(("public", t.name.as_str()));
        if !filter.keeps(schema, name) {
            continue;
        }
        out.push(ImportedTable {
            schema: schema.to_string(),
            name: name.to_string(),
            kind: TableKind::Table,
            comment: None,
            row_count: t.rows.and_then(|r| i64::try_from(r).ok()),
            definition: None,
            plan: None,
            columns: t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ImportedColumn {
                    name: c.name.clone(),
                    data_type: c.redshift_type.clone(),
                    nullable: true,
                    default: None,
                    position: i as i64 + 1,
                    comment: None,
                })
                .collect(),
        });
    }
    out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(out)
}
