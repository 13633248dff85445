//! The Queuery-compatible endpoints and signed object downloads.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use kondate_access::Principal;
use kondate_query::{Asker, QueryError, QueryRecord, SubmitRequest};
use kondate_store::StoreError;
use kondate_warehouse::ResultFormat;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::access::Caller;
use crate::body::ApiBytes;

/// An error as the API answers it: `{status_code, error_code, error}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After` on a 429.
    retry_after: Option<u64>,
}

/// The message of an error response, kept on the response for the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub String);

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The same error with `from` replaced by `to` in its message.
    pub(crate) fn replace_in_message(mut self, from: &str, to: &str) -> Self {
        self.message = self.message.replace(from, to);
        self
    }
}

/// Query-string parameters, refused as an API error (`invalid_parameter`, JSON) rather than
/// axum's plain-text rejection.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::invalid(format!("query string: {}", e.body_text())))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status_code": self.status.as_u16(),
            "error_code": self.code,
            "error": self.message,
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kondate\""),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after.unwrap_or(5)),
            );
        }
        resp.extensions_mut().insert(ErrorMessage(self.message));
        resp
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match &e {
            QueryError::InvalidParameter(_) => Self::invalid(e.to_string()),
            QueryError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            QueryError::TooManyRequests { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                e.to_string(),
            ),
            QueryError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            _ => {
                tracing::error!(error = %e, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<kondate_access::AccessError> for ApiError {
    fn from(e: kondate_access::AccessError) -> Self {
        use kondate_access::AccessError as E;
        let message = e.to_string();
        match e {
            E::Invalid(_) => Self::invalid(message),
            E::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            E::Unauthorized => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            E::Forbidden { .. } => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            E::TooManyAttempts { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            },
            E::Internal(_) | E::Db(_) => Self::internal(message),
        }
    }
}

/// Whose queries `caller` may see: its own; anonymous callers only anonymous ones; admins
/// every one.
fn asker(caller: &Principal) -> Asker<'_> {
    if caller.is_admin() {
        Asker::Internal
    } else {
        match caller.token_name() {
            Some(t) => Asker::Token(t),
            None => Asker::Anonymous,
        }
    }
}

/// `GET /healthz`: the state database answers.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.service.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /readyz`: whether every part a request may need answers — the state database, the
/// service database, the object store and the warehouse — each within 5 seconds. 200 when
/// all do, else 503; each part says `ok` or `unavailable` (the reason goes to the log, not
/// to an unauthenticated caller).
pub async fn readyz(State(state): State<AppState>) -> Response {
    async fn check<E: std::fmt::Display>(
        part: &'static str,
        f: impl std::future::Future<Output = Result<(), E>>,
    ) -> (&'static str, bool) {
        match tokio::time::timeout(std::time::Duration::from_secs(5), f).await {
            Ok(Ok(())) => (part, true),
            Ok(Err(e)) => {
                tracing::warn!(part, error = %e, "readiness check failed");
                (part, false)
            }
            Err(_) => {
                tracing::warn!(part, "readiness check took longer than 5 s");
                (part, false)
            }
        }
    }
    let parts = tokio::join!(
        check("state_database", state.service.ping()),
        check("service_database", async {
            state
                .results
                .db
                .fetch_all("SELECT 1", &[])
                .await
                .map(|_| ())
        }),
        check("store", async {
            match state.store.head("kondate-readiness-probe").await {
                Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }),
        check("warehouse", state.service.ping_warehouse()),
    );
    let parts = [parts.0, parts.1, parts.2, parts.3];
    let ready = parts.iter().all(|(_, ok)| *ok);
    let body: serde_json::Map<String, Value> = parts
        .iter()
        .map(|(part, ok)| {
            (
                part.to_string(),
                Value::from(if *ok { "ok" } else { "unavailable" }),
            )
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ready { "ready" } else { "unavailable" }, "parts": body})),
    )
        .into_response()
}

/// Unknown routes answer in the API's error shape.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

#[derive(Debug, Default, Deserialize)]
struct JsonSubmit {
    q: Option<String>,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    enable_metadata: Option<Value>,
    #[serde(default)]
    format: Option<String>,
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "1" | "t" | "yes" | "on"
    )
}

fn value_to_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Parse a submission from a JSON or form body.
fn parse_submit(headers: &HeaderMap, body: &[u8]) -> Result<SubmitRequest, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (q, values, enable_metadata, format) = if is_json {
        let j: JsonSubmit = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the JSON body is malformed: {e}")))?;
        let meta = match j.enable_metadata {
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) => truthy(&s),
            _ => false,
        };
        (
            j.q,
            j.values.into_iter().map(value_to_string).collect(),
            meta,
            j.format,
        )
    } else {
        let mut q = None;
        let mut values = Vec::new();
        let mut meta = false;
        let mut format = None;
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "q" => q = Some(v.into_owned()),
                "values[]" | "values" => values.push(v.into_owned()),
                "enable_metadata" => meta = truthy(&v),
                "format" => format = Some(v.into_owned()),
                _ => {}
            }
        }
        (q, values, meta, format)
    };
    let q = q
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("`q` is required: send the SELECT statement in it"))?;
    let format = match format.as_deref() {
        None => ResultFormat::Csv,
        Some(f) => ResultFormat::parse(f).ok_or_else(|| {
            ApiError::invalid(format!("`format` must be csv or parquet, not `{f}`"))
        })?,
    };
    Ok(SubmitRequest {
        q,
        values,
        enable_metadata,
        format,
    })
}

/// Fields a client may ask for beyond the defaults.
const EXTRA_FIELDS: &[&str] = &[
    "manifest_file_url",
    "select_stmt",
    "created_at",
    "s3_prefix",
    "record_count",
    "format",
];

async fn render(state: &AppState, r: &QueryRecord, fields: &[String]) -> Result<Value, ApiError> {
    let (urls, manifest) = state.service.urls(r).await?;
    let (status, error) = if r.expired && r.status.is_final() {
        (
            "failed",
            Some(format!(
                "the result of query {} expired at {}; run the query again",
                r.id,
                r.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            )),
        )
    } else {
        (
            match r.status {
                kondate_query::Status::Pending => "pending",
                kondate_query::Status::Running => "running",
                kondate_query::Status::Success => "success",
                kondate_query::Status::Failed => "failed",
            },
            r.error.clone(),
        )
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("status".into(), json!(status));
    m.insert("data_file_urls".into(), json!(urls));
    m.insert("error".into(), json!(error));
    for f in fields {
        let v = match f.as_str() {
            "manifest_file_url" => json!(manifest),
            "select_stmt" => json!(r.select_stmt),
            "created_at" => json!(r.created_at.to_rfc3339()),
            "s3_prefix" => json!(format!(
                "{}/{}",
                state.store.url().trim_end_matches('/'),
                r.object_prefix
            )),
            "record_count" => json!(r.record_count),
            "format" => json!(r.format.as_str()),
            _ => continue,
        };
        m.insert(f.clone(), v);
    }
    Ok(Value::Object(m))
}

/// `POST /v1/queries`: submit a SELECT; answers 201 with the new query.
pub async fn create_query(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let req = parse_submit(&headers, &body)?;
    let fields = if req.enable_metadata {
        vec!["manifest_file_url".to_string()]
    } else {
        Vec::new()
    };
    let record = state.service.submit(caller.token_name(), req).await?;
    let body = render(&state, &record, &fields).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct FieldsQuery {
    fields: Option<String>,
}

/// `GET /v1/queries/{id}`: a query's status and, once it succeeded, its signed data URLs.
/// `fields` may come in the query string or, as the public Python client sends it, in a
/// form body on the GET.
pub async fn show_query(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<FieldsQuery>,
    Caller(caller): Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("query id `{id}` is not an integer")))?;
    let fields_raw = q.fields.or_else(|| {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.into_owned())
    });
    let mut fields = Vec::new();
    for f in fields_raw.iter().flat_map(|s| s.split(',')) {
        let f = f.trim();
        if f.is_empty() || f == "__default__" {
            continue;
        }
        if !EXTRA_FIELDS.contains(&f) {
            return Err(ApiError::invalid(format!(
                "unknown field `{f}` in `fields`; known: __default__, {}",
                EXTRA_FIELDS.join(", ")
            )));
        }
        fields.push(f.to_string());
    }
    let record = state.service.get(id, asker(&caller)).await?;
    Ok(Json(render(&state, &record, &fields).await?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignedParams {
    expires: Option<String>,
    signature: Option<String>,
}

/// `GET /v1/objects/{key}?expires=…&signature=…`: a result object of the local store,
/// streamed, for anyone holding an unexpired signed URL.
pub async fn get_object(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(p): Query<SignedParams>,
) -> Result<Response, ApiError> {
    let (Some(expires), Some(signature)) = (p.expires, p.signature) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this URL is not signed; use the URL exactly as the query API returned it",
        ));
    };
    let now = state.service.clock().now();
    state
        .store
        .verify_signature(&key, &expires, &signature, now)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()))?;
    let (size, stream) = match state.store.get_stream(&key).await {
        Ok(x) => x,
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("object `{key}` no longer exists; its result may have expired"),
            ));
        }
        Err(e) => return Err(QueryError::from(e).into()),
    };
    let content_type = if key.ends_with(".gz") {
        "application/gzip"
    } else if key.ends_with("manifest") || key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// A streamed `text/plain` response (a log), never cached; an error from the stream ends
/// the body.
pub fn text_stream<S, T, E>(body: S) -> axum::response::Response
where
    S: futures::Stream<Item = Result<T, E>> + Send + 'static,
    T: Into<bytes::Bytes> + 'static,
    E: std::fmt::Display + Send + Sync + 'static,
{
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let body = body.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    #[test]
    fn form_submission_with_values_and_metadata() {
        let r = parse_submit(
            &form(),
            b"q=select+%3F%2C+%3F&values%5B%5D=a&values%5B%5D=b&enable_metadata=true",
        )
        .unwrap();
        assert_eq!(r.q, "select ?, ?");
        assert_eq!(r.values, vec!["a", "b"]);
        assert!(r.enable_metadata);
        assert_eq!(r.format, ResultFormat::Csv);
    }

    #[test]
    fn json_submission() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let r = parse_submit(
            &h,
            br#"{"q":"select ?","values":[1],"enable_metadata":true,"format":"parquet"}"#,
        )
        .unwrap();
        assert_eq!(r.values, vec!["1"]);
        assert_eq!(r.format, ResultFormat::Parquet);
    }

    #[test]
    fn missing_q_and_bad_format_are_explained() {
        let e = parse_submit(&form(), b"values=1").unwrap_err();
        assert!(e.message.contains("`q` is required"));
        let e = parse_submit(&form(), b"q=select+1&format=xml").unwrap_err();
        assert!(e.message.contains("csv or parquet"));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let e = parse_submit(&h, b"{not json").unwrap_err();
        assert!(e.message.contains("malformed"));
    }
}
