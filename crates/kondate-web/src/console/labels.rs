//! The console's Labels section: label sets, a set's revisions, and what each revision
//! changed (rows added with their cells, changed with the cells that changed, removed by
//! key). Reading needs `labels:read` on the set, as in the API.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use kondate_access::ScopeKind::LabelsRead;
use minijinja::context;
use minijinja::value::Serde;
use serde_json::json;

use super::{PageParams, Viewer, forbidden, frame, message, page, read_error};
use crate::AppState;

/// At most this many rows of each kind in a revision's diff.
const DIFF_ROWS: usize = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/labels", get(sets_page))
        .route("/labels/{name}", get(set_page))
        .route("/labels/{name}/revisions/{revision}", get(revision_page))
}

fn may_read(state: &AppState, v: &Viewer, name: &str) -> Result<(), Response> {
    if v.principal.allows(LabelsRead, Some(name)) {
        Ok(())
    } else {
        Err(forbidden(
            state,
            &format!(
                "Reading label set {name} needs labels:read on it; ask an admin for a role that \
                 has it."
            ),
        ))
    }
}

/// `GET /labels`: the project's label sets the viewer may read, with their current revision.
async fn sets_page(State(state): State<AppState>, v: Viewer) -> Response {
    let mut sets = match state.labels.list(&state.project).await {
        Ok(s) => s,
        Err(e) => return read_error(&state, e.into()),
    };
    sets.retain(|s| v.principal.allows(LabelsRead, Some(&s.name)));
    page(
        "labels.html",
        context! { sets => Serde(&sets), ..frame(&state, &v, "labels") },
    )
}

/// `GET /labels/{name}?page=N`: a set's definition and its revisions, newest first, 50 a page.
async fn set_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Query(p): Query<PageParams>,
) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    let set = match kondate_labels::find(&state.project, &name) {
        Ok(s) => s,
        Err(e) => return read_error(&state, e.into()),
    };
    let mut history = match state.labels.history(&set.name).await {
        Ok(h) => h,
        Err(e) => return read_error(&state, e.into()),
    };
    history.reverse();
    let (shown, prev, next) = super::paged(&history, p.page);
    let revisions: Vec<_> = shown
        .iter()
        .map(|r| {
            json!({
                "revision": r.revision, "created_at": kondate_core::clock::ms_to_rfc3339(r.created_at),
                "actor": r.actor, "rows_total": r.rows_total, "added": r.added, "changed": r.changed,
                "removed": r.removed, "skipped_invalid": r.skipped_invalid, "migration": r.migration,
            })
        })
        .collect();
    page(
        "label_set.html",
        context! {
            name => set.name.clone(),
            table => set.table.clone(),
            source => set.source.describe(),
            key => set.key.clone(),
            columns => Serde(&set.columns),
            revisions => Serde(revisions),
            prev,
            next,
            ..frame(&state, &v, "labels")
        },
    )
}

/// `GET /labels/{name}/revisions/{n}`: what revision n changed.
async fn revision_page(
    State(state): State<AppState>,
    Path((name, revision)): Path<(String, String)>,
    v: Viewer,
) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    let Ok(revision) = revision.parse::<i64>() else {
        return message(
            &state,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("`{revision}` is not a revision number."),
        );
    };
    let set = match kondate_labels::find(&state.project, &name) {
        Ok(s) => s,
        Err(e) => return read_error(&state, e.into()),
    };
    let (diff, error) = match state.labels.revision_diff(&set, revision, DIFF_ROWS).await {
        Ok(d) => (Some(d), None),
        Err(e @ kondate_labels::LabelsError::Snapshot { .. }) => (None, Some(e.to_string())),
        Err(e) => return read_error(&state, e.into()),
    };
    page(
        "label_revision.html",
        context! {
            name => set.name.clone(),
            revision,
            diff => Serde(&diff),
            error,
            limit => DIFF_ROWS,
            ..frame(&state, &v, "labels")
        },
    )
}
