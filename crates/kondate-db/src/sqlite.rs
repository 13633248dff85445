//! Opening a SQLite file safely when any number of processes do it at the same moment.
//!
//! kondate keeps its SQLite databases in WAL mode, so that the CLI reads while `kondate serve`
//! writes. WAL is a property of the file (bytes 18–19 of its header), set once by
//! `PRAGMA journal_mode=WAL`. That statement is the one SQLite does not wait for: it reads
//! page 1 in a read transaction and then upgrades to an exclusive lock *inside the same
//! transaction* (`sqlite3BtreeSetVersion`), and SQLite never runs the busy handler for such
//! an upgrade, because two connections each holding a read lock and each waiting for the
//! other to let go would deadlock. So when two processes switch a new file at the same
//! moment, the one that loses the race gets `SQLITE_BUSY` at once, whatever the busy timeout.
//!
//! [`prepare`] makes that safe:
//! - it opens the file on a connection of its own whose busy timeout is in force before its
//!   first statement (sqlx calls `sqlite3_busy_timeout` while establishing the connection);
//! - it first only *reads* the journal mode: a file already in WAL — every file after its
//!   first open — needs no write lock to be opened;
//! - otherwise it asks for WAL, and if another process holds the write lock (it is switching
//!   the file itself, or writing), it waits for that lock the way SQLite does wait — with
//!   `BEGIN IMMEDIATE`, which takes the write lock from no transaction and so goes through
//!   the busy handler — releases it at once, and reads the mode again. Each time round,
//!   the process that got the write lock has finished switching, so this ends after one
//!   wait in practice, and always by the busy timeout;
//! - it closes its connection before the pool opens any, so nothing of this process holds a
//!   lock on the file while another process switches it.
//!
//! Hand-written because neither sqlx nor SQLite offers "switch to WAL, tolerating a
//! concurrent switch": sqlx deliberately leaves `journal_mode` unset for this reason
//! (launchbadge/sqlx#1930).

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::DbError;

/// How long a statement waits for a lock another connection holds before it fails with
/// `database is locked`; also the longest [`prepare`] waits for another process.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Make sure the SQLite database at `url` (created if missing) is in WAL mode; safe when
/// any number of processes call it for the same file at the same moment.
pub(crate) async fn prepare(url: &str, display_url: &str) -> Result<(), DbError> {
    let connect_error = |source| DbError::Connect {
        url: display_url.to_string(),
        source,
    };
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(connect_error)?;
    let outcome = switch_to_wal(&mut conn, display_url).await;
    // Closed whatever happened: an open connection would hold up other processes.
    let _ = conn.close().await;
    outcome
}

async fn switch_to_wal(conn: &mut SqliteConnection, display_url: &str) -> Result<(), DbError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // Reading the mode reads the header (the pragma needs the schema): it takes only a
        // read lock, and that waits through the busy handler.
        let mode = scalar(conn, "PRAGMA journal_mode").await?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match scalar(conn, "PRAGMA journal_mode=WAL").await {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                // SQLite keeps the old mode where WAL cannot work (a VFS without shared
                // memory, a read-only file): everything still works, readers just wait
                // for writers.
                tracing::warn!(
                    database = display_url,
                    mode,
                    "SQLite kept its journal mode instead of switching to WAL; readers will wait for writers"
                );
                return Ok(());
            }
            Err(e) if e.is_lock_timeout() && Instant::now() < deadline => {
                // Another process holds the write lock: wait for it (this does go through
                // the busy handler) and look again.
                sqlx::raw_sql("BEGIN IMMEDIATE; ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .map_err(|source| DbError::Query {
                        context: "waiting for another process to switch the SQLite database to WAL"
                            .into(),
                        source,
                    })?;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn scalar(conn: &mut SqliteConnection, sql: &'static str) -> Result<String, DbError> {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(|source| DbError::Query {
            context: format!("running `{sql}`"),
            source,
        })
}
