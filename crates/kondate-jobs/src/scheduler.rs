//! The scheduler's state in the state database, shared by every `kondate serve` process:
//! the jobs the project defines (each change a script revision, with its digest and time),
//! and the scheduling pass that launches due slots as instances.
//!
//! - **Revisions**: [`Scheduler::load`] records what the project's `jobs/` folder holds. A
//!   definition with a new digest becomes a new revision and the job's current one; a
//!   definition that fails to load keeps the job on its last good revision, with the error
//!   recorded (shown by `kondate jobs list`) — the job keeps running as it did. A job whose
//!   file is gone is marked removed and no longer scheduled.
//! - **Exactly once**: an instance is launched by inserting it under a unique launch key
//!   (`schedule/JOB/SLOT_MS` for a slot), so schedulers that compute the same pass at the
//!   same time launch each slot once; the one whose insert is refused counts it as
//!   launched elsewhere. A job's cursor moves only forward, compare-and-set.
//! - **`prevent_multi`**: a due slot is not launched while an instance of the job is in a
//!   state the job's rule names; under `catchup: 'all'` the slot waits for the next pass
//!   (the cursor stays before it, so no slot of a backlog is dropped), otherwise it is
//!   skipped and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use kondate_db::{Database, DbError, Value, get_i64, get_opt_i64, get_opt_string, get_string};

use crate::JobsError;
use crate::definition::{Catchup, JobDefinition, PreventMulti, Trigger, from_json};
use crate::plan;

/// What the project's `jobs/` folder gave for one job.
#[derive(Debug)]
pub enum Loaded {
    Ok(Box<JobDefinition>),
    /// The file of job `name` did not load; `error` says where and why.
    Failed {
        name: String,
        error: String,
    },
}

/// What [`Scheduler::load`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Jobs that got a new revision (new jobs included), with its id.
    pub revised: Vec<(String, i64)>,
    /// Jobs whose definition failed to load, with the error; they keep their last good
    /// revision (None: they have none and are not scheduled).
    pub failed: Vec<(String, Option<i64>, String)>,
    /// Jobs whose file is gone.
    pub removed: Vec<String>,
}

/// A job as the scheduler holds it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub name: String,
    pub revision: Option<i64>,
    pub digest: Option<String>,
    pub revised_at: Option<i64>,
    pub cursor_at: Option<i64>,
    pub load_error: Option<String>,
    pub removed: bool,
    /// Suspended by an operator or owner (`kondate jobs suspend`), by whom; besides a
    /// definition's own `suspended`.
    pub suspended_by: Option<String>,
}

/// One instance of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: i64,
    pub job: String,
    pub revision: i64,
    pub reason: String,
    pub scheduled_at: i64,
    pub status: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Why it is in ERROR.
    pub error: Option<String>,
}

impl Instance {
    /// As the CLI and the API show it (times in RFC 3339).
    pub fn to_json(&self) -> serde_json::Value {
        let time = kondate_core::clock::ms_to_rfc3339;
        serde_json::json!({
            "id": self.id, "job": self.job, "revision": self.revision, "reason": self.reason,
            "scheduled_at": time(self.scheduled_at), "status": self.status,
            "created_at": time(self.created_at), "finished_at": self.finished_at.map(time),
            "error": self.error,
        })
    }
}

/// The instance states (kuroko2's): WORKING and ERROR are not final.
pub const WORKING: &str = "working";
pub const ERROR: &str = "error";
pub const SUCCESS: &str = "success";
pub const CANCEL: &str = "cancel";

/// What one scheduling pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// (job, slot, instance id) launched by this pass.
    pub launched: Vec<(String, DateTime<Utc>, i64)>,
    /// Slots another scheduler launched first.
    pub launched_elsewhere: u64,
    /// Slots not launched because of `prevent_multi` (skipped, or waiting under `all`).
    pub prevented: Vec<(String, DateTime<Utc>)>,
    /// Slots passed and not launched (catch-up), and skipped by suspend schedules.
    pub missed: u64,
    pub suspended: u64,
    /// (job, event id, instance id) launched by a trigger in this pass.
    pub triggered: Vec<(String, i64, i64)>,
    /// The earliest slot after now of any scheduled job: when the next pass has work.
    pub next_due: Option<DateTime<Utc>>,
}

/// The events that can trigger a job.
const TRIGGER_EVENTS: [&str; 3] = ["labels.changed", "model.alias_moved", "job.succeeded"];

/// Whether `trigger` fires on event `kind` about `subject` (`payload` its JSON).
fn fires(trigger: &Trigger, kind: &str, subject: &str, payload: &serde_json::Value) -> bool {
    match trigger {
        Trigger::LabelsChanged(set) => {
            kind == "labels.changed" && payload["label_set"].as_str() == Some(set.as_str())
        }
        Trigger::ModelAliasMoved { model, alias } => {
            kind == "model.alias_moved" && subject == format!("{model}@{alias}")
        }
        Trigger::JobSucceeded(job) => kind == "job.succeeded" && subject == job,
    }
}

/// The scheduler's state; cheap to clone (clones share what they keep in memory).
#[derive(Debug, Clone)]
pub struct Scheduler {
    db: Database,
    /// Definitions read back from their revisions, by revision id (revisions never change).
    parsed: Arc<Mutex<HashMap<i64, Arc<JobDefinition>>>>,
    /// The scheduled jobs as the last pass left them (see [`Scheduler::pass`]); a tokio
    /// mutex, held across a pass, so one process's passes do not overlap.
    known: Arc<tokio::sync::Mutex<Known>>,
}

/// What passes keep of the scheduled jobs between them: the rows as of `version` of the
/// jobs' change counter, each with when it next has work. A pass whose counter reads the
/// same evaluates only the jobs that are due, so a pass between fire times costs a few
/// reads however many jobs there are.
#[derive(Debug, Default)]
struct Known {
    version: Option<i64>,
    jobs: Vec<KnownJob>,
}

#[derive(Debug)]
struct KnownJob {
    row: JobRow,
    revision: i64,
    /// Its definition, `suspended` when an operator suspended it.
    def: Arc<JobDefinition>,
    /// When a pass next has work for it: None never (suspended, or no schedules); a time
    /// before the first pass's for a job just read.
    due: Option<DateTime<Utc>>,
}

/// The jobs' change counter (a row of `kondate_job_cursors`): every change to what a pass
/// schedules — a new revision, a job added, removed, suspended or resumed — adds one, after
/// the change, so a pass that reads the counter before the rows never keeps a stale row
/// past the next pass. Cursors moved by passes do not count: a pass may work from an older
/// cursor than the database holds, which only makes it find slots already launched.
const JOBS_VERSION: &str = "jobs.version";

/// The assignment that moves a job's cursor forward to now (bound twice, to now's
/// milliseconds) when it comes back from being suspended: what passed meanwhile is not
/// launched.
const CURSOR_TO_NOW: &str =
    "cursor_at = CASE WHEN cursor_at IS NULL OR cursor_at < ? THEN ? ELSE cursor_at END";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

/// Named positions in the state database (`kondate_job_cursors`), shared by every
/// process: where the triggers and the notifications have read the events to, when the
/// retention job last ran. Moved only by compare-and-set.
pub(crate) mod cursor {
    use kondate_db::{Database, Value, get_i64, get_opt_i64};

    use crate::JobsError;

    /// The cursor `name`, if set.
    pub async fn get(db: &Database, name: &str) -> Result<Option<i64>, JobsError> {
        Ok(db
            .fetch_optional(
                "SELECT position FROM kondate_job_cursors WHERE name = ?",
                &[Value::Text(name.into())],
            )
            .await?
            .map(|r| get_i64(&r, "position"))
            .transpose()?)
    }

    /// Set cursor `name` to `position` if it is not set; true when this call set it.
    pub async fn create(db: &Database, name: &str, position: i64) -> Result<bool, JobsError> {
        match db
            .execute(
                "INSERT INTO kondate_job_cursors (name, position) VALUES (?, ?)",
                &[Value::Text(name.into()), Value::Int(position)],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A reader's position in the events: None the first time, when the cursor is set to
    /// the newest event (a new reader does not replay the past).
    pub async fn events(db: &Database, name: &str) -> Result<Option<i64>, JobsError> {
        if let Some(p) = get(db, name).await? {
            return Ok(Some(p));
        }
        let newest = db
            .fetch_optional("SELECT MAX(id) AS m FROM kondate_events", &[])
            .await?
            .and_then(|r| get_opt_i64(&r, "m"))
            .unwrap_or(0);
        create(db, name, newest).await?;
        Ok(None)
    }

    /// Add one to counter `name` (creating it at 1).
    pub async fn bump(db: &Database, name: &str) -> Result<(), JobsError> {
        let params = [Value::Text(name.into())];
        let add = || {
            db.execute(
                "UPDATE kondate_job_cursors SET position = position + 1 WHERE name = ?",
                &params,
            )
        };
        if add().await? == 0 && !create(db, name, 1).await? {
            // Created by another process between the two statements.
            add().await?;
        }
        Ok(())
    }

    /// Move cursor `name` from `from` to `to`; false when another process moved it first.
    pub async fn advance(db: &Database, name: &str, from: i64, to: i64) -> Result<bool, JobsError> {
        Ok(db
            .execute(
                "UPDATE kondate_job_cursors SET position = ? WHERE name = ? AND position = ?",
                &[Value::Int(to), Value::Text(name.into()), Value::Int(from)],
            )
            .await?
            == 1)
    }
}

impl Scheduler {
    pub fn new(db: Database) -> Scheduler {
        Scheduler {
            db,
            parsed: Arc::default(),
            known: Arc::default(),
        }
    }

    /// Suspend job `name` (`by` whom): it launches nothing — no slot, no trigger — until
    /// resumed, and the slots that pass meanwhile are not launched afterwards. Instances
    /// already working go on.
    pub async fn suspend(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), JobsError> {
        self.job_row(name)
            .await?
            .filter(|j| !j.removed)
            .ok_or_else(|| JobsError::NoSuchJob(name.to_string()))?;
        self.db
            .execute(
                "UPDATE kondate_jobs SET suspended_at = COALESCE(suspended_at, ?), \
                 suspended_by = COALESCE(suspended_by, ?), updated_at = ? WHERE name = ?",
                &[
                    Value::Int(ms(now)),
                    Value::Text(by.to_string()),
                    Value::Int(ms(now)),
                    Value::Text(name.to_string()),
                ],
            )
            .await?;
        cursor::bump(&self.db, JOBS_VERSION).await?;
        Ok(())
    }

    /// Resume job `name` suspended by [`Scheduler::suspend`] (a definition's own
    /// `suspended: true` stays until its file changes). Its cursor moves to `now`: what
    /// passed while it was suspended is not launched.
    pub async fn resume(&self, name: &str, now: DateTime<Utc>) -> Result<(), JobsError> {
        self.job_row(name)
            .await?
            .filter(|j| !j.removed)
            .ok_or_else(|| JobsError::NoSuchJob(name.to_string()))?;
        self.db
            .execute(
                &format!(
                    "UPDATE kondate_jobs SET suspended_at = NULL, suspended_by = NULL, \
                     updated_at = ?, {CURSOR_TO_NOW} WHERE name = ? AND suspended_at IS NOT NULL"
                ),
                &[
                    Value::Int(ms(now)),
                    Value::Int(ms(now)),
                    Value::Int(ms(now)),
                    Value::Text(name.to_string()),
                ],
            )
            .await?;
        cursor::bump(&self.db, JOBS_VERSION).await?;
        Ok(())
    }

    /// The state database it works on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Record what the project's `jobs/` folder holds now (see the module). A job whose
    /// definition is the one recorded costs nothing: the reload every `jobs.reload` of
    /// thousands of unchanged jobs is one read.
    pub async fn load(
        &self,
        loaded: &[Loaded],
        now: DateTime<Utc>,
    ) -> Result<LoadReport, JobsError> {
        let mut report = LoadReport::default();
        let now_ms = ms(now);
        let rows = self.jobs().await?;
        let by_name: HashMap<&str, &JobRow> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut present = std::collections::HashSet::new();
        // Whether what a pass schedules changed (the jobs' change counter is bumped).
        let mut changed = false;
        for l in loaded {
            match l {
                Loaded::Ok(def) => {
                    present.insert(def.name.as_str());
                    let row = by_name.get(def.name.as_str()).copied();
                    if row.is_some_and(|r| {
                        r.digest.as_deref() == Some(def.digest.as_str())
                            && !r.removed
                            && r.load_error.is_none()
                    }) {
                        continue;
                    }
                    let id = self.revision(def, now_ms).await?;
                    let old = row.and_then(|r| r.revision);
                    if old != Some(id) {
                        report.revised.push((def.name.clone(), id));
                    }
                    changed |= old != Some(id) || row.is_none_or(|r| r.removed);
                    let mut set = "revision = ?, load_error = NULL, load_error_at = NULL, \
                                   removed_at = NULL, updated_at = ?"
                        .to_string();
                    let mut params = vec![Value::Int(id), Value::Int(now_ms)];
                    // A definition that no longer says `suspended`: what passed while it
                    // did is not launched (as after `kondate jobs resume`).
                    let was_suspended = match old {
                        Some(o) if o != id && !def.suspended => {
                            self.definition(&def.name, o).await?.suspended
                        }
                        _ => false,
                    };
                    if was_suspended {
                        set.push_str(", ");
                        set.push_str(CURSOR_TO_NOW);
                        params.extend([Value::Int(now_ms), Value::Int(now_ms)]);
                    }
                    self.upsert_job(&def.name, &set, params, now_ms).await?;
                }
                Loaded::Failed { name, error } => {
                    present.insert(name.as_str());
                    let row = by_name.get(name.as_str()).copied();
                    let revision = row.and_then(|r| r.revision);
                    report.failed.push((name.clone(), revision, error.clone()));
                    if row.is_none_or(|r| r.removed) {
                        // Back after being removed: on its last good revision, if any.
                        self.upsert_job(
                            name,
                            "removed_at = NULL, updated_at = ?",
                            vec![Value::Int(now_ms)],
                            now_ms,
                        )
                        .await?;
                        changed |= revision.is_some();
                    }
                    if row.is_some_and(|r| r.load_error.as_deref() == Some(error.as_str())) {
                        continue;
                    }
                    // Once per new error, whichever scheduler records it first: the reload
                    // every `jobs.reload` must not bring the same failure up again.
                    let recorded = self
                        .db
                        .execute(
                            "UPDATE kondate_jobs SET load_error = ?, load_error_at = ? \
                             WHERE name = ? AND (load_error IS NULL OR load_error <> ?)",
                            &[
                                Value::Text(error.clone()),
                                Value::Int(now_ms),
                                Value::Text(name.clone()),
                                Value::Text(error.clone()),
                            ],
                        )
                        .await?;
                    if recorded == 1 {
                        let payload = serde_json::json!({ "job": name, "error": error, "revision": revision });
                        kondate_db::state::record_event(
                            &self.db,
                            "job.definition_failed",
                            name,
                            &payload.to_string(),
                            now_ms,
                        )
                        .await?;
                    }
                }
            }
        }
        for job in &rows {
            if !job.removed && !present.contains(job.name.as_str()) {
                self.db
                    .execute(
                        "UPDATE kondate_jobs SET removed_at = ?, updated_at = ? WHERE name = ? \
                         AND removed_at IS NULL",
                        &[
                            Value::Int(now_ms),
                            Value::Int(now_ms),
                            Value::Text(job.name.clone()),
                        ],
                    )
                    .await?;
                report.removed.push(job.name.clone());
                changed = true;
            }
        }
        if changed {
            cursor::bump(&self.db, JOBS_VERSION).await?;
        }
        Ok(report)
    }

    /// The revision of `def` (found by its digest, or recorded now).
    async fn revision(&self, def: &JobDefinition, now_ms: i64) -> Result<i64, JobsError> {
        let find = || async {
            let row = self
                .db
                .fetch_optional(
                    "SELECT id FROM kondate_job_revisions WHERE job = ? AND digest = ?",
                    &[
                        Value::Text(def.name.clone()),
                        Value::Text(def.digest.clone()),
                    ],
                )
                .await?;
            row.map(|r| get_i64(&r, "id")).transpose()
        };
        if let Some(id) = find().await? {
            return Ok(id);
        }
        match self
            .db
            .insert_returning_id(
                "INSERT INTO kondate_job_revisions (job, digest, definition, loaded_at) \
                 VALUES (?, ?, ?, ?)",
                &[
                    Value::Text(def.name.clone()),
                    Value::Text(def.digest.clone()),
                    Value::Text(def.json.to_string()),
                    Value::Int(now_ms),
                ],
            )
            .await
        {
            Ok(id) => Ok(id),
            // Another scheduler recorded the same revision at the same moment.
            Err(e) if e.is_unique_violation() => Ok(find()
                .await?
                .ok_or_else(|| DbError::missing_row("reading a job revision"))?),
            Err(e) => Err(e.into()),
        }
    }

    /// Update job `name`'s row with `set`, creating the row first if it is missing.
    async fn upsert_job(
        &self,
        name: &str,
        set: &str,
        mut params: Vec<Value>,
        now_ms: i64,
    ) -> Result<(), JobsError> {
        match self
            .db
            .execute(
                "INSERT INTO kondate_jobs (name, updated_at) VALUES (?, ?)",
                &[Value::Text(name.to_string()), Value::Int(now_ms)],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        params.push(Value::Text(name.to_string()));
        self.db
            .execute(
                &format!("UPDATE kondate_jobs SET {set} WHERE name = ?"),
                &params,
            )
            .await?;
        Ok(())
    }

    const JOB_COLUMNS: &'static str = "j.name, j.revision, j.cursor_at, j.load_error, \
        j.removed_at, j.suspended_at, j.suspended_by, r.digest, r.loaded_at FROM kondate_jobs j LEFT JOIN kondate_job_revisions r \
        ON r.id = j.revision";

    fn job_of(row: &kondate_db::AnyRow) -> Result<JobRow, JobsError> {
        Ok(JobRow {
            name: get_string(row, "name")?,
            revision: get_opt_i64(row, "revision"),
            digest: get_opt_string(row, "digest"),
            revised_at: get_opt_i64(row, "loaded_at"),
            cursor_at: get_opt_i64(row, "cursor_at"),
            load_error: get_opt_string(row, "load_error"),
            removed: get_opt_i64(row, "removed_at").is_some(),
            suspended_by: get_opt_i64(row, "suspended_at")
                .map(|_| get_opt_string(row, "suspended_by").unwrap_or_default()),
        })
    }

    /// Every job the scheduler knows, by name (removed ones too).
    pub async fn jobs(&self) -> Result<Vec<JobRow>, JobsError> {
        let rows = self
            .db
            .fetch_all(
                &format!("SELECT {} ORDER BY j.name", Self::JOB_COLUMNS),
                &[],
            )
            .await?;
        rows.iter().map(Self::job_of).collect()
    }

    /// Job `name`, if the scheduler knows it.
    pub async fn job_row(&self, name: &str) -> Result<Option<JobRow>, JobsError> {
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {} WHERE j.name = ?", Self::JOB_COLUMNS),
                &[Value::Text(name.to_string())],
            )
            .await?;
        row.as_ref().map(Self::job_of).transpose()
    }

    /// Job `job` as the CLI and the API list it: its current revision's schedules and next
    /// `next` fire times (UTC, RFC 3339), owners, tags, whether suspended (and by whom), or
    /// why it does not load.
    pub async fn job_json(
        &self,
        job: &JobRow,
        now: DateTime<Utc>,
        next: usize,
    ) -> serde_json::Value {
        let def = match job.revision {
            Some(r) => self.definition(&job.name, r).await.ok(),
            None => None,
        };
        let time = kondate_core::clock::ms_to_rfc3339;
        serde_json::json!({
            "name": job.name,
            "revision": job.revision,
            "digest": job.digest,
            "revised_at": job.revised_at.map(time),
            "load_error": job.load_error,
            "removed": job.removed,
            "description": def.as_ref().map(|d| d.description.clone()),
            "schedules": def.as_ref().map(|d| d.schedules.iter().map(|s| serde_json::json!({
                "cron": s.expression, "time_zone": s.zone.name(),
            })).collect::<Vec<_>>()),
            "suspended": def.as_ref().map(|d| d.suspended || job.suspended_by.is_some()),
            "suspended_by": job.suspended_by,
            "owners": def.as_ref().map(|d| d.owners.clone()),
            "tags": def.as_ref().map(|d| d.tags.clone()),
            "next": def.as_ref().map(|d| plan::next_slots(d, now, next)
                .into_iter().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .collect::<Vec<_>>()),
        })
    }

    /// Job `name` in full (`kondate jobs show`, `GET /v1/jobs/{name}`): [`Scheduler::job_json`]
    /// with its next five fire times, its current script, its script revisions (newest
    /// first) and its latest ten instances.
    pub async fn job_detail(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Value, JobsError> {
        let job = self
            .job_row(name)
            .await?
            .ok_or_else(|| JobsError::NoSuchJob(name.to_string()))?;
        let mut out = self.job_json(&job, now, 5).await;
        if let Some(r) = job.revision {
            out["script"] = self.definition(name, r).await?.script.clone().into();
        }
        let revisions = self
            .db
            .fetch_all(
                "SELECT id, digest, loaded_at FROM kondate_job_revisions WHERE job = ? \
                 ORDER BY id DESC LIMIT 20",
                &[Value::Text(name.to_string())],
            )
            .await?;
        out["revisions"] = revisions
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "id": get_i64(r, "id")?,
                    "digest": get_string(r, "digest")?,
                    "loaded_at": kondate_core::clock::ms_to_rfc3339(get_i64(r, "loaded_at")?),
                }))
            })
            .collect::<Result<Vec<_>, JobsError>>()?
            .into();
        out["instances"] = self
            .instances(name, 10)
            .await?
            .iter()
            .map(Instance::to_json)
            .collect::<Vec<_>>()
            .into();
        Ok(out)
    }

    /// The definition of revision `id` of job `name`.
    pub async fn definition(&self, name: &str, id: i64) -> Result<Arc<JobDefinition>, JobsError> {
        if let Some(d) = self.parsed.lock().expect("cache lock").get(&id) {
            return Ok(d.clone());
        }
        let row = self
            .db
            .fetch_optional(
                "SELECT definition FROM kondate_job_revisions WHERE id = ?",
                &[Value::Int(id)],
            )
            .await?
            .ok_or_else(|| DbError::missing_row("reading a job revision"))?;
        let json: serde_json::Value = serde_json::from_str(&get_string(&row, "definition")?)
            .map_err(|e| JobsError::Definition {
                location: format!("revision {id} of job `{name}`"),
                message: format!("the stored definition is not JSON: {e}"),
            })?;
        let def = Arc::new(from_json(
            &format!("jobs/{name} (revision {id})"),
            name,
            json,
        )?);
        self.parsed
            .lock()
            .expect("cache lock")
            .insert(id, def.clone());
        Ok(def)
    }

    /// The statuses of job `name`'s unfinished instances.
    async fn unfinished(&self, name: &str) -> Result<Vec<String>, JobsError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT DISTINCT status FROM kondate_job_instances WHERE job = ? AND status IN (?, ?)",
                &[
                    Value::Text(name.to_string()),
                    Value::Text(WORKING.into()),
                    Value::Text(ERROR.into()),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| get_string(r, "status").map_err(JobsError::from))
            .collect()
    }

    /// Insert an instance under `key`; None when an instance with that key exists.
    #[allow(clippy::too_many_arguments)]
    async fn insert_instance(
        &self,
        job: &str,
        revision: i64,
        key: &str,
        reason: &str,
        scheduled_at: DateTime<Utc>,
        env: Option<&str>,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, JobsError> {
        let text_or_null = |v: Option<&str>| v.map_or(Value::Null, |s| Value::Text(s.to_string()));
        match self
            .db
            .insert_returning_id(
                "INSERT INTO kondate_job_instances (job, revision, launch_key, reason, \
                 scheduled_at, status, env, launched_by, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::Text(job.to_string()),
                    Value::Int(revision),
                    Value::Text(key.to_string()),
                    Value::Text(reason.to_string()),
                    Value::Int(ms(scheduled_at)),
                    Value::Text(WORKING.into()),
                    text_or_null(env),
                    text_or_null(by),
                    Value::Int(ms(now)),
                ],
            )
            .await
        {
            Ok(id) => {
                let m = crate::metrics::observed();
                let labels = crate::metrics::Reason {
                    reason: reason.to_string(),
                };
                m.launched.get_or_create(&labels).inc();
                if reason == "schedule" {
                    m.launch_delay_seconds
                        .get_or_create(&labels)
                        .observe((ms(now) - ms(scheduled_at)).max(0) as f64 / 1000.0);
                }
                // After the insert, not with it: a crash in between loses the notice of
                // this launch, never the launch (the instance runs either way).
                let payload = serde_json::json!({
                    "job": job, "instance": id, "reason": reason,
                    "scheduled_at": ms(scheduled_at), "by": by,
                });
                kondate_db::state::record_event(
                    &self.db,
                    "job.launched",
                    job,
                    &payload.to_string(),
                    ms(now),
                )
                .await?;
                Ok(Some(id))
            }
            Err(e) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One scheduling pass at `now` over every scheduled job (see the module); `grace` is how
    /// old a slot may be and still count as due now. Then the events since the last pass
    /// launch the jobs they trigger.
    ///
    /// The jobs' rows are read again only when the jobs' change counter moved; otherwise
    /// only the jobs with a slot due by `now` are looked at (see [`Known`]).
    pub async fn pass(&self, now: DateTime<Utc>, grace: Duration) -> Result<PassReport, JobsError> {
        let mut report = PassReport::default();
        let mut known = self.known.lock().await;
        // The counter before the rows: a change made after this read moves it again.
        let version = cursor::get(&self.db, JOBS_VERSION).await?.unwrap_or(0);
        if known.version != Some(version) {
            known.jobs = self.scheduled_jobs().await?;
            known.version = Some(version);
        }
        for job in known.jobs.iter_mut() {
            if job.due.is_none_or(|d| d > now) {
                if let Some(d) = job.due {
                    report.next_due = Some(report.next_due.map_or(d, |n| n.min(d)));
                }
                continue;
            }
            job.due = self.pass_job(job, now, grace, &mut report).await?;
        }
        self.triggers(&known.jobs, now, &mut report).await?;
        Ok(report)
    }

    /// The jobs a pass schedules (not removed, with a revision), as the database has them
    /// now, each due at the next pass.
    async fn scheduled_jobs(&self) -> Result<Vec<KnownJob>, JobsError> {
        let mut out = Vec::new();
        for row in self.jobs().await? {
            let (false, Some(revision)) = (row.removed, row.revision) else {
                continue;
            };
            let mut def = self.definition(&row.name, revision).await?;
            if row.suspended_by.is_some() && !def.suspended {
                // Suspended at run time: as if its definition said so.
                let mut d = (*def).clone();
                d.suspended = true;
                def = Arc::new(d);
            }
            let due = (!def.suspended && !def.schedules.is_empty()).then_some(DateTime::UNIX_EPOCH);
            out.push(KnownJob {
                row,
                revision,
                def,
                due,
            });
        }
        Ok(out)
    }

    /// Launch the jobs the events after the trigger cursor trigger, each once per event
    /// (launch key `trigger/JOB/EVENT`), and move the cursor past them. The first pass on a
    /// database starts at its newest event: the past triggers nothing.
    async fn triggers(
        &self,
        jobs: &[KnownJob],
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), JobsError> {
        const CURSOR: &str = "events";
        let Some(position) = cursor::events(&self.db, CURSOR).await? else {
            return Ok(());
        };
        let marks = vec!["?"; TRIGGER_EVENTS.len()].join(", ");
        let mut params = vec![Value::Int(position)];
        params.extend(TRIGGER_EVENTS.iter().map(|k| Value::Text((*k).into())));
        let events = self
            .db
            .fetch_all(
                &format!(
                    "SELECT id, kind, subject, payload FROM kondate_events WHERE id > ? \
                     AND kind IN ({marks}) ORDER BY id LIMIT 1000"
                ),
                &params,
            )
            .await?;
        let Some(last) = events.last().map(|r| get_i64(r, "id")).transpose()? else {
            return Ok(());
        };
        for e in &events {
            let (id, kind, subject) = (
                get_i64(e, "id")?,
                get_string(e, "kind")?,
                get_string(e, "subject")?,
            );
            let payload: serde_json::Value =
                serde_json::from_str(&get_string(e, "payload")?).unwrap_or_default();
            for job in jobs {
                let (name, def) = (&job.row.name, &job.def);
                if def.suspended
                    || !def
                        .triggers
                        .iter()
                        .any(|t| fires(t, &kind, &subject, &payload))
                {
                    continue;
                }
                let key = format!("trigger/{name}/{id}");
                if let Some(instance) = self
                    .insert_instance(name, job.revision, &key, "trigger", now, None, None, now)
                    .await?
                {
                    report.triggered.push((name.clone(), id, instance));
                }
            }
        }
        // Forward only, from what this pass read (another may have moved it already).
        cursor::advance(&self.db, CURSOR, position, last).await?;
        Ok(())
    }

    /// The pass for one due job: launch its due slots, move its cursor. Returns when the
    /// job next has work: its next slot, or `now` when a backlog waits (`prevent_multi`
    /// under `catchup: 'all'`).
    async fn pass_job(
        &self,
        job: &mut KnownJob,
        now: DateTime<Utc>,
        grace: Duration,
        report: &mut PassReport,
    ) -> Result<Option<DateTime<Utc>>, JobsError> {
        let (def, name) = (job.def.clone(), job.row.name.clone());
        let first_seen = job.row.cursor_at.is_none();
        if first_seen {
            // Where a new job's slots start is recorded once, by the first scheduler to get
            // here, and every scheduler plans from it. Each planning from its own `now -
            // grace` would leave the slots between two schedulers' first passes unlaunched
            // (the later one's cursor wins, the earlier one's slots after it are never seen).
            self.db
                .execute(
                    "UPDATE kondate_jobs SET cursor_at = ? WHERE cursor_at IS NULL AND name = ?",
                    &[Value::Int(ms(now - grace)), Value::Text(name.clone())],
                )
                .await?;
            job.row.cursor_at = self.job_row(&name).await?.and_then(|r| r.cursor_at);
        }
        let mut cursor_at = job.row.cursor_at;
        let mut plan = plan::due(&def, cursor_at.map(from_ms), now, grace);
        if !plan.launch.is_empty()
            && cursor_at.is_some()
            && def.prevent_multi != PreventMulti::Allow
        {
            // About to launch under `prevent_multi`: from the cursor as it is now, not as
            // this process last saw it — another scheduler may have launched these slots
            // already, and its instances would read as `prevent_multi` refusing them. (With
            // `allow`, a slot launched elsewhere is found by its launch key.)
            let current = self.job_row(&name).await?.and_then(|r| r.cursor_at);
            if current != cursor_at {
                cursor_at = current;
                job.row.cursor_at = current;
                plan = plan::due(&def, cursor_at.map(from_ms), now, grace);
            }
        }
        // The next slot: the plan saw it, or (a cursor ahead of now) it is looked up.
        let next = match plan.next {
            Some(n) => Some(n),
            None if def.suspended || def.schedules.is_empty() => None,
            None => plan::next_slots(&def, plan.cursor.max(now), 1)
                .first()
                .copied(),
        };
        if let Some(n) = next {
            report.next_due = Some(report.next_due.map_or(n, |d| d.min(n)));
        }
        let plan_found = !plan.launch.is_empty() || plan.missed > 0 || plan.suspended > 0;
        report.missed += plan.missed;
        report.suspended += plan.suspended;
        let mut cursor = plan.cursor;
        let mut due = next;
        if !plan.launch.is_empty() {
            let mut busy = match def.prevent_multi {
                PreventMulti::Allow => Vec::new(),
                _ => self.unfinished(&name).await?,
            };
            for slot in plan.launch {
                let blocked = match def.prevent_multi {
                    PreventMulti::Allow => false,
                    PreventMulti::WorkingOrError => !busy.is_empty(),
                    PreventMulti::Working => busy.iter().any(|s| s == WORKING),
                    PreventMulti::Error => busy.iter().any(|s| s == ERROR),
                };
                if blocked {
                    report.prevented.push((name.clone(), slot));
                    if matches!(def.catchup, Catchup::All { .. }) {
                        // The backlog waits: the next pass starts just before this slot.
                        cursor = slot - Duration::milliseconds(1);
                        due = Some(now);
                        break;
                    }
                    continue;
                }
                let key = format!("schedule/{name}/{}", ms(slot));
                match self
                    .insert_instance(&name, job.revision, &key, "schedule", slot, None, None, now)
                    .await?
                {
                    Some(id) => report.launched.push((name.clone(), slot, id)),
                    None => report.launched_elsewhere += 1,
                }
                busy.push(WORKING.into());
            }
        }
        // A pass that found no slot leaves the cursor where it is: the next pass looks from
        // there and finds the same nothing, and a pass over 10,000 jobs writes nothing
        // between their fire times.
        let found = plan_found || first_seen;
        // Forward only, and only from what this pass read (another pass may have moved it).
        if found && Some(ms(cursor)) > cursor_at {
            let (cond, mut params) = match cursor_at {
                Some(c) => ("cursor_at = ?", vec![Value::Int(c)]),
                None => ("cursor_at IS NULL", vec![]),
            };
            params.insert(0, Value::Int(ms(cursor)));
            params.push(Value::Text(name.clone()));
            let moved = self
                .db
                .execute(
                    &format!("UPDATE kondate_jobs SET cursor_at = ? WHERE {cond} AND name = ?"),
                    &params,
                )
                .await?;
            job.row.cursor_at = if moved == 1 {
                Some(ms(cursor))
            } else {
                // Another scheduler moved it: work from where it did.
                self.job_row(&name).await?.and_then(|r| r.cursor_at)
            };
        }
        Ok(due)
    }

    /// The revision job `name` runs on now: NoSuchJob when the project has no such job,
    /// Invalid when its definition has never loaded (saying why).
    pub async fn current_revision(&self, name: &str) -> Result<i64, JobsError> {
        let job = self
            .job_row(name)
            .await?
            .filter(|j| !j.removed)
            .ok_or_else(|| JobsError::NoSuchJob(name.to_string()))?;
        job.revision.ok_or_else(|| {
            JobsError::Invalid(format!(
                "job `{name}` has never loaded: {}; `kondate jobs check` says where",
                job.load_error.as_deref().unwrap_or("no definition")
            ))
        })
    }

    /// Launch job `name` now, by hand or by a trigger (`reason`): an instance of its
    /// current revision scheduled at `now`, with `env` added to every step's. `key` makes the
    /// launch idempotent (a client retrying launches once); without one each call launches.
    /// Returns the instance's id (the existing one's when `key` was used before).
    pub async fn launch(
        &self,
        name: &str,
        env: &[(String, String)],
        reason: &str,
        key: Option<&str>,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, JobsError> {
        let revision = self.current_revision(name).await?;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = match key {
            Some(k) => format!("{reason}/{name}/{k}"),
            None => format!(
                "{reason}/{name}/{}-{}-{}",
                now.timestamp_nanos_opt().unwrap_or_default(),
                std::process::id(),
                SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        let env = (!env.is_empty()).then(|| serde_json::to_string(env).unwrap_or_default());
        match self
            .insert_instance(name, revision, &key, reason, now, env.as_deref(), by, now)
            .await?
        {
            Some(id) => Ok(id),
            None => {
                let row = self
                    .db
                    .fetch_optional(
                        "SELECT id FROM kondate_job_instances WHERE launch_key = ?",
                        &[Value::Text(key)],
                    )
                    .await?
                    .ok_or_else(|| DbError::missing_row("reading an instance by its key"))?;
                Ok(get_i64(&row, "id")?)
            }
        }
    }

    const INSTANCE_COLUMNS: &'static str = "id, job, revision, reason, scheduled_at, status, \
        created_at, finished_at, error FROM kondate_job_instances";

    fn instance_of(r: &kondate_db::AnyRow) -> Result<Instance, JobsError> {
        Ok(Instance {
            id: get_i64(r, "id")?,
            job: get_string(r, "job")?,
            revision: get_i64(r, "revision")?,
            reason: get_string(r, "reason")?,
            scheduled_at: get_i64(r, "scheduled_at")?,
            status: get_string(r, "status")?,
            created_at: get_i64(r, "created_at")?,
            finished_at: get_opt_i64(r, "finished_at"),
            error: get_opt_string(r, "error"),
        })
    }

    /// Launch job `name` for its past `slot` (a backfill): under the slot's own launch key, so
    /// a slot the scheduler launched — or an earlier backfill — is not launched again (None),
    /// and with the slot as its scheduled time (`KONDATE_SCHEDULED_AT`).
    pub async fn launch_slot(
        &self,
        name: &str,
        slot: DateTime<Utc>,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, JobsError> {
        let revision = self.current_revision(name).await?;
        let key = format!("schedule/{name}/{}", ms(slot));
        self.insert_instance(name, revision, &key, "backfill", slot, None, by, now)
            .await
    }

    /// Job `name`'s instances, newest first, at most `limit`.
    pub async fn instances(&self, name: &str, limit: i64) -> Result<Vec<Instance>, JobsError> {
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT {} WHERE job = ? ORDER BY scheduled_at DESC, id DESC LIMIT ?",
                    Self::INSTANCE_COLUMNS
                ),
                &[Value::Text(name.to_string()), Value::Int(limit)],
            )
            .await?;
        rows.iter().map(Self::instance_of).collect()
    }

    /// The instances in WORKING or ERROR (what is running, and what failed and waits for
    /// someone), newest first, at most `limit`.
    pub async fn running_or_failed(&self, limit: i64) -> Result<Vec<Instance>, JobsError> {
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT {} WHERE status IN (?, ?) ORDER BY scheduled_at DESC, id DESC LIMIT ?",
                    Self::INSTANCE_COLUMNS
                ),
                &[
                    Value::Text(WORKING.into()),
                    Value::Text(ERROR.into()),
                    Value::Int(limit),
                ],
            )
            .await?;
        rows.iter().map(Self::instance_of).collect()
    }

    /// Instance `id`.
    pub async fn instance(&self, id: i64) -> Result<Instance, JobsError> {
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {} WHERE id = ?", Self::INSTANCE_COLUMNS),
                &[Value::Int(id)],
            )
            .await?
            .ok_or(JobsError::NoSuchInstance(id))?;
        Self::instance_of(&row)
    }

    /// Set instance `id`'s status (the executor's part; here for the scheduler's tests and
    /// for operators until the executor lands).
    pub async fn set_status(
        &self,
        id: i64,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JobsError> {
        let finished = matches!(status, SUCCESS | CANCEL);
        self.db
            .execute(
                "UPDATE kondate_job_instances SET status = ?, finished_at = ? WHERE id = ?",
                &[
                    Value::Text(status.to_string()),
                    if finished {
                        Value::Int(ms(now))
                    } else {
                        Value::NullOf(kondate_db::ColumnType::Integer)
                    },
                    Value::Int(id),
                ],
            )
            .await?;
        Ok(())
    }
}
