//! `/v1/jobs…` and `/v1/instances…`: the scheduler's jobs and their instances. Reading needs
//! `jobs:read` on the job, launching `jobs:launch` on it; retrying, skipping and cancelling
//! an instance, and suspending or resuming a job, need `jobs:operate` on the job — or being
//! one of the job's `owners` (with `jobs:read` on it): owners act on their jobs without a
//! broader scope. Editing or deleting a job is a change to its file (`jobs/NAME.jsonnet`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kondate_access::{Principal, PrincipalKind, ScopeKind};
use kondate_jobs::JobsError;
use kondate_jobs::scheduler::Instance;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Caller, audited};
use crate::api::{ApiError, ApiQuery};
use crate::body::ApiBytes;

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        let message = e.to_string();
        match e {
            JobsError::NoSuchJob(_) | JobsError::NoSuchInstance(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            JobsError::Invalid(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            JobsError::Delivery(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "delivery_failed", message)
            }
            e if e.is_invalid_input() => ApiError::invalid(message),
            _ => ApiError::internal(message),
        }
    }
}

fn instance_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::invalid(format!("`{id}` is not an instance id (a number)")))
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    kondate_core::names::validate_name("job name", name)
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// `GET /v1/jobs`: every job the caller may read.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for job in state.jobs.jobs().await? {
        if caller.allows(ScopeKind::JobsRead, Some(&job.name)) && !job.removed {
            out.push(state.jobs.job_json(&job, chrono::Utc::now(), 1).await);
        }
    }
    Ok(Json(json!({ "jobs": out })))
}

/// `GET /v1/jobs/{name}`: one job, with its next five fire times, its script, revisions
/// and latest instances.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    valid_name(&name)?;
    Ok(Json(
        state.jobs.job_detail(&name, chrono::Utc::now()).await?,
    ))
}

#[derive(Deserialize)]
pub struct InstancesParams {
    limit: Option<i64>,
}

/// `GET /v1/jobs/{name}/instances?limit=N`: the job's instances, newest first.
pub async fn instances(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(p): ApiQuery<InstancesParams>,
) -> Result<Json<Value>, ApiError> {
    valid_name(&name)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let list = state.jobs.instances(&name, limit).await?;
    Ok(Json(
        json!({ "instances": list.iter().map(Instance::to_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchBody {
    /// Variables for every step.
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    /// Launch once for this key.
    key: Option<String>,
}

/// `POST /v1/jobs/{name}/instances` with `{env: {K: V}, key}`: launch the job now (201).
pub async fn launch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(caller): Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    valid_name(&name)?;
    let req: LaunchBody = if body.is_empty() {
        LaunchBody {
            env: Default::default(),
            key: None,
        }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(format!(
                "the body must be {{\"env\": {{\"NAME\": \"value\"}}, \"key\": \"…\"}}: {e}"
            ))
        })?
    };
    let env: Vec<(String, String)> = req.env.into_iter().collect();
    let instance = launch_as(&state, &caller, &name, env.clone(), req.key.clone(), "api").await?;
    let names: Vec<&String> = env.iter().map(|(k, _)| k).collect();
    Ok(audited(
        (StatusCode::CREATED, Json(instance.to_json())).into_response(),
        json!({ "instance": instance.id, "env": names, "key": req.key }),
    ))
}

/// Launch job `name` now as `caller` (`jobs:launch` on it) with variables `env` for every
/// step and an optional once-only `key`; `reason` says from where (`api`, `console`).
pub(crate) async fn launch_as(
    state: &AppState,
    caller: &Principal,
    name: &str,
    env: Vec<(String, String)>,
    key: Option<String>,
    reason: &str,
) -> Result<Instance, ApiError> {
    valid_name(name)?;
    caller.require(ScopeKind::JobsLaunch, Some(name))?;
    for (k, _) in &env {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::invalid(format!(
                "env: `{k}` is not a variable name (letters, digits and `_`)"
            )));
        }
    }
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 128 || k.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "key: 1–128 characters, no control characters",
        ));
    }
    let now = chrono::Utc::now();
    let id = state
        .jobs
        .launch(
            name,
            &env,
            reason,
            key.as_deref(),
            Some(&caller.actor()),
            now,
        )
        .await?;
    state.executor.advance(id, now).await?;
    Ok(state.jobs.instance(id).await?)
}

/// The instance `id`, if the caller may read its job.
pub(crate) async fn readable(
    state: &AppState,
    caller: &Principal,
    id: i64,
) -> Result<Instance, ApiError> {
    let i = state.jobs.instance(id).await?;
    caller.require(ScopeKind::JobsRead, Some(&i.job))?;
    Ok(i)
}

/// `GET /v1/instances/{id}`: an instance with its steps.
pub async fn instance(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let id = instance_id(&id)?;
    let i = readable(&state, &caller, id).await?;
    let mut v = i.to_json();
    v["steps"] = json!(state.executor.steps(id).await?);
    Ok(Json(v))
}

/// `GET /v1/instances/{id}/logs`: its steps' stored logs, in order, one line per output
/// line: `STEP TIME out|err TEXT`.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<LogParams>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let id = instance_id(&id)?;
    readable(&state, &caller, id).await?;
    Ok(crate::api::text_stream(
        state.executor.log_stream(id, p.follow),
    ))
}

#[derive(Deserialize)]
pub struct LogParams {
    #[serde(default)]
    follow: bool,
}

/// Whether `caller` is one of the owners of revision `revision` of `job` (a person, or a
/// token owned by one).
async fn owns(state: &AppState, caller: &Principal, job: &str, revision: i64) -> bool {
    let person = match caller.kind {
        PrincipalKind::User => Some(caller.name.as_str()),
        _ => caller.owner.as_deref(),
    };
    let Some(person) = person else {
        return false;
    };
    match state.jobs.definition(job, revision).await {
        Ok(d) => d.owners.iter().any(|o| o.eq_ignore_ascii_case(person)),
        Err(_) => false,
    }
}

/// Suspend or resume: `jobs:operate` on the job, or one of its owners (by its current
/// revision) who may read it.
async fn set_suspended(
    state: AppState,
    caller: Principal,
    name: String,
    suspend: bool,
) -> Result<Response, ApiError> {
    valid_name(&name)?;
    caller.require(ScopeKind::JobsRead, Some(&name))?;
    let job = state
        .jobs
        .job_row(&name)
        .await?
        .filter(|j| !j.removed)
        .ok_or_else(|| JobsError::NoSuchJob(name.clone()))?;
    let owner = match job.revision {
        Some(r) => owns(&state, &caller, &name, r).await,
        None => false,
    };
    if !owner {
        caller.require(ScopeKind::JobsOperate, Some(&name))?;
    }
    let now = chrono::Utc::now();
    if suspend {
        state.jobs.suspend(&name, &caller.actor(), now).await?;
    } else {
        state.jobs.resume(&name, now).await?;
    }
    let job = state
        .jobs
        .job_row(&name)
        .await?
        .ok_or_else(|| JobsError::NoSuchJob(name.clone()))?;
    Ok(audited(
        Json(state.jobs.job_json(&job, chrono::Utc::now(), 1).await).into_response(),
        json!({ "job": name }),
    ))
}

/// `POST /v1/jobs/{name}/suspend`: launch nothing until resumed.
pub async fn suspend(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    set_suspended(state, caller, name, true).await
}

/// `POST /v1/jobs/{name}/resume`: launch its slots again, from now on.
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    set_suspended(state, caller, name, false).await
}

/// What may be done to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    Retry,
    Skip,
    Cancel,
    ForceCancel,
}

impl Act {
    /// As the console's addresses name it.
    pub(crate) fn parse(s: &str) -> Option<Act> {
        Some(match s {
            "retry" => Act::Retry,
            "skip" => Act::Skip,
            "cancel" => Act::Cancel,
            "force-cancel" => Act::ForceCancel,
            _ => return None,
        })
    }

    /// The audit trail's action (the API's).
    pub(crate) fn action(self) -> &'static str {
        match self {
            Act::Retry => "jobs.retry",
            Act::Skip => "jobs.skip",
            Act::Cancel | Act::ForceCancel => "jobs.cancel",
        }
    }
}

/// Whether `caller` may retry, skip or cancel instances of `i`'s job: `jobs:operate` on
/// the job, or one of its owners who may read it.
pub(crate) async fn may_operate(state: &AppState, caller: &Principal, i: &Instance) -> bool {
    caller.allows(ScopeKind::JobsOperate, Some(&i.job))
        || (caller.allows(ScopeKind::JobsRead, Some(&i.job))
            && owns(state, caller, &i.job, i.revision).await)
}

/// Retry, skip or cancel instance `id` as `caller` ([`may_operate`]).
pub(crate) async fn act_on(
    state: &AppState,
    caller: &Principal,
    id: i64,
    what: Act,
) -> Result<Instance, ApiError> {
    let i = readable(state, caller, id).await?;
    if !may_operate(state, caller, &i).await {
        caller.require(ScopeKind::JobsOperate, Some(&i.job))?;
    }
    let now = chrono::Utc::now();
    match what {
        Act::Retry => state.executor.retry(id, now).await?,
        Act::Skip => state.executor.skip(id, now).await?,
        Act::ForceCancel => state.executor.cancel_with(id, true, now).await?,
        Act::Cancel => state.executor.cancel(id, now).await?,
    }
    Ok(state.jobs.instance(id).await?)
}

async fn act(state: AppState, caller: Principal, id: i64, what: Act) -> Result<Response, ApiError> {
    let i = act_on(&state, &caller, id, what).await?;
    Ok(audited(
        Json(i.to_json()).into_response(),
        json!({ "instance": id, "job": i.job }),
    ))
}

/// `POST /v1/instances/{id}/retry`: run its failed step again, and the rest.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    act(state, caller, instance_id(&id)?, Act::Retry).await
}

/// `POST /v1/instances/{id}/skip`: go on after its failed step.
pub async fn skip(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    act(state, caller, instance_id(&id)?, Act::Skip).await
}

#[derive(Deserialize)]
pub struct CancelParams {
    #[serde(default)]
    force: bool,
}

/// `POST /v1/instances/{id}/cancel?force=true`: its steps not yet run never run; with
/// `force`, the running ones are stopped too.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<CancelParams>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let what = if p.force {
        Act::ForceCancel
    } else {
        Act::Cancel
    };
    act(state, caller, instance_id(&id)?, what).await
}
