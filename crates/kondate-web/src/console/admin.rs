//! The console's Admin section (`admin` on every name, as `kondate users`/`tokens` and
//! `GET /v1/audit`): people and their roles, tokens — made here with the secret shown once,
//! and disabled here —, and the audit trail with filters. Every change is recorded with the
//! CLI's action names.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use kondate_access::{AuditFilter, NewTokenRequest, Outcome, Scope, ScopeKind, Scopes};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::json;

use super::{PageParams, Viewer, change, forbidden, frame, page, see_other, server_error};
use crate::AppState;
use crate::api::ApiError;

/// At most this many audit records on a page.
const AUDIT_ROWS: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { see_other("/admin/users") }))
        .route("/admin/users", get(users_page).post(add_user))
        .route("/admin/users/{email}", post(set_user))
        .route("/admin/tokens", get(tokens_page).post(create_token))
        .route("/admin/tokens/{name}/disable", post(disable_token))
        .route("/admin/audit", get(audit_page))
}

fn is_admin(v: &Viewer) -> bool {
    v.principal.allows_every(ScopeKind::Admin)
}

fn refused(state: &AppState) -> Response {
    forbidden(state, "The Admin pages need the admin role.")
}

fn not_admin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this needs the admin role (admin on every name)",
    )
}

/// Role specs from a form field: separated by commas or spaces.
fn list_of(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /admin/users?page=N`: people, 50 a page, with their roles and scopes.
async fn users_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<PageParams>,
) -> Response {
    if !is_admin(&v) {
        return refused(&state);
    }
    let users = match state.access.users.list().await {
        Ok(u) => u,
        Err(e) => return server_error(&state, "listing users failed", e),
    };
    let (shown, prev, next) = super::paged(&users, p.page);
    page(
        "admin_users.html",
        context! {
            users => Serde(shown),
            prev,
            next,
            ..frame(&state, &v, "admin")
        },
    )
}

#[derive(Deserialize)]
struct UserForm {
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    scopes: String,
    /// For `/admin/users/{email}`: `set`, `disable` or `enable`.
    #[serde(default)]
    intent: String,
}

/// `POST /admin/users`: add a person with roles (`users.add`).
async fn add_user(State(state): State<AppState>, v: Viewer, Form(f): Form<UserForm>) -> Response {
    let email = f.email.trim().to_string();
    let (roles, scopes) = (list_of(&f.roles), list_of(&f.scopes));
    let params = json!({"roles": roles, "scopes": scopes});
    change(
        &state,
        &v,
        &f.csrf,
        "users.add",
        Some(&email),
        params,
        async {
            if !is_admin(&v) {
                return Err(not_admin());
            }
            state
                .access
                .users
                .add(&email, &roles, &scopes, &v.principal.actor())
                .await?;
            Ok(see_other("/admin/users"))
        },
    )
    .await
}

/// `POST /admin/users/{email}`: set a person's roles and scopes, or disable or enable them
/// (`users.set`, `users.disable`, `users.enable`).
async fn set_user(
    State(state): State<AppState>,
    Path(email): Path<String>,
    v: Viewer,
    Form(f): Form<UserForm>,
) -> Response {
    let (roles, scopes) = (list_of(&f.roles), list_of(&f.scopes));
    let (action, params) = match f.intent.as_str() {
        "disable" => ("users.disable", json!({})),
        "enable" => ("users.enable", json!({})),
        _ => ("users.set", json!({"roles": roles, "scopes": scopes})),
    };
    change(&state, &v, &f.csrf, action, Some(&email), params, async {
        if !is_admin(&v) {
            return Err(not_admin());
        }
        let users = &state.access.users;
        match action {
            "users.disable" => users.disable(&email).await?,
            "users.enable" => users.enable(&email).await?,
            _ => users.set(&email, &roles, &scopes).await?,
        };
        Ok(see_other("/admin/users"))
    })
    .await
}

/// `GET /admin/tokens`: every token with its kind, owner, scopes, last use and expiry
/// (never a secret), and the form that makes one.
async fn tokens_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<PageParams>,
) -> Response {
    if !is_admin(&v) {
        return refused(&state);
    }
    let tokens = match state.access.tokens.list().await {
        Ok(t) => t,
        Err(e) => return server_error(&state, "listing tokens failed", e),
    };
    let (shown, prev, next) = super::paged(&tokens, p.page);
    page(
        "admin_tokens.html",
        context! {
            tokens => Serde(shown),
            prev,
            next,
            ..frame(&state, &v, "admin")
        },
    )
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    name: String,
    owner: String,
    #[serde(default)]
    scopes: String,
    /// `90d`, `12h`; empty: until disabled.
    #[serde(default)]
    expires: String,
}

/// `POST /admin/tokens`: make a token (`tokens.create`) and show its secret — this once.
async fn create_token(
    State(state): State<AppState>,
    v: Viewer,
    Form(f): Form<TokenForm>,
) -> Response {
    let name = f.name.trim().to_string();
    let scopes = list_of(&f.scopes);
    let params = json!({"owner": f.owner.trim(), "scopes": scopes, "expires": f.expires.trim()});
    change(
        &state,
        &v,
        &f.csrf,
        "tokens.create",
        Some(&name),
        params,
        async {
            if !is_admin(&v) {
                return Err(not_admin());
            }
            let scopes = if scopes.is_empty() {
                vec!["query".to_string()]
            } else {
                scopes
            };
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let expires = f.expires.trim();
            let expires_in = if expires.is_empty() {
                None
            } else {
                Some(humantime::parse_duration(expires).map_err(|e| {
                    ApiError::invalid(format!(
                        "expires: `{expires}` is not a duration ({e}); write `90d` or `12h`, or \
                     leave it empty for a token that lasts until it is disabled"
                    ))
                })?)
            };
            let t = state
                .access
                .tokens
                .create(NewTokenRequest {
                    name: name.clone(),
                    owner: f.owner.trim().to_string(),
                    scopes: Scopes::new(scopes),
                    expires_in,
                    created_by: v.principal.actor(),
                })
                .await?;
            Ok(page(
                "admin_token_made.html",
                context! {
                    name => t.name.clone(),
                    secret => t.secret.clone(),
                    scopes => t.scopes.clone(),
                    owner => t.owner.clone(),
                    expires_at => t.expires_at.clone(),
                    ..frame(&state, &v, "admin")
                },
            ))
        },
    )
    .await
}

/// `POST /admin/tokens/{name}/disable`: its secret stops working at once (`tokens.disable`).
async fn disable_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Form(f): Form<super::CsrfForm>,
) -> Response {
    change(
        &state,
        &v,
        &f.csrf,
        "tokens.disable",
        Some(&name),
        json!({}),
        async {
            if !is_admin(&v) {
                return Err(not_admin());
            }
            state.access.tokens.disable(&name).await?;
            Ok(see_other("/admin/tokens"))
        },
    )
    .await
}

#[derive(Deserialize)]
struct AuditParams {
    actor: Option<String>,
    target: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
}

/// `GET /admin/audit?actor=&target=&action=&outcome=&since=`: the latest 100 records that
/// match, newest first (`actor` and `target` match a prefix when they end in `*`).
async fn audit_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<AuditParams>,
) -> Response {
    if !is_admin(&v) {
        return refused(&state);
    }
    let given = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (actor, target, action) = (given(p.actor), given(p.target), given(p.action));
    let (outcome_text, since) = (given(p.outcome), given(p.since));
    let mut problem = None;
    let outcome = match outcome_text.as_deref().map(Outcome::parse).transpose() {
        Ok(o) => o,
        Err(e) => {
            problem = Some(e.to_string());
            None
        }
    };
    let since_ms = match since
        .as_deref()
        .map(|s| kondate_access::parse_since(s, state.service.clock().now()))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            problem = Some(e.to_string());
            None
        }
    };
    let records = if problem.is_some() {
        Vec::new()
    } else {
        match state
            .access
            .audit
            .list(&AuditFilter {
                actor: actor.clone(),
                target: target.clone(),
                action: action.clone(),
                outcome,
                since_ms,
                limit: Some(AUDIT_ROWS),
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return server_error(&state, "reading the audit trail failed", e),
        }
    };
    let mut res = page(
        "admin_audit.html",
        context! {
            records => Serde(&records),
            actor, target, action, outcome => outcome_text, since,
            problem => problem.clone(),
            limit => AUDIT_ROWS,
            ..frame(&state, &v, "admin")
        },
    );
    if problem.is_some() {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    res
}
