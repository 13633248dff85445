//! kondate-models: the model registry.
//!
//! A model is a name; each push makes a new **version**, numbered 1, 2, 3… per model, never
//! reused and never changed. A version is a file or a folder of files; each file is stored
//! once, content-addressed by its SHA-256, in the object store (`models/blobs/sha256/…`),
//! and the version's metadata — files, size, digests, metrics, parameters, lineage, who and
//! when — is a row in the state database. **Aliases** (`production`, `staging`) point at
//! versions and move atomically, every move kept. Unreferenced files are removed by
//! [`Models::gc`], which is safe to run while pushes are in flight.
//!
//! Knows nothing of HTTP or the CLI: `kondate-web` and the binary translate to these calls.

mod registry;

pub use registry::{
    AliasMove, BlobCheck, GcOptions, GcReport, LabelRef, LabelRevisions, Lineage, ModelSummary,
    Models, PushMeta, VersionInfo,
};

use kondate_core::CoreError;
use kondate_db::DbError;
use kondate_store::StoreError;

/// Errors of the registry; each maps to one HTTP status and one exit code.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// Bad input: a name, a path, a metric, a file list.
    #[error("{0}")]
    Invalid(String),
    #[error("no model `{name}`; `kondate models list` shows the registered ones")]
    NoSuchModel { name: String },
    #[error(
        "no version `{reference}`; `kondate models show {name}` lists its versions and aliases"
    )]
    NoSuchVersion { reference: String, name: String },
    #[error(
        "version {name}@{version} cannot be deleted: alias {aliases} points to it; move the \
         alias first (`kondate models alias {name} ALIAS N`)"
    )]
    AliasPointsHere {
        name: String,
        version: i64,
        aliases: String,
    },
    #[error(
        "file `{path}` ({digest}) has not been uploaded, or was collected since; upload it \
         and commit again"
    )]
    MissingBlob { path: String, digest: String },
    #[error("{reference}: file `{path}` cannot be read back intact: {source}")]
    Corrupt {
        reference: String,
        path: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "a version's record in the state database cannot be read ({0}); was it changed \
         outside kondate? Restore the state database from a backup"
    )]
    Record(String),
    #[error("lineage: {0}")]
    Lineage(String),
    #[error(
        "model `{name}` is busy: another push, alias move or delete holds it; retry in a moment"
    )]
    Busy { name: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CoreError> for ModelsError {
    fn from(e: CoreError) -> Self {
        ModelsError::Invalid(e.to_string())
    }
}

impl ModelsError {
    /// True when the caller's input was wrong (exit code 2, HTTP 400/404/409).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ModelsError::Invalid(_)
                | ModelsError::NoSuchModel { .. }
                | ModelsError::NoSuchVersion { .. }
                | ModelsError::AliasPointsHere { .. }
                | ModelsError::Lineage(_)
                | ModelsError::MissingBlob { .. }
        )
    }
}

/// The object key of a blob.
pub fn blob_key(digest: &kondate_core::digest::Digest) -> String {
    let hex = digest.hex();
    format!("{BLOB_PREFIX}/{}/{hex}", &hex[..2])
}

/// Where blobs live in the object store.
pub const BLOB_PREFIX: &str = "models/blobs/sha256";
