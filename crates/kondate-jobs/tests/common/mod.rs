//! What the scheduler's and the executor's tests share: a migrated state database on
//! SQLite or on the server CI names, definitions from JSON, times, and the macro that runs a
//! test on all three databases.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use kondate_db::Database;
use kondate_jobs::definition::from_json;
use kondate_jobs::{Executor, Loaded, Scheduler, WorkerConfig};
use kondate_store::{Store, UrlSigner};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub url: String,
}

/// A migrated state database: SQLite in a temporary folder, or an isolated database named
/// after `tag` on the server `var` names.
pub async fn state(var: Option<&str>, tag: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = match var {
        None => format!("sqlite://{}/state.db", dir.path().display()),
        Some(var) => {
            let base = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
            kondate_db::isolated_test_database(&base, tag)
                .await
                .unwrap()
        }
    };
    let db = Database::connect(&url).await.unwrap();
    kondate_db::state::migrate(&db).await.unwrap();
    db.close().await;
    Fixture { dir, url }
}

/// A process's view: its own connections to the state database, the shared store.
pub async fn process(f: &Fixture) -> (Scheduler, Executor) {
    let db = Database::connect(&f.url).await.unwrap();
    let store = Store::local(
        &f.dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://x"),
    )
    .unwrap();
    let scheduler = Scheduler::new(db.clone());
    let executor = Executor::new(db, store, scheduler.clone(), None);
    (scheduler, executor)
}

/// Worker `name`'s settings: the fixture's folder, a spool of its own, short waits.
pub fn worker(f: &Fixture, name: &str) -> WorkerConfig {
    WorkerConfig {
        worker: name.to_string(),
        queues: vec!["default".into()],
        cwd: f.dir.path().to_path_buf(),
        spool: f.dir.path().join(format!("spool-{name}")),
        protect: None,
        base_env: std::env::vars().collect(),
        grace: Duration::from_millis(300),
        recheck: Duration::from_millis(200),
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Job `name` with `fields` over a default script of `script`.
pub fn def_with(name: &str, script: &str, fields: serde_json::Value) -> Loaded {
    let mut json = serde_json::json!({ "script": script });
    for (k, v) in fields.as_object().unwrap() {
        json[k] = v.clone();
    }
    Loaded::Ok(Box::new(
        from_json(&format!("jobs/{name}.jsonnet"), name, json).unwrap(),
    ))
}

/// `mod $name` with the test `$run` on SQLite, PostgreSQL and MySQL/MariaDB (the latter two
/// ignored unless CI's service step names their servers); `$prefix` keeps the isolated
/// databases of different test files apart.
#[macro_export]
macro_rules! on_every_state_database {
    ($prefix:literal, $name:ident, $run:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $run(common::state(None, "").await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
            async fn postgres() {
                let tag = concat!($prefix, stringify!($name));
                $run(common::state(Some("KONDATE_TEST_POSTGRES_URL"), tag).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs MariaDB/MySQL: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
            async fn mysql() {
                let tag = concat!($prefix, stringify!($name));
                $run(common::state(Some("KONDATE_TEST_MYSQL_URL"), tag).await).await
            }
        }
    };
}
