//! `GET /v1/audit`: the audit trail (admin).

use axum::Json;
use axum::extract::State;
use kondate_access::{AuditFilter, Outcome, parse_since};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{ApiError, ApiQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    actor: Option<String>,
    target: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/audit?actor=&target=&action=&outcome=&since=&limit=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let filter = AuditFilter {
        actor: p.actor,
        target: p.target,
        action: p.action,
        outcome: p.outcome.as_deref().map(Outcome::parse).transpose()?,
        since_ms: p
            .since
            .as_deref()
            .map(|s| parse_since(s, state.service.clock().now()))
            .transpose()?,
        limit: Some(limit),
    };
    let records = state.access.audit.list(&filter).await?;
    Ok(Json(json!({ "records": records })))
}
