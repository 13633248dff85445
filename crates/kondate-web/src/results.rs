//! `POST /v1/results/{name}`: rows for a declared result table, as a CSV, JSON-lines or
//! Parquet body, written with the same bulk upsert as `kondate results write`. The body is
//! streamed to a temporary file first (never held whole), then read in batches that stream
//! into the write's transaction ([`kondate_results::Results::write_files`]); a bad row is a
//! 400 naming the row and column, and nothing is written.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use kondate_access::ScopeKind;
use kondate_core::artifact::ModelRef;
use kondate_results::{Publish, ResultsError, WriteMeta, WriteOptions};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::access::{Caller, audited};
use crate::api::{ApiError, ApiQuery};

impl From<ResultsError> for ApiError {
    fn from(e: ResultsError) -> Self {
        let message = e.to_string();
        match e {
            ResultsError::NoSuchTable { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ResultsError::Changed(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            e if e.is_invalid_input() => ApiError::invalid(message),
            _ => {
                tracing::error!(error = %message, "results: internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
            }
        }
    }
}

/// Query parameters of a write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// The model that produced the rows, `NAME[@N|@ALIAS]`.
    model: Option<String>,
    run_id: Option<String>,
    publish: Option<Publish>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    migrate: bool,
}

/// The body's format, from its Content-Type: the extension the readers dispatch on.
fn extension(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "text/csv" => Ok("csv"),
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => Ok("jsonl"),
        "application/vnd.apache.parquet" | "application/x-parquet" => Ok("parquet"),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type `{other}`: send text/csv, application/x-ndjson (JSON lines) or \
                 application/vnd.apache.parquet"
            ),
        )),
    }
}

/// `POST /v1/results/{name}?model=&run_id=&publish=&prune=&migrate=`.
pub async fn write(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<WriteParams>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // `results:write` on the table is checked with the route; deleting the rows a write
    // does not touch needs `results:prune` on it too.
    if params.prune {
        caller.require(ScopeKind::ResultsPrune, Some(&name))?;
    }
    let decl = state.results.declaration(&name)?;
    let ext = extension(&headers)?;
    let (model_name, model_version) = match &params.model {
        None => (None, None),
        Some(r) => {
            let r = ModelRef::parse(r).map_err(|e| ApiError::invalid(format!("model: {e}")))?;
            let v = state.models.resolve(&r).await?;
            (Some(r.name.clone()), Some(v))
        }
    };
    let dir = state.project.root.join(".kondate/tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let file = tempfile::Builder::new()
        .prefix("results-upload-")
        .suffix(&format!(".{ext}"))
        .tempfile_in(&dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let mut out = tokio::fs::File::create(file.path())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| crate::body::read_error(&e, Some(state.project.config.server.max_upload)))?
    {
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    drop(out);
    let path = file.path().to_path_buf();
    let meta = WriteMeta {
        model_name,
        model_version,
        run_id: params.run_id,
    };
    let opts = WriteOptions {
        publish: params.publish.unwrap_or(decl.publish),
        prune: params.prune,
        migrate: params.migrate,
    };
    let mut audit_params = json!({
        "model": params.model,
        "run_id": meta.run_id,
        "publish": format!("{:?}", opts.publish).to_lowercase(),
        "prune": opts.prune,
        "migrate": opts.migrate,
    });
    let report = state
        .results
        .write_files(&decl, std::slice::from_ref(&path), &meta, opts)
        .await
        // The temporary file's name means nothing to the caller: call it the request body.
        .map_err(|e| {
            ApiError::from(e).replace_in_message(&path.display().to_string(), "request body")
        })?;
    audit_params["rows"] = json!(report.rows);
    if let Some(hook) = &state.after_write {
        hook.table_written("service", &decl.table).await;
    }
    Ok(audited(
        (StatusCode::OK, Json(report)).into_response(),
        audit_params,
    ))
}
