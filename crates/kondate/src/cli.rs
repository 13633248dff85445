//! What every command shares: exit codes, the failure type, output formats, logging, the
//! project a command runs in, and the signals that stop a server.

use clap::ValueEnum;
use kondate_core::Project;

/// Exit codes with a meaning scripts can rely on.
pub mod exit {
    /// Something failed at run time (a service, the network, a file).
    pub const FAILURE: u8 = 1;
    /// The command line or the input was invalid; nothing was changed.
    pub const INVALID: u8 = 2;
    /// The query ran and the warehouse reported an error.
    pub const QUERY_FAILED: u8 = 3;
    /// Not allowed: the command's principal (a token, inside an app run) lacks the scope,
    /// or its credentials are not valid.
    pub const FORBIDDEN: u8 = 4;
    /// Someone else changed it since the version the command started from (a description
    /// edited meanwhile); nothing was changed.
    pub const CONFLICT: u8 = 5;
}

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: exit::FAILURE,
            message: e.to_string(),
        }
    }
}

impl Failure {
    /// Invalid input: exit code 2.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            code: exit::INVALID,
            message: message.into(),
        }
    }

    /// Changed meanwhile by someone else: exit code 5.
    pub fn conflict(message: impl Into<String>) -> Self {
        Failure {
            code: exit::CONFLICT,
            message: message.into(),
        }
    }
}

/// Result type of every command.
pub type CmdResult = Result<(), Failure>;

/// Output format for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ListFormat {
    #[default]
    Text,
    Json,
}

/// Logs go to stderr; `KONDATE_LOG` sets the filter (default: `info` for the server and a
/// worker, `warn` for one-shot commands, whose own output is the report) and
/// `KONDATE_LOG_FORMAT=json` makes them structured.
pub fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KONDATE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("KONDATE_LOG_FORMAT").is_ok_and(|v| v == "json");
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Who runs a command, for histories (label revisions, alias moves): `cli:USER`, or the
/// token the command acts as (see `cli_access`).
pub fn actor() -> String {
    crate::cli_access::actor()
}

/// Load the project the command runs in.
pub fn load_project(explicit: Option<&std::path::Path>) -> Result<Project, Failure> {
    let cwd = std::env::current_dir()?;
    let root = Project::discover(explicit, &cwd).map_err(|e| Failure::invalid(e.to_string()))?;
    Project::load(&root, std::env::vars()).map_err(|e| Failure::invalid(e.to_string()))
}

/// Resolve when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
