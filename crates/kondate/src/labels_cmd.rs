//! `kondate labels …`

use std::path::PathBuf;

use clap::Subcommand;
use kondate_labels::snapshot::{self, ExportFormat};
use kondate_labels::{LabelsError, Outcome, SyncOptions, SyncReport};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum LabelsCmd {
    /// List the project's label sets and their current revision.
    #[command(after_help = "Example:\n  kondate labels list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Show rows added, changed (field: old → new) and removed against the table; writes nothing.
    #[command(after_help = "Example:\n  kondate labels diff recipe_category")]
    Diff {
        name: String,
        /// Rows to print per kind of change (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Validate the source and apply only the difference to the table, as a new revision.
    #[command(
        after_help = "Examples:\n  kondate labels sync recipe_category\n  kondate labels sync recipe_category --dry-run\n  kondate labels sync recipe_category --skip-invalid\n  kondate labels sync recipe_category --migrate   # after changing the definition\n\nExit codes: 0 applied or nothing to do; 2 invalid rows or a changed definition (nothing written); 1 other failures."
    )]
    Sync {
        name: String,
        /// Compute and report; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave invalid rows out (they are listed) instead of writing nothing.
        #[arg(long)]
        skip_invalid: bool,
        /// Apply a changed definition (new column, enum values, key…) to the table.
        #[arg(long)]
        migrate: bool,
        /// Compare with the table even if the source has not changed since the last sync.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// List the revisions: number, time, who, fingerprint, rows added/changed/removed.
    #[command(after_help = "Example:\n  kondate labels history recipe_category")]
    History {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Write a revision's rows, exactly as they were, to a CSV or Parquet file.
    #[command(
        after_help = "Examples:\n  kondate labels export recipe_category --format parquet --out labels.parquet\n  kondate labels export recipe_category --revision 3 --format csv --out r3.csv"
    )]
    Export {
        name: String,
        /// The revision (default: the latest).
        #[arg(long)]
        revision: Option<i64>,
        #[arg(long, value_enum)]
        format: FileFormat,
        #[arg(long)]
        out: PathBuf,
    },
}

impl LabelsCmd {
    /// What the command needs (see `cli_access`).
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            LabelsCmd::List { .. } => CliNeed::every(LabelsRead),
            LabelsCmd::Diff { name, .. }
            | LabelsCmd::History { name, .. }
            | LabelsCmd::Export { name, .. } => CliNeed::on(LabelsRead, name),
            LabelsCmd::Sync { name, .. } => CliNeed::change(LabelsSync, name, "labels.sync"),
        }
    }
}

/// File formats of `labels export`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FileFormat {
    Csv,
    Parquet,
}

/// Bad input (invalid rows, a changed definition, an unknown set) exits 2; the rest 1.
fn failure(e: LabelsError) -> Failure {
    match e {
        LabelsError::Definition { .. }
        | LabelsError::NoSuchSet { .. }
        | LabelsError::Source { .. }
        | LabelsError::InvalidRows { .. }
        | LabelsError::DefinitionChanged { .. }
        | LabelsError::NoSuchRevision { .. } => Failure::invalid(e.to_string()),
        e => Failure::from(e),
    }
}

pub async fn run(services: &Services, cmd: LabelsCmd) -> CmdResult {
    let project = &services.project;
    match cmd {
        LabelsCmd::List { format } => {
            let labels = services.labels().await?;
            let list = labels.list(project).await.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListFormat::Text if list.is_empty() => {
                    println!("No label sets yet: add labels/NAME.toml (see docs/labels.md).")
                }
                ListFormat::Text => {
                    println!(
                        "{:<24} {:<28} {:<8} {:>8}  SOURCE",
                        "NAME", "TABLE", "COLUMNS", "REVISION"
                    );
                    for l in list {
                        println!(
                            "{:<24} {:<28} {:<8} {:>8}  {}",
                            l.name,
                            l.table,
                            l.columns.len(),
                            l.revision.map_or("-".into(), |r| r.to_string()),
                            l.source
                        );
                    }
                }
            }
        }
        LabelsCmd::Diff {
            name,
            limit,
            format,
        } => {
            let set = kondate_labels::find(project, &name).map_err(failure)?;
            let labels = services.labels().await?;
            let grid = kondate_labels::read_source(&set).await.map_err(failure)?;
            let report = labels.diff(&set, &grid).await.map_err(failure)?;
            print_report(&report, format, limit)?;
        }
        LabelsCmd::Sync {
            name,
            dry_run,
            skip_invalid,
            migrate,
            force,
            format,
        } => {
            let set = kondate_labels::find(project, &name).map_err(failure)?;
            let labels = services.labels().await?;
            let spinner = crate::output::spinner(&format!("reading {}", set.source.describe()));
            let grid = kondate_labels::read_source(&set).await.map_err(failure)?;
            let (_work, others) = services.begin_work("labels sync", &name).await?;
            spinner.set_message(match others.first() {
                None => format!("syncing {name}"),
                Some(o) => format!("syncing {name}, after {o}"),
            });
            let opts = SyncOptions {
                dry_run,
                skip_invalid,
                migrate,
                force,
                actor: crate::actor(),
            };
            let report = labels.sync(&set, &grid, &opts).await;
            spinner.finish_and_clear();
            let report = report.map_err(|e| crate::output::while_others(failure(e), &others))?;
            if !dry_run {
                crate::catalog_cmd::after_write(services, "service", &set.table).await;
            }
            print_report(&report, format, 50)?;
        }
        LabelsCmd::History { name, format } => {
            let labels = services.labels().await?;
            // The set may have been removed from the project; its history stays readable.
            let history = labels.history(&name).await.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&history)?),
                ListFormat::Text if history.is_empty() => {
                    println!("`{name}` has no revisions yet; run `kondate labels sync {name}`.")
                }
                ListFormat::Text => {
                    println!(
                        "{:>4}  {:<20} {:<20} {:>8} {:>7} {:>7} {:>7} {:>7}  FINGERPRINT",
                        "REV", "TIME (UTC)", "BY", "ROWS", "ADDED", "CHANGED", "REMOVED", "SKIPPED"
                    );
                    for r in history {
                        let at = chrono::DateTime::from_timestamp_millis(r.created_at)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default();
                        println!(
                            "{:>4}  {:<20} {:<20} {:>8} {:>7} {:>7} {:>7} {:>7}  {}{}",
                            r.revision,
                            at,
                            r.actor,
                            r.rows_total,
                            r.added,
                            r.changed,
                            r.removed,
                            r.skipped_invalid,
                            &r.fingerprint[..r.fingerprint.len().min(12)],
                            r.migration
                                .map(|m| format!("  migrated: {m}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        LabelsCmd::Export {
            name,
            revision,
            format,
            out,
        } => {
            let set = kondate_labels::find(project, &name).map_err(failure)?;
            let labels = services.labels().await?;
            let (rev, batches, schema) = labels.export(&set, revision).await.map_err(failure)?;
            let fmt = match format {
                FileFormat::Csv => ExportFormat::Csv,
                FileFormat::Parquet => ExportFormat::Parquet,
            };
            snapshot::write_file(&out, fmt, &batches, schema).map_err(failure)?;
            eprintln!(
                "wrote {} rows of {name}@{} to {}",
                rev.rows_total,
                rev.revision,
                out.display()
            );
        }
    }
    Ok(())
}

fn print_report(r: &SyncReport, format: ListFormat, limit: usize) -> CmdResult {
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let d = &r.diff;
    let take = |n: usize| if limit == 0 { n } else { n.min(limit) };
    for inv in &r.invalid {
        eprintln!("invalid: {inv}");
    }
    if !r.unnamed_columns.is_empty() {
        eprintln!(
            "note: column(s) {} have values but no header (a merged header cell?) and were ignored",
            r.unnamed_columns.join(", ")
        );
    }
    if !r.migration.is_empty() {
        println!("definition changes:");
        for m in &r.migration {
            println!("  {m}");
        }
    }
    let key = |k: &[kondate_labels::LabelValue]| {
        r.key
            .iter()
            .zip(k)
            .map(|(c, v)| format!("{c}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for a in d.added.iter().take(take(d.added.len())) {
        println!("+ row {:<6} {}", a.row, key(&a.key));
    }
    for c in d.changed.iter().take(take(d.changed.len())) {
        let fields: Vec<String> = c
            .fields
            .iter()
            .map(|f| format!("{}: {} → {}", f.column, f.old, f.new))
            .collect();
        println!("~ row {:<6} {}  {}", c.row, key(&c.key), fields.join("; "));
    }
    for k in d.removed.iter().take(take(d.removed.len())) {
        println!("-            {}", key(k));
    }
    let shown = take(d.added.len()) + take(d.changed.len()) + take(d.removed.len());
    let total = d.added.len() + d.changed.len() + d.removed.len();
    if shown < total {
        println!("… {} more (use --limit 0 to see all)", total - shown);
    }
    let counts = format!(
        "{} added, {} changed, {} removed, {} unchanged",
        d.added.len(),
        d.changed.len(),
        d.removed.len(),
        d.unchanged
    );
    match r.outcome {
        Outcome::Applied => println!(
            "{}: revision {} applied — {counts}; {} rows written{}",
            r.name,
            r.revision,
            r.rows_written,
            if r.invalid.is_empty() {
                String::new()
            } else {
                format!("; {} invalid rows left out", r.invalid.len())
            }
        ),
        Outcome::Unchanged => println!(
            "{}: the source has not changed since revision {} (fingerprint {}); nothing written",
            r.name,
            r.revision,
            &r.fingerprint[..12]
        ),
        Outcome::NoChanges => println!(
            "{}: the table already holds these rows (revision {}); nothing written",
            r.name, r.revision
        ),
        Outcome::DryRun if r.revision == 0 => println!(
            "{}: {counts} (never synced: the table is new); nothing written",
            r.name
        ),
        Outcome::DryRun => println!(
            "{}: {counts} against revision {}; nothing written",
            r.name, r.revision
        ),
    }
    Ok(())
}
