//! kondate-access: who may do what.
//!
//! - [`scope`]: scopes (`models:write=recipe-*`), roles, and how patterns match and cover.
//! - [`users`]: people, by e-mail, with roles and scopes.
//! - [`tokens`]: credentials for programs — owned by a user (never more scopes than the
//!   owner) or made for one app run; secrets stored hashed, shown once.
//! - [`audit`]: the append-only trail of every change and every refusal.
//! - [`Access`]: the façade the server and the CLI use — authenticate a credential into a
//!   [`Principal`], with the secret check bounded so that bad secrets cannot exhaust the
//!   server.
//!
//! Knows nothing of HTTP or the CLI.

mod audit;
mod guard;
mod scope;
mod sessions;
mod tokens;
mod users;

use std::net::IpAddr;
use std::sync::Arc;

use kondate_core::Clock;
use kondate_db::{Database, DbError};
use serde::Serialize;

pub use audit::{
    Audit, AuditEntry, AuditFilter, AuditRecord, Outcome, REFUSALS_PER_KEY, Source, parse_since,
};
pub use scope::{Role, Scope, ScopeKind, Scopes};
pub use sessions::{NewSession, Pending, Session, SessionOf, Sessions, new_signin_code};
pub use tokens::{NewToken, NewTokenRequest, TokenInfo, TokenKind, Tokens, run_token_name};
pub use users::{User, Users};

/// Errors of access control; each maps to one HTTP status and one exit code.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The request is wrong (a bad scope, e-mail, role, expiry).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong credentials; send HTTP Basic auth with your token and its secret")]
    Unauthorized,
    /// The principal is known but lacks the scope.
    #[error("{principal} may not do this: it needs the scope `{needed}`{}", has_hint(.has))]
    Forbidden {
        needed: String,
        principal: String,
        has: String,
    },
    /// Too many failed secret checks from this client or for this token.
    #[error(
        "too many failed sign-in attempts from this address or for this token; wait {retry_after_secs} s"
    )]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn has_hint(has: &str) -> String {
    if has.is_empty() {
        String::new()
    } else {
        format!(" (it has: {has}); ask an admin for a token or role that includes it")
    }
}

/// Who a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person (signed in to the console; later issues).
    User,
    /// A token, owned by a user or made for a run.
    Token,
    /// The operator at a terminal with direct access to the project's databases: whoever
    /// can read the state database can do anything, so the CLI acts as admin.
    Local,
    /// No credentials, where `query.allow_anonymous` allows it (loopback only).
    Anonymous,
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The token name, the e-mail, or the operating-system user.
    pub name: String,
    /// A token's owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// For a run token: the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// What it holds.
    pub scopes: Scopes,
    /// For an owned token, the owner's current scopes: a token never does more than its
    /// owner may do now (a demoted owner's tokens are demoted with them).
    #[serde(skip)]
    pub ceiling: Option<Scopes>,
}

impl Principal {
    /// The operator at a terminal, as admin.
    pub fn local(os_user: &str) -> Principal {
        Principal {
            kind: PrincipalKind::Local,
            name: os_user.to_string(),
            owner: None,
            run_id: None,
            scopes: Scopes::new(vec![Scope::all(ScopeKind::Admin)]),
            ceiling: None,
        }
    }

    /// An anonymous caller: submitting and reading its own (anonymous) queries only.
    pub fn anonymous() -> Principal {
        Principal {
            kind: PrincipalKind::Anonymous,
            name: "anonymous".into(),
            owner: None,
            run_id: None,
            scopes: Scopes::new(vec![Scope::all(ScopeKind::Query)]),
            ceiling: None,
        }
    }

    /// How it is written in records and histories: `token:trainer`, `user:ml@example.com`,
    /// `cli:alice`, `anonymous`.
    /// Who this is as a person, for what is kept per person (catalog favourites): a token's
    /// owner (`user:EMAIL`), else the principal itself.
    pub fn person(&self) -> String {
        match (&self.kind, &self.owner) {
            (PrincipalKind::Token, Some(owner)) => format!("user:{owner}"),
            _ => self.actor(),
        }
    }

    pub fn actor(&self) -> String {
        match self.kind {
            PrincipalKind::User => format!("user:{}", self.name),
            PrincipalKind::Token => format!("token:{}", self.name),
            PrincipalKind::Local => format!("cli:{}", self.name),
            PrincipalKind::Anonymous => "anonymous".into(),
        }
    }

    /// The token name queries are recorded under (`None` for anonymous callers).
    pub fn token_name(&self) -> Option<&str> {
        match self.kind {
            PrincipalKind::Anonymous => None,
            _ => Some(&self.name),
        }
    }

    /// Whether it may do `kind` to `target` (`None`: to nothing in particular).
    pub fn allows(&self, kind: ScopeKind, target: Option<&str>) -> bool {
        self.scopes.allows(kind, target)
            && self.ceiling.as_ref().is_none_or(|c| c.allows(kind, target))
    }

    /// Whether it may do `kind` to every name.
    pub fn allows_every(&self, kind: ScopeKind) -> bool {
        self.scopes.allows_every(kind) && self.ceiling.as_ref().is_none_or(|c| c.allows_every(kind))
    }

    /// Whether it holds any scope of `kind` (for listings it may then filter).
    pub fn has_kind(&self, kind: ScopeKind) -> bool {
        self.scopes.has_kind(kind) && self.ceiling.as_ref().is_none_or(|c| c.has_kind(kind))
    }

    /// Whether everything `scope` allows, this principal may do (a token it makes, a run
    /// it launches, never holds more).
    pub fn covers(&self, scope: &Scope) -> bool {
        self.scopes.covers(scope) && self.ceiling.as_ref().is_none_or(|c| c.covers(scope))
    }

    pub fn is_admin(&self) -> bool {
        self.allows_every(ScopeKind::Admin)
    }

    /// `Ok` if it may do `kind` to `target`, else [`AccessError::Forbidden`] naming the
    /// scope needed.
    pub fn require(&self, kind: ScopeKind, target: Option<&str>) -> Result<(), AccessError> {
        if self.allows(kind, target) {
            return Ok(());
        }
        Err(self.forbidden(match target {
            Some(t) => Scope::on(kind, t),
            None => Scope::all(kind),
        }))
    }

    /// `Ok` if it may do `kind` to every name.
    pub fn require_every(&self, kind: ScopeKind) -> Result<(), AccessError> {
        if self.allows_every(kind) {
            return Ok(());
        }
        Err(self.forbidden(Scope::all(kind)))
    }

    fn forbidden(&self, needed: Scope) -> AccessError {
        AccessError::Forbidden {
            needed: needed.to_string(),
            principal: self.actor(),
            has: self.scopes.to_list(),
        }
    }
}

/// The façade: users, tokens, the audit trail, and authentication.
#[derive(Debug, Clone)]
pub struct Access {
    pub users: Users,
    pub tokens: Tokens,
    pub audit: Audit,
    /// The web console's sign-in sessions.
    pub sessions: Sessions,
    clock: Arc<dyn Clock>,
    guard: Arc<guard::Guard>,
}

impl Access {
    /// Access control on the (migrated) state database.
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Access {
        let users = Users::new(db.clone(), clock.clone());
        Access {
            tokens: Tokens::new(db.clone(), clock.clone(), users.clone()),
            sessions: Sessions::new(db.clone(), clock.clone(), users.clone()),
            audit: Audit::new(db, clock.clone()),
            clock,
            users,
            guard: Arc::new(guard::Guard::default()),
        }
    }

    /// Check `name:secret` from `client` and return who it is. Failed checks are limited
    /// per client address and per token name, and secret hashing runs a few at a time, so
    /// a flood of bad secrets costs the server little; a secret that verified recently is
    /// remembered as a keyed digest, so clients that poll do not pay the hash each time.
    pub async fn authenticate(
        &self,
        name: &str,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, AccessError> {
        let now = self.clock.now().timestamp_millis();
        let stored = self.tokens.stored(name).await?;
        if let Some(t) = &stored
            && t.usable(now)
            && self.guard.cached(name, &t.hash, secret)
        {
            return self.token_principal(t).await;
        }
        let attempt = self.guard.reserve(name, client)?;
        // An unknown token costs the same hash as a known one, so that response times do
        // not tell which names exist.
        let hash = stored
            .as_ref()
            .map_or_else(tokens::Stored::dummy_hash, |t| t.hash.clone());
        let given = secret.to_string();
        let checked = self
            .guard
            .hash_check(move || tokens::Stored::check(&hash, &given))
            .await;
        let valid = matches!(checked, Ok(true)) && stored.as_ref().is_some_and(|t| t.usable(now));
        self.guard.finish(attempt, valid);
        checked?;
        match stored {
            Some(t) if valid => {
                self.guard.remember(name, &t.hash, secret);
                self.token_principal(&t).await
            }
            _ => Err(AccessError::Unauthorized),
        }
    }

    async fn token_principal(&self, t: &tokens::Stored) -> Result<Principal, AccessError> {
        let p = self.tokens.principal(t)?;
        self.tokens.touch(t).await;
        Ok(p)
    }
}
