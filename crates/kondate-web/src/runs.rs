//! `/v1/runs…`: recorded app runs and their logs (scope `runs:read`, narrowed by app name).
//! A log is streamed as `text/plain` (one line per output line: time, `out`|`err`,
//! text); with `follow=true` the response stays open until the run ends.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kondate_apps::AppsError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use kondate_access::ScopeKind;

use crate::access::Caller;
use crate::api::{ApiError, ApiQuery};

impl From<AppsError> for ApiError {
    fn from(e: AppsError) -> Self {
        let message = e.to_string();
        match e {
            AppsError::NoSuchRun { .. } | AppsError::NoSuchApp { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            e if e.is_invalid_input() => ApiError::invalid(message),
            _ => {
                tracing::error!(error = %message, "runs: internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    app: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/runs?app=NAME&limit=N`: recent runs, newest first (default 50).
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    if let Some(app) = &p.app {
        kondate_core::names::validate_name("app name", app)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let limit = p.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let mut runs = state.runs.list(p.app.as_deref(), limit).await?;
    runs.retain(|r| caller.allows(ScopeKind::RunsRead, Some(&r.app)));
    Ok(Json(json!({ "runs": runs })))
}

/// `GET /v1/runs/{id}`: one run.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let run = state.runs.get(&id).await?;
    caller.require(ScopeKind::RunsRead, Some(&run.app))?;
    Ok(Json(json!(run)))
}

#[derive(Deserialize)]
pub struct LogParams {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    offset: u64,
}

/// `GET /v1/runs/{id}/logs?follow=true&offset=N`: the run's log from byte N, streamed.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<LogParams>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    // Unknown runs are a 404, and other apps' runs a 403, before the body starts.
    let run = state.runs.get(&id).await?;
    caller.require(ScopeKind::RunsRead, Some(&run.app))?;
    Ok(crate::api::text_stream(
        state.runs.log_stream(&id, p.offset, p.follow),
    ))
}
