//! The one place the binary assembles its parts from a project: the state and service
//! databases, the store, the warehouse, access control, and the services of each part of
//! the flow built on them. Each is opened at most once per process, when a command first
//! needs it (a `tokens list` opens no warehouse); commands and the server take what they
//! need from here and wire nothing themselves.

use std::sync::Arc;
use std::time::Duration;

use kondate_access::Access;
use kondate_core::{Clock, Project, SystemClock};
use kondate_db::Database;
use kondate_query::QueryService;
use kondate_store::Store;
use kondate_warehouse::Warehouse;
use tokio::sync::OnceCell;

use crate::Failure;

/// The project's parts, opened on first use.
pub struct Services {
    pub project: Project,
    pub clock: Arc<dyn Clock>,
    state: OnceCell<Database>,
    service: OnceCell<Database>,
    store: OnceCell<Store>,
    warehouse: OnceCell<Arc<dyn Warehouse>>,
    access: OnceCell<Access>,
    process: OnceCell<kondate_db::processes::Process>,
    /// Set when this process deregisters: its heartbeat then stops without a word (a beat
    /// already on its way finds the process stopped, which is no fault then).
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Services {
    pub fn new(project: Project) -> Services {
        Services {
            project,
            clock: Arc::new(SystemClock),
            state: OnceCell::new(),
            service: OnceCell::new(),
            store: OnceCell::new(),
            warehouse: OnceCell::new(),
            access: OnceCell::new(),
            process: OnceCell::new(),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// This process, registered in the state database and heartbeating every
    /// `state.heartbeat` from then on, so that other processes sharing the database leave
    /// the work it owns alone while it lives ([`kondate_db::processes`]).
    pub async fn process(&self) -> Result<&kondate_db::processes::Process, Failure> {
        let db = self.state_db().await?;
        self.process
            .get_or_try_init(|| async {
                let command = command_path(std::env::args().skip(1));
                let now = self.clock.now().timestamp_millis();
                let p = kondate_db::processes::register(
                    db,
                    &command,
                    env!("CARGO_PKG_VERSION"),
                    now,
                )
                .await?;
                let (db, clock, id) = (db.clone(), self.clock.clone(), p.id.clone());
                let stopping = self.stopping.clone();
                let every = self.project.config.state.heartbeat.max(Duration::from_millis(100));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        let now = clock.now().timestamp_millis();
                        match kondate_db::processes::heartbeat(&db, &id, now).await {
                            Ok(true) => {}
                            Ok(false) if stopping.load(std::sync::atomic::Ordering::SeqCst) => {
                                break;
                            }
                            Ok(false) => {
                                tracing::error!(process = %id, "this process is recorded as stopped; other processes may fail its queries");
                            }
                            Err(e) => {
                                tracing::warn!(process = %id, error = %e, "heartbeat failed; will retry");
                            }
                        }
                    }
                });
                Ok::<_, Failure>(p)
            })
            .await
    }

    /// Record that this process starts `kind` (`labels sync`, …) on `target`, so that
    /// `kondate processes` shows it and another process waiting for the same can say for
    /// whom; the record goes when the guard is dropped. Also returns who else is doing the
    /// same now (other processes, each described), whom this one may have to wait for.
    pub async fn begin_work(
        &self,
        kind: &str,
        target: &str,
    ) -> Result<(kondate_db::processes::WorkGuard, Vec<String>), Failure> {
        let db = self.state_db().await?;
        let me = self.process().await?.id.clone();
        let now = self.clock.now().timestamp_millis();
        let lost_after = self.project.config.state.lost_after;
        let others = kondate_db::processes::work_on(db, kind, target, &me)
            .await?
            .into_iter()
            .filter(|(w, p)| {
                kondate_db::processes::gone_reason(&w.process, p.as_ref(), now, lost_after)
                    .is_none()
            })
            .map(|(w, p)| {
                let who = p.map_or_else(|| w.process.clone(), |p| p.describe());
                format!("{who}, doing {}", w.describe())
            })
            .collect();
        let guard = kondate_db::processes::begin_work(db, &me, kind, target, now).await?;
        Ok((guard, others))
    }

    /// Record this process as stopped (a clean shutdown), if it registered.
    pub async fn stop_process(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let (Some(p), Some(db)) = (self.process.get(), self.state.get()) {
            let now = self.clock.now().timestamp_millis();
            if let Err(e) = kondate_db::processes::stop(db, &p.id, now).await {
                tracing::warn!(process = %p.id, error = %e, "could not record this process as stopped");
            }
        }
    }

    /// The state database, migrated.
    pub async fn state_db(&self) -> Result<&Database, Failure> {
        self.state
            .get_or_try_init(|| async {
                let db = Database::connect(&self.project.config.state.url).await?;
                kondate_db::state::migrate(&db).await?;
                Ok::<_, Failure>(db)
            })
            .await
    }

    /// The service database (the product's own).
    pub async fn service_db(&self) -> Result<&Database, Failure> {
        self.service
            .get_or_try_init(|| async {
                Ok::<_, Failure>(Database::connect(&self.project.config.service.url).await?)
            })
            .await
    }

    /// The object store.
    pub async fn store(&self) -> Result<&Store, Failure> {
        self.store
            .get_or_try_init(|| async {
                let c = &self.project.config;
                Ok::<_, Failure>(Store::open(&c.store, &c.public_url())?)
            })
            .await
    }

    /// The warehouse the configuration names.
    pub async fn warehouse(&self) -> Result<Arc<dyn Warehouse>, Failure> {
        let store = self.store().await?;
        self.warehouse
            .get_or_try_init(|| async {
                Ok::<_, Failure>(kondate_warehouse::open(&self.project.config, store).await?)
            })
            .await
            .cloned()
    }

    /// Users, tokens, the audit trail.
    pub async fn access(&self) -> Result<&Access, Failure> {
        let db = self.state_db().await?;
        self.access
            .get_or_try_init(|| async {
                Ok::<_, Failure>(Access::new(db.clone(), self.clock.clone()))
            })
            .await
    }

    /// The query service.
    pub async fn query(&self) -> Result<Arc<QueryService>, Failure> {
        let service = QueryService::new(
            self.state_db().await?.clone(),
            self.store().await?.clone(),
            self.warehouse().await?,
            self.clock.clone(),
            self.project.config.query.clone(),
        );
        service.set_owner(&self.process().await?.id);
        Ok(service)
    }

    /// The label sets.
    pub async fn labels(&self) -> Result<kondate_labels::Labels, Failure> {
        Ok(kondate_labels::Labels {
            state: Some(self.state_db().await?.clone()),
            clock: self.clock.clone(),
            ..kondate_labels::Labels::new(
                self.service_db().await?.clone(),
                self.store().await?.clone(),
            )
        })
    }

    /// The model registry, checking label lineage against the label sets.
    pub async fn models(&self) -> Result<kondate_models::Models, Failure> {
        Ok(kondate_models::Models {
            labels: Some(Arc::new(LabelLineage(self.labels().await?))),
            clock: self.clock.clone(),
            ..kondate_models::Models::new(
                self.state_db().await?.clone(),
                self.store().await?.clone(),
            )
        })
    }

    /// App runs, with tokens made for each run within what `launcher` may do.
    pub async fn runs(
        &self,
        launcher: kondate_access::Principal,
    ) -> Result<kondate_apps::Runs, Failure> {
        let credentials = RunCredentials {
            tokens: self.access().await?.tokens.clone(),
            url: self.project.config.public_url(),
            launcher,
        };
        Ok(kondate_apps::Runs {
            clock: self.clock.clone(),
            credentials: Some(Arc::new(credentials)),
            owner: Some(self.process().await?.id.clone()),
            lost_after: self.project.config.state.lost_after,
            ..kondate_apps::Runs::new(
                self.state_db().await?.clone(),
                self.store().await?.clone(),
                &self.project.root,
            )
        })
    }

    /// The scheduler's state and the executor of job instances (steps' logs in the store);
    /// `actions` runs kondate's own tasks (a worker's; None where no step runs).
    pub async fn jobs_with(
        &self,
        actions: Option<Arc<dyn kondate_jobs::StepActions>>,
    ) -> Result<(kondate_jobs::Scheduler, kondate_jobs::Executor), Failure> {
        let db = self.state_db().await?.clone();
        let scheduler = kondate_jobs::Scheduler::new(db.clone());
        let store = self.store().await?.clone();
        let executor = kondate_jobs::Executor::new(db, store, scheduler.clone(), actions);
        Ok((scheduler, executor))
    }

    /// The notifier of the scheduler's events (notifications in kondate.toml).
    pub async fn notifier(&self) -> Result<kondate_jobs::Notifier, Failure> {
        let (scheduler, executor) = self.jobs().await?;
        let config = &self.project.config;
        Ok(kondate_jobs::Notifier::new(
            self.state_db().await?.clone(),
            scheduler,
            executor,
            config.notifications.clone(),
            config.project.name.clone(),
            config.public_url(),
        ))
    }

    /// [`Services::jobs_with`] for commands that run no step.
    pub async fn jobs(&self) -> Result<(kondate_jobs::Scheduler, kondate_jobs::Executor), Failure> {
        self.jobs_with(None).await
    }

    /// The executor of a process that runs steps: kondate's own tasks through these
    /// services.
    pub async fn working_jobs(
        self: &Arc<Self>,
    ) -> Result<(kondate_jobs::Scheduler, kondate_jobs::Executor), Failure> {
        self.working_jobs_with(Vec::new()).await
    }

    /// [`Services::working_jobs`], adding `app_env` to every app run.
    pub async fn working_jobs_with(
        self: &Arc<Self>,
        app_env: Vec<(String, String)>,
    ) -> Result<(kondate_jobs::Scheduler, kondate_jobs::Executor), Failure> {
        let actions = crate::job_actions::JobActions {
            services: self.clone(),
            app_env,
        };
        self.jobs_with(Some(Arc::new(actions))).await
    }

    /// A worker's settings: this process, `queues`, the project's folder.
    pub async fn worker_config(
        &self,
        queues: Vec<String>,
    ) -> Result<kondate_jobs::WorkerConfig, Failure> {
        let root = &self.project.root;
        Ok(kondate_jobs::WorkerConfig {
            worker: self.process().await?.id.clone(),
            queues,
            cwd: root.clone(),
            spool: self.project.state_dir().join("jobs"),
            protect: Some(self.project.state_dir()),
            base_env: std::env::vars().collect(),
            grace: Duration::from_secs(10),
            recheck: Duration::from_secs(10),
        })
    }

    /// The result tables.
    pub async fn results(&self) -> Result<kondate_results::Results, Failure> {
        Ok(kondate_results::Results::new(
            self.service_db().await?.clone(),
            &self.project.root,
            self.clock.clone(),
        ))
    }

    /// What `kondate serve` serves.
    pub async fn app_state(self: &Arc<Self>) -> Result<kondate_web::AppState, Failure> {
        let query = self.query().await?;
        let lost_after = self.project.config.state.lost_after;
        // Only the queries of processes that are gone: others may be running elsewhere.
        query
            .recover_lost(lost_after)
            .await
            .map_err(crate::output::query_failure)?;
        // Results that expired while no server ran go now; the sweeper takes over from here.
        query
            .expire_due()
            .await
            .map_err(crate::output::query_failure)?;
        let every = self
            .project
            .config
            .state
            .heartbeat
            .clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(query.clone().run_sweeper(every, lost_after));
        let (jobs, executor) = self.jobs().await?;
        Ok(kondate_web::AppState::new(kondate_web::AppParts {
            access: self.access().await?.clone(),
            store: self.store().await?.clone(),
            allow_anonymous: self.project.config.query.allow_anonymous,
            metrics: Arc::new(kondate_web::Metrics::default()),
            labels: self.labels().await?,
            models: self.models().await?,
            // The server launches no runs; it reads them.
            runs: self
                .runs(kondate_access::Principal::local("server"))
                .await?,
            results: self.results().await?,
            project: self.project.clone(),
            service: query,
            jobs,
            executor,
            catalog: kondate_catalog::Catalog::new(self.state_db().await?.clone()),
            catalog_search: Default::default(),
            after_write: Some(Arc::new(crate::catalog_cmd::CatalogAfterWrite(
                self.clone(),
            ))),
            // A new code each time a server starts: a sign-in link works for that server only.
            local_signin: self
                .project
                .config
                .listen_addr()
                .is_ok_and(|a| a.ip().is_loopback())
                .then(kondate_access::new_signin_code),
            oidc: match &self.project.config.console.oidc {
                Some(o) => Some(kondate_web::OidcProvider::new(
                    o,
                    &self.project.config.public_url(),
                )?),
                None => None,
            },
        }))
    }

    /// The warehouse as the results export's sink.
    pub async fn export_sink(
        &self,
        decl: &kondate_results::ResultTable,
    ) -> Result<crate::results_sink::WarehouseSink, Failure> {
        let c = &self.project.config;
        let place = match &c.warehouse.url {
            Some(u) => kondate_core::config::redact_url(u),
            None => c.store.url.clone(),
        };
        crate::results_sink::WarehouseSink::new(self.warehouse().await?, decl, place)
    }
}

/// Label lineage for the registry, over the label sets.
struct LabelLineage(kondate_labels::Labels);

#[async_trait::async_trait]
impl kondate_models::LabelRevisions for LabelLineage {
    async fn revisions(&self, name: &str) -> Result<Vec<i64>, String> {
        self.0
            .history(name)
            .await
            .map(|h| h.iter().map(|r| r.revision).collect())
            .map_err(|e| e.to_string())
    }
}

/// Run tokens from the state database, with the scopes the app definition declares and
/// never more than the one who launches the run holds.
struct RunCredentials {
    tokens: kondate_access::Tokens,
    url: String,
    launcher: kondate_access::Principal,
}

#[async_trait::async_trait]
impl kondate_apps::Credentials for RunCredentials {
    fn url(&self) -> String {
        self.url.clone()
    }

    async fn issue(
        &self,
        run_id: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> Result<(String, String), String> {
        let scopes = kondate_access::Scopes::new(
            scopes
                .iter()
                .map(|s| kondate_access::Scope::parse(s))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
        );
        let beyond: Vec<String> = scopes
            .iter()
            .filter(|s| !self.launcher.covers(s))
            .map(|s| s.to_string())
            .collect();
        if !beyond.is_empty() {
            return Err(format!(
                "the app's run would need {} which {} does not hold; a run never gets more \
                 than the one who launches it",
                beyond.join(", "),
                self.launcher.actor()
            ));
        }
        let t = self
            .tokens
            .create_for_run(run_id, &scopes, ttl, &self.launcher.actor())
            .await
            .map_err(|e| e.to_string())?;
        Ok((t.name, t.secret))
    }

    async fn revoke(&self, run_id: &str) {
        let name = kondate_access::run_token_name(run_id);
        if let Err(e) = self.tokens.delete(&name).await {
            tracing::warn!(run = run_id, error = %e, "could not delete the run's token; it expires on its own");
        }
    }
}

/// The command a process runs, as `kondate processes` shows it: the subcommand words of its
/// arguments (`labels sync`), never their values (a query's text, a path).
fn command_path(args: impl Iterator<Item = String>) -> String {
    let mut cmd = <crate::Cli as clap::CommandFactory>::command();
    let mut words = Vec::new();
    for arg in args {
        if arg.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(&arg) {
            Some(sub) => {
                words.push(sub.get_name().to_string());
                cmd = sub.clone();
            }
            // Before the first subcommand: a global option's value (`--project DIR`).
            None if words.is_empty() => continue,
            None => break,
        }
    }
    if words.is_empty() {
        "kondate".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_is_named_by_its_subcommands_not_their_values() {
        let path = |a: &[&str]| super::command_path(a.iter().map(|s| s.to_string()));
        assert_eq!(path(&["labels", "sync", "recipes"]), "labels sync");
        assert_eq!(path(&["--project", "p", "serve"]), "serve");
        assert_eq!(path(&["query", "SELECT 1"]), "query");
        assert_eq!(
            path(&["results", "write", "scores", "x.csv"]),
            "results write"
        );
        assert_eq!(path(&[]), "kondate");
    }
}
