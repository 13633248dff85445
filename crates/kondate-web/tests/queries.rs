//! The query API end to end over real HTTP on loopback, on the embedded defaults.

mod common;

use std::time::Duration;

use common::{fetch_gz, fetch_json, start};
use futures::StreamExt;

#[tokio::test]
async fn query_result_is_unload_format_gzip_csv_with_a_verbose_manifest() {
    let s = start(|_| {}).await;
    let body = s
        .run("SELECT id, name, note, price, in_stock, day FROM t.items ORDER BY id")
        .await;
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["error"], serde_json::Value::Null);
    let urls: Vec<String> = serde_json::from_value(body["data_file_urls"].clone()).unwrap();
    assert_eq!(urls.len(), 1, "an ordered result is one part");
    assert!(
        urls[0].contains("result.csv.0000_part_00.gz"),
        "{}",
        urls[0]
    );
    let text = fetch_gz(&urls[0]).await;
    assert_eq!(
        text,
        "\"1\",\"醤油\",\"濃口\\, 1L\",\"398.5\",\"t\",\"2024-01-02\"\n\
         \"2\",\"みりん\",\"say \\\"hi\\\"\",\"250\",\"f\",\"2024-02-03\"\n\
         \"3\",\"back\\\\slash\",\"two\\\nlines\",\"\",\"t\",\"\"\n"
    );
    let manifest = fetch_json(body["manifest_file_url"].as_str().unwrap()).await;
    assert_eq!(manifest["meta"]["record_count"], 3);
    assert_eq!(manifest["entries"][0]["meta"]["record_count"], 3);
    assert!(
        manifest["entries"][0]["meta"]["content_length"]
            .as_u64()
            .unwrap()
            > 0
    );
    let types: Vec<&str> = manifest["schema"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"]["base"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "bigint",
            "character varying",
            "character varying",
            "double precision",
            "boolean",
            "date"
        ]
    );
    assert_eq!(manifest["schema"]["elements"][1]["name"], "name");
}

#[tokio::test]
async fn unordered_results_are_written_in_parallel_parts() {
    let s = start(|c| c.query.parts = 3).await;
    let body = s
        .run("SELECT value, value * 2 AS double FROM range(100000)")
        .await;
    assert_eq!(body["status"], "success", "{body}");
    let urls: Vec<String> = serde_json::from_value(body["data_file_urls"].clone()).unwrap();
    assert_eq!(urls.len(), 3, "{urls:?}");
    let mut lines = 0;
    for u in &urls {
        lines += fetch_gz(u).await.lines().count();
    }
    assert_eq!(lines, 100000);
}

#[tokio::test]
async fn fields_are_read_from_a_form_body_on_get_like_the_python_client() {
    let s = start(|_| {}).await;
    let body = s.run("SELECT 1 AS one").await;
    let id = body["id"].as_i64().unwrap();
    let r = s
        .http
        .get(format!("{}/v1/queries/{id}", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .form(&[(
            "fields",
            "__default__,manifest_file_url,select_stmt,created_at,s3_prefix",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["id"], id);
    assert_eq!(j["select_stmt"], "SELECT 1 AS one");
    assert!(
        j["manifest_file_url"]
            .as_str()
            .unwrap()
            .contains("result.csv.manifest")
    );
    assert!(
        j["s3_prefix"]
            .as_str()
            .unwrap()
            .contains(&format!("/{id}/"))
    );
    assert!(j["created_at"].as_str().is_some());
}

#[tokio::test]
async fn placeholders_are_filled_with_quoted_values() {
    let s = start(|_| {}).await;
    let (status, body) = s
        .submit(&[
            ("q", "SELECT name FROM t.items WHERE name = ? OR name = ?"),
            ("values[]", "醤油"),
            ("values[]", "x' OR '1'='1"),
        ])
        .await;
    assert_eq!(status, 201, "{body}");
    let done = s.wait(body["id"].as_i64().unwrap()).await;
    let text = fetch_gz(done["data_file_urls"][0].as_str().unwrap()).await;
    assert_eq!(text, "\"醤油\"\n", "the injection attempt matched nothing");
}

#[tokio::test]
async fn refused_statements_answer_400_and_record_nothing() {
    let s = start(|_| {}).await;
    let cases = [
        ("SELEC * FRM t.items", "not valid SQL"),
        ("DROP TABLE t.items", "DROP TABLE"),
        ("DELETE FROM t.items", "DELETE"),
        ("INSERT INTO t.items VALUES (1)", "INSERT"),
        ("SELECT 1; SELECT 2", "only one statement"),
        (
            "WITH d AS (DELETE FROM t.items RETURNING *) SELECT * FROM d",
            "DELETE",
        ),
        ("SELECT * INTO x FROM t.items", "INTO"),
        ("COPY t.items TO '/tmp/x'", "COPY"),
        ("SELECT ?", "placeholder"),
    ];
    for (sql, needle) in cases {
        let (status, body) = s.submit(&[("q", sql)]).await;
        assert_eq!(status, 400, "{sql}: {body}");
        assert_eq!(body["status_code"], 400);
        assert_eq!(body["error_code"], "invalid_parameter");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{sql}: `{msg}` lacks `{needle}`");
    }
    let (status, body) = s.submit(&[("values[]", "1")]).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("`q` is required"));
    assert_eq!(s.query_count().await, 0, "refused queries are not recorded");
    // The table is untouched.
    let ok = s.run("SELECT count(*) AS n FROM t.items").await;
    assert_eq!(
        fetch_gz(ok["data_file_urls"][0].as_str().unwrap()).await,
        "\"3\"\n"
    );
}

#[tokio::test]
async fn engine_errors_end_the_query_failed_with_the_engine_message() {
    let s = start(|_| {}).await;
    let body = s.run("SELECT * FROM t.no_such_table").await;
    assert_eq!(body["status"], "failed");
    let err = body["error"].as_str().unwrap();
    assert!(err.contains("no_such_table"), "{err}");
    assert_eq!(body["data_file_urls"], serde_json::json!([]));
    let body = s.run("SELECT no_such_column FROM t.items").await;
    assert_eq!(body["status"], "failed");
    assert!(body["error"].as_str().unwrap().contains("no_such_column"));
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let s = start(|_| {}).await;
    let url = format!("{}/v1/queries", s.url);
    let r = s
        .http
        .post(&url)
        .form(&[("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error_code"], "unauthorized");
    let r = s
        .http
        .post(&url)
        .basic_auth(&s.token, Some("wrong"))
        .form(&[("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(&url)
        .basic_auth("nobody", Some(&s.secret))
        .form(&[("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.access.tokens.disable(&s.token).await.unwrap();
    let r = s
        .http
        .post(&url)
        .basic_auth(&s.token, Some(&s.secret))
        .form(&[("q", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a disabled token stops working at once");
    assert_eq!(s.query_count().await, 0);
}

#[tokio::test]
async fn unknown_or_foreign_query_ids_are_404_and_bad_ids_400() {
    let s = start(|_| {}).await;
    let (status, body) = s.show(999_999, "__default__").await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "not_found");
    let (status, _) = s.show(1, "bogus_field").await;
    assert!(status == 400 || status == 404);
    let r = s
        .http
        .get(format!("{}/v1/queries/abc", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Another token cannot see this token's query.
    let body = s.run("SELECT 1").await;
    let other = s.token_with("other", &["query"]).await;
    let r = s
        .http
        .get(format!("{}/v1/queries/{}", s.url, body["id"]))
        .basic_auth(&other.0, Some(&other.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn tampered_unsigned_and_expired_urls_are_refused() {
    let s = start(|_| {}).await;
    let body = s.run("SELECT * FROM t.items").await;
    let url = body["data_file_urls"][0].as_str().unwrap().to_string();
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let tampered = url.replace("signature=", "signature=00");
    let r = reqwest::get(&tampered).await.unwrap();
    assert_eq!(r.status(), 403);
    let j: serde_json::Value = r.json().await.unwrap();
    assert!(j["error"].as_str().unwrap().contains("signature"), "{j}");
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(reqwest::get(unsigned).await.unwrap().status(), 403);
    let other_key = url.replace("0000_part_00.gz", "0001_part_00.gz");
    assert_eq!(reqwest::get(&other_key).await.unwrap().status(), 403);
    // Six hours and a second later the URL has expired…
    s.clock.advance(Duration::from_secs(6 * 3600 + 1));
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));
    // …and once the sweeper ran, the objects are gone and the query says so.
    assert_eq!(s.opened.service.expire_due().await.unwrap(), 1);
    assert!(s.opened.store.list("queries").await.unwrap().is_empty());
    let (_, j) = s.show(body["id"].as_i64().unwrap(), "__default__").await;
    assert_eq!(j["status"], "failed");
    assert!(j["error"].as_str().unwrap().contains("expired"));
    assert_eq!(j["data_file_urls"], serde_json::json!([]));
}

#[tokio::test]
async fn a_draining_server_refuses_new_queries_with_503_saying_where_to_go() {
    let s = start(|_| {}).await;
    // Nothing in flight: the drain returns at once, and no query is admitted after it.
    assert_eq!(s.opened.service.drain(Duration::from_secs(5)).await, 0);
    let (status, body) = s.submit(&[("q", "SELECT 1")]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "shutting_down", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("submit to another server"),
        "{body}"
    );
}

#[tokio::test]
async fn sweeps_run_by_every_process_at_once_count_each_query_once() {
    let s = start(|_| {}).await;
    for _ in 0..3 {
        s.run("SELECT * FROM t.items").await;
    }
    // What a killed process left: two queries running under an owner that is gone.
    for _ in 0..2 {
        s.opened
            .db
            .execute(
                "INSERT INTO kondate_queries (token_name, status, select_stmt, format, \
                 enable_metadata, object_prefix, created_at, expired, owner) \
                 VALUES (NULL, 'running', 'SELECT 1', 'csv', 0, '', 0, 0, 'gone:1:0:0')",
                &[],
            )
            .await
            .unwrap();
    }
    // A second process's service on the same state database and store.
    let other = kondate_query::QueryService::new(
        s.opened.db.clone(),
        s.opened.store.clone(),
        s.opened.warehouse.clone(),
        s.clock.clone(),
        kondate_core::Config::default().query,
    );
    s.clock.advance(Duration::from_secs(6 * 3600 + 1));
    let lost_after = Duration::from_secs(60);
    let (a, b, c, d) = tokio::join!(
        s.opened.service.expire_due(),
        other.expire_due(),
        s.opened.service.recover_lost(lost_after),
        other.recover_lost(lost_after),
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        3,
        "each expired result counted once"
    );
    assert_eq!(c.unwrap() + d.unwrap(), 2, "each lost query failed once");
    assert!(s.opened.store.list("queries").await.unwrap().is_empty());
}

#[tokio::test]
async fn over_limit_submissions_are_refused_with_429_not_dropped() {
    let s = start(|c| {
        c.query.max_concurrent_per_token = 1;
        c.query.max_queued_per_token = 1;
    })
    .await;
    let slow = "SELECT count(*) FROM range(4000000000)";
    // Submitted at once, so that none has started yet when the next arrives.
    let form = [("q", slow)];
    let ((a, _), (b, _)) = tokio::join!(s.submit(&form), s.submit(&form));
    let (c, body) = s.submit(&[("q", slow)]).await;
    assert_eq!((a, b), (201, 201), "one runs, one waits");
    assert_eq!(c, 429, "{body}");
    assert_eq!(body["error_code"], "too_many_requests");
    assert!(body["error"].as_str().unwrap().contains("retry"));
    assert_eq!(s.query_count().await, 2, "the refused one is not recorded");
    let mut seen = (0, 0);
    for _ in 0..100 {
        seen = s.opened.service.in_flight("tester");
        if seen == (1, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, (1, 1), "one running, one waiting");
}

#[tokio::test]
async fn statement_timeout_ends_a_long_query_as_failed() {
    let s = start(|c| c.query.statement_timeout = Duration::from_millis(300)).await;
    let body = s.run("SELECT count(*) FROM range(4000000000)").await;
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
    assert!(
        s.opened.store.list("queries").await.unwrap().is_empty(),
        "no partial result left"
    );
}

#[tokio::test]
async fn rust_client_streams_typed_rows_and_arrow_batches() {
    let s = start(|_| {}).await;
    let client = kondate_client::Client::new(&s.url, Some((&s.token, &s.secret))).unwrap();
    let rs = client
        .query(
            "SELECT id, name, price, in_stock, day FROM t.items ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rs.record_count, Some(3));
    let rows: Vec<_> = rs.rows().collect::<Vec<_>>().await;
    let rows: Vec<_> = rows.into_iter().collect::<Result<_, _>>().unwrap();
    use kondate_client::Value;
    assert_eq!(rows[0][0], Value::Int(1));
    assert_eq!(rows[0][1], Value::Text("醤油".into()));
    assert_eq!(rows[0][2], Value::Float(398.5));
    assert_eq!(rows[1][3], Value::Bool(false));
    assert_eq!(rows[2][2], Value::Null);
    let rs = client
        .query("SELECT id, name FROM t.items", &[])
        .await
        .unwrap();
    let batches: Vec<_> = rs.record_batches(2).collect::<Vec<_>>().await;
    let total: usize = batches.iter().map(|b| b.as_ref().unwrap().num_rows()).sum();
    assert_eq!(total, 3);
    let err = client
        .query("SELECT * FROM t.nope", &[])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, kondate_client::ClientError::QueryFailed { .. }),
        "{err}"
    );
    let err = client
        .query("DELETE FROM t.items", &[])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, kondate_client::ClientError::Api { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn parquet_results_are_an_extension() {
    let s = start(|_| {}).await;
    let (status, body) = s
        .submit(&[("q", "SELECT * FROM t.items"), ("format", "parquet")])
        .await;
    assert_eq!(status, 201);
    let done = s.wait(body["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "success", "{done}");
    let url = done["data_file_urls"][0].as_str().unwrap();
    assert!(url.contains(".parquet"));
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
}

#[tokio::test]
async fn readiness_names_each_part_and_fails_when_one_does_not_answer() {
    let s = start(|_| {}).await;
    let r = reqwest::get(format!("{}/readyz", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    for part in ["state_database", "service_database", "store", "warehouse"] {
        assert_eq!(body["parts"][part], "ok", "{body}");
    }
    // The state database goes away: not ready, and that part says so (without details).
    s.opened.db.close().await;
    let r = reqwest::get(format!("{}/readyz", s.url)).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["parts"]["state_database"], "unavailable", "{body}");
    assert_eq!(body["parts"]["store"], "ok", "{body}");
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let s = start(|_| {}).await;
    let r = reqwest::get(format!("{}/healthz", s.url)).await.unwrap();
    assert_eq!(r.status(), 200);
    s.run("SELECT 1").await;
    let m = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(
            "kondate_http_requests_total{method=\"POST\",route=\"/v1/queries\",status=\"201\"} 1"
        ),
        "{m}"
    );
    // Latency as a histogram; the jobs' gauges from the state database; OpenMetrics' end.
    assert!(
        m.contains("kondate_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"POST\",route=\"/v1/queries\"} 1")
            || m.contains("kondate_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/queries\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("kondate_job_instances{status=\"working\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("kondate_job_steps{queue=\"default\",status=\"pending\"} 0"),
        "{m}"
    );
    assert!(m.trim_end().ends_with("# EOF"), "{m}");
    let spec: serde_json::Value = reqwest::get(format!("{}/v1/openapi.json", s.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    // Every documented route exists on the server.
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = common::concrete_path(path);
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s
                .http
                .request(method.clone(), format!("{}{concrete}", s.url))
                .send()
                .await
                .unwrap();
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let r = reqwest::get(format!("{}/v1/nope", s.url)).await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn query_api_on_an_s3_store_hands_out_presigned_urls() {
    let endpoint = std::env::var("KONDATE_TEST_S3_ENDPOINT").expect("KONDATE_TEST_S3_ENDPOINT");
    let s = start(|c| {
        c.store.url = format!("s3://kondate-test/web{}", std::process::id());
        c.store.endpoint = Some(endpoint);
        c.store.region = Some("us-east-1".into());
        c.store.allow_http = true;
    })
    .await;
    let body = s.run("SELECT id, name FROM t.items ORDER BY id").await;
    assert_eq!(body["status"], "success", "{body}");
    let url = body["data_file_urls"][0].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature"), "{url}");
    assert_eq!(
        fetch_gz(url).await,
        "\"1\",\"醤油\"\n\"2\",\"みりん\"\n\"3\",\"back\\\\slash\"\n"
    );
    let manifest = fetch_json(body["manifest_file_url"].as_str().unwrap()).await;
    assert_eq!(manifest["meta"]["record_count"], 3);
}

#[tokio::test]
async fn queries_interrupted_by_a_restart_end_failed_so_clients_stop_polling() {
    let s = start(|_| {}).await;
    // What a killed process leaves behind: a query recorded as running, never finished.
    let id = s
        .opened
        .db
        .insert_returning_id(
            "INSERT INTO kondate_queries (token_name, status, select_stmt, format, enable_metadata, \
             object_prefix, created_at, expired) VALUES (?, 'running', 'SELECT 1', 'csv', 0, 'queries/x/', 0, 0)",
            &[s.token.as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(
        s.opened
            .service
            .recover_lost(std::time::Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    let (status, body) = s.show(id, "__default__").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "failed");
    assert!(
        body["error"].as_str().unwrap().contains("submit it again"),
        "{body}"
    );
    assert_eq!(
        s.opened
            .service
            .recover_lost(std::time::Duration::from_secs(60))
            .await
            .unwrap(),
        0,
        "finished queries are left alone"
    );
}
