/// Errors from job definitions and the scheduler. Messages say what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A definition that cannot be loaded: `location` is the file and the field (and the
    /// script's line).
    #[error("{location}: {message}")]
    Definition { location: String, message: String },
    #[error("no job named `{0}`; `kondate jobs list` shows the project's jobs")]
    NoSuchJob(String),
    #[error("no instance {0}; `kondate jobs instances JOB` lists a job's instances")]
    NoSuchInstance(i64),
    /// Bad input that is not a definition error.
    #[error("{0}")]
    Invalid(String),
    /// A notification that could not be delivered (the destination refused it or was not
    /// reached); the message names the destination and why.
    #[error("{0}")]
    Delivery(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] kondate_db::DbError),
    #[error(transparent)]
    Store(#[from] kondate_store::StoreError),
}

impl JobsError {
    /// True when the caller's input was at fault (exit code 2, HTTP 400).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            JobsError::Definition { .. }
                | JobsError::NoSuchJob(_)
                | JobsError::NoSuchInstance(_)
                | JobsError::Invalid(_)
        )
    }
}
