//! `/v1/runs` on a real server: list, show, and logs (whole and followed while the run
//! writes), behind token auth.

mod common;

use std::time::Duration;

use kondate_apps::{RunRequest, Runs};
use serde_json::Value;

async fn run_app(runs: &Runs, name: &str) -> kondate_apps::RunInfo {
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let req = RunRequest {
        app: name.into(),
        actor: "test".into(),
        ..RunRequest::default()
    };
    runs.run(&req, None, rx).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_logs_over_http() {
    let s = common::start(|_| {}).await;
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("apps")).unwrap();
    std::fs::write(
        root.join("apps/hello.jsonnet"),
        "{ app: { command: ['sh', '-c', 'echo hello; echo warn >&2'] } }",
    )
    .unwrap();
    std::fs::write(
        root.join("apps/ticker.jsonnet"),
        "{ app: { command: ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.3; done'] } }",
    )
    .unwrap();
    let runs = Runs::new(s.opened.db.clone(), s.opened.store.clone(), root);
    let done = run_app(&runs, "hello").await;

    let get = |path: String| {
        let rb = s.http.get(format!("{}{path}", s.url));
        rb.basic_auth(&s.token, Some(&s.secret)).send()
    };
    let r = get("/v1/runs?app=hello".into()).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["runs"][0]["id"], done.id);
    assert_eq!(body["runs"][0]["status"], "succeeded");

    let r = get(format!("/v1/runs/{}", done.id)).await.unwrap();
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["app"], "hello");

    let r = get(format!("/v1/runs/{}/logs", done.id)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(" out hello\n") && text.contains(" err warn\n"),
        "{text}"
    );
    // From an offset.
    let r = get(format!("/v1/runs/{}/logs?offset=5", done.id))
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), text[5..]);

    // Follow a run while it writes: the response ends when the run does.
    let runner = runs.clone();
    let live = tokio::spawn(async move { run_app(&runner, "ticker").await });
    let id = loop {
        let body: Value = get("/v1/runs?app=ticker".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = body["runs"][0]["id"].as_str() {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let followed = get(format!("/v1/runs/{id}/logs?follow=true"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let finished = live.await.unwrap();
    assert_eq!(finished.id, id);
    for i in 1..=3 {
        assert!(followed.contains(&format!(" out tick {i}\n")), "{followed}");
    }

    // Errors: unknown run, bad parameters, no credentials.
    let r = get("/v1/runs/no-such-run".into()).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = get("/v1/runs/no-such-run/logs".into()).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = get("/v1/runs?app=../x".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = get("/v1/runs?limit=0".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .get(format!("{}/v1/runs", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
