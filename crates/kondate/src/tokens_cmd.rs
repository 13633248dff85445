//! `kondate tokens …`

use clap::Subcommand;
use kondate_core::Project;

use crate::{CmdResult, Failure, ListFormat};

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Create a token; its secret is printed once and stored only as a hash.
    #[command(
        after_help = "Example:\n  kondate tokens create training-job\n  export QUEUERY_TOKEN=training-job QUEUERY_TOKEN_SECRET=<printed secret>"
    )]
    Create {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// List tokens (never their secrets).
    #[command(after_help = "Example:\n  kondate tokens list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Disable a token; its secret stops working at once.
    #[command(after_help = "Example:\n  kondate tokens disable training-job")]
    Disable { name: String },
}

pub async fn run(project: Project, cmd: TokensCmd) -> CmdResult {
    let opened = kondate_query::open(&project.config).await?;
    let tokens = opened.tokens;
    match cmd {
        TokensCmd::Create { name, format } => {
            let t = tokens.create(&name).await.map_err(query_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&t)?),
                ListFormat::Text => {
                    println!("token:  {}", t.name);
                    println!("secret: {}", t.secret);
                    eprintln!("The secret is shown only now; store it in your secret manager.");
                }
            }
        }
        TokensCmd::List { format } => {
            let list = tokens.list().await.map_err(query_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListFormat::Text => {
                    println!("{:<32} {:<9} {:<22}", "NAME", "ENABLED", "CREATED");
                    for t in list {
                        println!("{:<32} {:<9} {:<22}", t.name, t.enabled, t.created_at);
                    }
                }
            }
        }
        TokensCmd::Disable { name } => {
            tokens.disable(&name).await.map_err(query_failure)?;
            println!("disabled token {name}");
        }
    }
    Ok(())
}

/// Map a query-service error to an exit code: bad input is 2, the rest 1.
pub fn query_failure(e: kondate_query::QueryError) -> Failure {
    match e {
        kondate_query::QueryError::InvalidParameter(_) | kondate_query::QueryError::NotFound(_) => {
            Failure::invalid(e.to_string())
        }
        e => Failure::from(e),
    }
}
