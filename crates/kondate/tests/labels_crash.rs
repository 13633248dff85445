//! A label sync killed at any point leaves the table at the old revision or the new one,
//! and the next sync completes normally. The process is killed with SIGKILL at named
//! failpoints (after the snapshot is written; after every row is written but before the
//! commit) and at arbitrary moments, on SQLite always and on MariaDB and PostgreSQL when
//! `.ci/run` provides them.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ROWS: usize = 20_000;

struct Project {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    service_url: Option<String>,
    name: String,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kondate"));
        c.args(args)
            .current_dir(&self.root)
            .env_remove("KONDATE_PROJECT")
            .env_remove("KONDATE_FAILPOINT")
            .env("CI", "true");
        if let Some(url) = &self.service_url {
            c.env("KONDATE_SERVICE_URL", url);
        }
        c
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.command(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn revisions(&self) -> usize {
        self.json(&["labels", "history", &self.name, "--format", "json"])
            .as_array()
            .unwrap()
            .len()
    }

    /// (added, changed, removed) between the source and the table.
    fn pending(&self) -> (usize, usize, usize) {
        let d = self.json(&["labels", "diff", &self.name, "--format", "json"]);
        let n = |k: &str| d["diff"][k].as_array().unwrap().len();
        (n("added"), n("changed"), n("removed"))
    }
}

fn csv(path: &Path, version: u32) {
    let mut s = String::from("id,category,score\n");
    for i in 0..ROWS {
        // Version 2 changes 1% of the rows, removes 1% and adds 1%.
        if version == 2 && i % 100 == 1 {
            continue;
        }
        let cat = if version == 2 && i % 100 == 0 {
            "副菜"
        } else {
            "主菜"
        };
        s.push_str(&format!("{i},{cat},{}\n", i as f64 / 7.0));
    }
    if version == 2 {
        for i in 0..ROWS / 100 {
            s.push_str(&format!("{},汁物,\n", ROWS + i));
        }
    }
    std::fs::write(path, s).unwrap();
}

fn setup(service_url: Option<String>, name: &str) -> Project {
    let (dir, root) = common::init_project();
    std::fs::write(
        root.join(format!("labels/{name}.toml")),
        format!(
            r#"table = "{name}"
key = ["id"]
[source]
type = "csv"
path = "labels.csv"
[columns]
id = {{ type = "integer" }}
category = {{ type = "enum", values = ["主菜", "副菜", "汁物"], required = true }}
score = {{ type = "float" }}
"#
        ),
    )
    .unwrap();
    Project {
        _dir: dir,
        root,
        service_url,
        name: name.to_string(),
    }
}

async fn drop_tables(service_url: &str, name: &str) {
    let db = kondate_db::Database::connect(service_url).await.unwrap();
    kondate_labels::table::ensure_meta(&db).await.unwrap();
    for sql in [
        "DELETE FROM kondate_label_sets WHERE name = ?",
        "DELETE FROM kondate_label_revisions WHERE label_set = ?",
    ] {
        db.execute(sql, &[kondate_db::Value::from(name)])
            .await
            .unwrap();
    }
    db.execute(
        &format!("DROP TABLE IF EXISTS {}", db.ident(name).unwrap()),
        &[],
    )
    .await
    .unwrap();
}

fn killed_syncs_leave_old_or_new_revision(service_url: Option<String>, name: &str) {
    if let Some(url) = &service_url {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(drop_tables(url, name));
    }
    let p = setup(service_url, name);
    let source = p.root.join("labels.csv");
    csv(&source, 1);
    let o = p.command(&["labels", "sync", name]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(p.revisions(), 1);

    csv(&source, 2);
    let change = (ROWS / 100, ROWS / 100, ROWS / 100);
    assert_eq!(p.pending(), change);
    // Killed after the snapshot, and after every row is written but before the commit:
    // the table is still revision 1, with the whole change pending.
    for failpoint in ["labels.after_snapshot", "labels.before_commit"] {
        common::kill_at(p.command(&["labels", "sync", &p.name]), failpoint);
        assert_eq!(p.revisions(), 1, "{failpoint}");
        assert_eq!(p.pending(), change, "{failpoint}");
    }
    // Killed at arbitrary moments: revision 1 with the change pending, or revision 2 with
    // nothing pending — never anything between.
    for delay_ms in [5, 40, 120, 300] {
        common::kill_after(
            p.command(&["labels", "sync", name]),
            Duration::from_millis(delay_ms),
        );
        match p.revisions() {
            1 => assert_eq!(p.pending(), change, "killed after {delay_ms} ms"),
            2 => {
                assert_eq!(p.pending(), (0, 0, 0), "killed after {delay_ms} ms");
                break;
            }
            n => panic!("{n} revisions after a kill at {delay_ms} ms"),
        }
    }
    // The next sync completes normally.
    let o = p.command(&["labels", "sync", name]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(p.revisions(), 2);
    assert_eq!(p.pending(), (0, 0, 0));
    let h = p.json(&["labels", "history", name, "--format", "json"]);
    assert_eq!(
        (
            h[1]["added"].as_u64(),
            h[1]["changed"].as_u64(),
            h[1]["removed"].as_u64()
        ),
        (Some(200), Some(200), Some(200))
    );
}

#[test]
fn sqlite_killed_syncs_leave_old_or_new_revision() {
    killed_syncs_leave_old_or_new_revision(None, "crash_labels");
}

#[test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
fn mysql_killed_syncs_leave_old_or_new_revision() {
    let url = std::env::var("KONDATE_TEST_MYSQL_URL").expect("KONDATE_TEST_MYSQL_URL");
    killed_syncs_leave_old_or_new_revision(Some(url), "kl_crash");
}

#[test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
fn postgres_killed_syncs_leave_old_or_new_revision() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    killed_syncs_leave_old_or_new_revision(Some(url), "kl_crash");
}
