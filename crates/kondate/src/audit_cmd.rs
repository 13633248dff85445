//! `kondate audit`

use clap::Args;
use kondate_access::parse_since;
use kondate_access::{AuditFilter, Outcome};

use crate::cli_access::{CliNeed, access_failure};
use crate::services::Services;
use crate::{CmdResult, ListFormat};

/// Filters of `kondate audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// Who: `token:trainer`, `cli:alice`, `user:ml@example.com`; a prefix ending in `*`.
    #[arg(long)]
    actor: Option<String>,
    /// On what: a model (`recipe-category@production`), label set, table, token; a prefix
    /// ending in `*`.
    #[arg(long)]
    target: Option<String>,
    /// The action: `models.alias.set`, `labels.sync`, `tokens.create`, …
    #[arg(long)]
    action: Option<String>,
    /// ok, denied, unauthorized, invalid or failed.
    #[arg(long)]
    outcome: Option<String>,
    /// Since an RFC 3339 time, or for a duration back from now (`24h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

impl AuditArgs {
    /// What the command needs (see `cli_access`).
    pub fn need(&self) -> CliNeed {
        CliNeed::every(kondate_access::ScopeKind::Admin)
    }
}

pub async fn run(services: &Services, args: AuditArgs) -> CmdResult {
    let access = services.access().await?;
    let filter = AuditFilter {
        actor: args.actor,
        target: args.target,
        action: args.action,
        outcome: args
            .outcome
            .as_deref()
            .map(Outcome::parse)
            .transpose()
            .map_err(access_failure)?,
        since_ms: args
            .since
            .as_deref()
            .map(|s| parse_since(s, chrono::Utc::now()))
            .transpose()
            .map_err(access_failure)?,
        limit: Some(args.limit.clamp(1, 10_000)),
    };
    let records = access.audit.list(&filter).await.map_err(access_failure)?;
    match args.format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&records)?),
        ListFormat::Text => {
            println!(
                "{:<24} {:<28} {:<20} {:<12} {:<32} STATUS",
                "TIME", "ACTOR", "ACTION", "OUTCOME", "TARGET"
            );
            for record in &records {
                let r = &record.entry;
                println!(
                    "{:<24} {:<28} {:<20} {:<12} {:<32} {}",
                    record.at,
                    r.actor,
                    r.action,
                    r.outcome.as_str(),
                    r.target.as_deref().unwrap_or("-"),
                    r.status.map_or(String::new(), |s| s.to_string()),
                );
            }
        }
    }
    Ok(())
}
