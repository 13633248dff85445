//! Who may call what: every route is registered once, here, with the scope it needs and,
//! for changes, the action it is audited as. One middleware authenticates the caller,
//! checks the scope against the name in the path, records refusals and changes in the
//! audit trail, and hands the handler a [`Caller`]. Handlers never authenticate by hand,
//! and the OpenAPI document is generated from the same table.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use base64::Engine;
use kondate_access::{AccessError, AuditEntry, Outcome, Principal, ScopeKind, Source};
use serde_json::json;

use crate::AppState;
use crate::api::ApiError;

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: health, metrics, this document, signed downloads (the signature is the
    /// credential).
    Public,
    /// The scope on the name the path names (`{name}`, or `{name}@{alias}` for aliases).
    Named(ScopeKind),
    /// The scope on any names: the handler shows only what the caller may see, or checks
    /// the name once it knows it (a run's app).
    Any(ScopeKind),
    /// The scope on every name (gc, the audit trail).
    Every(ScopeKind),
}

impl Need {
    /// As the OpenAPI document says it.
    pub fn describe(self) -> String {
        match self {
            Need::Public => "none".into(),
            Need::Named(k) => format!("{k} on the name in the path"),
            Need::Any(k) => format!("{k} (what is shown is narrowed to the names it allows)"),
            Need::Every(k) => format!("{k} on every name"),
        }
    }

    /// The scope, if any.
    pub fn scope(self) -> Option<ScopeKind> {
        match self {
            Need::Public => None,
            Need::Named(k) | Need::Any(k) | Need::Every(k) => Some(k),
        }
    }
}

/// One route as registered.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// Lower-case, as OpenAPI writes it.
    pub method: &'static str,
    /// As OpenAPI writes it (`{*key}` as `{key}`).
    pub path: &'static str,
    pub need: Need,
    /// For changes: the action the audit trail records (`models.alias.set`).
    pub action: Option<&'static str>,
    /// The largest body it takes, in bytes ([`body_limit`]).
    pub body_limit: u64,
}

/// Bodies of reads and small JSON requests.
const SMALL: u64 = 64 << 10;
/// A query (SQL text and values).
const QUERY: u64 = 1 << 20;
/// A model commit or blob check: up to 100,000 files of path, digest and size.
const FILE_LIST: u64 = 64 << 20;

/// The largest body a route takes: a streamed upload (model files, result rows) up to
/// `max_upload`, a file list up to 64 MiB, a query up to 1 MiB, anything else 64 KiB.
pub fn body_limit(method: &str, path: &str, max_upload: u64) -> u64 {
    match (method, path) {
        ("put", "/v1/blobs/{digest}") | ("post", "/v1/results/{name}") => max_upload,
        ("post", "/v1/models/{name}/versions") | ("post", "/v1/blobs/check") => FILE_LIST,
        ("post", "/v1/queries") => QUERY,
        _ => SMALL,
    }
}

/// The router being built and the table of what it serves.
pub(crate) struct Routes {
    router: Router<AppState>,
    state: AppState,
    pub docs: Vec<RouteDoc>,
}

#[derive(Clone)]
struct RouteCtx {
    state: AppState,
    doc: RouteDoc,
}

impl Routes {
    pub fn new(state: AppState) -> Routes {
        Routes {
            router: Router::new(),
            state,
            docs: Vec::new(),
        }
    }

    /// Register `handler` for `method path` needing `need`, audited as `action` if given.
    pub fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        need: Need,
        action: Option<&'static str>,
        handler: MethodRouter<AppState>,
    ) -> Routes {
        let doc_path: &'static str = if path.contains("{*") {
            // `/v1/objects/{*key}` is `/v1/objects/{key}` in OpenAPI.
            Box::leak(path.replace("{*", "{").into_boxed_str())
        } else {
            path
        };
        let max_upload = self.state.project.config.server.max_upload;
        let doc = RouteDoc {
            method,
            path: doc_path,
            need,
            action,
            body_limit: body_limit(method, doc_path, max_upload),
        };
        let ctx = RouteCtx {
            state: self.state.clone(),
            doc,
        };
        self.docs.push(doc);
        self.router = self.router.route(
            path,
            handler.route_layer(axum::middleware::from_fn_with_state(ctx, check)),
        );
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteDoc>) {
        (self.router, self.docs)
    }
}

/// The authenticated caller, for handlers.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::internal("this route was registered without an access rule (a bug)")
            })
    }
}

/// Parameters a handler adds to its audit record (never secrets).
#[derive(Debug, Clone)]
pub struct AuditParams(pub serde_json::Value);

/// `resp` with `params` for the audit record.
pub fn audited(mut resp: Response, params: serde_json::Value) -> Response {
    resp.extensions_mut().insert(AuditParams(params));
    resp
}

fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// `token:NAME` from the Authorization header, whatever its secret; for refusals.
fn claimed_actor(headers: &HeaderMap) -> String {
    basic_credentials(headers)
        .map(|(t, _)| format!("token:{t}"))
        .unwrap_or_else(|| "anonymous".into())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(t, p)| (t.to_string(), p.to_string()))
        })
}

/// Who sent `headers`: a token, or an anonymous caller where that is allowed.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Principal, AccessError> {
    if headers.get(header::AUTHORIZATION).is_none() {
        if state.allow_anonymous {
            return Ok(Principal::anonymous());
        }
        return Err(AccessError::Unauthorized);
    }
    let (token, secret) = basic_credentials(headers).ok_or(AccessError::Unauthorized)?;
    state.access.authenticate(&token, &secret, client).await
}

/// The name a `Named` rule checks: `{name}`, or `{name}@{alias}`.
fn target(params: &RawPathParams) -> Option<String> {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let name = get("name")?;
    Some(match get("alias") {
        Some(alias) => format!("{name}@{alias}"),
        None => name,
    })
}

fn check_need(p: &Principal, need: Need, target: Option<&str>) -> Result<(), AccessError> {
    match need {
        Need::Public => Ok(()),
        Need::Named(k) => p.require(k, target),
        Need::Any(k) if p.has_kind(k) => Ok(()),
        Need::Any(k) | Need::Every(k) => p.require_every(k),
    }
}

async fn check(State(ctx): State<RouteCtx>, req: Request, next: Next) -> Response {
    let doc = ctx.doc;
    // Every body is limited and timed, the public routes' too.
    let (mut parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > doc.body_limit
    {
        return crate::body::too_large(doc.body_limit, Some(len)).into_response();
    }
    let timeout = ctx.state.project.config.server.body_timeout;
    let body = crate::body::guarded(body, doc.body_limit, timeout);
    parts
        .extensions
        .insert(crate::body::BodyLimit(doc.body_limit));
    let req = Request::from_parts(parts, body);
    if doc.need == Need::Public {
        return next.run(req).await;
    }
    let client = client_ip(&req);
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let target = params.as_ref().and_then(target);
    let entry = |actor: &str, outcome: Outcome, status: StatusCode, detail: Option<String>| {
        // A read has no action name: it is recorded (when refused) as its route.
        let action = match doc.action {
            Some(a) => a.to_string(),
            None => format!("{} {}", doc.method.to_uppercase(), doc.path),
        };
        let mut e = AuditEntry::new(Source::Api, actor, &action, target.as_deref());
        e.params = json!({"method": doc.method.to_uppercase(), "route": doc.path});
        e.outcome = outcome;
        e.status = Some(status.as_u16() as i64);
        e.client = client.map(|c| c.to_string());
        e.detail = detail;
        e
    };
    let principal = match authenticate(&ctx.state, &parts.headers, client).await {
        Ok(p) => p,
        Err(e) => {
            let err = ApiError::from(e);
            let status = err.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS {
                let actor = claimed_actor(&parts.headers);
                let detail = Some(err.message().to_string());
                ctx.state
                    .access
                    .audit
                    .record_or_log(entry(&actor, Outcome::Unauthorized, status, detail))
                    .await;
            }
            return err.into_response();
        }
    };
    if let Err(e) = check_need(&principal, doc.need, target.as_deref()) {
        let err = ApiError::from(e);
        let detail = Some(err.message().to_string());
        ctx.state
            .access
            .audit
            .record_or_log(entry(
                &principal.actor(),
                Outcome::Denied,
                err.status(),
                detail,
            ))
            .await;
        return err.into_response();
    }
    let actor = principal.actor();
    parts.extensions.insert(principal);
    let resp = next.run(Request::from_parts(parts, body)).await;
    let status = resp.status();
    // Changes are recorded however they end; reads only when the handler refused them (a
    // run of an app the caller may not read).
    if doc.action.is_some() || status == StatusCode::FORBIDDEN {
        let mut e = entry(&actor, Outcome::from_status(status.as_u16()), status, None);
        if let Some(AuditParams(extra)) = resp.extensions().get::<AuditParams>()
            && let (Some(base), Some(extra)) = (e.params.as_object_mut(), extra.as_object())
        {
            base.extend(extra.clone());
        }
        if let Some(err) = resp.extensions().get::<crate::api::ErrorMessage>() {
            e.detail = Some(err.0.clone());
        }
        ctx.state.access.audit.record_or_log(e).await;
    }
    resp
}
