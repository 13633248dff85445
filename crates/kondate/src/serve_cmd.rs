//! `kondate serve`

use crate::CmdResult;
use crate::services::Services;

pub async fn run(services: &std::sync::Arc<Services>) -> CmdResult {
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
    eprintln!(
        "{}",
        console_banner(
            &addr.to_string(),
            state.local_signin.as_deref(),
            state.oidc.as_ref().map(|o| o.config.name.as_str()),
        )
    );
    let queries = state.service.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let jobs = start_jobs(services, &stopped).await?;
    let served = kondate_web::serve(listener, state, crate::cli::shutdown_signal()).await;
    // The scheduler stops; each worker finishes the step it runs.
    let _ = stop.send(true);
    for task in jobs {
        let _ = task.await;
    }
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

/// How to open the console: its address and, on a loopback-only server, the local
/// administrator's sign-in link (a new one each time the server starts).
pub fn console_banner(addr: &str, code: Option<&str>, oidc: Option<&str>) -> String {
    let local = match code {
        Some(code) => format!(
            "console: http://{addr}/ — sign in as the local administrator with \
             http://{addr}/signin/local?code={code} (this server listens on loopback only)"
        ),
        None => format!(
            "console: http://{addr}/ (local sign-in is off: the server does not listen on \
             loopback only)"
        ),
    };
    match oidc {
        Some(name) => format!("{local}; or sign in with {name} on its sign-in page"),
        None => local,
    }
}

/// The scheduler (`jobs.scheduler`) and `jobs.workers` workers on the `default` queue.
async fn start_jobs(
    services: &std::sync::Arc<Services>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, crate::Failure> {
    let cfg = &services.project.config;
    let mut tasks = Vec::new();
    if !cfg.jobs.scheduler && cfg.jobs.workers == 0 {
        return Ok(tasks);
    }
    let (scheduler, executor) = services.working_jobs().await?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    if cfg.jobs.scheduler {
        let run = crate::jobs_loop::SchedulerLoop {
            scheduler,
            executor: executor.clone(),
            root: services.project.root.clone(),
            config: services.project.config.clone(),
            clock: services.clock.clone(),
            slot_clock: crate::jobs_loop::slot_clock(services.clock.clone()),
            jobs: cfg.jobs.clone(),
            lost_after: cfg.state.lost_after,
            notifier: Some(services.notifier().await?),
            wake: wake.clone(),
        };
        tasks.push(tokio::spawn(run.run(stop.clone())));
    }
    for _ in 0..cfg.jobs.workers {
        let worker = services
            .worker_config(vec![kondate_jobs::engine::DEFAULT_QUEUE.to_string()])
            .await?;
        let looping = crate::jobs_loop::WorkerLoop {
            executor: executor.clone(),
            cfg: worker,
            clock: services.clock.clone(),
            poll: cfg.jobs.poll,
            lost_after: cfg.state.lost_after,
            until_idle: false,
            wake: Some(wake.clone()),
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            looping.run(stop).await;
        }));
    }
    Ok(tasks)
}
