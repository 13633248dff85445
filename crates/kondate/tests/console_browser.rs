//! The web console in real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` over the W3C WebDriver protocol), on the demo's data: `kondate demo
//! --serve` with sign-in through a local OpenID Connect provider. An editor signs in
//! through the provider, launches a job that fails, reads its log, retries it and sees it
//! succeed, moves a model alias, and edits a table's description and sees it in the
//! history; every section's pages open; a viewer sees no edit, retry or move and is
//! refused (403) when posting the form anyway. Screenshots of the main pages at 1280 px and
//! at phone width are written to `$CARGO_TARGET_DIR/console-screenshots` (or
//! `KONDATE_SCREENSHOTS`) for a reviewer.
//!
//! Ignored by default (it needs Chromium and ChromeDriver): `.ci/run` installs them and runs
//! it with the other ignored tests.

mod common;
// Shared with kondate-web's tests, which use every kind of token it can mint.
#[allow(dead_code)]
#[path = "../../kondate-web/tests/common/idp.rs"]
mod idp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest wait for anything to appear.
const PATIENCE: Duration = Duration::from_secs(60);

/// A WebDriver session. (A client of the few W3C WebDriver commands used here, written
/// over reqwest rather than taken from a WebDriver crate, which would bring a second HTTP
/// stack into the test build for a dozen JSON requests.)
struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Browser {
    async fn open(driver: &str) -> Browser {
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("KONDATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"],
            },
        }}});
        let r: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Browser {
            http,
            session,
            base: driver.to_string(),
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rb = self.http.request(method, url);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r: Value = rb.send().await.unwrap().json().await.unwrap();
        if r["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let r: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["value"][ELEMENT].as_str().map(str::to_string)
    }

    async fn exists(&self, css: &str) -> bool {
        self.try_find(css).await.is_some()
    }

    /// The element `css` selects, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "no `{css}` on {} after {PATIENCE:?}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn clear_and_type(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the page's source holds `needle` (the page updates itself: the live log,
    /// the reload when an instance ends).
    async fn wait_for_text(&self, needle: &str) {
        let start = Instant::now();
        while !self.source().await.contains(needle) {
            if start.elapsed() > PATIENCE {
                panic!(
                    "`{needle}` did not appear on {} within {PATIENCE:?}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn set_size(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn screenshot(&self, path: &Path) {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `NAME-1280.png` and `NAME-390.png` (a phone's width) of the page in `dir`.
    async fn screenshots(&self, dir: &Path, name: &str) {
        for (width, height) in [(1280, 900), (390, 844)] {
            self.set_size(width, height).await;
            self.screenshot(&dir.join(format!("{name}-{width}.png")))
                .await;
        }
        self.set_size(1280, 900).await;
    }

    async fn cookie(&self, name: &str) -> Option<String> {
        let all = self.cmd(reqwest::Method::GET, "/cookie", None).await;
        all.as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["value"].as_str().unwrap_or_default().to_string())
    }

    async fn sign_out_everywhere(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", None).await;
    }

    async fn close(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kondate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kondate"))
}

fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("KONDATE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("console-screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The console's page at `path` opens without an error page and shows `expect`.
async fn opens(b: &Browser, base: &str, path: &str, expect: &str) {
    b.goto(&format!("{base}{path}")).await;
    let html = b.source().await;
    for bad in [
        "Something went wrong",
        "<h1>Not allowed",
        "<h1>Not found",
        "<h1>Not in the catalog",
    ] {
        assert!(!html.contains(bad), "{path}: {bad}\n{html}");
    }
    assert!(html.contains(expect), "{path} lacks `{expect}`:\n{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (Debian's chromium, chromium-driver): .ci/run installs them"]
async fn the_console_in_chromium_on_the_demos_data() {
    let idp = idp::start().await;
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("demo");
    let status = kondate().arg("init").arg(&project).status().unwrap();
    assert!(status.success());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    std::fs::write(project.join("oidc-secret"), idp::CLIENT_SECRET).unwrap();
    let mut config = std::fs::read_to_string(project.join("kondate.toml")).unwrap();
    // The template has a [server] table: its keys are set there.
    config = config.replacen(
        "[server]\n",
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n"),
        1,
    );
    config.push_str(&format!(
        "\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"oidc-secret\"\n\
         allowed_domains = [\"example.com\"]\ndefault_role = \"viewer\"\nname = \"Example SSO\"\n",
        idp.issuer,
        idp::CLIENT_ID
    ));
    std::fs::write(project.join("kondate.toml"), &config).unwrap();
    // A job that fails the first time and succeeds when retried.
    std::fs::write(
        project.join("jobs/flaky.jsonnet"),
        "{ description: 'Fails once, then recovers', owners: ['ml@example.com'],\n  \
         script: 'execute: if [ -f flaky.marker ]; then echo recovered; else touch flaky.marker; echo first run fails; exit 3; fi\\n' }\n",
    )
    .unwrap();
    let added = kondate()
        .current_dir(&project)
        .args(["users", "add", "ml@example.com", "--role", "editor"])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    // The demo, served on its data (the README's first command, with --serve).
    let mut demo = common::Killed(
        kondate()
            .arg("demo")
            .arg(&project)
            .arg("--serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(demo.0.stdout.take().unwrap());
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            println!("demo: {line}");
            let _ = lines_tx.send(line);
        }
    });
    let mut banner = String::new();
    let started = Instant::now();
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(900).saturating_sub(started.elapsed()))
            .expect("the demo did not start serving");
        if line.starts_with("console: ") {
            banner = line.clone();
        }
        if line.starts_with("Serving") {
            break;
        }
    }
    assert!(
        banner.contains(&format!("console: {base}/"))
            && banner.contains("sign in with Example SSO"),
        "the demo prints the console's address and how to sign in: {banner}"
    );
    let local_signin = banner
        .split_whitespace()
        .find(|w| w.contains("/signin/local?code="))
        .expect("the local sign-in link")
        .to_string();

    // ChromeDriver, and a browser.
    let driver_port = free_port();
    let _driver = common::Killed(
        Command::new(
            std::env::var("KONDATE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
        )
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver)"),
    );
    let driver = format!("http://127.0.0.1:{driver_port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(format!("{driver}/status")).send().await.is_err() {
        assert!(start.elapsed() < PATIENCE, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Browser::open(&driver).await;

    // An editor signs in through the provider and lands on the page they asked for.
    idp.next("ml@example.com", Some("example.com"), idp::Mint::Good);
    b.goto(&format!("{base}/jobs/flaky")).await;
    b.find("a[href^=\"/signin/oidc\"]").await;
    assert!(b.url().await.contains("/signin?next="), "{}", b.url().await);
    b.click("a[href^=\"/signin/oidc\"]").await;
    b.wait_for_text("Fails once, then recovers").await;
    assert!(b.url().await.ends_with("/jobs/flaky"), "{}", b.url().await);
    assert!(b.source().await.contains("user:ml@example.com"));

    // Launch the failing job; its instance's page follows the log and shows the failure.
    b.click("a[href=\"/jobs/flaky/launch\"]").await;
    b.clear_and_type("#env", "REASON=browser-test").await;
    b.click("button.primary").await;
    b.find("#log").await;
    let instance_url = b.url().await;
    assert!(instance_url.contains("/instances/"), "{instance_url}");
    b.wait_for_text("badge status-error").await;
    assert!(b.text("#log").await.contains("first run fails"));
    // Retry, confirmed; the instance succeeds.
    b.click("a[href$=\"/retry\"]").await;
    b.wait_for_text("Retry instance").await;
    b.click("button.primary").await;
    b.wait_for_text("badge status-success").await;
    assert!(b.text("#log").await.contains("recovered"));
    assert!(!b.exists("a[href$=\"/retry\"]").await);

    // Move a model alias (the demo trained recipe-category).
    b.goto(&format!("{base}/models/recipe-category")).await;
    b.click("a[href=\"/models/recipe-category/aliases\"]").await;
    b.clear_and_type("#alias", "staging").await;
    b.click("button.primary").await;
    b.wait_for_text("Move recipe-category@staging to version")
        .await;
    b.click("button.primary").await;
    b.wait_for_text("<strong>staging</strong>").await;
    assert!(b.url().await.ends_with("/models/recipe-category"));
    assert!(b.source().await.contains("<polyline"), "the metrics' chart");

    // Edit a table's description, with a preview, and see it in the history.
    b.goto(&format!("{base}/catalog?q=recipes")).await;
    b.click("ul.hits a[href^=\"/catalog/table/\"]").await;
    let table_url = b.url().await;
    b.click("a[href^=\"/catalog-edit/\"]").await;
    b.clear_and_type("#body", "Edited in the **browser**.")
        .await;
    b.click("button[value=\"preview\"]").await;
    b.wait_for_text("<strong>browser</strong>").await;
    b.click("button[value=\"save\"]").await;
    b.wait_for_text("Description history").await;
    assert_eq!(b.url().await, table_url);
    assert!(b.source().await.contains("by user:ml@example.com"));

    // Every section's pages open on the demo's data; screenshots at both widths.
    let shots = screenshots_dir();
    let instance_path = instance_url.trim_start_matches(&base).to_string();
    let table_path = table_url.trim_start_matches(&base).to_string();
    let pages: Vec<(&str, String, &str)> = vec![
        ("home", "/".into(), "Running and failed job instances"),
        ("jobs", "/jobs".into(), "weekly_training"),
        ("job", "/jobs/weekly_training".into(), "Script"),
        ("instance", instance_path.clone(), "recovered"),
        ("apps", "/apps".into(), "train"),
        ("runs", "/runs".into(), "succeeded"),
        ("labels", "/labels".into(), "recipe_category"),
        ("label-set", "/labels/recipe_category".into(), "Revisions"),
        (
            "label-revision",
            "/labels/recipe_category/revisions/1".into(),
            "added",
        ),
        ("models", "/models".into(), "recipe-category"),
        (
            "model",
            "/models/recipe-category".into(),
            "Metrics over versions",
        ),
        (
            "model-version",
            "/models/recipe-category/versions/production".into(),
            "Trained on labels",
        ),
        ("queries", "/queries".into(), "Queries"),
        ("catalog", "/catalog".into(), "Sources"),
        (
            "catalog-source",
            "/catalog/source/warehouse".into(),
            "recipes",
        ),
        ("catalog-table", table_path.clone(), "Columns"),
        (
            "catalog-result-table",
            "/catalog/table/service/main/recipe_categories".into(),
            "Its lineage",
        ),
        (
            "lineage",
            "/catalog-lineage?name=service.main.recipe_categories".into(),
            "<svg",
        ),
    ];
    for (name, path, expect) in &pages {
        opens(&b, &base, path, expect).await;
        b.screenshots(&shots, name).await;
    }
    // A run's page, from the list.
    b.goto(&format!("{base}/runs")).await;
    b.click("a[href^=\"/runs/\"]").await;
    b.find("#log").await;

    // The administrator (the local sign-in the demo printed): the Admin pages.
    b.sign_out_everywhere().await;
    b.goto(&local_signin).await;
    for (name, path, expect) in [
        ("admin-users", "/admin/users", "ml@example.com"),
        ("admin-tokens", "/admin/tokens", "demo"),
        ("admin-audit", "/admin/audit", "models.alias.set"),
    ] {
        opens(&b, &base, path, expect).await;
        b.screenshots(&shots, name).await;
    }

    // A viewer (a new person of the domain: the default role) sees no retry, move or edit…
    b.sign_out_everywhere().await;
    idp.next("vera@example.com", Some("example.com"), idp::Mint::Good);
    b.goto(&format!("{base}/signin")).await;
    b.click("a[href^=\"/signin/oidc\"]").await;
    b.wait_for_text("user:vera@example.com").await;
    b.goto(&instance_url).await;
    b.wait_for_text("recovered").await;
    assert!(!b.exists("a[href$=\"/retry\"]").await);
    b.goto(&format!("{base}/models/recipe-category")).await;
    b.find("h1").await;
    assert!(
        !b.exists("a[href^=\"/models/recipe-category/aliases\"]")
            .await
    );
    b.goto(&table_url).await;
    b.find("h1").await;
    assert!(!b.exists("a[href^=\"/catalog-edit/\"]").await);
    assert!(!b.source().await.contains("href=\"/admin\""));
    // …and posting the retry form anyway, with their own session and CSRF token, is 403.
    let session = b.cookie("kondate_session").await.expect("signed in");
    let html = b.source().await;
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[at..at + 32];
    let r = http
        .post(format!("{instance_url}/retry"))
        .header("cookie", format!("kondate_session={session}"))
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/models/recipe-category/aliases"))
        .header("cookie", format!("kondate_session={session}"))
        .form(&[("csrf", csrf), ("alias", "production"), ("version", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.close().await;

    // Recorded: the refusals, as console actions of the viewer.
    let audit = kondate()
        .current_dir(&project)
        .args([
            "audit",
            "--actor",
            "user:vera@example.com",
            "--outcome",
            "denied",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("jobs.retry") && text.contains("models.alias.set"),
        "{text}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    println!("screenshots: {}", shots.display());
    drop(demo);
}
