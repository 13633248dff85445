//! `/v1/models` and `/v1/blobs` on a real server, through the Rust client and raw HTTP:
//! push, resolve, pull, aliases, delete, gc, and every refusal.

mod common;

use std::path::Path;

use kondate_client::Client;
use kondate_client::models::PushOptions;
use kondate_core::digest::Digest;
use serde_json::{Value, json};

fn client(s: &common::TestServer) -> Client {
    Client::new(&s.url, Some((&s.token, &s.secret))).unwrap()
}

async fn call(
    s: &common::TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = s
        .http
        .request(method, format!("{}{path}", s.url))
        .basic_auth(&s.token, Some(&s.secret));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn blob_files(root: &Path) -> usize {
    let dir = root.join("models/blobs/sha256");
    if !dir.exists() {
        return 0;
    }
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

async fn push_pull_resolve(s: common::TestServer, local_root: Option<&Path>) {
    let c = client(&s);
    let src = s.dir.path().join("train-out");
    std::fs::create_dir_all(src.join("tok")).unwrap();
    // Larger than axum's default 2 MB body limit: uploads are streamed, not buffered.
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.join("weights.bin"), &big).unwrap();
    std::fs::write(src.join("tok/vocab.txt"), "醤油\nしょう油\n").unwrap();
    let mut opts = PushOptions::default();
    opts.metrics.insert("macro_f1".into(), 0.87);
    opts.params.insert("ngram".into(), "3".into());
    opts.git_commit = Some("abc1234".into());
    let v1 = c.push_model("recipe-clf", &src, &opts).await.unwrap();
    assert_eq!((v1.version, v1.files.len()), (1, 2));
    assert_eq!(v1.created_by, format!("token:{}", s.token));
    if let Some(root) = local_root {
        assert_eq!(blob_files(root), 2);
    }
    // The same content again uploads nothing new.
    let v2 = c
        .push_model("recipe-clf", &src, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.content_digest, v1.content_digest);
    if let Some(root) = local_root {
        assert_eq!(blob_files(root), 2);
    }

    let (st, mv) = call(
        &s,
        reqwest::Method::PUT,
        "/v1/models/recipe-clf/aliases/production",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(st, 200, "{mv}");
    assert_eq!(
        (mv["from"].clone(), mv["to"].clone()),
        (Value::Null, json!(1))
    );
    assert_eq!(
        c.resolve_model("recipe-clf@production")
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(c.resolve_model("recipe-clf").await.unwrap().version, 2);

    let dest = s.dir.path().join("pulled");
    let (got, path) = c
        .pull_model("recipe-clf@production", &dest, false)
        .await
        .unwrap();
    assert_eq!((got.version, path.clone()), (1, dest.clone()));
    assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(dest.join("tok/vocab.txt")).unwrap(),
        "醤油\nしょう油\n"
    );
    let again = c
        .pull_model("recipe-clf@1", &dest, false)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("--force"), "{again}");

    let (st, body) = call(
        &s,
        reqwest::Method::DELETE,
        "/v1/models/recipe-clf/versions/1",
        None,
    )
    .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (st, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/v1/models/recipe-clf/versions/2",
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, list) = call(&s, reqwest::Method::GET, "/v1/models", None).await;
    assert_eq!(st, 200);
    assert_eq!(list["models"][0]["aliases"]["production"], 1, "{list}");
    let (_, versions) = call(&s, reqwest::Method::GET, "/v1/models/recipe-clf", None).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    let (_, hist) = call(
        &s,
        reqwest::Method::GET,
        "/v1/models/recipe-clf/alias-history",
        None,
    )
    .await;
    assert_eq!(hist["moves"].as_array().unwrap().len(), 1);
    let (st, gc) = call(
        &s,
        reqwest::Method::POST,
        "/v1/blobs/gc",
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(st, 200, "{gc}");
    assert_eq!(gc["applied"], false);
    assert!(
        gc["blobs"].as_array().unwrap().is_empty(),
        "v1 still holds both files: {gc}"
    );
}

#[tokio::test]
async fn models_push_pull_resolve_over_http() {
    let s = common::start(|_| {}).await;
    let root = s.opened.store.local_root().unwrap().to_path_buf();
    push_pull_resolve(s, Some(&root)).await;
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn models_push_pull_resolve_over_http_on_s3() {
    let endpoint = std::env::var("KONDATE_TEST_S3_ENDPOINT").unwrap();
    let s = common::start(|c| {
        c.store.url = format!("s3://kondate-test/web-models-{}", std::process::id());
        c.store.endpoint = Some(endpoint);
        c.store.region = Some("us-east-1".into());
        c.store.allow_http = true;
    })
    .await;
    push_pull_resolve(s, None).await;
}

#[tokio::test]
async fn models_refuse_bad_uploads_and_requests() {
    let s = common::start(|_| {}).await;
    let data = b"some weights".to_vec();
    let digest = Digest::of(&data);
    let put = |d: String, body: Vec<u8>, auth: bool| {
        let mut rb = s.http.put(format!("{}/v1/blobs/{d}", s.url)).body(body);
        if auth {
            rb = rb.basic_auth(&s.token, Some(&s.secret));
        }
        rb.send()
    };
    let r = put(digest.to_string(), b"other weights".to_vec(), true)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "digest_mismatch", "{body}");
    let r = put(digest.to_string(), data.clone(), false).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A chunked body without Content-Length: the size must be declared up front.
    let chunked = reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(
        data.clone(),
    )]));
    let r = s
        .http
        .put(format!("{}/v1/blobs/{digest}", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .body(chunked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 411);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Content-Length"),
        "{body}"
    );
    let r = put("sha256:..%2F..%2Fetc".into(), data.clone(), true)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let commit = json!({"layout": "file", "files": [{"path": "w.bin", "size": data.len(), "digest": digest}]});
    let (st, body) = call(
        &s,
        reqwest::Method::POST,
        "/v1/models/m/versions",
        Some(commit.clone()),
    )
    .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (409, Some("missing_blob")),
        "{body}"
    );
    let r = put(digest.to_string(), data.clone(), true).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = put(digest.to_string(), data.clone(), true).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "already there");
    let (st, body) = call(
        &s,
        reqwest::Method::POST,
        "/v1/models/m/versions",
        Some(commit.clone()),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, _) = call(
        &s,
        reqwest::Method::POST,
        "/v1/models/..%2Fx/versions",
        Some(commit),
    )
    .await;
    assert_eq!(st, 400);
    let evil = json!({"layout": "directory", "files": [{"path": "../../x", "size": data.len(), "digest": digest}]});
    let (st, body) = call(
        &s,
        reqwest::Method::POST,
        "/v1/models/m/versions",
        Some(evil),
    )
    .await;
    assert_eq!(st, 400, "{body}");
    let (st, _) = call(
        &s,
        reqwest::Method::GET,
        "/v1/models/nope/versions/latest",
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(&s, reqwest::Method::GET, "/v1/models/m/versions/7", None).await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &s,
        reqwest::Method::PUT,
        "/v1/models/m/aliases/latest",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = call(
        &s,
        reqwest::Method::PUT,
        "/v1/models/m/aliases/prod",
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(st, 400);
    let r = s
        .http
        .get(format!("{}/v1/blobs/{digest}", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    // A blob whose file was damaged in the store: the client's pull names it, dest untouched.
    let root = s.opened.store.local_root().unwrap();
    let hex = digest.hex();
    std::fs::write(
        root.join(format!("models/blobs/sha256/{}/{hex}", &hex[..2])),
        b"SOME weights",
    )
    .unwrap();
    let dest = s.dir.path().join("w.bin");
    std::fs::write(&dest, b"previous").unwrap();
    let err = client(&s).pull_model("m@1", &dest, true).await.unwrap_err();
    assert!(err.to_string().contains("m@1: w.bin"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
}
