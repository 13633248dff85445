//! API tokens: HTTP Basic `token:secret`, secrets stored only as a bcrypt hash.
//!
//! bcrypt is slow on purpose, and the public client polls every few seconds, so a secret
//! that verified recently is remembered in memory as its SHA-256 (never in clear) for a
//! minute. Whether a token is enabled is read from the database on every request, so
//! `kondate tokens disable` takes effect at once everywhere.
//!
//! Run tokens (one per app run, see `create_expiring`) are machine-made 256-bit secrets
//! with an expiry: they are stored as a plain SHA-256 (`sha256$…`), which is enough for a
//! secret that cannot be guessed, and keeps starting a run fast (bcrypt would add 50 ms).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kondate_core::Clock;
use kondate_db::{Database, Value, get_i64, get_opt_i64, get_string};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::QueryError;

/// bcrypt cost: about 50 ms per verification on one core.
const BCRYPT_COST: u32 = 10;
/// A bcrypt hash of a random secret nobody knows, verified against when the token does
/// not exist.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    bcrypt::hash(hex::encode(rand::random::<[u8; 16]>()), BCRYPT_COST).expect("bcrypt hashes")
});
/// Marks a hash stored as plain SHA-256 (run tokens).
const SHA256_PREFIX: &str = "sha256$";

/// Compare without an early exit, so timing does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a verified secret is remembered.
const CACHE_FOR: Duration = Duration::from_secs(60);

async fn hash_secret(secret: &str) -> Result<String, QueryError> {
    let s = secret.to_string();
    tokio::task::spawn_blocking(move || bcrypt::hash(s, BCRYPT_COST))
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))?
        .map_err(|e| QueryError::Internal(format!("hashing the secret failed: {e}")))
}

/// Token name → (SHA-256 of hash and secret, when it verified).
type VerifiedCache = HashMap<String, ([u8; 32], Instant)>;

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub enabled: bool,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// A newly created token and its secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub name: String,
    pub secret: String,
}

/// Creates, lists, disables and verifies tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    db: Database,
    clock: Arc<dyn Clock>,
    verified: Arc<Mutex<VerifiedCache>>,
}

fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Tokens {
    /// Token operations on the state database.
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            verified: Arc::default(),
        }
    }

    /// Create a token named `name`; the secret is returned once and stored only hashed.
    pub async fn create(&self, name: &str) -> Result<NewToken, QueryError> {
        kondate_core::names::validate_name("token name", name)
            .map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
        if self.find(name).await?.is_some() {
            return Err(QueryError::InvalidParameter(format!(
                "a token named `{name}` already exists; choose another name or disable it first"
            )));
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let hash = hash_secret(&secret).await?;
        self.db
            .insert_returning_id(
                "INSERT INTO kondate_tokens (name, secret_hash, enabled, created_at) VALUES (?, ?, ?, ?)",
                &[name.into(), hash.into(), true.into(), Value::Int(self.clock.now().timestamp_millis())],
            )
            .await?;
        Ok(NewToken {
            name: name.to_string(),
            secret,
        })
    }

    /// Give an existing token a new secret (and enable it), or create it; for set-up
    /// scripts that must be re-runnable. The old secret stops working at once.
    pub async fn create_or_rotate(&self, name: &str) -> Result<NewToken, QueryError> {
        if self.find(name).await?.is_none() {
            return self.create(name).await;
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let hash = hash_secret(&secret).await?;
        self.db
            .execute(
                "UPDATE kondate_tokens SET secret_hash = ?, enabled = 1, disabled_at = NULL WHERE name = ?",
                &[hash.into(), name.into()],
            )
            .await?;
        self.verified.lock().expect("cache lock").remove(name);
        Ok(NewToken {
            name: name.to_string(),
            secret,
        })
    }

    /// A token that stops working after `ttl` (for one app run): the secret is returned
    /// once and stored as its SHA-256.
    pub async fn create_expiring(&self, name: &str, ttl: Duration) -> Result<NewToken, QueryError> {
        kondate_core::names::validate_name("token name", name)
            .map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let hash = format!(
            "{SHA256_PREFIX}{}",
            hex::encode(Sha256::digest(secret.as_bytes()))
        );
        let now = self.clock.now().timestamp_millis();
        self.db
            .insert_returning_id(
                "INSERT INTO kondate_tokens (name, secret_hash, enabled, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                &[
                    name.into(),
                    hash.into(),
                    true.into(),
                    Value::Int(now),
                    Value::Int(now + ttl.as_millis() as i64),
                ],
            )
            .await?;
        Ok(NewToken {
            name: name.to_string(),
            secret,
        })
    }

    /// Delete a token outright (a finished run's token).
    pub async fn delete(&self, name: &str) -> Result<(), QueryError> {
        self.db
            .execute("DELETE FROM kondate_tokens WHERE name = ?", &[name.into()])
            .await?;
        self.verified.lock().expect("cache lock").remove(name);
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<Option<(TokenInfo, String)>, QueryError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT name, secret_hash, enabled, created_at, disabled_at, expires_at FROM kondate_tokens WHERE name = ?",
                &[name.into()],
            )
            .await?;
        let now = self.clock.now().timestamp_millis();
        Ok(match row {
            None => None,
            Some(r) => Some((
                TokenInfo {
                    name: get_string(&r, "name")?,
                    enabled: get_i64(&r, "enabled")? != 0
                        && get_opt_i64(&r, "expires_at").is_none_or(|e| e > now),
                    created_at: ts(get_i64(&r, "created_at")?),
                    disabled_at: get_opt_i64(&r, "disabled_at").map(ts),
                },
                get_string(&r, "secret_hash")?,
            )),
        })
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, QueryError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT name, enabled, created_at, disabled_at FROM kondate_tokens ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    name: get_string(r, "name")?,
                    enabled: get_i64(r, "enabled")? != 0,
                    created_at: ts(get_i64(r, "created_at")?),
                    disabled_at: get_opt_i64(r, "disabled_at").map(ts),
                })
            })
            .collect()
    }

    /// Disable a token; its secret stops working at once.
    pub async fn disable(&self, name: &str) -> Result<(), QueryError> {
        let n = self
            .db
            .execute(
                "UPDATE kondate_tokens SET enabled = 0, disabled_at = ? WHERE name = ? AND enabled = 1",
                &[Value::Int(self.clock.now().timestamp_millis()), name.into()],
            )
            .await?;
        self.verified.lock().expect("cache lock").remove(name);
        if n == 0 {
            return match self.find(name).await? {
                Some(_) => Ok(()),
                None => Err(QueryError::NotFound(format!(
                    "no token named `{name}`; `kondate tokens list` shows them"
                ))),
            };
        }
        Ok(())
    }

    /// Check `name:secret`; the same error for an unknown token, a wrong secret and a
    /// disabled token, so that callers learn nothing about which tokens exist.
    pub async fn verify(&self, name: &str, secret: &str) -> Result<(), QueryError> {
        let (enabled, hash) = match self.find(name).await? {
            Some((info, hash)) => (info.enabled, hash),
            // Spend the same bcrypt time on an unknown token, so that response times do not
            // tell which token names exist.
            None => (false, DUMMY_HASH.clone()),
        };
        let digest: [u8; 32] = Sha256::digest(format!("{hash}\n{secret}").as_bytes()).into();
        if let Some((d, at)) = self.verified.lock().expect("cache lock").get(name)
            && enabled
            && *d == digest
            && at.elapsed() < CACHE_FOR
        {
            return Ok(());
        }
        let ok = if let Some(expected) = hash.strip_prefix(SHA256_PREFIX) {
            let actual = hex::encode(Sha256::digest(secret.as_bytes()));
            constant_time_eq(actual.as_bytes(), expected.as_bytes())
        } else {
            let secret = secret.to_string();
            tokio::task::spawn_blocking(move || bcrypt::verify(secret, &hash).unwrap_or(false))
                .await
                .map_err(|e| QueryError::Internal(e.to_string()))?
        };
        if !ok || !enabled {
            return Err(QueryError::Unauthorized);
        }
        self.verified
            .lock()
            .expect("cache lock")
            .insert(name.to_string(), (digest, Instant::now()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kondate_core::ManualClock;

    #[tokio::test]
    async fn expiring_tokens_verify_until_they_expire_or_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&format!("sqlite://{}/s.db", dir.path().display()))
            .await
            .unwrap();
        kondate_db::state::migrate(&db).await.unwrap();
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let tokens = Tokens::new(db, clock.clone());
        let t = tokens
            .create_expiring("run-1", Duration::from_secs(60))
            .await
            .unwrap();
        tokens.verify("run-1", &t.secret).await.unwrap();
        assert!(tokens.verify("run-1", "wrong").await.is_err());
        clock.advance(Duration::from_secs(61));
        assert!(matches!(
            tokens.verify("run-1", &t.secret).await,
            Err(QueryError::Unauthorized)
        ));
        let t2 = tokens
            .create_expiring("run-2", Duration::from_secs(60))
            .await
            .unwrap();
        tokens.verify("run-2", &t2.secret).await.unwrap();
        tokens.delete("run-2").await.unwrap();
        assert!(tokens.verify("run-2", &t2.secret).await.is_err());
    }
}
