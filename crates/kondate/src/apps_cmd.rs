//! `kondate apps …`

use std::io::Write;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use futures::StreamExt;
use kondate_apps::NoteKind;
use kondate_apps::parse_env_arg;
use kondate_apps::render::{self, Overrides};
use kondate_apps::{AppDefinition, Apps, AppsError, RunInfo, RunRequest};
use kondate_apps::{LiveSink, Stream};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum AppsCmd {
    /// List the apps in apps/ with their scheduler and command.
    #[command(after_help = "Example:\n  kondate apps list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Show an app's evaluated definition (env providers as ${KEY} unless --expand; secrets
    /// only as where they come from), and what the local runner ignores.
    #[command(
        after_help = "Examples:\n  kondate apps show train\n  kondate apps show train --expand --format json"
    )]
    Show {
        name: String,
        /// Fill in values from env providers (provide.file, provide.yaml), as `hako show-definition --expand`.
        #[arg(long)]
        expand: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Evaluate every definition; errors and warnings name the file, line and field.
    /// Exit code 2 when any definition has an error.
    #[command(after_help = "Example:\n  kondate apps check")]
    Check {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Run an app once and wait for it; its exit status becomes kondate's. Ctrl-C / SIGTERM
    /// are forwarded to the run and stop it.
    #[command(
        after_help = "Examples:\n  kondate apps run train\n  kondate apps run train -e EPOCHS=3 -- python train.py --dry-run\n  kondate apps run train --runner docker\n\nThe run gets a clean environment: PATH, HOME, USER, LANG, LC_ALL, TZ, TMPDIR from here,\nthe definition's env and secrets, -e values, and KONDATE_RUN_ID, KONDATE_APP,\nKONDATE_URL and a token scoped to the run (docs/apps.md). Exit codes: the command's own;\n124 after its timeout; 128+N when killed by signal N; 127 when it could not start; 2 for\na bad definition or command line."
    )]
    Run {
        name: String,
        /// Add or override an environment variable, NAME=VALUE (repeatable). Recorded with
        /// the run: put secrets in the definition's `secrets`, not here.
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Run with this runner instead of the one the scheduler implies.
        #[arg(long, value_enum)]
        runner: Option<RunnerArg>,
        /// Print the run record as JSON at the end (the output itself goes to stdout/stderr).
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
        /// The command, replacing app.command.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Print what the app becomes on ECS (task definition + RunTask), Kubernetes (a Job) or
    /// Docker (the `docker run` arguments).
    #[command(
        after_help = "Examples:\n  kondate apps render train --target ecs > train-ecs.json\n  kondate apps render train --target kubernetes | kubectl create -f -\n  kondate apps render train --target docker"
    )]
    Render {
        name: String,
        #[arg(long, value_enum)]
        target: Target,
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Output JSON for every target (Kubernetes defaults to YAML, Docker to a shell line).
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Recent runs, newest first.
    #[command(
        after_help = "Examples:\n  kondate apps runs\n  kondate apps runs train --limit 5 --format json"
    )]
    Runs {
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// A run's record: status, exit code, times, peak memory, where its log is.
    #[command(after_help = "Example:\n  kondate apps show-run 20261127T051705123Z-3f9a1c")]
    ShowRun {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Print a run's log (each line: time, out|err, text); --follow waits for more until the
    /// run ends.
    #[command(
        after_help = "Examples:\n  kondate apps logs 20261127T051705123Z-3f9a1c\n  kondate apps logs 20261127T051705123Z-3f9a1c --follow\n  kondate apps logs 20261127T051705123Z-3f9a1c --format json | jq -r .text"
    )]
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
        /// json: one object per line {time, stream, text}.
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
}

impl AppsCmd {
    /// What the command needs (see `cli_access`): definitions are the project's own files;
    /// runs and their logs are records.
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            AppsCmd::List { .. }
            | AppsCmd::Show { .. }
            | AppsCmd::Check { .. }
            | AppsCmd::Render { .. } => CliNeed::none(),
            AppsCmd::Run { name, .. } => CliNeed::change(RunsLaunch, name, "apps.run"),
            AppsCmd::Runs {
                name: Some(name), ..
            } => CliNeed::on(RunsRead, name),
            AppsCmd::Runs { name: None, .. } | AppsCmd::ShowRun { .. } | AppsCmd::Logs { .. } => {
                CliNeed::every(RunsRead)
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Target {
    Ecs,
    Kubernetes,
    Docker,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RunnerArg {
    Local,
    Docker,
}

fn failure(e: AppsError) -> Failure {
    if e.is_invalid_input() {
        Failure::invalid(e.to_string())
    } else {
        Failure::from(e)
    }
}

/// Before a run: warnings in full, and one line for what the local runner ignores.
fn print_notes(def: &AppDefinition) {
    let mut ignored = 0;
    for n in &def.notes {
        match n.kind {
            NoteKind::Unknown => {
                eprintln!("warning: {}: {}: {}", n.location, n.field, n.message)
            }
            NoteKind::IgnoredLocally => ignored += 1,
        }
    }
    if ignored > 0 {
        eprintln!(
            "note: {ignored} field(s) of {} are not used by the local runner (`kondate apps show {}` lists them)",
            def.path.display(),
            def.name
        );
    }
}

fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| render::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn overrides(env: &[String], command: Vec<String>) -> Result<Overrides, Failure> {
    Ok(Overrides {
        command: (!command.is_empty()).then_some(command),
        env: env
            .iter()
            .map(|e| parse_env_arg(e))
            .collect::<Result<_, _>>()
            .map_err(failure)?,
    })
}

pub async fn run(services: &Services, cmd: AppsCmd) -> CmdResult {
    let project = &services.project;
    let apps = Apps::new(project.root.join("apps"));
    match cmd {
        AppsCmd::List { format } => {
            let mut rows = Vec::new();
            for name in apps.names().map_err(failure)? {
                let row = match apps.load(&name, false) {
                    Ok(d) => serde_json::json!({
                        "name": name,
                        "scheduler": d.scheduler.as_str(),
                        "image": d.app.image,
                        "command": d.app.command,
                        "error": null,
                    }),
                    Err(e) => serde_json::json!({"name": name, "error": e.to_string()}),
                };
                rows.push(row);
            }
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!(
                    "No apps in {}; add one as apps/NAME.jsonnet (docs/apps.md)",
                    apps.dir.display()
                );
            } else {
                println!("{:<24} {:<11} COMMAND / IMAGE", "APP", "SCHEDULER");
                for r in rows {
                    let name = r["name"].as_str().unwrap_or_default();
                    if let Some(e) = r["error"].as_str() {
                        println!("{name:<24} {:<11} error: {e}", "-");
                        continue;
                    }
                    let what = match r["command"].as_array() {
                        Some(c) => command_line(
                            &c.iter()
                                .map(|v| v.as_str().unwrap_or_default().to_string())
                                .collect::<Vec<_>>(),
                        ),
                        None => r["image"].as_str().unwrap_or("-").to_string(),
                    };
                    println!(
                        "{name:<24} {:<11} {what}",
                        r["scheduler"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        AppsCmd::Show {
            name,
            expand,
            format,
        } => {
            let def = apps.load(&name, expand).map_err(failure)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&def)?);
                return Ok(());
            }
            println!("# {} ({})", def.name, def.path.display());
            println!("{}", serde_json::to_string_pretty(&def.evaluated)?);
            println!(
                "# the run's token may: {} (declare more under `kondate`)",
                def.access.scopes().join(" ")
            );
            println!(
                "# isolation of local runs: {}",
                kondate_apps::describe_isolation(&project.root.join(".kondate"))
            );
            let ignored: Vec<_> = def
                .notes
                .iter()
                .filter(|n| n.kind == NoteKind::IgnoredLocally)
                .collect();
            if !ignored.is_empty() {
                println!("\nNot used by the local runner:");
                for n in ignored {
                    println!("  {:<28} {}", n.field, n.message);
                }
            }
            for n in def.notes.iter().filter(|n| n.kind == NoteKind::Unknown) {
                eprintln!("warning: {}: {}: {}", n.location, n.field, n.message);
            }
            Ok(())
        }
        AppsCmd::Check { format } => {
            let mut results = Vec::new();
            let mut bad = 0;
            for name in apps.names().map_err(failure)? {
                match apps.load(&name, false) {
                    Ok(d) => results.push(serde_json::json!({
                        "name": name, "ok": true,
                        "warnings": d.notes.iter().filter(|n| n.kind == NoteKind::Unknown).collect::<Vec<_>>(),
                    })),
                    Err(e) => {
                        bad += 1;
                        results.push(serde_json::json!({"name": name, "ok": false, "error": e.to_string()}));
                    }
                }
            }
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for r in &results {
                    let name = r["name"].as_str().unwrap_or_default();
                    match r["error"].as_str() {
                        Some(e) => println!("error: {e}"),
                        None => {
                            for w in r["warnings"].as_array().into_iter().flatten() {
                                println!(
                                    "warning: {}: {}: {}",
                                    w["location"].as_str().unwrap_or_default(),
                                    w["field"].as_str().unwrap_or_default(),
                                    w["message"].as_str().unwrap_or_default()
                                );
                            }
                            println!("ok: {name}");
                        }
                    }
                }
                println!("{} app(s) checked, {bad} with errors", results.len());
            }
            if bad > 0 {
                return Err(Failure {
                    code: crate::exit::INVALID,
                    message: format!("{bad} definition(s) have errors"),
                });
            }
            Ok(())
        }
        AppsCmd::Render {
            name,
            target,
            env,
            format,
            command,
        } => {
            let def = apps.load(&name, true).map_err(failure)?;
            let o = overrides(&env, command)?;
            match target {
                Target::Ecs => {
                    let v = render::ecs(&def, &o).map_err(failure)?;
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Target::Kubernetes => {
                    let v = render::kubernetes(&def, &o).map_err(failure)?;
                    if format == ListFormat::Json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        print!("{}", serde_yaml_ng::to_string(&v)?);
                    }
                }
                Target::Docker => {
                    let argv = render::docker_argv(&def, &o, &format!("kondate-{name}"), &[])
                        .map_err(failure)?;
                    if format == ListFormat::Json {
                        println!("{}", serde_json::to_string_pretty(&argv)?);
                    } else {
                        println!("{}", command_line(&argv));
                    }
                }
            }
            Ok(())
        }
        AppsCmd::Run {
            name,
            env,
            runner,
            format,
            command,
        } => {
            let o = overrides(&env, command)?;
            // Evaluate once up front so that warnings show before the run's output.
            if let Ok(def) = apps.load(&name, false)
                && runner.is_none_or(|r| matches!(r, RunnerArg::Local))
            {
                print_notes(&def);
            }
            let runs = services.runs(crate::cli_access::principal_now()).await?;
            let req = RunRequest {
                app: name,
                env: o.env,
                command: o.command,
                runner: runner.map(|r| match r {
                    RunnerArg::Local => "local".to_string(),
                    RunnerArg::Docker => "docker".to_string(),
                }),
                actor: crate::actor(),
            };
            let live: Arc<LiveSink> = Arc::new(|stream, data: &[u8]| {
                let _ = match stream {
                    Stream::Stdout => std::io::stdout().lock().write_all(data),
                    Stream::Stderr => std::io::stderr().lock().write_all(data),
                };
            });
            let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
            let forward = tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    let sig = tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                    };
                    if cancel_tx.send(Some(sig)).is_err() {
                        return;
                    }
                }
            });
            let result = runs.run(&req, Some(live), cancel_rx).await;
            forward.abort();
            let info = result.map_err(failure)?;
            report_run(&info, format)?;
            finish_code(&info)
        }
        AppsCmd::Runs {
            name,
            limit,
            format,
        } => {
            let runs = services.runs(crate::cli_access::principal_now()).await?;
            let list = runs.list(name.as_deref(), limit).await.map_err(failure)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("No runs yet; start one with `kondate apps run NAME`");
                return Ok(());
            }
            println!(
                "{:<28} {:<20} {:<10} {:>5} {:>9} {:>10}  STARTED",
                "RUN", "APP", "STATUS", "EXIT", "SECONDS", "PEAK MiB"
            );
            for r in list {
                println!(
                    "{:<28} {:<20} {:<10} {:>5} {:>9} {:>10}  {}",
                    r.id,
                    r.app,
                    r.status.as_str(),
                    r.exit_code.map_or("-".into(), |c| c.to_string()),
                    r.duration_ms
                        .map_or("-".into(), |d| format!("{:.1}", d as f64 / 1000.0)),
                    r.peak_memory_bytes
                        .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0)),
                    r.started_at
                );
            }
            Ok(())
        }
        AppsCmd::ShowRun { id, format } => {
            let runs = services.runs(crate::cli_access::principal_now()).await?;
            let info = runs.get(&id).await.map_err(failure)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_run(&info);
            }
            Ok(())
        }
        AppsCmd::Logs { id, follow, format } => {
            let runs = services.runs(crate::cli_access::principal_now()).await?;
            runs.get(&id).await.map_err(failure)?;
            let mut stream = runs.log_stream(&id, 0, follow);
            let mut out = std::io::stdout().lock();
            let mut partial: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(failure)?;
                if format == ListFormat::Text {
                    if out.write_all(&chunk).is_err() {
                        return Ok(());
                    }
                    let _ = out.flush();
                    continue;
                }
                partial.extend_from_slice(&chunk);
                let complete = partial
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                for line in partial[..complete]
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    if let Some(l) = kondate_apps::parse_line(line) {
                        let _ = writeln!(out, "{}", serde_json::to_string(&l)?);
                    }
                }
                partial.drain(..complete);
            }
            Ok(())
        }
    }
}

fn print_run(r: &RunInfo) {
    println!("run       {}", r.id);
    println!(
        "app       {} (attempt {}, {} runner)",
        r.app, r.attempt, r.runner
    );
    println!("status    {}", r.status.as_str());
    if let Some(c) = r.exit_code {
        println!("exit      {c}");
    }
    println!("command   {}", command_line(&r.command));
    println!("started   {} by {} on {}", r.started_at, r.actor, r.host);
    if let Some(e) = &r.ended_at {
        println!(
            "ended     {e} ({:.1} s)",
            r.duration_ms.unwrap_or(0) as f64 / 1000.0
        );
    }
    if let Some(p) = r.peak_memory_bytes {
        println!("peak      {:.1} MiB", p as f64 / 1048576.0);
    }
    if let Some(k) = &r.log_key {
        println!(
            "log       {k} ({} bytes): kondate apps logs {}",
            r.log_bytes.unwrap_or(0),
            r.id
        );
    }
    if let Some(e) = &r.error {
        println!("error     {e}");
    }
}

fn report_run(info: &RunInfo, format: ListFormat) -> CmdResult {
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(info)?);
    } else {
        eprintln!(
            "kondate: run {} {}{} — `kondate apps logs {}`",
            info.id,
            info.status.as_str(),
            info.exit_code
                .map_or(String::new(), |c| format!(" (exit {c})")),
            info.id
        );
    }
    Ok(())
}

/// The exit code of `kondate apps run`: the run's own (see `Exit::code`).
fn finish_code(info: &RunInfo) -> CmdResult {
    let code = info.exit_code.unwrap_or(1);
    if code == 0 {
        return Ok(());
    }
    let definition_error = info
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("definition:"));
    Err(Failure {
        code: if definition_error {
            crate::exit::INVALID
        } else {
            code.clamp(1, 255) as u8
        },
        message: match &info.error {
            // The command's own failure: its output said why; kondate adds nothing.
            Some(e) if e.starts_with("exited with status") => String::new(),
            Some(e) => e.clone(),
            None => String::new(),
        },
    })
}
