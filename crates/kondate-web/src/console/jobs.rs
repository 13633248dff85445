//! The console's Jobs section: jobs, a job, an instance with its steps and live log, the
//! actions on an instance (retry, skip, cancel, force-cancel — each confirmed on its own
//! page), and launching a job with variables. Each checks the API's scopes through the
//! same functions as the API ([`crate::jobs`]).

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use kondate_access::ScopeKind::{JobsLaunch, JobsRead};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::json;

use super::{
    CsrfForm, PageParams, Viewer, change, forbidden, frame, message, page, read_error, see_other,
    server_error,
};
use crate::AppState;
use crate::api::ApiError;
use crate::jobs::{Act, act_on, launch_as, may_operate, readable};

/// At most this much of an instance's log is shown on its page (its end).
const LOG_TAIL_BYTES: usize = 256 << 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(jobs_page))
        .route("/jobs/{name}", get(job_page))
        .route("/jobs/{name}/launch", get(launch_form).post(launch))
        .route("/instances/{id}", get(instance_page))
        .route("/instances/{id}/log", get(log_events))
        .route("/instances/{id}/{act}", get(confirm).post(act))
}

/// `GET /jobs?page=N`: the jobs the viewer may read (`jobs:read` on each), 50 a page, with
/// their schedules, next fire time, last instance's status, owners and tags.
async fn jobs_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<PageParams>,
) -> Response {
    let all = match state.jobs.jobs().await {
        Ok(all) => all,
        Err(e) => return server_error(&state, "listing jobs failed", e),
    };
    let readable: Vec<_> = all
        .into_iter()
        .filter(|j| !j.removed && v.principal.allows(JobsRead, Some(&j.name)))
        .collect();
    let (shown, prev, next) = super::paged(&readable, p.page);
    let now = state.results.clock.now();
    let mut jobs = Vec::new();
    for j in shown {
        let mut json = state.jobs.job_json(j, now, 1).await;
        json["last_status"] = state
            .jobs
            .instances(&j.name, 1)
            .await
            .ok()
            .and_then(|i| i.first().map(|i| i.status.clone()))
            .into();
        jobs.push(json);
    }
    page(
        "jobs.html",
        context! {
            jobs => Serde(jobs),
            prev,
            next,
            ..frame(&state, &v, "jobs")
        },
    )
}

/// `GET /jobs/{name}`: a job as `kondate jobs show` shows it — script, schedules and next
/// fire times, revisions, latest instances (`jobs:read` on it).
async fn job_page(State(state): State<AppState>, Path(name): Path<String>, v: Viewer) -> Response {
    if !v.principal.allows(JobsRead, Some(&name)) {
        return forbidden(
            &state,
            &format!(
                "Reading job {name} needs jobs:read on it; ask an admin for a role that has it."
            ),
        );
    }
    match state
        .jobs
        .job_detail(&name, state.results.clock.now())
        .await
    {
        Ok(job) => page(
            "job.html",
            context! {
                job => Serde(job),
                can_launch => v.principal.allows(JobsLaunch, Some(&name)),
                ..frame(&state, &v, "jobs")
            },
        ),
        Err(kondate_jobs::JobsError::NoSuchJob(_)) => message(
            &state,
            StatusCode::NOT_FOUND,
            "No such job",
            &format!("No job is named {name}: the Jobs page lists them."),
        ),
        Err(e) => server_error(&state, "reading a job failed", e),
    }
}

/// An instance id from the address, or the page that says it is not one.
fn instance_id(state: &AppState, id: &str) -> Result<i64, Response> {
    id.parse().map_err(|_| {
        message(
            state,
            StatusCode::NOT_FOUND,
            "No such instance",
            &format!("`{id}` is not an instance id (a number)."),
        )
    })
}

/// An action's address segment and button label.
fn named(a: Act) -> (&'static str, &'static str) {
    match a {
        Act::Retry => ("retry", "Retry"),
        Act::Skip => ("skip", "Skip the failed step"),
        Act::Cancel => ("cancel", "Cancel"),
        Act::ForceCancel => ("force-cancel", "Force-cancel"),
    }
}

/// The actions an instance in `status` allows, as (address segment, button label).
fn actions_for(status: &str) -> Vec<(&'static str, &'static str)> {
    let acts: &[Act] = match status {
        kondate_jobs::scheduler::ERROR => &[Act::Retry, Act::Skip, Act::Cancel],
        kondate_jobs::scheduler::WORKING => &[Act::Cancel, Act::ForceCancel],
        _ => &[],
    };
    acts.iter().copied().map(named).collect()
}

/// The end of instance `id`'s stored log, as `kondate jobs log` prints it, and whether it
/// was cut.
async fn log_tail(state: &AppState, id: i64) -> (String, bool) {
    let mut text = String::new();
    let mut cut = false;
    let mut stream = std::pin::pin!(state.executor.log_stream(id, false));
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => text.push_str(&c),
            Err(e) => {
                text.push_str(&format!("(the log could not be read: {e})\n"));
                break;
            }
        }
        // Trimmed as it grows, so a long log never sits whole in memory.
        if text.len() > 2 * LOG_TAIL_BYTES {
            cut |= keep_tail(&mut text, LOG_TAIL_BYTES);
        }
    }
    cut |= keep_tail(&mut text, LOG_TAIL_BYTES);
    (text, cut)
}

/// Keep at most the last `max` bytes of `text`, from the start of a line (or of a
/// character, in a line longer than `max`); whether anything was cut.
fn keep_tail(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let from = text.len() - max;
    // A newline byte is always a character boundary; past it starts a whole line.
    let from = match text.as_bytes()[from..].iter().position(|b| *b == b'\n') {
        Some(i) => from + i + 1,
        None => (from..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len()),
    };
    text.drain(..from);
    true
}

/// `GET /instances/{id}`: an instance with its steps (peak memory against the job's usual),
/// its log's end — followed live while it runs —, and the actions the viewer may take.
async fn instance_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    v: Viewer,
) -> Response {
    let id = match instance_id(&state, &id) {
        Ok(id) => id,
        Err(res) => return res,
    };
    let instance = match readable(&state, &v.principal, id).await {
        Ok(i) => i,
        Err(e) => return read_error(&state, e),
    };
    let steps = match state.executor.steps(id).await {
        Ok(s) => s,
        Err(e) => return server_error(&state, "reading an instance's steps failed", e),
    };
    let (log, log_cut) = log_tail(&state, id).await;
    let actions = if may_operate(&state, &v.principal, &instance).await {
        actions_for(&instance.status)
    } else {
        Vec::new()
    };
    page(
        "instance.html",
        context! {
            instance => Serde(instance.to_json()),
            steps => Serde(&steps),
            log,
            log_cut,
            live => instance.status == kondate_jobs::scheduler::WORKING,
            actions,
            ..frame(&state, &v, "jobs")
        },
    )
}

/// `GET /instances/{id}/log`: the instance's log as server-sent events — one `line` event
/// per line, from the start, as the steps write them — and an `end` event when no step
/// runs or waits any more (the page then reloads to show how it ended).
async fn log_events(State(state): State<AppState>, Path(id): Path<String>, v: Viewer) -> Response {
    let id = match instance_id(&state, &id) {
        Ok(id) => id,
        Err(res) => return res,
    };
    if let Err(e) = readable(&state, &v.principal, id).await {
        return read_error(&state, e);
    }
    // `end` says `done`, or `failed` when the log could not be read (the page then stays).
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = failed.clone();
    let lines = state.executor.log_stream(id, true).flat_map(move |chunk| {
        let events: Vec<Result<Event, Infallible>> = match chunk {
            Ok(text) => text
                .lines()
                .map(|l| Ok(Event::default().event("line").data(l)))
                .collect(),
            Err(e) => {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
                vec![Ok(Event::default()
                    .event("line")
                    .data(format!("(the log could not be read: {e})")))]
            }
        };
        futures::stream::iter(events)
    });
    let end = futures::stream::once(async move {
        let how = if failed.load(std::sync::atomic::Ordering::Relaxed) {
            "failed"
        } else {
            "done"
        };
        Ok(Event::default().event("end").data(how))
    });
    Sse::new(lines.chain(end))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /instances/{id}/{act}`: the confirmation of an action, with its form.
async fn confirm(
    State(state): State<AppState>,
    Path((id, act)): Path<(String, String)>,
    v: Viewer,
) -> Response {
    let id = match instance_id(&state, &id) {
        Ok(id) => id,
        Err(res) => return res,
    };
    let Some((segment, label)) = Act::parse(&act).map(named) else {
        return message(&state, StatusCode::NOT_FOUND, "Not found", "No such page.");
    };
    let instance = match readable(&state, &v.principal, id).await {
        Ok(i) => i,
        Err(e) => return read_error(&state, e),
    };
    if !may_operate(&state, &v.principal, &instance).await {
        return forbidden(
            &state,
            &format!(
                "Acting on instances of job {} needs jobs:operate on it, or being one of its \
                 owners.",
                instance.job
            ),
        );
    }
    let what = match segment {
        "retry" => "runs its failed step again, then the steps after it",
        "skip" => "marks its failed step as skipped and goes on with the steps after it",
        "cancel" => "runs none of its steps that have not started (a running step finishes)",
        _ => "stops its running steps now (their process groups are killed) and runs no more",
    };
    page(
        "confirm.html",
        context! {
            heading => format!("{label} instance {id} of job {}?", instance.job),
            text => format!("This {what}."),
            action => format!("/instances/{id}/{segment}"),
            button => label,
            back => format!("/instances/{id}"),
            ..frame(&state, &v, "jobs")
        },
    )
}

/// `POST /instances/{id}/{act}`: the action (CSRF-checked, audited), then the instance.
async fn act(
    State(state): State<AppState>,
    Path((id, act)): Path<(String, String)>,
    v: Viewer,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(what) = Act::parse(&act) else {
        return message(&state, StatusCode::NOT_FOUND, "Not found", "No such page.");
    };
    let target = id.clone();
    let params = json!({"instance": id, "force": what == Act::ForceCancel});
    change(
        &state,
        &v,
        &form.csrf,
        what.action(),
        Some(&target),
        params,
        async {
            let id: i64 = id
                .parse()
                .map_err(|_| ApiError::invalid(format!("`{id}` is not an instance id")))?;
            act_on(&state, &v.principal, id, what).await?;
            Ok(see_other(&format!("/instances/{id}")))
        },
    )
    .await
}

/// `GET /jobs/{name}/launch`: the form to launch a job now with variables.
async fn launch_form(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
) -> Response {
    if !v.principal.allows(JobsLaunch, Some(&name)) {
        return forbidden(
            &state,
            &format!(
                "Launching job {name} needs jobs:launch on it; ask an admin for a role that has it."
            ),
        );
    }
    page(
        "launch.html",
        context! { job => name, ..frame(&state, &v, "jobs") },
    )
}

#[derive(Deserialize)]
struct LaunchForm {
    csrf: String,
    /// `NAME=value` lines.
    #[serde(default)]
    env: String,
    #[serde(default)]
    key: String,
}

/// The variables of a launch form: one `NAME=value` a line, blank lines ignored.
fn parse_env(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            ApiError::invalid(format!(
                "variables, line {}: `{line}` is not NAME=value",
                n + 1
            ))
        })?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

/// `POST /jobs/{name}/launch`: launch (CSRF-checked, audited), then the new instance.
async fn launch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Form(form): Form<LaunchForm>,
) -> Response {
    let key = Some(form.key.trim().to_string()).filter(|k| !k.is_empty());
    let parsed = parse_env(&form.env);
    let names: Vec<String> = parsed
        .as_ref()
        .map(|e| e.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let params = json!({"env": names, "key": key});
    change(
        &state,
        &v,
        &form.csrf,
        "jobs.launch",
        Some(&name),
        params,
        async {
            let i = launch_as(&state, &v.principal, &name, parsed?, key, "console").await?;
            Ok(see_other(&format!("/instances/{}", i.id)))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_keeps_its_last_whole_lines_whatever_their_characters() {
        let mut log = "醤油を入れる\nみりん\n".to_string();
        assert!(!keep_tail(&mut log, 100), "short enough: kept whole");
        // The cut point falls inside 醤: the kept part starts at the next line.
        let max = log.len() - 1;
        assert!(keep_tail(&mut log, max));
        assert_eq!(log, "みりん\n");
        // One long line: cut at a character, never inside one.
        let mut line = "しょうゆ".repeat(10);
        assert!(keep_tail(&mut line, 7));
        assert_eq!(line, "うゆ", "the whole characters of the last 7 bytes");
    }

    #[test]
    fn launch_variables_are_name_value_lines() {
        let env = parse_env("A=1\r\n\nB = x=y\n").unwrap();
        assert_eq!(
            env,
            vec![("A".into(), "1".into()), ("B".into(), " x=y".into())]
        );
        let err = parse_env("A=1\nnope").unwrap_err();
        assert!(err.message().contains("line 2"), "{}", err.message());
    }
}
