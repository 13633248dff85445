//! The warehouse's own sessions on PostgreSQL and Redshift: what they are allowed to be and
//! what they carry between queries. Defence in depth behind the SQL guard:
//!
//! - **The role**: at start kondate asks who it is connected as, and refuses to serve
//!   queries as a superuser or as a member of a role that reads or writes server files, runs
//!   programs or signals other backends (`pg_read_server_files`, `pg_write_server_files`,
//!   `pg_execute_server_program`, `pg_signal_backend`) unless
//!   `warehouse.allow_privileged_role = true`. A read-only role (docs/query-api.md) cannot
//!   read `/etc/passwd` even if a statement got past the guard.
//! - **The lexing**: PostgreSQL sessions start with `standard_conforming_strings = on`, the
//!   way the guard lexes statements (`kondate_query::pglex`).
//! - **Nothing carries over**: every connection goes back to the pool reset — settings,
//!   session authorization, cursors, LISTENs, advisory locks, temporary tables — so nothing
//!   a query set survives into the next one. Prepared statements stay (sqlx's own cache).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

use crate::WarehouseError;

/// Roles whose members reach outside the database.
pub const PRIVILEGED_ROLES: &[&str] = &[
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
];

/// Which engine a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Postgres,
    Redshift,
}

/// What `after_release` runs, per engine. Redshift knows only `RESET ALL`.
fn reset_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
             SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
        }
        Engine::Redshift => "RESET ALL",
    }
}

/// A pool on `url` whose connections start and go back as described above.
pub(crate) async fn connect(
    url: &str,
    engine: Engine,
    max_connections: u32,
    what: &str,
) -> Result<PgPool, WarehouseError> {
    let redacted = kondate_core::config::redact_url(url);
    let cannot = |e: sqlx::Error| {
        WarehouseError::Engine(format!("cannot connect to {what} at {redacted}: {e}"))
    };
    let mut options = PgConnectOptions::from_str(url).map_err(cannot)?;
    if engine == Engine::Postgres {
        // A startup option, so that RESET ALL comes back to it.
        options = options.options([("standard_conforming_strings", "on")]);
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_release(move |conn, _| {
            Box::pin(async move {
                // An error closes the connection instead of reusing it.
                sqlx::raw_sql(reset_sql(engine)).execute(&mut *conn).await?;
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(cannot)
}

/// Close `conn` instead of handing it back to the pool when the work on it failed: a
/// statement can fail between protocol messages (a COPY refused after it was sent, a stream
/// cut short), and a session in that state answers the next query with the last one's
/// leftovers ("expected ParseComplete, got CommandComplete") or a transaction still open.
pub(crate) fn close_if_failed<T, E>(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
    outcome: &Result<T, E>,
) {
    if outcome.is_err() {
        conn.close_on_drop();
    }
}

/// Refuse a superuser or privileged role unless `allow` says otherwise.
pub(crate) async fn check_role(
    pool: &PgPool,
    engine: Engine,
    allow: bool,
) -> Result<(), WarehouseError> {
    let engine_error = |e: sqlx::Error| {
        WarehouseError::Engine(format!("cannot check the warehouse role's privileges: {e}"))
    };
    let (user, superuser, memberships): (String, bool, Vec<String>) = match engine {
        Engine::Postgres => {
            let row = pool
                .fetch_one(
                    "SELECT current_user::text AS who, rolsuper FROM pg_roles WHERE rolname = current_user",
                )
                .await
                .map_err(engine_error)?;
            let member_of: Vec<String> = sqlx::query_scalar(
                "SELECT rolname::text FROM pg_roles \
                 WHERE rolname = ANY($1) AND pg_has_role(current_user, oid, 'MEMBER')",
            )
            .bind(PRIVILEGED_ROLES)
            .fetch_all(pool)
            .await
            .map_err(engine_error)?;
            (row.get("who"), row.get("rolsuper"), member_of)
        }
        Engine::Redshift => {
            let row = pool
                .fetch_one(
                    "SELECT current_user::text AS who, usesuper AS rolsuper FROM pg_user WHERE usename = current_user",
                )
                .await
                .map_err(engine_error)?;
            (row.get("who"), row.get("rolsuper"), Vec::new())
        }
    };
    let mut why = Vec::new();
    if superuser {
        why.push("a superuser".to_string());
    }
    if !memberships.is_empty() {
        why.push(format!("a member of {}", memberships.join(", ")));
    }
    if why.is_empty() {
        return Ok(());
    }
    let what = why.join(" and ");
    if allow {
        tracing::warn!(
            role = %user,
            "the warehouse role is {what}; serving queries anyway because warehouse.allow_privileged_role = true"
        );
        return Ok(());
    }
    Err(WarehouseError::PrivilegedRole(format!(
        "the warehouse role `{user}` is {what}: a query that got past kondate's guard could \
         then read or write the server's files or stop other sessions. Connect as a role \
         that can only read what queries need (docs/query-api.md shows how to make one), or \
         set warehouse.allow_privileged_role = true (KONDATE_WAREHOUSE_ALLOW_PRIVILEGED_ROLE) \
         to accept the risk"
    )))
}
