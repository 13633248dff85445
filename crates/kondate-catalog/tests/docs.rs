//! Descriptions, the glossary, docs as code and search on real state databases: every edit
//! a revision with its diff; a stale edit refused with the diff, also when two editors race;
//! keywords linked; a project file applied when it changes and a catalog edit kept until it
//! does; search in Japanese and English, ranked. SQLite always; MariaDB and PostgreSQL with
//! KONDATE_TEST_MYSQL_URL / KONDATE_TEST_POSTGRES_URL (see .ci/run).

mod common;

use common::{exec, setup};
use kondate_catalog::{CatalogError, SearchQuery, Target, import_database};
use kondate_db::DbKind;

async fn scenario(url: Option<&str>, tag: &str) {
    let (catalog, db, filter, _dir) = setup(url, tag).await;
    match db.kind() {
        DbKind::MySql => {
            exec(&db, "CREATE TABLE recipe_categories (recipe_id BIGINT PRIMARY KEY, category VARCHAR(20) COMMENT '主菜・副菜・汁物', score DOUBLE)").await
        }
        _ => {
            exec(&db, "CREATE TABLE recipe_categories (recipe_id BIGINT PRIMARY KEY, category TEXT, score DOUBLE PRECISION)").await
        }
    }
    exec(
        &db,
        "CREATE TABLE recipes (id BIGINT PRIMARY KEY, title TEXT)",
    )
    .await;
    if db.kind() == DbKind::Postgres {
        exec(
            &db,
            "COMMENT ON COLUMN recipe_categories.category IS '主菜・副菜・汁物'",
        )
        .await;
    }
    catalog
        .sync("src", import_database("src", &db, &filter))
        .await
        .unwrap();

    // Names resolve to tables and columns.
    let table = catalog.resolve("recipe_categories").await.unwrap();
    assert!(matches!(&table, Target::Table { table, .. } if table == "recipe_categories"));
    let column = catalog.resolve("recipe_categories.score").await.unwrap();
    assert!(matches!(&column, Target::Column { column, .. } if column == "score"));
    assert!(matches!(
        catalog.resolve("recipe_categories.nothing").await,
        Err(CatalogError::NotFound(_))
    ));

    // First edit from version 0, then an edit from 1.
    let d = catalog
        .describe(
            &table,
            "# Categories\n\nOne row per recipe.\n",
            Some(0),
            "alice",
            None,
        )
        .await
        .unwrap();
    assert_eq!((d.doc.version, d.changed), (1, true));
    assert!(d.doc.html.contains("<h1>Categories</h1>"), "{}", d.doc.html);
    let d = catalog
        .describe(
            &table,
            "# Categories\n\nOne row per recipe: 主菜 or not.\n",
            Some(1),
            "bob",
            None,
        )
        .await
        .unwrap();
    assert_eq!(d.doc.version, 2);
    // A stale edit (from version 1) is refused with the diff, and changes nothing.
    let e = catalog
        .describe(
            &table,
            "# Categories\n\nSomething else.\n",
            Some(1),
            "carol",
            None,
        )
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            CatalogError::Stale {
                current: 2,
                base: 1,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("bob")
            && text.contains("-One row per recipe: 主菜 or not.")
            && text.contains("+Something else."),
        "{text}"
    );
    assert_eq!(catalog.doc(&table).await.unwrap().version, 2);
    // The same text again makes no revision.
    let d = catalog
        .describe(
            &table,
            "# Categories\n\nOne row per recipe: 主菜 or not.\n",
            Some(2),
            "bob",
            None,
        )
        .await
        .unwrap();
    assert!(!d.changed);
    let history = catalog.doc_history(&table).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(history[0].principal, "bob");
    assert!(
        history[0]
            .diff
            .contains("+One row per recipe: 主菜 or not."),
        "{}",
        history[0].diff
    );

    // Two editors from the same version at once: one lands, the other is refused.
    let (a, b) = tokio::join!(
        catalog.describe(&column, "probability", Some(0), "alice", None),
        catalog.describe(&column, "the score", Some(0), "bob", None),
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    assert!(matches!(
        a.err().or(b.err()),
        Some(CatalogError::Stale { .. })
    ));
    assert_eq!(catalog.doc_history(&column).await.unwrap().len(), 1);

    // A keyword is linked wherever it appears; hostile text is shown, not run.
    catalog
        .describe(
            &Target::Keyword {
                name: "主菜".into(),
            },
            "The main dish of a meal.",
            None,
            "alice",
            None,
        )
        .await
        .unwrap();
    assert_eq!(catalog.keywords().await.unwrap(), ["主菜"]);
    let page = catalog.table("recipe_categories").await.unwrap();
    let html = &page.description.as_ref().unwrap().html;
    assert!(
        html.contains("<a href=\"/catalog/keywords/%E4%B8%BB%E8%8F%9C\">主菜</a>"),
        "{html}"
    );
    let score = page.columns.iter().find(|c| c.name == "score").unwrap();
    assert_eq!(score.description.as_ref().unwrap().version, 1);
    let d = catalog
        .describe(
            &table,
            "<script>alert(1)</script>\n\n[x](javascript:alert(1))",
            None,
            "mallory",
            None,
        )
        .await
        .unwrap();
    let html = &d.doc.html;
    assert!(
        html.contains("&lt;script&gt;") && html.contains("<a href=\"#\">x</a>"),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("href=\"javascript"),
        "{html}"
    );
    assert!(matches!(
        catalog
            .describe(&table, &"x".repeat(300_000), None, "alice", None)
            .await,
        Err(CatalogError::Invalid(_))
    ));

    // Docs as code: the file is applied, not again while unchanged; a catalog edit stays
    // (with a warning) until the file changes.
    let file = "docs/recipe_categories.md".to_string();
    let files = vec![
        (file.clone(), "From the file: 主菜・副菜.\n".to_string()),
        ("docs/no_such_table.md".to_string(), "x".to_string()),
    ];
    let r = catalog.apply_doc_files(&files).await.unwrap();
    assert_eq!(r.applied.len(), 1, "{r:?}");
    assert_eq!(r.unmatched, ["docs/no_such_table.md"]);
    assert!(
        catalog
            .apply_doc_files(&files)
            .await
            .unwrap()
            .applied
            .is_empty()
    );
    let d = catalog
        .describe(&table, "Edited in the catalog.\n", None, "alice", None)
        .await
        .unwrap();
    assert!(d.warning.as_deref().unwrap().contains(&file), "{d:?}");
    assert!(
        catalog
            .apply_doc_files(&files)
            .await
            .unwrap()
            .applied
            .is_empty()
    );
    assert_eq!(
        catalog.doc(&table).await.unwrap().body,
        "Edited in the catalog.\n"
    );
    let changed = vec![(file.clone(), "From the file, changed.\n".to_string())];
    assert_eq!(
        catalog
            .apply_doc_files(&changed)
            .await
            .unwrap()
            .applied
            .len(),
        1
    );
    let doc = catalog.doc(&table).await.unwrap();
    assert_eq!(
        (doc.body.as_str(), doc.from_file.as_deref()),
        ("From the file, changed.\n", Some(file.as_str()))
    );

    // Search: English and Japanese, in names, comments and descriptions, ranked.
    let search = |text: &str| {
        let catalog = catalog.clone();
        let text = text.to_string();
        async move {
            catalog
                .search(&SearchQuery {
                    text,
                    ..SearchQuery::default()
                })
                .await
                .unwrap()
                .hits
                .into_iter()
                .map(|h| (h.path, h.rank))
                .collect::<Vec<_>>()
        }
    };
    let hits = search("recipe").await;
    assert_eq!(hits[0].1, "prefix", "{hits:?}");
    assert!(
        hits[0].0.ends_with(".recipes") && hits[1].0.ends_with(".recipe_categories"),
        "{hits:?}"
    );
    let hits = search("recipes").await;
    assert_eq!(hits[0].1, "exact", "{hits:?}");
    // 主菜: the keyword (exact), then the described table; on MariaDB and PostgreSQL also
    // the column whose database comment says it.
    let hits = search("主菜").await;
    assert_eq!(hits[0], ("keyword:主菜".to_string(), "exact"), "{hits:?}");
    let commented = db.kind() != DbKind::Sqlite;
    assert_eq!(hits.len(), 1 + usize::from(commented), "{hits:?}");
    let hits = search("汁物").await;
    assert_eq!(hits.len(), usize::from(commented), "{hits:?}");
    let hits = search("changed").await;
    assert!(
        hits[0].0.ends_with(".recipe_categories") && hits[0].1 == "described",
        "{hits:?}"
    );
    assert!(search("天ぷら").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_descriptions_history_and_search() {
    scenario(None, "catdocs_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_descriptions_history_and_search() {
    let url = std::env::var("KONDATE_TEST_MYSQL_URL").expect("KONDATE_TEST_MYSQL_URL");
    scenario(Some(&url), "catdocs_my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_descriptions_history_and_search() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    scenario(Some(&url), "catdocs_pg").await;
}
