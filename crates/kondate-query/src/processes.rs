//! The kondate processes sharing the state database, as `kondate processes` and
//! `GET /v1/processes` show them: each with its state and the work it owns.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kondate_core::clock::ms_to_rfc3339 as rfc3339;
use kondate_db::Database;
use serde::Serialize;

use crate::QueryError;

/// One process, for people and scripts.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessView {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// The command it runs: `serve`, `query`, …
    pub command: String,
    /// `live`, `stopped` (it deregistered) or `lost` (silent past `state.lost_after`).
    pub state: &'static str,
    pub started_at: String,
    pub last_heartbeat_at: String,
    pub stopped_at: Option<String>,
    /// Queries it owns that are waiting or running.
    pub queries: i64,
    /// Other work it records as in progress: label syncs, result writes and exports.
    pub work: Vec<WorkView>,
}

/// A piece of work in progress ([`kondate_db::processes::Work`]).
#[derive(Debug, Clone, Serialize)]
pub struct WorkView {
    /// `labels sync`, `results write`, `results export`.
    pub kind: String,
    /// The label set or result table.
    pub target: String,
    pub started_at: String,
}

/// The processes heard from (or stopped) since `since`, newest first, as seen at `now`.
pub async fn list(
    db: &Database,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    lost_after: Duration,
) -> Result<Vec<ProcessView>, QueryError> {
    let grace_ms = i64::try_from(lost_after.as_millis()).unwrap_or(i64::MAX);
    let owned = kondate_db::processes::queries_owned(db).await?;
    let mut work: std::collections::HashMap<String, Vec<WorkView>> = Default::default();
    for w in kondate_db::processes::work(db).await? {
        work.entry(w.process).or_default().push(WorkView {
            kind: w.kind,
            target: w.target,
            started_at: rfc3339(w.started_at),
        });
    }
    Ok(kondate_db::processes::list(db, since.timestamp_millis())
        .await?
        .into_iter()
        .map(|p| ProcessView {
            state: if p.stopped_at.is_some() {
                "stopped"
            } else if p.is_live(now.timestamp_millis(), grace_ms) {
                "live"
            } else {
                "lost"
            },
            queries: owned.get(&p.id).copied().unwrap_or(0),
            work: work.remove(&p.id).unwrap_or_default(),
            started_at: rfc3339(p.started_at),
            last_heartbeat_at: rfc3339(p.heartbeat_at),
            stopped_at: p.stopped_at.map(rfc3339),
            id: p.id,
            host: p.host,
            pid: p.pid,
            version: p.version,
            command: p.command,
        })
        .collect())
}
