//! kondate-warehouse: the data warehouse behind one trait, with three backends —
//! embedded DataFusion over Parquet in the object store (default), PostgreSQL, and Redshift —
//! each turning a SELECT into result parts plus a manifest in the object store
//! (see [`unload`]).

mod embedded;
mod load;
mod pgaggs;
mod pgdates;
mod pgfuncs;
mod pgmath;
mod pgnames;
mod pgnumeric;
mod pgout;
mod pgscale;
mod pgsemantics;
mod pgsession;
mod pgtext;
mod pgvariance;
mod postgres;
mod redshift;
mod rsfuncs;
mod rsudfs;
mod types;
mod unload;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use kondate_core::{Config, WarehouseKind};
use kondate_store::{Store, StoreError};

pub use embedded::{EmbeddedWarehouse, parse_schema};
pub use postgres::PostgresWarehouse;
pub use rsfuncs::without_approximate;
pub use unload::{Column, ResultFormat, UnloadOutput, UnloadRequest};

/// Errors from a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The engine refused or failed the statement; the message is the engine's own.
    #[error("{0}")]
    Engine(String),
    #[error("the statement ran longer than the {0:?} statement timeout and was cancelled")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Unsupported(String),
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error("table `{0}` does not exist; `kondate warehouse tables` lists the tables")]
    NoSuchTable(String),
    #[error("writing result object `{key}` failed: {message}")]
    Write { key: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] kondate_core::CoreError),
    /// The warehouse role may reach outside the database; kondate will not serve queries
    /// as it (`warehouse.allow_privileged_role`).
    #[error("{0}")]
    PrivilegedRole(String),
}

/// A `schema.table` name, validated for use in paths and SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    /// Parse `schema.table` (or `table`, in schema `public`).
    pub fn parse(s: &str) -> Result<TableName, WarehouseError> {
        let (schema, table) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => ("public", s),
        };
        kondate_core::names::validate_name("schema name", schema)?;
        kondate_core::names::validate_name("table name", table)?;
        Ok(TableName {
            schema: schema.to_ascii_lowercase(),
            table: table.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// A table the warehouse holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    pub name: String,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub columns: Vec<Column>,
}

/// How `load` reads its input files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Input format; guessed from the file extension when `None`.
    pub format: Option<InputFormat>,
    /// Append to the table instead of replacing it.
    pub append: bool,
    /// Explicit schema as `name:type,…` (types: smallint, int, bigint, float, double,
    /// numeric(P,S), text, bool, date, timestamp, timestamptz); inferred when `None`.
    pub schema: Option<String>,
    /// Merge by these key columns: rows of the table whose key occurs in the input are
    /// replaced by the input's, the rest are kept, new keys are added (an incremental copy).
    /// The table is created when missing. Takes precedence over `append`.
    pub merge_key: Option<Vec<String>>,
}

/// Input file formats for `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Parquet,
    JsonLines,
}

/// What a load did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub table: String,
    pub rows: u64,
    pub files: usize,
    pub replaced: bool,
}

/// A data warehouse kondate can query.
#[async_trait]
pub trait Warehouse: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> WarehouseKind;
    /// Run a read-only SELECT and write its result to the object store.
    async fn unload(&self, req: &UnloadRequest) -> Result<UnloadOutput, WarehouseError>;
    /// The tables it holds.
    async fn tables(&self) -> Result<Vec<TableInfo>, WarehouseError>;
    /// Load files into a table (replace by default; nothing changes if it fails).
    async fn load(
        &self,
        table: &TableName,
        files: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<LoadReport, WarehouseError>;
    /// Drop a table; false when it did not exist.
    async fn drop_table(&self, table: &TableName) -> Result<bool, WarehouseError>;
    /// Whether it answers (the readiness check): its tables can be listed.
    async fn ping(&self) -> Result<(), WarehouseError> {
        self.tables().await.map(|_| ())
    }
}

/// Open the warehouse the configuration names.
pub async fn open(config: &Config, store: &Store) -> Result<Arc<dyn Warehouse>, WarehouseError> {
    Ok(match config.warehouse.kind {
        WarehouseKind::Embedded => {
            let limit = config
                .warehouse
                .memory_limit
                .bytes(embedded::machine_memory());
            Arc::new(embedded::EmbeddedWarehouse::new(store.clone()).with_memory_limit(limit))
        }
        WarehouseKind::Postgres => {
            let url = config.warehouse.url.as_deref().unwrap_or_default();
            Arc::new(
                postgres::PostgresWarehouse::connect(
                    url,
                    store.clone(),
                    config.warehouse.allow_privileged_role,
                )
                .await?,
            )
        }
        WarehouseKind::Redshift => {
            Arc::new(redshift::RedshiftWarehouse::connect(config, store.clone()).await?)
        }
    })
}
