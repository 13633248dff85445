//! kondate-core: the project, its configuration, the clock, and the identifiers every other
//! crate shares. Nothing here touches the network, a database or the object store.

pub mod artifact;
pub mod clock;
pub mod config;
pub mod digest;
pub mod host;
pub mod names;
pub mod pgcopy;
pub mod project;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, WarehouseKind};
pub use project::Project;

/// Errors from loading or creating a project.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("configuration error in {location}: {message}")]
    Config { location: String, message: String },
    #[error(
        "no kondate.toml found in {searched} or any parent folder; run `kondate init` there, \
         or point at a project with --project DIR or KONDATE_PROJECT"
    )]
    NoProject { searched: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
}

impl CoreError {
    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The environment variable that names a failpoint for crash tests.
pub const FAILPOINT_VAR: &str = "KONDATE_FAILPOINT";

/// A named point where crash tests stop the process: when `KONDATE_FAILPOINT` equals `name`,
/// say so on stderr and sleep, so the test can kill the process exactly there. Does nothing
/// otherwise (one environment lookup).
pub fn failpoint(name: &str) {
    if std::env::var(FAILPOINT_VAR).is_ok_and(|v| v == name) {
        eprintln!("failpoint {name} reached");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}
