//! The web console over HTTP: the local administrator's sign-in (only with this server's
//! code, only on a loopback server), the session cookie's attributes, the security headers,
//! escaping, the CSRF check on sign-out, and a session that ends.

mod common;

use kondate_core::SystemClock;
use reqwest::redirect::Policy;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// `GET /signin/local?code=` on `url`.
async fn sign_in(http: &reqwest::Client, url: &str, code: &str) -> reqwest::Response {
    http.get(format!("{url}/signin/local?code={code}"))
        .send()
        .await
        .unwrap()
}

use common::csrf_of;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sign_in_session_and_sign_out() {
    let s = common::start(|c| c.project.name = "<script>alert(1)</script>".into()).await;
    let http = client();

    // Not signed in: the home page sends to the sign-in page, which explains the local sign-in.
    let r = http.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/signin");
    let r = http.get(format!("{}/signin", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains("Local sign-in"), "{html}");
    assert!(
        !html.contains("<script>"),
        "no inline script, the project's name escaped: {html}"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(
        html.contains(r#"<script src="/static/console.js" defer></script>"#),
        "{html}"
    );
    // The one script is the server's own, and the CSP allows only that.
    let r = http
        .get(format!("{}/static/console.js", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(r.text().await.unwrap().contains("time[datetime]"));

    // A wrong code is refused, and recorded.
    let r = sign_in(&http, &s.url, "nope").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("not this server"));
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("console.signin".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");

    // The code signs in: an HttpOnly, SameSite cookie (not Secure over plain HTTP).
    let r = sign_in(&http, &s.url, common::LOCAL_SIGNIN_CODE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("kondate_session=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Lax")
            && set.contains("Path=/")
            && !set.contains("Secure"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let home = |cookie: String| {
        let rb = http.get(format!("{}/", s.url));
        async move { rb.header("cookie", cookie).send().await.unwrap() }
    };
    let r = home(cookie.clone()).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Running and failed job instances") && html.contains("cli:local-admin"),
        "{html}"
    );
    let csrf = csrf_of(&html);

    // A table's page: its description rendered, hostile Markdown sanitised.
    let catalog = kondate_catalog::Catalog::new(s.opened.db.clone());
    catalog
        .sync(
            "warehouse",
            kondate_catalog::import_warehouse(
                "warehouse",
                s.opened.warehouse.as_ref(),
                &kondate_catalog::Filter::default(),
            ),
        )
        .await
        .unwrap();
    let items = kondate_catalog::Target::Table {
        source: "warehouse".into(),
        schema: "t".into(),
        table: "items".into(),
    };
    catalog
        .describe(
            &items,
            "**Items** for sale <script>alert(1)</script>",
            None,
            "test",
            None,
        )
        .await
        .unwrap();
    let r = http
        .get(format!("{}/catalog/{}", s.url, items.key()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<strong>Items</strong>") && html.contains("price"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    let r = http
        .get(format!("{}/catalog/table/warehouse/t/nope", s.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Signing out needs the session's CSRF token.
    let r = http
        .post(format!("{}/signout", s.url))
        .header("cookie", &cookie)
        .form(&[("csrf", "0".repeat(32).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(home(cookie.clone()).await.status(), 200, "still signed in");
    let r = http
        .post(format!("{}/signout", s.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The session is over: its cookie no longer signs anyone in.
    let r = home(cookie).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/signin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sign_in_is_off_unless_the_server_listens_on_loopback() {
    let s = common::start(|c| c.server.listen = "0.0.0.0:7878".into()).await;
    let http = client();
    let r = sign_in(&http, &s.url, common::LOCAL_SIGNIN_CODE).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("loopback"), "{html}");
    let html = http
        .get(format!("{}/signin", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Local sign-in is off"), "{html}");
}

/// The jobs pages: the list and a job's page for a viewer who may read jobs; for one who
/// may not, no Jobs link and a 403 on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pages_follow_the_viewers_scopes() {
    let s = common::start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("jobs")).unwrap();
    std::fs::write(
        root.join("jobs/nightly_train.jsonnet"),
        "{ description: 'Train <every> night', script: 'noop:\\n', \
         schedules: [{ cron: '0 3 * * *', time_zone: 'Asia/Tokyo' }], tags: ['ml'] }\n",
    )
    .unwrap();
    let mut config = kondate_core::Config::default();
    config.resolve_paths(root);
    let loaded: Vec<kondate_jobs::Loaded> = kondate_jobs::definition::load_project(root, &config)
        .unwrap()
        .into_iter()
        .map(|(_, d)| kondate_jobs::Loaded::Ok(Box::new(d.unwrap())))
        .collect();
    kondate_jobs::Scheduler::new(s.opened.db.clone())
        .load(&loaded, chrono::Utc::now())
        .await
        .unwrap();

    let http = client();
    let signed_in = |of: kondate_access::SessionOf| {
        let sessions = s.access.sessions.clone();
        async move {
            let new = sessions
                .create(of, std::time::Duration::from_secs(600))
                .await
                .unwrap();
            format!("kondate_session={}", new.secret)
        }
    };
    let get = |path: &str, cookie: &str| {
        let rb = http
            .get(format!("{}{path}", s.url))
            .header("cookie", cookie.to_string());
        async move {
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };

    let admin = signed_in(kondate_access::SessionOf::Local("local-admin".into())).await;
    let (status, html) = get("/jobs", &admin).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/jobs/nightly_train\"")
            && html.contains("0 3 * * * (Asia/Tokyo)")
            && html.contains("catalog_nightly"),
        "{html}"
    );
    let (status, html) = get("/jobs/nightly_train", &admin).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Train &lt;every&gt; night") && html.contains("noop:"),
        "{html}"
    );
    let (status, _) = get("/jobs/nope", &admin).await;
    assert_eq!(status, 404);

    // A person who may query but not read jobs: no Jobs link, and the page refused.
    s.access
        .users
        .add("q@example.com", &[], &["query".to_string()], "test")
        .await
        .unwrap();
    let reader = signed_in(kondate_access::SessionOf::User("q@example.com".into())).await;
    let (status, html) = get("/", &reader).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("href=\"/jobs\""), "{html}");
    assert!(html.contains("user:q@example.com"), "{html}");
    let (status, _) = get("/jobs/nightly_train", &reader).await;
    assert_eq!(status, 403);
    let (status, html) = get("/jobs", &reader).await;
    assert_eq!(status, 200);
    assert!(!html.contains("nightly_train"), "{html}");
}

/// A failing job's instance in the console: launched with variables, its log read, retried
/// by an administrator after a confirmation, seen succeeding; a viewer sees no action and
/// is refused (403, recorded) when posting the form anyway; the live log's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_read_retried_and_refused_to_a_viewer() {
    use kondate_jobs::{Executor, Loaded, Scheduler, WorkerConfig};
    let s = common::start(|_| {}).await;
    let scheduler = Scheduler::new(s.opened.db.clone());
    let def = kondate_jobs::definition::from_json(
        "jobs/flaky.jsonnet",
        "flaky",
        serde_json::json!({
            "script": "execute: if [ -f marker ]; then echo fine $A; else touch marker; echo broken; exit 3; fi\n",
            "owners": ["owner@example.com"],
        }),
    )
    .unwrap();
    scheduler
        .load(&[Loaded::Ok(Box::new(def))], chrono::Utc::now())
        .await
        .unwrap();
    let executor = Executor::new(
        s.opened.db.clone(),
        s.opened.store.clone(),
        scheduler.clone(),
        None,
    );
    let cfg = WorkerConfig {
        worker: "test-worker".into(),
        queues: vec!["default".into()],
        cwd: s.dir.path().to_path_buf(),
        spool: s.dir.path().join("spool"),
        protect: None,
        base_env: std::env::vars().collect(),
        grace: std::time::Duration::from_millis(200),
        recheck: std::time::Duration::from_millis(200),
    };
    let admin = s
        .console(kondate_access::SessionOf::Local("local-admin".into()))
        .await;
    let csrf = admin.csrf().await;

    // Launch with variables: a bad line is refused with where it is; a good form launches.
    let (status, html, _) = admin.get("/jobs/flaky").await;
    assert_eq!(status, 200);
    assert!(html.contains("href=\"/jobs/flaky/launch\""), "{html}");
    let (status, html, _) = admin.get("/jobs/flaky/launch").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"env\""), "{html}");
    let (status, html, _) = admin
        .post(
            "/jobs/flaky/launch",
            &[("csrf", &csrf), ("env", "A=1\nnot a pair")],
        )
        .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("line 2"), "{html}");
    let (status, _, location) = admin
        .post("/jobs/flaky/launch", &[("csrf", &csrf), ("env", "A=ok")])
        .await;
    assert_eq!(status, 303);
    let at = location.unwrap();
    let id: i64 = at.strip_prefix("/instances/").unwrap().parse().unwrap();
    // While it runs, the home page lists it and refreshes itself.
    let (_, html, _) = admin.get("/").await;
    assert!(
        html.contains(&format!("href=\"/instances/{id}\"")) && html.contains("data-refresh=\"15\""),
        "{html}"
    );
    let (_, html, _) = admin.get(&at).await;
    assert!(
        html.contains(&format!("data-follow=\"/instances/{id}/log\"")),
        "followed live: {html}"
    );
    while executor.work_once(&cfg, &SystemClock).await.unwrap() {}

    // The failed instance: its status, its step, its log, and the actions.
    let (status, html, _) = admin.get(&at).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("status-error"), "{html}");
    assert!(html.contains("out broken"), "{html}");
    assert!(
        html.contains(&format!("href=\"/instances/{id}/retry\"")),
        "{html}"
    );
    assert!(
        !html.contains("data-follow"),
        "a finished instance is not followed: {html}"
    );

    // A viewer reads it, sees no action, and is refused when posting one anyway.
    let viewer = s.console_user("viewer@example.com", &["viewer"]).await;
    let (status, html, _) = viewer.get(&at).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("out broken"), "{html}");
    assert!(!html.contains("/retry\""), "{html}");
    assert_eq!(viewer.get(&format!("{at}/retry")).await.0, 403);
    let viewer_csrf = viewer.csrf().await;
    let (status, html, _) = viewer
        .post(&format!("{at}/retry"), &[("csrf", &viewer_csrf)])
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("jobs:operate"), "{html}");
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            actor: Some("user:viewer@example.com".into()),
            action: Some("jobs.retry".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].entry.outcome, kondate_access::Outcome::Denied);
    assert_eq!(refused[0].entry.source, kondate_access::Source::Console);
    // The job's owner may act without jobs:operate.
    let owner = s.console_user("owner@example.com", &["viewer"]).await;
    let (_, html, _) = owner.get(&at).await;
    assert!(
        html.contains(&format!("href=\"/instances/{id}/retry\"")),
        "{html}"
    );

    // The administrator confirms and retries (a foreign CSRF token is refused first).
    let (status, html, _) = admin.get(&format!("{at}/retry")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("action=\"/instances/{id}/retry\"")),
        "{html}"
    );
    let (status, _, _) = admin
        .post(&format!("{at}/retry"), &[("csrf", &viewer_csrf)])
        .await;
    assert_eq!(status, 403);
    let (status, _, location) = admin.post(&format!("{at}/retry"), &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some(at.as_str()));
    while executor.work_once(&cfg, &SystemClock).await.unwrap() {}
    let (_, html, _) = admin.get(&at).await;
    assert!(html.contains("status-success"), "{html}");
    assert!(
        html.contains("out fine ok"),
        "the launch's variable reached the step: {html}"
    );
    // Nothing more to do to a finished instance.
    assert!(!html.contains("/retry\""), "{html}");

    // The live log: the lines as events, then the end.
    let (status, events, _) = admin.get(&format!("{at}/log")).await;
    assert_eq!(status, 200);
    assert!(events.contains("event: line\ndata: L1 "), "{events}");
    assert!(events.contains("event: end\ndata: done"), "{events}");
}

/// Models in the console: versions with a chart of each metric, a version's lineage, and
/// moving an alias — confirmed, by an editor, seen through the API; a viewer sees no move
/// and is refused (403, recorded) when posting it anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_alias_is_moved_by_an_editor_and_refused_to_a_viewer() {
    let s = common::start(|_| {}).await;
    let c = kondate_client::Client::new(&s.url, Some((&s.token, &s.secret))).unwrap();
    let src = s.dir.path().join("model.bin");
    for (i, acc) in [0.71, 0.78, 0.83].into_iter().enumerate() {
        std::fs::write(&src, format!("weights {i}")).unwrap();
        let mut opts = kondate_client::models::PushOptions::default();
        opts.metrics.insert("accuracy".into(), acc);
        opts.params
            .insert("epochs".into(), format!("{}", 10 * (i + 1)));
        c.push_model("recipe-clf", &src, &opts).await.unwrap();
    }
    c.set_model_alias("recipe-clf", "production", 1)
        .await
        .unwrap();

    let viewer = s.console_user("viewer@example.com", &["viewer"]).await;
    let (status, html, _) = viewer.get("/models").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/models/recipe-clf\""), "{html}");
    let (status, html, _) = viewer.get("/models/recipe-clf").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<polyline points=\""), "a chart: {html}");
    assert!(html.contains("version 3: 0.83"), "{html}");
    assert!(html.contains("production"), "{html}");
    assert!(
        !html.contains("Move…"),
        "a viewer may not move aliases: {html}"
    );
    let (status, html, _) = viewer.get("/models/recipe-clf/versions/production").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("version 1") && html.contains("epochs"),
        "{html}"
    );
    assert_eq!(
        viewer
            .get("/models/recipe-clf/aliases?alias=production")
            .await
            .0,
        403
    );
    let csrf = viewer.csrf().await;
    let (status, html, _) = viewer
        .post(
            "/models/recipe-clf/aliases",
            &[("csrf", &csrf), ("alias", "production"), ("version", "3")],
        )
        .await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("models:alias"), "{html}");
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("models.alias.set".into()),
            outcome: Some(kondate_access::Outcome::Denied),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused[0].entry.target.as_deref(),
        Some("recipe-clf@production")
    );

    // An editor: the move link, the confirmation saying what changes, the move.
    let editor = s.console_user("editor@example.com", &["editor"]).await;
    let (_, html, _) = editor.get("/models/recipe-clf").await;
    assert!(html.contains("Move…"), "{html}");
    let (status, html, _) = editor
        .get("/models/recipe-clf/aliases?alias=production")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<option value=\"3\">"),
        "the versions to choose from: {html}"
    );
    let (status, html, _) = editor
        .get("/models/recipe-clf/aliases?alias=production&version=3")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("version 3 instead of version 1"), "{html}");
    let csrf = editor.csrf().await;
    let (status, html, location) = editor
        .post(
            "/models/recipe-clf/aliases",
            &[("csrf", &csrf), ("alias", "production"), ("version", "3")],
        )
        .await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(location.as_deref(), Some("/models/recipe-clf"));
    assert_eq!(
        c.resolve_model("recipe-clf@production")
            .await
            .unwrap()
            .version,
        3
    );
    let (_, html, _) = editor.get("/models/recipe-clf").await;
    assert!(
        html.contains("user:editor@example.com"),
        "the move's history: {html}"
    );
    // A version that does not exist is refused with the registry's message.
    let (status, html, _) = editor
        .post(
            "/models/recipe-clf/aliases",
            &[("csrf", &csrf), ("alias", "production"), ("version", "9")],
        )
        .await;
    assert_eq!(status, 404, "{html}");
}

/// Labels in the console: a set's revisions and what each changed, cell by cell; a person
/// without labels:read on the set is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_revision_shows_rows_added_changed_and_removed() {
    let s = common::start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    std::fs::write(
        root.join("labels/recipe_category.toml"),
        "table = \"recipe_category_labels\"\nkey = [\"recipe_id\"]\n[source]\ntype = \"csv\"\n\
         path = \"recipe_category.csv\"\n[columns]\nrecipe_id = { type = \"integer\", required = true }\n\
         category = { type = \"string\", required = true }\nnote = { type = \"string\" }\n",
    )
    .unwrap();
    let csv = root.join("recipe_category.csv");
    let sync = || async {
        let r = s
            .http
            .post(format!("{}/v1/labels/recipe_category/sync", s.url))
            .basic_auth(&s.token, Some(&s.secret))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    };
    std::fs::write(
        &csv,
        "recipe_id,category,note\n1,主菜,\n2,副菜,<b>x</b>\n3,汁物,old\n",
    )
    .unwrap();
    sync().await;
    std::fs::write(
        &csv,
        "recipe_id,category,note\n1,主菜,\n2,主菜,<b>x</b>\n4,デザート,new\n",
    )
    .unwrap();
    sync().await;

    let viewer = s.console_user("viewer@example.com", &["viewer"]).await;
    let (status, html, _) = viewer.get("/labels").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/labels/recipe_category\""), "{html}");
    let (status, html, _) = viewer.get("/labels/recipe_category").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("/labels/recipe_category/revisions/2\""),
        "{html}"
    );
    let (status, html, _) = viewer.get("/labels/recipe_category/revisions/2").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("1 added, 1 changed, 1 removed, 1 unchanged"),
        "{html}"
    );
    assert!(
        html.contains("<td>デザート</td>") && html.contains("<td>new</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"old\">副菜</td><td class=\"new\">主菜</td>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"removed\"><td>3</td></tr>"),
        "{html}"
    );
    // The first revision: everything added, compared with nothing; cells escaped.
    let (_, html, _) = viewer.get("/labels/recipe_category/revisions/1").await;
    assert!(html.contains("3 added, 0 changed, 0 removed"), "{html}");
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
    assert_eq!(
        viewer.get("/labels/recipe_category/revisions/9").await.0,
        404
    );

    let outsider = s
        .console_user("models@example.com", &["models=viewer"])
        .await;
    assert_eq!(outsider.get("/labels/recipe_category").await.0, 403);
    let (_, html, _) = outsider.get("/labels").await;
    assert!(!html.contains("recipe_category"), "{html}");
}

/// Apps and runs in the console: an app's expanded definition, its runs with status, and a
/// run's log; another app's run is refused to a person who may read only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_runs_show_definitions_status_and_logs() {
    let s = common::start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("apps")).unwrap();
    std::fs::write(
        root.join("apps/hello.jsonnet"),
        "{ app: { command: ['sh', '-c', 'echo hello <world>; exit 2'] } }",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/secret.jsonnet"),
        "{ app: { command: ['true'] } }",
    )
    .unwrap();
    std::fs::write(root.join("apps/broken.jsonnet"), "{ app: ").unwrap();
    let runs = kondate_apps::Runs::new(s.opened.db.clone(), s.opened.store.clone(), root);
    let run = |name: &str| {
        let req = kondate_apps::RunRequest {
            app: name.into(),
            actor: "test".into(),
            ..Default::default()
        };
        let runs = runs.clone();
        async move {
            let (_tx, rx) = tokio::sync::watch::channel(None);
            runs.run(&req, None, rx).await.unwrap()
        }
    };
    let hello = run("hello").await;
    let secret = run("secret").await;

    let admin = s
        .console(kondate_access::SessionOf::Local("local-admin".into()))
        .await;
    let (status, html, _) = admin.get("/apps").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/apps/hello\"") && html.contains("Does not load"),
        "{html}"
    );
    let (status, html, _) = admin.get("/apps/hello").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("echo hello &lt;world&gt;; exit 2"),
        "the expanded definition: {html}"
    );
    let (status, html, _) = admin.get("/runs").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("/runs/{}\"", hello.id)) && html.contains("failed"),
        "{html}"
    );
    let (status, html, _) = admin.get(&format!("/runs/{}", hello.id)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("hello &lt;world&gt;"), "the log: {html}");

    s.access
        .users
        .add(
            "hello@example.com",
            &[],
            &["runs:read=hello".to_string()],
            "test",
        )
        .await
        .unwrap();
    let one = s
        .console(kondate_access::SessionOf::User("hello@example.com".into()))
        .await;
    let (_, html, _) = one.get("/runs").await;
    assert!(
        html.contains(&hello.id) && !html.contains(&secret.id),
        "{html}"
    );
    assert_eq!(one.get(&format!("/runs/{}", secret.id)).await.0, 403);
    assert_eq!(one.get("/apps/secret").await.0, 403);
    assert_eq!(one.get("/runs/nope").await.0, 404);
}

/// Queries in the console: a person sees the queries of the tokens they own (with status,
/// rows and error), someone else none of them, an administrator all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_shown_to_their_tokens_owner_and_to_administrators() {
    let s = common::start(|_| {}).await;
    let ok = s.run("SELECT id FROM t.items").await;
    let failed = s.run("SELECT nope FROM t.items").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let (ok, failed) = (ok["id"].as_i64().unwrap(), failed["id"].as_i64().unwrap());

    // The test token's owner (the test user, here not an administrator).
    s.access
        .users
        .set(common::TEST_USER, &["viewer".to_string()], &[])
        .await
        .unwrap();
    let owner = s
        .console(kondate_access::SessionOf::User(common::TEST_USER.into()))
        .await;
    let (status, html, _) = owner.get("/queries").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("tokens you own"), "{html}");
    assert!(
        html.contains(&format!("/queries/{ok}\""))
            && html.contains(&format!("/queries/{failed}\"")),
        "{html}"
    );
    assert!(
        html.contains("status-failed") && html.contains("nope"),
        "{html}"
    );
    let (_, html, _) = owner.get("/").await;
    assert!(
        html.contains(&format!("href=\"/queries/{failed}\""))
            && !html.contains(&format!("href=\"/queries/{ok}\"")),
        "the home page lists failed queries: {html}"
    );
    let (status, html, _) = owner.get(&format!("/queries/{ok}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("SELECT id FROM t.items"), "{html}");

    let other = s.console_user("other@example.com", &["viewer"]).await;
    let (_, html, _) = other.get("/queries").await;
    assert!(!html.contains(&format!("/queries/{ok}\"")), "{html}");
    assert_eq!(other.get(&format!("/queries/{ok}")).await.0, 404);

    let admin = s
        .console(kondate_access::SessionOf::Local("local-admin".into()))
        .await;
    let (_, html, _) = admin.get("/queries").await;
    assert!(
        html.contains(&format!("/queries/{ok}\"")) && html.contains("Every token"),
        "{html}"
    );
}

/// The catalog in the console: browse source → schema → table → column, search, preview
/// and save a description (seen in the history), a stale edit refused with what changed,
/// favourites; a viewer has no edit link and is refused (403, recorded) when posting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_description_is_edited_with_preview_and_history() {
    let s = common::start(|_| {}).await;
    let catalog = kondate_catalog::Catalog::new(s.opened.db.clone());
    catalog
        .sync(
            "warehouse",
            kondate_catalog::import_warehouse(
                "warehouse",
                s.opened.warehouse.as_ref(),
                &kondate_catalog::Filter::default(),
            ),
        )
        .await
        .unwrap();
    let editor = s.console_user("editor@example.com", &["editor"]).await;
    let (status, html, _) = editor.get("/catalog").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/catalog/source/warehouse\""),
        "{html}"
    );
    let (status, html, _) = editor.get("/catalog/source/warehouse").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/catalog/schema/warehouse/t\""),
        "{html}"
    );
    let (status, html, _) = editor.get("/catalog/schema/warehouse/t").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/catalog/table/warehouse/t/items\""),
        "{html}"
    );
    let (status, html, _) = editor.get("/catalog?q=items").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/catalog/table/warehouse/t/items\""),
        "{html}"
    );
    let (status, html, _) = editor.get("/catalog/table/warehouse/t/items").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/catalog-edit/table/warehouse/t/items\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"/catalog/column/warehouse/t/items/price\""),
        "{html}"
    );
    assert_eq!(
        editor
            .get("/catalog/column/warehouse/t/items/price")
            .await
            .0,
        200
    );
    assert_eq!(
        editor.get("/catalog/column/warehouse/t/items/nope").await.0,
        404
    );

    // The editor: a preview renders without saving; saving makes version 1.
    let (status, html, _) = editor.get("/catalog-edit/table/warehouse/t/items").await;
    assert_eq!(status, 200, "{html}");
    let csrf = common::csrf_of(&html);
    let edit = |body: &'static str, base: &'static str, intent: &'static str| {
        let csrf = csrf.clone();
        let editor = &editor;
        async move {
            editor
                .post(
                    "/catalog-edit/table/warehouse/t/items",
                    &[
                        ("csrf", &csrf),
                        ("body", body),
                        ("base", base),
                        ("intent", intent),
                    ],
                )
                .await
        }
    };
    let (status, html, _) = edit("**Items** for sale\r\n", "0", "preview").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<strong>Items</strong>") && html.contains("not saved"),
        "{html}"
    );
    assert_eq!(
        catalog
            .doc(&kondate_catalog::Target::from_key("table/warehouse/t/items").unwrap())
            .await
            .unwrap()
            .version,
        0,
        "a preview saves nothing"
    );
    let (status, _, location) = edit("**Items** for sale\r\n", "0", "save").await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("/catalog/table/warehouse/t/items")
    );
    let (_, html, _) = editor.get("/catalog/table/warehouse/t/items").await;
    assert!(html.contains("<strong>Items</strong>"), "{html}");
    assert!(
        html.contains("Description history")
            && html.contains("Version 1 by user:editor@example.com"),
        "{html}"
    );
    assert!(
        html.contains("+**Items** for sale"),
        "the revision's diff: {html}"
    );
    // An edit started from version 0 again is stale: refused with what changed.
    let (status, html, _) = edit("something else", "0", "save").await;
    assert_eq!(status, 409, "{html}");

    // Favourites: added, listed on the Catalog page, removed.
    let (status, _, _) = editor
        .post(
            "/catalog-favourite/table/warehouse/t/items",
            &[("csrf", &csrf), ("set", "on")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, html, _) = editor.get("/catalog").await;
    assert!(html.contains("warehouse.t.items"), "{html}");

    // A viewer: no edit link; the editor refused; posting anyway is 403 and recorded.
    let viewer = s.console_user("viewer@example.com", &["viewer"]).await;
    let (_, html, _) = viewer.get("/catalog/table/warehouse/t/items").await;
    assert!(!html.contains("/catalog-edit/"), "{html}");
    assert_eq!(
        viewer.get("/catalog-edit/table/warehouse/t/items").await.0,
        403
    );
    let viewer_csrf = viewer.csrf().await;
    let (status, _, _) = viewer
        .post(
            "/catalog-edit/table/warehouse/t/items",
            &[
                ("csrf", &viewer_csrf),
                ("body", "x"),
                ("base", "1"),
                ("intent", "save"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("catalog.describe".into()),
            outcome: Some(kondate_access::Outcome::Denied),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

/// Admin in the console: add a person and change their roles, make a token (its secret
/// shown once, and it works against the API), disable it, read the audit trail with
/// filters; a non-admin is refused every page and form (403, recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_people_and_tokens_and_reads_the_audit_trail() {
    let s = common::start(|_| {}).await;
    let admin = s
        .console(kondate_access::SessionOf::Local("local-admin".into()))
        .await;
    let csrf = admin.csrf().await;
    let (status, html, _) = admin.get("/admin/users").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(common::TEST_USER), "{html}");
    let (status, _, _) = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "ana@example.com"),
                ("roles", "viewer"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (status, html, _) = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "bad@example.com"),
                ("roles", "boss"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("Unknown role `boss`"), "{html}");
    let (status, _, _) = admin
        .post(
            "/admin/users/ana@example.com",
            &[
                ("csrf", &csrf),
                ("intent", "set"),
                ("roles", "viewer, models=editor"),
                ("scopes", ""),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let ana = s
        .access
        .users
        .get("ana@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ana.roles, vec!["viewer", "models=editor"]);

    // A token: the secret shown once, working against the API; then disabled.
    let (status, html, _) = admin
        .post(
            "/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ana-notebook"),
                ("owner", "ana@example.com"),
                ("scopes", "query models:read"),
                ("expires", "30d"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let marker = "<code class=\"secret\">";
    let at = html.find(marker).expect("the secret") + marker.len();
    let secret = html[at..].split('<').next().unwrap().to_string();
    let api = |secret: String| {
        s.http
            .get(format!("{}/v1/models", s.url))
            .basic_auth("ana-notebook", Some(secret))
            .send()
    };
    assert_eq!(api(secret.clone()).await.unwrap().status(), 200);
    let (_, html, _) = admin.get("/admin/tokens").await;
    assert!(
        html.contains("ana-notebook") && !html.contains(&secret),
        "no secret listed: {html}"
    );
    let (status, _, _) = admin
        .post("/admin/tokens/ana-notebook/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(api(secret).await.unwrap().status(), 401);

    // The audit trail, filtered.
    let (status, html, _) = admin.get("/admin/audit?action=tokens.create").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("ana-notebook") && html.contains("cli:local-admin"),
        "{html}"
    );
    assert!(!html.contains("users.add"), "{html}");
    let (status, html, _) = admin.get("/admin/audit?outcome=maybe").await;
    assert_eq!(status, 400, "{html}");

    // Someone else: no Admin link, every page and form refused.
    let viewer = s.console_user("viewer@example.com", &["editor"]).await;
    let (_, html, _) = viewer.get("/").await;
    assert!(!html.contains("href=\"/admin\""), "{html}");
    for path in ["/admin/users", "/admin/tokens", "/admin/audit"] {
        assert_eq!(viewer.get(path).await.0, 403, "{path}");
    }
    let viewer_csrf = viewer.csrf().await;
    let (status, _, _) = viewer
        .post(
            "/admin/users/viewer@example.com",
            &[
                ("csrf", &viewer_csrf),
                ("intent", "set"),
                ("roles", "admin"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        s.access
            .users
            .get("viewer@example.com")
            .await
            .unwrap()
            .unwrap()
            .roles,
        vec!["editor"],
        "nothing changed"
    );
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("users.set".into()),
            outcome: Some(kondate_access::Outcome::Denied),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

/// Walks a browser through a sign-in at `idp`: the console's start, the provider's
/// authorization, the console's callback (with the state cookie unless `drop_state`).
/// Answers the callback's status, Location, session cookie and page, and the callback URL.
async fn oidc_sign_in(
    url: &str,
    next: &str,
    drop_state: bool,
) -> (u16, Option<String>, Option<String>, String, String) {
    let http = client();
    let r = http
        .get(format!("{url}/signin/oidc?next={next}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to_idp = location(&r);
    let state_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(state_cookie.starts_with("kondate_oidc="), "{state_cookie}");
    assert!(to_idp.contains("code_challenge_method=S256"), "{to_idp}");
    let r = http.get(&to_idp).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let callback = location(&r);
    let mut rb = http.get(&callback);
    if !drop_state {
        rb = rb.header("cookie", &state_cookie);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("kondate_session="));
    (status, to, session, r.text().await.unwrap(), callback)
}

/// OpenID Connect sign-in against a local provider: a new person of an allowed domain gets
/// the default role and lands on the page they asked for; a wrong audience, an expired
/// token, a bad signature, a disallowed domain or organisation, a callback from another
/// browser and a replayed callback are each refused and recorded; without a default role,
/// an unknown person is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_against_a_local_provider() {
    use common::idp::{CLIENT_ID, CLIENT_SECRET, Mint};
    let idp = common::idp::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let oidc = |default_role: Option<&str>| kondate_core::config::OidcSection {
        issuer: idp.issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret_env: None,
        client_secret_file: Some(secret_file.clone()),
        allowed_domains: vec!["example.com".into()],
        default_role: default_role.map(str::to_string),
        name: "Example SSO".into(),
    };
    let with_role = oidc(Some("viewer"));
    let s = common::start(move |c| c.console.oidc = Some(with_role)).await;

    // The sign-in page offers the provider.
    let html = client()
        .get(format!("{}/signin?next=/models", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Sign in with Example SSO") && html.contains("/signin/oidc?next=%2Fmodels"),
        "{html}"
    );

    // A new person of the allowed domain: the default role, back to the page they wanted.
    idp.next("Ana@Example.com", Some("example.com"), Mint::Good);
    let (status, to, session, body, callback) = oidc_sign_in(&s.url, "%2Fmodels", false).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(to.as_deref(), Some("/models"));
    let session = session.expect("a session cookie");
    let ana = s
        .access
        .users
        .get("ana@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ana.roles, vec!["viewer"]);
    let r = client()
        .get(format!("{}/models", s.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("user:ana@example.com"));
    // The same callback again: its state was used.
    let r = client().get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Each bad token or person is refused with why.
    for (email, hd, mint, why) in [
        (
            "ana@example.com",
            None,
            Mint::WrongAudience,
            "another application",
        ),
        ("ana@example.com", None, Mint::Expired, "expired"),
        (
            "ana@example.com",
            None,
            Mint::BadSignature,
            "signature does not verify",
        ),
        (
            "eve@evil.example",
            None,
            Mint::Good,
            "not in a domain allowed",
        ),
        (
            "bob@example.com",
            Some("other.org"),
            Mint::Good,
            "organisation other.org",
        ),
    ] {
        idp.next(email, hd, mint);
        let (status, _, session, body, _) = oidc_sign_in(&s.url, "%2F", false).await;
        assert_eq!(status, 403, "{mint:?} {email}: {body}");
        assert!(session.is_none(), "{mint:?}");
        assert!(body.contains(why), "{mint:?} {email}: {body}");
    }
    assert!(
        s.access
            .users
            .get("eve@evil.example")
            .await
            .unwrap()
            .is_none()
    );
    // A callback in a browser that did not start the sign-in (login CSRF).
    idp.next("ana@example.com", None, Mint::Good);
    let (status, _, session, body, _) = oidc_sign_in(&s.url, "%2F", true).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        session.is_none() && body.contains("did not start in this browser"),
        "{body}"
    );
    let refused = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("console.signin".into()),
            outcome: Some(kondate_access::Outcome::Denied),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 7, "{refused:?}");

    // Without a default role, a person who is not a user yet is refused.
    let without = oidc(None);
    let s2 = common::start(move |c| c.console.oidc = Some(without)).await;
    idp.next("carol@example.com", None, Mint::Good);
    let (status, _, _, body, _) = oidc_sign_in(&s2.url, "%2F", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not a user here yet"), "{body}");

    // A client secret the provider does not know: its refusal is shown, nothing signed in.
    let wrong_file = secrets.path().join("wrong-secret");
    std::fs::write(&wrong_file, "not-the-secret").unwrap();
    let mut wrong = oidc(Some("viewer"));
    wrong.client_secret_file = Some(wrong_file);
    let s3 = common::start(move |c| c.console.oidc = Some(wrong)).await;
    let (status, _, session, body, _) = oidc_sign_in(&s3.url, "%2F", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(session.is_none(), "{body}");
    assert!(
        body.contains("refused the sign-in: invalid_client"),
        "{body}"
    );

    // A provider that cannot be reached: the sign-in page says so (502), nothing is sent.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut gone = oidc(Some("viewer"));
    gone.issuer = format!("http://127.0.0.1:{closed}");
    let s4 = common::start(move |c| c.console.oidc = Some(gone)).await;
    let r = client()
        .get(format!("{}/signin/oidc", s4.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("discovery document could not be read") && body.contains("try again later"),
        "{body}"
    );
}
