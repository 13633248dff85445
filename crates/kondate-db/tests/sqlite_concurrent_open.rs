//! Opening one SQLite database from many processes at the same moment: the first use of a
//! project by several commands at once (a scheduler launching jobs, CI steps in parallel).
//!
//! Each test runs its own binary again as child processes (`--exact NAME` with
//! `KONDATE_DB_TEST_CHILD` set). The children start, say they are ready, and block on their standard
//! input until every one of them is ready; then the parent releases them all at once, so
//! they open the database within a fraction of a millisecond of each other.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use kondate_db::{Database, Value, state};

const CHILD: &str = "KONDATE_DB_TEST_CHILD";
const CHILD_URL: &str = "KONDATE_DB_TEST_CHILD_URL";
const PROCESSES: usize = 16;
const READY: &str = "kondate-db-test-child-ready";

/// In a child: wait for the parent's go, open the database, migrate it and write a row, as
/// every kondate command does on start. Exits the process.
async fn child_main() -> ! {
    let url = std::env::var(CHILD_URL).expect("the parent sets the URL");
    // On a line of its own: libtest has already written `test NAME ... ` without a newline.
    println!("\n{READY}");
    std::io::stdout().flush().unwrap();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let outcome = async {
        let db = Database::connect(&url).await?;
        state::migrate(&db).await?;
        state::record_event(&db, "test.opened", "db", "{}", 1).await?;
        let mode = db.fetch_all("PRAGMA journal_mode", &[]).await?;
        let mode = kondate_db::opt_string_at(&mode[0], 0)?.unwrap_or_default();
        db.close().await;
        Ok::<String, kondate_db::DbError>(mode)
    }
    .await;
    match outcome {
        Ok(mode) => {
            println!("mode {mode}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

/// `PROCESSES` children of the test `name` on `url`, started and blocked before their open.
struct Children(Vec<(std::process::Child, BufReader<std::process::ChildStdout>)>);

/// Start `PROCESSES` children of the test `name` on `url` and wait until every one is up
/// and blocked on its standard input.
fn start_children(name: &str, url: &str) -> Children {
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let mut child = Command::new(&exe)
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env(CHILD_URL, url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a child");
            let out = BufReader::new(child.stdout.take().unwrap());
            (child, out)
        })
        .collect();
    for (_, out) in &mut children {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "a child exited early"
            );
            if line.trim_end() == READY {
                break;
            }
        }
    }
    Children(children)
}

impl Children {
    /// Let every child open the database at once.
    fn release(&mut self) {
        for (c, _) in &mut self.0 {
            c.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
    }

    /// Each child's (success, stdout, stderr).
    fn outcomes(self) -> Vec<(bool, String, String)> {
        self.0
            .into_iter()
            .map(|(mut c, mut out)| {
                let mut stdout = String::new();
                out.read_to_string(&mut stdout).unwrap();
                let mut stderr = String::new();
                c.stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                let ok = c.wait().unwrap().success();
                (ok, stdout, stderr)
            })
            .collect()
    }
}

fn open_at_once(name: &str, url: &str) -> Vec<(bool, String, String)> {
    let mut children = start_children(name, url);
    children.release();
    children.outcomes()
}

/// [`open_at_once`] while another connection, outside kondate, holds the write lock on the
/// file (creating it if missing) and commits 300 ms after the children were released.
async fn open_at_once_while_writing(name: &str, path: &Path) -> Vec<(bool, String, String)> {
    let mut writer = plain_connection(path).await;
    sqlx::raw_sql("BEGIN IMMEDIATE; CREATE TABLE other_program (x INTEGER)")
        .execute(&mut writer)
        .await
        .unwrap();
    let mut children = start_children(name, &sqlite_url(path));
    children.release();
    // The writer commits a moment later, well within the busy timeout.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::raw_sql("COMMIT").execute(&mut writer).await.unwrap();
    drop(writer);
    tokio::task::spawn_blocking(move || children.outcomes())
        .await
        .unwrap()
}

fn assert_all_opened_in_wal(outcomes: &[(bool, String, String)], round: usize) {
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|(ok, ..)| !ok)
        .map(|(_, _, err)| err.trim().lines().last().unwrap_or("").to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "round {round}: {} of {PROCESSES} processes failed to open the database: {failures:#?}",
        failures.len()
    );
    for (_, out, _) in outcomes {
        assert!(
            out.contains("mode wal"),
            "round {round}: not in WAL mode: {out}"
        );
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Rounds alternate between two ways the race happens. Even rounds: the file does not exist
/// and 16 processes create it at once (before the fix, about one such round in a hundred
/// failed). Odd rounds: a 17th process holds the write lock on the new file while the 16
/// start — as a process does in the middle of its own switch to WAL, or another program
/// writing its first table (before the fix, every process of every such round failed at
/// once with `database is locked`, whatever the busy timeout).
#[tokio::test]
async fn sixteen_processes_open_a_fresh_database_at_once() {
    let name = "sixteen_processes_open_a_fresh_database_at_once";
    if std::env::var_os(CHILD).is_some() {
        child_main().await;
    }
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh").join("state.db");
        let url = sqlite_url(&path);
        let outcomes = if round % 2 == 0 {
            open_at_once(name, &url)
        } else {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            open_at_once_while_writing(name, &path).await
        };
        assert_all_opened_in_wal(&outcomes, round);
        // Every process's row is there: nothing was lost to the race.
        let db = Database::connect(&url).await.unwrap();
        let rows = db
            .fetch_all(
                "SELECT COUNT(*) AS n FROM kondate_events WHERE kind = ?",
                &[Value::from("test.opened")],
            )
            .await
            .unwrap();
        assert_eq!(
            kondate_db::get_i64(&rows[0], "n").unwrap(),
            PROCESSES as i64
        );
        db.close().await;
    }
}

/// Opening a database that is already in WAL mode needs no write lock: it succeeds at once
/// while another connection holds the write lock for longer than the busy timeout.
#[tokio::test]
async fn opening_a_wal_database_needs_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("state.db"));
    Database::connect(&url).await.unwrap().close().await;
    let mut writer = plain_connection(&dir.path().join("state.db")).await;
    sqlx::raw_sql("BEGIN IMMEDIATE; CREATE TABLE busy (x INTEGER)")
        .execute(&mut writer)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let db = tokio::time::timeout(std::time::Duration::from_secs(3), Database::connect(&url))
        .await
        .expect("opening waited for the writer")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Reads see the last committed state while the write is in progress.
    assert!(
        db.fetch_all("SELECT name FROM sqlite_master WHERE name = 'busy'", &[])
            .await
            .unwrap()
            .is_empty()
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
    db.close().await;
}

/// A database made by another program in the default rollback-journal mode is switched to
/// WAL once, however many processes open it first at the same moment — also while that
/// program is writing to it (odd rounds; before the fix, every process of those failed).
#[tokio::test]
async fn sixteen_processes_open_an_existing_rollback_journal_database_at_once() {
    let name = "sixteen_processes_open_an_existing_rollback_journal_database_at_once";
    if std::env::var_os(CHILD).is_some() {
        child_main().await;
    }
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.db");
        make_rollback_database(&path).await;
        let outcomes = if round % 2 == 0 {
            open_at_once(name, &sqlite_url(&path))
        } else {
            open_at_once_while_writing(name, &path).await
        };
        assert_all_opened_in_wal(&outcomes, round);
        // The other program's rows are still there.
        let db = Database::connect(&sqlite_url(&path)).await.unwrap();
        assert_eq!(
            db.fetch_all("SELECT id FROM products", &[])
                .await
                .unwrap()
                .len(),
            1
        );
        db.close().await;
    }
}

/// A connection of sqlx's own SQLite driver, outside kondate, in the default journal mode.
async fn plain_connection(path: &Path) -> sqlx::sqlite::SqliteConnection {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    sqlx::sqlite::SqliteConnection::connect_with(&opts)
        .await
        .unwrap()
}

/// A SQLite file in the default (DELETE) journal mode with a table in it, as another
/// application would leave it.
async fn make_rollback_database(path: &Path) {
    use sqlx::Connection;
    let mut conn = plain_connection(path).await;
    sqlx::raw_sql("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO products VALUES (1, 'miso')")
        .execute(&mut conn)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "delete");
    conn.close().await.unwrap();
}
