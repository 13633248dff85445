//! Access control over HTTP: every route is documented with the scope it needs, every
//! scoped route refuses a token without it (403 naming the scope, recorded in the audit
//! trail), names narrow scopes, changes are audited, and refusals are rate-limited.

mod common;

use common::{concrete_path, start};
use reqwest::Method;
use serde_json::Value;

async fn call(
    s: &common::TestServer,
    method: &str,
    path: &str,
    creds: (&str, &str),
    body: Option<Value>,
) -> (u16, Value) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.url))
        .basic_auth(creds.0, Some(creds.1));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn spec(s: &common::TestServer) -> Value {
    reqwest::get(format!("{}/v1/openapi.json", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_document_describes_every_route_with_its_scope_and_nothing_else() {
    let s = start(|_| {}).await;
    let doc = spec(&s).await;
    let mut served: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    served.sort();
    // Every route the router serves has written prose, and no prose is left without a route.
    assert_eq!(served, kondate_web::written_operations());
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                !op["summary"]
                    .as_str()
                    .unwrap()
                    .contains("not yet described"),
                "{method} {path}"
            );
            let public = [
                "/healthz",
                "/readyz",
                "/metrics",
                "/v1/openapi.json",
                "/v1/objects/{key}",
            ];
            if public.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{method} {path} is public");
            } else {
                let scope = op["x-kondate-scope"]["scope"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no scope in the document"));
                assert!(
                    op["summary"].as_str().unwrap().contains(scope),
                    "{method} {path}: the summary names the scope"
                );
                assert!(op["responses"]["403"].is_object(), "{method} {path}");
            }
        }
    }
    // The models and blobs routes are there (they were missing before).
    assert!(doc["paths"]["/v1/models/{name}/aliases/{alias}"]["put"].is_object());
    assert!(doc["paths"]["/v1/blobs/{digest}"]["put"].is_object());
    assert_eq!(
        doc["paths"]["/v1/models/{name}/aliases/{alias}"]["put"]["x-kondate-scope"]["scope"],
        "models:alias"
    );
    assert_eq!(
        doc["paths"]["/v1/blobs/gc"]["post"]["x-kondate-audited-as"],
        "models.gc"
    );
}

#[tokio::test]
async fn every_scoped_route_refuses_a_token_without_its_scope_naming_it() {
    let s = start(|_| {}).await;
    let doc = spec(&s).await;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(scope) = op["x-kondate-scope"]["scope"].as_str() else {
                continue;
            };
            // A token holding every scope a non-admin can hold except this one.
            let others: Vec<&str> = common::TESTER_SCOPES
                .iter()
                .copied()
                .chain(["catalog:edit", "jobs:read", "jobs:launch", "jobs:operate"])
                .filter(|k| *k != scope)
                .collect();
            let name = format!("no-{}-{checked}", scope.replace(':', "-"));
            let (token, secret) = s.token_with(&name, &others).await;
            let (status, body) = call(
                &s,
                method,
                &concrete_path(path),
                (&token, &secret),
                Some(serde_json::json!({})),
            )
            .await;
            assert_eq!(status, 403, "{method} {path} without {scope}: {body}");
            assert_eq!(body["error_code"], "forbidden", "{method} {path}");
            let message = body["error"].as_str().unwrap();
            assert!(
                message.contains(scope),
                "{method} {path}: the refusal names `{scope}`: {message}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} scoped routes");
    // Each refusal is in the audit trail, as denied, with the route.
    let denied = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            outcome: Some(kondate_access::Outcome::Denied),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), checked);
    assert!(denied.iter().all(|r| r.entry.status == Some(403)));
}

#[tokio::test]
async fn scopes_narrowed_to_names_allow_only_those_names() {
    let s = start(|_| {}).await;
    let (t, secret) = s
        .token_with(
            "recipe-pusher",
            &["models:read=recipe-*", "models:alias=recipe-a@staging"],
        )
        .await;
    // Reading a matching model gets past access (404: it does not exist), another is 403.
    let (status, _) = call(&s, "get", "/v1/models/recipe-a", (&t, &secret), None).await;
    assert_eq!(status, 404);
    let (status, body) = call(&s, "get", "/v1/models/ingredient", (&t, &secret), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("models:read=ingredient")
    );
    // The alias scope holds for that model and alias only.
    let v = Some(serde_json::json!({"version": 1}));
    let (status, _) = call(
        &s,
        "put",
        "/v1/models/recipe-a/aliases/staging",
        (&t, &secret),
        v.clone(),
    )
    .await;
    assert_eq!(status, 404, "allowed through; the model does not exist");
    let (status, body) = call(
        &s,
        "put",
        "/v1/models/recipe-a/aliases/production",
        (&t, &secret),
        v,
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("models:alias=recipe-a@production")
    );
    // The listing shows only what the token may read.
    let (status, body) = call(&s, "get", "/v1/models", (&t, &secret), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["models"], serde_json::json!([]));
}

#[tokio::test]
async fn changes_are_audited_and_the_trail_is_for_admins() {
    let s = start(|_| {}).await;
    // A change that fails (no such model) is recorded with its outcome.
    let creds = (s.token.as_str(), s.secret.as_str());
    let (status, _) = call(
        &s,
        "put",
        "/v1/models/recipe-a/aliases/production",
        creds,
        Some(serde_json::json!({"version": 3})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(&s, "post", "/v1/blobs/gc", creds, None).await;
    assert_eq!(status, 200, "{body}");
    // The test token is not admin: the trail is refused.
    let (status, body) = call(&s, "get", "/v1/audit", creds, None).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("admin"));
    let (admin, secret) = s.token_with("auditor", &["admin"]).await;
    let (status, body) = call(
        &s,
        "get",
        "/v1/audit?actor=token:tester",
        (&admin, &secret),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["GET /v1/audit", "models.gc", "models.alias.set"],
        "newest first, the refused read too"
    );
    assert_eq!(records[0]["outcome"], "denied");
    let alias = &records[2];
    assert_eq!(alias["target"], "recipe-a@production");
    assert_eq!(alias["outcome"], "invalid");
    assert_eq!(alias["status"], 404);
    assert_eq!(alias["source"], "api");
    assert_eq!(alias["params"]["method"], "PUT");
    assert!(alias["detail"].as_str().unwrap().contains("recipe-a"));
    assert_eq!(records[1]["outcome"], "ok");
    assert_eq!(records[1]["params"]["apply"], false);
    // Filters are checked.
    let (status, _) = call(
        &s,
        "get",
        "/v1/audit?since=yesterday-ish",
        (&admin, &secret),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn failed_sign_ins_are_refused_before_hashing_once_over_the_limit_and_recorded_once_per_minute()
 {
    let s = start(|_| {}).await;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let (status, _) = call(&s, "get", "/v1/models", (&s.token, "wrong-secret"), None).await;
        statuses.push(status);
    }
    assert!(statuses[..20].iter().all(|&st| st == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|&st| st == 429), "{statuses:?}");
    // Even the right secret waits out the window from this address: the limit is per
    // client and per token name, and says how long to wait.
    let r = s
        .http
        .get(format!("{}/v1/models", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    // A secret verified before the flood would pass from the cache; this one never was.
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let recorded = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            outcome: Some(kondate_access::Outcome::Unauthorized),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recorded.len(),
        kondate_access::REFUSALS_PER_KEY as usize,
        "refusals are recorded at most {} per client and actor per minute",
        kondate_access::REFUSALS_PER_KEY
    );
    assert!(
        recorded
            .iter()
            .all(|r| r.entry.actor == format!("token:{}", s.token))
    );
}

#[tokio::test]
async fn anonymous_callers_see_only_anonymous_queries() {
    let s = start(|c| c.query.allow_anonymous = true).await;
    let mine = s.run("SELECT 1 AS x").await;
    let r = s
        .http
        .get(format!("{}/v1/queries/{}", s.url, mine["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "an anonymous caller must not see a token's query"
    );
    let r = s
        .http
        .post(format!("{}/v1/queries", s.url))
        .form(&[("q", "SELECT 2 AS y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let anon: Value = r.json().await.unwrap();
    let r = s
        .http
        .get(format!("{}/v1/queries/{}", s.url, anon["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = s.show(anon["id"].as_i64().unwrap(), "__default__").await;
    assert_eq!(status, 404, "a token does not see anonymous queries either");
    // Anonymous callers may query, nothing else.
    let r = s
        .http
        .get(format!("{}/v1/models", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn requests_for_another_host_name_are_refused() {
    let s = start(|_| {}).await;
    let port = s.url.rsplit(':').next().unwrap().to_string();
    for (host, want) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("rebind.evil.example:{port}"), 421),
    ] {
        let r = s
            .http
            .get(format!("{}/healthz", s.url))
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "Host: {host}");
        if want == 421 {
            let body: Value = r.json().await.unwrap();
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("server.allowed_hosts")
            );
        }
    }
}

#[tokio::test]
async fn anonymous_mode_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = kondate_core::Config::default();
    config.resolve_paths(dir.path());
    config.query.allow_anonymous = true;
    let opened = kondate_query::open(&config).await.unwrap();
    let access = kondate_access::Access::new(
        opened.db.clone(),
        std::sync::Arc::new(kondate_core::SystemClock),
    );
    let state = common::app_state(&config, dir.path(), &opened, &access).await;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let e = kondate_web::serve(listener, state, async {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}
