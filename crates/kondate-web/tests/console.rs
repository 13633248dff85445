//! The web console over HTTP: the local administrator's sign-in (only with this server's
//! code, only on a loopback server), the session cookie's attributes, the security headers,
//! escaping, the CSRF check on sign-out, and a session that ends.

mod common;

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

/// The `csrf` hidden field of a page.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[at..at + 32].to_string()
}

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
        !html.contains("<script"),
        "no script, the project's name escaped: {html}"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");

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
    assert!(!html.contains("<script"), "{html}");
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
