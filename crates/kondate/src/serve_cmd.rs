//! `kondate serve`

use std::sync::Arc;
use std::time::Duration;

use kondate_core::Project;
use kondate_web::{AppState, Metrics};

use crate::CmdResult;
use crate::output::query_failure;

/// Build the server's state from a project.
pub async fn state(project: &Project) -> Result<AppState, crate::Failure> {
    let opened = kondate_query::open(&project.config)
        .await
        .map_err(query_failure)?;
    let n = opened
        .service
        .recover_interrupted()
        .await
        .map_err(query_failure)?;
    if n > 0 {
        tracing::warn!(
            queries = n,
            "marked queries interrupted by the last shutdown as failed"
        );
    }
    tokio::spawn(opened.service.clone().run_sweeper(Duration::from_secs(60)));
    let labels = kondate_labels::sync::Labels::open(&project.config)
        .await
        .map_err(crate::Failure::from)?;
    let models = kondate_models::Models {
        labels: Some(labels.clone()),
        ..kondate_models::Models::new(opened.db.clone(), opened.store.clone())
    };
    let runs = kondate_apps::Runs::new(opened.db.clone(), opened.store.clone(), &project.root);
    let service_db = kondate_db::Database::connect(&project.config.service.url).await?;
    Ok(AppState {
        service_db,
        runs,
        access: kondate_access::Access::new(opened.db.clone(), Arc::new(kondate_core::SystemClock)),
        service: opened.service,
        store: opened.store,
        allow_anonymous: project.config.query.allow_anonymous,
        metrics: Arc::new(Metrics::default()),
        labels,
        models,
        project: project.clone(),
    })
}

/// Resolve when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

pub async fn run(mut project: Project, listen: Option<String>) -> CmdResult {
    if let Some(l) = listen {
        project.config.server.listen = l;
    }
    let addr = project
        .config
        .listen_addr()
        .map_err(|e| crate::Failure::invalid(e.to_string()))?;
    let state = state(&project).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}; is another server running there?"))?;
    tracing::info!(%addr, project = %project.root.display(), "kondate serving");
    eprintln!(
        "kondate serving on http://{addr} (project {})",
        project.root.display()
    );
    kondate_web::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}
