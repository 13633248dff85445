//! `kondate serve`

use crate::CmdResult;
use crate::services::Services;

pub async fn run(services: &Services) -> CmdResult {
    let project = &services.project;
    let addr = project
        .config
        .listen_addr()
        .map_err(|e| crate::Failure::invalid(e.to_string()))?;
    let state = services.app_state().await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}; is another server running there?"))?;
    tracing::info!(%addr, project = %project.root.display(), "kondate serving");
    eprintln!(
        "kondate serving on http://{addr} (project {})",
        project.root.display()
    );
    let queries = state.service.clone();
    let served = kondate_web::serve(listener, state, crate::cli::shutdown_signal()).await;
    // No new connections now; the queries this server runs get `server.drain_timeout` to
    // finish (still heartbeating), so that a rolling restart fails none that can finish.
    let deadline = project.config.server.drain_timeout;
    let left = queries.drain(deadline).await;
    if left > 0 {
        tracing::warn!(
            queries = left,
            ?deadline,
            "stopping with queries unfinished; the other processes will fail them"
        );
    }
    // Deregistered whatever happened, so that other processes need not wait out
    // `state.lost_after` before they fail what this one left unfinished.
    services.stop_process().await;
    served?;
    Ok(())
}
