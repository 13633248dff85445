//! Favourite objects, per person: a short list of the tables someone keeps coming back to.

use kondate_db::{Value, opt_string_at};

use crate::CatalogError;
use crate::docs::Target;
use crate::sync::{Catalog, now_ms};

impl Catalog {
    /// Mark `target` a favourite of `person` (`on`) or not; whether that changed anything.
    pub async fn set_favourite(
        &self,
        person: &str,
        target: &Target,
        on: bool,
    ) -> Result<bool, CatalogError> {
        if person.is_empty() || person == "anonymous" {
            return Err(CatalogError::Invalid(
                "favourites are kept per person: sign in with a token (anonymous callers have none)"
                    .into(),
            ));
        }
        let key = Value::Text(target.key());
        let who = Value::Text(person.into());
        if !on {
            let n = self
                .db
                .execute(
                    "DELETE FROM kondate_catalog_favourites WHERE principal = ? AND target = ?",
                    &[who, key],
                )
                .await?;
            return Ok(n > 0);
        }
        match self
            .db
            .execute(
                "INSERT INTO kondate_catalog_favourites (principal, target, created_at) \
                 VALUES (?, ?, ?)",
                &[who, key, Value::Int(now_ms())],
            )
            .await
        {
            Ok(_) => Ok(true),
            // Already a favourite (perhaps marked at the same moment elsewhere).
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `person`'s favourites, most recently marked first.
    pub async fn favourites(&self, person: &str) -> Result<Vec<Target>, CatalogError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT target FROM kondate_catalog_favourites WHERE principal = ? \
                 ORDER BY created_at DESC, id DESC",
                &[Value::Text(person.into())],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(t) = opt_string_at(r, 0)?.as_deref().and_then(Target::from_key) {
                out.push(t);
            }
        }
        Ok(out)
    }
}
