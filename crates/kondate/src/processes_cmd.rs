//! `kondate processes`

use clap::Args;
use kondate_access::parse_since;

use crate::cli_access::{CliNeed, access_failure};
use crate::services::Services;
use crate::{CmdResult, ListFormat};

/// Options of `kondate processes`.
#[derive(Args)]
pub struct ProcessesArgs {
    /// Heard from since an RFC 3339 time, or for a duration back from now (`1h`, `7d`).
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long, value_enum, default_value_t)]
    format: ListFormat,
}

impl ProcessesArgs {
    /// What the command needs (see `cli_access`).
    pub fn need(&self) -> CliNeed {
        CliNeed::every(kondate_access::ScopeKind::Admin)
    }
}

pub async fn run(services: &Services, args: ProcessesArgs) -> CmdResult {
    let now = services.clock.now();
    let since = parse_since(&args.since, now).map_err(access_failure)?;
    let since = chrono::DateTime::from_timestamp_millis(since).unwrap_or(now);
    let db = services.state_db().await?;
    let lost_after = services.project.config.state.lost_after;
    let processes = kondate_query::processes::list(db, now, since, lost_after)
        .await
        .map_err(crate::output::query_failure)?;
    match args.format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&processes)?),
        ListFormat::Text => {
            println!(
                "{:<8} {:<14} {:<24} {:<24} {:>7}  ID",
                "STATE", "COMMAND", "STARTED", "LAST HEARD", "QUERIES"
            );
            for p in &processes {
                println!(
                    "{:<8} {:<14} {:<24} {:<24} {:>7}  {}",
                    p.state,
                    p.command,
                    p.started_at,
                    p.stopped_at.as_deref().unwrap_or(&p.last_heartbeat_at),
                    p.queries,
                    p.id
                );
                for w in &p.work {
                    println!("{:<8} {} `{}` since {}", "", w.kind, w.target, w.started_at);
                }
            }
        }
    }
    Ok(())
}
