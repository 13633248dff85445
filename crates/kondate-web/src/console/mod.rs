//! The web console (docs/console.md): server-rendered pages under `/` over the same state,
//! and the same scopes, as the API. A person signs in and gets a session (a random secret
//! in an HttpOnly, SameSite cookie, kept hashed in the state database; `Secure` when the
//! server is reached over HTTPS); every form carries the session's CSRF token; every
//! response carries a Content-Security-Policy without inline script and refuses framing.
//!
//! This first part has the sign-in of the embedded default — the local administrator, on a
//! server that listens on loopback only, with the one-time link `kondate serve` prints —,
//! sign-out, and the home page; the other pages and OpenID Connect come next.

// A page's refusal is the page itself (an axum `Response`), returned early by `?`-like
// helpers; boxing it would only add an allocation to every refusal.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use kondate_access::{AuditEntry, Principal, SessionOf, Source};
use minijinja::value::Serde;
use minijinja::{Environment, context};
use serde::Deserialize;

use crate::AppState;
use crate::api::ApiError;

pub use oidc::Provider as OidcProvider;

mod admin;
mod catalog;
mod jobs;
mod labels;
mod models;
mod oidc;
mod queries;
mod runs;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kondate_session";
/// How long a sign-in lasts.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Who a local sign-in is, in records (`cli:local-admin`).
const LOCAL_ADMIN: &str = "local-admin";
/// At most this many rows of a list on one page.
const PAGE_ROWS: i64 = 50;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                   data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// The templates, compiled once (HTML-escaped by their `.html` names).
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        macro_rules! templates {
            ($($name:literal),* $(,)?) => {
                [$(($name, include_str!(concat!("templates/", $name)))),*]
            };
        }
        for (name, source) in templates![
            "base.html",
            "signin.html",
            "home.html",
            "message.html",
            "confirm.html",
            "jobs.html",
            "job.html",
            "instance.html",
            "launch.html",
            "catalog_table.html",
            "catalog.html",
            "_doc.html",
            "_revisions.html",
            "_crumbs.html",
            "catalog_list.html",
            "catalog_doc.html",
            "catalog_edit.html",
            "catalog_lineage.html",
            "models.html",
            "model.html",
            "model_version.html",
            "alias_form.html",
            "labels.html",
            "label_set.html",
            "label_revision.html",
            "runs.html",
            "run.html",
            "apps.html",
            "app.html",
            "queries.html",
            "admin_users.html",
            "admin_tokens.html",
            "admin_token_made.html",
            "admin_audit.html",
            "_admin_nav.html",
            "query.html",
        ] {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        // HTML-escape `& < > " '` only: minijinja's default also escapes `/`, which makes
        // every URL in an attribute `&#x2f;…` — valid, but unreadable in page sources.
        env.set_formatter(
            |out, state, value| match (state.auto_escape(), value.as_str()) {
                (minijinja::AutoEscape::Html, Some(text)) if !value.is_safe() => {
                    for c in text.chars() {
                        match c {
                            '&' => out.write_str("&amp;")?,
                            '<' => out.write_str("&lt;")?,
                            '>' => out.write_str("&gt;")?,
                            '"' => out.write_str("&quot;")?,
                            '\'' => out.write_str("&#x27;")?,
                            c => out.write_char(c)?,
                        }
                    }
                    Ok(())
                }
                _ => minijinja::escape_formatter(out, state, value),
            },
        );
        env.add_filter("bytes", bytes);
        env.add_filter("short", short);
        env
    })
}

/// A size in bytes as people read it (`1.5 GiB`).
fn bytes(n: Option<i64>) -> String {
    let Some(n) = n else {
        return String::new();
    };
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if v.abs() < 1024.0 || unit == "TiB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

/// A number with at most four significant digits (an axis label).
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The console's routes (merged into the API's router by [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(signin_page))
        .route("/signin/local", get(signin_local))
        .route("/signin/oidc", get(oidc::start))
        .route("/signin/oidc/callback", get(oidc::callback))
        .route("/signout", post(signout))
        .merge(admin::routes())
        .merge(catalog::routes())
        .merge(jobs::routes())
        .merge(models::routes())
        .merge(labels::routes())
        .merge(runs::routes())
        .merge(queries::routes())
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
        // Forms are small: 64 KiB (the API's routes have their own limits).
        .layer(axum::extract::DefaultBodyLimit::max(64 << 10))
        .layer(axum::middleware::from_fn(security_headers))
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

/// The console's one script (times in the viewer's zone); no page depends on it.
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("static/console.js"),
    )
        .into_response()
}

/// A page, or the error page when the template fails (a bug: logged).
fn page(name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render; the server's log says why",
            )
                .into_response()
        }
    }
}

fn message(state: &AppState, status: StatusCode, heading: &str, text: &str) -> Response {
    let mut res = page(
        "message.html",
        context! { project => project_name(state), heading, message => text },
    );
    *res.status_mut() = status;
    res
}

fn project_name(state: &AppState) -> String {
    state.project.config.project.name.clone()
}

/// The value of cookie `name` in `headers`. (A `Cookie` header is `name=value` pairs
/// separated by `;` — RFC 6265 §4.2 — read here rather than with a cookie crate for two
/// names.)
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The session cookie's value in `headers`.
fn session_secret(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// One page of `all` (`PAGE_ROWS` rows): its rows, and the previous and next page numbers
/// when there are such pages.
fn paged<T>(all: &[T], page: Option<usize>) -> (&[T], Option<usize>, Option<usize>) {
    let rows = PAGE_ROWS as usize;
    let n = page.unwrap_or(0);
    let from = (n * rows).min(all.len());
    let to = (from + rows).min(all.len());
    let next = (all.len() > (n + 1) * rows).then_some(n + 1);
    (&all[from..to], n.checked_sub(1), next)
}

/// Whether the server is reached over HTTPS (its public URL says so): cookies are `Secure`.
pub(super) fn over_https(state: &AppState) -> bool {
    state
        .project
        .config
        .server
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

pub(super) fn session_cookie(state: &AppState, secret: &str, max_age: Duration) -> HeaderValue {
    let secure = if over_https(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .expect("a cookie of hex and ASCII")
}

/// Who is signed in, with the session's CSRF token and cookie secret.
struct Viewer {
    principal: Principal,
    csrf: String,
    secret: String,
}

/// The signed-in viewer of a request, or None (no cookie, an expired or ended session, a
/// user since disabled).
async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, Response> {
    let Some(secret) = session_secret(headers) else {
        return Ok(None);
    };
    let failed = |e: kondate_access::AccessError| {
        tracing::error!(error = %e, "reading a console session failed");
        message(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The session could not be read; the server's log says why.",
        )
    };
    let sessions = &state.access.sessions;
    let Some(session) = sessions.find(&secret).await.map_err(failed)? else {
        return Ok(None);
    };
    Ok(sessions
        .principal(&session)
        .await
        .map_err(failed)?
        .map(|principal| Viewer {
            principal,
            csrf: session.csrf,
            secret,
        }))
}

/// What every signed-in page's frame shows: the project, the viewer, the sign-out form's
/// CSRF token, and the sections the viewer may open.
fn frame(state: &AppState, v: &Viewer, section: &str) -> minijinja::Value {
    context! {
        project => project_name(state),
        section,
        viewer => v.principal.actor(),
        csrf => v.csrf.clone(),
        can_jobs => v.principal.has_kind(kondate_access::ScopeKind::JobsRead),
        can_models => v.principal.has_kind(kondate_access::ScopeKind::ModelsRead),
        can_labels => v.principal.has_kind(kondate_access::ScopeKind::LabelsRead),
        can_runs => v.principal.has_kind(kondate_access::ScopeKind::RunsRead),
        can_query => v.principal.has_kind(kondate_access::ScopeKind::Query),
        is_admin => v.principal.allows_every(kondate_access::ScopeKind::Admin),
    }
}

/// A signed-in viewer, or the way to the sign-in page.
impl axum::extract::FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        match viewer(state, &parts.headers).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                // Back to the page asked for once signed in (a link pasted into chat).
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| *p != "/")
                    .map(|p| {
                        format!(
                            "?next={}",
                            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
                        )
                    })
                    .unwrap_or_default();
                Err(Redirect::to(&format!("/signin{next}")).into_response())
            }
            Err(res) => Err(res),
        }
    }
}

/// Whether this server listens on loopback only (the local sign-in's condition).
fn loopback(state: &AppState) -> bool {
    state
        .project
        .config
        .listen_addr()
        .is_ok_and(|a| a.ip().is_loopback())
}

async fn home(State(state): State<AppState>, v: Viewer) -> Response {
    let can_jobs = v.principal.has_kind(kondate_access::ScopeKind::JobsRead);
    let mut instances = Vec::new();
    let mut more = false;
    if can_jobs {
        match state.jobs.running_or_failed(PAGE_ROWS + 1).await {
            Ok(mut found) => {
                more = found.len() as i64 > PAGE_ROWS;
                found.truncate(PAGE_ROWS as usize);
                instances = found
                    .iter()
                    .filter(|i| {
                        v.principal
                            .allows(kondate_access::ScopeKind::JobsRead, Some(&i.job))
                    })
                    .map(|i| i.to_json())
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "the home page could not list instances"),
        }
    }
    let late = late_result_tables(&state).await;
    let changes = recent_changes(&state, &v).await;
    let running = instances
        .iter()
        .any(|i| i["status"] == kondate_jobs::scheduler::WORKING);
    let failed_queries = failed_queries(&state, &v).await;
    page(
        "home.html",
        context! {
            instances => Serde(instances),
            instances_more => more,
            running,
            late => Serde(late),
            changes => Serde(changes),
            failed_queries => Serde(failed_queries),
            ..frame(&state, &v, "home")
        },
    )
}

/// How many of the latest label syncs, model pushes and alias moves the home page shows.
const HOME_CHANGES: usize = 15;

/// The latest label syncs, model pushes and alias moves of the names the viewer may read,
/// from the audit trail (the API's and the CLI's alike), newest first.
async fn recent_changes(state: &AppState, v: &Viewer) -> Vec<serde_json::Value> {
    use kondate_access::ScopeKind::{LabelsRead, ModelsRead};
    let mut out = Vec::new();
    for (action, kind, what) in [
        ("labels.sync", LabelsRead, "label sync"),
        ("models.push", ModelsRead, "model push"),
        ("models.alias.set", ModelsRead, "alias move"),
    ] {
        if !v.principal.has_kind(kind) {
            continue;
        }
        let filter = kondate_access::AuditFilter {
            action: Some(action.into()),
            outcome: Some(kondate_access::Outcome::Ok),
            limit: Some(HOME_CHANGES * 2),
            ..Default::default()
        };
        let Ok(records) = state.access.audit.list(&filter).await else {
            continue;
        };
        for r in records {
            let Some(target) = r.entry.target.clone() else {
                continue;
            };
            let name = target.split('@').next().unwrap_or_default().to_string();
            if !v.principal.allows(kind, Some(&name)) {
                continue;
            }
            let url = match kind {
                LabelsRead => format!("/labels/{name}"),
                _ => format!("/models/{name}"),
            };
            out.push(serde_json::json!({
                "at": r.at, "what": what, "target": target, "actor": r.entry.actor,
                "url": url, "params": r.entry.params,
            }));
        }
    }
    out.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
    out.truncate(HOME_CHANGES);
    out
}

/// The latest failed queries the viewer may see.
async fn failed_queries(state: &AppState, v: &Viewer) -> Vec<serde_json::Value> {
    if !v.principal.has_kind(kondate_access::ScopeKind::Query) {
        return Vec::new();
    }
    let Ok(tokens) = queries::visible_tokens(state, v).await else {
        return Vec::new();
    };
    state
        .service
        .recent(
            tokens.as_deref(),
            Some(kondate_query::Status::Failed),
            None,
            10,
        )
        .await
        .map(|found| found.iter().map(queries::to_row).collect())
        .unwrap_or_default()
}

/// The result tables whose writing job is past its schedule (docs/catalog.md#tables-kondate-writes).
async fn late_result_tables(state: &AppState) -> Vec<serde_json::Value> {
    let Ok(decls) = state.results.declarations() else {
        return Vec::new();
    };
    let jobs = crate::catalog::project_jobs(state);
    let ctx = crate::catalog::written_context(state, &jobs);
    let mut late = Vec::new();
    for d in decls.iter().take(PAGE_ROWS as usize) {
        let (schema, table) = d.table.split_once('.').unwrap_or(("", &d.table));
        if let Ok(Some(kondate_catalog::Written::ResultTable(t))) =
            ctx.about("service", schema, table).await
            && t.freshness.status == "late"
        {
            late.push(serde_json::json!({"result": t.result, "message": t.freshness.message}));
        }
    }
    late
}

#[derive(Deserialize)]
struct PageParams {
    page: Option<usize>,
}

fn server_error(state: &AppState, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    message(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The page could not be read; the server's log says why.",
    )
}

/// The page of an API error met while reading (not a change: nothing is recorded).
pub(super) fn read_error(state: &AppState, e: ApiError) -> Response {
    match e.status() {
        StatusCode::FORBIDDEN => forbidden(state, &format!("{}.", e.message())),
        StatusCode::NOT_FOUND => message(state, StatusCode::NOT_FOUND, "Not found", e.message()),
        _ => server_error(state, "a console page could not be read", e.message()),
    }
}

fn forbidden(state: &AppState, text: &str) -> Response {
    message(state, StatusCode::FORBIDDEN, "Not allowed", text)
}

/// A form's CSRF field.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `text` as a sentence on a page: capitalised, ending with a full stop (errors are written
/// lower-case for the API's JSON).
pub(super) fn sentence(text: &str) -> String {
    let mut out = match text.get(..1) {
        Some(first) => first.to_uppercase() + &text[1..],
        None => text.to_string(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// After a change: on to `url` (303, so that reloading does not post again).
fn see_other(url: &str) -> Response {
    Redirect::to(url).into_response()
}

/// A change a form asks for, made as the viewer: the form's CSRF token is checked first;
/// then `change` runs, and the audit trail records it however it ends (`action` on
/// `target`, with `params` — no secrets), as the API's changes are. On success the viewer
/// gets what `change` answers (usually [`see_other`]); a refusal shows its message with
/// its status (403 for a scope the viewer lacks).
async fn change(
    state: &AppState,
    v: &Viewer,
    csrf: &str,
    action: &str,
    target: Option<&str>,
    params: serde_json::Value,
    change: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let mut entry = AuditEntry::new(Source::Console, &v.principal.actor(), action, target);
    entry.params = params;
    let result = if same_secret(csrf, &v.csrf) {
        change.await
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "the form did not come from this session (its CSRF token does not match): reload \
             the page and try again",
        ))
    };
    match result {
        Ok(res) => {
            entry.status = Some(res.status().as_u16() as i64);
            state.access.audit.record_or_log(entry).await;
            res
        }
        Err(e) => {
            let status = e.status();
            entry.outcome = kondate_access::Outcome::from_status(status.as_u16());
            entry.status = Some(status.as_u16() as i64);
            entry.detail = Some(e.message().to_string());
            state.access.audit.record_or_log(entry).await;
            let heading = match status {
                StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "Not allowed",
                StatusCode::NOT_FOUND => "Not found",
                StatusCode::BAD_REQUEST => "Not accepted",
                StatusCode::CONFLICT => "Not possible now",
                _ => "Something went wrong",
            };
            message(state, status, heading, &sentence(e.message()))
        }
    }
}

#[derive(Deserialize)]
struct SigninParams {
    code: Option<String>,
}

#[derive(Deserialize)]
struct SigninPageParams {
    next: Option<String>,
}

async fn signin_page(State(state): State<AppState>, Query(p): Query<SigninPageParams>) -> Response {
    signin_view(&state, None, p.next.as_deref(), StatusCode::OK)
}

/// The sign-in page: the provider's button (when `[console.oidc]` is set) and the local
/// sign-in's state, with `message` when a sign-in was refused.
pub(super) fn signin_view(
    state: &AppState,
    message: Option<&str>,
    next: Option<&str>,
    status: StatusCode,
) -> Response {
    let next = next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .map(|n| url::form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>());
    let mut res = page(
        "signin.html",
        context! {
            project => project_name(state),
            loopback => loopback(state) && state.local_signin.is_some(),
            listen => state.project.config.server.listen.clone(),
            oidc => state.oidc.as_ref().map(|o| o.config.name.clone()),
            next,
            message,
        },
    );
    *res.status_mut() = status;
    res
}

/// Compare secrets in time that does not depend on where they differ. (Hand-written: one
/// comparison does not warrant a crate.)
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `GET /signin/local?code=`: the local administrator signs in with the code `kondate
/// serve` printed — only on a server that listens on loopback only.
async fn signin_local(
    State(state): State<AppState>,
    Query(params): Query<SigninParams>,
) -> Response {
    let refused = |text: &str| signin_view(&state, Some(text), None, StatusCode::FORBIDDEN);
    let (true, Some(code)) = (loopback(&state), state.local_signin.as_deref()) else {
        return refused("Local sign-in works only on a server that listens on a loopback address.");
    };
    let given = params.code.unwrap_or_default();
    let mut entry = AuditEntry::new(
        Source::Console,
        &Principal::local(LOCAL_ADMIN).actor(),
        "console.signin",
        None,
    );
    if !same_secret(&given, code) {
        entry.outcome = kondate_access::Outcome::Unauthorized;
        entry.status = Some(403);
        state.access.audit.record_or_log(entry).await;
        return refused(
            "That sign-in link is not this server's: use the one `kondate serve` printed when \
             it started (a restarted server prints a new one).",
        );
    }
    let created = state
        .access
        .sessions
        .create(SessionOf::Local(LOCAL_ADMIN.into()), SESSION_TTL)
        .await;
    match created {
        Ok(s) => {
            entry.status = Some(303);
            state.access.audit.record_or_log(entry).await;
            let mut res = Redirect::to("/").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&state, &s.secret, SESSION_TTL),
            );
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "a console session could not be started");
            message(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The session could not be started; the server's log says why.",
            )
        }
    }
}

#[derive(Deserialize)]
struct SignoutForm {
    csrf: String,
}

/// `POST /signout`: ends the session (its form's CSRF token checked) and clears the cookie.
async fn signout(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<SignoutForm>,
) -> Response {
    if !same_secret(&form.csrf, &v.csrf) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "Refused",
            "The form did not come from this session (its CSRF token does not match): reload \
             the page and try again.",
        );
    }
    if let Err(e) = state.access.sessions.end(&v.secret).await {
        tracing::error!(error = %e, "a console session could not be ended");
    }
    let mut entry = AuditEntry::new(
        Source::Console,
        &v.principal.actor(),
        "console.signout",
        None,
    );
    entry.status = Some(303);
    state.access.audit.record_or_log(entry).await;
    let mut res = Redirect::to("/signin").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, "", Duration::ZERO),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(name: &str, ctx: minijinja::Value) -> String {
        templates()
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    #[test]
    fn values_are_escaped_for_html_but_urls_stay_readable() {
        let mut env = templates().clone();
        env.add_template(
            "t.html",
            "<a href=\"{{ u }}\" title=\"{{ t }}\">{{ t }}</a>{{ n }}",
        )
        .unwrap();
        let html = env
            .get_template("t.html")
            .unwrap()
            .render(context! { u => "/catalog/a?b=1&c=2", t => "<x> \"'y'\"" })
            .unwrap();
        assert_eq!(
            html,
            "<a href=\"/catalog/a?b=1&amp;c=2\" title=\"&lt;x&gt; &quot;&#x27;y&#x27;&quot;\">\
             &lt;x&gt; &quot;&#x27;y&#x27;&quot;</a>"
        );
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("unknown role `boss`"), "Unknown role `boss`.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence("醤油 is not a role"), "醤油 is not a role.");
    }

    #[test]
    fn lists_are_paged_with_their_neighbours() {
        let all: Vec<usize> = (0..120).collect();
        let (rows, prev, next) = paged(&all, None);
        assert_eq!((rows.len(), rows[0], prev, next), (50, 0, None, Some(1)));
        let (rows, prev, next) = paged(&all, Some(2));
        assert_eq!((rows.len(), rows[0], prev, next), (20, 100, Some(1), None));
        let (rows, prev, next) = paged(&all, Some(9));
        assert_eq!((rows.len(), prev, next), (0, Some(8), None));
    }

    #[test]
    fn numbers_and_sizes_read_as_people_write_them() {
        assert_eq!(short(0.912345), "0.9123");
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(-0.00012346), "-0.0001235");
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(3 << 30)), "3.0 GiB");
        assert_eq!(bytes(None), "");
    }

    #[test]
    fn the_jobs_pages_render_with_and_without_their_optional_parts() {
        let frame = context! { project => "p", section => "jobs", viewer => "cli:x", csrf => "c", can_jobs => true };
        let jobs = serde_json::json!([
            {"name": "a", "schedules": [{"cron": "0 3 * * *", "time_zone": "UTC"}],
             "next": ["2026-12-03T03:00:00Z"], "owners": ["o@example.com"], "tags": ["t"],
             "suspended": false, "load_error": null, "last_status": "error"},
            {"name": "b", "schedules": null, "next": null, "owners": null, "tags": null,
             "suspended": null, "load_error": "bad", "last_status": null},
        ]);
        let html = render(
            "jobs.html",
            context! { jobs => Serde(jobs), prev => None::<usize>, next => Some(1), ..frame.clone() },
        );
        assert!(
            html.contains("/jobs?page=1") && html.contains("does not load"),
            "{html}"
        );
        let job = serde_json::json!({"name": "a", "revision": 1, "schedules": [], "next": [],
            "script": "noop:\n", "instances": [], "revisions": [{"id": 1, "digest": "abcdef0123456789", "loaded_at": "x"}]});
        let html = render("job.html", context! { job => Serde(job), ..frame });
        assert!(html.contains("noop:"), "{html}");
    }
}
