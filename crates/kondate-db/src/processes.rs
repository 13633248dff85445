//! The kondate processes that share a state database: each registers itself (host, pid,
//! version, command, start) and heartbeats; work it starts records it as the owner. Work is
//! declared lost only when its owner is — stopped, or silent for longer than a grace period
//! — never because another process started.

use crate::{Database, DbError, Value, get_i64, get_opt_i64, get_string};

/// One registered process, as the state database has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    /// `host:pid:started-ms:n`, unique across the machines sharing the database.
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// What it runs: `serve`, `query`, …
    pub command: String,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Set when it deregistered (a clean shutdown).
    pub stopped_at: Option<i64>,
}

impl Process {
    /// Whether it still counts as running at `now_ms`: not stopped, and heard from within
    /// `grace_ms`.
    pub fn is_live(&self, now_ms: i64, grace_ms: i64) -> bool {
        self.stopped_at.is_none() && now_ms - self.heartbeat_at <= grace_ms
    }

    /// `process host:pid:… (host, pid 42)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "kondate process {} ({} pid {})",
            self.id, self.host, self.pid
        )
    }
}

/// Why process `id` (`process`, as the state database has it) counts as gone at `now_ms`, or
/// None while it lives: it never registered, it deregistered, or it has been silent longer
/// than `lost_after`. The one verdict for every kind of work a process owns (queries, runs);
/// the reason names the process and when it was last heard from.
pub fn gone_reason(
    id: &str,
    process: Option<&Process>,
    now_ms: i64,
    lost_after: std::time::Duration,
) -> Option<String> {
    use kondate_core::clock::ms_to_rfc3339;
    let grace_ms = i64::try_from(lost_after.as_millis()).unwrap_or(i64::MAX);
    match process {
        None => Some(format!("kondate process {id} is not registered")),
        Some(p) => match p.stopped_at {
            Some(t) => Some(format!("{} stopped at {}", p.describe(), ms_to_rfc3339(t))),
            None if !p.is_live(now_ms, grace_ms) => Some(format!(
                "{} was last heard from at {}, more than {}s before {} (state.lost_after)",
                p.describe(),
                ms_to_rfc3339(p.heartbeat_at),
                lost_after.as_secs(),
                ms_to_rfc3339(now_ms)
            )),
            None => None,
        },
    }
}

/// This machine's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

const COLUMNS: &str = "id, host, pid, version, command, started_at, heartbeat_at, stopped_at";

fn from_row(r: &crate::AnyRow) -> Result<Process, DbError> {
    Ok(Process {
        id: get_string(r, "id")?,
        host: get_string(r, "host")?,
        pid: get_i64(r, "pid")?,
        version: get_string(r, "version")?,
        command: get_string(r, "command")?,
        started_at: get_i64(r, "started_at")?,
        heartbeat_at: get_i64(r, "heartbeat_at")?,
        stopped_at: get_opt_i64(r, "stopped_at"),
    })
}

/// Register this process (`command`, `version`) at `now_ms`.
pub async fn register(
    db: &Database,
    command: &str,
    version: &str,
    now_ms: i64,
) -> Result<Process, DbError> {
    // Two registrations in one process (tests, or a command that opens twice) in the same
    // millisecond still get distinct ids.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let host = hostname();
    let pid = i64::from(std::process::id());
    let p = Process {
        id: format!("{host}:{pid}:{now_ms}:{seq}"),
        host,
        pid,
        version: version.to_string(),
        command: command.to_string(),
        started_at: now_ms,
        heartbeat_at: now_ms,
        stopped_at: None,
    };
    db.execute(
        "INSERT INTO kondate_processes (id, host, pid, version, command, started_at, \
         heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[
            p.id.as_str().into(),
            p.host.as_str().into(),
            Value::Int(p.pid),
            p.version.as_str().into(),
            p.command.as_str().into(),
            Value::Int(now_ms),
            Value::Int(now_ms),
        ],
    )
    .await?;
    Ok(p)
}

/// Record that process `id` is alive at `now_ms`; false when it is no longer registered as
/// running (it deregistered, or its row is gone).
pub async fn heartbeat(db: &Database, id: &str, now_ms: i64) -> Result<bool, DbError> {
    Ok(db
        .execute(
            "UPDATE kondate_processes SET heartbeat_at = ? WHERE id = ? AND stopped_at IS NULL",
            &[Value::Int(now_ms), id.into()],
        )
        .await?
        > 0)
}

/// Deregister process `id` (a clean shutdown) at `now_ms`.
pub async fn stop(db: &Database, id: &str, now_ms: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE kondate_processes SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL",
        &[Value::Int(now_ms), id.into()],
    )
    .await?;
    Ok(())
}

/// Process `id`, if it ever registered.
pub async fn get(db: &Database, id: &str) -> Result<Option<Process>, DbError> {
    let rows = db
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM kondate_processes WHERE id = ?"),
            &[id.into()],
        )
        .await?;
    rows.first().map(from_row).transpose()
}

/// Every process heard from (or stopped) at or after `since_ms`, newest first.
pub async fn list(db: &Database, since_ms: i64) -> Result<Vec<Process>, DbError> {
    db.fetch_all(
        &format!(
            "SELECT {COLUMNS} FROM kondate_processes WHERE heartbeat_at >= ? \
             OR stopped_at >= ? ORDER BY started_at DESC, id"
        ),
        &[Value::Int(since_ms), Value::Int(since_ms)],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// How many queries each owner has waiting or running, by owner id.
pub async fn queries_owned(
    db: &Database,
) -> Result<std::collections::HashMap<String, i64>, DbError> {
    db.fetch_all(
        "SELECT owner, COUNT(*) AS n FROM kondate_queries \
         WHERE status IN ('pending', 'running') AND owner IS NOT NULL GROUP BY owner",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((get_string(r, "owner")?, get_i64(r, "n")?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_process_is_gone_only_when_stopped_silent_or_unknown() {
        let p = Process {
            id: "h:1:0:0".into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            command: "serve".into(),
            started_at: 0,
            heartbeat_at: 100_000,
            stopped_at: None,
        };
        let minute = Duration::from_secs(60);
        // Heard from 59 s ago: alive.
        assert_eq!(gone_reason(&p.id, Some(&p), 159_000, minute), None);
        let silent = gone_reason(&p.id, Some(&p), 161_000, minute).unwrap();
        assert!(
            silent.contains("h:1:0:0")
                && silent.contains("last heard from at 1970-01-01T00:01:40.000Z")
                && silent.contains("state.lost_after"),
            "{silent}"
        );
        let stopped = Process {
            stopped_at: Some(120_000),
            ..p.clone()
        };
        let why = gone_reason(&p.id, Some(&stopped), 121_000, minute).unwrap();
        assert!(why.contains("stopped at 1970-01-01T00:02:00.000Z"), "{why}");
        let why = gone_reason("x:2:0:0", None, 0, minute).unwrap();
        assert!(why.contains("x:2:0:0 is not registered"), "{why}");
    }
}
