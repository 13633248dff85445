//! `kondate results write` as a user runs it: rows land in the service database stamped
//! with the model and run; bad input names file, line and column and writes nothing.

use std::path::Path;
use std::process::{Command, Output};

fn kondate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
        .args(args)
        .current_dir(dir)
        .env_remove("KONDATE_PROJECT")
        .env_remove("KONDATE_RUN_ID")
        .env("CI", "true")
        .output()
        .expect("kondate runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn write_upserts_with_model_and_run_and_refuses_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    assert!(kondate(dir.path(), &["init", "p"]).status.success());
    let root = dir.path().join("p");
    std::fs::write(
        root.join("results/recipe_categories.toml"),
        "key = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory = { type = \"string\" }\nscore = { type = \"float\" }\n",
    )
    .unwrap();
    std::fs::write(root.join("model.bin"), b"weights").unwrap();
    let o = kondate(&root, &["models", "push", "recipe-clf", "model.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        root.join("a.csv"),
        "recipe_id,category,score\n1,主菜,0.9\n2,副菜,0.5\n",
    )
    .unwrap();
    std::fs::write(
        root.join("b.jsonl"),
        "{\"recipe_id\": 3, \"score\": 0.7, \"category\": \"汁物\"}\n",
    )
    .unwrap();

    let o = kondate(
        &root,
        &[
            "results",
            "write",
            "recipe_categories",
            "a.csv",
            "b.jsonl",
            "--model",
            "recipe-clf",
            "--run-id",
            "nightly-1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote 3 row(s) to recipe_categories (created) from recipe-clf@1"),
        "{}",
        text(&o)
    );

    let db =
        kondate_db::Database::connect(&format!("sqlite://{}/.kondate/service.db", root.display()))
            .await
            .unwrap();
    let count = |db: kondate_db::Database| async move {
        let r = db
            .fetch_optional(
                "SELECT COUNT(*) AS n, MAX(model_version) AS v, MIN(run_id) AS run FROM recipe_categories",
                &[],
            )
            .await
            .unwrap()
            .unwrap();
        (
            kondate_db::get_i64(&r, "n").unwrap(),
            kondate_db::get_opt_i64(&r, "v"),
            kondate_db::get_opt_string(&r, "run"),
        )
    };
    assert_eq!(
        count(db.clone()).await,
        (3, Some(1), Some("nightly-1".into()))
    );

    // A bad cell: exit 2, the file, line and column named, nothing written.
    std::fs::write(
        root.join("bad.csv"),
        "recipe_id,category,score\n4,主菜,0.1\n5,副菜,high\n",
    )
    .unwrap();
    let o = kondate(&root, &["results", "write", "recipe_categories", "bad.csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("bad.csv: line 3, column `score`: `high` is not a finite number"),
        "{}",
        text(&o)
    );
    // A key repeated across files.
    let o = kondate(
        &root,
        &["results", "write", "recipe_categories", "a.csv", "a.csv"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("also appears in an earlier file"),
        "{}",
        text(&o)
    );
    // An unknown model.
    let o = kondate(
        &root,
        &[
            "results",
            "write",
            "recipe_categories",
            "a.csv",
            "--model",
            "nope@3",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        count(db.clone()).await.0,
        3,
        "a refused write changed the table"
    );

    // Swap with prune: exactly b.jsonl's rows, at once.
    let o = kondate(
        &root,
        &[
            "results",
            "write",
            "recipe_categories",
            "b.jsonl",
            "--publish",
            "swap",
            "--prune",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("swapped in whole, 2 pruned"),
        "{}",
        text(&o)
    );
    assert_eq!(count(db.clone()).await.0, 1);

    // Parquet, by column name.
    {
        use arrow_array::{Float64Array, Int64Array, StringArray};
        use std::sync::Arc;
        let batch = arrow_array::RecordBatch::try_from_iter(vec![
            (
                "category",
                Arc::new(StringArray::from(vec!["主食", "副菜"])) as _,
            ),
            ("recipe_id", Arc::new(Int64Array::from(vec![10, 11])) as _),
            ("score", Arc::new(Float64Array::from(vec![0.3, 0.6])) as _),
        ])
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(root.join("c.parquet")).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let o = kondate(
        &root,
        &["results", "write", "recipe_categories", "c.parquet"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(count(db.clone()).await.0, 3);

    let o = kondate(&root, &["results", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["table"], "recipe_categories");
}
