//! Request bodies: every route has a size limit (small for JSON and forms, `server.max_upload`
//! for streamed uploads) and every body a timeout between its pieces (`server.body_timeout`),
//! applied in one place (`access::check`) before a handler sees the body. A body too large
//! answers a JSON 413 that says the limit; one that stalls a JSON 408.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use http_body_util::{LengthLimitError, Limited};
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::api::ApiError;

/// The limit of the current route's body, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub u64);

/// Bytes as people read them: `64 KiB`, `32 MiB`, `64 GiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= *size && bytes.is_multiple_of(*size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// The answer to a body over `limit`.
pub(crate) fn too_large(limit: u64, size: Option<u64>) -> ApiError {
    let got = size.map_or("larger".to_string(), |s| format!("{s} bytes"));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the request body is {got}; this endpoint takes at most {} ({limit} bytes){}",
            human(limit),
            if limit >= 1 << 30 {
                "; raise server.max_upload for larger uploads"
            } else {
                ""
            }
        ),
    )
}

/// `body` limited to `limit` bytes, failing when it stalls for `timeout`.
pub(crate) fn guarded(body: Body, limit: u64, timeout: Duration) -> Body {
    Body::new(Limited::new(
        TimeoutBody::new(timeout, body),
        usize::try_from(limit).unwrap_or(usize::MAX),
    ))
}

/// The answer to a failure reading a body guarded by [`guarded`].
pub(crate) fn read_error(e: &(dyn std::error::Error + 'static), limit: Option<u64>) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<LengthLimitError>() {
            return too_large(limit.unwrap_or(0), None);
        }
        if err.is::<TimeoutError>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body stopped arriving (server.body_timeout); send it again",
            );
        }
        source = err.source();
    }
    ApiError::invalid(format!("reading the request body failed: {e}"))
}

/// The whole (small) body, with size and time limits answered as JSON errors.
pub(crate) struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let collected = http_body_util::BodyExt::collect(req.into_body())
            .await
            .map_err(|e| read_error(&e, limit))?;
        Ok(ApiBytes(collected.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(64 << 10), "64 KiB");
        assert_eq!(human(64 << 30), "64 GiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
