//! kondate-apps: an ML job is an ordinary application. A definition in `apps/NAME.jsonnet`
//! uses Hako's format (scheduler, app, sidecars, volumes, scripts, env providers) so that
//! existing Hako definitions work; kondate renders it for ECS, Kubernetes or Docker, and runs
//! it on this machine with the local runner, recording every run and keeping its log in the
//! object store.
//!
//! - [`definition`]: loading, checking and describing definitions ([`Apps`]).
//! - [`render`]: the ECS task definition and RunTask request, a Kubernetes Job, `docker run`.
//! - [`runner`]: the local runner (process group, clean environment, limits, timeout,
//!   signals, line-by-line log capture with secrets masked).
//! - [`runs`]: runs recorded in the state database, logs in the object store.
//!
//! Knows nothing of HTTP or the CLI.

mod cgroup;
mod definition;
mod isolation;
mod jsonnet;
mod logs;
mod providers;
pub mod render;
mod runner;
mod runs;
mod secrets;

pub use cgroup::available as cgroups_available;
pub use definition::{AppDefinition, Apps, Container, Note, NoteKind, SchedulerKind, Secret};
pub use isolation::describe as describe_isolation;
pub use jsonnet::evaluate as evaluate_definition;
pub use logs::{LiveSink, LogWriter, Stream, parse_line};
/// The local runner (a process group with a timeout, signals, peak memory and a captured
/// log), for other parts that run commands: the scheduler's `execute:` steps.
pub use runner::{Exit, LocalSpec, Outcome as LocalOutcome, StartHook, run_local};
pub use runs::{Credentials, PASSED_ENV, RunInfo, RunRequest, RunStatus, Runs, parse_env_arg};
pub use secrets::Masker;

/// Errors from definitions, rendering and runs. Messages say what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// A definition could not be evaluated or is not valid: `location` is `file[:line]`.
    #[error("{location}: {message}")]
    Definition { location: String, message: String },
    #[error("no app named `{name}` in {dir}; `kondate apps list` shows the apps there")]
    NoSuchApp { name: String, dir: String },
    #[error("no run `{id}`; `kondate apps runs` lists recent runs")]
    NoSuchRun { id: String },
    /// Bad input that is not a definition error (a bad `-e`, a bad target, …).
    #[error("{0}")]
    Invalid(String),
    /// A secret could not be resolved; the message names the secret, never its value.
    #[error("{0}")]
    Secret(String),
    /// The run could not start (command not found, not executable, …).
    #[error("{0}")]
    Start(String),
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
    #[error(transparent)]
    Core(#[from] kondate_core::CoreError),
}

impl AppsError {
    /// True when the caller's input was at fault (exit code 2, HTTP 400).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            AppsError::Definition { .. }
                | AppsError::NoSuchApp { .. }
                | AppsError::Invalid(_)
                | AppsError::Secret(_)
                | AppsError::Core(kondate_core::CoreError::InvalidName { .. })
        )
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        AppsError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
