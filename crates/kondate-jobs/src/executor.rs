//! Running instances: advancing an instance (its script walked against its steps, the
//! next steps recorded, the instance ended when the walk says so), and a worker's part —
//! claiming one runnable step of its queues, running it, recording how it ended. Every
//! process sharing the state database can do either; a step's record is unique by
//! (instance, key), and a claim moves a step from `pending` to `working` only if it still is
//! pending — on PostgreSQL and MariaDB the row is first taken with `FOR UPDATE SKIP LOCKED`,
//! so concurrent workers each get another step without waiting — so each step is run by
//! exactly one worker.
//!
//! `execute:` runs `sh -c COMMAND` through the apps' local runner — its own process group,
//! a clean environment (kondate's PATH, HOME, USER, LANG… plus the script's `env` and
//! `KONDATE_JOB`, `KONDATE_INSTANCE_ID`, `KONDATE_SCHEDULED_AT`, `KONDATE_STEP`), the
//! step's `timeout` (then SIGTERM, then SIGKILL to the group), its peak memory — and its
//! output goes line by line into a log stored at `jobs/INSTANCE/STEP.log`. `noop` ends when
//! recorded; `echo` writes its line into its log; `sleep` (and a retry's wait) ends when its
//! time has come. The tasks
//! that reach other parts of kondate (`app`, `labels_sync`, `results_export`,
//! `sub_process`, `wait`) go through [`StepActions`], which the binary implements; a
//! worker without it fails such a step saying so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kondate_db::{Database, DbError, Value, get_i64, get_opt_i64, get_opt_string, get_string};
use kondate_store::Store;

use crate::JobsError;
use crate::engine::{self, Outcome, StepSpec, Walk};
use crate::scheduler::{CANCEL, ERROR, SUCCESS, Scheduler, WORKING, cursor};
use crate::script::{Node, Task};

/// The period around `at` (in `zone`) that a `wait` looks in: [start, end).
fn period_of(
    at: DateTime<Utc>,
    zone: chrono_tz::Tz,
    period: crate::script::Period,
) -> (DateTime<Utc>, DateTime<Utc>) {
    use crate::script::Period;
    use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
    let local = at.with_timezone(&zone).naive_local();
    let (start, end) = match period {
        Period::Hourly => {
            let s = local
                .date()
                .and_hms_opt(local.hour(), 0, 0)
                .unwrap_or(local);
            (s, s + chrono::Duration::hours(1))
        }
        Period::Daily => {
            let s = local.date().and_hms_opt(0, 0, 0).unwrap_or(local);
            (s, s + chrono::Duration::days(1))
        }
        Period::Weekly => {
            let monday = local.date()
                - chrono::Duration::days(i64::from(local.weekday().num_days_from_monday()));
            let s = monday.and_hms_opt(0, 0, 0).unwrap_or(local);
            (s, s + chrono::Duration::days(7))
        }
        Period::Monthly => {
            let first =
                NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local.date());
            let next = if local.month() == 12 {
                NaiveDate::from_ymd_opt(local.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(local.year(), local.month() + 1, 1)
            }
            .unwrap_or(first);
            (
                first.and_hms_opt(0, 0, 0).unwrap_or(local),
                next.and_hms_opt(0, 0, 0).unwrap_or(local),
            )
        }
    };
    // A boundary the clock skips or repeats: its earliest reading.
    let utc = |n: chrono::NaiveDateTime| {
        zone.from_local_datetime(&n)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&n))
    };
    (utc(start), utc(end))
}

/// The channel on which idle workers are woken when a step is waiting (PostgreSQL).
pub const STEPS_CHANNEL: &str = "kondate_job_steps";

/// How often a worker looks whether the step it runs was force-cancelled.
const FORCE_CANCEL_POLL: Duration = Duration::from_secs(1);

/// Step states besides the instance's: a step waits `pending`, runs `working`, ends
/// `success` or `error`, or is `skipped` by an operator, or `cancel`led with its instance.
pub const PENDING: &str = "pending";
pub const SKIPPED: &str = "skipped";

/// What a step that reaches another part of kondate does; the binary implements it.
#[async_trait::async_trait]
pub trait StepActions: Send + Sync {
    /// Run `task` (an `app`, `labels_sync` or `results_export`) of instance `instance` with
    /// `env`, writing what it says into `log`; Err says why it failed. `cancel` turns to a
    /// signal when the instance is force-cancelled: the task stops (an app's process group
    /// is sent the signal, then SIGKILL after the grace) and returns.
    async fn run(
        &self,
        task: &Task,
        instance: i64,
        env: &[(String, String)],
        log: &kondate_apps::LogWriter,
        cancel: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Result<(), String>;
}

/// A worker's settings.
#[derive(Clone)]
pub struct WorkerConfig {
    /// This process's id in the process registry (recorded on the steps it runs).
    pub worker: String,
    /// The queues it takes steps from (`default` unless told).
    pub queues: Vec<String>,
    /// The folder commands run in (the project's).
    pub cwd: PathBuf,
    /// Where step logs are written before they are stored.
    pub spool: PathBuf,
    /// A folder steps must not reach (the project's `.kondate/`).
    pub protect: Option<PathBuf>,
    /// kondate's own environment, of which the names in `kondate_apps::PASSED_ENV` pass.
    pub base_env: Vec<(String, String)>,
    /// Between SIGTERM and SIGKILL when a step times out.
    pub grace: Duration,
    /// How soon a `wait` or `sub_process` step that cannot say yet is looked at again.
    pub recheck: Duration,
}

/// A step a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub instance: i64,
    pub key: String,
    pub line: usize,
    /// When the step was recorded (a `wait`'s timeout counts from there).
    pub created_at: i64,
    pub queue: String,
    spec: SpecJson,
}

/// The parts of a [`StepSpec`] stored with the step (its task is the script's line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SpecJson {
    env: Vec<(String, String)>,
    timeout_minutes: Option<u32>,
    /// A retry's wait (line 0): its seconds.
    sleep: Option<u64>,
}

/// Advances instances and runs steps.
#[derive(Clone)]
pub struct Executor {
    db: Database,
    store: Store,
    scheduler: Scheduler,
    actions: Option<Arc<dyn StepActions>>,
}

fn outcome_of(status: &str, error: Option<String>) -> Outcome {
    match status {
        PENDING => Outcome::Pending,
        WORKING => Outcome::Working,
        SUCCESS => Outcome::Success,
        SKIPPED => Outcome::Skipped,
        _ => Outcome::Error(error.unwrap_or_else(|| status.to_string())),
    }
}

/// The node on `line` of the script.
fn node_at(tree: &Node, line: usize) -> Option<&Node> {
    if tree.line == line {
        return Some(tree);
    }
    tree.children.iter().find_map(|c| node_at(c, line))
}

/// How a step is shown: `execute: make train` (its task's line as written, roughly).
fn describe(task: &Task) -> String {
    match task {
        Task::Execute(c) => format!("execute: {c}"),
        Task::App { name, args } => format!("app: {name} {}", args.join(" ")).trim_end().into(),
        Task::LabelsSync(n) => format!("labels_sync: {n}"),
        Task::ResultsExport(n) => format!("results_export: {n}"),
        Task::CatalogSync(n) => format!("catalog_sync: {n}"),
        Task::SubProcess(j) => format!("sub_process: {j}"),
        Task::Sleep(s) => format!("sleep: {s}"),
        Task::Echo(t) => format!("echo: {t}"),
        Task::Noop => "noop:".into(),
        Task::Wait { jobs, .. } => format!(
            "wait: {}",
            jobs.iter()
                .map(|(j, p)| format!("{j}/{p:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => format!("{other:?}"),
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Executor {
    pub fn new(
        db: Database,
        store: Store,
        scheduler: Scheduler,
        actions: Option<Arc<dyn StepActions>>,
    ) -> Executor {
        Executor {
            db,
            store,
            scheduler,
            actions,
        }
    }

    /// Walk instance `id` and act on it: record the steps that may run now, end it when it
    /// is done or failed. Returns the instance's status after.
    pub async fn advance(&self, id: i64, now: DateTime<Utc>) -> Result<String, JobsError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT job, revision, status, created_at FROM kondate_job_instances WHERE id = ?",
                &[Value::Int(id)],
            )
            .await?
            .ok_or(JobsError::NoSuchInstance(id))?;
        let status = get_string(&row, "status")?;
        if status != WORKING {
            return Ok(status);
        }
        let job = get_string(&row, "job")?;
        let def = self
            .scheduler
            .definition(&job, get_i64(&row, "revision")?)
            .await?;
        // Steps that end as they are recorded (noop) let the walk go on at once.
        for _ in 0..10_000 {
            let mut outcomes = HashMap::new();
            for r in self
                .db
                .fetch_all(
                    "SELECT step_key, status, error FROM kondate_job_steps WHERE instance = ?",
                    &[Value::Int(id)],
                )
                .await?
            {
                outcomes.insert(
                    get_string(&r, "step_key")?,
                    outcome_of(&get_string(&r, "status")?, get_opt_string(&r, "error")),
                );
            }
            let (end, error) = match engine::walk(&def.tree, &outcomes) {
                Walk::Waiting(specs) => {
                    if specs.is_empty() {
                        return Ok(WORKING.into());
                    }
                    let mut ended = false;
                    for spec in &specs {
                        ended |= self.record(id, spec, now).await?;
                    }
                    if ended {
                        continue;
                    }
                    return Ok(WORKING.into());
                }
                Walk::Done => (SUCCESS, None),
                Walk::Failed { key, message } => (ERROR, Some(format!("step {key}: {message}"))),
            };
            // The instance ends once, with its event (a success triggers `job.succeeded`).
            use kondate_db::Session;
            let mut tx = self.db.begin().await?;
            let moved = tx
                .execute(
                    "UPDATE kondate_job_instances SET status = ?, finished_at = ?, error_at = ?, \
                     noticed_at = NULL, error = ? WHERE id = ? AND status = ?",
                    &[
                        Value::Text(end.into()),
                        if end == SUCCESS {
                            Value::Int(ms(now))
                        } else {
                            Value::NullOf(kondate_db::ColumnType::Integer)
                        },
                        if end == SUCCESS {
                            Value::NullOf(kondate_db::ColumnType::Integer)
                        } else {
                            Value::Int(ms(now))
                        },
                        error.clone().map_or(Value::Null, Value::Text),
                        Value::Int(id),
                        Value::Text(WORKING.into()),
                    ],
                )
                .await?;
            if moved == 1 {
                let m = crate::metrics::observed();
                m.instances_ended
                    .get_or_create(&crate::metrics::JobStatus {
                        job: job.clone(),
                        status: end.into(),
                    })
                    .inc();
                let took = ms(now) - get_i64(&row, "created_at")?;
                m.instance_seconds
                    .get_or_create(&crate::metrics::JobLabel { job: job.clone() })
                    .observe(took.max(0) as f64 / 1000.0);
                let kind = if end == SUCCESS {
                    "job.succeeded"
                } else {
                    "job.failed"
                };
                let failed_step = match &error {
                    Some(_) => self.failed_step_key(id).await?,
                    None => None,
                };
                let payload = serde_json::json!({
                    "job": job, "instance": id, "error": error, "step": failed_step,
                });
                kondate_db::state::record_event_tx(
                    &mut tx,
                    kind,
                    &job,
                    &payload.to_string(),
                    ms(now),
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(end.into());
        }
        Err(JobsError::Invalid(format!(
            "instance {id}: the script did not settle after 10000 steps"
        )))
    }

    /// Record step `spec` of instance `id` (once: another process may record it too);
    /// true when it ended as it was recorded (noop).
    async fn record(
        &self,
        id: i64,
        spec: &StepSpec,
        now: DateTime<Utc>,
    ) -> Result<bool, JobsError> {
        let instant = matches!(spec.task, Task::Noop);
        let sleep = match spec.task {
            Task::Sleep(s) => Some(s),
            _ => None,
        };
        let json = SpecJson {
            env: spec.env.clone(),
            timeout_minutes: spec.timeout_minutes,
            sleep: if spec.line == 0 { sleep } else { None },
        };
        let result = self
            .db
            .execute(
                "INSERT INTO kondate_job_steps (instance, step_key, line, task, spec, queue, \
                 status, attempt, not_before, created_at, started_at, finished_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                &[
                    Value::Int(id),
                    Value::Text(spec.key.clone()),
                    Value::Int(spec.line as i64),
                    Value::Text(describe(&spec.task)),
                    Value::Text(serde_json::to_string(&json).unwrap_or_default()),
                    Value::Text(spec.queue.clone()),
                    Value::Text(if instant { SUCCESS } else { PENDING }.into()),
                    match sleep {
                        Some(s) => Value::Int(ms(now) + (s as i64).saturating_mul(1000)),
                        None => Value::NullOf(kondate_db::ColumnType::Integer),
                    },
                    Value::Int(ms(now)),
                    if instant {
                        Value::Int(ms(now))
                    } else {
                        Value::NullOf(kondate_db::ColumnType::Integer)
                    },
                    if instant {
                        Value::Int(ms(now))
                    } else {
                        Value::NullOf(kondate_db::ColumnType::Integer)
                    },
                ],
            )
            .await;
        match result {
            Ok(_) => {
                if !instant {
                    self.wake_workers().await;
                }
                Ok(instant)
            }
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Claim one runnable step of `queues` for `worker` (oldest first): a pending step whose
    /// time has come, moved to `working` only if it still was pending.
    pub async fn claim(
        &self,
        worker: &str,
        queues: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, JobsError> {
        if queues.is_empty() {
            return Ok(None);
        }
        let marks = vec!["?"; queues.len()].join(", ");
        let mut params = vec![Value::Text(PENDING.into())];
        params.extend(queues.iter().map(|q| Value::Text(q.clone())));
        params.push(Value::Int(ms(now)));
        let select = |limit: u32, suffix: &str| {
            format!(
                "SELECT id, instance, step_key, line, spec, created_at, queue FROM kondate_job_steps \
                 WHERE status = ? AND queue IN ({marks}) \
                 AND (not_before IS NULL OR not_before <= ?) ORDER BY id LIMIT {limit}{suffix}"
            )
        };
        const TAKE: &str = "UPDATE kondate_job_steps SET status = ?, worker = ?, started_at = ? \
                            WHERE id = ? AND status = ?";
        let with_id = |id: i64| {
            vec![
                Value::Text(WORKING.into()),
                Value::Text(worker.to_string()),
                Value::Int(ms(now)),
                Value::Int(id),
                Value::Text(PENDING.into()),
            ]
        };
        if let Some(skip_locked) = self.db.skip_locked() {
            // PostgreSQL, MariaDB: the first pending row no other claim holds, locked until
            // this transaction marks it taken.
            use kondate_db::Session;
            let mut tx = self.db.begin().await?;
            let rows = tx.fetch_all(&select(1, skip_locked), &params).await?;
            let Some(r) = rows.first() else {
                return Ok(None);
            };
            let moved = tx.execute(TAKE, &with_id(get_i64(r, "id")?)).await?;
            let claimed = if moved == 1 {
                Some(Self::claimed(r)?)
            } else {
                None
            };
            tx.commit().await?;
            return Ok(claimed);
        }
        // SQLite: one writer at a time; the conditional update is the claim.
        for r in self.db.fetch_all(&select(16, ""), &params).await? {
            let moved = self.db.execute(TAKE, &with_id(get_i64(&r, "id")?)).await?;
            if moved == 1 {
                return Ok(Some(Self::claimed(&r)?));
            }
        }
        Ok(None)
    }

    fn claimed(r: &kondate_db::AnyRow) -> Result<Claimed, JobsError> {
        let id = get_i64(r, "id")?;
        let spec: SpecJson = serde_json::from_str(&get_string(r, "spec")?).map_err(|e| {
            JobsError::Invalid(format!("step {id}: its record is not readable: {e}"))
        })?;
        Ok(Claimed {
            id,
            instance: get_i64(r, "instance")?,
            key: get_string(r, "step_key")?,
            line: get_i64(r, "line")? as usize,
            created_at: get_i64(r, "created_at")?,
            queue: get_string(r, "queue")?,
            spec,
        })
    }

    /// Run a claimed step to its end, record it, and advance its instance.
    pub async fn run(
        &self,
        cfg: &WorkerConfig,
        step: Claimed,
        clock: &dyn kondate_core::Clock,
    ) -> Result<(), JobsError> {
        let started = std::time::Instant::now();
        let row = self
            .db
            .fetch_optional(
                "SELECT job, revision, scheduled_at, env, status FROM kondate_job_instances \
                 WHERE id = ?",
                &[Value::Int(step.instance)],
            )
            .await?
            .ok_or(JobsError::NoSuchInstance(step.instance))?;
        let job = get_string(&row, "job")?;
        let def = self
            .scheduler
            .definition(&job, get_i64(&row, "revision")?)
            .await?;
        let task = match (step.line, step.spec.sleep) {
            (0, Some(s)) => Some(Task::Sleep(s)),
            (line, _) => node_at(&def.tree, line).map(|n| n.task.clone()),
        };
        // `wait` and `sub_process` watch other instances: until they can say, the step goes
        // back to its queue and is looked at again after `cfg.recheck`.
        let waited = match &task {
            Some(Task::Wait {
                jobs,
                timeout_minutes,
            }) => Some(
                self.wait_for(
                    &def,
                    get_i64(&row, "scheduled_at")?,
                    jobs,
                    *timeout_minutes,
                    &step,
                    clock,
                )
                .await?,
            ),
            Some(Task::SubProcess(child)) => {
                let launch_env: Vec<(String, String)> = get_opt_string(&row, "env")
                    .and_then(|e| serde_json::from_str(&e).ok())
                    .unwrap_or_default();
                Some(self.sub_process(child, &launch_env, &step, clock).await?)
            }
            _ => None,
        };
        if let Some(verdict) = waited {
            let Some(result) = verdict else {
                let again =
                    clock.now() + chrono::Duration::from_std(cfg.recheck).unwrap_or_default();
                self.db
                    .execute(
                        "UPDATE kondate_job_steps SET status = ?, worker = NULL, not_before = ? \
                         WHERE id = ? AND status = ?",
                        &[
                            Value::Text(PENDING.into()),
                            Value::Int(ms(again)),
                            Value::Int(step.id),
                            Value::Text(WORKING.into()),
                        ],
                    )
                    .await?;
                return Ok(());
            };
            let now = clock.now();
            self.db
                .execute(
                    "UPDATE kondate_job_steps SET status = ?, finished_at = ?, error = ? \
                     WHERE id = ? AND status = ?",
                    &[
                        Value::Text(if result.is_ok() { SUCCESS } else { ERROR }.into()),
                        Value::Int(ms(now)),
                        result.err().map_or(Value::Null, Value::Text),
                        Value::Int(step.id),
                        Value::Text(WORKING.into()),
                    ],
                )
                .await?;
            self.advance(step.instance, now).await?;
            return Ok(());
        }
        let mut env: Vec<(String, String)> = cfg
            .base_env
            .iter()
            .filter(|(k, _)| kondate_apps::PASSED_ENV.contains(&k.as_str()))
            .cloned()
            .collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        let scheduled = kondate_core::clock::ms_to_rfc3339(get_i64(&row, "scheduled_at")?);
        env.extend([
            ("KONDATE_JOB".to_string(), job.clone()),
            ("KONDATE_INSTANCE_ID".to_string(), step.instance.to_string()),
            ("KONDATE_SCHEDULED_AT".to_string(), scheduled),
            ("KONDATE_STEP".to_string(), step.key.clone()),
        ]);
        // The launch's own variables (`jobs launch -e`), then the script's, in order.
        if let Some(launch_env) = get_opt_string(&row, "env") {
            let pairs: Vec<(String, String)> =
                serde_json::from_str(&launch_env).unwrap_or_default();
            env.extend(pairs);
        }
        env.extend(step.spec.env.iter().cloned());
        // Later values win, as a shell's would.
        let mut seen = std::collections::HashSet::new();
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        env.reverse();

        std::fs::create_dir_all(&cfg.spool).map_err(|e| JobsError::Io {
            path: cfg.spool.display().to_string(),
            source: e,
        })?;
        let spool = cfg.spool.join(format!("step-{}.log", step.id));
        let file = std::fs::File::create(&spool).map_err(|e| JobsError::Io {
            path: spool.display().to_string(),
            source: e,
        })?;
        // Where the log grows while the step runs: followers on this host read it live.
        self.db
            .execute(
                "UPDATE kondate_job_steps SET log_spool = ? WHERE id = ?",
                &[
                    Value::Text(spool.display().to_string()),
                    Value::Int(step.id),
                ],
            )
            .await?;
        let log = Arc::new(kondate_apps::LogWriter::new(Box::new(file)));
        let (result, exit_code, peak): (Result<(), String>, Option<i64>, Option<i64>) = match task {
            None => (
                Err(format!(
                    "line {} of the job's script is not a task (the revision changed?)",
                    step.line
                )),
                None,
                None,
            ),
            Some(Task::Noop) | Some(Task::Sleep(_)) => (Ok(()), None, None),
            Some(Task::Echo(text)) => {
                let _ = log.note(kondate_apps::Stream::Stdout, &text);
                (Ok(()), None, None)
            }
            Some(Task::Execute(command)) => {
                let spec = kondate_apps::LocalSpec {
                    run_id: format!("job-{}-{}", step.instance, step.id),
                    argv: vec!["sh".into(), "-c".into(), command.clone()],
                    cwd: cfg.cwd.clone(),
                    env,
                    memory_limit: None,
                    use_cgroup: false,
                    timeout: step
                        .spec
                        .timeout_minutes
                        .map(|m| Duration::from_secs(u64::from(m) * 60)),
                    grace: cfg.grace,
                    masker: kondate_apps::Masker::new([]),
                    protect: cfg.protect.clone(),
                    // Who it is, so that if this worker dies, the sweep on this host stops
                    // what it left running.
                    on_start: Some(kondate_apps::StartHook::recording(
                        self.db.clone(),
                        "UPDATE kondate_job_steps SET process = ? WHERE id = ?",
                        Value::Int(step.id),
                    )),
                };
                let (watch, cancel) = self.watch_force_cancel(step.id);
                let o = kondate_apps::run_local(spec, log.clone(), None, cancel).await;
                watch.abort();
                let code = Some(i64::from(o.exit.code()));
                let peak = o.peak_memory_bytes.map(|b| b as i64);
                let result = match &o.exit {
                    kondate_apps::Exit::Code(0) => Ok(()),
                    kondate_apps::Exit::Code(c) => Err(format!("`{command}` exited with {c}")),
                    kondate_apps::Exit::TimedOut => Err(format!(
                        "`{command}` was stopped after its timeout of {} min",
                        step.spec.timeout_minutes.unwrap_or_default()
                    )),
                    kondate_apps::Exit::Cancelled(_) => Err(format!(
                        "`{command}` was stopped: its instance was force-cancelled"
                    )),
                    kondate_apps::Exit::Signal(s) => {
                        Err(format!("`{command}` was killed by signal {s}"))
                    }
                    kondate_apps::Exit::FailedToStart(why) => {
                        Err(format!("`{command}` could not start: {why}"))
                    }
                };
                (result, code, peak)
            }
            Some(other) => match &self.actions {
                Some(actions) => {
                    let (watch, cancel) = self.watch_force_cancel(step.id);
                    let result = actions
                        .run(&other, step.instance, &env, &log, cancel.clone())
                        .await;
                    watch.abort();
                    let result = match *cancel.borrow() {
                        Some(_) => Err(format!(
                            "`{}` was stopped: its instance was force-cancelled",
                            describe(&other)
                        )),
                        None => result,
                    };
                    (result, None, None)
                }
                None => (
                    Err(format!(
                        "`{}` needs a worker that runs kondate's own tasks (`kondate worker`)",
                        describe(&other)
                    )),
                    None,
                    None,
                ),
            },
        };
        if let Err(e) = &result {
            let _ = log.note(kondate_apps::Stream::Stderr, &format!("kondate: {e}"));
        }
        let _ = log.flush();
        drop(log);
        let key = format!("jobs/{}/{}.log", step.instance, step.id);
        let stored = self.store.put_file(&key, &spool, true).await;
        let _ = std::fs::remove_file(&spool);
        let error = match (&result, &stored) {
            (Err(e), Ok(_)) => Some(e.clone()),
            (Err(e), Err(s)) => Some(format!("{e}; the log could not be stored: {s}")),
            (Ok(()), Err(s)) => Some(format!("the log could not be stored: {s}")),
            (Ok(()), Ok(_)) => None,
        };
        let now = clock.now();
        self.db
            .execute(
                "UPDATE kondate_job_steps SET status = CASE WHEN status = ? THEN status ELSE ? END, \
                 finished_at = ?, exit_code = ?, peak_memory_bytes = ?, log_key = ?, error = ? \
                 WHERE id = ? AND status IN (?, ?)",
                &[
                    // A force-cancelled step stays `cancel`, with how it ended.
                    Value::Text(CANCEL.into()),
                    Value::Text(if result.is_ok() { SUCCESS } else { ERROR }.into()),
                    Value::Int(ms(now)),
                    exit_code.map_or(Value::NullOf(kondate_db::ColumnType::Integer), Value::Int),
                    peak.map_or(Value::NullOf(kondate_db::ColumnType::Integer), Value::Int),
                    match stored {
                        Ok(_) => Value::Text(key),
                        Err(_) => Value::Null,
                    },
                    error.map_or(Value::Null, Value::Text),
                    Value::Int(step.id),
                    Value::Text(WORKING.into()),
                    Value::Text(CANCEL.into()),
                ],
            )
            .await?;
        crate::metrics::observed()
            .step_seconds
            .get_or_create(&crate::metrics::QueueStatus {
                queue: step.queue.clone(),
                status: if result.is_ok() { SUCCESS } else { ERROR }.into(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.advance(step.instance, now).await?;
        Ok(())
    }

    /// The state database it works on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Tell idle workers elsewhere that a step is waiting (PostgreSQL's NOTIFY on
    /// [`STEPS_CHANNEL`]); on other databases they find it at their next poll. A failure
    /// only delays the step until then, so it is logged, not returned.
    async fn wake_workers(&self) {
        if let Err(e) = self.db.notify(STEPS_CHANNEL).await {
            tracing::warn!(error = %e, "could not wake the workers; they find the step at their next poll");
        }
    }

    /// A force-cancel marks the running step `cancel`: the task that watches it (until
    /// aborted) turns the receiver to SIGTERM, and the step's process group is stopped
    /// (SIGTERM, then SIGKILL after the grace) or kondate's own task given up.
    fn watch_force_cancel(
        &self,
        step: i64,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Receiver<Option<i32>>,
    ) {
        let (stop, cancel) = tokio::sync::watch::channel(None);
        let db = self.db.clone();
        let watch = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FORCE_CANCEL_POLL).await;
                let status = db
                    .fetch_optional(
                        "SELECT status FROM kondate_job_steps WHERE id = ?",
                        &[Value::Int(step)],
                    )
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| get_string(&r, "status").ok());
                if status.as_deref() == Some(CANCEL) {
                    let _ = stop.send(Some(libc::SIGTERM));
                    return;
                }
            }
        });
        (watch, cancel)
    }

    /// `wait: JOB/PERIOD …`: Some(Ok) once each job has an instance that succeeded with its
    /// scheduled time in the same period (hour, day, ISO week, month) as this instance's —
    /// periods read in the zone of this job's first schedule, else UTC —, Some(Err) once
    /// `timeout_minutes` have passed since the step was recorded, None while it waits.
    async fn wait_for(
        &self,
        def: &crate::JobDefinition,
        scheduled_at: i64,
        jobs: &[(String, crate::script::Period)],
        timeout_minutes: u32,
        step: &Claimed,
        clock: &dyn kondate_core::Clock,
    ) -> Result<Option<Result<(), String>>, JobsError> {
        let zone = def.schedules.first().map_or(chrono_tz::Tz::UTC, |s| s.zone);
        let at = DateTime::from_timestamp_millis(scheduled_at).unwrap_or_default();
        let mut missing = Vec::new();
        for (job, period) in jobs {
            let (from, to) = period_of(at, zone, *period);
            let done = self
                .db
                .fetch_optional(
                    "SELECT id FROM kondate_job_instances WHERE job = ? AND status = ? \
                     AND scheduled_at >= ? AND scheduled_at < ? LIMIT 1",
                    &[
                        Value::Text(job.clone()),
                        Value::Text(SUCCESS.into()),
                        Value::Int(ms(from)),
                        Value::Int(ms(to)),
                    ],
                )
                .await?
                .is_some();
            if !done {
                missing.push(format!("{job} ({period:?} from {from})").to_lowercase());
            }
        }
        if missing.is_empty() {
            return Ok(Some(Ok(())));
        }
        let waited_ms = ms(clock.now()) - step.created_at;
        if waited_ms >= i64::from(timeout_minutes) * 60_000 {
            return Ok(Some(Err(format!(
                "waited {timeout_minutes} min; no successful instance yet of {}",
                missing.join(", ")
            ))));
        }
        Ok(None)
    }

    /// `sub_process: JOB`: launch it once for this step (launch key
    /// `sub_process/JOB/INSTANCE-STEP`, with this instance's launch variables), then Some(Ok)
    /// when it succeeded, Some(Err) when it failed or was cancelled, None while it works.
    async fn sub_process(
        &self,
        child: &str,
        env: &[(String, String)],
        step: &Claimed,
        clock: &dyn kondate_core::Clock,
    ) -> Result<Option<Result<(), String>>, JobsError> {
        let now = clock.now();
        let key = format!("{}-{}", step.instance, step.id);
        let id = match self
            .scheduler
            .launch(child, env, "sub_process", Some(&key), None, now)
            .await
        {
            Ok(id) => id,
            Err(e @ (JobsError::NoSuchJob(_) | JobsError::Invalid(_))) => {
                return Ok(Some(Err(e.to_string())));
            }
            Err(e) => return Err(e),
        };
        let status = self.advance(id, now).await?;
        Ok(match status.as_str() {
            SUCCESS => Some(Ok(())),
            WORKING => None,
            other => Some(Err(format!(
                "sub-process `{child}` (instance {id}) ended {other}"
            ))),
        })
    }

    /// Claim and run one step; false when there was none to run.
    pub async fn work_once(
        &self,
        cfg: &WorkerConfig,
        clock: &dyn kondate_core::Clock,
    ) -> Result<bool, JobsError> {
        match self.claim(&cfg.worker, &cfg.queues, clock.now()).await? {
            Some(step) => {
                self.run(cfg, step, clock).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The key of instance `id`'s last failed step, if one failed.
    async fn failed_step_key(&self, id: i64) -> Result<Option<String>, JobsError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT step_key FROM kondate_job_steps WHERE instance = ? AND status = ? \
                 ORDER BY id DESC LIMIT 1",
                &[Value::Int(id), Value::Text(ERROR.into())],
            )
            .await?;
        Ok(row.map(|r| get_string(&r, "step_key")).transpose()?)
    }

    /// Record event `kind` about instance `id` of `job` (what notifications are made of).
    async fn event(
        tx: &mut kondate_db::Tx,
        kind: &str,
        job: &str,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), JobsError> {
        kondate_db::state::record_event_tx(tx, kind, job, &payload.to_string(), ms(now)).await?;
        Ok(())
    }

    /// The failed step of instance `id`, which must be in ERROR.
    async fn failed_step(&self, id: i64) -> Result<i64, JobsError> {
        let status = self.status(id).await?;
        if status != ERROR {
            return Err(JobsError::Invalid(format!(
                "instance {id} is {status}; only an instance in error can be retried or skipped"
            )));
        }
        let row = self
            .db
            .fetch_optional(
                "SELECT id FROM kondate_job_steps WHERE instance = ? AND status = ? \
                 ORDER BY id DESC LIMIT 1",
                &[Value::Int(id), Value::Text(ERROR.into())],
            )
            .await?
            .ok_or_else(|| DbError::missing_row("finding the failed step"))?;
        Ok(get_i64(&row, "id")?)
    }

    async fn job_of(&self, id: i64) -> Result<String, JobsError> {
        self.instance_text(id, "job").await
    }

    async fn step_key(&self, step: i64) -> Result<String, JobsError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT step_key FROM kondate_job_steps WHERE id = ?",
                &[Value::Int(step)],
            )
            .await?
            .ok_or_else(|| DbError::missing_row("reading a step"))?;
        Ok(get_string(&row, "step_key")?)
    }

    async fn status(&self, id: i64) -> Result<String, JobsError> {
        self.instance_text(id, "status").await
    }

    /// Column `column` (one of this module's literals) of instance `id`.
    async fn instance_text(&self, id: i64, column: &'static str) -> Result<String, JobsError> {
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {column} FROM kondate_job_instances WHERE id = ?"),
                &[Value::Int(id)],
            )
            .await?
            .ok_or(JobsError::NoSuchInstance(id))?;
        Ok(get_string(&row, column)?)
    }

    /// Run instance `id`'s failed step again (a new attempt), and the rest after it.
    pub async fn retry(&self, id: i64, now: DateTime<Utc>) -> Result<(), JobsError> {
        self.reopen(id, PENDING, now).await
    }

    /// Go on after instance `id`'s failed step as if it had succeeded.
    pub async fn skip(&self, id: i64, now: DateTime<Utc>) -> Result<(), JobsError> {
        self.reopen(id, SKIPPED, now).await
    }

    async fn reopen(
        &self,
        id: i64,
        step_status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JobsError> {
        let step = self.failed_step(id).await?;
        let job = self.job_of(id).await?;
        let mut tx = self.db.begin().await?;
        use kondate_db::Session;
        tx.execute(
            "UPDATE kondate_job_steps SET status = ?, attempt = attempt + 1, worker = NULL, \
             not_before = NULL, started_at = NULL, finished_at = NULL, exit_code = NULL, \
             error = NULL WHERE id = ? AND status = ?",
            &[
                Value::Text(step_status.into()),
                Value::Int(step),
                Value::Text(ERROR.into()),
            ],
        )
        .await?;
        let moved = tx
            .execute(
                "UPDATE kondate_job_instances SET status = ?, error = NULL, error_at = NULL, \
                 noticed_at = NULL WHERE id = ? AND status = ?",
                &[
                    Value::Text(WORKING.into()),
                    Value::Int(id),
                    Value::Text(ERROR.into()),
                ],
            )
            .await?;
        if moved != 1 {
            return Err(JobsError::Invalid(format!(
                "instance {id} changed while it was being reopened; try again"
            )));
        }
        let kind = if step_status == SKIPPED {
            "job.skipped"
        } else {
            "job.retried"
        };
        let key = self.step_key(step).await?;
        let payload = serde_json::json!({ "job": job, "instance": id, "step": key });
        Self::event(&mut tx, kind, &job, payload, now).await?;
        tx.commit().await?;
        self.advance(id, now).await?;
        self.wake_workers().await;
        Ok(())
    }

    /// Cancel instance `id` (not yet ended): it ends CANCEL and its steps not yet run are
    /// cancelled; a step already running runs to its end.
    pub async fn cancel(&self, id: i64, now: DateTime<Utc>) -> Result<(), JobsError> {
        self.cancel_with(id, false, now).await
    }

    /// [`Executor::cancel`]; with `force`, the steps running now are stopped too: their
    /// workers kill each one's whole process group (SIGTERM, then SIGKILL after the
    /// grace), and they end `cancel`. (`execute:` steps; kondate's own tasks run to their
    /// end.)
    pub async fn cancel_with(
        &self,
        id: i64,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<(), JobsError> {
        let job = self.job_of(id).await?;
        use kondate_db::Session;
        let mut tx = self.db.begin().await?;
        let moved = tx
            .execute(
                "UPDATE kondate_job_instances SET status = ?, finished_at = ? \
                 WHERE id = ? AND status IN (?, ?)",
                &[
                    Value::Text(CANCEL.into()),
                    Value::Int(ms(now)),
                    Value::Int(id),
                    Value::Text(WORKING.into()),
                    Value::Text(ERROR.into()),
                ],
            )
            .await?;
        if moved == 0 {
            drop(tx);
            let status = self.status(id).await?;
            return Err(JobsError::Invalid(format!(
                "instance {id} is {status}; only a working or failed instance can be cancelled"
            )));
        }
        let payload = serde_json::json!({ "job": job, "instance": id, "force": force });
        Self::event(&mut tx, "job.cancelled", &job, payload, now).await?;
        tx.execute(
            "UPDATE kondate_job_steps SET status = ?, finished_at = ? WHERE instance = ? \
                 AND status = ?",
            &[
                Value::Text(CANCEL.into()),
                Value::Int(ms(now)),
                Value::Int(id),
                Value::Text(PENDING.into()),
            ],
        )
        .await?;
        if force {
            tx.execute(
                "UPDATE kondate_job_steps SET status = ? WHERE instance = ? AND status = ?",
                &[
                    Value::Text(CANCEL.into()),
                    Value::Int(id),
                    Value::Text(WORKING.into()),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Fail the steps whose worker is gone — stopped, or silent past `lost_after` (the one
    /// verdict of `kondate_db::processes::gone_reason`) — each with a message naming the
    /// worker and when it was last heard from, and put their instances in ERROR, from where
    /// they can be retried. Returns how many steps it failed. Nothing stays WORKING because
    /// the process running it died.
    pub async fn release_lost(
        &self,
        now: DateTime<Utc>,
        lost_after: Duration,
    ) -> Result<usize, JobsError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT id, instance, worker, process FROM kondate_job_steps WHERE status = ?",
                &[Value::Text(WORKING.into())],
            )
            .await?;
        let mut verdicts: HashMap<String, Option<String>> = HashMap::new();
        let mut failed = 0;
        for r in rows {
            let Some(worker) = get_opt_string(&r, "worker") else {
                continue;
            };
            if !verdicts.contains_key(&worker) {
                let p = kondate_db::processes::get(&self.db, &worker).await?;
                let gone =
                    kondate_db::processes::gone_reason(&worker, p.as_ref(), ms(now), lost_after);
                verdicts.insert(worker.clone(), gone);
            }
            let Some(Some(why)) = verdicts.get(&worker) else {
                continue;
            };
            let (id, instance) = (get_i64(&r, "id")?, get_i64(&r, "instance")?);
            let job = self.job_of(instance).await?;
            let key = self.step_key(id).await?;
            // What the dead worker started may still run (its own process group): stopped
            // here when it ran on this host, named otherwise.
            let left = get_opt_string(&r, "process").map_or_else(String::new, |p| {
                kondate_core::host::kill_leftover_group(&p).note(&p)
            });
            use kondate_db::Session;
            let mut tx = self.db.begin().await?;
            let moved = tx
                .execute(
                    "UPDATE kondate_job_steps SET status = ?, finished_at = ?, error = ? \
                     WHERE id = ? AND status = ? AND worker = ?",
                    &[
                        Value::Text(ERROR.into()),
                        Value::Int(ms(now)),
                        Value::Text(format!(
                            "its worker is gone: {why}{left}; retry the instance to run the step again"
                        )),
                        Value::Int(id),
                        Value::Text(WORKING.into()),
                        Value::Text(worker.clone()),
                    ],
                )
                .await?;
            if moved == 1 {
                let payload = serde_json::json!({
                    "job": job, "instance": instance, "step": key, "worker": worker,
                    "error": format!("its worker is gone: {why}"),
                });
                Self::event(&mut tx, "job.worker_lost", &job, payload, now).await?;
            }
            tx.commit().await?;
            if moved == 1 {
                failed += 1;
                self.advance(instance, now).await?;
            }
        }
        Ok(failed)
    }

    /// Remove what is older than `retention` (at most once an `every` across processes:
    /// the first to move the `retention` cursor does it): finished instances (SUCCESS,
    /// CANCEL) with their steps, their logs in the store and their notifications; sent or
    /// failed notifications; events both cursors have passed. An instance in ERROR is kept
    /// whatever its age — it still asks for a person. None when it was not this process's
    /// turn.
    pub async fn prune(
        &self,
        now: DateTime<Utc>,
        retention: Duration,
        every: Duration,
    ) -> Result<Option<PruneReport>, JobsError> {
        const CURSOR: &str = "retention";
        let now_ms = ms(now);
        let turn = match cursor::get(&self.db, CURSOR).await? {
            None => cursor::create(&self.db, CURSOR, now_ms).await?,
            Some(at) if now_ms - at >= every.as_millis() as i64 => {
                cursor::advance(&self.db, CURSOR, at, now_ms).await?
            }
            Some(_) => false,
        };
        if !turn {
            return Ok(None);
        }
        let before = now_ms - retention.as_millis() as i64;
        let mut report = PruneReport::default();
        let old = self
            .db
            .fetch_all(
                "SELECT id FROM kondate_job_instances WHERE status IN (?, ?) \
                 AND finished_at IS NOT NULL AND finished_at < ? ORDER BY id LIMIT 10000",
                &[
                    Value::Text(SUCCESS.into()),
                    Value::Text(CANCEL.into()),
                    Value::Int(before),
                ],
            )
            .await?;
        for r in old {
            let id = get_i64(&r, "id")?;
            // The logs first: an instance whose logs cannot be removed stays, to be tried
            // again, rather than leaving objects nothing points at.
            match self.store.delete_prefix(&format!("jobs/{id}/")).await {
                Ok(n) => report.logs += n,
                Err(e) => {
                    tracing::warn!(instance = id, error = %e, "cannot remove an old instance's logs; will try again");
                    continue;
                }
            }
            use kondate_db::Session;
            let mut tx = self.db.begin().await?;
            report.steps += tx
                .execute(
                    "DELETE FROM kondate_job_steps WHERE instance = ?",
                    &[Value::Int(id)],
                )
                .await? as usize;
            tx.execute(
                "DELETE FROM kondate_notifications WHERE instance = ?",
                &[Value::Int(id)],
            )
            .await?;
            report.instances += tx
                .execute(
                    "DELETE FROM kondate_job_instances WHERE id = ?",
                    &[Value::Int(id)],
                )
                .await? as usize;
            tx.commit().await?;
        }
        report.notifications = self
            .db
            .execute(
                "DELETE FROM kondate_notifications WHERE status <> 'pending' AND created_at < ?",
                &[Value::Int(before)],
            )
            .await? as usize;
        // Events behind every reader (the triggers' and the notifications' cursors).
        let behind = self
            .db
            .fetch_optional(
                "SELECT MIN(position) AS p FROM kondate_job_cursors WHERE name IN (?, ?)",
                &[
                    Value::Text("events".into()),
                    Value::Text("notifications".into()),
                ],
            )
            .await?
            .and_then(|r| get_opt_i64(&r, "p"));
        if let Some(p) = behind {
            report.events = self
                .db
                .execute(
                    "DELETE FROM kondate_events WHERE id <= ? AND created_at < ?",
                    &[Value::Int(p), Value::Int(before)],
                )
                .await? as usize;
        }
        Ok(Some(report))
    }

    /// Instance `id`'s steps, in the order they were recorded.
    pub async fn steps(&self, id: i64) -> Result<Vec<StepRow>, JobsError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT id, step_key, task, queue, status, attempt, worker, process, exit_code, \
                 peak_memory_bytes, log_key, log_spool, error FROM kondate_job_steps \
                 WHERE instance = ? ORDER BY id",
                &[Value::Int(id)],
            )
            .await?;
        let usual = self.usual_peaks(id).await?;
        rows.iter()
            .map(|r| {
                let key = get_string(r, "step_key")?;
                Ok(StepRow {
                    usual_peak_memory_bytes: usual.get(&key).copied(),
                    id: get_i64(r, "id")?,
                    key,
                    task: get_string(r, "task")?,
                    queue: get_string(r, "queue")?,
                    status: get_string(r, "status")?,
                    attempt: get_i64(r, "attempt")?,
                    worker: get_opt_string(r, "worker"),
                    process: get_opt_string(r, "process"),
                    exit_code: get_opt_i64(r, "exit_code"),
                    peak_memory_bytes: get_opt_i64(r, "peak_memory_bytes"),
                    log_key: get_opt_string(r, "log_key"),
                    log_spool: get_opt_string(r, "log_spool"),
                    error: get_opt_string(r, "error"),
                })
            })
            .collect()
    }

    /// The job's usual peak memory of each step key: the median of the step's peaks in
    /// the job's other instances where it succeeded (the latest 20 of each).
    async fn usual_peaks(&self, id: i64) -> Result<HashMap<String, i64>, JobsError> {
        let job = self.job_of(id).await?;
        let rows = self
            .db
            .fetch_all(
                "SELECT s.step_key, s.peak_memory_bytes FROM kondate_job_steps s \
                 JOIN kondate_job_instances i ON i.id = s.instance \
                 WHERE i.job = ? AND i.id <> ? AND s.status = ? \
                 AND s.peak_memory_bytes IS NOT NULL ORDER BY s.id DESC LIMIT 2000",
                &[
                    Value::Text(job),
                    Value::Int(id),
                    Value::Text(SUCCESS.into()),
                ],
            )
            .await?;
        let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
        for r in &rows {
            let peaks = by_key.entry(get_string(r, "step_key")?).or_default();
            if peaks.len() < 20
                && let Some(p) = get_opt_i64(r, "peak_memory_bytes")
            {
                peaks.push(p);
            }
        }
        Ok(by_key
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                (k, v[v.len() / 2])
            })
            .collect())
    }

    /// Instance `id`'s steps' logs as lines `STEP TIME out|err TEXT`, in chunks: what is
    /// stored, and — with `follow` — what running steps write, as they write it (read from
    /// the worker's spool file where this process can reach it, else once the step's log
    /// is stored), until no step runs and none waits. Without `follow`, what there is now.
    pub fn log_stream(
        &self,
        id: i64,
        follow: bool,
    ) -> impl futures::Stream<Item = Result<String, JobsError>> + Send + 'static {
        struct State {
            ex: Executor,
            id: i64,
            follow: bool,
            offsets: HashMap<i64, usize>,
            finished: std::collections::HashSet<i64>,
            ended: bool,
        }
        let state = State {
            ex: self.clone(),
            id,
            follow,
            offsets: HashMap::new(),
            finished: Default::default(),
            ended: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.ended {
                return None;
            }
            loop {
                let chunk = async {
                    let status = st.ex.status(st.id).await?;
                    let steps = st.ex.steps(st.id).await?;
                    let mut out = String::new();
                    let mut running = false;
                    for step in &steps {
                        if st.finished.contains(&step.id) {
                            continue;
                        }
                        let from = st.offsets.get(&step.id).copied().unwrap_or(0);
                        // `bytes` is the log from byte `base` on: the stored log whole,
                        // a running step's spool only past what was already read.
                        let (bytes, base, done) = match (&step.log_key, &step.log_spool) {
                            (Some(_), _) => {
                                (st.ex.step_log(step).await?.unwrap_or_default(), 0, true)
                            }
                            (None, Some(spool)) if step.status == WORKING => {
                                (read_from(spool, from), from, false)
                            }
                            _ => (
                                Vec::new(),
                                from,
                                !matches!(step.status.as_str(), WORKING | PENDING),
                            ),
                        };
                        running |= !done;
                        let upto = if done {
                            base + bytes.len()
                        } else {
                            // Whole lines only: the rest comes with the next read.
                            memchr::memrchr(b'\n', &bytes).map_or(base, |i| base + i + 1)
                        };
                        if upto > from {
                            for line in bytes[from - base..upto - base].split(|b| *b == b'\n') {
                                if let Some(l) = kondate_apps::parse_line(line) {
                                    let stream = match l.stream {
                                        kondate_apps::Stream::Stdout => "out",
                                        kondate_apps::Stream::Stderr => "err",
                                    };
                                    out.push_str(&format!(
                                        "{} {} {stream} {}\n",
                                        step.key, l.time, l.text
                                    ));
                                }
                            }
                            st.offsets.insert(step.id, upto);
                        }
                        if done {
                            st.finished.insert(step.id);
                        }
                    }
                    let over = !st.follow || (status != WORKING && !running);
                    Ok::<_, JobsError>((out, over))
                }
                .await;
                match chunk {
                    Err(e) => {
                        st.ended = true;
                        return Some((Err(e), st));
                    }
                    Ok((out, over)) => {
                        st.ended = over;
                        if !out.is_empty() || over {
                            return Some((Ok(out), st));
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        })
    }

    /// The stored log of a step, as the store holds it (lines of `time stream text`).
    pub async fn step_log(&self, step: &StepRow) -> Result<Option<Vec<u8>>, JobsError> {
        match &step.log_key {
            None => Ok(None),
            Some(k) => Ok(Some(self.store.get(k).await?.to_vec())),
        }
    }
}

/// The file at `path` from byte `from` on (empty when it cannot be read: the step's log
/// then comes from the store once it ends).
fn read_from(path: &str, from: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(from as u64)).is_ok()
    {
        let _ = f.read_to_end(&mut out);
    }
    out
}

/// What [`Executor::prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub instances: usize,
    pub steps: usize,
    pub logs: usize,
    pub notifications: usize,
    pub events: usize,
}

/// One step as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRow {
    pub id: i64,
    pub key: String,
    pub task: String,
    pub queue: String,
    pub status: String,
    pub attempt: i64,
    pub worker: Option<String>,
    /// The process it started (`HOST/BOOT_ID/PID/START_TICKS`), leading its own process
    /// group: where to look for it on the worker's host.
    pub process: Option<String>,
    pub exit_code: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    /// The median peak of this step in the job's other instances where it succeeded.
    pub usual_peak_memory_bytes: Option<i64>,
    pub log_key: Option<String>,
    /// Where the worker writes the log while the step runs (on the worker's host).
    #[serde(skip)]
    pub log_spool: Option<String>,
    pub error: Option<String>,
}
