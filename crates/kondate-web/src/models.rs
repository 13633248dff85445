//! `/v1/models…` and `/v1/blobs…`: the model registry over HTTP (scopes `models:read`,
//! `models:write`, `models:alias`, `models:delete`, declared with the routes). A push is three calls, as in OCI registries — ask which files the
//! store lacks (`POST /v1/blobs/check`), upload those (`PUT /v1/blobs/{digest}`, streamed and
//! checked against the digest), then commit the version (`POST /v1/models/{name}/versions`).
//! Downloads stream `GET /v1/blobs/{digest}`; the client checks the digest.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use kondate_core::artifact::{FileEntry, Layout, ModelRef};
use kondate_core::digest::Digest;
use kondate_models::{BlobCheck, GcOptions, Lineage, ModelsError, PushMeta};
use kondate_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use kondate_access::ScopeKind;

use crate::access::{Caller, audited};
use crate::api::ApiError;
use crate::body::ApiBytes;

impl From<ModelsError> for ApiError {
    fn from(e: ModelsError) -> Self {
        let message = e.to_string();
        match e {
            ModelsError::Invalid(_) | ModelsError::Lineage(_) => ApiError::invalid(message),
            ModelsError::NoSuchModel { .. } | ModelsError::NoSuchVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ModelsError::AliasPointsHere { .. } | ModelsError::Busy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            ModelsError::MissingBlob { .. } => {
                ApiError::new(StatusCode::CONFLICT, "missing_blob", message)
            }
            ModelsError::Store(StoreError::DigestMismatch { .. })
            | ModelsError::Store(StoreError::SizeMismatch { .. }) => {
                ApiError::new(StatusCode::BAD_REQUEST, "digest_mismatch", message)
            }
            ModelsError::Store(StoreError::NotFound { .. }) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            _ => {
                tracing::error!(error = %message, "models: internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
            }
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(v).map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::invalid(e.to_string()))
}

fn model_ref(name: &str, selector: &str) -> Result<ModelRef, ApiError> {
    ModelRef::parse(&format!("{name}@{selector}")).map_err(|e| ApiError::invalid(e.to_string()))
}

/// `GET /v1/models`: every model, its latest version and aliases.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let mut models = state.models.list().await?;
    models.retain(|m| caller.allows(ScopeKind::ModelsRead, Some(&m.name)));
    Ok(Json(json!({ "models": to_json(&models)?.0 })))
}

/// `GET /v1/models/{name}`: the model's versions, oldest first.
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = state.models.versions(&name).await?;
    Ok(Json(
        json!({ "name": name, "versions": to_json(&versions)?.0 }),
    ))
}

/// `GET /v1/models/{name}/versions/{N|ALIAS|latest}`: one version.
pub async fn show(
    State(state): State<AppState>,
    Path((name, selector)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = state.models.show(&model_ref(&name, &selector)?).await?;
    to_json(&v)
}

/// The body of `POST /v1/models/{name}/versions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    layout: Layout,
    files: Vec<FileEntry>,
    #[serde(default)]
    metrics: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    lineage: Lineage,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/models/{name}/versions`: record a version whose files are uploaded; answers
/// 201 with the version.
pub async fn commit(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(caller): Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let body: CommitBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    let meta = PushMeta {
        metrics: body.metrics,
        params: body.params,
        lineage: body.lineage,
        note: body.note,
        actor: caller.actor(),
    };
    let files = body.files.len();
    let v = state
        .models
        .commit(&name, body.layout, body.files, meta)
        .await?;
    let params = json!({"version": v.version, "files": files, "size": v.size});
    Ok(audited(
        (StatusCode::CREATED, to_json(&v)?).into_response(),
        params,
    ))
}

/// `DELETE /v1/models/{name}/versions/{N}`.
pub async fn delete(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let n: i64 = version.parse().map_err(|_| {
        ApiError::invalid(format!(
            "`{version}` is not a version number; delete by number"
        ))
    })?;
    state.models.delete(&name, n, &caller.actor()).await?;
    Ok(Json(json!({ "deleted": format!("{name}@{n}") })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    version: i64,
}

/// `PUT /v1/models/{name}/aliases/{alias}` with `{"version": N}`: move the alias.
pub async fn set_alias(
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    Caller(caller): Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let body: AliasBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("request body: {e}; send {{\"version\": N}}")))?;
    let mv = state
        .models
        .set_alias(&name, &alias, Some(body.version), &caller.actor())
        .await?;
    let params = json!({"version": body.version});
    Ok(audited(to_json(&mv)?.into_response(), params))
}

/// `DELETE /v1/models/{name}/aliases/{alias}`: remove the alias.
pub async fn remove_alias(
    State(state): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let mv = state
        .models
        .set_alias(&name, &alias, None, &caller.actor())
        .await?;
    to_json(&mv)
}

/// `GET /v1/models/{name}/alias-history`: every alias move, oldest first.
pub async fn alias_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let moves = state.models.alias_history(&name).await?;
    Ok(Json(json!({ "name": name, "moves": to_json(&moves)?.0 })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    blobs: Vec<BlobCheck>,
}

/// `POST /v1/blobs/check` with `{"blobs": [{digest, size}]}`: which the store lacks.
pub async fn check_blobs(
    State(state): State<AppState>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Value>, ApiError> {
    let body: CheckBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    if body.blobs.len() > kondate_core::artifact::MAX_FILES {
        return Err(ApiError::invalid("at most 100000 blobs per check"));
    }
    let missing = state.models.missing_blobs(&body.blobs).await?;
    Ok(Json(json!({ "missing": missing })))
}

/// `PUT /v1/blobs/{digest}` with the bytes as the body and a `Content-Length`: streamed into
/// the store and checked; 201 when stored, 200 when it was there already.
pub async fn put_blob(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = parse_digest(&digest)?;
    let size: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "send the blob's size as Content-Length",
            )
        })?;
    // A body that is too large or stalls is answered as such (413, 408), not as the store
    // error it surfaces as.
    let body_failure = std::sync::Arc::new(std::sync::Mutex::new(None::<ApiError>));
    let seen = body_failure.clone();
    let limit = state.project.config.server.max_upload;
    let stream = body
        .into_data_stream()
        .map_err(move |e| {
            let answer = crate::body::read_error(&e, Some(limit));
            let message = answer.message().to_string();
            seen.lock().expect("body error slot").get_or_insert(answer);
            std::io::Error::other(message)
        })
        .boxed();
    let created = match state.models.put_blob(digest, size, stream).await {
        Ok(created) => created,
        Err(e) => {
            return Err(body_failure
                .lock()
                .expect("body error slot")
                .take()
                .unwrap_or_else(|| e.into()));
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "digest": digest, "size": size }))).into_response())
}

/// `GET /v1/blobs/{digest}`: the bytes, streamed.
pub async fn get_blob(
    State(state): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let digest = parse_digest(&digest)?;
    let (size, stream) = state.models.open_blob(digest).await?;
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", digest.hex())) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcBody {
    #[serde(default)]
    apply: bool,
    /// Seconds; 3600 by default.
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// `POST /v1/blobs/gc` with `{"apply": bool, "grace_seconds": N}`: the gc report.
pub async fn gc(
    State(state): State<AppState>,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let body: GcBody = if body.is_empty() {
        GcBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("request body: {e}")))?
    };
    let mut opts = GcOptions {
        apply: body.apply,
        ..GcOptions::default()
    };
    if let Some(s) = body.grace_seconds {
        opts.grace = std::time::Duration::from_secs(s);
    }
    let report = state.models.gc(&opts).await?;
    let params = json!({"apply": opts.apply, "grace_seconds": opts.grace.as_secs()});
    Ok(audited(to_json(&report)?.into_response(), params))
}
