//! The scheduler and worker loops that `kondate serve` and `kondate worker` run: reading
//! `jobs/` into the scheduler's state, launching due slots on the clock, sweeping steps
//! whose worker is gone, and taking steps to run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kondate_core::Clock;
use kondate_core::config::Config;
use kondate_jobs::{Executor, Loaded, Scheduler, WorkerConfig, definition};
use tokio::sync::watch;

/// [`definition::load_project`] for the scheduler: each loaded, or its error (which keeps the job on
/// its last good revision).
pub fn read_definitions(root: &Path, config: &Config) -> Vec<Loaded> {
    match definition::load_project(root, config) {
        Ok(all) => all
            .into_iter()
            .map(|(name, d)| match d {
                Ok(d) => Loaded::Ok(Box::new(d)),
                Err(e) => Loaded::Failed {
                    name,
                    error: e.to_string(),
                },
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the jobs folder");
            Vec::new()
        }
    }
}

/// Load the project's definitions into the scheduler's state, logging what changed and,
/// loudly, what failed.
pub async fn reload(
    scheduler: &Scheduler,
    root: &Path,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), kondate_jobs::JobsError> {
    let loaded = read_definitions(root, config);
    let report = scheduler.load(&loaded, clock.now()).await?;
    for (job, revision) in &report.revised {
        tracing::info!(%job, revision, "job definition loaded");
    }
    for (job, revision, error) in &report.failed {
        match revision {
            Some(r) => tracing::error!(%job, revision = r, %error,
                "job definition failed to load; its last good revision keeps running"),
            None => tracing::error!(%job, %error,
                "job definition failed to load; the job is not scheduled until it loads"),
        }
    }
    for job in &report.removed {
        tracing::warn!(%job, "job definition removed; the job is no longer scheduled");
    }
    Ok(())
}

/// Sleep `d`, or less if `stop` turns true; true when stopping.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// How often the built-in retention job runs (once across all schedulers).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// What the scheduler needs to run.
pub struct SchedulerLoop {
    pub scheduler: Scheduler,
    pub executor: Executor,
    pub root: std::path::PathBuf,
    /// The configuration the built-in jobs come from.
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// The clock slots are due by: `clock`, unless a test runs the scheduler fast
    /// ([`slot_clock`]).
    pub slot_clock: Arc<dyn Clock>,
    pub jobs: kondate_core::config::JobsSection,
    pub lost_after: Duration,
    /// Sends the notifications of what happens (None: none are sent).
    pub notifier: Option<kondate_jobs::Notifier>,
    /// Woken after a pass launched something: this process's idle workers look for steps
    /// at once rather than at their next poll.
    pub wake: Arc<tokio::sync::Notify>,
}

/// The scheduler's clock for slots: `clock`, or the fast one kondate's tests ask for with
/// `KONDATE_TEST_SCHEDULER_CLOCK=START@RATE` (refused loudly when malformed).
pub fn slot_clock(clock: Arc<dyn Clock>) -> Arc<dyn Clock> {
    use kondate_core::clock::{SCHEDULER_CLOCK_VAR, ScaledClock};
    match std::env::var(SCHEDULER_CLOCK_VAR) {
        Ok(v) => match ScaledClock::parse(&v) {
            Some(c) => {
                tracing::warn!(clock = %v, "the scheduler runs on a test clock");
                Arc::new(c)
            }
            None => {
                tracing::error!(value = %v, "{SCHEDULER_CLOCK_VAR} is not START@RATE; ignored");
                clock
            }
        },
        Err(_) => clock,
    }
}

/// One round of notifications: long runs and reminders noticed, new events made into
/// notices, the due ones sent. A failure is logged, never the scheduler's.
pub async fn notify_round(notifier: &kondate_jobs::Notifier, clock: &dyn Clock) {
    if let Err(e) = notifier.watch(clock.now()).await {
        tracing::warn!(error = %e, "could not look for long-running and failing instances");
    }
    if let Err(e) = notifier.enqueue(clock.now()).await {
        tracing::warn!(error = %e, "could not record notifications; will retry");
    }
    match notifier.deliver(clock.now()).await {
        Ok(r) if r.sent + r.retrying + r.failed > 0 => {
            tracing::info!(
                sent = r.sent,
                retrying = r.retrying,
                failed = r.failed,
                "notifications"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not send notifications; will retry"),
    }
}

impl SchedulerLoop {
    /// Pass after pass until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        // Notices are sent beside the passes, not in them: a slow endpoint must not delay
        // a launch.
        let notifying = self.notifier.clone().map(|n| {
            let (clock, poll, mut stop) = (self.clock.clone(), self.jobs.poll, stop.clone());
            tokio::spawn(async move {
                loop {
                    notify_round(&n, &*clock).await;
                    if pause(&mut stop, poll).await {
                        break;
                    }
                }
            })
        });
        let mut reloaded: Option<tokio::time::Instant> = None;
        let grace = chrono::Duration::from_std(self.jobs.grace).unwrap_or_default();
        loop {
            if reloaded.is_none_or(|t| t.elapsed() >= self.jobs.reload) {
                if let Err(e) =
                    reload(&self.scheduler, &self.root, &self.config, &*self.clock).await
                {
                    tracing::warn!(error = %e, "could not load the job definitions; will retry");
                } else {
                    reloaded = Some(tokio::time::Instant::now());
                }
            }
            let mut next_due = None;
            match self.scheduler.pass(self.slot_clock.now(), grace).await {
                Ok(report) => {
                    next_due = report.next_due;
                    for (job, slot, id) in &report.launched {
                        tracing::info!(%job, %slot, instance = id, "launched");
                        if let Err(e) = self.executor.advance(*id, self.clock.now()).await {
                            tracing::warn!(instance = id, error = %e, "could not start the instance; a worker's pass will");
                        }
                    }
                    for (job, event, id) in &report.triggered {
                        tracing::info!(%job, event, instance = id, "launched by a trigger");
                        if let Err(e) = self.executor.advance(*id, self.clock.now()).await {
                            tracing::warn!(instance = id, error = %e, "could not start the instance; a worker's pass will");
                        }
                    }
                    if !report.launched.is_empty() || !report.triggered.is_empty() {
                        self.wake.notify_waiters();
                    }
                    for (job, slot) in &report.prevented {
                        tracing::info!(%job, %slot, "not launched: an instance is still working or failed (prevent_multi)");
                    }
                    if report.missed > 0 {
                        tracing::warn!(
                            slots = report.missed,
                            "slots passed without a launch (catch-up)"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduling pass failed; will retry"),
            }
            match self
                .executor
                .prune(self.clock.now(), self.jobs.retention, RETENTION_EVERY)
                .await
            {
                Ok(Some(r)) => tracing::info!(
                    instances = r.instances,
                    steps = r.steps,
                    logs = r.logs,
                    notifications = r.notifications,
                    events = r.events,
                    "removed jobs' records older than jobs.retention"
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove old jobs' records; will retry")
                }
            }
            match self
                .executor
                .release_lost(self.clock.now(), self.lost_after)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::error!(steps = n, "steps failed: their worker is gone"),
                Err(e) => tracing::warn!(error = %e, "could not look for lost workers"),
            }
            // Until the next pass has work — a slot falls due — but at least once a poll
            // (triggers, retries, lost workers): a slot launches within milliseconds of its
            // time, not up to a poll late.
            let until_due = next_due
                .and_then(|d| (d - self.slot_clock.now()).to_std().ok())
                .map(|d| d + Duration::from_millis(5))
                .unwrap_or(self.jobs.poll);
            if pause(&mut stop, until_due.min(self.jobs.poll)).await {
                break;
            }
        }
        if let Some(task) = notifying {
            let _ = task.await;
        }
    }
}

/// Take steps and run them until `stop` (a step running then runs to its end), or, with
/// `until_idle`, until none is left to take. Whenever it finds nothing to take, it also
/// fails the steps of workers that are gone (past `lost_after`), as the scheduler does, so
/// that a deployment of workers alone leaves nothing WORKING forever. Returns how many
/// steps it ran.
pub struct WorkerLoop {
    pub executor: Executor,
    pub cfg: WorkerConfig,
    pub clock: Arc<dyn Clock>,
    pub poll: Duration,
    pub lost_after: Duration,
    pub until_idle: bool,
    /// Woken by this process's scheduler when it launched something.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

impl WorkerLoop {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> usize {
        let WorkerLoop {
            executor,
            cfg,
            clock,
            poll,
            lost_after,
            until_idle,
            wake,
        } = self;
        // An idle worker asks for a step once per poll: a few statements a second at most for
        // a fleet of idle processes (docs/BENCHMARKS.md's idle cost).
        let idle_wait = poll;
        let mut ran = 0;
        let mut swept: Option<tokio::time::Instant> = None;
        // On PostgreSQL an idle worker is woken as soon as a step waits, wherever it was
        // launched; elsewhere (and while the listening connection is down) it polls.
        let db = executor.database().clone();
        let mut listener = None;
        let mut listen_tried: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if !until_idle
                && db.can_wake()
                && listener.is_none()
                && listen_tried.is_none_or(|t| t.elapsed() >= poll)
            {
                listen_tried = Some(tokio::time::Instant::now());
                match db.listen(kondate_jobs::executor::STEPS_CHANNEL).await {
                    Ok(l) => {
                        listener = l;
                        tracing::info!(worker = %cfg.worker, "listening for waiting steps");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for waiting steps; polling")
                    }
                }
            }
            if swept.is_none_or(|t| t.elapsed() >= poll) {
                swept = Some(tokio::time::Instant::now());
                match executor.release_lost(clock.now(), lost_after).await {
                    Ok(0) => {}
                    Ok(n) => tracing::error!(steps = n, "steps failed: their worker is gone"),
                    Err(e) => tracing::warn!(error = %e, "could not look for lost workers"),
                }
            }
            match executor.work_once(&cfg, &*clock).await {
                Ok(true) => {
                    ran += 1;
                    continue;
                }
                Ok(false) if until_idle => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(worker = %cfg.worker, error = %e, "step failed to run; will retry")
                }
            }
            let woken = async {
                match &wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            tracing::debug!(worker = %cfg.worker, listening = listener.is_some(), "idle: waiting for a step");
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await,
                    None => std::future::pending().await,
                }
            };
            let mut lost = None;
            tokio::select! {
                stopping = pause(&mut stop, idle_wait) => if stopping { break },
                _ = woken => {}
                r = notified => lost = r.err(),
            }
            if let Some(e) = lost {
                tracing::warn!(error = %e, "lost the connection listening for waiting steps; polling");
                listener = None;
            }
        }
        ran
    }
}
