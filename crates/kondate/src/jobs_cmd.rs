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
    /// What the command needs (see `cli_access`): these read the project's own files.
    pub fn need(&self) -> CliNeed {
        CliNeed::none()
    }
}

fn failure(e: JobsError) -> Failure {
    if e.is_invalid_input() {
        Failure::invalid(e.to_string())
    } else {
        Failure::from(e)
    }
}

/// A job's name and its definition, or why it did not load.
type LoadedJob = (String, Result<JobDefinition, JobsError>);

/// Every definition file of the project's `jobs/`, loaded (or its error), by name.
fn load_all(services: &Services) -> Result<Vec<LoadedJob>, Failure> {
    let dir = services.project.root.join("jobs");
    let files = definition::files(&dir).map_err(failure)?;
    Ok(files
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            (name, definition::load(path))
        })
        .collect())
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

/// `t` in the zone of the job's first schedule that fires at it (UTC when none does).
fn in_zone(def: &JobDefinition, t: DateTime<Utc>) -> String {
    let zone = def
        .schedules
        .iter()
        .find(|s| s.cron.next_after(s.zone, t - chrono::Duration::minutes(1)) == Some(t))
        .map_or(chrono_tz::Tz::UTC, |s| s.zone);
    t.with_timezone(&zone)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
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
        JobsCmd::List { format } => {
            let rows: Vec<serde_json::Value> = load_all(services)?
                .into_iter()
                .map(|(name, d)| match d {
                    Ok(d) => summary(&d, now),
                    Err(e) => serde_json::json!({ "name": name, "error": e.to_string() }),
                })
                .collect();
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
                    let state = if r["suspended"] == true {
                        "suspended"
                    } else {
                        "ok"
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
