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

    let o = kondate(&p, &["catalog", "show", "no_such_table"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("catalog sync"));
    let o = kondate(&p, &["catalog", "sync", "elsewhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warehouse"));
}
