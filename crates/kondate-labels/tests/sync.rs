//! Label sync against real databases: SQLite always; MariaDB and PostgreSQL when
//! `KONDATE_TEST_MYSQL_URL` / `KONDATE_TEST_POSTGRES_URL` are set (`.ci/run` sets them and
//! runs the ignored tests).

use std::path::Path;

use kondate_db::{Database, Session, Value};
use kondate_labels::LabelValue;
use kondate_labels::Labels;
use kondate_labels::read_csv;
use kondate_labels::{LabelSet, LabelsError, Outcome, SyncOptions, table};
use kondate_store::{Store, UrlSigner};

struct Env {
    labels: Labels,
    dir: tempfile::TempDir,
    name: String,
}

const DEFINITION: &str = r#"
table = "TABLE"
key = ["recipe_id"]
[source]
type = "csv"
path = "data/labels.csv"
[columns]
recipe_id = { type = "integer", header = "レシピID" }
category  = { type = "enum", values = ["主菜", "副菜", "汁物"], required = true }
score     = { type = "float" }
checked   = { type = "boolean" }
day       = { type = "date" }
note      = { type = "string", role = "comment" }
"#;

const CSV: &str = "レシピID,category,score,checked,day,note\n\
    1,主菜,0.5,TRUE,2024-01-02,\"醤油, 濃口\"\n\
    2,副菜,,no,,\n\
    3,汁物,1e-3,1,2024/03/04,say \"hi\"\n\
    4,主菜,-2,,,\n";

async fn env(url: &str, name: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let service = Database::connect(url).await.unwrap();
    // Shared servers keep tables between runs: start this test's set from nothing.
    table::ensure_meta(&service).await.unwrap();
    for sql in [
        "DELETE FROM kondate_label_sets WHERE name = ?",
        "DELETE FROM kondate_label_revisions WHERE label_set = ?",
    ] {
        service.execute(sql, &[Value::from(name)]).await.unwrap();
    }
    for t in [name.to_string(), format!("{name}_renamed")] {
        service
            .execute(
                &format!("DROP TABLE IF EXISTS {}", service.ident(&t).unwrap()),
                &[],
            )
            .await
            .unwrap();
    }
    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    let state = Database::connect(&state_url).await.unwrap();
    kondate_db::state::migrate(&state).await.unwrap();
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://127.0.0.1:1"),
    )
    .unwrap();
    Env {
        labels: Labels {
            state: Some(state),
            ..Labels::new(service, store)
        },
        dir,
        name: name.to_string(),
    }
}

impl Env {
    fn set(&self, definition: &str) -> LabelSet {
        LabelSet::from_toml(
            &self.name,
            &definition.replace("TABLE", &self.name),
            "test.toml",
            self.dir.path(),
        )
        .unwrap()
    }

    fn write_csv(&self, text: &str) -> kondate_labels::Grid {
        let p = self.dir.path().join("data/labels.csv");
        std::fs::write(&p, text).unwrap();
        read_csv(&p, None).unwrap()
    }

    fn opts(&self) -> SyncOptions {
        SyncOptions {
            actor: "tester".into(),
            ..Default::default()
        }
    }

    async fn table(&self, set: &LabelSet) -> Vec<Vec<LabelValue>> {
        let mut rows = table::read_rows(&self.labels.service, set).await.unwrap();
        rows.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
        rows
    }
}

fn date(y: i32, m: u32, d: u32) -> LabelValue {
    LabelValue::Date(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

fn text(s: &str) -> LabelValue {
    LabelValue::Text(s.into())
}

/// The whole life of a label set on one database.
async fn label_set_lifecycle(url: &str, name: &str) {
    use LabelValue::{Bool, Float, Int, Null};
    let e = env(url, name).await;
    let set = e.set(DEFINITION);
    let grid = e.write_csv(CSV);

    // First sync: everything is added, typed, in revision 1.
    let r = e.labels.sync(&set, &grid, &e.opts()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!((r.revision, r.diff.added.len(), r.rows), (1, 4, 4));
    let first = vec![
        vec![
            Int(1),
            text("主菜"),
            Float(0.5),
            Bool(true),
            date(2024, 1, 2),
            text("醤油, 濃口"),
        ],
        vec![Int(2), text("副菜"), Null, Bool(false), Null, Null],
        vec![
            Int(3),
            text("汁物"),
            Float(0.001),
            Bool(true),
            date(2024, 3, 4),
            text("say \"hi\""),
        ],
        vec![Int(4), text("主菜"), Float(-2.0), Null, Null, Null],
    ];
    assert_eq!(e.table(&set).await, first);

    // The same source again: nothing compared, nothing written.
    let r = e.labels.sync(&set, &grid, &e.opts()).await.unwrap();
    assert_eq!((r.outcome, r.revision), (Outcome::Unchanged, 1));

    // One row changed, one removed, one added.
    let grid2 = e.write_csv(
        &CSV.replace("2,副菜,,no,,", "2,汁物,,no,,")
            .replace("4,主菜,-2,,,\n", "5,副菜,3,,,\n"),
    );
    let d = e.labels.diff(&set, &grid2).await.unwrap();
    assert_eq!(
        (
            d.diff.added.len(),
            d.diff.changed.len(),
            d.diff.removed.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(d.diff.changed[0].fields[0].column, "category");
    assert_eq!(d.diff.changed[0].fields[0].old, text("副菜"));
    assert_eq!(d.diff.removed, [vec![Int(4)]]);
    assert_eq!(e.table(&set).await, first, "diff writes nothing");
    let r = e.labels.sync(&set, &grid2, &e.opts()).await.unwrap();
    assert_eq!((r.outcome, r.revision), (Outcome::Applied, 2));
    // Writes are proportional to the change: 2 for the changed row, 1 each for the others.
    assert_eq!(r.rows_written, 4);
    let rows = e.table(&set).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][1], text("汁物"));
    assert_eq!(rows[3][0], Int(5));

    // Invalid rows: reported with row and cell, and nothing is written.
    let before = e.table(&set).await;
    let bad = e.write_csv(&format!("{CSV}6,デザート,,,,\n7,主菜,abc,,,\n"));
    let err = e.labels.sync(&set, &bad, &e.opts()).await.unwrap_err();
    let LabelsError::InvalidRows { rows, invalid, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*rows, 2);
    assert_eq!(invalid[0].cell, "B6");
    assert_eq!(invalid[1].cell, "C7");
    assert!(err.to_string().contains("--skip-invalid"), "{err}");
    assert_eq!(e.table(&set).await, before);
    let history = e.labels.history(&set.name).await.unwrap();
    assert_eq!(history.len(), 2);
    // With --skip-invalid the valid rows are applied and the skipped ones counted.
    let opts = SyncOptions {
        skip_invalid: true,
        ..e.opts()
    };
    let r = e.labels.sync(&set, &bad, &opts).await.unwrap();
    assert_eq!(
        (r.outcome, r.revision, r.invalid.len()),
        (Outcome::Applied, 3, 2)
    );
    let history = e.labels.history(&set.name).await.unwrap();
    assert_eq!(history[2].skipped_invalid, 2);
    assert_eq!(history[2].actor, "tester");
    assert_eq!(
        (history[1].added, history[1].changed, history[1].removed),
        (1, 1, 1)
    );

    // Every revision exports exactly as it was.
    let (rev, batches, _) = e.labels.export(&set, Some(1)).await.unwrap();
    assert_eq!(rev.revision, 1);
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 4);
    let err = e.labels.export(&set, Some(9)).await.unwrap_err();
    assert!(matches!(err, LabelsError::NoSuchRevision { .. }), "{err}");

    // A changed task definition stops the sync and says what changed…
    let def2 = DEFINITION
        .replace("\"汁物\"]", "\"汁物\", \"デザート\"]")
        .replace("note      = { type = \"string\", role = \"comment\" }", "note = { type = \"string\", role = \"comment\" }\nannotator = { type = \"string\", role = \"annotator\" }");
    let set2 = e.set(&def2);
    let csv2 = format!("{},annotator\n", CSV.lines().next().unwrap())
        + &CSV
            .lines()
            .skip(1)
            .map(|l| format!("{l},sato\n"))
            .collect::<String>()
        + "6,デザート,,,,,suzuki\n";
    let grid3 = e.write_csv(&csv2);
    let err = e.labels.sync(&set2, &grid3, &e.opts()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("new enum value(s) `デザート`"), "{msg}");
    assert!(msg.contains("new column `annotator`"), "{msg}");
    assert!(msg.contains("--migrate"), "{msg}");
    assert_eq!(e.table(&set).await.len(), 4, "the table is untouched");
    // …and --migrate applies it and records it.
    let opts = SyncOptions {
        migrate: true,
        ..e.opts()
    };
    let r = e.labels.sync(&set2, &grid3, &opts).await.unwrap();
    assert_eq!((r.outcome, r.revision), (Outcome::Applied, 4));
    let rows = e.table(&set2).await;
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[4],
        vec![
            Int(6),
            text("デザート"),
            Null,
            Null,
            Null,
            Null,
            text("suzuki")
        ]
    );
    let history = e.labels.history(&set.name).await.unwrap();
    assert!(
        history[3]
            .migration
            .as_deref()
            .unwrap()
            .contains("annotator")
    );

    // Each applied sync recorded labels.changed in the state database.
    let state = e.labels.state.as_ref().unwrap();
    let events = state
        .fetch_all(
            "SELECT subject FROM kondate_events WHERE kind = 'labels.changed' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let subjects: Vec<String> = events
        .iter()
        .map(|r| kondate_db::get_string(r, "subject").unwrap())
        .collect();
    assert_eq!(
        subjects,
        (1..=4).map(|n| format!("{name}@{n}")).collect::<Vec<_>>()
    );
}

/// Two syncs of the same set at once: one applies, the other waits for it and then finds
/// nothing left to do. The table is never a mix.
async fn concurrent_syncs_do_not_mix(url: &str, name: &str) {
    let e = env(url, name).await;
    let set = e.set(DEFINITION);
    let grid = e.write_csv(CSV);
    let opts = e.opts();
    let (a, b) = tokio::join!(
        e.labels.sync(&set, &grid, &opts),
        e.labels.sync(&set, &grid, &opts)
    );
    let mut outcomes = vec![a.unwrap().outcome, b.unwrap().outcome];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Unchanged]);
    assert_eq!(e.table(&set).await.len(), 4);
    assert_eq!(e.labels.history(&set.name).await.unwrap().len(), 1);
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("service.db").display())
}

#[tokio::test]
async fn sqlite_label_set_lifecycle() {
    let d = tempfile::tempdir().unwrap();
    label_set_lifecycle(&sqlite_url(d.path()), "lifecycle").await;
}

#[tokio::test]
async fn sqlite_concurrent_syncs_do_not_mix() {
    let d = tempfile::tempdir().unwrap();
    concurrent_syncs_do_not_mix(&sqlite_url(d.path()), "concurrent").await;
}

fn env_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (see .ci/run)"))
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_label_set_lifecycle() {
    label_set_lifecycle(&env_url("KONDATE_TEST_MYSQL_URL"), "kl_lifecycle").await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_concurrent_syncs_do_not_mix() {
    concurrent_syncs_do_not_mix(&env_url("KONDATE_TEST_MYSQL_URL"), "kl_concurrent").await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_label_set_lifecycle() {
    label_set_lifecycle(&env_url("KONDATE_TEST_POSTGRES_URL"), "kl_lifecycle").await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_concurrent_syncs_do_not_mix() {
    concurrent_syncs_do_not_mix(&env_url("KONDATE_TEST_POSTGRES_URL"), "kl_concurrent").await;
}

/// Sync compares with the last snapshot while the table has its row count; rows added or
/// deleted by hand make it compare with the table, and `force` always does.
#[tokio::test]
async fn hand_edits_to_the_table_are_repaired() {
    let d = tempfile::tempdir().unwrap();
    let e = env(&sqlite_url(d.path()), "hand_edits").await;
    let set = e.set(DEFINITION);
    let grid = e.write_csv(CSV);
    e.labels.sync(&set, &grid, &e.opts()).await.unwrap();
    let db = &e.labels.service;
    db.execute("DELETE FROM hand_edits WHERE recipe_id = 3", &[])
        .await
        .unwrap();
    let grid2 = e.write_csv(&CSV.replace("say \"hi\"", "say \"hello\""));
    let r = e.labels.sync(&set, &grid2, &e.opts()).await.unwrap();
    assert_eq!(
        (r.diff.added.len(), r.diff.changed.len()),
        (1, 0),
        "row 3 is back"
    );
    assert_eq!(e.table(&set).await.len(), 4);

    // A value edited by hand keeps the row count: only `force` looks at the table.
    db.execute(
        "UPDATE hand_edits SET category = '汁物' WHERE recipe_id = 2",
        &[],
    )
    .await
    .unwrap();
    let r = e.labels.sync(&set, &grid2, &e.opts()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Unchanged);
    let opts = SyncOptions {
        force: true,
        ..e.opts()
    };
    let r = e.labels.sync(&set, &grid2, &opts).await.unwrap();
    assert_eq!((r.outcome, r.diff.changed.len()), (Outcome::Applied, 1));
    assert_eq!(e.table(&set).await[1][1], text("副菜"));
}

/// A sync that cannot get the lock within SQLite's busy timeout stops with a message that
/// says another sync holds it, and writes nothing.
#[tokio::test]
async fn a_sync_that_cannot_get_the_lock_says_so() {
    let d = tempfile::tempdir().unwrap();
    let url = sqlite_url(d.path());
    let e = env(&url, "locked").await;
    let set = e.set(DEFINITION);
    e.labels
        .sync(&set, &e.write_csv(CSV), &e.opts())
        .await
        .unwrap();
    // Another process holds the set's lock row in an open write transaction.
    let other = Database::connect(&url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    held.execute(
        "UPDATE kondate_label_sets SET updated_at = 0 WHERE name = 'locked'",
        &[],
    )
    .await
    .unwrap();
    let grid = e.write_csv(&CSV.replace("2,副菜", "2,汁物"));
    let err = e.labels.sync(&set, &grid, &e.opts()).await.unwrap_err();
    assert!(matches!(err, LabelsError::Busy { .. }), "{err}");
    assert!(
        err.to_string().contains("another sync of `locked`"),
        "{err}"
    );
    drop(held);
    assert_eq!(e.labels.history("locked").await.unwrap().len(), 1);
}
