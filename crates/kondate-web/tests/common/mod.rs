//! A real kondate server on a loopback port, over a temporary project on the embedded
//! defaults, with a small table of awkward values loaded.

#![allow(dead_code)]

pub mod idp;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use kondate_core::{Clock, Config, ManualClock};
use kondate_query::Opened;
use kondate_warehouse::{LoadOptions, TableName};
use kondate_web::{AppState, Metrics};
use serde_json::Value;

pub struct TestServer {
    pub url: String,
    pub token: String,
    pub secret: String,
    pub opened: Opened,
    pub access: kondate_access::Access,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The rows of `t.items`: id, name, note (with quotes, commas, backslashes, newlines,
/// Japanese and an empty value), price, in_stock, day.
pub const ITEMS_CSV: &str = "id,name,note,price,in_stock,day\n\
1,醤油,\"濃口, 1L\",398.5,true,2024-01-02\n\
2,みりん,\"say \"\"hi\"\"\",250.0,false,2024-02-03\n\
3,back\\slash,\"two\nlines\",,true,\n";

/// The user who owns the test tokens (an admin, so that any token can be made).
pub const TEST_USER: &str = "tester@example.com";

/// The test token's scopes: every area but admin.
/// The console's local sign-in code of the test server.
pub const LOCAL_SIGNIN_CODE: &str = "0123456789abcdef0123456789abcdef";

pub const TESTER_SCOPES: &[&str] = &[
    "query",
    "labels:read",
    "labels:sync",
    "models:read",
    "models:write",
    "models:alias",
    "models:delete",
    "results:write",
    "results:prune",
    "runs:read",
    "runs:launch",
];

/// A token named `name` with `scopes`, owned by the test user: (name, secret).
pub async fn make_token(
    access: &kondate_access::Access,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    let t = access
        .tokens
        .create(kondate_access::NewTokenRequest {
            name: name.to_string(),
            owner: TEST_USER.to_string(),
            scopes: kondate_access::Scopes::new(
                scopes
                    .iter()
                    .map(|s| kondate_access::Scope::parse(s).unwrap())
                    .collect(),
            ),
            expires_in: None,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    (t.name, t.secret)
}

/// The server's state for a project in `dir` with `config`, on what `opened` opened.
pub async fn app_state(
    config: &Config,
    dir: &std::path::Path,
    opened: &Opened,
    access: &kondate_access::Access,
) -> AppState {
    AppState::new(kondate_web::AppParts {
        service: opened.service.clone(),
        access: access.clone(),
        store: opened.store.clone(),
        allow_anonymous: config.query.allow_anonymous,
        metrics: Arc::new(Metrics::default()),
        labels: kondate_labels::Labels::open(config).await.unwrap(),
        models: kondate_models::Models::open(config).await.unwrap(),
        runs: kondate_apps::Runs::new(opened.db.clone(), opened.store.clone(), dir),
        results: kondate_results::Results::new(
            kondate_db::Database::connect(&config.service.url)
                .await
                .unwrap(),
            dir,
            Arc::new(kondate_core::SystemClock),
        ),
        project: kondate_core::Project {
            root: dir.to_path_buf(),
            config: config.clone(),
        },
        jobs: kondate_jobs::Scheduler::new(opened.db.clone()),
        executor: kondate_jobs::Executor::new(
            opened.db.clone(),
            opened.store.clone(),
            kondate_jobs::Scheduler::new(opened.db.clone()),
            None,
        ),
        catalog: kondate_catalog::Catalog::new(opened.db.clone()),
        catalog_search: Default::default(),
        after_write: None,
        local_signin: Some(LOCAL_SIGNIN_CODE.to_string()),
        oidc: config.console.oidc.as_ref().map(|o| {
            kondate_web::OidcProvider::new(o, &config.public_url()).expect("the OIDC provider")
        }),
    })
}

pub async fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    configure(&mut config);
    config.resolve_paths(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    config.server.public_url = Some(url.clone());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let opened = kondate_query::open_with_clock(&config, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let csv = dir.path().join("items.csv");
    std::fs::write(&csv, ITEMS_CSV).unwrap();
    opened
        .warehouse
        .load(
            &TableName::parse("t.items").unwrap(),
            &[csv],
            &LoadOptions::default(),
        )
        .await
        .unwrap();
    let access = kondate_access::Access::new(opened.db.clone(), clock.clone() as Arc<dyn Clock>);
    access
        .users
        .add(TEST_USER, &["admin".to_string()], &[], "test")
        .await
        .unwrap();
    let token = make_token(&access, "tester", TESTER_SCOPES).await;
    let state = app_state(&config, dir.path(), &opened, &access).await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kondate_web::serve(listener, state, async {
        let _ = rx.await;
    }));
    TestServer {
        url,
        token: token.0,
        secret: token.1,
        opened,
        access,
        clock,
        dir,
        http: reqwest::Client::new(),
        stop: Some(tx),
    }
}

/// A person signed in to the console: a session cookie, and no redirects followed.
pub struct ConsoleUser {
    pub url: String,
    pub cookie: String,
    pub http: reqwest::Client,
}

impl ConsoleUser {
    /// GET `path`: (status, body, Location).
    pub async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Self::read(r).await
    }

    /// POST the form `fields` to `path` (the page's CSRF token is the caller's to add).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        Self::read(r).await
    }

    async fn read(r: reqwest::Response) -> (u16, String, Option<String>) {
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        // Every page is well formed where a broken template shows first: its title is text.
        if let Some(at) = body.find("<title>") {
            let title = &body[at + 7..body[at..].find("</title>").map_or(at + 7, |e| at + e)];
            assert!(!title.contains('<'), "a page's title holds markup: {title}");
        }
        // …and no element id is used twice (a section rendered twice).
        let mut ids: Vec<&str> = body
            .split(" id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            panic!("the id `{}` is on a page twice:\n{body}", w[0]);
        }
        (status, body, location)
    }

    /// The CSRF token of the console's forms (from any signed-in page).
    pub async fn csrf(&self) -> String {
        let (status, html, _) = self.get("/").await;
        assert_eq!(status, 200, "{html}");
        csrf_of(&html)
    }
}

/// The `csrf` hidden field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[at..at + 32].to_string()
}

impl TestServer {
    /// A console session for `of` (as signing in would make).
    pub async fn console(&self, of: kondate_access::SessionOf) -> ConsoleUser {
        let new = self
            .access
            .sessions
            .create(of, Duration::from_secs(600))
            .await
            .unwrap();
        ConsoleUser {
            url: self.url.clone(),
            cookie: format!("kondate_session={}", new.secret),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// A console session of a new person with `roles`.
    pub async fn console_user(&self, email: &str, roles: &[&str]) -> ConsoleUser {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.access
            .users
            .add(email, &roles, &[], "test")
            .await
            .unwrap();
        self.console(kondate_access::SessionOf::User(email.into()))
            .await
    }

    /// Another token with `scopes`: (name, secret).
    pub async fn token_with(&self, name: &str, scopes: &[&str]) -> (String, String) {
        make_token(&self.access, name, scopes).await
    }

    /// POST a form-encoded submission with the test token.
    pub async fn submit(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/queries", self.url))
            .basic_auth(&self.token, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// GET a query with `fields` in the query string.
    pub async fn show(&self, id: i64, fields: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/v1/queries/{id}?fields={fields}", self.url))
            .basic_auth(&self.token, Some(&self.secret))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Poll until the query is final.
    pub async fn wait(&self, id: i64) -> Value {
        for _ in 0..600 {
            let (_, body) = self.show(id, "__default__,manifest_file_url").await;
            if body["status"] == "success" || body["status"] == "failed" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("query {id} did not finish");
    }

    /// Submit and wait.
    pub async fn run(&self, sql: &str) -> Value {
        let (status, body) = self
            .submit(&[("q", sql), ("enable_metadata", "true")])
            .await;
        assert_eq!(status, 201, "{body}");
        self.wait(body["id"].as_i64().unwrap()).await
    }

    /// Number of queries recorded in the state database.
    pub async fn query_count(&self) -> i64 {
        let rows = self
            .opened
            .db
            .fetch_all("SELECT count(*) AS n FROM kondate_queries", &[])
            .await
            .unwrap();
        kondate_db::get_i64(&rows[0], "n").unwrap()
    }
}

/// Download a URL without credentials as JSON (a manifest).
pub async fn fetch_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Download a URL without credentials and gunzip it.
pub async fn fetch_gz(url: &str) -> String {
    let bytes = reqwest::get(url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// A documented path with sample values in its parameters.
pub fn concrete_path(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{key}", "queries/x")
        .replace("{name}", "recipe-x")
        .replace("{alias}", "production")
        .replace("{selector}", "1")
        .replace("{revision}", "1")
        .replace(
            "{digest}",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
}
