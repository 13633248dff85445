//! kondate-web: the HTTP server — router, authentication, the Queuery-compatible query
//! endpoints, signed object downloads for the local store, `/healthz`, `/metrics` and the
//! OpenAPI document. Handlers translate HTTP to calls on the domain crates and back.

mod api;
mod labels;
mod metrics;
mod models;
pub mod openapi;
mod results;
mod runs;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use kondate_query::{QueryService, Tokens};
use kondate_store::Store;

pub use metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<QueryService>,
    pub tokens: Tokens,
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

/// The application's router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::render))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/queries", post(api::create_query))
        .route("/v1/queries/{id}", get(api::show_query))
        .route("/v1/objects/{*key}", get(api::get_object))
        .route("/v1/labels", get(labels::list))
        .route("/v1/labels/{name}/revisions", get(labels::revisions))
        .route(
            "/v1/labels/{name}/revisions/{revision}/export",
            get(labels::export),
        )
        .route("/v1/labels/{name}/sync", post(labels::sync))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{name}", get(models::versions))
        .route("/v1/models/{name}/versions", post(models::commit))
        .route(
            "/v1/models/{name}/versions/{selector}",
            get(models::show).delete(models::delete),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}",
            put(models::set_alias).delete(models::remove_alias),
        )
        .route(
            "/v1/models/{name}/alias-history",
            get(models::alias_history),
        )
        .route("/v1/results/{name}", post(results::write))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::show))
        .route("/v1/runs/{id}/logs", get(runs::logs))
        .route("/v1/blobs/check", post(models::check_blobs))
        .route("/v1/blobs/gc", post(models::gc))
        .route(
            "/v1/blobs/{digest}",
            get(models::get_blob).put(models::put_blob),
        )
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
