//! What the catalog's tests share: a migrated state database and a source database.

use kondate_catalog::{Catalog, Filter};
use kondate_db::{Database, DbKind, isolated_test_database};

/// A state database and a source database on the same server (separate files, databases
/// or schemas), the state migrated.
pub async fn setup(url: Option<&str>, tag: &str) -> (Catalog, Database, Filter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (state_url, source_url) = match url {
        None => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("state.db").display()
            ),
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("source.db").display()
            ),
        ),
        Some(u) => (
            isolated_test_database(u, &format!("{tag}_state"))
                .await
                .unwrap(),
            isolated_test_database(u, &format!("{tag}_src"))
                .await
                .unwrap(),
        ),
    };
    let state = Database::connect(&state_url).await.unwrap();
    kondate_db::state::migrate(&state).await.unwrap();
    let source = Database::connect(&source_url).await.unwrap();
    // On PostgreSQL every test shares one database: keep the source's schema only.
    let include = match source.kind() {
        DbKind::Postgres => Some(format!("^kondate_t_{tag}_src\\.")),
        _ => None,
    };
    let filter = Filter::new("src", include.as_deref(), &["\\.scratch_".to_string()]).unwrap();
    (Catalog::new(state), source, filter, dir)
}

pub async fn exec(db: &Database, sql: &str) {
    db.execute(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
