//! `GET /v1/processes`: the kondate processes sharing the state database (admin).

use axum::Json;
use axum::extract::State;
use kondate_access::parse_since;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{ApiError, ApiQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessParams {
    since: Option<String>,
}

/// `GET /v1/processes?since=24h`: live, stopped and lost processes heard from since then,
/// newest first, each with the queries it owns.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ProcessParams>,
) -> Result<Json<Value>, ApiError> {
    let now = state.service.clock().now();
    let since = parse_since(p.since.as_deref().unwrap_or("24h"), now)?;
    let since = chrono::DateTime::from_timestamp_millis(since).unwrap_or(now);
    let processes = state
        .service
        .processes(since, state.project.config.state.lost_after)
        .await?;
    Ok(Json(json!({ "processes": processes })))
}
