//! `kondate catalog …`: the metadata of the warehouse and the service database, imported
//! and kept with the history of its changes (kondate-catalog).

use clap::Subcommand;
use kondate_catalog::{
    Catalog, CatalogError, DocFilesReport, Filter, SearchQuery, SyncReport, TablePage, Target,
    import_database, import_warehouse,
};
use kondate_core::WarehouseKind;
use kondate_db::Database;

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

/// The sources the catalog reads: the configured warehouse and service database, then the
/// databases declared in `[catalog.sources.NAME]` with a URL, by name.
pub fn sources(config: &kondate_core::Config) -> Vec<String> {
    let mut out: Vec<String> = kondate_core::config::BUILT_IN_CATALOG_SOURCES
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.extend(
        config
            .catalog
            .sources
            .keys()
            .filter(|k| !out.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    out
}

/// The tables `source` keeps, from its `include` and `ignore` patterns.
fn filter_of(config: &kondate_core::Config, source: &str) -> Result<Filter, CatalogError> {
    match config.catalog.sources.get(source) {
        Some(s) => Filter::new(source, s.include.as_deref(), &s.ignore).map_err(|e| match e {
            CatalogError::Pattern {
                source_name,
                pattern,
                message,
            } => CatalogError::Invalid(format!(
                "catalog.sources.{source_name} in kondate.toml: {pattern:?} is not a regular \
                 expression: {message}"
            )),
            e => e,
        }),
        None => Ok(Filter::default()),
    }
}

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
    /// view's SQL, and the history of its schema. A table kondate writes says what writes
    /// it: a label table its label set, sheet and latest revision; a result table its apps,
    /// jobs, schedule, owners, last writes with their model version, and whether it is late.
    /// `model:NAME` shows a model's versions with the label revisions each learned from and
    /// the tables it wrote.
    #[command(
        after_help = "Examples:\n  kondate catalog show recipe_categories\n  kondate catalog show warehouse.recipes.recipes --format json\n  kondate catalog show model:recipe-category\n\nNAME is TABLE, SCHEMA.TABLE or SOURCE.SCHEMA.TABLE; a name that fits more than one table\nlists them (exit 2). model:NAME needs models:read on the model."
    )]
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Read or write the Markdown description of a table, a column, a schema, a source or a
    /// glossary keyword. With --file or --text it is set (a new revision); without, shown.
    #[command(
        after_help = "Examples:\n  kondate catalog describe recipe_categories\n  kondate catalog describe recipe_categories --file docs/recipe_categories.md\n  kondate catalog describe recipe_categories.score --text 'The probability, 0-1.' --base-version 2\n  kondate catalog describe keyword:主菜 --text 'The main dish of a meal.'\n  git show HEAD:docs/x.md | kondate catalog describe x --file -\n\nNAME is TABLE, SCHEMA.TABLE, SOURCE.SCHEMA.TABLE, any of those followed by .COLUMN,\nschema:SOURCE.SCHEMA, source:SOURCE or keyword:NAME (a glossary keyword, made by\ndescribing it; its name becomes a link in every description).\n\n--base-version is the version your edit started from (as shown); when someone else\nedited it since, the edit is refused with the difference (exit 5) and nothing changes.\nA table documented by a project file docs/NAME.md is set from that file by each\n`kondate catalog sync` when the file changes; an edit here says so."
    )]
    Describe {
        name: String,
        /// Markdown file to set the description from (`-`: standard input).
        #[arg(long, conflicts_with = "text")]
        file: Option<std::path::PathBuf>,
        /// Markdown text to set the description to.
        #[arg(long)]
        text: Option<String>,
        /// The version the edit started from; a newer one is not overwritten.
        #[arg(long)]
        base_version: Option<i64>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// The history of a description (every revision: who, when, the diff) and, for a table,
    /// of its schema (columns added, removed, retyped, with the sync that saw it).
    #[command(
        after_help = "Examples:\n  kondate catalog history recipe_categories\n  kondate catalog history recipe_categories.score --format json"
    )]
    History {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Search names, database comments, descriptions and keywords at every level, in any
    /// language: exact names first, then names starting with the words, then described
    /// objects, then the rest.
    #[command(
        after_help = "Examples:\n  kondate catalog search recipe\n  kondate catalog search 主菜 --kind column\n  kondate catalog search score --source warehouse --format json\n\nEvery word must be found; a word with dots (recipes.title) is matched against the\nobject's full name. Exit 0 with no hits when nothing matches."
    )]
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        /// Only objects of this source (`warehouse`, `service`).
        #[arg(long)]
        source: Option<String>,
        /// Only `schema`, `table`, `view`, `column` or `keyword`.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many hits.
        #[arg(long, default_value_t = 30)]
        limit: usize,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Where tables come from: sheet → label table → model version → result table →
    /// warehouse copy, as recorded; the whole project's, or what is connected to NAME.
    #[command(
        after_help = "Examples:\n  kondate catalog lineage\n  kondate catalog lineage recipe_categories --svg lineage.svg\n  kondate catalog lineage model:recipe-category@3 --format json\n\nNAME is a table as `catalog show` takes it, or a node of the graph: labels:SET,\nresult:NAME, model:NAME@VERSION, warehouse:TABLE."
    )]
    Lineage {
        name: Option<String>,
        /// Also draw it as SVG into this file (`-`: standard output, instead of the text).
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Delete a table, view or column that is gone from its source (unlinked) from the
    /// catalog, with its history and descriptions. Needs catalog:edit on its full name.
    #[command(
        after_help = "Examples:\n  kondate catalog delete warehouse.scratch.old_events\n  kondate catalog delete recipes.legacy_flag --format json\n\nOnly what a sync found gone is deleted (a table still in its source would come back\nat the next sync: exit 2). The deletion is in the audit trail."
    )]
    Delete {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Mark a table (or any object) a favourite of yours, or with --remove no longer.
    #[command(
        after_help = "Examples:\n  kondate catalog favourite recipe_categories\n  kondate catalog favourite warehouse.results.recipe_categories --remove\n\nFavourites are kept per person: a token's favourites are its owner's."
    )]
    Favourite {
        name: String,
        #[arg(long)]
        remove: bool,
    },
    /// Your favourites, most recently marked first.
    #[command(
        after_help = "Examples:\n  kondate catalog favourites\n  kondate catalog favourites --format json"
    )]
    Favourites {
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
            CatalogCmd::Describe {
                name, file, text, ..
            } if file.is_some() || text.is_some() => {
                CliNeed::change_resolved(CatalogEdit, name, "catalog.describe")
            }
            CatalogCmd::Delete { name, .. } => {
                CliNeed::change_resolved(CatalogEdit, name, "catalog.delete")
            }
            CatalogCmd::Favourite { name, .. } => {
                CliNeed::change_every(Query, Some(name), "catalog.favourite")
            }
            // It shows label sets and models by name: what reading those needs.
            CatalogCmd::Lineage { .. } => CliNeed::every(Query)
                .and_every(LabelsRead)
                .and_every(ModelsRead),
            CatalogCmd::Show { .. }
            | CatalogCmd::Favourites { .. }
            | CatalogCmd::Syncs { .. }
            | CatalogCmd::Describe { .. }
            | CatalogCmd::History { .. }
            | CatalogCmd::Search { .. } => CliNeed::every(Query),
        }
    }
}

fn catalog_failure(e: CatalogError) -> Failure {
    match e {
        CatalogError::NotFound(_)
        | CatalogError::NoLineage(_)
        | CatalogError::Ambiguous { .. }
        | CatalogError::Invalid(_)
        | CatalogError::Pattern { .. } => Failure::invalid(e.to_string()),
        CatalogError::Stale { .. } => Failure::conflict(e.to_string()),
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
    filter: &Filter,
    only: Option<&[(String, String)]>,
) -> Result<SyncReport, CatalogError> {
    let config = &services.project.config;
    // A database read by URL: an extra source, or a PostgreSQL warehouse (read from its
    // catalog in full: comments, defaults, views).
    let url = match source {
        "service" => None,
        "warehouse" if config.warehouse.kind == WarehouseKind::Postgres => {
            Some(Ok(config.warehouse.url.clone().unwrap_or_default()))
        }
        "warehouse" => None,
        _ => Some(
            config
                .catalog
                .sources
                .get(source)
                .map(|s| s.url(source).map_err(|e| Failure::invalid(e.to_string())))
                .unwrap_or_else(|| Err(Failure::invalid(format!("no source {source}")))),
        ),
    };
    match (source, url) {
        (_, Some(Ok(url))) => match Database::connect(&url).await {
            Ok(db) => {
                let report =
                    run_sync(catalog, source, only, import_database(source, &db, filter)).await;
                db.close().await;
                report
            }
            Err(e) => {
                run_sync(catalog, source, only, async {
                    Err(unreachable(source, Failure::from(e)))
                })
                .await
            }
        },
        (_, Some(Err(f))) => {
            run_sync(catalog, source, only, async { Err(unreachable(source, f)) }).await
        }
        ("service", None) => match services.service_db().await {
            Ok(db) => run_sync(catalog, source, only, import_database(source, db, filter)).await,
            Err(f) => run_sync(catalog, source, only, async { Err(unreachable(source, f)) }).await,
        },
        (_, None) => match services.warehouse().await {
            Ok(wh) => {
                run_sync(
                    catalog,
                    source,
                    only,
                    import_warehouse(source, wh.as_ref(), filter),
                )
                .await
            }
            Err(f) => run_sync(catalog, source, only, async { Err(unreachable(source, f)) }).await,
        },
    }
}

/// A whole sync of `source`, or of the tables `only` names.
async fn run_sync<F>(
    catalog: &Catalog,
    source: &str,
    only: Option<&[(String, String)]>,
    import: F,
) -> Result<SyncReport, CatalogError>
where
    F: std::future::Future<Output = Result<Vec<kondate_catalog::ImportedTable>, CatalogError>>,
{
    match only {
        Some(only) => catalog.sync_tables(source, only, import).await,
        None => catalog.sync(source, import).await,
    }
}

/// After kondate wrote `table` (`TABLE` in any schema, or `SCHEMA.TABLE`) of `source`:
/// when the catalog is in use for that source (it has synced it before), sync that table
/// alone so that its page is current. Never fails the write: a failure is a warning.
pub async fn after_write(services: &Services, source: &str, table: &str) {
    if let Err(e) = sync_written(services, source, table).await {
        eprintln!(
            "warning: the catalog could not be updated for {source} {table} ({e}); the next `kondate catalog sync` will"
        );
    }
}

async fn sync_written(services: &Services, source: &str, table: &str) -> Result<(), String> {
    let catalog = Catalog::new(services.state_db().await.map_err(|f| f.message)?.clone());
    if !catalog
        .has_synced(source)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let (schema, name) = table.split_once('.').unwrap_or(("", table));
    let only = [(schema.to_string(), name.to_string())];
    let filter = filter_of(&services.project.config, source).map_err(|e| e.to_string())?;
    let r = sync_one(services, &catalog, source, &filter, Some(&only))
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(
        source,
        table,
        changes = r.changes.len(),
        "catalog updated after a write"
    );
    Ok(())
}

/// [`after_write`] for the API's write handlers, which log rather than print.
pub struct CatalogAfterWrite(pub std::sync::Arc<Services>);

#[async_trait::async_trait]
impl kondate_catalog::AfterWrite for CatalogAfterWrite {
    async fn table_written(&self, source: &str, table: &str) {
        if let Err(e) = sync_written(&self.0, source, table).await {
            tracing::warn!(source, table, error = %e,
                "the catalog could not be updated after a write; the next catalog sync will");
        }
    }
}

/// What syncing sources did.
pub struct Synced {
    pub reports: Vec<SyncReport>,
    /// One message per source that failed (its sync is recorded as failed).
    pub failures: Vec<String>,
    pub docs: DocFilesReport,
}

/// Sync `sources` (each on its own: one that fails leaves the others synced) and then
/// apply the project's `docs/*.md` files.
pub async fn sync_sources(
    services: &Services,
    catalog: &Catalog,
    sources: &[String],
) -> Result<Synced, Failure> {
    // Every pattern is checked before anything is synced.
    let config = &services.project.config;
    let filters = sources
        .iter()
        .map(|s| filter_of(config, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(catalog_failure)?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (s, filter) in sources.iter().zip(&filters) {
        match sync_one(services, catalog, s, filter, None).await {
            Ok(r) => reports.push(r),
            Err(e) => failures.push(e.to_string()),
        }
    }
    // The project's description files, once the catalog knows what they name.
    let docs = if reports.is_empty() {
        DocFilesReport::default()
    } else {
        let files = doc_files(&services.project.root)?;
        catalog
            .apply_doc_files(&files)
            .await
            .map_err(catalog_failure)?
    };
    Ok(Synced {
        reports,
        failures,
        docs,
    })
}

pub async fn run(services: &Services, cmd: CatalogCmd) -> CmdResult {
    let catalog = Catalog::new(services.state_db().await?.clone());
    match cmd {
        CatalogCmd::Sync { source, format } => {
            let all = sources(&services.project.config);
            let sources: Vec<String> = match source {
                None => all,
                Some(s) if all.contains(&s) => vec![s],
                Some(other) => {
                    return Err(Failure::invalid(format!(
                        "no catalog source {other:?}: the sources are {} (`warehouse` is the configured warehouse, `service` the service database, others [catalog.sources.NAME] in kondate.toml)",
                        all.join(", ")
                    )));
                }
            };
            let Synced {
                reports,
                failures,
                docs,
            } = sync_sources(services, &catalog, &sources).await?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "syncs": reports,
                        "docs": docs,
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
                    for (file, target) in &docs.applied {
                        println!("described {target} from {file}");
                    }
                    for file in &docs.unmatched {
                        println!(
                            "warning: {file} names no table or column in the catalog (docs/NAME.md, NAME as `kondate catalog describe` takes it)"
                        );
                    }
                }
            }
            if !failures.is_empty() {
                return Err(Failure::from(failures.join("\n")));
            }
        }
        CatalogCmd::Show { name, format } => {
            if let Some(model) = name.strip_prefix("model:") {
                crate::cli_access::require_on(kondate_access::ScopeKind::ModelsRead, model)?;
                let (labels, models, results) = (
                    services.labels().await?,
                    services.models().await?,
                    services.results().await?,
                );
                let jobs = project_jobs(services);
                let mut page = written_context(services, &labels, &models, &results, &jobs)
                    .model_page(model)
                    .await
                    .map_err(catalog_failure)?;
                let who = crate::cli_access::principal_now();
                page.retain_readable(&|set| {
                    who.allows(kondate_access::ScopeKind::LabelsRead, Some(set))
                });
                match format {
                    ListFormat::Json => println!("{}", serde_json::to_string_pretty(&page)?),
                    ListFormat::Text => print_model_page(&page),
                }
                return Ok(());
            }
            let mut page = catalog.table(&name).await.map_err(catalog_failure)?;
            page.kondate = about(services, &page).await;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&page)?),
                ListFormat::Text => print_page(&page),
            }
        }
        CatalogCmd::Describe {
            name,
            file,
            text,
            base_version,
            format,
        } => {
            let target = catalog.resolve(&name).await.map_err(catalog_failure)?;
            let body = match (&file, text) {
                (Some(path), _) if path.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                        Failure::invalid(format!(
                            "reading the description from standard input: {e}"
                        ))
                    })?;
                    Some(s)
                }
                (Some(path), _) => Some(std::fs::read_to_string(path).map_err(|e| {
                    Failure::invalid(format!(
                        "{}: {e}; --file takes a Markdown file (UTF-8)",
                        path.display()
                    ))
                })?),
                (None, text) => text,
            };
            match body {
                Some(body) => {
                    // A `catalog:edit` pattern is matched against the full name.
                    crate::cli_access::require_on(
                        kondate_access::ScopeKind::CatalogEdit,
                        &target.to_string(),
                    )?;
                    let d = catalog
                        .describe(
                            &target,
                            &body,
                            base_version,
                            &crate::cli_access::actor(),
                            None,
                        )
                        .await
                        .map_err(catalog_failure)?;
                    if let Some(w) = &d.warning {
                        eprintln!("warning: {w}");
                    }
                    match format {
                        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
                        ListFormat::Text if d.changed => {
                            println!("{} described: version {}", d.doc.target, d.doc.version)
                        }
                        ListFormat::Text => println!(
                            "{}: unchanged (version {} already says this)",
                            d.doc.target, d.doc.version
                        ),
                    }
                }
                None => {
                    let doc = catalog.doc(&target).await.map_err(catalog_failure)?;
                    match format {
                        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
                        ListFormat::Text if doc.version == 0 => println!(
                            "{target} has no description yet: `kondate catalog describe {name} --file FILE.md` writes one"
                        ),
                        ListFormat::Text => {
                            println!(
                                "{target} — version {}, by {} at {}{}\n",
                                doc.version,
                                doc.updated_by.as_deref().unwrap_or(""),
                                kondate_core::clock::ms_to_rfc3339(doc.updated_at_ms.unwrap_or(0)),
                                doc.from_file
                                    .as_deref()
                                    .map(|f| format!(" (from {f})"))
                                    .unwrap_or_default()
                            );
                            print!("{}", doc.body);
                            if !doc.body.ends_with('\n') {
                                println!();
                            }
                        }
                    }
                }
            }
        }
        CatalogCmd::History { name, format } => {
            let target = catalog.resolve(&name).await.map_err(catalog_failure)?;
            let revisions = catalog
                .doc_history(&target)
                .await
                .map_err(catalog_failure)?;
            let schema = match &target {
                Target::Table { .. } => catalog
                    .page_of(&target)
                    .await
                    .map_err(catalog_failure)?
                    .map(|p| p.history)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "target": target,
                        "name": target.to_string(),
                        "descriptions": revisions,
                        "schema": schema,
                    }))?
                ),
                ListFormat::Text => {
                    if revisions.is_empty() {
                        println!("{target}: never described");
                    }
                    for r in &revisions {
                        println!(
                            "version {} by {} at {}{}",
                            r.version,
                            r.principal,
                            kondate_core::clock::ms_to_rfc3339(r.at_ms),
                            r.from_file
                                .as_deref()
                                .map(|f| format!(" (from {f})"))
                                .unwrap_or_default()
                        );
                        for line in r.diff.lines() {
                            println!("    {line}");
                        }
                    }
                    if !schema.is_empty() {
                        println!("\nSchema:");
                        for c in &schema {
                            print_change(c);
                        }
                    }
                }
            }
        }
        CatalogCmd::Search {
            words,
            source,
            kind,
            limit,
            format,
        } => {
            let results = catalog
                .search(&SearchQuery {
                    text: words.join(" "),
                    source,
                    kind,
                    limit,
                })
                .await
                .map_err(catalog_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
                ListFormat::Text => {
                    if results.hits.is_empty() {
                        println!("nothing found for {:?}", results.query);
                    }
                    for h in &results.hits {
                        println!("{:<8} {:<9} {}", h.kind, h.rank, h.path);
                        if let Some(s) = &h.snippet {
                            println!("         {s}");
                        }
                    }
                    if results.total > results.hits.len() {
                        println!(
                            "… {} more: narrow it with more words, --kind or --source, or raise --limit",
                            results.total - results.hits.len()
                        );
                    }
                }
            }
        }
        CatalogCmd::Lineage { name, svg, format } => {
            let graph = kondate_catalog::lineage::build(
                &services.project,
                &services.labels().await?,
                &services.models().await?,
                &services.results().await?,
                50,
            )
            .await
            .map_err(catalog_failure)?;
            let graph = match name {
                None => graph,
                Some(name) => {
                    let id = catalog
                        .lineage_node(&graph, &name)
                        .await
                        .map_err(catalog_failure)?;
                    graph.around(&id)
                }
            };
            match svg.as_deref() {
                Some(p) if p.as_os_str() == "-" => {
                    print!("{}", graph.svg());
                    return Ok(());
                }
                Some(p) => std::fs::write(p, graph.svg())
                    .map_err(|e| Failure::invalid(format!("--svg {}: {e}", p.display())))?,
                None => {}
            }
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&graph)?),
                ListFormat::Text => {
                    if graph.edges.is_empty() {
                        println!(
                            "no lineage recorded yet: it comes from label syncs, model pushes with --labels, and result writes with --model"
                        );
                    }
                    let label = |id: &str| {
                        graph
                            .nodes
                            .iter()
                            .find(|n| n.id == id)
                            .map_or(id.to_string(), |n| n.label.clone())
                    };
                    for e in &graph.edges {
                        println!(
                            "{} → {}{}",
                            label(&e.from),
                            label(&e.to),
                            e.label
                                .as_deref()
                                .map(|l| format!("  ({l})"))
                                .unwrap_or_default()
                        );
                    }
                    if let Some(p) = &svg {
                        println!("drawn in {}", p.display());
                    }
                }
            }
        }
        CatalogCmd::Delete { name, format } => {
            let target = catalog.resolve(&name).await.map_err(catalog_failure)?;
            crate::cli_access::require_on(
                kondate_access::ScopeKind::CatalogEdit,
                &target.to_string(),
            )?;
            let deleted = catalog
                .delete_unlinked(&target)
                .await
                .map_err(catalog_failure)?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::json!({"name": target.to_string(), "deleted": deleted})
                ),
                ListFormat::Text => {
                    println!("deleted {target} from the catalog ({deleted} object(s))")
                }
            }
        }
        CatalogCmd::Favourite { name, remove } => {
            let target = catalog.resolve(&name).await.map_err(catalog_failure)?;
            let person = crate::cli_access::principal_now().person();
            let changed = catalog
                .set_favourite(&person, &target, !remove)
                .await
                .map_err(catalog_failure)?;
            match (remove, changed) {
                (false, true) => println!("{target} is now a favourite of {person}"),
                (false, false) => println!("{target} was already a favourite of {person}"),
                (true, true) => println!("{target} is no longer a favourite of {person}"),
                (true, false) => println!("{target} was not a favourite of {person}"),
            }
        }
        CatalogCmd::Favourites { format } => {
            let person = crate::cli_access::principal_now().person();
            let list = catalog.favourites(&person).await.map_err(catalog_failure)?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &list
                            .iter()
                            .map(|t| serde_json::json!({"name": t.to_string(), "key": t.key(), "target": t}))
                            .collect::<Vec<_>>()
                    )?
                ),
                ListFormat::Text if list.is_empty() => println!(
                    "{person} has no favourites: `kondate catalog favourite NAME` marks one"
                ),
                ListFormat::Text => {
                    for t in &list {
                        println!("{t}");
                    }
                }
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

/// The project's description files: `docs/*.md`, as (path from the root, text).
fn doc_files(root: &std::path::Path) -> Result<Vec<(String, String)>, Failure> {
    let dir = root.join("docs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("md") || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::invalid(format!(
                "docs/{name}: {e}; description files are Markdown (UTF-8)"
            ))
        })?;
        out.push((format!("docs/{name}"), text));
    }
    out.sort();
    Ok(out)
}

/// One line of a schema's history.
fn print_change(c: &kondate_catalog::Change) {
    println!(
        "  {}  sync {:<5} {:<10} {}{}",
        kondate_core::clock::ms_to_rfc3339(c.at_ms),
        c.sync_id,
        c.change,
        c.object,
        change_values(c)
    );
}

fn change_values(c: &kondate_catalog::Change) -> String {
    match (&c.before, &c.after) {
        (Some(b), Some(a)) => format!(": {b} → {a}"),
        (None, Some(a)) => format!(" ({a})"),
        (Some(b), None) => format!(" (was {b})"),
        (None, None) => String::new(),
    }
}

/// The project's jobs as the scheduler runs them (those that load).
fn project_jobs(services: &Services) -> Vec<kondate_jobs::JobDefinition> {
    let p = &services.project;
    kondate_jobs::definition::loading(&p.root, &p.config)
}

fn written_context<'a>(
    services: &'a Services,
    labels: &'a kondate_labels::Labels,
    models: &'a kondate_models::Models,
    results: &'a kondate_results::Results,
    jobs: &'a [kondate_jobs::JobDefinition],
) -> kondate_catalog::written::Context<'a> {
    kondate_catalog::written::Context::new(
        &services.project,
        labels,
        models,
        results,
        jobs,
        services.clock.now(),
    )
}

/// What kondate knows of `page`'s table when it writes it, as far as whoever runs this may
/// read it. The page shows without it (and a warning) when it cannot be read.
async fn about(services: &Services, page: &TablePage) -> Option<kondate_catalog::Written> {
    let found = async {
        let (labels, models, results) = (
            services.labels().await?,
            services.models().await?,
            services.results().await?,
        );
        let jobs = project_jobs(services);
        written_context(services, &labels, &models, &results, &jobs)
            .about(&page.source, &page.schema, &page.name)
            .await
            .map_err(catalog_failure)
    };
    match found.await {
        Ok(w) => {
            use kondate_access::ScopeKind::{LabelsRead, ModelsRead};
            let who = crate::cli_access::principal_now();
            w.and_then(|w| {
                w.readable(&|set| who.allows(LabelsRead, Some(set)), &|m| {
                    who.allows(ModelsRead, Some(m))
                })
            })
        }
        Err(f) => {
            tracing::warn!(error = %f.message, "could not read what kondate knows of this table");
            None
        }
    }
}

fn print_jobs(jobs: &[kondate_catalog::written::WriterJob]) {
    for j in jobs {
        let schedules: Vec<String> = j
            .schedules
            .iter()
            .map(|s| format!("{} ({})", s.cron, s.time_zone))
            .collect();
        let when = match (&j.next, j.suspended) {
            (_, true) => "suspended".to_string(),
            (Some(n), _) => format!("{}; next {n}", schedules.join(", ")),
            (None, _) => "no schedule: launched by hand or by triggers".to_string(),
        };
        println!("  job:         {} ({}) — {when}", j.job, j.via);
    }
}

/// What kondate knows of a table it writes, at the top of its page.
fn print_written(w: &kondate_catalog::Written) {
    use kondate_catalog::Written;
    let owners = |o: &[String]| {
        if !o.is_empty() {
            println!("  owners:      {}", o.join(", "));
        }
    };
    match w {
        Written::LabelTable(t) => {
            println!(
                "Label table of label set {} ({})",
                t.label_set, t.definition
            );
            println!("  from:        {}", t.source);
            match &t.revision {
                Some(r) => println!(
                    "  revision:    {} — {} rows, synced {} by {} (+{} added, ~{} changed, -{} removed)",
                    r.revision, r.rows, r.synced_at, r.synced_by, r.added, r.changed, r.removed
                ),
                None => println!(
                    "  revision:    none yet (`kondate labels sync {}`)",
                    t.label_set
                ),
            }
            print_jobs(&t.jobs);
            for l in &t.learned_by {
                let rev = l
                    .revision
                    .map(|r| format!(" (revision {r})"))
                    .unwrap_or_default();
                println!("  learned by:  {}@{}{rev}", l.model, l.version);
            }
        }
        Written::ResultTable(t) => {
            println!("Result table {} ({})", t.result, t.declaration);
            if !t.apps.is_empty() {
                println!("  written by:  app {}", t.apps.join(", app "));
            }
            print_jobs(&t.jobs);
            owners(&t.owners);
            if let Some(m) = &t.model {
                println!("  model:       {m}");
            }
            for w in t.writes.iter().take(3) {
                let by = [
                    w.model.clone(),
                    w.run_id.as_ref().map(|r| format!("run {r}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                let by = if by.is_empty() {
                    String::new()
                } else {
                    format!(" ({by})")
                };
                println!("  written:     {} — {} rows{by}", w.written_at, w.rows);
            }
            println!("  freshness:   {}", t.freshness.message);
            println!("  warehouse:   {} (its copy)", t.warehouse_table);
        }
        Written::WarehouseCopy(t) => {
            println!(
                "Warehouse copy of result table {} (service.{})",
                t.result, t.service_table
            );
            print_jobs(&t.jobs);
            owners(&t.owners);
            if let Some(e) = &t.last_export {
                println!("  exported:    {} — {} rows", e.exported_at, e.rows);
            }
            println!("  freshness:   {}", t.freshness.message);
        }
    }
}

fn print_model_page(page: &kondate_catalog::ModelPage) {
    println!("model {}", page.model);
    if !page.aliases.is_empty() {
        let a: Vec<String> = page
            .aliases
            .iter()
            .map(|(k, v)| format!("{k} → {v}"))
            .collect();
        println!("aliases: {}", a.join(", "));
    }
    for v in &page.versions {
        let aliases = if v.aliases.is_empty() {
            String::new()
        } else {
            format!(" [{}]", v.aliases.join(", "))
        };
        println!(
            "\n{}@{}{aliases} — pushed {} by {}",
            page.model, v.version, v.created_at, v.created_by
        );
        for l in &v.labels {
            let rev = l
                .revision
                .map(|r| format!(" revision {r}"))
                .unwrap_or_default();
            let table = l
                .table
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            println!("  learned from  {}{rev}{table}", l.label_set);
        }
        for w in &v.wrote {
            println!(
                "  wrote         {} ({}): {} rows, {}",
                w.result, w.table, w.rows, w.written_at
            );
        }
        if v.labels.is_empty() && v.wrote.is_empty() {
            println!("  (no label revisions recorded, no result tables written)");
        }
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
    if let Some(w) = &page.kondate {
        println!();
        print_written(w);
    }
    if let Some(d) = &page.description {
        println!("\n{}", d.body.trim_end());
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
        if let Some(d) = &c.description {
            for line in d.body.trim_end().lines() {
                println!("    {line}");
            }
        }
    }
    if let Some(d) = &page.definition {
        println!("\nDefinition:\n{d}");
    }
    if let Some(p) = &page.plan {
        println!("\nPlan (as the engine explains SELECT * FROM it, at the last sync):\n{p}");
    }
    if !page.history.is_empty() {
        println!("\nHistory:");
        for c in &page.history {
            print_change(c);
        }
    }
}
