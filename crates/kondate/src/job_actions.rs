//! kondate's own tasks in a job's script, as a worker runs them: `app:` through the apps
//! runner (a recorded run with its scoped token), `labels_sync:` and `results_export:` as
//! `kondate labels sync` and `kondate results export` do them (recorded as work of this
//! process). Each writes what it did into the step's log; a failure is the step's.

use std::sync::Arc;

use kondate_apps::{LogWriter, RunRequest, RunStatus, Stream};
use kondate_jobs::script::Task;

use crate::services::Services;

/// The worker's way into the rest of kondate.
pub struct JobActions {
    pub services: Arc<Services>,
    /// Variables added to every app run of this worker (`kondate demo`'s way to the
    /// example jobs built into kondate).
    pub app_env: Vec<(String, String)>,
}

fn note(log: &LogWriter, text: &str) {
    let _ = log.note(Stream::Stdout, text);
}

impl JobActions {
    async fn app(
        &self,
        name: &str,
        args: &[String],
        instance: i64,
        env: &[(String, String)],
        log: &LogWriter,
        cancel: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Result<(), String> {
        let s = &self.services;
        let apps = kondate_apps::Apps::new(s.project.root.join("apps"));
        let def = apps.load(name, false).map_err(|e| e.to_string())?;
        // `app: NAME ARGS…` adds the arguments to the app's command.
        let command = match (args.is_empty(), &def.app.command) {
            (true, _) => None,
            (false, Some(c)) => Some(c.iter().chain(args).cloned().collect()),
            (false, None) => {
                return Err(format!(
                    "`app: {name} {}`: the app has no command to add the arguments to",
                    args.join(" ")
                ));
            }
        };
        // The step's variables but kondate's own environment, which the runner passes.
        let env = env
            .iter()
            .filter(|(k, _)| !kondate_apps::PASSED_ENV.contains(&k.as_str()))
            .chain(&self.app_env)
            .cloned()
            .collect();
        let runs = s
            .runs(crate::cli_access::principal_now())
            .await
            .map_err(|f| f.message)?;
        let req = RunRequest {
            app: name.to_string(),
            env,
            command,
            runner: None,
            actor: format!("{} (job instance {instance})", crate::actor()),
        };
        let info = runs
            .run(&req, None, cancel)
            .await
            .map_err(|e| e.to_string())?;
        note(
            log,
            &format!(
                "app `{name}`: run {} {} (exit {}); its output: kondate apps logs {}",
                info.id,
                info.status.as_str(),
                info.exit_code.map_or("-".into(), |c| c.to_string()),
                info.id
            ),
        );
        if info.status == RunStatus::Succeeded {
            Ok(())
        } else {
            Err(format!(
                "app `{name}` run {} {}{}",
                info.id,
                info.status.as_str(),
                info.error.map(|e| format!(": {e}")).unwrap_or_default()
            ))
        }
    }

    async fn labels_sync(&self, name: &str, log: &LogWriter) -> Result<(), String> {
        let s = &self.services;
        let set = kondate_labels::find(&s.project, name).map_err(|e| e.to_string())?;
        let labels = s.labels().await.map_err(|f| f.message)?;
        let grid = kondate_labels::read_source(&set)
            .await
            .map_err(|e| e.to_string())?;
        let (_work, _) = s
            .begin_work("labels sync", name)
            .await
            .map_err(|f| f.message)?;
        let opts = kondate_labels::SyncOptions {
            dry_run: false,
            skip_invalid: false,
            migrate: false,
            force: false,
            actor: crate::actor(),
        };
        let report = labels
            .sync(&set, &grid, &opts)
            .await
            .map_err(|e| e.to_string())?;
        crate::catalog_cmd::after_write(s, "service", &set.table).await;
        note(
            log,
            &format!(
                "labels `{name}`: {}",
                serde_json::to_string(&report).unwrap_or_default()
            ),
        );
        Ok(())
    }

    /// `catalog_sync: all` (every source) or `catalog_sync: SOURCE`: what a nightly job runs.
    async fn catalog_sync(&self, source: &str, log: &LogWriter) -> Result<(), String> {
        let s = &self.services;
        let all = crate::catalog_cmd::sources(&s.project.config);
        let sources: Vec<String> = match source {
            "all" => all,
            one if all.iter().any(|a| a == one) => vec![one.to_string()],
            other => {
                return Err(format!(
                    "no catalog source `{other}`: the sources are all, {}",
                    all.join(", ")
                ));
            }
        };
        let db = s.state_db().await.map_err(|f| f.message)?.clone();
        let catalog = kondate_catalog::Catalog::new(db);
        let synced = crate::catalog_cmd::sync_sources(s, &catalog, &sources)
            .await
            .map_err(|f| f.message)?;
        for r in &synced.reports {
            note(
                log,
                &format!(
                    "catalog {}: {} tables, {} changes (sync {})",
                    r.source,
                    r.tables,
                    r.changes.len(),
                    r.sync_id
                ),
            );
        }
        for (file, target) in &synced.docs.applied {
            note(log, &format!("described {target} from {file}"));
        }
        match synced.failures.is_empty() {
            true => Ok(()),
            // The other sources synced; the step fails so that someone hears of it.
            false => Err(synced.failures.join("; ")),
        }
    }

    async fn results_export(&self, name: &str, log: &LogWriter) -> Result<(), String> {
        let s = &self.services;
        let results = s.results().await.map_err(|f| f.message)?;
        let decl = results.declaration(name).map_err(|e| e.to_string())?;
        let sink = s.export_sink(&decl).await.map_err(|f| f.message)?;
        let tmp = s.project.state_dir();
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let (_work, _) = s
            .begin_work("results export", name)
            .await
            .map_err(|f| f.message)?;
        let report = results
            .export(
                &decl,
                &sink,
                kondate_results::ExportOptions {
                    since_ms: None,
                    full: false,
                },
                &tmp,
            )
            .await
            .map_err(|e| e.to_string())?;
        crate::catalog_cmd::after_write(s, "warehouse", &decl.warehouse_table).await;
        note(
            log,
            &format!(
                "exported {} row(s) of {} to {} ({})",
                report.rows, report.name, report.target, report.mode
            ),
        );
        Ok(())
    }
}

/// `work`, given up when `cancel` turns (the instance was force-cancelled): its future is
/// dropped, which rolls back its open transaction — as a killed `kondate labels sync` or
/// `kondate results export` leaves the previous state, their writes being committed in one
/// step at the end — and releases its work record with its guard. (A warehouse table lock
/// is held only for the milliseconds of a manifest's update; one left by a dropped export
/// is broken after 30 s.)
async fn unless_cancelled(
    work: impl Future<Output = Result<(), String>>,
    mut cancel: tokio::sync::watch::Receiver<Option<i32>>,
) -> Result<(), String> {
    tokio::select! {
        r = work => r,
        // A sender gone without a signal disables this branch: the work runs to its end.
        Ok(_) = cancel.wait_for(Option::is_some) => Err("stopped: the instance was force-cancelled".into()),
    }
}

#[async_trait::async_trait]
impl kondate_jobs::StepActions for JobActions {
    async fn run(
        &self,
        task: &Task,
        instance: i64,
        env: &[(String, String)],
        log: &LogWriter,
        cancel: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Result<(), String> {
        match task {
            Task::App { name, args } => self.app(name, args, instance, env, log, cancel).await,
            Task::LabelsSync(name) => unless_cancelled(self.labels_sync(name, log), cancel).await,
            Task::ResultsExport(name) => {
                unless_cancelled(self.results_export(name, log), cancel).await
            }
            Task::CatalogSync(source) => {
                unless_cancelled(self.catalog_sync(source, log), cancel).await
            }
            // The executor runs the others itself.
            other => Err(format!("{other:?} is not one of kondate's own tasks")),
        }
    }
}
