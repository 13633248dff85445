//! `kondate results …`

use std::path::PathBuf;

use clap::Subcommand;
use kondate_core::Project;
use kondate_core::artifact::ModelRef;
use kondate_db::Database;
use kondate_results::input::read_files;
use kondate_results::{Publish, ResultTable, ResultsError, WriteMeta, WriteOptions};

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

pub async fn run(project: Project, cmd: ResultsCmd) -> CmdResult {
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
            let decl = ResultTable::load(&project.root, &name).map_err(failure)?;
            let rows = read_files(&decl, &files).map_err(failure)?;
            let (model_name, model_version) = match &model {
                None => (None, None),
                Some(r) => {
                    let r = ModelRef::parse(r).map_err(|e| Failure::invalid(e.to_string()))?;
                    let models = kondate_models::Models::open(&project.config).await?;
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
            let db = Database::connect(&project.config.service.url).await?;
            let meta = WriteMeta {
                model_name,
                model_version,
                run_id,
            };
            let now = chrono::Utc::now().timestamp_millis();
            let opts = WriteOptions {
                publish: match publish {
                    Some(PublishArg::Upsert) => Publish::Upsert,
                    Some(PublishArg::Swap) => Publish::Swap,
                    None => decl.publish,
                },
                prune,
                migrate,
            };
            let report = kondate_results::table::write(&db, &decl, &rows, &meta, opts, now)
                .await
                .map_err(failure)?;
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
    }
}
