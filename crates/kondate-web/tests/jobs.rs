//! The jobs API over real HTTP: listing what the caller may read, launching with variables
//! and an idempotency key, an instance failing in a real worker, its steps and logs, and who
//! may retry it — `jobs:operate` on the job, or one of the job's owners.

mod common;

use std::time::Duration;

use kondate_core::SystemClock;
use kondate_jobs::definition::from_json;
use kondate_jobs::{Executor, Loaded, Scheduler, WorkerConfig};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_api_lists_launches_and_acts_with_scopes_and_owners() {
    let s = common::start(|_| {}).await;
    let scheduler = Scheduler::new(s.opened.db.clone());
    let def = |name: &str, fields: Value| {
        let mut j = json!({ "script": "execute: echo started; exit 3\n" });
        for (k, v) in fields.as_object().unwrap() {
            j[k] = v.clone();
        }
        Loaded::Ok(Box::new(
            from_json(&format!("jobs/{name}.jsonnet"), name, j).unwrap(),
        ))
    };
    scheduler
        .load(
            &[
                def(
                    "nightly",
                    json!({ "owners": [common::TEST_USER], "schedules": ["0 3 * * *"] }),
                ),
                def("secret", json!({})),
            ],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let reader = s.token_with("reader", &["jobs:read=nightly"]).await;
    let launcher = s
        .token_with("launcher", &["jobs:read=nightly", "jobs:launch=nightly"])
        .await;
    // Someone else, who may read the job but neither owns it nor may operate it.
    s.access
        .users
        .add("other@example.com", &["editor".to_string()], &[], "test")
        .await
        .unwrap();
    let stranger = s
        .access
        .tokens
        .create(kondate_access::NewTokenRequest {
            name: "stranger".into(),
            owner: "other@example.com".into(),
            scopes: kondate_access::Scopes::new(vec![
                kondate_access::Scope::parse("jobs:read=nightly").unwrap(),
            ]),
            expires_in: None,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    let stranger = (stranger.name, stranger.secret);
    let call = |method: &str, path: &str, who: &(String, String), body: Option<Value>| {
        let mut r = s
            .http
            .request(method.parse().unwrap(), format!("{}{path}", s.url))
            .basic_auth(&who.0, Some(&who.1));
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    let json_of = |t: &str| serde_json::from_str::<Value>(t).unwrap();

    // Listing shows only what the caller may read, with the next fire time.
    let (status, body) = call("GET", "/v1/jobs", &reader, None).await;
    assert_eq!(status, 200, "{body}");
    let jobs = json_of(&body);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["jobs"][0]["name"], "nightly");
    assert!(
        jobs["jobs"][0]["next"][0]
            .as_str()
            .unwrap()
            .ends_with("T03:00:00Z")
    );
    assert_eq!(call("GET", "/v1/jobs/secret", &reader, None).await.0, 403);
    assert_eq!(call("GET", "/v1/jobs/nope", &launcher, None).await.0, 403);

    // Launching needs jobs:launch; the same key launches once; names are checked.
    let body = json!({ "env": { "A": "1" }, "key": "2026-12-01" });
    assert_eq!(
        call(
            "POST",
            "/v1/jobs/nightly/instances",
            &reader,
            Some(body.clone())
        )
        .await
        .0,
        403
    );
    let (status, text) = call(
        "POST",
        "/v1/jobs/nightly/instances",
        &launcher,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let launched = json_of(&text);
    assert_eq!(launched["status"], "working");
    let id = launched["id"].as_i64().unwrap();
    let (_, again) = call("POST", "/v1/jobs/nightly/instances", &launcher, Some(body)).await;
    assert_eq!(json_of(&again)["id"], id);
    // One job in full: its script, its revisions, its instances.
    let (status, body) = call("GET", "/v1/jobs/nightly", &reader, None).await;
    assert_eq!(status, 200, "{body}");
    let job = json_of(&body);
    assert!(job["script"].as_str().is_some(), "{job}");
    assert_eq!(job["revisions"].as_array().unwrap().len(), 1, "{job}");
    assert_eq!(job["instances"][0]["id"], id, "{job}");
    assert_eq!(job["next"].as_array().unwrap().len(), 5, "{job}");
    let (status, text) = call(
        "POST",
        "/v1/jobs/nightly/instances",
        &launcher,
        Some(json!({ "env": { "A-B": "1" } })),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`A-B` is not a variable name"), "{text}");

    // A worker runs it: the step fails.
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
        grace: Duration::from_millis(200),
        recheck: Duration::from_millis(200),
    };
    while executor.work_once(&cfg, &SystemClock).await.unwrap() {}
    let (status, text) = call("GET", &format!("/v1/instances/{id}"), &reader, None).await;
    assert_eq!(status, 200, "{text}");
    let instance = json_of(&text);
    assert_eq!(instance["status"], "error", "{instance}");
    assert_eq!(instance["steps"][0]["exit_code"], 3);
    let (status, logs) = call("GET", &format!("/v1/instances/{id}/logs"), &reader, None).await;
    assert_eq!(status, 200);
    assert!(
        logs.lines()
            .any(|l| l.starts_with("L1 ") && l.ends_with(" out started")),
        "{logs}"
    );

    // /metrics: the instance in ERROR (a gauge read from the state database), the step's
    // run time and the instance's end as this process observed them.
    let m = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("kondate_job_instances{status=\"error\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("kondate_job_steps{queue=\"default\",status=\"pending\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("kondate_job_step_duration_seconds_count{queue=\"default\",status=\"error\"}"),
        "{m}"
    );
    assert!(
        m.contains("kondate_job_instances_ended_total{job=\"nightly\",status=\"error\"}"),
        "{m}"
    );
    assert!(m.contains("kondate_jobs{status=\"scheduled\"} 2"), "{m}");

    // Retry: refused to a reader who neither operates nor owns the job; allowed to an
    // owner's token (its owner is one of the job's owners).
    let (status, text) = call(
        "POST",
        &format!("/v1/instances/{id}/retry"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("jobs:operate"), "{text}");
    let (status, text) = call("POST", &format!("/v1/instances/{id}/retry"), &reader, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json_of(&text)["status"], "working");
    // Cancel it; then a second cancel is a conflict.
    let (status, _) = call("POST", &format!("/v1/instances/{id}/cancel"), &reader, None).await;
    assert_eq!(status, 200);
    let (status, text) = call("POST", &format!("/v1/instances/{id}/cancel"), &reader, None).await;
    assert_eq!(status, 409, "{text}");
    // Suspend: refused to the stranger; an owner's token may; the job shows who; resume.
    let (status, text) = call("POST", "/v1/jobs/nightly/suspend", &stranger, None).await;
    assert_eq!(status, 403, "{text}");
    let (status, text) = call("POST", "/v1/jobs/nightly/suspend", &reader, None).await;
    assert_eq!(status, 200, "{text}");
    let job = json_of(&text);
    assert_eq!(job["suspended"], true, "{job}");
    assert_eq!(job["suspended_by"], "token:reader", "{job}");
    assert_eq!(
        call("POST", "/v1/jobs/secret/suspend", &reader, None)
            .await
            .0,
        403
    );
    let (status, text) = call("POST", "/v1/jobs/nightly/resume", &reader, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json_of(&text)["suspended"], false);
    let audit = s
        .access
        .audit
        .list(&kondate_access::AuditFilter {
            action: Some("jobs.suspend".into()),
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcomes: Vec<_> = audit.iter().map(|r| r.entry.outcome).collect();
    assert!(
        outcomes.contains(&kondate_access::Outcome::Ok)
            && outcomes.contains(&kondate_access::Outcome::Denied),
        "{audit:?}"
    );

    // Bad and unknown ids.
    assert_eq!(call("GET", "/v1/instances/abc", &reader, None).await.0, 400);
    assert_eq!(
        call("GET", "/v1/instances/999999", &reader, None).await.0,
        404
    );
}
