//! The registry end to end on SQLite and the local store, and — when `.ci/run` provides
//! them — on MariaDB, PostgreSQL and an S3-compatible server: push, show, aliases, pull,
//! delete, gc, corruption, concurrency and bad input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kondate_core::artifact::{FileEntry, Layout, ModelRef};
use kondate_core::config::StoreSection;
use kondate_core::digest::Digest;
use kondate_db::{Database, Value};
use kondate_models::{BlobCheck, GcOptions, LabelRef, Models, ModelsError, PushMeta, blob_key};
use kondate_store::Progress;
use kondate_store::{Store, UrlSigner};

fn quiet() -> Progress {
    Arc::new(|_| {})
}

fn r(s: &str) -> ModelRef {
    ModelRef::parse(s).unwrap()
}

struct Env {
    models: Models,
    tmp: tempfile::TempDir,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn write(&self, p: &str, data: &[u8]) -> PathBuf {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }

    async fn push(&self, name: &str, path: &Path) -> i64 {
        let meta = PushMeta {
            actor: "test".into(),
            ..PushMeta::default()
        };
        self.models
            .push_path(name, path, meta, quiet())
            .await
            .unwrap()
            .version
    }

    async fn events(&self, kind: &str) -> i64 {
        let row = self
            .models
            .db
            .fetch_optional(
                "SELECT COUNT(*) AS n FROM kondate_events WHERE kind = ?",
                &[Value::from(kind)],
            )
            .await
            .unwrap()
            .unwrap();
        kondate_db::get_i64(&row, "n").unwrap()
    }
}

enum StoreKind {
    Local,
    S3,
}

async fn env(db: Option<(&str, &str)>, store: StoreKind) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let url = match db {
        None => format!("sqlite://{}/state.db", tmp.path().display()),
        Some((var, tag)) => {
            let base = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
            kondate_db::isolated_test_database(&base, tag)
                .await
                .unwrap()
        }
    };
    let db = Database::connect(&url).await.unwrap();
    kondate_db::state::migrate(&db).await.unwrap();
    let store = match store {
        StoreKind::Local => Store::local(
            &tmp.path().join("store"),
            UrlSigner::new(vec![1; 32], "http://127.0.0.1:1"),
        )
        .unwrap(),
        StoreKind::S3 => {
            let endpoint = std::env::var("KONDATE_TEST_S3_ENDPOINT")
                .expect("KONDATE_TEST_S3_ENDPOINT is not set");
            let cfg = StoreSection {
                url: format!(
                    "s3://kondate-test/models-{}-{:08x}",
                    std::process::id(),
                    rand_u32()
                ),
                endpoint: Some(endpoint),
                region: Some("us-east-1".into()),
                allow_http: true,
                ..StoreSection::default()
            };
            Store::open(&cfg, "http://unused").unwrap()
        }
    };
    Env {
        models: Models::new(db, store),
        tmp,
    }
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn now_gc(apply: bool) -> GcOptions {
    GcOptions {
        apply,
        grace: Duration::ZERO,
    }
}

async fn lifecycle(e: Env) {
    let m = &e.models;
    // A single file, with metadata.
    let weights = e.write("train/model.bin", &vec![7u8; 3 << 20]);
    let meta = PushMeta {
        metrics: [("accuracy".to_string(), 0.91)].into(),
        params: [("lr".to_string(), "0.1".to_string())].into(),
        lineage: kondate_models::Lineage {
            labels: vec![LabelRef::parse("recipe_category@2").unwrap()],
            queries: vec![],
            git_commit: Some("0123abcd".into()),
        },
        note: Some("first".into()),
        actor: "cli:alice".into(),
    };
    let v1 = m.push_path("clf", &weights, meta, quiet()).await.unwrap();
    assert_eq!((v1.version, v1.layout, v1.size), (1, Layout::File, 3 << 20));
    assert_eq!(v1.files[0].path, "model.bin");
    assert_eq!(v1.metrics["accuracy"], 0.91);
    assert_eq!(v1.created_by, "cli:alice");
    assert_eq!(v1.lineage.labels[0].revision, Some(2));

    // A folder sharing that file: stored once.
    e.write("dir/model.bin", &vec![7u8; 3 << 20]);
    e.write("dir/config/vocab.txt", "醤油\nしょうゆ\n".as_bytes());
    assert_eq!(e.push("clf", &e.path("dir")).await, 2);
    let blobs = m.store.list(kondate_models::BLOB_PREFIX).await.unwrap();
    assert_eq!(blobs.len(), 2, "the shared file is stored once");

    // The same content again is a new version with the same content digest.
    let v3 = m
        .push_path("clf", &e.path("dir"), PushMeta::default(), quiet())
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let v2 = m.show(&r("clf@2")).await.unwrap();
    assert_eq!(v2.content_digest, v3.content_digest);
    assert_ne!(v1.content_digest, v2.content_digest);
    assert_eq!(m.show(&r("clf")).await.unwrap().version, 3);

    // Aliases move atomically and keep their history.
    m.set_alias("clf", "production", Some(1), "alice")
        .await
        .unwrap();
    let mv = m
        .set_alias("clf", "production", Some(2), "bob")
        .await
        .unwrap();
    assert_eq!((mv.from, mv.to), (Some(1), Some(2)));
    assert_eq!(m.resolve(&r("clf@production")).await.unwrap(), 2);
    assert_eq!(m.show(&r("clf@2")).await.unwrap().aliases, ["production"]);
    let history = m.alias_history("clf").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[1].from, history[1].to, history[1].moved_by.as_str()),
        (Some(1), Some(2), "bob")
    );
    assert!(matches!(
        m.set_alias("clf", "staging", Some(9), "bob").await,
        Err(ModelsError::NoSuchVersion { .. })
    ));
    assert!(matches!(
        m.resolve(&r("clf@staging")).await,
        Err(ModelsError::NoSuchVersion { .. })
    ));

    // Pull: a folder version into a new folder, a file version into an existing folder.
    let (_, out) = m
        .pull(&r("clf@production"), &e.path("out/clf"), false, quiet())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.join("config/vocab.txt")).unwrap(),
        "醤油\nしょうゆ\n".as_bytes()
    );
    assert_eq!(std::fs::read(out.join("model.bin")).unwrap().len(), 3 << 20);
    std::fs::create_dir_all(e.path("dl")).unwrap();
    let (_, file) = m
        .pull(&r("clf@1"), &e.path("dl"), false, quiet())
        .await
        .unwrap();
    assert_eq!(file, e.path("dl/model.bin"));
    let err = m
        .pull(&r("clf@2"), &e.path("out/clf"), false, quiet())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    m.pull(&r("clf@2"), &e.path("out/clf"), true, quiet())
        .await
        .unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(e.path("out"))
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from("clf")],
        "no partial or old copies left"
    );

    // Delete: refused while an alias points at it; numbers are never reused.
    let err = m.delete("clf", 2, "bob").await.unwrap_err();
    assert!(matches!(err, ModelsError::AliasPointsHere { .. }), "{err}");
    assert!(err.to_string().contains("production"), "{err}");
    m.set_alias("clf", "production", Some(1), "bob")
        .await
        .unwrap();
    m.delete("clf", 2, "bob").await.unwrap();
    m.delete("clf", 3, "bob").await.unwrap();
    assert!(matches!(
        m.show(&r("clf@2")).await,
        Err(ModelsError::NoSuchVersion { .. })
    ));
    assert_eq!(e.push("clf", &weights).await, 4, "numbers are never reused");

    // gc: the folder's vocab file is referenced by nothing now.
    let dry = m.gc(&now_gc(false)).await.unwrap();
    assert_eq!(dry.blobs.len(), 1, "{dry:?}");
    let vocab_len = "醤油\nしょうゆ\n".len() as u64;
    assert_eq!(dry.bytes, vocab_len);
    assert_eq!(
        m.store
            .list(kondate_models::BLOB_PREFIX)
            .await
            .unwrap()
            .len(),
        2,
        "dry run"
    );
    let grace = m
        .gc(&GcOptions {
            apply: true,
            grace: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    assert!(grace.blobs.is_empty(), "young blobs are kept: {grace:?}");
    let applied = m.gc(&now_gc(true)).await.unwrap();
    assert_eq!((applied.blobs.len(), applied.bytes), (1, vocab_len));
    assert_eq!(
        m.store
            .list(kondate_models::BLOB_PREFIX)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(m.gc(&now_gc(true)).await.unwrap().blobs.is_empty());
    m.pull(&r("clf@4"), &e.path("again.bin"), false, quiet())
        .await
        .unwrap();

    let list = m.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].latest, list[0].versions), (Some(4), 2));
    assert_eq!(list[0].aliases["production"], 1);
    assert_eq!(e.events("model.pushed").await, 4);
    assert_eq!(e.events("model.alias_moved").await, 3);
}

async fn corruption_is_named_and_dest_untouched(e: Env) {
    let m = &e.models;
    e.write("d/a.bin", b"alpha");
    e.write("d/b.bin", b"bravo");
    e.push("corrupt", &e.path("d")).await;
    let info = m.show(&r("corrupt@1")).await.unwrap();
    let b = info.files.iter().find(|f| f.path == "b.bin").unwrap();
    // Same size, other bytes.
    m.store
        .put(&blob_key(&b.digest), Bytes::from_static(b"BRAVO"))
        .await
        .unwrap();
    e.write("dest/keep.txt", b"mine");
    let err = m
        .pull(&r("corrupt@1"), &e.path("dest"), true, quiet())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("b.bin") && msg.contains("corrupt@1"), "{msg}");
    assert_eq!(std::fs::read(e.path("dest/keep.txt")).unwrap(), b"mine");
    let partial = std::fs::read_dir(e.tmp.path()).unwrap().any(|d| {
        d.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("kondate-")
    });
    assert!(!partial, "no partial copy left");
    // Missing.
    m.store.delete(&blob_key(&b.digest)).await.unwrap();
    let err = m
        .pull(&r("corrupt@1"), &e.path("dest"), true, quiet())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("b.bin"), "{err}");
    assert_eq!(std::fs::read(e.path("dest/keep.txt")).unwrap(), b"mine");
    let report = m.gc(&now_gc(false)).await.unwrap();
    assert_eq!(
        report.missing,
        [b.digest.to_string()],
        "gc reports the damage"
    );
}

async fn concurrent_pushes_get_distinct_numbers(e: Env) {
    let e = Arc::new(e);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let p = e.write(&format!("c/{i}.bin"), format!("model {i}").as_bytes());
            e.push("racy", &p).await
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, [1, 2, 3, 4, 5, 6]);
}

async fn uploads_are_checked(e: Env) {
    let m = &e.models;
    let data = Bytes::from_static(b"uploaded weights");
    let digest = Digest::of(&data);
    let check = [BlobCheck {
        digest,
        size: data.len() as u64,
    }];
    assert_eq!(m.missing_blobs(&check).await.unwrap(), [digest]);
    // A body that is not what it claims stores nothing.
    let wrong = futures::stream::iter([Ok(Bytes::from_static(b"uploaded weightz"))]).boxed();
    assert!(m.put_blob(digest, data.len() as u64, wrong).await.is_err());
    let files = vec![FileEntry {
        path: "w.bin".into(),
        size: data.len() as u64,
        digest,
    }];
    let err = m
        .commit("up", Layout::File, files.clone(), PushMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ModelsError::MissingBlob { .. }), "{err}");
    let body = futures::stream::iter([Ok(data.slice(..5)), Ok(data.slice(5..))]).boxed();
    assert!(m.put_blob(digest, data.len() as u64, body).await.unwrap());
    assert!(m.missing_blobs(&check).await.unwrap().is_empty());
    // gc with no grace between upload and commit takes the blob; the commit then says so
    // instead of recording a version whose file is gone.
    let taken = m.gc(&now_gc(true)).await.unwrap();
    assert_eq!(taken.blobs.len(), 1);
    let err = m
        .commit("up", Layout::File, files.clone(), PushMeta::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ModelsError::MissingBlob { .. }), "{err}");
    let body = futures::stream::iter([Ok(data.clone())]).boxed();
    m.put_blob(digest, data.len() as u64, body).await.unwrap();
    let v = m
        .commit("up", Layout::File, files, PushMeta::default())
        .await
        .unwrap();
    assert_eq!(v.version, 1);
    // Paths that would leave the destination are refused at commit.
    let evil = vec![FileEntry {
        path: "../../etc/passwd".into(),
        size: data.len() as u64,
        digest,
    }];
    assert!(matches!(
        m.commit("up", Layout::Directory, evil, PushMeta::default())
            .await,
        Err(ModelsError::Invalid(_))
    ));
}

async fn bad_input_is_refused(e: Env) {
    let m = &e.models;
    let p = e.write("x.bin", b"x");
    for bad in ["../x", "a/b", "", "x y", &"n".repeat(65)] {
        let err = m
            .push_path(bad, &p, PushMeta::default(), quiet())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelsError::Invalid(_)), "{bad}: {err}");
    }
    let nan = PushMeta {
        metrics: [("f1".to_string(), f64::NAN)].into(),
        ..PushMeta::default()
    };
    assert!(m.push_path("ok", &p, nan, quiet()).await.is_err());
    let bad_git = PushMeta {
        lineage: kondate_models::Lineage {
            git_commit: Some("main; rm -rf".into()),
            ..Default::default()
        },
        ..PushMeta::default()
    };
    assert!(m.push_path("ok", &p, bad_git, quiet()).await.is_err());
    let no_query = PushMeta {
        lineage: kondate_models::Lineage {
            queries: vec![424242],
            ..Default::default()
        },
        ..PushMeta::default()
    };
    let err = m.push_path("ok", &p, no_query, quiet()).await.unwrap_err();
    assert!(err.to_string().contains("no query 424242"), "{err}");
    let missing = m
        .push_path("ok", &e.path("nope"), PushMeta::default(), quiet())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    assert!(matches!(
        m.show(&r("ok")).await,
        Err(ModelsError::NoSuchModel { .. })
    ));
    e.push("ok", &p).await;
    assert!(m.set_alias("ok", "latest", Some(1), "t").await.is_err());
    assert!(m.set_alias("ok", "a/b", Some(1), "t").await.is_err());
    assert!(LabelRef::parse("labels@x").is_err());
}

#[tokio::test]
async fn sqlite_local_lifecycle() {
    lifecycle(env(None, StoreKind::Local).await).await;
}

#[tokio::test]
async fn sqlite_local_corruption() {
    corruption_is_named_and_dest_untouched(env(None, StoreKind::Local).await).await;
}

#[tokio::test]
async fn sqlite_local_concurrent_pushes() {
    concurrent_pushes_get_distinct_numbers(env(None, StoreKind::Local).await).await;
}

#[tokio::test]
async fn sqlite_local_uploads_are_checked() {
    uploads_are_checked(env(None, StoreKind::Local).await).await;
}

#[tokio::test]
async fn sqlite_local_bad_input() {
    bad_input_is_refused(env(None, StoreKind::Local).await).await;
}

const PG: &str = "KONDATE_TEST_POSTGRES_URL";
const MY: &str = "KONDATE_TEST_MYSQL_URL";

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: set KONDATE_TEST_POSTGRES_URL and KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn postgres_s3_lifecycle() {
    lifecycle(env(Some((PG, "models_life")), StoreKind::S3).await).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_local_lifecycle() {
    lifecycle(env(Some((MY, "models_life")), StoreKind::Local).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_concurrent_pushes() {
    concurrent_pushes_get_distinct_numbers(env(Some((PG, "models_conc")), StoreKind::Local).await)
        .await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_concurrent_pushes() {
    concurrent_pushes_get_distinct_numbers(env(Some((MY, "models_conc")), StoreKind::Local).await)
        .await;
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn s3_corruption() {
    corruption_is_named_and_dest_untouched(env(None, StoreKind::S3).await).await;
}

#[tokio::test]
#[ignore = "needs an S3-compatible server: set KONDATE_TEST_S3_ENDPOINT (see .ci/run)"]
async fn s3_uploads_are_checked() {
    uploads_are_checked(env(None, StoreKind::S3).await).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_uploads_are_checked() {
    uploads_are_checked(env(Some((MY, "models_up")), StoreKind::Local).await).await;
}
