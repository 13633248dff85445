//! API tokens: HTTP Basic `token:secret` for programs.
//!
//! A token is owned by a user and never holds more than its owner (checked when it is
//! made, and again on every use against the owner's current scopes), or it is made for one
//! app run with the run's least-privilege scopes and an expiry. Secrets are shown once and
//! stored hashed: bcrypt for tokens people make, SHA-256 for run tokens (machine-made
//! 256-bit secrets nobody can guess, so a slow hash buys nothing and would slow every run's
//! start by 50 ms). Whether a token is enabled is read on every request, so disabling it
//! takes effect at once everywhere.
//!
//! Tokens made before scopes existed are `legacy`: they keep exactly what they could do
//! then (every scope but `admin`; [`kondate_db::state::LEGACY_TOKEN_SCOPES`]) — no silent
//! widening, no silent breakage — and `kondate tokens list` marks them for replacement.

use std::sync::Arc;
use std::time::Duration;

use kondate_core::Clock;
use kondate_core::clock::ms_to_rfc3339;
use kondate_db::{Database, Value, get_i64, get_opt_i64, get_opt_string, get_string};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{AccessError, Principal, PrincipalKind, Scopes, Users};

/// bcrypt cost: about 50 ms per verification on one core.
const BCRYPT_COST: u32 = 10;
/// Marks a hash stored as plain SHA-256 (run tokens).
const SHA256_PREFIX: &str = "sha256$";
/// How often a token's last use is written at most (per process).
const LAST_USE_EVERY_MS: i64 = 60_000;
/// A bcrypt hash of a random secret nobody knows, checked against when the token does not
/// exist, so that response times do not tell which names exist.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    bcrypt::hash(hex::encode(rand::random::<[u8; 16]>()), BCRYPT_COST).expect("bcrypt hashes")
});

/// Compare without an early exit, so timing does not tell how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Made by a person for a program; has an owner.
    Token,
    /// Made for one app run; expires.
    Run,
    /// Made before scopes existed; keeps what it could do then.
    Legacy,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Token => "token",
            TokenKind::Run => "run",
            TokenKind::Legacy => "legacy",
        }
    }

    fn parse(s: Option<&str>) -> TokenKind {
        match s {
            Some("token") => TokenKind::Token,
            Some("run") => TokenKind::Run,
            _ => TokenKind::Legacy,
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub kind: TokenKind,
    /// Usable now: enabled and not expired.
    pub enabled: bool,
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub rotated_at: Option<String>,
    pub disabled_at: Option<String>,
}

/// A newly made token and its secret, shown once (serialised for the one who made it;
/// never in `{:?}`).
#[derive(Clone, Serialize)]
pub struct NewToken {
    pub name: String,
    pub secret: String,
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub expires_at: Option<String>,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("name", &self.name)
            .field("secret", &"***")
            .field("scopes", &self.scopes)
            .field("owner", &self.owner)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What to make.
#[derive(Debug, Clone)]
pub struct NewTokenRequest {
    pub name: String,
    /// The user it belongs to (required).
    pub owner: String,
    /// What it may do (at least one scope; each covered by the owner's).
    pub scopes: Scopes,
    /// `None`: until disabled.
    pub expires_in: Option<Duration>,
    /// Who makes it (an actor string, for the record).
    pub created_by: String,
}

/// A token row as stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub name: String,
    pub kind: TokenKind,
    pub hash: String,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub scopes: String,
    pub owner: Option<String>,
    pub run_id: Option<String>,
    pub last_used_at: Option<i64>,
    /// The owner's roles, scopes and whether they are enabled, read with the token (one
    /// query per request, so a demoted or disabled owner's tokens follow at once).
    pub owner_grants: Option<(String, String, bool)>,
}

impl Stored {
    pub fn usable(&self, now_ms: i64) -> bool {
        self.enabled && self.expires_at.is_none_or(|e| e > now_ms)
    }

    /// Check `secret` against the stored hash (slow for bcrypt hashes: run it through the
    /// guard).
    pub fn check(hash: &str, secret: &str) -> bool {
        if let Some(expected) = hash.strip_prefix(SHA256_PREFIX) {
            let actual = hex::encode(Sha256::digest(secret.as_bytes()));
            constant_time_eq(actual.as_bytes(), expected.as_bytes())
        } else {
            bcrypt::verify(secret, hash).unwrap_or(false)
        }
    }

    /// The hash checked when there is no such token.
    pub fn dummy_hash() -> String {
        DUMMY_HASH.clone()
    }
}

const COLUMNS: &str = "name, kind, secret_hash, enabled, created_at, created_by, disabled_at, \
                       expires_at, scopes, owner, run_id, last_used_at, rotated_at";

/// Makes, lists, rotates and disables tokens, and turns a verified one into a principal.
#[derive(Debug, Clone)]
pub struct Tokens {
    db: Database,
    clock: Arc<dyn Clock>,
    users: Users,
}

async fn bcrypt_hash(secret: &str) -> Result<String, AccessError> {
    let s = secret.to_string();
    tokio::task::spawn_blocking(move || bcrypt::hash(s, BCRYPT_COST))
        .await
        .map_err(|e| AccessError::Internal(e.to_string()))?
        .map_err(|e| AccessError::Internal(format!("hashing the secret failed: {e}")))
}

fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn validate_token_name(name: &str) -> Result<(), AccessError> {
    kondate_core::names::validate_name("token name", name)
        .map_err(|e| AccessError::Invalid(e.to_string()))
}

impl Tokens {
    pub(crate) fn new(db: Database, clock: Arc<dyn Clock>, users: Users) -> Self {
        Self { db, clock, users }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Make a token for a program, owned by a user.
    pub async fn create(&self, req: NewTokenRequest) -> Result<NewToken, AccessError> {
        let owner = self.check_request(&req).await?;
        if self.exists(&req.name).await? {
            return Err(AccessError::Conflict(format!(
                "a token named `{}` already exists; choose another name, or `kondate tokens rotate {}` for a new secret",
                req.name, req.name
            )));
        }
        let secret = new_secret();
        let hash = bcrypt_hash(&secret).await?;
        let now = self.now_ms();
        let expires_at = req.expires_in.map(|d| now + d.as_millis() as i64);
        self.db
            .insert_returning_id(
                "INSERT INTO kondate_tokens (name, kind, secret_hash, enabled, created_at, created_by, \
                 expires_at, scopes, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    req.name.as_str().into(),
                    TokenKind::Token.as_str().into(),
                    hash.into(),
                    true.into(),
                    Value::Int(now),
                    req.created_by.as_str().into(),
                    expires_at.into(),
                    req.scopes.to_list().into(),
                    owner.email.as_str().into(),
                ],
            )
            .await?;
        Ok(NewToken {
            name: req.name,
            secret,
            scopes: req.scopes.iter().map(|s| s.to_string()).collect(),
            owner: Some(owner.email),
            expires_at: expires_at.map(ms_to_rfc3339),
        })
    }

    /// Check a request: the name, at least one scope, an enabled owner holding every
    /// scope. Returns the owner.
    async fn check_request(&self, req: &NewTokenRequest) -> Result<crate::User, AccessError> {
        validate_token_name(&req.name)?;
        if req.name.starts_with("run-") {
            return Err(AccessError::Invalid(format!(
                "`{}`: names starting with `run-` are kept for the tokens of app runs",
                req.name
            )));
        }
        if req.scopes.is_empty() {
            return Err(AccessError::Invalid(
                "a token needs at least one scope (`--scope query`); `kondate tokens create --help` lists them"
                    .into(),
            ));
        }
        let owner = self.users.get(&req.owner).await?.ok_or_else(|| {
            AccessError::NotFound(format!(
                "no user `{}`; add one with `kondate users add {} --role editor`",
                req.owner, req.owner
            ))
        })?;
        if !owner.enabled {
            return Err(AccessError::Invalid(format!(
                "user `{}` is disabled; a disabled user cannot own new tokens",
                owner.email
            )));
        }
        let owner_scopes = owner.effective_scopes()?;
        let beyond: Vec<String> = req
            .scopes
            .not_covered_by(&owner_scopes)
            .map(|s| s.to_string())
            .collect();
        if !beyond.is_empty() {
            return Err(AccessError::Invalid(format!(
                "a token cannot have more scopes than its owner: {} does not hold {}; {} has: {}",
                owner.email,
                beyond.join(", "),
                owner.email,
                owner_scopes
            )));
        }
        Ok(owner)
    }

    /// Make the token, or give an existing one of the same name a new secret and the
    /// request's owner, scopes and expiry; for set-up scripts that must be re-runnable.
    pub async fn create_or_rotate(&self, req: NewTokenRequest) -> Result<NewToken, AccessError> {
        if !self.exists(&req.name).await? {
            return self.create(req).await;
        }
        // The same checks as a new token, against a name that is free for the moment.
        let name = req.name.clone();
        let scopes = req.scopes.clone();
        let owner = req.owner.clone();
        let expires_in = req.expires_in;
        self.check_request(&req).await?;
        let mut t = self.rotate(&name).await?;
        let expires_at = expires_in.map(|d| self.now_ms() + d.as_millis() as i64);
        self.db
            .execute(
                "UPDATE kondate_tokens SET kind = ?, scopes = ?, owner = ?, expires_at = ? WHERE name = ?",
                &[
                    TokenKind::Token.as_str().into(),
                    scopes.to_list().into(),
                    owner.as_str().into(),
                    expires_at.into(),
                    name.as_str().into(),
                ],
            )
            .await?;
        t.scopes = scopes.iter().map(|s| s.to_string()).collect();
        t.owner = Some(owner);
        t.expires_at = expires_at.map(ms_to_rfc3339);
        Ok(t)
    }

    /// A token for one app run, with `scopes`, that stops working after `ttl`.
    pub async fn create_for_run(
        &self,
        run_id: &str,
        scopes: &Scopes,
        ttl: Duration,
        created_by: &str,
    ) -> Result<NewToken, AccessError> {
        let name = run_token_name(run_id);
        validate_token_name(&name)?;
        let secret = new_secret();
        let hash = format!(
            "{SHA256_PREFIX}{}",
            hex::encode(Sha256::digest(secret.as_bytes()))
        );
        let now = self.now_ms();
        let expires_at = now + ttl.as_millis() as i64;
        self.db
            .insert_returning_id(
                "INSERT INTO kondate_tokens (name, kind, secret_hash, enabled, created_at, created_by, \
                 expires_at, scopes, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    name.as_str().into(),
                    TokenKind::Run.as_str().into(),
                    hash.into(),
                    true.into(),
                    Value::Int(now),
                    created_by.into(),
                    Value::Int(expires_at),
                    scopes.to_list().into(),
                    run_id.into(),
                ],
            )
            .await?;
        Ok(NewToken {
            name,
            secret,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner: None,
            expires_at: Some(ms_to_rfc3339(expires_at)),
        })
    }

    /// A new secret for an existing token (enabled again); the old secret stops working at
    /// once. Scopes, owner and expiry stay.
    pub async fn rotate(&self, name: &str) -> Result<NewToken, AccessError> {
        let stored = self.stored(name).await?.ok_or_else(|| not_found(name))?;
        if stored.kind == TokenKind::Run {
            return Err(AccessError::Invalid(format!(
                "`{name}` belongs to an app run and ends with it; it cannot be rotated"
            )));
        }
        let secret = new_secret();
        let hash = bcrypt_hash(&secret).await?;
        self.db
            .execute(
                "UPDATE kondate_tokens SET secret_hash = ?, enabled = 1, disabled_at = NULL, rotated_at = ? WHERE name = ?",
                &[hash.into(), Value::Int(self.now_ms()), name.into()],
            )
            .await?;
        Ok(NewToken {
            name: name.to_string(),
            secret,
            scopes: Scopes::parse_list(&stored.scopes)?
                .iter()
                .map(|s| s.to_string())
                .collect(),
            owner: stored.owner,
            expires_at: stored.expires_at.map(ms_to_rfc3339),
        })
    }

    /// Delete a token outright (a finished run's token).
    pub async fn delete(&self, name: &str) -> Result<(), AccessError> {
        self.db
            .execute("DELETE FROM kondate_tokens WHERE name = ?", &[name.into()])
            .await?;
        Ok(())
    }

    async fn exists(&self, name: &str) -> Result<bool, AccessError> {
        Ok(self
            .db
            .fetch_optional(
                "SELECT name FROM kondate_tokens WHERE name = ?",
                &[name.into()],
            )
            .await?
            .is_some())
    }

    pub(crate) async fn stored(&self, name: &str) -> Result<Option<Stored>, AccessError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT t.name AS name, t.kind AS kind, t.secret_hash AS secret_hash, \
                 t.enabled AS enabled, t.expires_at AS expires_at, t.scopes AS scopes, \
                 t.owner AS owner, t.run_id AS run_id, t.last_used_at AS last_used_at, \
                 u.roles AS owner_roles, u.scopes AS owner_scopes, u.enabled AS owner_enabled \
                 FROM kondate_tokens t LEFT JOIN kondate_users u ON u.email = t.owner \
                 WHERE t.name = ?",
                &[name.into()],
            )
            .await?;
        row.map(|r| {
            let owner_grants = get_opt_i64(&r, "owner_enabled").map(|enabled| {
                (
                    get_opt_string(&r, "owner_roles").unwrap_or_default(),
                    get_opt_string(&r, "owner_scopes").unwrap_or_default(),
                    enabled != 0,
                )
            });
            Ok(Stored {
                owner_grants,
                name: get_string(&r, "name")?,
                kind: TokenKind::parse(get_opt_string(&r, "kind").as_deref()),
                hash: get_string(&r, "secret_hash")?,
                enabled: get_i64(&r, "enabled")? != 0,
                expires_at: get_opt_i64(&r, "expires_at"),
                scopes: get_opt_string(&r, "scopes").unwrap_or_default(),
                owner: get_opt_string(&r, "owner"),
                run_id: get_opt_string(&r, "run_id"),
                last_used_at: get_opt_i64(&r, "last_used_at"),
            })
        })
        .transpose()
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AccessError> {
        let now = self.now_ms();
        let rows = self
            .db
            .fetch_all(
                &format!("SELECT {COLUMNS} FROM kondate_tokens ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let expires = get_opt_i64(r, "expires_at");
                Ok(TokenInfo {
                    name: get_string(r, "name")?,
                    kind: TokenKind::parse(get_opt_string(r, "kind").as_deref()),
                    enabled: get_i64(r, "enabled")? != 0 && expires.is_none_or(|e| e > now),
                    scopes: get_opt_string(r, "scopes")
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                    owner: get_opt_string(r, "owner"),
                    created_by: get_opt_string(r, "created_by"),
                    created_at: ms_to_rfc3339(get_i64(r, "created_at")?),
                    expires_at: expires.map(ms_to_rfc3339),
                    last_used_at: get_opt_i64(r, "last_used_at").map(ms_to_rfc3339),
                    rotated_at: get_opt_i64(r, "rotated_at").map(ms_to_rfc3339),
                    disabled_at: get_opt_i64(r, "disabled_at").map(ms_to_rfc3339),
                })
            })
            .collect()
    }

    /// Disable a token; its secret stops working at once.
    pub async fn disable(&self, name: &str) -> Result<(), AccessError> {
        let n = self
            .db
            .execute(
                "UPDATE kondate_tokens SET enabled = 0, disabled_at = ? WHERE name = ? AND enabled = 1",
                &[Value::Int(self.now_ms()), name.into()],
            )
            .await?;
        if n == 0 && !self.exists(name).await? {
            return Err(not_found(name));
        }
        Ok(())
    }

    /// Who a verified token is: its scopes, and its owner's current scopes as the ceiling.
    /// A token whose owner is gone or disabled authenticates nobody.
    pub(crate) fn principal(&self, t: &Stored) -> Result<Principal, AccessError> {
        let scopes = Scopes::parse_list(&t.scopes).map_err(|e| {
            AccessError::Internal(format!("token `{}` has unreadable scopes: {e}", t.name))
        })?;
        let ceiling = match (&t.owner, &t.owner_grants) {
            (None, _) => None,
            (Some(_), Some((roles, scopes, true))) => {
                Some(crate::users::effective_scopes(roles, scopes)?)
            }
            // The owner is gone or disabled.
            (Some(_), _) => return Err(AccessError::Unauthorized),
        };
        Ok(Principal {
            kind: PrincipalKind::Token,
            name: t.name.clone(),
            owner: t.owner.clone(),
            run_id: t.run_id.clone(),
            scopes,
            ceiling,
        })
    }

    /// Note that `t` was used, at most once a minute.
    pub(crate) async fn touch(&self, t: &Stored) {
        let now = self.now_ms();
        if t.last_used_at
            .is_some_and(|at| now - at < LAST_USE_EVERY_MS)
        {
            return;
        }
        if let Err(e) = self
            .db
            .execute(
                "UPDATE kondate_tokens SET last_used_at = ? WHERE name = ?",
                &[Value::Int(now), t.name.as_str().into()],
            )
            .await
        {
            tracing::warn!(token = %t.name, error = %e, "could not record the token's last use");
        }
    }
}

/// The name of an app run's token.
pub fn run_token_name(run_id: &str) -> String {
    format!("run-{run_id}")
}

fn not_found(name: &str) -> AccessError {
    AccessError::NotFound(format!(
        "no token named `{name}`; `kondate tokens list` shows them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tokens_debug_never_shows_its_secret() {
        let t = NewToken {
            name: "trainer".into(),
            secret: "0123456789abcdef-secret".into(),
            scopes: vec!["query".into()],
            owner: None,
            expires_at: None,
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("0123456789abcdef-secret"), "{shown}");
        assert!(shown.contains("trainer"));
    }
}
