//! kondate-web: the HTTP server — router, access control, the Queuery-compatible query
//! endpoints, signed object downloads for the local store, the labels, models, results,
//! runs and audit endpoints, `/healthz`, `/metrics` and the OpenAPI document. Handlers
//! translate HTTP to calls on the domain crates and back.

mod access;
mod api;
mod audit;
mod labels;
mod metrics;
mod models;
pub mod openapi;
mod results;
mod runs;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use kondate_access::{Access, ScopeKind};
use kondate_query::QueryService;
use kondate_store::Store;

pub use access::{Need, RouteDoc};
pub use metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<QueryService>,
    /// Users, tokens, the audit trail, authentication.
    pub access: Access,
    pub store: Store,
    /// Accept requests without credentials (`query.allow_anonymous`).
    pub allow_anonymous: bool,
    pub metrics: Arc<Metrics>,
    /// The project, whose `labels/` definitions are read per request (edits need no restart).
    pub project: kondate_core::Project,
    pub labels: kondate_labels::sync::Labels,
    pub models: kondate_models::Models,
    /// Recorded app runs and their logs.
    pub runs: kondate_apps::Runs,
    /// The service database, where result tables are written.
    pub service_db: kondate_db::Database,
}

/// Every route with what it needs: the router and the OpenAPI document are both made from
/// this one table.
fn routes(state: AppState) -> (Router<AppState>, Vec<RouteDoc>) {
    use Need::{Any, Every, Named, Public};
    use ScopeKind::*;
    access::Routes::new(state)
        .add("get", "/healthz", Public, None, get(api::healthz))
        .add("get", "/metrics", Public, None, get(metrics::render))
        .add(
            "get",
            "/v1/openapi.json",
            Public,
            None,
            get(openapi::document),
        )
        .add(
            "post",
            "/v1/queries",
            Any(Query),
            None,
            post(api::create_query),
        )
        .add(
            "get",
            "/v1/queries/{id}",
            Any(Query),
            None,
            get(api::show_query),
        )
        // Signed URLs: the signature is the credential.
        .add(
            "get",
            "/v1/objects/{*key}",
            Public,
            None,
            get(api::get_object),
        )
        .add(
            "get",
            "/v1/labels",
            Any(LabelsRead),
            None,
            get(labels::list),
        )
        .add(
            "get",
            "/v1/labels/{name}/revisions",
            Named(LabelsRead),
            None,
            get(labels::revisions),
        )
        .add(
            "get",
            "/v1/labels/{name}/revisions/{revision}/export",
            Named(LabelsRead),
            None,
            get(labels::export),
        )
        .add(
            "post",
            "/v1/labels/{name}/sync",
            Named(LabelsSync),
            Some("labels.sync"),
            post(labels::sync),
        )
        .add(
            "get",
            "/v1/models",
            Any(ModelsRead),
            None,
            get(models::list),
        )
        .add(
            "get",
            "/v1/models/{name}",
            Named(ModelsRead),
            None,
            get(models::versions),
        )
        .add(
            "post",
            "/v1/models/{name}/versions",
            Named(ModelsWrite),
            Some("models.push"),
            post(models::commit),
        )
        .add(
            "get",
            "/v1/models/{name}/versions/{selector}",
            Named(ModelsRead),
            None,
            get(models::show),
        )
        .add(
            "delete",
            "/v1/models/{name}/versions/{selector}",
            Named(ModelsDelete),
            Some("models.delete"),
            delete(models::delete),
        )
        .add(
            "put",
            "/v1/models/{name}/aliases/{alias}",
            Named(ModelsAlias),
            Some("models.alias.set"),
            put(models::set_alias),
        )
        .add(
            "delete",
            "/v1/models/{name}/aliases/{alias}",
            Named(ModelsAlias),
            Some("models.alias.remove"),
            delete(models::remove_alias),
        )
        .add(
            "get",
            "/v1/models/{name}/alias-history",
            Named(ModelsRead),
            None,
            get(models::alias_history),
        )
        .add(
            "post",
            "/v1/blobs/check",
            Any(ModelsWrite),
            None,
            post(models::check_blobs),
        )
        .add(
            "post",
            "/v1/blobs/gc",
            Every(ModelsDelete),
            Some("models.gc"),
            post(models::gc),
        )
        // Blob uploads are recorded with the push that commits them.
        .add(
            "get",
            "/v1/blobs/{digest}",
            Any(ModelsRead),
            None,
            get(models::get_blob),
        )
        .add(
            "put",
            "/v1/blobs/{digest}",
            Any(ModelsWrite),
            None,
            put(models::put_blob),
        )
        .add(
            "post",
            "/v1/results/{name}",
            Named(ResultsWrite),
            Some("results.write"),
            post(results::write),
        )
        .add("get", "/v1/runs", Any(RunsRead), None, get(runs::list))
        .add("get", "/v1/runs/{id}", Any(RunsRead), None, get(runs::show))
        .add(
            "get",
            "/v1/runs/{id}/logs",
            Any(RunsRead),
            None,
            get(runs::logs),
        )
        .add("get", "/v1/audit", Every(Admin), None, get(audit::list))
        .into_parts()
}

/// The table of routes and what each needs (for the OpenAPI document and its tests).
pub fn route_docs(state: AppState) -> Vec<RouteDoc> {
    routes(state).1
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let (router, docs) = routes(state.clone());
    router
        .fallback(api::not_found)
        .layer(axum::extract::Extension(openapi::Docs(Arc::new(docs))))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves; handlers see the client's
/// address (failed sign-ins are limited per address).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
