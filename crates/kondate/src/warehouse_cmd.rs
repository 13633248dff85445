//! `kondate warehouse …`

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use kondate_warehouse::{InputFormat, LoadOptions, TableName, WarehouseError};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InFormat {
    Csv,
    Parquet,
    Jsonl,
}

#[derive(Subcommand)]
pub enum WarehouseCmd {
    /// Load CSV, Parquet or JSON-lines files into a table (replacing it unless --append).
    #[command(
        after_help = "Examples:\n  kondate warehouse load recipes.recipes data/recipes.csv\n  kondate warehouse load logs.events day1.jsonl day2.jsonl --append\n  kondate warehouse load s.t x.csv --schema 'id:bigint,title:text,published:timestamp'\n  kondate warehouse load recipes.scores changed.parquet --merge-key recipe_id"
    )]
    Load {
        /// SCHEMA.TABLE (or TABLE, in schema `public`).
        table: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Append instead of replacing; the columns must match the table's.
        #[arg(long)]
        append: bool,
        /// Input format (default: from the file extension).
        #[arg(long, value_enum)]
        format: Option<InFormat>,
        /// Columns and types instead of inference: `name:type,…` (smallint, int, bigint,
        /// float, double, numeric(P,S), text, bool, date, timestamp, timestamptz).
        #[arg(long)]
        schema: Option<String>,
        /// Merge by these key columns (comma-separated): rows whose key is in the input are
        /// replaced, the others kept, new keys added.
        #[arg(long, value_delimiter = ',', conflicts_with = "append")]
        merge_key: Vec<String>,
    },
    /// List tables with their row counts and columns.
    #[command(after_help = "Example:\n  kondate warehouse tables --format json")]
    Tables {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Drop a table and delete its files.
    #[command(after_help = "Example:\n  kondate warehouse drop recipes.recipes")]
    Drop { table: String },
}

impl WarehouseCmd {
    /// What the command needs (see `cli_access`): loading and dropping tables change the
    /// warehouse directly, which only admins may.
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            WarehouseCmd::Load { table, .. } => {
                CliNeed::change_every(Admin, Some(table), "warehouse.load")
            }
            WarehouseCmd::Drop { table } => {
                CliNeed::change_every(Admin, Some(table), "warehouse.drop")
            }
            WarehouseCmd::Tables { .. } => CliNeed::every(Query),
        }
    }
}

fn warehouse_failure(e: WarehouseError) -> Failure {
    match e {
        WarehouseError::Input { .. } | WarehouseError::Name(_) | WarehouseError::NoSuchTable(_) => {
            Failure::invalid(e.to_string())
        }
        e => Failure::from(e),
    }
}

pub async fn run(services: &Services, cmd: WarehouseCmd) -> CmdResult {
    let wh = services.warehouse().await?;
    match cmd {
        WarehouseCmd::Load {
            table,
            files,
            append,
            format,
            schema,
            merge_key,
        } => {
            let name = TableName::parse(&table).map_err(warehouse_failure)?;
            let opts = LoadOptions {
                format: format.map(|f| match f {
                    InFormat::Csv => InputFormat::Csv,
                    InFormat::Parquet => InputFormat::Parquet,
                    InFormat::Jsonl => InputFormat::JsonLines,
                }),
                append,
                schema,
                merge_key: (!merge_key.is_empty()).then_some(merge_key),
            };
            let spinner = crate::output::spinner(&format!("loading {name}"));
            let report = wh
                .load(&name, &files, &opts)
                .await
                .map_err(warehouse_failure);
            spinner.finish_and_clear();
            let report = report?;
            println!(
                "{} {} rows from {} file(s) into {}",
                if report.replaced {
                    "replaced with"
                } else {
                    "loaded"
                },
                report.rows,
                report.files,
                report.table
            );
        }
        WarehouseCmd::Tables { format } => {
            let tables = wh.tables().await.map_err(warehouse_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&tables)?),
                ListFormat::Text => {
                    println!("{:<40} {:>12} {:>12}  COLUMNS", "TABLE", "ROWS", "BYTES");
                    for t in tables {
                        let cols: Vec<String> = t
                            .columns
                            .iter()
                            .map(|c| format!("{} {}", c.name, c.redshift_type))
                            .collect();
                        println!(
                            "{:<40} {:>12} {:>12}  {}",
                            t.name,
                            t.rows.map(|r| r.to_string()).unwrap_or_default(),
                            t.bytes.map(|r| r.to_string()).unwrap_or_default(),
                            cols.join(", ")
                        );
                    }
                }
            }
        }
        WarehouseCmd::Drop { table } => {
            let name = TableName::parse(&table).map_err(warehouse_failure)?;
            if wh.drop_table(&name).await.map_err(warehouse_failure)? {
                println!("dropped {name}");
            } else {
                return Err(Failure::invalid(format!(
                    "table {name} does not exist; `kondate warehouse tables` lists the tables"
                )));
            }
        }
    }
    Ok(())
}
