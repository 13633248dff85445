//! Who runs a command, whether they may, and the audit record of what they changed.
//!
//! Every command declares what it needs ([`CliNeed`], next to its arguments). The CLI works
//! on the project's databases directly, so whoever can run it with the project's
//! configuration can read and change everything: the operator at a terminal acts as
//! `admin` (`cli:USER` in records). Inside an app run — or wherever `KONDATE_TOKEN` and
//! `KONDATE_TOKEN_SECRET` are set — the command acts as that token instead, with that
//! token's scopes, so a job cannot do through the CLI what its token may not do over HTTP.
//! A refusal exits with code 4 and is recorded; every change is recorded with its outcome.

use std::future::Future;
use std::sync::OnceLock;

use crate::services::Services;
use kondate_access::{Access, AccessError, AuditEntry, Outcome, Principal, ScopeKind, Source};
use serde_json::json;

use crate::{CmdResult, Failure, exit};

/// What a command needs.
#[derive(Debug, Clone, Default)]
pub struct CliNeed {
    /// The scopes it needs, each on a name (`Some`) or on every name (`None`).
    pub scopes: Vec<(ScopeKind, Option<String>)>,
    /// For changes: the action recorded in the audit trail.
    pub action: Option<&'static str>,
    /// What it acts on, for the record.
    pub target: Option<String>,
}

impl CliNeed {
    /// Nothing: it reads the project's own files, or makes a project.
    pub fn none() -> CliNeed {
        CliNeed::default()
    }

    /// `kind` on `target` (a read).
    pub fn on(kind: ScopeKind, target: &str) -> CliNeed {
        CliNeed {
            scopes: vec![(kind, Some(target.to_string()))],
            action: None,
            target: Some(target.to_string()),
        }
    }

    /// `kind` on every name.
    pub fn every(kind: ScopeKind) -> CliNeed {
        CliNeed {
            scopes: vec![(kind, None)],
            ..CliNeed::default()
        }
    }

    /// A change: `kind` on `target`, recorded as `action`.
    pub fn change(kind: ScopeKind, target: &str, action: &'static str) -> CliNeed {
        CliNeed {
            action: Some(action),
            ..CliNeed::on(kind, target)
        }
    }

    /// A change needing `kind` on every name (gc, users, tokens), recorded as `action`.
    pub fn change_every(kind: ScopeKind, target: Option<&str>, action: &'static str) -> CliNeed {
        CliNeed {
            scopes: vec![(kind, None)],
            action: Some(action),
            target: target.map(str::to_string),
        }
    }

    /// A change needing `kind` on a name the command knows only once it has looked it up
    /// (a catalog object, matched by its full name): here, only that some name is allowed;
    /// the command checks the name itself with [`require_on`].
    pub fn change_resolved(kind: ScopeKind, target: &str, action: &'static str) -> CliNeed {
        CliNeed {
            scopes: vec![(kind, Some(ANY_NAME.to_string()))],
            action: Some(action),
            target: Some(target.to_string()),
        }
    }

    /// Also `kind` on every name.
    pub fn and_every(mut self, kind: ScopeKind) -> CliNeed {
        self.scopes.push((kind, None));
        self
    }

    /// Also `kind` on the same target.
    pub fn and(mut self, kind: ScopeKind) -> CliNeed {
        let target = self.target.clone();
        self.scopes.push((kind, target));
        self
    }

    /// The scopes as a token's are written (`models:alias=m@production`, `admin`).
    #[cfg(test)]
    pub fn scopes_text(&self) -> Vec<String> {
        self.scopes
            .iter()
            .map(|(kind, target)| match target {
                Some(t) if t == ANY_NAME => format!("{kind}=…"),
                Some(t) => format!("{kind}={t}"),
                None => kind.to_string(),
            })
            .collect()
    }

    fn is_nothing(&self) -> bool {
        self.scopes.is_empty() && self.action.is_none()
    }
}

static PRINCIPAL: OnceLock<Principal> = OnceLock::new();

/// The target of a scope checked later, on a name not yet known ([`CliNeed::change_resolved`]).
const ANY_NAME: &str = "\0any";

/// Refuse (exit 4) unless whoever runs the command holds `kind` on `name`; for commands
/// that learn the name they act on as they run ([`CliNeed::change_resolved`]).
pub fn require_on(kind: ScopeKind, name: &str) -> Result<(), Failure> {
    principal_now()
        .require(kind, Some(name))
        .map_err(access_failure)
}

/// Who runs this command, as histories record it (`cli:alice`, or `token:run-…` inside a
/// run).
pub fn actor() -> String {
    principal_now().actor()
}

/// Who runs this command: the principal [`guarded`] resolved, else the operator.
pub fn principal_now() -> Principal {
    PRINCIPAL
        .get()
        .cloned()
        .unwrap_or_else(|| Principal::local(&os_user()))
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The command line for the record, with `-e K=V` values masked (they may be secrets).
fn recorded_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut mask_next = false;
    for a in std::env::args().skip(1) {
        if mask_next {
            out.push(mask_env(&a));
            mask_next = false;
        } else if a == "-e" || a == "--env" {
            out.push(a);
            mask_next = true;
        } else if let Some(v) = a.strip_prefix("--env=") {
            out.push(format!("--env={}", mask_env(v)));
        } else {
            out.push(a);
        }
    }
    out
}

/// The command's words (`tokens list`), for the record of a refused read.
fn command_words() -> String {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask_env(kv: &str) -> String {
    match kv.split_once('=') {
        Some((k, _)) => format!("{k}=***"),
        None => kv.to_string(),
    }
}

/// Map an access error to an exit code.
pub fn access_failure(e: AccessError) -> Failure {
    match e {
        AccessError::Forbidden { .. } | AccessError::Unauthorized => Failure {
            code: exit::FORBIDDEN,
            message: e.to_string(),
        },
        AccessError::Invalid(_) | AccessError::NotFound(_) | AccessError::Conflict(_) => {
            Failure::invalid(e.to_string())
        }
        e => Failure::from(e),
    }
}

/// Who runs the command: the token in `KONDATE_TOKEN`/`KONDATE_TOKEN_SECRET` if set, else
/// the operator as admin.
async fn principal(access: &Access) -> Result<Principal, Failure> {
    match (
        std::env::var("KONDATE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        std::env::var("KONDATE_TOKEN_SECRET").ok(),
    ) {
        (Some(name), Some(secret)) => {
            access
                .authenticate(&name, &secret, None)
                .await
                .map_err(|e| match e {
                    AccessError::Unauthorized => Failure {
                        code: exit::FORBIDDEN,
                        message: format!(
                            "KONDATE_TOKEN `{name}` and its secret are not valid for this project \
                         (unknown, disabled, expired or wrong secret); unset them to act as \
                         yourself at a terminal"
                        ),
                    },
                    e => access_failure(e),
                })
        }
        _ => Ok(Principal::local(&os_user())),
    }
}

/// Run `work` as the command's principal if it holds what `need` asks for; record changes
/// (and refusals) in the audit trail.
pub async fn guarded<F>(services: &Services, need: CliNeed, work: F) -> CmdResult
where
    F: Future<Output = CmdResult>,
{
    let result = checked(services, need, work).await;
    // A command that registered this process (it ran a query or an app) deregisters when it
    // ends, so that `kondate processes` shows it stopped, not lost.
    services.stop_process().await;
    result
}

async fn checked<F>(services: &Services, need: CliNeed, work: F) -> CmdResult
where
    F: Future<Output = CmdResult>,
{
    if need.is_nothing() {
        return work.await;
    }
    let access = services.access().await?;
    // A read has no action name: it is recorded (when refused) as its command.
    let action = need.action.map_or_else(command_words, str::to_string);
    let entry = |actor: &str, outcome: Outcome, status: u8, detail: Option<String>| {
        let mut e = AuditEntry::new(Source::Cli, actor, &action, need.target.as_deref());
        e.params = json!({ "args": recorded_args() });
        e.outcome = outcome;
        e.status = Some(status as i64);
        e.detail = detail;
        e
    };
    let who = match principal(access).await {
        Ok(p) => p,
        Err(f) => {
            if let Ok(name) = std::env::var("KONDATE_TOKEN") {
                let e = entry(
                    &format!("token:{name}"),
                    Outcome::Unauthorized,
                    f.code,
                    Some(f.message.clone()),
                );
                access.audit.record_or_log(e).await;
            }
            return Err(f);
        }
    };
    let _ = PRINCIPAL.set(who.clone());
    let actor = who.actor();
    for (kind, target) in &need.scopes {
        let allowed = match target {
            Some(t) if t == ANY_NAME && who.has_kind(*kind) => Ok(()),
            Some(t) if t == ANY_NAME => who.require_every(*kind),
            Some(t) => who.require(*kind, Some(t)),
            None => who.require_every(*kind),
        };
        if let Err(e) = allowed {
            let f = access_failure(e);
            access
                .audit
                .record_or_log(entry(
                    &actor,
                    Outcome::Denied,
                    f.code,
                    Some(f.message.clone()),
                ))
                .await;
            return Err(f);
        }
    }
    let result = work.await;
    if need.action.is_some() {
        let (outcome, code, detail) = match &result {
            Ok(()) => (Outcome::Ok, 0, None),
            Err(f) if f.code == exit::INVALID => {
                (Outcome::Invalid, f.code, Some(f.message.clone()))
            }
            Err(f) if f.code == exit::FORBIDDEN => {
                (Outcome::Denied, f.code, Some(f.message.clone()))
            }
            Err(f) => (Outcome::Failed, f.code, Some(f.message.clone())),
        };
        access
            .audit
            .record_or_log(entry(&actor, outcome, code, detail))
            .await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_masked_in_the_record() {
        assert_eq!(mask_env("DB_PASSWORD=hunter2"), "DB_PASSWORD=***");
        assert_eq!(mask_env("PLAIN"), "PLAIN");
    }
}
