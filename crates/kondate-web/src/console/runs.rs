//! The console's Apps and Runs section: apps with their expanded definitions, recent runs
//! with status, duration and peak memory, and a run's log. Reading needs `runs:read` on the
//! app, as in the API.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use futures::StreamExt;
use kondate_access::ScopeKind::RunsRead;
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;

use super::{PAGE_ROWS, Viewer, forbidden, frame, page, read_error};
use crate::AppState;

/// At most this much of a run's log is shown on its page (its end).
const LOG_TAIL_BYTES: usize = 256 << 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/apps", get(apps_page))
        .route("/apps/{name}", get(app_page))
}

fn may_read(state: &AppState, v: &Viewer, app: &str) -> Result<(), Response> {
    if v.principal.allows(RunsRead, Some(app)) {
        Ok(())
    } else {
        Err(forbidden(
            state,
            &format!(
                "Reading app {app} and its runs needs runs:read on it; ask an admin for a role \
                 that has it."
            ),
        ))
    }
}

#[derive(Deserialize)]
struct RunsParams {
    app: Option<String>,
}

/// `GET /runs?app=NAME`: the latest 50 runs the viewer may read, newest first.
async fn runs_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<RunsParams>,
) -> Response {
    let app = p.app.filter(|a| !a.is_empty());
    if let Some(a) = &app
        && let Err(res) = may_read(&state, &v, a)
    {
        return res;
    }
    let mut runs = match state.runs.list(app.as_deref(), PAGE_ROWS).await {
        Ok(r) => r,
        Err(e) => return read_error(&state, e.into()),
    };
    runs.retain(|r| v.principal.allows(RunsRead, Some(&r.app)));
    page(
        "runs.html",
        context! { runs => Serde(&runs), app, ..frame(&state, &v, "runs") },
    )
}

/// `GET /runs/{id}`: one run and its log's end.
async fn run_page(State(state): State<AppState>, Path(id): Path<String>, v: Viewer) -> Response {
    let run = match state.runs.get(&id).await {
        Ok(r) => r,
        Err(e) => return read_error(&state, e.into()),
    };
    if let Err(res) = may_read(&state, &v, &run.app) {
        return res;
    }
    let from = run
        .log_bytes
        .map_or(0, |n| (n as u64).saturating_sub(LOG_TAIL_BYTES as u64));
    let mut log = Vec::new();
    let mut stream = state.runs.log_stream(&id, from, false);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => log.extend_from_slice(&b),
            Err(e) => {
                log.extend_from_slice(format!("(the log could not be read: {e})\n").as_bytes());
                break;
            }
        }
        if log.len() > 2 * LOG_TAIL_BYTES {
            break;
        }
    }
    let mut log = String::from_utf8_lossy(&log).into_owned();
    // Whole lines only: a cut start drops its partial first line.
    if from > 0
        && let Some(i) = log.find('\n')
    {
        log.drain(..=i);
    }
    page(
        "run.html",
        context! { run => Serde(&run), log, log_cut => from > 0, ..frame(&state, &v, "runs") },
    )
}

/// `GET /apps`: the project's apps the viewer may read; one whose definition does not load
/// says why.
async fn apps_page(State(state): State<AppState>, v: Viewer) -> Response {
    let apps = kondate_apps::Apps::new(state.project.root.join("apps"));
    let names = apps.names().unwrap_or_default();
    let rows: Vec<_> = names
        .into_iter()
        .filter(|n| v.principal.allows(RunsRead, Some(n)))
        .take(500)
        .map(|n| match apps.load(&n, false) {
            Ok(d) => serde_json::json!({"name": n, "scheduler": d.scheduler, "results": d.access.results}),
            Err(e) => serde_json::json!({"name": n, "error": e.to_string()}),
        })
        .collect();
    page(
        "apps.html",
        context! { apps => Serde(rows), ..frame(&state, &v, "runs") },
    )
}

/// `GET /apps/{name}`: an app's definition, expanded as `kondate apps show` prints it, and
/// its latest runs.
async fn app_page(State(state): State<AppState>, Path(name): Path<String>, v: Viewer) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    let apps = kondate_apps::Apps::new(state.project.root.join("apps"));
    let (definition, error) = match apps.load(&name, true) {
        Ok(d) => (
            serde_json::to_string_pretty(&d.evaluated).unwrap_or_default(),
            None,
        ),
        Err(e @ kondate_apps::AppsError::NoSuchApp { .. }) => return read_error(&state, e.into()),
        Err(e) => (String::new(), Some(e.to_string())),
    };
    let runs = match state.runs.list(Some(&name), 20).await {
        Ok(r) => r,
        Err(e) => return read_error(&state, e.into()),
    };
    page(
        "app.html",
        context! { name, definition, error, runs => Serde(&runs), ..frame(&state, &v, "runs") },
    )
}
