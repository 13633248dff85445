//! [`Results`]: the result tables of one project on its service database — what the CLI
//! and the HTTP handlers call, as `Labels`, `Models` and `Runs` are for theirs. Time comes
//! from the [`Clock`], so tests can move it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kondate_core::Clock;
use kondate_db::Database;

use crate::export::{ExportOptions, ExportReport, ExportSink};
use crate::{ResultTable, ResultsError, WriteMeta, WriteOptions, WriteReport};

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

    /// The declaration of `name`.
    pub fn declaration(&self, name: &str) -> Result<ResultTable, ResultsError> {
        ResultTable::load(&self.root, name)
    }

    /// Read `files` (CSV, JSON lines or Parquet, by extension; on a blocking thread) and
    /// write their rows into `decl`'s table: all or nothing.
    pub async fn write_files(
        &self,
        decl: &ResultTable,
        files: &[PathBuf],
        meta: &WriteMeta,
        opts: WriteOptions,
    ) -> Result<WriteReport, ResultsError> {
        let rows = {
            let (decl, files) = (decl.clone(), files.to_vec());
            tokio::task::spawn_blocking(move || crate::input::read_files(&decl, &files))
                .await
                .map_err(|e| ResultsError::Input(format!("reading the input failed: {e}")))??
        };
        crate::table::write(&self.db, decl, &rows, meta, opts, self.now_ms()).await
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
