//! kondate-labels: label sets kept by annotators in spreadsheets, copied into the service
//! database with revisions.
//!
//! The flow of a sync: read the source into a [`source::Grid`] → [`validate`] it against
//! the [`definition`] (every invalid cell reported with its sheet row) → [`diff`] it with
//! the table → [`sync`] applies only the difference in one transaction, together with the
//! new revision row, after writing an immutable Parquet [`snapshot`] of the whole set.
//! Nothing here knows about HTTP or the command line.

mod cells;
mod current;
mod definition;
mod diff;
mod key;
pub mod sheets;
pub mod snapshot;
mod source;
mod sync;
pub mod table;
mod validate;

pub use cells::{Cell, LabelValue};
pub use definition::{LabelSet, find, load_all};
pub use diff::{Changed, FieldChange};
pub use source::{Grid, read_csv, read_workbook};
pub use sync::{Labels, Listed, Outcome, RevisionDiff, SyncOptions, SyncReport};
pub use validate::{Validated, validate};

/// Errors from label sets.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("{origin}: `{field}`: {message}")]
    Definition {
        origin: String,
        field: String,
        message: String,
    },
    #[error("no label set `{name}`; defined: {known}")]
    NoSuchSet { name: String, known: String },
    #[error("{origin} {message}")]
    Source { origin: String, message: String },
    #[error(
        "{} of {total} rows of `{name}` are invalid; nothing was written. Fix them in the \
         sheet, or run with --skip-invalid to leave them out:\n{}",
        rows,
        list_invalid(invalid)
    )]
    InvalidRows {
        name: String,
        rows: usize,
        total: usize,
        invalid: Vec<validate::Invalid>,
    },
    #[error(
        "the definition of `{name}` changed since revision {revision}; nothing was written:\n{}\n\
         Check that the sheet and the definition agree, then run `kondate labels sync {name} \
         --migrate` to change the table and record the change in the history",
        changes.iter().map(|c| format!("  - {c}")).collect::<Vec<_>>().join("\n")
    )]
    DefinitionChanged {
        name: String,
        revision: i64,
        changes: Vec<String>,
    },
    #[error(
        "another sync of `{name}` holds the lock on the service database; try again when it \
         has finished"
    )]
    Busy { name: String },
    #[error("`{name}` has no revision {revision}; `kondate labels history {name}` lists them")]
    NoSuchRevision { name: String, revision: i64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot `{key}`: {message}")]
    Snapshot { key: String, message: String },
    #[error(transparent)]
    Db(#[from] kondate_db::DbError),
    #[error(transparent)]
    Store(#[from] kondate_store::StoreError),
}

/// Read the source of `set` into a grid (files are read on a blocking thread).
pub async fn read_source(set: &LabelSet) -> Result<source::Grid, LabelsError> {
    match &set.source {
        definition::SourceDef::GoogleSheets { .. } => sheets::read(set).await,
        _ => {
            let set = set.clone();
            tokio::task::spawn_blocking(move || source::read_file_source(&set))
                .await
                .map_err(|e| LabelsError::Source {
                    origin: "source reader".into(),
                    message: e.to_string(),
                })?
        }
    }
}

/// At most 50 problems, one per line, then how many more.
fn list_invalid(invalid: &[validate::Invalid]) -> String {
    let mut lines: Vec<String> = invalid.iter().take(50).map(|i| format!("  {i}")).collect();
    if invalid.len() > 50 {
        lines.push(format!("  … and {} more", invalid.len() - 50));
    }
    lines.join("\n")
}
