//! Wake-ups between processes that share a database: PostgreSQL's `LISTEN`/`NOTIFY`, so
//! that a process waiting for work (a `kondate worker` on another machine) learns of it at
//! once instead of at its next poll. SQLite and MySQL/MariaDB have no such thing: there
//! [`Database::listen`] gives None and the waiter polls; [`Database::notify`] does nothing.

use crate::{Database, DbError, DbKind, Value};

/// A connection of its own that receives the notifications of one channel.
pub struct Listener {
    inner: sqlx::postgres::PgListener,
}

impl Listener {
    /// Until the next notification. Err when the connection was lost and could not be made
    /// again (the caller falls back to polling and listens again later).
    pub async fn recv(&mut self) -> Result<(), DbError> {
        self.inner
            .recv()
            .await
            .map(|_| ())
            .map_err(|source| crate::query_error("LISTEN", source))
    }
}

impl Database {
    /// Whether [`Database::listen`] can wake a waiter (PostgreSQL).
    pub fn can_wake(&self) -> bool {
        self.kind == DbKind::Postgres
    }

    /// Wake every process listening on `channel` (committed at once: this runs outside any
    /// transaction). Nothing on dialects without notifications.
    pub async fn notify(&self, channel: &str) -> Result<(), DbError> {
        if !self.can_wake() {
            return Ok(());
        }
        self.fetch_all("SELECT pg_notify(?, '')", &[Value::from(channel)])
            .await?;
        Ok(())
    }

    /// Listen on `channel` on a connection of its own; None on dialects without
    /// notifications.
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>, DbError> {
        if !self.can_wake() {
            return Ok(None);
        }
        let mut inner = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(|source| DbError::Connect {
                url: self.display_url.clone(),
                source,
            })?;
        inner
            .listen(channel)
            .await
            .map_err(|source| crate::query_error("LISTEN", source))?;
        Ok(Some(Listener { inner }))
    }
}
