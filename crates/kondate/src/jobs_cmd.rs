//! `kondate jobs …`: the project's job definitions (`jobs/NAME.jsonnet`), checked, listed
//! with their next fire times, and `next`. The scheduler that launches them is being built
//! (issue 17); these read the project's own files, as `kondate apps list` does.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use kondate_jobs::definition::{self, Catchup, JobDefinition, PreventMulti};
use kondate_jobs::{JobsError, plan};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum JobsCmd {
    /// Launch a job now (its definition in jobs/ is loaded first); prints the instance.
    /// Its steps are run by `kondate serve`'s workers or `kondate worker`.
    #[command(
        after_help = "Examples:\n  kondate jobs launch train\n  kondate jobs launch train -e EPOCHS=3 --wait\n  kondate jobs launch export --key 2026-12-01   # launched once for this key"
    )]
    Launch {
        name: String,
        /// A variable for every step, NAME=VALUE (repeatable; recorded with the instance).
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Launch once for this key: the same key again gives the same instance.
        #[arg(long)]
        key: Option<String>,
        /// Wait until the instance ends (or fails); exit code 1 if it did not succeed.
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Launch a job for each of its schedules' slots from --from to --to (inclusive), oldest
    /// first, at most --concurrency at once, each with its slot as KONDATE_SCHEDULED_AT; a
    /// slot already launched (by the scheduler or an earlier backfill) is left alone. The
    /// steps are run by `kondate serve`'s workers or `kondate worker`; this waits for them.
    #[command(
        after_help = "Example:\n  kondate jobs backfill daily_export --from 2026-11-01T00:00:00+09:00 --to 2026-11-30T23:59:59+09:00 --concurrency 2"
    )]
    Backfill {
        name: String,
        /// The first time (RFC 3339) whose slots are launched.
        #[arg(long)]
        from: String,
        /// The last time (RFC 3339).
        #[arg(long)]
        to: String,
        /// Instances of the backfill working at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// A job as the scheduler runs it: its revision, schedules and next fire times, owners,
    /// whether suspended, its script, its script revisions and its latest instances.
    #[command(
        after_help = "Examples:\n  kondate jobs show train\n  kondate jobs show train --format json"
    )]
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// A job's instances, newest first.
    #[command(after_help = "Example:\n  kondate jobs instances train --limit 5 --format json")]
    Instances {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// An instance with its steps: state, worker, exit code, peak memory, error.
    #[command(after_help = "Example:\n  kondate jobs instance 42 --format json")]
    Instance {
        id: i64,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// The logs of an instance's steps, in order, each line with its step; --follow prints
    /// what running steps write as they write it, until no step runs or waits.
    #[command(after_help = "Examples:\n  kondate jobs logs 42\n  kondate jobs logs 42 --follow")]
    Logs {
        id: i64,
        /// Keep printing while the instance runs (live from the worker's spool on this
        /// host; from the store once a step ends elsewhere).
        #[arg(long)]
        follow: bool,
        /// json: one object per line {step, time, stream, text}.
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Run an instance's failed step again, and the rest after it.
    #[command(after_help = "Example:\n  kondate jobs retry 42")]
    Retry { id: i64 },
    /// Go on after an instance's failed step as if it had succeeded.
    #[command(after_help = "Example:\n  kondate jobs skip 42")]
    Skip { id: i64 },
    /// Cancel an instance: steps not yet run never run; with --force the steps running now
    /// are stopped too (each one's whole process group: SIGTERM, then SIGKILL).
    #[command(after_help = "Examples:\n  kondate jobs cancel 42\n  kondate jobs cancel 42 --force")]
    Cancel {
        id: i64,
        #[arg(long)]
        force: bool,
    },
    /// Suspend a job: it launches nothing — no slot, no trigger — until resumed, and the
    /// slots that pass meanwhile are not launched afterwards; instances working go on.
    #[command(after_help = "Example:\n  kondate jobs suspend weekly_training")]
    Suspend { name: String },
    /// Resume a job suspended with `kondate jobs suspend` (a definition's own
    /// `suspended: true` stays until its file changes).
    #[command(after_help = "Example:\n  kondate jobs resume weekly_training")]
    Resume { name: String },
    /// The notifications recorded (newest first): destination, event, status, tries and the
    /// last error. `kondate serve` sends them; one that cannot be sent is retried with
    /// backoff and, after `notifications.attempts` tries, left `failed` here.
    #[command(
        after_help = "Examples:\n  kondate jobs notifications\n  kondate jobs notifications --status failed --format json\n  kondate jobs notifications --job weekly_training --limit 5"
    )]
    Notifications {
        /// pending, sent or failed.
        #[arg(long, value_parser = ["pending", "sent", "failed"])]
        status: Option<String>,
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Send a test notification to a destination of kondate.toml now, to check its setup
    /// (its URL, key or SMTP server); exit code 1 with the reason when it cannot be sent.
    #[command(after_help = "Example:\n  kondate jobs notify-test oncall")]
    NotifyTest { destination: String },
    /// List the jobs in jobs/ with their schedules and next fire time; a definition that
    /// does not load is listed with its error.
    #[command(after_help = "Examples:\n  kondate jobs list\n  kondate jobs list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Load every definition; errors name the file and the field (the script's line and
    /// task). Exit code 2 when any definition has an error.
    #[command(after_help = "Example:\n  kondate jobs check")]
    Check {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// The next fire times of a job, each in its schedule's zone (suspended slots left out).
    #[command(
        after_help = "Examples:\n  kondate jobs next train\n  kondate jobs next train -n 10 --format json"
    )]
    Next {
        name: String,
        /// How many.
        #[arg(short, long, default_value_t = 5)]
        n: usize,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
}

impl JobsCmd {
    /// What the command needs (see `cli_access`): definitions are the project's own files;
    /// instances are records (reading them `jobs:read`, launching `jobs:launch` on the job,
    /// acting on them `jobs:operate`).
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            JobsCmd::List { .. } | JobsCmd::Check { .. } | JobsCmd::Next { .. } => CliNeed::none(),
            JobsCmd::Launch { name, .. } => CliNeed::change(JobsLaunch, name, "jobs.launch"),
            JobsCmd::Suspend { name } => CliNeed::change(JobsOperate, name, "jobs.suspend"),
            JobsCmd::Resume { name } => CliNeed::change(JobsOperate, name, "jobs.resume"),
            JobsCmd::Backfill { name, .. } => CliNeed::change(JobsLaunch, name, "jobs.backfill"),
            JobsCmd::Instances { name, .. } | JobsCmd::Show { name, .. } => {
                CliNeed::on(JobsRead, name)
            }
            JobsCmd::Instance { .. } | JobsCmd::Logs { .. } | JobsCmd::Notifications { .. } => {
                CliNeed::every(JobsRead)
            }
            JobsCmd::NotifyTest { destination } => {
                CliNeed::change_every(JobsOperate, Some(destination), "jobs.notify_test")
            }
            JobsCmd::Retry { id } => {
                CliNeed::change_every(JobsOperate, Some(&id.to_string()), "jobs.retry")
            }
            JobsCmd::Skip { id } => {
                CliNeed::change_every(JobsOperate, Some(&id.to_string()), "jobs.skip")
            }
            JobsCmd::Cancel { id, .. } => {
                CliNeed::change_every(JobsOperate, Some(&id.to_string()), "jobs.cancel")
            }
        }
    }
}

/// Options of `kondate worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// A queue to take steps from (repeatable); `queue: NAME` in a script sends its steps
    /// there.
    #[arg(long = "queue", value_name = "NAME", default_value = "default")]
    queues: Vec<String>,
    /// Run the steps waiting now, then exit (for scripts and tests).
    #[arg(long)]
    pub until_idle: bool,
}

impl WorkerArgs {
    /// A worker runs any job's commands: the operator's (admin's), as `serve`.
    pub fn need(&self) -> CliNeed {
        CliNeed::every(kondate_access::ScopeKind::Admin)
    }
}

/// `kondate worker`: take steps until SIGTERM/SIGINT (the running step ends first).
pub async fn worker(services: &std::sync::Arc<Services>, args: WorkerArgs) -> CmdResult {
    let (_, executor) = services.working_jobs().await?;
    let cfg = services.worker_config(args.queues).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::cli::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let queues = cfg.queues.join(", ");
    if !args.until_idle {
        eprintln!("kondate worker {} taking steps of: {queues}", cfg.worker);
    }
    let ran = crate::jobs_loop::WorkerLoop {
        executor,
        cfg,
        clock: services.clock.clone(),
        poll: services.project.config.jobs.poll,
        lost_after: services.project.config.state.lost_after,
        until_idle: args.until_idle,
        wake: None,
    }
    .run(stopped)
    .await;
    eprintln!("kondate worker: ran {ran} steps");
    Ok(())
}

fn failure(e: JobsError) -> Failure {
    if e.is_invalid_input() {
        Failure::invalid(e.to_string())
    } else {
        Failure::from(e)
    }
}

/// Every definition file of the project's `jobs/`, loaded (or its error), by name.
/// The scheduler and executor, with the project's job definitions loaded into them first
/// (so a job just added can be launched before any server read it).
async fn reloaded_jobs(
    services: &Services,
) -> Result<(kondate_jobs::Scheduler, kondate_jobs::Executor), Failure> {
    let (scheduler, executor) = services.jobs().await?;
    let p = &services.project;
    crate::jobs_loop::reload(&scheduler, &p.root, &p.config, &*services.clock)
        .await
        .map_err(failure)?;
    Ok((scheduler, executor))
}

fn load_all(services: &Services) -> Result<Vec<definition::Named>, Failure> {
    let p = &services.project;
    definition::load_project(&p.root, &p.config).map_err(failure)
}

fn catchup_text(c: Catchup) -> String {
    match c {
        Catchup::None => "none".into(),
        Catchup::Latest => "latest".into(),
        Catchup::All { max } => format!("all (at most {max})"),
    }
}

fn prevent_text(p: PreventMulti) -> &'static str {
    match p {
        PreventMulti::Allow => "allow",
        PreventMulti::WorkingOrError => "working_or_error",
        PreventMulti::Working => "working",
        PreventMulti::Error => "error",
    }
}

/// `t` on the clock of the job's schedule that fires at it (RFC 3339 with its offset).
fn in_zone(def: &JobDefinition, t: DateTime<Utc>) -> String {
    plan::local_time(def, t)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `kondate jobs show`'s text: [`kondate_jobs::Scheduler::job_detail`] for a person.
fn show_text(job: &serde_json::Value) -> String {
    use std::fmt::Write;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let _ = writeln!(out, "job:       {}", text(&job["name"]));
    if let Some(d) = job["description"].as_str().filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "about:     {d}");
    }
    let _ = writeln!(
        out,
        "revision:  {} (loaded {})",
        job["revision"],
        text(&job["revised_at"])
    );
    if let Some(e) = job["load_error"].as_str() {
        let _ = writeln!(out, "LOAD ERROR (the revision above keeps running): {e}");
    }
    if job["removed"] == true {
        let _ = writeln!(
            out,
            "removed:   its file is gone; it is no longer scheduled"
        );
    }
    let state = match (job["suspended"] == true, job["suspended_by"].as_str()) {
        (true, Some(by)) => format!("suspended by {by}"),
        (true, None) => "suspended (by its definition)".into(),
        _ => "scheduled".into(),
    };
    let _ = writeln!(out, "state:     {state}");
    let schedules: Vec<String> = job["schedules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} ({})", text(&s["cron"]), text(&s["time_zone"])))
        .collect();
    let _ = writeln!(
        out,
        "schedules: {}",
        if schedules.is_empty() {
            "(by hand or trigger)".into()
        } else {
            schedules.join(", ")
        }
    );
    let _ = writeln!(out, "next:      {}", list(&job["next"]));
    let _ = writeln!(out, "owners:    {}", list(&job["owners"]));
    let _ = writeln!(out, "tags:      {}", list(&job["tags"]));
    if let Some(script) = job["script"].as_str() {
        let _ = writeln!(out, "script:");
        for line in script.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "revisions:");
    for r in job["revisions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:>6}  {}  {}",
            r["id"],
            text(&r["loaded_at"]),
            text(&r["digest"])
        );
    }
    let _ = writeln!(out, "instances:");
    let instances = job["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for i in &instances {
        let _ = writeln!(
            out,
            "  {:>6}  {:<8} {:<9} {}  {}",
            i["id"],
            text(&i["status"]),
            text(&i["reason"]),
            text(&i["scheduled_at"]),
            i["error"].as_str().unwrap_or("")
        );
    }
    out
}

fn summary(def: &JobDefinition, now: DateTime<Utc>) -> serde_json::Value {
    let next = plan::next_slots(def, now, 1)
        .first()
        .map(|t| in_zone(def, *t));
    serde_json::json!({
        "name": def.name,
        "description": def.description,
        "schedules": def.schedules.iter().map(|s| serde_json::json!({
            "cron": s.expression, "time_zone": s.zone.name(),
        })).collect::<Vec<_>>(),
        "suspended": def.suspended,
        "catchup": catchup_text(def.catchup),
        "prevent_multi": prevent_text(def.prevent_multi),
        "owners": def.owners,
        "tags": def.tags,
        "next": next,
        "digest": def.digest,
        "error": null,
    })
}

pub async fn run(services: &Services, cmd: JobsCmd) -> CmdResult {
    let now = services.clock.now();
    match cmd {
        JobsCmd::Launch {
            name,
            env,
            key,
            wait,
            format,
        } => {
            let env = env
                .iter()
                .map(|e| kondate_apps::parse_env_arg(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::invalid(e.to_string()))?;
            let (scheduler, executor) = reloaded_jobs(services).await?;
            let id = scheduler
                .launch(
                    &name,
                    &env,
                    "manual",
                    key.as_deref(),
                    Some(&crate::cli_access::actor()),
                    now,
                )
                .await
                .map_err(failure)?;
            executor
                .advance(id, services.clock.now())
                .await
                .map_err(failure)?;
            if !wait {
                let i = scheduler.instance(id).await.map_err(failure)?;
                if format == ListFormat::Json {
                    println!("{}", serde_json::to_string_pretty(&i.to_json())?);
                } else {
                    println!("launched `{name}`: instance {id} ({})", i.status);
                }
                return Ok(());
            }
            let i = loop {
                let i = scheduler.instance(id).await.map_err(failure)?;
                if i.status != kondate_jobs::scheduler::WORKING {
                    break i;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&i.to_json())?);
            } else {
                println!("instance {id} of `{name}`: {}", i.status);
            }
            if i.status != kondate_jobs::scheduler::SUCCESS {
                return Err(Failure::from(format!(
                    "instance {id} ended {}{}; `kondate jobs logs {id}` shows its steps' output",
                    i.status,
                    i.error.map(|e| format!(": {e}")).unwrap_or_default()
                )));
            }
            Ok(())
        }
        JobsCmd::Backfill {
            name,
            from,
            to,
            concurrency,
        } => {
            let parse = |what: &str, t: &str| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        Failure::invalid(format!(
                            "--{what} `{t}`: {e}; write an RFC 3339 time such as 2026-11-01T00:00:00+09:00"
                        ))
                    })
            };
            let (from, to) = (parse("from", &from)?, parse("to", &to)?);
            if from > to {
                return Err(Failure::invalid("--from is after --to"));
            }
            if !(1..=64).contains(&concurrency) {
                return Err(Failure::invalid("--concurrency must be from 1 to 64"));
            }
            let (scheduler, executor) = reloaded_jobs(services).await?;
            let job = scheduler
                .job_row(&name)
                .await
                .map_err(failure)?
                .filter(|j| !j.removed)
                .ok_or_else(|| failure(JobsError::NoSuchJob(name.clone())))?;
            let revision = job.revision.ok_or_else(|| {
                Failure::invalid(format!(
                    "job `{name}` does not load: {}",
                    job.load_error.unwrap_or_default()
                ))
            })?;
            let def = scheduler
                .definition(&name, revision)
                .await
                .map_err(failure)?;
            const MAX: usize = 10_000;
            let slots: Vec<DateTime<Utc>> =
                plan::next_slots(&def, from - chrono::Duration::milliseconds(1), MAX + 1)
                    .into_iter()
                    .take_while(|t| *t <= to)
                    .collect();
            if slots.len() > MAX {
                return Err(Failure::invalid(format!(
                    "more than {MAX} slots of `{name}` lie between --from and --to; backfill a shorter span"
                )));
            }
            if slots.is_empty() {
                println!("`{name}` has no slot between --from and --to");
                return Ok(());
            }
            let by = crate::cli_access::actor();
            let (mut launched, mut already, mut failed) = (0usize, 0usize, 0usize);
            let mut working: Vec<i64> = Vec::new();
            for slot in slots {
                // Bounded: wait until fewer than `concurrency` of this backfill work.
                loop {
                    let mut still = Vec::new();
                    for id in working.drain(..) {
                        let i = scheduler.instance(id).await.map_err(failure)?;
                        match i.status.as_str() {
                            kondate_jobs::scheduler::WORKING => still.push(id),
                            kondate_jobs::scheduler::SUCCESS => {}
                            _ => failed += 1,
                        }
                    }
                    working = still;
                    if working.len() < concurrency {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                let now = services.clock.now();
                match scheduler
                    .launch_slot(&name, slot, Some(&by), now)
                    .await
                    .map_err(failure)?
                {
                    Some(id) => {
                        executor.advance(id, now).await.map_err(failure)?;
                        println!("{}: instance {id}", in_zone(&def, slot));
                        launched += 1;
                        working.push(id);
                    }
                    None => {
                        println!("{}: launched before, left alone", in_zone(&def, slot));
                        already += 1;
                    }
                }
            }
            for id in working {
                let i = loop {
                    let i = scheduler.instance(id).await.map_err(failure)?;
                    if i.status != kondate_jobs::scheduler::WORKING {
                        break i;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                };
                if i.status != kondate_jobs::scheduler::SUCCESS {
                    failed += 1;
                }
            }
            println!(
                "backfilled `{name}`: {launched} launched, {already} launched before, {failed} did not succeed"
            );
            if failed > 0 {
                return Err(Failure::from(format!(
                    "{failed} backfilled instance(s) of `{name}` did not succeed; `kondate jobs instances {name}` lists them"
                )));
            }
            Ok(())
        }
        cmd @ (JobsCmd::Suspend { .. } | JobsCmd::Resume { .. }) => {
            let (suspend, name) = match cmd {
                JobsCmd::Suspend { name } => (true, name),
                JobsCmd::Resume { name } => (false, name),
                _ => unreachable!("matched above"),
            };
            let (scheduler, _) = reloaded_jobs(services).await?;
            if suspend {
                scheduler
                    .suspend(&name, &crate::cli_access::actor(), now)
                    .await
                    .map_err(failure)?;
                println!(
                    "suspended `{name}`: it launches nothing until `kondate jobs resume {name}`"
                );
            } else {
                scheduler.resume(&name, now).await.map_err(failure)?;
                println!("resumed `{name}`: its slots launch again from now on");
            }
            Ok(())
        }
        JobsCmd::Notifications {
            status,
            job,
            limit,
            format,
        } => {
            let notifier = services.notifier().await?;
            let list = notifier
                .list(status.as_deref(), job.as_deref(), limit)
                .await
                .map_err(failure)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no notifications recorded");
            } else {
                println!(
                    "{:>6} {:<16} {:<18} {:<8} {:>5} {:<24} WHAT / ERROR",
                    "ID", "DESTINATION", "EVENT", "STATUS", "TRIES", "CREATED"
                );
                for d in &list {
                    println!(
                        "{:>6} {:<16} {:<18} {:<8} {:>5} {:<24} {}",
                        d.id,
                        d.destination,
                        d.kind,
                        d.status,
                        d.attempts,
                        d.created_at,
                        d.error.as_deref().unwrap_or(&d.title)
                    );
                }
            }
            Ok(())
        }
        JobsCmd::NotifyTest { destination } => {
            let notifier = services.notifier().await?;
            notifier
                .send_test(&destination, services.clock.now())
                .await
                .map_err(failure)?;
            println!("sent a test notification to `{destination}`");
            Ok(())
        }
        JobsCmd::Show { name, format } => {
            kondate_core::names::validate_name("job name", &name)
                .map_err(|e| Failure::invalid(e.to_string()))?;
            let (scheduler, _) = services.jobs().await?;
            let job = match scheduler.job_detail(&name, now).await {
                Ok(j) => j,
                Err(JobsError::NoSuchJob(_)) => {
                    return Err(Failure::invalid(format!(
                        "the scheduler has no job named `{name}`{}",
                        if services
                            .project
                            .root
                            .join(format!("jobs/{name}.jsonnet"))
                            .exists()
                        {
                            "; its file is in jobs/ but no scheduler has loaded it yet (`kondate serve` \
                             loads it; `kondate jobs next` reads the file)"
                        } else {
                            "; `kondate jobs list` shows the project's jobs"
                        }
                    )));
                }
                Err(e) => return Err(failure(e)),
            };
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&job)?);
                return Ok(());
            }
            print!("{}", show_text(&job));
            Ok(())
        }
        JobsCmd::Instances {
            name,
            limit,
            format,
        } => {
            let (scheduler, _) = services.jobs().await?;
            let list = scheduler.instances(&name, limit).await.map_err(failure)?;
            if format == ListFormat::Json {
                let rows: Vec<_> = list.iter().map(|i| i.to_json()).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                println!("no instances of `{name}` yet");
            } else {
                println!(
                    "{:>8} {:<9} {:<8} {:<26} ERROR",
                    "ID", "STATUS", "REASON", "SCHEDULED"
                );
                for i in &list {
                    println!(
                        "{:>8} {:<9} {:<8} {:<26} {}",
                        i.id,
                        i.status,
                        i.reason,
                        kondate_core::clock::ms_to_rfc3339(i.scheduled_at),
                        i.error.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        JobsCmd::Instance { id, format } => {
            let (scheduler, executor) = services.jobs().await?;
            let i = scheduler.instance(id).await.map_err(failure)?;
            let steps = executor.steps(id).await.map_err(failure)?;
            if format == ListFormat::Json {
                let mut v = i.to_json();
                v["steps"] = serde_json::to_value(&steps)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "instance {id} of `{}` ({}), scheduled at {}: {}{}",
                    i.job,
                    i.reason,
                    kondate_core::clock::ms_to_rfc3339(i.scheduled_at),
                    i.status,
                    i.error
                        .as_deref()
                        .map(|e| format!(" — {e}"))
                        .unwrap_or_default()
                );
                for s in &steps {
                    println!(
                        "  {:<14} {:<8} {:<9} exit {:<4} {}{}{}",
                        s.key,
                        s.queue,
                        s.status,
                        s.exit_code.map_or("-".into(), |c| c.to_string()),
                        s.task,
                        peak_text(s.peak_memory_bytes, s.usual_peak_memory_bytes),
                        s.error
                            .as_deref()
                            .map(|e| format!(" — {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        JobsCmd::Logs { id, follow, format } => {
            use futures::StreamExt;
            let (scheduler, executor) = services.jobs().await?;
            scheduler.instance(id).await.map_err(failure)?;
            let mut chunks = std::pin::pin!(executor.log_stream(id, follow));
            while let Some(chunk) = chunks.next().await {
                for line in chunk.map_err(failure)?.lines() {
                    // `STEP TIME out|err TEXT`
                    let mut parts = line.splitn(4, ' ');
                    let (step, time, stream, text) = (
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                        parts.next().unwrap_or_default(),
                    );
                    if format == ListFormat::Json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "step": step, "time": time,
                                "stream": if stream == "err" { "stderr" } else { "stdout" },
                                "text": text,
                            })
                        );
                    } else {
                        println!("[{step}] {text}");
                    }
                }
            }
            Ok(())
        }
        JobsCmd::Retry { id } | JobsCmd::Skip { id } | JobsCmd::Cancel { id, .. } => {
            let (_, executor) = services.jobs().await?;
            let what = match &cmd {
                JobsCmd::Retry { .. } => executor.retry(id, now).await.map(|()| "retried"),
                JobsCmd::Skip { .. } => executor
                    .skip(id, now)
                    .await
                    .map(|()| "skipped its failed step"),
                JobsCmd::Cancel { force: true, .. } => executor
                    .cancel_with(id, true, now)
                    .await
                    .map(|()| "cancelled; its running steps are being stopped"),
                _ => executor.cancel(id, now).await.map(|()| "cancelled"),
            }
            .map_err(failure)?;
            println!("instance {id}: {what}");
            Ok(())
        }
        JobsCmd::List { format } => {
            let mut rows: Vec<serde_json::Value> = load_all(services)?
                .into_iter()
                .map(|(name, d)| match d {
                    Ok(d) => summary(&d, now),
                    Err(e) => serde_json::json!({ "name": name, "error": e.to_string() }),
                })
                .collect();
            // Suspended at run time (`kondate jobs suspend`), as the state database says.
            let (scheduler, _) = services.jobs().await?;
            for r in &mut rows {
                let name = r["name"].as_str().unwrap_or_default().to_string();
                if let Some(by) = scheduler
                    .job_row(&name)
                    .await
                    .map_err(failure)?
                    .and_then(|j| j.suspended_by)
                {
                    r["suspended"] = true.into();
                    r["suspended_by"] = by.into();
                }
            }
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!(
                    "No jobs in {}; add one as jobs/NAME.jsonnet (docs/jobs.md)",
                    services.project.root.join("jobs").display()
                );
            } else {
                println!("{:<24} {:<26} {:<26} SCHEDULES", "JOB", "NEXT", "STATE");
                for r in rows {
                    let name = r["name"].as_str().unwrap_or_default();
                    if let Some(e) = r["error"].as_str() {
                        println!("{name:<24} {:<26} error: {e}", "-");
                        continue;
                    }
                    let schedules: Vec<String> = r["schedules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| {
                            format!(
                                "{} ({})",
                                s["cron"].as_str().unwrap_or_default(),
                                s["time_zone"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    let state = match (r["suspended"] == true, r["suspended_by"].as_str()) {
                        (true, Some(by)) => format!("suspended by {by}"),
                        (true, None) => "suspended".to_string(),
                        _ => "ok".to_string(),
                    };
                    println!(
                        "{name:<24} {:<26} {state:<26} {}",
                        r["next"].as_str().unwrap_or("-"),
                        if schedules.is_empty() {
                            "(by hand or trigger)".to_string()
                        } else {
                            schedules.join(", ")
                        }
                    );
                }
            }
            Ok(())
        }
        JobsCmd::Check { format } => {
            let loaded = load_all(services)?;
            let bad = loaded.iter().filter(|(_, d)| d.is_err()).count();
            if format == ListFormat::Json {
                let rows: Vec<serde_json::Value> = loaded
                    .iter()
                    .map(|(name, d)| match d {
                        Ok(_) => serde_json::json!({ "name": name, "ok": true }),
                        Err(e) => {
                            serde_json::json!({ "name": name, "ok": false, "error": e.to_string() })
                        }
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for (name, d) in &loaded {
                    match d {
                        Ok(_) => println!("ok     {name}"),
                        Err(e) => println!("error  {e}"),
                    }
                }
            }
            if bad > 0 {
                return Err(Failure::invalid(format!(
                    "{bad} of {} job definitions have errors (above)",
                    loaded.len()
                )));
            }
            Ok(())
        }
        JobsCmd::Next { name, n, format } => {
            kondate_core::names::validate_name("job name", &name)
                .map_err(|e| Failure::invalid(e.to_string()))?;
            let path = ["jsonnet", "json"]
                .iter()
                .map(|ext| {
                    services
                        .project
                        .root
                        .join("jobs")
                        .join(format!("{name}.{ext}"))
                })
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Failure::invalid(format!(
                        "no job named `{name}` in {}; `kondate jobs list` shows the jobs there",
                        services.project.root.join("jobs").display()
                    ))
                })?;
            let def = definition::load(&path).map_err(failure)?;
            let slots: Vec<String> = plan::next_slots(&def, now, n)
                .into_iter()
                .map(|t| in_zone(&def, t))
                .collect();
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&slots)?);
            } else if slots.is_empty() {
                println!(
                    "`{name}` has no schedules: it runs when launched by hand or by a trigger"
                );
            } else if def.suspended {
                println!("`{name}` is suspended; unsuspended, it would fire at:");
                for s in slots {
                    println!("{s}");
                }
            } else {
                for s in slots {
                    println!("{s}");
                }
            }
            Ok(())
        }
    }
}

/// ` [peak 1.2 GiB, usual 800.0 MiB ↑1.5×]`: a step's peak memory beside the job's usual,
/// the ratio shown when it is 1.5 times or more.
fn peak_text(peak: Option<i64>, usual: Option<i64>) -> String {
    let size = |b: i64| {
        let b = b as f64;
        if b >= 1024.0 * 1024.0 * 1024.0 {
            format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
        } else {
            format!("{:.1} MiB", b / (1024.0 * 1024.0))
        }
    };
    match (peak, usual) {
        (None, _) => String::new(),
        (Some(p), None) => format!(" [peak {}]", size(p)),
        (Some(p), Some(u)) if u > 0 && p as f64 >= 1.5 * u as f64 => format!(
            " [peak {}, usual {} ↑{:.1}×]",
            size(p),
            size(u),
            p as f64 / u as f64
        ),
        (Some(p), Some(u)) => format!(" [peak {}, usual {}]", size(p), size(u)),
    }
}
