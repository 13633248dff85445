//! The server's limits, over real connections: slow or idle clients are cut off, every
//! body has a limit answered with a JSON 413 that says it, a stalled body gets a 408, and
//! a model commit of 100,000 files still fits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::start;
use serde_json::Value;

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Read until the server closes the connection (or `within` passes); how long it took.
fn wait_closed(mut s: TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let s = start(|c| c.server.header_timeout = Duration::from_secs(1)).await;
    let addr = host(&s.url);
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        let closed = wait_closed(c, Duration::from_secs(10));
        assert!(
            closed.is_some_and(|d| d < Duration::from_secs(5)),
            "the connection stayed open: {closed:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = start(|c| c.server.header_timeout = Duration::from_secs(1)).await;
    let addr = host(&s.url);
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 512];
        let n = c.read(&mut first).unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        // Nothing more is sent: the server must not keep the connection forever.
        let closed = wait_closed(c, Duration::from_secs(10));
        assert!(
            closed.is_some_and(|d| d < Duration::from_secs(5)),
            "the idle connection stayed open: {closed:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_body_over_the_routes_limit_is_a_json_413_that_says_it() {
    let s = start(|_| {}).await;
    let big = "x".repeat(2 << 20);
    // With a Content-Length: refused before the body is read.
    let r = s
        .http
        .post(format!("{}/v1/queries", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("q={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "payload_too_large");
    assert!(body["error"].as_str().unwrap().contains("1 MiB"), "{body}");
    // Without one (chunked): refused when the limit is crossed, as JSON too.
    let stream = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 64 << 10]))),
    );
    let r = s
        .http
        .put(format!("{}/v1/models/m/aliases/production", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("64 KiB"), "{body}");
}

#[tokio::test]
async fn uploads_are_limited_by_server_max_upload() {
    let s = start(|c| c.server.max_upload = 1024).await;
    let r = s
        .http
        .post(format!("{}/v1/results/anything", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .header("content-type", "text/csv")
        .body("a\n".repeat(2048))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("1 KiB"), "{body}");
    let digest = format!("sha256:{}", "0".repeat(64));
    let r = s
        .http
        .put(format!("{}/v1/blobs/{digest}", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn a_stalled_body_is_a_json_408() {
    let s = start(|c| c.server.body_timeout = Duration::from_secs(1)).await;
    let addr = host(&s.url);
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", s.token, s.secret)
        )
    );
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(
            format!(
                "POST /v1/queries HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nq=SELECT"
            )
            .as_bytes(),
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_model_commit_of_100000_files_fits() {
    let s = start(|_| {}).await;
    // One small file, stored once, named 100,000 times.
    let content = b"weights";
    let digest = kondate_core::digest::Digest::of(content);
    let r = s
        .http
        .put(format!("{}/v1/blobs/{digest}", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .body(content.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let files: Vec<Value> = (0..100_000)
        .map(|i| {
            serde_json::json!({
                "path": format!("shards/part-{i:06}/weights.bin"),
                "digest": digest.to_string(),
                "size": content.len(),
            })
        })
        .collect();
    let body = serde_json::json!({"layout": "directory", "files": files});
    let text = body.to_string();
    assert!(text.len() > 8 << 20, "the commit is {} bytes", text.len());
    let r = s
        .http
        .post(format!("{}/v1/models/big/versions", s.url))
        .basic_auth(&s.token, Some(&s.secret))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 201, "{}", r.text().await.unwrap());
}
