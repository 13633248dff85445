//! Console sessions: a person signed in to the web console holds a random secret in a
//! cookie; the state database keeps only its SHA-256 (as it keeps tokens' secrets hashed),
//! who it is, its CSRF token and its expiry. Every request reads who the session is *now*
//! (a disabled or demoted user loses what they lost at once), and signing out deletes it.

use std::sync::Arc;
use std::time::Duration;

use kondate_core::Clock;
use kondate_db::{Database, Value, get_i64, get_string};
use sha2::{Digest, Sha256};

use crate::{AccessError, Principal, PrincipalKind, Users};

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOf {
    /// A user, by e-mail: what their roles allow when each request is served.
    User(String),
    /// The operator, signed in on a loopback-only server with the code it printed: admin.
    Local(String),
}

/// A session found by its secret.
#[derive(Debug, Clone)]
pub struct Session {
    pub of: SessionOf,
    /// The token every form of this session carries.
    pub csrf: String,
    pub expires_at_ms: i64,
}

/// A sign-in under way at an identity provider ([`Sessions::begin_pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub nonce: String,
    pub verifier: String,
    /// The console address to go to once signed in.
    pub next: String,
}

/// A new session: the cookie's secret (shown to the browser once) and the session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub session: Session,
}

#[derive(Debug, Clone)]
pub struct Sessions {
    db: Database,
    clock: Arc<dyn Clock>,
    users: Users,
}

/// A new random code for the console's local sign-in link (128 bits, hex).
pub fn new_signin_code() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Sessions {
    pub fn new(db: Database, clock: Arc<dyn Clock>, users: Users) -> Sessions {
        Sessions { db, clock, users }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Start a session of `of` that lasts `ttl`; expired sessions are removed on the way.
    pub async fn create(&self, of: SessionOf, ttl: Duration) -> Result<NewSession, AccessError> {
        let now = self.now_ms();
        self.db
            .execute(
                "DELETE FROM kondate_sessions WHERE expires_at < ?",
                &[Value::Int(now)],
            )
            .await?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let csrf = hex::encode(rand::random::<[u8; 16]>());
        let expires_at_ms = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let (kind, principal) = match &of {
            SessionOf::User(email) => ("user", email.clone()),
            SessionOf::Local(name) => ("local", name.clone()),
        };
        self.db
            .execute(
                "INSERT INTO kondate_sessions (id_hash, kind, principal, csrf, created_at, \
                 expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Value::Text(hash(&secret)),
                    Value::Text(kind.into()),
                    Value::Text(principal),
                    Value::Text(csrf.clone()),
                    Value::Int(now),
                    Value::Int(expires_at_ms),
                ],
            )
            .await?;
        Ok(NewSession {
            secret,
            session: Session {
                of,
                csrf,
                expires_at_ms,
            },
        })
    }

    /// The live session whose cookie holds `secret`.
    pub async fn find(&self, secret: &str) -> Result<Option<Session>, AccessError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT kind, principal, csrf, expires_at FROM kondate_sessions \
                 WHERE id_hash = ? AND expires_at >= ? AND kind IN ('user', 'local')",
                &[Value::Text(hash(secret)), Value::Int(self.now_ms())],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let principal = get_string(&row, "principal")?;
        let of = match get_string(&row, "kind")?.as_str() {
            "local" => SessionOf::Local(principal),
            _ => SessionOf::User(principal),
        };
        Ok(Some(Session {
            of,
            csrf: get_string(&row, "csrf")?,
            expires_at_ms: get_i64(&row, "expires_at")?,
        }))
    }

    /// Who the session is now, with what they may do now; None for a user who is gone or
    /// disabled.
    pub async fn principal(&self, session: &Session) -> Result<Option<Principal>, AccessError> {
        match &session.of {
            SessionOf::Local(name) => Ok(Some(Principal::local(name))),
            SessionOf::User(email) => match self.users.get(email).await? {
                Some(u) if u.enabled => Ok(Some(Principal {
                    kind: PrincipalKind::User,
                    name: u.email.clone(),
                    owner: None,
                    run_id: None,
                    scopes: u.effective_scopes()?,
                    ceiling: None,
                })),
                _ => Ok(None),
            },
        }
    }

    /// Remember a sign-in going to an identity provider for `ttl`: its OpenID Connect
    /// `nonce`, PKCE `verifier` and the console address to return to. Answers the `state`
    /// to send the provider (random; kept hashed, as session secrets are).
    pub async fn begin_pending(
        &self,
        nonce: &str,
        verifier: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<String, AccessError> {
        let invalid = |what: &str| AccessError::Invalid(format!("a pending sign-in's {what}"));
        if nonce.len() > 64 || nonce.contains(' ') {
            return Err(invalid("nonce is not a short token"));
        }
        if verifier.len() > 128 || verifier.contains(' ') {
            return Err(invalid("verifier is not a short token"));
        }
        // The column holds 255 characters: a longer address is not kept (the home page).
        let next = if next.len() <= 120 && next.starts_with('/') && !next.starts_with("//") {
            next
        } else {
            "/"
        };
        let now = self.now_ms();
        let state = hex::encode(rand::random::<[u8; 32]>());
        self.db
            .execute(
                "INSERT INTO kondate_sessions (id_hash, kind, principal, csrf, created_at, \
                 expires_at) VALUES (?, 'pending', ?, ?, ?, ?)",
                &[
                    Value::Text(hash(&state)),
                    Value::Text(format!("{verifier} {next}")),
                    Value::Text(nonce.into()),
                    Value::Int(now),
                    Value::Int(now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)),
                ],
            )
            .await?;
        Ok(state)
    }

    /// The pending sign-in `state` names, if it is live — taken: a state serves once.
    pub async fn take_pending(&self, state: &str) -> Result<Option<Pending>, AccessError> {
        let id = hash(state);
        let row = self
            .db
            .fetch_optional(
                "SELECT principal, csrf FROM kondate_sessions WHERE id_hash = ? AND \
                 kind = 'pending' AND expires_at >= ?",
                &[Value::Text(id.clone()), Value::Int(self.now_ms())],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // Only the one who deletes it may use it (two callbacks with one state: one wins).
        let deleted = self
            .db
            .execute(
                "DELETE FROM kondate_sessions WHERE id_hash = ? AND kind = 'pending'",
                &[Value::Text(id)],
            )
            .await?;
        if deleted == 0 {
            return Ok(None);
        }
        let kept = get_string(&row, "principal")?;
        let (verifier, next) = kept.split_once(' ').unwrap_or((kept.as_str(), "/"));
        Ok(Some(Pending {
            nonce: get_string(&row, "csrf")?,
            verifier: verifier.to_string(),
            next: next.to_string(),
        }))
    }

    /// End the session whose cookie holds `secret` (signing out).
    pub async fn end(&self, secret: &str) -> Result<(), AccessError> {
        self.db
            .execute(
                "DELETE FROM kondate_sessions WHERE id_hash = ?",
                &[Value::Text(hash(secret))],
            )
            .await?;
        Ok(())
    }
}
