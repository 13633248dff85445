//! `/metrics` in the Prometheus text format: requests by route and status, and their
//! latency. Hand-written because a handful of counters do not justify an exporter crate
//! and its HTTP stack; the format is the stable text exposition format 0.0.4.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// (method, route, status) → (count, total seconds).
type RequestCounts = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) → (count, total seconds)
    requests: Mutex<RequestCounts>,
}

/// Middleware that counts every request under its route template (never the raw path,
/// which would leak ids and object keys into labels).
pub async fn track(State(m): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let mut map = m.requests.lock().expect("metrics lock");
    let e = map
        .entry((method, route, resp.status().as_u16()))
        .or_default();
    e.0 += 1;
    e.1 += secs;
    resp
}

/// `GET /metrics`.
pub async fn render(State(state): State<crate::AppState>) -> impl IntoResponse {
    let map = state.metrics.requests.lock().expect("metrics lock").clone();
    let mut out = String::new();
    out.push_str("# HELP kondate_http_requests_total HTTP requests answered.\n");
    out.push_str("# TYPE kondate_http_requests_total counter\n");
    for ((method, route, status), (n, _)) in &map {
        out.push_str(&format!(
            "kondate_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP kondate_http_request_seconds_total Time spent answering HTTP requests.\n");
    out.push_str("# TYPE kondate_http_request_seconds_total counter\n");
    for ((method, route, status), (_, s)) in &map {
        out.push_str(&format!(
            "kondate_http_request_seconds_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {s:.6}\n"
        ));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}
