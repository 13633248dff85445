//! The object store on an S3-compatible server (`KONDATE_TEST_S3_ENDPOINT`, the moto server
//! that `.ci/run` starts, bucket `kondate-test`): reads, writes, listing, deletion and
//! presigned URLs that work without credentials.

use std::time::Duration;

use bytes::Bytes;
use kondate_core::config::StoreSection;
use kondate_store::{Store, StoreError};
use tokio::io::AsyncWriteExt;

fn s3_store(prefix: &str) -> Store {
    let endpoint = std::env::var("KONDATE_TEST_S3_ENDPOINT").expect("KONDATE_TEST_S3_ENDPOINT");
    let cfg = StoreSection {
        url: format!("s3://kondate-test/{prefix}"),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        allow_http: true,
        ..StoreSection::default()
    };
    Store::open(&cfg, "http://unused").unwrap()
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn s3_store_reads_writes_lists_and_deletes_under_its_prefix() {
    let s = s3_store(&format!("t{}", std::process::id()));
    s.put("q/1/a", Bytes::from_static(b"hello")).await.unwrap();
    let mut w = s.writer("q/1/big").unwrap();
    for _ in 0..64 {
        w.write_all(&[7u8; 256 * 1024]).await.unwrap();
    }
    w.shutdown().await.unwrap();
    assert_eq!(s.get("q/1/a").await.unwrap(), Bytes::from_static(b"hello"));
    assert_eq!(s.head("q/1/big").await.unwrap().size, 64 * 256 * 1024);
    assert_eq!(s.list("q/1").await.unwrap().len(), 2);
    assert_eq!(s.delete_prefix("q/1").await.unwrap(), 2);
    assert!(matches!(
        s.get("q/1/a").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn s3_presigned_url_downloads_without_credentials() {
    let s = s3_store("signed");
    s.put("x/obj.gz", Bytes::from_static(b"payload"))
        .await
        .unwrap();
    let url = s
        .signed_url("x/obj.gz", Duration::from_secs(60), chrono::Utc::now())
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Signature"), "{url}");
    assert!(
        url.contains("/signed/x/obj.gz"),
        "the prefix is part of the signed path: {url}"
    );
    let body = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"payload");
    // A cloud store's objects are not served by kondate.
    assert!(
        s.verify_signature("x/obj.gz", "1", "00", chrono::Utc::now())
            .is_err()
    );
}
