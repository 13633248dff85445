//! Notifications: what the scheduler and the workers record as events (`job.launched`,
//! `job.failed`, `job.worker_lost`, …, and the label and model events) becomes notices for
//! the destinations of `kondate.toml`, sent with retries — never failing a job.
//!
//! - **Exactly once, from any number of processes.** [`Notifier::enqueue`] reads the events
//!   after its cursor and records one row per (event, destination) under a unique key, so
//!   schedulers reading the same events at once record each notice once; the cursor moves
//!   forward only. The first pass on a database starts at its newest event.
//! - **Who gets what.** A job's events go to the destinations its definition names
//!   (`notifications.to`), else to `notifications.default`; a job on `problems` (the
//!   default) gets failures, worker lost, long running, still failing, back to normal and a
//!   definition that failed to load; on `all` also launched, finished, retried, skipped and
//!   cancelled. A success after a failure of the same job is "back to normal". Label and
//!   model events go to the default destinations (`notifications.label_and_model_events`).
//! - **Watching.** [`Notifier::watch`] records `job.long_running` for an instance working
//!   past its job's expected time (at most hourly) and `job.still_failing` for one in
//!   ERROR every `notifications.remind_every`; a compare-and-set on the instance makes each
//!   once across processes.
//! - **Sending.** [`Notifier::deliver`] claims due rows (a claim expires, so a process that
//!   died sending does not hold one), sends, and records the outcome: sent, or the error
//!   and the next try (30 s doubling to at most an hour), or failed after
//!   `notifications.attempts` tries or an error that retrying cannot mend.

use chrono::{DateTime, Utc};
use kondate_core::config::NotificationsSection;
use kondate_db::{Database, Value, get_i64, get_opt_i64, get_opt_string, get_string};

use crate::JobsError;
use crate::definition::NotifyOn;
use crate::deliver::{Notice, SendError, Sender};
use crate::executor::Executor;
use crate::scheduler::{ERROR, Scheduler, WORKING, cursor};

/// The events notices are made of.
const EVENTS: [&str; 14] = [
    "job.launched",
    "job.retried",
    "job.skipped",
    "job.cancelled",
    "job.failed",
    "job.succeeded",
    "job.worker_lost",
    "job.long_running",
    "job.still_failing",
    "job.definition_failed",
    "labels.changed",
    "model.pushed",
    "model.alias_moved",
    "model.deleted",
];

/// How often a long-running instance is brought up again.
const LONG_RUNNING_EVERY_MS: i64 = 3_600_000;
/// How long a process may hold a notice it is sending.
const CLAIM_MS: i64 = 120_000;

/// Delivery states.
pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

/// Wait before try `attempt + 1`, after `attempt` failed: 30 s doubling, at most an hour.
pub fn backoff_ms(attempt: i64) -> i64 {
    let exp = attempt.clamp(1, 8) - 1;
    (30_000_i64 << exp).min(3_600_000)
}

/// One notification as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub destination: String,
    pub kind: String,
    pub job: Option<String>,
    pub instance: Option<i64>,
    pub status: String,
    pub attempts: i64,
    pub created_at: String,
    pub next_at: Option<String>,
    pub sent_at: Option<String>,
    pub error: Option<String>,
    pub title: String,
}

/// What a [`Notifier::deliver`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliverReport {
    pub sent: usize,
    /// Failed this time, to be tried again.
    pub retrying: usize,
    /// Failed for good.
    pub failed: usize,
}

/// Turns events into notices and sends them.
#[derive(Clone)]
pub struct Notifier {
    db: Database,
    scheduler: Scheduler,
    executor: Executor,
    config: NotificationsSection,
    project: String,
    public_url: String,
    sender: Sender,
}

fn time(ms: i64) -> String {
    kondate_core::clock::ms_to_rfc3339(ms)
}

fn minutes(ms: i64) -> String {
    let m = ms / 60_000;
    if m >= 120 {
        format!("{}h{:02}m", m / 60, m % 60)
    } else {
        format!("{m} min")
    }
}

impl Notifier {
    pub fn new(
        db: Database,
        scheduler: Scheduler,
        executor: Executor,
        config: NotificationsSection,
        project: String,
        public_url: String,
    ) -> Notifier {
        Notifier {
            db,
            scheduler,
            executor,
            config,
            project,
            public_url: public_url.trim_end_matches('/').to_string(),
            sender: Sender::new(),
        }
    }

    /// Record notices for the events after the cursor (see the module); returns how many.
    pub async fn enqueue(&self, now: DateTime<Utc>) -> Result<usize, JobsError> {
        const CURSOR: &str = "notifications";
        let Some(position) = cursor::events(&self.db, CURSOR).await? else {
            return Ok(0);
        };
        let marks = vec!["?"; EVENTS.len()].join(", ");
        let mut params = vec![Value::Int(position)];
        params.extend(EVENTS.iter().map(|k| Value::Text((*k).into())));
        let events = self
            .db
            .fetch_all(
                &format!(
                    "SELECT id, kind, subject, payload, created_at FROM kondate_events \
                     WHERE id > ? AND kind IN ({marks}) ORDER BY id LIMIT 500"
                ),
                &params,
            )
            .await?;
        let Some(last) = events.last().map(|r| get_i64(r, "id")).transpose()? else {
            return Ok(0);
        };
        let mut recorded = 0;
        for e in &events {
            let id = get_i64(e, "id")?;
            let kind = get_string(e, "kind")?;
            let subject = get_string(e, "subject")?;
            let payload: serde_json::Value =
                serde_json::from_str(&get_string(e, "payload")?).unwrap_or_default();
            let at = get_i64(e, "created_at")?;
            let made = match self.notice(id, &kind, &subject, payload, at).await {
                Ok(made) => made,
                // The database failing: the pass stops and the next reads these again.
                Err(e @ JobsError::Db(_)) => return Err(e),
                // Anything else would fail every pass: this event is passed over, loudly.
                Err(e) => {
                    tracing::error!(event = id, %kind, %subject, error = %e,
                        "cannot make a notification of this event; passing it over");
                    None
                }
            };
            let Some((notice, to)) = made else {
                continue;
            };
            for dest in to {
                recorded += self.record(id, &dest, &notice, now).await? as usize;
            }
        }
        cursor::advance(&self.db, CURSOR, position, last).await?;
        Ok(recorded)
    }

    /// Record the notice of event `event` for `dest` once; a destination kondate.toml does
    /// not name is recorded failed, saying so.
    async fn record(
        &self,
        event: i64,
        dest: &str,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> Result<bool, JobsError> {
        let known = self.config.destinations.contains_key(dest);
        let (status, error) = if known {
            (PENDING, Value::Null)
        } else {
            tracing::warn!(destination = dest, job = ?notice.job, "notification to an unknown destination");
            (
                FAILED,
                Value::Text(format!(
                    "no destination named `{dest}`: add [notifications.destinations.{dest}] to \
                     kondate.toml or fix the job's notifications.to"
                )),
            )
        };
        let result = self
            .db
            .execute(
                "INSERT INTO kondate_notifications (event_id, destination, kind, job, instance, \
                 notice, status, attempts, next_at, created_at, error) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                &[
                    Value::Int(event),
                    Value::Text(dest.to_string()),
                    Value::Text(notice.kind.clone()),
                    notice.job.clone().map_or(Value::Null, Value::Text),
                    notice
                        .instance
                        .map_or(Value::NullOf(kondate_db::ColumnType::Integer), Value::Int),
                    Value::Text(serde_json::to_string(notice).expect("JSON")),
                    Value::Text(status.into()),
                    Value::Int(now.timestamp_millis()),
                    Value::Int(now.timestamp_millis()),
                    error,
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The notice of an event and its destinations; None when nobody is to hear of it.
    async fn notice(
        &self,
        event: i64,
        kind: &str,
        subject: &str,
        details: serde_json::Value,
        at: i64,
    ) -> Result<Option<(Notice, Vec<String>)>, JobsError> {
        let Some(job_kind) = kind.strip_prefix("job.") else {
            // A label or model event.
            if !self.config.label_and_model_events || self.config.default.is_empty() {
                return Ok(None);
            }
            let (title, text) = match kind {
                "labels.changed" => (
                    format!(
                        "labels `{}` changed",
                        details["label_set"].as_str().unwrap_or(subject)
                    ),
                    format!(
                        "Label set `{}` has a new revision ({}).",
                        details["label_set"].as_str().unwrap_or(subject),
                        details["revision"]
                    ),
                ),
                "model.pushed" => (
                    format!("model {subject} pushed"),
                    format!("Model version {subject} was pushed."),
                ),
                "model.alias_moved" => (
                    format!("alias {subject} moved"),
                    format!(
                        "Alias {subject} now points at version {} (was {}).",
                        details["to"], details["from"]
                    ),
                ),
                _ => (
                    format!("model {subject} deleted"),
                    format!("Model version {subject} was deleted."),
                ),
            };
            let notice = self.make(kind.replace('.', "_"), title, text, None, None, at, details);
            return Ok(Some((notice, self.config.default.clone())));
        };
        let job = subject.to_string();
        let instance = details["instance"].as_i64();
        // The job's settings: its current revision's (a job that never loaded: defaults).
        let (on, to, expected) = match self.scheduler.job_row(&job).await? {
            Some(row) if row.revision.is_some() => {
                let def = self
                    .scheduler
                    .definition(&job, row.revision.unwrap_or_default())
                    .await?;
                (
                    def.notifications.on,
                    def.notifications.to.clone(),
                    def.expected_minutes(),
                )
            }
            _ => (NotifyOn::Problems, Vec::new(), None),
        };
        let to = if to.is_empty() {
            self.config.default.clone()
        } else {
            to
        };
        let mut notice_kind = match job_kind {
            "succeeded" => "finished",
            "cancelled" => "cancelled",
            other => other,
        }
        .to_string();
        if job_kind == "succeeded" && self.failed_before(&job, event).await? {
            notice_kind = "back_to_normal".into();
        }
        if to.is_empty() || (on == NotifyOn::Problems && !crate::deliver::is_problem(&notice_kind))
        {
            return Ok(None);
        }
        let error = details["error"].as_str().unwrap_or("").to_string();
        let step_key = details["step"].as_str().map(str::to_string);
        let (title, text) = match notice_kind.as_str() {
            "launched" => (
                format!("{job} launched"),
                format!(
                    "Instance {} started ({}{}), scheduled at {}.",
                    instance.unwrap_or_default(),
                    details["reason"].as_str().unwrap_or("by hand"),
                    details["by"]
                        .as_str()
                        .map(|b| format!(" by {b}"))
                        .unwrap_or_default(),
                    details["scheduled_at"]
                        .as_i64()
                        .map(time)
                        .unwrap_or_default()
                ),
            ),
            "retried" => (
                format!("{job} retried"),
                format!("Step {} runs again.", step_key.as_deref().unwrap_or("?")),
            ),
            "skipped" => (
                format!("{job}: a failed step was skipped"),
                format!(
                    "Step {} was skipped; the instance goes on after it.",
                    step_key.as_deref().unwrap_or("?")
                ),
            ),
            "cancelled" => (
                format!("{job} cancelled"),
                if details["force"].as_bool() == Some(true) {
                    "The instance was force-cancelled: its running steps were stopped.".into()
                } else {
                    "The instance was cancelled.".into()
                },
            ),
            "failed" => (
                format!("{job} failed"),
                format!(
                    "{error}. Retry it with `kondate jobs retry {id}` once the cause is fixed, \
                     or skip the step with `kondate jobs skip {id}`.",
                    id = instance.unwrap_or_default()
                ),
            ),
            "worker_lost" => (
                format!("{job}: the worker running a step is gone"),
                format!(
                    "Step {} failed: {error}. The instance is in ERROR; retry it to run the \
                     step again.",
                    step_key.as_deref().unwrap_or("?")
                ),
            ),
            "finished" => (
                format!("{job} finished"),
                format!("Instance {} succeeded.", instance.unwrap_or_default()),
            ),
            "back_to_normal" => (
                format!("{job} is back to normal"),
                format!(
                    "Instance {} succeeded after a failure of the job.",
                    instance.unwrap_or_default()
                ),
            ),
            "long_running" => (
                format!("{job} is running long"),
                format!(
                    "Instance {} has run for {}; the job is expected to take {}.",
                    instance.unwrap_or_default(),
                    minutes(details["elapsed_ms"].as_i64().unwrap_or_default()),
                    expected
                        .map(|m| minutes(i64::from(m) * 60_000))
                        .unwrap_or_else(|| "less".into())
                ),
            ),
            "still_failing" => (
                format!("{job} is still failing"),
                format!(
                    "Instance {} has been in ERROR since {}: {error}. Retry, skip or cancel it.",
                    instance.unwrap_or_default(),
                    details["since"].as_i64().map(time).unwrap_or_default()
                ),
            ),
            "definition_failed" => (
                format!("jobs/{job}.jsonnet failed to load"),
                match details["revision"].as_i64() {
                    Some(r) => format!("{error}\nRevision {r} keeps running until it loads."),
                    None => format!("{error}\nThe job is not scheduled until it loads."),
                },
            ),
            other => (format!("{job}: {other}"), error.clone()),
        };
        let (step, log_tail) = match (instance, &step_key) {
            (Some(i), Some(k)) if crate::deliver::is_problem(&notice_kind) => {
                self.step_and_tail(i, k).await?
            }
            (_, Some(k)) => (Some(k.clone()), Vec::new()),
            _ => (None, Vec::new()),
        };
        let mut notice = self.make(notice_kind, title, text, Some(job), instance, at, details);
        notice.step = step;
        notice.log_tail = log_tail;
        Ok(Some((notice, to)))
    }

    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        kind: String,
        title: String,
        text: String,
        job: Option<String>,
        instance: Option<i64>,
        at: i64,
        details: serde_json::Value,
    ) -> Notice {
        Notice {
            kind,
            title,
            text,
            project: self.project.clone(),
            job,
            instance,
            link: instance.map(|i| format!("{}/v1/instances/{i}", self.public_url)),
            step: None,
            log_tail: Vec::new(),
            at: time(at),
            details,
        }
    }

    /// Whether the job's last outcome before event `event` was a failure.
    async fn failed_before(&self, job: &str, event: i64) -> Result<bool, JobsError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT kind FROM kondate_events WHERE subject = ? AND kind IN (?, ?) AND id < ? \
                 ORDER BY id DESC LIMIT 1",
                &[
                    Value::Text(job.to_string()),
                    Value::Text("job.succeeded".into()),
                    Value::Text("job.failed".into()),
                    Value::Int(event),
                ],
            )
            .await?;
        Ok(row
            .map(|r| get_string(&r, "kind"))
            .transpose()?
            .is_some_and(|k| k == "job.failed"))
    }

    /// Step `key` of instance `instance` as shown (`L3 execute: make train`), and its log's
    /// last lines (`out text`, without the time).
    async fn step_and_tail(
        &self,
        instance: i64,
        key: &str,
    ) -> Result<(Option<String>, Vec<String>), JobsError> {
        let Some(step) = self
            .executor
            .steps(instance)
            .await?
            .into_iter()
            .find(|s| s.key == key)
        else {
            return Ok((Some(key.to_string()), Vec::new()));
        };
        let shown = format!("{} {}", step.key, step.task);
        let log = match self.executor.step_log(&step).await {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!(instance, step = key, error = %e, "cannot read the step's log for a notification");
                String::new()
            }
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(self.config.log_lines)..]
            .iter()
            .map(|l| l.split_once(' ').map_or(*l, |(_, rest)| rest).to_string())
            .collect();
        Ok((Some(shown), tail))
    }

    /// Record `job.long_running` and `job.still_failing` where due (see the module).
    pub async fn watch(&self, now: DateTime<Utc>) -> Result<usize, JobsError> {
        let now_ms = now.timestamp_millis();
        let mut recorded = 0;
        let rows = self
            .db
            .fetch_all(
                "SELECT id, job, revision, status, created_at, error_at, noticed_at, error \
                 FROM kondate_job_instances WHERE status IN (?, ?) ORDER BY id",
                &[Value::Text(WORKING.into()), Value::Text(ERROR.into())],
            )
            .await?;
        for r in rows {
            let (id, job) = (get_i64(&r, "id")?, get_string(&r, "job")?);
            let noticed = get_opt_i64(&r, "noticed_at");
            let status = get_string(&r, "status")?;
            let (kind, payload) = if status == WORKING {
                let def = self
                    .scheduler
                    .definition(&job, get_i64(&r, "revision")?)
                    .await?;
                let Some(expected) = def.expected_minutes() else {
                    continue;
                };
                let elapsed = now_ms - get_i64(&r, "created_at")?;
                if elapsed <= i64::from(expected) * 60_000
                    || noticed.is_some_and(|n| now_ms - n < LONG_RUNNING_EVERY_MS)
                {
                    continue;
                }
                (
                    "job.long_running",
                    serde_json::json!({
                        "job": job, "instance": id, "elapsed_ms": elapsed,
                        "expected_minutes": expected,
                    }),
                )
            } else {
                let Some(since) = get_opt_i64(&r, "error_at") else {
                    continue;
                };
                let every = self.config.remind_every.as_millis() as i64;
                if now_ms - noticed.unwrap_or(since).max(since) < every {
                    continue;
                }
                (
                    "job.still_failing",
                    serde_json::json!({
                        "job": job, "instance": id, "since": since,
                        "error": get_opt_string(&r, "error"),
                    }),
                )
            };
            // Once across processes: only the one that moves noticed_at records the event.
            let moved = self
                .db
                .execute(
                    "UPDATE kondate_job_instances SET noticed_at = ? WHERE id = ? AND status = ? \
                     AND COALESCE(noticed_at, -1) = ?",
                    &[
                        Value::Int(now_ms),
                        Value::Int(id),
                        Value::Text(status),
                        Value::Int(noticed.unwrap_or(-1)),
                    ],
                )
                .await?;
            if moved == 1 {
                kondate_db::state::record_event(&self.db, kind, &job, &payload.to_string(), now_ms)
                    .await?;
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// Send the notices that are due (see the module).
    pub async fn deliver(&self, now: DateTime<Utc>) -> Result<DeliverReport, JobsError> {
        let now_ms = now.timestamp_millis();
        let mut report = DeliverReport::default();
        let due = self
            .db
            .fetch_all(
                "SELECT id, destination, notice, attempts, claimed_until FROM kondate_notifications \
                 WHERE status = ? AND next_at <= ? ORDER BY next_at, id LIMIT 100",
                &[Value::Text(PENDING.into()), Value::Int(now_ms)],
            )
            .await?;
        for r in due {
            let id = get_i64(&r, "id")?;
            let claimed = self
                .db
                .execute(
                    "UPDATE kondate_notifications SET claimed_until = ?, attempts = attempts + 1 \
                     WHERE id = ? AND status = ? AND COALESCE(claimed_until, 0) = ? \
                     AND COALESCE(claimed_until, 0) < ?",
                    &[
                        Value::Int(now_ms + CLAIM_MS),
                        Value::Int(id),
                        Value::Text(PENDING.into()),
                        Value::Int(get_opt_i64(&r, "claimed_until").unwrap_or(0)),
                        Value::Int(now_ms),
                    ],
                )
                .await?;
            if claimed != 1 {
                continue;
            }
            let attempt = get_i64(&r, "attempts")? + 1;
            let dest_name = get_string(&r, "destination")?;
            let result = match (
                self.config.destinations.get(&dest_name),
                serde_json::from_str::<Notice>(&get_string(&r, "notice")?),
            ) {
                (None, _) => Err(SendError::Permanent(format!(
                    "no destination named `{dest_name}` in kondate.toml any more"
                ))),
                (_, Err(e)) => Err(SendError::Permanent(format!(
                    "the stored notice cannot be read: {e}"
                ))),
                (Some(dest), Ok(notice)) => {
                    self.sender
                        .send(&dest_name, dest, &id.to_string(), &notice, now)
                        .await
                }
            };
            let outcome = match &result {
                Ok(()) => SENT,
                Err(SendError::Retry(_)) if attempt < i64::from(self.config.attempts) => "retrying",
                Err(_) => FAILED,
            };
            crate::metrics::observed()
                .notifications
                .get_or_create(&crate::metrics::DestinationOutcome {
                    destination: dest_name.clone(),
                    outcome: outcome.into(),
                })
                .inc();
            let (status, next_at, error) = match &result {
                Ok(()) => {
                    report.sent += 1;
                    (SENT, now_ms, None)
                }
                Err(SendError::Retry(m)) if attempt < i64::from(self.config.attempts) => {
                    report.retrying += 1;
                    tracing::warn!(notification = id, destination = %dest_name, attempt, error = %m,
                        "notification not sent; will try again");
                    (PENDING, now_ms + backoff_ms(attempt), Some(m.clone()))
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::error!(notification = id, destination = %dest_name, attempt, error = %e,
                        "notification not sent; giving up");
                    (FAILED, now_ms, Some(e.to_string()))
                }
            };
            self.db
                .execute(
                    "UPDATE kondate_notifications SET status = ?, next_at = ?, claimed_until = NULL, \
                     sent_at = ?, error = ? WHERE id = ?",
                    &[
                        Value::Text(status.into()),
                        Value::Int(next_at),
                        if status == SENT {
                            Value::Int(now_ms)
                        } else {
                            Value::NullOf(kondate_db::ColumnType::Integer)
                        },
                        error.map_or(Value::Null, Value::Text),
                        Value::Int(id),
                    ],
                )
                .await?;
        }
        Ok(report)
    }

    /// Send a test notice to destination `name` now (not recorded): for checking a setup.
    pub async fn send_test(&self, name: &str, now: DateTime<Utc>) -> Result<(), JobsError> {
        let known = &self.config.destinations;
        let dest = known.get(name).ok_or_else(|| {
            JobsError::Invalid(format!(
                "no destination named `{name}` in kondate.toml; {}",
                if known.is_empty() {
                    "add one under [notifications.destinations.NAME] (docs/jobs.md#notifications)"
                        .to_string()
                } else {
                    format!(
                        "the destinations are: {}",
                        known.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            ))
        })?;
        let notice = self.make(
            "test".into(),
            "kondate test notification".into(),
            format!("Destination `{name}` works: this is how kondate's notices arrive."),
            None,
            None,
            now.timestamp_millis(),
            serde_json::json!({}),
        );
        self.sender
            .send(
                name,
                dest,
                &format!("test-{}", now.timestamp_millis()),
                &notice,
                now,
            )
            .await
            .map_err(|e| JobsError::Delivery(format!("destination `{name}`: {e}")))
    }

    /// Recorded notifications, newest first; `status` and `job` filter.
    pub async fn list(
        &self,
        status: Option<&str>,
        job: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, JobsError> {
        let mut filter = Vec::new();
        let mut params = Vec::new();
        if let Some(s) = status {
            filter.push("status = ?");
            params.push(Value::Text(s.to_string()));
        }
        if let Some(j) = job {
            filter.push("job = ?");
            params.push(Value::Text(j.to_string()));
        }
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", filter.join(" AND "))
        };
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "SELECT id, event_id, destination, kind, job, instance, notice, status, \
                     attempts, created_at, next_at, sent_at, error FROM kondate_notifications \
                     {filter}ORDER BY id DESC LIMIT {}",
                    limit.clamp(1, 10_000)
                ),
                &params,
            )
            .await?;
        rows.iter()
            .map(|r| {
                let status = get_string(r, "status")?;
                let notice: Option<Notice> = serde_json::from_str(&get_string(r, "notice")?).ok();
                Ok(Delivery {
                    id: get_i64(r, "id")?,
                    event_id: get_i64(r, "event_id")?,
                    destination: get_string(r, "destination")?,
                    kind: get_string(r, "kind")?,
                    job: get_opt_string(r, "job"),
                    instance: get_opt_i64(r, "instance"),
                    attempts: get_i64(r, "attempts")?,
                    created_at: time(get_i64(r, "created_at")?),
                    next_at: (status == PENDING)
                        .then(|| time(get_opt_i64(r, "next_at").unwrap_or(0))),
                    sent_at: get_opt_i64(r, "sent_at").map(time),
                    error: get_opt_string(r, "error"),
                    title: notice.map(|n| n.title).unwrap_or_default(),
                    status,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30_seconds_to_an_hour() {
        let waits: Vec<i64> = (1..=9).map(|a| backoff_ms(a) / 1000).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
