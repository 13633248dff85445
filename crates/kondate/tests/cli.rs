//! The `kondate` binary as a user runs it: init, warehouse, tokens and query, with their
//! outputs and exit codes (0 ok, 1 failure, 2 invalid input, 3 query failed).

use std::path::Path;
use std::process::{Command, Output};

fn kondate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env("CI", "true")
        .output()
        .expect("kondate runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Add user `email` with `role` and make them a token `name` with the default scopes
/// (query only); its secret.
fn user_token(p: &Path, email: &str, role: &str, name: &str) -> String {
    let o = kondate(p, &["users", "add", email, "--role", role]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kondate(
        p,
        &[
            "tokens", "create", name, "--owner", email, "--format", "json",
        ],
    );
    let t: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    t["secret"].as_str().unwrap().to_string()
}

/// Run kondate in `p` as token `name`.
fn as_token(p: &Path, name: &str, secret: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(p)
        .env_remove("KONDATE_PROJECT")
        .env("KONDATE_TOKEN", name)
        .env("KONDATE_TOKEN_SECRET", secret)
        .output()
        .unwrap()
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = kondate(dir.path(), &["init", "p"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        dir.path().join("p/items.csv"),
        "id,name,price\n1,醤油,398.5\n2,\"a,b\",\n",
    )
    .unwrap();
    let o = kondate(
        &dir.path().join("p"),
        &["warehouse", "load", "s.items", "items.csv"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("loaded 2 rows"), "{}", stdout(&o));
    dir
}

#[test]
fn query_writes_csv_jsonl_and_parquet() {
    let dir = project();
    let p = dir.path().join("p");
    let o = kondate(
        &p,
        &[
            "query",
            "SELECT id, name, price FROM s.items WHERE id >= ? ORDER BY id",
            "--value",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "id,name,price\n1,醤油,398.5\n2,\"a,b\",\n");
    let o = kondate(
        &p,
        &[
            "query",
            "SELECT id, name FROM s.items ORDER BY id",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(
        stdout(&o),
        "{\"id\":1,\"name\":\"醤油\"}\n{\"id\":2,\"name\":\"a,b\"}\n"
    );
    let o = kondate(
        &p,
        &[
            "query",
            "SELECT * FROM s.items",
            "--format",
            "parquet",
            "--out",
            "out.parquet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(p.join("out.parquet")).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert!(!p.join("out.parquet.partial").exists());
}

#[test]
fn refused_and_failed_queries_have_distinct_exit_codes_and_write_nothing() {
    let dir = project();
    let p = dir.path().join("p");
    let o = kondate(&p, &["query", "DROP TABLE s.items", "--out", "x.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("DROP TABLE"), "{}", stderr(&o));
    assert!(!p.join("x.csv").exists());
    let o = kondate(&p, &["query", "SELECT * FROM s.nope", "--out", "x.csv"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    assert!(!p.join("x.csv").exists());
    let o = kondate(&p, &["query", "SELECT count(*) AS n FROM s.items"]);
    assert_eq!(stdout(&o), "n\n2\n", "the table is still there");
}

#[test]
fn warehouse_tables_and_drop() {
    let dir = project();
    let p = dir.path().join("p");
    let o = kondate(&p, &["warehouse", "tables", "--format", "json"]);
    let tables: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(tables[0]["name"], "s.items");
    assert_eq!(tables[0]["rows"], 2);
    let o = kondate(&p, &["warehouse", "load", "../etc.passwd", "items.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = kondate(&p, &["warehouse", "load", "s.x", "missing.csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.csv"));
    let o = kondate(&p, &["warehouse", "drop", "s.items"]);
    assert!(o.status.success());
    let o = kondate(&p, &["warehouse", "drop", "s.items"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tokens_create_list_rotate_disable() {
    let dir = project();
    let p = dir.path().join("p");
    // A token needs an owner, and the owner must exist.
    let o = kondate(
        &p,
        &["tokens", "create", "job", "--owner", "ml@example.com"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("kondate users add ml@example.com"),
        "{}",
        stderr(&o)
    );
    let o = kondate(&p, &["users", "add", "ml@example.com", "--role", "editor"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Never more than the owner: an editor cannot give a token models:delete.
    let o = kondate(
        &p,
        &[
            "tokens",
            "create",
            "job",
            "--owner",
            "ml@example.com",
            "--scope",
            "models:delete",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("more scopes than its owner"),
        "{}",
        stderr(&o)
    );
    let o = kondate(
        &p,
        &[
            "tokens",
            "create",
            "job",
            "--owner",
            "ml@example.com",
            "--scope",
            "query",
            "--scope",
            "models:write=recipe-*",
            "--expires",
            "30d",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let t: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(t["secret"].as_str().unwrap().len(), 64);
    assert_eq!(
        t["scopes"],
        serde_json::json!(["query", "models:write=recipe-*"])
    );
    assert!(t["expires_at"].is_string());
    let o = kondate(
        &p,
        &["tokens", "create", "job", "--owner", "ml@example.com"],
    );
    assert_eq!(o.status.code(), Some(2), "duplicate name");
    let o = kondate(&p, &["tokens", "rotate", "job", "--format", "json"]);
    let rotated: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_ne!(rotated["secret"], t["secret"]);
    let o = kondate(&p, &["tokens", "disable", "job"]);
    assert!(o.status.success());
    let o = kondate(&p, &["tokens", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list[0]["enabled"], false);
    assert_eq!(list[0]["owner"], "ml@example.com");
    assert_eq!(list[0]["kind"], "token");
    for secret in [&t["secret"], &rotated["secret"]] {
        assert!(
            !stdout(&o).contains(secret.as_str().unwrap()),
            "secrets are never listed"
        );
    }
    let o = kondate(
        &p,
        &["tokens", "create", "../x", "--owner", "ml@example.com"],
    );
    assert_eq!(o.status.code(), Some(2));
    // Every change above is in the audit trail, the refused ones too.
    let o = kondate(&p, &["audit", "--format", "json", "--limit", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trail: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let actions: Vec<(&str, &str)> = trail
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .filter(|(a, _)| a.starts_with("tokens.") || a.starts_with("users."))
        .collect();
    assert_eq!(
        actions,
        [
            ("tokens.create", "invalid"),
            ("users.add", "ok"),
            ("tokens.create", "invalid"),
            ("tokens.create", "ok"),
            ("tokens.create", "invalid"),
            ("tokens.rotate", "ok"),
            ("tokens.disable", "ok"),
            ("tokens.create", "invalid"),
        ]
    );
    assert!(trail[0]["actor"].as_str().unwrap().starts_with("cli:"));
}

#[test]
fn a_command_run_as_a_token_may_do_only_what_the_token_may() {
    let dir = project();
    let p = dir.path().join("p");
    let secret = user_token(&p, "pe@example.com", "viewer", "reader");
    let secret = secret.as_str();
    let as_token = |args: &[&str], secret: &str| as_token(&p, "reader", secret, args);
    // It may query…
    let o = as_token(&["query", "SELECT 1 AS x"], secret);
    assert!(o.status.success(), "{}", stderr(&o));
    // …but not move an alias, manage tokens or read the trail: exit 4, naming the scope.
    let o = as_token(&["models", "alias", "m", "production", "1"], secret);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("models:alias=m@production"),
        "{}",
        stderr(&o)
    );
    let o = as_token(&["tokens", "list"], secret);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("admin"), "{}", stderr(&o));
    // A wrong secret is refused as such.
    let o = as_token(&["query", "SELECT 1"], "wrong");
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("not valid"), "{}", stderr(&o));
    // The refusals are recorded, by the token.
    let o = kondate(
        &p,
        &["audit", "--actor", "token:reader", "--format", "json"],
    );
    let trail: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let denied: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(denied, ["tokens list", "models.alias.set"]);
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "unauthorized"),
        "the wrong secret is recorded too"
    );
}

#[test]
fn commands_outside_a_project_explain_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = kondate(dir.path(), &["warehouse", "tables"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("kondate init"), "{}", stderr(&o));
    let o = kondate(dir.path(), &["query", "--help"]);
    assert!(stdout(&o).contains("Example"), "--help has an example");
}

#[test]
fn a_password_in_kondate_toml_is_refused() {
    let dir = project();
    let p = dir.path().join("p");
    std::fs::write(
        p.join("kondate.toml"),
        "[warehouse]\ntype = \"postgres\"\nurl = \"postgres://u:pw123456@h/db\"\n",
    )
    .unwrap();
    let o = kondate(&p, &["warehouse", "tables"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("KONDATE_WAREHOUSE_URL"));
    assert!(!stderr(&o).contains("pw123456"));
}

#[test]
fn labels_sync_diff_history_export_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    assert!(kondate(dir.path(), &["init", "p"]).status.success());
    let p = dir.path().join("p");
    std::fs::write(
        p.join("labels/recipe_category.toml"),
        r#"table = "recipe_category_labels"
key = ["recipe_id"]
[source]
type = "csv"
path = "recipe_category.csv"
[columns]
recipe_id = { type = "integer", required = true }
category  = { type = "enum", values = ["主菜", "副菜"], required = true }
"#,
    )
    .unwrap();
    let csv = p.join("recipe_category.csv");
    std::fs::write(&csv, "recipe_id,category\n1,主菜\n2,副菜\n").unwrap();

    let o = kondate(&p, &["labels", "list"]);
    assert!(
        stdout(&o).contains("recipe_category_labels"),
        "{}",
        stdout(&o)
    );
    let o = kondate(&p, &["labels", "sync", "recipe_category"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("revision 1 applied — 2 added"),
        "{}",
        stdout(&o)
    );
    let o = kondate(&p, &["labels", "sync", "recipe_category"]);
    assert!(
        stdout(&o).contains("has not changed since revision 1"),
        "{}",
        stdout(&o)
    );

    // An invalid row: exit 2, the row and cell named, nothing written.
    std::fs::write(&csv, "recipe_id,category\n1,主菜\n2,汁物\n3,副菜\n").unwrap();
    let o = kondate(&p, &["labels", "sync", "recipe_category"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("row 3 (B3), column category: `汁物`"),
        "{}",
        stderr(&o)
    );
    let o = kondate(
        &p,
        &["labels", "diff", "recipe_category", "--format", "json"],
    );
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["diff"]["added"][0]["key"][0], 3);
    assert_eq!(d["invalid"][0]["cell"], "B3");
    let o = kondate(&p, &["labels", "sync", "recipe_category", "--skip-invalid"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("revision 2 applied"), "{}", stdout(&o));

    let o = kondate(
        &p,
        &["labels", "history", "recipe_category", "--format", "json"],
    );
    let h: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[1]["skipped_invalid"], 1);

    let o = kondate(
        &p,
        &[
            "labels",
            "export",
            "recipe_category",
            "--revision",
            "1",
            "--format",
            "csv",
            "--out",
            "r1.csv",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(p.join("r1.csv")).unwrap(),
        "recipe_id,category\n1,主菜\n2,副菜\n"
    );
    let o = kondate(&p, &["labels", "sync", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("defined: recipe_category"),
        "{}",
        stderr(&o)
    );
}

/// Every command that needs more than `query` (tests/command_scopes.txt, whose lines the
/// binary's unit test checks against the CLI) is refused to a token that may only query:
/// exit 4, naming the first scope it lacks, before it touches anything.
#[test]
fn every_command_is_refused_to_a_token_without_its_scope() {
    let dir = project();
    let p = dir.path().join("p");
    let secret = user_token(&p, "pe@example.com", "editor", "querier");
    let mut checked = 0;
    for line in include_str!("command_scopes.txt").lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let lacking: Vec<&str> = parts[2]
            .split_whitespace()
            .filter(|s| *s != "-" && *s != "query")
            // `KIND=…`: the kind on a name resolved later; refused for lacking the kind.
            .map(|s| s.trim_end_matches("=…"))
            .collect();
        let Some(first) = lacking.first() else {
            continue;
        };
        let args: Vec<&str> = parts[0]
            .split_whitespace()
            .chain(parts[1].split_whitespace())
            .collect();
        let o = as_token(&p, "querier", &secret, &args);
        assert_eq!(
            o.status.code(),
            Some(4),
            "`kondate {}`: {}",
            args.join(" "),
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(first),
            "`kondate {}` should name `{first}`: {}",
            args.join(" "),
            stderr(&o)
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} commands checked");
    // Nothing was changed: the trail holds only refusals by the token.
    let o = kondate(
        &p,
        &["audit", "--actor", "token:querier", "--format", "json"],
    );
    let trail: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let outcomes: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(
        !outcomes.is_empty() && outcomes.iter().all(|o| *o == "denied"),
        "{outcomes:?}"
    );
}
