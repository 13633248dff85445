//! `kondate catalog …`: the metadata of the warehouse and the service database, imported
//! and kept with the history of its changes (kondate-catalog).

use clap::Subcommand;
use kondate_catalog::{
    Catalog, CatalogError, Filter, SyncReport, TablePage, import_database, import_warehouse,
};
use kondate_core::WarehouseKind;
use kondate_db::Database;

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

/// The sources the catalog reads: the configured warehouse and service database.
const SOURCES: [&str; 2] = ["warehouse", "service"];

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Import the metadata of the warehouse and the service database (or of one): schemas,
    /// tables, views and columns with their types, defaults, comments and row counts from
    /// the engine's statistics; record what changed since the last sync.
    #[command(
        after_help = "Examples:\n  kondate catalog sync\n  kondate catalog sync warehouse --format json\n\nSources: `warehouse` (the configured warehouse) and `service` (the service database).\nA source that cannot be read fails its sync, recorded with its error (exit 1); the\nother source still syncs, and the catalog keeps what it had. A table that is gone is\nunlinked, never deleted: its history stays."
    )]
    Sync {
        /// `warehouse` or `service` (default: both).
        source: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// A table or view: its columns (type, NULL, default, comment), row count, comment, a
    /// view's SQL, and the history of its schema.
    #[command(
        after_help = "Examples:\n  kondate catalog show recipe_categories\n  kondate catalog show warehouse.recipes.recipes --format json\n\nNAME is TABLE, SCHEMA.TABLE or SOURCE.SCHEMA.TABLE; a name that fits more than one table\nlists them (exit 2)."
    )]
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// The syncs recorded, newest first, with their errors.
    #[command(
        after_help = "Examples:\n  kondate catalog syncs\n  kondate catalog syncs warehouse --format json"
    )]
    Syncs {
        source: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
}

impl CatalogCmd {
    /// What the command needs (see `cli_access`): a sync changes the catalog; reading it is
    /// what anyone who may query may do.
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            CatalogCmd::Sync { source, .. } => {
                CliNeed::change_every(CatalogEdit, source.as_deref(), "catalog.sync")
            }
            CatalogCmd::Show { .. } | CatalogCmd::Syncs { .. } => CliNeed::every(Query),
        }
    }
}

fn catalog_failure(e: CatalogError) -> Failure {
    match e {
        CatalogError::NotFound(_)
        | CatalogError::Ambiguous { .. }
        | CatalogError::Pattern { .. } => Failure::invalid(e.to_string()),
        e => Failure::from(e),
    }
}

/// A source that could not be opened, as its sync's failure.
fn unreachable(source: &str, f: Failure) -> CatalogError {
    CatalogError::Source {
        source_name: source.to_string(),
        message: f.message,
    }
}

async fn sync_one(
    services: &Services,
    catalog: &Catalog,
    source: &str,
) -> Result<SyncReport, CatalogError> {
    let filter = Filter::default();
    let config = &services.project.config;
    match source {
        "service" => match services.service_db().await {
            Ok(db) => {
                catalog
                    .sync(source, import_database(source, db, &filter))
                    .await
            }
            Err(f) => {
                catalog
                    .sync(source, async { Err(unreachable(source, f)) })
                    .await
            }
        },
        // A PostgreSQL warehouse is read from its catalog in full (comments, defaults,
        // views); the others as they list their tables.
        _ if config.warehouse.kind == WarehouseKind::Postgres => {
            let url = config.warehouse.url.clone().unwrap_or_default();
            match Database::connect(&url).await {
                Ok(db) => {
                    let report = catalog
                        .sync(source, import_database(source, &db, &filter))
                        .await;
                    db.close().await;
                    report
                }
                Err(e) => {
                    catalog
                        .sync(source, async { Err(unreachable(source, Failure::from(e))) })
                        .await
                }
            }
        }
        _ => match services.warehouse().await {
            Ok(wh) => {
                catalog
                    .sync(source, import_warehouse(source, wh.as_ref(), &filter))
                    .await
            }
            Err(f) => {
                catalog
                    .sync(source, async { Err(unreachable(source, f)) })
                    .await
            }
        },
    }
}

pub async fn run(services: &Services, cmd: CatalogCmd) -> CmdResult {
    let catalog = Catalog::new(services.state_db().await?.clone());
    match cmd {
        CatalogCmd::Sync { source, format } => {
            let sources: Vec<&str> = match source.as_deref() {
                None => SOURCES.to_vec(),
                Some(s) if SOURCES.contains(&s) => vec![s],
                Some(other) => {
                    return Err(Failure::invalid(format!(
                        "no catalog source {other:?}: the sources are `warehouse` (the configured warehouse) and `service` (the service database)"
                    )));
                }
            };
            let mut reports = Vec::new();
            let mut failures = Vec::new();
            for s in sources {
                match sync_one(services, &catalog, s).await {
                    Ok(r) => reports.push(r),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "syncs": reports,
                        "failures": failures,
                    }))?
                ),
                ListFormat::Text => {
                    for r in &reports {
                        println!(
                            "{}: {} tables and views, {} changes (sync {})",
                            r.source,
                            r.tables,
                            r.changes.len(),
                            r.sync_id
                        );
                        for c in &r.changes {
                            println!("  {:<10} {}{}", c.change, c.object, change_values(c));
                        }
                    }
                }
            }
            if !failures.is_empty() {
                return Err(Failure::from(failures.join("\n")));
            }
        }
        CatalogCmd::Show { name, format } => {
            let page = catalog.table(&name).await.map_err(catalog_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&page)?),
                ListFormat::Text => print_page(&page),
            }
        }
        CatalogCmd::Syncs { source, format } => {
            let syncs = catalog
                .syncs(source.as_deref())
                .await
                .map_err(catalog_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&syncs)?),
                ListFormat::Text => {
                    println!(
                        "{:>6}  {:<10} {:<8} {:>7} {:>8}  {:<20}  ERROR",
                        "ID", "SOURCE", "STATUS", "TABLES", "CHANGES", "STARTED"
                    );
                    for s in syncs {
                        println!(
                            "{:>6}  {:<10} {:<8} {:>7} {:>8}  {:<20}  {}",
                            s.id,
                            s.source,
                            s.status,
                            s.tables,
                            s.changes,
                            kondate_core::clock::ms_to_rfc3339(s.started_at_ms),
                            s.error.unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn change_values(c: &kondate_catalog::Change) -> String {
    match (&c.before, &c.after) {
        (Some(b), Some(a)) => format!(": {b} → {a}"),
        (None, Some(a)) => format!(" ({a})"),
        (Some(b), None) => format!(" (was {b})"),
        (None, None) => String::new(),
    }
}

fn print_page(page: &TablePage) {
    let rows = page
        .row_count
        .map(|n| format!(", about {n} rows"))
        .unwrap_or_default();
    let gone = if page.linked {
        ""
    } else {
        ", gone from its source"
    };
    println!(
        "{}.{}.{} ({}{rows}{gone})",
        page.source, page.schema, page.name, page.kind
    );
    if let Some(c) = &page.comment {
        println!("{c}");
    }
    println!();
    println!(
        "{:<30} {:<28} {:<8} {:<20} COMMENT",
        "COLUMN", "TYPE", "NULL", "DEFAULT"
    );
    for c in &page.columns {
        let null = match c.nullable {
            Some(true) => "yes",
            Some(false) => "no",
            None => "",
        };
        let name = if c.linked {
            c.name.clone()
        } else {
            format!("{} (gone)", c.name)
        };
        println!(
            "{:<30} {:<28} {:<8} {:<20} {}",
            name,
            c.data_type.as_deref().unwrap_or(""),
            null,
            c.default.as_deref().unwrap_or(""),
            c.comment.as_deref().unwrap_or("")
        );
    }
    if let Some(d) = &page.definition {
        println!("\nDefinition:\n{d}");
    }
    if !page.history.is_empty() {
        println!("\nHistory:");
        for c in &page.history {
            println!(
                "  {}  sync {:<5} {:<10} {}{}",
                kondate_core::clock::ms_to_rfc3339(c.at_ms),
                c.sync_id,
                c.change,
                c.object,
                change_values(c)
            );
        }
    }
}
