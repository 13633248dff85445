//! The Google Sheets source against a local server that speaks the Sheets API v4 and
//! Google's OAuth token endpoint as documented: `spreadsheets.values.get` answering a
//! `ValueRange` (unformatted values, trailing empty cells and rows left out), Google's error
//! body for 403/404/429, and the JWT-bearer grant, whose RS256 signature the fake verifies.
//!
//! One test function, because it sets an environment variable (the API key) before any
//! other thread runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kondate_db::Database;
use kondate_labels::LabelValue;
use kondate_labels::Labels;
use kondate_labels::{LabelSet, Outcome, SyncOptions, read_source, sheets, table};
use kondate_store::{Store, UrlSigner};
use serde_json::json;

const API_KEY: &str = "test-api-key";
const ACCESS_TOKEN: &str = "ya29.test-access-token";

#[derive(Clone)]
struct Fake {
    /// The service account's public key (PKCS#1 DER), to verify assertions.
    public_key: Arc<Vec<u8>>,
    token_uri: Arc<Mutex<String>>,
    quota_calls: Arc<AtomicUsize>,
    token_calls: Arc<AtomicUsize>,
}

fn google_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    (status, axum::Json(body)).into_response()
}

async fn token(State(f): State<Fake>, Form(form): Form<HashMap<String, String>>) -> Response {
    f.token_calls.fetch_add(1, Ordering::SeqCst);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let jwt = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    let invalid = || {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    if parts.len() != 3 {
        return invalid();
    }
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        f.public_key.as_slice(),
    );
    if key
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .is_err()
    {
        return invalid();
    }
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let ok = header["alg"] == "RS256"
        && header["kid"] == "test-key-1"
        && claims["iss"] == "labels@kondate-test.iam.gserviceaccount.com"
        && claims["scope"] == sheets::SCOPE
        && claims["aud"] == *f.token_uri.lock().unwrap()
        && claims["exp"].as_i64().unwrap_or(0) > claims["iat"].as_i64().unwrap_or(0);
    if !ok {
        return invalid();
    }
    axum::Json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn values(
    State(f): State<Fake>,
    Path((id, range)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Google takes an API key as `?key=` or in `X-Goog-Api-Key`; kondate must use the
    // header, so that the key is never part of a URL.
    if q.contains_key("key") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "test fake: the API key was sent in the URL",
        );
    }
    let header_key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    let authorised = header_key == Some(API_KEY) || bearer == Some(ACCESS_TOKEN);
    if !authorised {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        );
    }
    if q.get("valueRenderOption").map(String::as_str) != Some("UNFORMATTED_VALUE") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "expected UNFORMATTED_VALUE",
        );
    }
    match id.as_str() {
        "missing" => {
            return google_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Requested entity was not found.",
            );
        }
        "quota" if f.quota_calls.fetch_add(1, Ordering::SeqCst) == 0 => {
            let mut r = google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests'",
            );
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            return r;
        }
        _ => {}
    }
    let sheet = range.split('!').next().unwrap_or("Sheet1");
    // As the API answers: the header in row 2 (a title above it), trailing empty cells and
    // rows left out, numbers, booleans and date serial numbers unformatted.
    axum::Json(json!({
        "range": format!("{sheet}!B1:H6"),
        "majorDimension": "ROWS",
        "values": [
            ["ラベル一覧"],
            ["レシピID", "カテゴリ", "score", "checked", "day", "メモ"],
            [1, "主菜", 0.5, true, 45293, "醤油"],
            [2, " 副菜 "],
            [],
            ["３", "汁物", "", false, "2024/03/04"]
        ]
    }))
    .into_response()
}

fn definition(dir: &std::path::Path, api_base: &str, id: &str, credentials: &str) -> LabelSet {
    let text = format!(
        r#"
        table = "sheet_labels"
        key = ["recipe_id"]
        [source]
        type = "google_sheets"
        spreadsheet_id = "{id}"
        range = "Labels!B1:H"
        header_row = 2
        api_base = "{api_base}"
        {credentials}
        [columns]
        recipe_id = {{ type = "integer", header = "レシピID" }}
        category  = {{ type = "enum", values = ["主菜", "副菜", "汁物"], header = "カテゴリ", required = true }}
        score     = {{ type = "float" }}
        checked   = {{ type = "boolean" }}
        day       = {{ type = "date" }}
        note      = {{ type = "string", role = "comment", header = "メモ" }}
        "#
    );
    LabelSet::from_toml("sheet", &text, "sheet.toml", dir).unwrap()
}

#[tokio::test]
async fn google_sheets_source_against_a_local_fake() {
    // Before any other thread starts: the API-key variable the definition names.
    unsafe { std::env::set_var("KONDATE_TEST_SHEETS_API_KEY", API_KEY) };

    let dir = tempfile::tempdir().unwrap();
    let key_file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/service-account.json"),
    )
    .unwrap();
    let key: sheets::ServiceAccountKey = serde_json::from_str(&key_file).unwrap();
    let pair =
        ring::signature::RsaKeyPair::from_pkcs8(&sheets::pem_pkcs8(&key.private_key).unwrap())
            .unwrap();
    use ring::signature::KeyPair;
    let fake = Fake {
        public_key: Arc::new(pair.public_key().as_ref().to_vec()),
        token_uri: Arc::default(),
        quota_calls: Arc::default(),
        token_calls: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/token", post(token))
        .route("/v4/spreadsheets/{id}/values/{range}", get(values))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token_uri = format!("{base}/token");
    *fake.token_uri.lock().unwrap() = token_uri.clone();
    std::fs::write(
        dir.path().join("sa.json"),
        key_file.replace("TOKEN_URI", &token_uri),
    )
    .unwrap();
    std::fs::write(dir.path().join("api.key"), format!("{API_KEY}\n")).unwrap();

    // A service account: JWT → access token → values, mapped by the headers in row 2.
    let set = definition(
        dir.path(),
        &base,
        "sheet-1",
        "credentials_file = \"sa.json\"",
    );
    let grid = read_source(&set).await.unwrap();
    assert_eq!((grid.first_row, grid.first_col), (1, 1));
    assert_eq!(fake.token_calls.load(Ordering::SeqCst), 1);
    let service = Database::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let store = Store::local(
        &dir.path().join("store"),
        UrlSigner::new(vec![1; 32], "http://x"),
    )
    .unwrap();
    let labels = Labels::new(service.clone(), store);
    let opts = SyncOptions {
        actor: "t".into(),
        ..Default::default()
    };
    let r = labels.sync(&set, &grid, &opts).await.unwrap();
    assert_eq!((r.outcome, r.rows, r.empty_rows), (Outcome::Applied, 3, 1));
    let mut rows = table::read_rows(&service, &set).await.unwrap();
    rows.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
    use LabelValue::{Bool, Float, Int, Null, Text};
    let date = |y, m, d| LabelValue::Date(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap());
    assert_eq!(
        rows,
        vec![
            vec![
                Int(1),
                Text("主菜".into()),
                Float(0.5),
                Bool(true),
                date(2024, 1, 2),
                Text("醤油".into())
            ],
            vec![Int(2), Text("副菜".into()), Null, Null, Null, Null],
            vec![
                Int(3),
                Text("汁物".into()),
                Null,
                Bool(false),
                date(2024, 3, 4),
                Null
            ],
        ]
    );

    // An API key, from a file and from the environment.
    for creds in [
        "api_key_file = \"api.key\"",
        "api_key_env = \"KONDATE_TEST_SHEETS_API_KEY\"",
    ] {
        let set = definition(dir.path(), &base, "sheet-1", creds);
        assert_eq!(read_source(&set).await.unwrap().rows.len(), 6, "{creds}");
    }

    // 429 is retried (honouring Retry-After), then the answer is read.
    let set = definition(dir.path(), &base, "quota", "api_key_file = \"api.key\"");
    assert_eq!(read_source(&set).await.unwrap().rows.len(), 6);
    assert_eq!(fake.quota_calls.load(Ordering::SeqCst), 2);

    // 404 and 403 are errors that say what to do.
    let set = definition(dir.path(), &base, "missing", "api_key_file = \"api.key\"");
    let err = read_source(&set).await.unwrap_err().to_string();
    assert!(
        err.contains("404") && err.contains("check `spreadsheet_id`"),
        "{err}"
    );
    std::fs::write(dir.path().join("wrong.key"), "nope").unwrap();
    let set = definition(dir.path(), &base, "sheet-1", "api_key_file = \"wrong.key\"");
    let err = read_source(&set).await.unwrap_err().to_string();
    assert!(
        err.contains("403") && err.contains("PERMISSION_DENIED"),
        "{err}"
    );
    assert!(err.contains("share the spreadsheet"), "{err}");
    assert!(
        !err.contains("nope"),
        "the key never appears in messages: {err}"
    );

    // A missing variable is named.
    let set = definition(
        dir.path(),
        &base,
        "sheet-1",
        "api_key_env = \"KONDATE_TEST_UNSET_KEY\"",
    );
    let err = read_source(&set).await.unwrap_err().to_string();
    assert!(
        err.contains("KONDATE_TEST_UNSET_KEY, which is not set"),
        "{err}"
    );

    // An unreachable API: the message names what failed and never carries the key.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let set = definition(dir.path(), &closed, "sheet-1", "api_key_file = \"api.key\"");
    let err = read_source(&set).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach the Sheets API"), "{err}");
    assert!(!err.contains(API_KEY), "the key leaked: {err}");

    // Nor does `{:?}` of the credentials.
    let shown = format!(
        "{:?} {:?}",
        sheets::Credentials::ApiKey(API_KEY.into()),
        sheets::Credentials::ServiceAccount(key.clone())
    );
    assert!(!shown.contains(API_KEY), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
