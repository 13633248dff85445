//! `kondate tokens …`

use std::time::Duration;

use clap::Subcommand;
use kondate_access::{NewTokenRequest, Scope, Scopes, TokenKind};

use crate::cli_access::{CliNeed, access_failure, actor};
use crate::services::Services;
use crate::{CmdResult, ListFormat};

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Make a token for a program, owned by a user; its secret is printed once and stored
    /// only as a hash. It never holds more than its owner.
    #[command(
        after_help = "Examples:\n  kondate tokens create trainer --owner ml@example.com --scope query --scope labels:read --scope 'models:write=recipe-*'\n  kondate tokens create dashboard --owner pe@example.com --scope query --expires 90d\n  export QUEUERY_TOKEN=dashboard QUEUERY_TOKEN_SECRET=<printed secret>\n\nScopes: query, labels:read, labels:sync, models:read, models:write, models:alias,\nmodels:delete, results:write, results:prune, runs:read, runs:launch, catalog:edit,\njobs:read, jobs:launch, jobs:operate, admin — each optionally narrowed to names with\n`=PATTERN` (`*` is any run of characters; for models:alias the name is MODEL@ALIAS).\nWithout --scope a token may only query."
    )]
    Create {
        name: String,
        /// The user it belongs to (`kondate users add` makes one).
        #[arg(long)]
        owner: String,
        /// What it may do; repeat for several (default: query).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Stop working after this long (`90d`, `12h`); default: until disabled.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// List tokens with their kind, owner, scopes, last use and expiry (never secrets).
    #[command(after_help = "Example:\n  kondate tokens list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Give a token a new secret (printed once); the old one stops working at once.
    #[command(after_help = "Example:\n  kondate tokens rotate trainer")]
    Rotate {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Disable a token; its secret stops working at once.
    #[command(after_help = "Example:\n  kondate tokens disable trainer")]
    Disable { name: String },
}

impl TokensCmd {
    /// What the command needs (see `cli_access`): tokens are admin's.
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::Admin;
        match self {
            TokensCmd::Create { name, .. } => {
                CliNeed::change_every(Admin, Some(name), "tokens.create")
            }
            TokensCmd::List { .. } => CliNeed::every(Admin),
            TokensCmd::Rotate { name, .. } => {
                CliNeed::change_every(Admin, Some(name), "tokens.rotate")
            }
            TokensCmd::Disable { name } => {
                CliNeed::change_every(Admin, Some(name), "tokens.disable")
            }
        }
    }
}

fn print_secret(t: &kondate_access::NewToken, format: ListFormat) -> CmdResult {
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(t)?),
        ListFormat::Text => {
            println!("token:   {}", t.name);
            println!("secret:  {}", t.secret);
            if let Some(o) = &t.owner {
                println!("owner:   {o}");
            }
            println!("scopes:  {}", t.scopes.join(" "));
            println!(
                "expires: {}",
                t.expires_at.as_deref().unwrap_or("never (until disabled)")
            );
            eprintln!("The secret is shown only now; store it in your secret manager.");
        }
    }
    Ok(())
}

pub async fn run(services: &Services, cmd: TokensCmd) -> CmdResult {
    let access = services.access().await?;
    let tokens = &access.tokens;
    match cmd {
        TokensCmd::Create {
            name,
            owner,
            scopes,
            expires,
            format,
        } => {
            let scopes = if scopes.is_empty() {
                vec!["query".to_string()]
            } else {
                scopes
            };
            let scopes = Scopes::new(
                scopes
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(access_failure)?,
            );
            let t = tokens
                .create(NewTokenRequest {
                    name,
                    owner,
                    scopes,
                    expires_in: expires,
                    created_by: actor(),
                })
                .await
                .map_err(access_failure)?;
            print_secret(&t, format)?;
        }
        TokensCmd::List { format } => {
            let list = tokens.list().await.map_err(access_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListFormat::Text => {
                    println!(
                        "{:<28} {:<7} {:<8} {:<24} {:<20} {:<20} SCOPES",
                        "NAME", "KIND", "ENABLED", "OWNER", "LAST USED", "EXPIRES"
                    );
                    let mut legacy = false;
                    for t in &list {
                        let kind = match t.kind {
                            TokenKind::Token => "token",
                            TokenKind::Run => "run",
                            TokenKind::Legacy => {
                                legacy = true;
                                "legacy*"
                            }
                        };
                        println!(
                            "{:<28} {:<7} {:<8} {:<24} {:<20} {:<20} {}",
                            t.name,
                            kind,
                            t.enabled,
                            t.owner.as_deref().unwrap_or("-"),
                            t.last_used_at
                                .as_deref()
                                .map_or("never", |s| &s[..19.min(s.len())]),
                            t.expires_at
                                .as_deref()
                                .map_or("never", |s| &s[..19.min(s.len())]),
                            t.scopes.join(" ")
                        );
                    }
                    if legacy {
                        eprintln!(
                            "* legacy: made before scopes existed; it keeps what every token could do \
                             then (all but admin). Replace it with a token owned by a user and only the \
                             scopes it needs, then disable it."
                        );
                    }
                }
            }
        }
        TokensCmd::Rotate { name, format } => {
            let t = tokens.rotate(&name).await.map_err(access_failure)?;
            print_secret(&t, format)?;
        }
        TokensCmd::Disable { name } => {
            tokens.disable(&name).await.map_err(access_failure)?;
            println!("disabled token {name}");
        }
    }
    Ok(())
}
