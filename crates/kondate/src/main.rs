//! The `kondate` binary: command-line parsing and wiring only; the work happens in the
//! library crates.

mod apps_cmd;
mod audit_cmd;
mod catalog_cmd;
mod cli;
mod cli_access;
mod demo;
mod demo_data;
mod job_actions;
mod jobs_cmd;
mod jobs_loop;
mod labels_cmd;
mod models_cmd;
mod output;
mod processes_cmd;
mod query_cmd;
mod results_cmd;
mod results_sink;
mod serve_cmd;
mod services;
mod tokens_cmd;
mod users_cmd;
mod warehouse_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
pub use cli::{CmdResult, Failure, ListFormat, actor, exit, init_logging, load_project};
use cli_access::{CliNeed, guarded};
use services::Services;

#[derive(Parser)]
#[command(
    name = "kondate",
    version,
    about = "kondate: from labelled data to a production table, on a schedule",
    long_about = "kondate takes a machine-learning model from labelled data to a production \
                  table: label sync, a safe bulk query API over the warehouse, training, a model \
                  registry, batch inference and result tables — scheduled and documented.",
    after_help = "Examples:\n  kondate demo                    # everything on the embedded defaults\n  kondate init myproject && cd myproject\n  kondate serve\n  kondate query \"SELECT count(*) FROM recipes.recipes\""
)]
pub(crate) struct Cli {
    /// Project folder (default: the nearest folder upwards holding kondate.toml).
    #[arg(long, global = true, env = "KONDATE_PROJECT")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project: kondate.toml, apps/, jobs/, labels/ and embedded state in .kondate/.
    #[command(after_help = "Example:\n  kondate init myproject")]
    Init {
        /// Folder to create the project in.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the whole flow on the embedded defaults in DIR and print a report.
    #[command(
        after_help = "Example:\n  kondate demo            # in ./kondate-demo\n  kondate demo /tmp/d --serve"
    )]
    Demo(demo::DemoArgs),
    /// Start the HTTP server (query API, signed downloads, /healthz, /metrics, OpenAPI).
    #[command(after_help = "Example:\n  kondate serve --listen 127.0.0.1:7878")]
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a read-only SELECT and write its rows (through the server if server.url is set).
    #[command(
        after_help = "Examples:\n  kondate query \"SELECT * FROM recipes.recipes WHERE id < ?\" --value 10\n  kondate query \"SELECT * FROM recipes.recipes\" --format parquet --out recipes.parquet\n  kondate query \"SELECT 1\" --server http://127.0.0.1:7878   # token from KONDATE_TOKEN / KONDATE_TOKEN_SECRET"
    )]
    Query(query_cmd::QueryArgs),
    /// Label sets: annotators' spreadsheets synced into the service database, with revisions.
    #[command(subcommand)]
    Labels(labels_cmd::LabelsCmd),
    /// The model registry: push, list, show, pull, aliases, delete, gc.
    #[command(subcommand)]
    Models(models_cmd::ModelsCmd),
    /// Apps: Hako-style Jsonnet definitions in apps/, run here or rendered for ECS,
    /// Kubernetes or Docker; every run recorded with its log.
    #[command(subcommand)]
    Apps(apps_cmd::AppsCmd),
    /// Jobs: kuroko2-style workflows in jobs/NAME.jsonnet with cron schedules in a time
    /// zone (the scheduler that launches them is being built; docs/jobs.md).
    #[command(subcommand)]
    Jobs(jobs_cmd::JobsCmd),
    /// Run job steps: take steps of the given queues from the state database and run them
    /// until SIGTERM/SIGINT (the step running then runs to its end).
    #[command(
        after_help = "Examples:\n  kondate worker\n  kondate worker --queue gpu --queue default\n  kondate worker --until-idle   # run the steps waiting now, then exit"
    )]
    Worker(jobs_cmd::WorkerArgs),
    /// Result tables: inference output upserted into the service database, stamped with the
    /// model and run that produced it.
    #[command(subcommand)]
    Results(results_cmd::ResultsCmd),
    /// Manage the embedded warehouse's tables.
    #[command(subcommand)]
    Warehouse(warehouse_cmd::WarehouseCmd),
    /// The catalog: the warehouse's and the service database's schemas, tables, views and
    /// columns, imported with the history of their changes.
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCmd),
    /// API tokens: credentials for programs, owned by a user, with scopes.
    #[command(subcommand)]
    Tokens(tokens_cmd::TokensCmd),
    /// Users: people, by e-mail, with roles (viewer, editor, admin) and scopes.
    #[command(subcommand)]
    Users(users_cmd::UsersCmd),
    /// The audit trail: every change and refusal, with who, what, on what and when.
    #[command(
        after_help = "Examples:\n  kondate audit --since 24h\n  kondate audit --actor 'token:*' --outcome denied\n  kondate audit --target recipe-category@production --format json"
    )]
    Audit(audit_cmd::AuditArgs),
    /// The kondate processes sharing the state database: live, stopped and lost, each with
    /// the queries it owns.
    #[command(
        after_help = "Examples:\n  kondate processes\n  kondate processes --since 7d --format json"
    )]
    Processes(processes_cmd::ProcessesArgs),
    /// The reference recipe project's jobs (examples/recipes), built into kondate so that
    /// `kondate demo` runs them as apps without a second build; they talk to the server
    /// like any job, through the client and the run's token.
    #[command(hide = true)]
    ExampleJob {
        #[arg(value_enum)]
        job: ExampleJob,
    },
}

/// Named as the example's binaries are (`recipes-train` …).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(clippy::enum_variant_names)]
enum ExampleJob {
    RecipesTrain,
    RecipesInfer,
    RecipesNormalise,
}

/// What `command` needs of whoever runs it: the one place the dispatcher below takes it
/// from (tested for every command against `tests/command_scopes.txt`).
fn need(command: &Command) -> CliNeed {
    use kondate_access::ScopeKind;
    match command {
        // They make a project (or run the demo's own), touching no existing one; an example
        // job acts through the server with its run's token, which the server checks.
        Command::Init { .. } | Command::Demo(_) | Command::ExampleJob { .. } => CliNeed::none(),
        // Serving hands out everything the project holds: the operator's (admin's).
        Command::Serve { .. } => CliNeed::every(ScopeKind::Admin),
        Command::Query(_) => query_cmd::need(),
        Command::Labels(cmd) => cmd.need(),
        Command::Models(cmd) => cmd.need(),
        Command::Apps(cmd) => cmd.need(),
        Command::Jobs(cmd) => cmd.need(),
        Command::Worker(args) => args.need(),
        Command::Results(cmd) => cmd.need(),
        Command::Warehouse(cmd) => cmd.need(),
        Command::Catalog(cmd) => cmd.need(),
        Command::Tokens(cmd) => cmd.need(),
        Command::Users(cmd) => cmd.need(),
        Command::Audit(args) => args.need(),
        Command::Processes(args) => args.need(),
    }
}

async fn run(cli: Cli) -> CmdResult {
    let project = cli.project.as_deref();
    let need = need(&cli.command);
    match cli.command {
        Command::Init { dir } => {
            let p =
                kondate_core::Project::init(&dir).map_err(|e| Failure::invalid(e.to_string()))?;
            println!(
                "Created kondate project `{}` in {}",
                p.config.project.name,
                p.root.display()
            );
            println!("Next: cd {} && kondate serve", dir.display());
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Serve { listen } => {
            // Serving hands out everything the project holds: the operator's (admin's).
            let mut p = load_project(project)?;
            if let Some(l) = listen {
                p.config.server.listen = l;
            }
            let services = std::sync::Arc::new(Services::new(p));
            guarded(&services, need, serve_cmd::run(&services)).await
        }
        Command::Query(args) => query_cmd::run(project, args, need).await,
        Command::Labels(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, labels_cmd::run(&services, cmd)).await
        }
        Command::Models(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, models_cmd::run(&services, cmd)).await
        }
        Command::Apps(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, apps_cmd::run(&services, cmd)).await
        }
        Command::Jobs(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, jobs_cmd::run(&services, cmd)).await
        }
        Command::Worker(args) => {
            let services = std::sync::Arc::new(Services::new(load_project(project)?));
            guarded(&services, need, jobs_cmd::worker(&services, args)).await
        }
        Command::Results(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, results_cmd::run(&services, cmd)).await
        }
        Command::Warehouse(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, warehouse_cmd::run(&services, cmd)).await
        }
        Command::Catalog(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, catalog_cmd::run(&services, cmd)).await
        }
        Command::Tokens(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, tokens_cmd::run(&services, cmd)).await
        }
        Command::Users(cmd) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, users_cmd::run(&services, cmd)).await
        }
        Command::Audit(args) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, audit_cmd::run(&services, args)).await
        }
        Command::Processes(args) => {
            let services = Services::new(load_project(project)?);
            guarded(&services, need, processes_cmd::run(&services, args)).await
        }
        Command::ExampleJob { job } => {
            use kondate_example_recipes::jobs;
            let client = kondate_client::Client::from_env().map_err(output::client_failure)?;
            let report = match job {
                ExampleJob::RecipesTrain => serde_json::to_string(
                    &jobs::train(&client).await.map_err(output::client_failure)?,
                ),
                ExampleJob::RecipesInfer => serde_json::to_string(
                    &jobs::infer(&client).await.map_err(output::client_failure)?,
                ),
                ExampleJob::RecipesNormalise => serde_json::to_string(
                    &jobs::normalise(&client)
                        .await
                        .map_err(output::client_failure)?,
                ),
            }?;
            println!("{report}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The long-running processes log what they do; a one-shot command's report is its output.
    let daemon = match &cli.command {
        Command::Serve { .. } => true,
        Command::Worker(w) => !w.until_idle,
        _ => false,
    };
    init_logging(if daemon { "info" } else { "warn" });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("error: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// (command words, arguments, scopes) of each line of the table.
    fn table() -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
        include_str!("../tests/command_scopes.txt")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let parts: Vec<&str> = l.split('|').map(str::trim).collect();
                assert_eq!(parts.len(), 3, "command_scopes.txt: `{l}`");
                let words = |s: &str| s.split_whitespace().map(str::to_string).collect();
                let scopes = if parts[2] == "-" {
                    Vec::new()
                } else {
                    words(parts[2])
                };
                (words(parts[0]), words(parts[1]), scopes)
            })
            .collect()
    }

    /// Every command that runs something (no further subcommands), as its words.
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(path);
            return;
        }
        for c in subs {
            let mut p = path.clone();
            p.push(c.get_name().to_string());
            leaves(c, p, out);
        }
    }

    #[test]
    fn every_command_declares_the_scopes_it_needs() {
        let table = table();
        let mut all = Vec::new();
        leaves(&Cli::command(), Vec::new(), &mut all);
        let missing: Vec<String> = all
            .iter()
            .filter(|words| !table.iter().any(|(w, _, _)| w == *words))
            .map(|w| w.join(" "))
            .collect();
        assert!(
            missing.is_empty(),
            "commands without a line in tests/command_scopes.txt (say what they need): {missing:?}"
        );
        for (words, args, scopes) in &table {
            let line = format!("kondate {} {}", words.join(" "), args.join(" "));
            let cli = Cli::try_parse_from(
                std::iter::once("kondate".to_string())
                    .chain(words.iter().cloned())
                    .chain(args.iter().cloned()),
            )
            .unwrap_or_else(|e| panic!("`{line}` does not parse: {e}"));
            assert_eq!(&need(&cli.command).scopes_text(), scopes, "`{line}`");
        }
    }
}
