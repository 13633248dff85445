//! A push killed at any point leaves no visible version and no file that gc would miss;
//! pushes of the same model at once get distinct numbers. Real processes killed with
//! SIGKILL at named failpoints and at arbitrary moments, on SQLite and the local store
//! always, and on PostgreSQL with S3 and on MariaDB when `.ci/run` provides them.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kondate"));
        c.args(args)
            .current_dir(&self.root)
            .env_remove("KONDATE_PROJECT")
            .env_remove("KONDATE_FAILPOINT")
            .env("CI", "true");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let o = self.command(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn versions(&self) -> Vec<i64> {
        self.json(&["models", "list", "m", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect()
    }

    /// The digests every version references.
    fn referenced(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for v in self
            .json(&["models", "list", "m", "--format", "json"])
            .as_array()
            .unwrap()
        {
            for f in v["files"].as_array().unwrap() {
                out.insert(f["digest"].as_str().unwrap().to_string());
            }
        }
        out
    }

    /// The blobs in the store, and the files left in the local store's staging folder.
    fn stored(&self) -> (BTreeSet<String>, usize) {
        let vars = self.env.iter().cloned();
        let project = kondate_core::Project::load(&self.root, vars).unwrap();
        let store = kondate_store::Store::open(&project.config.store, "http://unused").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listed = rt
            .block_on(store.list("models/blobs/sha256"))
            .unwrap_or_default();
        let blobs = listed
            .iter()
            .map(|o| format!("sha256:{}", o.location.as_ref().rsplit('/').next().unwrap()))
            .collect();
        let staging = store
            .local_root()
            .map(|r| std::fs::read_dir(r.join("_staging")).map_or(0, |d| d.count()))
            .unwrap_or(0);
        (blobs, staging)
    }

    fn push(&self, file: &str) -> std::process::Output {
        self.command(&["models", "push", "m", file])
            .output()
            .unwrap()
    }
}

fn setup(env: Vec<(String, String)>) -> Project {
    let (dir, root) = common::init_project();
    Project {
        _dir: dir,
        root,
        env,
    }
}

fn write_model(p: &Project, name: &str, mb: usize, seed: u8) {
    let data: Vec<u8> = (0..mb << 20)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[0] ^ seed)
        .collect();
    std::fs::write(p.root.join(name), data).unwrap();
}

/// After gc with no grace, the store holds exactly the referenced blobs and no staging.
fn gc_leaves_exactly_the_referenced(p: &Project) -> Value {
    let report = p.json(&[
        "models", "gc", "--apply", "--grace", "0s", "--format", "json",
    ]);
    let (blobs, staging) = p.stored();
    assert_eq!(blobs, p.referenced(), "after gc: {report}");
    assert_eq!(staging, 0, "staging left after gc: {report}");
    report
}

fn killed_pushes_leave_nothing_behind(env: Vec<(String, String)>) {
    let p = setup(env);
    write_model(&p, "small.bin", 1, 1);
    let o = p.push("small.bin");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(p.versions(), [1]);
    write_model(&p, "big.bin", 24, 2);
    let big = 24u64 << 20;

    // Killed with the file read but not yet under its key, then with every file stored but
    // the version not committed: no version, and gc finds exactly what was left.
    let local = !p.env.iter().any(|(k, _)| k == "KONDATE_STORE_URL");
    for failpoint in ["models.mid_push", "models.before_commit"] {
        // At mid_push the local store holds a staged copy; a cloud store holds nothing yet
        // (the file was only hashed), so there is only a registry row to clear.
        let big = if failpoint == "models.mid_push" && !local {
            0
        } else {
            big
        };
        common::kill_at(p.command(&["models", "push", "m", "big.bin"]), failpoint);
        assert_eq!(p.versions(), [1], "{failpoint}");
        // Within the grace period a file may belong to a push in flight: kept.
        let young = p.json(&["models", "gc", "--format", "json"]);
        assert_eq!(
            young["blobs"].as_array().unwrap().len(),
            0,
            "{failpoint}: {young}"
        );
        let dry = p.json(&["models", "gc", "--grace", "0s", "--format", "json"]);
        assert_eq!(dry["bytes"].as_u64().unwrap(), big, "{failpoint}: {dry}");
        let report = gc_leaves_exactly_the_referenced(&p);
        assert_eq!(
            report["bytes"].as_u64().unwrap(),
            big,
            "{failpoint}: {report}"
        );
    }

    // Killed at arbitrary moments: version 2 exists or not, and gc leaves exactly what the
    // versions reference.
    for (i, delay_ms) in [20u64, 80, 200, 400].into_iter().enumerate() {
        write_model(&p, "big.bin", 24, 10 + i as u8);
        common::kill_after(
            p.command(&["models", "push", "m", "big.bin"]),
            Duration::from_millis(delay_ms),
        );
        let versions = p.versions();
        assert!(versions.len() <= 2 + i, "after {delay_ms} ms: {versions:?}");
        gc_leaves_exactly_the_referenced(&p);
    }

    // The next push works and every version still pulls intact.
    let o = p.push("big.bin");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for v in p.versions() {
        let dest = p.root.join(format!("out-{v}"));
        let o = p
            .command(&["models", "pull", &format!("m@{v}"), dest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "m@{v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn concurrent_pushes_get_distinct_numbers(env: Vec<(String, String)>) {
    let p = setup(env);
    let children: Vec<_> = (0..4)
        .map(|i| {
            write_model(&p, &format!("c{i}.bin"), 1, i as u8);
            p.command(&["models", "push", "m", &format!("c{i}.bin")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut numbers: Vec<i64> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3, 4]);
}

fn s3_env(prefix: &str) -> Vec<(String, String)> {
    let endpoint = std::env::var("KONDATE_TEST_S3_ENDPOINT").expect("KONDATE_TEST_S3_ENDPOINT");
    vec![
        (
            "KONDATE_STORE_URL".into(),
            format!("s3://kondate-test/{prefix}-{}", std::process::id()),
        ),
        ("KONDATE_STORE_ENDPOINT".into(), endpoint),
        ("KONDATE_STORE_REGION".into(), "us-east-1".into()),
        ("KONDATE_STORE_ALLOW_HTTP".into(), "true".into()),
    ]
}

#[test]
fn sqlite_local_killed_pushes_leave_nothing_behind() {
    killed_pushes_leave_nothing_behind(vec![]);
}

#[test]
fn sqlite_local_concurrent_pushes_get_distinct_numbers() {
    concurrent_pushes_get_distinct_numbers(vec![]);
}

#[test]
#[ignore = "needs PostgreSQL and S3: set KONDATE_TEST_POSTGRES_URL and KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
fn postgres_s3_killed_pushes_leave_nothing_behind() {
    let mut env = common::service_env("KONDATE_TEST_POSTGRES_URL", "models_crash");
    env.extend(s3_env("crash"));
    killed_pushes_leave_nothing_behind(env);
}

#[test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
fn mysql_local_killed_pushes_leave_nothing_behind() {
    killed_pushes_leave_nothing_behind(common::service_env(
        "KONDATE_TEST_MYSQL_URL",
        "models_crash",
    ));
}

#[test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
fn mysql_concurrent_pushes_get_distinct_numbers() {
    concurrent_pushes_get_distinct_numbers(common::service_env(
        "KONDATE_TEST_MYSQL_URL",
        "models_conc",
    ));
}

#[test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
fn postgres_concurrent_pushes_get_distinct_numbers() {
    concurrent_pushes_get_distinct_numbers(common::service_env(
        "KONDATE_TEST_POSTGRES_URL",
        "models_conc",
    ));
}
