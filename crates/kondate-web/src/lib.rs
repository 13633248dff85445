//! kondate-web: the HTTP server — router, access control, the Queuery-compatible query
//! endpoints, signed object downloads for the local store, the labels, models, results,
//! runs and audit endpoints, `/healthz`, `/metrics` and the OpenAPI document. Handlers
//! translate HTTP to calls on the domain crates and back.

mod access;
mod api;
mod audit;
mod body;
mod catalog;
mod connection;
pub mod console;
mod host;
mod jobs;
mod labels;
mod metrics;
mod models;
mod openapi;
mod processes;
mod results;
mod runs;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use kondate_access::{Access, ScopeKind};
use kondate_query::QueryService;
use kondate_store::Store;

pub use access::{Need, RouteDoc, body_limit};
pub use console::OidcProvider;
pub use metrics::Metrics;
pub use openapi::written_operations;

/// What every handler can reach: a cheap handle (one `Arc`), cloned for every request.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of the server's state.
pub struct AppParts {
    pub service: Arc<QueryService>,
    /// Users, tokens, the audit trail, authentication.
    pub access: Access,
    pub store: Store,
    /// Accept requests without credentials (`query.allow_anonymous`).
    pub allow_anonymous: bool,
    pub metrics: Arc<Metrics>,
    /// The project, whose `labels/` definitions are read per request (edits need no restart).
    pub project: kondate_core::Project,
    pub labels: kondate_labels::Labels,
    pub models: kondate_models::Models,
    /// Recorded app runs and their logs.
    pub runs: kondate_apps::Runs,
    /// The result tables (on the service database).
    pub results: kondate_results::Results,
    /// The scheduler's jobs and instances, and the executor that acts on instances.
    pub jobs: kondate_jobs::Scheduler,
    pub executor: kondate_jobs::Executor,
    /// The catalog (on the state database), and the search index kept between searches.
    pub catalog: kondate_catalog::Catalog,
    pub catalog_search: kondate_catalog::SearchCache,
    /// Brings a table's catalog page up to date after a write through the API (None: the
    /// pages wait for the next `catalog sync`).
    pub after_write: Option<Arc<dyn kondate_catalog::AfterWrite>>,
    /// The code of the console's local sign-in (`/signin/local?code=`), which `kondate
    /// serve` prints; None: no local sign-in. Used only while the server listens on
    /// loopback.
    pub local_signin: Option<String>,
    /// Sign-in through an OpenID Connect provider (`[console.oidc]`), if configured.
    pub oidc: Option<OidcProvider>,
}

/// Every route with what it needs: the router and the OpenAPI document are both made from
/// this one table.
fn routes(state: AppState) -> (Router<AppState>, Vec<RouteDoc>) {
    use Need::{Any, Every, Named, Public};
    use ScopeKind::*;
    access::Routes::new(state)
        .add("get", "/healthz", Public, None, get(api::healthz))
        .add("get", "/readyz", Public, None, get(api::readyz))
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
        .add("get", "/v1/jobs", Any(JobsRead), None, get(jobs::list))
        .add(
            "get",
            "/v1/jobs/{name}",
            Named(JobsRead),
            None,
            get(jobs::show),
        )
        .add(
            "get",
            "/v1/jobs/{name}/instances",
            Named(JobsRead),
            None,
            get(jobs::instances),
        )
        .add(
            "post",
            "/v1/jobs/{name}/instances",
            Named(JobsLaunch),
            Some("jobs.launch"),
            post(jobs::launch),
        )
        .add(
            "post",
            "/v1/jobs/{name}/suspend",
            Named(JobsRead),
            Some("jobs.suspend"),
            post(jobs::suspend),
        )
        .add(
            "post",
            "/v1/jobs/{name}/resume",
            Named(JobsRead),
            Some("jobs.resume"),
            post(jobs::resume),
        )
        .add(
            "get",
            "/v1/instances/{id}",
            Any(JobsRead),
            None,
            get(jobs::instance),
        )
        .add(
            "get",
            "/v1/instances/{id}/logs",
            Any(JobsRead),
            None,
            get(jobs::logs),
        )
        .add(
            "post",
            "/v1/instances/{id}/retry",
            Any(JobsRead),
            Some("jobs.retry"),
            post(jobs::retry),
        )
        .add(
            "post",
            "/v1/instances/{id}/skip",
            Any(JobsRead),
            Some("jobs.skip"),
            post(jobs::skip),
        )
        .add(
            "post",
            "/v1/instances/{id}/cancel",
            Any(JobsRead),
            Some("jobs.cancel"),
            post(jobs::cancel),
        )
        .add(
            "get",
            "/v1/catalog/search",
            Any(Query),
            None,
            get(catalog::search),
        )
        .add(
            "get",
            "/v1/catalog/resolve",
            Any(Query),
            None,
            get(catalog::resolve),
        )
        .add(
            "get",
            "/v1/catalog/syncs",
            Any(Query),
            None,
            get(catalog::syncs),
        )
        .add(
            "get",
            "/v1/catalog/objects/{*key}",
            Any(Query),
            None,
            get(catalog::object),
        )
        // The scope is checked on the object's full name once the key is read.
        .add(
            "delete",
            "/v1/catalog/objects/{*key}",
            Any(CatalogEdit),
            Some("catalog.delete"),
            delete(catalog::delete_object),
        )
        .add(
            "get",
            "/v1/catalog/history/{*key}",
            Any(Query),
            None,
            get(catalog::history),
        )
        // The edit's scope is checked on the object's full name once the key is read.
        .add(
            "get",
            "/v1/catalog/descriptions/{*key}",
            Any(Query),
            None,
            get(catalog::description),
        )
        .add(
            "put",
            "/v1/catalog/descriptions/{*key}",
            Any(CatalogEdit),
            Some("catalog.describe"),
            put(catalog::describe),
        )
        .add(
            "get",
            "/v1/catalog/lineage",
            Any(Query),
            None,
            get(catalog::lineage),
        )
        .add(
            "get",
            "/v1/catalog/models/{name}",
            Named(ModelsRead),
            None,
            get(catalog::model),
        )
        .add(
            "get",
            "/v1/catalog/favourites",
            Any(Query),
            None,
            get(catalog::favourites),
        )
        .add(
            "put",
            "/v1/catalog/favourites/{*key}",
            Any(Query),
            Some("catalog.favourite.add"),
            put(catalog::set_favourite),
        )
        .add(
            "delete",
            "/v1/catalog/favourites/{*key}",
            Any(Query),
            Some("catalog.favourite.remove"),
            delete(catalog::set_favourite),
        )
        .add("get", "/v1/audit", Every(Admin), None, get(audit::list))
        .add(
            "get",
            "/v1/processes",
            Every(Admin),
            None,
            get(processes::list),
        )
        .into_parts()
}

/// The table of routes and what each needs (for the OpenAPI document and its tests).
pub fn route_docs(state: AppState) -> Vec<RouteDoc> {
    routes(state).1
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let hosts = host::AllowedHosts::from_config(&state.project.config);
    let (router, docs) = routes(state.clone());
    router
        .merge(console::routes())
        .fallback(api::not_found)
        // Every route has its own limit, applied with the access rules (`access::body_limit`).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::extract::Extension(openapi::Docs(Arc::new(docs))))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        // Outermost: a request for another name is refused before anything else.
        .layer(axum::middleware::from_fn_with_state(hosts, host::check))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves, then let requests in flight
/// finish. Handlers see the client's address (failed sign-ins are limited per address).
///
/// Written on hyper's HTTP/1 connection builder rather than `axum::serve`, which enforces no
/// timeout at all: a connection with no request in flight for `server.header_timeout` — a
/// client sending its headers slowly, or holding a keep-alive connection open doing
/// nothing — is closed by a watchdog of its own ([`connection::Activity`]). Hyper's own
/// `header_read_timeout` does the same but re-arms a timer on every request, which halved
/// the requests per second of small requests (docs/BENCHMARKS.md).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;

    let header_timeout = state.project.config.server.header_timeout;
    let local = listener.local_addr()?;
    if state.allow_anonymous && !local.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "query.allow_anonymous is only allowed on a loopback address, and this server \
                 listens on {local}"
            ),
        ));
    }
    let app = router(state);
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let activity = connection::Activity::new();
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                    let in_flight = activity.begin();
                    req.extensions_mut().insert(ConnectInfo(addr));
                    let response = app.clone().oneshot(req.map(axum::body::Body::new));
                    async move {
                        let response = response.await?;
                        Ok::<_, std::convert::Infallible>(connection::track(response, in_flight))
                    }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut watchdog = tokio::time::interval(connection::check_every(header_timeout));
            watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(client = %addr, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = closing.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                        break;
                    }
                    _ = watchdog.tick() => {
                        if activity.idle_for() >= header_timeout {
                            tracing::debug!(client = %addr, "closing a connection idle past server.header_timeout");
                            // Finished at once when idle; one still sending headers is dropped.
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_millis(200),
                                conn.as_mut(),
                            )
                            .await;
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
