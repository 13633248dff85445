//! `/v1/catalog…` on a real server over the embedded warehouse: resolve a name to its
//! stable URL, read the page, describe it with its version (a stale edit refused with the
//! difference, hostile Markdown sanitised), history, search in Japanese and English, and
//! `catalog:edit` matched on the object's full name.

mod common;

use kondate_catalog::{Catalog, Filter, import_warehouse};
use serde_json::{Value, json};

async fn sync(s: &common::TestServer) {
    let catalog = Catalog::new(s.opened.db.clone());
    catalog
        .sync(
            "warehouse",
            import_warehouse("warehouse", s.opened.warehouse.as_ref(), &Filter::default()),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_pages_descriptions_history_and_search_over_http() {
    let s = common::start(|_| {}).await;
    sync(&s).await;
    let s = &s;
    let get = |path: String| {
        let rb = s.http.get(format!("{}{path}", s.url));
        async move {
            let r = rb
                .basic_auth(&s.token, Some(&s.secret))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let put = |path: String, token: (String, String), body: Value| {
        let rb = s.http.put(format!("{}{path}", s.url));
        async move {
            let r = rb
                .basic_auth(&token.0, Some(&token.1))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    let (status, found) = get("/v1/catalog/resolve?name=items".into()).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["name"], "warehouse.t.items");
    assert_eq!(found["key"], "table/warehouse/t/items");
    let url = found["url"].as_str().unwrap().to_string();
    assert_eq!(url, "/v1/catalog/objects/table/warehouse/t/items");

    let (status, page) = get(url.clone()).await;
    assert_eq!(status, 200, "{page}");
    let columns: Vec<&str> = page["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "name", "note", "price", "in_stock", "day"]);
    let (status, schema) = get("/v1/catalog/objects/schema/warehouse/t".into()).await;
    assert_eq!(status, 200, "{schema}");
    assert_eq!(schema["tables"][0]["url"], url);

    // Described by an editor, with hostile Markdown.
    let editor = s.token_with("editor", &["query", "catalog:edit"]).await;
    let desc = "/v1/catalog/descriptions/table/warehouse/t/items".to_string();
    let hostile = "# 商品マスタ\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) <img src=x onerror=alert(3)>\n";
    let (status, d) = put(
        desc.clone(),
        editor.clone(),
        json!({"body": hostile, "base_version": 0}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["doc"]["version"], 1);
    let html = d["doc"]["html"].as_str().unwrap();
    assert!(html.contains("商品マスタ"), "{html}");
    // Raw HTML is shown as text, never as markup; a javascript: link goes nowhere.
    assert!(html.contains("&lt;script&gt;"), "{html}");
    for bad in ["<script", "javascript:", "<img"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }

    // A second editor who started from version 0 is refused with the difference.
    let (status, e) = put(
        desc.clone(),
        editor.clone(),
        json!({"body": "mine\n", "base_version": 0}),
    )
    .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error_code"], "stale");
    assert_eq!(e["current_version"], 1);
    assert!(e["diff"].as_str().unwrap().contains("+mine"), "{e}");
    let (_, now) = get(desc.clone()).await;
    assert_eq!(now["version"], 1);
    assert_eq!(now["body"], hostile);

    let (status, e) = put(desc.clone(), editor.clone(), json!({"text": "x"})).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = put(
        "/v1/catalog/descriptions/table/warehouse/t/no_such".into(),
        editor.clone(),
        json!({"body": "x"}),
    )
    .await;
    assert_eq!(status, 404, "{e}");
    let (status, _) = get("/v1/catalog/objects/tabel/warehouse/t/items".into()).await;
    assert_eq!(status, 404);

    // A column, and a glossary keyword.
    let (status, d) = put(
        "/v1/catalog/descriptions/column/warehouse/t/items/price".into(),
        editor.clone(),
        json!({"body": "税込価格 (yen)", "base_version": 0}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    let (status, d) = put(
        format!(
            "/v1/catalog/descriptions/keyword/{}",
            kondate_catalog::docs::encode_part("税込")
        ),
        editor.clone(),
        json!({"body": "Including consumption tax."}),
    )
    .await;
    assert_eq!(status, 200, "{d}");

    let (status, h) = get("/v1/catalog/history/table/warehouse/t/items".into()).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["descriptions"][0]["version"], 1);
    assert_eq!(h["descriptions"][0]["principal"], "token:editor");
    assert!(!h["schema"].as_array().unwrap().is_empty());

    // Search, Japanese and English, with filters; hits carry their URL.
    let (status, r) = get(format!(
        "/v1/catalog/search?q={}",
        kondate_catalog::docs::encode_part("商品")
    ))
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["hits"][0]["url"], url);
    let (_, r) = get("/v1/catalog/search?q=price&kind=column".into()).await;
    assert_eq!(r["hits"][0]["path"], "warehouse.t.items.price");
    let (_, r) = get(format!(
        "/v1/catalog/search?q={}&kind=keyword",
        kondate_catalog::docs::encode_part("税込")
    ))
    .await;
    assert_eq!(r["total"], 1, "{r}");
    let (status, _) = get("/v1/catalog/search?q=x&limit=0".into()).await;
    assert_eq!(status, 400);
    let (status, _) = get("/v1/catalog/search".into()).await;
    assert_eq!(status, 400);

    // Scopes: none to edit; an edit scope on another schema; on this one.
    let reader = s.token_with("reader", &["query"]).await;
    let (status, e) = put(desc.clone(), reader, json!({"body": "x"})).await;
    assert_eq!(status, 403, "{e}");
    let elsewhere = s
        .token_with("elsewhere", &["query", "catalog:edit=warehouse.other.*"])
        .await;
    let (status, e) = put(desc.clone(), elsewhere, json!({"body": "x"})).await;
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("warehouse.t.items"),
        "{e}"
    );
    let here = s
        .token_with("here", &["query", "catalog:edit=warehouse.t.*"])
        .await;
    let (status, e) = put(
        desc.clone(),
        here,
        json!({"body": "ok\n", "base_version": 1}),
    )
    .await;
    assert_eq!(status, 200, "{e}");

    // Favourites: per person, a token's being its owner's.
    let fav = format!("{}/v1/catalog/favourites/table/warehouse/t/items", s.url);
    let r = s
        .http
        .put(&fav)
        .basic_auth(&editor.0, Some(&editor.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["changed"], true);
    let r = s
        .http
        .put(format!(
            "{}/v1/catalog/favourites/table/warehouse/t/nope",
            s.url
        ))
        .basic_auth(&editor.0, Some(&editor.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The test token has the same owner: it sees the same favourites.
    let (status, f) = get("/v1/catalog/favourites".into()).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["favourites"][0]["url"], url);
    let r = s
        .http
        .delete(&fav)
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, f) = get("/v1/catalog/favourites".into()).await;
    assert_eq!(f["favourites"].as_array().unwrap().len(), 0);

    // Lineage (nothing written here yet): JSON, SVG, a bad format, a table with none.
    let (status, g) = get("/v1/catalog/lineage".into()).await;
    assert_eq!(status, 200, "{g}");
    assert!(g["edges"].as_array().unwrap().is_empty());
    let r = s
        .http
        .get(format!("{}/v1/catalog/lineage?format=svg", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml; charset=utf-8");
    assert!(r.text().await.unwrap().starts_with("<svg"));
    let (status, _) = get("/v1/catalog/lineage?format=png".into()).await;
    assert_eq!(status, 400);
    let (status, e) = get("/v1/catalog/lineage?name=items".into()).await;
    assert_eq!(status, 404, "{e}");

    // Every edit and refusal is in the audit trail.
    let trail = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("catalog.describe".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcomes: Vec<String> = trail
        .iter()
        .map(|r| format!("{}:{}", r.entry.actor, r.entry.outcome.as_str()))
        .collect();
    for want in [
        "token:editor:ok",
        "token:reader:denied",
        "token:elsewhere:denied",
        "token:here:ok",
    ] {
        assert!(outcomes.iter().any(|o| o == want), "{want}: {outcomes:?}");
    }
}

/// The lineage graph names label sets and models: a caller sees only those its token may
/// read, and no edge to what it may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_leaves_out_what_the_caller_may_not_read() {
    let s = common::start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    std::fs::write(
        root.join("labels/tags.toml"),
        "table = \"tag_labels\"\nkey = [\"id\"]\n[source]\ntype = \"csv\"\npath = \"tags.csv\"\n[columns]\nid = { type = \"integer\" }\ntag = { type = \"string\" }\n",
    )
    .unwrap();
    std::fs::write(root.join("tags.csv"), "id,tag\n1,主菜\n").unwrap();
    let r = s
        .http
        .post(format!("{}/v1/labels/tags/sync", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let models = kondate_models::Models::new(s.opened.db.clone(), s.opened.store.clone());
    std::fs::write(root.join("m.bin"), b"weights").unwrap();
    models
        .push_path(
            "tagger",
            &root.join("m.bin"),
            kondate_models::PushMeta {
                lineage: kondate_models::Lineage {
                    labels: vec![kondate_models::LabelRef::parse("tags").unwrap()],
                    ..Default::default()
                },
                actor: "test".into(),
                ..Default::default()
            },
            std::sync::Arc::new(|_| {}),
        )
        .await
        .unwrap();

    let lineage = |token: (String, String)| {
        let rb = s.http.get(format!("{}/v1/catalog/lineage", s.url));
        async move {
            let r = rb
                .basic_auth(&token.0, Some(&token.1))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let g: Value = r.json().await.unwrap();
            let ids: Vec<String> = g["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
                .collect();
            (ids, g["edges"].as_array().unwrap().len())
        }
    };
    let all = s
        .token_with("all", &["query", "labels:read", "models:read"])
        .await;
    let (ids, edges) = lineage(all.clone()).await;
    assert_eq!(ids, ["source:tags", "labels:tags", "model:tagger@1"]);
    assert_eq!(edges, 2);

    let no_models = s
        .token_with(
            "no_models",
            &["query", "labels:read", "models:read=other-*"],
        )
        .await;
    let (ids, edges) = lineage(no_models.clone()).await;
    assert_eq!(ids, ["source:tags", "labels:tags"]);
    assert_eq!(edges, 1);

    let reader = s.token_with("reader", &["query"]).await;
    let (ids, edges) = lineage(reader.clone()).await;
    assert!(ids.is_empty(), "{ids:?}");
    assert_eq!(edges, 0);

    // The label table's page says what kondate knows of it, as far as the caller may read.
    let mut config = kondate_core::Config::default();
    config.resolve_paths(root);
    let service = kondate_db::Database::connect(&config.service.url)
        .await
        .unwrap();
    Catalog::new(s.opened.db.clone())
        .sync(
            "service",
            kondate_catalog::import_database("service", &service, &Filter::default()),
        )
        .await
        .unwrap();
    let get = |path: String, token: (String, String)| {
        let rb = s.http.get(format!("{}{path}", s.url));
        async move {
            let r = rb
                .basic_auth(&token.0, Some(&token.1))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let page = "/v1/catalog/objects/table/service/main/tag_labels".to_string();
    let (status, p) = get(page.clone(), all.clone()).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["kondate"]["kind"], "label_table", "{p}");
    assert_eq!(p["kondate"]["revision"]["revision"], 1, "{p}");
    assert_eq!(p["kondate"]["learned_by"][0]["model"], "tagger", "{p}");
    let (_, p) = get(page.clone(), no_models.clone()).await;
    assert_eq!(p["kondate"]["label_set"], "tags", "{p}");
    assert_eq!(p["kondate"]["learned_by"], json!([]), "{p}");
    let (_, p) = get(page, reader.clone()).await;
    assert!(p["kondate"].is_null(), "{p}");

    // The model's page: models:read on it; label sets only where readable.
    let (status, m) = get("/v1/catalog/models/tagger".into(), all.clone()).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["versions"][0]["labels"][0]["label_set"], "tags", "{m}");
    assert_eq!(
        m["versions"][0]["labels"][0]["table"], "service.tag_labels",
        "{m}"
    );
    let (status, m) = get("/v1/catalog/models/tagger".into(), no_models).await;
    assert_eq!(status, 403, "{m}");
    let models_only = s.token_with("models_only", &["query", "models:read"]).await;
    let (status, m) = get("/v1/catalog/models/tagger".into(), models_only.clone()).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["versions"][0]["labels"], json!([]), "{m}");
    let (status, m) = get("/v1/catalog/models/nope".into(), models_only).await;
    assert_eq!(status, 404, "{m}");
}

/// `DELETE /v1/catalog/objects/{key}`: refused while the source has the table, refused to a
/// token without `catalog:edit` on its full name, and done, with its columns, once a sync
/// found it gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlinked_table_is_deleted_by_an_editor() {
    let s = common::start(|_| {}).await;
    sync(&s).await;
    let delete = |token: (String, String)| {
        let rb = s.http.delete(format!(
            "{}/v1/catalog/objects/table/warehouse/t/items",
            s.url
        ));
        async move {
            let r = rb
                .basic_auth(&token.0, Some(&token.1))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let editor = s
        .token_with("editor", &["query", "catalog:edit=warehouse.t.*"])
        .await;
    let other = s
        .token_with("other", &["query", "catalog:edit=warehouse.elsewhere.*"])
        .await;
    let (status, e) = delete(editor.clone()).await;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("still in its source"),
        "{e}"
    );

    s.opened
        .warehouse
        .drop_table(&kondate_warehouse::TableName::parse("t.items").unwrap())
        .await
        .unwrap();
    sync(&s).await;
    let (status, e) = delete(other).await;
    assert_eq!(status, 403, "{e}");
    let (status, d) = delete(editor).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["name"], "warehouse.t.items");
    assert_eq!(d["deleted"], 7, "the table and its six columns: {d}");
    let r = s
        .http
        .get(format!(
            "{}/v1/catalog/objects/table/warehouse/t/items",
            s.url
        ))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
