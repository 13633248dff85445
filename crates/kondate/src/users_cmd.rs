//! `kondate users …`

use clap::Subcommand;
use kondate_access::User;

use crate::cli_access::{CliNeed, access_failure, actor};
use crate::services::Services;
use crate::{CmdResult, ListFormat};

const ROLES_HELP: &str = "Roles: viewer (query, read labels, models and runs), editor (viewer plus \
                          label syncs, pushes, alias moves, result writes and prunes, run launches, \
                          catalog edits), admin (everything, including users, tokens and the audit \
                          trail). `AREA=ROLE` gives a role in one area only (`models=editor` also \
                          allows deleting models); areas: query, labels, models, results, runs, \
                          catalog, jobs.";

/// What a user is given: roles and scopes.
#[derive(clap::Args)]
pub struct Grants {
    #[arg(long = "role", value_name = "ROLE|AREA=ROLE", long_help = ROLES_HELP)]
    roles: Vec<String>,
    /// A scope beyond the roles (repeat for several).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
}

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Add a person, by e-mail, with roles and extra scopes.
    #[command(
        after_help = "Examples:\n  kondate users add admin@example.com --role admin\n  kondate users add ml@example.com --role editor\n  kondate users add pe@example.com --role viewer --scope 'results:write=recipe_*'\n  kondate users add annotator@example.com --role labels=editor"
    )]
    Add {
        email: String,
        #[command(flatten)]
        grants: Grants,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Replace a user's roles and scopes; their tokens follow at once.
    #[command(
        after_help = "Example:\n  kondate users set ml@example.com --role viewer --role models=editor"
    )]
    Set {
        email: String,
        #[command(flatten)]
        grants: Grants,
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// List users with their roles and scopes.
    #[command(after_help = "Example:\n  kondate users list --format json")]
    List {
        #[arg(long, value_enum, default_value_t)]
        format: ListFormat,
    },
    /// Disable a user: they and every token they own stop working at once.
    #[command(after_help = "Example:\n  kondate users disable leaver@example.com")]
    Disable { email: String },
    /// Enable a disabled user again.
    #[command(after_help = "Example:\n  kondate users enable ml@example.com")]
    Enable { email: String },
}

impl UsersCmd {
    /// What the command needs (see `cli_access`): users are admin's.
    pub fn need(&self) -> CliNeed {
        use kondate_access::ScopeKind::Admin;
        match self {
            UsersCmd::Add { email, .. } => CliNeed::change_every(Admin, Some(email), "users.add"),
            UsersCmd::Set { email, .. } => CliNeed::change_every(Admin, Some(email), "users.set"),
            UsersCmd::Disable { email } => {
                CliNeed::change_every(Admin, Some(email), "users.disable")
            }
            UsersCmd::Enable { email } => CliNeed::change_every(Admin, Some(email), "users.enable"),
            UsersCmd::List { .. } => CliNeed::every(Admin),
        }
    }
}

fn print_user(u: &User, format: ListFormat) -> CmdResult {
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(u)?),
        ListFormat::Text => {
            println!("user:    {}", u.email);
            println!("roles:   {}", u.roles.join(" "));
            if !u.scopes.is_empty() {
                println!("scopes:  {}", u.scopes.join(" "));
            }
            println!("enabled: {}", u.enabled);
        }
    }
    Ok(())
}

pub async fn run(services: &Services, cmd: UsersCmd) -> CmdResult {
    let access = services.access().await?;
    let users = &access.users;
    match cmd {
        UsersCmd::Add {
            email,
            grants,
            format,
        } => {
            let u = users
                .add(&email, &grants.roles, &grants.scopes, &actor())
                .await
                .map_err(access_failure)?;
            print_user(&u, format)?;
        }
        UsersCmd::Set {
            email,
            grants,
            format,
        } => {
            let u = users
                .set(&email, &grants.roles, &grants.scopes)
                .await
                .map_err(access_failure)?;
            print_user(&u, format)?;
        }
        UsersCmd::List { format } => {
            let list = users.list().await.map_err(access_failure)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListFormat::Text => {
                    println!("{:<32} {:<8} {:<28} SCOPES", "E-MAIL", "ENABLED", "ROLES");
                    for u in list {
                        println!(
                            "{:<32} {:<8} {:<28} {}",
                            u.email,
                            u.enabled,
                            u.roles.join(" "),
                            u.scopes.join(" ")
                        );
                    }
                }
            }
        }
        UsersCmd::Disable { email } => {
            users.disable(&email).await.map_err(access_failure)?;
            println!("disabled user {email}; their tokens stop working at once");
        }
        UsersCmd::Enable { email } => {
            users.enable(&email).await.map_err(access_failure)?;
            println!("enabled user {email}");
        }
    }
    Ok(())
}
