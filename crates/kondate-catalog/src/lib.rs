//! kondate-catalog: what the warehouse and the service databases hold — schemas, tables,
//! views and columns with their types, defaults, comments and row counts — imported from
//! each source ([`import`]) and kept in the state database with the history of every
//! change a sync saw ([`sync`]): a column added, removed, retyped; a table appearing or
//! gone. An object that disappears is unlinked, never deleted, so its history stays.
//!
//! This is the catalog's first part: metadata and its history. Descriptions (Markdown with
//! revisions), search, lineage, the CLI and the API build on it.

pub mod docs;
pub mod favourites;
pub mod import;
pub mod lineage;
pub mod render;
pub mod search;
pub mod sync;
pub mod written;

use kondate_db::DbError;
use serde::Serialize;

pub use docs::{Described, Doc, DocFilesReport, Revision, Target};
pub use import::{Filter, import_database, import_warehouse};
pub use lineage::Lineage;
pub use render::render_markdown;
pub use search::{SearchCache, SearchHit, SearchIndex, SearchQuery, SearchResults};
pub use sync::{Catalog, Change, Child, ColumnPage, SyncRecord, SyncReport, TablePage};
pub use written::{ModelPage, Written};

/// Brings the page of a table kondate just wrote up to date (a sync of that table alone,
/// where the catalog is in use for its source). Implemented where the sources are opened —
/// kondate's binary, from `kondate.toml` — and called by the API's write handlers as the CLI
/// calls it after its writes. It never fails the write: a failure is logged.
#[async_trait::async_trait]
pub trait AfterWrite: Send + Sync {
    /// kondate wrote `table` (`TABLE` in any schema, or `SCHEMA.TABLE`) of `source`.
    async fn table_written(&self, source: &str, table: &str);
}

/// Errors from the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// A source could not be read; its sync is recorded as failed and nothing it had
    /// imported before changes.
    #[error("catalog source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    /// An ignore or include pattern is not a regular expression.
    #[error(
        "catalog source {source_name}: pattern {pattern:?} is not a regular expression: {message}"
    )]
    Pattern {
        source_name: String,
        pattern: String,
        message: String,
    },
    /// Bad input: what was wrong and what to do.
    #[error("{0}")]
    Invalid(String),
    /// An edit that started from an older version of a description.
    #[error(
        "the description of {target} is at version {current} (last edited by {by}), not version {base} your edit started from; it is refused so that it does not overwrite that edit. How the text now differs from yours:\n{diff}\nStart again from version {current}."
    )]
    Stale {
        target: String,
        base: i64,
        current: i64,
        by: String,
        diff: String,
    },
    #[error(
        "nothing named {0} in the catalog (a table, SCHEMA.TABLE, SOURCE.SCHEMA.TABLE, TABLE.COLUMN, source:NAME, schema:SOURCE.SCHEMA or keyword:NAME): `kondate catalog search` finds names, `kondate catalog sync` imports them"
    )]
    NotFound(String),
    #[error(
        "{0} is not a table kondate writes (a label table, a result table or its warehouse copy), so it has no lineage; `kondate catalog lineage` shows them all"
    )]
    NoLineage(String),
    #[error("{name} names more than one table: {}; name it as SOURCE.SCHEMA.TABLE", candidates.join(", "))]
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
}

/// A table or a view as a source reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedTable {
    pub schema: String,
    pub name: String,
    pub kind: TableKind,
    /// The comment stored in the database (`COMMENT ON TABLE`, MySQL's table comment).
    pub comment: Option<String>,
    /// From the engine's statistics (never counted); None where it keeps none.
    pub row_count: Option<i64>,
    /// A view's SQL.
    pub definition: Option<String>,
    /// A view's plan, as the engine explains `SELECT * FROM` it (PostgreSQL's `EXPLAIN`,
    /// SQLite's `EXPLAIN QUERY PLAN`); None where the engine gives none.
    pub plan: Option<String>,
    pub columns: Vec<ImportedColumn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Table,
    View,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Table => "table",
            TableKind::View => "view",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    /// 1-based.
    pub position: i64,
    pub comment: Option<String>,
}
