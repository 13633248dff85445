//! `/v1/labels…` over real HTTP on loopback: list, sync (with its refusals), revisions and
//! exports, behind the query API's token auth.

mod common;

use common::start;
use serde_json::Value;

const DEFINITION: &str = r#"table = "recipe_category_labels"
key = ["recipe_id"]
[source]
type = "csv"
path = "recipe_category.csv"
[columns]
recipe_id = { type = "integer", required = true }
category  = { type = "enum", values = ["主菜", "副菜"], required = true }
"#;

#[tokio::test]
async fn label_endpoints_sync_list_history_and_export() {
    let s = start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    std::fs::write(root.join("labels/recipe_category.toml"), DEFINITION).unwrap();
    let csv = root.join("recipe_category.csv");
    std::fs::write(&csv, "recipe_id,category\n1,主菜\n2,副菜\n").unwrap();
    let get = |path: &str| {
        s.http
            .get(format!("{}{path}", s.url))
            .basic_auth(&s.token, Some(&s.secret))
    };
    let post = |path: &str| {
        s.http
            .post(format!("{}{path}", s.url))
            .basic_auth(&s.token, Some(&s.secret))
    };
    async fn json(r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    // The same token auth as the query API.
    let r = s
        .http
        .get(format!("{}/v1/labels", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (status, list) = json(get("/v1/labels")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["label_sets"][0]["name"], "recipe_category");
    assert_eq!(list["label_sets"][0]["revision"], Value::Null);

    let (status, r) = json(post("/v1/labels/recipe_category/sync")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["outcome"].as_str(), r["revision"].as_i64()),
        (Some("applied"), Some(1))
    );

    // Invalid rows: 400, each named by row and cell; nothing written.
    std::fs::write(&csv, "recipe_id,category\n1,主菜\n2,汁物\n3,副菜\n").unwrap();
    let (status, r) = json(post("/v1/labels/recipe_category/sync")).await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["error_code"], "invalid_parameter");
    assert!(r["error"].as_str().unwrap().contains("row 3 (B3)"), "{r}");
    let (_, r) = json(post(
        "/v1/labels/recipe_category/sync?dry_run=true&skip_invalid=true",
    ))
    .await;
    assert_eq!(r["outcome"], "dry_run", "{r}");
    assert_eq!(r["diff"]["added"].as_array().unwrap().len(), 1);
    let (status, r) = json(post("/v1/labels/recipe_category/sync?skip_invalid=true")).await;
    assert_eq!((status, r["revision"].as_i64()), (200, Some(2)), "{r}");

    let (_, h) = json(get("/v1/labels/recipe_category/revisions")).await;
    let revs = h["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[1]["actor"], "token:tester");
    assert_eq!(revs[1]["skipped_invalid"], 1);

    // Any revision, exactly as it was, as CSV or Parquet.
    let r = get("/v1/labels/recipe_category/revisions/1/export?format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        r.text().await.unwrap(),
        "recipe_id,category\n1,主菜\n2,副菜\n"
    );
    let r = get("/v1/labels/recipe_category/revisions/2/export?format=parquet")
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 2);
    let (status, r) = json(get("/v1/labels/recipe_category/revisions/9/export")).await;
    assert_eq!((status, r["error_code"].as_str()), (404, Some("not_found")));
    let (status, _) = json(get(
        "/v1/labels/recipe_category/revisions/1/export?format=xml",
    ))
    .await;
    assert_eq!(status, 400);
    let (status, r) = json(post("/v1/labels/nope/sync")).await;
    assert_eq!(status, 404, "{r}");
    // A source that cannot be read: 422, naming the file.
    std::fs::rename(&csv, root.join("moved.csv")).unwrap();
    let (status, r) = json(post("/v1/labels/recipe_category/sync")).await;
    assert_eq!(
        (status, r["error_code"].as_str()),
        (422, Some("source_error")),
        "{r}"
    );
    assert!(
        r["error"].as_str().unwrap().contains("recipe_category.csv"),
        "{r}"
    );
    std::fs::rename(root.join("moved.csv"), &csv).unwrap();

    // A changed task definition: 409 until migrate=true.
    std::fs::write(
        root.join("labels/recipe_category.toml"),
        DEFINITION.replace("\"副菜\"]", "\"副菜\", \"汁物\"]"),
    )
    .unwrap();
    let (status, r) = json(post("/v1/labels/recipe_category/sync")).await;
    assert_eq!(
        (status, r["error_code"].as_str()),
        (409, Some("conflict")),
        "{r}"
    );
    let (status, r) = json(post("/v1/labels/recipe_category/sync?migrate=true")).await;
    assert_eq!((status, r["revision"].as_i64()), (200, Some(3)), "{r}");
}
