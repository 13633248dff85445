//! The lifecycle of a query: submitted (`pending`), waiting for a slot of its token,
//! `running` on the warehouse, then `success` or `failed`; results expire after the
//! configured time and their objects are deleted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kondate_core::Clock;
use kondate_core::config::QuerySection;
use kondate_db::{Database, Value, get_i64, get_opt_i64, get_opt_string, get_string};
use kondate_store::Store;
use kondate_warehouse::{ResultFormat, UnloadRequest, Warehouse, WarehouseError};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::{QueryError, guard, placeholders};

/// A query's status, as the Queuery API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Success,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "success" => Status::Success,
            _ => Status::Failed,
        }
    }

    /// True once the query will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Success | Status::Failed)
    }
}

/// What a client submits.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The SELECT, possibly with `?` placeholders.
    pub q: String,
    /// One value per placeholder.
    pub values: Vec<String>,
    pub enable_metadata: bool,
    pub format: ResultFormat,
}

/// Who asks for a query: only its own token sees it, an anonymous caller sees only
/// anonymous queries, and kondate itself (and admins) see every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker<'a> {
    Token(&'a str),
    Anonymous,
    Internal,
}

/// A query as stored.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRecord {
    pub id: i64,
    pub token: Option<String>,
    pub status: Status,
    pub select_stmt: String,
    pub format: ResultFormat,
    pub enable_metadata: bool,
    pub object_prefix: String,
    pub data_files: Vec<String>,
    pub manifest_key: Option<String>,
    pub record_count: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired: bool,
}

/// Admission state of one token: its running slots, and how many of its queries are
/// admitted (running or waiting for a slot).
#[derive(Debug)]
struct TokenSlots {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
}

/// Runs queries against the warehouse and keeps their records.
#[derive(Debug)]
pub struct QueryService {
    db: Database,
    store: Store,
    warehouse: Arc<dyn Warehouse>,
    clock: Arc<dyn Clock>,
    config: QuerySection,
    slots: Mutex<HashMap<String, Arc<TokenSlots>>>,
    /// The registered process ([`kondate_db::processes`]) whose queries these are.
    owner: std::sync::OnceLock<String>,
    /// Queries submitted and not yet finished, for draining on shutdown.
    in_flight: Arc<InFlight>,
}

/// A count of queries in flight that [`QueryService::drain`] can wait on; once draining,
/// no query is admitted.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    draining: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

/// One query in flight: counted while it lives.
struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> Result<InFlightGuard, QueryError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let guard = InFlightGuard(self.clone());
        if self.draining.load(Ordering::SeqCst) {
            return Err(QueryError::ShuttingDown);
        }
        Ok(guard)
    }
}

const COLUMNS: &str = "id, token_name, status, select_stmt, format, enable_metadata, \
    object_prefix, data_files, manifest_key, record_count, error, created_at, started_at, \
    finished_at, expires_at, expired";

/// A query's record from its row (`COLUMNS`).
fn record_from_row(row: &kondate_db::AnyRow) -> Result<QueryRecord, QueryError> {
    let data_files = get_opt_string(row, "data_files")
        .map(|s| serde_json::from_str(&s).unwrap_or_default())
        .unwrap_or_default();
    Ok(QueryRecord {
        id: get_i64(row, "id")?,
        token: get_opt_string(row, "token_name"),
        status: Status::parse(&get_string(row, "status")?),
        select_stmt: get_string(row, "select_stmt")?,
        format: ResultFormat::parse(&get_string(row, "format")?).unwrap_or(ResultFormat::Csv),
        enable_metadata: get_i64(row, "enable_metadata")? != 0,
        object_prefix: get_string(row, "object_prefix")?,
        data_files,
        manifest_key: get_opt_string(row, "manifest_key"),
        record_count: get_opt_i64(row, "record_count"),
        error: get_opt_string(row, "error"),
        created_at: from_ms(Some(get_i64(row, "created_at")?)).unwrap_or_default(),
        started_at: from_ms(get_opt_i64(row, "started_at")),
        finished_at: from_ms(get_opt_i64(row, "finished_at")),
        expires_at: from_ms(get_opt_i64(row, "expires_at")),
        expired: get_i64(row, "expired")? != 0,
    })
}

fn ms(t: DateTime<Utc>) -> Value {
    Value::Int(t.timestamp_millis())
}

fn from_ms(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(DateTime::from_timestamp_millis)
}

impl QueryService {
    /// A service over the given parts.
    pub fn new(
        db: Database,
        store: Store,
        warehouse: Arc<dyn Warehouse>,
        clock: Arc<dyn Clock>,
        config: QuerySection,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            store,
            warehouse,
            clock,
            config,
            slots: Mutex::new(HashMap::new()),
            owner: std::sync::OnceLock::new(),
            in_flight: Arc::default(),
        })
    }

    /// Stop admitting queries and wait, up to `deadline`, for those in flight to finish
    /// (a server shutting down); returns how many are still unfinished. Their rows stay
    /// `running` under this process, which other processes fail once it deregisters.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let f = &self.in_flight;
        f.draining.store(true, Ordering::SeqCst);
        let wait = async {
            loop {
                let changed = f.changed.notified();
                if f.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(deadline, wait).await;
        f.count.load(Ordering::SeqCst)
    }

    /// Record the queries this service starts as owned by registered process `id`, so that
    /// other processes leave them alone while it is alive ([`QueryService::recover_lost`]).
    /// Set once; a later call is ignored.
    pub fn set_owner(&self, id: &str) {
        let _ = self.owner.set(id.to_string());
    }

    /// Record that this service's process starts `kind` (`labels sync`, …) on `target`, so
    /// that `kondate processes` shows it and a process waiting for the same can say for whom;
    /// the record goes when the guard is dropped. None before [`QueryService::set_owner`].
    pub async fn begin_work(
        &self,
        kind: &str,
        target: &str,
    ) -> Result<Option<kondate_db::processes::WorkGuard>, QueryError> {
        let Some(owner) = self.owner.get() else {
            return Ok(None);
        };
        let now = self.clock.now().timestamp_millis();
        Ok(Some(
            kondate_db::processes::begin_work(&self.db, owner, kind, target, now).await?,
        ))
    }

    /// The kondate processes heard from since `since` ([`crate::processes`]).
    pub async fn processes(
        &self,
        since: DateTime<Utc>,
        lost_after: Duration,
    ) -> Result<Vec<crate::processes::ProcessView>, QueryError> {
        crate::processes::list(&self.db, self.clock.now(), since, lost_after).await
    }

    /// Check that the warehouse answers.
    pub async fn ping_warehouse(&self) -> Result<(), QueryError> {
        Ok(self.warehouse.ping().await?)
    }

    /// Check that the state database answers.
    pub async fn ping(&self) -> Result<(), QueryError> {
        self.db.fetch_all("SELECT 1", &[]).await?;
        Ok(())
    }

    /// The object store results are written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock the service runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Queries of `token` that are running or waiting right now.
    pub fn in_flight(&self, token: &str) -> (usize, usize) {
        let slots = self.slots.lock().expect("slots lock");
        match slots.get(token) {
            Some(s) => {
                let running = self.config.max_concurrent_per_token - s.running.available_permits();
                (
                    running,
                    s.admitted.load(Ordering::SeqCst).saturating_sub(running),
                )
            }
            None => (0, 0),
        }
    }

    fn slots_for(&self, token: &str) -> Arc<TokenSlots> {
        self.slots
            .lock()
            .expect("slots lock")
            .entry(token.to_string())
            .or_insert_with(|| {
                Arc::new(TokenSlots {
                    running: Arc::new(Semaphore::new(self.config.max_concurrent_per_token)),
                    admitted: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Validate and record a query; returns at once with it `pending`, while it runs in the
    /// background as soon as its token has a free slot. Refused with
    /// [`QueryError::TooManyRequests`] when the token's queue is full.
    pub async fn submit(
        self: &Arc<Self>,
        token: Option<&str>,
        req: SubmitRequest,
    ) -> Result<QueryRecord, QueryError> {
        let (checked, format) = self.validate(&req)?;
        let in_flight = self.in_flight.enter()?;
        let key = token.unwrap_or("").to_string();
        let slots = self.slots_for(&key);
        // Admission: at most max_concurrent running plus max_queued waiting per token.
        let limit = self.config.max_concurrent_per_token + self.config.max_queued_per_token;
        if slots.admitted.fetch_add(1, Ordering::SeqCst) >= limit {
            slots.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(QueryError::TooManyRequests {
                running: self.config.max_concurrent_per_token,
                queued: self.config.max_queued_per_token,
            });
        }
        let record = match self
            .insert(token, &checked.sql, format, req.enable_metadata)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                slots.admitted.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
        };
        let svc = self.clone();
        let id = record.id;
        tokio::spawn(async move {
            let permit = slots.running.clone().acquire_owned().await;
            svc.run(id, &checked, format).await;
            drop(permit);
            slots.admitted.fetch_sub(1, Ordering::SeqCst);
            drop(in_flight);
        });
        Ok(record)
    }

    /// Validate, record and run a query to completion in this task (the CLI's in-process
    /// path). A warehouse error ends the query `failed` and is returned in the record.
    pub async fn execute(&self, req: SubmitRequest) -> Result<QueryRecord, QueryError> {
        let (checked, format) = self.validate(&req)?;
        let _in_flight = self.in_flight.enter()?;
        let record = self
            .insert(None, &checked.sql, format, req.enable_metadata)
            .await?;
        self.run(record.id, &checked, format).await;
        self.get(record.id, Asker::Internal).await
    }

    fn validate(&self, req: &SubmitRequest) -> Result<(guard::Checked, ResultFormat), QueryError> {
        let kind = self.warehouse.kind();
        let bound = placeholders::bind(&req.q, &req.values, kind)
            .map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
        let checked = guard::check_read_only(&bound, kind)
            .map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
        Ok((checked, req.format))
    }

    async fn insert(
        &self,
        token: Option<&str>,
        sql: &str,
        format: ResultFormat,
        enable_metadata: bool,
    ) -> Result<QueryRecord, QueryError> {
        let now = self.clock.now();
        let id = self
            .db
            .insert_returning_id(
                "INSERT INTO kondate_queries (token_name, status, select_stmt, format, \
                 enable_metadata, object_prefix, created_at, expired, owner) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                &[
                    token.into(),
                    Status::Pending.as_str().into(),
                    sql.into(),
                    format.as_str().into(),
                    enable_metadata.into(),
                    "".into(),
                    ms(now),
                    self.owner.get().map(String::as_str).into(),
                ],
            )
            .await?;
        let prefix = format!("queries/{}/{id}/", now.format("%Y/%m/%d"));
        self.db
            .execute(
                "UPDATE kondate_queries SET object_prefix = ? WHERE id = ?",
                &[prefix.as_str().into(), id.into()],
            )
            .await?;
        self.get(id, Asker::Internal).await
    }

    async fn run(&self, id: i64, checked: &guard::Checked, format: ResultFormat) {
        if let Err(e) = self.run_inner(id, checked, format).await {
            tracing::error!(query_id = id, error = %e, "could not record the query's outcome");
        }
    }

    async fn run_inner(
        &self,
        id: i64,
        checked: &guard::Checked,
        format: ResultFormat,
    ) -> Result<(), QueryError> {
        let record = self.get(id, Asker::Internal).await?;
        self.db
            .execute(
                "UPDATE kondate_queries SET status = ?, started_at = ? WHERE id = ?",
                &[
                    Status::Running.as_str().into(),
                    ms(self.clock.now()),
                    id.into(),
                ],
            )
            .await?;
        let req = UnloadRequest {
            select: checked.sql.clone(),
            prefix: record.object_prefix.clone(),
            format,
            parts: self.config.parts,
            gzip_level: self
                .config
                .gzip_level
                .unwrap_or(if self.store.is_local() { 0 } else { 1 }),
            ordered: checked.ordered,
            statement_timeout: self.config.statement_timeout,
        };
        let started = std::time::Instant::now();
        let outcome =
            match tokio::time::timeout(self.config.statement_timeout, self.warehouse.unload(&req))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(WarehouseError::Timeout(self.config.statement_timeout)),
            };
        let now = self.clock.now();
        let expires = now + chrono::Duration::from_std(self.config.result_ttl).unwrap_or_default();
        match outcome {
            Ok(out) => {
                tracing::info!(
                    query_id = id,
                    rows = out.record_count,
                    parts = out.data_files.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "query succeeded"
                );
                self.db
                    .execute(
                        "UPDATE kondate_queries SET status = ?, data_files = ?, manifest_key = ?, \
                         record_count = ?, finished_at = ?, expires_at = ? WHERE id = ?",
                        &[
                            Status::Success.as_str().into(),
                            serde_json::to_string(&out.data_files)
                                .expect("serialises")
                                .into(),
                            out.manifest_key.into(),
                            Value::Int(out.record_count as i64),
                            ms(now),
                            ms(expires),
                            id.into(),
                        ],
                    )
                    .await?;
            }
            Err(e) => {
                tracing::info!(query_id = id, error = %e, "query failed");
                // Nothing half-written stays behind.
                if let Err(de) = self.store.delete_prefix(&record.object_prefix).await {
                    tracing::warn!(query_id = id, error = %de, "could not delete partial result");
                }
                self.db
                    .execute(
                        "UPDATE kondate_queries SET status = ?, error = ?, finished_at = ?, \
                         expires_at = ? WHERE id = ?",
                        &[
                            Status::Failed.as_str().into(),
                            e.to_string().into(),
                            ms(now),
                            ms(expires),
                            id.into(),
                        ],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// A query by id; with `token`, only that token's own queries are visible.
    pub async fn get(&self, id: i64, asker: Asker<'_>) -> Result<QueryRecord, QueryError> {
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {COLUMNS} FROM kondate_queries WHERE id = ?"),
                &[id.into()],
            )
            .await?;
        let not_found = || QueryError::NotFound(format!("no query with id {id}"));
        let row = row.ok_or_else(not_found)?;
        let owner = get_opt_string(&row, "token_name");
        let visible = match asker {
            Asker::Token(t) => owner.as_deref() == Some(t),
            Asker::Anonymous => owner.is_none(),
            Asker::Internal => true,
        };
        if !visible {
            return Err(not_found());
        }
        record_from_row(&row)
    }

    /// At most `limit` queries with ids below `before` (all when None), newest first: all
    /// of them or only those in `status`, of every token or only of `tokens` — the console's list. (A token sees only its own
    /// queries; a person, the queries of the tokens they own; an administrator, all.)
    pub async fn recent(
        &self,
        tokens: Option<&[String]>,
        status: Option<Status>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<QueryRecord>, QueryError> {
        let mut sql = format!("SELECT {COLUMNS} FROM kondate_queries WHERE id < ?");
        let mut params: Vec<Value> = vec![Value::Int(before.unwrap_or(i64::MAX))];
        if let Some(status) = status {
            sql.push_str(" AND status = ?");
            params.push(Value::from(status.as_str()));
        }
        if let Some(tokens) = tokens {
            if tokens.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(
                " AND token_name IN ({})",
                vec!["?"; tokens.len()].join(", ")
            ));
            params.extend(tokens.iter().map(|t| Value::from(t.as_str())));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        params.push(Value::Int(limit.max(0)));
        let rows = self.db.fetch_all(&sql, &params).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Signed URLs for a record's data files and manifest, valid until the result expires.
    pub async fn urls(&self, r: &QueryRecord) -> Result<(Vec<String>, Option<String>), QueryError> {
        if r.status != Status::Success || r.expired {
            return Ok((Vec::new(), None));
        }
        let now = self.clock.now();
        let ttl = r
            .expires_at
            .map(|e| (e - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(self.config.result_ttl);
        let mut urls = Vec::with_capacity(r.data_files.len());
        for key in &r.data_files {
            urls.push(self.store.signed_url(key, ttl, now).await?);
        }
        let manifest = match &r.manifest_key {
            Some(k) => Some(self.store.signed_url(k, ttl, now).await?),
            None => None,
        };
        Ok((urls, manifest))
    }

    /// Delete the objects of every result past its expiry; returns how many expired.
    pub async fn expire_due(&self) -> Result<usize, QueryError> {
        let now = self.clock.now();
        let rows = self
            .db
            .fetch_all(
                "SELECT id, object_prefix FROM kondate_queries WHERE expired = 0 AND expires_at IS NOT NULL AND expires_at <= ?",
                &[ms(now)],
            )
            .await?;
        // Every process sweeps: deleting a result's objects twice is harmless, and only the
        // sweep whose UPDATE moves the row counts it (and logs it).
        let mut expired = 0;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let prefix = get_string(r, "object_prefix")?;
            if !prefix.is_empty() {
                self.store.delete_prefix(&prefix).await?;
            }
            let moved = self
                .db
                .execute(
                    "UPDATE kondate_queries SET expired = 1 WHERE id = ? AND expired = 0",
                    &[id.into()],
                )
                .await?;
            if moved > 0 {
                expired += 1;
                tracing::info!(query_id = id, "result expired and deleted");
            }
        }
        Ok(expired)
    }

    /// Fail the queries left `pending`/`running` by a process that is gone — deregistered,
    /// or silent for longer than `lost_after` — so that clients stop polling them; the
    /// message names the process and when it was last heard from. Queries of a live process
    /// (this one included) are left alone: another process starting is no reason to fail
    /// them. A query recorded without an owner (by a kondate version before processes were
    /// recorded) has nothing to go by and is failed. Returns how many were failed.
    pub async fn recover_lost(&self, lost_after: Duration) -> Result<u64, QueryError> {
        let now = self.clock.now();
        let expires = now + chrono::Duration::from_std(self.config.result_ttl).unwrap_or_default();
        let owners = self
            .db
            .fetch_all(
                "SELECT DISTINCT owner FROM kondate_queries WHERE status IN ('pending', 'running')",
                &[],
            )
            .await?;
        let mut failed = 0;
        for r in &owners {
            let owner = get_opt_string(r, "owner");
            let why = match &owner {
                None => Some(
                    "a kondate process that did not record itself (a version before process \
                     tracking) was running this query and is not known to be alive"
                        .to_string(),
                ),
                Some(id) if self.owner.get() == Some(id) => None,
                Some(id) => {
                    let p = kondate_db::processes::get(&self.db, id).await?;
                    kondate_db::processes::gone_reason(
                        id,
                        p.as_ref(),
                        now.timestamp_millis(),
                        lost_after,
                    )
                    .map(|why| format!("{why} while this query was waiting or running"))
                }
            };
            let Some(why) = why else { continue };
            let error = format!("{why}; submit it again");
            let (filter, params): (&str, Vec<Value>) = match &owner {
                Some(id) => ("owner = ?", vec![id.as_str().into()]),
                None => ("owner IS NULL", Vec::new()),
            };
            let mut all = vec![error.as_str().into(), ms(now), ms(expires)];
            all.extend(params);
            let n = self
                .db
                .execute(
                    &format!(
                        "UPDATE kondate_queries SET status = 'failed', error = ?, finished_at = ?, \
                         expires_at = ? WHERE status IN ('pending', 'running') AND {filter}"
                    ),
                    &all,
                )
                .await?;
            if n > 0 {
                tracing::warn!(queries = n, owner = owner.as_deref().unwrap_or(""), reason = %why, "failed queries whose process is gone");
            }
            failed += n;
        }
        // What lost processes had recorded as in progress (syncs, writes, exports): their
        // locks went with their database sessions; the records go here, said in the log.
        for (w, why) in kondate_db::processes::release_work_of_gone(
            &self.db,
            now.timestamp_millis(),
            lost_after,
        )
        .await?
        {
            tracing::warn!(work = %w.describe(), owner = %w.process, reason = %why, "released the work of a process that is gone");
        }
        Ok(failed)
    }

    /// Expire results and fail the queries of lost processes ([`QueryService::recover_lost`])
    /// every `every` until the task is dropped. Every process may run it at once: each
    /// statement only moves rows from one state to the next, and deleting a result's objects
    /// twice is harmless.
    pub async fn run_sweeper(self: Arc<Self>, every: Duration, lost_after: Duration) {
        // The first sweep one period on: the server has just recovered at start.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            if let Err(e) = self.expire_due().await {
                tracing::warn!(error = %e, "expiring results failed; will retry");
            }
            if let Err(e) = self.recover_lost(lost_after).await {
                tracing::warn!(error = %e, "failing the queries of lost processes failed; will retry");
            }
        }
    }
}
