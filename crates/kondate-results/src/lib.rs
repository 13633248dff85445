//! kondate-results: inference output into the service database, where the product reads
//! it.
//!
//! A result table is declared in `results/NAME.toml` (table, key, typed columns); kondate
//! creates it with four columns of its own — `model_name`, `model_version`, `run_id`,
//! `updated_at` — so every row says which model and run produced it, and writes batches of
//! rows as one idempotent bulk upsert keyed by the declared key, in one transaction: a
//! rerun of the same inference leaves the same table, and a failed write leaves nothing.
//!
//! - [`declaration`]: parsing and checking declarations, with the file and field in every
//!   message.
//! - [`input`]: rows from CSV, JSON lines and Parquet, typed by the declaration, with the
//!   row and column of every problem.
//! - [`table`]: creating the table, the bookkeeping row that notices a changed declaration,
//!   and the upsert (PostgreSQL through a `COPY` stage), `swap` and `prune`.
//! - [`export`]: the copy into the warehouse, incremental by `updated_at`, through an
//!   [`export::ExportSink`] that the caller provides.
//! - [`Results`]: the façade the CLI and the HTTP handlers call.
//!
//! Knows nothing of HTTP, the CLI or the warehouse engines.

mod declaration;
mod export;
mod input;
mod service;
mod table;

pub use declaration::{ResultColumn, ResultTable, ResultType};
pub use export::{ExportOptions, ExportReport, ExportSink, export, export_schema};
pub use input::{read_csv, read_files, read_files_batched, read_jsonl, read_parquet};
pub use service::{ExportRecord, Results, WriteRecord};
pub use table::{
    BatchSender, Publish, RowBatches, WriteMeta, WriteOptions, WriteReport, create_table_sql,
    ensure, write,
};

/// Errors from result tables. Messages say what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A declaration is not valid: `location` is the file.
    #[error("{location}: {message}")]
    Declaration { location: String, message: String },
    #[error("no result table named `{name}` in {dir}; declare it as results/{name}.toml")]
    NoSuchTable { name: String, dir: String },
    /// Input rows that do not fit the declaration; nothing was written.
    #[error("{0}")]
    Input(String),
    /// The declaration changed since the table was created.
    #[error("{0}")]
    Changed(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The warehouse refused or failed the export's load; nothing was recorded as copied.
    #[error(
        "copying into the warehouse failed: {0}; nothing was recorded as copied, so the next \
         export copies the same rows again"
    )]
    Export(String),
    #[error(transparent)]
    Db(#[from] kondate_db::DbError),
    #[error(transparent)]
    Core(#[from] kondate_core::CoreError),
}

impl ResultsError {
    /// True when the caller's input was at fault (exit code 2, HTTP 400).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ResultsError::Declaration { .. }
                | ResultsError::NoSuchTable { .. }
                | ResultsError::Input(_)
                | ResultsError::Changed(_)
                | ResultsError::Core(kondate_core::CoreError::InvalidName { .. })
        )
    }
}
