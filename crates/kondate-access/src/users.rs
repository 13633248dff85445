//! People, by e-mail, with roles (`viewer`, `editor`, `admin`, for every area or one) and
//! extra scopes. Added by an admin (`kondate users add`), later also by signing in to the
//! console.

use std::sync::Arc;

use kondate_core::Clock;
use kondate_core::clock::ms_to_rfc3339;
use kondate_db::{AnyRow, Database, Value, get_i64, get_opt_i64, get_string};
use serde::Serialize;

use crate::scope::expand_roles;
use crate::{AccessError, Scope, Scopes};

/// A user as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub email: String,
    /// As given: `editor`, `models=editor`.
    pub roles: Vec<String>,
    /// Given beyond the roles.
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub disabled_at: Option<String>,
}

impl User {
    /// What the user may do: the roles' scopes and the extra ones.
    pub fn effective_scopes(&self) -> Result<Scopes, AccessError> {
        effective_scopes(&self.roles.join(" "), &self.scopes.join(" "))
    }
}

/// What roles and scopes as stored (space-separated) allow together.
pub(crate) fn effective_scopes(roles: &str, scopes: &str) -> Result<Scopes, AccessError> {
    let roles: Vec<String> = roles.split_whitespace().map(str::to_string).collect();
    let mut all = expand_roles(&roles)?;
    for s in scopes.split_whitespace() {
        all.push(Scope::parse(s)?);
    }
    Ok(Scopes::new(all))
}

/// A user's e-mail, checked and lower-cased (`Ml@Example.com` is `ml@example.com`).
pub fn normalize_email(email: &str) -> Result<String, AccessError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && !domain.contains('@')
        });
    if !ok {
        return Err(AccessError::Invalid(format!(
            "`{email}` is not an e-mail address; users are named by e-mail (name@example.com)"
        )));
    }
    Ok(e)
}

/// Adds, lists, changes and disables users.
#[derive(Debug, Clone)]
pub struct Users {
    db: Database,
    clock: Arc<dyn Clock>,
}

const COLUMNS: &str =
    "email, roles, scopes, enabled, created_at, created_by, updated_at, disabled_at";

fn from_row(r: &AnyRow) -> Result<User, AccessError> {
    let words = |col: &str| -> Result<Vec<String>, AccessError> {
        Ok(get_string(r, col)?
            .split_whitespace()
            .map(str::to_string)
            .collect())
    };
    Ok(User {
        email: get_string(r, "email")?,
        roles: words("roles")?,
        scopes: words("scopes")?,
        enabled: get_i64(r, "enabled")? != 0,
        created_at: ms_to_rfc3339(get_i64(r, "created_at")?),
        created_by: get_string(r, "created_by")?,
        updated_at: ms_to_rfc3339(get_i64(r, "updated_at")?),
        disabled_at: get_opt_i64(r, "disabled_at").map(ms_to_rfc3339),
    })
}

/// Check roles and scopes as given; `(roles, scopes)` as stored.
fn checked(roles: &[String], scopes: &[String]) -> Result<(String, String), AccessError> {
    if roles.is_empty() && scopes.is_empty() {
        return Err(AccessError::Invalid(
            "a user needs a role (`--role viewer`, `--role editor`, `--role admin`, or one area \
             such as `--role models=editor`) or a scope"
                .into(),
        ));
    }
    expand_roles(roles)?;
    let parsed = scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((roles.join(" "), Scopes::new(parsed).to_list()))
}

impl Users {
    pub(crate) fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Add a user.
    pub async fn add(
        &self,
        email: &str,
        roles: &[String],
        scopes: &[String],
        created_by: &str,
    ) -> Result<User, AccessError> {
        let email = normalize_email(email)?;
        let (roles, scopes) = checked(roles, scopes)?;
        if self.get(&email).await?.is_some() {
            return Err(AccessError::Conflict(format!(
                "user `{email}` exists already; change their roles with `kondate users set {email} --role …`"
            )));
        }
        let now = self.now_ms();
        self.db
            .execute(
                &format!("INSERT INTO kondate_users ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                &[
                    email.as_str().into(),
                    roles.into(),
                    scopes.into(),
                    true.into(),
                    Value::Int(now),
                    created_by.into(),
                    Value::Int(now),
                    Value::NullOf(kondate_db::ColumnType::Integer),
                ],
            )
            .await?;
        self.require(&email).await
    }

    /// The user `email`, added with `roles` if there is none yet (for set-up that must be
    /// re-runnable); an existing user is left as they are.
    pub async fn ensure(
        &self,
        email: &str,
        roles: &[String],
        created_by: &str,
    ) -> Result<User, AccessError> {
        match self.get(email).await? {
            Some(u) => Ok(u),
            None => self.add(email, roles, &[], created_by).await,
        }
    }

    /// Replace a user's roles and scopes (their tokens follow: a token never does more than
    /// its owner may do now).
    pub async fn set(
        &self,
        email: &str,
        roles: &[String],
        scopes: &[String],
    ) -> Result<User, AccessError> {
        let email = normalize_email(email)?;
        let (roles, scopes) = checked(roles, scopes)?;
        let n = self
            .db
            .execute(
                "UPDATE kondate_users SET roles = ?, scopes = ?, updated_at = ? WHERE email = ?",
                &[
                    roles.into(),
                    scopes.into(),
                    Value::Int(self.now_ms()),
                    email.as_str().into(),
                ],
            )
            .await?;
        if n == 0 {
            return Err(not_found(&email));
        }
        self.require(&email).await
    }

    /// Disable a user: they and every token they own stop working at once.
    pub async fn disable(&self, email: &str) -> Result<User, AccessError> {
        let email = normalize_email(email)?;
        let now = self.now_ms();
        self.db
            .execute(
                "UPDATE kondate_users SET enabled = 0, disabled_at = ?, updated_at = ? WHERE email = ? AND enabled = 1",
                &[Value::Int(now), Value::Int(now), email.as_str().into()],
            )
            .await?;
        self.require(&email).await
    }

    /// Enable a disabled user again.
    pub async fn enable(&self, email: &str) -> Result<User, AccessError> {
        let email = normalize_email(email)?;
        self.db
            .execute(
                "UPDATE kondate_users SET enabled = 1, disabled_at = NULL, updated_at = ? WHERE email = ?",
                &[Value::Int(self.now_ms()), email.as_str().into()],
            )
            .await?;
        self.require(&email).await
    }

    /// The user `email`, if there is one.
    pub async fn get(&self, email: &str) -> Result<Option<User>, AccessError> {
        let email = normalize_email(email)?;
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {COLUMNS} FROM kondate_users WHERE email = ?"),
                &[email.as_str().into()],
            )
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn require(&self, email: &str) -> Result<User, AccessError> {
        self.get(email).await?.ok_or_else(|| not_found(email))
    }

    /// Every user, by e-mail.
    pub async fn list(&self) -> Result<Vec<User>, AccessError> {
        self.db
            .fetch_all(
                &format!("SELECT {COLUMNS} FROM kondate_users ORDER BY email"),
                &[],
            )
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

fn not_found(email: &str) -> AccessError {
    AccessError::NotFound(format!(
        "no user `{email}`; `kondate users list` shows them, `kondate users add {email} --role viewer` adds one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            normalize_email(" Ml@Example.COM ").unwrap(),
            "ml@example.com"
        );
        for bad in [
            "",
            "ml",
            "@example.com",
            "ml@",
            "ml@.com",
            "a b@example.com",
            "a@b@c",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
