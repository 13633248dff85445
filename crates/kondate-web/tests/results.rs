//! `POST /v1/results/{name}` on a real server, from the Rust client's `ResultsWriter` (rows
//! and Arrow batches) and as raw CSV and Parquet bodies: rows land in the service database
//! stamped with model and run; a bad row is a 400 naming the row and column and writes
//! nothing; unknown tables, unknown formats and missing credentials are refused.

mod common;

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use kondate_client::Client;

const DECL: &str = "key = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\n\
                    category = { type = \"string\", nullable = false }\nscore = { type = \"float\" }\n";

async fn table(s: &common::TestServer) -> Vec<String> {
    let url = format!("sqlite://{}/.kondate/service.db", s.dir.path().display());
    let db = kondate_db::Database::connect(&url).await.unwrap();
    let rows = db
        .fetch_all(
            "SELECT recipe_id, category, score, model_name, model_version, run_id \
             FROM recipe_categories ORDER BY recipe_id",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            format!(
                "{}|{}|{:?}|{:?}|{:?}|{:?}",
                kondate_db::opt_i64_at(r, 0).unwrap().unwrap(),
                kondate_db::opt_string_at(r, 1).unwrap().unwrap(),
                kondate_db::opt_f64_at(r, 2).unwrap(),
                kondate_db::opt_string_at(r, 3).unwrap(),
                kondate_db::opt_i64_at(r, 4).unwrap(),
                kondate_db::opt_string_at(r, 5).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn results_writer_and_raw_bodies_write_all_or_nothing() {
    let s = common::start(|_| {}).await;
    std::fs::create_dir_all(s.dir.path().join("results")).unwrap();
    std::fs::write(s.dir.path().join("results/recipe_categories.toml"), DECL).unwrap();
    let client = Client::new(&s.url, Some((&s.token, &s.secret))).unwrap();

    // A model to attribute the rows to.
    let weights = s.dir.path().join("w.bin");
    std::fs::write(&weights, b"weights").unwrap();
    client
        .push_model("recipe-clf", &weights, &Default::default())
        .await
        .unwrap();

    // Rows and an Arrow batch, one commit.
    let mut w = client
        .results_writer("recipe_categories")
        .unwrap()
        .model("recipe-clf@latest")
        .run_id("nightly-7");
    w.push_row(serde_json::json!({"recipe_id": 1, "category": "主菜", "score": 0.9}))
        .unwrap();
    let batch = RecordBatch::try_from_iter([
        (
            "recipe_id",
            Arc::new(Int64Array::from(vec![2, 3])) as arrow_array::ArrayRef,
        ),
        (
            "category",
            Arc::new(StringArray::from(vec!["副菜", "汁物"])) as _,
        ),
        (
            "score",
            Arc::new(Float64Array::from(vec![Some(0.5), None])) as _,
        ),
    ])
    .unwrap();
    w.push_batch(&batch).unwrap();
    assert_eq!(w.rows(), 3);
    let report = w.commit().await.unwrap();
    assert_eq!((report.rows, report.created), (3, true));
    let want_first = [
        "1|主菜|Some(0.9)|Some(\"recipe-clf\")|Some(1)|Some(\"nightly-7\")",
        "2|副菜|Some(0.5)|Some(\"recipe-clf\")|Some(1)|Some(\"nightly-7\")",
        "3|汁物|None|Some(\"recipe-clf\")|Some(1)|Some(\"nightly-7\")",
    ];
    assert_eq!(table(&s).await, want_first);

    // A bad row (row 2: empty category, which may not be empty) fails the whole write.
    let mut w = client.results_writer("recipe_categories").unwrap();
    w.push_row(serde_json::json!({"recipe_id": 1, "category": "デザート", "score": 0.1}))
        .unwrap();
    w.push_row(serde_json::json!({"recipe_id": 4, "category": null}))
        .unwrap();
    let e = w.commit().await.unwrap_err().to_string();
    assert!(e.contains("400"), "{e}");
    assert!(e.contains("request body") && e.contains("category"), "{e}");
    assert!(
        !e.contains("results-upload-"),
        "the temporary file leaked into: {e}"
    );
    assert_eq!(table(&s).await, want_first);

    // Rows that are not objects and Arrow types a result table cannot hold are refused
    // when pushed, with the row or column.
    let e = w_err(&client, serde_json::json!([1, "主菜"]));
    assert!(e.contains("row 1: a row is a JSON object"), "{e}");
    let mut w = client.results_writer("recipe_categories").unwrap();
    let binary = RecordBatch::try_from_iter([(
        "recipe_id",
        Arc::new(arrow_array::BinaryArray::from_vec(vec![b"x"])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let e = w.push_batch(&binary).unwrap_err().to_string();
    assert!(
        e.contains("column `recipe_id` has Arrow type Binary"),
        "{e}"
    );

    // Non-finite floats are refused before anything is sent.
    let mut w = client.results_writer("recipe_categories").unwrap();
    let nan = RecordBatch::try_from_iter([(
        "score",
        Arc::new(Float64Array::from(vec![f64::NAN])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let e = w.push_batch(&nan).unwrap_err().to_string();
    assert!(e.contains("row 1 (column `score`)"), "{e}");

    // A raw CSV body, with a swap that prunes: exactly these rows.
    let post = |query: &'static str, ct: &'static str, body: Vec<u8>| {
        let r = s
            .http
            .post(format!("{}/v1/results/recipe_categories{query}", s.url))
            .basic_auth(&s.token, Some(&s.secret))
            .header("content-type", ct)
            .body(body);
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let body: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status} {text:?} is not JSON: {e}"));
            (status, body)
        }
    };
    let (status, body) = post(
        "?publish=swap&prune=true",
        "text/csv; charset=utf-8",
        "recipe_id,category,score\n5,主食,0.7\n".into(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["pruned"].as_u64(), body["publish"].as_str()),
        (Some(3), Some("swap"))
    );
    assert_eq!(table(&s).await, ["5|主食|Some(0.7)|None|None|None"]);

    // A Parquet body.
    let mut parquet = Vec::new();
    {
        let mut pw =
            parquet::arrow::ArrowWriter::try_new(&mut parquet, batch.schema(), None).unwrap();
        pw.write(&batch).unwrap();
        pw.close().unwrap();
    }
    let (status, body) = post("", "application/vnd.apache.parquet", parquet).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(table(&s).await.len(), 3);

    // Refusals.
    let (status, body) = post("", "text/plain", b"x".to_vec()).await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = post("?prune=maybe", "text/csv", b"x".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    let r = s
        .http
        .post(format!("{}/v1/results/nope", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .header("content-type", "text/csv")
        .body("a\n1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = s
        .http
        .post(format!("{}/v1/results/recipe_categories", s.url))
        .header("content-type", "text/csv")
        .body("recipe_id,category\n9,x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(table(&s).await.len(), 3);

    // The declaration changed since the table was created: 409, nothing written.
    std::fs::write(
        s.dir.path().join("results/recipe_categories.toml"),
        format!("{DECL}note = {{ type = \"string\" }}\n"),
    )
    .unwrap();
    let (status, body) = post(
        "",
        "text/csv",
        "recipe_id,category,score,note\n9,x,,y\n".into(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--migrate"),
        "{body}"
    );
    assert_eq!(table(&s).await.len(), 3);
}

/// The error of pushing `row` into a new writer.
fn w_err(client: &Client, row: serde_json::Value) -> String {
    let mut w = client.results_writer("recipe_categories").unwrap();
    w.push_row(row).unwrap_err().to_string()
}
