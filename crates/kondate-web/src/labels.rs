//! `/v1/labels…`: label sets, their revisions and exports, and syncs (scopes `labels:read`
//! and `labels:sync`, declared with the routes). The handlers translate HTTP to `kondate_labels` calls only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kondate_labels::LabelsError;
use kondate_labels::snapshot::{self, ExportFormat};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use kondate_access::ScopeKind;

use crate::access::{Caller, audited};
use crate::api::{ApiError, ApiQuery};

impl From<LabelsError> for ApiError {
    fn from(e: LabelsError) -> Self {
        let message = e.to_string();
        match e {
            LabelsError::NoSuchSet { .. } | LabelsError::NoSuchRevision { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            LabelsError::InvalidRows { .. } => ApiError::invalid(message),
            LabelsError::DefinitionChanged { .. } | LabelsError::Busy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            LabelsError::Definition { .. } | LabelsError::Source { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "source_error", message)
            }
            _ => {
                tracing::error!(error = %message, "labels: internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
            }
        }
    }
}

/// `GET /v1/labels`: the project's label sets and their current revisions.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let mut out = state.labels.list(&state.project).await?;
    out.retain(|s| caller.allows(ScopeKind::LabelsRead, Some(&s.name)));
    Ok(Json(json!({ "label_sets": out })))
}

/// `GET /v1/labels/{name}/revisions`: the history, oldest first.
pub async fn revisions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let set = kondate_labels::find(&state.project, &name)?;
    let history = state.labels.history(&set.name).await?;
    Ok(Json(json!({ "name": set.name, "revisions": history })))
}

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    format: Option<String>,
}

/// `GET /v1/labels/{name}/revisions/{n}/export?format=csv|parquet`: revision `n`'s rows,
/// exactly as they were.
pub async fn export(
    State(state): State<AppState>,
    Path((name, revision)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let revision: i64 = revision
        .parse()
        .map_err(|_| ApiError::invalid(format!("revision `{revision}` is not a number")))?;
    let (format, content_type, ext) = match params.format.as_deref().unwrap_or("csv") {
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        "parquet" => (
            ExportFormat::Parquet,
            "application/vnd.apache.parquet",
            "parquet",
        ),
        other => {
            return Err(ApiError::invalid(format!(
                "`format` must be csv or parquet, not `{other}`"
            )));
        }
    };
    let set = kondate_labels::find(&state.project, &name)?;
    let (rev, batches, schema) = state.labels.export(&set, Some(revision)).await?;
    let body = snapshot::encode(format, &batches, schema)
        .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", m))?;
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.{ext}\"",
        set.name, rev.revision
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
pub struct SyncParams {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    skip_invalid: bool,
    #[serde(default)]
    migrate: bool,
    #[serde(default)]
    force: bool,
}

/// `POST /v1/labels/{name}/sync?dry_run=&skip_invalid=&migrate=&force=`: read the source,
/// validate, and apply the difference as a new revision; answers the report.
pub async fn sync(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<SyncParams>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let set = kondate_labels::find(&state.project, &name)?;
    let grid = kondate_labels::read_source(&set).await?;
    let opts = kondate_labels::SyncOptions {
        dry_run: params.dry_run,
        skip_invalid: params.skip_invalid,
        migrate: params.migrate,
        force: params.force,
        actor: caller.actor(),
    };
    // Recorded as this server's work while it runs (`kondate processes` shows it).
    let _work = state.service.begin_work("labels sync", &name).await?;
    let report = state.labels.sync(&set, &grid, &opts).await?;
    if let Some(hook) = state.after_write.as_ref().filter(|_| !opts.dry_run) {
        hook.table_written("service", &set.table).await;
    }
    let body = serde_json::to_value(report).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    let params = json!({
        "dry_run": params.dry_run,
        "skip_invalid": params.skip_invalid,
        "migrate": params.migrate,
        "force": params.force,
        "outcome": body["outcome"],
        "revision": body["revision"],
    });
    Ok(audited(Json(body).into_response(), params))
}
