//! [`Results`]: the result tables of one project on its service database — what the CLI
//! and the HTTP handlers call, as `Labels`, `Models` and `Runs` are for theirs. Time comes
//! from the [`Clock`], so tests can move it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kondate_core::Clock;
use kondate_db::Database;

use crate::export::{ExportOptions, ExportReport, ExportSink};
use crate::table::RowBatches;

/// Rows per batch of a streamed write: large enough that a batch costs little more than
/// its rows (one statement per few hundred rows, one `COPY` chunk on PostgreSQL), small
/// enough that the batches in flight are a few megabytes.
pub const BATCH_ROWS: usize = 10_000;
use crate::{ResultTable, ResultsError, WriteMeta, WriteOptions, WriteReport};

/// One write of a result table, as its log keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteRecord {
    pub written_at_ms: i64,
    pub model_name: Option<String>,
    pub model_version: Option<i64>,
    pub run_id: Option<String>,
    pub rows: i64,
    pub pruned: i64,
}

/// The last export of a result table, as its bookkeeping keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportRecord {
    pub exported_at_ms: i64,
    /// The warehouse table it went to.
    pub target: String,
    /// Rows the export copied.
    pub rows: i64,
}

/// The result tables declared in a project (`results/NAME.toml`) and written to its service
/// database.
#[derive(Debug, Clone)]
pub struct Results {
    pub db: Database,
    /// The project folder, whose `results/` holds the declarations (read per call, so an
    /// edit needs no restart).
    pub root: PathBuf,
    pub clock: Arc<dyn Clock>,
}

impl Results {
    pub fn new(db: Database, root: &Path, clock: Arc<dyn Clock>) -> Results {
        Results {
            db,
            root: root.to_path_buf(),
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Every declaration, by name.
    pub fn declarations(&self) -> Result<Vec<ResultTable>, ResultsError> {
        ResultTable::load_all(&self.root)
    }

    /// The last `limit` writes of `name`, newest first (none before its first write).
    pub async fn writes(&self, name: &str, limit: usize) -> Result<Vec<WriteRecord>, ResultsError> {
        if !self.db.table_exists(crate::table::WRITES).await? {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT written_at, model_name, model_version, run_id, rows_written, \
                     rows_pruned FROM {} WHERE name = ? ORDER BY written_at DESC LIMIT {}",
                    crate::table::WRITES,
                    limit.clamp(1, 1000)
                ),
                &[kondate_db::Value::Text(name.into())],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(WriteRecord {
                    written_at_ms: kondate_db::opt_i64_at(r, 0)?.unwrap_or(0),
                    model_name: kondate_db::opt_string_at(r, 1)?,
                    model_version: kondate_db::opt_i64_at(r, 2)?,
                    run_id: kondate_db::opt_string_at(r, 3)?,
                    rows: kondate_db::opt_i64_at(r, 4)?.unwrap_or(0),
                    pruned: kondate_db::opt_i64_at(r, 5)?.unwrap_or(0),
                })
            })
            .collect::<Result<_, kondate_db::DbError>>()
            .map_err(Into::into)
    }

    /// The last export of `name` to the warehouse: when, to which table, and how many rows
    /// it copied (None before its first export).
    pub async fn last_export(&self, name: &str) -> Result<Option<ExportRecord>, ResultsError> {
        if !self.db.table_exists(crate::table::EXPORTS).await? {
            return Ok(None);
        }
        let row = self
            .db
            .fetch_optional(
                &format!(
                    "SELECT exported_at, target, rows_exported FROM {} WHERE name = ?",
                    crate::table::EXPORTS
                ),
                &[kondate_db::Value::Text(name.into())],
            )
            .await?;
        row.map(|r| {
            Ok(ExportRecord {
                exported_at_ms: kondate_db::opt_i64_at(&r, 0)?.unwrap_or(0),
                target: kondate_db::opt_string_at(&r, 1)?.unwrap_or_default(),
                rows: kondate_db::opt_i64_at(&r, 2)?.unwrap_or(0),
            })
        })
        .transpose()
        .map_err(|e: kondate_db::DbError| e.into())
    }

    /// The declaration of `name`.
    pub fn declaration(&self, name: &str) -> Result<ResultTable, ResultsError> {
        ResultTable::load(&self.root, name)
    }

    /// Read `files` (CSV, JSON lines or Parquet, by extension) and write their rows into
    /// `decl`'s table: all or nothing. The rows stream from a reader on a blocking thread
    /// to the writer in batches of [`BATCH_ROWS`], at most two batches ahead of it, so a
    /// write of any size needs a few batches of memory (and the digests of the keys seen,
    /// to refuse a repeated key); a bad row further on rolls the write back.
    pub async fn write_files(
        &self,
        decl: &ResultTable,
        files: &[PathBuf],
        meta: &WriteMeta,
        opts: WriteOptions,
    ) -> Result<WriteReport, ResultsError> {
        let (tx, batches) = RowBatches::channel(1);
        let reader = {
            let (decl, files) = (decl.clone(), files.to_vec());
            tokio::task::spawn_blocking(move || {
                let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::input::read_files_batched(&decl, &files, BATCH_ROWS, &mut |b| {
                        // The writer stopped (it failed, or the request went away): stop too.
                        tx.blocking_send(Ok(b))
                            .map_err(|_| ResultsError::Input("the write stopped".into()))
                    })
                }))
                // The end of the channel means the end of the input: a reader that panicked
                // must say so, or the writer would commit what it had.
                .unwrap_or_else(|_| {
                    Err(ResultsError::Input(
                        "reading the input failed unexpectedly; nothing was written".into(),
                    ))
                });
                if let Err(e) = read {
                    // The writer sees the error as its next batch and rolls back.
                    let _ = tx.blocking_send(Err(e));
                }
            })
        };
        let written = crate::table::write(&self.db, decl, batches, meta, opts, self.now_ms()).await;
        // The reader ends once the writer's end of the channel is gone.
        reader
            .await
            .map_err(|e| ResultsError::Input(format!("reading the input failed: {e}")))?;
        written
    }

    /// Copy `decl`'s table into the warehouse behind `sink` (the Parquet file is made in
    /// `tmp`).
    pub async fn export(
        &self,
        decl: &ResultTable,
        sink: &impl ExportSink,
        opts: ExportOptions,
        tmp: &Path,
    ) -> Result<ExportReport, ResultsError> {
        crate::export::export(&self.db, decl, sink, opts, tmp, self.now_ms()).await
    }
}
