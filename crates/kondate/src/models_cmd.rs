//! `kondate models …`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use kondate_core::artifact::{ModelRef, Selector};
use kondate_models::{GcOptions, LabelRef, Lineage, ModelsError, PushMeta, VersionInfo};

use crate::cli_access::CliNeed;
use crate::services::Services;
use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Push a file or a folder as the next version of NAME; prints the version number.
    #[command(
        after_help = "Examples:\n  kondate models push recipe-clf model.bin --metric accuracy=0.91 --param lr=0.1\n  kondate models push recipe-clf out/ --labels recipe_category --query 42 --git-commit $(git rev-parse HEAD)\n\nVersions are numbered 1, 2, 3… per model and never change. Files are stored once by\ntheir SHA-256; pushing the same file again stores nothing new."
    )]
    Push {
        name: String,
        path: PathBuf,
        /// A metric, `name=number` (repeatable).
        #[arg(long = "metric", value_name = "K=V")]
        metrics: Vec<String>,
        /// A training parameter, `name=value` (repeatable).
        #[arg(long = "param", value_name = "K=V")]
        params: Vec<String>,
        /// A label set trained on, `NAME@REV`, or `NAME` for its current revision (repeatable).
        #[arg(long = "labels", value_name = "NAME[@REV]")]
        labels: Vec<String>,
        /// A query-API query whose result it was trained on (repeatable).
        #[arg(long = "query", value_name = "ID")]
        queries: Vec<i64>,
        /// The commit of the training code.
        #[arg(long)]
        git_commit: Option<String>,
        /// A free-text note.
        #[arg(long)]
        note: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// List models, or the versions of one.
    #[command(
        after_help = "Examples:\n  kondate models list\n  kondate models list recipe-clf --format json"
    )]
    List {
        name: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Show one version: files, digests, metrics, parameters, lineage, aliases.
    #[command(
        after_help = "Examples:\n  kondate models show recipe-clf            # the latest version\n  kondate models show recipe-clf@3\n  kondate models show recipe-clf@production --format json"
    )]
    Show {
        reference: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Download a version to DEST, checking every file's digest; DEST is replaced only when
    /// everything arrived intact.
    #[command(
        after_help = "Examples:\n  kondate models pull recipe-clf@production ./model\n  kondate models pull recipe-clf@3 ./model --force   # replace ./model"
    )]
    Pull {
        reference: String,
        dest: PathBuf,
        /// Replace DEST if it exists.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Point an alias (production, staging, …) at a version, or remove it; every move is kept.
    #[command(
        after_help = "Examples:\n  kondate models alias recipe-clf production 3\n  kondate models alias recipe-clf staging --remove\n  kondate models history recipe-clf   # who moved what, when"
    )]
    Alias {
        name: String,
        alias: String,
        /// The version to point at.
        #[arg(required_unless_present = "remove")]
        version: Option<i64>,
        /// Remove the alias instead.
        #[arg(long, conflicts_with = "version")]
        remove: bool,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// The history of a model's aliases: who moved which alias from where to where, and when.
    #[command(after_help = "Example:\n  kondate models history recipe-clf")]
    History {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Delete a version (refused while an alias points to it); its files go with the next gc.
    #[command(after_help = "Example:\n  kondate models delete recipe-clf@2")]
    Delete { reference: String },
    /// Find files no version references; with --apply, delete them. Dry run by default.
    #[command(
        after_help = "Examples:\n  kondate models gc                # report only\n  kondate models gc --apply\n  kondate models gc --apply --grace 0s   # also files of pushes in flight: only when none run"
    )]
    Gc {
        /// Delete what was found.
        #[arg(long)]
        apply: bool,
        /// Leave files touched more recently than this alone (pushes in flight).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
}

/// The model a reference names (`recipe-clf@3` → `recipe-clf`), for scope checks; an
/// unreadable reference is refused by the command itself.
fn model_of(reference: &str) -> String {
    kondate_core::artifact::ModelRef::parse(reference)
        .map(|r| r.name)
        .unwrap_or_else(|_| reference.to_string())
}

impl ModelsCmd {
    /// What the command needs (see `cli_access`).
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::*;
        match self {
            ModelsCmd::Push { name, .. } => CliNeed::change(ModelsWrite, name, "models.push"),
            ModelsCmd::List {
                name: Some(name), ..
            }
            | ModelsCmd::History { name, .. } => CliNeed::on(ModelsRead, name),
            ModelsCmd::List { name: None, .. } => CliNeed::every(ModelsRead),
            ModelsCmd::Show { reference, .. } | ModelsCmd::Pull { reference, .. } => {
                CliNeed::on(ModelsRead, &model_of(reference))
            }
            ModelsCmd::Alias {
                name,
                alias,
                remove,
                ..
            } => CliNeed::change(
                ModelsAlias,
                &format!("{name}@{alias}"),
                if *remove {
                    "models.alias.remove"
                } else {
                    "models.alias.set"
                },
            ),
            ModelsCmd::Delete { reference } => {
                CliNeed::change(ModelsDelete, &model_of(reference), "models.delete")
            }
            ModelsCmd::Gc { .. } => CliNeed::change_every(ModelsDelete, None, "models.gc"),
        }
    }
}

fn failure(e: ModelsError) -> Failure {
    if e.is_invalid_input() {
        Failure::invalid(e.to_string())
    } else {
        Failure::from(e)
    }
}

fn parse_ref(s: &str) -> Result<ModelRef, Failure> {
    ModelRef::parse(s).map_err(|e| Failure::invalid(e.to_string()))
}

fn key_value<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), Failure> {
    s.split_once('=')
        .ok_or_else(|| Failure::invalid(format!("--{flag} `{s}`: write it as name=value")))
}

/// The metadata of a push from its flags.
pub fn push_meta(
    metrics: &[String],
    params: &[String],
    labels: &[String],
    queries: &[i64],
    git_commit: Option<String>,
    note: Option<String>,
    actor: String,
) -> Result<PushMeta, Failure> {
    let mut meta = PushMeta {
        actor,
        note,
        lineage: Lineage {
            queries: queries.to_vec(),
            git_commit,
            ..Lineage::default()
        },
        ..PushMeta::default()
    };
    for m in metrics {
        let (k, v) = key_value("metric", m)?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| Failure::invalid(format!("--metric `{m}`: `{v}` is not a number")))?;
        meta.metrics.insert(k.to_string(), v);
    }
    for p in params {
        let (k, v) = key_value("param", p)?;
        meta.params.insert(k.to_string(), v.to_string());
    }
    for l in labels {
        meta.lineage
            .labels
            .push(LabelRef::parse(l).map_err(|e| Failure::invalid(e.to_string()))?);
    }
    Ok(meta)
}

fn print_version(v: &VersionInfo, format: ListFormat) -> CmdResult {
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    println!("{}@{}", v.model, v.version);
    println!("  content   {}", v.content_digest);
    let layout = match v.layout {
        kondate_core::artifact::Layout::File => "a single file",
        kondate_core::artifact::Layout::Directory => "a folder",
    };
    println!(
        "  size      {} bytes in {} file(s), {layout}",
        v.size,
        v.files.len()
    );
    println!("  created   {} by {}", v.created_at, v.created_by);
    if !v.aliases.is_empty() {
        println!("  aliases   {}", v.aliases.join(", "));
    }
    for (k, m) in &v.metrics {
        println!("  metric    {k} = {m}");
    }
    for (k, p) in &v.params {
        println!("  param     {k} = {p}");
    }
    for l in &v.lineage.labels {
        println!(
            "  labels    {}@{}",
            l.name,
            l.revision.map_or("?".into(), |r| r.to_string())
        );
    }
    for q in &v.lineage.queries {
        println!("  query     {q}");
    }
    if let Some(g) = &v.lineage.git_commit {
        println!("  git       {g}");
    }
    if let Some(n) = &v.note {
        println!("  note      {n}");
    }
    println!("  files");
    for f in &v.files {
        println!("    {:>12}  {}  {}", f.size, f.digest, f.path);
    }
    Ok(())
}

pub async fn run(services: &Services, cmd: ModelsCmd) -> CmdResult {
    let models = services.models().await?;
    match cmd {
        ModelsCmd::Push {
            name,
            path,
            metrics,
            params,
            labels,
            queries,
            git_commit,
            note,
            format,
        } => {
            let meta = push_meta(
                &metrics,
                &params,
                &labels,
                &queries,
                git_commit,
                note,
                crate::actor(),
            )?;
            let (_, files) = kondate_core::artifact::collect_files(&path)
                .map_err(|e| Failure::invalid(e.to_string()))?;
            let total: u64 = files.iter().map(|f| f.size).sum();
            // A cloud store reads each file twice: once to hash it, once to upload it.
            let passes = if models.store.is_local() { 1 } else { 2 };
            let bar = crate::output::bytes_bar(total * passes);
            let tick = bar.clone();
            let v = models
                .push_path(&name, &path, meta, Arc::new(move |n| tick.inc(n)))
                .await;
            bar.finish_and_clear();
            let v = v.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                ListFormat::Text => {
                    println!("{}", v.version);
                    eprintln!(
                        "pushed {}@{} ({} bytes, {} file(s), {})",
                        v.model,
                        v.version,
                        v.size,
                        v.files.len(),
                        v.content_digest
                    );
                }
            }
        }
        ModelsCmd::List { name: None, format } => {
            let list = models.list().await.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListFormat::Text if list.is_empty() => {
                    println!("No models yet: `kondate models push NAME PATH` registers one.")
                }
                ListFormat::Text => {
                    println!(
                        "{:<32} {:>6} {:>8}  {:<26} ALIASES",
                        "NAME", "LATEST", "VERSIONS", "UPDATED"
                    );
                    for m in list {
                        let aliases: Vec<String> =
                            m.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
                        println!(
                            "{:<32} {:>6} {:>8}  {:<26} {}",
                            m.name,
                            m.latest.map_or("-".into(), |v| v.to_string()),
                            m.versions,
                            m.updated_at,
                            aliases.join(" ")
                        );
                    }
                }
            }
        }
        ModelsCmd::List {
            name: Some(name),
            format,
        } => {
            let versions = models.versions(&name).await.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&versions)?),
                ListFormat::Text => {
                    println!(
                        "{:>7}  {:<26} {:<20} {:>12} {:>6}  {:<20} METRICS",
                        "VERSION", "CREATED", "BY", "BYTES", "FILES", "ALIASES"
                    );
                    for v in versions {
                        let metrics: Vec<String> =
                            v.metrics.iter().map(|(k, m)| format!("{k}={m}")).collect();
                        println!(
                            "{:>7}  {:<26} {:<20} {:>12} {:>6}  {:<20} {}",
                            v.version,
                            v.created_at,
                            v.created_by,
                            v.size,
                            v.files.len(),
                            v.aliases.join(","),
                            metrics.join(" ")
                        );
                    }
                }
            }
        }
        ModelsCmd::Show { reference, format } => {
            let v = models
                .show(&parse_ref(&reference)?)
                .await
                .map_err(failure)?;
            print_version(&v, format)?;
        }
        ModelsCmd::Pull {
            reference,
            dest,
            force,
            format,
        } => {
            let r = parse_ref(&reference)?;
            let info = models.show(&r).await.map_err(failure)?;
            let bar = crate::output::bytes_bar(info.size);
            let tick = bar.clone();
            let pulled = models
                .pull(&r, &dest, force, Arc::new(move |n| tick.inc(n)))
                .await;
            bar.finish_and_clear();
            let (v, target) = pulled.map_err(failure)?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "model": v.model, "version": v.version, "path": target,
                        "size": v.size, "content_digest": v.content_digest,
                    }))?
                ),
                ListFormat::Text => println!(
                    "pulled {}@{} ({} bytes, digests verified) to {}",
                    v.model,
                    v.version,
                    v.size,
                    target.display()
                ),
            }
        }
        ModelsCmd::Alias {
            name,
            alias,
            version,
            remove,
            format,
        } => {
            let to = if remove { None } else { version };
            let mv = models
                .set_alias(&name, &alias, to, &crate::actor())
                .await
                .map_err(failure)?;
            let show = |v: Option<i64>| v.map_or("(none)".to_string(), |v| v.to_string());
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&mv)?),
                ListFormat::Text if mv.from == mv.to => {
                    println!("{name}@{alias} already points to {}", show(mv.to))
                }
                ListFormat::Text => println!("{name}@{alias}: {} → {}", show(mv.from), show(mv.to)),
            }
        }
        ModelsCmd::History { name, format } => {
            let moves = models.alias_history(&name).await.map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&moves)?),
                ListFormat::Text if moves.is_empty() => {
                    println!("`{name}` has no alias moves yet.")
                }
                ListFormat::Text => {
                    println!(
                        "{:<26} {:<16} {:>6} {:>6}  BY",
                        "TIME", "ALIAS", "FROM", "TO"
                    );
                    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                    for m in moves {
                        println!(
                            "{:<26} {:<16} {:>6} {:>6}  {}",
                            m.moved_at,
                            m.alias,
                            show(m.from),
                            show(m.to),
                            m.moved_by
                        );
                    }
                }
            }
        }
        ModelsCmd::Delete { reference } => {
            let r = parse_ref(&reference)?;
            let Selector::Version(v) = r.selector else {
                return Err(Failure::invalid(format!(
                    "`{reference}`: name the version to delete, as NAME@N"
                )));
            };
            models
                .delete(&r.name, v, &crate::actor())
                .await
                .map_err(failure)?;
            println!(
                "deleted {}@{v}; its files go with the next `kondate models gc --apply`",
                r.name
            );
        }
        ModelsCmd::Gc {
            apply,
            grace,
            format,
        } => {
            let report = models
                .gc(&GcOptions { apply, grace })
                .await
                .map_err(failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                ListFormat::Text => {
                    let verb = if apply { "deleted" } else { "would delete" };
                    println!(
                        "{verb} {} unreferenced file(s) and {} staging leftover(s): {} bytes{}",
                        report.blobs.len(),
                        report.staging_files,
                        report.bytes,
                        if apply {
                            ""
                        } else {
                            " (dry run; --apply deletes)"
                        }
                    );
                    for d in &report.missing {
                        println!("MISSING: {d} is referenced by a version but not in the store");
                    }
                }
            }
            if !report.missing.is_empty() {
                return Err(Failure::from(format!(
                    "{} file(s) referenced by versions are missing from the store",
                    report.missing.len()
                )));
            }
        }
    }
    Ok(())
}
