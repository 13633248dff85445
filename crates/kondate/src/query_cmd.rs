//! `kondate query`: through the server when one is configured, else in-process.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use kondate_client::{ColumnInfo, PartSource, ResultSet};
use kondate_query::{Status, SubmitRequest};
use kondate_warehouse::ResultFormat;

use crate::cli_access::{CliNeed, guarded};
use crate::output::query_failure;
use crate::output::{RowFormat, client_failure, write_result};
use crate::services::Services;
use crate::{CmdResult, Failure};

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The SELECT; `?` placeholders take --value in order.
    sql: String,
    /// A value for the next `?` placeholder.
    #[arg(long = "value", short = 'v')]
    values: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: RowFormat,
    /// Write to this file instead of standard output (written whole or not at all).
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// Send the query to this server (default: server.url from the project, else run
    /// in-process). Credentials from KONDATE_TOKEN / KONDATE_TOKEN_SECRET.
    #[arg(long, env = "KONDATE_ENDPOINT")]
    server: Option<String>,
}

/// What `kondate query` needs: `query`, checked here when it runs in-process (a server
/// checks its own).
pub fn need() -> CliNeed {
    CliNeed::every(kondate_access::ScopeKind::Query)
}

pub async fn run(project: Option<&Path>, args: QueryArgs, need: CliNeed) -> CmdResult {
    let configured = if args.server.is_none() {
        Some(crate::load_project(project)?)
    } else {
        None
    };
    let server = args.server.clone().or_else(|| {
        configured
            .as_ref()
            .and_then(|p| p.config.server.url.clone())
    });
    let values: Vec<&str> = args.values.iter().map(String::as_str).collect();
    let rs = match server {
        Some(endpoint) => {
            let token = std::env::var("KONDATE_TOKEN").ok();
            let secret = std::env::var("KONDATE_TOKEN_SECRET").ok();
            let creds = token.as_deref().zip(secret.as_deref());
            let client = kondate_client::Client::new(&endpoint, creds).map_err(client_failure)?;
            client
                .query(&args.sql, &values)
                .await
                .map_err(client_failure)?
        }
        None => {
            // In-process, the command itself must hold `query` (a server checks its own).
            let services = Services::new(configured.expect("loaded above"));
            let mut rs = None;
            guarded(&services, need, async {
                rs = Some(in_process(&services, &args.sql, &args.values).await?);
                Ok(())
            })
            .await?;
            rs.expect("set when the query ran")
        }
    };
    let n = write_result(rs, args.format, args.out.as_deref()).await?;
    if let Some(out) = &args.out {
        eprintln!("wrote {n} rows to {}", out.display());
    }
    Ok(())
}

/// Run the query in this process and read its parts straight from the store.
async fn in_process(
    services: &Services,
    sql: &str,
    values: &[String],
) -> Result<ResultSet, Failure> {
    let service = services.query().await?;
    let spinner = crate::output::spinner("running query");
    let record = service
        .execute(SubmitRequest {
            q: sql.to_string(),
            values: values.to_vec(),
            enable_metadata: true,
            format: ResultFormat::Csv,
        })
        .await
        .map_err(query_failure);
    spinner.finish_and_clear();
    let record = record?;
    if record.status != Status::Success {
        return Err(Failure {
            code: crate::exit::QUERY_FAILED,
            message: format!(
                "query {} failed: {}",
                record.id,
                record.error.unwrap_or_else(|| "no reason given".into())
            ),
        });
    }
    let store = services.store().await?.clone();
    let manifest_key = record.manifest_key.clone().unwrap_or_default();
    let manifest: serde_json::Value = serde_json::from_slice(&store.get(&manifest_key).await?)?;
    let columns: Vec<ColumnInfo> = manifest["schema"]["elements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| ColumnInfo {
            name: e["name"].as_str().unwrap_or_default().to_string(),
            redshift_type: e["type"]["base"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let parts = record
        .data_files
        .iter()
        .map(|key| {
            let store = store.clone();
            let key = key.clone();
            PartSource {
                name: key.clone(),
                open: Box::new(move || {
                    Box::pin(async move {
                        let (_, s) = store.get_stream(&key).await.map_err(|e| {
                            kondate_client::ClientError::Http {
                                url: key.clone(),
                                message: e.to_string(),
                            }
                        })?;
                        Ok(Box::pin(s.map_err(std::io::Error::other))
                            as kondate_client::ByteStream)
                    })
                }),
            }
        })
        .collect();
    Ok(ResultSet::from_parts(
        record.id,
        columns,
        record.record_count.map(|n| n as u64),
        parts,
    ))
}
