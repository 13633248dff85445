//! `kondate results …`

use std::path::PathBuf;

use clap::Subcommand;
use kondate_core::artifact::ModelRef;
use kondate_results::{Publish, ResultTable, ResultsError, WriteMeta, WriteOptions};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum ResultsCmd {
    /// List the result tables declared in results/.
    #[command(after_help = "Example:\n  kondate results list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Upsert rows from CSV, JSON-lines or Parquet files into a result table (created on first write), all files
    /// in one transaction, each row stamped with the model and run that produced it.
    #[command(
        after_help = "Examples:\n  kondate results write recipe_categories predictions.csv --model recipe-clf@production\n  kondate results write recipe_categories part-*.csv --model recipe-clf@3 --run-id nightly-2026-11-27\n\nThe header names the declared columns (results/NAME.toml), in any order. A bad cell, an\nempty key or a key repeated in the input stops the write with its file, line and column,\nand nothing is written. Inside `kondate apps run`, --run-id defaults to the run's id.\n\n  kondate results write recipe_categories all.csv --publish swap --prune   # exactly these rows, at once"
    )]
    Write {
        name: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The model that produced the rows, NAME[@N|@ALIAS]; recorded as its version number.
        #[arg(long)]
        model: Option<String>,
        /// The run that produced the rows (default: KONDATE_RUN_ID inside an app run).
        #[arg(long, env = "KONDATE_RUN_ID")]
        run_id: Option<String>,
        /// upsert: rows change in place, all at the commit; swap: the new table replaces
        /// the old one at once (default: the declaration's `publish`, else upsert).
        #[arg(long, value_enum)]
        publish: Option<PublishArg>,
        /// Remove the rows whose keys this write does not contain.
        #[arg(long)]
        prune: bool,
        /// Add the columns the declaration gained since the table was created (new
        /// nullable columns only; other changes are refused).
        #[arg(long)]
        migrate: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Copy a result table into the warehouse: the rows changed since the last export,
    /// merged by the table's key (the first export, and the first after a write removed
    /// rows, copy the whole table).
    #[command(
        after_help = "Examples:\n  kondate results export recipe_categories\n  kondate results export recipe_categories --since 2026-11-01\n  kondate results export recipe_categories --full --format json\n\nThe warehouse table is the declaration's `warehouse_table` (default: the table's name).\nEmbedded warehouse: a Parquet table; PostgreSQL: COPY into it; Redshift: the rows are\nstaged as Parquet in S3 and loaded with COPY … FORMAT AS PARQUET."
    )]
    Export {
        name: String,
        /// Copy the rows stamped at or after this time (RFC 3339, or YYYY-MM-DD for midnight
        /// UTC) and merge them, whatever the last export copied.
        #[arg(long, conflicts_with = "full")]
        since: Option<String>,
        /// Copy the whole table and replace the warehouse's.
        #[arg(long)]
        full: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
}

impl ResultsCmd {
    /// What the command needs (see `cli_access`).
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            ResultsCmd::List { .. } => CliNeed::none(),
            ResultsCmd::Write { name, prune, .. } => {
                let need = CliNeed::change(ResultsWrite, name, "results.write");
                if *prune { need.and(ResultsPrune) } else { need }
            }
            ResultsCmd::Export { name, .. } => {
                CliNeed::change(ResultsWrite, name, "results.export")
            }
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PublishArg {
    Upsert,
    Swap,
}

fn failure(e: ResultsError) -> Failure {
    if e.is_invalid_input() {
        Failure::invalid(e.to_string())
    } else {
        Failure::from(e)
    }
}

pub async fn run(services: &Services, cmd: ResultsCmd) -> CmdResult {
    let project = &services.project;
    match cmd {
        ResultsCmd::List { format } => {
            let all = ResultTable::load_all(&project.root).map_err(failure)?;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("No result tables; declare one in results/NAME.toml");
            } else {
                println!("{:<24} {:<24} {:<20} COLUMNS", "NAME", "TABLE", "KEY");
                for t in all {
                    let cols: Vec<String> = t
                        .columns
                        .iter()
                        .map(|c| format!("{}:{}", c.name, c.ty.as_str()))
                        .collect();
                    println!(
                        "{:<24} {:<24} {:<20} {}",
                        t.name,
                        t.table,
                        t.key.join(","),
                        cols.join(" ")
                    );
                }
            }
            Ok(())
        }
        ResultsCmd::Write {
            name,
            files,
            model,
            run_id,
            publish,
            prune,
            migrate,
            format,
        } => {
            let results = services.results().await?;
            let decl = results.declaration(&name).map_err(failure)?;
            let (model_name, model_version) = match &model {
                None => (None, None),
                Some(r) => {
                    let r = ModelRef::parse(r).map_err(|e| Failure::invalid(e.to_string()))?;
                    let models = services.models().await?;
                    let v = models.resolve(&r).await.map_err(|e| {
                        if e.is_invalid_input() {
                            Failure::invalid(e.to_string())
                        } else {
                            Failure::from(e)
                        }
                    })?;
                    (Some(r.name.clone()), Some(v))
                }
            };
            let meta = WriteMeta {
                model_name,
                model_version,
                run_id,
            };
            let opts = WriteOptions {
                publish: match publish {
                    Some(PublishArg::Upsert) => Publish::Upsert,
                    Some(PublishArg::Swap) => Publish::Swap,
                    None => decl.publish,
                },
                prune,
                migrate,
            };
            let (_work, others) = services.begin_work("results write", &name).await?;
            let report = results
                .write_files(&decl, &files, &meta, opts)
                .await
                .map_err(|e| crate::output::while_others(failure(e), &others))?;
            crate::catalog_cmd::after_write(services, "service", &decl.table).await;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "wrote {} row(s) to {}{}{}{}",
                    report.rows,
                    report.table,
                    if report.created { " (created)" } else { "" },
                    match (report.publish, report.pruned) {
                        (Publish::Swap, p) => format!(", swapped in whole, {p} pruned"),
                        (Publish::Upsert, 0) => String::new(),
                        (Publish::Upsert, p) => format!(", {p} pruned"),
                    },
                    match (&meta.model_name, meta.model_version) {
                        (Some(n), Some(v)) => format!(" from {n}@{v}"),
                        _ => String::new(),
                    }
                );
            }
            Ok(())
        }
        ResultsCmd::Export {
            name,
            since,
            full,
            format,
        } => {
            let results = services.results().await?;
            let decl = results.declaration(&name).map_err(failure)?;
            let since_ms = since.as_deref().map(parse_since).transpose()?;
            let sink = services.export_sink(&decl).await?;
            let tmp = project.state_dir();
            std::fs::create_dir_all(&tmp)?;
            let opts = kondate_results::ExportOptions { since_ms, full };
            let (_work, others) = services.begin_work("results export", &name).await?;
            let report = results
                .export(&decl, &sink, opts, &tmp)
                .await
                .map_err(|e| crate::output::while_others(failure(e), &others))?;
            crate::catalog_cmd::after_write(services, "warehouse", &decl.warehouse_table).await;
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "exported {} row(s) of {} to {} ({}{}){}",
                    report.rows,
                    report.name,
                    report.target,
                    report.mode,
                    report
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    report
                        .through_ms
                        .map(|t| format!(", through {}", kondate_core::clock::ms_to_rfc3339(t)))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

/// `--since`: RFC 3339, or a date (midnight UTC).
fn parse_since(s: &str) -> Result<i64, Failure> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    Err(Failure::invalid(format!(
        "--since `{s}`: write a time as RFC 3339 (2026-11-27T09:00:00Z) or a date (2026-11-27)"
    )))
}
