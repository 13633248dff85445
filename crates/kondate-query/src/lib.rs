//! kondate-query: the safe bulk query API's domain — the read-only SQL guard, `?`
//! placeholders, and the lifecycle of a query from submission to expiry.
//! HTTP lives in `kondate-web`; this crate knows nothing of it.

mod guard;
mod pglex;
mod placeholders;
pub mod processes;
mod service;

use std::sync::Arc;

use kondate_core::{Clock, Config, SystemClock};
use kondate_db::{Database, DbError};
use kondate_store::{Store, StoreError};
use kondate_warehouse::{Warehouse, WarehouseError};

pub use guard::check_read_only;
pub use service::{Asker, QueryRecord, QueryService, Status, SubmitRequest};

/// Errors of the query service; each maps to one HTTP status in `kondate-web`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is wrong: bad SQL, a refused statement, placeholder mismatch, bad name.
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "too many queries for this token: {running} may run at once and {queued} may wait; \
         retry when one of yours has finished"
    )]
    TooManyRequests { running: usize, queued: usize },
    /// This process is shutting down and takes no new queries.
    #[error(
        "this kondate server is shutting down and takes no new queries; submit to another \
         server (or again in a moment)"
    )]
    ShuttingDown,
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// Everything the query API needs, opened from a configuration.
#[derive(Debug, Clone)]
pub struct Opened {
    pub db: Database,
    pub store: Store,
    pub warehouse: Arc<dyn Warehouse>,
    pub service: Arc<QueryService>,
}

/// Open the state database (migrating it), the store, the warehouse and the service.
pub async fn open(config: &Config) -> Result<Opened, QueryError> {
    open_with_clock(config, Arc::new(SystemClock)).await
}

/// [`open`] with a given clock (tests move time).
pub async fn open_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Opened, QueryError> {
    let db = Database::connect(&config.state.url).await?;
    kondate_db::state::migrate(&db).await?;
    let store = Store::open(&config.store, &config.public_url())?;
    let warehouse = kondate_warehouse::open(config, &store).await?;
    let service = QueryService::new(
        db.clone(),
        store.clone(),
        warehouse.clone(),
        clock.clone(),
        config.query.clone(),
    );
    Ok(Opened {
        db,
        store,
        warehouse,
        service,
    })
}
