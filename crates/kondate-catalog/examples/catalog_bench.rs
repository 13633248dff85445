//! The catalog on a large PostgreSQL source: TABLES tables × COLUMNS columns (5,000 × 30
//! by default), a full sync, a re-sync after 1% of the tables changed (columns added,
//! dropped and retyped), and search latency over the catalog (p50/p99 of the kept index a
//! server uses, and what building the index costs). The state database is PostgreSQL too,
//! in a schema of its own.
//!
//! ```sh
//! cargo run --release -p kondate-catalog --example catalog_bench -- \
//!     postgres://postgres@127.0.0.1:5432/test [TABLES] [COLUMNS]
//! ```

use std::time::Instant;

use kondate_catalog::{Catalog, Filter, SearchCache, SearchQuery, import_database};
use kondate_db::{Database, isolated_test_database};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let tables: usize = args.get(2).map_or(5000, |a| a.parse().expect("TABLES"));
    let columns: usize = args.get(3).map_or(30, |a| a.parse().expect("COLUMNS"));

    // A previous run's tables go first, a few hundred a statement: one DROP SCHEMA of
    // thousands of tables needs more locks than a default server has.
    drop_tables(&url, "kondate_t_catbench_src").await;
    let state_url = isolated_test_database(&url, "catbench_state")
        .await
        .unwrap();
    let source_url = isolated_test_database(&url, "catbench_src").await.unwrap();
    let state = Database::connect(&state_url).await.unwrap();
    kondate_db::state::migrate(&state).await.unwrap();
    let source = Database::connect(&source_url).await.unwrap();
    let schema = "kondate_t_catbench_src";

    let t = Instant::now();
    // Many tables a statement: a DO block per 100 tables.
    for chunk in (0..tables).collect::<Vec<_>>().chunks(100) {
        let mut body = String::new();
        for i in chunk {
            let cols: Vec<String> = (0..columns)
                .map(|c| match c % 3 {
                    0 => format!("col_{c} bigint NOT NULL DEFAULT 0"),
                    1 => format!("col_{c} text"),
                    _ => format!("col_{c} double precision"),
                })
                .collect();
            body.push_str(&format!(
                "CREATE TABLE {schema}.recipe_table_{i} ({});\n",
                cols.join(", ")
            ));
            if i % 10 == 0 {
                body.push_str(&format!(
                    "COMMENT ON TABLE {schema}.recipe_table_{i} IS 'レシピの集計 {i}';\n"
                ));
            }
        }
        source
            .execute(&format!("DO $$ BEGIN {body} END $$"), &[])
            .await
            .unwrap();
    }
    source.execute("ANALYZE", &[]).await.unwrap();
    println!(
        "source: {tables} tables × {columns} columns made in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let catalog = Catalog::new(state.clone());
    let filter = Filter::new("pg", Some(&format!("^{schema}\\.")), &[]).unwrap();
    // The floor under a sync: reading the source's catalog alone.
    let t = Instant::now();
    let imported = import_database("pg", &source, &filter).await.unwrap();
    println!(
        "import alone (reading pg_catalog): {:.2}s, {} tables",
        t.elapsed().as_secs_f64(),
        imported.len()
    );
    let t = Instant::now();
    let report = catalog
        .sync("pg", import_database("pg", &source, &filter))
        .await
        .unwrap();
    let full = t.elapsed().as_secs_f64();
    println!(
        "full sync: {:.2}s ({} tables, {} changes recorded)",
        full,
        report.tables,
        report.changes.len()
    );

    // 1% of the tables change: a column added, one dropped, one retyped.
    let changed = (tables / 100).max(1);
    let mut body = String::new();
    for i in 0..changed {
        let n = i * (tables / changed);
        body.push_str(&format!(
            "ALTER TABLE {schema}.recipe_table_{n} ADD COLUMN added_col text, DROP COLUMN col_1, \
             ALTER COLUMN col_2 TYPE numeric;\n"
        ));
    }
    source
        .execute(&format!("DO $$ BEGIN {body} END $$"), &[])
        .await
        .unwrap();
    let t = Instant::now();
    let report = catalog
        .sync("pg", import_database("pg", &source, &filter))
        .await
        .unwrap();
    let resync = t.elapsed().as_secs_f64();
    println!(
        "re-sync, {changed} tables changed: {:.2}s ({} changes recorded)",
        resync,
        report.changes.len()
    );
    let t = Instant::now();
    let report = catalog
        .sync("pg", import_database("pg", &source, &filter))
        .await
        .unwrap();
    println!(
        "re-sync, nothing changed: {:.2}s ({} changes)",
        t.elapsed().as_secs_f64(),
        report.changes.len()
    );

    // Search: the first search builds the index; the rest use it, as a server does.
    let cache = SearchCache::default();
    let q = |text: &str| SearchQuery {
        text: text.into(),
        limit: 30,
        ..SearchQuery::default()
    };
    let t = Instant::now();
    let first = cache.search(&catalog, &q("recipe_table_42")).await.unwrap();
    let build = t.elapsed().as_secs_f64();
    assert_eq!(first.hits[0].name, "recipe_table_42");
    let words = [
        "recipe_table_4711",
        "col_7",
        "集計",
        "レシピ",
        "recipe",
        "added_col",
        "recipe_table_12.col_3",
        "nothing_matches_this",
        "double",
        "集計 42",
    ];
    let mut times = Vec::new();
    for round in 0..20 {
        for w in words {
            let t = Instant::now();
            let r = cache.search(&catalog, &q(w)).await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if round == 0 {
                println!("  search {w:?}: {} hits", r.total);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    // The peer: the same words as `LIKE '%word%'` over the catalog's table in PostgreSQL
    // (names and comments only, no descriptions, no ranking).
    let mut like = Vec::new();
    for _ in 0..5 {
        for w in words {
            let t = Instant::now();
            let mut sql = String::from(
                "SELECT schema_name, table_name, column_name FROM kondate_catalog_objects WHERE linked = 1",
            );
            let mut params = Vec::new();
            for word in w.split_whitespace() {
                sql.push_str(
                    " AND (lower(table_name || '.' || column_name) LIKE ? OR lower(coalesce(db_comment, '')) LIKE ?)",
                );
                let p = kondate_db::Value::Text(format!("%{}%", word.to_lowercase()));
                params.push(p.clone());
                params.push(p);
            }
            sql.push_str(" LIMIT 30");
            state.fetch_all(&sql, &params).await.unwrap();
            like.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    like.sort_by(f64::total_cmp);
    let lpct = |p: f64| like[((like.len() as f64 * p) as usize).min(like.len() - 1)];
    println!(
        "peer, LIKE '%word%' in PostgreSQL: {} searches p50 {:.1} ms, p99 {:.1} ms",
        like.len(),
        lpct(0.50),
        lpct(0.99)
    );
    println!(
        "search: index built in {build:.2}s; {} searches p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    println!(
        "targets: full sync < 30 s ({}), re-sync < 10 s ({}), search p99 < 50 ms ({})",
        if full < 30.0 { "met" } else { "MISSED" },
        if resync < 10.0 { "met" } else { "MISSED" },
        if pct(0.99) < 50.0 { "met" } else { "MISSED" }
    );
    state.close().await;
    source.close().await;
    // Leave the server as it was: other programs' catalog imports read every schema.
    drop_tables(&url, "kondate_t_catbench_src").await;
    drop_tables(&url, "kondate_t_catbench_state").await;
    let db = Database::connect(&url).await.unwrap();
    for schema in ["kondate_t_catbench_src", "kondate_t_catbench_state"] {
        db.execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"), &[])
            .await
            .unwrap();
    }
    db.close().await;
}

/// Drop every table of `schema`, 200 a statement.
async fn drop_tables(url: &str, schema: &str) {
    let db = Database::connect(url).await.unwrap();
    let rows = db
        .fetch_all(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = ?",
            &[kondate_db::Value::Text(schema.into())],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| kondate_db::opt_string_at(r, 0).ok().flatten())
        .map(|t| format!("{schema}.{}", db.ident(&t).unwrap()))
        .collect();
    for chunk in names.chunks(200) {
        db.execute(
            &format!("DROP TABLE IF EXISTS {} CASCADE", chunk.join(", ")),
            &[],
        )
        .await
        .unwrap();
    }
    db.close().await;
}
