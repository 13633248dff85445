//! The console's Queries section: recent queries with who ran them, status, duration,
//! rows and error. As in the query API, a query is its token's own: a person sees the
//! queries of the tokens they own, an administrator every query.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use kondate_access::{PrincipalKind, ScopeKind};
use kondate_query::QueryRecord;
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::json;

use super::{PAGE_ROWS, Viewer, forbidden, frame, message, page, server_error};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/queries", get(queries_page))
        .route("/queries/{id}", get(query_page))
}

/// The tokens whose queries the viewer may see: None for all (an administrator).
pub(super) async fn visible_tokens(
    state: &AppState,
    v: &Viewer,
) -> Result<Option<Vec<String>>, Response> {
    if v.principal.allows_every(ScopeKind::Admin) {
        return Ok(None);
    }
    if !v.principal.has_kind(ScopeKind::Query) {
        return Err(forbidden(
            state,
            "Reading queries needs the query scope; ask an admin for a role that has it.",
        ));
    }
    let person = match v.principal.kind {
        PrincipalKind::User => v.principal.name.clone(),
        _ => return Ok(Some(Vec::new())),
    };
    let tokens = state
        .access
        .tokens
        .list()
        .await
        .map_err(|e| server_error(state, "listing tokens failed", e))?;
    Ok(Some(
        tokens
            .into_iter()
            .filter(|t| {
                t.owner
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case(&person))
            })
            .map(|t| t.name)
            .collect(),
    ))
}

pub(super) fn to_row(q: &QueryRecord) -> serde_json::Value {
    let duration_ms = match (q.started_at, q.finished_at) {
        (Some(s), Some(f)) => Some((f - s).num_milliseconds()),
        _ => None,
    };
    let one_line = q
        .select_stmt
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let short = match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    };
    json!({
        "id": q.id, "token": q.token, "status": q.status, "sql": q.select_stmt, "sql_short": short,
        "rows": q.record_count, "error": q.error, "created_at": q.created_at.to_rfc3339(),
        "duration_ms": duration_ms, "expired": q.expired, "format": q.format,
    })
}

#[derive(Deserialize)]
struct ListParams {
    before: Option<i64>,
}

/// `GET /queries?before=ID`: the latest 50 queries the viewer may see, newest first.
async fn queries_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<ListParams>,
) -> Response {
    let tokens = match visible_tokens(&state, &v).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let mut found = match state
        .service
        .recent(tokens.as_deref(), None, p.before, PAGE_ROWS + 1)
        .await
    {
        Ok(f) => f,
        Err(e) => return server_error(&state, "listing queries failed", e),
    };
    let more = found.len() as i64 > PAGE_ROWS;
    found.truncate(PAGE_ROWS as usize);
    let rows: Vec<_> = found.iter().map(to_row).collect();
    page(
        "queries.html",
        context! {
            queries => Serde(rows),
            next => more.then(|| found.last().map(|q| q.id)).flatten(),
            newest => p.before.is_some(),
            all => tokens.is_none(),
            ..frame(&state, &v, "queries")
        },
    )
}

/// `GET /queries/{id}`: one query in full.
async fn query_page(State(state): State<AppState>, Path(id): Path<String>, v: Viewer) -> Response {
    let tokens = match visible_tokens(&state, &v).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let not_found = || {
        message(
            &state,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("No query {id} that you may see."),
        )
    };
    let Ok(n) = id.parse::<i64>() else {
        return not_found();
    };
    let q = match state.service.get(n, kondate_query::Asker::Internal).await {
        Ok(q) => q,
        Err(kondate_query::QueryError::NotFound(_)) => return not_found(),
        Err(e) => return server_error(&state, "reading a query failed", e),
    };
    let visible = match &tokens {
        None => true,
        Some(t) => q.token.as_ref().is_some_and(|name| t.contains(name)),
    };
    if !visible {
        return not_found();
    }
    page(
        "query.html",
        context! { q => Serde(to_row(&q)), ..frame(&state, &v, "queries") },
    )
}
