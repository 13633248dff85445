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

pub use kondate_core::host::hostname;

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
    // A clean shutdown leaves no work recorded as in progress.
    db.execute("DELETE FROM kondate_work WHERE process = ?", &[id.into()])
        .await?;
    Ok(())
}

/// Work a process does that others may wait for or want to see: a label sync, a result
/// write or export. Recorded while it runs (see [`begin_work`]); the row goes when it ends,
/// when its process stops, or — left by a process that died — when a sweep finds its
/// process gone ([`release_work_of_gone`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub id: i64,
    /// The id of the process doing it.
    pub process: String,
    /// `labels sync`, `results write`, `results export`.
    pub kind: String,
    /// What it works on: the label set's or result table's name.
    pub target: String,
    pub started_at: i64,
}

impl Work {
    /// `labels sync of `recipes` since 2026-…`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} of `{}` since {}",
            self.kind,
            self.target,
            kondate_core::clock::ms_to_rfc3339(self.started_at)
        )
    }
}

const WORK_COLUMNS: &str = "id, process, kind, target, started_at";

fn work_from_row(r: &crate::AnyRow) -> Result<Work, DbError> {
    Ok(Work {
        id: get_i64(r, "id")?,
        process: get_string(r, "process")?,
        kind: get_string(r, "kind")?,
        target: get_string(r, "target")?,
        started_at: get_i64(r, "started_at")?,
    })
}

/// Record that `process` starts `kind` on `target` at `now_ms`; the guard removes the record
/// when dropped (the work finished, failed, or was cancelled).
pub async fn begin_work(
    db: &Database,
    process: &str,
    kind: &str,
    target: &str,
    now_ms: i64,
) -> Result<WorkGuard, DbError> {
    let id = db
        .insert_returning_id(
            "INSERT INTO kondate_work (process, kind, target, started_at) VALUES (?, ?, ?, ?)",
            &[
                process.into(),
                kind.into(),
                target.into(),
                Value::Int(now_ms),
            ],
        )
        .await?;
    Ok(WorkGuard { db: db.clone(), id })
}

/// The record of work in progress; dropping it removes the record (on a task of its own:
/// a drop cannot wait). A process killed while it holds one leaves the row for
/// [`release_work_of_gone`].
#[derive(Debug)]
pub struct WorkGuard {
    db: Database,
    id: i64,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let (db, id) = (self.db.clone(), self.id);
        let forget = async move {
            if let Err(e) = db
                .execute("DELETE FROM kondate_work WHERE id = ?", &[Value::Int(id)])
                .await
            {
                tracing::warn!(work = id, error = %e, "could not remove a finished work record; the next sweep after this process stops removes it");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(forget);
            }
            Err(_) => tracing::warn!(work = id, "no runtime to remove a finished work record"),
        }
    }
}

/// Every piece of work recorded, oldest first.
pub async fn work(db: &Database) -> Result<Vec<Work>, DbError> {
    db.fetch_all(
        &format!("SELECT {WORK_COLUMNS} FROM kondate_work ORDER BY started_at, id"),
        &[],
    )
    .await?
    .iter()
    .map(work_from_row)
    .collect()
}

/// Who is doing `kind` on `target` now, besides `except` (this process), with their
/// process: what a message says when this process has to wait for it.
pub async fn work_on(
    db: &Database,
    kind: &str,
    target: &str,
    except: &str,
) -> Result<Vec<(Work, Option<Process>)>, DbError> {
    let mut out = Vec::new();
    for r in db
        .fetch_all(
            &format!(
                "SELECT {WORK_COLUMNS} FROM kondate_work WHERE kind = ? AND target = ? \
                 AND process <> ? ORDER BY started_at, id"
            ),
            &[kind.into(), target.into(), except.into()],
        )
        .await?
    {
        let w = work_from_row(&r)?;
        let p = get(db, &w.process).await?;
        out.push((w, p));
    }
    Ok(out)
}

/// Remove the records of work whose process is gone at `now_ms` ([`gone_reason`]): what a
/// killed process left. Returns each with the reason, for the log. Idempotent: every
/// process may sweep at once.
pub async fn release_work_of_gone(
    db: &Database,
    now_ms: i64,
    lost_after: std::time::Duration,
) -> Result<Vec<(Work, String)>, DbError> {
    let mut released = Vec::new();
    let mut verdicts: std::collections::HashMap<String, Option<String>> = Default::default();
    for w in work(db).await? {
        if !verdicts.contains_key(&w.process) {
            let p = get(db, &w.process).await?;
            let reason = gone_reason(&w.process, p.as_ref(), now_ms, lost_after);
            verdicts.insert(w.process.clone(), reason);
        }
        if let Some(Some(reason)) = verdicts.get(&w.process) {
            db.execute("DELETE FROM kondate_work WHERE id = ?", &[Value::Int(w.id)])
                .await?;
            released.push((w, reason.clone()));
        }
    }
    Ok(released)
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

    #[tokio::test]
    async fn work_is_recorded_while_it_runs_and_released_when_its_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let db = Database::connect(&url).await.unwrap();
        crate::state::migrate(&db).await.unwrap();
        let minute = Duration::from_secs(60);
        let a = register(&db, "serve", "0", 1_000).await.unwrap();
        let b = register(&db, "labels", "0", 1_000).await.unwrap();

        let guard = begin_work(&db, &b.id, "labels sync", "recipes", 2_000)
            .await
            .unwrap();
        // A sees B doing it; B does not count itself.
        let seen = work_on(&db, "labels sync", "recipes", &a.id).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.process, b.id);
        assert_eq!(seen[0].1.as_ref().unwrap().command, "labels");
        assert!(
            seen[0]
                .0
                .describe()
                .starts_with("labels sync of `recipes` since 1970")
        );
        assert!(
            work_on(&db, "labels sync", "recipes", &b.id)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            work_on(&db, "labels sync", "other", &a.id)
                .await
                .unwrap()
                .is_empty()
        );

        // Dropping the guard removes the record.
        drop(guard);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !work(&db).await.unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the record stayed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // B is killed while it works: the record stays while B might be alive, and is
        // released, with the reason, once B is silent past the grace period. Every process
        // may sweep at once: a second sweep finds nothing.
        std::mem::forget(
            begin_work(&db, &b.id, "results write", "scores", 3_000)
                .await
                .unwrap(),
        );
        heartbeat(&db, &a.id, 70_000).await.unwrap();
        assert!(
            release_work_of_gone(&db, 60_000, minute)
                .await
                .unwrap()
                .is_empty()
        );
        let released = release_work_of_gone(&db, 62_000, minute).await.unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].0.target, "scores");
        assert!(released[0].1.contains(&b.id), "{}", released[0].1);
        assert!(
            release_work_of_gone(&db, 62_000, minute)
                .await
                .unwrap()
                .is_empty()
        );

        // A clean stop removes what the process still had recorded.
        std::mem::forget(
            begin_work(&db, &a.id, "results export", "scores", 71_000)
                .await
                .unwrap(),
        );
        stop(&db, &a.id, 72_000).await.unwrap();
        assert!(work(&db).await.unwrap().is_empty());
    }
}
