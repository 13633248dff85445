//! `kondate catalog` as a user runs it on a new project (embedded warehouse, SQLite service
//! database): sync both sources, show a table, see a dropped column in its history, and the
//! errors for a name or a source that does not exist.

mod common;

use std::process::Output;

use common::run_kondate as kondate;

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn catalog_sync_show_and_history_from_the_cli() {
    let (_dir, p) = common::init_project();
    std::fs::write(
        p.join("a.csv"),
        "title,id,rating\n肉じゃが,1,4.5\n豚汁,2,3.5\n",
    )
    .unwrap();
    let o = kondate(&p, &["warehouse", "load", "recipes.items", "a.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let synced = json(&kondate(&p, &["catalog", "sync", "--format", "json"]));
    let sources: Vec<&str> = synced["syncs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["warehouse", "service"]);
    assert_eq!(synced["syncs"][0]["tables"], 1);

    let page = json(&kondate(
        &p,
        &["catalog", "show", "items", "--format", "json"],
    ));
    assert_eq!(page["source"], "warehouse");
    assert_eq!(page["row_count"], 2);
    let columns: Vec<&str> = page["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["title", "id", "rating"]);

    // The table loses a column: the next sync says so, and the page keeps it, gone.
    std::fs::write(p.join("a.csv"), "title,id\n親子丼,3\n").unwrap();
    let o = kondate(&p, &["warehouse", "load", "recipes.items", "a.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kondate(&p, &["catalog", "sync", "warehouse"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("unlinked") && text.contains("recipes.items.rating"),
        "{text}"
    );
    let o = kondate(&p, &["catalog", "show", "recipes.items"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("rating (gone)"), "{text}");
    assert!(text.contains("History:"), "{text}");

    let syncs = json(&kondate(&p, &["catalog", "syncs", "--format", "json"]));
    assert_eq!(syncs.as_array().unwrap().len(), 3);
    assert!(
        syncs
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "ok")
    );

    // An editor deletes what is gone: the gone column, then the dropped table — not the
    // table while its source has it.
    let o = kondate(&p, &["catalog", "delete", "recipes.items"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("still in its source"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Only a table, a view or a column is deleted.
    let o = kondate(&p, &["catalog", "delete", "schema:warehouse.recipes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only those are deleted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let deleted = json(&kondate(
        &p,
        &[
            "catalog",
            "delete",
            "recipes.items.rating",
            "--format",
            "json",
        ],
    ));
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    let page = json(&kondate(
        &p,
        &["catalog", "show", "recipes.items", "--format", "json"],
    ));
    assert_eq!(page["columns"].as_array().unwrap().len(), 2, "{page}");
    assert!(
        !page["history"].to_string().contains("rating"),
        "its history went with it: {page}"
    );
    assert!(
        kondate(&p, &["warehouse", "drop", "recipes.items"])
            .status
            .success()
    );
    assert!(
        kondate(&p, &["catalog", "sync", "warehouse"])
            .status
            .success()
    );
    let o = kondate(&p, &["catalog", "delete", "items"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 object(s)"));
    let o = kondate(&p, &["catalog", "show", "recipes.items"]);
    assert_eq!(o.status.code(), Some(2));
    // Deleting is audited.
    let audit = String::from_utf8_lossy(
        &kondate(
            &p,
            &["audit", "--action", "catalog.delete", "--format", "json"],
        )
        .stdout,
    )
    .into_owned();
    assert!(audit.contains("catalog.delete"), "{audit}");

    let o = kondate(&p, &["catalog", "show", "no_such_table"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("catalog sync"));
    let o = kondate(&p, &["catalog", "sync", "elsewhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warehouse"));
}

/// Descriptions as a user writes them: from a project's `docs/` file at sync, with
/// `describe --file`, refused on a stale version (exit 5, with the difference), kept as
/// history; and found by `search`, in Japanese as well as English.
#[test]
fn catalog_describe_history_search_and_docs_files() {
    let (_dir, p) = common::init_project();
    std::fs::write(p.join("a.csv"), "title,category\n肉じゃが,主菜\n").unwrap();
    let o = kondate(&p, &["warehouse", "load", "recipes.items", "a.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(p.join("docs")).unwrap();
    std::fs::write(
        p.join("docs/items.md"),
        "# レシピ一覧\n\nOne row per recipe.\n",
    )
    .unwrap();
    std::fs::write(p.join("docs/nothing_here.md"), "orphan\n").unwrap();

    let synced = json(&kondate(&p, &["catalog", "sync", "--format", "json"]));
    assert_eq!(
        synced["docs"]["applied"][0],
        serde_json::json!(["docs/items.md", "warehouse.recipes.items"])
    );
    assert_eq!(synced["docs"]["unmatched"][0], "docs/nothing_here.md");
    // Unchanged files are not applied again.
    let again = json(&kondate(&p, &["catalog", "sync", "--format", "json"]));
    assert_eq!(again["docs"]["applied"].as_array().unwrap().len(), 0);

    let doc = json(&kondate(
        &p,
        &["catalog", "describe", "items", "--format", "json"],
    ));
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["from_file"], "docs/items.md");

    // An edit here to a table documented from a file says so.
    std::fs::write(
        p.join("edit.md"),
        "# レシピ一覧\n\nOne row per published recipe.\n",
    )
    .unwrap();
    let o = kondate(
        &p,
        &[
            "catalog",
            "describe",
            "items",
            "--file",
            "edit.md",
            "--base-version",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("docs/items.md"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A second editor who started from version 1 is refused with the difference.
    let o = kondate(
        &p,
        &[
            "catalog",
            "describe",
            "items",
            "--text",
            "mine",
            "--base-version",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("version 2") && err.contains("-One row per published recipe."),
        "{err}"
    );
    let doc = json(&kondate(
        &p,
        &["catalog", "describe", "items", "--format", "json"],
    ));
    assert_eq!(doc["version"], 2);

    // A column and a keyword.
    let o = kondate(
        &p,
        &[
            "catalog",
            "describe",
            "items.category",
            "--text",
            "主菜 or 副菜",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kondate(
        &p,
        &[
            "catalog",
            "describe",
            "keyword:主菜",
            "--text",
            "The main dish.",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let history = json(&kondate(
        &p,
        &["catalog", "history", "recipes.items", "--format", "json"],
    ));
    let versions: Vec<i64> = history["descriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert!(
        history["descriptions"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+One row per published recipe.")
    );
    assert!(!history["schema"].as_array().unwrap().is_empty());

    // Search: Japanese inside a description, English in a name, filters.
    let found = json(&kondate(
        &p,
        &["catalog", "search", "一覧", "--format", "json"],
    ));
    assert_eq!(found["hits"][0]["path"], "warehouse.recipes.items");
    let found = json(&kondate(
        &p,
        &[
            "catalog", "search", "主菜", "--kind", "column", "--format", "json",
        ],
    ));
    assert_eq!(found["hits"][0]["path"], "warehouse.recipes.items.category");
    let found = json(&kondate(
        &p,
        &[
            "catalog", "search", "主菜", "--kind", "keyword", "--format", "json",
        ],
    ));
    assert_eq!(found["hits"].as_array().unwrap().len(), 1);
    let o = kondate(&p, &["catalog", "search", "zzzz_nothing"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing found"));

    // Favourites.
    let o = kondate(&p, &["catalog", "favourite", "items"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let favs = json(&kondate(&p, &["catalog", "favourites", "--format", "json"]));
    assert_eq!(favs[0]["name"], "warehouse.recipes.items");
    let o = kondate(&p, &["catalog", "favourite", "items", "--remove"]);
    assert!(o.status.success());
    let favs = json(&kondate(&p, &["catalog", "favourites", "--format", "json"]));
    assert_eq!(favs.as_array().unwrap().len(), 0);

    // Bad input: a file that is not there, an unknown kind.
    let o = kondate(
        &p,
        &["catalog", "describe", "items", "--file", "missing.md"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.md"));
    let o = kondate(&p, &["catalog", "search", "x", "--kind", "tabel"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A `catalog:edit` pattern is matched against the full name the edit resolves to, however
/// the table was named; a refused edit exits 4, changes nothing and is in the audit trail.
#[test]
fn catalog_edit_scope_is_matched_on_the_full_name() {
    let (_dir, p) = common::init_project();
    std::fs::write(p.join("a.csv"), "title\nx\n").unwrap();
    for table in ["recipes.items", "other.items2"] {
        let o = kondate(&p, &["warehouse", "load", table, "a.csv"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(kondate(&p, &["catalog", "sync"]).status.success());
    let o = kondate(&p, &["users", "add", "w@example.com", "--role", "editor"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = json(&kondate(
        &p,
        &[
            "tokens",
            "create",
            "writer",
            "--owner",
            "w@example.com",
            "--scope",
            "catalog:edit=warehouse.recipes.*",
            "--scope",
            "query",
            "--format",
            "json",
        ],
    ));
    let secret = t["secret"].as_str().unwrap();
    let as_writer = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kondate"))
            .args(args)
            .current_dir(&p)
            .env_remove("KONDATE_PROJECT")
            .env("KONDATE_TOKEN", "writer")
            .env("KONDATE_TOKEN_SECRET", secret)
            .output()
            .unwrap()
    };
    let o = as_writer(&["catalog", "describe", "items", "--text", "ok"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = as_writer(&["catalog", "describe", "items.title", "--text", "ok"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = as_writer(&["catalog", "describe", "items2", "--text", "no"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("catalog:edit"));
    let doc = json(&kondate(
        &p,
        &["catalog", "describe", "items2", "--format", "json"],
    ));
    assert_eq!(doc["version"], 0);
    let trail = json(&kondate(
        &p,
        &["audit", "--actor", "token:writer", "--format", "json"],
    ));
    let outcomes: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "catalog.describe")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 3, "{trail}");
    assert!(outcomes.contains(&"denied"), "{outcomes:?}");
}

/// Sources declared in kondate.toml: another database by a URL held in the environment,
/// kept to what `include` matches; `ignore` on a built-in source; a source whose variable
/// is not set fails on its own while the others sync; a bad pattern syncs nothing.
#[test]
fn catalog_sources_from_the_configuration() {
    let (_dir, p) = common::init_project();
    std::fs::write(p.join("a.csv"), "title\nx\n").unwrap();
    for table in ["recipes.items", "scratch.tmp_items"] {
        let o = kondate(&p, &["warehouse", "load", table, "a.csv"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let config = p.join("kondate.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}\n[catalog.sources.warehouse]\nignore = ['^scratch\\.']\n\
             [catalog.sources.state]\nurl_env = 'STATE_COPY_URL'\ninclude = '^main\\.kondate_catalog_'\n"
        ),
    )
    .unwrap();
    let with_url = |args: &[&str], url: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kondate"));
        c.args(args)
            .current_dir(&p)
            .env_remove("KONDATE_PROJECT")
            .env("CI", "true");
        match url {
            Some(u) => c.env("STATE_COPY_URL", u),
            None => c.env_remove("STATE_COPY_URL"),
        };
        c.output().unwrap()
    };

    // The variable is not set: that source fails, recorded; the others sync.
    let o = with_url(&["catalog", "sync", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["syncs"].as_array().unwrap().len(), 2);
    assert!(
        out["failures"][0]
            .as_str()
            .unwrap()
            .contains("STATE_COPY_URL"),
        "{out}"
    );
    let syncs = json(&kondate(
        &p,
        &["catalog", "syncs", "state", "--format", "json"],
    ));
    assert_eq!(syncs[0]["status"], "failed");
    // ignore left scratch.* out.
    let o = kondate(&p, &["catalog", "show", "tmp_items"]);
    assert_eq!(o.status.code(), Some(2));

    let url = format!("sqlite://{}/.kondate/state.db", p.display());
    let o = with_url(
        &["catalog", "sync", "state", "--format", "json"],
        Some(&url),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = json(&kondate(
        &p,
        &[
            "catalog",
            "show",
            "state.main.kondate_catalog_objects",
            "--format",
            "json",
        ],
    ));
    assert!(page["columns"].as_array().unwrap().len() > 5);
    // include kept the state database's other tables out.
    let o = kondate(&p, &["catalog", "show", "state.main.kondate_queries"]);
    assert_eq!(o.status.code(), Some(2));

    // A bad pattern: refused before anything is synced.
    let before = json(&kondate(&p, &["catalog", "syncs", "--format", "json"]));
    std::fs::write(
        &config,
        format!("{base}\n[catalog.sources.service]\nignore = ['(unclosed']\n"),
    )
    .unwrap();
    let o = kondate(&p, &["catalog", "sync"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("catalog.sources.service") && err.contains("(unclosed"),
        "{err}"
    );
    let after = json(&kondate(&p, &["catalog", "syncs", "--format", "json"]));
    assert_eq!(before, after);
}

/// Where the catalog is in use, a table kondate writes is in it at once: a result table
/// written and exported appears in the service database's and the warehouse's pages
/// without a sync; the rest of the source is left as it was.
#[test]
fn tables_kondate_writes_are_in_the_catalog_at_once() {
    let (_dir, p) = common::init_project();
    std::fs::write(
        p.join("results/scores.toml"),
        "key = [\"id\"]\nwarehouse_table = \"results.scores\"\n[columns]\nid = { type = \"integer\" }\nscore = { type = \"float\" }\n",
    )
    .unwrap();
    std::fs::write(p.join("a.csv"), "id,score\n1,0.5\n").unwrap();
    // Not in use yet: a write records no sync.
    let o = kondate(&p, &["results", "write", "scores", "a.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let syncs = json(&kondate(&p, &["catalog", "syncs", "--format", "json"]));
    assert_eq!(syncs.as_array().unwrap().len(), 0);

    assert!(kondate(&p, &["catalog", "sync"]).status.success());
    // The declaration gains a column; the write adds it; the page shows it at once.
    std::fs::write(
        p.join("results/scores.toml"),
        "key = [\"id\"]\nwarehouse_table = \"results.scores\"\n[columns]\nid = { type = \"integer\" }\nscore = { type = \"float\" }\nnote = { type = \"string\" }\n",
    )
    .unwrap();
    std::fs::write(p.join("b.csv"), "id,score,note\n2,0.7,ok\n").unwrap();
    let o = kondate(&p, &["results", "write", "scores", "b.csv", "--migrate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = json(&kondate(
        &p,
        &["catalog", "show", "service.main.scores", "--format", "json"],
    ));
    assert!(
        page["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "note" && c["linked"] == true),
        "{page}"
    );
    let o = kondate(&p, &["results", "export", "scores"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = json(&kondate(
        &p,
        &[
            "catalog",
            "show",
            "warehouse.results.scores",
            "--format",
            "json",
        ],
    ));
    assert_eq!(page["row_count"], 2, "{page}");
    let syncs = json(&kondate(&p, &["catalog", "syncs", "--format", "json"]));
    assert!(
        syncs
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "ok"),
        "{syncs}"
    );
    assert_eq!(
        syncs[0]["tables"], 1,
        "the export's sync read one table: {syncs}"
    );
}

/// Lineage from what kondate recorded: a label set synced from a CSV, a model version
/// pushed with it, a result table written by that version and copied to the warehouse —
/// as text, JSON and SVG, around one table, and refused to a token that may not read
/// label sets and models.
#[test]
fn lineage_from_sheet_to_warehouse_copy() {
    let (_dir, p) = common::init_project();
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(p.join("data/tags.csv"), "id,tag\n1,主菜\n2,副菜\n").unwrap();
    std::fs::write(
        p.join("labels/tags.toml"),
        "table = \"tag_labels\"\nkey = [\"id\"]\n[source]\ntype = \"csv\"\npath = \"data/tags.csv\"\n[columns]\nid = { type = \"integer\" }\ntag = { type = \"string\" }\n",
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let o = kondate(&p, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    ok(&["labels", "sync", "tags"]);
    std::fs::write(p.join("model.bin"), b"weights").unwrap();
    ok(&["models", "push", "tagger", "model.bin", "--labels", "tags"]);
    std::fs::write(
        p.join("results/tag_scores.toml"),
        "key = [\"id\"]\nwarehouse_table = \"results.tag_scores\"\n[columns]\nid = { type = \"integer\" }\nscore = { type = \"float\" }\n",
    )
    .unwrap();
    std::fs::write(p.join("s.csv"), "id,score\n1,0.9\n").unwrap();
    ok(&[
        "results",
        "write",
        "tag_scores",
        "s.csv",
        "--model",
        "tagger@1",
    ]);
    ok(&["results", "export", "tag_scores"]);
    ok(&["catalog", "sync"]);

    let g = json(&kondate(&p, &["catalog", "lineage", "--format", "json"]));
    let edges: Vec<(String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (a, b) in [
        ("source:tags", "labels:tags"),
        ("labels:tags", "model:tagger@1"),
        ("model:tagger@1", "result:tag_scores"),
        ("result:tag_scores", "warehouse:results.tag_scores"),
    ] {
        assert!(
            edges.contains(&(a.to_string(), b.to_string())),
            "{a} → {b} in {edges:?}"
        );
    }

    // Around the warehouse copy: the whole chain up to the sheet, drawn.
    let svg = p.join("l.svg");
    let o = ok(&[
        "catalog",
        "lineage",
        "warehouse.results.tag_scores",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("tagger@1"));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.starts_with("<svg") && drawn.contains("tagger@1"),
        "{drawn}"
    );
    assert_eq!(drawn.matches("<rect").count(), 5, "{drawn}");

    // A table kondate does not write has none.
    ok(&["catalog", "sync"]);
    let o = kondate(&p, &["catalog", "lineage", "kondate_result_writes"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The tables kondate writes document themselves: a label table names its label set, the
/// file it comes from, its latest revision with its diff and the model that learned from
/// it; a result table the app and jobs that write it, their schedule and owners, its last
/// write with the model version of its rows and its freshness; the warehouse copy its last
/// export; a model page the label revisions it learned from and the tables it wrote.
#[test]
fn tables_kondate_writes_document_themselves() {
    let (_dir, p) = common::init_project();
    std::fs::create_dir_all(p.join("data")).unwrap();
    std::fs::write(p.join("data/tags.csv"), "id,tag\n1,主菜\n2,副菜\n").unwrap();
    std::fs::write(
        p.join("labels/tags.toml"),
        "table = \"tag_labels\"\nkey = [\"id\"]\n[source]\ntype = \"csv\"\npath = \"data/tags.csv\"\n[columns]\nid = { type = \"integer\" }\ntag = { type = \"string\" }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("results/tag_scores.toml"),
        "key = [\"id\"]\nwarehouse_table = \"results.tag_scores\"\n[columns]\nid = { type = \"integer\" }\nscore = { type = \"float\" }\n",
    )
    .unwrap();
    // The app that may write it, the jobs that run it, export it and sync the labels.
    std::fs::write(
        p.join("apps/score.jsonnet"),
        "{ app: { command: ['true'] }, kondate: { results: ['tag_scores'] } }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("jobs/scoring.jsonnet"),
        "{ script: 'app: score\\n', schedules: [{ cron: '0 5 * * *', time_zone: 'Asia/Tokyo' }],\n  \
         owners: ['ml@example.com'], expected_time: '30m' }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("jobs/export.jsonnet"),
        "{ script: 'results_export: tag_scores\\n', schedules: ['0 6 * * *'], owners: ['data@example.com'] }\n",
    )
    .unwrap();
    std::fs::write(
        p.join("jobs/relabel.jsonnet"),
        "{ script: 'labels_sync: tags\\n' }\n",
    )
    .unwrap();
    let ok = |args: &[&str]| {
        let o = kondate(&p, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let show_json = |name: &str| json(&ok(&["catalog", "show", name, "--format", "json"]));
    let show_text =
        |name: &str| String::from_utf8_lossy(&ok(&["catalog", "show", name]).stdout).into_owned();
    ok(&["catalog", "sync"]);
    ok(&["labels", "sync", "tags"]);
    std::fs::write(p.join("model.bin"), b"weights").unwrap();
    ok(&["models", "push", "tagger", "model.bin", "--labels", "tags"]);
    std::fs::write(p.join("s.csv"), "id,score\n1,0.9\n2,0.1\n").unwrap();
    ok(&[
        "results",
        "write",
        "tag_scores",
        "s.csv",
        "--model",
        "tagger@1",
    ]);
    ok(&["results", "export", "tag_scores"]);

    // The label table.
    let page = show_json("tag_labels");
    let k = &page["kondate"];
    assert_eq!(k["kind"], "label_table", "{page}");
    assert_eq!(k["label_set"], "tags");
    assert!(
        k["definition"].as_str().unwrap().ends_with("tags.toml"),
        "{k}"
    );
    assert_eq!(k["revision"]["revision"], 1, "{k}");
    assert_eq!(k["revision"]["rows"], 2, "{k}");
    assert_eq!(k["revision"]["added"], 2, "{k}");
    assert_eq!(k["jobs"][0]["job"], "relabel", "{k}");
    assert_eq!(k["jobs"][0]["via"], "labels_sync: tags", "{k}");
    assert_eq!(k["learned_by"][0]["model"], "tagger", "{k}");
    assert_eq!(k["learned_by"][0]["revision"], 1, "{k}");
    let text = show_text("tag_labels");
    assert!(
        text.contains("Label table of label set tags")
            && text.contains("+2 added")
            && text.contains("learned by:  tagger@1 (revision 1)"),
        "{text}"
    );

    // The result table.
    let page = show_json("service.main.tag_scores");
    let k = &page["kondate"];
    assert_eq!(k["kind"], "result_table", "{page}");
    assert_eq!(k["apps"], serde_json::json!(["score"]), "{k}");
    assert_eq!(k["jobs"][0]["job"], "scoring", "{k}");
    assert_eq!(k["jobs"][0]["via"], "app: score", "{k}");
    assert_eq!(
        k["jobs"][0]["schedules"][0]["time_zone"], "Asia/Tokyo",
        "{k}"
    );
    assert_eq!(k["owners"], serde_json::json!(["ml@example.com"]), "{k}");
    assert_eq!(k["model"], "tagger@1", "{k}");
    assert_eq!(k["writes"][0]["rows"], 2, "{k}");
    assert_eq!(k["freshness"]["status"], "fresh", "{k}");
    assert_eq!(k["freshness"]["job"], "scoring", "{k}");
    let text = show_text("service.main.tag_scores");
    assert!(
        text.contains("Result table tag_scores")
            && text.contains("written by:  app score")
            && text.contains("job:         scoring (app: score) — 0 5 * * * (Asia/Tokyo)")
            && text.contains("freshness:   fresh: "),
        "{text}"
    );

    // Its warehouse copy.
    let page = show_json("warehouse.results.tag_scores");
    let k = &page["kondate"];
    assert_eq!(k["kind"], "warehouse_copy", "{page}");
    assert_eq!(k["jobs"][0]["job"], "export", "{k}");
    assert_eq!(k["owners"], serde_json::json!(["data@example.com"]), "{k}");
    assert_eq!(k["last_export"]["rows"], 2, "{k}");
    assert_eq!(k["freshness"]["status"], "fresh", "{k}");

    // A table kondate does not write has no such section.
    ok(&["catalog", "sync"]);
    let page = show_json("kondate_result_writes");
    assert!(page["kondate"].is_null(), "{page}");

    // The model's page.
    let m = show_json("model:tagger");
    assert_eq!(m["versions"][0]["version"], 1, "{m}");
    assert_eq!(m["versions"][0]["labels"][0]["label_set"], "tags", "{m}");
    assert_eq!(m["versions"][0]["labels"][0]["revision"], 1, "{m}");
    assert_eq!(
        m["versions"][0]["labels"][0]["table"], "service.tag_labels",
        "{m}"
    );
    assert_eq!(m["versions"][0]["wrote"][0]["result"], "tag_scores", "{m}");
    assert_eq!(m["versions"][0]["wrote"][0]["rows"], 2, "{m}");
    let text = show_text("model:tagger");
    assert!(
        text.contains("learned from  tags revision 1 (service.tag_labels)")
            && text.contains("wrote         tag_scores (service.tag_scores): 2 rows"),
        "{text}"
    );
    let o = kondate(&p, &["catalog", "show", "model:nope"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A server of the project on a free loopback port, stopped on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A write through the API updates the catalog as the CLI's writes do: a result table
/// written with a new column by `POST /v1/results/NAME` shows it on its page at once, and
/// its page names the write.
#[test]
fn writes_through_the_api_update_the_catalog() {
    let (_dir, p) = common::init_project();
    let declare = |extra: &str| {
        std::fs::write(
            p.join("results/scores.toml"),
            format!(
                "key = [\"id\"]\n[columns]\nid = {{ type = \"integer\" }}\nscore = {{ type = \"float\" }}\n{extra}"
            ),
        )
        .unwrap();
    };
    declare("");
    std::fs::write(p.join("a.csv"), "id,score\n1,0.5\n").unwrap();
    let o = kondate(&p, &["results", "write", "scores", "a.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(kondate(&p, &["catalog", "sync"]).status.success());
    declare("note = { type = \"string\" }\n");
    let o = kondate(&p, &["users", "add", "w@example.com", "--role", "editor"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = json(&kondate(
        &p,
        &[
            "tokens",
            "create",
            "writer",
            "--owner",
            "w@example.com",
            "--scope",
            "results:write=scores",
            "--format",
            "json",
        ],
    ));
    let secret = t["secret"].as_str().unwrap().to_string();

    let listen = common::free_listen();
    let _server = Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_kondate"))
            .args(["serve", "--listen", &listen])
            .current_dir(&p)
            .env_remove("KONDATE_PROJECT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_listening(&listen);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://{listen}/v1/results/scores?migrate=true"))
            .basic_auth("writer", Some(&secret))
            .header("content-type", "text/csv")
            .body("id,score,note\n2,0.7,ok\n")
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");

    let page = json(&kondate(
        &p,
        &["catalog", "show", "service.main.scores", "--format", "json"],
    ));
    assert!(
        page["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "note" && c["linked"] == true),
        "the API's write synced the table: {page}"
    );
    assert_eq!(page["kondate"]["writes"][0]["rows"], 1, "{page}");
}
